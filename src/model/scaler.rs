//! Online per-dimension standardisation with Welford's algorithm.
//!
//! Welford's update keeps a running mean and the sum of squared deviations `m2` without ever
//! storing the data and without the catastrophic cancellation of the naive `Σx² − n·mean²`.
//!
//! Invariants: `mean.len() == m2.len() == dim()`; `m2[i] >= 0` (each Welford increment is the
//! product of two numbers of the same sign, so it holds exactly in floating point too).

use serde::{Deserialize, Serialize};

use super::ModelError;

/// A standard deviation below this is treated as "constant feature" and replaced by 1, so that
/// constant features map to 0 instead of exploding or becoming NaN.
const MIN_STD: f64 = 1e-9;

/// Running mean and population variance of every dimension of a stream of vectors.
///
/// The divisor [`Scaler::transform`] uses for each dimension is kept up to date by
/// [`Scaler::update`] (and rebuilt on decoding) rather than recomputed per call: the writer
/// transforms more vectors than it folds in, and readers only transform. It is not stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scaler {
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    /// Per dimension: the standard deviation, or 1 where it is not trusted (see
    /// [`Scaler::transform`]). Derived from the fields above.
    #[serde(skip_serializing)]
    divisor: Vec<f64>,
}

/// The stored fields of a [`Scaler`] (bincode is positional: the same layout as its
/// `Serialize`), from which the divisors are rebuilt.
#[derive(Deserialize)]
#[serde(rename = "Scaler")]
struct StoredScaler {
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl<'de> Deserialize<'de> for Scaler {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let StoredScaler { count, mean, m2 } = StoredScaler::deserialize(d)?;
        let mut s = Scaler {
            count,
            mean,
            m2,
            divisor: Vec::new(),
        };
        s.refresh_divisors();
        Ok(s)
    }
}

impl Scaler {
    /// An empty scaler for vectors of `dim` components.
    pub fn new(dim: usize) -> Self {
        Scaler {
            count: 0,
            mean: vec![0.0; dim],
            m2: vec![0.0; dim],
            divisor: vec![1.0; dim],
        }
    }

    /// Recomputes every divisor from `count` and `m2`: `sqrt(m2 / n)`, or 1 with fewer than two
    /// observations or below [`MIN_STD`]. Always `m2.len()` long, so a decoded scaler whose
    /// lengths disagree (refused by `validate`) still cannot index out of bounds.
    fn refresh_divisors(&mut self) {
        let n = self.count as f64;
        let trust_std = self.count >= 2;
        self.divisor.clear();
        self.divisor.extend(self.m2.iter().map(|&m2| {
            let std = (m2 / n).sqrt();
            if trust_std && std >= MIN_STD {
                std
            } else {
                1.0
            }
        }));
    }

    /// Number of components of the vectors this scaler accepts.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Number of vectors folded in so far.
    #[cfg(any(test, feature = "testing"))]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Running mean of every dimension (all zeros before the first update).
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// `Ok` when `x` has [`Self::dim`] components.
    #[cfg(any(test, feature = "testing"))]
    pub fn check_dim(&self, x: &[f64]) -> Result<(), ModelError> {
        super::check_len(x.len(), self.dim())
    }

    /// Folds one vector into the running statistics.
    ///
    /// A vector of the wrong length is a caller bug: it trips a `debug_assert!` and in release
    /// builds is ignored, because folding part of a vector would desynchronise `count` from the
    /// per-dimension sums.
    pub fn update(&mut self, x: &[f64]) {
        debug_assert_eq!(x.len(), self.dim(), "scaler dimension mismatch");
        if x.len() != self.dim() {
            return;
        }
        self.count = self.count.saturating_add(1);
        let n = self.count as f64;
        for ((mean, m2), &v) in self.mean.iter_mut().zip(self.m2.iter_mut()).zip(x) {
            let delta = v - *mean;
            *mean += delta / n;
            *m2 += delta * (v - *mean);
        }
        self.refresh_divisors();
    }

    /// Population variance (divides by `n`, not `n − 1`) of every dimension; zeros before the
    /// first update.
    pub fn variance(&self) -> Vec<f64> {
        if self.count == 0 {
            return vec![0.0; self.dim()];
        }
        let n = self.count as f64;
        self.m2.iter().map(|m2| m2 / n).collect()
    }

