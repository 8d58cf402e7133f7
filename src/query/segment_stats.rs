//! Segment statistics as of now, over the current members, in raw units.
//!
//! **What is measured.** A segment's members are the profiles whose record is assigned to it
//! (what `size`, [`crate::Db::segment_members`] and `persona check` count). Each member is
//! evaluated *as of the watermark* — days since the last event keep growing while a customer
//! is silent, and the propensity is the current model's — and the statistics are taken in the
//! units people read (days, counts, amounts): medians for the heavy-tailed days and spend,
//! means for the rest. The same pass gives the statistics of all members together (the
//! population), which labels compare against.
//!
//! **What it costs.** One pass over the profile keys (sled iteration), decoding and evaluating
//! only the members of a uniform sample: a customer is in it when a hash of their id falls
//! below `sample / members`, so at most about [`SAMPLE`] records are decoded however large the
//! store is, and the same store state always gives the same sample (and so the same
//! statistics on every surface). Every segment reports how many members were evaluated.
//!
//! **Invariant.** `summarise` is the only place these statistics are computed; the segment
//! table, `export segments`, `SEGMENT.LIST`, the report and the strategy rules all read its
//! output.

use crate::event::EventKind;
use crate::features::affinity::{decay as list_decay, Affinity, Engaged};
use crate::features::vector::FeatureLayout;
use crate::features::{ProfileState, DAY_MS};
use crate::model::ModelState;
use crate::storage::Store;
use compact_str::CompactString;
use serde::Serialize;
use std::collections::HashMap;

/// Most members decoded and evaluated per summary (a uniform sample beyond this).
pub const SAMPLE: u64 = 50_000;

/// How many items (and categories) a group's popularity lists keep.
pub const POPULAR: usize = 20;

/// An item or category popular among a group of members: how many of the members evaluated
/// have it in their engagement lists (`Profile::top_items`), how many of them bought it, and
/// their summed engagement as of now. Lists rank by buyers, then members, then engagement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Popular {
    /// The item id or category name.
    pub name: String,
    /// Summed engagement of the members evaluated, as of the watermark.
    pub weight: f64,
    /// Members evaluated who engaged with it.
    pub customers: u64,
    /// Members evaluated who bought it.
    pub buyers: u64,
}

/// Statistics of a group of members (a segment, or all of them) as of the watermark.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberStats {
    /// Members evaluated (all of them, or those in the sample).
    pub evaluated: u64,
    /// Median days since the last event, over members with events.
    pub recency_days: Option<f64>,
    /// Median days since the first event, over members with events.
    pub tenure_days: Option<f64>,
    /// Median days since the last purchase, over members who purchased.
    pub days_since_purchase: Option<f64>,
    /// Share of members with at least one purchase.
    pub buyers: f64,
    /// Mean lifetime purchases.
    pub purchases: f64,
    /// Median lifetime spend.
    pub spend: f64,
    /// Median lifetime spend of the members who purchased.
    pub buyer_spend: Option<f64>,
    /// Mean lifetime spend.
    pub mean_spend: f64,
    /// Mean lifetime cart adds.
    pub cart_adds: f64,
    /// Mean time-decayed event count (all kinds) now: recent activity.
    pub recent_events: f64,
    /// Mean propensity with the current model.
    pub mean_propensity: f64,
    /// Mean share of each event kind among a member's events, in [`EventKind::ALL`] order.
    pub kind_share: Vec<f64>,
    /// Mean normalised category affinity per bucket now.
    pub category_share: Vec<f64>,
    /// The items most members bought (then: engaged with), at most [`POPULAR`].
    pub popular_items: Vec<Popular>,
    /// The categories the members engaged with most, by name, as `popular_items`.
    pub popular_categories: Vec<Popular>,
}

/// Statistics of every segment and of all members, from one pass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// The time the members were evaluated at (the watermark), unix ms.
    pub as_of_ms: i64,
    /// Per segment, in id order.
    pub segments: Vec<MemberStats>,
    /// All members of every segment together.
    pub population: MemberStats,
}

/// Sums over members, turned into [`MemberStats`] by [`Accumulator::finish`].
#[derive(Debug, Clone, Default)]
struct Accumulator {
    evaluated: u64,
    recency: Vec<f64>,
    tenure: Vec<f64>,
    since_purchase: Vec<f64>,
    spend: Vec<f64>,
    buyer_spend: Vec<f64>,
    buyers: u64,
    purchases: f64,
    cart_adds: f64,
    recent_events: f64,
    propensity: f64,
    kind_share: Vec<f64>,
    category_share: Vec<f64>,
    items: HashMap<CompactString, (f64, u64, u64)>,
    categories: HashMap<CompactString, (f64, u64, u64)>,
}

