//! RESP bytes from a client: see `persona::fuzzing::resp_input`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| persona::fuzzing::resp_input(data));
