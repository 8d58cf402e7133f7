//! Sub-lists: the second level of the lookalike index's partition (IVF style).
//!
//! Each group of rows (one segment, or the profiles without one) is split into up to
//! [`MAX_SUBLISTS`] sub-lists by k-means over the time-independent codes of its rows. A row's
//! sub-list is the nearest sub-centroid under [`SubLists::nearest`] — a function of the row's
//! codes and the group's trained centroids alone, so the writer's updates and a redistribution
//! of the same rows agree. A query ranks the sub-lists of the probed groups by the distance from
//! the query to their centroids (in standardised units, with the current scaler) and scans the
//! nearest ones until it has looked at a fixed number of rows.
//!
//! Centroids are trained once per build, after the scan of the records, and again after a
//! re-segmentation; rows written in between go to the nearest existing centroid (the lists are
//! not re-balanced otherwise).

/// Sub-lists per group at most.
pub(crate) const MAX_SUBLISTS: usize = 64;
/// Rows per sub-list the training aims at (fewer lists for small groups).
const TARGET_LIST_ROWS: usize = 1024;
/// Training rows sampled per sub-list.
pub(crate) const SAMPLE_PER_LIST: usize = 64;
/// Lloyd iterations over the sample.
const ITERATIONS: usize = 10;

/// One group's sub-centroids (untrained: a single list and no centroids).
#[derive(Debug, Clone, Default)]
pub(crate) struct SubLists {
    /// Per time-independent position: the weight of a squared code difference (1 / the
    /// variance of the codes in the training sample; 0 for a constant position).
    weights: Vec<f32>,
    /// `n × weights.len()` centroid coordinates, in code units.
    centroids: Vec<f32>,
}

impl SubLists {
    /// Sub-lists in use (1 when untrained).
    pub(crate) fn len(&self) -> usize {
        if self.weights.is_empty() {
            1
        } else {
            self.centroids.len() / self.weights.len()
        }
    }

    /// How many sub-lists a group of `rows` rows gets.
    pub(crate) fn lists_for(rows: usize) -> usize {
        (rows / TARGET_LIST_ROWS).clamp(1, MAX_SUBLISTS)
    }

