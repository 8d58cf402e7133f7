//! The state of one batch the writer prepares (records touched, undo log, erasures, what to
//! write), and what the writer keeps about batches not yet applied or committed: the unapplied
//! batches it reads through, the persisted expiry queue's position.

use super::cohorts;
use super::held::{self};
use super::sample::{self};
use crate::model::ModelState;
use crate::storage::queue;
use crate::storage::record::ProfileRecord;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// A record touched by the current batch.
pub(super) struct Working {
    pub(super) record: ProfileRecord,
    /// Whether the record must be written.
    pub(super) dirty: bool,
    /// What stands for the customer as the holder of names in the models (made on first
    /// use: [`Working::holder`]).
    pub(super) holder: Option<crate::model::names::Holder>,
}

impl Working {
    /// The customer's holder of names in the models (`Store::holder_of`, once per batch).
    pub(super) fn holder(
        &mut self,
        store: &crate::storage::Store,
        customer: &str,
    ) -> crate::model::names::Holder {
        *self.holder.get_or_insert_with(|| store.holder_of(customer))
    }
}

/// Changes to the writer's in-memory state made by a batch, undone if its commit fails.
pub(super) enum Undo {
    Inserted(queue::Entry),
    Removed(queue::Entry),
    /// A change of the segment-fitting sample.
    Sample(sample::Change),
    /// A change of the positives held until their deadline.
    Held(held::Change),
    /// A change of the refit rows the propensity is refitted on.
    Cohort(cohorts::Change),
    /// A change of an `INACTIVE_DAYS` trigger's silence index.
    Silence(crate::triggers::SilenceUndo),
}

/// Batches the writer has handed to the apply stage, oldest first, each with its sequence
/// number, kept until the apply stage reports them applied. The writer reads a record from
/// them before reading sled, so a batch never builds on a stale version of a record that an
/// earlier, not yet applied batch wrote.
#[derive(Default)]
pub(crate) struct Unapplied {
    pub(super) batches: VecDeque<(u64, Arc<BatchState>)>,
}

impl Unapplied {
    /// Adds a batch handed to the apply stage as number `seq`.
    pub(crate) fn push(&mut self, seq: u64, state: Arc<BatchState>) {
        self.batches.push_back((seq, state));
    }

    /// Forgets the batches up to number `applied` (sled has them).
    pub(crate) fn applied_through(&mut self, applied: u64) {
        while self.batches.front().is_some_and(|(seq, _)| *seq <= applied) {
            self.batches.pop_front();
        }
    }

    /// The customer's record as the newest unapplied batch that touched it left it.
    pub(super) fn record(&self, customer: &str) -> Option<Pending<'_>> {
        self.batches.iter().rev().find_map(|(_, b)| {
            if b.erased.contains(customer) {
                Some(Pending::Erased)
            } else {
                b.records.get(customer).map(|w| Pending::Record(&w.record))
            }
        })
    }

    /// The model snapshot at `version`, if an unapplied batch wrote it.
    pub(super) fn snapshot(&self, version: u64) -> Option<&ModelState> {
        self.batches
            .iter()
            .rev()
            .find_map(|(_, b)| b.snapshot.as_ref().filter(|s| s.version == version))
    }
}

/// What the unapplied batches say about a customer.
pub(super) enum Pending<'a> {
    /// The newest unapplied batch that touched the customer left this record.
    Record(&'a ProfileRecord),
    /// It erased the customer.
    Erased,
}

/// The persisted expiry queue's keys as committed (see [`crate::storage::queue`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct QueueLog {
    /// The stored checkpoint's chunks and entries (as its meta record says).
    pub(crate) chunks: u32,
    pub(crate) entries: u64,
    /// Keys the next checkpoint removes: the stored deltas (and, when the queue was derived
    /// from the records, every queue key found at open).
    pub(crate) stale: Vec<Vec<u8>>,
    /// Sequence number of the next delta.
    pub(crate) next_delta: u64,
    /// Entries in the stored deltas.
    pub(crate) delta_entries: u64,
    /// The stored queue does not match `expiry` (it was derived from the records at open):
    /// the next commit writes a checkpoint.
    pub(crate) checkpoint_due: bool,
}

/// What one batch wrote of the persisted queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueueWrite {
    /// A new checkpoint of this many chunks and entries (every stale key removed).
    Checkpoint { chunks: u32, entries: u64 },
    /// One delta of this many entries, under the next sequence number.
    Delta { entries: u64 },
}

/// The queue the writer starts from.
pub(crate) enum RecoveredQueue {
    /// Loaded from its persisted copy.
    Stored(crate::storage::queue::LoadedQueue),
    /// Derived from the records' pending examples, (id, snapshot time); `keys` says which
    /// queue keys are stored (to be replaced by the first commit's checkpoint).
    Derived {
        pending: Vec<(String, i64)>,
        keys: QueueLog,
    },
}

