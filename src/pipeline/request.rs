//! What callers send the writer and get back (items, requests, acknowledgements, replies),
//! and the counters and state the writer's stages share with readers.

use super::*;
use crate::error::Result;
use crate::features::AttrValue;
use crate::index::LookalikeIndex;
use crate::model::ModelState;
use crate::Event;
use crossbeam_channel::Sender;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The outcome of one acknowledged write.
#[non_exhaustive]
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
    /// A key written as given in the same commit as the items before it in its request (a
    /// cluster node's applied position in a partition log: `src/cluster/log.rs`). Not a
    /// customer's: never sealed. Acknowledged with an empty [`Ack`].
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Mark { key: Vec<u8>, value: Vec<u8> },
    /// The items after it in its request, up to its [`Item::Mark`], were learned by another
    /// cluster node (a partition's log replayed by its new owner): they change profiles, not
    /// the merged models (scaler, bandit counts). Acknowledged with an empty [`Ack`].
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Replay,
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
    /// Fit the segments to these raw vectors (a sample of the profiles as of now); with
    /// `fresh`, from seeded fresh starts only ([`crate::model::Segments::refit_fresh`]).
    FitSegments {
        points: Vec<Vec<f64>>,
        fresh: Option<u64>,
    },
    /// Erase every trace of these customers: profile records, membership entries, open
    /// training examples in the expiry queue, and their share of the segment statistics.
    Erase(Vec<String>),
    /// Erase those of `ids` whose last event happened before `cutoff_ms` (event time), checked
    /// again here: candidates found by a scan outside the writer may have had events since.
    Purge { ids: Vec<String>, cutoff_ms: i64 },
    /// Define a trigger at run time (stored with the batch).
    TriggerAdd(crate::triggers::Trigger),
    /// Delete a trigger defined at run time.
    TriggerDel(String),
    /// Moves a trigger consumer's position to an id (never back).
    TriggerAck(String, u64),
    /// Moves the watermark to this time if later, as an event then would, without an event.
    AdvanceWatermark(i64),
    /// Takes a cluster's merged model on (`src/cluster/models.rs`), then moves the watermark
    /// to the cluster's if later.
    #[cfg(feature = "cluster")]
    Adopt(Box<crate::model::merge::Adoption>),
}

/// What a maintenance operation did.
#[non_exhaustive]
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
    /// For erase and purge: feedback outcomes of the erased customers subtracted from the
    /// strategy's counts (those in the feedback ledger).
    pub feedback_undone: usize,
    /// For erase and purge: feedback-ledger entries of the erased customers that did not
    /// decode (removed, not subtracted).
    pub feedback_unreadable: usize,
    /// For erase and purge: training examples of the erased customers dropped before any model
    /// learned them (open examples, held positives, cohorts a row was taken out of).
    pub examples_dropped: usize,
    /// For erase and purge: item and category names only the erased customers had named,
    /// dropped from the models (`model/names.rs`).
    pub names_dropped: usize,
    /// For a segment fit: whether it fitted (false: too few distinct vectors, the centroids
    /// before it stay).
    pub refitted: bool,
}

/// A message to the writer.
pub(crate) enum Request {
    /// Apply items; reply with one result per item, in order.
    Write { items: Vec<Item>, reply: WriteReply },
    /// Run a maintenance operation.
    Maintain {
        op: Maintenance,
        reply: Sender<Result<MaintenanceOutcome>>,
    },
    /// Finish queued work, make everything durable and stop.
    Shutdown { reply: Sender<Result<()>> },
}

/// Where the results of one [`Request::Write`] go: a channel, and optionally whom to tell once
/// they are in it. Dropped unsent (the writer stopped or panicked), it closes the channel first
/// and then tells too, so that a waiter that does not block learns of it.
pub(crate) struct WriteReply {
    pub(super) tx: Option<Sender<Vec<Result<Ack>>>>,
    pub(super) notify: Option<(Arc<dyn Notify>, usize)>,
}

impl WriteReply {
    /// Results go to `tx`; `notify` (if any) is told with its tag after each send.
    pub(crate) fn new(
        tx: Sender<Vec<Result<Ack>>>,
        notify: Option<(Arc<dyn Notify>, usize)>,
    ) -> WriteReply {
        WriteReply {
            tx: Some(tx),
            notify,
        }
    }

    /// Sends the results, then notifies. A waiter that gave up (dropped its receiver) is
    /// ignored.
    pub(crate) fn send(mut self, results: Vec<Result<Ack>>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(results);
        }
        // Dropping `self` notifies.
    }
}

impl Drop for WriteReply {
    fn drop(&mut self) {
        // The channel goes first: whoever is told finds the results, or the channel closed.
        drop(self.tx.take());
        if let Some((notify, tag)) = self.notify.take() {
            notify.notify(tag);
        }
    }
}

/// State shared between the writer and readers.
pub(crate) struct Shared {
    /// The model as of the last committed batch.
    pub(crate) model: RwLock<Arc<ModelState>>,
    /// Faults injected by tests (empty without the `testing` feature).
    pub(crate) faults: super::faults::Faults,
    /// Training examples waiting for their label, as of the last batch.
    pub(crate) open_examples: std::sync::atomic::AtomicUsize,
    /// Versions of the stored model snapshots, as of the last batch.
    pub(crate) snapshots: RwLock<Vec<u64>>,
    /// Counters of committed work (see [`WriteStats`]).
    pub(crate) counters: Counters,
    /// The compact vectors scanned by indexed `similar`, updated after each commit.
    pub(crate) lookalikes: Arc<LookalikeIndex>,
    /// The co-occurrence table of `recommend`, updated after each commit.
    pub(crate) together: Arc<crate::together::Together>,
    /// The triggers with their counts, as of the last batch that changed them.
    pub(crate) triggers: RwLock<Arc<Vec<crate::triggers::TriggerInfo>>>,
    /// The id of the first trigger firing not yet durable: readers of the outbox hand out
    /// only firings below it, so none is acted on that a crash could take back (and its id
    /// give to another firing). Raised by the durability stage after each sync.
    pub(crate) durable_firings: AtomicU64,
}

/// Running totals the writer keeps of what it committed (relaxed atomics: read for reporting).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) items: AtomicU64,
    pub(super) key_writes: AtomicU64,
    pub(super) bytes_written: AtomicU64,
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
#[non_exhaustive]
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
