//! How much each list counts in [`crate::Db::recommend`]'s blend, learned online.
//!
//! The recommender adds up, item by item, shares from four lists ([`SOURCES`]): the customer's
//! own items (the rebuy ranking's chances), the items related to theirs (co-occurrence), the
//! items everyone buys, and the items their segment buys. Each list's shares sum to one, so
//! the blend `Σ_k α_k · share_k(item)` is a mixture of four distributions over items, and `α`
//! its mixture weights (summing to one).
//!
//! **Learned online** by stochastic EM on the purchases themselves: at every purchase naming an
//! item, the writer computes each list's share of that item for that customer just before it
//! (as the recommender would have shown it), the responsibilities `r_k = α_k share_k / Σ_j α_j
//! share_j`, and moves `α ← (1 − η) α + η r` (η = [`RATE`]); a purchase no list predicted
//! teaches nothing. Weights start equal and never fall below [`FLOOR`], so a list that stops
//! helping can come back. So a store whose segments say a lot about what customers buy (the
//! generator's personas) learns to lean on the segment's list, and a store where they do not
//! (the real wholesale log) learns to leave it out: `docs/model.md`, "Recommendations".
//!
//! Part of the model state (after the rebuy weights, model record version 5).

use serde::{Deserialize, Serialize};

/// The lists blended: own, related, everyone's popular, the segment's popular.
pub const SOURCES: usize = 4;
/// Step of the stochastic EM: a purchase moves the weights by this share.
pub const RATE: f32 = 0.002;
/// No weight falls below this.
pub const FLOOR: f32 = 0.01;
/// The blend learns from one purchase in this many (each costs the related items' scores:
/// tens of microseconds).
pub const EVERY: u64 = 4;

/// The mixture weights (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blend {
    /// Weight of each list, summing to one.
    pub alpha: [f32; SOURCES],
    /// Purchases learned from.
    pub examples: u64,
    /// Purchases seen (one in [`EVERY`] is learned from).
    pub seen: u64,
}

impl Default for Blend {
    fn default() -> Blend {
        Blend {
            alpha: [1.0 / SOURCES as f32; SOURCES],
            examples: 0,
            seen: 0,
        }
    }
}

impl Blend {
    /// Counts a purchase; whether it is one to learn from.
    pub fn due(&mut self) -> bool {
        self.seen += 1;
        self.seen % EVERY == 1
    }

    /// One purchase: `shares[k]` is list `k`'s share of the item bought, for that customer,
    /// just before.
    pub fn learn(&mut self, shares: &[f64; SOURCES]) {
        let mixed: f64 = self
            .alpha
            .iter()
            .zip(shares)
            .map(|(a, s)| f64::from(*a) * s.max(0.0))
            .sum();
        if !(mixed > 0.0) || !mixed.is_finite() {
            return;
        }
        for (a, s) in self.alpha.iter_mut().zip(shares) {
            let r = (f64::from(*a) * s.max(0.0) / mixed) as f32;
            *a = ((1.0 - RATE) * *a + RATE * r).max(FLOOR);
        }
        let total: f32 = self.alpha.iter().sum();
        for a in &mut self.alpha {
            *a /= total;
        }
        self.examples += 1;
    }

    /// Whether decoded weights are sound: finite, positive, summing to one.
    pub fn is_consistent(&self) -> bool {
        self.alpha.iter().all(|a| a.is_finite() && *a > 0.0)
            && (self.alpha.iter().sum::<f32>() - 1.0).abs() < 1e-3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_that_predicts_the_purchases_gains_weight_and_none_dies() {
        let mut b = Blend::default();
        for i in 0..5_000 {
            // The segment's list predicts well, everyone's somewhat, the others not at all.
            let segment = if i % 4 == 0 { 0.0 } else { 0.3 };
            b.learn(&[0.0, 0.0, 0.05, segment]);
        }
        assert!(b.alpha[3] > 0.8, "{b:?}");
        assert!(b.alpha[3] > b.alpha[2] && b.alpha[2] > b.alpha[0]);
        assert!(b.alpha.iter().all(|a| *a >= FLOOR * 0.99), "{b:?}");
        assert!(b.is_consistent());
        // A purchase no list predicted teaches nothing.
        let before = b.clone();
        b.learn(&[0.0; SOURCES]);
        assert_eq!(b, before);
    }
}
