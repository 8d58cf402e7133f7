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
mod commit;
mod examples;
pub(crate) mod held;
mod maintain;
mod recent;
pub(crate) mod sample;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::features::vector::FeatureLayout;
use crate::features::AttrValue;
use crate::model::ModelState;
use crate::query::lookalike_index::LookalikeIndex;
use crate::storage::Store;
use crate::Event;
use apply::Engine;
use batch::BatchState;
pub(crate) use batch::{QueueLog, RecoveredQueue};
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
    /// Fit the segments to these raw vectors (a sample of the profiles as of now).
    FitSegments(Vec<Vec<f64>>),
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
    Write { items: Vec<Item>, reply: WriteReply },
    /// Run a maintenance operation.
    Maintain {
        op: Maintenance,
        reply: Sender<Result<MaintenanceOutcome>>,
    },
    /// Finish queued work, make everything durable and stop.
    Shutdown { reply: Sender<Result<()>> },
}

/// Something to tell when the results of a write have been sent: how the RESP server's event
/// loops learn, without blocking, that a write they submitted is acknowledged.
pub(crate) trait Notify: Send + Sync {
    /// The results of the write submitted with `tag` are waiting in its channel.
    fn notify(&self, tag: usize);
}

/// Where the results of one [`Request::Write`] go: a channel, and optionally whom to tell once
/// they are in it. Dropped unsent (the writer stopped or panicked), it closes the channel first
/// and then tells too, so that a waiter that does not block learns of it.
pub(crate) struct WriteReply {
    tx: Option<Sender<Vec<Result<Ack>>>>,
    notify: Option<(Arc<dyn Notify>, usize)>,
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
    fn send(mut self, results: Vec<Result<Ack>>) {
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
    /// Number of upcoming commits to fail on purpose (tests of the failure path).
    pub(crate) fail_commits: AtomicU32,
    /// Microseconds the apply stage waits before each batch (tests of the pipeline).
    pub(crate) apply_delay_us: AtomicU64,
    /// Number of upcoming syncs of the durability stage to fail on purpose (tests).
    pub(crate) fail_syncs: AtomicU32,
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
    /// The segment-fitting sample, and whether it still has to be stored (it was built from
    /// the profiles of a store written before it existed).
    pub(crate) sample: (sample::Sample, bool),
    /// The positive training examples held until their deadline.
    pub(crate) held: held::Held,
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
    } = recovered;
    let engine = Engine::new(
        model,
        queue,
        snapshots,
        sample,
        held,
        layout,
        config.clone(),
    );
    *shared.snapshots.write() = engine.snapshot_versions();
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

/// Groups of replies the apply stage may queue for the durability stage before it waits:
/// bounds how far the applied state runs ahead of the durable one.
const SYNC_QUEUE: usize = 4;

/// Rounds the writer may queue for the apply stage before it waits: bounds how far the
/// prepared state runs ahead of the applied one (and how many batches the writer reads
/// records from before sled).
const APPLY_QUEUE: usize = 1;

/// Replies waiting for the sync that covers their batch.
type Replies = Vec<(WriteReply, Vec<Result<Ack>>)>;

/// A batch the writer prepared: the sled batch, and what to publish once sled applied it.
struct Prepared {
    /// Sequence number (the writer's count of prepared batches).
    seq: u64,
    batch: sled::Batch,
    /// The batch's working set (its written records and erasures, for the lookalike index).
    state: Arc<BatchState>,
    /// The model, snapshot versions and open examples after the batch.
    model: Arc<ModelState>,
    snapshots: Vec<u64>,
    open_examples: usize,
    /// Items in the batch, keys written and bytes inserted.
    items: u64,
    keys: u64,
    bytes: u64,
}

/// Makes an applied batch visible to readers and counts it.
fn publish(shared: &Shared, p: &Prepared) {
    shared
        .lookalikes
        .commit(p.state.written(), p.state.erased_ids());
    *shared.model.write() = p.model.clone();
    *shared.snapshots.write() = p.snapshots.clone();
    shared
        .open_examples
        .store(p.open_examples, Ordering::Relaxed);
    let c = &shared.counters;
    c.commits.fetch_add(1, Ordering::Relaxed);
    c.items.fetch_add(p.items, Ordering::Relaxed);
    c.key_writes.fetch_add(p.keys, Ordering::Relaxed);
    c.bytes_written.fetch_add(p.bytes, Ordering::Relaxed);
}

/// A message to the apply stage.
enum ToApply {
    /// One round of the writer: its batches, in order, then its replies.
    Round {
        batches: Vec<Prepared>,
        replies: Replies,
    },
    /// Reply once everything queued before has been applied, synced and answered.
    Barrier(Sender<()>),
}

/// A message to the durability stage.
enum ToSync {
    /// Replies of the writer's last round, and the batches of it that sled applied, to publish
    /// (with none, the replies only wait for the syncs before them).
    Replies {
        replies: Replies,
        applied: Vec<Prepared>,
    },
    /// Reply once everything queued before has been synced and answered.
    Barrier(Sender<()>),
}

/// The apply stage: hands the writer's prepared batches to sled, in order, and passes them
/// with the replies on to the durability stage (which publishes them: this stage is the
/// pipeline's busiest). If sled fails to apply a batch, the store is poisoned: the writer's
/// state is already ahead of it.
struct Applier {
    store: Arc<Store>,
    shared: Arc<Shared>,
    poison: Arc<parking_lot::Mutex<Option<String>>>,
    /// Sequence number of the last batch applied (or given up on), read by the writer.
    applied: Arc<AtomicU64>,
    sync: Sender<ToSync>,
    syncer: std::thread::JoinHandle<()>,
}

impl Applier {
    fn run(self, rx: Receiver<ToApply>) {
        for m in rx {
            match m {
                ToApply::Round { batches, replies } => {
                    let mut applied = Vec::with_capacity(batches.len());
                    for mut p in batches {
                        let seq = p.seq;
                        let delay = self.shared.apply_delay_us.load(Ordering::Relaxed);
                        if delay > 0 {
                            std::thread::sleep(std::time::Duration::from_micros(delay));
                        }
                        if self.poison.lock().is_none() {
                            match self.store.apply(std::mem::take(&mut p.batch)) {
                                Ok(()) => applied.push(p),
                                Err(e) => {
                                    // Later batches were prepared on top of this one: refuse
                                    // everything until the store is reopened.
                                    tracing::error!("applying a commit failed: {e}");
                                    *self.poison.lock() = Some(e.to_string());
                                }
                            }
                        }
                        self.applied.store(seq, Ordering::Release);
                    }
                    self.forward(ToSync::Replies { replies, applied });
                }
                ToApply::Barrier(done) => self.forward(ToSync::Barrier(done)),
            }
        }
        drop(self.sync);
        let _ = self.syncer.join();
    }

