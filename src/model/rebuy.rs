//! Which of a customer's own items they buy next: the ranking of the first tier of
//! [`crate::Db::recommend`], learned online from repeat purchases.
//!
//! An item a customer engaged with is described by three [`FEATURES`] as of a time `t`:
//! `ln(1 + purchases of it)`, `ln(1 + days since they last engaged with it)` and
//! `ln(1 + its decayed count in everyone's popularity summary)` (0 for an item outside it). The
//! chance that the next item they buy again is `i`, among the items of their engagement list,
//! is a softmax of `w · f_i` (a conditional logit).
//!
//! **Learned online.** Every purchase of an item already in the customer's list, bought before
//! `t` (not in the same basket), is one example: the candidates are the list's items last
//! engaged before `t`, the chosen one is the item bought. The writer takes one AdaGrad step on
//! its log-likelihood, `w += η · (f_chosen − Σ p_i f_i) / √G`. The weights start from
//! [`PRIOR`] (more purchases, more recent, more popular: more likely), so a store ranks
//! sensibly before its first repeat purchase; what they learn on a real item log is in
//! `docs/model.md` ("Recommendations").
//!
//! Part of the model state (encoded after the popularity summary, model record version 5),
//! committed with every batch.

use crate::features::DAY_MS;
use serde::{Deserialize, Serialize};

/// Features per candidate item.
pub const FEATURES: usize = 3;
/// The weights before any example: purchases, recency (negative: longer ago, less likely),
/// popularity.
pub const PRIOR: [f32; FEATURES] = [1.0, -0.5, 0.5];
/// AdaGrad step size.
const ETA: f32 = 0.05;

/// The features of one candidate (see the module docs).
pub fn features(purchases: u32, last_ms: i64, popularity: f64, t_ms: i64) -> [f32; FEATURES] {
    let days = (t_ms - last_ms).max(0) as f64 / DAY_MS;
    [
        (f64::from(purchases)).ln_1p() as f32,
        days.ln_1p() as f32,
        popularity.max(0.0).ln_1p() as f32,
    ]
}

/// The learned weights (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rebuy {
    /// Weights of the features.
    pub w: [f32; FEATURES],
    /// AdaGrad's sums of squared gradients.
    pub g2: [f32; FEATURES],
    /// Examples learned.
    pub examples: u64,
}

impl Default for Rebuy {
    fn default() -> Rebuy {
        Rebuy {
            w: PRIOR,
            g2: [0.0; FEATURES],
            examples: 0,
        }
    }
}

impl Rebuy {
    /// `w · f`.
    pub fn score(&self, f: &[f32; FEATURES]) -> f64 {
        self.w
            .iter()
            .zip(f)
            .map(|(w, x)| f64::from(*w) * f64::from(*x))
            .sum()
    }

    /// The softmax of the candidates' scores: the chance each is the one bought next.
    pub fn chances(&self, candidates: &[[f32; FEATURES]]) -> Vec<f64> {
        let scores: Vec<f64> = candidates.iter().map(|f| self.score(f)).collect();
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
        let total: f64 = exp.iter().sum();
        exp.into_iter().map(|e| e / total).collect()
    }

    /// One example: of `candidates`, `chosen` was bought. Fewer than two candidates teach
    /// nothing.
    pub fn learn(&mut self, candidates: &[[f32; FEATURES]], chosen: usize) {
        if candidates.len() < 2 || chosen >= candidates.len() {
            return;
        }
        let p = self.chances(candidates);
        for k in 0..FEATURES {
            let expected: f64 = p
                .iter()
                .zip(candidates)
                .map(|(p, f)| p * f64::from(f[k]))
                .sum();
            let g = (f64::from(candidates[chosen][k]) - expected) as f32;
            self.g2[k] += g * g;
            if self.g2[k] > 0.0 {
                self.w[k] += ETA * g / self.g2[k].sqrt();
            }
        }
        self.examples += 1;
    }

    /// Whether decoded weights are sound: finite, non-negative sums.
    pub fn is_consistent(&self) -> bool {
        self.w.iter().all(|w| w.is_finite()) && self.g2.iter().all(|g| g.is_finite() && *g >= 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = DAY_MS as i64;

    #[test]
    fn learns_that_the_item_bought_most_is_bought_again() {
        // Each time, the customer buys again the item they bought most, whatever its recency
        // and popularity: the purchase weight grows, the others follow the evidence.
        let mut r = Rebuy {
            w: [0.0; FEATURES],
            ..Rebuy::default()
        };
        let t = 100 * DAY;
        for _ in 0..500 {
            let candidates = [
                features(9, t - 30 * DAY, 1.0, t),
                features(1, t - DAY, 50.0, t),
                features(2, t - 5 * DAY, 5.0, t),
            ];
            r.learn(&candidates, 0);
        }
        assert_eq!(r.examples, 500);
        let p = r.chances(&[
            features(9, t - 30 * DAY, 1.0, t),
            features(1, t - DAY, 50.0, t),
        ]);
        assert!(p[0] > 0.9, "{p:?} with {r:?}");
        assert!(r.is_consistent());
        // A single candidate teaches nothing.
        r.learn(&[features(1, t, 1.0, t)], 0);
        assert_eq!(r.examples, 500);
    }

    #[test]
    fn the_prior_prefers_frequent_recent_popular_items() {
        let r = Rebuy::default();
        let t = 100 * DAY;
        let p = r.chances(&[
            features(5, t - DAY, 20.0, t),
            features(1, t - 60 * DAY, 0.0, t),
        ]);
        assert!(p[0] > p[1]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}
