//! The persisted model record: every learned parameter plus the bookkeeping the caller keeps
//! alongside it, encoded with bincode so it can be written atomically with the features.
//!
//! Decoding treats the bytes as untrusted: it never panics, refuses inputs that claim more than
//! [`MAX_STATE_BYTES`], rejects trailing bytes, and validates every dimension so that a corrupted
//! record is reported here rather than panicking later on an out-of-bounds index.

use super::popularity::Popularity;
use super::rebuy::Rebuy;
use crate::features::categories::CategoryNames;
use serde::{Deserialize, Serialize};

use super::drift::DriftMonitor;
use super::strategy::Strategy;
use super::{ModelConfig, ModelError, Prequential, Propensity, Scaler, Segments};

/// Largest encoded state [`ModelState::decode`] accepts, in bytes. Far above any realistic state
/// (k = 8, dim = 64, a 512-vector reservoir and a 1000-example window are ~300 KiB); it only
/// stops a corrupted length prefix from requesting gigabytes.
pub const MAX_STATE_BYTES: usize = 64 * 1024 * 1024;

/// Everything persisted about the models, as one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    /// Incremented by the caller once per committed batch; identifies the state a score came from.
    pub version: u64,
    /// Standardisation of raw features; the other models see only its output.
    pub scaler: Scaler,
    /// Purchase propensity model.
    pub propensity: Propensity,
    /// Customer segments.
    pub segments: Segments,
    /// Prequential metrics of `propensity`.
    pub metrics: Prequential,
    /// Customers currently assigned to each segment (`k` entries). Maintained by the caller, which
    /// alone knows each customer's previous segment; the models never touch it.
    pub segment_sizes: Vec<u64>,
    /// Event-time watermark (unix ms) of the data folded in; 0 before any. Maintained by the
    /// caller.
    pub watermark_ms: i64,
    /// Event time (unix ms) up to which labels have been learned; 0 before any. Maintained by the
    /// caller.
    pub labelled_through_ms: i64,
    /// Most frequent category name per category bucket, for labelling segments. Sized by the
    /// caller ([`CategoryNames::new`]); empty in a fresh state.
    pub categories: CategoryNames,
    /// Per segment: sums of lifetime spend and of propensity over its current members, each
    /// taken at the member's last write. Maintained by the caller alongside `segment_sizes` and
    /// checked by `persona check`, but no longer reported: propensities at the last write go
    /// stale, so segment statistics are computed as of now from the members
    /// ([`crate::query::segment_stats`]).
    pub segment_stats: Vec<SegmentStats>,
    /// Marketing-action outcome statistics per (segment, action).
    pub strategy: Strategy,
    /// Drift test on the propensity model's prequential loss, fed in deadline order: the test,
    /// the losses waiting for their deadline day, the re-arming hold-off and recent detections.
    pub drift: DriftMonitor,
    /// What everyone and each segment engages with lately (bounded item counts). Encoded after
    /// the rest of the state (model record version 4; an older record has none yet).
    #[serde(skip)]
    pub popularity: Popularity,
    /// The ranking of a customer's own items by the chance they buy them next. Encoded after
    /// the popularity summary (model record version 5; an older record starts from the prior).
    #[serde(skip)]
    pub rebuy: Rebuy,
}

/// Running sums over a segment's current members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentStats {
    /// Sum of members' lifetime spend.
    pub spend_sum: f64,
    /// Sum of members' propensity at their last write.
    pub propensity_sum: f64,
}

impl ModelState {
    /// The propensity of a profile with `events` events whose standardised vector is `z`. A
    /// profile without events (attributes only) has nothing the model learned from: it gets the
    /// base rate, the share of positive examples learned so far (0.5 before the first).
    pub fn propensity_of(&self, events: u64, z: &[f64]) -> f64 {
        if events > 0 {
            return self.propensity.predict(z);
        }
        match self.metrics.examples() {
            0 => 0.5,
            n => self.metrics.positives() as f64 / n as f64,
        }
    }

