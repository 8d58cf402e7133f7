//! What the propensity model is refitted on: the *refit rows* of the sampled customers
//! ([`super::sample`]), from which the customers as of any block boundary of the last horizon
//! can be read, and labelled.
//!
//! The refit runs whenever the watermark enters a new block of `horizon / BLOCKS_PER_HORIZON`
//! (a day with the default 30-day horizon). At the boundary `g` it fits an L2 logistic
//! regression by Newton's method ([`crate::model::logistic`]; to convergence the first time,
//! then [`WARM_NEWTON_STEPS`] steps from the previous refit's coefficients) on every sampled
//! customer with events as of `c = g − horizon`: their raw feature vector as of `c`, labelled
//! positive if their count of target events has grown since (a target event came in
//! `(c, g]`), standardised by the current scaler. The fit is the served model
//! ([`crate::model::Propensity`]) until the next boundary. So the refit learns from exactly
//! the population it serves (every customer, whatever their recency, as of one moment) with
//! the freshest complete labels there are: the training set of the batch logistic regression
//! `persona evaluate` compares with, on a sample, at most a block older.
//!
//! **Rows.** A customer's state as of `c` is read from their *row* in force at `c`: the
//! latest row taken at or before `c`. A row holds what the fit reads (target and event
//! counts, the answer to consent to profiling, the raw features) and the time-dependent part
//! of the state ([`Temporal`]), from which the time-dependent features are recomputed as of
//! `c` exactly ([`FeatureLayout::write_time_dependent`]): a row read at `c` is the vector
//! `layout.vector(state, c)` of the state it was taken of, bit for bit. A row is the customer
//! at the end of a block, and carries that boundary as its time ([`Cohorts::put`]):
//! - when a batch that changed the customer's record is written, their state then is their
//!   row for the end of the block the watermark is in, replacing the one an earlier batch in
//!   the same block wrote: the last batch of the block leaves the state at its end, however
//!   the events were batched;
//! - at a boundary, before the event that enters the block is applied, the state of each
//!   sampled customer the unwritten batch has changed is their row for the end of the block
//!   just left (the watermark may jump several): the batch may straddle the boundary.
//!
//! A row is taken only of a customer who consents to profiling, and only when their state
//! differs from their latest row's, so the rows are the same however the events were batched
//! (`tests/expiry_queue.rs` checks it). A member evicted from the sample loses their rows as
//! the eviction happens. So a row (about 240 bytes) is written only for a customer who
//! changed, and rows older than the one in force at the next refit's `c` are dropped
//! ([`Cohorts::prune`]). The previous release took the whole sample (8,192 customers,
//! 2 MB, read from their records) every quarter horizon; that cost is what kept refits
//! rare, and the quarter horizon of staleness cost calibration (`docs/model.md`).
//!
//! **Persisted** as one `R` key per row (`R` ‖ time ‖ customer id, see
//! [`crate::storage::keys`]), written once, when its block closes: with the batch in which
//! the watermark passes the block's end. The rows of the block still open are in memory only
//! (a customer active in several batches of a day would otherwise rewrite their row each
//! time: on a generated workload, 3.5 writes per row); after a restart each is rebuilt from
//! the customer's record, which holds the same state (`src/db/open.rs`, `recover_rows`).
//! Rows are removed in the batch of the change that drops them; an erasure, a withdrawal of
//! consent to profiling and an eviction from the sample remove the customer's rows.

use crate::features::consent::{self, Consent};
use crate::features::vector::{FeatureLayout, Temporal};
use crate::features::ProfileState;
use crate::storage::{SampledRow, SampledRowAt};
use std::collections::{BTreeMap, VecDeque};

/// Refits happen when the watermark enters a new block of `horizon / BLOCKS_PER_HORIZON`.
pub(crate) const BLOCKS_PER_HORIZON: i64 = crate::storage::REFIT_BLOCKS_PER_HORIZON;
/// L2 penalty of the refit per example (the batch baseline's).
pub(crate) const REFIT_L2: f64 = 1e-3;
/// Newton steps of a refit that starts from the previous one (a block of event time earlier):
/// on the real logs two steps were as good as converging or better, at a third of the cost
/// (`docs/model.md`).
pub(crate) const WARM_NEWTON_STEPS: usize = 2;
/// Rows the Hessian of a warm refit's Newton steps is summed over, about (every k-th row of
/// the examples; see [`crate::model::logistic::fit_steps`]).
pub(crate) const HESSIAN_ROWS: usize = 2048;
/// Fewest examples of each class in a refit.
pub(crate) const MIN_PER_CLASS: usize = 10;

