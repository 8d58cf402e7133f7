//! Segment summaries: size, statistics of the members as of now in raw units, a label, the
//! rule's action.
//!
//! The statistics come from `segment_stats::summarise` (the members evaluated as of the
//! watermark, or a uniform sample of them). The label describes a segment relative to all
//! members ([`Traits`]): "high spend · frequent · recent · mostly purchase · top category:
//! books"; a category bucket that several categories share is named with all of them
//! ("garden/sports"). The rule's action ([`crate::query::strategy::rule_for`]) follows from the
//! same traits, so a segment labelled "lapsing" is the one the rules send a win-back coupon.

use super::segment_stats::{self, MemberStats, Popular, Summary};
use crate::event::EventKind;
use crate::features::categories::CategoryNames;
use crate::features::vector::FeatureLayout;
use crate::model::ModelState;
use crate::query::strategy::{rule_for, summaries, ActionSummary};
use serde::Serialize;

/// One segment, described: its members' statistics as of the watermark, in raw units.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentInfo {
    /// Segment number.
    pub id: u16,
    /// Profiles assigned to it (whose record's segment is this one).
    pub size: u64,
    /// Members the statistics below were computed from: all of them, or a uniform sample
    /// (at most about 50,000 members over all segments).
    pub evaluated: u64,
    /// A short description derived from the statistics below.
    pub label: String,
    /// Median days since the last event (as of the watermark); null without events.
    pub recency_days: Option<f64>,
    /// Median days since the first event; null without events.
    pub tenure_days: Option<f64>,
    /// Median days since the last purchase, over members who purchased; null if none did.
    pub days_since_purchase: Option<f64>,
    /// Share of members who purchased at least once.
    pub buyers: f64,
    /// Mean lifetime purchases.
    pub purchases: f64,
    /// Median lifetime spend.
    pub spend: f64,
    /// Median lifetime spend of the members who purchased; null if none did.
    pub buyer_spend: Option<f64>,
    /// Mean lifetime spend.
    pub mean_spend: f64,
    /// Mean lifetime cart adds.
    pub cart_adds: f64,
    /// Mean time-decayed event count now (each event weighs 2^(−age / half-life)).
    pub recent_events: f64,
    /// Mean propensity of the members with the current model, as of the watermark.
    pub mean_propensity: f64,
    /// The most common event kind (largest mean share of a member's events).
    pub top_kind: Option<String>,
    /// The category buckets with the largest mean affinity (at most three, each over 10 %),
    /// named with every category that shares the bucket.
    pub top_categories: Vec<CategoryShare>,
    /// Centroid mapped back to model feature units (same layout as profile features).
    pub centroid: Vec<f64>,
    /// The action the domain rules suggest for this segment.
    pub rule_action: String,
    /// The action with the best posterior mean conversion rate.
    pub best_action: String,
    /// Every action's feedback statistics in this segment.
    pub actions: Vec<ActionSummary>,
    /// The items most members bought (then: engaged with), at most 20, from the same members
    /// as the statistics above: what `Db::recommend` offers as popular in the segment.
    pub popular_items: Vec<Popular>,
    /// The categories, by name, as `popular_items`.
    pub popular_categories: Vec<Popular>,
}

/// A category bucket's share of a segment's affinity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryShare {
    /// The bucket's categories, most frequent first, joined by `/` ("garden/sports"); `bucket
    /// N` before any name was seen.
    pub name: String,
    /// Bucket number.
    pub bucket: usize,
    /// Mean normalised affinity of the members for this bucket (0 to 1).
    pub share: f64,
}

/// How a segment compares with all members, in raw units: the words of its label, and what
/// the rules act on. A segment is
/// - *lapsing* when its median days since the last event exceed both the horizon and twice the
///   population's (most members have been silent for longer than the horizon, and for much
///   longer than customers usually are); *recent* when it is at most half the population's;
/// - *high spend* when at least half its members purchased and their median lifetime spend is
///   at least twice that of all buyers (a segment of buyers is not "high spend" merely because
///   half the population never bought); *low spend* when its mean lifetime spend is at most half
///   the population's;
/// - *frequent* when its mean decayed event count is at least 1.5 times the population's,
///   *occasional* at most half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traits {
    /// See above.
    pub lapsing: bool,
    /// See above.
    pub recent: bool,
    /// See above.
    pub high_spend: bool,
    /// See above.
    pub low_spend: bool,
    /// See above.
    pub frequent: bool,
    /// See above.
    pub occasional: bool,
}

