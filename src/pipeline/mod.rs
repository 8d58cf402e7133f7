//! The single writer: batching, apply, one atomic commit, durability, acknowledgements.
//!
//! All mutation of the engine happens on one thread. Callers send `Request`s through a bounded
//! crossbeam channel and block on a reply channel. The writer drains up to `max_batch` items
//! (waiting at most `max_batch_delay` for more once the queue is empty), applies them to a
//! working copy of the model (the `apply` module) and writes the dirty profiles, membership changes and
//! model state into ONE sled batch. Two stages follow, each on its own thread, so the three run
//! at once on consecutive batches:
//! - the **apply stage** hands the batch to sled (`apply_batch`, about half of the write path's
//!   CPU). Until it reports a batch applied, the writer reads the records that batch wrote
//!   from the batch itself, not from sled, so batch N+1 never builds on a stale record of
//!   batch N;
//! - the **durability stage** publishes each applied batch (the new model and the written
//!   profiles) to readers, makes everything applied so far durable as configured (one sync for
//!   every batch queued since its last one) and only then acknowledges each item.
//!
//! No reply ever leaves before the sync that covers its batch (replies of batches that wrote
//! nothing — only duplicates or rejected items — go through both stages in order behind the
//! batches before them, so a duplicate is never acknowledged before its original is durable).
//!
//! Failure: if the commit fails before sled sees it (an injected failure), nothing of the batch
//! is visible, the model and the expiry queue are restored to their pre-batch values, and every
//! waiter of the batch gets the error. If sled fails to apply a batch, or an applied batch could
//! not be made durable, the store is *poisoned*: the waiters of that batch or sync, and every
//! later write, fail with [`Error::Poisoned`] until the store is reopened (and recovers what
//! sled had made durable).

mod apply;
mod batch;
pub(crate) mod cohorts;
mod commit;
mod consent;
mod examples;
pub(crate) mod faults;
pub(crate) mod held;
mod maintain;
mod recent;
mod request;
pub(crate) mod sample;
mod stages;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::features::vector::FeatureLayout;
use crate::model::ModelState;
use crate::storage::Store;
use apply::Engine;
use batch::BatchState;
pub(crate) use batch::{QueueLog, RecoveredQueue};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
pub use request::{Ack, MaintenanceOutcome, WriteStats};
pub(crate) use request::{Item, Maintenance, Request, Shared, WriteReply};
use stages::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Something to tell when the results of a write have been sent: how the RESP server's event
/// loops learn, without blocking, that a write they submitted is acknowledged.
pub(crate) trait Notify: Send + Sync {
    /// The results of the write submitted with `tag` are waiting in its channel.
    fn notify(&self, tag: usize);
}

/// Committed state the writer resumes from.
pub(crate) struct Recovered {
    /// The last committed model state.
    pub(crate) model: ModelState,
    /// The queue of open training examples, persisted or derived from the records.
    pub(crate) queue: RecoveredQueue,
    /// Versions of the stored model snapshots.
    pub(crate) snapshots: Vec<u64>,
    /// The customer sample (see [`sample`]).
    pub(crate) sample: sample::Sample,
    /// The positive training examples held until their deadline.
    pub(crate) held: held::Held,
    /// The refit rows the propensity is refitted on.
    pub(crate) cohorts: cohorts::Cohorts,
    /// The trigger definitions and what the outbox holds.
    pub(crate) triggers: crate::triggers::TriggerState,
}

