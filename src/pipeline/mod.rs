//! The single writer: batching, apply, one atomic commit, durability, acknowledgements.
//!
//! All mutation happens on one thread. Callers send [`Request`]s through a bounded crossbeam
//! channel and block on a reply channel. The writer drains up to `max_batch` items (waiting at
//! most `max_batch_delay` for more once the queue is empty), applies them to a working copy of
//! the model ([`apply`]), writes the dirty profiles, membership changes and model state in ONE
//! sled batch, publishes the new model to readers, and hands the batch's replies to the
//! **durability stage**, a second thread that makes everything applied so far durable as
//! configured (one sync for every batch queued since its last one) and only then acknowledges
//! each item. So the writer applies batch N+1 while batch N is being synced, and no reply ever
//! leaves before the sync that covers its batch (replies of batches that wrote nothing — only
//! duplicates or rejected items — wait in order behind the batches before them too, so a
//! duplicate is never acknowledged before its original is durable).
//!
//! Failure: if the commit fails before sled applied it, nothing of the batch is visible, the
//! model and the expiry queue are restored to their pre-batch values, and every waiter of the
//! batch gets the error. If an applied batch could not be made durable, the store is *poisoned*:
//! that sync's waiters, and every later write, fail with [`Error::Poisoned`] until the store is
//! reopened (and recovers what sled had made durable).

mod apply;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::features::vector::FeatureLayout;
use crate::features::AttrValue;
use crate::model::ModelState;
use crate::query::lookalike_index::LookalikeIndex;
use crate::storage::Store;
use crate::Event;
use apply::{BatchState, Engine};
pub(crate) use apply::{QueueLog, RecoveredQueue};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The outcome of one acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ack {
    /// The customer's profile version after the write (unchanged for a duplicate).
    pub version: u64,
    /// The customer's segment after the write (None until segments are seeded).
    pub segment: Option<u16>,
    /// Propensity predicted after the write.
    pub propensity: f64,
    /// True if the event id was already applied: nothing changed.
    pub duplicate: bool,
}

/// One unit of work for the writer.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A validated event.
    Event(Event),
    /// Validated attributes for a customer.
    SetAttributes {
        customer: String,
        attrs: Vec<(String, AttrValue)>,
    },
    /// The outcome of a marketing action (action index validated against the catalogue).
    Feedback {
        customer: String,
        action: usize,
        converted: bool,
        id: Option<String>,
        segment: Option<u16>,
    },
}

/// A maintenance operation, run by the writer as a batch of its own.
#[derive(Debug, Clone)]
pub(crate) enum Maintenance {
    /// Snapshot the model state now.
    Snapshot,
    /// Restore the learned parameters from the snapshot taken at this model version.
    Rollback(u64),
    /// Re-assign up to `limit` profiles after `after` to their nearest segment as of now.
    Resegment { after: Option<String>, limit: usize },
    /// Install refitted centroids.
    SetCentroids(ndarray::Array2<f64>),
    /// Erase every trace of these customers: profile records, membership entries, open
    /// training examples in the expiry queue, and their share of the segment statistics.
    Erase(Vec<String>),
    /// Erase those of `ids` whose last event happened before `cutoff_ms` (event time), checked
    /// again here: candidates found by a scan outside the writer may have had events since.
    Purge { ids: Vec<String>, cutoff_ms: i64 },
}

/// What a maintenance operation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaintenanceOutcome {
    /// Model version after the operation.
    pub model_version: u64,
    /// For re-segmentation: where to continue (None when done).
    pub next_cursor: Option<String>,
    /// For re-segmentation and purge: profiles looked at.
    pub scanned: usize,
    /// For re-segmentation: profiles whose segment changed.
    pub changed: usize,
    /// For erase and purge: customers erased.
    pub erased: usize,
}

/// A message to the writer.
pub(crate) enum Request {
    /// Apply items; reply with one result per item, in order.
    Write {
        items: Vec<Item>,
        reply: Sender<Vec<Result<Ack>>>,
    },
    /// Run a maintenance operation.
    Maintain {
        op: Maintenance,
        reply: Sender<Result<MaintenanceOutcome>>,
    },
    /// Finish queued work, make everything durable and stop.
    Shutdown { reply: Sender<Result<()>> },
}

