//! Training examples of the propensity model: checkpoints, labels and learning.
//!
//! A customer's checkpoints are one horizon apart on a grid offset by a hash of the id; the
//! example at checkpoint `c` is the profile as of `c`, positive if a target event comes in
//! `(c, c + horizon]`, negative otherwise. Every example is learned when the watermark passes
//! its deadline `c + horizon`, in deadline order: a positive is held until then
//! ([`super::held`]). These examples train the online model. This module moves the watermark
//! (learning what fell due, and at each new block refitting the served model on the sample
//! as of a horizon earlier, [`super::cohorts`]) and learns one example (prequential metrics,
//! drift monitor, drift reaction).

use super::apply::*;
use super::batch::*;
use super::cohorts;
use super::held;
use crate::config::DriftReaction;
use crate::features::consent::Consent;
use crate::features::vector::FeatureLayout;
use crate::features::ProfileState;
use crate::model::drift::{Detection, MIN_EXAMPLES};
use crate::model::logistic;
use crate::storage::record::{PendingExample, ProfileRecord};
use crate::storage::Store;
use std::collections::HashMap;

/// The customer's open training example at `now`, as (snapshot time, k): k = 0 is the stored
/// post-event snapshot, k >= 1 the k-th silent-period example, taken `k` horizons later and
/// implicit until the state changes. None once `silent_horizons` silent examples have passed.
pub(super) fn open_example(
    record: &ProfileRecord,
    now: i64,
    horizon_ms: i64,
    silent_horizons: usize,
) -> Option<(i64, usize)> {
    let p = record.pending.as_ref()?;
    let age = now - p.taken_at_ms;
    if age <= horizon_ms {
        return Some((p.taken_at_ms, 0));
    }
    // Smallest k whose horizon [taken + k h, taken + (k + 1) h] still contains `now`.
    let k = ((age - 1) / horizon_ms) as usize;
    (k <= silent_horizons).then(|| (p.taken_at_ms + k as i64 * horizon_ms, k))
}

/// Whether the features of example k of the chain `pending` starts are implicit (derived from
/// the unchanged state, not stored): every silent-period example, and the first until stored.
pub(super) fn is_implicit(pending: &Option<PendingExample>, k: usize) -> bool {
    k > 0 || !pending.as_ref().is_some_and(PendingExample::is_stored)
}

/// The raw feature vector of `state` as of `at`, in the precision examples are stored in.
fn raw_features(layout: &FeatureLayout, state: &ProfileState, at: i64) -> Vec<f32> {
    layout.vector(state, at).iter().map(|v| *v as f32).collect()
}

/// Stored raw features standardised by `scaler`, as the propensity model reads them.
fn standardised(scaler: &crate::model::Scaler, features: &[f32]) -> Vec<f64> {
    let x: Vec<f64> = features.iter().map(|v| f64::from(*v)).collect();
    scaler.transform_vec(&x)
}

/// The raw features of example (taken_at, k): stored for k = 0 once materialised, derived
/// from the (unchanged since) state as of `taken_at` otherwise.
pub(super) fn example_features(
    pending: &Option<PendingExample>,
    state: &ProfileState,
    layout: &FeatureLayout,
    taken_at: i64,
    k: usize,
) -> Vec<f32> {
    match (pending, k) {
        (Some(p), 0) if p.is_stored() => p.features.clone(),
        _ => raw_features(layout, state, taken_at),
    }
}

/// The customer's first checkpoint after `now`: checkpoints are one horizon apart, on a grid
/// offset per customer (a hash of the id), so that examples are taken at times independent of
/// the customer's own events and their deadlines spread over the horizon instead of all
/// falling due in one batch.
pub(super) fn next_checkpoint(customer: &str, now: i64, horizon_ms: i64) -> i64 {
    let h = horizon_ms.max(1);
    let offset = (xxhash_rust::xxh3::xxh3_64(customer.as_bytes()) % h.unsigned_abs()) as i64;
    let periods = now.saturating_sub(offset).div_euclid(h);
    offset.saturating_add(periods.saturating_add(1).saturating_mul(h))
}

impl Engine {
    /// Calls `f` with a customer's pending example and state as the writer sees them, without
    /// loading the record into the batch: the batch's copy, else the newest unapplied batch's,
    /// else the stored record decoded up to its state (not its history and de-duplication
    /// window) and not kept. `None` without a record, for a customer an unapplied batch
    /// erased, or for a record that does not decode.
    pub(super) fn with_state<R>(
        &self,
        store: &Store,
        records: &HashMap<String, Working>,
        customer: &str,
        f: impl FnOnce(&Option<PendingExample>, &ProfileState) -> R,
    ) -> Option<R> {
        match records.get(customer) {
            Some(w) => Some(f(&w.record.pending, &w.record.state)),
            None => match self.unapplied.record(customer) {
                Some(Pending::Record(r)) => Some(f(&r.pending, &r.state)),
                Some(Pending::Erased) => None,
                None => self
                    .stored_state(store, customer)
                    .map(|r| f(&r.pending, &r.state)),
            },
        }
    }

