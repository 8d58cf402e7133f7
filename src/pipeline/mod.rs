//! The single writer: batching, apply, one atomic commit, durability, acknowledgements.
//!
//! All mutation happens on one thread. Callers send [`Request`]s through a bounded crossbeam
//! channel and block on a reply channel. The writer drains up to `max_batch` items (waiting at
//! most `max_batch_delay` for more once the queue is empty), applies them to a working copy of
//! the model ([`apply`]), writes the dirty profiles, membership changes and model state in ONE
//! sled batch, makes it durable as configured, publishes the new model to readers, and only then
//! acknowledges each item.
//!
//! Failure: if the commit fails, nothing of the batch is visible, the model and the expiry queue
//! are restored to their pre-batch values, and every waiter of the batch gets the error. If the
//! batch was applied but could not be made durable, the writer is *poisoned*: every later write
//! fails with [`Error::Poisoned`] until the store is reopened (and recovers what sled had made
//! durable).

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
    /// Look at up to `limit` profiles after `after` and erase those whose last event happened
    /// before `cutoff_ms` (event time).
    Purge {
        after: Option<String>,
        limit: usize,
        cutoff_ms: i64,
    },
}

/// What a maintenance operation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaintenanceOutcome {
    /// Model version after the operation.
    pub model_version: u64,
    /// For re-segmentation and purge: where to continue (None when done).
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
    let writer = Writer {
        store,
        config,
        engine,
        shared,
        poisoned: None,
    };
    Ok(std::thread::Builder::new()
        .name("persona-writer".into())
        .spawn(move || writer.run(rx))?)
}

struct Writer {
    store: Arc<Store>,
    config: Config,
    engine: Engine,
    shared: Arc<Shared>,
    poisoned: Option<String>,
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
            for chunk in items.chunks(max_batch) {
                results.extend(self.run_batch(chunk));
            }
            let mut results = results.into_iter();
            for (n, reply) in waiters {
                // A waiter that gave up (dropped its receiver) is fine to ignore.
                let _ = reply.send(results.by_ref().take(n).collect());
            }
            if let Some((op, reply)) = maintenance {
                let _ = reply.send(self.maintain(op));
            }
            if let Some(reply) = shutdown {
                let _ = reply.send(self.store.close());
                return;
            }
        }
        // Every sender is gone (the Db was dropped without close): still make things durable.
        if let Err(e) = self.store.close() {
            tracing::error!("closing the store failed: {e}");
        }
    }

    /// Applies and commits one batch; returns one result per item.
    fn run_batch(&mut self, items: &[Item]) -> Vec<Result<Ack>> {
        if let Some(why) = &self.poisoned {
            return items
                .iter()
                .map(|_| Err(Error::Poisoned(why.clone())))
                .collect();
        }
        let before = self.engine.model.clone();
        let mut batch_state = BatchState::default();
        let results: Vec<Result<Ack>> = items
            .iter()
            .map(|item| self.engine.apply(&self.store, &mut batch_state, item))
            .collect();
        if batch_state.is_empty() && self.engine.model == before {
            return results; // only duplicates or rejects: nothing to commit
        }
        match self.commit(&mut batch_state) {
            Ok(()) => {
                self.publish(&batch_state);
                self.shared
                    .counters
                    .items
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                results
            }
            Err(e) => {
                tracing::error!("commit failed: {e}");
                self.engine.model = before;
                self.engine.undo(batch_state);
                results
                    .into_iter()
                    .map(|r| r.and_then(|_| Err(e.clone())))
                    .collect()
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
        if let Some(why) = &self.poisoned {
            return Err(Error::Poisoned(why.clone()));
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
            Maintenance::Purge {
                after,
                limit,
                cutoff_ms,
            } => self
                .engine
                .purge(&self.store, &mut b, after.as_deref(), limit, cutoff_ms)
                .map(|(next, scanned, erased)| {
                    outcome.next_cursor = next;
                    outcome.scanned = scanned;
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

    fn commit(&mut self, b: &mut BatchState) -> Result<()> {
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
        if let Err(e) = self.store.sync(self.config.durability) {
            // The batch is applied but maybe not durable: refuse further writes.
            self.poisoned = Some(e.to_string());
            return Err(Error::Poisoned(e.to_string()));
        }
        let c = &self.shared.counters;
        c.commits.fetch_add(1, Ordering::Relaxed);
        c.key_writes.fetch_add(keys, Ordering::Relaxed);
        c.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}
