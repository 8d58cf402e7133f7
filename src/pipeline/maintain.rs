//! The writer's maintenance operations on a batch: re-assigning segments, erasing customers
//! (one, many, or those past the retention cutoff) with their open and held examples, and
//! reverting a batch whose commit failed.

use super::apply::*;
use super::batch::*;
use crate::error::{Error, Result};
use crate::features::consent::Consent;
use crate::storage::{queue, Store};
use crate::triggers::Trigger;

impl Engine {
    /// Re-assigns up to `limit` profiles after `after` to their nearest segment as of now.
    /// Returns the last customer looked at (the next cursor), how many were scanned and changed.
    pub(crate) fn resegment(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Option<String>, usize, usize)> {
        let now = self.model.watermark_ms;
        let mut last = None;
        let (mut scanned, mut changed) = (0, 0);
        let ids: Vec<String> = store
            .profiles_after(after)
            .take(limit)
            .map(|r| r.map(|(id, _)| id))
            .collect::<Result<_>>()?;
        for id in ids {
            scanned += 1;
            last = Some(id.clone());
            // A corrupt record is skipped here; `persona check` and reads report it.
            let Ok(w) = self.load(store, &mut b.records, &id) else {
                continue;
            };
            // Without consent to profiling a customer joins no segment. One still in a segment
            // (the store's default changed since) leaves it as a withdrawal would, with the
            // sample and their training examples.
            if !Consent::of(&w.record.state, self.config.consent_defaults).profiling {
                if w.record.segment.is_none() && !self.sample.contains(&id) {
                    continue;
                }
                let prev = Prev::of(&w.record);
                w.record.pending = None;
                super::consent::leave_segment(&mut self.model, w, prev);
                self.forget_customer(&mut b.undo, &id);
                changed += 1;
                continue;
            }
            let x = self.layout.vector(&w.record.state, now);
            let Some((seg, dist)) = self.model.segments.assign(&x) else {
                continue;
            };
            if w.record.segment == Some(seg as u16) {
                continue;
            }
            let prev = Prev::of(&w.record);
            let p = w.record.propensity as f64;
            move_segment(
                &mut self.model,
                prev,
                Some(seg as u16),
                w.record.state.spend,
                p,
            );
            w.record.segment = Some(seg as u16);
            w.record.distance = dist as f32;
            w.dirty = true;
            changed += 1;
        }
        Ok((last.filter(|_| scanned == limit), scanned, changed))
    }

    /// Erases each customer (see [`Engine::erase`]); returns how many existed.
    pub(crate) fn erase_all(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        ids: &[String],
    ) -> Result<usize> {
        let mut erased = 0;
        for id in ids {
            if self.erase(store, b, id)? {
                erased += 1;
            }
        }
        self.forget_erased(store, b)?;
        Ok(erased)
    }

    /// What goes with the customers the batch erased once their records are out: their open
    /// examples, their trigger firings and, in the kept snapshots, the names only they gave.
    fn forget_erased(&mut self, store: &Store, b: &mut BatchState) -> Result<()> {
        self.forget_erased_examples(b);
        self.forget_erased_firings(store, b)?;
        self.forget_erased_names_in_snapshots(store, b);
        Ok(())
    }