    /// Fresh, untrained models for `dim`-component feature vectors, tuned by `config`.
    pub fn new(dim: usize, config: &ModelConfig) -> Self {
        ModelState {
            version: 0,
            scaler: Scaler::new(dim),
            propensity: Propensity::new(dim, config),
            segments: Segments::new(config.segments, dim, config),
            metrics: Prequential::new(config.auc_window),
            segment_sizes: vec![0; config.segments],
            watermark_ms: 0,
            labelled_through_ms: 0,
            categories: CategoryNames::default(),
            segment_stats: vec![SegmentStats::default(); config.segments],
            strategy: Strategy::new(config.segments, Vec::new()),
            drift: DriftMonitor::default(),
            popularity: Default::default(),
            rebuy: Default::default(),
        }
    }

    /// Replaces the learned parameters (scaler, propensity, centroids, strategy statistics, drift
    /// test statistics) with those of `snapshot`, keeping this state's bookkeeping: version,
    /// watermark, segment sizes and statistics (they describe the stored membership index),
    /// category names, the prequential metrics and drift detections (a record of what happened)
    /// and the losses waiting for their deadline (they belong to examples already learned).
    pub fn restore_learned(&mut self, snapshot: &ModelState) {
        self.scaler = snapshot.scaler.clone();
        self.propensity = snapshot.propensity.clone();
        self.segments = snapshot.segments.clone();
        self.strategy = snapshot.strategy.clone();
        self.drift.test = snapshot.drift.test.clone();
    }

    /// Feature dimension shared by all models.
    pub fn dim(&self) -> usize {
        self.scaler.dim()
    }

