//! Event → profile features.
//!
//! A [`ProfileState`] holds a customer's accumulators: first/last seen, last purchase, lifetime
//! counts and sums, exponentially time-decayed counters and category affinities, and attributes.
//! [`ProfileState::apply`] folds one [`ProfileOp`] into it; the numeric feature vector is derived
//! from the state *as of* a given time by [`vector::FeatureLayout::vector`], so that recency keeps
//! growing while a customer is silent.
//!
//! Invariants:
//! - All time arithmetic uses event timestamps, never the wall clock.
//! - Every decayed quantity is expressed at the common `anchor_ms` (the latest event time applied);
//!   an event older than the anchor is added with its weight already decayed to the anchor, so the
//!   result does not depend on arrival order beyond floating-point rounding.
//! - `apply` is deterministic: replaying the same ops from the same state gives bit-identical
//!   results. Profile history relies on this (see [`crate::storage::record`]).

pub mod affinity;
pub mod attributes;
pub mod categories;
pub mod consent;
pub mod held;
pub mod raw;
pub mod vector;

pub use attributes::AttrValue;

use crate::event::{Event, EventKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Milliseconds per day.
pub const DAY_MS: f64 = 86_400_000.0;

/// Parameters of the feature computation, fixed per store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureParams {
    /// Half-life of decayed counters, in milliseconds.
    pub half_life_ms: f64,
    /// Number of category-affinity buckets.
    pub category_buckets: usize,
}

impl FeatureParams {
    /// The weight now (`now_ms`) of something that happened at `then_ms`: `2^(-(now-then)/half_life)`.
    /// Never more than 1: a time before `then` is treated as `then`.
    pub fn decay(&self, then_ms: i64, now_ms: i64) -> f64 {
        let dt = now_ms.saturating_sub(then_ms).max(0) as f64;
        (-std::f64::consts::LN_2 * dt / self.half_life_ms).exp()
    }

    /// Half-life of the engagement lists and of everything counted from them (item
    /// popularity, co-occurrence): [`affinity::HALF_LIFE_FACTOR`] times the features'.
    pub fn item_half_life_ms(&self) -> f64 {
        self.half_life_ms * affinity::HALF_LIFE_FACTOR
    }

    /// The bucket a category hashes to (xxh3, stable across builds and platforms).
    pub fn bucket(&self, category: &str) -> u16 {
        (xxhash_rust::xxh3::xxh3_64(category.as_bytes()) % self.category_buckets as u64) as u16
    }
}

/// One change to a profile; every op creates a new profile version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProfileOp {
    /// An event, reduced to what the features need.
    Event(CompactEvent),
    /// Attributes set (or replaced) by name.
    SetAttributes(Vec<(String, AttrValue)>),
}

/// An event as stored in profile history: the category is kept as its bucket and the id as its
/// hash (for de-duplication), so history stays small.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompactEvent {
    /// Event time, unix ms.
    pub timestamp_ms: i64,
    /// Kind.
    pub kind: EventKind,
    /// Effective value (1 where the kind's value is optional and absent).
    pub value: f64,
    /// Category bucket, if the event had a category.
    pub bucket: Option<u16>,
}

impl CompactEvent {
    /// Reduces a validated event.
    pub fn from_event(e: &Event, params: &FeatureParams) -> CompactEvent {
        CompactEvent {
            timestamp_ms: e.timestamp_ms,
            kind: e.kind,
            value: e.effective_value(),
            bucket: e.category.as_deref().map(|c| params.bucket(c)),
        }
    }
}

