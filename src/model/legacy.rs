//! Model states written by earlier builds (model record versions 1 and 2), read and converted.
//!
//! Version 3 adds the propensity model's refit coefficients (`Propensity::refit`); a version-2
//! state converts with none, so the first refit is the next one due, and keeps everything else.
//!
//! Version 1 kept online k-means segments (centroids in the propensity scaler's space, moved by
//! every event) and a Page–Hinkley test on the learning-time loss. Version 2 fits the segments
//! to a sample of customers as of now, in the sample's own standardisation, and monitors drift
//! with a frozen forecaster ([`DriftMonitor`]). A version-1 state converts to unfitted segments
//! whose first fit is due at the next event and to a fresh drift monitor that keeps the old
//! detections (the old test's statistics measured another quantity); every other field is kept.

use ndarray::Array2;
use rand_pcg::Pcg64;
use serde::Deserialize;

use super::drift::{Detection, DriftMonitor};
use super::state::{ModelState, SegmentStats, MAX_STATE_BYTES};
use super::strategy::Strategy;
use super::{ModelError, Prequential, Propensity, Scaler, Segments};
use crate::features::categories::CategoryNames;

/// The version-1 segments, field for field (bincode is positional).
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[allow(dead_code)] // every field must be decoded to reach the next; only some are used
struct SegmentsV1 {
    k: usize,
    dim: usize,
    centroids: Array2<f64>,
    updates: Vec<u64>,
    seeded: bool,
    reservoir: Vec<Vec<f64>>,
    reservoir_size: usize,
    seen: u64,
    min_rate: f64,
    rng: Pcg64,
}

/// The version-1 drift detection, field for field.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[allow(dead_code)] // decoded to reach the detections
struct PageHinkleyV1 {
    delta: f64,
    lambda: f64,
    n: u64,
    mean: f64,
    cumulative: f64,
    minimum: f64,
    detections: Vec<DetectionV1>,
}

/// A version-1 detection.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct DetectionV1 {
    watermark_ms: i64,
    model_version: u64,
    examples: u64,
    statistic: f64,
}

/// The propensity model of versions 1 and 2 (no refit), field for field.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct PropensityV2 {
    weights: Vec<f64>,
    bias: f64,
    grad_sq: Vec<f64>,
    bias_grad_sq: f64,
    lr: f64,
    l2: f64,
}

impl From<PropensityV2> for Propensity {
    fn from(p: PropensityV2) -> Propensity {
        Propensity::from_v2(p.weights, p.bias, (p.grad_sq, p.bias_grad_sq), (p.lr, p.l2))
    }
}

/// The version-2 model state, field for field.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct ModelStateV2 {
    version: u64,
    scaler: Scaler,
    propensity: PropensityV2,
    segments: Segments,
    metrics: Prequential,
    segment_sizes: Vec<u64>,
    watermark_ms: i64,
    labelled_through_ms: i64,
    categories: CategoryNames,
    segment_stats: Vec<SegmentStats>,
    strategy: Strategy,
    drift: DriftMonitor,
}

/// The version-1 model state, field for field.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct ModelStateV1 {
    version: u64,
    scaler: Scaler,
    propensity: PropensityV2,
    segments: SegmentsV1,
    metrics: Prequential,
    segment_sizes: Vec<u64>,
    watermark_ms: i64,
    labelled_through_ms: i64,
    categories: CategoryNames,
    segment_stats: Vec<SegmentStats>,
    strategy: Strategy,
    drift: PageHinkleyV1,
}

/// Decodes a whole body as `T`, refusing trailing bytes. Never panics.
fn decode_whole<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ModelError> {
    let config = bincode::config::standard().with_limit::<MAX_STATE_BYTES>();
    let (old, read): (T, usize) = bincode::serde::decode_from_slice(bytes, config)
        .map_err(|e| ModelError::Decode(e.to_string()))?;
    if read != bytes.len() {
        return Err(ModelError::Decode(format!(
            "{} trailing bytes after the state",
            bytes.len() - read
        )));
    }
    Ok(old)
}

/// Decodes a version-2 model state body and converts it (see the module docs). Never panics;
/// the result is validated like any decoded state.
pub(crate) fn decode_v2(bytes: &[u8]) -> Result<ModelState, ModelError> {
    let old: ModelStateV2 = decode_whole(bytes)?;
    let state = ModelState {
        version: old.version,
        scaler: old.scaler,
        propensity: old.propensity.into(),
        segments: old.segments,
        metrics: old.metrics,
        segment_sizes: old.segment_sizes,
        watermark_ms: old.watermark_ms,
        labelled_through_ms: old.labelled_through_ms,
        categories: old.categories,
        segment_stats: old.segment_stats,
        strategy: old.strategy,
        drift: old.drift,
        popularity: Default::default(),
        rebuy: Default::default(),
    };
    state.validate()?;
    Ok(state)
}