    /// Queues a message for the durability stage (waits while its queue is full).
    fn forward(&self, m: ToSync) {
        if let Err(crossbeam_channel::SendError(m)) = self.sync.send(m) {
            // The stage is gone (it cannot panic, but be safe): answer here, unsynced
            // batches as failed, and refuse every later write.
            tracing::error!("the durability stage stopped");
            *self.poison.lock() = Some("the durability stage stopped".into());
            match m {
                ToSync::Replies { replies, .. } => answer_closed(replies),
                ToSync::Barrier(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}

/// Takes one from a test's count of failures to inject; whether there was one.
fn take_one(failures: &AtomicU32) -> bool {
    failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Answers every item of `replies` that succeeded with [`Error::Closed`].
fn answer_closed(replies: Replies) {
    for (reply, results) in replies {
        reply.send(
            results
                .into_iter()
                .map(|r| r.and_then(|_| Err(Error::Closed)))
                .collect(),
        );
    }
}

/// The durability stage: publishes applied batches to readers, makes them durable, then
/// acknowledges them.
struct Syncer {
    store: Arc<Store>,
    shared: Arc<Shared>,
    durability: crate::config::Durability,
    /// Why the store is poisoned (a sync failed), shared with the writer.
    poison: Arc<parking_lot::Mutex<Option<String>>>,
    /// Items answered so far (read by the writer to size its rounds).
    answered: Arc<AtomicU64>,
}

impl Syncer {
    /// Makes everything applied so far durable, or fails as a test injected.
    fn sync(&self) -> Result<()> {
        if take_one(&self.shared.fail_syncs) {
            return Err(Error::Io(std::io::Error::other("injected sync failure")));
        }
        self.store.sync(self.durability)
    }

    fn run(self, rx: Receiver<ToSync>) {
        while let Ok(first) = rx.recv() {
            // Everything queued now is covered by one sync.
            let mut group = vec![first];
            group.extend(rx.try_iter());
            let mut applied = false;
            for m in &group {
                if let ToSync::Replies {
                    applied: batches, ..
                } = m
                {
                    for p in batches {
                        publish(&self.shared, p);
                        applied = true;
                    }
                }
            }
            // Not `match self.poison.lock()...`: the guard would live through the sync, keeping
            // the writer and the apply stage waiting for the disk (and deadlock this thread
            // when it poisons the store below).
            let poisoned = self.poison.lock().clone();
            let failure = match poisoned {
                Some(why) => Some(why),
                None if applied => match self.sync() {
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
                        let items: usize = replies.iter().map(|(_, r)| r.len()).sum();
                        for (reply, results) in replies {
                            let results = match &failure {
                                None => results,
                                Some(why) => results
                                    .into_iter()
                                    .map(|r| r.and_then(|_| Err(Error::Poisoned(why.clone()))))
                                    .collect(),
                            };
                            reply.send(results);
                        }
                        self.answered.fetch_add(items as u64, Ordering::Release);
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
            for chunk in items.chunks(max_batch) {
                let (r, prepared) = self.run_batch(chunk);
                results.extend(r);
                batches.extend(prepared);
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
        let (keys, bytes) = self.engine.write_into(b, &mut batch);
        if take_one(&self.shared.fail_commits) {
            return Err(Error::Io(std::io::Error::other("injected commit failure")));
        }
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
        Prepared {
            seq,
            batch,
            state: Arc::new(state),
            model: Arc::new(self.engine.model.clone()),
            snapshots: self.engine.snapshot_versions(),
            open_examples: self.engine.open_examples(),
            items,
            keys,
            bytes,
        }
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
            Maintenance::FitSegments(points) => {
                self.engine.model.segments.refit(&points);
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
        // The apply and durability stages are settled: this batch is applied and synced here.
        let committed = self.prepare(&mut b).and_then(|(batch, keys, bytes)| {
            self.store.apply(batch)?;
            if let Err(e) = self.store.sync(self.config.durability) {
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
}
