//! Profile-record encode and decode (the codec every write and every by-customer read pays),
//! against copying the encoded bytes (the floor). The record is full: a history of
//! `history_versions` ops and a de-duplication window of `dedupe_window` ids, as after a few
//! hundred events of one customer.
//!
//! `cargo bench --bench record`.

use criterion::{criterion_group, criterion_main, Criterion};
use persona::testing::features::{CompactEvent, FeatureParams, ProfileOp};
use persona::testing::storage::record::ProfileRecord;
use persona::EventKind;
use std::hint::black_box;

const T0: i64 = 1_767_225_600_000;

fn record(c: &mut Criterion) {
    // A store with `Config`'s defaults: 30-day half-life, 16 category buckets, a dedupe window
    // of 512 ids, 16 versions of history.
    let (dedupe_window, history_versions) = (512, 16);
    let params = FeatureParams {
        half_life_ms: 30.0 * 86_400_000.0,
        category_buckets: 16,
    };
    let mut rec = ProfileRecord::new(&params);
    for i in 0..600i64 {
        let t = T0 + i * 60_000;
        rec.remember(i as u64 * 0x9e37_79b9_7f4a_7c15, t, dedupe_window);
        let op = ProfileOp::Event(CompactEvent {
            timestamp_ms: t,
            kind: if i % 10 == 0 {
                EventKind::Purchase
            } else {
                EventKind::View
            },
            value: 20.0 + (i % 7) as f64,
            bucket: Some((i % 16) as u16),
        });
        rec.apply(op, &params, history_versions);
    }
    let bytes = rec.encode();
    let mut g = c.benchmark_group("record");
    g.bench_function(
        format!("copy_encoded_{}_bytes (baseline)", bytes.len()),
        |b| b.iter(|| black_box(bytes.clone())),
    );
    g.bench_function("encode", |b| b.iter(|| black_box(black_box(&rec).encode())));
    g.bench_function("decode", |b| {
        b.iter(|| {
            let r =
                ProfileRecord::decode(&|| "bench".into(), black_box(&bytes)).expect("round trip");
            black_box(r)
        })
    });
    // The same record in older layouts: version 3 (plain bincode fields), which every record
    // used before version 4 packed them, and version 1 (the dedupe window as a sequence of
    // pairs), which every record used before version 2.
    type Encode = fn(&ProfileRecord) -> Vec<u8>;
    let older: [(&str, Encode); 2] = [
        ("v3", ProfileRecord::encode_v3),
        ("v1", ProfileRecord::encode_v1),
    ];
    for (name, encode) in older {
        let bytes = encode(&rec);
        g.bench_function(format!("encode_{name} ({} bytes)", bytes.len()), |b| {
            b.iter(|| black_box(encode(black_box(&rec))))
        });
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| {
                let r = ProfileRecord::decode(&|| "bench".into(), black_box(&bytes))
                    .expect("round trip");
                black_box(r)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