/// Decodes a version-1 model state body and converts it (see the module docs). Never panics;
/// the result is validated like any decoded state.
pub(crate) fn decode_v1(bytes: &[u8]) -> Result<ModelState, ModelError> {
    let old: ModelStateV1 = decode_whole(bytes)?;
    let s = old.segments;
    let mut drift = DriftMonitor::default();
    for d in old.drift.detections {
        drift.push_detection(Detection {
            watermark_ms: d.watermark_ms,
            deadline_day_ms: d.watermark_ms,
            model_version: d.model_version,
            examples: d.examples,
            statistic: d.statistic,
        });
    }
    let state = ModelState {
        version: old.version,
        scaler: old.scaler,
        propensity: old.propensity.into(),
        segments: Segments::due_now(s.k, s.dim, s.reservoir_size, s.rng),
        metrics: old.metrics,
        segment_sizes: old.segment_sizes,
        watermark_ms: old.watermark_ms,
        labelled_through_ms: old.labelled_through_ms,
        categories: old.categories,
        segment_stats: old.segment_stats,
        strategy: old.strategy,
        drift,
        popularity: Default::default(),
        rebuy: Default::default(),
    };
    state.validate()?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use rand::SeedableRng;

    /// A model's online part in the version-2 layout.
    fn v2_propensity(p: &Propensity) -> PropensityV2 {
        let cfg = ModelConfig::default();
        PropensityV2 {
            weights: p.weights(),
            bias: p.bias(),
            grad_sq: vec![0.25; p.dim()],
            bias_grad_sq: 0.5,
            lr: cfg.learning_rate,
            l2: cfg.l2,
        }
    }

    #[test]
    fn a_version_2_state_converts_without_a_refit() {
        let cfg = ModelConfig::default();
        let mut now = ModelState::new(3, &cfg);
        now.scaler.update(&[1.0, 2.0, 3.0]);
        now.watermark_ms = 1_700_000_000_000;
        now.segment_sizes[2] = 4;
        now.propensity.learn(&[1.0, 0.0, -1.0], true);
        let old = ModelStateV2 {
            version: 7,
            scaler: now.scaler.clone(),
            propensity: v2_propensity(&now.propensity),
            segments: now.segments.clone(),
            metrics: now.metrics.clone(),
            segment_sizes: now.segment_sizes.clone(),
            watermark_ms: now.watermark_ms,
            labelled_through_ms: 3,
            categories: now.categories.clone(),
            segment_stats: now.segment_stats.clone(),
            strategy: now.strategy.clone(),
            drift: now.drift.clone(),
        };
        let bytes =
            bincode::serde::encode_to_vec(&old, bincode::config::standard()).expect("encodes");
        let back = decode_v2(&bytes).expect("a version-2 state decodes");
        assert_eq!(back.version, 7);
        assert_eq!(back.propensity.weights(), now.propensity.weights());
        assert_eq!(back.propensity.bias(), now.propensity.bias());
        assert_eq!(back.propensity.refit(), None);
        assert_eq!(back.segments, now.segments);
        assert_eq!(
            (back.watermark_ms, back.labelled_through_ms),
            (now.watermark_ms, 3)
        );
        // A version-3 state is not a version-2 one, and truncation is an error, not a panic.
        assert!(decode_v2(&bytes[..bytes.len() - 2]).is_err());
        let mut fitted = now.clone();
        fitted.propensity.set_refit(vec![0.5; 4]);
        assert!(decode_v2(&fitted.encode()).is_err());
    }

    #[test]
    fn a_version_1_state_converts_with_segments_due() {
        let cfg = ModelConfig::default();
        let mut now = ModelState::new(4, &cfg);
        now.scaler.update(&[1.0, 2.0, 3.0, 4.0]);
        now.watermark_ms = 1_700_000_000_000;
        now.segment_sizes[3] = 9;
        let old = ModelStateV1 {
            version: 12,
            scaler: now.scaler.clone(),
            propensity: v2_propensity(&now.propensity),
            segments: SegmentsV1 {
                k: 8,
                dim: 4,
                centroids: Array2::from_elem((8, 4), 0.5),
                updates: vec![3; 8],
                seeded: true,
                reservoir: Vec::new(),
                reservoir_size: 512,
                seen: 600,
                min_rate: 0.01,
                rng: Pcg64::seed_from_u64(42),
            },
            metrics: now.metrics.clone(),
            segment_sizes: now.segment_sizes.clone(),
            watermark_ms: now.watermark_ms,
            labelled_through_ms: 5,
            categories: now.categories.clone(),
            segment_stats: now.segment_stats.clone(),
            strategy: now.strategy.clone(),
            drift: PageHinkleyV1 {
                delta: 0.05,
                lambda: 100.0,
                n: 300,
                mean: 0.4,
                cumulative: 3.0,
                minimum: -1.0,
                detections: vec![DetectionV1 {
                    watermark_ms: 7,
                    model_version: 8,
                    examples: 9,
                    statistic: 101.0,
                }],
            },
        };
        let bytes =
            bincode::serde::encode_to_vec(&old, bincode::config::standard()).expect("encodes");
        let mut back = decode_v1(&bytes).expect("a version-1 state decodes");
        assert_eq!(back.version, 12);
        assert_eq!(back.scaler, now.scaler);
        assert_eq!(back.segment_sizes, now.segment_sizes);
        assert_eq!(
            (back.watermark_ms, back.labelled_through_ms),
            (now.watermark_ms, 5)
        );
        // The online centroids are not carried over: the first fit is due at the next event.
        assert!(!back.segments.is_seeded());
        assert!(back.segments.count_event());
        // A fresh drift monitor that remembers the old detection.
        assert_eq!(back.drift.detections.len(), 1);
        assert_eq!(back.drift.detections[0].statistic, 101.0);
        // Corrupt or current-version bytes are an error, not a panic.
        assert!(decode_v1(&bytes[..bytes.len() - 3]).is_err());
        assert!(decode_v1(&now.encode()).is_err());
    }
}
