//! Per-event compute: the feature update, the vector as of now, and one model step (scaler +
//! k-means + propensity), against copying the vector (the floor any per-event work pays).
//!
//! `cargo bench --bench features`.

use criterion::{criterion_group, criterion_main, Criterion};
use persona::testing::features::vector::FeatureLayout;
use persona::testing::features::{CompactEvent, FeatureParams, ProfileOp, ProfileState};
use persona::EventKind;
use persona::{testing::model::ModelState, ModelConfig};
use std::hint::black_box;

const T0: i64 = 1_767_225_600_000;

fn features(c: &mut Criterion) {
    let params = FeatureParams {
        half_life_ms: 30.0 * 86_400_000.0,
        category_buckets: 16,
    };
    let layout = FeatureLayout::new(params);
    let mut state = ProfileState::new(&params);
    let mut t = T0;
    let mut g = c.benchmark_group("features");
    g.bench_function("apply_event", |b| {
        b.iter(|| {
            t += 60_000;
            let op = ProfileOp::Event(CompactEvent {
                timestamp_ms: t,
                kind: EventKind::View,
                value: 30.0,
                bucket: Some((t % 16) as u16),
            });
            state.apply(black_box(&op), &params);
        })
    });
    let mut out = vec![0.0; layout.dim()];
    g.bench_function("vector_as_of_now", |b| {
        b.iter(|| layout.write_vector(black_box(&state), t, &mut out))
    });
    let x = layout.vector(&state, t);
    g.bench_function("copy_vector (baseline)", |b| {
        b.iter(|| black_box(x.clone()))
    });
    let mut model = ModelState::new(layout.dim(), &ModelConfig::default());
    let mut sample = Vec::new();
    for i in 0..2000 {
        let mut v = x.clone();
        let n = v.len();
        v[i % n] += (i % 7) as f64;
        model.scaler.update(&v);
        sample.push(v);
    }
    model.segments.fit(&sample);
    g.bench_function("model_step", |b| {
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

criterion_group!(benches, features);
criterion_main!(benches);
