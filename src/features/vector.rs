//! The numeric feature vector: its fixed layout lives here and only here.
//!
//! With `B` category buckets the vector has `33 + B + 12` dimensions (61 with the default 16):
//!
//! | index | name | definition (as of time `t`) |
//! |---|---|---|
//! | 0 | `recency_days` | ln(1 + days since last event); 365 days if none |
//! | 1 | `tenure_days` | ln(1 + days since first event) |
//! | 2 | `days_since_purchase` | ln(1 + days since last purchase); 365 days if none |
//! | 3 | `purchases` | ln(1 + lifetime purchases) |
//! | 4 | `spend` | ln(1 + lifetime purchase amount) |
//! | 5 | `decayed_purchases` | ln(1 + decayed purchase count at t) |
//! | 6 | `decayed_spend` | ln(1 + decayed purchase amount at t) |
//! | 7 | `avg_order_value` | ln(1 + spend / purchases); 0 if none |
//! | 8 | `view_seconds` | ln(1 + lifetime view seconds) |
//! | 9 | `refund_share` | refunded / (spend + refunded); 0 if both are 0 |
//! | 10 | `rating_mean` | mean stars − 3; 0 if no rating |
//! | 11..22 | `decayed_<kind>` | ln(1 + decayed count of each kind at t), kinds in [`EventKind::ALL`] order |
//! | 22..33 | `mix_<kind>` | lifetime share of each kind among all events |
//! | 33..33+B | `category_<b>` | decayed category affinity, normalised to sum to 1 (0 if none) |
//! | 33+B..37+B | `attr_num_<s>` | numeric attributes hashed by name into 4 slots, signed ln(1+|x|), summed |
//! | 37+B..45+B | `attr_cat_<s>` | text attributes: `name=value` hashed into 8 one-hot slots |
//!
//! Heavy-tailed quantities are log-scaled so that one whale does not dominate the scaler; shares
//! and means are bounded. The same layout is used for scoring, segmenting and similarity. The
//! names say what a dimension measures, not its unit: `recency_days` holds ln(1 + days). For
//! people, [`super::raw`] gives the same dimensions in days, counts and amounts, with "never"
//! instead of the 365-day stand-in.

use super::{consent, AttrValue, FeatureParams, ProfileState, DAY_MS};
use crate::event::EventKind;

/// Days assumed when a time is missing (no event / no purchase yet).
pub const MISSING_DAYS: f64 = 365.0;
/// Dimensions before the category block.
pub const CORE_DIMS: usize = 11 + 2 * EventKind::COUNT;
/// Numeric-attribute slots.
pub const ATTR_NUMERIC_SLOTS: usize = 4;
/// Text-attribute slots.
pub const ATTR_TEXT_SLOTS: usize = 8;

/// Index of `recency_days`.
#[cfg(test)]
pub const RECENCY: usize = 0;
/// Index of `purchases`.
#[cfg(test)]
pub const PURCHASES: usize = 3;
/// Index of `decayed_purchases`.
#[cfg(test)]
pub const DECAYED_PURCHASES: usize = 5;
/// Index of the first `decayed_<kind>` dimension.
pub const DECAYED_KINDS: usize = 11;
/// Index of the first `mix_<kind>` dimension.
pub const MIX_KINDS: usize = 11 + EventKind::COUNT;

/// The feature layout of one store.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureLayout {
    params: FeatureParams,
    /// The name of every dimension (built once: replies and scores name features per request).
    names: std::sync::Arc<[String]>,
}

impl FeatureLayout {
    /// The layout for these parameters.
    pub fn new(params: FeatureParams) -> FeatureLayout {
        let names = Self::build_names(&params).into();
        FeatureLayout { params, names }
    }

    /// The parameters.
    pub fn params(&self) -> &FeatureParams {
        &self.params
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        CORE_DIMS + self.params.category_buckets + ATTR_NUMERIC_SLOTS + ATTR_TEXT_SLOTS
    }

    /// Index of the first category dimension.
    #[cfg(any(feature = "cli", feature = "testing"))]
    pub fn category_start(&self) -> usize {
        CORE_DIMS
    }

