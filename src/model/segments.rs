//! Customer segments: k-means fitted on the customers as they are *now*.
//!
//! Segments are served as of the watermark: a customer's segment is the centroid nearest to
//! their feature vector as of now. So they are fitted on exactly that population: a uniform
//! sample of customers (the writer keeps it, see `docs/model.md`), each evaluated as of the
//! watermark, standardised by *the sample's own* mean and variance, clustered by k-means++
//! then Lloyd. Fitting on the vectors of events as they happen (recency 0, the active
//! customers over-represented), as an online k-means would, gives other clusters than the
//! ones the segments are asked about.
//!
//! Life cycle:
//! 1. *Unseeded* until the writer has counted `reservoir_size` events and the sample holds at
//!    least `k` distinct vectors; nothing is assigned to a segment.
//! 2. *Fitted* ([`Segments::fit`]): the writer refits on a schedule of events
//!    ([`Segments::count_event`]): the gap between fits grows with the events seen, from
//!    `reservoir_size` up to [`MAX_FIT_GAP`]. Each fit standardises the sample afresh, runs
//!    Lloyd from the previous centroids and (at the first fit and every [`FRESH_EVERY`]th)
//!    from greedy k-means++ starts (more for a small sample), keeps the lowest inertia, and renumbers the winner so that each
//!    segment keeps the id of the previous centroid nearest to it (ids stay stable while the
//!    clusters do).
//!
//! All randomness comes from a seeded `Pcg64` that is part of the persisted state, so fitting
//! the same samples from the same state reproduces it bit for bit.
//!
//! Invariants (checked when a [`super::ModelState`] is decoded): the centroid matrix is `k × dim`
//! in standard (contiguous row-major) layout; `members.len() == k`; the standardisation has
//! `dim` components.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::{ModelConfig, ModelError, Scaler};

/// Upper bound on Lloyd passes from the previous centroids (they are near a fixed point
/// unless the population moved).
pub const WARM_ITERATIONS: usize = 10;
/// Upper bound on Lloyd passes from a k-means++ start.
pub const FRESH_ITERATIONS: usize = 30;
/// Every this many fits (and at the first), fresh k-means++ starts compete with the previous
/// centroids, so that the segments do not stay in a poor local optimum.
pub const FRESH_EVERY: u64 = 2;
/// Fresh starts per such fit: `FRESH_POINTS / sample size`, between 1 and [`MAX_FRESH_STARTS`]
/// (a small sample is cheap to cluster, and more prone to poor local optima).
pub const FRESH_POINTS: usize = 4096;
/// Most fresh starts per fit.
pub const MAX_FRESH_STARTS: usize = 8;
/// Most Lloyd passes per start of [`Segments::refit`].
pub const THOROUGH_ITERATIONS: usize = 100;
/// Most events between two fits.
pub const MAX_FIT_GAP: u64 = 100_000;

/// k-means segments over vectors of a fixed dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segments {
    k: usize,
    dim: usize,
    /// `k × dim`, standard layout, in the space standardised by `scale`; zeros until seeded.
    centroids: Array2<f64>,
    /// Sample vectors each centroid owned at the last fit.
    members: Vec<u64>,
    seeded: bool,
    /// The standardisation of the last fit's sample (mean and standard deviation of each
    /// dimension).
    scale: Scaler,
    /// Events counted towards the fit schedule.
    events: u64,
    /// Event count at which the next fit is due.
    next_fit: u64,
    /// Fewest events between two fits (the config's `reservoir_size`, at least `k`).
    min_gap: u64,
    /// Fits so far.
    fits: u64,
    rng: Pcg64,
}

/// Squared Euclidean distance. Four independent accumulators break the serial dependency of a
/// single running sum (which the compiler may not reassociate); measured ~2x faster.
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    sq_dist_until(a, b, f64::INFINITY)
}