    /// Trains `lists` sub-centroids over `sample` (rows of `n_static` time-independent codes,
    /// concatenated). Deterministic: the same sample gives the same centroids.
    pub(crate) fn train(sample: &[u8], n_static: usize, lists: usize) -> SubLists {
        let rows = sample.len().checked_div(n_static).unwrap_or(0);
        if lists <= 1 || rows < lists || n_static == 0 {
            return SubLists::default();
        }
        let mut mean = vec![0f64; n_static];
        let mut sq = vec![0f64; n_static];
        for row in sample.chunks_exact(n_static) {
            for (j, &c) in row.iter().enumerate() {
                mean[j] += f64::from(c);
                sq[j] += f64::from(c) * f64::from(c);
            }
        }
        let weights: Vec<f32> = mean
            .iter()
            .zip(&sq)
            .map(|(&m, &s)| {
                let var = s / rows as f64 - (m / rows as f64).powi(2);
                if var > 1e-6 {
                    (1.0 / var) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let mut centroids = seed_centroids(sample, n_static, lists, &weights);
        let mut out = SubLists { weights, centroids };
        let mut sums = vec![0f64; lists * n_static];
        let mut counts = vec![0usize; lists];
        for _ in 0..ITERATIONS {
            sums.iter_mut().for_each(|s| *s = 0.0);
            counts.iter_mut().for_each(|c| *c = 0);
            for row in sample.chunks_exact(n_static) {
                let s = out.nearest(row);
                counts[s] += 1;
                for (acc, &c) in sums[s * n_static..].iter_mut().zip(row) {
                    *acc += f64::from(c);
                }
            }
            centroids = std::mem::take(&mut out.centroids);
            for (s, &n) in counts.iter().enumerate() {
                // An empty cluster keeps its centroid (its list simply stays short).
                if n > 0 {
                    for (c, &sum) in centroids[s * n_static..(s + 1) * n_static]
                        .iter_mut()
                        .zip(&sums[s * n_static..])
                    {
                        *c = (sum / n as f64) as f32;
                    }
                }
            }
            out.centroids = centroids;
        }
        out
    }

    /// The sub-list of a row with these time-independent codes.
    pub(crate) fn nearest(&self, codes: &[u8]) -> usize {
        let n = self.weights.len();
        if n == 0 {
            return 0;
        }
        let mut best = (f32::INFINITY, 0);
        for (s, c) in self.centroids.chunks_exact(n).enumerate() {
            let d = weighted(codes, c, &self.weights);
            if d < best.0 {
                best = (d, s);
            }
        }
        best.1
    }

    /// Squared distance from a prepared query (static terms `(a − b · code)²`) to the centroid
    /// of sub-list `s`; 0 when untrained.
    pub(crate) fn query_distance(&self, s: usize, a: &[f32], b: &[f32]) -> f32 {
        let n = self.weights.len();
        if n == 0 {
            return 0.0;
        }
        self.centroids[s * n..(s + 1) * n]
            .iter()
            .zip(a)
            .zip(b)
            .map(|((&c, &a), &b)| {
                let d = a - b * c;
                d * d
            })
            .sum()
    }

    /// Heap bytes held.
    #[cfg(feature = "cli")]
    pub(crate) fn heap_bytes(&self) -> usize {
        4 * (self.weights.capacity() + self.centroids.capacity())
    }
}

/// k-means++ seeding over the sample (seeded: deterministic): each next centroid is a sample
/// row drawn with probability proportional to its squared distance to the nearest one so far.
fn seed_centroids(sample: &[u8], n_static: usize, lists: usize, weights: &[f32]) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0x5eed_1157);
    let rows: Vec<&[u8]> = sample.chunks_exact(n_static).collect();
    let as_f32 = |r: &[u8]| r.iter().map(|&c| f32::from(c)).collect::<Vec<f32>>();
    let mut centroids = as_f32(rows[rng.gen_range(0..rows.len())]);
    let mut nearest: Vec<f32> = rows
        .iter()
        .map(|r| weighted(r, &centroids, weights))
        .collect();
    for _ in 1..lists {
        let total: f64 = nearest.iter().map(|&d| f64::from(d)).sum();
        let pick = if total > 0.0 {
            let mut left = rng.gen_range(0.0..total);
            nearest
                .iter()
                .position(|&d| {
                    left -= f64::from(d);
                    left < 0.0
                })
                .unwrap_or(rows.len() - 1)
        } else {
            // Every row is on a centroid already: any row will do (its list stays empty).
            rng.gen_range(0..rows.len())
        };
        let c = as_f32(rows[pick]);
        for (d, r) in nearest.iter_mut().zip(&rows) {
            *d = d.min(weighted(r, &c, weights));
        }
        centroids.extend(c);
    }
    centroids
}

/// Σ w · (code − centroid)², in eight lanes so it vectorises.
fn weighted(codes: &[u8], centroid: &[f32], w: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = codes.len() / 8 * 8;
    for ((c, m), w) in codes[..chunks]
        .chunks_exact(8)
        .zip(centroid.chunks_exact(8))
        .zip(w.chunks_exact(8))
    {
        for (((lane, &c), &m), &w) in lanes.iter_mut().zip(c).zip(m).zip(w) {
            let d = f32::from(c) - m;
            *lane += w * d * d;
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for j in chunks..codes.len() {
        let d = f32::from(codes[j]) - centroid[j];
        sum += w[j] * d * d;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn training_recovers_planted_clusters() {
        // Four well separated clusters in 10 dimensions: every row's sub-list is its cluster's.
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let centres = [20u8, 80, 150, 230];
        let mut sample = Vec::new();
        let mut truth = Vec::new();
        for i in 0..400 {
            let k = i % 4;
            truth.push(k);
            for _ in 0..10 {
                let c = i32::from(centres[k]) + rng.gen_range(-5..=5);
                sample.push(c as u8);
            }
        }
        let lists = SubLists::train(&sample, 10, 4);
        assert_eq!(lists.len(), 4);
        let label: Vec<usize> = sample.chunks_exact(10).map(|r| lists.nearest(r)).collect();
        for (i, &k) in truth.iter().enumerate() {
            // Same cluster ⇔ same sub-list.
            assert_eq!(label[i], label[k], "row {i}");
            assert_ne!(label[i], label[(k + 1) % 4]);
        }
    }

    #[test]
    fn too_few_rows_leave_one_untrained_list() {
        let lists = SubLists::train(&[1, 2, 3, 4], 2, 4);
        assert_eq!(lists.len(), 1);
        assert_eq!(lists.nearest(&[9, 9]), 0);
        assert_eq!(lists.query_distance(0, &[1.0, 1.0], &[1.0, 1.0]), 0.0);
        assert_eq!(SubLists::lists_for(10), 1);
        assert_eq!(SubLists::lists_for(usize::MAX), MAX_SUBLISTS);
    }
}
