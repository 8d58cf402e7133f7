//! One model step per event, piece by piece: the Welford scaler update and transform, the online
//! k-means step and the AdaGrad propensity step, then all of them together, against copying the
//! feature vector (the floor any per-event work pays).
//!
//! `cargo bench --bench model`.

use criterion::{criterion_group, criterion_main, Criterion};
use persona::testing::features::vector::FeatureLayout;
use persona::testing::features::FeatureParams;
use persona::{testing::model::ModelState, ModelConfig};
use std::hint::black_box;

fn model(c: &mut Criterion) {
    let layout = FeatureLayout::new(FeatureParams {
        half_life_ms: 30.0 * 86_400_000.0,
        category_buckets: 16,
    });
    let dim = layout.dim();
    // A seeded model: k-means is past its reservoir phase, as it is after the first few
    // hundred events of any real workload.
    let mut model = ModelState::new(dim, &ModelConfig::default());
    let vectors: Vec<Vec<f64>> = (0..2000)
        .map(|i| (0..dim).map(|j| ((i * 31 + j * 7) % 13) as f64).collect())
        .collect();
    for v in &vectors {
        model.scaler.update(v);
    }
    model.segments.fit(&vectors);
    let x = vectors[17].clone();
    let z = model.scaler.transform_vec(&x);
    let mut out = vec![0.0; dim];
    let mut g = c.benchmark_group("model");
    g.bench_function("copy_vector (baseline)", |b| {
        b.iter(|| black_box(x.clone()))
    });
    g.bench_function("scaler_update", |b| {
        b.iter(|| model.scaler.update(black_box(&x)))
    });
    g.bench_function("scaler_transform", |b| {
        b.iter(|| model.scaler.transform(black_box(&x), &mut out))
    });
    g.bench_function("segment_assign", |b| {
        b.iter(|| black_box(model.segments.assign(black_box(&x))))
    });
    g.bench_function("segment_fit (2,000 vectors)", |b| {
        b.iter(|| black_box(model.segments.clone().fit(black_box(&vectors))))
    });
    g.bench_function("propensity_learn", |b| {
        b.iter(|| black_box(model.propensity.learn(black_box(&z), true)))
    });
    g.bench_function("model_step (all of the above)", |b| {
        b.iter(|| {
            model.scaler.update(black_box(&x));
            let z = model.scaler.transform_vec(&x);
            let s = model.segments.assign(&x);
            let p = model.propensity.learn(&z, true);
            black_box((s, p))
        })
    });
    g.finish();
}

criterion_group!(benches, model);
criterion_main!(benches);
