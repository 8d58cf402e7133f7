//! Online models over customer feature vectors: standardisation, purchase propensity, segments.
//!
//! Every model here learns one example at a time (no batch refits), so the whole learned state is
//! small, can be updated in the same atomic write as the features that produced it, and is
//! persisted as one [`ModelState`] record ([`ModelState::encode`] / [`ModelState::decode`]).
//!
//! The pieces:
//! - [`Scaler`]: running mean and variance per dimension (Welford); maps raw features `x` to
//!   standardised features `z`. The other models only ever see `z`.
//! - [`Propensity`]: logistic regression trained online with AdaGrad and L2.
//! - [`Segments`]: k-means refitted on a schedule to a uniform sample of the customers as of now,
//!   in the sample's own standardisation.
//! - [`Prequential`]: test-then-train metrics (log loss, rolling ROC AUC) of the propensity model.
//! - [`strategy::Strategy`]: per-segment marketing-action statistics, Thompson sampling.
//! - [`drift::DriftMonitor`]: drift detection (Page–Hinkley) on the forecasts of a frozen copy of
//!   the propensity model, in deadline order.
//!
//! Invariants, checked by [`ModelState::decode`] so that a corrupted record is an error rather than
//! a later index-out-of-bounds panic:
//! - all models in one state share one dimension `dim` (the scaler's);
//! - the centroid matrix is exactly `k × dim`, contiguous and row-major;
//! - per-segment vectors (`updates`, `segment_sizes`) have exactly `k` entries;
//! - nothing is randomised without the persisted, seeded RNG, so replaying the same inputs from
//!   the same state gives a bit-identical state.
//!
//! Hot-path methods take `&[f64]` and only `debug_assert!` the length; in release builds a
//! wrong-length vector never panics (mutating methods ignore it). Callers handling user-supplied
//! vectors should check them first with `check_dim` or [`check_vector`].

#![deny(missing_docs)]

pub mod drift;
mod legacy;
pub(crate) mod logistic;
#[cfg(feature = "cluster")]
pub mod merge;
mod metrics;
pub mod names;
pub mod popularity;
pub(crate) mod propensity;
pub mod rebuy;
mod scaler;
mod segments;
mod state;
pub mod strategy;

pub use crate::error::ModelError;
pub use metrics::Prequential;
pub use propensity::Propensity;
pub use scaler::Scaler;
pub use segments::Segments;
#[cfg(any(feature = "cli", feature = "testing"))]
pub(crate) use segments::{kmeans_pp, lloyd, nearest_row};
pub use state::ModelState;

use serde::{Deserialize, Serialize};

/// Tuning of the online models. Read once when a store's model state is created; the values in use are
/// then persisted inside the state, so changing the config does not alter an existing state.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// Number of customer segments `k` (k-means clusters). Must be at least 1.
    pub segments: usize,
    /// Events before the segments are first fitted, and the fewest events between two fits.
    /// Values below `segments` act as `segments`.
    pub reservoir_size: usize,
    /// No longer used: the segments are refitted to the customers as of now instead of
    /// following each event with a step size. Still accepted (and range-checked) so that
    /// existing config files load.
    pub kmeans_min_rate: f64,
    /// AdaGrad base learning rate of the propensity model; must be positive.
    pub learning_rate: f64,
    /// L2 penalty on the propensity weights (not the bias); must be non-negative.
    pub l2: f64,
    /// Number of most recent examples in the rolling metrics window; must be at least 1.
    pub auc_window: usize,
    /// Seed of the segment-seeding RNG.
    pub seed: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            segments: 8,
            reservoir_size: 512,
            kmeans_min_rate: 0.01,
            learning_rate: 0.1,
            l2: 1e-4,
            auc_window: 1000,
            seed: 42,
        }
    }
}

impl ModelConfig {
    /// Checks every value is in its documented range.
    ///
    /// The constructors do not require this (they never panic on odd values), but a config that
    /// fails it gives a model that does not learn usefully, so loaders should call it.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |msg: String| Err(ModelError::InvalidConfig(msg));
        if self.segments == 0 {
            return bad("segments must be at least 1".into());
        }
        if self.reservoir_size == 0 {
            return bad("reservoir_size must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.kmeans_min_rate) {
            return bad(format!(
                "kmeans_min_rate is {}; it must be in [0, 1]",
                self.kmeans_min_rate
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning_rate is {}; it must be positive and finite",
                self.learning_rate
            ));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(format!(
                "l2 is {}; it must be non-negative and finite",
                self.l2
            ));
        }
        if self.auc_window == 0 {
            return bad("auc_window must be at least 1".into());
        }
        Ok(())
    }
}

/// Checks that `z` has `expected` components and that all of them are finite.
///
/// Models accept NaN without panicking, but one NaN folded into a running mean or a weight stays
/// there forever, so vectors from outside the process should pass this first.
pub fn check_vector(z: &[f64], expected: usize) -> Result<(), ModelError> {
    check_len(z.len(), expected)?;
    match z.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ModelError::NonFinite {
            index,
            value: z[index],
        }),
        None => Ok(()),
    }
}

/// Length check shared by the models' `check_dim` methods.
fn check_len(got: usize, expected: usize) -> Result<(), ModelError> {
    if got == expected {
        Ok(())
    } else {
        Err(ModelError::DimensionMismatch { got, expected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(ModelConfig::default().validate(), Ok(()));
    }

    #[test]
    fn bad_config_values_are_named() {
        let cfg = ModelConfig {
            segments: 0,
            ..ModelConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert_eq!(err, "invalid model config: segments must be at least 1");
        let cfg = ModelConfig {
            kmeans_min_rate: f64::NAN,
            ..ModelConfig::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = ModelConfig {
            learning_rate: 0.0,
            ..ModelConfig::default()
        };
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn check_vector_reports_length_then_finiteness() {
        assert_eq!(
            check_vector(&[1.0, 2.0, 3.0], 52).unwrap_err().to_string(),
            "vector has 3 dimensions; the model expects 52"
        );
        // NaN != NaN, so match instead of comparing the whole error.
        assert!(matches!(
            check_vector(&[1.0, f64::NAN], 2),
            Err(ModelError::NonFinite { index: 1, value }) if value.is_nan()
        ));
        assert_eq!(check_vector(&[1.0, 2.0], 2), Ok(()));
    }
}
