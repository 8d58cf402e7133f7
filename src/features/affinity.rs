//! A customer's most engaged items and categories, by name: what a recommendation starts from.
//!
//! Every event that names an item or a category adds its kind's weight ([`kind_weight`]:
//! purchase 3, cart_add 2, view, like, share and rating 1, click and comment 0.5) to that name's
//! engagement, decayed like the other decayed features but [`HALF_LIFE_FACTOR`] times slower.
//! Each list keeps at most `cap` names (`Config::top_items`); when a new name arrives at a full
//! list it replaces the least engaged one if it is now more engaged than it (a name seen once
//! long ago gives way to one seen today), and is left out otherwise.
//!
//! Next to the lists, [`Bought`] remembers every item the customer bought (up to
//! [`BOUGHT_CAP`] of them, as fingerprints), so that a recommendation of items new to the
//! customer can leave out an item bought long ago that has left the engagement list.
//!
//! Unlike [`super::ProfileState`] this is not replayed through the profile's history: it is the
//! customer's engagement as of their last write, kept in the record next to the current state.

use crate::event::EventKind;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// The engagement lists decay this many times slower than the other decayed features (whose
/// half-life is `Config::half_life_days`, 30 days by default, so 90 days here): customers come
/// back to the same items over months (`docs/model.md`, "Recommendations").
pub const HALF_LIFE_FACTOR: f64 = 3.0;

/// How much an event of `kind` adds to the engagement with its item and category: purchase >
/// cart_add > view. Kinds that say nothing about liking a product (search, refund, complaint)
/// add nothing.
pub fn kind_weight(kind: EventKind) -> f32 {
    match kind {
        EventKind::Purchase => 3.0,
        EventKind::CartAdd => 2.0,
        EventKind::View | EventKind::Like | EventKind::Share | EventKind::Rating => 1.0,
        EventKind::Click | EventKind::Comment => 0.5,
        EventKind::Search | EventKind::Refund | EventKind::Complaint => 0.0,
    }
}

/// One item or category a customer engaged with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Engaged {
    /// The item id or category name.
    pub name: CompactString,
    /// Kind-weighted, decayed engagement as of the list's `anchor_ms`.
    pub weight: f32,
    /// Purchases of it (events of kind `purchase` naming it), lifetime while it stays listed.
    pub purchases: u32,
    /// Latest event time naming it, unix ms.
    pub last_ms: i64,
}

/// The bounded lists of one customer (see the module docs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Affinity {
    /// The time every weight is expressed at (the latest event time observed).
    pub anchor_ms: i64,
    /// Items, in no particular order.
    pub items: Vec<Engaged>,
    /// Categories, in no particular order.
    pub categories: Vec<Engaged>,
    /// Every item bought, up to [`BOUGHT_CAP`] (record version 6 and later; built from the
    /// lists' purchases for an older record).
    pub bought: Bought,
}

/// The engagement lists as profile records of version 5 store them: no [`Bought`] set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AffinityV5 {
    /// See [`Affinity::anchor_ms`].
    pub anchor_ms: i64,
    /// See [`Affinity::items`].
    pub items: Vec<Engaged>,
    /// See [`Affinity::categories`].
    pub categories: Vec<Engaged>,
}

impl From<AffinityV5> for Affinity {
    /// The lists, and as bought what they say was bought (all such a record knows).
    fn from(a: AffinityV5) -> Affinity {
        let mut bought = Bought::default();
        for e in a.items.iter().filter(|e| e.purchases > 0) {
            bought.insert(&e.name);
        }
        Affinity {
            anchor_ms: a.anchor_ms,
            items: a.items,
            categories: a.categories,
            bought,
        }
    }
}

/// Most items a customer's [`Bought`] set holds (2 KiB): past it, further new items are not
/// remembered as bought (the engagement list still knows its own purchases).
pub const BOUGHT_CAP: usize = 512;

