//! Random operations on a real store (ingest, batches, re-sends, attributes, feedback, queries, injected
//! commit failures, erase, reopen) checked step by step against an in-memory reference: the model check
//! of tests/proptest_model.rs, fed with the fuzzer's bytes.
#![no_main]

#[path = "../../tests/model_check/mod.rs"]
mod model_check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let ops = model_check::ops_from_bytes(data);
    if let Err(e) = model_check::run(&ops) {
        panic!("store error during the model check: {e}");
    }
});
