//! Purchase propensity: a logistic regression, refitted every day on the customer sample as of
//! one horizon earlier, with an online model for the time before the first refit.
//!
//! Model: `p(y = 1 | z) = σ(ℓ(z))` over standardised features `z`. Once a refit exists the
//! logit is `ℓ(z) = r₀ + Σ rᵢ·zᵢ`, with `r` the coefficients of the writer's daily fit on the
//! sampled customers as of one horizon earlier (`src/pipeline/cohorts.rs`); before, it is the
//! online model's `bias + Σ wᵢ·zᵢ`.
//!
//! The online model learns every example with AdaGrad on its own log loss. Per example the
//! gradient of the log loss plus `l2/2·‖w‖²` is `gᵢ = (p − y)·zᵢ + l2·wᵢ` for the weights and
//! `g = p − y` for the bias (not penalised: it only encodes the base rate). AdaGrad gives every
//! coordinate its own step: `Gᵢ += gᵢ²; wᵢ −= lr·gᵢ / (√Gᵢ + ε)`, so rare features still learn
//! quickly while frequent ones settle. `docs/model.md` has the measurements behind the design
//! (a blend of the two, with several shares, was worse than the refit alone).
//!
//! Invariants: `weights.len() == grad_sq.len() == dim()`; accumulators start at 0 and never
//! shrink; `refit` is empty or has `dim() + 1` coefficients (bias first).

use serde::{Deserialize, Serialize};

use super::{ModelConfig, ModelError};

/// Keeps the AdaGrad step finite on the first update of a coordinate with a zero gradient.
const EPSILON: f64 = 1e-8;

/// The propensity model: the latest exact refit, or the online model before there is one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Propensity {
    weights: Vec<f64>,
    bias: f64,
    /// AdaGrad sum of squared gradients, per weight.
    grad_sq: Vec<f64>,
    /// AdaGrad sum of squared gradients of the bias.
    bias_grad_sq: f64,
    lr: f64,
    l2: f64,
    /// The last refit's coefficients, bias first; empty before the first refit.
    refit: Vec<f64>,
}

