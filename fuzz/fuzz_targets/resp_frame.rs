//! RESP bytes from a client: see `persona::testing::fuzzing::resp_input`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| persona::testing::fuzzing::resp_input(data));