    /// The name of every dimension, in order.
    pub fn names(&self) -> Vec<String> {
        self.names.to_vec()
    }

    /// The name of every dimension, in order, without copying them.
    pub fn name_list(&self) -> &[String] {
        &self.names
    }

    fn build_names(params: &FeatureParams) -> Vec<String> {
        let mut names: Vec<String> = [
            "recency_days",
            "tenure_days",
            "days_since_purchase",
            "purchases",
            "spend",
            "decayed_purchases",
            "decayed_spend",
            "avg_order_value",
            "view_seconds",
            "refund_share",
            "rating_mean",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.extend(EventKind::ALL.iter().map(|k| format!("decayed_{k}")));
        names.extend(EventKind::ALL.iter().map(|k| format!("mix_{k}")));
        names.extend((0..params.category_buckets).map(|b| format!("category_{b}")));
        names.extend((0..ATTR_NUMERIC_SLOTS).map(|s| format!("attr_num_{s}")));
        names.extend((0..ATTR_TEXT_SLOTS).map(|s| format!("attr_cat_{s}")));
        names
    }

    /// The feature vector of `state` as of `now_ms`.
    ///
    /// # Examples
    /// ```
    /// use persona::testing::features::{FeatureParams, ProfileState, vector::FeatureLayout};
    /// let params = FeatureParams { half_life_ms: 30.0 * 86_400_000.0, category_buckets: 8 };
    /// let layout = FeatureLayout::new(params);
    /// let v = layout.vector(&ProfileState::new(&params), 0);
    /// assert_eq!(v.len(), layout.dim());
    /// ```
    pub fn vector(&self, state: &ProfileState, now_ms: i64) -> Vec<f64> {
        let mut out = vec![0.0; self.dim()];
        self.write_vector(state, now_ms, &mut out);
        out
    }

    /// The dimensions that change with the evaluation time ([`FeatureLayout::time_dependence`])
    /// as of `now_ms`, written into `out` from `t` alone: exactly what
    /// [`FeatureLayout::write_vector`] writes there for a state `t` was taken of.
    pub fn write_time_dependent(&self, t: &Temporal, now_ms: i64, out: &mut [f64]) {
        let days_since = |t: Option<i64>| match t {
            Some(t) => (now_ms.saturating_sub(t).max(0) as f64 / DAY_MS).ln_1p(),
            None => MISSING_DAYS.ln_1p(),
        };
        let decay = self.params.decay(t.anchor_ms, now_ms);
        // ln(1 + 0) is 0 (of the same sign): most kinds are never seen by most customers.
        let log1p = |x: f64| if x == 0.0 { x } else { x.ln_1p() };
        out[0] = days_since(t.last_seen_ms);
        out[1] = match t.first_seen_ms {
            Some(f) => (now_ms.saturating_sub(f).max(0) as f64 / DAY_MS).ln_1p(),
            None => 0.0,
        };
        out[2] = days_since(t.last_purchase_ms);
        out[5] = log1p(t.kind_decayed[EventKind::Purchase.index()] * decay);
        out[6] = log1p(t.decayed_spend * decay);
        for k in 0..EventKind::COUNT {
            out[DECAYED_KINDS + k] = log1p(t.kind_decayed[k] * decay);
        }
    }

    /// Like [`FeatureLayout::vector`], into `out` (which must have [`FeatureLayout::dim`] slots).
    pub fn write_vector(&self, s: &ProfileState, now_ms: i64, out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.dim());
        out.iter_mut().for_each(|v| *v = 0.0);
        let p = &self.params;
        let purchases = s.purchases() as f64;
        self.write_time_dependent(&Temporal::of(s), now_ms, out);
        out[3] = purchases.ln_1p();
        out[4] = s.spend.ln_1p();
        out[7] = if purchases > 0.0 {
            (s.spend / purchases).ln_1p()
        } else {
            0.0
        };
        out[8] = s.view_seconds.ln_1p();
        let refund_base = s.spend + s.refunded;
        out[9] = if refund_base > 0.0 {
            s.refunded / refund_base
        } else {
            0.0
        };
        let ratings = s.kind_counts[EventKind::Rating.index()];
        out[10] = if ratings > 0 {
            s.rating_sum / ratings as f64 - 3.0
        } else {
            0.0
        };
        for k in 0..EventKind::COUNT {
            if s.event_count > 0 {
                out[MIX_KINDS + k] = s.kind_counts[k] as f64 / s.event_count as f64;
            }
        }
        let total: f64 = s.categories.iter().sum();
        if total > 0.0 {
            for (b, v) in s.categories.iter().enumerate().take(p.category_buckets) {
                out[CORE_DIMS + b] = v / total;
            }
        }
        let num_start = CORE_DIMS + p.category_buckets;
        let text_start = num_start + ATTR_NUMERIC_SLOTS;
        // Consent is no feature: a model does not learn who consented.
        let attrs = s.attributes.iter().filter(|(n, _)| !consent::is_consent(n));
        for (name, value) in attrs {
            match value {
                AttrValue::Number(x) => {
                    let slot = slot_of(name.as_bytes(), ATTR_NUMERIC_SLOTS);
                    out[num_start + slot] += x.signum() * x.abs().ln_1p();
                }
                AttrValue::Text(t) => {
                    let mut key = Vec::with_capacity(name.len() + t.len() + 1);
                    key.extend_from_slice(name.as_bytes());
                    key.push(b'=');
                    key.extend_from_slice(t.as_bytes());
                    out[text_start + slot_of(&key, ATTR_TEXT_SLOTS)] = 1.0;
                }
            }
        }
    }
}

