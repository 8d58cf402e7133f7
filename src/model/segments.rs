//! Customer segments: online k-means seeded by k-means++.
//!
//! Life cycle:
//! 1. *Collecting.* The first `reservoir_size` vectors are kept in a reservoir. If the full
//!    reservoir holds fewer than `k` distinct points, collection continues with reservoir sampling
//!    (Algorithm R), so the reservoir stays a uniform sample of everything seen.
//! 2. *Seeding*, as soon as the reservoir is full and holds at least `k` distinct points:
//!    k-means++ picks `k` initial centroids from the reservoir, then up to 10 Lloyd iterations
//!    refine them; each centroid's update count starts at the number of reservoir points it owns,
//!    so the online phase continues the cluster means rather than restarting them. The reservoir
//!    is then dropped.
//! 3. *Online.* Each vector moves its nearest centroid towards itself by
//!    `η = max(1/n_c, min_rate)`: a running mean while `n_c` is small, then an exponential moving
//!    average, so centroids keep following drift.
//!
//! All randomness comes from a seeded `Pcg64` that is part of the persisted state, so replaying
//! the same vectors from the same state reproduces it bit for bit.
//!
//! Invariants (checked when a [`super::ModelState`] is decoded): the centroid matrix is `k × dim` in
//! standard (contiguous row-major) layout; `updates.len() == k`; the reservoir holds at most
//! `reservoir_size` vectors of `dim` components; `reservoir_size >= k`.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::{check_len, ModelConfig, ModelError};

/// Upper bound on Lloyd refinement passes over the reservoir at seeding time.
const LLOYD_ITERATIONS: usize = 10;

/// Online k-means over vectors of a fixed dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segments {
    k: usize,
    dim: usize,
    /// `k × dim`, standard layout; all zeros until seeded.
    centroids: Array2<f64>,
    /// Number of vectors that have moved each centroid (including its reservoir points).
    updates: Vec<u64>,
    seeded: bool,
    /// Seeding sample; emptied once seeded.
    reservoir: Vec<Vec<f64>>,
    reservoir_size: usize,
    /// Vectors observed while collecting; Algorithm R needs it for its replacement probability.
    seen: u64,
    min_rate: f64,
    rng: Pcg64,
}

