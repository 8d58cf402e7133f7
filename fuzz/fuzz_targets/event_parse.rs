//! CSV and JSON Lines event files: see `persona::testing::fuzzing::event_bytes`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| persona::testing::fuzzing::event_bytes(data));
