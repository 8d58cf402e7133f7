//! Per-segment marketing-action statistics, learned from feedback.
//!
//! For every (segment, action) pair the model keeps the observed conversions and
//! non-conversions. Combined with a rule-based prior (a Beta distribution worth
//! [`PRIOR_STRENGTH`] pseudo-observations, centred higher on the action the domain rules suggest
//! for the segment), they form a Beta posterior. Recommendations use Thompson sampling: draw one
//! conversion rate per action from its posterior and take the best, so uncertain actions are
//! still explored while clearly better ones win. A cold start therefore gives the rule's action.
//!
//! Invariant: `counts` has exactly `k × actions` entries (checked on decode).

use super::ModelError;
use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

/// Pseudo-observations carried by the rule-based prior.
pub const PRIOR_STRENGTH: f64 = 10.0;
/// Prior mean conversion rate of the action the rules suggest.
pub const RULE_PRIOR_MEAN: f64 = 0.2;
/// Prior mean conversion rate of every other action.
pub const OTHER_PRIOR_MEAN: f64 = 0.05;

/// Observed outcomes of one (segment, action) pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionStats {
    /// Conversions.
    pub successes: u64,
    /// Non-conversions.
    pub failures: u64,
}

/// A Beta posterior for one action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    /// Alpha (prior + successes).
    pub alpha: f64,
    /// Beta (prior + failures).
    pub beta: f64,
}

impl Posterior {
    /// Posterior mean conversion rate.
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
}

/// Outcome statistics for every (segment, action) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    k: usize,
    actions: Vec<String>,
    counts: Vec<ActionStats>,
}

impl Strategy {
    /// Empty statistics for `k` segments and the named actions.
    pub fn new(k: usize, actions: Vec<String>) -> Strategy {
        Strategy {
            k,
            counts: vec![ActionStats::default(); k * actions.len()],
            actions,
        }
    }

    /// The action names, in index order.
    pub fn actions(&self) -> &[String] {
        &self.actions
    }