    /// A customer's segment and propensity as the writer sees them (see [`Engine::with_state`]).
    fn outcome_of(
        &self,
        store: &Store,
        records: &HashMap<String, Working>,
        customer: &str,
    ) -> Option<(Option<u16>, f64)> {
        // A customer is acted on with consent to both: to marketing (the action) and to
        // profiling (what the trigger reads is an analysis of their profile).
        let defaults = self.config.consent_defaults;
        let of = |state: &ProfileState, segment: Option<u16>, p: f32| {
            let c = Consent::of(state, defaults);
            (c.marketing && c.profiling).then(|| (segment, f64::from(p)))
        };
        match records.get(customer) {
            Some(w) => of(&w.record.state, w.record.segment, w.record.propensity),
            None => match self.unapplied.record(customer) {
                Some(Pending::Record(r)) => of(&r.state, r.segment, r.propensity),
                Some(Pending::Erased) => None,
                None => {
                    let current = match self.recent.get(customer) {
                        Some(bytes) => store.decode_profile_current(customer, bytes).ok(),
                        None => store.profile_current(customer).ok().flatten(),
                    };
                    current.and_then(|r| of(&r.state, r.segment, r.propensity))
                }
            },
        }
    }

    /// Moves the watermark to `ts` if later. Every example whose horizon ended before it is
    /// labelled negative; for a customer still silent, the profile as of that moment is
    /// observed by the scaler, and the next silent-period example is queued (up to
    /// `silent_horizons` of them).
    pub(super) fn advance_watermark(&mut self, store: &Store, b: &mut BatchState, ts: i64) {
        let before = self.model.watermark_ms;
        if ts <= before {
            return;
        }
        self.model.watermark_ms = ts;
        self.model.labelled_through_ms = ts;
        let detected = self.model.drift.detections.last().cloned();
        let h = self.horizon_ms;
        loop {
            let expiring = self.expiry.first().map(|e| e.0).filter(|d| *d < ts);
            // Held positives and expiring negatives are learned in deadline order (a positive
            // first on a tie).
            if let Some(d) = self.held.first_due(ts) {
                if expiring.is_none_or(|e| d <= e) {
                    if let Some((key, features)) = self.held.pop_first() {
                        // Consent to profiling withdrawn by a changed store default (a
                        // withdrawal drops the example itself): not learned. Only a store whose
                        // default is off can hold such an example, so only it pays the read.
                        let defaults = self.config.consent_defaults;
                        let consents = defaults.profiling
                            || self
                                .with_state(store, &b.records, &key.1, |_, s| {
                                    Consent::of(s, defaults).profiling
                                })
                                .unwrap_or(false);
                        if consents {
                            self.learn(store, &features, true, key.0);
                        }
                        b.undo
                            .push(Undo::Held(held::Change::Removed(key, features)));
                    }
                    continue;
                }
            }
            if expiring.is_none() {
                break;
            }
            let Some(key) = self.expiry.pop_first() else {
                break;
            };
            b.undo.push(Undo::Removed(key.clone()));
            let (deadline, customer) = key;
            // A record that cannot be read is reported when its customer is next touched;
            // here it only means one fewer training example.
            let (silent, layout) = (self.config.silent_horizons, &self.layout);
            let defaults = self.config.consent_defaults;
            let example = self.with_state(store, &b.records, &customer, |pending, state| {
                if !Consent::of(state, defaults).profiling {
                    return None; // a changed store default: not learned, not queued again
                }
                let age = deadline - pending.as_ref()?.taken_at_ms;
                if age <= 0 || age % h != 0 {
                    return None; // stale entry: the example was replaced
                }
                let k = (age / h - 1) as usize;
                if k > silent {
                    return None;
                }
                let features = example_features(pending, state, layout, deadline - h, k);
                Some((features, layout.vector(state, deadline), k))
            });
            let Some((features, x, k)) = example.flatten() else {
                continue;
            };
            self.learn(store, &features, false, deadline);
            self.model.scaler.update(&x);
            if k < self.config.silent_horizons {
                let next = (deadline + h, customer);
                if self.expiry.insert(next.clone()) {
                    b.undo.push(Undo::Inserted(next));
                }
            }
        }
        let block = cohorts::block_ms(h);
        if before.div_euclid(block) != ts.div_euclid(block) {
            // The customers the batch changed so far, as of the end of the block left (the
            // watermark may jump several), then the refit at the boundary it lands on.
            let closed = crate::storage::refit_block_end(before, h);
            self.take_rows(b, closed);
            b.rows_closed.push(closed);
            self.refit(b, ts.div_euclid(block).saturating_mul(block));
        }
        self.fire_on_watermark(store, b, detected.as_ref(), ts);
    }