/// How a dimension depends on the time it is evaluated at (see [`FeatureLayout::time_dependence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDependence {
    /// `ln(1 + days since some past moment)`: grows while the customer is silent.
    DaysSince,
    /// `ln(1 + c · decay)`: a decayed quantity, shrinking while the customer is silent.
    Decayed,
}

impl FeatureLayout {
    /// The interval a dimension's value normally lies in, `(lo, hi)`: what a compact 8-bit
    /// copy of the vector covers, in 255 equal steps. Values outside it are possible only for
    /// extreme inputs (e.g. more than e^16 purchases), and a quantiser clamps them. Each range
    /// puts 0 (a missing feature: no rating, no attribute) exactly on that grid.
    pub fn typical_range(&self, i: usize) -> (f64, f64) {
        let num_start = CORE_DIMS + self.params.category_buckets;
        let text_start = num_start + ATTR_NUMERIC_SLOTS;
        match i {
            // Logarithms of days, counts and amounts.
            0..=8 | DECAYED_KINDS..MIX_KINDS => (0.0, LOG_RANGE),
            // Step 2/127: 0 is code 127.
            10 => (-2.0, -2.0 + 255.0 * 2.0 / 127.0),
            // Step 1/8: 0 is code 128.
            _ if (num_start..text_start).contains(&i) => (-ATTR_RANGE, ATTR_RANGE - 0.125),
            // Shares, normalised affinities and one-hot slots.
            _ => (0.0, 1.0),
        }
    }

    /// Whether dimension `i` changes with the evaluation time while the state stays the same,
    /// and how. Every other dimension depends on the state alone.
    pub fn time_dependence(&self, i: usize) -> Option<TimeDependence> {
        match i {
            0..=2 => Some(TimeDependence::DaysSince),
            5 | 6 | DECAYED_KINDS..MIX_KINDS => Some(TimeDependence::Decayed),
            _ => None,
        }
    }
}

/// What of a profile's state the time-dependent dimensions of its vector read
/// ([`FeatureLayout::write_time_dependent`]): with the rest of a vector computed at one time,
/// enough to bring it to any later time exactly, as the propensity's refit rows are
/// (`src/pipeline/cohorts.rs`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Temporal {
    /// Earliest event time seen.
    pub first_seen_ms: Option<i64>,
    /// Latest event time seen.
    pub last_seen_ms: Option<i64>,
    /// Latest purchase time seen.
    pub last_purchase_ms: Option<i64>,
    /// Time at which the decayed values are expressed.
    pub anchor_ms: i64,
    /// Decayed count per kind at `anchor_ms`.
    pub kind_decayed: [f64; EventKind::COUNT],
    /// Decayed purchase amount at `anchor_ms`.
    pub decayed_spend: f64,
}

