//! CSV and JSON Lines event files: see `persona::fuzzing::event_bytes`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| persona::fuzzing::event_bytes(data));
