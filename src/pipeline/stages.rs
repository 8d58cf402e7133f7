//! The writer's two downstream stages: the apply stage (`persona-apply`), which applies each
//! prepared sled batch and publishes the new model, and the durability stage (`persona-sync`),
//! which makes applied batches durable as configured and answers their callers.

use super::*;
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::storage::Store;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Groups of replies the apply stage may queue for the durability stage before it waits:
/// bounds how far the applied state runs ahead of the durable one.
pub(super) const SYNC_QUEUE: usize = 4;

/// Rounds the writer may queue for the apply stage before it waits: bounds how far the
/// prepared state runs ahead of the applied one (and how many batches the writer reads
/// records from before sled).
pub(super) const APPLY_QUEUE: usize = 1;

/// A batch the writer prepared: the sled batch, and what to publish once sled applied it.
pub(super) struct Prepared {
    /// Sequence number (the writer's count of prepared batches).
    pub(super) seq: u64,
    pub(super) batch: sled::Batch,
    /// The batch's working set (its written records and erasures, for the lookalike index).
    pub(super) state: Arc<BatchState>,
    /// The model, snapshot versions and open examples after the batch.
    pub(super) model: Arc<ModelState>,
    pub(super) snapshots: Vec<u64>,
    pub(super) open_examples: usize,
    /// The triggers after the batch, if it changed them.
    pub(super) triggers: Option<Arc<Vec<crate::triggers::TriggerInfo>>>,
    /// The id after the batch's last firing, if it made any (see `Shared::durable_firings`).
    pub(super) firings_next: Option<u64>,
    /// Items in the batch, keys written and bytes inserted.
    pub(super) items: u64,
    pub(super) keys: u64,
    pub(super) bytes: u64,
}

/// Makes an applied batch visible to readers and counts it.
pub(super) fn publish(shared: &Shared, p: &Prepared) {
    shared
        .lookalikes
        .commit(p.state.written(), p.state.erased_ids());
    *shared.model.write() = p.model.clone();
    *shared.snapshots.write() = p.snapshots.clone();
    if let Some(t) = &p.triggers {
        *shared.triggers.write() = t.clone();
    }
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
pub(super) enum ToApply {
    /// One round of the writer: its batches, in order, then its replies.
    Round {
        batches: Vec<Prepared>,
        replies: Replies,
    },
    /// Reply once everything queued before has been applied, synced and answered.
    Barrier(Sender<()>),
}

/// A message to the durability stage.
pub(super) enum ToSync {
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
pub(super) struct Applier {
    pub(super) store: Arc<Store>,
    pub(super) shared: Arc<Shared>,
    pub(super) poison: Arc<parking_lot::Mutex<Option<String>>>,
    /// Sequence number of the last batch applied (or given up on), read by the writer.
    pub(super) applied: Arc<AtomicU64>,
    pub(super) sync: Sender<ToSync>,
    pub(super) syncer: std::thread::JoinHandle<()>,
}

impl Applier {
    pub(super) fn run(self, rx: Receiver<ToApply>) {
        for m in rx {
            match m {
                ToApply::Round { batches, replies } => {
                    let mut applied = Vec::with_capacity(batches.len());
                    for mut p in batches {
                        let seq = p.seq;
                        if let Some(delay) = self.shared.faults.apply_delay() {
                            std::thread::sleep(delay);
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
    pub(super) fn forward(&self, m: ToSync) {
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
/// Answers every item of `replies` that succeeded with [`Error::Closed`].
pub(super) fn answer_closed(replies: Replies) {
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
pub(super) struct Syncer {
    pub(super) store: Arc<Store>,
    pub(super) shared: Arc<Shared>,
    pub(super) durability: crate::config::Durability,
    /// Why the store is poisoned (a sync failed), shared with the writer.
    pub(super) poison: Arc<parking_lot::Mutex<Option<String>>>,
    /// Items answered so far (read by the writer to size its rounds).
    pub(super) answered: Arc<AtomicU64>,
}

impl Syncer {
    /// Makes everything applied so far durable, or fails as a test injected.
    pub(super) fn sync(&self) -> Result<()> {
        if self.shared.faults.take_sync_failure() {
            return Err(Error::Io(std::io::Error::other("injected sync failure")));
        }
        self.store.sync(self.durability)
    }

    pub(super) fn run(self, rx: Receiver<ToSync>) {
        while let Ok(first) = rx.recv() {
            // Everything queued now is covered by one sync.
            let mut group = vec![first];
            group.extend(rx.try_iter());
            let mut applied = false;
            let mut firings_next = None;
            for m in &group {
                if let ToSync::Replies {
                    applied: batches, ..
                } = m
                {
                    for p in batches {
                        publish(&self.shared, p);
                        applied = true;
                        firings_next = p.firings_next.max(firings_next);
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
                    Ok(()) => {
                        // Their firings may be handed out now.
                        if let Some(next) = firings_next {
                            self.shared
                                .durable_firings
                                .fetch_max(next, Ordering::AcqRel);
                        }
                        None
                    }
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
