//! Prequential (test-then-train) evaluation of a binary classifier.
//!
//! Every example is scored by the model *before* the model learns from it, so the metrics are an
//! honest estimate of out-of-sample quality without a held-out set. Two views are kept:
//! cumulative log loss over everything, and a rolling window of the most recent predictions for
//! ROC AUC and log loss "as of now".
//!
//! Invariants: `window.len() <= capacity`, `capacity >= 1`, `positives <= examples`. Window
//! predictions are stored as `f32` to halve memory; ties in AUC are decided at that precision.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ModelError;

/// Predictions are clipped to `[P_CLIP, 1 − P_CLIP]` before taking logs, so a confident mistake
/// costs about 34.5 nats instead of infinity.
const P_CLIP: f64 = 1e-15;

/// Log loss of one prediction, after clipping.
fn log_loss_of(p: f64, label: bool) -> f64 {
    let p = p.clamp(P_CLIP, 1.0 - P_CLIP);
    if label {
        -p.ln()
    } else {
        -(1.0 - p).ln()
    }
}

/// Cumulative and rolling metrics of test-then-train predictions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prequential {
    examples: u64,
    positives: u64,
    log_loss_sum: f64,
    window: VecDeque<(f32, bool)>,
    capacity: usize,
}

impl Prequential {
    /// Empty metrics with a rolling window of the last `window` examples (at least 1).
    pub fn new(window: usize) -> Self {
        let capacity = window.max(1);
        Prequential {
            examples: 0,
            positives: 0,
            log_loss_sum: 0.0,
            window: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Records one prediction `p` of `P(label = true)` and the label that was then observed.
    ///
    /// A NaN `p` is scored as 0.5 (an uninformative guess) so that one bad prediction cannot
    /// turn the cumulative loss into NaN forever.
    pub fn record(&mut self, p: f64, label: bool) {
        let p = if p.is_nan() { 0.5 } else { p };
        // Saturating: a corrupted-but-decodable count must not panic on overflow.
        self.examples = self.examples.saturating_add(1);
        self.positives = self.positives.saturating_add(u64::from(label));
        self.log_loss_sum += log_loss_of(p, label);
        if self.window.len() == self.capacity {
            self.window.pop_front();
        }
        self.window.push_back((p as f32, label));
    }

    /// Number of examples recorded.
    pub fn examples(&self) -> u64 {
        self.examples
    }

    /// Number of recorded examples whose label was `true`.
    pub fn positives(&self) -> u64 {
        self.positives
    }

    /// Mean log loss over every example recorded; `None` before the first.
    pub fn log_loss(&self) -> Option<f64> {
        (self.examples > 0).then(|| self.log_loss_sum / self.examples as f64)
    }

    /// Mean log loss over the rolling window; `None` while it is empty.
    pub fn rolling_log_loss(&self) -> Option<f64> {
        if self.window.is_empty() {
            return None;
        }
        let sum: f64 = self
            .window
            .iter()
            .map(|&(p, y)| log_loss_of(f64::from(p), y))
            .sum();
        Some(sum / self.window.len() as f64)
    }

    /// Exact ROC AUC over the rolling window; `None` unless it holds both a positive and a
    /// negative.
    ///
    /// Computed as the Mann–Whitney U statistic: sort by prediction, give tied predictions the
    /// average of their ranks, then `AUC = (R₊ − n₊(n₊+1)/2) / (n₊·n₋)` where `R₊` is the rank
    /// sum of the positives. Equals the fraction of (positive, negative) pairs ranked correctly,
    /// ties counting one half. O(n log n) in the window size.
    pub fn rolling_auc(&self) -> Option<f64> {
        let n_pos = self.window.iter().filter(|e| e.1).count();
        let n_neg = self.window.len() - n_pos;
        if n_pos == 0 || n_neg == 0 {
            return None;
        }
        let mut sorted: Vec<(f32, bool)> = self.window.iter().copied().collect();
        sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut pos_rank_sum = 0.0;
        let mut start = 0;
        while start < sorted.len() {
            let tie = sorted[start].0;
            // `total_cmp`, not `==`: a NaN (only a corrupted record holds one) equals itself
            // here, so every group has at least one element and the loop always advances.
            let end = start
                + sorted[start..]
                    .iter()
                    .take_while(|e| e.0.total_cmp(&tie).is_eq())
                    .count();
            // Ranks are 1-based; the group occupies start+1 ..= end.
            let avg_rank = (start + 1 + end) as f64 / 2.0;
            let group_pos = sorted[start..end].iter().filter(|e| e.1).count();
            pos_rank_sum += avg_rank * group_pos as f64;
            start = end;
        }
        let (n_pos, n_neg) = (n_pos as f64, n_neg as f64);
        Some((pos_rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
    }

    /// Checks the internal invariants of decoded metrics.
    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        let bad = |msg: String| Err(ModelError::Inconsistent(msg));
        if self.capacity == 0 {
            return bad("metrics window capacity is 0".into());
        }
        if self.window.len() > self.capacity {
            return bad(format!(
                "metrics window holds {} examples, capacity is {}",
                self.window.len(),
                self.capacity
            ));
        }
        if let Some(i) = self.window.iter().position(|e| !e.0.is_finite()) {
            return bad(format!(
                "metrics window entry {i} is not a finite prediction"
            ));
        }
        if self.positives > self.examples {
            return bad(format!(
                "metrics count {} positives among {} examples",
                self.positives, self.examples
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn a_nan_in_the_window_ends_and_is_refused() {
        // A NaN prediction compared with `==` made a zero-length tie group and an endless loop.
        let mut m = Prequential::new(4);
        m.record(0.2, false);
        m.record(0.9, true);
        m.window.push_back((f32::NAN, true));
        assert!(m.rolling_auc().is_some());
        assert!(m.validate().is_err());
    }
    use rand_pcg::Pcg64;

    /// AUC by comparing every (positive, negative) pair; ties count one half.
    fn brute_auc(pairs: &[(f32, bool)]) -> f64 {
        let (mut wins, mut total) = (0.0, 0.0);
        for &(sp, _) in pairs.iter().filter(|e| e.1) {
            for &(sn, _) in pairs.iter().filter(|e| !e.1) {
                total += 1.0;
                if sp > sn {
                    wins += 1.0;
                } else if sp == sn {
                    wins += 0.5;
                }
            }
        }
        wins / total
    }

    #[test]
    fn rolling_auc_equals_pairwise_with_ties() {
        let mut rng = Pcg64::seed_from_u64(9);
        for capacity in [1, 2, 7, 50, 300] {
            let mut m = Prequential::new(capacity);
            let mut all = Vec::new();
            for i in 0..700 {
                // Predictions on a coarse grid force many ties; labels correlate with them.
                let p = f64::from(rng.gen_range(0..10u8)) / 10.0;
                let y = rng.gen::<f64>() < 0.3 + 0.4 * p;
                m.record(p, y);
                all.push((p as f32, y));
                let recent = &all[all.len().saturating_sub(capacity)..];
                let has_both = recent.iter().any(|e| e.1) && recent.iter().any(|e| !e.1);
                match m.rolling_auc() {
                    Some(auc) => {
                        assert!(has_both);
                        assert!((auc - brute_auc(recent)).abs() < 1e-12, "step {i}");
                    }
                    None => assert!(!has_both),
                }
            }
        }
    }

    #[test]
    fn auc_extremes() {
        let mut m = Prequential::new(10);
        assert_eq!(m.rolling_auc(), None);
        m.record(0.9, true);
        assert_eq!(m.rolling_auc(), None);
        m.record(0.1, false);
        assert_eq!(m.rolling_auc(), Some(1.0));
        m.record(0.95, false);
        assert_eq!(m.rolling_auc(), Some(0.5));
        let mut tied = Prequential::new(10);
        tied.record(0.5, true);
        tied.record(0.5, false);
        assert_eq!(tied.rolling_auc(), Some(0.5));
    }

    #[test]
    fn log_loss_closed_form() {
        let mut m = Prequential::new(2);
        assert_eq!((m.log_loss(), m.rolling_log_loss()), (None, None));
        m.record(0.8, true);
        m.record(0.3, false);
        m.record(0.6, false);
        let want = (-(0.8f64).ln() - (0.7f64).ln() - (0.4f64).ln()) / 3.0;
        assert!((m.log_loss().expect("3 examples") - want).abs() < 1e-12);
        // Window of 2 holds the last two, stored as f32.
        let want_rolling = (-(1.0 - f64::from(0.3f32)).ln() - (1.0 - f64::from(0.6f32)).ln()) / 2.0;
        let got = m.rolling_log_loss().expect("non-empty window");
        assert!((got - want_rolling).abs() < 1e-12);
        assert_eq!((m.examples(), m.positives()), (3, 1));
    }

    #[test]
    fn log_loss_is_clipped_and_nan_safe() {
        let mut m = Prequential::new(5);
        m.record(0.0, true);
        let clipped = -(1e-15f64).ln();
        assert!((m.log_loss().expect("1 example") - clipped).abs() < 1e-9);
        assert!((clipped - 34.538_776_394_910_684).abs() < 1e-9);
        let mut m = Prequential::new(5);
        m.record(1.0, false);
        m.record(1.0, true);
        assert!(m.log_loss().expect("2 examples").is_finite());
        assert!(m.rolling_log_loss().expect("2 examples").is_finite());
        m.record(f64::NAN, true);
        assert!(m.log_loss().expect("3 examples").is_finite());
        assert!(m.rolling_auc().expect("both labels").is_finite());
    }
}