    /// Population standard deviation of dimension `i`.
    ///
    /// # Panics
    /// If `i >= self.dim()`, like slice indexing.
    #[cfg(any(test, feature = "testing"))]
    pub fn std_dev(&self, i: usize) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        (self.m2[i] / self.count as f64).sqrt()
    }

    /// Standardises `x` into `out`: `(x − mean) / std` per dimension.
    ///
    /// With fewer than two observations, or for a (near-)constant dimension, the divisor is 1:
    /// such features come out centred (constant ones as exactly 0) and never NaN or infinite.
    /// Lengths must equal [`Self::dim`] (`debug_assert!`); in release extra components of either
    /// slice are left alone.
    pub fn transform(&self, x: &[f64], out: &mut [f64]) {
        debug_assert_eq!(x.len(), self.dim(), "scaler dimension mismatch");
        debug_assert_eq!(out.len(), self.dim(), "scaler output dimension mismatch");
        // Dividing (not multiplying by a cached reciprocal) keeps results bit-identical to
        // `(x - mean) / std`.
        for (((o, &v), &mean), &divisor) in out.iter_mut().zip(x).zip(&self.mean).zip(&self.divisor)
        {
            *o = (v - mean) / divisor;
        }
    }

    /// Like [`Self::transform`], into a new vector of length [`Self::dim`].
    pub fn transform_vec(&self, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.dim()];
        self.transform(x, &mut out);
        out
    }

    /// The raw vector whose standardisation is `z`: `z · std + mean` per dimension, with the
    /// divisor [`Self::transform`] uses (so `inverse(transform(x)) == x` up to rounding).
    pub fn inverse(&self, z: &[f64]) -> Vec<f64> {
        debug_assert_eq!(z.len(), self.dim(), "scaler dimension mismatch");
        z.iter()
            .zip(&self.mean)
            .zip(&self.divisor)
            .map(|((v, mean), divisor)| v * divisor + mean)
            .collect()
    }

    /// The statistics of `self`'s vectors and `other`'s together, as if one scaler had folded
    /// in both streams (Chan, Golub and LeVeque's pairwise update: `n = nA + nB`,
    /// `mean = meanA + δ·nB/n`, `m2 = m2A + m2B + δ²·nA·nB/n` with `δ = meanB − meanA`). An
    /// empty side gives the other back unchanged. Scalers of different dimensions are a caller
    /// bug (`debug_assert!`); in release `self` is returned.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn combined(&self, other: &Scaler) -> Scaler {
        debug_assert_eq!(self.dim(), other.dim(), "scaler dimension mismatch");
        if other.count == 0 || self.dim() != other.dim() {
            return self.clone();
        }
        if self.count == 0 {
            return other.clone();
        }
        let n = self.count.saturating_add(other.count);
        let (na, nb, nf) = (self.count as f64, other.count as f64, n as f64);
        let mut out = Scaler::new(self.dim());
        out.count = n;
        for i in 0..self.dim() {
            let delta = other.mean[i] - self.mean[i];
            out.mean[i] = self.mean[i] + delta * nb / nf;
            out.m2[i] = self.m2[i] + other.m2[i] + delta * delta * na * nb / nf;
        }
        out.refresh_divisors();
        out
    }

    /// The statistics of the vectors folded into `self` after `earlier`, a copy of this scaler
    /// taken before: the inverse of [`Self::combined`] (`earlier.combined(&self.since(earlier))`
    /// is `self` up to rounding). Empty when nothing was folded in since (or `earlier` is not
    /// an earlier copy: it holds as many vectors or more); the sum of squares is clamped at 0,
    /// which rounding could otherwise take below.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn since(&self, earlier: &Scaler) -> Scaler {
        let mut out = Scaler::new(self.dim());
        if self.count <= earlier.count || self.dim() != earlier.dim() {
            return out;
        }
        if earlier.count == 0 {
            return self.clone();
        }
        let nb = self.count - earlier.count;
        let (na, nbf, n) = (earlier.count as f64, nb as f64, self.count as f64);
        out.count = nb;
        for i in 0..self.dim() {
            let mean_b = (n * self.mean[i] - na * earlier.mean[i]) / nbf;
            let delta = mean_b - earlier.mean[i];
            out.mean[i] = mean_b;
            out.m2[i] = (self.m2[i] - earlier.m2[i] - delta * delta * na * nbf / n).max(0.0);
        }
        out.refresh_divisors();
        out
    }

    /// Checks the internal invariants of a decoded scaler.
    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        if self.mean.len() != self.m2.len() {
            return Err(ModelError::Inconsistent(format!(
                "scaler has {} means but {} variance accumulators",
                self.mean.len(),
                self.m2.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    /// Batch two-pass mean and population variance of column `j`.
    fn two_pass(data: &[Vec<f64>], j: usize) -> (f64, f64) {
        let n = data.len() as f64;
        let mean = data.iter().map(|r| r[j]).sum::<f64>() / n;
        let var = data.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn welford_matches_two_pass() {
        let mut rng = Pcg64::seed_from_u64(7);
        let dim = 6;
        // Offsets and scales differ per dimension, including a large offset that would make the
        // naive sum-of-squares formula lose most of its digits.
        let offsets = [0.0, -5.0, 100.0, 1e4, 0.5, -3e3];
        let scales = [1.0, 0.1, 10.0, 2.0, 1e-3, 50.0];
        let data: Vec<Vec<f64>> = (0..2000)
            .map(|_| {
                (0..dim)
                    .map(|j| offsets[j] + scales[j] * rng.gen_range(-1.0..1.0))
                    .collect()
            })
            .collect();
        let mut s = Scaler::new(dim);
        for row in &data {
            s.update(row);
        }
        assert_eq!(s.count(), 2000);
        for (j, var) in s.variance().into_iter().enumerate() {
            let (m, v) = two_pass(&data, j);
            assert!((s.mean()[j] - m).abs() < 1e-9, "mean {j}");
            assert!((var - v).abs() < 1e-9, "variance {j}: {var} vs {v}");
            assert!((s.std_dev(j) - v.sqrt()).abs() < 1e-9);
        }
    }

    #[test]
    fn transform_standardises() {
        let mut rng = Pcg64::seed_from_u64(8);
        let mut s = Scaler::new(2);
        let data: Vec<Vec<f64>> = (0..500)
            .map(|_| vec![3.0 + 2.0 * rng.gen::<f64>(), -7.0 * rng.gen::<f64>()])
            .collect();
        for row in &data {
            s.update(row);
        }
        let z: Vec<Vec<f64>> = data.iter().map(|r| s.transform_vec(r)).collect();
        for j in 0..2 {
            let (m, v) = two_pass(&z, j);
            assert!(m.abs() < 1e-9);
            assert!((v - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn constant_and_early_features_are_finite() {
        let mut s = Scaler::new(2);
        // Nothing seen: centred on the zero mean, divisor 1.
        assert_eq!(s.transform_vec(&[2.0, -1.0]), vec![2.0, -1.0]);
        s.update(&[5.0, 1.0]);
        // One observation: variance is 0 and untrustworthy; divisor 1.
        assert_eq!(s.transform_vec(&[6.0, 1.0]), vec![1.0, 0.0]);
        for _ in 0..10 {
            s.update(&[5.0, 1.0]);
        }
        assert_eq!(s.variance(), vec![0.0, 0.0]);
        assert_eq!(s.transform_vec(&[5.0, 1.0]), vec![0.0, 0.0]);
        assert!(s.transform_vec(&[9.0, 4.0]).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn cached_divisors_match_the_formula_and_survive_decoding() -> crate::Result<()> {
        let mut rng = Pcg64::seed_from_u64(9);
        let mut s = Scaler::new(4);
        for _ in 0..300 {
            let row: Vec<f64> = (0..4).map(|j| j as f64 * rng.gen::<f64>()).collect();
            s.update(&row);
        }
        let x = [0.3, -1.0, 2.5, 7.0];
        let z = s.transform_vec(&x);
        for (j, zj) in z.iter().enumerate() {
            let std = s.std_dev(j);
            let divisor = if std >= MIN_STD { std } else { 1.0 };
            assert_eq!(zj.to_bits(), ((x[j] - s.mean()[j]) / divisor).to_bits());
        }
        let bytes = crate::storage::codec::encode(&s);
        let back: Scaler = crate::storage::codec::decode(&|| "scaler".into(), &bytes)?;
        assert_eq!(back, s);
        assert_eq!(back.transform_vec(&x), z);
        // The stored layout is count, mean, m2 only.
        let stored = crate::storage::codec::encode(&(s.count, &s.mean, &s.m2));
        assert_eq!(bytes, stored);
        Ok(())
    }

    #[test]
    fn wrong_length_is_checked_and_ignored() {
        let mut s = Scaler::new(3);
        assert_eq!(
            s.check_dim(&[1.0]).unwrap_err().to_string(),
            "vector has 1 dimensions; the model expects 3"
        );
        if !cfg!(debug_assertions) {
            s.update(&[1.0]);
            assert_eq!(s.count(), 0);
        }
        assert_eq!(s.check_dim(&[1.0, 2.0, 3.0]), Ok(()));
    }

    #[test]
    fn combined_and_since_are_the_pairwise_update_and_its_inverse() {
        let mut rng = Pcg64::seed_from_u64(7);
        let (mut a, mut b, mut all) = (Scaler::new(3), Scaler::new(3), Scaler::new(3));
        for i in 0..500 {
            let x: Vec<f64> = (0..3)
                .map(|d| rng.gen_range(-5.0..5.0) * (d + 1) as f64)
                .collect();
            all.update(&x);
            if i < 300 {
                a.update(&x)
            } else {
                b.update(&x)
            }
        }
        let c = a.combined(&b);
        assert_eq!(c.count, all.count);
        for i in 0..3 {
            assert!((c.mean[i] - all.mean[i]).abs() < 1e-9);
            assert!((c.m2[i] - all.m2[i]).abs() < 1e-6 * all.m2[i]);
        }
        let part = all.since(&a);
        assert_eq!(part.count, b.count);
        for i in 0..3 {
            assert!((part.mean[i] - b.mean[i]).abs() < 1e-9);
            assert!((part.m2[i] - b.m2[i]).abs() < 1e-6 * b.m2[i]);
        }
        assert_eq!(
            a.combined(&Scaler::new(3)),
            a,
            "an empty side changes nothing"
        );
        assert_eq!(Scaler::new(3).combined(&a), a);
        assert_eq!(a.since(&a).count, 0);
        assert_eq!(a.since(&all).count, 0, "a later copy is not an earlier one");
    }
}