/// Adds one member's list, decayed by `f`, to a group's sums.
fn add_list(sums: &mut HashMap<CompactString, (f64, u64, u64)>, list: &[Engaged], f: f64) {
    for e in list {
        let s = sums.entry(e.name.clone()).or_default();
        s.0 += f64::from(e.weight) * f;
        s.1 += 1;
        s.2 += u64::from(e.purchases > 0);
    }
}

/// The `POPULAR` largest sums, most engaged first (ties by name).
fn popular(sums: HashMap<CompactString, (f64, u64, u64)>) -> Vec<Popular> {
    let mut v: Vec<Popular> = sums
        .into_iter()
        .map(|(name, (weight, customers, buyers))| Popular {
            name: name.to_string(),
            weight,
            customers,
            buyers,
        })
        .collect();
    v.sort_by(|a, b| {
        (b.buyers, b.customers)
            .cmp(&(a.buyers, a.customers))
            .then(b.weight.total_cmp(&a.weight))
            .then_with(|| a.name.cmp(&b.name))
    });
    v.truncate(POPULAR);
    v
}

impl Accumulator {
    fn new(buckets: usize) -> Accumulator {
        Accumulator {
            kind_share: vec![0.0; EventKind::COUNT],
            category_share: vec![0.0; buckets],
            ..Accumulator::default()
        }
    }

    fn add(&mut self, s: &ProfileState, now_ms: i64, decay: f64, propensity: f64) {
        let days = |t: i64| (now_ms - t).max(0) as f64 / DAY_MS;
        self.evaluated += 1;
        if let Some(t) = s.last_seen_ms {
            self.recency.push(days(t));
        }
        if let Some(t) = s.first_seen_ms {
            self.tenure.push(days(t));
        }
        if let Some(t) = s.last_purchase_ms {
            self.since_purchase.push(days(t));
        }
        let purchases = s.purchases();
        self.buyers += u64::from(purchases > 0);
        if purchases > 0 {
            self.buyer_spend.push(s.spend);
        }
        self.purchases += purchases as f64;
        self.spend.push(s.spend);
        self.cart_adds += s.kind_counts[EventKind::CartAdd.index()] as f64;
        self.recent_events += s.kind_decayed.iter().sum::<f64>() * decay;
        self.propensity += propensity;
        if s.event_count > 0 {
            for (share, count) in self.kind_share.iter_mut().zip(s.kind_counts) {
                *share += count as f64 / s.event_count as f64;
            }
        }
        let total: f64 = s.categories.iter().sum();
        if total > 0.0 {
            for (share, v) in self.category_share.iter_mut().zip(&s.categories) {
                *share += v / total;
            }
        }
    }

    /// Adds a member's engagement lists, decayed to `now_ms`.
    fn add_lists(&mut self, a: &Affinity, now_ms: i64, half_life_ms: f64) {
        let f = f64::from(list_decay(now_ms - a.anchor_ms, half_life_ms));
        add_list(&mut self.items, &a.items, f);
        add_list(&mut self.categories, &a.categories, f);
    }

    fn finish(mut self) -> MemberStats {
        let n = self.evaluated;
        let mean = |sum: f64| if n > 0 { sum / n as f64 } else { 0.0 };
        let spend_sum: f64 = self.spend.iter().sum();
        MemberStats {
            evaluated: n,
            recency_days: median(&mut self.recency),
            tenure_days: median(&mut self.tenure),
            days_since_purchase: median(&mut self.since_purchase),
            buyers: mean(self.buyers as f64),
            purchases: mean(self.purchases),
            spend: median(&mut self.spend).unwrap_or(0.0),
            buyer_spend: median(&mut self.buyer_spend),
            mean_spend: mean(spend_sum),
            cart_adds: mean(self.cart_adds),
            recent_events: mean(self.recent_events),
            mean_propensity: mean(self.propensity).clamp(0.0, 1.0),
            kind_share: self.kind_share.iter().map(|s| mean(*s)).collect(),
            category_share: self.category_share.iter().map(|s| mean(*s)).collect(),
            popular_items: popular(self.items),
            popular_categories: popular(self.categories),
        }
    }
}

/// The median of `values` (reordered in place); `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let len = values.len();
    let mid = len / 2;
    let (lower, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if len % 2 == 1 {
        return Some(m);
    }
    let below = lower.iter().copied().max_by(f64::total_cmp).unwrap_or(m);
    Some((below + m) / 2.0)
}

