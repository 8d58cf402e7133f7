//! The read path: committed records plus a snapshot of the models.
//!
//! Queries never mutate and never wait for the writer. A [`Profile`] is evaluated *as of the
//! current watermark* (the latest event time the store has seen), so a silent customer's recency
//! keeps growing and their segment and propensity reflect that.

pub mod export;
pub mod history;
pub mod recommend;
pub(crate) mod refit;
#[cfg(any(feature = "cli", feature = "testing"))]
pub mod report;
pub mod score;
pub mod segment_stats;
pub mod segments;
pub mod similar;
pub mod strategy;

pub use export::{ConsentChange, CustomerExport, ExportedConsent};
pub use history::HistoryItem;
pub use score::{Contribution, Score};
pub use segment_stats::Popular;
pub use segments::{SegmentDistance, SegmentInfo};
pub use similar::SimilarCustomer;
pub use strategy::{ActionSummary, Recommendation};

use crate::features::affinity::{decay, Engaged};
use crate::features::consent::Consent;
use crate::features::vector::FeatureLayout;
use crate::features::{AttrValue, ProfileState};
use crate::model::ModelState;
use crate::storage::record::RecordCurrent;
use serde::Serialize;
use std::collections::BTreeMap;

/// A customer's profile as of a point in time, with model outputs.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// The customer.
    pub customer_id: String,
    /// Profile version (number of writes applied).
    pub version: u64,
    /// Events applied.
    pub event_count: u64,
    /// Earliest event time, unix ms.
    pub first_seen_ms: Option<i64>,
    /// Latest event time, unix ms.
    pub last_seen_ms: Option<i64>,
    /// Attributes.
    pub attributes: BTreeMap<String, AttrValue>,
    /// The time the features are evaluated at (the watermark), unix ms.
    pub as_of_ms: i64,
    /// Feature vector as of `as_of_ms`, as the model sees it: log-scaled days, counts and
    /// amounts; their names, in order, are [`Db::feature_names`](crate::Db::feature_names).
    pub features: Vec<f64>,
    /// The event-derived dimensions of `features` (all but the attribute slots) in their own
    /// units: days, counts, amounts, seconds, shares, stars
    /// (in the order of [`Db::feature_names`](crate::Db::feature_names)); `None` where the
    /// quantity does not exist, e.g. days since the last purchase of a customer who never purchased.
    pub raw_features: Vec<Option<f64>>,
    /// Nearest segment as of `as_of_ms` with the current model (None before seeding).
    pub segment: Option<u16>,
    /// Distance to that segment's centroid, in standardised units.
    pub segment_distance: Option<f64>,
    /// Segment recorded in the profile record at the last write.
    pub assigned_segment: Option<u16>,
    /// Propensity as of `as_of_ms` with the current model; NaN (null in JSON and over RESP)
    /// for a customer without consent to profiling, who is not scored.
    pub propensity: f64,
    /// The customer's consent per purpose now (the store's defaults where they set none), also
    /// for a past version: none of theirs is scored without consent to profiling.
    pub consent: Consent,
    /// The items the customer engaged with most, most engaged first: events naming an item,
    /// weighted by kind (purchase 3, cart_add 2, view 1, click 0.5, …) and decayed with three
    /// times the store's half-life, at most `Config::top_items`. The current profile only
    /// (empty for a past version: these lists are not versioned).
    pub top_items: Vec<Engagement>,
    /// The categories the customer engaged with most, by name, as `top_items`.
    pub top_categories: Vec<Engagement>,
    /// The accumulated state the features derive from.
    #[serde(skip)]
    pub(crate) state: ProfileState,
    /// Every item the customer bought, as far as their record remembers (what
    /// `exclude_purchased` leaves out). The current profile only.
    #[serde(skip)]
    pub(crate) bought: crate::features::affinity::Bought,
}

impl Profile {
    /// Evaluates a record's current version as of the model's watermark. A customer without
    /// consent to profiling (`consent`: the store's defaults) joins no segment.
    pub(crate) fn evaluate(
        customer_id: &str,
        record: RecordCurrent,
        model: &ModelState,
        layout: &FeatureLayout,
        consent: Consent,
    ) -> Profile {
        let now = Consent::of(&record.state, consent);
        let mut p = Profile::of_state(
            customer_id,
            record.version,
            record.state,
            model,
            layout,
            None,
            now,
        );
        p.assigned_segment = record.segment;
        let half_life = layout.params().item_half_life_ms();
        let (items, categories) = (&record.affinity.items, &record.affinity.categories);
        p.top_items = Engagement::ranked(items, record.affinity.anchor_ms, p.as_of_ms, half_life);
        p.top_categories =
            Engagement::ranked(categories, record.affinity.anchor_ms, p.as_of_ms, half_life);
        p.bought = record.affinity.bought;
        p
    }