/// A customer's accumulated features.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    /// Earliest event time seen.
    pub first_seen_ms: Option<i64>,
    /// Latest event time seen.
    pub last_seen_ms: Option<i64>,
    /// Latest purchase time seen.
    pub last_purchase_ms: Option<i64>,
    /// Time at which all decayed values below are expressed.
    pub anchor_ms: i64,
    /// Number of events applied.
    pub event_count: u64,
    /// Lifetime count per kind, indexed by [`EventKind::index`].
    pub kind_counts: [u64; EventKind::COUNT],
    /// Decayed count per kind at `anchor_ms`.
    pub kind_decayed: [f64; EventKind::COUNT],
    /// Lifetime purchase amount.
    pub spend: f64,
    /// Lifetime refunded amount.
    pub refunded: f64,
    /// Decayed purchase amount at `anchor_ms`.
    pub decayed_spend: f64,
    /// Lifetime seconds of views.
    pub view_seconds: f64,
    /// Sum of rating stars (divide by the rating count for the mean).
    pub rating_sum: f64,
    /// Decayed category affinity per bucket at `anchor_ms`.
    pub categories: Vec<f64>,
    /// Attributes by name.
    pub attributes: BTreeMap<String, AttrValue>,
}

impl ProfileState {
    /// An empty profile (no events, no attributes).
    pub fn new(params: &FeatureParams) -> ProfileState {
        ProfileState {
            first_seen_ms: None,
            last_seen_ms: None,
            last_purchase_ms: None,
            anchor_ms: 0,
            event_count: 0,
            kind_counts: [0; EventKind::COUNT],
            kind_decayed: [0.0; EventKind::COUNT],
            spend: 0.0,
            refunded: 0.0,
            decayed_spend: 0.0,
            view_seconds: 0.0,
            rating_sum: 0.0,
            categories: vec![0.0; params.category_buckets],
            attributes: BTreeMap::new(),
        }
    }

    /// Applies one op.
    pub fn apply(&mut self, op: &ProfileOp, params: &FeatureParams) {
        match op {
            ProfileOp::Event(e) => self.apply_event(e, params),
            ProfileOp::SetAttributes(attrs) => {
                for (name, value) in attrs {
                    self.attributes.insert(name.clone(), value.clone());
                }
            }
        }
    }

    fn apply_event(&mut self, e: &CompactEvent, params: &FeatureParams) {
        let t = e.timestamp_ms;
        // Weight of this event at the anchor: 1 if it moves the anchor forward, decayed if older.
        let weight = if self.event_count == 0 || t >= self.anchor_ms {
            if self.event_count > 0 {
                let f = params.decay(self.anchor_ms, t);
                self.kind_decayed.iter_mut().for_each(|v| *v *= f);
                self.categories.iter_mut().for_each(|v| *v *= f);
                self.decayed_spend *= f;
            }
            self.anchor_ms = t;
            1.0
        } else {
            params.decay(t, self.anchor_ms)
        };
        self.first_seen_ms = Some(self.first_seen_ms.map_or(t, |f| f.min(t)));
        self.last_seen_ms = Some(self.last_seen_ms.map_or(t, |l| l.max(t)));
        self.event_count += 1;
        let k = e.kind.index();
        self.kind_counts[k] += 1;
        self.kind_decayed[k] += weight;
        match e.kind {
            EventKind::Purchase => {
                self.spend += e.value;
                self.decayed_spend += e.value * weight;
                self.last_purchase_ms = Some(self.last_purchase_ms.map_or(t, |l| l.max(t)));
            }
            EventKind::Refund => self.refunded += e.value,
            EventKind::View => self.view_seconds += e.value,
            EventKind::Rating => self.rating_sum += e.value,
            _ => {}
        }
        if let Some(b) = e.bucket {
            if let Some(slot) = self.categories.get_mut(b as usize) {
                *slot += weight;
            }
        }
    }

    /// Number of purchases.
    pub fn purchases(&self) -> u64 {
        self.kind_counts[EventKind::Purchase.index()]
    }

    /// Decayed count of `kind` as of `now_ms`.
    #[cfg(test)]
    pub fn decayed_count(&self, kind: EventKind, now_ms: i64, params: &FeatureParams) -> f64 {
        self.kind_decayed[kind.index()] * params.decay(self.anchor_ms, now_ms)
    }

    /// Decayed spend as of `now_ms`.
    #[cfg(test)]
    pub fn decayed_spend_at(&self, now_ms: i64, params: &FeatureParams) -> f64 {
        self.decayed_spend * params.decay(self.anchor_ms, now_ms)
    }

