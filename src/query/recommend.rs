//! What to offer a customer next ([`crate::Db::recommend`]), each suggestion with the reason a
//! marketer can read.
//!
//! **Items.** Three lists, each turned into shares that sum to one, are added up item by item:
//! 1. the customer's own items ([`Profile::top_items`]), each with the chance that it is the
//!    next one they buy again (the rebuy ranking learned online, `model/rebuy.rs`: purchases of
//!    it, days since, how many customers take it up); reason "bought it 3× before, last on …";
//! 2. the items related to theirs ([`related`]: co-occurrence, `together.rs`, weighted by
//!    their engagement with each of their items); reason "customers who bought X often take it
//!    too", X being their item that contributed most;
//! 3. the items everyone engages with most lately (the model's popularity summary,
//!    `model/popularity.rs`); reason "popular with all customers lately", naming the
//!    customer's segment when the item is among its ten favourites too.
//!
//! The best of the sum come first, scored in `(1, 2]` (the best 2), then the rest of the popular
//! list in `(0, 1]`. An item in two lists keeps the reason of the first. Equal weights for the
//! three lists: on the real item log, halving the related and popular ones changed recall by
//! at most 0.001 (`docs/model.md`).
//!
//! **Categories.** The customer's own most engaged (by engagement share), then the segment's
//! most popular ([`SegmentInfo::popular_categories`], `(0.5, 1]`) and all segments' (`(0,
//! 0.5]`).
//!
//! A new or unknown customer gets the popular list. With
//! [`RecommendOptions::exclude_purchased`] nothing the customer bought is suggested (the
//! discovery list): the purchases of their engagement list, and every item their record
//! remembers as bought (up to 512 of them, `features/affinity.rs`, [`Bought`]), so an item
//! bought long ago that has left the list does not come back. Measured on a real item log in
//! `docs/model.md` ("Recommendations").
//!
//! [`Bought`]: crate::features::affinity::Bought

use super::{Engagement, Profile, SegmentInfo};
use crate::event::utc_day as day;
use crate::model::popularity::Popularity;
use crate::model::rebuy::{self, Rebuy};
use crate::together::Table;
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
    /// Leave out what the customer bought, to suggest what is new to them: for items, every
    /// item their record remembers as bought (the first 512 distinct ones; a record written
    /// before format version 6 remembers only the purchases of its engagement list); for
    /// categories, the purchased ones among their most engaged ([`Profile::top_categories`]).
    pub exclude_purchased: bool,
}

impl RecommendOptions {
    /// Recommends categories instead of items.
    pub fn categories(mut self) -> RecommendOptions {
        self.catalogue = Catalogue::Categories;
        self
    }

    /// Leaves out what the customer bought (see the field `exclude_purchased`).
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
    /// Rank score (higher first): `(1, 2]` the customer's own, related and popular items
    /// blended, `(0, 1]` the rest of the popular ones (see [`crate::Db::recommend`]).
    pub score: f64,
    /// Why, in words: "bought it 3× before, last on 2011-07-05", "customers who bought mug
    /// often take it too", "popular with all customers lately, and among the favourites of
    /// segment 2 (high spend · recent)".
    pub reason: String,
}

/// A popular tier's entries: (name, score, reason), best first.
pub(crate) type Tier = Vec<(String, f64, String)>;

/// An item related to the customer's own ([`related`]): name, score, and the customer's item
/// that contributed most to it.
pub(crate) type Related = (String, f64, String);