impl Temporal {
    /// The time-dependent part of `s`.
    pub fn of(s: &ProfileState) -> Temporal {
        Temporal {
            first_seen_ms: s.first_seen_ms,
            last_seen_ms: s.last_seen_ms,
            last_purchase_ms: s.last_purchase_ms,
            anchor_ms: s.anchor_ms,
            kind_decayed: s.kind_decayed,
            decayed_spend: s.decayed_spend,
        }
    }
}

/// Upper end of the typical range of the log-scaled dimensions: ln(1 + x) ≤ 15.94 covers up to
/// 8 million days, purchases or currency units; 255 / 16 makes a step of exactly 1/16 in 8 bits.
pub const LOG_RANGE: f64 = 255.0 / 16.0;
/// Bound of the typical range of the numeric-attribute slots (signed ln(1 + |x|) sums).
pub const ATTR_RANGE: f64 = 16.0;

fn slot_of(bytes: &[u8], slots: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(bytes) % slots as u64) as usize
}

/// A layout for unit tests: a 10-day half-life, 8 category buckets.
#[cfg(test)]
pub(crate) fn test_layout() -> FeatureLayout {
    FeatureLayout::new(FeatureParams {
        half_life_ms: 10.0 * DAY_MS,
        category_buckets: 8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{CompactEvent, ProfileOp};

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_767_225_600_000;

    fn layout() -> FeatureLayout {
        test_layout()
    }

    #[test]
    fn names_match_dimensions() {
        let l = layout();
        assert_eq!(l.dim(), 53);
        assert_eq!(l.names().len(), l.dim());
        assert_eq!(l.names()[DECAYED_KINDS + 4], "decayed_purchase");
        assert_eq!(l.names()[MIX_KINDS], "mix_view");
    }

    #[test]
    fn vector_is_hand_computable_and_recency_grows_while_silent() {
        let l = layout();
        let p = *l.params();
        let mut s = ProfileState::new(&p);
        for (t, kind, v) in [
            (T0, EventKind::Purchase, 99.0),
            (T0, EventKind::View, 59.0),
            (T0, EventKind::Rating, 5.0),
            (T0, EventKind::Refund, 33.0),
        ] {
            s.apply(
                &ProfileOp::Event(CompactEvent {
                    timestamp_ms: t,
                    kind,
                    value: v,
                    bucket: Some(3),
                }),
                &p,
            );
        }
        s.apply(
            &ProfileOp::SetAttributes(vec![("age".into(), AttrValue::Number(-9.0))]),
            &p,
        );
        let now = T0 + 10 * DAY;
        let v = l.vector(&s, now);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(v[0], 11f64.ln()));
        assert!(close(v[1], 11f64.ln()));
        assert!(close(v[2], 11f64.ln()));
        assert!(close(v[3], 2f64.ln()));
        assert!(close(v[4], 100f64.ln()));
        assert!(close(v[5], 1.5f64.ln()), "one purchase, one half-life ago");
        assert!(close(v[6], 50.5f64.ln()));
        assert!(close(v[7], 100f64.ln()));
        assert!(close(v[8], 60f64.ln()));
        assert!(close(v[9], 0.25));
        assert!(close(v[10], 2.0));
        assert!(close(v[MIX_KINDS + EventKind::View.index()], 0.25));
        assert!(close(v[CORE_DIMS + 3], 1.0));
        let attr_sum: f64 = v[CORE_DIMS + 8..CORE_DIMS + 12].iter().sum();
        assert!(close(attr_sum, -(10f64.ln())));
        // Silence: recency grows, decayed counts shrink, lifetime counts stay.
        let later = l.vector(&s, now + 30 * DAY);
        assert!(later[RECENCY] > v[RECENCY]);
        assert!(later[DECAYED_PURCHASES] < v[DECAYED_PURCHASES]);
        assert_eq!(later[PURCHASES], v[PURCHASES]);
    }

    #[test]
    fn empty_profile_is_finite() {
        let l = layout();
        let v = l.vector(&ProfileState::new(l.params()), T0);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!((v[0] - 366f64.ln()).abs() < 1e-12);
    }
}
