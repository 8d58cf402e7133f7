//! RESP framing: parsing client commands (one, and a pipeline of 16) and encoding a profile-sized
//! reply in RESP2 and RESP3, against copying the same bytes (the floor of any framing work).
//!
//! `cargo bench --bench resp`.

use criterion::{criterion_group, criterion_main, Criterion};
use persona::testing::server::frame::{
    parse_frame, parse_request, Frame, Limits, Proto, SharedKeys,
};
use std::hint::black_box;

fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn resp(c: &mut Criterion) {
    let limits = Limits::default();
    let one = command(&[
        "EVENT.ADD",
        "c000042",
        "purchase",
        "19.90",
        "TS",
        "1767225600000",
    ]);
    let sixteen: Vec<u8> = one.repeat(16);
    // A reply shaped like PROFILE.GET's: a map of fields and a 61-number feature array.
    let reply = Frame::Map(
        [
            ("customer", Frame::bulk("c000042")),
            ("version", Frame::Integer(812)),
            ("segment", Frame::Integer(3)),
            ("propensity", Frame::Double(0.1734)),
            (
                "features",
                Frame::Array((0..61).map(|i| Frame::Double(i as f64 * 0.37)).collect()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (Frame::bulk(k), v))
        .collect(),
    );
    let mut encoded = Vec::new();
    reply.encode(Proto::Resp3, &mut encoded);

    let mut g = c.benchmark_group("resp");
    g.bench_function("copy_command (baseline)", |b| {
        b.iter(|| black_box(one.clone()))
    });
    g.bench_function("parse_command", |b| {
        b.iter(|| black_box(parse_request(black_box(&one), &limits)))
    });
    g.bench_function("parse_pipeline_16", |b| {
        b.iter(|| {
            let mut rest: &[u8] = &sixteen;
            let mut n = 0;
            while let Ok(Some((args, used))) = parse_request(rest, &limits) {
                black_box(args);
                rest = &rest[used..];
                n += 1;
            }
            black_box(n)
        })
    });
    g.bench_function("copy_reply (baseline)", |b| {
        b.iter(|| black_box(encoded.clone()))
    });
    let mut out = Vec::with_capacity(4096);
    g.bench_function("encode_reply_resp3", |b| {
        b.iter(|| {
            out.clear();
            reply.encode(Proto::Resp3, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("encode_reply_resp2", |b| {
        b.iter(|| {
            out.clear();
            reply.encode(Proto::Resp2, &mut out);
            black_box(out.len())
        })
    });
    // The 61 feature doubles alone: as `Frame::Double` writes them, and with Rust's own
    // shortest-round-trip formatting (what `Frame::Double` used before; identical text).
    let doubles: Vec<f64> = (0..61).map(|i| i as f64 * 0.37).collect();
    let array = Frame::Array(doubles.iter().map(|&v| Frame::Double(v)).collect());
    g.bench_function("encode_61_doubles_resp3", |b| {
        b.iter(|| {
            out.clear();
            array.encode(Proto::Resp3, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("std_format_61_doubles (former encoding)", |b| {
        use std::io::Write;
        b.iter(|| {
            out.clear();
            out.extend_from_slice(b"*61\r\n");
            for v in &doubles {
                let _ = write!(out, ",{v}\r\n");
            }
            black_box(out.len())
        })
    });
    // PROFILE.GET's feature map, RESP2 (what redis-benchmark speaks): built per request as a
    // `Frame::Map` of 61 named doubles (as before the event-loop server, docs/bench-history.md),
    // and as the server builds it now, a `Frame::DoubleMap` over names encoded once.
    let names: Vec<String> = (0..61).map(|i| format!("feature_name_{i:02}")).collect();
    let shared = SharedKeys::new(&names);
    g.bench_function("feature_map_built_per_request_resp2 (former)", |b| {
        b.iter(|| {
            out.clear();
            let map = Frame::Map(
                names
                    .iter()
                    .zip(&doubles)
                    .map(|(n, v)| (Frame::bulk(n), Frame::Double(*v)))
                    .collect(),
            );
            map.encode(Proto::Resp2, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("feature_double_map_resp2", |b| {
        b.iter(|| {
            out.clear();
            let map = Frame::DoubleMap(std::sync::Arc::clone(&shared), doubles.clone());
            map.encode(Proto::Resp2, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("parse_reply_resp3", |b| {
        b.iter(|| black_box(parse_frame(black_box(&encoded), &limits)))
    });
    g.finish();
}

criterion_group!(benches, resp);
criterion_main!(benches);