/// Squared Euclidean distance. Four independent accumulators break the serial dependency of a
/// single running sum (which the compiler may not reassociate); measured ~2x faster.
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in a4.zip(b4) {
        for j in 0..4 {
            let d = x[j] - y[j];
            acc[j] += d * d;
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Whether `points` contains at least `k` distinct vectors (exact comparison).
fn has_k_distinct(points: &[Vec<f64>], k: usize) -> bool {
    let mut distinct: Vec<&[f64]> = Vec::with_capacity(k);
    for p in points {
        if distinct.len() >= k {
            break;
        }
        if !distinct.contains(&p.as_slice()) {
            distinct.push(p);
        }
    }
    distinct.len() >= k
}

impl Segments {
    /// Unseeded segments: `k` clusters of `dim`-component vectors, using `config`'s
    /// `reservoir_size`, `kmeans_min_rate` and `seed`.
    ///
    /// Never panics: a reservoir smaller than `k` is enlarged to `k`, `min_rate` is clamped to
    /// `[0, 1]` (NaN becomes 0), and with `k == 0` the segments simply never seed.
    pub fn new(k: usize, dim: usize, config: &ModelConfig) -> Self {
        let min_rate = if config.kmeans_min_rate.is_nan() {
            0.0
        } else {
            config.kmeans_min_rate.clamp(0.0, 1.0)
        };
        Segments {
            k,
            dim,
            centroids: Array2::zeros((k, dim)),
            updates: vec![0; k],
            seeded: false,
            reservoir: Vec::new(),
            reservoir_size: config.reservoir_size.max(k),
            seen: 0,
            min_rate,
            rng: Pcg64::seed_from_u64(config.seed),
        }
    }

    /// Number of segments.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of components of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether the centroids have been seeded (before that, nothing is assigned to a segment).
    pub fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// `Ok` when `z` has [`Self::dim`] components.
    pub fn check_dim(&self, z: &[f64]) -> Result<(), ModelError> {
        check_len(z.len(), self.dim)
    }

    /// The whole `k × dim` centroid matrix (zeros until seeded).
    pub fn centroids(&self) -> &Array2<f64> {
        &self.centroids
    }

    /// Centroid of segment `i` (zeros until seeded).
    ///
    /// # Panics
    /// If `i >= self.k()`, like slice indexing.
    pub fn centroid(&self, i: usize) -> &[f64] {
        self.row(i)
    }

    /// Number of vectors that have moved centroid `i`, counting the reservoir points it owned at
    /// seeding.
    ///
    /// # Panics
    /// If `i >= self.k()`, like slice indexing.
    pub fn updates(&self, i: usize) -> u64 {
        self.updates[i]
    }

    /// Row `i` of the centroid matrix as a slice.
    fn row(&self, i: usize) -> &[f64] {
        &self.data()[i * self.dim..(i + 1) * self.dim]
    }

    /// The centroid matrix as one row-major slice of `k * dim` values.
    fn data(&self) -> &[f64] {
        self.centroids
            .as_slice()
            .expect("centroids are built in standard layout and decode rejects any other")
    }

    /// Replaces the centroids (e.g. after a mini-batch refit) and marks the segments seeded.
    /// Update counts are kept, so the learning rate continues where it was.
    ///
    /// # Errors
    /// [`ModelError::Inconsistent`] if the matrix is not `k × dim` or holds non-finite values.
    pub fn set_centroids(&mut self, centroids: Array2<f64>) -> Result<(), ModelError> {
        if centroids.dim() != (self.k, self.dim) {
            return Err(ModelError::Inconsistent(format!(
                "centroid matrix is {}x{}, expected {}x{}",
                centroids.nrows(),
                centroids.ncols(),
                self.k,
                self.dim
            )));
        }
        if centroids.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Inconsistent(
                "centroid matrix holds non-finite values".into(),
            ));
        }
        self.centroids = centroids.as_standard_layout().into_owned();
        self.seeded = true;
        self.reservoir = Vec::new();
        Ok(())
    }

    /// Nearest centroid and its *squared* distance, ignoring whether the centroids are seeded.
    /// `None` only when `k == 0`. Allocation-free: this is the hot path.
    fn nearest_sq(&self, z: &[f64]) -> Option<(usize, f64)> {
        if self.dim == 0 {
            // Every centroid of a 0-dimensional space is the same point.
            return (self.k > 0).then_some((0, 0.0));
        }
        let mut rows = self.data().chunks_exact(self.dim).enumerate();
        let (_, first) = rows.next()?;
        let mut best = (0, sq_dist(first, z));
        for (c, row) in rows {
            let d = sq_dist(row, z);
            if d < best.1 {
                best = (c, d);
            }
        }
        Some(best)
    }

    /// Nearest segment to `z` and the Euclidean distance to its centroid; `None` until seeded.
    pub fn nearest(&self, z: &[f64]) -> Option<(usize, f64)> {
        debug_assert_eq!(z.len(), self.dim, "segments dimension mismatch");
        if !self.seeded {
            return None;
        }
        self.nearest_sq(z).map(|(c, d)| (c, d.sqrt()))
    }

    /// The `n` nearest segments to `z` (fewer if `n > k`), by ascending Euclidean distance, ties
    /// broken by segment index; empty until seeded.
    pub fn nearest_n(&self, z: &[f64], n: usize) -> Vec<(usize, f64)> {
        debug_assert_eq!(z.len(), self.dim, "segments dimension mismatch");
        if !self.seeded {
            return Vec::new();
        }
        let mut all: Vec<(usize, f64)> =
            (0..self.k).map(|c| (c, sq_dist(self.row(c), z))).collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        all.truncate(n);
        for entry in &mut all {
            entry.1 = entry.1.sqrt();
        }
        all
    }

    /// Learns from one vector and returns its segment: the nearest centroid and the Euclidean
    /// distance to it *after* it moved towards `z`.
    ///
    /// While unseeded, `z` goes into the reservoir and the result is `None`, except on the call
    /// that completes seeding, which returns `z`'s nearest segment among the fresh centroids
    /// (`z` already took part in seeding, so no extra online step is made).
    ///
    /// A `z` of the wrong length trips a `debug_assert!`; in release it is ignored (`None`).
    pub fn observe(&mut self, z: &[f64]) -> Option<(usize, f64)> {
        debug_assert_eq!(z.len(), self.dim, "segments dimension mismatch");
        if z.len() != self.dim {
            return None;
        }
        if !self.seeded {
            self.collect(z);
            if self.try_seed() {
                return self.nearest(z);
            }
            return None;
        }
        let (c, _) = self.nearest_sq(z)?;
        self.updates[c] = self.updates[c].saturating_add(1);
        let eta = (1.0 / self.updates[c] as f64).max(self.min_rate);
        let mut row = self.centroids.row_mut(c);
        for (m, &v) in row.iter_mut().zip(z) {
            *m += eta * (v - *m);
        }
        Some((c, sq_dist(self.row(c), z).sqrt()))
    }

    /// Adds `z` to the reservoir: appended while there is room, otherwise (Algorithm R) it
    /// replaces a uniformly chosen slot with probability `reservoir_size / seen`.
    fn collect(&mut self, z: &[f64]) {
        self.seen = self.seen.saturating_add(1);
        if self.reservoir.len() < self.reservoir_size {
            self.reservoir.push(z.to_vec());
            return;
        }
        let slot = self.rng.gen_range(0..self.seen);
        if let Ok(slot) = usize::try_from(slot) {
            if let Some(kept) = self.reservoir.get_mut(slot) {
                kept.copy_from_slice(z);
            }
        }
    }

    /// Seeds the centroids if the reservoir is full and varied enough; returns whether it did.
    fn try_seed(&mut self) -> bool {
        if self.k == 0
            || self.reservoir.len() < self.reservoir_size
            || !has_k_distinct(&self.reservoir, self.k)
        {
            return false;
        }
        let points = std::mem::take(&mut self.reservoir);
        self.kmeans_plus_plus(&points);
        self.lloyd(&points);
        self.seeded = true;
        true
    }

    /// k-means++: the first centroid is a uniform pick, each next one is drawn with probability
    /// proportional to its squared distance to the nearest centroid chosen so far.
    fn kmeans_plus_plus(&mut self, points: &[Vec<f64>]) {
        let first = self.rng.gen_range(0..points.len());
        self.centroids
            .row_mut(0)
            .assign(&ndarray::aview1(&points[first]));
        let mut d2: Vec<f64> = points.iter().map(|p| sq_dist(p, self.row(0))).collect();
        for c in 1..self.k {
            let total: f64 = d2.iter().sum();
            let mut target = self.rng.gen::<f64>() * total;
            let mut pick = None;
            for (i, &d) in d2.iter().enumerate() {
                if d > 0.0 {
                    pick = Some(i);
                    if target < d {
                        break;
                    }
                    target -= d;
                }
            }
            // With >= k distinct points some d2 is positive, unless the differences underflow
            // when squared or are NaN; a uniform pick then keeps seeding well-defined.
            let pick = match pick {
                Some(i) => i,
                None => self.rng.gen_range(0..points.len()),
            };
            self.centroids
                .row_mut(c)
                .assign(&ndarray::aview1(&points[pick]));
            for (d, p) in d2.iter_mut().zip(points) {
                *d = d.min(sq_dist(p, self.row(c)));
            }
        }
    }

    /// Lloyd refinement on the reservoir; leaves `updates` = points owned per centroid.
    fn lloyd(&mut self, points: &[Vec<f64>]) {
        let mut owner = vec![usize::MAX; points.len()];
        let mut counts = vec![0u64; self.k];
        for _ in 0..LLOYD_ITERATIONS {
            let mut changed = false;
            for (o, p) in owner.iter_mut().zip(points) {
                let c = self.nearest_sq(p).map_or(0, |(c, _)| c);
                changed |= *o != c;
                *o = c;
            }
            counts.fill(0);
            for &o in &owner {
                counts[o] += 1;
            }
            if !changed {
                break;
            }
            let mut sums = Array2::<f64>::zeros((self.k, self.dim));
            for (&o, p) in owner.iter().zip(points) {
                sums.row_mut(o).scaled_add(1.0, &ndarray::aview1(p));
            }
            for (c, &n) in counts.iter().enumerate() {
                // An emptied cluster keeps its centroid; the online phase can still claim it.
                if n > 0 {
                    let mean = sums.row(c).mapv(|s| s / n as f64);
                    self.centroids.row_mut(c).assign(&mean);
                }
            }
        }
        self.updates = counts;
    }

    /// Checks the internal invariants of decoded segments.
    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        let (k, dim, cap) = (self.k, self.dim, self.reservoir_size);
        let (rows, cols) = self.centroids.dim();
        let wrong_vector = self.reservoir.iter().position(|v| v.len() != dim);
        let problem = if k > 4096 || dim > 4096 || cap > 1_000_000 {
            format!("k = {k}, dim = {dim}, reservoir = {cap} exceed the supported bounds")
        } else if self.centroids.iter().any(|v| !v.is_finite()) {
            "centroid matrix holds non-finite values".to_string()
        } else if (rows, cols) != (k, dim) {
            format!("centroid matrix is {rows}x{cols}, expected {k}x{dim}")
        } else if !self.centroids.is_standard_layout() {
            "centroid matrix is not contiguous row-major".to_string()
        } else if self.updates.len() != k {
            let n = self.updates.len();
            format!("segments have {n} update counters, expected {k}")
        } else if cap < k {
            format!("reservoir capacity {cap} is below k = {k}")
        } else if self.reservoir.len() > cap {
            let n = self.reservoir.len();
            format!("reservoir holds {n} vectors, capacity is {cap}")
        } else if let Some(i) = wrong_vector {
            let n = self.reservoir[i].len();
            format!("reservoir vector {i} has {n} dimensions, expected {dim}")
        } else if !(0.0..=1.0).contains(&self.min_rate) {
            let r = self.min_rate;
            format!("k-means min rate is {r}, expected a value in [0, 1]")
        } else {
            return Ok(());
        };
        Err(ModelError::Inconsistent(problem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelState;
    use rand_distr::{Distribution, Normal};

    const DIM: usize = 5;

    /// Four well-separated blob means in 5-D.
    fn blob_means() -> Vec<Vec<f64>> {
        (0..4)
            .map(|b| {
                let mut m = vec![0.0; DIM];
                if b > 0 {
                    m[b - 1] = 10.0;
                }
                m
            })
            .collect()
    }

    /// A point from blob `b` of `means`, with per-coordinate noise of sd 0.5.
    fn sample(rng: &mut Pcg64, means: &[Vec<f64>]) -> Vec<f64> {
        let noise = Normal::new(0.0, 0.5).expect("0.5 is a valid standard deviation");
        let b = rng.gen_range(0..means.len());
        means[b].iter().map(|m| m + noise.sample(rng)).collect()
    }

    fn config(k: usize) -> ModelConfig {
        ModelConfig {
            segments: k,
            ..ModelConfig::default()
        }
    }

    /// Every blob mean maps to a distinct segment whose centroid is within `tol` of it.
    fn assert_recovers(s: &Segments, means: &[Vec<f64>], tol: f64) {
        let mut owners: Vec<usize> = means
            .iter()
            .map(|m| {
                let (c, d) = s.nearest(m).expect("seeded");
                assert!(d < tol, "blob {m:?}: centroid {:?} at {d}", s.centroid(c));
                c
            })
            .collect();
        owners.sort_unstable();
        owners.dedup();
        assert_eq!(owners.len(), means.len(), "two blobs share a centroid");
    }

    #[test]
    fn seeds_when_reservoir_fills_and_recovers_blobs() {
        let mut rng = Pcg64::seed_from_u64(1);
        let means = blob_means();
        let mut s = Segments::new(4, DIM, &config(4));
        for i in 0..512 {
            let out = s.observe(&sample(&mut rng, &means));
            // The 512th vector fills the reservoir and triggers seeding.
            assert_eq!(out.is_some(), i == 511, "observation {i}");
        }
        assert!(s.is_seeded() && s.reservoir.is_empty());
        assert_eq!((0..4).map(|c| s.updates(c)).sum::<u64>(), 512);
        assert_recovers(&s, &means, 0.3);
        for _ in 0..4000 {
            let z = sample(&mut rng, &means);
            let (c, d) = s.observe(&z).expect("seeded");
            // The distance is measured after the centroid moved, and it stays the nearest.
            assert!((d - sq_dist(s.centroid(c), &z).sqrt()).abs() < 1e-12);
            let ranked = s.nearest_n(&z, 10);
            assert_eq!(ranked.len(), 4);
            assert!(ranked.windows(2).all(|w| w[0].1 <= w[1].1));
            assert_eq!(ranked[0], (c, d));
            assert_eq!(s.nearest_n(&z, 2), ranked[..2]);
        }
        assert_recovers(&s, &means, 0.3);
    }

    #[test]
    fn centroids_follow_drift() {
        let mut rng = Pcg64::seed_from_u64(2);
        let means = blob_means();
        let mut s = Segments::new(4, DIM, &config(4));
        for _ in 0..4000 {
            s.observe(&sample(&mut rng, &means));
        }
        let shifted: Vec<Vec<f64>> = means
            .iter()
            .map(|m| m.iter().map(|v| v + 2.0).collect())
            .collect();
        let before: Vec<usize> = means
            .iter()
            .map(|m| s.nearest(m).expect("seeded").0)
            .collect();
        for _ in 0..4000 {
            s.observe(&sample(&mut rng, &shifted));
        }
        assert_recovers(&s, &shifted, 0.3);
        // Each centroid followed its own blob.
        let after: Vec<usize> = shifted
            .iter()
            .map(|m| s.nearest(m).expect("seeded").0)
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn waits_for_k_distinct_points_then_samples() {
        let cfg = ModelConfig {
            segments: 2,
            reservoir_size: 16,
            ..ModelConfig::default()
        };
        let mut s = Segments::new(2, 2, &cfg);
        for _ in 0..1000 {
            assert_eq!(s.observe(&[1.0, 1.0]), None);
        }
        assert!(!s.is_seeded());
        assert_eq!(s.reservoir.len(), 16);
        // Algorithm R keeps admitting new points with probability 16/seen.
        let mut i = 0.0;
        while s.observe(&[i, -i]).is_none() {
            i += 1.0;
            assert!(i < 10_000.0, "never seeded");
        }
        assert!(s.is_seeded());
    }

    #[test]
    fn unseeded_and_wrong_length_queries() {
        let s = Segments::new(8, 52, &ModelConfig::default());
        assert_eq!(s.nearest(&[0.0; 52]), None);
        assert!(s.nearest_n(&[0.0; 52], 3).is_empty());
        assert_eq!(s.centroid(7), &[0.0; 52][..]);
        assert_eq!(
            s.check_dim(&[0.0; 3]).unwrap_err().to_string(),
            "vector has 3 dimensions; the model expects 52"
        );
        // k == 0 never seeds and never panics.
        let mut empty = Segments::new(0, 2, &ModelConfig::default());
        for _ in 0..600 {
            assert_eq!(empty.observe(&[1.0, 2.0]), None);
        }
    }

    #[test]
    fn decode_rejects_bad_centroid_shape() {
        let mut state = ModelState::new(52, &ModelConfig::default());
        state.segments.centroids = Array2::zeros((3, 5));
        let err = ModelState::decode(&state.encode()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model state is inconsistent: centroid matrix is 3x5, expected 8x52"
        );
        let mut state = ModelState::new(4, &ModelConfig::default());
        state.segments.reservoir.push(vec![1.0; 3]);
        let err = ModelState::decode(&state.encode()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model state is inconsistent: reservoir vector 0 has 3 dimensions, expected 4"
        );
    }
}
