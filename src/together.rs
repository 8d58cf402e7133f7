//! "Bought together": which items customers take up alongside which, the co-occurrence tier
//! of [`crate::Db::recommend`] ("often bought with X").
//!
//! **What is counted.** For every item, the customers who took it up (decayed), and for every
//! pair of items, the customers who had both among their [`PAIRED`] most engaged items. The
//! writer counts a customer when an item *enters* their engagement list
//! (`features/affinity.rs`): the item's count grows by one, and each pair it forms with the
//! customer's other [`PAIRED`] most engaged items grows by one. Counts decay with the
//! engagement lists' half-life (90 days by default), kept with *forward decay*: an increment
//! at time `t` adds `2^((t - base) / half_life)`, so nothing is rescaled per event and every
//! count is comparable with every other (the relatedness below is a ratio of them).
//!
//! **Bounded.** At most [`MAX_ITEMS`] items (when full, the eighth least taken up are dropped,
//! with every pair naming them) and, per item, its [`NEIGHBOURS`] most co-occurring others,
//! [`MAX_PAIRS`] in all (8 bytes each): when an item's list is full (or the budget spent), its
//! least counted quarter is dropped before the new pair is listed, so a pair count is a lower
//! bound, counted since the pair was last listed. Tens of MB at most, whatever the number of
//! customers or events.
//!
//! **Relatedness** of `y` to `x` is the cosine of their customer sets,
//! `pair(x, y) / sqrt(count(x) · count(y))`, at most 1: an item everybody takes does not come
//! out related to everything. (A partner's count dates from when it was taken up, earlier
//! than the pair, so with decay the ratio can exceed 1 and is capped.)
//!
//! **Derived, like the lookalike index.** The table is not stored: it is a function of what
//! the records hold (their engagement lists), so it costs no writes. It lives in memory,
//! counted by the writer as it applies each event, in event order (so the rebuy ranking that
//! reads its counts learns the same from the same events; a batch that then fails to commit
//! leaves its counts until the next open). At open it is rebuilt by a background scan of the
//! records (every customer's [`PAIRED`] most engaged items, each pair at the later time of the
//! two), which a store that never saw an item skips. `recommend` waits for the scan (the
//! strategy's suggestions do not). While it runs, a customer the writer counts is skipped by
//! the scan. Holds no customer id (outside that skip list): erasing a customer leaves the
//! counts, which are aggregates of many customers.

use crate::features::affinity::{most_engaged, most_engaged_n, Engaged};
use crate::storage::Store;
use compact_str::CompactString;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// A customer's most engaged items that form pairs.
pub(crate) const PAIRED: usize = 16;
/// Related items taken per item of a customer's (the most related) when their related items
/// are scored.
pub(crate) const RELATED_PER_ITEM: usize = 64;
/// Co-occurring items kept per item at most.
pub(crate) const NEIGHBOURS: usize = 512;
/// Co-occurring items kept in all (8 bytes each): once reached, lists stop growing, and a
/// full list drops its least counted quarter to list a new pair.
pub(crate) const MAX_PAIRS: usize = 2 << 20;
/// Items kept at most.
pub(crate) const MAX_ITEMS: usize = 65_536;
/// Forward-decay exponents are kept below this many half-lives from the base (then every
/// count is rescaled once and the base moves).
const MAX_EXPONENT: f64 = 48.0;

/// One item taken up by a customer: what the writer reports for the table after a commit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TakenUp {
    /// The item that entered the customer's list.
    pub(crate) item: CompactString,
    /// The customer's other most engaged items at that time (at most [`PAIRED`] - 1).
    pub(crate) with: Vec<CompactString>,
    /// The event time, unix ms.
    pub(crate) t_ms: i64,
}

impl TakenUp {
    /// What `item` entering the engagement list `items` (already holding it) at `t_ms` adds.
    pub(crate) fn of(item: &str, items: &[Engaged], t_ms: i64) -> TakenUp {
        TakenUp {
            item: CompactString::from(item),
            with: most_engaged_n(items, PAIRED)
                .into_iter()
                .filter(|e| e.name != item)
                .take(PAIRED - 1)
                .map(|e| e.name.clone())
                .collect(),
            t_ms,
        }
    }
}