/// Starts the writer thread (which starts the apply and durability stages).
///
/// # Errors
/// [`Error::Io`] if a thread cannot be spawned.
pub(crate) fn spawn(
    store: Arc<Store>,
    config: Config,
    layout: FeatureLayout,
    recovered: Recovered,
    shared: Arc<Shared>,
    rx: Receiver<Request>,
) -> Result<std::thread::JoinHandle<()>> {
    let Recovered {
        model,
        queue,
        snapshots,
        sample,
        held,
        cohorts,
        triggers,
    } = recovered;
    let engine = Engine::new(
        model,
        queue,
        snapshots,
        sample,
        (held, cohorts, shared.together.clone(), triggers),
        layout,
        config.clone(),
    );
    *shared.snapshots.write() = engine.snapshot_versions();
    *shared.triggers.write() = Arc::new(engine.triggers.view());
    shared
        .open_examples
        .store(engine.open_examples(), Ordering::Relaxed);
    let poison = Arc::new(parking_lot::Mutex::new(None));
    let (sync_tx, sync_rx) = crossbeam_channel::bounded(SYNC_QUEUE);
    let answered = Arc::new(AtomicU64::new(0));
    let syncer = Syncer {
        store: store.clone(),
        shared: shared.clone(),
        durability: config.durability,
        poison: poison.clone(),
        answered: answered.clone(),
    };
    let syncer = std::thread::Builder::new()
        .name("persona-sync".into())
        .spawn(move || syncer.run(sync_rx))?;
    let applied = Arc::new(AtomicU64::new(0));
    let (apply_tx, apply_rx) = crossbeam_channel::bounded(APPLY_QUEUE);
    let applier = Applier {
        store: store.clone(),
        shared: shared.clone(),
        poison: poison.clone(),
        applied: applied.clone(),
        sync: sync_tx,
        syncer,
    };
    let applier = std::thread::Builder::new()
        .name("persona-apply".into())
        .spawn(move || applier.run(apply_rx))?;
    let writer = Writer {
        store,
        config,
        engine,
        shared,
        poison,
        next_seq: 1,
        applied,
        taken: 0,
        answered,
        apply: Some(apply_tx),
        applier: Some(applier),
    };
    Ok(std::thread::Builder::new()
        .name("persona-writer".into())
        .spawn(move || writer.run(rx))?)
}

/// Fewest items the writer gathers into a round while items are waiting (see
/// `Writer::round_cap`).
const MIN_ROUND: usize = 128;

/// Replies waiting for the sync that covers their batch.
type Replies = Vec<(WriteReply, Vec<Result<Ack>>)>;

struct Writer {
    store: Arc<Store>,
    config: Config,
    engine: Engine,
    shared: Arc<Shared>,
    /// Why the store is poisoned (an apply or a sync failed), shared with the later stages.
    poison: Arc<parking_lot::Mutex<Option<String>>>,
    /// Sequence number of the next prepared batch.
    next_seq: u64,
    /// Sequence number of the last batch the apply stage is done with.
    applied: Arc<AtomicU64>,
    /// Items taken into rounds so far.
    taken: u64,
    /// Items the durability stage has answered so far.
    answered: Arc<AtomicU64>,
    /// The apply stage's queue (taken when the writer stops).
    apply: Option<Sender<ToApply>>,
    applier: Option<std::thread::JoinHandle<()>>,
}