/// State shared between the writer and readers.
pub(crate) struct Shared {
    /// The model as of the last committed batch.
    pub(crate) model: RwLock<Arc<ModelState>>,
    /// Number of upcoming commits to fail on purpose (tests of the failure path).
    pub(crate) fail_commits: AtomicU32,
    /// Training examples waiting for their label, as of the last batch.
    pub(crate) open_examples: std::sync::atomic::AtomicUsize,
    /// Versions of the stored model snapshots, as of the last batch.
    pub(crate) snapshots: RwLock<Vec<u64>>,
    /// Counters of committed work (see [`WriteStats`]).
    pub(crate) counters: Counters,
    /// The compact vectors scanned by indexed `similar`, updated after each commit.
    pub(crate) lookalikes: Arc<LookalikeIndex>,
}

/// Running totals the writer keeps of what it committed (relaxed atomics: read for reporting).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    items: AtomicU64,
    key_writes: AtomicU64,
    bytes_written: AtomicU64,
}

impl Counters {
    /// The totals so far.
    pub(crate) fn snapshot(&self) -> WriteStats {
        WriteStats {
            commits: self.commits.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            key_writes: self.key_writes.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
        }
    }
}

/// What the writer has committed since the store was opened (see `Db::stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    /// Committed sled batches (each one `apply_batch`, plus flush/fsync as configured).
    pub commits: u64,
    /// Items (events, attribute updates, feedback) in committed write batches, duplicates included.
    pub items: u64,
    /// Keys inserted or removed by all committed batches (profiles, membership, model, snapshots).
    pub key_writes: u64,
    /// Bytes of keys and values inserted by all committed batches.
    pub bytes_written: u64,
}

impl WriteStats {
    /// Key writes per committed item (0 before the first commit).
    pub fn key_writes_per_item(&self) -> f64 {
        if self.items == 0 {
            0.0
        } else {
            self.key_writes as f64 / self.items as f64
        }
    }
}

/// Committed state the writer resumes from.
pub(crate) struct Recovered {
    /// The last committed model state.
    pub(crate) model: ModelState,
    /// The queue of open training examples, persisted or derived from the records.
    pub(crate) queue: RecoveredQueue,
    /// Versions of the stored model snapshots.
    pub(crate) snapshots: Vec<u64>,
}

/// Starts the writer thread.
///
/// # Errors
/// [`Error::Io`] if the thread cannot be spawned.
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
    } = recovered;
    let engine = Engine::new(model, queue, snapshots, layout, config.clone());
    *shared.snapshots.write() = engine.snapshot_versions();
    shared
        .open_examples
        .store(engine.open_examples(), Ordering::Relaxed);
    let poison = Arc::new(parking_lot::Mutex::new(None));
    let (sync_tx, sync_rx) = crossbeam_channel::bounded(SYNC_QUEUE);
    let syncer = Syncer {
        store: store.clone(),
        durability: config.durability,
        poison: poison.clone(),
    };
    let syncer = std::thread::Builder::new()
        .name("persona-sync".into())
        .spawn(move || syncer.run(sync_rx))?;
    let writer = Writer {
        store,
        config,
        engine,
        shared,
        poison,
        sync: Some(sync_tx),
        syncer: Some(syncer),
    };
    Ok(std::thread::Builder::new()
        .name("persona-writer".into())
        .spawn(move || writer.run(rx))?)
}

/// Groups of replies the writer may queue for the durability stage before it waits: bounds how
/// far the applied state runs ahead of the durable one.
const SYNC_QUEUE: usize = 4;

/// Replies waiting for the sync that covers their batch.
type Replies = Vec<(Sender<Vec<Result<Ack>>>, Vec<Result<Ack>>)>;

/// A message to the durability stage.
enum ToSync {
    /// Replies of the writer's last round; `applied` says whether it applied a batch to sled
    /// (otherwise the replies only wait for the syncs before them).
    Replies { replies: Replies, applied: bool },
    /// Reply once everything queued before has been synced and answered.
    Barrier(Sender<()>),
}

/// The durability stage: makes applied batches durable, then acknowledges them.
struct Syncer {
    store: Arc<Store>,
    durability: crate::config::Durability,
    /// Why the store is poisoned (a sync failed), shared with the writer.
    poison: Arc<parking_lot::Mutex<Option<String>>>,
}

