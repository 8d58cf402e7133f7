//! The feature vector in the units people read: days, counts, amounts, seconds, stars.
//!
//! The model sees log-scaled values ([`super::vector`]): `recency_days` holds
//! ln(1 + days), and a customer who never purchased gets a stand-in of 365 days. For people the
//! same dimensions are reported here in their own units, from the profile state directly, with
//! `None` where the quantity does not exist ("never purchased", "no rating") instead of a
//! stand-in. The attribute slots have no raw counterpart (their values are hashed sums; the
//! attributes themselves are shown as set) and are `None` too.

use super::vector::{FeatureLayout, CORE_DIMS, DECAYED_KINDS, MIX_KINDS};
use super::{ProfileState, DAY_MS};
use crate::event::EventKind;

/// The unit of a dimension's raw value (see [`FeatureLayout::raw_values`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Days (recency, tenure, days since purchase).
    Days,
    /// A whole count of events over the customer's lifetime.
    Count,
    /// A time-decayed count: each event weighs 2^(−age / half-life).
    DecayedCount,
    /// An amount of money (purchase values, as sent).
    Amount,
    /// A time-decayed amount.
    DecayedAmount,
    /// Seconds (view time).
    Seconds,
    /// A share between 0 and 1.
    Share,
    /// Rating stars, 1 to 5.
    Stars,
    /// An attribute slot: no raw value.
    None,
}

impl Unit {
    /// A short name of the unit: `days`, `count`, `amount`, `seconds`, `share`, `stars`, or
    /// empty for an attribute slot (decayed counts and amounts are a `count` and an `amount`).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Days => "days",
            Unit::Count | Unit::DecayedCount => "count",
            Unit::Amount | Unit::DecayedAmount => "amount",
            Unit::Seconds => "seconds",
            Unit::Share => "share",
            Unit::Stars => "stars",
            Unit::None => "",
        }
    }

    /// The value formatted for a person, with its unit (`"3.2 days"`, `"12"`, `"45.0%"`);
    /// `missing` for a dimension without a value (e.g. `"never"` for days since purchase).
    #[cfg(any(feature = "cli", feature = "testing"))]
    pub fn format(self, value: Option<f64>, missing: &str) -> String {
        let Some(v) = value else {
            return missing.to_string();
        };
        match self {
            Unit::Days => format!("{v:.1} days"),
            Unit::Count => format!("{v:.0}"),
            Unit::DecayedCount => format!("{v:.2}"),
            Unit::Amount | Unit::DecayedAmount => format!("{v:.2}"),
            Unit::Seconds => format!("{v:.0} s"),
            Unit::Share => format!("{:.1}%", v * 100.0),
            Unit::Stars => format!("{v:.2} stars"),
            Unit::None => format!("{v}"),
        }
    }
}

impl FeatureLayout {
    /// Number of event-derived dimensions (every one before the attribute slots): those with a
    /// raw value.
    pub fn event_dims(&self) -> usize {
        CORE_DIMS + self.params().category_buckets
    }

    /// The unit of dimension `i`'s raw value.
    pub fn unit(&self, i: usize) -> Unit {
        match i {
            0..=2 => Unit::Days,
            3 => Unit::Count,
            4 | 7 => Unit::Amount,
            5 => Unit::DecayedCount,
            6 => Unit::DecayedAmount,
            8 => Unit::Seconds,
            9 => Unit::Share,
            10 => Unit::Stars,
            DECAYED_KINDS..MIX_KINDS => Unit::DecayedCount,
            _ if i < CORE_DIMS + self.params().category_buckets => Unit::Share,
            _ => Unit::None,
        }
    }

