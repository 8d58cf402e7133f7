//! Offline metrics of a backtest: ranking (AUC, top-decile lift), probability quality (log
//! loss, Brier score, a calibration table) and clustering agreement (adjusted Rand index).
//!
//! Every function takes parallel slices (`scores[i]` belongs to `labels[i]`) and returns `None`
//! when the metric is undefined for the input (no examples, or only one class where both are
//! needed), never NaN.

use serde::Serialize;
use std::collections::HashMap;
use std::hash::Hash;

/// Probabilities are clamped to `[EPS, 1 − EPS]` before taking logs.
const EPS: f64 = 1e-15;

/// Bins of the calibration table.
pub const CALIBRATION_BINS: usize = 10;

/// ROC AUC: the probability that a random positive scores above a random negative, ties counting
/// one half (the Mann–Whitney U statistic with mid-ranks). `None` unless both classes occur.
///
/// # Examples
/// ```
/// use persona::testing::evaluate::metrics::auc;
/// assert_eq!(auc(&[0.9, 0.1, 0.5, 0.5], &[true, false, true, false]), Some(0.875));
/// ```
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|l| **l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 || scores.len() != labels.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    // Sum of the (1-based, mid-ranked) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = order[i..=j].iter().filter(|k| labels[**k]).count();
        rank_sum += mid_rank * tied_positives as f64;
        i = j + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Mean log loss (cross-entropy, natural log) of probabilities `probs`, each clamped to
/// `[1e-15, 1 − 1e-15]`. `None` for no examples.
///
/// # Examples
/// ```
/// use persona::testing::evaluate::metrics::log_loss;
/// let l = log_loss(&[0.5, 0.5], &[true, false]).unwrap();
/// assert!((l - std::f64::consts::LN_2).abs() < 1e-12);
/// ```
pub fn log_loss(probs: &[f64], labels: &[bool]) -> Option<f64> {
    if probs.is_empty() || probs.len() != labels.len() {
        return None;
    }
    let sum: f64 = probs
        .iter()
        .zip(labels)
        .map(|(p, y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            -(if *y { p } else { 1.0 - p }).ln()
        })
        .sum();
    Some(sum / probs.len() as f64)
}

/// Brier score: the mean squared difference between probability and outcome (0 or 1). `None`
/// for no examples.
///
/// # Examples
/// ```
/// use persona::testing::evaluate::metrics::brier;
/// assert_eq!(brier(&[1.0, 0.5], &[true, false]), Some(0.125));
/// ```
pub fn brier(probs: &[f64], labels: &[bool]) -> Option<f64> {
    if probs.is_empty() || probs.len() != labels.len() {
        return None;
    }
    let sum: f64 = probs
        .iter()
        .zip(labels)
        .map(|(p, y)| (p - if *y { 1.0 } else { 0.0 }).powi(2))
        .sum();
    Some(sum / probs.len() as f64)
}

/// Lift in the top decile: the positive rate among the `ceil(n / 10)` highest scores divided
/// by the overall positive rate. Scores tied across the decile boundary share it: the tied group
/// contributes its positive rate times the places it fills (the expectation under a random order
/// of ties), so a constant score has lift exactly 1. `None` without positives.
///
/// # Examples
/// ```
/// use persona::testing::evaluate::metrics::top_decile_lift;
/// // 20 customers, 2 positives, the top 2 scores are both positive: 100% / 10% = 10.
/// let scores: Vec<f64> = (0..20).map(f64::from).collect();
/// let labels: Vec<bool> = (0..20).map(|i| i >= 18).collect();
/// assert_eq!(top_decile_lift(&scores, &labels), Some(10.0));
/// ```
pub fn top_decile_lift(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n = scores.len();
    let positives = labels.iter().filter(|l| **l).count();
    if n == 0 || positives == 0 || n != labels.len() {
        return None;
    }
    let top = n.div_ceil(10);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let mut taken = 0usize;
    let mut top_positives = 0.0;
    let mut i = 0;
    while taken < top {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let group = j - i + 1;
        let group_positives = order[i..=j].iter().filter(|k| labels[**k]).count() as f64;
        let places = group.min(top - taken);
        top_positives += group_positives * places as f64 / group as f64;
        taken += places;
        i = j + 1;
    }
    let base = positives as f64 / n as f64;
    Some(top_positives / top as f64 / base)
}