impl Syncer {
    fn run(self, rx: Receiver<ToSync>) {
        while let Ok(first) = rx.recv() {
            // Everything queued now is covered by one sync.
            let mut group = vec![first];
            group.extend(rx.try_iter());
            let applied = group
                .iter()
                .any(|m| matches!(m, ToSync::Replies { applied: true, .. }));
            let failure = match self.poison.lock().clone() {
                Some(why) => Some(why),
                None if applied => match self.store.sync(self.durability) {
                    Ok(()) => None,
                    Err(e) => {
                        // Applied but maybe not durable: refuse everything from now on.
                        tracing::error!("making a commit durable failed: {e}");
                        let why = e.to_string();
                        *self.poison.lock() = Some(why.clone());
                        Some(why)
                    }
                },
                None => None,
            };
            for m in group {
                match m {
                    ToSync::Replies { replies, .. } => {
                        for (reply, results) in replies {
                            let results = match &failure {
                                None => results,
                                Some(why) => results
                                    .into_iter()
                                    .map(|r| r.and_then(|_| Err(Error::Poisoned(why.clone()))))
                                    .collect(),
                            };
                            // A waiter that gave up (dropped its receiver) is fine to ignore.
                            let _ = reply.send(results);
                        }
                    }
                    ToSync::Barrier(done) => {
                        let _ = done.send(());
                    }
                }
            }
        }
    }
}

struct Writer {
    store: Arc<Store>,
    config: Config,
    engine: Engine,
    shared: Arc<Shared>,
    /// Why the store is poisoned (a sync failed), shared with the durability stage.
    poison: Arc<parking_lot::Mutex<Option<String>>>,
    /// The durability stage's queue (taken when the writer stops).
    sync: Option<Sender<ToSync>>,
    syncer: Option<std::thread::JoinHandle<()>>,
}