/// The length of a block for `horizon_ms`.
pub(crate) fn block_ms(horizon_ms: i64) -> i64 {
    crate::storage::refit_block_ms(horizon_ms)
}

/// The row of `state` as of `at_ms`, for a target kind `target` (index).
pub(crate) fn row_of(
    layout: &FeatureLayout,
    state: &ProfileState,
    target: usize,
    at_ms: i64,
) -> SampledRow {
    SampledRow {
        target_count: state.kind_counts.get(target).copied().unwrap_or(0),
        event_count: state.event_count,
        profiling: state
            .attributes
            .get(consent::PROFILING)
            .and_then(consent::parse),
        temporal: Temporal::of(state),
        features: layout
            .vector(state, at_ms)
            .iter()
            .map(|v| *v as f32)
            .collect(),
    }
}

/// [`row_of`] for a customer who consents to profiling (their answer in `state`, else the
/// store's `defaults`); `None` for one who does not: no row is taken of them. What the writer
/// takes for a changed sampled customer, and what their open block's row is rebuilt from at
/// open and in an access export.
pub(crate) fn consenting_row(
    layout: &FeatureLayout,
    state: &ProfileState,
    target: usize,
    defaults: Consent,
    at_ms: i64,
) -> Option<SampledRow> {
    Consent::of(state, defaults)
        .profiling
        .then(|| row_of(layout, state, target, at_ms))
}

/// The raw features of `row` (taken at `row_at`) as of `at_ms` ≥ `row_at`: its stored
/// features with the time-dependent dimensions recomputed as of `at_ms`.
#[cfg(test)]
pub(crate) fn features_at(layout: &FeatureLayout, row: &SampledRow, at_ms: i64) -> Vec<f32> {
    let mut x = vec![0.0; row.features.len()];
    features_into(layout, row, at_ms, &mut x);
    x.iter().map(|v| *v as f32).collect()
}

/// [`features_at`] into `out` (of the row's length), as the `f64` of each `f32` value.
fn features_into(layout: &FeatureLayout, row: &SampledRow, at_ms: i64, out: &mut [f64]) {
    for (o, v) in out.iter_mut().zip(&row.features) {
        *o = f64::from(*v);
    }
    if out.len() == layout.dim() {
        layout.write_time_dependent(&row.temporal, at_ms, out);
        // Stored as f32, as the rows' other dimensions are.
        for o in &mut out[..] {
            *o = f64::from(*o as f32);
        }
    }
}

/// Whether two rows hold the same state: every field but the time-dependent features.
pub(crate) fn same_state(layout: &FeatureLayout, a: &SampledRow, b: &SampledRow) -> bool {
    a.target_count == b.target_count
        && a.event_count == b.event_count
        && a.profiling == b.profiling
        && a.temporal == b.temporal
        && a.features.len() == b.features.len()
        && a.features
            .iter()
            .zip(&b.features)
            .enumerate()
            .all(|(i, (x, y))| layout.time_dependence(i).is_some() || x.to_bits() == y.to_bits())
}

/// Whether a row's customer consents to profiling, with the store's `defaults`.
pub(crate) fn consents(row: &SampledRow, defaults: Consent) -> bool {
    row.profiling.unwrap_or(defaults.profiling)
}

/// The row of a customer's time-ordered `list` at `at_ms` exactly, if any.
fn exactly_at(list: &VecDeque<(i64, SampledRow)>, at_ms: i64) -> Option<&SampledRow> {
    let i = list.partition_point(|(t, _)| *t < at_ms);
    list.get(i).filter(|(t, _)| *t == at_ms).map(|(_, row)| row)
}

/// A change of one row, to persist (and to revert if the commit fails): `customer`'s row at
/// `at_ms` was added, replaced or removed; `before` is what it was (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) customer: String,
    pub(crate) at_ms: i64,
    pub(crate) before: Option<SampledRow>,
}

/// The refit rows of the sampled customers, per customer, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cohorts {
    rows: BTreeMap<String, VecDeque<(i64, SampledRow)>>,
}

impl Cohorts {
    /// The rows, starting from the stored ones.
    pub(crate) fn new(stored: impl IntoIterator<Item = SampledRowAt>) -> Cohorts {
        let mut c = Cohorts::default();
        for (at, customer, row) in stored {
            c.put(&customer, at, row);
        }
        c
    }

    /// Every customer's row at `at_ms` exactly, in customer-id order.
    pub(crate) fn rows_at(&self, at_ms: i64) -> impl Iterator<Item = (&str, &SampledRow)> {
        self.rows
            .iter()
            .filter_map(move |(customer, list)| Some((customer.as_str(), exactly_at(list, at_ms)?)))
    }