/// One bin of a calibration table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CalibrationBin {
    /// Lower edge of the predicted probability (inclusive).
    pub lower: f64,
    /// Upper edge (exclusive, except 1.0 for the last bin).
    pub upper: f64,
    /// Customers whose prediction falls in the bin.
    pub count: u64,
    /// Their mean predicted probability (None if the bin is empty).
    pub mean_predicted: Option<f64>,
    /// The share of them that were positive (None if the bin is empty).
    pub observed_rate: Option<f64>,
}

/// A calibration table: [`CALIBRATION_BINS`] equal-width bins over `[0, 1]`, each with its count,
/// mean prediction and observed positive rate. A well-calibrated model has the two close.
///
/// # Examples
/// ```
/// use persona::testing::evaluate::metrics::calibration;
/// let bins = calibration(&[0.05, 0.15, 0.15, 1.0], &[false, true, false, true]);
/// assert_eq!(bins[1].count, 2);
/// assert_eq!(bins[1].observed_rate, Some(0.5));
/// assert_eq!(bins[9].count, 1);
/// ```
pub fn calibration(probs: &[f64], labels: &[bool]) -> Vec<CalibrationBin> {
    let mut count = [0u64; CALIBRATION_BINS];
    let mut sum = [0.0f64; CALIBRATION_BINS];
    let mut pos = [0u64; CALIBRATION_BINS];
    for (p, y) in probs.iter().zip(labels) {
        let p = p.clamp(0.0, 1.0);
        let b = ((p * CALIBRATION_BINS as f64) as usize).min(CALIBRATION_BINS - 1);
        count[b] += 1;
        sum[b] += p;
        pos[b] += u64::from(*y);
    }
    (0..CALIBRATION_BINS)
        .map(|b| {
            let n = count[b] as f64;
            CalibrationBin {
                lower: b as f64 / CALIBRATION_BINS as f64,
                upper: (b + 1) as f64 / CALIBRATION_BINS as f64,
                count: count[b],
                mean_predicted: (count[b] > 0).then(|| sum[b] / n),
                observed_rate: (count[b] > 0).then(|| pos[b] as f64 / n),
            }
        })
        .collect()
}

