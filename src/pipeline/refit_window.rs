//! The examples the propensity model is refitted on: the complete (learned) training examples
//! whose deadline lies within the last horizon, of at most [`CAPACITY`] customers (those with the
//! smallest keyed hash of the id among the window's, so the window is a uniform sample of the
//! customers whatever their behaviour).
//!
//! The online learner (AdaGrad) takes one step per example; it tracks a changing population well
//! but never fits its examples exactly. Whenever the watermark enters a new quarter of a horizon
//! the writer fits an L2 logistic regression by Newton's method ([`crate::model::logistic`]) on
//! this window, standardised by the current scaler; the fit is half of the served model
//! ([`crate::model::Propensity`]). A window of one horizon holds one example per customer with a
//! checkpoint chain, drawn like the customers the model is served, and is as fresh as complete
//! examples can be. `docs/model.md` has the measurements that chose it (every complete example
//! instead, a longer window, the sample size, the refit alone).
//!
//! Persisted as one key per example (`W` ‖ deadline ‖ id, value the raw features and the label,
//! see [`crate::storage::keys`]), written in the batch that learns the example and removed in the
//! batch whose refit finds it out of the window, or that erases its customer.

use std::collections::{BTreeMap, BTreeSet};

/// An example's deadline (unix ms, its checkpoint plus one horizon) and customer.
pub(crate) type Key = (i64, String);

/// Most examples in the window (about one per customer, so most customers).
pub(crate) const CAPACITY: usize = 8192;

/// Seed of the hash that decides which customers' examples the window keeps when full (any fixed
/// value, different from the segment sample's so that the two samples are independent).
const SEED: u64 = 0x7ef1_7a11_5eed_0001;

fn hash(customer: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(customer.as_bytes(), SEED)
}

/// Refits happen when the watermark enters a new block of `horizon / REFITS_PER_HORIZON`.
pub(crate) const REFITS_PER_HORIZON: i64 = 4;
/// L2 penalty of the refit per example (the batch baseline's).
pub(crate) const REFIT_L2: f64 = 1e-3;
/// Fewest examples of each class in the window for a refit.
pub(crate) const MIN_PER_CLASS: usize = 10;

/// The window of examples, by deadline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefitWindow {
    examples: BTreeMap<Key, (Vec<f32>, bool)>,
    /// The same keys by (hash of the customer, key): the last one is evicted first.
    by_hash: BTreeSet<(u64, Key)>,
    capacity: usize,
}

impl Default for RefitWindow {
    fn default() -> Self {
        RefitWindow::new([])
    }
}

/// A change of the window, to persist (and to revert if the commit fails).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// The example joined the window.
    Added(Key),
    /// The example left the window (too old, or its customer erased); what to restore on revert.
    Removed(Key, Vec<f32>, bool),
}

impl RefitWindow {
    /// The window, starting from the stored examples, holding at most [`CAPACITY`].
    pub(crate) fn new(stored: impl IntoIterator<Item = (Key, (Vec<f32>, bool))>) -> RefitWindow {
        RefitWindow::with_capacity(stored, CAPACITY)
    }

    /// The window, starting from the stored examples, holding at most `capacity` (more stored
    /// ones are kept until they expire).
    pub(crate) fn with_capacity(
        stored: impl IntoIterator<Item = (Key, (Vec<f32>, bool))>,
        capacity: usize,
    ) -> RefitWindow {
        let examples: BTreeMap<Key, (Vec<f32>, bool)> = stored.into_iter().collect();
        let by_hash = examples.keys().map(|k| (hash(&k.1), k.clone())).collect();
        RefitWindow {
            examples,
            by_hash,
            capacity,
        }
    }

    /// Adds a learned example, unless the window is full and every example in it has a
    /// customer with a smaller hash; when full, evicts the example with the largest hash.
    pub(crate) fn add(
        &mut self,
        deadline: i64,
        customer: &str,
        features: Vec<f32>,
        label: bool,
    ) -> Vec<Change> {
        let key = (deadline, customer.to_string());
        let ranked = (hash(customer), key);
        let mut changes = Vec::new();
        if self.examples.len() >= self.capacity {
            match self.by_hash.last() {
                Some(last) if *last > ranked => {
                    let evicted = last.1.clone();
                    changes.extend(self.remove(&evicted));
                }
                _ => return changes,
            }
        }
        let key = ranked.1.clone();
        self.by_hash.insert(ranked);
        self.examples.insert(key.clone(), (features, label));
        changes.push(Change::Added(key));
        changes
    }