    /// The triggers the watermark's move to `ts` fires: `DRIFT` for each detection made since
    /// `detected` (the newest before), `INACTIVE_DAYS` for each customer whose silence fell due.
    fn fire_on_watermark(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        detected: Option<&Detection>,
        ts: i64,
    ) {
        if self.triggers.all().next().is_none() {
            return;
        }
        self.triggers.prune(ts);
        let detections = &self.model.drift.detections;
        let new_from = detected
            .and_then(|d| detections.iter().rposition(|x| x == d))
            .map_or(0, |i| i + 1);
        for d in &detections[new_from..] {
            let day = crate::event::utc_day(d.deadline_day_ms);
            let reason = format!(
                "drift on the propensity forecasts due {day} (statistic {:.1})",
                d.statistic
            );
            let (fired, suppressed) = self.triggers.drift(d.watermark_ms, &reason, &b.fired);
            b.fired.extend(fired);
            b.suppressed.extend(suppressed);
        }
        if !self.triggers.watches_silence() {
            return;
        }
        let mut undo = Vec::new();
        let due = self.triggers.silences_due(ts, &mut undo);
        b.undo.extend(undo.into_iter().map(Undo::Silence));
        for (name, customer, due, after) in due {
            // A customer erased, or whose record does not read, is left out.
            let Some(outcome) = self.outcome_of(store, &b.records, &customer) else {
                continue;
            };
            let silence = (name.as_str(), customer.as_str(), due, after);
            let strategy = &self.model.strategy;
            let (fired, suppressed) = self.triggers.silence(silence, outcome, &b.fired, strategy);
            b.fired.extend(fired);
            b.suppressed.extend(suppressed);
        }
    }

    /// Takes the refit rows for the time `at_ms` (a block's end, see [`super::cohorts`]) of
    /// the sampled customers the batch has changed and who consent to profiling, when their
    /// state differs from their latest row's: at a boundary inside the batch (the batch may
    /// straddle one), and when the batch is written. A row is written only for a change of
    /// state, so the rows do not depend on how the events were batched.
    pub(super) fn take_rows(&mut self, b: &mut BatchState, at_ms: i64) {
        let target = self.config.target_kind.index();
        let defaults = self.config.consent_defaults;
        let mut changed: Vec<&String> = b
            .records
            .iter()
            .filter(|(id, w)| w.dirty && self.sample.contains(id))
            .map(|(id, _)| id)
            .collect();
        changed.sort_unstable();
        for id in changed {
            let state = &b.records[id].record.state;
            let Some(row) = cohorts::consenting_row(&self.layout, state, target, defaults, at_ms)
            else {
                continue;
            };
            if let Some(change) = self.cohorts.put_changed(&self.layout, id, at_ms, row) {
                b.undo.push(Undo::Cohort(change));
            }
        }
    }

    /// At the block boundary `g`: refits the propensity model on the sampled customers as of
    /// `c = g − BLOCKS_PER_HORIZON` blocks, labelled by what they did since (see
    /// [`super::cohorts`]), then drops the rows no later refit reads.
    fn refit(&mut self, b: &mut BatchState, g: i64) {
        let block = cohorts::block_ms(self.horizon_ms);
        let c = g.saturating_sub(cohorts::BLOCKS_PER_HORIZON.saturating_mul(block));
        let defaults = self.config.consent_defaults;
        let (mut points, mut labels) = (Vec::new(), Vec::new());
        let scaler = &self.model.scaler;
        self.cohorts.examples(
            &self.layout,
            scaler,
            c,
            defaults,
            (&mut points, &mut labels),
        );
        let pruned = self.cohorts.prune(c.saturating_add(block));
        b.undo.extend(pruned.into_iter().map(Undo::Cohort));
        let dim = self.model.scaler.dim();
        if dim != self.layout.dim() {
            return;
        }
        let positives = labels.iter().filter(|l| **l).count();
        if positives.min(labels.len() - positives) < cohorts::MIN_PER_CLASS {
            return; // too few of a class: the previous refit stays
        }
        let refs: Vec<&[f64]> = points.chunks(dim).collect();
        let weight = vec![1.0; refs.len()];
        let model = &mut self.model;
        let start = model.propensity.refit().map(<[f64]>::to_vec);
        // Warm from the previous refit, a block of event time earlier: a few Newton steps,
        // each with the Hessian of a subsample.
        let steps = match start {
            Some(_) => logistic::Steps {
                max: cohorts::WARM_NEWTON_STEPS,
                hessian_stride: (refs.len() / cohorts::HESSIAN_ROWS).max(1),
            },
            None => logistic::Steps::CONVERGE,
        };
        let fitted = logistic::fit_steps(
            &refs,
            &labels,
            &weight,
            dim,
            cohorts::REFIT_L2,
            start.as_deref(),
            steps,
        );
        if let Some(coefficients) = fitted {
            model.propensity.set_refit(coefficients);
        }
    }