    /// The index of an action name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.actions.iter().position(|a| a == name)
    }

    /// The same statistics for a different action catalogue: actions kept by name keep their
    /// counts, new ones start empty, removed ones are dropped.
    pub fn with_actions(&self, actions: &[String]) -> Strategy {
        let mut out = Strategy::new(self.k, actions.to_vec());
        for (new_a, name) in actions.iter().enumerate() {
            if let Some(old_a) = self.index_of(name) {
                for seg in 0..self.k {
                    out.counts[seg * actions.len() + new_a] = self.stats(seg, old_a);
                }
            }
        }
        out
    }

    /// Number of segments.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The statistics of one pair (zeros for an out-of-range pair).
    pub fn stats(&self, segment: usize, action: usize) -> ActionStats {
        if segment >= self.k || action >= self.actions.len() {
            return ActionStats::default();
        }
        self.counts[segment * self.actions.len() + action]
    }

    /// Records one outcome. Out-of-range pairs are ignored (callers validate names first).
    pub fn record(&mut self, segment: usize, action: usize, converted: bool) {
        if segment >= self.k || action >= self.actions.len() {
            return;
        }
        let s = &mut self.counts[segment * self.actions.len() + action];
        if converted {
            s.successes += 1;
        } else {
            s.failures += 1;
        }
    }

    /// Takes back one outcome recorded with [`Strategy::record`] (an erased customer's): the
    /// count goes down by one, never below zero. Out-of-range pairs are ignored.
    pub fn unrecord(&mut self, segment: usize, action: usize, converted: bool) {
        if segment >= self.k || action >= self.actions.len() {
            return;
        }
        let s = &mut self.counts[segment * self.actions.len() + action];
        if converted {
            s.successes = s.successes.saturating_sub(1);
        } else {
            s.failures = s.failures.saturating_sub(1);
        }
    }

    /// Every pair's statistics, segment-major (`segment * actions + action`).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn counts(&self) -> &[ActionStats] {
        &self.counts
    }

    /// Replaces every pair's statistics (layout of [`Self::counts`]); returns false, changing
    /// nothing, for a slice of another length.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn set_counts(&mut self, counts: &[ActionStats]) -> bool {
        if counts.len() != self.counts.len() {
            return false;
        }
        self.counts.copy_from_slice(counts);
        true
    }

    /// The posterior of one pair, given which action the rules favour for the segment.
    pub fn posterior(&self, segment: usize, action: usize, rule_action: usize) -> Posterior {
        let mean = if action == rule_action {
            RULE_PRIOR_MEAN
        } else {
            OTHER_PRIOR_MEAN
        };
        let s = self.stats(segment, action);
        Posterior {
            alpha: mean * PRIOR_STRENGTH + s.successes as f64,
            beta: (1.0 - mean) * PRIOR_STRENGTH + s.failures as f64,
        }
    }

    /// Chooses an action for `segment`: by Thompson sampling with `rng`, or, when `greedy`, the
    /// highest posterior mean. Returns the action index and its posterior.
    pub fn choose<R: Rng>(
        &self,
        segment: usize,
        rule_action: usize,
        greedy: bool,
        rng: &mut R,
    ) -> Option<(usize, Posterior)> {
        let mut best: Option<(usize, Posterior, f64)> = None;
        for a in 0..self.actions.len() {
            let post = self.posterior(segment, a, rule_action);
            let score = if greedy {
                post.mean()
            } else {
                // Parameters are always positive and finite here, so Beta::new succeeds; fall
                // back to the mean rather than panic if that ever changes.
                Beta::new(post.alpha, post.beta)
                    .map(|d| d.sample(rng))
                    .unwrap_or_else(|_| post.mean())
            };
            if best.as_ref().is_none_or(|(_, _, s)| score > *s) {
                best = Some((a, post, score));
            }
        }
        best.map(|(a, p, _)| (a, p))
    }

    /// Forgets all outcomes (keeps the shape).
    #[cfg(any(test, feature = "testing"))]
    pub fn reset(&mut self) {
        self.counts
            .iter_mut()
            .for_each(|c| *c = ActionStats::default());
    }

    /// Checks the shape after decoding.
    ///
    /// # Errors
    /// [`ModelError::Inconsistent`] if the table does not have `k × actions` entries.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.counts.len() != self.k * self.actions.len() {
            return Err(ModelError::Inconsistent(format!(
                "strategy table has {} entries, expected {}x{}",
                self.counts.len(),
                self.k,
                self.actions.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("a{i}")).collect()
    }

    #[test]
    fn remapping_keeps_counts_by_name() {
        let mut s = Strategy::new(2, names(3));
        s.record(1, 2, true);
        let r = s.with_actions(&["a2".to_string(), "new".to_string()]);
        assert_eq!(r.stats(1, 0).successes, 1);
        assert_eq!(r.stats(1, 1), ActionStats::default());
        assert!(r.validate().is_ok());
    }

    #[test]
    fn cold_start_follows_the_rule_and_greedy_is_the_posterior_mean() {
        let s = Strategy::new(2, names(3));
        let mut rng = Pcg64::seed_from_u64(1);
        let (a, p) = s.choose(0, 2, true, &mut rng).expect("has actions");
        assert_eq!(a, 2);
        assert!((p.mean() - RULE_PRIOR_MEAN).abs() < 1e-12);
        // Thompson sampling mostly follows the rule at cold start too.
        let picks = (0..1000)
            .filter(|_| s.choose(0, 2, false, &mut rng).map(|x| x.0) == Some(2))
            .count();
        assert!(picks > 700, "rule action picked {picks}/1000 times");
    }

    #[test]
    fn posterior_is_prior_plus_counts() {
        let mut s = Strategy::new(1, names(2));
        for _ in 0..3 {
            s.record(0, 1, true);
        }
        s.record(0, 1, false);
        let p = s.posterior(0, 1, 0);
        assert!((p.alpha - (0.05 * 10.0 + 3.0)).abs() < 1e-12);
        assert!((p.beta - (0.95 * 10.0 + 1.0)).abs() < 1e-12);
        s.record(5, 0, true); // out of range: ignored
        assert_eq!(s.stats(5, 0), ActionStats::default());
    }

    #[test]
    fn thompson_sampling_finds_the_best_action() {
        let truth = [0.02, 0.30, 0.10, 0.05];
        let mut s = Strategy::new(1, names(truth.len()));
        let mut rng = Pcg64::seed_from_u64(7);
        for _ in 0..3000 {
            let (a, _) = s.choose(0, 0, false, &mut rng).expect("has actions");
            let converted = rng.gen::<f64>() < truth[a];
            s.record(0, a, converted);
        }
        assert_eq!(s.choose(0, 0, true, &mut rng).map(|x| x.0), Some(1));
    }
}
