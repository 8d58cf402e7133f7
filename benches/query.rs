//! Query latencies on a generated store: profile get (against a raw sled read of the same record,
//! the baseline that bounds it), nearest segment, score, and similar (indexed vs exact).
//!
//! `cargo bench --bench query`; compare each line with `raw_record_get` from the same run.

use criterion::{criterion_group, criterion_main, Criterion};
use persona::generator::{Generator, GeneratorConfig};
use persona::testing::DbInternals;
use persona::{Config, Db, Durability, Target};
use std::hint::black_box;

fn store() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()
        .expect("open");
    let gen = Generator::new(GeneratorConfig {
        customers: 5_000,
        events: 100_000,
        seed: 1,
        ..GeneratorConfig::default()
    })
    .expect("generator config is valid");
    let events: Vec<_> = gen.collect();
    for chunk in events.chunks(4096) {
        db.ingest_batch(chunk.to_vec()).expect("ingest");
    }
    db.resegment(1000, persona::Centroids::Refit)
        .expect("resegment");
    (dir, db)
}

fn queries(c: &mut Criterion) {
    let (_dir, db) = store();
    let ids: Vec<String> = (0..5_000).step_by(37).map(|i| format!("c{i:06}")).collect();
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % ids.len();
        ids[i].as_str()
    };
    let mut g = c.benchmark_group("query");
    g.bench_function("raw_record_get (baseline)", |b| {
        b.iter(|| black_box(db.store().raw_profile(next()).expect("read")))
    });
    g.bench_function("profile_get", |b| {
        b.iter(|| black_box(db.profile(next()).expect("read")))
    });
    g.bench_function("nearest_segment", |b| {
        b.iter(|| {
            black_box(
                db.nearest_segments(Target::Customer(next()), 1)
                    .expect("read"),
            )
        })
    });
    let v = db
        .profile("c000001")
        .expect("read")
        .expect("exists")
        .features;
    g.bench_function("nearest_segment_vector", |b| {
        b.iter(|| black_box(db.nearest_segments(Target::Vector(&v), 1).expect("read")))
    });
    g.bench_function("score", |b| {
        b.iter(|| black_box(db.score(next()).expect("read")))
    });
    g.sample_size(20);
    g.bench_function("similar_k10_indexed", |b| {
        b.iter(|| {
            black_box(
                db.similar(next(), 10, persona::Search::Probe)
                    .expect("read"),
            )
        })
    });
    g.bench_function("similar_k10_exact", |b| {
        b.iter(|| {
            black_box(
                db.similar(next(), 10, persona::Search::Exact)
                    .expect("read"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