/// Whether customer `id` is in a sample that keeps `limit` of `members` (a hash threshold:
/// uniform over ids, the same for the same arguments).
fn sampled(id: &str, limit: u64, members: u64) -> bool {
    if members <= limit {
        return true;
    }
    let threshold = (limit as f64 / members as f64 * u64::MAX as f64) as u64;
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), 0x5345_474d) < threshold
}

/// Evaluates the members of every segment as of the model's watermark — all of them, or a
/// uniform sample of about `limit` — and returns their statistics. An empty summary before
/// the segments are seeded. Damaged records are skipped (`persona check` reports them).
///
/// # Errors
/// [`crate::Error::Storage`] if sled fails while scanning.
pub(crate) fn summarise(
    store: &Store,
    model: &ModelState,
    layout: &FeatureLayout,
    limit: u64,
) -> crate::Result<Summary> {
    let k = model.segments.k();
    if !model.segments.is_seeded() {
        return Ok(Summary::default());
    }
    let buckets = layout.params().category_buckets;
    let members: u64 = model.segment_sizes.iter().sum();
    let mut per: Vec<Accumulator> = vec![Accumulator::new(buckets); k];
    let mut all = Accumulator::new(buckets);
    for item in store.scan_profiles() {
        let (id, bytes) = item?;
        if !sampled(&id, limit, members) {
            continue;
        }
        let Ok(rec) = store.decode_profile_current(&id, &bytes) else {
            continue;
        };
        let Some(seg) = rec.segment.map(usize::from).filter(|&s| s < k) else {
            continue;
        };
        let s = &rec.state;
        let now = model.watermark_ms.max(s.last_seen_ms.unwrap_or(i64::MIN));
        let z = model.scaler.transform_vec(&layout.vector(s, now));
        let propensity = model.propensity_of(s.event_count, &z);
        let decay = layout.params().decay(s.anchor_ms, now);
        per[seg].add(s, now, decay, propensity);
        all.add(s, now, decay, propensity);
        let half_life = layout.params().item_half_life_ms();
        per[seg].add_lists(&rec.affinity, now, half_life);
        all.add_lists(&rec.affinity, now, half_life);
    }
    Ok(Summary {
        as_of_ms: model.watermark_ms,
        segments: per.into_iter().map(Accumulator::finish).collect(),
        population: all.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn the_sample_is_everyone_up_to_the_limit_then_about_the_limit() {
        assert!((0..100).all(|i| sampled(&format!("c{i}"), 100, 100)));
        let kept = (0..100_000)
            .filter(|i| sampled(&format!("c{i}"), 10_000, 100_000))
            .count();
        assert!((9_000..11_000).contains(&kept), "{kept}");
    }

    #[test]
    fn statistics_are_in_raw_units_as_of_now() {
        use crate::features::{CompactEvent, FeatureParams, ProfileOp};
        const DAY: i64 = 86_400_000;
        let params = FeatureParams {
            half_life_ms: 30.0 * DAY as f64,
            category_buckets: 4,
        };
        let mut acc = Accumulator::new(4);
        for (spend, bought) in [(100.0_f64, true), (0.0, false)] {
            let mut s = ProfileState::new(&params);
            let kind = if bought {
                EventKind::Purchase
            } else {
                EventKind::View
            };
            s.apply(
                &ProfileOp::Event(CompactEvent {
                    timestamp_ms: 0,
                    kind,
                    value: spend.max(1.0),
                    bucket: Some(1),
                }),
                &params,
            );
            acc.add(&s, 10 * DAY, params.decay(s.anchor_ms, 10 * DAY), 0.25);
        }
        let st = acc.finish();
        assert_eq!(st.evaluated, 2);
        assert_eq!(st.recency_days, Some(10.0));
        assert_eq!(st.days_since_purchase, Some(10.0));
        assert_eq!(st.buyers, 0.5);
        assert_eq!(st.mean_spend, 50.0);
        assert_eq!(st.spend, 50.0);
        assert_eq!(st.buyer_spend, Some(100.0));
        assert_eq!(st.mean_propensity, 0.25);
        assert_eq!(st.category_share[1], 1.0);
        assert_eq!(st.kind_share[EventKind::View.index()], 0.5);
        // One event each, ten days into a 30-day half-life.
        assert!((st.recent_events - 2f64.powf(-1.0 / 3.0)).abs() < 1e-12);
    }
}