    /// Checks that a decoded state fits the store's parameters (a corrupt or foreign record must
    /// not cause an out-of-bounds panic later).
    pub fn is_consistent(&self, params: &FeatureParams) -> bool {
        self.categories.len() == params.category_buckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_767_225_600_000;

    fn params() -> FeatureParams {
        FeatureParams {
            half_life_ms: 10.0 * DAY as f64,
            category_buckets: 4,
        }
    }

    fn ev(t: i64, kind: EventKind, value: f64, bucket: Option<u16>) -> ProfileOp {
        ProfileOp::Event(CompactEvent {
            timestamp_ms: t,
            kind,
            value,
            bucket,
        })
    }

    #[test]
    fn hand_computed_sequence_gives_exact_values() {
        let p = params();
        let mut s = ProfileState::new(&p);
        s.apply(&ev(T0, EventKind::Purchase, 100.0, Some(1)), &p);
        s.apply(&ev(T0 + 10 * DAY, EventKind::Purchase, 50.0, Some(1)), &p);
        s.apply(&ev(T0 + 20 * DAY, EventKind::View, 30.0, Some(2)), &p);
        s.apply(&ev(T0 + 20 * DAY, EventKind::Rating, 4.0, None), &p);
        // Two half-lives after the first purchase, one after the second.
        assert_eq!(s.first_seen_ms, Some(T0));
        assert_eq!(s.last_seen_ms, Some(T0 + 20 * DAY));
        assert_eq!(s.last_purchase_ms, Some(T0 + 10 * DAY));
        assert_eq!(s.purchases(), 2);
        assert_eq!(s.spend, 150.0);
        assert!((s.decayed_spend - (100.0 * 0.25 + 50.0 * 0.5)).abs() < 1e-9);
        assert!((s.kind_decayed[EventKind::Purchase.index()] - 0.75).abs() < 1e-12);
        assert!((s.categories[1] - 0.75).abs() < 1e-12);
        assert_eq!(s.categories[2], 1.0);
        assert_eq!(s.view_seconds, 30.0);
        assert_eq!(s.rating_sum, 4.0);
        assert_eq!(s.event_count, 4);
        // Ten more silent days halve everything again.
        let later = T0 + 30 * DAY;
        assert!((s.decayed_spend_at(later, &p) - 25.0).abs() < 1e-9);
        assert!((s.decayed_count(EventKind::View, later, &p) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn late_events_are_decayed_to_the_anchor() {
        let p = params();
        let mut in_order = ProfileState::new(&p);
        in_order.apply(&ev(T0, EventKind::Click, 1.0, Some(0)), &p);
        in_order.apply(&ev(T0 + 10 * DAY, EventKind::Click, 1.0, Some(0)), &p);
        let mut reversed = ProfileState::new(&p);
        reversed.apply(&ev(T0 + 10 * DAY, EventKind::Click, 1.0, Some(0)), &p);
        reversed.apply(&ev(T0, EventKind::Click, 1.0, Some(0)), &p);
        assert_eq!(in_order.anchor_ms, reversed.anchor_ms);
        assert!((in_order.kind_decayed[1] - reversed.kind_decayed[1]).abs() < 1e-12);
        assert!((reversed.kind_decayed[1] - 1.5).abs() < 1e-12);
        assert_eq!(reversed.first_seen_ms, Some(T0));
        assert_eq!(reversed.last_seen_ms, Some(T0 + 10 * DAY));
    }

    #[test]
    fn attributes_overwrite_by_name() {
        let p = params();
        let mut s = ProfileState::new(&p);
        s.apply(
            &ProfileOp::SetAttributes(vec![
                ("age".into(), 30.0.into()),
                ("region".into(), "n".into()),
            ]),
            &p,
        );
        s.apply(
            &ProfileOp::SetAttributes(vec![("age".into(), 31.0.into())]),
            &p,
        );
        assert_eq!(s.attributes["age"], AttrValue::Number(31.0));
        assert_eq!(s.attributes["region"], AttrValue::Text("n".into()));
        assert_eq!(s.event_count, 0);
    }

    #[test]
    fn buckets_are_stable() {
        let p = params();
        assert_eq!(p.bucket("books"), p.bucket("books"));
        assert!(p.bucket("electronics") < 4);
    }
}