/// An item's co-occurring items: slots and forward-decayed pair counts since each was listed (a
/// lower bound of the true count: a full list drops its least counted quarter), in two parallel
/// vectors, unordered. A lookup scans the slots in blocks the compiler vectorises, and a new
/// pair is pushed at the end: a sorted list spent most of its time moving entries to insert.
#[derive(Debug, Default)]
struct Neighbours {
    slots: Vec<u32>,
    counts: Vec<f32>,
}

impl Neighbours {
    /// Entries scanned per block (one comparison mask each).
    const BLOCK: usize = 16;

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// The position of `slot`, if listed.
    fn find(&self, slot: u32) -> Option<usize> {
        let mut base = 0;
        for block in self.slots.chunks(Self::BLOCK) {
            let hit = block.iter().fold(false, |acc, &s| acc | (s == slot));
            if hit {
                return block.iter().position(|&s| s == slot).map(|i| base + i);
            }
            base += block.len();
        }
        None
    }

    fn push(&mut self, slot: u32, count: f32) {
        self.slots.push(slot);
        self.counts.push(count);
    }

    /// Keeps the entries for which `keep(slot, count)` holds, in order.
    fn retain(&mut self, mut keep: impl FnMut(u32, f32) -> bool) {
        let mut w = 0;
        for r in 0..self.slots.len() {
            let (s, c) = (self.slots[r], self.counts[r]);
            if keep(s, c) {
                self.slots[w] = s;
                self.counts[w] = c;
                w += 1;
            }
        }
        self.slots.truncate(w);
        self.counts.truncate(w);
    }

    /// (slot, count) of every entry.
    fn iter(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.slots.iter().copied().zip(self.counts.iter().copied())
    }

    /// Heap bytes held.
    #[cfg(any(test, feature = "cli"))]
    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4 + self.counts.capacity() * 4
    }
}

#[derive(Debug, Default)]
struct Item {
    /// Empty for a free slot.
    name: CompactString,
    /// Customers who took it up (forward-decayed).
    count: f32,
    /// Co-occurring items.
    neighbours: Neighbours,
}

/// The counts (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Item name → slot. foldhash (seeded per process, so names sent by clients cannot be
    /// chosen to collide): the writer looks names up for every item taken up, and SipHash was
    /// a measurable share of its time.
    slots: HashMap<CompactString, u32, foldhash::fast::RandomState>,
    /// How many times items were shed (a slot looked up before may be gone since).
    sheds: u64,
    items: Vec<Item>,
    free: Vec<u32>,
    /// Neighbour entries in all lists.
    pairs: usize,
    /// The time of weight 1 (None until the first count).
    base_ms: Option<i64>,
    half_life_ms: f64,
}

impl Table {
    /// An empty table whose counts halve every `half_life_ms`.
    pub(crate) fn new(half_life_ms: f64) -> Table {
        Table {
            half_life_ms,
            ..Table::default()
        }
    }

    /// Items counted.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// The weight of one customer at `t_ms`.
    fn weight(&mut self, t_ms: i64) -> f32 {
        if self.half_life_ms <= 0.0 {
            return 1.0;
        }
        let base = *self.base_ms.get_or_insert(t_ms);
        let e = (t_ms - base) as f64 / self.half_life_ms;
        if e > MAX_EXPONENT {
            // Move the base to `t_ms`: every count shrinks by 2^-e.
            let f = (-e).exp2() as f32;
            for item in &mut self.items {
                item.count *= f;
                for c in &mut item.neighbours.counts {
                    *c *= f;
                }
            }
            self.base_ms = Some(t_ms);
            return 1.0;
        }
        // Older than the base by many half-lives: too small to matter, not zero.
        e.max(-MAX_EXPONENT).exp2() as f32
    }

    /// The slot of `name`, listing it if needed (dropping the least taken up when full).
    fn slot(&mut self, name: &str) -> u32 {
        if let Some(&s) = self.slots.get(name) {
            return s;
        }
        if self.slots.len() >= MAX_ITEMS {
            self.shed();
        }
        let s = match self.free.pop() {
            Some(s) => s,
            None => {
                self.items.push(Item::default());
                (self.items.len() - 1) as u32
            }
        };
        self.items[s as usize].name = CompactString::from(name);
        self.slots.insert(CompactString::from(name), s);
        s
    }

