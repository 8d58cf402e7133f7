//! Paired comparisons of two scorers on the same customers: is a difference in AUC or Brier
//! score larger than chance would make it?
//!
//! A backtest scores a few thousand customers; two models that rank them equally well differ
//! in AUC by a few thousandths from one sample to the next. [`auc_difference`] estimates the
//! variance of the difference of two correlated AUCs with DeLong's method (DeLong, DeLong and
//! Clarke-Pearson, *Biometrics* 1988), [`brier_difference`] that of the mean of the per-customer
//! differences of squared errors; both give a 95% interval from the normal approximation.

use serde::Serialize;

/// The 97.5% quantile of the standard normal distribution.
const Z_975: f64 = 1.959_963_984_540_054;

/// A difference `a − b` of one metric between two scorers on the same examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Difference {
    /// The difference of the two metrics.
    pub estimate: f64,
    /// Its standard error.
    pub std_error: f64,
    /// The 95% confidence interval, `estimate ± 1.96 · std_error`.
    pub ci95: [f64; 2],
}

impl Difference {
    fn new(estimate: f64, variance: f64) -> Difference {
        let std_error = variance.max(0.0).sqrt();
        Difference {
            estimate,
            std_error,
            ci95: [estimate - Z_975 * std_error, estimate + Z_975 * std_error],
        }
    }

    /// Whether the interval excludes zero on the positive side (`a` larger).
    pub fn above_zero(&self) -> bool {
        self.ci95[0] > 0.0
    }

    /// Whether the interval excludes zero on the negative side (`a` smaller).
    pub fn below_zero(&self) -> bool {
        self.ci95[1] < 0.0
    }
}

/// For every positive, the share of negatives it outscores (ties one half); for every negative,
/// the share of positives that outscore it; each in example order. Their means are both the AUC
/// (DeLong's structural components `V10` and `V01`).
fn components(scores: &[f64], labels: &[bool]) -> (Vec<f64>, Vec<f64>) {
    let mut pos: Vec<f64> = Vec::new();
    let mut neg: Vec<f64> = Vec::new();
    for (&s, &l) in scores.iter().zip(labels) {
        if l {
            pos.push(s);
        } else {
            neg.push(s);
        }
    }
    pos.sort_by(f64::total_cmp);
    neg.sort_by(f64::total_cmp);
    // How many of `sorted` are below `x`, ties one half.
    let below = |sorted: &[f64], x: f64| {
        let lt = sorted.partition_point(|v| v.total_cmp(&x).is_lt());
        let le = sorted.partition_point(|v| v.total_cmp(&x).is_le());
        lt as f64 + 0.5 * (le - lt) as f64
    };
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let (mut v10, mut v01) = (Vec::with_capacity(pos.len()), Vec::with_capacity(neg.len()));
    for (&s, &l) in scores.iter().zip(labels) {
        if l {
            v10.push(below(&neg, s) / n);
        } else {
            v01.push((m - below(&pos, s)) / m);
        }
    }
    (v10, v01)
}

/// Sample covariance (denominator `len − 1`) of two equally long series; 0 below two values.
fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len();
    if n < 2 {
        return 0.0;
    }
    let (ma, mb) = (
        a.iter().sum::<f64>() / n as f64,
        b.iter().sum::<f64>() / n as f64,
    );
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (n - 1) as f64
}

/// `AUC(a) − AUC(b)` on the same examples with DeLong's standard error. `None` unless each
/// class occurs at least twice and the slices have the same length.
///
/// The variance is that of the per-example differences of the two scorers' components, so it
/// takes their correlation into account: two scorers that rank alike are compared precisely.
///
/// # Examples
/// ```
/// use persona::testing::evaluate::compare::auc_difference;
/// let labels = [true, true, false, false];
/// let d = auc_difference(&[0.9, 0.8, 0.2, 0.1], &[0.9, 0.1, 0.8, 0.2], &labels).unwrap();
/// assert_eq!(d.estimate, 0.5); // 1.0 against 0.5
/// ```
pub fn auc_difference(a: &[f64], b: &[f64], labels: &[bool]) -> Option<Difference> {
    if a.len() != labels.len() || b.len() != labels.len() {
        return None;
    }
    let m = labels.iter().filter(|l| **l).count();
    let n = labels.len() - m;
    // The variance needs two of each class (one positive would have no spread to measure).
    if m < 2 || n < 2 {
        return None;
    }
    let (a10, a01) = components(a, labels);
    let (b10, b01) = components(b, labels);
    let d10: Vec<f64> = a10.iter().zip(&b10).map(|(x, y)| x - y).collect();
    let d01: Vec<f64> = a01.iter().zip(&b01).map(|(x, y)| x - y).collect();
    let estimate = d10.iter().sum::<f64>() / m as f64;
    let variance = covariance(&d10, &d10) / m as f64 + covariance(&d01, &d01) / n as f64;
    Some(Difference::new(estimate, variance))
}