/// The items related to the customer's most engaged `own` ones in the co-occurrence table:
/// each related item scores the sum over the customer's items of their engagement times the
/// relatedness (`together.rs`), best first (ties by name).
pub(crate) fn related(table: &Table, own: &[Engagement], n: usize) -> Vec<Related> {
    let scores = table.related_scores(own.iter().map(|e| (e.name.as_str(), e.weight)));
    let mut out: Vec<(u32, f64, &str)> = scores
        .into_iter()
        .filter(|(_, s)| s.0 > 0.0)
        .map(|(slot, (score, _, with))| (slot, score, own[with].name.as_str()))
        .collect();
    // The total is over every related item (each list's share, see `suggest`); only the best
    // few can be suggested.
    let total: f64 = out.iter().map(|r| r.1).sum();
    let keep = (n + own.len()).min(out.len());
    if keep > 0 && keep < out.len() {
        out.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(keep);
    }
    let mut out: Vec<Related> = out
        .into_iter()
        .map(|(slot, score, with)| {
            (
                table.name(slot).to_string(),
                score / total,
                with.to_string(),
            )
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The suggestions for `profile` (None: an unknown customer): their own items (shares from
/// `chances`, aligned with the profile's list; by engagement when empty), the items `related`
/// to them and the `popular` ones blended, then the rest of `popular` (see the module docs).
pub(crate) fn suggest(
    profile: Option<&Profile>,
    chances: &[f64],
    related: &[Related],
    popular: &[(String, f64, String)],
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
    // Items bought long ago that have left the engagement list: the record's bought set.
    let bought_before = profile
        .map(|p| &p.bought)
        .filter(|b| !categories && !b.is_empty());
    let purchased =
        |name: &str| bought.contains(name) || bought_before.is_some_and(|b| b.contains(name));
    let mut out: Vec<Suggestion> = Vec::with_capacity(n);
    let mut taken: HashSet<String> = HashSet::new();
    let mut offer = |out: &mut Vec<Suggestion>, name: &str, score: f64, reason: String| {
        if out.len() < n
            && !(options.exclude_purchased && purchased(name))
            && taken.insert(name.to_string())
        {
            out.push(Suggestion {
                name: name.to_string(),
                score,
                reason,
            });
        }
    };
    // 1. The customer's own and the related items: each list's share of its total, added.
    let share = |total: f64| if total > 0.0 { 1.0 / total } else { 0.0 };
    // The customer's own: by the rebuy ranking's chances when given, by engagement otherwise.
    let own_shares: Vec<f64> = if chances.len() == own.len() {
        chances.to_vec()
    } else {
        let total = share(own.iter().map(|e| e.weight).sum());
        own.iter().map(|e| e.weight * total).collect()
    };
    // `related` scores are shares already (of all related items, not only those listed).
    let related_share = 1.0;
    let mut first: HashMap<&str, (f64, String)> = HashMap::new();
    for r in related {
        let verb = match own.iter().find(|e| e.name == r.2) {
            Some(e) if e.purchases > 0 => "bought",
            _ => "engaged with",
        };
        let reason = format!("customers who {verb} {} often take it too", r.2);
        first.insert(&r.0, (r.1 * related_share, reason));
    }
    if !categories {
        let popular_share = share(popular.iter().map(|p| p.1).sum());
        for (name, score, reason) in popular {
            let entry = first.entry(name).or_insert((0.0, reason.clone()));
            entry.0 += score * popular_share;
        }
    }
    for (e, own_share) in own.iter().zip(own_shares) {
        let reason = match e.purchases {
            0 => format!("engaged with it before, last on {}", day(e.last_ms)),
            1 => format!("bought it before, on {}", day(e.last_ms)),
            k => format!("bought it {k}× before, last on {}", day(e.last_ms)),
        };
        let entry = first.entry(&e.name).or_insert((0.0, String::new()));
        entry.0 += own_share;
        entry.1 = reason;
    }
    let mut first: Vec<(&str, f64, String)> = first
        .into_iter()
        .map(|(name, (score, reason))| (name, score, reason))
        .collect();
    first.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let top = first.first().map_or(0.0, |f| f.1).max(f64::MIN_POSITIVE);
    for (name, score, reason) in first {
        offer(&mut out, name, 1.0 + (score / top).clamp(0.0, 1.0), reason);
    }
    // 2. The segment's, 3. everyone's.
    for (name, score, reason) in popular {
        offer(&mut out, name, *score, reason.clone());
    }
    out
}

/// The popular tiers for a customer in `segment`: for items, the model's popularity summary as
/// of `now_ms` (the segment's, scores in (0.5, 1], then everyone's, (0, 0.5]); for categories,
/// the segment descriptions' `popular_categories` (the segment's, then all segments' merged).
pub(crate) fn popular_tiers(
    popularity: &Popularity,
    segments: &[SegmentInfo],
    segment: Option<u16>,
    categories: bool,
    now_ms: i64,
    half_life_ms: f64,
) -> Tier {
    let label = |id: u16| {
        segments
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.label.clone())
            .unwrap_or_default()
    };
    let mut out: Tier = Vec::new();
    let mut push = |list: Vec<(String, f64)>, base: f64, reason: &dyn Fn(f64) -> String| {
        let top = list.first().map_or(0.0, |p| p.1).max(f64::MIN_POSITIVE);
        for (name, w) in list {
            let score = base + 0.5 * (w / top).clamp(0.0, 1.0);
            out.push((name, score, reason(w)));
        }
    };
    if categories {
        let of = |s: &SegmentInfo| -> Vec<(String, f64)> {
            s.popular_categories
                .iter()
                .map(|p| (p.name.clone(), (p.buyers + p.customers) as f64))
                .collect()
        };
        if let Some(s) = segment.and_then(|id| segments.iter().find(|s| s.id == id)) {
            push(of(s), 0.5, &|_| {
                format!("popular in segment {} ({})", s.id, s.label)
            });
        }
        let mut all: HashMap<String, f64> = HashMap::new();
        for s in segments {
            for (name, w) in of(s) {
                *all.entry(name).or_default() += w;
            }
        }
        let mut all: Vec<(String, f64)> = all.into_iter().collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        push(all, 0.0, &|_| "popular with all customers".to_string());
        return out;
    }
    // Items: ranked by everyone's counts. Averaging in the segment's (each relative to its top
    // item) lowered discovery on the real item log (recall 0.040-0.057 with everyone's alone,
    // 0.017-0.036 half and half: docs/model.md), so the segment's summary only names the
    // items that are also among its ten favourites in the reason.
    let global = popularity.ranked(&popularity.global, now_ms, half_life_ms);
    let local: HashSet<String> = segment
        .and_then(|id| popularity.segments.get(usize::from(id)))
        .map(|list| popularity.ranked(list, now_ms, half_life_ms))
        .unwrap_or_default()
        .into_iter()
        .take(10)
        .map(|(name, _)| name)
        .collect();
    let top = global.first().map_or(0.0, |p| p.1).max(f64::MIN_POSITIVE);
    for (name, w) in global {
        let reason = match segment {
            Some(id) if local.contains(&name) => format!(
                "popular with all customers lately, and among the favourites of segment {id} ({})",
                label(id)
            ),
            _ => "popular with all customers lately".to_string(),
        };
        out.push((name, (w / top).clamp(0.0, 1.0), reason));
    }
    out
}

/// The chance the customer buys each of their `own` items next (the rebuy ranking,
/// `model/rebuy.rs`), as of `now_ms`.
pub(crate) fn rebuy_chances(
    rebuy: &Rebuy,
    table: &Table,
    own: &[Engagement],
    now_ms: i64,
) -> Vec<f64> {
    let candidates: Vec<_> = own
        .iter()
        .map(|e| {
            let p = table.count_at(&e.name, now_ms);
            rebuy::features(e.purchases, e.last_ms, p, now_ms)
        })
        .collect();
    rebuy.chances(&candidates)
}