/// Adjusted Rand index between two clusterings of the same items (`a[i]` and `b[i]` label item
/// `i`): 1 for identical partitions (up to renaming), about 0 for independent ones. `None` for
/// fewer than two items; 1 when both put every item in one cluster (or each in its own).
///
/// # Examples
/// ```
/// use persona::testing::evaluate::metrics::adjusted_rand_index;
/// assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &["x", "x", "y", "y"]), Some(1.0));
/// ```
pub fn adjusted_rand_index<A: Eq + Hash, B: Eq + Hash>(a: &[A], b: &[B]) -> Option<f64> {
    let n = a.len();
    if n < 2 || n != b.len() {
        return None;
    }
    let pairs = |c: u64| (c * c.saturating_sub(1) / 2) as f64;
    let mut joint: HashMap<(&A, &B), u64> = HashMap::new();
    let mut rows: HashMap<&A, u64> = HashMap::new();
    let mut cols: HashMap<&B, u64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_default() += 1;
        *rows.entry(x).or_default() += 1;
        *cols.entry(y).or_default() += 1;
    }
    let index: f64 = joint.values().map(|c| pairs(*c)).sum();
    let sum_a: f64 = rows.values().map(|c| pairs(*c)).sum();
    let sum_b: f64 = cols.values().map(|c| pairs(*c)).sum();
    let total = pairs(n as u64);
    let expected = sum_a * sum_b / total;
    let max = (sum_a + sum_b) / 2.0;
    if max == expected {
        // Both partitions are trivial (all in one cluster, or all singletons) the same way.
        return Some(1.0);
    }
    Some((index - expected) / (max - expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    /// Positives 0.8, 0.6, 0.4; negatives 0.6, 0.2. Pairs (pos, neg): (0.8,0.6) 1, (0.8,0.2) 1,
    /// (0.6,0.6) ½, (0.6,0.2) 1, (0.4,0.6) 0, (0.4,0.2) 1 → 4.5 / 6 = 0.75.
    #[test]
    fn auc_counts_ties_as_half() {
        let scores = [0.8, 0.6, 0.4, 0.6, 0.2];
        let labels = [true, true, true, false, false];
        assert!(close(auc(&scores, &labels), 0.75));
        // Reversing the scores reverses the ranking.
        let neg: Vec<f64> = scores.iter().map(|s| -s).collect();
        assert!(close(auc(&neg, &labels), 0.25));
        // A constant score cannot rank: 0.5.
        assert!(close(auc(&[1.0; 5], &labels), 0.5));
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auc(&[], &[]), None);
    }

    /// −(ln 0.8 + ln 0.6 + ln 0.9) / 3 and a clamped 0 probability for a positive.
    #[test]
    fn log_loss_matches_hand_computation() {
        let l = log_loss(&[0.8, 0.4, 0.1], &[true, false, false]);
        let want = -(0.8f64.ln() + 0.6f64.ln() + 0.9f64.ln()) / 3.0;
        assert!(close(l, want));
        let clamped = log_loss(&[0.0], &[true]);
        assert!(close(clamped, -(1e-15f64).ln()));
        assert_eq!(log_loss(&[], &[]), None);
    }

    /// ((0.8−1)² + (0.4−0)² + (0.1−0)²) / 3 = (0.04 + 0.16 + 0.01) / 3 = 0.07.
    #[test]
    fn brier_matches_hand_computation() {
        assert!(close(brier(&[0.8, 0.4, 0.1], &[true, false, false]), 0.07));
        assert_eq!(brier(&[], &[]), None);
    }

    /// 30 customers, top decile = 3. Scores 29..0; positives at ranks 1 and 3 and four more
    /// below: top-decile rate 2/3, base rate 6/30 → lift (2/3)/(1/5) = 10/3.
    #[test]
    fn lift_matches_hand_computation() {
        let scores: Vec<f64> = (0..30).rev().map(f64::from).collect();
        let mut labels = vec![false; 30];
        for i in [0, 2, 10, 15, 20, 25] {
            labels[i] = true;
        }
        assert!(close(top_decile_lift(&scores, &labels), 10.0 / 3.0));
    }

    /// 10 customers, top decile = 1 place. The top score is shared by 4 customers, 2 of them
    /// positive: the place holds ½ a positive in expectation. Base rate 3/10 → lift 0.5/0.3.
    #[test]
    fn lift_shares_the_boundary_among_ties() {
        let scores = [5.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        let labels = [
            true, true, false, false, false, false, false, false, false, true,
        ];
        assert!(close(top_decile_lift(&scores, &labels), 0.5 / 0.3));
        // A constant score has lift 1; no positive has none.
        assert!(close(top_decile_lift(&[2.0; 10], &labels), 1.0));
        assert_eq!(top_decile_lift(&[1.0, 2.0], &[false, false]), None);
    }

    /// Bins are [0, .1), [.1, .2), … [.9, 1.0]; a prediction of exactly 1 lands in the last.
    #[test]
    fn calibration_bins_match_hand_computation() {
        let probs = [0.0, 0.05, 0.1, 0.15, 0.19, 0.55, 0.95, 1.0];
        let labels = [false, true, false, true, true, false, true, true];
        let bins = calibration(&probs, &labels);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins[0].count, 2);
        assert!(close(bins[0].mean_predicted, 0.025));
        assert!(close(bins[0].observed_rate, 0.5));
        assert_eq!(bins[1].count, 3);
        assert!(close(bins[1].mean_predicted, (0.1 + 0.15 + 0.19) / 3.0));
        assert!(close(bins[1].observed_rate, 2.0 / 3.0));
        assert_eq!(bins[5].count, 1);
        assert!(close(bins[5].observed_rate, 0.0));
        assert_eq!(bins[9].count, 2);
        assert!(close(bins[9].mean_predicted, 0.975));
        assert_eq!(bins[3].count, 0);
        assert_eq!(bins[3].mean_predicted, None);
        assert!(close(Some(bins[3].lower), 0.3));
        assert!(close(Some(bins[3].upper), 0.4));
    }

    /// a = [0,0,0,1,1,1], b = [0,0,1,1,2,2]: contingency cells 2,1,1,2 → Σ C(n_ij,2) = 2;
    /// rows 3,3 → 6; columns 2,2,2 → 3; C(6,2) = 15; expected 6·3/15 = 1.2; max 4.5;
    /// ARI = (2 − 1.2) / (4.5 − 1.2) = 0.8 / 3.3.
    #[test]
    fn ari_matches_hand_computation() {
        let a = [0, 0, 0, 1, 1, 1];
        let b = ["p", "p", "q", "q", "r", "r"];
        assert!(close(adjusted_rand_index(&a, &b), 0.8 / 3.3));
        // Renaming clusters changes nothing; identical partitions give 1.
        assert!(close(adjusted_rand_index(&a, &[7, 7, 7, 3, 3, 3]), 1.0));
        assert_eq!(adjusted_rand_index(&[1], &[1]), None);
    }
}