/// `Brier(a) − Brier(b)` for probabilities on the same examples, with the standard error of the
/// mean of the per-example differences of squared errors. `None` below two examples or for
/// slices of different lengths.
///
/// # Examples
/// ```
/// use persona::testing::evaluate::compare::brier_difference;
/// let d = brier_difference(&[0.9, 0.1], &[0.5, 0.5], &[true, false]).unwrap();
/// assert!((d.estimate - (0.01 - 0.25)).abs() < 1e-12);
/// ```
pub fn brier_difference(a: &[f64], b: &[f64], labels: &[bool]) -> Option<Difference> {
    if a.len() != labels.len() || b.len() != labels.len() || labels.len() < 2 {
        return None;
    }
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .zip(labels)
        .map(|((p, q), &l)| {
            let y = if l { 1.0 } else { 0.0 };
            (p - y).powi(2) - (q - y).powi(2)
        })
        .collect();
    let n = d.len() as f64;
    Some(Difference::new(
        d.iter().sum::<f64>() / n,
        covariance(&d, &d) / n,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Positives score 0.9 and 0.8 under `a`, 0.9 and 0.1 under `b`; negatives 0.2, 0.1 and
    /// 0.8, 0.2. `a` ranks perfectly (components all 1); `b`'s positives outscore 2 and 0 of
    /// the negatives (V10 = 1, 0) and each negative is outscored by one positive (V01 = ½, ½):
    /// AUC 0.5. Differences: V10 (0, 1), V01 (½, ½); variance = var(0, 1) / 2 + 0 = 0.5 / 2.
    #[test]
    fn auc_difference_matches_hand_computation() {
        let labels = [true, true, false, false];
        let d = auc_difference(&[0.9, 0.8, 0.2, 0.1], &[0.9, 0.1, 0.8, 0.2], &labels).unwrap();
        assert_eq!(d.estimate, 0.5);
        assert!((d.std_error - 0.5).abs() < 1e-12);
        assert!(!d.above_zero() && !d.below_zero());
        // A scorer against itself: no difference, no variance.
        let s = [0.3, 0.7, 0.7, 0.1];
        let same = auc_difference(&s, &s, &labels).unwrap();
        assert_eq!((same.estimate, same.std_error), (0.0, 0.0));
        assert_eq!(auc_difference(&s, &s, &[true; 4]), None);
        assert_eq!(
            auc_difference(&s, &s, &[true, false, false, false]),
            None,
            "one positive: no spread to measure"
        );
        assert_eq!(auc_difference(&s, &s[..3], &labels), None);
    }

    /// DeLong's components by their definition, over every (positive, negative) pair.
    fn naive(a: &[f64], b: &[f64], labels: &[bool]) -> (f64, f64) {
        let psi = |x: f64, y: f64| match x.partial_cmp(&y).unwrap() {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => 0.5,
            std::cmp::Ordering::Less => 0.0,
        };
        let pos: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
        let neg: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
        let comp = |s: &[f64]| {
            let v10: Vec<f64> = pos
                .iter()
                .map(|&i| neg.iter().map(|&j| psi(s[i], s[j])).sum::<f64>() / neg.len() as f64)
                .collect();
            let v01: Vec<f64> = neg
                .iter()
                .map(|&j| pos.iter().map(|&i| psi(s[i], s[j])).sum::<f64>() / pos.len() as f64)
                .collect();
            (v10, v01)
        };
        let ((a10, a01), (b10, b01)) = (comp(a), comp(b));
        let d10: Vec<f64> = a10.iter().zip(&b10).map(|(x, y)| x - y).collect();
        let d01: Vec<f64> = a01.iter().zip(&b01).map(|(x, y)| x - y).collect();
        let est = d10.iter().sum::<f64>() / d10.len() as f64;
        let var =
            covariance(&d10, &d10) / d10.len() as f64 + covariance(&d01, &d01) / d01.len() as f64;
        (est, var.sqrt())
    }

    #[test]
    fn auc_difference_agrees_with_the_pairwise_definition() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        for n in [5usize, 40, 300] {
            let labels: Vec<bool> = (0..n).map(|i| i % 3 == 0 || rng.gen_bool(0.2)).collect();
            // Coarse scores, so that ties occur within and across classes.
            let a: Vec<f64> = labels
                .iter()
                .map(|&l| (rng.gen_range(0..10) + if l { 3 } else { 0 }) as f64)
                .collect();
            let b: Vec<f64> = a.iter().map(|x| x + rng.gen_range(-4..=4) as f64).collect();
            let d = auc_difference(&a, &b, &labels).unwrap();
            let (est, se) = naive(&a, &b, &labels);
            assert!((d.estimate - est).abs() < 1e-12, "n {n}");
            assert!((d.std_error - se).abs() < 1e-12, "n {n}");
            let (auc_a, auc_b) = (
                crate::evaluate::metrics::auc(&a, &labels).unwrap(),
                crate::evaluate::metrics::auc(&b, &labels).unwrap(),
            );
            assert!((d.estimate - (auc_a - auc_b)).abs() < 1e-12);
        }
    }

    /// Squared errors (0.01, 0.01) against (0.25, 0.25): differences −0.24 twice, no spread.
    #[test]
    fn brier_difference_matches_hand_computation() {
        let d = brier_difference(&[0.9, 0.1], &[0.5, 0.5], &[true, false]).unwrap();
        assert!((d.estimate + 0.24).abs() < 1e-12);
        assert!(d.std_error < 1e-12 && d.below_zero());
        // (0.01, 0.81) against (0.25, 0.25): −0.24 and +0.56, mean 0.16, sample variance
        // 2 · 0.4² = 0.32, standard error sqrt(0.32 / 2) = 0.4.
        let d = brier_difference(&[0.9, 0.9], &[0.5, 0.5], &[true, false]).unwrap();
        assert!((d.estimate - 0.16).abs() < 1e-12);
        assert!((d.std_error - 0.4).abs() < 1e-12);
        assert_eq!(brier_difference(&[0.5], &[0.5], &[true]), None);
    }
}