    /// Every dimension of [`FeatureLayout::vector`] in its own unit ([`FeatureLayout::unit`]),
    /// as of `now_ms`: days and counts instead of their logarithms, the mean rating in stars.
    /// `None` where the quantity does not exist: days since the last event or purchase, tenure
    /// and average order value of a customer without one, the mean rating without ratings, and
    /// every attribute slot.
    ///
    /// # Examples
    /// ```
    /// use persona::testing::features::{FeatureParams, ProfileState, vector::FeatureLayout};
    /// let params = FeatureParams { half_life_ms: 30.0 * 86_400_000.0, category_buckets: 8 };
    /// let layout = FeatureLayout::new(params);
    /// let raw = layout.raw_values(&ProfileState::new(&params), 0);
    /// assert_eq!(raw.len(), layout.dim());
    /// assert_eq!(raw[2], None); // days since purchase: never purchased
    /// ```
    pub fn raw_values(&self, s: &ProfileState, now_ms: i64) -> Vec<Option<f64>> {
        let p = self.params();
        let mut out = vec![None; self.dim()];
        let days_since = |t: Option<i64>| t.map(|t| (now_ms - t).max(0) as f64 / DAY_MS);
        let decay = p.decay(s.anchor_ms, now_ms);
        let purchases = s.purchases() as f64;
        out[0] = days_since(s.last_seen_ms);
        out[1] = days_since(s.first_seen_ms);
        out[2] = days_since(s.last_purchase_ms);
        out[3] = Some(purchases);
        out[4] = Some(s.spend);
        out[5] = Some(s.kind_decayed[EventKind::Purchase.index()] * decay);
        out[6] = Some(s.decayed_spend * decay);
        out[7] = (purchases > 0.0).then(|| s.spend / purchases);
        out[8] = Some(s.view_seconds);
        let refund_base = s.spend + s.refunded;
        out[9] = Some(if refund_base > 0.0 {
            s.refunded / refund_base
        } else {
            0.0
        });
        let ratings = s.kind_counts[EventKind::Rating.index()];
        out[10] = (ratings > 0).then(|| s.rating_sum / ratings as f64);
        for k in 0..EventKind::COUNT {
            out[DECAYED_KINDS + k] = Some(s.kind_decayed[k] * decay);
            out[MIX_KINDS + k] = Some(if s.event_count > 0 {
                s.kind_counts[k] as f64 / s.event_count as f64
            } else {
                0.0
            });
        }
        let total: f64 = s.categories.iter().sum();
        for b in 0..p.category_buckets {
            let v = s.categories.get(b).copied().unwrap_or(0.0);
            out[CORE_DIMS + b] = Some(if total > 0.0 { v / total } else { 0.0 });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{CompactEvent, FeatureParams, ProfileOp};

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_767_225_600_000;

    #[test]
    fn raw_values_invert_the_model_transform_and_say_never() {
        let params = FeatureParams {
            half_life_ms: 10.0 * DAY as f64,
            category_buckets: 8,
        };
        let layout = FeatureLayout::new(params);
        let mut s = ProfileState::new(&params);
        s.apply(
            &ProfileOp::Event(CompactEvent {
                timestamp_ms: T0,
                kind: EventKind::View,
                value: 30.0,
                bucket: Some(2),
            }),
            &params,
        );
        let now = T0 + 3 * DAY;
        let raw = layout.raw_values(&s, now);
        let model = layout.vector(&s, now);
        assert_eq!(raw[0], Some(3.0));
        assert_eq!(raw[2], None, "never purchased");
        assert!(
            (model[2] - 365f64.ln_1p()).abs() < 1e-12,
            "the model's stand-in"
        );
        assert_eq!(raw[7], None, "no average order value without orders");
        assert_eq!(raw[10], None, "no rating");
        for i in [0, 1, 3, 4, 8, DECAYED_KINDS] {
            let r = raw[i].expect("defined");
            assert!((r.ln_1p() - model[i]).abs() < 1e-12, "dimension {i}");
        }
        assert_eq!(raw[CORE_DIMS + 2], Some(1.0));
        assert_eq!(
            raw[layout.dim() - 1],
            None,
            "attribute slots have no raw value"
        );
        assert_eq!(layout.unit(0).format(raw[0], "never"), "3.0 days");
        assert_eq!(layout.unit(2).format(raw[2], "never"), "never");
        assert_eq!(layout.unit(MIX_KINDS).format(raw[MIX_KINDS], "-"), "100.0%");
    }
}