    /// Serialises the state (bincode, standard config), names in clear (a plain store; an
    /// encrypted one writes [`Self::encode_sealed`]).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(&self.holders_in_clear())
    }

    /// The state, the popularity summary, the rebuy weights, then the name holders `held`.
    pub(super) fn encode_with(&self, held: &[super::names::HeldName]) -> Vec<u8> {
        let config = bincode::config::standard();
        let mut out = bincode::serde::encode_to_vec(self, config).expect(
            "every field is a sized serde type with a known length, which bincode always encodes",
        );
        let popularity = bincode::serde::encode_to_vec(&self.popularity, config)
            .expect("the popularity summary is sized serde types, which bincode always encodes");
        out.extend_from_slice(&popularity);
        let rebuy = bincode::serde::encode_to_vec(&self.rebuy, config)
            .expect("the rebuy weights are sized serde types, which bincode always encodes");
        out.extend_from_slice(&rebuy);
        let held = bincode::serde::encode_to_vec(held, config)
            .expect("the name holders are sized serde types, which bincode always encodes");
        out.extend_from_slice(&held);
        out
    }

    /// Parses the body of a model record of version 3 (before the popularity summary): the
    /// state with an empty summary. Never panics.
    pub fn decode_v3(bytes: &[u8]) -> Result<ModelState, ModelError> {
        Self::decode_body(bytes, 0)
    }

    /// Parses the body of a model record of version 4 (before the rebuy ranking): the state
    /// and its popularity summary, with the rebuy weights at their prior. Never panics.
    pub fn decode_v4(bytes: &[u8]) -> Result<ModelState, ModelError> {
        Self::decode_body(bytes, 1)
    }

    /// Parses the body of a model record written by an earlier build (record version 1) and
    /// converts it: see `src/model/legacy.rs`. Never panics.
    pub fn decode_legacy(bytes: &[u8]) -> Result<ModelState, ModelError> {
        super::legacy::decode_v1(bytes)
    }

    /// Parses the body of a model record of version 2 (before the propensity refit) and
    /// converts it: see `src/model/legacy.rs`. Never panics.
    pub fn decode_v2(bytes: &[u8]) -> Result<ModelState, ModelError> {
        super::legacy::decode_v2(bytes)
    }

    /// Parses the body of a model record of version 5 (before names had holders): every name
    /// is taken as named by several customers. Never panics.
    pub fn decode_v5(bytes: &[u8]) -> Result<ModelState, ModelError> {
        Self::decode_body(bytes, 2)
    }

    /// Parses bytes produced by [`Self::encode`] or [`Self::encode_sealed`] and checks the
    /// result with [`Self::validate`]. Sealed names stay sealed (empty) until
    /// [`Self::open_names`].
    ///
    /// Never panics, whatever the bytes: truncated, oversized, corrupted or trailing input is a
    /// [`ModelError::Decode`], inconsistent dimensions a [`ModelError::Inconsistent`].
    pub fn decode(bytes: &[u8]) -> Result<ModelState, ModelError> {
        Self::decode_body(bytes, 3)
    }

    /// The state, followed by `sections` of what came later: the popularity summary (record
    /// version 4), then the rebuy weights (version 5), then the name holders (version 6); all
    /// of `bytes` must be used and the result must validate.
    fn decode_body(bytes: &[u8], sections: u8) -> Result<ModelState, ModelError> {
        if bytes.len() > MAX_STATE_BYTES {
            return Err(ModelError::Decode(format!(
                "{} bytes exceeds the {MAX_STATE_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let config = bincode::config::standard().with_limit::<MAX_STATE_BYTES>();
        let (mut state, mut read): (ModelState, usize) =
            bincode::serde::decode_from_slice(bytes, config)
                .map_err(|e| ModelError::Decode(e.to_string()))?;
        if sections >= 1 {
            let (popularity, used) = bincode::serde::decode_from_slice(&bytes[read..], config)
                .map_err(|e| ModelError::Decode(format!("popularity summary: {e}")))?;
            state.popularity = popularity;
            read += used;
        }
        if sections >= 2 {
            let (rebuy, used) = bincode::serde::decode_from_slice(&bytes[read..], config)
                .map_err(|e| ModelError::Decode(format!("rebuy weights: {e}")))?;
            state.rebuy = rebuy;
            read += used;
        }
        if sections >= 3 {
            let (held, used) = bincode::serde::decode_from_slice(&bytes[read..], config)
                .map_err(|e| ModelError::Decode(format!("name holders: {e}")))?;
            // Holders name entries by their position as written: before any sorting.
            state.set_holders(held)?;
            read += used;
        }
        if !state.has_sealed_names() {
            // (Sealed names are sorted once opened.)
            state.popularity.sort();
        }
        if read != bytes.len() {
            return Err(ModelError::Decode(format!(
                "{} trailing bytes after the state",
                bytes.len() - read
            )));
        }
        state.validate()?;
        Ok(state)
    }

    /// Checks that every component is internally consistent and that all agree on the feature
    /// dimension and on `k`. [`Self::decode`] runs this; states built through the API always pass.
    pub fn validate(&self) -> Result<(), ModelError> {
        if !self.rebuy.is_consistent() {
            return Err(ModelError::Inconsistent(
                "the rebuy weights are not finite".into(),
            ));
        }
        if !self.popularity.is_consistent() {
            return Err(ModelError::Inconsistent(
                "the popularity summary is over its bounds or has a bad weight".into(),
            ));
        }
        self.scaler.validate()?;
        self.propensity.validate()?;
        self.segments.validate()?;
        self.metrics.validate()?;
        let dim = self.dim();
        let bad = |msg: String| Err(ModelError::Inconsistent(msg));
        if self.propensity.dim() != dim {
            return bad(format!(
                "propensity has {} dimensions, expected {dim}",
                self.propensity.dim()
            ));
        }
        if self.segments.dim() != dim {
            return bad(format!(
                "segments have {} dimensions, expected {dim}",
                self.segments.dim()
            ));
        }
        self.strategy.validate()?;
        self.drift.validate().map_err(ModelError::Inconsistent)?;
        if self.segment_stats.len() != self.segments.k() || self.strategy.k() != self.segments.k() {
            return bad(format!(
                "segment statistics cover {} and {} segments, expected {}",
                self.segment_stats.len(),
                self.strategy.k(),
                self.segments.k()
            ));
        }
        if self.segment_sizes.len() != self.segments.k() {
            return bad(format!(
                "segment_sizes has {} entries, expected {}",
                self.segment_sizes.len(),
                self.segments.k()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_popularity_summary_and_the_rebuy_weights_follow_the_state_in_that_order() {
        let mut state = ModelState::new(4, &ModelConfig::default());
        let day = 86_400_000;
        // Out of name order on purpose: a list decoded from an older build may be.
        // Each named by two customers: no holder, as in a record of an older build.
        for (item, by) in [("pan", 1), ("mug", 1), ("pan", 2), ("mug", 2)] {
            state.popularity.observe(
                crate::EventKind::Purchase,
                item,
                &[by; 16],
                Some(1),
                8,
                day,
                90.0 * day as f64,
            );
        }
        state.rebuy.learn(&[[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]], 0);
        let v6 = state.encode();
        assert_eq!(ModelState::decode(&v6).expect("round trip"), state);
        // A version-5 body has no holders section (here one byte: an empty list).
        let v5 = &v6[..v6.len() - 1];
        assert_eq!(ModelState::decode_v5(v5).expect("a version-5 body"), state);
        assert!(ModelState::decode(v5).is_err(), "the holders are missing");
        let v5 = v5.to_vec();
        let config = bincode::config::standard();
        // A version-4 body is the state and the summary: the rebuy weights start from the prior.
        let mut v4 = bincode::serde::encode_to_vec(&state, config).expect("encodes");
        let mut unsorted = state.popularity.clone();
        unsorted.global.reverse();
        v4.extend(bincode::serde::encode_to_vec(&unsorted, config).expect("encodes"));
        let old = ModelState::decode_v4(&v4).expect("a version-4 body decodes");
        assert_eq!(old.rebuy, Rebuy::default());
        assert_eq!(
            old.popularity, state.popularity,
            "lists come back sorted by name"
        );
        // A version-3 body is the state alone.
        let v3 = bincode::serde::encode_to_vec(&state, config).expect("encodes");
        let old = ModelState::decode_v3(&v3).expect("a version-3 body decodes");
        assert_eq!(old.popularity, Popularity::default());
        assert_eq!(old.version, state.version);
        assert!(ModelState::decode(&v3).is_err(), "the summary is missing");
        assert!(ModelState::decode(&v4).is_err(), "the weights are missing");
        let mut trailing = v6.clone();
        trailing.push(0);
        assert!(ModelState::decode(&trailing).is_err());
        for cut in [v6.len() - 1, v3.len() + 1] {
            assert!(ModelState::decode(&v6[..cut]).is_err());
        }
        assert!(v5.len() < v6.len());
        // Weights that are not finite are refused.
        let mut bad = state.clone();
        bad.rebuy.w[0] = f32::NAN;
        assert!(ModelState::decode(&bad.encode()).is_err());
    }

    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    /// A state that has been through every model, including seeding and a full metrics window.
    fn trained_state() -> ModelState {
        let cfg = ModelConfig {
            segments: 3,
            reservoir_size: 40,
            auc_window: 50,
            ..ModelConfig::default()
        };
        let mut state = ModelState::new(4, &cfg);
        let mut rng = Pcg64::seed_from_u64(21);
        let mut sample = Vec::new();
        for i in 0..200 {
            let x: Vec<f64> = (0..4).map(|_| rng.gen_range(-5.0..5.0)).collect();
            state.scaler.update(&x);
            let z = state.scaler.transform_vec(&x);
            let label = z[0] + z[1] > 0.0;
            let p = state.propensity.learn(&z, label);
            state.metrics.record(p, label);
            // Losses wait for deadlines a horizon after the watermark: some stay pending.
            let day = super::super::drift::DAY_MS;
            let t = 1_700_000_000_000 + i * day / 4;
            state.drift.record(t + 30 * day, -p.ln(), t, 30 * day);
            sample.push(x.clone());
            if state.segments.count_event() {
                state.segments.fit(&sample);
            }
            if let Some((c, _)) = state.segments.assign(&x) {
                state.segment_sizes[c] += 1;
            }
            state.watermark_ms = 1_700_000_000_000 + i;
        }
        assert!(state.segments.is_seeded());
        state.version = 7;
        state
    }

    #[test]
    fn round_trip_is_identical() {
        for state in [
            ModelState::new(52, &ModelConfig::default()),
            trained_state(),
        ] {
            let bytes = state.encode();
            let back = ModelState::decode(&bytes).expect("own encoding decodes");
            assert_eq!(back, state);
            assert_eq!(back.encode(), bytes);
        }
        // Between fits (schedule and RNG mid-way) it round-trips too: both continue alike.
        let mut a = ModelState::new(2, &ModelConfig::default());
        let points: Vec<Vec<f64>> = (0..100).map(|i| vec![f64::from(i), 1.0]).collect();
        for _ in 0..700 {
            if a.segments.count_event() {
                a.segments.fit(&points);
            }
        }
        let mut b = ModelState::decode(&a.encode()).expect("own encoding decodes");
        for i in 0..2000 {
            let x = [f64::from(i % 37), f64::from(i % 11)];
            let (fit_a, fit_b) = (a.segments.count_event(), b.segments.count_event());
            assert_eq!(fit_a, fit_b);
            if fit_a {
                let sample: Vec<Vec<f64>> =
                    (0..50).map(|j| vec![f64::from(j + i % 7), 2.0]).collect();
                a.segments.fit(&sample);
                b.segments.fit(&sample);
            }
            assert_eq!(a.segments.assign(&x), b.segments.assign(&x));
        }
        assert_eq!(a, b);
    }

    #[test]
    fn truncated_and_extended_bytes_are_rejected() {
        let bytes = trained_state().encode();
        for len in 0..bytes.len() {
            let err = ModelState::decode(&bytes[..len]).expect_err("truncated state decoded");
            assert!(matches!(err, ModelError::Decode(_)), "{len}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            ModelState::decode(&longer).unwrap_err().to_string(),
            "model state decode failed: 1 trailing bytes after the state"
        );
    }

    #[test]
    fn inconsistent_dimensions_are_rejected() {
        let cfg = ModelConfig::default();
        let mut state = ModelState::new(52, &cfg);
        state.propensity = Propensity::new(3, &cfg);
        assert_eq!(
            ModelState::decode(&state.encode()).unwrap_err().to_string(),
            "model state is inconsistent: propensity has 3 dimensions, expected 52"
        );
        let mut state = ModelState::new(52, &cfg);
        state.segments = Segments::new(8, 5, &cfg);
        assert_eq!(
            ModelState::decode(&state.encode()).unwrap_err().to_string(),
            "model state is inconsistent: segments have 5 dimensions, expected 52"
        );
        let mut state = ModelState::new(52, &cfg);
        state.segment_sizes.pop();
        assert_eq!(
            state.validate().unwrap_err().to_string(),
            "model state is inconsistent: segment_sizes has 7 entries, expected 8"
        );
    }

    proptest! {
        // A fixed seed keeps CI deterministic (a random corruption once ran for minutes).
        #![proptest_config(ProptestConfig {
            cases: 128,
            rng_seed: proptest::test_runner::RngSeed::Fixed(20261123),
            ..ProptestConfig::default()
        })]
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            // Err almost surely; what matters is that it returns at all.
            let _ = ModelState::decode(&bytes);
        }

        #[test]
        fn corrupted_state_never_panics(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut bytes = trained_state().encode();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            // A decodable corruption must be usable without panicking.
            if let Ok(mut state) = ModelState::decode(&bytes) {
                let z = vec![0.5; state.dim()];
                state.propensity.learn(&z, true);
                state.segments.fit(&[z.clone(), vec![0.0; z.len()]]);
                let _ = state.segments.assign_n(&z, 3);
                let _ = state.metrics.rolling_auc();
                state.scaler.update(&z);
            }
        }
    }
}
