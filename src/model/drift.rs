//! Drift detection on the propensity model's prequential loss (Page–Hinkley test).
//!
//! Each labelled example contributes its log loss `x_t`. The test tracks the cumulative
//! deviation `m_t = Σ (x_i − x̄_i − δ)` from the running mean and its minimum `M_t`; when
//! `m_t − M_t > λ` the loss has risen persistently — the world the model learned has changed —
//! and a detection is reported and the test restarts. `δ` tolerates small fluctuations; `λ` sets
//! how much accumulated excess loss counts as drift.

use serde::{Deserialize, Serialize};

/// Default tolerance δ (in log-loss units per example).
pub const DEFAULT_DELTA: f64 = 0.05;
/// Default threshold λ.
pub const DEFAULT_LAMBDA: f64 = 100.0;
/// Examples before the test may fire (the running mean needs to settle).
pub const MIN_EXAMPLES: u64 = 200;
/// Detections kept in the state.
pub const MAX_DETECTIONS: usize = 16;

/// One detected drift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Event-time watermark when it fired, unix ms.
    pub watermark_ms: i64,
    /// Model version (committed batches) when it fired.
    pub model_version: u64,
    /// Examples seen by the test since its last restart.
    pub examples: u64,
    /// The statistic `m_t − M_t` at detection.
    pub statistic: f64,
}

/// The Page–Hinkley test state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageHinkley {
    delta: f64,
    lambda: f64,
    n: u64,
    mean: f64,
    cumulative: f64,
    minimum: f64,
    /// Most recent detections, oldest first.
    pub detections: Vec<Detection>,
}

impl Default for PageHinkley {
    fn default() -> Self {
        PageHinkley::new(DEFAULT_DELTA, DEFAULT_LAMBDA)
    }
}

impl PageHinkley {
    /// A test with tolerance `delta` and threshold `lambda`.
    pub fn new(delta: f64, lambda: f64) -> PageHinkley {
        PageHinkley {
            delta,
            lambda,
            n: 0,
            mean: 0.0,
            cumulative: 0.0,
            minimum: 0.0,
            detections: Vec::new(),
        }
    }

    /// Adds one observation (a loss). Returns the statistic if drift was detected; the test then
    /// restarts.
    pub fn observe(&mut self, x: f64) -> Option<f64> {
        if !x.is_finite() {
            return None;
        }
        self.n += 1;
        self.mean += (x - self.mean) / self.n as f64;
        self.cumulative += x - self.mean - self.delta;
        self.minimum = self.minimum.min(self.cumulative);
        let stat = self.cumulative - self.minimum;
        if self.n >= MIN_EXAMPLES && stat > self.lambda {
            self.restart();
            return Some(stat);
        }
        None
    }

    /// Examples since the last restart.
    pub fn examples(&self) -> u64 {
        self.n
    }

    /// Forgets the running statistics (keeps past detections).
    pub fn restart(&mut self) {
        self.n = 0;
        self.mean = 0.0;
        self.cumulative = 0.0;
        self.minimum = 0.0;
    }

    /// Records a detection, keeping the most recent [`MAX_DETECTIONS`].
    pub fn push_detection(&mut self, d: Detection) {
        self.detections.push(d);
        if self.detections.len() > MAX_DETECTIONS {
            self.detections.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    #[test]
    fn stationary_loss_does_not_fire_and_a_jump_does() {
        let mut ph = PageHinkley::default();
        let mut rng = Pcg64::seed_from_u64(3);
        for _ in 0..20_000 {
            assert_eq!(ph.observe(0.4 + rng.gen_range(-0.2..0.2)), None);
        }
        let mut fired_after = None;
        for i in 0..2000 {
            if ph.observe(1.2 + rng.gen_range(-0.2..0.2)).is_some() {
                fired_after = Some(i);
                break;
            }
        }
        // Excess per example ≈ 0.8 − δ = 0.75, so λ = 100 is crossed after ~133 examples.
        let i = fired_after.expect("drift detected");
        assert!((110..200).contains(&i), "fired after {i}");
        assert_eq!(ph.examples(), 0, "restarted");
    }

    #[test]
    fn statistic_matches_hand_computation() {
        let mut ph = PageHinkley::new(0.0, 1e9);
        for x in [1.0, 1.0, 4.0] {
            ph.observe(x);
        }
        // means: 1, 1, 2; cumulative: 0, 0, 2; minimum 0.
        assert!((ph.cumulative - 2.0).abs() < 1e-12);
        assert_eq!(ph.minimum, 0.0);
    }
}