type Waiter = (usize, WriteReply);

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        let max_batch = self.config.max_batch;
        let delay = self.config.max_batch_delay();
        // The last round, prepared but not yet handed to the apply stage: held while the next
        // round's records are read from sled (sled's `apply_batch` blocks every read while it
        // runs), never while the writer would wait for work.
        let mut held: Option<ToApply> = None;
        loop {
            let first = match rx.try_recv() {
                Ok(r) => r,
                Err(_) => {
                    self.hand_over(&mut held, &[]);
                    match rx.recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                }
            };
            let mut items: Vec<Item> = Vec::new();
            let mut waiters: Vec<Waiter> = Vec::new();
            let mut shutdown = None;
            let mut maintenance = None;
            match first {
                Request::Write { items: i, reply } => {
                    waiters.push((i.len(), reply));
                    items.extend(i);
                }
                Request::Maintain { op, reply } => maintenance = Some((op, reply)),
                Request::Shutdown { reply } => shutdown = Some(reply),
            }
            // Gather more work: whatever is queued, then up to `delay` for stragglers. The
            // held round goes to the apply stage as soon as the queue runs dry, after the
            // records of what was gathered so far are read.
            let deadline = Instant::now() + delay;
            let cap = self.round_cap(max_batch);
            while shutdown.is_none() && maintenance.is_none() && items.len() < cap {
                let next = match rx.try_recv() {
                    Ok(r) => Ok(r),
                    Err(_) if held.is_some() => {
                        self.hand_over(&mut held, &items);
                        continue;
                    }
                    Err(_) if delay.is_zero() => break,
                    Err(_) => rx.recv_deadline(deadline),
                };
                match next {
                    Ok(Request::Write { items: i, reply }) => {
                        waiters.push((i.len(), reply));
                        items.extend(i);
                    }
                    Ok(Request::Maintain { op, reply }) => maintenance = Some((op, reply)),
                    Ok(Request::Shutdown { reply }) => shutdown = Some(reply),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            self.taken += items.len() as u64;
            self.hand_over(&mut held, &items);
            // What was gathered after the held round went to the apply stage has not been read
            // ahead: read it now, on two threads for a large round, rather than one record at
            // a time while the round is prepared.
            self.read_ahead(&items);
            let mut results = Vec::with_capacity(items.len());
            let mut batches = Vec::new();
            let mut start = 0;
            for end in chunk_ends(waiters.iter().map(|(n, _)| *n), max_batch) {
                let (r, prepared) = self.run_batch(&items[start..end]);
                results.extend(r);
                batches.extend(prepared);
                start = end;
            }
            self.engine.end_round();
            if !waiters.is_empty() || !batches.is_empty() {
                let mut results = results.into_iter();
                let replies = waiters
                    .into_iter()
                    .map(|(n, reply)| (reply, results.by_ref().take(n).collect()))
                    .collect();
                held = Some(ToApply::Round { batches, replies });
            }
            if maintenance.is_some() || shutdown.is_some() {
                self.hand_over(&mut held, &[]);
            }
            if let Some((op, reply)) = maintenance {
                self.settle();
                let _ = reply.send(self.maintain(op));
            }
            if let Some(reply) = shutdown {
                let result = self.stop_stages().and_then(|()| self.store.close());
                let _ = reply.send(result);
                return;
            }
        }
        // Every sender is gone (the Db was dropped without close): still make things durable.
        self.hand_over(&mut held, &[]);
        if let Err(e) = self.stop_stages().and_then(|()| self.store.close()) {
            tracing::error!("closing the store failed: {e}");
        }
    }

    /// Queues a message for the apply stage (waits while its queue is full).
    fn queue_for_apply(&mut self, m: ToApply) {
        if let Some(tx) = &self.apply {
            if let Err(crossbeam_channel::SendError(m)) = tx.send(m) {
                // The stage is gone (it cannot panic, but be safe): answer here, unapplied
                // batches as failed, and refuse every later write (nothing would apply it).
                tracing::error!("the apply stage stopped");
                *self.poison.lock() = Some("the apply stage stopped".into());
                match m {
                    ToApply::Round { replies, .. } => answer_closed(replies),
                    ToApply::Barrier(done) => {
                        let _ = done.send(());
                    }
                }
            }
        }
    }

    /// Hands the held round, if any, to the apply stage, after reading from sled the records
    /// `ahead` (the next round's items so far) will need (see [`Engine::prefetch`]): once the
    /// apply stage runs, sled reads wait for it. With no round held, does nothing.
    fn hand_over(&mut self, held: &mut Option<ToApply>, ahead: &[Item]) {
        let Some(round) = held.take() else {
            return;
        };
        if !ahead.is_empty() && self.poisoned().is_none() {
            // Batches the apply stage is done with are in sled now; the others stay in the
            // overlay until this round is prepared (they are newer than what is read).
            self.engine
                .unapplied
                .applied_through(self.applied.load(Ordering::Acquire));
            self.engine.prefetch(&self.store, ahead);
        }
        self.queue_for_apply(round);
    }

    /// Most items the next round gathers (a first request may bring more): half of the items
    /// taken and not yet answered, between [`MIN_ROUND`] and `max_batch`. With N items in
    /// flight, rounds settle at about N / 3, so that the apply and durability stages always
    /// have a round while the writer prepares the next. Without the cap, clients that each
    /// wait for their replies before sending more (a server's pipelined connections) arrive
    /// together, and the writer gathering all of them left the later stages idle while it
    /// prepared one large round, and itself idle while they worked through it.
    fn round_cap(&self, max_batch: usize) -> usize {
        let unanswered = self
            .taken
            .saturating_sub(self.answered.load(Ordering::Acquire));
        usize::try_from(unanswered / 2)
            .unwrap_or(usize::MAX)
            .clamp(MIN_ROUND.min(max_batch), max_batch)
    }

    /// Reads ahead the records `items` will need that are not read ahead yet (see
    /// [`Engine::prefetch`]).
    fn read_ahead(&mut self, items: &[Item]) {
        if items.is_empty() || self.poisoned().is_some() {
            return;
        }
        self.engine
            .unapplied
            .applied_through(self.applied.load(Ordering::Acquire));
        self.engine.prefetch(&self.store, items);
    }

    /// Waits until the apply and durability stages have applied, synced and answered
    /// everything queued so far.
    fn settle(&mut self) {
        let (done, wait) = crossbeam_channel::bounded(1);
        self.queue_for_apply(ToApply::Barrier(done));
        let _ = wait.recv();
        // Every batch queued before the barrier is applied (or the stage is gone, and nothing
        // will apply them).
        self.engine.unapplied.applied_through(u64::MAX);
    }

    /// Settles and stops the apply and durability stages; an error if the store is poisoned.
    fn stop_stages(&mut self) -> Result<()> {
        self.settle();
        self.apply = None;
        if let Some(handle) = self.applier.take() {
            let _ = handle.join();
        }
        match self.poison.lock().clone() {
            Some(why) => Err(Error::Poisoned(why)),
            None => Ok(()),
        }
    }

    fn poisoned(&self) -> Option<String> {
        self.poison.lock().clone()
    }

    /// Applies one batch to the engine and prepares its sled batch for the apply stage;
    /// returns one result per item, and the prepared batch (None if there is nothing to
    /// write, or the commit failed).
    fn run_batch(&mut self, items: &[Item]) -> (Vec<Result<Ack>>, Option<Prepared>) {
        if let Some(why) = self.poisoned() {
            let results = items
                .iter()
                .map(|_| Err(Error::Poisoned(why.clone())))
                .collect();
            return (results, None);
        }
        let before = self.engine.model.clone();
        let mut batch_state = BatchState::default();
        let results: Vec<Result<Ack>> = items
            .iter()
            .map(|item| self.engine.apply(&self.store, &mut batch_state, item))
            .collect();
        if batch_state.is_empty() && self.engine.model == before {
            return (results, None); // only duplicates or rejects: nothing to commit
        }
        match self.prepare(&mut batch_state) {
            Ok((batch, keys, bytes)) => {
                let p = self.prepared(batch_state, batch, items.len() as u64, keys, bytes);
                self.engine.unapplied.push(p.seq, p.state.clone());
                (results, Some(p))
            }
            Err(e) => {
                tracing::error!("commit failed: {e}");
                self.engine.model = before;
                self.engine.undo(batch_state);
                let results = results
                    .into_iter()
                    .map(|r| r.and_then(|_| Err(e.clone())))
                    .collect();
                (results, None)
            }
        }
    }

    /// Writes a batch's changes into one sled batch; returns it with the keys written and
    /// bytes inserted. Fails (before sled sees anything) when a test injected a failure.
    fn prepare(&mut self, b: &mut BatchState) -> Result<(sled::Batch, u64, u64)> {
        let mut batch = sled::Batch::default();
        let (keys, bytes) = self.engine.write_into(&self.store, b, &mut batch)?;
        if self.shared.faults.take_commit_failure() {
            return Err(Error::Io(std::io::Error::other("injected commit failure")));
        }
        // The data keys of customers new in this batch reach the key slots before the batch
        // can reach sled's log (`storage/sealed.rs`).
        self.store.persist_new_keys()?;
        Ok((batch, keys, bytes))
    }

    /// Takes a written batch as committed in the engine's bookkeeping and packs it with what
    /// to publish once sled has applied it.
    fn prepared(
        &mut self,
        state: BatchState,
        batch: sled::Batch,
        items: u64,
        keys: u64,
        bytes: u64,
    ) -> Prepared {
        self.engine.committed(&state);
        let seq = self.next_seq;
        self.next_seq += 1;
        let changed = !state.fired.is_empty()
            || !state.suppressed.is_empty()
            || !state.trigger_defs.is_empty();
        let triggers = changed.then(|| Arc::new(self.engine.triggers.view()));
        let firings_next = (!state.fired.is_empty()).then_some(self.engine.triggers.next_id);
        Prepared {
            seq,
            batch,
            state: Arc::new(state),
            model: Arc::new(self.engine.model.clone()),
            snapshots: self.engine.snapshot_versions(),
            open_examples: self.engine.open_examples(),
            triggers,
            firings_next,
            items,
            keys,
            bytes,
        }
    }

    /// Takes the lines naming `customer_ids` out of the import's reports in the data directory
    /// (`storage/reports.rs`), after their erase committed.
    ///
    /// # Errors
    /// [`Error::Io`] saying that the erase is done and how to finish it.
    fn scrub_reports(&self, customer_ids: &[String]) -> Result<()> {
        use crate::storage::reports::{scrub, DUPLICATES, REJECTS};
        scrub(self.store.path(), customer_ids)
            .map(drop)
            .map_err(|e| {
                Error::Io(std::io::Error::other(format!(
                "the erase is done, but the import's reports in the data directory ({REJECTS}, \
                 {DUPLICATES}) could not be rewritten without the lines naming the customer: \
                 {e}; erase again once that is fixed"
            )))
            })
    }

    /// Runs one maintenance operation as its own atomic batch.
    fn maintain(&mut self, op: Maintenance) -> Result<MaintenanceOutcome> {
        if let Some(why) = self.poisoned() {
            return Err(Error::Poisoned(why));
        }
        let before = self.engine.model.clone();
        let mut b = BatchState::default();
        let mut outcome = MaintenanceOutcome::default();
        // Whom an erase names: their lines leave the import's reports even when they have no
        // record any more (an erase repeated after a failed rewrite of the reports).
        let requested = match &op {
            Maintenance::Erase(ids) => ids.clone(),
            _ => Vec::new(),
        };
        let prepared = match op {
            Maintenance::Snapshot => {
                b.force_snapshot = true;
                Ok(())
            }
            Maintenance::Rollback(version) => match self.store.snapshot(version)? {
                Some(snap) => {
                    self.engine.model.restore_learned(&snap);
                    b.force_snapshot = true;
                    Ok(())
                }
                None => Err(Error::invalid_argument(
                    "version",
                    format!(
                        "no model snapshot {version}; snapshots kept: {:?}",
                        self.engine.snapshot_versions()
                    ),
                )),
            },
            Maintenance::Resegment { after, limit } => self
                .engine
                .resegment(&self.store, &mut b, after.as_deref(), limit)
                .map(|(next, scanned, changed)| {
                    outcome.next_cursor = next;
                    outcome.scanned = scanned;
                    outcome.changed = changed;
                }),
            Maintenance::FitSegments { points, fresh } => {
                let segments = &mut self.engine.model.segments;
                outcome.refitted = match fresh {
                    Some(seed) => segments.refit_fresh(&points, seed),
                    None => segments.refit(&points),
                };
                Ok(())
            }
            Maintenance::Erase(ids) => self
                .engine
                .erase_all(&self.store, &mut b, &ids)
                .map(|n| outcome.erased = n),
            Maintenance::Purge { ids, cutoff_ms } => self
                .engine
                .purge(&self.store, &mut b, &ids, cutoff_ms)
                .map(|erased| {
                    outcome.scanned = ids.len();
                    outcome.erased = erased;
                }),
            Maintenance::TriggerAdd(t) => self.engine.add_trigger(&self.store, &mut b, t),
            Maintenance::TriggerDel(name) => self.engine.delete_trigger(&self.store, &mut b, &name),
            Maintenance::TriggerAck(name, id) => {
                self.engine.ack_trigger(&self.store, &mut b, name, id)
            }
            Maintenance::AdvanceWatermark(to_ms) => {
                self.engine.advance_watermark_to(&self.store, &mut b, to_ms)
            }
            #[cfg(feature = "cluster")]
            Maintenance::Adopt(adoption) => {
                let adopted = adoption
                    .apply(&mut self.engine.model)
                    .map_err(Error::Cluster);
                let behind = adoption.watermark_ms > self.engine.model.watermark_ms;
                if adopted.is_ok() && behind {
                    // A cluster watermark past this node's skew limit (the node's clock is
                    // behind) waits for a later merge.
                    let to = adoption.watermark_ms;
                    if let Err(e) = self.engine.advance_watermark_to(&self.store, &mut b, to) {
                        tracing::warn!("cluster: the merged watermark is not taken yet: {e}");
                    }
                }
                adopted
            }
        };
        if let Err(e) = prepared {
            self.engine.model = before;
            self.engine.undo(b);
            return Err(e);
        }
        outcome.feedback_undone = b.feedback_undone;
        outcome.feedback_unreadable = b.feedback_unreadable;
        outcome.examples_dropped = b.examples_dropped;
        outcome.names_dropped = b.names_dropped;
        if b.is_empty() && self.engine.model == before {
            outcome.model_version = self.engine.model.version;
            self.scrub_reports(&requested)?;
            return Ok(outcome);
        }
        let erased: Vec<String> = b.erased.iter().cloned().collect();
        // The apply and durability stages are settled: this batch is applied and synced here.
        let committed = self.prepare(&mut b).and_then(|(batch, keys, bytes)| {
            self.store.apply(batch)?;
            // The keys of erased customers go once the batch that removed their data is
            // durable, whatever `durability` says: else a crash could bring back records
            // whose keys are gone.
            let durability = if erased.is_empty() || !self.store.is_encrypted() {
                self.config.durability
            } else {
                crate::config::Durability::Fsync
            };
            if let Err(e) = self.store.sync(durability) {
                // The batch is applied but maybe not durable: refuse further writes.
                *self.poison.lock() = Some(e.to_string());
                return Err(Error::Poisoned(e.to_string()));
            }
            Ok((keys, bytes))
        });
        match committed {
            Ok((keys, bytes)) => {
                let p = self.prepared(b, sled::Batch::default(), 0, keys, bytes);
                publish(&self.shared, &p);
                // Synced above: its firings (silences a moved watermark fired) may be read.
                if let Some(next) = p.firings_next {
                    self.shared
                        .durable_firings
                        .fetch_max(next, Ordering::AcqRel);
                }
                outcome.model_version = self.engine.model.version;
                // Erased customers' data keys go once the batch that removed everything of
                // theirs is durable: what sled's files still hold of them is unreadable from
                // now on. Should zeroing their slots fail, the erase stands, writes are refused
                // (a new record of theirs would be sealed with the old key), and the next open
                // zeroes the slots (a slot whose customer has no record is).
                if let Err(e) = self.store.shred(&erased) {
                    let why = format!("zeroing the data keys of erased customers failed: {e}");
                    *self.poison.lock() = Some(why.clone());
                    return Err(Error::Poisoned(why));
                }
                // The import's reports in the data directory name customers: their lines go
                // too (`storage/reports.rs`).
                let mut named = erased;
                named.extend(requested);
                self.scrub_reports(&named)?;
                Ok(outcome)
            }
            Err(e) => {
                self.engine.model = before;
                self.engine.undo(b);
                Err(e)
            }
        }
    }
}

