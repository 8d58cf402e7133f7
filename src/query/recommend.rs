//! What to offer a customer next ([`crate::Db::recommend`]), each suggestion with the reason a
//! marketer can read.
//!
//! The list is built in three tiers, each ranked within itself, each scored below the one
//! before, and without repeats:
//! 1. the customer's own most engaged items ([`Profile::top_items`]: repeat purchases, recently
//!    viewed products), score in `(1, 2]` by engagement;
//! 2. the items the customer's segment engages with most ([`SegmentInfo::popular_items`]),
//!    score in `(0.5, 1]`;
//! 3. the items all customers engage with most (the segments' lists merged), score in
//!    `(0, 0.5]`: a new or unknown customer gets these.
//!
//! With [`RecommendOptions::exclude_purchased`] nothing the customer bought is suggested (the
//! discovery list). Measured on a real item log in `docs/model.md` ("Recommendations"); item-item
//! co-occurrence and a learned rebuy ranking are not in it yet.

use super::segment_stats::Popular;
use super::{Engagement, Profile, SegmentInfo};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Which catalogue to recommend from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Catalogue {
    /// Items (the events' `item`).
    #[default]
    Items,
    /// Categories (the events' `category`, by name).
    Categories,
}

/// Options of [`crate::Db::recommend`]; `RecommendOptions::default()` recommends items,
/// purchased ones included.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecommendOptions {
    /// Items or categories.
    pub catalogue: Catalogue,
    /// Leave out everything the customer bought (suggest only what is new to them).
    pub exclude_purchased: bool,
}

impl RecommendOptions {
    /// Recommends categories instead of items.
    pub fn categories(mut self) -> RecommendOptions {
        self.catalogue = Catalogue::Categories;
        self
    }

    /// Leaves out what the customer bought.
    pub fn exclude_purchased(mut self) -> RecommendOptions {
        self.exclude_purchased = true;
        self
    }
}

/// One suggestion.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// The item id or category name.
    pub name: String,
    /// Rank score (higher first): `(1, 2]` the customer's own, `(0.5, 1]` their segment's,
    /// `(0, 0.5]` everyone's.
    pub score: f64,
    /// Why, in words: "bought 3× before, last on 2011-07-05", "popular in segment 2 (high spend ·
    /// recent): 41 of 310 members", "popular with all customers: 512 engaged".
    pub reason: String,
}

/// The suggestions for `profile` (None: an unknown customer) given the segment descriptions.
pub(crate) fn suggest(
    profile: Option<&Profile>,
    segments: &[SegmentInfo],
    n: usize,
    options: RecommendOptions,
) -> Vec<Suggestion> {
    let categories = options.catalogue == Catalogue::Categories;
    let own: &[Engagement] = match profile {
        Some(p) if categories => &p.top_categories,
        Some(p) => &p.top_items,
        None => &[],
    };
    let bought: HashSet<&str> = own
        .iter()
        .filter(|e| e.purchases > 0)
        .map(|e| e.name.as_str())
        .collect();
    let mut out: Vec<Suggestion> = Vec::with_capacity(n);
    let mut taken: HashSet<String> = HashSet::new();
    let mut offer = |out: &mut Vec<Suggestion>, name: &str, score: f64, reason: String| {
        if out.len() < n
            && !(options.exclude_purchased && bought.contains(name))
            && taken.insert(name.to_string())
        {
            out.push(Suggestion {
                name: name.to_string(),
                score,
                reason,
            });
        }
    };
    // 1. The customer's own.
    let top = own.first().map_or(0.0, |e| e.weight).max(f64::MIN_POSITIVE);
    for e in own {
        let reason = match e.purchases {
            0 => format!("engaged with it before, last on {}", day(e.last_ms)),
            1 => format!("bought it before, on {}", day(e.last_ms)),
            k => format!("bought it {k}× before, last on {}", day(e.last_ms)),
        };
        offer(
            &mut out,
            &e.name,
            1.0 + (e.weight / top).clamp(0.0, 1.0),
            reason,
        );
    }
    // 2. The segment's.
    fn list(s: &SegmentInfo, categories: bool) -> &[Popular] {
        if categories {
            &s.popular_categories
        } else {
            &s.popular_items
        }
    }
    if let Some(s) = profile
        .and_then(|p| p.segment)
        .and_then(|id| segments.iter().find(|s| s.id == id))
    {
        let items = list(s, categories);
        let top = items.first().map_or(0, |p| p.buyers + p.customers).max(1) as f64;
        for p in items {
            let reason = format!(
                "popular in segment {} ({}): {} of {} members bought it",
                s.id, s.label, p.buyers, s.evaluated
            );
            let score = 0.5 + 0.5 * ((p.buyers + p.customers) as f64 / top).clamp(0.0, 1.0);
            offer(&mut out, &p.name, score, reason);
        }
    }
    // 3. Everyone's: the segments' lists merged.
    let mut all: HashMap<&str, (u64, u64)> = HashMap::new();
    for s in segments {
        for p in list(s, categories) {
            let e = all.entry(p.name.as_str()).or_default();
            e.0 += p.buyers;
            e.1 += p.customers;
        }
    }
    let mut all: Vec<(&str, (u64, u64))> = all.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let top = all.first().map_or(0, |p| p.1 .0 + p.1 .1).max(1) as f64;
    for (name, (buyers, customers)) in all {
        let reason = format!("popular with all customers: {buyers} bought it, {customers} engaged");
        let score = 0.5 * ((buyers + customers) as f64 / top).clamp(0.0, 1.0);
        offer(&mut out, name, score, reason);
    }
    out
}

/// A unix-ms time as its UTC day (`2011-07-05`).
fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| ms.to_string())
}