    /// Evaluates any state (current or historical) as of `as_of` (default: the model's
    /// watermark). `consent` is the customer's consent *now* (their current record's, with the
    /// store's defaults, [`Consent::of`]): without consent to profiling, no version of theirs
    /// is scored or segmented (no segment, propensity NaN), since that would be processing them
    /// now.
    #[allow(clippy::too_many_arguments)] // one more than the lint allows; all are needed
    pub(crate) fn of_state(
        customer_id: &str,
        version: u64,
        state: ProfileState,
        model: &ModelState,
        layout: &FeatureLayout,
        as_of: Option<i64>,
        consent: Consent,
    ) -> Profile {
        let as_of_ms = as_of.unwrap_or_else(|| {
            model
                .watermark_ms
                .max(state.last_seen_ms.unwrap_or(i64::MIN))
        });
        let features = layout.vector(&state, as_of_ms);
        let mut raw_features = layout.raw_values(&state, as_of_ms);
        raw_features.truncate(layout.event_dims());
        let z = model.scaler.transform_vec(&features);
        let nearest = model.segments.assign(&features);
        Profile {
            customer_id: customer_id.to_string(),
            version,
            event_count: state.event_count,
            first_seen_ms: state.first_seen_ms,
            last_seen_ms: state.last_seen_ms,
            attributes: state.attributes.clone(),
            as_of_ms,
            features,
            raw_features,
            segment: nearest.filter(|_| consent.profiling).map(|(s, _)| s as u16),
            segment_distance: nearest.filter(|_| consent.profiling).map(|(_, d)| d),
            assigned_segment: None,
            propensity: match consent.profiling {
                true => model.propensity_of(state.event_count, &z),
                false => f64::NAN,
            },
            consent,
            top_items: Vec::new(),
            top_categories: Vec::new(),
            bought: Default::default(),
            state,
        }
    }

    /// The profile as a JSON object (the stable shape printed by `persona profile --json`):
    /// `features` as the model sees them, `raw_features` in their own units under the same
    /// names (null where the quantity does not exist, e.g. `days_since_purchase` of a customer
    /// who never purchased; no attribute slots).
    pub fn to_json(&self, names: &[String]) -> serde_json::Value {
        let features: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&self.features)
            .map(|(n, v)| (n.clone(), serde_json::json!(v)))
            .collect();
        let raw_features: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&self.raw_features)
            .map(|(n, v)| (n.clone(), serde_json::json!(v)))
            .collect();
        let attributes: serde_json::Map<String, serde_json::Value> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        serde_json::json!({
            "customer_id": self.customer_id,
            "version": self.version,
            "event_count": self.event_count,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "as_of_ms": self.as_of_ms,
            "segment": self.segment,
            "segment_distance": self.segment_distance,
            "assigned_segment": self.assigned_segment,
            "propensity": self.propensity,
            "consent": { "profiling": self.consent.profiling, "marketing": self.consent.marketing },
            "attributes": attributes,
            "features": features,
            "raw_features": raw_features,
            "top_items": self.top_items,
            "top_categories": self.top_categories,
        })
    }
}

/// An item or category a customer engaged with ([`Profile::top_items`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Engagement {
    /// The item id or category name.
    pub name: String,
    /// Kind-weighted engagement (purchase 3, cart_add 2, view 1, …) decayed to the profile's
    /// `as_of_ms`.
    pub weight: f64,
    /// Purchases of it.
    pub purchases: u32,
    /// The latest event time naming it, unix ms.
    pub last_ms: i64,
}

impl Engagement {
    /// `list` as of `as_of_ms`, most engaged first (ties by name).
    fn ranked(
        list: &[Engaged],
        anchor_ms: i64,
        as_of_ms: i64,
        half_life_ms: f64,
    ) -> Vec<Engagement> {
        let f = f64::from(decay(as_of_ms - anchor_ms, half_life_ms));
        let mut out: Vec<Engagement> = list
            .iter()
            .map(|e| Engagement {
                name: e.name.to_string(),
                weight: f64::from(e.weight) * f,
                purchases: e.purchases,
                last_ms: e.last_ms,
            })
            .collect();
        out.sort_by(|a, b| {
            b.weight
                .total_cmp(&a.weight)
                .then_with(|| a.name.cmp(&b.name))
        });
        out
    }
}

/// Model metrics and shape, as reported by [`crate::Db::model_info`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Model version: the number of committed batches.
    pub version: u64,
    /// Latest event time seen, unix ms.
    pub watermark_ms: i64,
    /// Labelled examples the propensity model has learned from.
    pub examples: u64,
    /// Positive examples among them.
    pub positives: u64,
    /// Examples not learned yet, their horizon not over: unlabelled, or positive and held
    /// until the horizon ends (every example is learned at its deadline).
    pub pending_examples: u64,
    /// Prequential ROC AUC over the most recent examples (None until both classes are seen).
    pub rolling_auc: Option<f64>,
    /// Prequential mean log loss over all examples.
    pub log_loss: Option<f64>,
    /// Prequential mean log loss over the most recent examples.
    pub rolling_log_loss: Option<f64>,
    /// Drift detections on the propensity loss, oldest first.
    pub drift: Vec<crate::model::drift::Detection>,
    /// Versions of the stored model snapshots, oldest first.
    pub snapshots: Vec<u64>,
    /// Whether the k-means segments have been seeded (fitted at least once).
    pub segments_seeded: bool,
    /// How many times the writer has fitted the segments to its customer sample (or a
    /// re-segmentation refitted them).
    pub segment_fits: u64,
    /// Events counted towards the segments' fit schedule (every applied event).
    pub events: u64,
    /// Profiles per segment.
    pub segments: Vec<u64>,
    /// Feature dimensions.
    pub dim: usize,
}

impl ModelInfo {
    /// Summarises a model state.
    pub(crate) fn of(model: &ModelState, pending_examples: u64, snapshots: Vec<u64>) -> ModelInfo {
        ModelInfo {
            version: model.version,
            watermark_ms: model.watermark_ms,
            examples: model.metrics.examples(),
            positives: model.metrics.positives(),
            pending_examples,
            rolling_auc: model.metrics.rolling_auc(),
            log_loss: model.metrics.log_loss(),
            rolling_log_loss: model.metrics.rolling_log_loss(),
            drift: model.drift.detections.clone(),
            snapshots,
            segments_seeded: model.segments.is_seeded(),
            segment_fits: model.segments.fits(),
            events: model.segments.events(),
            segments: model.segment_sizes.clone(),
            dim: model.scaler.dim(),
        }
    }
}
