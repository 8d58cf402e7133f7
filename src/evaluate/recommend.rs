//! The recommendation part of the backtest, for logs whose events name items: at each cutoff,
//! how well ranked lists of 10 items predict what each customer buys in `(cutoff, cutoff +
//! horizon]`, for Persona (`Db::recommend`'s list) and for same-run baselines.
//!
//! A customer counts when they have events by the cutoff and buy at least one named item in the
//! window; their *relevant* items are those bought in the window. *Discovery* counts only items
//! the customer had not bought by the cutoff: the lists leave out what they own, and a customer
//! counts when they buy something new. Metrics (binary relevance, `k` = 10), averaged over the
//! customers that count: recall@k = hits / relevant items; NDCG@k = Σ over hits of
//! 1 / log2(rank + 1), over the same sum for an ideal list (min(relevant, k) hits on top);
//! hit rate@k = share of customers with at least one hit.

use super::DAY_MS;
use crate::event::{Event, EventKind};
use crate::query::Profile;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};

/// Length of every ranked list.
pub const K: usize = 10;
/// The popularity baselines count purchases in this many days before the cutoff.
pub const POPULAR_DAYS: i64 = 90;

/// One scorer's recommendation metrics at one cutoff.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecommenderMetrics {
    /// The scorer: `persona`, `popular_90d`, `segment_popular_90d`, `own_purchases`.
    pub name: String,
    /// Mean recall@10.
    pub recall: f64,
    /// Mean NDCG@10.
    pub ndcg: f64,
    /// Share of customers with at least one hit in the 10.
    pub hit_rate: f64,
}

/// The recommendation backtest at one cutoff (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecommendationReport {
    /// Customers that count: events by the cutoff and a purchase of a named item after it.
    pub customers: u64,
    /// Every scorer on all the items they buy.
    pub scorers: Vec<RecommenderMetrics>,
    /// Customers that buy an item new to them after the cutoff.
    pub discovery_customers: u64,
    /// Every scorer on those new items only, leaving out what each customer owns.
    pub discovery: Vec<RecommenderMetrics>,
}

/// What the replay has seen of the log, to build the baselines' lists at each cutoff.
#[derive(Default)]
pub(super) struct ItemTracker {
    /// Per customer: items bought by now, with how often and when last.
    owned: HashMap<String, HashMap<String, (u32, i64)>>,
    /// Purchases of named items, oldest first: (time, customer, item).
    recent: VecDeque<(i64, String, String)>,
}

impl ItemTracker {
    /// Whether any event of the log names an item (the recommendation backtest runs only then).
    pub(super) fn applies(events: &[Event]) -> bool {
        events.iter().any(|e| e.item.is_some())
    }

    /// Notes an event the replay applies.
    pub(super) fn observe(&mut self, e: &Event) {
        let (EventKind::Purchase, Some(item)) = (e.kind, &e.item) else {
            return;
        };
        let entry = self
            .owned
            .entry(e.customer_id.clone())
            .or_default()
            .entry(item.clone())
            .or_insert((0, e.timestamp_ms));
        entry.0 += 1;
        entry.1 = entry.1.max(e.timestamp_ms);
        self.recent
            .push_back((e.timestamp_ms, e.customer_id.clone(), item.clone()));
    }

    /// The report at cutoff `at`, for the profiles as of it and the purchases in the window;
    /// `persona(customer, discovery)` is Persona's list for a customer (`Db::recommend`).
    pub(super) fn report(
        &mut self,
        at: i64,
        profiles: &[Profile],
        window: &HashMap<String, HashSet<String>>,
        persona: &mut dyn FnMut(&str, bool) -> crate::Result<Vec<String>>,
    ) -> crate::Result<RecommendationReport> {
        let since = at - POPULAR_DAYS * DAY_MS as i64;
        while self.recent.front().is_some_and(|(t, _, _)| *t < since) {
            self.recent.pop_front();
        }
        let segment_of: HashMap<&str, Option<u16>> = profiles
            .iter()
            .map(|p| (p.customer_id.as_str(), p.segment))
            .collect();
        let mut popular: HashMap<&str, u64> = HashMap::new();
        let mut by_segment: HashMap<Option<u16>, HashMap<&str, u64>> = HashMap::new();
        for (_, customer, item) in &self.recent {
            *popular.entry(item).or_default() += 1;
            let segment = segment_of.get(customer.as_str()).copied().flatten();
            *by_segment
                .entry(segment)
                .or_default()
                .entry(item)
                .or_default() += 1;
        }
        let popular = ranked(popular);
        let by_segment: HashMap<Option<u16>, Vec<&str>> = by_segment
            .into_iter()
            .map(|(s, c)| (s, ranked(c)))
            .collect();
        let none = HashMap::new();
        let mut all = Tally::new();
        let mut discovery = Tally::new();
        for p in profiles {
            let Some(bought) = window.get(&p.customer_id) else {
                continue;
            };
            let owned = self.owned.get(&p.customer_id).unwrap_or(&none);
            let mut own: Vec<(&str, u32, i64)> = owned
                .iter()
                .map(|(item, (n, last))| (item.as_str(), *n, *last))
                .collect();
            own.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0)));
            let own: Vec<&str> = own.into_iter().map(|(item, _, _)| item).collect();
            let mine = persona(&p.customer_id, false)?;
            let engaged: Vec<&str> = mine.iter().map(String::as_str).collect();
            let segment = by_segment
                .get(&p.segment)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let lists: [(&str, Vec<&str>); 4] = [
                ("persona", top_k(&[&engaged, &popular], &HashSet::new())),
                ("popular_90d", top_k(&[&popular], &HashSet::new())),
                (
                    "segment_popular_90d",
                    top_k(&[segment, &popular], &HashSet::new()),
                ),
                ("own_purchases", top_k(&[&own], &HashSet::new())),
            ];
            all.add(&lists, bought);
            let owned_set: HashSet<&str> = owned.keys().map(String::as_str).collect();
            let new: HashSet<String> = bought
                .iter()
                .filter(|i| !owned_set.contains(i.as_str()))
                .cloned()
                .collect();
            if !new.is_empty() {
                let mine = persona(&p.customer_id, true)?;
                let engaged: Vec<&str> = mine.iter().map(String::as_str).collect();
                let lists: [(&str, Vec<&str>); 3] = [
                    ("persona", top_k(&[&engaged, &popular], &owned_set)),
                    ("popular_90d", top_k(&[&popular], &owned_set)),
                    (
                        "segment_popular_90d",
                        top_k(&[segment, &popular], &owned_set),
                    ),
                ];
                discovery.add(&lists, &new);
            }
        }
        Ok(RecommendationReport {
            customers: all.customers,
            scorers: all.metrics(),
            discovery_customers: discovery.customers,
            discovery: discovery.metrics(),
        })
    }
}

