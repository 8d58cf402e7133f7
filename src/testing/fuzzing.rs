//! The properties the fuzz targets check, in one place so that the cargo-fuzz targets under
//! `fuzz/` and their proptest mirrors in `tests/fuzz_mirrors.rs` exercise exactly the same code
//! (see docs/testing.md). Each function takes arbitrary bytes and panics only if Persona breaks a
//! promise on them: a panic here is a bug, whatever the input.
//!
//! Not a stable API: hidden from the documentation, kept public only for those two callers.

use crate::event::parse::{EventReader, Format};
use crate::features::vector::FeatureLayout;
use crate::features::{FeatureParams, ProfileState};
use crate::model::ModelState;
use crate::server::frame::{parse_frame, parse_request, Limits, Proto, RequestDecoder};
use crate::storage::record::{ProfileRecord, RecordHead, RecordState};

/// Limits small enough that fuzzing reaches them quickly.
fn fuzz_limits() -> Limits {
    Limits {
        max_bulk_len: 4096,
        max_array_len: 64,
        max_inline_len: 1024,
        max_nesting: 8,
    }
}

/// RESP input from a client: the frame parser and the request decoder never panic, never claim
/// to consume more than they were given, agree with each other on whether a request is
/// complete, decode the same requests whether the bytes arrive at once or split in two, and
/// every parsed frame encodes back (RESP3) to bytes that parse to the same encoding.
pub fn resp_input(data: &[u8]) {
    let limits = fuzz_limits();
    if let Ok(Some((frame, used))) = parse_frame(data, &limits) {
        assert!(
            used > 0 && used <= data.len(),
            "frame consumed {used} of {}",
            data.len()
        );
        let mut once = Vec::new();
        frame.encode(Proto::Resp3, &mut once);
        let big = Limits {
            max_bulk_len: usize::MAX >> 1,
            max_array_len: usize::MAX >> 1,
            max_inline_len: usize::MAX >> 1,
            max_nesting: 64,
        };
        match parse_frame(&once, &big) {
            Ok(Some((again, used_again))) => {
                assert_eq!(
                    used_again,
                    once.len(),
                    "re-encoded frame not fully consumed"
                );
                let mut twice = Vec::new();
                again.encode(Proto::Resp3, &mut twice);
                assert_eq!(once, twice, "encoding is not stable through a parse");
            }
            other => panic!("an encoded frame does not parse back: {other:?}"),
        }
        // RESP2 encoding of anything parsed must not panic either.
        frame.encode(Proto::Resp2, &mut Vec::new());
    }
    // Whole-buffer request decoding, then the same bytes split in two.
    let whole = decode_all(data, &[data.len()], &limits);
    let cut = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let split = decode_all(data, &[cut, data.len() - cut], &limits);
    assert_eq!(
        whole, split,
        "split delivery decoded differently (cut at {cut})"
    );
    if let Ok(Some((args, used))) = parse_request(data, &limits) {
        assert!(used > 0 && used <= data.len());
        // An array request is bounded by its element count; an inline one, as in Redis, only by
        // its length (a word takes at least two bytes with its separator).
        let bound = if data.first() == Some(&b'*') {
            limits.max_array_len
        } else {
            limits.max_inline_len / 2 + 1
        };
        assert!(args.len() <= bound, "{} arguments", args.len());
    }
}

/// Requests decoded from `data` delivered in `chunks`, and how decoding ended.
fn decode_all(data: &[u8], chunks: &[usize], limits: &Limits) -> (Vec<Vec<Vec<u8>>>, String) {
    let mut decoder = RequestDecoder::new(*limits);
    let mut pending: Vec<u8> = Vec::new();
    let mut requests = Vec::new();
    let mut offered = 0;
    for &size in chunks {
        let end = (offered + size).min(data.len());
        pending.extend_from_slice(&data[offered..end]);
        offered = end;
        loop {
            match decoder.decode(&pending) {
                Ok(Some((args, used))) => {
                    assert!(used > 0 && used <= pending.len());
                    requests.push(args);
                    pending.drain(..used);
                    decoder.reset();
                }
                Ok(None) => break,
                Err(e) => return (requests, format!("error: {e}")),
            }
        }
    }
    (requests, format!("{} bytes pending", pending.len()))
}

/// Bytes read from disk as a profile record or a model state: decoding never panics, and a
/// record that decodes and passes the consistency check can be used the way the store uses it
/// (replayed to every retained version, turned into a feature vector, updated) without panics.
pub fn record_bytes(data: &[u8]) {
    let params = FeatureParams {
        half_life_ms: 30.0 * crate::features::DAY_MS,
        category_buckets: 4,
    };
    let key = || "fuzz record".to_string();
    let _ = RecordHead::decode(&key, data);
    let _ = RecordState::decode(&key, data);
    if let Ok(rec) = ProfileRecord::decode(&key, data) {
        if rec.is_consistent(&params) {
            let layout = FeatureLayout::new(params);
            let now = rec.state.last_seen_ms.unwrap_or(0);
            let _ = layout.vector(&rec.state, now);
            let lo = rec.base_version();
            for version in lo..=rec.version.min(lo.saturating_add(64)) {
                if let Ok((state, _, _)) = rec.state_at(version, &params) {
                    let _ = layout.vector(&state, now);
                }
            }
            // Re-encoding what was decoded gives a record that decodes to the same bytes.
            let again = rec.encode();
            let back = ProfileRecord::decode(&key, &again)
                .unwrap_or_else(|e| panic!("a decoded record does not re-decode: {e}"));
            assert_eq!(back.encode(), again);
        }
    }
    if let Ok(model) = ModelState::decode(data) {
        // A state that decodes validated: it must be usable for the dimension it claims.
        let x = vec![0.5; model.dim()];
        let z = model.scaler.transform_vec(&x);
        let _ = model.segments.assign(&x);
        let _ = model.propensity.predict(&z);
    }
    let _ = ProfileState::new(&params);
}

/// An uploaded event file: the CSV and JSON Lines readers never panic and end; every event they
/// accept passes validation.
pub fn event_bytes(data: &[u8]) {
    for format in [Format::Csv, Format::Jsonl] {
        let Ok(reader) = EventReader::new(data, format) else {
            continue;
        };
        for (i, item) in reader.enumerate() {
            if let Ok(event) = item {
                assert!(
                    event.validate().is_ok(),
                    "accepted an invalid event: {event:?}"
                );
            }
            assert!(i <= data.len() + 1, "more rows than bytes");
        }
    }
}
