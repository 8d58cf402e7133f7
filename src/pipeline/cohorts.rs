//! The examples the propensity model is refitted on: *cohorts*, snapshots of the customer
//! sample ([`super::sample`]) taken on a global grid and labelled one horizon later.
//!
//! Whenever the watermark enters a new block of `horizon / REFITS_PER_HORIZON`, the writer
//! first refits on the newest cohort whose horizon has ended: each row, the customer as of the
//! cohort's time `t`, is labelled positive if their count of target events has grown since (a
//! target event came in `(t, t + horizon]`), and an L2 logistic regression is fitted on the rows
//! by Newton's method ([`crate::model::logistic`]; to convergence the first time, then
//! [`WARM_NEWTON_STEPS`] steps from the previous refit's coefficients, which tie consecutive
//! fits together a little and cost a fraction), standardised by the current scaler;
//! the fit is the served model ([`crate::model::Propensity`]) until the next one. That cohort
//! and any older one are then dropped. Then it takes a new cohort as of the block's start: for
//! every sampled customer with events, the raw feature vector as of that time and their count
//! of target events so far. So the refit learns from exactly the population it serves (every
//! customer, whatever their recency, as of one moment), with the freshest complete labels there
//! are: the training set of the batch logistic regression `persona evaluate` compares with, on a
//! sample, up to one block older. `docs/model.md` has the measurements that chose it.
//!
//! The cohort is taken before the event that enters the block is applied, so every event
//! applied by then is at or before the previous watermark, i.e. before `t`; an event older than
//! `t` that arrives later (within the accepted disorder) counts towards the label instead.
//!
//! Persisted as keys of [`ROWS_PER_KEY`] rows each (`C` ‖ time ‖ chunk, see
//! [`crate::storage::keys`]): a cohort of 8,192 customers is about 2 MB, and one value that
//! large would be copied by sled whenever a neighbouring key changes. Written when the cohort
//! is taken, removed when it is used or superseded; an erasure rewrites the cohorts that held
//! the customer.

use crate::storage::CohortRow;
use std::collections::BTreeMap;

/// Refits (and cohorts) happen when the watermark enters a new block of
/// `horizon / REFITS_PER_HORIZON`.
pub(crate) const REFITS_PER_HORIZON: i64 = 4;
/// L2 penalty of the refit per example (the batch baseline's).
pub(crate) const REFIT_L2: f64 = 1e-3;
/// Newton steps of a refit that starts from the previous one (a block of event time earlier):
/// on the real logs two steps were as good as converging or better, at a third of the cost
/// (`docs/model.md`).
pub(crate) const WARM_NEWTON_STEPS: usize = 2;
/// Fewest examples of each class in a cohort for a refit.
pub(crate) const MIN_PER_CLASS: usize = 10;
/// Rows stored under one key (about 32 KB at 52 features).
pub(crate) const ROWS_PER_KEY: usize = 128;

/// The number of keys `rows` are stored under.
pub(crate) fn key_count(rows: &[CohortRow]) -> usize {
    rows.len().div_ceil(ROWS_PER_KEY)
}

/// A change of one cohort, to persist (and to revert if the commit fails): the cohort taken
/// at `at_ms` was added, rewritten or removed; `before` is what it was (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) at_ms: i64,
    pub(crate) before: Option<Vec<CohortRow>>,
}

/// The cohorts not used yet, by the time they were taken.
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

    /// The time of the newest cohort.
    pub(crate) fn newest(&self) -> Option<i64> {
        self.cohorts.keys().next_back().copied()
    }

    /// Adds the cohort taken at `at_ms`.
    pub(crate) fn take(&mut self, at_ms: i64, rows: Vec<CohortRow>) -> Change {
        self.set(at_ms, Some(rows))
    }

    /// The newest cohort taken at or before `due_ms`, if any.
    pub(crate) fn due(&self, due_ms: i64) -> Option<(i64, &[CohortRow])> {
        self.cohorts
            .range(..=due_ms)
            .next_back()
            .map(|(t, rows)| (*t, rows.as_slice()))
    }

    /// Drops the cohort taken at `at_ms` and every older one.
    pub(crate) fn drop_through(&mut self, at_ms: i64) -> Vec<Change> {
        let used: Vec<i64> = self.cohorts.range(..=at_ms).map(|(t, _)| *t).collect();
        used.into_iter().map(|t| self.set(t, None)).collect()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(customer: &str) -> CohortRow {
        CohortRow {
            customer_id: customer.into(),
            target_count: 1,
            features: vec![1.0],
        }
    }

    #[test]
    fn cohorts_fall_due_are_dropped_forget_customers_and_revert() {
        let mut c = Cohorts::default();
        let mut log = vec![c.take(10, vec![row("a"), row("b")])];
        log.push(c.take(20, vec![row("a")]));
        log.push(c.take(30, vec![row("a"), row("b")]));
        assert_eq!(c.newest(), Some(30));
        assert_eq!(c.due(9), None);
        assert_eq!(c.due(15).map(|(t, _)| t), Some(10));
        assert_eq!(c.due(25).map(|(t, _)| t), Some(20), "the newest due cohort");

        log.extend(c.drop_through(20));
        assert_eq!(c.due(25), None, "used and superseded cohorts are gone");
        assert_eq!(c.newest(), Some(30));

        log.extend(c.forget(|id| id == "a"));
        assert_eq!(c.get(30), Some(&[row("b")][..]));
        assert!(c.forget(|id| id == "nobody").is_empty());

        // Every change reverts, newest first, to nothing.
        for change in log.into_iter().rev() {
            c.revert(change);
        }
        assert_eq!(c, Cohorts::default());
    }

    #[test]
    fn rows_are_stored_in_keys_of_at_most_rows_per_key() {
        let rows = |n: usize| vec![row("a"); n];
        assert_eq!(key_count(&rows(0)), 0);
        assert_eq!(key_count(&rows(1)), 1);
        assert_eq!(key_count(&rows(ROWS_PER_KEY)), 1);
        assert_eq!(key_count(&rows(ROWS_PER_KEY + 1)), 2);
    }
}