    /// Drops the eighth least taken-up items and every pair naming them.
    fn shed(&mut self) {
        self.sheds += 1;
        let mut counts: Vec<(f32, u32)> = self
            .slots
            .values()
            .map(|&s| (self.items[s as usize].count, s))
            .collect();
        counts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let dropped: HashSet<u32> = counts.iter().take(MAX_ITEMS / 8).map(|&(_, s)| s).collect();
        for &s in &dropped {
            let item = std::mem::take(&mut self.items[s as usize]);
            self.pairs -= item.neighbours.len();
            self.slots.remove(&item.name);
            self.free.push(s);
        }
        for item in &mut self.items {
            let before = item.neighbours.len();
            item.neighbours.retain(|s, _| !dropped.contains(&s));
            self.pairs -= before - item.neighbours.len();
        }
    }

    /// Adds `w` to `y` in `x`'s list (dropping its least counted quarter when full).
    fn pair_one_way(&mut self, x: u32, y: u32, w: f32) {
        let list = &mut self.items[x as usize].neighbours;
        if let Some(i) = list.find(y) {
            list.counts[i] += w;
            return;
        }
        if list.len() >= NEIGHBOURS || self.pairs >= MAX_PAIRS {
            if list.len() < NEIGHBOURS / 4 {
                return; // the budget is spent on other items' lists
            }
            // Drop the least counted quarter at once: the next inserts find room without a
            // scan each (an entry that comes back starts again from its own count).
            let mut counts = list.counts.clone();
            let q = counts.len() / 4;
            let (_, &mut threshold, _) = counts.select_nth_unstable_by(q, f32::total_cmp);
            let before = list.len();
            list.retain(|_, c| c > threshold);
            self.pairs -= before - list.len();
        }
        self.pairs += 1;
        list.push(y, w);
    }

    /// Counts one customer taking up `item` with their other most engaged `with` items.
    pub(crate) fn take_up(&mut self, t: &TakenUp) {
        let w = self.weight(t.t_ms);
        let mut x = self.slot(&t.item);
        self.items[x as usize].count += w;
        for other in t.with.iter().take(PAIRED - 1) {
            if *other == t.item {
                continue;
            }
            let sheds = self.sheds;
            let y = self.slot(other);
            // Listing `other` may have shed `item`'s slot: look it up again then.
            if self.sheds != sheds {
                let Some(&again) = self.slots.get(&t.item) else {
                    return;
                };
                x = again;
            }
            self.pair_one_way(x, y, w);
            self.pair_one_way(y, x, w);
        }
    }

    /// Counts one stored customer's list, as the rebuild at open does: each of their
    /// [`PAIRED`] most engaged items at its last time, each pair at the later time of the two.
    pub(crate) fn count_list(&mut self, items: &[Engaged]) {
        let mut top = most_engaged(items);
        top.truncate(PAIRED);
        let slots: Vec<(u32, i64)> = top
            .iter()
            .map(|e| {
                let w = self.weight(e.last_ms);
                let s = self.slot(&e.name);
                self.items[s as usize].count += w;
                (s, e.last_ms)
            })
            .collect();
        // Shedding while listing could have freed a slot listed earlier: keep the live ones.
        let live: Vec<(u32, i64)> = slots
            .into_iter()
            .zip(&top)
            .filter(|((s, _), e)| self.items[*s as usize].name == e.name)
            .map(|(s, _)| s)
            .collect();
        for (i, &(x, tx)) in live.iter().enumerate() {
            for &(y, ty) in &live[i + 1..] {
                let w = self.weight(tx.max(ty));
                self.pair_one_way(x, y, w);
                self.pair_one_way(y, x, w);
            }
        }
    }

    /// How many customers took `name` up, decayed to `t_ms` (0 if it is not counted).
    pub(crate) fn count_at(&self, name: &str, t_ms: i64) -> f64 {
        let (Some(&s), Some(base)) = (self.slots.get(name), self.base_ms) else {
            return 0.0;
        };
        let e = if self.half_life_ms > 0.0 {
            (t_ms - base) as f64 / self.half_life_ms
        } else {
            0.0
        };
        f64::from(self.items[s as usize].count) * (-e).exp2()
    }