/// Logistic function, evaluated so that no intermediate overflows: for `x < 0` it uses
/// `eˣ / (1 + eˣ)`, where `eˣ` underflows harmlessly to 0 instead of `e⁻ˣ` overflowing.
pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Propensity {
    /// An untrained model (all weights 0, so it predicts 0.5) for `dim` features, with the
    /// learning rate and L2 penalty of `config`.
    pub fn new(dim: usize, config: &ModelConfig) -> Self {
        Propensity {
            weights: vec![0.0; dim],
            bias: 0.0,
            grad_sq: vec![0.0; dim],
            bias_grad_sq: 0.0,
            lr: config.learning_rate,
            l2: config.l2,
            refit: Vec::new(),
        }
    }

    /// A model of a version-2 record (no refit yet).
    pub(super) fn from_v2(
        weights: Vec<f64>,
        bias: f64,
        (grad_sq, bias_grad_sq): (Vec<f64>, f64),
        (lr, l2): (f64, f64),
    ) -> Self {
        Propensity {
            weights,
            bias,
            grad_sq,
            bias_grad_sq,
            lr,
            l2,
            refit: Vec::new(),
        }
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.weights.len()
    }

    /// The weights the model predicts with, one per feature: the refit's once there is one,
    /// the online model's before.
    pub fn weights(&self) -> Vec<f64> {
        self.fitted().map_or(&self.weights[..], |(_, r)| r).to_vec()
    }

    /// The intercept the model predicts with (the refit's once there is one).
    pub fn bias(&self) -> f64 {
        self.fitted().map_or(self.bias, |(r0, _)| r0)
    }

    /// The online model's weights and bias (what it serves before the first refit).
    pub(crate) fn online(&self) -> (&[f64], f64) {
        (&self.weights, self.bias)
    }

    /// The refit's bias and weights, if there has been a refit of this dimension.
    fn fitted(&self) -> Option<(f64, &[f64])> {
        match self.refit.split_first() {
            Some((r0, r)) if r.len() == self.weights.len() => Some((*r0, r)),
            _ => None,
        }
    }

    /// The last refit's coefficients (bias first), if there has been one.
    pub fn refit(&self) -> Option<&[f64]> {
        (!self.refit.is_empty()).then_some(self.refit.as_slice())
    }

    /// Replaces the refit's coefficients (bias first); a vector of the wrong length or with a
    /// non-finite value is ignored.
    pub(crate) fn set_refit(&mut self, coefficients: Vec<f64>) {
        if coefficients.len() == self.weights.len() + 1
            && coefficients.iter().all(|c| c.is_finite())
        {
            self.refit = coefficients;
        }
    }

    /// The online model's parameters and AdaGrad history: weights, bias, the weights' sums of
    /// squared gradients, the bias's.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn online_parts(&self) -> (&[f64], f64, &[f64], f64) {
        (&self.weights, self.bias, &self.grad_sq, self.bias_grad_sq)
    }

    /// Replaces the online model's parameters and history (see [`Self::online_parts`]) and the
    /// refit (empty: none). Returns false, changing nothing, when a length is not
    /// [`Self::dim`] (the refit's: `dim + 1`) or a value is not finite.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn set_parts(
        &mut self,
        (weights, bias, grad_sq, bias_grad_sq): (&[f64], f64, &[f64], f64),
        refit: &[f64],
    ) -> bool {
        let dim = self.dim();
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if weights.len() != dim
            || grad_sq.len() != dim
            || !(refit.is_empty() || refit.len() == dim + 1)
            || !(finite(weights) && finite(grad_sq) && finite(refit))
            || !(bias.is_finite() && bias_grad_sq.is_finite())
        {
            return false;
        }
        self.weights.copy_from_slice(weights);
        self.grad_sq.copy_from_slice(grad_sq);
        self.bias = bias;
        self.bias_grad_sq = bias_grad_sq;
        self.refit = refit.to_vec();
        true
    }

    /// `Ok` when `z` has [`Self::dim`] components.
    #[cfg(any(test, feature = "testing"))]
    pub fn check_dim(&self, z: &[f64]) -> Result<(), ModelError> {
        super::check_len(z.len(), self.dim())
    }

    /// The online model's logit.
    fn online_logit(&self, z: &[f64]) -> f64 {
        self.bias + self.weights.iter().zip(z).map(|(w, v)| w * v).sum::<f64>()
    }

    /// The model's logit (see `src/model/propensity.rs`).
    fn logit(&self, z: &[f64]) -> f64 {
        debug_assert_eq!(z.len(), self.dim(), "propensity dimension mismatch");
        match self.fitted() {
            Some((r0, r)) => r0 + r.iter().zip(z).map(|(w, v)| w * v).sum::<f64>(),
            None => self.online_logit(z),
        }
    }

    /// Probability that the label is `true` for features `z`, in `[0, 1]`; finite for any finite
    /// input, however large the logit.
    pub fn predict(&self, z: &[f64]) -> f64 {
        sigmoid(self.logit(z))
    }

    /// One AdaGrad step of the online model on example `(z, label)`, on its own prediction's
    /// loss. Returns the model's prediction (the refit's once there is one) made *before* the
    /// update, which is what prequential (test-then-train) evaluation must score.
    ///
    /// A `z` of the wrong length trips a `debug_assert!`; in release the prediction is returned
    /// and the model is left unchanged.
    pub fn learn(&mut self, z: &[f64], label: bool) -> f64 {
        let p = self.predict(z);
        if z.len() != self.dim() {
            return p;
        }
        let err = sigmoid(self.online_logit(z)) - if label { 1.0 } else { 0.0 };
        for ((w, g_sq), &v) in self.weights.iter_mut().zip(&mut self.grad_sq).zip(z) {
            let g = err * v + self.l2 * *w;
            *g_sq += g * g;
            *w -= self.lr * g / (g_sq.sqrt() + EPSILON);
        }
        self.bias_grad_sq += err * err;
        self.bias -= self.lr * err / (self.bias_grad_sq.sqrt() + EPSILON);
        p
    }

    /// Per-feature contribution `wᵢ·zᵢ` to the logit (the bias is not included), for explaining a
    /// score; `w` the served [`Self::weights`].
    pub fn contributions(&self, z: &[f64]) -> Vec<f64> {
        debug_assert_eq!(z.len(), self.dim(), "propensity dimension mismatch");
        self.weights().iter().zip(z).map(|(w, v)| w * v).collect()
    }

    /// Forgets everything learned (weights, bias, AdaGrad history and the refit); keeps `lr` and
    /// `l2`.
    #[cfg(any(test, feature = "testing"))]
    pub fn reset(&mut self) {
        self.reset_online();
        self.refit.clear();
    }

    /// Forgets what the online model learned (weights, bias, AdaGrad history); keeps the refit,
    /// `lr` and `l2`.
    pub(crate) fn reset_online(&mut self) {
        self.weights.fill(0.0);
        self.grad_sq.fill(0.0);
        self.bias = 0.0;
        self.bias_grad_sq = 0.0;
    }

    /// Checks the internal invariants of a decoded model.
    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        if self.weights.len() != self.grad_sq.len() {
            return Err(ModelError::Inconsistent(format!(
                "propensity has {} weights but {} gradient accumulators",
                self.weights.len(),
                self.grad_sq.len()
            )));
        }
        if !self.refit.is_empty() && self.refit.len() != self.weights.len() + 1 {
            return Err(ModelError::Inconsistent(format!(
                "propensity has {} weights but {} refit coefficients (expected none or {})",
                self.weights.len(),
                self.refit.len(),
                self.weights.len() + 1
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;
    use rand_pcg::Pcg64;

    fn model(dim: usize) -> Propensity {
        Propensity::new(dim, &ModelConfig::default())
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-15
    }

    #[test]
    fn adagrad_steps_match_hand_computation() {
        // lr = 0.1, l2 = 1e-4, ε = 1e-8, everything starts at 0.
        let mut m = model(2);
        let z = [1.0, -2.0];

        // Step 1, label 1: logit 0, p = 0.5, err = p − y = −0.5; the L2 term is 0 (w = 0).
        //   g0 = −0.5·1  = −0.5, G0 = 0.25, w0 = 0 − 0.1·(−0.5)/(0.5 + 1e-8) = 0.099999998…
        //   g1 = −0.5·−2 =  1.0, G1 = 1.0,  w1 = 0 − 0.1·1.0/(1.0 + 1e-8)    = −0.099999999…
        //   gb = −0.5,           Gb = 0.25, b  = 0.099999998…
        assert_eq!(m.learn(&z, true), 0.5);
        assert!(close(m.weights[0], 0.05 / 0.500_000_01));
        assert!(close(m.weights[1], -0.1 / 1.000_000_01));
        assert!(close(m.bias, 0.05 / 0.500_000_01));
        assert_eq!(m.grad_sq, vec![0.25, 1.0]);
        assert_eq!(m.bias_grad_sq, 0.25);

        // Step 2, label 0, same z: logit = w0 − 2·w1 + b = 0.399999994,
        // p = σ(0.399999994) = 0.5986876586708875, err = p.
        let (w0, w1, b) = (m.weights[0], m.weights[1], m.bias);
        let p = m.learn(&z, false);
        assert!(close(p, 0.598_687_658_670_887_5));
        //   g0 = p·1 + 1e-4·w0,  G0 = 0.25 + g0² = 0.608438886497763
        //   g1 = p·−2 + 1e-4·w1, G1 = 1.0 + g1²  = 2.4337315981854237
        //   gb = p,              Gb = 0.25 + p²  = 0.6084269126448291
        let g0 = p + 1e-4 * w0;
        let g1 = -2.0 * p + 1e-4 * w1;
        assert!(close(m.grad_sq[0], 0.608_438_886_497_763));
        assert!(close(m.grad_sq[1], 2.433_731_598_185_423_7));
        assert!(close(m.bias_grad_sq, 0.608_426_912_644_829_1));
        let w0_new = w0 - 0.1 * g0 / (0.608_438_886_497_763_f64.sqrt() + 1e-8);
        let w1_new = w1 - 0.1 * g1 / (2.433_731_598_185_423_7_f64.sqrt() + 1e-8);
        let b_new = b - 0.1 * p / (0.608_426_912_644_829_1_f64.sqrt() + 1e-8);
        assert!(close(m.weights[0], w0_new) && close(w0_new, 0.023_246_341_752_400_66));
        assert!(close(m.weights[1], w1_new) && close(w1_new, -0.023_246_605_643_419_016));
        assert!(close(m.bias, b_new) && close(b_new, 0.023_246_868_522_321_44));
    }

    #[test]
    fn predict_is_stable_at_extreme_logits() {
        let mut m = model(1);
        m.weights[0] = 1.0;
        for (x, want) in [(1000.0, 1.0), (-1000.0, 0.0), (0.0, 0.5)] {
            let p = m.predict(&[x]);
            assert!(p.is_finite());
            assert_eq!(p, want);
        }
        // Learning from a saturated, wrong prediction stays finite too.
        m.learn(&[1000.0], false);
        assert!(m.weights[0].is_finite() && m.bias.is_finite());
        assert!(m.predict(&[-1e300]).is_finite());
    }

    /// Exact ROC AUC by pairwise comparison (ties count one half).
    fn pairwise_auc(scores: &[(f64, bool)]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for &(sp, _) in scores.iter().filter(|s| s.1) {
            for &(sn, _) in scores.iter().filter(|s| !s.1) {
                pairs += 1.0;
                wins += if sp > sn {
                    1.0
                } else if sp == sn {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / pairs
    }

    #[test]
    fn learns_planted_linear_signal() {
        let mut rng = Pcg64::seed_from_u64(11);
        let true_w = [4.0, -3.0, 2.0, 0.0, 3.0];
        let true_b = -1.0;
        let sample = |rng: &mut Pcg64| {
            let z: Vec<f64> = (0..5).map(|_| rng.sample(StandardNormal)).collect();
            let logit = true_b + true_w.iter().zip(&z).map(|(w, v)| w * v).sum::<f64>();
            let y = rng.gen::<f64>() < sigmoid(logit);
            (z, y)
        };
        let mut m = model(5);
        for _ in 0..5000 {
            let (z, y) = sample(&mut rng);
            m.learn(&z, y);
        }
        let held_out: Vec<(Vec<f64>, bool)> = (0..2000).map(|_| sample(&mut rng)).collect();
        let scored: Vec<(f64, bool)> = held_out.iter().map(|(z, y)| (m.predict(z), *y)).collect();
        let auc = pairwise_auc(&scored);
        assert!(auc > 0.9, "held-out AUC {auc}");
        // The direction of the learned weights matches the planted one.
        let dot: f64 = m.weights.iter().zip(&true_w).map(|(a, b)| a * b).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let cosine = dot / (norm(&m.weights) * norm(&true_w));
        assert!(cosine > 0.95, "cosine {cosine}");
    }

    #[test]
    fn contributions_and_reset() {
        let mut m = model(3);
        m.weights = vec![1.0, -2.0, 0.5];
        m.bias = 0.25;
        assert_eq!(m.contributions(&[2.0, 1.0, -4.0]), vec![2.0, -2.0, -2.0]);
        m.learn(&[1.0, 1.0, 1.0], true);
        m.reset();
        assert_eq!(m, model(3));
        assert_eq!(m.predict(&[5.0, 5.0, 5.0]), 0.5);
    }

    #[test]
    fn a_refit_replaces_the_online_model_which_keeps_learning_on_its_own() {
        let mut m = model(2);
        m.weights = vec![1.0, -1.0];
        m.bias = 0.5;
        let z = [2.0, 1.0];
        assert_eq!(m.predict(&z), sigmoid(0.5 + 2.0 - 1.0));
        m.set_refit(vec![0.1, 0.2]); // wrong length: ignored
        assert_eq!(m.refit(), None);
        m.set_refit(vec![-0.5, 3.0, 0.0]);
        // −0.5 + 3·2 + 0·1 = 5.5
        assert!(close(m.predict(&z), sigmoid(5.5)));
        assert_eq!(m.weights(), vec![3.0, 0.0]);
        assert!(close(m.bias(), -0.5));
        assert_eq!(m.contributions(&z), vec![6.0, 0.0]);
        // The online step uses the online model's own prediction: err = σ(1.5) − 1; the
        // returned prediction is the served one.
        let p = m.learn(&z, true);
        assert!(close(p, sigmoid(5.5)));
        let g0 = (sigmoid(1.5) - 1.0) * 2.0 + 1e-4 * 1.0;
        assert!(close(m.weights[0], 1.0 - 0.1 * g0 / (g0.abs() + 1e-8)));
        m.reset();
        assert_eq!(m.refit(), None);
        assert_eq!(m, model(2));
    }

    #[test]
    fn wrong_length_is_checked() {
        let m = model(52);
        assert_eq!(
            m.check_dim(&[0.0; 3]).unwrap_err().to_string(),
            "vector has 3 dimensions; the model expects 52"
        );
        assert_eq!(m.check_dim(&[0.0; 52]), Ok(()));
    }
}