    fn remove(&mut self, key: &Key) -> Option<Change> {
        let (features, label) = self.examples.remove(key)?;
        self.by_hash.remove(&(hash(&key.1), key.clone()));
        Some(Change::Removed(key.clone(), features, label))
    }

    /// Drops the examples due before `before`.
    pub(crate) fn expire(&mut self, before: i64) -> Vec<Change> {
        let due: Vec<Key> = self
            .examples
            .keys()
            .take_while(|k| k.0 < before)
            .cloned()
            .collect();
        due.iter().filter_map(|k| self.remove(k)).collect()
    }

    /// Drops every example of the customers for which `erased` is true.
    pub(crate) fn forget(&mut self, erased: impl Fn(&str) -> bool) -> Vec<Change> {
        let gone: Vec<Key> = self
            .examples
            .keys()
            .filter(|(_, c)| erased(c))
            .cloned()
            .collect();
        gone.iter().filter_map(|key| self.remove(key)).collect()
    }

    /// The features and label of an example in the window.
    pub(crate) fn get(&self, key: &Key) -> Option<(&[f32], bool)> {
        self.examples.get(key).map(|(f, l)| (f.as_slice(), *l))
    }

    /// Every example: features and label.
    pub(crate) fn examples(&self) -> impl Iterator<Item = (&[f32], bool)> {
        self.examples.values().map(|(f, l)| (f.as_slice(), *l))
    }

    /// Reverts `change` (after a failed commit).
    pub(crate) fn revert(&mut self, change: Change) {
        match change {
            Change::Added(key) => {
                self.remove(&key);
            }
            Change::Removed(key, features, label) => {
                self.by_hash.insert((hash(&key.1), key.clone()));
                self.examples.insert(key, (features, label));
            }
        }
    }

    /// Number of examples.
    pub(crate) fn len(&self) -> usize {
        self.examples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_by_deadline_forgets_by_customer_and_reverts() {
        let mut w = RefitWindow::default();
        let a = w.add(10, "a", vec![1.0], true).pop().expect("added");
        w.add(20, "b", vec![2.0], false);
        w.add(30, "a", vec![3.0], false);
        let gone = w.expire(20);
        assert_eq!(
            gone,
            vec![Change::Removed((10, "a".into()), vec![1.0], true)]
        );
        assert_eq!(w.len(), 2);
        let forgotten = w.forget(|c| c == "a");
        assert_eq!(forgotten.len(), 1);
        assert_eq!(
            w.examples().collect::<Vec<_>>(),
            vec![(&[2.0f32][..], false)]
        );
        for c in forgotten.into_iter().chain(gone) {
            w.revert(c);
        }
        assert_eq!(w.get(&(10, "a".into())), Some((&[1.0f32][..], true)));
        w.revert(a);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn a_full_window_keeps_the_smallest_hashes() {
        let ids: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let mut by_hash = ids.clone();
        by_hash.sort_by_key(|c| hash(c));
        let mut w = RefitWindow::with_capacity([], 5);
        let mut log = Vec::new();
        for (i, c) in ids.iter().enumerate() {
            log.extend(w.add(i as i64, c, vec![i as f32], i % 2 == 0));
        }
        assert_eq!(w.len(), 5);
        let mut kept: Vec<&str> = w.examples.keys().map(|k| k.1.as_str()).collect();
        kept.sort_by_key(|c| hash(c));
        assert_eq!(
            kept,
            by_hash[..5].iter().map(String::as_str).collect::<Vec<_>>()
        );
        // Every change reverts, newest first, to the empty window.
        for c in log.into_iter().rev() {
            w.revert(c);
        }
        assert_eq!(w, RefitWindow::with_capacity([], 5));
    }
}