impl Traits {
    /// The traits of `seg` among `population`, with the propensity horizon in days.
    pub fn of(seg: &MemberStats, population: &MemberStats, horizon_days: f64) -> Traits {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                a / b
            } else if a > 0.0 {
                f64::INFINITY
            } else {
                1.0
            }
        };
        let (lapsing, recent) = match (seg.recency_days, population.recency_days) {
            (Some(r), Some(p)) => (r > horizon_days.max(2.0 * p), r <= p / 2.0),
            _ => (false, false),
        };
        let buyer_spend = match (seg.buyer_spend, population.buyer_spend) {
            (Some(s), Some(p)) => ratio(s, p),
            _ => 0.0,
        };
        let activity = ratio(seg.recent_events, population.recent_events);
        Traits {
            lapsing,
            recent,
            high_spend: seg.buyers >= 0.5 && buyer_spend >= 2.0,
            low_spend: ratio(seg.mean_spend, population.mean_spend) <= 0.5,
            frequent: activity >= 1.5,
            occasional: activity <= 0.5,
        }
    }
}

/// Describes every segment of `model` from `summary` (empty before seeding).
pub fn describe(
    model: &ModelState,
    summary: &Summary,
    names: &CategoryNames,
    horizon_days: f64,
) -> Vec<SegmentInfo> {
    if !model.segments.is_seeded() {
        return Vec::new();
    }
    let empty = MemberStats::default();
    (0..model.segments.k())
        .map(|i| {
            let centroid = model.segments.centroid(i);
            let st = summary.segments.get(i).unwrap_or(&empty);
            let traits = Traits::of(st, &summary.population, horizon_days);
            let rule = rule_for(st, &traits, horizon_days);
            let actions = summaries(model, i, rule);
            let best_action = actions
                .iter()
                .max_by(|a, b| a.expected_conversion.total_cmp(&b.expected_conversion))
                .map(|a| a.action.clone())
                .unwrap_or_default();
            let top_kind = top_kind(st);
            let top_categories = top_categories(st, names);
            SegmentInfo {
                id: i as u16,
                size: model.segment_sizes.get(i).copied().unwrap_or(0),
                evaluated: st.evaluated,
                label: label(st, &traits, top_kind, &top_categories),
                recency_days: st.recency_days,
                tenure_days: st.tenure_days,
                days_since_purchase: st.days_since_purchase,
                buyers: st.buyers,
                purchases: st.purchases,
                spend: st.spend,
                buyer_spend: st.buyer_spend,
                mean_spend: st.mean_spend,
                cart_adds: st.cart_adds,
                recent_events: st.recent_events,
                mean_propensity: st.mean_propensity,
                top_kind: top_kind.map(|k| k.to_string()),
                top_categories,
                centroid,
                rule_action: rule.to_string(),
                best_action,
                actions,
                popular_items: st.popular_items.clone(),
                popular_categories: st.popular_categories.clone(),
            }
        })
        .collect()
}

/// Computes the statistics ([`segment_stats::summarise`]) and describes every segment.
///
/// # Errors
/// [`crate::Error::Storage`] if sled fails while scanning.
pub(crate) fn summarise_and_describe(
    store: &crate::storage::Store,
    model: &ModelState,
    layout: &FeatureLayout,
    horizon_days: f64,
) -> crate::Result<Vec<SegmentInfo>> {
    let summary = segment_stats::summarise(store, model, layout, segment_stats::SAMPLE)?;
    Ok(describe(model, &summary, &model.categories, horizon_days))
}

fn top_kind(st: &MemberStats) -> Option<EventKind> {
    st.kind_share
        .iter()
        .enumerate()
        .filter(|(_, s)| **s > 0.0)
        .max_by(|a, b| a.1.total_cmp(b.1))
        .and_then(|(k, _)| EventKind::ALL.get(k).copied())
}

fn top_categories(st: &MemberStats, names: &CategoryNames) -> Vec<CategoryShare> {
    let mut buckets: Vec<(usize, f64)> = st
        .category_share
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| *s > 0.1)
        .collect();
    buckets.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    buckets
        .into_iter()
        .take(3)
        .map(|(bucket, share)| CategoryShare {
            name: names
                .label(bucket)
                .unwrap_or_else(|| format!("bucket {bucket}")),
            bucket,
            share,
        })
        .collect()
}

fn label(
    st: &MemberStats,
    traits: &Traits,
    top_kind: Option<EventKind>,
    categories: &[CategoryShare],
) -> String {
    if st.evaluated == 0 {
        return "empty".to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    let word = |hi: bool, lo: bool, a: &str, b: &str| {
        if hi {
            Some(a.to_string())
        } else if lo {
            Some(b.to_string())
        } else {
            None
        }
    };
    parts.extend(word(
        traits.high_spend,
        traits.low_spend,
        "high spend",
        "low spend",
    ));
    parts.extend(word(
        traits.frequent,
        traits.occasional,
        "frequent",
        "occasional",
    ));
    parts.extend(word(traits.recent, traits.lapsing, "recent", "lapsing"));
    if let Some(k) = top_kind {
        parts.push(format!("mostly {k}"));
    }
    if let Some(c) = categories.first() {
        parts.push(format!("top category: {}", c.name));
    }
    if parts.is_empty() {
        "average".to_string()
    } else {
        parts.join(" · ")
    }
}

/// A segment and a distance to it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SegmentDistance {
    /// Segment number.
    pub segment: u16,
    /// Euclidean distance in standardised units.
    pub distance: f64,
}