/// Where the sled batches of a round end, given the sizes of its requests in order: at most
/// `max_batch` items each, and a request is never split across two batches unless it alone
/// holds more than `max_batch` (then it is cut every `max_batch` items), so that what a
/// request writes with its items ([`Item::Mark`]) commits with them.
fn chunk_ends(sizes: impl Iterator<Item = usize>, max_batch: usize) -> Vec<usize> {
    let max_batch = max_batch.max(1);
    let (mut ends, mut start, mut end) = (Vec::new(), 0usize, 0usize);
    for n in sizes {
        if end > start && end - start + n > max_batch {
            ends.push(end);
            start = end;
        }
        end += n;
        while end - start > max_batch {
            start += max_batch;
            ends.push(start);
        }
    }
    if end > start {
        ends.push(end);
    }
    ends
}

#[cfg(test)]
mod chunk_tests {
    use super::chunk_ends;

    #[test]
    fn a_request_stays_in_one_batch_unless_it_alone_is_larger() {
        assert_eq!(chunk_ends([3, 4, 2].into_iter(), 8), vec![7, 9]);
        assert_eq!(chunk_ends([8, 1].into_iter(), 8), vec![8, 9]);
        assert_eq!(chunk_ends([2, 20, 1].into_iter(), 8), vec![2, 10, 18, 23]);
        assert_eq!(chunk_ends([0, 0].into_iter(), 8), Vec::<usize>::new());
        assert_eq!(chunk_ends([5, 0, 3].into_iter(), 8), vec![8]);
    }
}
