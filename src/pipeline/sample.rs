//! The customer sample the models are fitted on: a *bottom-k* sample, the [`CAPACITY`]
//! customers whose keyed hash of the id is smallest. The propensity's cohorts are taken of all
//! of them ([`super::cohorts`]), the segments are fitted to the first [`SEGMENT_MEMBERS`] (by
//! hash: the bottom-k sample of that size). Every customer is equally
//! likely to be in it whatever their activity, so it is a uniform sample of the customers, as
//! the segments serve them; it changes only when a new customer's hash is among the smallest
//! (rarely, once the store has many customers) or a member is erased.
//!
//! Persisted as one key per member (`K` ‖ hash ‖ id, see [`crate::storage::keys`]), written in
//! the same batch as the change that caused it; the writer keeps the set in memory.

use std::collections::BTreeSet;

/// Customers in the sample.
pub(crate) const CAPACITY: usize = 8192;

/// Customers the segments are fitted to: the sample's members with the smallest hashes.
pub(crate) const SEGMENT_MEMBERS: usize = 2048;

/// Seed of the sample's hash (any fixed value; it only has to differ from the other uses of
/// xxh3 on customer ids, so that membership is independent of them).
const SEED: u64 = 0x5e9_3e47_5a3d_1e01;

/// A member: (hash, customer id).
pub(crate) type Member = (u64, String);

/// The hash that orders customers in the sample.
pub(crate) fn hash(customer: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(customer.as_bytes(), SEED)
}

/// The bottom-k sample of customers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    members: BTreeSet<Member>,
    capacity: usize,
}

/// A change of the sample, to persist (and to revert if the commit fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// The member joined.
    Added(Member),
    /// The member left (evicted by a smaller hash, or erased).
    Removed(Member),
}

impl Sample {
    /// A sample of up to `capacity` members, starting from `members` (the stored ones; if
    /// there are more, those with the largest hashes are dropped).
    pub(crate) fn new(members: impl IntoIterator<Item = Member>, capacity: usize) -> Sample {
        let mut sample = Sample {
            members: members.into_iter().collect(),
            capacity,
        };
        while sample.members.len() > capacity {
            sample.members.pop_last();
        }
        sample
    }

    /// The bottom-`capacity` sample of `customers`.
    pub(crate) fn bottom_k<'a>(
        customers: impl IntoIterator<Item = &'a str>,
        capacity: usize,
    ) -> Sample {
        let mut sample = Sample::new([], capacity);
        for c in customers {
            sample.offer(c);
        }
        sample
    }

    /// Offers a customer seen for the first time; returns what changed (nothing, the customer
    /// joined, or joined and evicted the largest hash).
    pub(crate) fn offer(&mut self, customer: &str) -> Vec<Change> {
        if self.capacity == 0 {
            return Vec::new();
        }
        let member = (hash(customer), customer.to_string());
        if self.members.len() >= self.capacity
            && self.members.last().is_some_and(|last| member >= *last)
        {
            return Vec::new();
        }
        if !self.members.insert(member.clone()) {
            return Vec::new();
        }
        let mut changes = vec![Change::Added(member)];
        if self.members.len() > self.capacity {
            if let Some(evicted) = self.members.pop_last() {
                changes.push(Change::Removed(evicted));
            }
        }
        changes
    }

    /// Whether `customer` is a member.
    pub(crate) fn contains(&self, customer: &str) -> bool {
        let h = hash(customer);
        // Without allocating: the writer asks for every record it writes.
        self.members
            .range((h, String::new())..)
            .take_while(|(mh, _)| *mh == h)
            .any(|(_, id)| id == customer)
    }

    /// Removes an erased customer; returns the change if they were a member.
    pub(crate) fn remove(&mut self, customer: &str) -> Option<Change> {
        let member = (hash(customer), customer.to_string());
        self.members
            .remove(&member)
            .then_some(Change::Removed(member))
    }

    /// Reverts `change` (after a failed commit).
    pub(crate) fn revert(&mut self, change: Change) {
        match change {
            Change::Added(m) => {
                self.members.remove(&m);
            }
            Change::Removed(m) => {
                self.members.insert(m);
            }
        }
    }

    /// The members' ids, by increasing hash.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(_, id)| id.as_str())
    }

    /// Every member.
    pub(crate) fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    /// Number of members.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_smallest_hashes_whatever_the_order() {
        let ids: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        let forward = Sample::bottom_k(ids.iter().map(String::as_str), 50);
        let backward = Sample::bottom_k(ids.iter().rev().map(String::as_str), 50);
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), 50);
        let mut hashes: Vec<u64> = ids.iter().map(|c| hash(c)).collect();
        hashes.sort_unstable();
        let kept: Vec<u64> = forward.members().map(|m| m.0).collect();
        assert_eq!(kept, hashes[..50]);
    }

    #[test]
    fn offers_report_their_changes_and_revert() {
        let mut s = Sample::new([], 2);
        let a = s.offer("a");
        assert_eq!(a.len(), 1);
        assert!(s.offer("a").is_empty(), "a member is not added twice");
        s.offer("b");
        // A third customer either is ignored or joins and evicts the largest hash.
        let before = s.clone();
        let changes = s.offer("c");
        assert!(matches!(
            changes.as_slice(),
            [] | [Change::Added(_), Change::Removed(_)]
        ));
        for c in changes.into_iter().rev() {
            s.revert(c);
        }
        assert_eq!(s, before);
        let removed = s.remove("a").expect("a is a member");
        assert_eq!(removed, Change::Removed((hash("a"), "a".into())));
        assert_eq!(s.remove("a"), None);
        assert_eq!(s.len(), 1);
        assert!(Sample::new([], 0).offer("x").is_empty());
    }

    #[test]
    fn a_sample_is_uniform_over_customers() {
        // Ids that share a prefix by cohort: each tenth of the ids is 10% +- 3% of the sample.
        let ids: Vec<String> = (0..20_000).map(|i| format!("cust{i:06}")).collect();
        let s = Sample::bottom_k(ids.iter().map(String::as_str), 2000);
        let mut per_tenth = [0usize; 10];
        for id in s.ids() {
            let n: usize = id[4..].parse().expect("numeric suffix");
            per_tenth[n / 2000] += 1;
        }
        assert!(
            per_tenth.iter().all(|&n| (140..=260).contains(&n)),
            "{per_tenth:?}"
        );
    }
}