    /// The items most related to `item` (at most `n`), as (slot, relatedness: the cosine, in
    /// `(0, 1]`), unordered; [`Table::name`] names a slot.
    pub(crate) fn related(&self, item: &str, n: usize) -> Vec<(u32, f64)> {
        let Some(&x) = self.slots.get(item) else {
            return Vec::new();
        };
        let it = &self.items[x as usize];
        let cx = f64::from(it.count);
        let mut out: Vec<(u32, f64)> = it
            .neighbours
            .iter()
            .filter_map(|(slot, count)| {
                let d = (cx * f64::from(self.items[slot as usize].count)).sqrt();
                let c = f64::from(count);
                (d > 0.0 && c > 0.0).then(|| (slot, (c / d).min(1.0)))
            })
            .collect();
        if out.len() > n && n > 0 {
            out.select_nth_unstable_by(n - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            out.truncate(n);
        }
        out
    }

    /// The items related to a customer's: `own` are their items with their engagement, most
    /// engaged first; each related item scores the sum, over the first [`PAIRED`] of them, of
    /// engagement × relatedness (each item's [`RELATED_PER_ITEM`] most related). By slot:
    /// (score, the largest single contribution, the index in `own` of the item that made it).
    pub(crate) fn related_scores<'a>(
        &self,
        own: impl Iterator<Item = (&'a str, f64)>,
    ) -> HashMap<u32, (f64, f64, usize)> {
        let mut scores: HashMap<u32, (f64, f64, usize)> = HashMap::new();
        for (i, (name, weight)) in own.take(PAIRED).enumerate() {
            for (slot, r) in self.related(name, RELATED_PER_ITEM) {
                let s = scores.entry(slot).or_insert((0.0, 0.0, i));
                s.0 += weight * r;
                if weight * r > s.1 {
                    (s.1, s.2) = (weight * r, i);
                }
            }
        }
        scores
    }

    /// The item in `slot` (as [`Table::related`] returns it).
    pub(crate) fn name(&self, slot: u32) -> &str {
        &self.items[slot as usize].name
    }

    /// Whether the table is sound (for tests): every listed name maps to its slot, no pair
    /// names a free slot, lists within their bounds.
    #[cfg(test)]
    fn is_consistent(&self) -> bool {
        self.slots.len() <= MAX_ITEMS
            && self.pairs <= MAX_PAIRS
            && self.pairs == self.items.iter().map(|i| i.neighbours.len()).sum::<usize>()
            && self
                .slots
                .iter()
                .all(|(name, &s)| self.items[s as usize].name == *name)
            && self.items.iter().all(|it| {
                it.neighbours.len() <= NEIGHBOURS
                    && it.neighbours.slots.len() == it.neighbours.counts.len()
                    && it
                        .neighbours
                        .iter()
                        .all(|(s, _)| !self.items[s as usize].name.is_empty())
                    && {
                        let mut seen = it.neighbours.slots.clone();
                        seen.sort_unstable();
                        seen.windows(2).all(|w| w[0] < w[1])
                    }
            })
    }

    /// Approximate heap bytes (for benchmarks).
    #[cfg(any(test, feature = "cli"))]
    pub(crate) fn heap_bytes(&self) -> usize {
        let per_item = std::mem::size_of::<Item>() + 2 * std::mem::size_of::<CompactString>() + 8;
        self.items.len() * per_item
            + self
                .items
                .iter()
                .map(|i| i.neighbours.heap_bytes())
                .sum::<usize>()
    }
}

/// How the rebuild at open ended.
#[derive(Debug, Clone, PartialEq)]
enum Build {
    Running,
    Done,
    Failed(String),
}

/// The table with its rebuild (see the module docs).
pub(crate) struct Together {
    table: RwLock<Table>,
    /// Customers the writer counted while the scan runs (the scan skips them).
    written_while_building: Mutex<Option<HashSet<String>>>,
    state: Mutex<Build>,
    done: Condvar,
    stop: AtomicBool,
    /// When the table was made and when its rebuild ended (for benchmarks).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // read by the benchmark harness only
    created: std::time::Instant,
    finished: Mutex<Option<std::time::Instant>>,
    /// The consent of a customer who set none: the lists of those without consent to
    /// profiling are not counted (`features/consent.rs`).
    consent: crate::features::consent::Consent,
}

impl Together {
    /// A table waiting for its rebuild (`needs_scan`), or complete already (a store that never
    /// saw an item).
    pub(crate) fn new(half_life_ms: f64, needs_scan: bool) -> Together {
        Together {
            table: RwLock::new(Table::new(half_life_ms)),
            written_while_building: Mutex::new(needs_scan.then(HashSet::new)),
            state: Mutex::new(if needs_scan {
                Build::Running
            } else {
                Build::Done
            }),
            done: Condvar::new(),
            stop: AtomicBool::new(false),
            created: std::time::Instant::now(),
            finished: Mutex::new(None),
            consent: crate::features::consent::Consent::default(),
        }
    }