type Waiter = (usize, Sender<Vec<Result<Ack>>>);

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        let max_batch = self.config.max_batch;
        let delay = self.config.max_batch_delay();
        while let Ok(first) = rx.recv() {
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
            // Gather more work: whatever is queued, then up to `delay` for stragglers.
            let deadline = Instant::now() + delay;
            while shutdown.is_none() && maintenance.is_none() && items.len() < max_batch {
                let next = match rx.try_recv() {
                    Ok(r) => Ok(r),
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
            let mut results = Vec::with_capacity(items.len());
            let mut applied = false;
            for chunk in items.chunks(max_batch) {
                let (r, a) = self.run_batch(chunk);
                results.extend(r);
                applied |= a;
            }
            if !waiters.is_empty() {
                let mut results = results.into_iter();
                let replies = waiters
                    .into_iter()
                    .map(|(n, reply)| (reply, results.by_ref().take(n).collect()))
                    .collect();
                self.queue_for_sync(ToSync::Replies { replies, applied });
            }
            if let Some((op, reply)) = maintenance {
                self.settle();
                let _ = reply.send(self.maintain(op));
            }
            if let Some(reply) = shutdown {
                let result = self.stop_syncer().and_then(|()| self.store.close());
                let _ = reply.send(result);
                return;
            }
        }
        // Every sender is gone (the Db was dropped without close): still make things durable.
        if let Err(e) = self.stop_syncer().and_then(|()| self.store.close()) {
            tracing::error!("closing the store failed: {e}");
        }
    }

    /// Queues a message for the durability stage (waits while its queue is full).
    fn queue_for_sync(&self, m: ToSync) {
        if let Some(tx) = &self.sync {
            if let Err(crossbeam_channel::SendError(m)) = tx.send(m) {
                // The stage is gone (it cannot panic, but be safe): answer here, unsynced
                // batches as failed.
                tracing::error!("the durability stage stopped");
                if let ToSync::Replies { replies, .. } = m {
                    for (reply, results) in replies {
                        let _ = reply.send(
                            results
                                .into_iter()
                                .map(|r| r.and_then(|_| Err(Error::Closed)))
                                .collect(),
                        );
                    }
                }
            }
        }
    }

    /// Waits until the durability stage has synced and answered everything queued so far.
    fn settle(&mut self) {
        let (done, wait) = crossbeam_channel::bounded(1);
        self.queue_for_sync(ToSync::Barrier(done));
        let _ = wait.recv();
    }

    /// Settles and stops the durability stage; an error if the store is poisoned.
    fn stop_syncer(&mut self) -> Result<()> {
        self.settle();
        self.sync = None;
        if let Some(handle) = self.syncer.take() {
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

    /// Applies one batch and hands it to sled (not yet durable: the durability stage syncs it);
    /// returns one result per item, and whether a batch was applied.
    fn run_batch(&mut self, items: &[Item]) -> (Vec<Result<Ack>>, bool) {
        if let Some(why) = self.poisoned() {
            let results = items
                .iter()
                .map(|_| Err(Error::Poisoned(why.clone())))
                .collect();
            return (results, false);
        }
        let before = self.engine.model.clone();
        let mut batch_state = BatchState::default();
        let results: Vec<Result<Ack>> = items
            .iter()
            .map(|item| self.engine.apply(&self.store, &mut batch_state, item))
            .collect();
        if batch_state.is_empty() && self.engine.model == before {
            return (results, false); // only duplicates or rejects: nothing to commit
        }
        match self.apply_commit(&mut batch_state) {
            Ok(()) => {
                self.publish(&batch_state);
                self.shared
                    .counters
                    .items
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                (results, true)
            }
            Err(e) => {
                tracing::error!("commit failed: {e}");
                self.engine.model = before;
                self.engine.undo(batch_state);
                let results = results
                    .into_iter()
                    .map(|r| r.and_then(|_| Err(e.clone())))
                    .collect();
                (results, false)
            }
        }
    }

    /// Makes a committed batch visible to readers.
    fn publish(&mut self, b: &BatchState) {
        self.engine.committed(b);
        self.shared.lookalikes.commit(b.written(), b.erased_ids());
        *self.shared.model.write() = Arc::new(self.engine.model.clone());
        *self.shared.snapshots.write() = self.engine.snapshot_versions();
        self.shared
            .open_examples
            .store(self.engine.open_examples(), Ordering::Relaxed);
    }

    /// Runs one maintenance operation as its own atomic batch.
    fn maintain(&mut self, op: Maintenance) -> Result<MaintenanceOutcome> {
        if let Some(why) = self.poisoned() {
            return Err(Error::Poisoned(why));
        }
        let before = self.engine.model.clone();
        let mut b = BatchState::default();
        let mut outcome = MaintenanceOutcome::default();
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
            Maintenance::SetCentroids(c) => self
                .engine
                .model
                .segments
                .set_centroids(c)
                .map_err(Error::from),
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
        };
        if let Err(e) = prepared {
            self.engine.model = before;
            self.engine.undo(b);
            return Err(e);
        }
        if b.is_empty() && self.engine.model == before {
            outcome.model_version = self.engine.model.version;
            return Ok(outcome);
        }
        match self.commit(&mut b) {
            Ok(()) => {
                self.publish(&b);
                outcome.model_version = self.engine.model.version;
                Ok(outcome)
            }
            Err(e) => {
                self.engine.model = before;
                self.engine.undo(b);
                Err(e)
            }
        }
    }

    /// Applies a batch to sled and makes it durable (maintenance, which runs with the
    /// durability stage settled, waits for its own sync).
    fn commit(&mut self, b: &mut BatchState) -> Result<()> {
        self.apply_commit(b)?;
        if let Err(e) = self.store.sync(self.config.durability) {
            // The batch is applied but maybe not durable: refuse further writes.
            *self.poison.lock() = Some(e.to_string());
            return Err(Error::Poisoned(e.to_string()));
        }
        Ok(())
    }

    /// Writes a batch into one sled batch and applies it (visible, not yet durable).
    fn apply_commit(&mut self, b: &mut BatchState) -> Result<()> {
        let mut batch = sled::Batch::default();
        let (keys, bytes) = self.engine.write_into(b, &mut batch);
        let injected = self
            .shared
            .fail_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if injected {
            return Err(Error::Io(std::io::Error::other("injected commit failure")));
        }
        self.store.apply(batch)?;
        let c = &self.shared.counters;
        c.commits.fetch_add(1, Ordering::Relaxed);
        c.key_writes.fetch_add(keys, Ordering::Relaxed);
        c.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}
