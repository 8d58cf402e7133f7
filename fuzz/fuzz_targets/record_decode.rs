//! Profile records and model states read from disk: see `persona::testing::fuzzing::record_bytes`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| persona::testing::fuzzing::record_bytes(data));
