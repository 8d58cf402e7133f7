//! What everyone, and each segment, engages with lately: the bounded, decayed item counts
//! `Db::recommend` offers as popular.
//!
//! Every event naming an item adds its kind's weight (`features::affinity::kind_weight`:
//! purchase 3, cart_add 2, view 1, …) to the item's count, globally and in the segment the event
//! was assigned to, decayed with the engagement lists' half-life (three times the store's, 90
//! days by default). Each list is a Space-Saving summary: at most [`GLOBAL_ITEMS`] (or
//! [`SEGMENT_ITEMS`] per segment) items; an item that is not listed when the list is full
//! replaces the least counted one and starts from that count (so an item that becomes popular
//! gets in, and a count is never below the item's true decayed weight). It is part of the model
//! state, committed with every batch and kept in its snapshots.

use super::names::{HeldBy, Holder};
use crate::event::EventKind;
use crate::features::affinity::{decay, kind_weight};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Items counted across all customers.
pub const GLOBAL_ITEMS: usize = 256;
/// Items counted per segment.
pub const SEGMENT_ITEMS: usize = 64;

/// One counted item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    /// The item id.
    pub name: CompactString,
    /// Decayed, kind-weighted count as of the summary's `anchor_ms` (an upper bound: it
    /// includes the count inherited when the item entered a full list).
    pub weight: f32,
    /// Who alone has named it (see [`super::names`]); persisted in its own section.
    #[serde(skip)]
    pub held: HeldBy,
}

/// The global and per-segment summaries (see the module docs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Popularity {
    /// The time every weight is expressed at (the latest event time counted).
    pub anchor_ms: i64,
    /// Across all customers, sorted by name.
    pub global: Vec<Counted>,
    /// Per segment, by segment id (empty before the segments are seeded), each sorted by name.
    pub segments: Vec<Vec<Counted>>,
}

impl Popularity {
    /// Counts an event of `kind` naming `item` at `t_ms`, by the customer `by`, assigned to
    /// `segment` (`k` segments), with weights halving every `half_life_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        kind: EventKind,
        item: &str,
        by: &Holder,
        segment: Option<usize>,
        k: usize,
        t_ms: i64,
        half_life_ms: f64,
    ) {
        let w = kind_weight(kind);
        if w == 0.0 {
            return;
        }
        let added = if t_ms > self.anchor_ms {
            let f = decay(t_ms - self.anchor_ms, half_life_ms);
            for c in self
                .global
                .iter_mut()
                .chain(self.segments.iter_mut().flatten())
            {
                c.weight *= f;
            }
            self.anchor_ms = t_ms;
            w
        } else {
            w * decay(self.anchor_ms - t_ms, half_life_ms)
        };
        count(&mut self.global, item, by, added, GLOBAL_ITEMS);
        if let Some(s) = segment.filter(|&s| s < k) {
            if self.segments.len() != k {
                self.segments.resize(k, Vec::new());
            }
            count(&mut self.segments[s], item, by, added, SEGMENT_ITEMS);
        }
    }

    /// `list` most counted first (ties by name), as of `now_ms`.
    pub fn ranked(&self, list: &[Counted], now_ms: i64, half_life_ms: f64) -> Vec<(String, f64)> {
        let f = f64::from(decay(now_ms - self.anchor_ms, half_life_ms));
        let mut out: Vec<(String, f64)> = list
            .iter()
            .map(|c| (c.name.to_string(), f64::from(c.weight) * f))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// Sorts every list by name, as the lookups expect (a summary decoded from a record of
    /// an earlier build may be in any order).
    pub fn sort(&mut self) {
        for list in std::iter::once(&mut self.global).chain(self.segments.iter_mut()) {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }

    /// Whether a decoded summary is sound: bounded lists, finite non-negative weights.
    pub fn is_consistent(&self) -> bool {
        self.global.len() <= GLOBAL_ITEMS
            && self.segments.iter().all(|s| s.len() <= SEGMENT_ITEMS)
            && self
                .global
                .iter()
                .chain(self.segments.iter().flatten())
                .all(|c| c.weight.is_finite() && c.weight >= 0.0)
    }
}

/// Space-Saving: adds `added` to `item`, named by `by`, or lists it (replacing the least counted
/// when full). `list` is sorted by name.
fn count(list: &mut Vec<Counted>, item: &str, by: &Holder, added: f32, cap: usize) {
    match list.binary_search_by(|c| c.name.as_str().cmp(item)) {
        Ok(i) => {
            list[i].weight += added;
            list[i].held.named_by(by);
        }
        Err(i) if list.len() < cap => list.insert(
            i,
            Counted {
                name: CompactString::from(item),
                weight: added,
                held: HeldBy::new(by),
            },
        ),
        Err(i) => {
            let Some((least, _)) = list
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
            else {
                return; // cap 0
            };
            let counted = Counted {
                name: CompactString::from(item),
                weight: list[least].weight + added,
                held: HeldBy::new(by),
            };
            // The least counted makes room where `item` sorts: move only the entries between
            // the two places (`i` counts `least` if it sorts before `item`).
            if least < i {
                list[least..i].rotate_left(1);
                list[i - 1] = counted;
            } else {
                list[i..=least].rotate_right(1);
                list[i] = counted;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF: f64 = 90.0 * 86_400_000.0;
    const A: Holder = [1; 16];
    const B: Holder = [2; 16];

    #[test]
    fn counts_are_kind_weighted_per_segment_and_decay() {
        let mut p = Popularity::default();
        p.observe(EventKind::Purchase, "mug", &A, Some(1), 2, 0, HALF);
        p.observe(EventKind::View, "mug", &B, Some(0), 2, 0, HALF);
        p.observe(EventKind::View, "pan", &A, None, 2, 0, HALF);
        let global = p.ranked(&p.global, 0, HALF);
        assert_eq!(global, [("mug".to_string(), 4.0), ("pan".to_string(), 1.0)]);
        assert_eq!(p.ranked(&p.segments[1], 0, HALF)[0].1, 3.0);
        assert_eq!(p.segments[0].len(), 1);
        // "mug" was named by two customers, "pan" by one; per list.
        assert_eq!(p.global[0].held.holder, None);
        assert!(p.global[1].held.is(&A));
        assert!(p.segments[1][0].held.is(&A));
        // One half-life on, everything weighs half.
        let later = p.ranked(&p.global, 90 * 86_400_000, HALF);
        assert!((later[0].1 - 2.0).abs() < 1e-6);
    }

    #[test]
    fn a_full_list_lets_a_rising_item_in_and_stays_bounded() {
        let mut p = Popularity::default();
        for i in 0..1_000_000u32 {
            p.observe(
                EventKind::View,
                &format!("item-{i}"),
                &A,
                Some(0),
                1,
                0,
                HALF,
            );
        }
        assert_eq!(p.global.len(), GLOBAL_ITEMS);
        assert_eq!(p.segments[0].len(), SEGMENT_ITEMS);
        // An item bought by many now gets to the top however full the list was.
        for _ in 0..10_000 {
            p.observe(EventKind::Purchase, "hit", &B, Some(0), 1, 0, HALF);
        }
        assert_eq!(p.ranked(&p.global, 0, HALF)[0].0, "hit");
        assert!(p.is_consistent());
    }
}