/// Seed of the items' fingerprints (any fixed value: stored fingerprints depend on it).
const BOUGHT_SEED: u64 = 0x6275_7965_645f_6974;

/// The items a customer bought, as 32-bit fingerprints of their names (xxh3, stable across
/// builds and platforms), sorted, packed four bytes each: at most [`BOUGHT_CAP`]. Two names
/// share a fingerprint with a chance of one in 4.3 billion per pair, so an item wrongly taken
/// as bought is rare (with 512 remembered, one candidate in 8.4 million).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Bought {
    /// The fingerprints, ascending, little-endian.
    packed: Vec<u8>,
}

impl Bought {
    fn fingerprint(name: &str) -> u32 {
        xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), BOUGHT_SEED) as u32
    }

    fn at(&self, i: usize) -> u32 {
        let b = &self.packed[4 * i..4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Where `f` is, or would be inserted.
    fn search(&self, f: u32) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.at(mid).cmp(&f) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Whether `item` was bought (or shares its fingerprint with an item that was).
    pub fn contains(&self, item: &str) -> bool {
        self.search(Self::fingerprint(item)).is_ok()
    }

    /// Remembers `item` as bought; false if it already was, or the set is full.
    pub fn insert(&mut self, item: &str) -> bool {
        let f = Self::fingerprint(item);
        match self.search(f) {
            Ok(_) => false,
            Err(_) if self.len() >= BOUGHT_CAP => false,
            Err(i) => {
                self.packed
                    .splice(4 * i..4 * i, f.to_le_bytes())
                    .for_each(drop);
                true
            }
        }
    }

    /// How many items are remembered.
    pub fn len(&self) -> usize {
        self.packed.len() / 4
    }

    /// Whether no item is remembered.
    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    /// Whether decoded bytes are a valid set: whole fingerprints, strictly ascending, at most
    /// [`BOUGHT_CAP`].
    pub fn is_consistent(&self) -> bool {
        self.packed.len() % 4 == 0
            && self.len() <= BOUGHT_CAP
            && (1..self.len()).all(|i| self.at(i - 1) < self.at(i))
    }
}

impl Affinity {
    /// Adds one event's engagement with `item` and `category` (either may be absent), at time
    /// `t_ms`, with weights halving every `half_life_ms`; each list keeps at most `cap` names.
    pub fn observe(
        &mut self,
        kind: EventKind,
        item: Option<&str>,
        category: Option<&str>,
        t_ms: i64,
        half_life_ms: f64,
        cap: usize,
    ) {
        self.truncate(cap);
        let w = kind_weight(kind);
        if w == 0.0 || (item.is_none() && category.is_none()) {
            return;
        }
        // Bring every weight to the later of the anchor and the event; an older event's
        // weight is decayed to the anchor instead.
        let added = if t_ms > self.anchor_ms {
            let f = decay(t_ms - self.anchor_ms, half_life_ms);
            for e in self.items.iter_mut().chain(self.categories.iter_mut()) {
                e.weight *= f;
            }
            self.anchor_ms = t_ms;
            w
        } else {
            w * decay(self.anchor_ms - t_ms, half_life_ms)
        };
        let purchase = kind == EventKind::Purchase;
        if let Some(name) = item {
            bump(&mut self.items, name, added, purchase, t_ms, cap);
            if purchase {
                self.bought.insert(name);
            }
        }
        if let Some(name) = category {
            bump(&mut self.categories, name, added, purchase, t_ms, cap);
        }
    }

    /// Keeps at most `cap` names in each list (the most engaged): a store whose `top_items` was
    /// lowered shortens each profile's lists at its next event.
    pub fn truncate(&mut self, cap: usize) {
        for list in [&mut self.items, &mut self.categories] {
            if list.len() > cap {
                list.sort_by(|a, b| b.weight.total_cmp(&a.weight));
                list.truncate(cap);
            }
        }
    }

    /// Checks what a decoded record holds: finite, non-negative weights and names within the
    /// event limits (a damaged record must not reach the queries).
    pub fn is_consistent(&self) -> bool {
        self.bought.is_consistent()
            && self
                .items
                .iter()
                .chain(&self.categories)
                .all(|e| e.weight.is_finite() && e.weight >= 0.0 && !e.name.is_empty())
    }
}

/// Adds `added` to `name`'s entry, or lists it (see the module docs for a full list).
fn bump(list: &mut Vec<Engaged>, name: &str, added: f32, purchase: bool, t_ms: i64, cap: usize) {
    let entry = match list.iter().position(|e| e.name == name) {
        Some(i) => &mut list[i],
        None => {
            let fresh = Engaged {
                name: CompactString::from(name),
                weight: 0.0,
                purchases: 0,
                last_ms: t_ms,
            };
            if list.len() < cap {
                list.push(fresh);
                list.last_mut().expect("just pushed")
            } else {
                let Some((i, least)) = list
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
                else {
                    return; // cap 0: nothing is kept
                };
                if least.weight >= added {
                    return;
                }
                list[i] = fresh;
                &mut list[i]
            }
        }
    };
    entry.weight += added;
    entry.purchases = entry.purchases.saturating_add(u32::from(purchase));
    entry.last_ms = entry.last_ms.max(t_ms);
}

/// `list` most engaged first (ties by name).
pub fn most_engaged(list: &[Engaged]) -> Vec<&Engaged> {
    most_engaged_n(list, usize::MAX)
}

/// The first `n` of [`most_engaged`], without ordering the rest.
pub fn most_engaged_n(list: &[Engaged], n: usize) -> Vec<&Engaged> {
    let order = |a: &&Engaged, b: &&Engaged| {
        b.weight
            .total_cmp(&a.weight)
            .then_with(|| a.name.cmp(&b.name))
    };
    let mut out: Vec<&Engaged> = list.iter().collect();
    if n == 0 {
        out.clear();
    } else if out.len() > n {
        out.select_nth_unstable_by(n - 1, order);
        out.truncate(n);
    }
    out.sort_by(order);
    out
}

/// The factor a weight keeps after `age_ms` (halving every `half_life_ms`).
pub fn decay(age_ms: i64, half_life_ms: f64) -> f32 {
    if half_life_ms <= 0.0 {
        return 1.0;
    }
    (0.5f64).powf(age_ms.max(0) as f64 / half_life_ms) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const HALF: f64 = 30.0 * DAY as f64;

    fn weight(list: &[Engaged], name: &str) -> Option<f32> {
        list.iter().find(|e| e.name == name).map(|e| e.weight)
    }

    #[test]
    fn kinds_weigh_purchase_over_cart_over_view_and_decay_with_the_half_life() {
        let mut a = Affinity::default();
        a.observe(EventKind::View, Some("mug"), Some("kitchen"), 0, HALF, 4);
        a.observe(EventKind::CartAdd, Some("pan"), None, 0, HALF, 4);
        a.observe(EventKind::Purchase, Some("pot"), None, 0, HALF, 4);
        a.observe(EventKind::Search, Some("lamp"), None, 0, HALF, 4);
        assert_eq!(weight(&a.items, "mug"), Some(1.0));
        assert_eq!(weight(&a.items, "pan"), Some(2.0));
        assert_eq!(weight(&a.items, "pot"), Some(3.0));
        assert_eq!(
            weight(&a.items, "lamp"),
            None,
            "a search says nothing about liking"
        );
        assert_eq!(weight(&a.categories, "kitchen"), Some(1.0));
        // One half-life later everything weighs half, and a new view adds a full 1.
        a.observe(EventKind::View, Some("mug"), None, 30 * DAY, HALF, 4);
        assert!((weight(&a.items, "mug").unwrap() - 1.5).abs() < 1e-6);
        assert!((weight(&a.items, "pot").unwrap() - 1.5).abs() < 1e-6);
        // An event older than the anchor is decayed to it.
        a.observe(EventKind::View, Some("pan"), None, 0, HALF, 4);
        assert!((weight(&a.items, "pan").unwrap() - 1.5).abs() < 1e-6);
        assert_eq!(
            a.items.iter().find(|e| e.name == "pot").unwrap().purchases,
            1
        );
        assert_eq!(
            a.items.iter().find(|e| e.name == "mug").unwrap().last_ms,
            30 * DAY
        );
    }

    #[test]
    fn a_full_list_replaces_its_least_engaged_name_only_by_a_more_engaged_one() {
        let mut a = Affinity::default();
        a.observe(EventKind::Purchase, Some("a"), None, 0, HALF, 2);
        a.observe(EventKind::View, Some("b"), None, 0, HALF, 2);
        // c (a click, 0.5) is less engaged than b (1): left out.
        a.observe(EventKind::Click, Some("c"), None, 0, HALF, 2);
        assert_eq!(weight(&a.items, "c"), None);
        // Two half-lives later b weighs 0.25: a new view (1) replaces it.
        a.observe(EventKind::View, Some("d"), None, 60 * DAY, HALF, 2);
        assert_eq!(weight(&a.items, "b"), None);
        assert_eq!(weight(&a.items, "d"), Some(1.0));
        assert!(weight(&a.items, "a").is_some());
        assert_eq!(a.items.len(), 2);
        a.truncate(1);
        assert_eq!(a.items.len(), 1);
        assert_eq!(a.items[0].name, "d", "the most engaged stays");
    }

    #[test]
    fn purchases_are_remembered_after_they_leave_the_list_up_to_the_cap() {
        let mut a = Affinity::default();
        a.observe(EventKind::Purchase, Some("old"), None, 0, HALF, 2);
        a.observe(EventKind::View, Some("seen"), None, 0, HALF, 2);
        // A year of other purchases pushes "old" out of a list of two.
        for i in 0..20i64 {
            let name = format!("new-{i}");
            a.observe(
                EventKind::Purchase,
                Some(&name),
                None,
                365 * DAY + i,
                HALF,
                2,
            );
        }
        assert_eq!(weight(&a.items, "old"), None, "left the list");
        assert!(a.bought.contains("old") && a.bought.contains("new-7"));
        assert!(!a.bought.contains("seen"), "viewed, not bought");
        assert_eq!(a.bought.len(), 21);
        assert!(a.is_consistent());
        // Buying again adds nothing; the cap bounds the set.
        assert!(!a.bought.insert("old"));
        for i in 0..2 * BOUGHT_CAP {
            a.bought.insert(&format!("bulk-{i}"));
        }
        assert_eq!(a.bought.len(), BOUGHT_CAP);
        assert!(a.bought.contains("old"), "what was remembered stays");
        assert!(a.is_consistent());
        // A version-5 record's lists: their purchases are what is known as bought.
        let v5 = AffinityV5 {
            anchor_ms: 0,
            items: a.items.clone(),
            categories: Vec::new(),
        };
        let from_v5 = Affinity::from(v5);
        assert!(a.items.iter().all(|e| from_v5.bought.contains(&e.name)));
        assert_eq!(from_v5.bought.len(), a.items.len());
    }

    #[test]
    fn a_damaged_bought_set_is_not_consistent() {
        let mut a = Affinity::default();
        a.bought.packed = vec![1, 2, 3];
        assert!(!a.is_consistent(), "not whole fingerprints");
        a.bought.packed = [5u32, 5].iter().flat_map(|f| f.to_le_bytes()).collect();
        assert!(!a.is_consistent(), "not strictly ascending");
    }

    #[test]
    fn a_million_distinct_items_keep_the_list_bounded() {
        let mut a = Affinity::default();
        for i in 0..1_000_000i64 {
            let name = format!("item-{i}");
            a.observe(EventKind::View, Some(&name), Some(&name), i, HALF, 16);
        }
        assert_eq!((a.items.len(), a.categories.len()), (16, 16));
        assert!(a.is_consistent());
    }
}