/// The segment descriptions computed last, for [`crate::Db::strategy`]: it needs a segment's
/// rule and label on every call, and must not scan the store each time. A description is
/// reused while the model version is unchanged or for [`SegmentCache::MAX_AGE`]; every call of
/// [`crate::Db::segments`] refreshes it.
#[derive(Debug, Default)]
pub(crate) struct SegmentCache {
    last: parking_lot::Mutex<Option<CachedSegments>>,
}

#[derive(Debug)]
struct CachedSegments {
    at: std::time::Instant,
    model_version: u64,
    segments: std::sync::Arc<Vec<SegmentInfo>>,
}

impl SegmentCache {
    /// How long descriptions are reused after the model changed.
    pub(crate) const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

    /// The cached descriptions, if still usable for a model at `model_version`.
    pub(crate) fn get(&self, model_version: u64) -> Option<std::sync::Arc<Vec<SegmentInfo>>> {
        let last = self.last.lock();
        let c = last.as_ref()?;
        (c.model_version == model_version || c.at.elapsed() < Self::MAX_AGE)
            .then(|| std::sync::Arc::clone(&c.segments))
    }

    /// Remembers descriptions computed for a model at `model_version`.
    pub(crate) fn put(&self, model_version: u64, segments: std::sync::Arc<Vec<SegmentInfo>>) {
        *self.last.lock() = Some(CachedSegments {
            at: std::time::Instant::now(),
            model_version,
            segments,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(recency: f64, buyers: f64, buyer_spend: f64, events: f64) -> MemberStats {
        MemberStats {
            evaluated: 100,
            recency_days: Some(recency),
            tenure_days: Some(100.0),
            buyers,
            purchases: 2.0 * buyers,
            buyer_spend: (buyers > 0.0).then_some(buyer_spend),
            mean_spend: buyers * buyer_spend,
            recent_events: events,
            ..MemberStats::default()
        }
    }

    #[test]
    fn traits_and_rules_follow_the_raw_statistics() {
        let everyone = stats(20.0, 0.6, 100.0, 2.0);
        let rule = |s: &MemberStats| rule_for(s, &Traits::of(s, &everyone, 30.0), 30.0);
        // Silent for longer than the horizon and twice everyone: lapsing, win-back.
        let lapsing = stats(90.0, 0.6, 100.0, 0.2);
        let t = Traits::of(&lapsing, &everyone, 30.0);
        assert!(t.lapsing && t.occasional && !t.recent);
        assert_eq!(rule(&lapsing), "win_back_coupon");
        // 35 days: over the horizon but under twice everyone's 20: not lapsing.
        assert!(!Traits::of(&stats(35.0, 0.6, 100.0, 2.0), &everyone, 30.0).lapsing);
        // Buyers spending three times what buyers usually do, recently: VIP.
        let vip = stats(5.0, 0.9, 300.0, 4.0);
        let t = Traits::of(&vip, &everyone, 30.0);
        assert!(t.high_spend && t.recent && t.frequent);
        assert_eq!(rule(&vip), "vip_offer");
        // Cart adds without purchases.
        let carts = MemberStats {
            cart_adds: 3.0,
            ..stats(10.0, 0.6, 50.0, 2.0)
        };
        assert_eq!(rule(&carts), "cart_reminder");
        // Engaged, rarely buying: new products; a steady mid-spend segment: nothing.
        assert_eq!(rule(&stats(10.0, 0.1, 20.0, 2.0)), "new_product");
        assert_eq!(rule(&stats(10.0, 0.8, 100.0, 2.0)), "none");
        assert_eq!(rule(&MemberStats::default()), "none");
    }

    #[test]
    fn a_shared_bucket_is_named_with_all_its_categories() {
        let mut names = CategoryNames::new(2);
        for n in ["sports", "sports", "garden", "toys", "sports"] {
            names.observe(0, n, &[0; 16]);
        }
        let st = MemberStats {
            category_share: vec![0.7, 0.3],
            ..MemberStats::default()
        };
        let top = top_categories(&st, &names);
        assert_eq!(top[0].name, "sports/garden/toys");
        assert_eq!(top[1].name, "bucket 1");
    }
}