    /// Rewrites the kept model snapshots without the names only the batch's erased customers
    /// had given (the live state dropped them in [`Engine::erase`]): a snapshot must not keep
    /// them, nor what stands for their holder (a hash of the id, in a plain store). A snapshot
    /// that does not decode is left as it is, with a warning (in an encrypted store its names
    /// are sealed, and go with the keys).
    fn forget_erased_names_in_snapshots(&mut self, store: &Store, b: &mut BatchState) {
        if b.erased.is_empty() {
            return;
        }
        let holders: Vec<_> = b.erased.iter().map(|c| store.holder_of(c)).collect();
        for &version in &self.snapshots {
            let mut snapshot = match store.snapshot(version) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("erase: model snapshot {version} left as it is: {e}");
                    continue;
                }
            };
            let dropped: usize = holders.iter().map(|h| snapshot.forget_holder(h)).sum();
            if dropped == 0 {
                continue;
            }
            match store.encode_model(&mut snapshot) {
                Ok(bytes) => b.snapshot_rewrites.push((version, bytes)),
                Err(e) => tracing::warn!("erase: model snapshot {version} left as it is: {e}"),
            }
        }
    }

    /// Adds the erasure of `customer` to the batch: the profile record (with its history,
    /// de-duplication window and pending example) goes, and the customer's share of the
    /// segment sizes and statistics is taken out. Returns false, and changes nothing, if the
    /// customer has no record. A record that does not decode is erased too (its segment
    /// statistics cannot be corrected; its segment size is, if at least the record's leading
    /// fields decode). The caller must then call [`Engine::forget_erased`].
    pub(super) fn erase(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        customer: &str,
    ) -> Result<bool> {
        if b.erased.contains(customer) {
            return Ok(false);
        }
        let stored = match store.raw_profile(customer) {
            Ok(stored) => stored,
            // A sealed record that does not open (damaged, or its data key lost) is erased all
            // the same, as a plain record that does not decode is.
            Err(crate::Error::Corruption { .. }) if store.has_record(customer)? => {
                // Their other keys did not open either, so the writer never loaded them: they
                // are found by their token.
                b.ledger_removed.extend(store.unreadable_keys_of(customer)?);
                Some(sled::IVec::default())
            }
            Err(e) => return Err(e),
        };
        let in_batch = b.records.remove(customer);
        let written_in_batch = in_batch.as_ref().is_some_and(|w| w.dirty);
        if stored.is_none() && !written_in_batch {
            return Ok(false);
        }
        let record = match in_batch {
            Some(w) => Some(w.record),
            None => stored
                .as_ref()
                .and_then(|bytes| store.decode_profile(customer, bytes).ok()),
        };
        match &record {
            Some(r) => move_segment(&mut self.model, Prev::of(r), None, 0.0, 0.0),
            None => {
                let segment = stored.as_ref().and_then(|bytes| {
                    store
                        .decode_profile_current(customer, bytes)
                        .ok()
                        .and_then(|r| r.segment)
                });
                if let Some(n) = segment.and_then(|s| self.model.segment_sizes.get_mut(s as usize))
                {
                    *n = n.saturating_sub(1);
                }
            }
        }
        b.undo
            .extend(self.sample.remove(customer).map(Undo::Sample));
        // Their strategy outcomes, taken back exactly (the model is restored if the commit
        // fails). An action no longer in the catalogue has no counts to take back.
        // An entry that does not decode cannot be taken back, and is removed all the same.
        for (key, outcome) in store.feedback_of(customer)? {
            match outcome {
                Ok(o) => {
                    let actions = &self.config.actions;
                    if let Some(a) = actions.iter().position(|x| *x == o.action) {
                        let segment = usize::from(o.segment);
                        self.model.strategy.unrecord(segment, a, o.converted);
                        b.feedback_undone += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!("erase of {customer:?}: {e}; removed, not subtracted");
                    b.feedback_unreadable += 1;
                }
            }
            b.ledger_removed.push(key);
        }
        // The names they alone gave the models go with them: an encrypted store sealed those
        // with their data key, so the state must not name them once that key is shredded.
        b.names_dropped += self.model.forget_holder(&store.holder_of(customer));
        b.erased.insert(customer.to_string());
        Ok(true)
    }

    /// Drops the expiry-queue entries of every customer erased by the batch (undone if the
    /// commit fails), so no open training example of theirs is ever learned.
    pub(crate) fn forget_erased_examples(&mut self, b: &mut BatchState) {
        if b.erased.is_empty() {
            return;
        }
        let erased = &b.erased;
        b.examples_dropped += self.forget_examples(&mut b.undo, |c| erased.contains(c));
    }

    /// Drops the expiry-queue entries, held positives and refit rows of the customers `gone`
    /// names (an erase, a withdrawal of consent to profiling), recording in `undo` how to put
    /// them back if the commit fails. Returns how many it dropped: open examples, held
    /// positives and refit rows.
    pub(super) fn forget_examples(
        &mut self,
        undo: &mut Vec<Undo>,
        gone: impl Fn(&str) -> bool,
    ) -> usize {
        let keys: Vec<queue::Entry> = self
            .expiry
            .iter()
            .filter(|(_, c)| gone(c.as_str()))
            .cloned()
            .collect();
        let mut dropped = keys.len();
        for key in keys {
            self.expiry.remove(&key);
            undo.push(Undo::Removed(key));
        }
        let held = self.held.forget(&gone);
        let cohorts = self.cohorts.forget(&gone);
        dropped += held.len() + cohorts.len();
        undo.extend(held.into_iter().map(Undo::Held));
        undo.extend(cohorts.into_iter().map(Undo::Cohort));
        dropped
    }

    /// Removes the erased customers' trigger firings from the outbox, those sled holds and
    /// those of batches it has not applied yet.
    ///
    /// # Errors
    /// [`crate::Error::Corruption`] if a firing does not decode (it could be theirs).
    pub(crate) fn forget_erased_firings(
        &mut self,
        store: &Store,
        b: &mut BatchState,
    ) -> Result<()> {
        // (An encrypted store's outbox may hold firings that did not open at open, which the
        // trigger state does not count: it is scanned all the same.)
        if b.erased.is_empty() || (self.triggers.outbox_is_empty() && store.crypt().is_none()) {
            return Ok(());
        }
        let erased = &b.erased;
        // In an encrypted store, the firings of an erased customer whose data key was missing
        // or damaged did not open: they are found by token.
        let tokens: Vec<_> = match store.crypt() {
            Some(c) => erased.iter().map(|id| c.token(id)).collect(),
            None => Vec::new(),
        };
        let mut rewrites = Vec::new();
        let mut chunks = store.firing_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            let mut chunk = chunk?;
            if chunk.firings.iter().any(|f| erased.contains(&f.customer))
                || chunk.unopened.iter().any(|t| tokens.contains(t))
            {
                chunk.firings.retain(|f| !erased.contains(&f.customer));
                rewrites.push((chunk, chunks.peek().is_none()));
            }
        }
        // `maintain` settles the apply stage first: every batch's firings are in sled.
        debug_assert!(self.unapplied.batches.is_empty());
        b.outbox_rewrites = rewrites;
        Ok(())
    }

    /// Adds a trigger defined at run time to the batch.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if a trigger of that name exists.
    pub(crate) fn add_trigger(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        t: Trigger,
    ) -> Result<()> {
        if self.triggers.all().any(|x| x.name == t.name) {
            return Err(Error::invalid_argument(
                "name",
                format!("a trigger named {} exists; delete it first", t.name),
            ));
        }
        if let crate::triggers::Condition::InactiveDays(n) = t.when {
            // When each customer falls silent: a scan of the records (the batches before this
            // one are applied). Kept even if this batch fails: unused until the trigger is.
            let after_ms = (n * crate::features::DAY_MS) as i64;
            let mut last_seen = store.last_seen();
            let wm = self.model.watermark_ms;
            (self.triggers).index_silence((t.name.clone(), after_ms), &mut last_seen, wm);
        }
        b.trigger_defs.push((t.name.clone(), Some(t)));
        Ok(())
    }

    /// Adds the deletion of the run-time trigger `name` to the batch.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if there is none of that name, or it is defined in
    /// the config file.
    pub(crate) fn delete_trigger(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        name: &str,
    ) -> Result<()> {
        if self.triggers.from_config.iter().any(|x| x.name == name) {
            // A run-time definition the config file overrides is still deleted (it would come
            // back once the config file's is removed).
            if store.trigger_defs()?.iter().any(|t| t.name == name) {
                b.trigger_defs.push((name.to_string(), None));
                return Ok(());
            }
            return Err(Error::invalid_argument(
                "name",
                format!("trigger {name} is defined in the config file; remove it there"),
            ));
        }
        if !self.triggers.from_runtime.iter().any(|x| x.name == name) {
            return Err(Error::invalid_argument(
                "name",
                format!("no trigger named {name}"),
            ));
        }
        b.trigger_defs.push((name.to_string(), None));
        Ok(())
    }

    /// Adds the move of the trigger consumer `name`'s position to `id` to the batch (nothing
    /// when it is there or past it already: a position never goes back).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for an id no firing was given yet.
    pub(crate) fn ack_trigger(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        name: String,
        id: u64,
    ) -> Result<()> {
        let newest = self.triggers.next_id - 1;
        if id > newest {
            return Err(Error::invalid_argument(
                "id",
                format!("{id} was never given to a firing; the newest firing is {newest}"),
            ));
        }
        if store.trigger_acked(&name)?.is_none_or(|at| at < id) {
            b.trigger_acks.push((name, id));
        }
        Ok(())
    }

    /// Erases those of `ids` whose last event is older than `cutoff_ms`. Profiles without
    /// events (attributes only), unknown ids and records that do not decode are kept. Returns
    /// how many were erased.
    pub(crate) fn purge(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        ids: &[String],
        cutoff_ms: i64,
    ) -> Result<usize> {
        let mut erased = 0;
        for id in ids {
            let Ok(Some(record)) = store.profile_state(id) else {
                continue;
            };
            let expired = record.state.last_seen_ms.is_some_and(|t| t < cutoff_ms);
            if expired && self.erase(store, b, id)? {
                erased += 1;
            }
        }
        self.forget_erased(store, b)?;
        Ok(erased)
    }

    /// Reverts the expiry queue after a failed commit (the model is restored by the caller).
    pub(crate) fn undo(&mut self, b: BatchState) {
        // The cache already holds what the batch wrote.
        self.recent.clear();
        for u in b.undo.into_iter().rev() {
            match u {
                Undo::Inserted(k) => {
                    self.expiry.remove(&k);
                }
                Undo::Removed(k) => {
                    self.expiry.insert(k);
                }
                Undo::Sample(change) => self.sample.revert(change),
                Undo::Held(change) => self.held.revert(change),
                Undo::Cohort(change) => self.cohorts.revert(change),
                Undo::Silence(change) => self.triggers.restore_silence(change),
            }
        }
    }
}
