//! The writer's cache of the profile records it wrote last: their encoded bytes, as they went
//! into sled, so that the next event of a recent customer needs no sled read. sled 0.34 blocks
//! every read while a batch applies, so each read the writer avoids is time the apply stage no
//! longer waits for (see docs/bench-history.md, "What kept `EVENT.ADD -P 16` low").
//!
//! Every profile write and erasure goes through [`Engine::write_into`](super::apply::Engine),
//! which updates this cache in the same step, so an entry is always the newest version of its
//! record (the one the writer's own state says it is); a batch whose preparation is undone
//! clears the whole cache. Bounded by bytes; the oldest insertions go first.

use compact_str::CompactString;
use std::collections::HashMap;
use std::collections::VecDeque;

/// Bytes counted per entry on top of its key and value: the map slot, the queue slot and the
/// allocation headers, roughly.
const ENTRY_OVERHEAD: usize = 96;

/// The most recently written records, up to a byte budget.
pub(crate) struct RecentRecords {
    /// Customer → (generation of the entry, encoded record). Ids of up to 24 bytes are kept
    /// inline in the table ([`CompactString`]): a lookup then compares the bytes of the slot it
    /// probes instead of following a pointer to them, one cache miss fewer per lookup of a map
    /// that holds every recent customer.
    map: HashMap<CompactString, (u64, sled::IVec)>,
    /// Insertions, oldest first: (customer, generation). A customer written again has a newer
    /// generation in the map, and its older queue entries are skipped when they come up.
    order: VecDeque<(CompactString, u64)>,
    next_generation: u64,
    bytes: usize,
    budget: usize,
}

impl RecentRecords {
    /// An empty cache of at most `budget` bytes (0 keeps nothing).
    pub(crate) fn new(budget: usize) -> RecentRecords {
        RecentRecords {
            map: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
            bytes: 0,
            budget,
        }
    }

    /// The newest record written for `customer`, if still cached.
    pub(crate) fn get(&self, customer: &str) -> Option<&sled::IVec> {
        self.map.get(customer).map(|(_, v)| v)
    }

    /// Whether `customer`'s record is cached.
    pub(crate) fn contains(&self, customer: &str) -> bool {
        self.map.contains_key(customer)
    }

    /// Records that `customer`'s record is now `value`, evicting the oldest entries past the
    /// budget.
    pub(crate) fn insert(&mut self, customer: &str, value: sled::IVec) {
        if self.budget == 0 {
            return;
        }
        let size = Self::size(customer, &value);
        let generation = self.next_generation;
        self.next_generation += 1;
        match self.map.get_mut(customer) {
            Some(entry) => {
                self.bytes -= Self::size(customer, &entry.1);
                *entry = (generation, value);
            }
            None => {
                self.map.insert(customer.into(), (generation, value));
            }
        }
        self.bytes += size;
        self.order.push_back((customer.into(), generation));
        self.evict();
    }

    /// Forgets `customer` (its record was erased).
    pub(crate) fn remove(&mut self, customer: &str) {
        if let Some((_, v)) = self.map.remove(customer) {
            self.bytes -= Self::size(customer, &v);
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }

    /// Bytes held, as counted against the budget.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn size(customer: &str, value: &sled::IVec) -> usize {
        customer.len() + value.len() + ENTRY_OVERHEAD
    }

    fn evict(&mut self) {
        // Queue entries of rewritten customers are dropped along the way, so the queue holds at
        // most one live entry per cached customer plus the stale ones not yet reached; it is
        // also compacted when stale entries make up most of it.
        while self.bytes > self.budget {
            let Some((customer, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .map
                .get(&customer)
                .is_some_and(|(g, _)| *g == generation)
            {
                self.remove(&customer);
            }
        }
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order
                .retain(|(c, g)| map.get(c).is_some_and(|(live, _)| live == g));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: usize, fill: u8) -> sled::IVec {
        sled::IVec::from(vec![fill; n])
    }

    #[test]
    fn keeps_the_newest_value_and_evicts_the_oldest_past_the_budget() {
        let one = RecentRecords::size("c0", &value(100, 0));
        let mut r = RecentRecords::new(3 * one);
        r.insert("c0", value(100, 0));
        r.insert("c1", value(100, 1));
        r.insert("c0", value(100, 2)); // rewritten: now the newest
        r.insert("c2", value(100, 3));
        assert_eq!(r.bytes(), 3 * one);
        assert_eq!(r.get("c0"), Some(&value(100, 2)));
        r.insert("c3", value(100, 4)); // over budget: c1 is the oldest live entry
        assert!(!r.contains("c1"));
        assert!(r.contains("c0") && r.contains("c2") && r.contains("c3"));
        assert_eq!(r.bytes(), 3 * one);
        r.insert("c4", value(100, 5)); // next oldest: c0's rewrite
        assert!(!r.contains("c0"));
        assert_eq!(r.get("c4"), Some(&value(100, 5)));
    }

    #[test]
    fn remove_and_clear_forget_and_a_zero_budget_keeps_nothing() {
        let mut r = RecentRecords::new(1 << 20);
        r.insert("a", value(10, 1));
        r.insert("b", value(10, 2));
        r.remove("a");
        assert!(!r.contains("a") && r.contains("b"));
        assert_eq!(r.bytes(), RecentRecords::size("b", &value(10, 2)));
        r.clear();
        assert!(!r.contains("b"));
        assert_eq!(r.bytes(), 0);
        let mut none = RecentRecords::new(0);
        none.insert("a", value(10, 1));
        assert!(!none.contains("a"));
    }

    #[test]
    fn many_rewrites_of_few_customers_keep_the_queue_bounded() {
        let mut r = RecentRecords::new(1 << 20);
        for i in 0..100_000 {
            r.insert(&format!("c{}", i % 10), value(8, (i % 251) as u8));
        }
        assert_eq!(r.map.len(), 10);
        assert!(r.order.len() <= 2 * 10 + 1024 + 1, "{}", r.order.len());
        assert_eq!(r.get("c9"), Some(&value(8, (99_999 % 251) as u8)));
    }

    #[test]
    fn a_value_larger_than_the_budget_is_not_kept() {
        let mut r = RecentRecords::new(50);
        r.insert("a", value(100, 1));
        assert!(!r.contains("a"));
        assert_eq!(r.bytes(), 0);
    }
}
