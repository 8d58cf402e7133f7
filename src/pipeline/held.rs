//! Positive training examples held until their deadline.
//!
//! A propensity example (the profile as of a checkpoint) is positive when a target event comes
//! within one horizon of the checkpoint, and negative when the horizon passes without one. The
//! positive is known at the event, the negative only at the deadline. Learning each example when
//! its label is known would train the model, at every moment, on the positives of the
//! checkpoints still inside their horizon but not on their negatives: the examples learned up to
//! any time over-represent the customers who buy early, and the model drifts above the base rate
//! towards their features (measured in `docs/model.md`: log loss 0.57 against 0.51 when every
//! example is learned at its deadline). So a positive is held, and learned when the watermark
//! passes its deadline, in deadline order with the negatives: the examples learned by any time
//! are then exactly the complete ones, the set a batch model would be fitted on.
//!
//! Persisted as one key per held example (`H` ‖ deadline ‖ id, value the raw features, see
//! [`crate::storage::keys`]), written in the same batch as the event that labelled it and
//! removed in the batch that learns it; the writer keeps the set in memory. A customer has at
//! most one: the next example's checkpoint is the held one's deadline, so its target event, if
//! any, comes after the watermark has passed that deadline.

use std::collections::BTreeMap;

/// A held example's deadline (unix ms, its checkpoint plus one horizon) and customer.
pub(crate) type Key = (i64, String);

/// The held positives, by deadline.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Held {
    examples: BTreeMap<Key, Vec<f32>>,
}

/// A change of the held set, to persist (and to revert if the commit fails).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// The example was labelled positive and is held.
    Added(Key),
    /// The example was learned (or its customer erased); its features, to restore on revert.
    Removed(Key, Vec<f32>),
}

impl Held {
    /// The held set, starting from the stored examples.
    pub(crate) fn new(stored: impl IntoIterator<Item = (Key, Vec<f32>)>) -> Held {
        Held {
            examples: stored.into_iter().collect(),
        }
    }

    /// Holds the positive example `features` of `customer` until `deadline`.
    pub(crate) fn add(&mut self, deadline: i64, customer: &str, features: Vec<f32>) -> Change {
        let key = (deadline, customer.to_string());
        self.examples.insert(key.clone(), features);
        Change::Added(key)
    }

    /// The deadline of the earliest held example, if it is before `before`.
    pub(crate) fn first_due(&self, before: i64) -> Option<i64> {
        self.examples
            .first_key_value()
            .map(|((d, _), _)| *d)
            .filter(|d| *d < before)
    }

    /// Takes the earliest held example out: its key and features (the caller records
    /// `Change::Removed` with them once it has learned the example).
    pub(crate) fn pop_first(&mut self) -> Option<(Key, Vec<f32>)> {
        self.examples.pop_first()
    }

    /// Drops every example of the customers for which `erased` is true.
    pub(crate) fn forget(&mut self, erased: impl Fn(&str) -> bool) -> Vec<Change> {
        let gone: Vec<Key> = self
            .examples
            .keys()
            .filter(|(_, c)| erased(c))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|key| {
                let features = self.examples.remove(&key)?;
                Some(Change::Removed(key, features))
            })
            .collect()
    }

    /// The features of a held example.
    pub(crate) fn get(&self, key: &Key) -> Option<&[f32]> {
        self.examples.get(key).map(Vec::as_slice)
    }

    /// Reverts `change` (after a failed commit).
    pub(crate) fn revert(&mut self, change: Change) {
        match change {
            Change::Added(key) => {
                self.examples.remove(&key);
            }
            Change::Removed(key, features) => {
                self.examples.insert(key, features);
            }
        }
    }

    /// Number of held examples.
    pub(crate) fn len(&self) -> usize {
        self.examples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_reverts() {
        let mut held = Held::default();
        let a = held.add(30, "b", vec![1.0]);
        let b = held.add(10, "a", vec![2.0]);
        assert_eq!(held.first_due(10), None, "due strictly before");
        assert_eq!(held.first_due(11), Some(10));
        let (key, f) = held.pop_first().expect("two held");
        assert_eq!((key.0, f.as_slice()), (10, &[2.0][..]));
        held.revert(Change::Removed(key, f));
        assert_eq!(held.get(&(10, "a".into())), Some(&[2.0][..]));
        held.revert(b);
        held.revert(a);
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn forgets_erased_customers_only() {
        let mut held = Held::new([
            ((5, "x".to_string()), vec![1.0]),
            ((6, "y".into()), vec![2.0]),
        ]);
        let changes = held.forget(|c| c == "x");
        assert_eq!(changes, vec![Change::Removed((5, "x".into()), vec![1.0])]);
        assert_eq!(held.len(), 1);
        assert_eq!(held.first_due(i64::MAX), Some(6));
    }
}