    /// The row of `customer` at `at_ms` exactly, if any.
    pub(crate) fn get(&self, customer: &str, at_ms: i64) -> Option<&SampledRow> {
        exactly_at(self.rows.get(customer)?, at_ms)
    }

    /// [`Cohorts::put`] unless `row` holds the same state as the customer's latest row (the
    /// time-dependent features aside, which only say when each was taken).
    pub(crate) fn put_changed(
        &mut self,
        layout: &FeatureLayout,
        customer: &str,
        at_ms: i64,
        row: SampledRow,
    ) -> Option<Change> {
        let same = self
            .rows
            .get(customer)
            .and_then(VecDeque::back)
            .is_some_and(|(_, last)| same_state(layout, last, &row));
        (!same).then(|| self.put(customer, at_ms, row))
    }

    /// Sets `customer`'s row for the block ending at `at_ms` (see the module docs), replacing
    /// the one they have for it.
    pub(crate) fn put(&mut self, customer: &str, at_ms: i64, row: SampledRow) -> Change {
        let list = match self.rows.get_mut(customer) {
            Some(list) => list,
            None => self.rows.entry(customer.to_string()).or_default(),
        };
        // Their latest row's time or later, always but for damaged stored rows: kept in order
        // all the same.
        let i = list.partition_point(|(t, _)| *t < at_ms);
        let before = match list.get_mut(i) {
            Some((t, old)) if *t == at_ms => Some(std::mem::replace(old, row)),
            _ => {
                list.insert(i, (at_ms, row));
                None
            }
        };
        Change {
            customer: customer.to_string(),
            at_ms,
            before,
        }
    }

    /// Every customer's example as of `c` for a refit now, standardised by `scaler`, appended
    /// to `points` (one row of `layout.dim()` after another) and `labels`: the raw features of
    /// their row in force at `c` (their latest at or before it) as of `c`, labelled by whether
    /// their count of target events grew since (their latest row). Customers without events
    /// by `c`, or without consent to profiling now (their latest row, the store's `defaults`),
    /// are left out. In customer-id order.
    pub(crate) fn examples(
        &self,
        layout: &FeatureLayout,
        scaler: &crate::model::Scaler,
        c: i64,
        defaults: Consent,
        (points, labels): (&mut Vec<f64>, &mut Vec<bool>),
    ) {
        let dim = layout.dim();
        let mut raw = vec![0.0; dim];
        for list in self.rows.values() {
            let i = list.partition_point(|(t, _)| *t <= c);
            let (Some((_, base)), Some((_, latest))) =
                (i.checked_sub(1).map(|i| &list[i]), list.back())
            else {
                continue;
            };
            if base.event_count == 0 || !consents(latest, defaults) || base.features.len() != dim {
                continue;
            }
            features_into(layout, base, c, &mut raw);
            let start = points.len();
            points.resize(start + dim, 0.0);
            scaler.transform(&raw, &mut points[start..]);
            labels.push(latest.target_count > base.target_count);
        }
    }

    /// Drops every row older than the one in force at `c` (no refit from `c` on reads them).
    pub(crate) fn prune(&mut self, c: i64) -> Vec<Change> {
        let mut changes = Vec::new();
        for (customer, list) in &mut self.rows {
            while list.len() >= 2 && list[1].0 <= c {
                if let Some((at_ms, row)) = list.pop_front() {
                    changes.push(Change {
                        customer: customer.clone(),
                        at_ms,
                        before: Some(row),
                    });
                }
            }
        }
        changes
    }

    /// Removes every row of the customers for which `gone` is true.
    pub(crate) fn forget(&mut self, gone: impl Fn(&str) -> bool) -> Vec<Change> {
        let ids: Vec<String> = self.rows.keys().filter(|c| gone(c)).cloned().collect();
        ids.iter().flat_map(|id| self.forget_one(id)).collect()
    }

    /// Removes every row of `customer`.
    pub(crate) fn forget_one(&mut self, customer: &str) -> Vec<Change> {
        let rows = self.rows.remove(customer).unwrap_or_default();
        rows.into_iter()
            .map(|(at_ms, row)| Change {
                customer: customer.to_string(),
                at_ms,
                before: Some(row),
            })
            .collect()
    }

