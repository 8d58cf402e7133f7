//! Centroid refit for re-segmentation: mini-batch k-means (Sculley, 2010) over a uniform
//! reservoir sample of all profiles evaluated as of the watermark, starting from the current
//! centroids. Online k-means follows the stream; a refit re-centres the segments on the
//! population as it is *now*, including customers who have gone silent.

use crate::error::Result;
use crate::features::vector::FeatureLayout;
use crate::model::ModelState;
use crate::storage::Store;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// Profiles sampled for a refit.
pub const SAMPLE: usize = 20_000;
/// Mini-batch size.
const BATCH: usize = 1024;
/// Mini-batch iterations.
const ITERATIONS: usize = 50;

/// Refitted centroids (standardised space), `k × dim`.
pub(crate) fn refit(
    store: &Store,
    model: &ModelState,
    layout: &FeatureLayout,
    sample: usize,
    seed: u64,
) -> Result<Array2<f64>> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let now = model.watermark_ms;
    let mut reservoir: Vec<Vec<f64>> = Vec::new();
    for (i, item) in store.scan_profiles().enumerate() {
        let (id, bytes) = item?;
        let rec = store.decode_profile(&id, &bytes)?;
        let seen = i + 1;
        let slot = if reservoir.len() < sample {
            None
        } else {
            let j = rng.gen_range(0..seen);
            if j >= sample {
                continue;
            }
            Some(j)
        };
        let z = model.scaler.transform_vec(&layout.vector(&rec.state, now));
        match slot {
            None => reservoir.push(z),
            Some(j) => reservoir[j] = z,
        }
    }
    Ok(mini_batch(model, &reservoir, &mut rng))
}

fn mini_batch(model: &ModelState, points: &[Vec<f64>], rng: &mut Pcg64) -> Array2<f64> {
    let mut centroids = model.segments.centroids().clone();
    if points.is_empty() {
        return centroids;
    }
    let k = centroids.nrows();
    let mut counts = vec![0u64; k];
    for _ in 0..ITERATIONS {
        let batch: Vec<&Vec<f64>> = (0..BATCH.min(points.len()))
            .map(|_| &points[rng.gen_range(0..points.len())])
            .collect();
        let nearest: Vec<usize> = batch.iter().map(|p| nearest_row(&centroids, p)).collect();
        for (p, c) in batch.iter().zip(nearest) {
            counts[c] += 1;
            let eta = 1.0 / counts[c] as f64;
            let mut row = centroids.row_mut(c);
            for (v, x) in row.iter_mut().zip(p.iter()) {
                *v += eta * (x - *v);
            }
        }
    }
    centroids
}

fn nearest_row(c: &Array2<f64>, p: &[f64]) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, row) in c.rows().into_iter().enumerate() {
        let d: f64 = row.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
        if d < best.1 {
            best = (i, d);
        }
    }
    best.0
}