    /// The table, with `defaults` the consent of a customer who set none.
    pub(crate) fn with_consent(mut self, defaults: crate::features::consent::Consent) -> Together {
        self.consent = defaults;
        self
    }

    /// Seconds from the table's creation (the open) until its rebuild ended; 0 for a table
    /// that needed none. For benchmarks: call after [`Together::read`] returned.
    #[cfg(feature = "cli")]
    pub(crate) fn ready_secs(&self) -> f64 {
        self.finished
            .lock()
            .map_or(0.0, |t| (t - self.created).as_secs_f64())
    }

    /// Counts `customer` taking an item up (the writer, as it applies the event; the scan, if
    /// still running, skips them from now on).
    pub(crate) fn take_up(&self, customer: &str, taken: &TakenUp) {
        if let Some(skip) = self.written_while_building.lock().as_mut() {
            skip.insert(customer.to_string());
        }
        self.table.write().take_up(taken);
    }

    /// How many customers took up each of `items`, decayed to `t_ms` (0 for an item not
    /// counted), without waiting for the rebuild: the popularity feature of the rebuy ranking.
    pub(crate) fn popularity<'a>(
        &self,
        items: impl Iterator<Item = &'a str>,
        t_ms: i64,
    ) -> Vec<f64> {
        let table = self.table.read();
        items.map(|name| table.count_at(name, t_ms)).collect()
    }

    /// Rebuilds the counts from the records (on a thread of its own, from open). Damaged
    /// records are skipped with a warning.
    pub(crate) fn build(&self, store: &Store) {
        let outcome = self.scan(store);
        *self.written_while_building.lock() = None;
        *self.finished.lock() = Some(std::time::Instant::now());
        let mut state = self.state.lock();
        *state = match outcome {
            Ok(()) => Build::Done,
            Err(why) if self.stop.load(Ordering::Acquire) => {
                tracing::debug!("co-occurrence rebuild stopped: {why}");
                Build::Failed(why)
            }
            Err(why) => {
                tracing::warn!("co-occurrence not rebuilt ({why}); recommend goes without it");
                Build::Failed(why)
            }
        };
        self.done.notify_all();
    }