    /// Reverts `change` (after a failed commit).
    pub(crate) fn revert(&mut self, change: Change) {
        let list = self.rows.entry(change.customer.clone()).or_default();
        let i = list.partition_point(|(t, _)| *t < change.at_ms);
        let present = list.get(i).is_some_and(|(t, _)| *t == change.at_ms);
        match (change.before, present) {
            (Some(row), true) => list[i].1 = row,
            (Some(row), false) => list.insert(i, (change.at_ms, row)),
            (None, true) => {
                list.remove(i);
            }
            (None, false) => {}
        }
        if list.is_empty() {
            self.rows.remove(&change.customer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::vector::test_layout as layout;
    use crate::features::{CompactEvent, ProfileOp};
    use crate::EventKind;

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_767_225_600_000;

    /// The labels of a refit as of `c`.
    fn labels(c: &Cohorts, at: i64, consent: Consent) -> Vec<bool> {
        let l = layout();
        let scaler = crate::model::Scaler::new(l.dim());
        let (mut points, mut labels) = (Vec::new(), Vec::new());
        c.examples(&l, &scaler, at, consent, (&mut points, &mut labels));
        assert_eq!(points.len(), labels.len() * l.dim());
        labels
    }

    fn row(count: u64) -> SampledRow {
        SampledRow {
            target_count: count,
            event_count: 1,
            profiling: None,
            temporal: Temporal::of(&ProfileState::new(layout().params())),
            features: vec![0.0; layout().dim()],
        }
    }

    #[test]
    fn a_row_read_later_is_the_state_s_vector_then_bit_for_bit() {
        let l = layout();
        let mut s = ProfileState::new(l.params());
        let target = EventKind::Purchase.index();
        for (i, kind) in [EventKind::View, EventKind::Purchase, EventKind::Refund]
            .into_iter()
            .enumerate()
        {
            let e = CompactEvent {
                timestamp_ms: T0 + i as i64 * DAY,
                kind,
                value: 12.5,
                bucket: Some(3),
            };
            s.apply(&ProfileOp::Event(e), l.params());
        }
        let r = row_of(&l, &s, target, T0 + 3 * DAY);
        for later in [3, 4, 40, 400] {
            let at = T0 + later * DAY;
            let direct: Vec<f32> = l.vector(&s, at).iter().map(|v| *v as f32).collect();
            assert_eq!(features_at(&l, &r, at), direct, "{later} days");
        }
        assert_eq!(r.target_count, 1);
        assert_eq!(r.event_count, 3);
    }

    #[test]
    fn rows_replace_within_a_block_read_as_of_a_time_prune_forget_and_revert() {
        let mut c = Cohorts::default();
        let mut log = vec![c.put("a", 10, row(0))];
        log.push(c.put("a", 10, row(1)));
        assert_eq!(c.get("a", 10), Some(&row(1)), "replaced within the block");
        log.push(c.put("a", 20, row(2)));
        log.push(c.put("a", 25, row(3)));
        log.push(c.put("b", 30, row(0)));
        let consent = Consent::default();
        // As of 20: a's row at 20 (count 2) against their latest (3); b did not exist yet.
        assert_eq!(labels(&c, 20, consent), [true]);
        assert_eq!(
            labels(&c, 25, consent),
            [false],
            "a's latest row is in force at 25"
        );
        assert!(labels(&c, 9, consent).is_empty());
        // Rows older than the one in force at 22 go.
        log.extend(c.prune(22));
        assert_eq!(c.get("a", 10), None);
        assert!(c.get("a", 20).is_some());
        log.extend(c.forget(|id| id == "b"));
        assert_eq!(c.get("b", 30), None);
        // Every change reverts, newest first, to nothing.
        for change in log.into_iter().rev() {
            c.revert(change);
        }
        assert_eq!(c, Cohorts::default());
    }

    #[test]
    fn consent_and_events_decide_who_is_fitted() {
        let mut c = Cohorts::default();
        let mut no = row(0);
        no.profiling = Some(false);
        c.put("refused", 0, no);
        let mut attrs_only = row(0);
        attrs_only.event_count = 0;
        c.put("attrs", 0, attrs_only);
        c.put("ok", 0, row(0));
        assert_eq!(labels(&c, 0, Consent::default()).len(), 1);
        let off = Consent {
            profiling: false,
            marketing: true,
        };
        assert!(labels(&c, 0, off).is_empty(), "the default off");
    }

    #[test]
    fn stored_rows_load_in_time_order() {
        let c = Cohorts::new([(20, "a".to_string(), row(2)), (10, "a".to_string(), row(1))]);
        let mut d = Cohorts::default();
        d.put("a", 10, row(1));
        d.put("a", 20, row(2));
        assert_eq!(c, d);
    }
}