/// [`sq_dist`], but stopping once the partial sum reaches `bound`: then it returns that partial
/// sum (some value ≥ `bound`), otherwise exactly what `sq_dist` returns. Every term is
/// non-negative and rounding is monotone, so a partial sum never exceeds the full one: a
/// nearest-row search that skips a row whose partial sum reached the best so far picks the
/// same row as one that computes every distance, with the same distance, in a fraction of the
/// time (Lloyd's iterations are most of a segment fit).
fn sq_dist_until(a: &[f64], b: &[f64], bound: f64) -> f64 {
    /// Chunks of four between two checks of the bound.
    const CHECK_EVERY: usize = 4;
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (n, (x, y)) in a4.zip(b4).enumerate() {
        for j in 0..4 {
            let d = x[j] - y[j];
            acc[j] += d * d;
        }
        if n % CHECK_EVERY == CHECK_EVERY - 1 {
            let partial = (acc[0] + acc[1]) + (acc[2] + acc[3]);
            if partial >= bound {
                return partial;
            }
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

/// The row of the row-major `rows × dim` matrix `flat` nearest to `z` and its squared
/// distance (the first of equals); `(0, ∞)` for a matrix without rows. The one nearest-centroid
/// search of this module: assignment, Lloyd and inertia all use it.
fn nearest_in(flat: &[f64], dim: usize, z: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (i, row) in flat.chunks_exact(dim.max(1)).enumerate() {
        let d = sq_dist_until(row, z, best.1);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// The row of `c` nearest to `p` and its squared distance (the first of equals); `(0, ∞)` for
/// a matrix without rows.
pub(crate) fn nearest_row(c: &Array2<f64>, p: &[f64]) -> (usize, f64) {
    match c.as_slice() {
        Some(flat) => nearest_in(flat, c.ncols(), p),
        // Every matrix here is built in standard layout; a view of another one is copied.
        None => nearest_in(&c.iter().copied().collect::<Vec<f64>>(), c.ncols(), p),
    }
}

/// Sum of squared distances of `points` to their nearest row of `c`.
pub(crate) fn inertia(c: &Array2<f64>, points: &[Vec<f64>]) -> f64 {
    points.iter().map(|p| nearest_row(c, p).1).sum()
}

/// Greedy k-means++ seeding over `points` (Arthur & Vassilvitskii 2007, with the greedy
/// choice scikit-learn makes): the first centroid a uniform pick; for each next one,
/// `2 + ln k` candidates are drawn with probability proportional to their squared distance to
/// the nearest centroid chosen so far, and the one that lowers the total most is kept.
/// `None` if there are fewer points than `k` or `k == 0`.
pub(crate) fn kmeans_pp(points: &[Vec<f64>], k: usize, rng: &mut Pcg64) -> Option<Array2<f64>> {
    if points.len() < k || k == 0 {
        return None;
    }
    let dim = points[0].len();
    let trials = 2 + (k as f64).ln() as usize;
    let mut c = Array2::zeros((k, dim));
    let first = rng.gen_range(0..points.len());
    c.row_mut(0).assign(&ndarray::aview1(&points[first]));
    let mut d2: Vec<f64> = points.iter().map(|p| sq_dist(p, &points[first])).collect();
    for i in 1..k {
        let total: f64 = d2.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let mut target = rng.gen::<f64>() * total;
            let mut pick = None;
            for (j, &d) in d2.iter().enumerate() {
                if d > 0.0 {
                    pick = Some(j);
                    if target < d {
                        break;
                    }
                    target -= d;
                }
            }
            // With >= k distinct points some d2 is positive, unless the differences underflow
            // when squared or are NaN; a uniform pick then keeps seeding well-defined.
            let pick = pick.unwrap_or_else(|| rng.gen_range(0..points.len()));
            let next: Vec<f64> = d2
                .iter()
                .zip(points)
                .map(|(d, p)| d.min(sq_dist_until(p, &points[pick], *d)))
                .collect();
            let potential: f64 = next.iter().sum();
            if best.as_ref().is_none_or(|(b, _, _)| potential < *b) {
                best = Some((potential, pick, next));
            }
        }
        let (_, pick, next) = best?;
        c.row_mut(i).assign(&ndarray::aview1(&points[pick]));
        d2 = next;
    }
    Some(c)
}

/// Lloyd's algorithm from `c` for at most `iterations` passes (stops when no point changes
/// owner). Returns the points each centroid owns; a centroid that owns none keeps its place.
pub(crate) fn lloyd(c: &mut Array2<f64>, points: &[Vec<f64>], iterations: usize) -> Vec<u64> {
    let (k, dim) = c.dim();
    let mut flat: Vec<f64> = c.iter().copied().collect();
    let mut owner = vec![usize::MAX; points.len()];
    let mut counts = vec![0u64; k];
    let mut sums = vec![0.0; k * dim];
    for _ in 0..iterations.max(1) {
        let mut changed = false;
        for (o, p) in owner.iter_mut().zip(points) {
            let (nearest, _) = nearest_in(&flat, dim, p);
            changed |= *o != nearest;
            *o = nearest;
        }
        counts.fill(0);
        for &o in &owner {
            counts[o] += 1;
        }
        if !changed || dim == 0 {
            break;
        }
        sums.fill(0.0);
        for (&o, p) in owner.iter().zip(points) {
            for (s, x) in sums[o * dim..(o + 1) * dim].iter_mut().zip(p) {
                *s += x;
            }
        }
        for (i, &n) in counts.iter().enumerate() {
            if n > 0 {
                for (cv, s) in flat[i * dim..(i + 1) * dim]
                    .iter_mut()
                    .zip(&sums[i * dim..])
                {
                    *cv = s / n as f64;
                }
            }
        }
    }
    for (cv, v) in c.iter_mut().zip(flat) {
        *cv = v;
    }
    counts
}

/// The order of `new`'s rows that keeps ids: greedily, the closest (new, old) pair of rows
/// first, each new row takes the id of the old row it is paired with. `order[old] = new`.
fn match_ids(new: &Array2<f64>, old: &Array2<f64>) -> Vec<usize> {
    let k = new.nrows();
    let mut pairs: Vec<(f64, usize, usize)> = Vec::with_capacity(k * k);
    for (n, nr) in new.rows().into_iter().enumerate() {
        for (o, or) in old.rows().into_iter().enumerate() {
            let d: f64 = nr
                .iter()
                .zip(or.iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            pairs.push((d, n, o));
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut taken_new, mut order) = (vec![false; k], vec![usize::MAX; k]);
    for (_, n, o) in pairs {
        if !taken_new[n] && order[o] == usize::MAX {
            taken_new[n] = true;
            order[o] = n;
        }
    }
    order
}

impl Segments {
    /// Unseeded segments: `k` clusters of `dim`-component vectors, first fitted after
    /// `config.reservoir_size` events (at least `k`), using `config.seed`.
    ///
    /// Never panics: with `k == 0` the segments simply never seed.
    pub fn new(k: usize, dim: usize, config: &ModelConfig) -> Self {
        let rng = Pcg64::seed_from_u64(config.seed);
        let mut segments = Segments::due_now(k, dim, config.reservoir_size, rng);
        segments.next_fit = segments.min_gap;
        segments
    }

    /// Unfitted segments whose first fit is due at the next counted event (segments converted
    /// from an earlier build's state, which kept other centroids).
    pub(crate) fn due_now(k: usize, dim: usize, min_gap: usize, rng: Pcg64) -> Self {
        Segments {
            k,
            dim,
            centroids: Array2::zeros((k, dim)),
            members: vec![0; k],
            seeded: false,
            scale: Scaler::new(dim),
            events: 0,
            next_fit: 1,
            min_gap: min_gap.max(k).max(1) as u64,
            fits: 0,
            rng,
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

    /// Whether the centroids have been fitted (before that, nothing is assigned to a segment).
    pub fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// Events counted so far ([`Self::count_event`]: the writer counts every applied event).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Fits so far.
    pub fn fits(&self) -> u64 {
        self.fits
    }

    /// `Ok` when `x` has [`Self::dim`] components.
    #[cfg(any(test, feature = "testing"))]
    pub fn check_dim(&self, x: &[f64]) -> Result<(), ModelError> {
        super::check_len(x.len(), self.dim)
    }

    /// The standardisation of the last fit's sample: segments are distances in this space.
    #[cfg(any(feature = "cli", feature = "testing"))]
    pub fn scale(&self) -> &Scaler {
        &self.scale
    }

    /// Sample vectors that segment `i` owned at the last fit.
    ///
    /// # Panics
    /// If `i >= self.k()`, like slice indexing.
    #[cfg(any(test, feature = "testing"))]
    pub fn members(&self, i: usize) -> u64 {
        self.members[i]
    }

    /// Centroid of segment `i` in raw feature units (the layout of
    /// [`crate::features::vector`]); zeros until seeded.
    ///
    /// # Panics
    /// If `i >= self.k()`, like slice indexing.
    pub fn centroid(&self, i: usize) -> Vec<f64> {
        if !self.seeded {
            return vec![0.0; self.dim];
        }
        self.scale.inverse(self.row(i))
    }

    /// Centroid of segment `i` in the segments' standardised space ([`Self::scale`]); zeros
    /// until seeded.
    ///
    /// # Panics
    /// If `i >= self.k()`, like slice indexing.
    #[cfg(any(feature = "cli", feature = "testing"))]
    pub fn scaled_centroid(&self, i: usize) -> &[f64] {
        self.row(i)
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

    /// Nearest centroid to the standardised `z` and its *squared* distance. `None` only when
    /// `k == 0`. Allocation-free.
    fn nearest_sq(&self, z: &[f64]) -> Option<(usize, f64)> {
        if self.dim == 0 {
            // Every centroid of a 0-dimensional space is the same point.
            return (self.k > 0).then_some((0, 0.0));
        }
        (self.k > 0).then(|| nearest_in(self.data(), self.dim, z))
    }

    /// The segment of the raw feature vector `x`: the nearest centroid and the Euclidean
    /// distance to it in the segments' standardised space; `None` until seeded.
    ///
    /// A vector of the wrong length trips a `debug_assert!`; in release it gets `None`.
    pub fn assign(&self, x: &[f64]) -> Option<(usize, f64)> {
        debug_assert_eq!(x.len(), self.dim, "segments dimension mismatch");
        if !self.seeded || x.len() != self.dim {
            return None;
        }
        let z = self.scale.transform_vec(x);
        self.nearest_sq(&z).map(|(c, d)| (c, d.sqrt()))
    }

    /// The `n` nearest segments to the raw vector `x` (fewer if `n > k`), by ascending distance,
    /// ties broken by segment index; empty until seeded.
    pub fn assign_n(&self, x: &[f64], n: usize) -> Vec<(usize, f64)> {
        debug_assert_eq!(x.len(), self.dim, "segments dimension mismatch");
        if !self.seeded || x.len() != self.dim {
            return Vec::new();
        }
        let z = self.scale.transform_vec(x);
        let mut all: Vec<(usize, f64)> =
            (0..self.k).map(|c| (c, sq_dist(self.row(c), &z))).collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        all.truncate(n);
        for entry in &mut all {
            entry.1 = entry.1.sqrt();
        }
        all
    }

    /// Counts one event towards the fit schedule; returns whether a fit is due.
    pub fn count_event(&mut self) -> bool {
        self.events = self.events.saturating_add(1);
        self.k > 0 && self.events >= self.next_fit
    }

    /// Whether a fit is due (see [`Self::count_event`]).
    #[cfg(any(test, feature = "testing"))]
    pub fn fit_due(&self) -> bool {
        self.k > 0 && self.events >= self.next_fit
    }

    /// Fits the segments to `points`, raw feature vectors of a uniform sample of customers as
    /// of now, and schedules the next fit. Returns false (and tries again a little later) if
    /// the sample has fewer than `k` distinct vectors. Vectors of the wrong length are ignored.
    pub fn fit(&mut self, points: &[Vec<f64>]) -> bool {
        self.fit_with(points, false, None)
    }

    /// Like [`Self::fit`], but always with `MAX_FRESH_STARTS` (8) k-means++ starts and Lloyd run
    /// to convergence: for an explicit re-segmentation, where the time is the caller's.
    pub fn refit(&mut self, points: &[Vec<f64>]) -> bool {
        self.fit_with(points, true, None)
    }

    /// Like [`Self::refit`], but from fresh k-means++ starts only, drawn by a generator seeded
    /// with `seed`: the fit depends on `points` alone, not on the centroids before it (which
    /// only decide the segments' numbering) nor on the fits before it. What an erase that
    /// retrains runs, so that an erased customer's influence on the centroids goes with them.
    pub fn refit_fresh(&mut self, points: &[Vec<f64>], seed: u64) -> bool {
        self.fit_with(points, true, Some(seed))
    }

    fn fit_with(&mut self, points: &[Vec<f64>], thorough: bool, fresh: Option<u64>) -> bool {
        let points: Vec<Vec<f64>> = points
            .iter()
            .filter(|p| p.len() == self.dim && p.iter().all(|v| v.is_finite()))
            .cloned()
            .collect();
        if self.k == 0 || !has_k_distinct(&points, self.k) {
            self.next_fit = self.events.saturating_add(self.min_gap);
            return false;
        }
        let mut scale = Scaler::new(self.dim);
        for p in &points {
            scale.update(p);
        }
        let z: Vec<Vec<f64>> = points.iter().map(|p| scale.transform_vec(p)).collect();
        // The previous centroids, moved into the new standardisation.
        let previous = self.seeded.then(|| {
            let mut c = Array2::zeros((self.k, self.dim));
            for i in 0..self.k {
                let raw = self.scale.inverse(self.row(i));
                c.row_mut(i)
                    .assign(&ndarray::aview1(&scale.transform_vec(&raw)));
            }
            c
        });
        let (warm, fresh_iterations) = match thorough {
            true => (THOROUGH_ITERATIONS, THOROUGH_ITERATIONS),
            false => (WARM_ITERATIONS, FRESH_ITERATIONS),
        };
        let mut starts: Vec<(Array2<f64>, usize)> = match fresh {
            Some(_) => Vec::new(),
            None => previous.iter().map(|c| (c.clone(), warm)).collect(),
        };
        let mut seeded = fresh.map(Pcg64::seed_from_u64);
        if thorough || starts.is_empty() || self.fits % FRESH_EVERY == 0 {
            let n = match thorough {
                true => MAX_FRESH_STARTS,
                false => (FRESH_POINTS / z.len().max(1)).clamp(1, MAX_FRESH_STARTS),
            };
            let rng = seeded.as_mut().unwrap_or(&mut self.rng);
            for _ in 0..n {
                starts.extend(kmeans_pp(&z, self.k, rng).map(|c| (c, fresh_iterations)));
            }
        }
        let mut best: Option<(f64, Array2<f64>, Vec<u64>)> = None;
        for (mut c, iterations) in starts {
            let members = lloyd(&mut c, &z, iterations);
            let cost = inertia(&c, &z);
            if best.as_ref().is_none_or(|(b, _, _)| cost < *b) {
                best = Some((cost, c, members));
            }
        }
        let Some((_, fitted, members)) = best else {
            return false;
        };
        let order = match &previous {
            Some(old) => match_ids(&fitted, old),
            None => (0..self.k).collect(),
        };
        let mut centroids = Array2::zeros((self.k, self.dim));
        for (id, &from) in order.iter().enumerate() {
            centroids.row_mut(id).assign(&fitted.row(from));
            self.members[id] = members[from];
        }
        self.centroids = centroids;
        self.scale = scale;
        self.seeded = true;
        self.fits = self.fits.saturating_add(1);
        let gap = (self.events / 2)
            .max(self.min_gap)
            .min(MAX_FIT_GAP.max(self.min_gap));
        self.next_fit = self.events.saturating_add(gap);
        true
    }

    /// The last fit: the centroids (row-major, in the fit's standardisation), the sample
    /// vectors each owned, that standardisation, and whether there has been a fit.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn fit_parts(&self) -> (&[f64], &[u64], &Scaler, bool) {
        (self.data(), &self.members, &self.scale, self.seeded)
    }

    /// Replaces the last fit (see [`Self::fit_parts`]), keeping the fit schedule; returns
    /// false, changing nothing, for parts of other sizes or non-finite centroids.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn set_fit(
        &mut self,
        (c, members, scale, seeded): (&[f64], &[u64], &Scaler, bool),
    ) -> bool {
        if c.len() != self.k * self.dim
            || members.len() != self.k
            || scale.dim() != self.dim
            || c.iter().any(|v| !v.is_finite())
        {
            return false;
        }
        let Ok(centroids) = Array2::from_shape_vec((self.k, self.dim), c.to_vec()) else {
            return false;
        };
        self.centroids = centroids;
        self.members.copy_from_slice(members);
        self.scale = scale.clone();
        self.seeded = seeded;
        true
    }

    /// Checks the internal invariants of decoded segments.
    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        let (k, dim) = (self.k, self.dim);
        let (rows, cols) = self.centroids.dim();
        let problem = if k > 4096 || dim > 4096 {
            format!("k = {k}, dim = {dim} exceed the supported bounds")
        } else if self.centroids.iter().any(|v| !v.is_finite()) {
            "centroid matrix holds non-finite values".to_string()
        } else if (rows, cols) != (k, dim) {
            format!("centroid matrix is {rows}x{cols}, expected {k}x{dim}")
        } else if !self.centroids.is_standard_layout() {
            "centroid matrix is not contiguous row-major".to_string()
        } else if self.members.len() != k {
            let n = self.members.len();
            format!("segments have {n} member counters, expected {k}")
        } else if self.scale.dim() != dim {
            let n = self.scale.dim();
            format!("segment standardisation has {n} dimensions, expected {dim}")
        } else {
            self.scale.validate()?;
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

    #[test]
    fn the_bounded_distance_picks_what_full_distances_pick() {
        let mut rng = Pcg64::seed_from_u64(7);
        for dim in [1usize, 3, 4, 15, 16, 17, 52, 70] {
            let rows = 9;
            let flat: Vec<f64> = (0..rows * dim).map(|_| rng.gen_range(-3.0..3.0)).collect();
            for _ in 0..200 {
                let z: Vec<f64> = (0..dim).map(|_| rng.gen_range(-3.0..3.0)).collect();
                let full = flat
                    .chunks_exact(dim)
                    .enumerate()
                    .map(|(i, r)| (i, sq_dist(r, &z)))
                    .fold(
                        (0, f64::INFINITY),
                        |b, (i, d)| if d < b.1 { (i, d) } else { b },
                    );
                let (i, d) = nearest_in(&flat, dim, &z);
                assert_eq!((i, d.to_bits()), (full.0, full.1.to_bits()), "dim {dim}");
                // A partial sum that stopped is at least the bound, never below the distance.
                for r in flat.chunks_exact(dim) {
                    let exact = sq_dist(r, &z);
                    let bounded = sq_dist_until(r, &z, d);
                    assert!(bounded == exact || (bounded >= d && bounded <= exact));
                }
            }
        }
    }

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

    /// `n` points from the blobs of `means` (uniformly), with per-coordinate noise of sd 0.5.
    fn sample(rng: &mut Pcg64, means: &[Vec<f64>], n: usize) -> Vec<Vec<f64>> {
        let noise = Normal::new(0.0, 0.5).expect("0.5 is a valid standard deviation");
        (0..n)
            .map(|_| {
                let b = rng.gen_range(0..means.len());
                means[b].iter().map(|m| m + noise.sample(rng)).collect()
            })
            .collect()
    }

    fn config(k: usize, first: usize) -> ModelConfig {
        ModelConfig {
            segments: k,
            reservoir_size: first,
            ..ModelConfig::default()
        }
    }

    /// Every blob mean maps to a distinct segment whose centroid is within `tol` of it (raw
    /// units); returns the segment of each blob.
    fn assert_recovers(s: &Segments, means: &[Vec<f64>], tol: f64) -> Vec<usize> {
        let owners: Vec<usize> = means
            .iter()
            .map(|m| {
                let (c, _) = s.assign(m).expect("seeded");
                let d = sq_dist(&s.centroid(c), m).sqrt();
                assert!(d < tol, "blob {m:?}: centroid {:?} at {d}", s.centroid(c));
                c
            })
            .collect();
        let mut distinct = owners.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), means.len(), "two blobs share a centroid");
        owners
    }

    #[test]
    fn first_fit_after_the_configured_events_recovers_blobs() {
        let mut rng = Pcg64::seed_from_u64(1);
        let means = blob_means();
        let mut s = Segments::new(4, DIM, &config(4, 100));
        for i in 1..=100 {
            assert_eq!(s.count_event(), i == 100, "event {i}");
        }
        assert_eq!(
            s.assign(&means[0]),
            None,
            "nothing is assigned before the first fit"
        );
        assert!(s.fit(&sample(&mut rng, &means, 400)));
        assert!(s.is_seeded() && !s.fit_due());
        assert_eq!((0..4).map(|c| s.members(c)).sum::<u64>(), 400);
        assert_recovers(&s, &means, 0.3);
        let x = &means[2];
        let ranked = s.assign_n(x, 10);
        assert_eq!(ranked.len(), 4);
        assert!(ranked.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(Some(ranked[0]), s.assign(x));
        assert_eq!(s.assign_n(x, 2), ranked[..2]);
    }

    /// The centroids in a canonical order, bit for bit.
    fn canonical(s: &Segments) -> Vec<Vec<u64>> {
        let mut rows: Vec<Vec<u64>> = (0..s.k())
            .map(|i| s.centroid(i).iter().map(|v| v.to_bits()).collect())
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn a_fresh_refit_depends_on_the_points_alone() {
        // Two histories: fitted on different blobs, with different generators.
        let mut rng = Pcg64::seed_from_u64(5);
        let means = blob_means();
        let shifted: Vec<Vec<f64>> = means
            .iter()
            .map(|m| m.iter().map(|v| v * -3.0 + 1.0).collect())
            .collect();
        let mut a = Segments::new(4, DIM, &config(4, 10));
        let mut b = Segments::new(
            4,
            DIM,
            &ModelConfig {
                seed: 99,
                ..config(4, 10)
            },
        );
        assert!(a.fit(&sample(&mut rng, &means, 300)));
        assert!(b.fit(&sample(&mut rng, &shifted, 300)));
        // Points without clusters: k-means has many local optima, so where it starts matters.
        let q: Vec<Vec<f64>> = (0..400)
            .map(|_| (0..DIM).map(|_| rng.gen_range(0.0..1.0)).collect())
            .collect();
        let (mut a_warm, mut b_warm) = (a.clone(), b.clone());
        assert!(a_warm.refit(&q) && b_warm.refit(&q));
        assert_ne!(
            canonical(&a_warm),
            canonical(&b_warm),
            "a warm refit remembers the centroids before it"
        );
        assert!(a.refit_fresh(&q, 7) && b.refit_fresh(&q, 7));
        assert_eq!(canonical(&a), canonical(&b), "a fresh one does not");
    }

    #[test]
    fn refits_keep_ids_and_follow_the_population() {
        let mut rng = Pcg64::seed_from_u64(2);
        let means = blob_means();
        let mut s = Segments::new(4, DIM, &config(4, 10));
        assert!(s.fit(&sample(&mut rng, &means, 500)));
        let before = assert_recovers(&s, &means, 0.3);
        // The same population again: every blob keeps its segment id.
        assert!(s.fit(&sample(&mut rng, &means, 500)));
        assert_eq!(assert_recovers(&s, &means, 0.3), before);
        // The population moved: each segment follows its own blob.
        let shifted: Vec<Vec<f64>> = means
            .iter()
            .map(|m| m.iter().map(|v| v + 2.0).collect())
            .collect();
        assert!(s.fit(&sample(&mut rng, &shifted, 500)));
        assert_eq!(assert_recovers(&s, &shifted, 0.3), before);
        assert_eq!(s.fits(), 3);
    }

    #[test]
    fn the_sample_standardises_itself() {
        // Dimension 0 separates two tight groups by 1 unit; dimension 1 is noise of sd 100.
        // Unscaled, k-means would split the noise; standardised by the sample, the groups.
        let mut rng = Pcg64::seed_from_u64(3);
        let noise = Normal::new(0.0, 100.0).expect("valid sd");
        let points: Vec<Vec<f64>> = (0..400)
            .map(|i| {
                vec![
                    f64::from(i % 2) + rng.gen_range(-0.01..0.01),
                    noise.sample(&mut rng),
                ]
            })
            .collect();
        let mut s = Segments::new(2, 2, &config(2, 10));
        assert!(s.fit(&points));
        let a = s.assign(&[0.0, 150.0]).expect("seeded").0;
        let b = s.assign(&[1.0, 150.0]).expect("seeded").0;
        assert_ne!(a, b);
        assert_eq!(s.assign(&[0.0, -150.0]).expect("seeded").0, a);
        assert!((s.scale().std_dev(0) - 0.5).abs() < 0.01);
    }

    #[test]
    fn fits_are_scheduled_by_events_and_capped() {
        let mut s = Segments::new(2, 2, &config(2, 16));
        let points: Vec<Vec<f64>> = (0..40).map(|i| vec![f64::from(i), 0.0]).collect();
        let mut fits_at = Vec::new();
        for e in 1..=1_000_000u64 {
            if s.count_event() {
                assert!(s.fit(&points));
                fits_at.push(e);
            }
        }
        assert_eq!(&fits_at[..4], &[16, 32, 48, 72]);
        let gaps: Vec<u64> = fits_at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.windows(2).all(|g| g[0] <= g[1]),
            "gaps never shrink: {gaps:?}"
        );
        assert_eq!(gaps.last(), Some(&MAX_FIT_GAP));
    }

    #[test]
    fn waits_for_k_distinct_points() {
        let mut s = Segments::new(2, 2, &config(2, 16));
        for _ in 0..16 {
            s.count_event();
        }
        assert!(!s.fit(&vec![vec![1.0, 1.0]; 100]));
        assert!(!s.is_seeded() && !s.fit_due());
        for _ in 0..16 {
            s.count_event();
        }
        assert!(s.fit_due());
        assert!(s.fit(&[vec![1.0, 1.0], vec![2.0, 0.0]]));
        // Wrong-length and non-finite vectors are left out.
        assert!(!Segments::new(2, 2, &config(2, 1)).fit(&[vec![1.0], vec![f64::NAN, 0.0]]));
    }

    #[test]
    fn unseeded_and_wrong_length_queries() {
        let s = Segments::new(8, 52, &ModelConfig::default());
        assert_eq!(s.assign(&[0.0; 52]), None);
        assert!(s.assign_n(&[0.0; 52], 3).is_empty());
        assert_eq!(s.centroid(7), vec![0.0; 52]);
        assert_eq!(
            s.check_dim(&[0.0; 3]).unwrap_err().to_string(),
            "vector has 3 dimensions; the model expects 52"
        );
        // k == 0 never fits and never panics.
        let mut empty = Segments::new(0, 2, &ModelConfig::default());
        for _ in 0..600 {
            assert!(!empty.count_event());
        }
        assert!(!empty.fit(&[vec![1.0, 2.0]]));
    }

    #[test]
    fn decode_rejects_bad_shapes() {
        let mut state = ModelState::new(52, &ModelConfig::default());
        state.segments.centroids = Array2::zeros((3, 5));
        let err = ModelState::decode(&state.encode()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model state is inconsistent: centroid matrix is 3x5, expected 8x52"
        );
        let mut state = ModelState::new(4, &ModelConfig::default());
        state.segments.scale = Scaler::new(3);
        let err = ModelState::decode(&state.encode()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model state is inconsistent: segment standardisation has 3 dimensions, expected 4"
        );
    }
}