    fn scan(&self, store: &Store) -> Result<(), String> {
        const CHUNK: usize = 1024;
        let mut pending: Vec<(String, Vec<Engaged>)> = Vec::with_capacity(CHUNK);
        let flush = |pending: &mut Vec<(String, Vec<Engaged>)>| {
            let skip = self.written_while_building.lock();
            let mut table = self.table.write();
            for (id, items) in pending.drain(..) {
                if !skip.as_ref().is_some_and(|s| s.contains(&id)) {
                    table.count_list(&items);
                }
            }
        };
        for entry in store.scan_profiles() {
            if self.stop.load(Ordering::Acquire) {
                return Err("stopped: the store is closing".into());
            }
            let (id, bytes) = entry.map_err(|e| e.to_string())?;
            match store.decode_profile_current(&id, &bytes) {
                Ok(rec)
                    if rec.affinity.items.len() > 1
                        && crate::features::consent::Consent::of(&rec.state, self.consent)
                            .profiling =>
                {
                    pending.push((id, rec.affinity.items))
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("co-occurrence: skipping a profile: {e}"),
            }
            if pending.len() >= CHUNK {
                flush(&mut pending);
            }
        }
        flush(&mut pending);
        Ok(())
    }

    /// Asks a running rebuild to stop (the store is closing).
    pub(crate) fn stop_build(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Reads the table: with `wait`, once the rebuild ended; without, as it is (during the
    /// rebuild: what the writer and the scan counted so far). None if the rebuild failed.
    pub(crate) fn read<T>(&self, wait: bool, f: impl FnOnce(&Table) -> T) -> Option<T> {
        {
            let mut state = self.state.lock();
            while wait && *state == Build::Running {
                self.done.wait(&mut state);
            }
            if let Build::Failed(_) = *state {
                return None;
            }
        }
        Some(f(&self.table.read()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF: f64 = 90.0 * 86_400_000.0;

    fn taken(item: &str, with: &[&str], t_ms: i64) -> TakenUp {
        TakenUp {
            item: item.into(),
            with: with.iter().map(|&w| w.into()).collect(),
            t_ms,
        }
    }

    fn named(t: &Table, item: &str) -> HashMap<String, f64> {
        t.related(item, NEIGHBOURS)
            .into_iter()
            .map(|(s, r)| (t.name(s).to_string(), r))
            .collect()
    }

    #[test]
    fn a_pair_taken_together_is_related_both_ways_and_popularity_alone_is_not() {
        let mut t = Table::new(HALF);
        for c in 0..50 {
            // Everyone takes "bag"; half also take the pair "pen" + "ink".
            t.take_up(&taken("bag", &[], c));
            if c % 2 == 0 {
                t.take_up(&taken("pen", &["bag"], c));
                t.take_up(&taken("ink", &["pen", "bag"], c));
            }
        }
        let rel = |x: &str| named(&t, x);
        assert!((rel("pen")["ink"] - 1.0).abs() < 1e-6);
        assert!((rel("ink")["pen"] - 1.0).abs() < 1e-6);
        // bag: 50 customers, 25 with pen: cosine 25 / sqrt(50 * 25).
        assert!((rel("pen")["bag"] - 25.0 / (50.0f64 * 25.0).sqrt()).abs() < 1e-4);
        assert!(t.is_consistent());
    }

    #[test]
    fn recent_pairs_outweigh_old_ones_and_moving_the_base_changes_nothing() {
        // Ten customers took up x with y long ago, ten x with z three half-lives later.
        let fill = |t: &mut Table, start: i64| {
            for _ in 0..10 {
                t.take_up(&taken("y", &[], start));
                t.take_up(&taken("x", &["y"], start));
            }
            for _ in 0..10 {
                t.take_up(&taken("z", &[], start + (3.0 * HALF) as i64));
                t.take_up(&taken("x", &["z"], start + (3.0 * HALF) as i64));
            }
        };
        let mut t = Table::new(HALF);
        fill(&mut t, 0);
        let r = named(&t, "x");
        // x: 10 + 80, y: 10, z: 80 (in weights of the first time).
        assert!(
            (r["y"] - 10.0 / (90.0f64 * 10.0).sqrt()).abs() < 1e-4,
            "{r:?}"
        );
        assert!(
            (r["z"] - 80.0 / (90.0f64 * 80.0).sqrt()).abs() < 1e-4,
            "{r:?}"
        );
        // The same 60 half-lives after a first count: the base moves, relatedness does not.
        let mut moved = Table::new(HALF);
        moved.take_up(&taken("w", &[], 0));
        fill(&mut moved, (60.0 * HALF) as i64);
        let m = named(&moved, "x");
        assert!(moved.base_ms.is_some_and(|b| b > 0));
        for k in ["y", "z"] {
            assert!((m[k] - r[k]).abs() < 1e-4, "{m:?} against {r:?}");
        }
        assert!(t.is_consistent() && moved.is_consistent());
    }

    #[test]
    fn memory_stays_bounded_under_a_million_distinct_items() {
        let mut t = Table::new(HALF);
        for i in 0..1_000_000i64 {
            let prev = format!("item-{}", i - 1);
            t.take_up(&taken(&format!("item-{i}"), &[&prev, "staple"], i));
        }
        assert!(t.len() <= MAX_ITEMS);
        assert!(t.items.len() <= MAX_ITEMS + 1);
        assert!(t.is_consistent());
        // The staple every customer took with their item is still counted and related.
        assert!(t.slots.contains_key("staple"));
        assert!(t.heap_bytes() < 40 << 20, "{} bytes", t.heap_bytes());
    }

    #[test]
    fn a_rebuild_from_lists_relates_what_the_lists_share() {
        let mut t = Table::new(HALF);
        let e = |name: &str, weight: f32| Engaged {
            name: name.into(),
            weight,
            purchases: 1,
            last_ms: 0,
        };
        for _ in 0..10 {
            t.count_list(&[e("pen", 3.0), e("ink", 2.0)]);
            t.count_list(&[e("pen", 3.0), e("pad", 1.0)]);
        }
        let r = named(&t, "pen");
        assert!((r["ink"] - r["pad"]).abs() < 1e-6);
        assert!(named(&t, "ink").keys().all(|n| n == "pen"));
    }
}