    /// Learns one labelled example due at `deadline` (its checkpoint + horizon), predicting it
    /// first for the prequential metrics. Hands it to the drift monitor, which scores it with its
    /// frozen forecaster and feeds the test in deadline order (`src/model/drift.rs`). Every
    /// example is learned when the watermark passes its deadline (positives are held until
    /// then), in deadline order: every example due before `min(deadline, watermark)` has then
    /// been learned.
    pub(super) fn learn(&mut self, store: &Store, features: &[f32], label: bool, deadline: i64) {
        let model = &mut self.model;
        if features.len() != model.scaler.dim() {
            return;
        }
        let z = standardised(&model.scaler, features);
        let (positives, examples) = (model.metrics.positives(), model.metrics.examples());
        let trained = positives.min(examples.saturating_sub(positives)) >= MIN_EXAMPLES;
        let (wm, h) = (model.watermark_ms, self.horizon_ms);
        model.drift.rotate(&model.propensity, trained, wm, h);
        let p = model.propensity.learn(&z, label);
        model.metrics.record(p, label);
        let complete_before = deadline.min(wm);
        let alarms = model
            .drift
            .record_example(&z, label, deadline, complete_before, h);
        for alarm in &alarms {
            model.drift.push_detection(Detection {
                watermark_ms: model.watermark_ms,
                deadline_day_ms: alarm.deadline_day_ms,
                model_version: model.version,
                examples: model.metrics.examples(),
                statistic: alarm.statistic,
            });
            tracing::info!(
                "drift detected on the propensity forecasts of examples due {} at watermark {} \
                 (statistic {:.1}); reaction: {:?}",
                alarm.deadline_day_ms,
                model.watermark_ms,
                alarm.statistic,
                self.config.drift_reaction
            );
        }
        if alarms.is_empty() {
            return;
        }
        match self.config.drift_reaction {
            DriftReaction::Warn => {}
            // The refit stays: refitting on the cohort it came from would give the same
            // coefficients, and the next cohort replaces it within a block.
            DriftReaction::Reset => model.propensity.reset_online(),
            DriftReaction::Rollback => {
                let restored =
                    self.snapshots
                        .back()
                        .and_then(|v| match self.unapplied.snapshot(*v) {
                            Some(s) => Some(s.clone()),
                            None => store.snapshot(*v).ok().flatten(),
                        });
                match restored {
                    Some(snap) if snap.propensity.dim() == self.model.propensity.dim() => {
                        self.model.propensity = snap.propensity;
                    }
                    // No usable snapshot: starting over, as `reset` does, is the closest to
                    // "before the drift".
                    _ => self.model.propensity.reset_online(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A customer's checkpoints: strictly after `now`, at most a horizon later, on one grid per
    /// customer (the same offset modulo the horizon whatever `now`), offsets spread over the
    /// horizon across customers.
    #[test]
    fn checkpoints_are_on_a_per_customer_grid_after_now() {
        let h = 30 * 86_400_000;
        let mut offsets = BTreeSet::new();
        for i in 0..200 {
            let id = format!("c{i}");
            let offset = next_checkpoint(&id, 0, h).rem_euclid(h);
            offsets.insert(offset / (h / 10));
            for now in [0, 1, 1_767_225_600_000, 1_767_225_600_000 + h / 3] {
                let c = next_checkpoint(&id, now, h);
                assert!(c > now && c <= now + h, "{id} at {now}: {c}");
                assert_eq!(c.rem_euclid(h), offset, "{id}: one grid");
            }
            // On a checkpoint exactly, the next one is a horizon later.
            let c = next_checkpoint(&id, 5 * h, h);
            assert_eq!(next_checkpoint(&id, c, h), c + h);
        }
        assert_eq!(offsets.len(), 10, "offsets fill every tenth of the horizon");
    }
}
