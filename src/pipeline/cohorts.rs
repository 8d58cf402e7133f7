//! The examples the propensity model is refitted on: *cohorts*, snapshots of the customer
//! sample ([`super::sample`]) taken on a global grid and labelled one horizon later.
//!
//! Whenever the watermark enters a new block of `horizon / REFITS_PER_HORIZON`, the writer
//! takes a cohort as of the block's start `t`: for every sampled customer with events, the
//! raw feature vector as of `t` and their count of target events so far. When the watermark
//! passes `t + horizon`, each row is labelled positive if the count has grown (a target event
//! came in `(t, t + horizon]`), and the writer fits an L2 logistic regression by Newton's method
//! ([`crate::model::logistic`]) on the labelled cohort, standardised by the current scaler;
//! the fit is half of the served model ([`crate::model::Propensity`]). So the refit learns from
//! exactly the population it serves (every customer, whatever their recency, as of one
//! moment), from the freshest complete labels there are: the training set of the batch
//! logistic regression `persona evaluate` compares with, up to a quarter horizon older.
//! `docs/model.md` has the measurements that chose it.
//!
//! The cohort is taken before the event that enters the block is applied, so every event
//! applied by then is at or before the watermark, i.e. before `t`; an event older than `t` that
//! arrives later (within the accepted disorder) counts towards the label instead.
//!
//! Persisted as one key per cohort (`C` ‖ time, value the rows in the versioned codec, see
//! [`crate::storage::keys`]): written when taken and when labelled, removed when a newer
//! cohort is labelled; an erasure rewrites the cohorts that held the customer. The newest
//! labelled cohort is kept, so that a drift reset can refit at once.

use crate::storage::CohortRow;
use std::collections::BTreeMap;

/// Refits (and cohorts) happen when the watermark enters a new block of
/// `horizon / REFITS_PER_HORIZON`.
pub(crate) const REFITS_PER_HORIZON: i64 = 8;
/// L2 penalty of the refit per example (the batch baseline's).
pub(crate) const REFIT_L2: f64 = 1e-3;
/// Fewest examples of each class in a cohort for a refit.
pub(crate) const MIN_PER_CLASS: usize = 10;

/// A change of one cohort, to persist (and to revert if the commit fails): the cohort taken
/// at `at_ms` was replaced, added or removed; `before` is what it was (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) at_ms: i64,
    pub(crate) before: Option<Vec<CohortRow>>,
}

/// The cohorts, by the time they were taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cohorts {
    cohorts: BTreeMap<i64, Vec<CohortRow>>,
}

impl Cohorts {
    /// The cohorts, starting from the stored ones.
    pub(crate) fn new(stored: impl IntoIterator<Item = (i64, Vec<CohortRow>)>) -> Cohorts {
        Cohorts {
            cohorts: stored.into_iter().collect(),
        }
    }

    fn set(&mut self, at_ms: i64, rows: Option<Vec<CohortRow>>) -> Change {
        let before = match rows {
            Some(rows) => self.cohorts.insert(at_ms, rows),
            None => self.cohorts.remove(&at_ms),
        };
        Change { at_ms, before }
    }

    /// The time of the newest cohort taken.
    pub(crate) fn newest(&self) -> Option<i64> {
        self.cohorts.keys().next_back().copied()
    }

    /// Adds the cohort taken at `at_ms` (unlabelled rows).
    pub(crate) fn take(&mut self, at_ms: i64, rows: Vec<CohortRow>) -> Change {
        self.set(at_ms, Some(rows))
    }

    /// The newest unlabelled cohort taken at or before `due_ms`, if any.
    pub(crate) fn due(&self, due_ms: i64) -> Option<(i64, &[CohortRow])> {
        self.cohorts
            .range(..=due_ms)
            .rev()
            .find(|(_, rows)| rows.iter().any(|r| r.label.is_none()))
            .map(|(t, rows)| (*t, rows.as_slice()))
    }

    /// Replaces the cohort taken at `at_ms` by its labelled rows and drops every older cohort
    /// (the labelled one it replaces as the newest labelled cohort, and unlabelled ones it
    /// supersedes).
    pub(crate) fn label(&mut self, at_ms: i64, rows: Vec<CohortRow>) -> Vec<Change> {
        let older: Vec<i64> = self.cohorts.range(..at_ms).map(|(t, _)| *t).collect();
        let mut changes: Vec<Change> = older.into_iter().map(|t| self.set(t, None)).collect();
        changes.push(self.set(at_ms, Some(rows)));
        changes
    }

    /// The newest labelled cohort, if any.
    pub(crate) fn labelled(&self) -> Option<&[CohortRow]> {
        self.cohorts
            .values()
            .rev()
            .find(|rows| !rows.is_empty() && rows.iter().all(|r| r.label.is_some()))
            .map(Vec::as_slice)
    }

    /// Removes the rows of the customers for which `erased` is true.
    pub(crate) fn forget(&mut self, erased: impl Fn(&str) -> bool) -> Vec<Change> {
        let touched: Vec<i64> = self
            .cohorts
            .iter()
            .filter(|(_, rows)| rows.iter().any(|r| erased(&r.customer_id)))
            .map(|(t, _)| *t)
            .collect();
        let mut changes = Vec::new();
        for t in touched {
            let mut rows = self.cohorts.get(&t).cloned().unwrap_or_default();
            rows.retain(|r| !erased(&r.customer_id));
            changes.push(self.set(t, Some(rows)));
        }
        changes
    }

    /// The rows of the cohort taken at `at_ms`, if it exists.
    pub(crate) fn get(&self, at_ms: i64) -> Option<&[CohortRow]> {
        self.cohorts.get(&at_ms).map(Vec::as_slice)
    }

    /// Reverts `change` (after a failed commit).
    pub(crate) fn revert(&mut self, change: Change) {
        match change.before {
            Some(rows) => self.cohorts.insert(change.at_ms, rows),
            None => self.cohorts.remove(&change.at_ms),
        };
    }

    /// Number of cohorts held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.cohorts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(customer: &str, label: Option<bool>) -> CohortRow {
        CohortRow {
            customer_id: customer.into(),
            target_count: 1,
            features: vec![1.0],
            label,
        }
    }

    #[test]
    fn cohorts_fall_due_get_labelled_forget_customers_and_revert() {
        let mut c = Cohorts::default();
        let mut log = vec![c.take(10, vec![row("a", None), row("b", None)])];
        log.push(c.take(20, vec![row("a", None)]));
        assert_eq!(c.newest(), Some(20));
        assert_eq!(c.due(9), None);
        assert_eq!(c.due(15).map(|(t, _)| t), Some(10));
        assert_eq!(c.due(25).map(|(t, _)| t), Some(20), "the newest due cohort");
        assert_eq!(c.labelled(), None);

        log.extend(c.label(20, vec![row("a", Some(true))]));
        assert_eq!(c.len(), 1, "the older cohort is superseded");
        assert_eq!(c.labelled(), Some(&[row("a", Some(true))][..]));
        assert_eq!(c.due(25), None, "a labelled cohort is not due again");

        log.push(c.take(30, vec![row("a", None), row("b", None)]));
        log.extend(c.forget(|id| id == "a"));
        assert_eq!(c.get(30), Some(&[row("b", None)][..]));
        assert_eq!(
            c.get(20),
            Some(&[][..]),
            "an emptied cohort stays until superseded"
        );
        assert_eq!(c.labelled(), None, "an empty cohort is not a labelled one");

        // Every change reverts, newest first, to nothing.
        for change in log.into_iter().rev() {
            c.revert(change);
        }
        assert_eq!(c, Cohorts::default());
    }
}