/// Items by count, most first (ties by name).
fn ranked(counts: HashMap<&str, u64>) -> Vec<&str> {
    let mut v: Vec<(&str, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().map(|(item, _)| item).collect()
}

/// The first `K` distinct items of `sources` in order, leaving out `exclude`.
fn top_k<'a>(sources: &[&[&'a str]], exclude: &HashSet<&str>) -> Vec<&'a str> {
    let mut out: Vec<&'a str> = Vec::with_capacity(K);
    for item in sources.iter().flat_map(|s| s.iter()) {
        if out.len() == K {
            break;
        }
        if !exclude.contains(item) && !out.contains(item) {
            out.push(item);
        }
    }
    out
}

/// Sums of the metrics per scorer, in the order first added.
struct Tally {
    customers: u64,
    sums: Vec<(String, f64, f64, f64)>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            customers: 0,
            sums: Vec::new(),
        }
    }

    fn add(&mut self, lists: &[(&str, Vec<&str>)], relevant: &HashSet<String>) {
        self.customers += 1;
        for (i, (name, list)) in lists.iter().enumerate() {
            if self.sums.len() <= i {
                self.sums.push((name.to_string(), 0.0, 0.0, 0.0));
            }
            let (recall, ndcg, hit) = list_metrics(list, relevant);
            let s = &mut self.sums[i];
            s.1 += recall;
            s.2 += ndcg;
            s.3 += hit;
        }
    }

    fn metrics(self) -> Vec<RecommenderMetrics> {
        let n = self.customers.max(1) as f64;
        self.sums
            .into_iter()
            .map(|(name, r, g, h)| RecommenderMetrics {
                name,
                recall: r / n,
                ndcg: g / n,
                hit_rate: h / n,
            })
            .collect()
    }
}

/// Recall, NDCG and hit (0 or 1) of one ranked list against a non-empty relevant set.
pub(super) fn list_metrics(list: &[&str], relevant: &HashSet<String>) -> (f64, f64, f64) {
    let mut hits = 0usize;
    let mut dcg = 0.0;
    for (rank, item) in list.iter().take(K).enumerate() {
        if relevant.contains(*item) {
            hits += 1;
            dcg += 1.0 / ((rank + 2) as f64).log2();
        }
    }
    let ideal: f64 = (0..relevant.len().min(K))
        .map(|rank| 1.0 / ((rank + 2) as f64).log2())
        .sum();
    let recall = hits as f64 / relevant.len().max(1) as f64;
    let ndcg = if ideal > 0.0 { dcg / ideal } else { 0.0 };
    (recall, ndcg, f64::from(u8::from(hits > 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_match_a_hand_computed_case() {
        // Relevant {a, b, c}; the list hits a at rank 1 and c at rank 3.
        let (recall, ndcg, hit) = list_metrics(&["a", "x", "c", "y"], &set(&["a", "b", "c"]));
        assert!((recall - 2.0 / 3.0).abs() < 1e-12);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let ideal = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((ndcg - dcg / ideal).abs() < 1e-12);
        assert_eq!(hit, 1.0);
        assert_eq!(list_metrics(&["x"], &set(&["a"])), (0.0, 0.0, 0.0));
    }

    #[test]
    fn lists_fill_from_the_next_source_and_leave_out_exclusions() {
        let exclude: HashSet<&str> = ["b"].into_iter().collect();
        let list = top_k(&[&["a", "b"], &["b", "c", "a", "d"]], &exclude);
        assert_eq!(list, ["a", "c", "d"]);
    }

    #[test]
    fn baselines_rank_by_counts_in_the_window() {
        let mut t = ItemTracker::default();
        let buy = |c: &str, item: &str, day: i64| {
            Event::new(c, day * DAY_MS as i64, EventKind::Purchase)
                .with_value(1.0)
                .with_item(item)
        };
        for e in [
            buy("u1", "old", 0),
            buy("u1", "x", 200),
            buy("u1", "x", 201),
            buy("u2", "y", 202),
            buy("u2", "x", 203),
        ] {
            t.observe(&e);
        }
        let window: HashMap<String, HashSet<String>> = [("u1".to_string(), set(&["y", "old"]))]
            .into_iter()
            .collect();
        let profiles: Vec<Profile> = Vec::new();
        // No profiles: nobody counts.
        let mut none = |_: &str, _: bool| Ok(Vec::new());
        let r = t.report(210 * DAY_MS as i64, &profiles, &window, &mut none);
        assert_eq!(r.expect("no error").customers, 0);
        // The 90-day window dropped the purchase of day 0.
        assert_eq!(t.recent.len(), 4);
        assert_eq!(t.owned["u1"]["x"], (2, 201 * DAY_MS as i64));
    }
}
