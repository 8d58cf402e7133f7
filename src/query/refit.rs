//! Centroid refit for re-segmentation over a uniform reservoir sample of all profiles evaluated
//! as of the watermark: mini-batch k-means (Sculley, 2010) from the current centroids, and a
//! fresh k-means++ + Lloyd fit; the one with the lower inertia wins. Online k-means follows the stream; a refit re-centres the segments on the
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
/// Most Lloyd iterations of the fresh start.
const LLOYD_ITERATIONS: usize = 30;

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
        let Ok(rec) = store.decode_profile_current(&id, &bytes) else {
            // A damaged record is left out of the sample; `persona check` reports it.
            continue;
        };
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
    // Warm start (current centroids, mini-batch) and a fresh k-means++ start (Lloyd): keep
    // whichever fits the sample better, so a refit never settles for a worse local optimum.
    let warm = mini_batch(model, &reservoir, &mut rng);
    let fresh = lloyd(
        kmeans_pp(&reservoir, warm.nrows(), &mut rng),
        &reservoir,
        LLOYD_ITERATIONS,
    );
    Ok(match (fresh, inertia(&warm, &reservoir)) {
        (Some(f), w) if inertia(&f, &reservoir) < w => f,
        _ => warm,
    })
}

/// Sum of squared distances of `points` to their nearest centroid.
fn inertia(c: &Array2<f64>, points: &[Vec<f64>]) -> f64 {
    points
        .iter()
        .map(|p| {
            let i = nearest_row(c, p);
            c.row(i)
                .iter()
                .zip(p)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
        })
        .sum()
}

/// k-means++ seeding over `points`; None if there are fewer points than centroids.
pub(crate) fn kmeans_pp(points: &[Vec<f64>], k: usize, rng: &mut Pcg64) -> Option<Array2<f64>> {
    if points.len() < k || k == 0 {
        return None;
    }
    let dim = points[0].len();
    let mut c = Array2::zeros((k, dim));
    let first = rng.gen_range(0..points.len());
    c.row_mut(0)
        .assign(&ndarray::ArrayView1::from(&points[first][..]));
    let d2 = |p: &Vec<f64>, row: ndarray::ArrayView1<f64>| -> f64 {
        row.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum()
    };
    let mut best: Vec<f64> = points.iter().map(|p| d2(p, c.row(0))).collect();
    for i in 1..k {
        let total: f64 = best.iter().sum();
        let pick = if total > 0.0 {
            let mut target = rng.gen::<f64>() * total;
            let mut chosen = points.len() - 1;
            for (j, w) in best.iter().enumerate() {
                if target < *w {
                    chosen = j;
                    break;
                }
                target -= w;
            }
            chosen
        } else {
            rng.gen_range(0..points.len())
        };
        c.row_mut(i)
            .assign(&ndarray::ArrayView1::from(&points[pick][..]));
        for (b, p) in best.iter_mut().zip(points) {
            *b = b.min(d2(p, c.row(i)));
        }
    }
    Some(c)
}

/// Lloyd iterations, at most `iterations` (an empty cluster keeps its centroid).
pub(crate) fn lloyd(
    start: Option<Array2<f64>>,
    points: &[Vec<f64>],
    iterations: usize,
) -> Option<Array2<f64>> {
    let mut c = start?;
    let (k, dim) = c.dim();
    for _ in 0..iterations {
        let mut sums = Array2::<f64>::zeros((k, dim));
        let mut counts = vec![0usize; k];
        for p in points {
            let i = nearest_row(&c, p);
            counts[i] += 1;
            for (s, x) in sums.row_mut(i).iter_mut().zip(p) {
                *s += x;
            }
        }
        let mut moved = false;
        for (i, &n) in counts.iter().enumerate() {
            if n > 0 {
                for (cv, s) in c.row_mut(i).iter_mut().zip(sums.row(i)) {
                    let nv = s / n as f64;
                    moved |= (nv - *cv).abs() > 1e-9;
                    *cv = nv;
                }
            }
        }
        if !moved {
            break;
        }
    }
    Some(c)
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

/// The row of `c` nearest to `p` (the first of equals).
pub(crate) fn nearest_row(c: &Array2<f64>, p: &[f64]) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, row) in c.rows().into_iter().enumerate() {
        let d: f64 = row.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
        if d < best.1 {
            best = (i, d);
        }
    }
    best.0
}