/// The working set of one batch.
#[derive(Default)]
pub(crate) struct BatchState {
    pub(super) records: HashMap<String, Working>,
    pub(super) undo: Vec<Undo>,
    /// Take a model snapshot with this batch even if `snapshot_every` does not ask for one.
    pub(crate) force_snapshot: bool,
    /// Snapshot written by this batch, and snapshots it deletes (applied to the list on commit).
    pub(super) new_snapshot: Option<u64>,
    pub(super) dropped_snapshots: Vec<u64>,
    /// Customers erased by this batch.
    pub(super) erased: BTreeSet<String>,
    /// What this batch wrote of the persisted queue (applied to the log on commit).
    pub(super) queue_write: Option<QueueWrite>,
    /// The model snapshot this batch writes, for reads before sled has applied it.
    pub(super) snapshot: Option<ModelState>,
    /// Triggers fired by the batch's events (ids assigned when written), and the names of
    /// those suppressed by a cooldown or the daily cap.
    pub(crate) fired: Vec<crate::triggers::Firing>,
    pub(super) suppressed: Vec<String>,
    /// Keys of the outbox the batch rewrites without erased customers' firings (with whether
    /// it is the newest key, which stays even when empty), and how many of the oldest it
    /// removes (past the retention).
    pub(super) outbox_rewrites: Vec<(crate::storage::triggers::Chunk, bool)>,
    pub(super) outbox_trimmed: usize,
    /// Trigger definitions the batch adds (Some) or deletes (None), by name.
    pub(super) trigger_defs: Vec<(String, Option<crate::triggers::Trigger>)>,
    /// Trigger consumers' new positions: (consumer, id of the last firing acknowledged).
    pub(super) trigger_acks: Vec<(String, u64)>,
    /// Feedback outcomes recorded by the batch, by customer (written to the ledger).
    pub(super) feedback: Vec<(String, crate::storage::feedback::FeedbackOutcome)>,
    /// Ledger keys the batch removes (an erased customer's, and the other keys of an erased
    /// customer whose values do not open), and how many outcomes it subtracted from the
    /// strategy's counts.
    pub(super) ledger_removed: Vec<Vec<u8>>,
    pub(super) feedback_undone: usize,
    pub(super) feedback_unreadable: usize,
    /// Training examples of the erased customers the batch drops before any model learned
    /// them: open examples, held positives, refit rows of theirs.
    pub(super) examples_dropped: usize,
    /// Names in the models only the batch's erased customers had named, dropped.
    pub(super) names_dropped: usize,
    /// Kept model snapshots rewritten without those names: (version, encoded record).
    pub(super) snapshot_rewrites: Vec<(u64, Vec<u8>)>,
    /// The ends of the refit blocks the batch closed (the watermark passed them): the rows
    /// taken for them are written with the batch (`cohorts.rs`, "Persisted").
    pub(super) rows_closed: Vec<i64>,
    /// Keys written as given with the batch ([`super::Item::Mark`]): a cluster node's
    /// applied position in a partition log, committed with the writes it applied.
    pub(super) marks: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A record's model outcome before a write: its contribution to the segment statistics.
#[derive(Clone, Copy)]
pub(super) struct Prev {
    pub(super) segment: Option<u16>,
    pub(super) propensity: f32,
    pub(super) spend: f64,
    /// Purchases so far (for the triggers).
    pub(super) purchases: u64,
}

impl Prev {
    pub(super) fn of(r: &ProfileRecord) -> Prev {
        Prev {
            segment: r.segment,
            propensity: r.propensity,
            spend: r.state.spend,
            purchases: r.state.kind_counts[crate::EventKind::Purchase.index()],
        }
    }

    /// What a trigger sees of it.
    pub(super) fn observed(&self) -> crate::triggers::Observed {
        crate::triggers::Observed {
            segment: self.segment,
            propensity: f64::from(self.propensity),
            spend: self.spend,
            purchases: self.purchases,
        }
    }
}

impl BatchState {
    /// Every profile the batch writes: id, segment after the batch, state.
    pub(crate) fn written(
        &self,
    ) -> impl Iterator<Item = (&str, Option<u16>, &crate::features::ProfileState)> {
        self.records
            .iter()
            .filter(|(_, w)| w.dirty)
            .map(|(id, w)| (id.as_str(), w.record.segment, &w.record.state))
    }

    /// Every customer the batch erases.
    pub(crate) fn erased_ids(&self) -> impl Iterator<Item = &str> {
        self.erased.iter().map(String::as_str)
    }

    /// Whether the batch changed anything that must be committed.
    pub(crate) fn is_empty(&self) -> bool {
        !self.force_snapshot
            && self.erased.is_empty()
            && self.trigger_defs.is_empty()
            && self.trigger_acks.is_empty()
            && self.feedback.is_empty()
            && self.ledger_removed.is_empty()
            && self.marks.is_empty()
            && !self.records.values().any(|w| w.dirty)
    }
}
