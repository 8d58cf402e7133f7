//! Applying one batch: events and attribute changes → profile records, model updates and the
//! set of keys to write. Runs on the writer thread only.
//!
//! Per event, in order: advance the watermark, labelling as negative every training example
//! whose horizon ended before it; if the event is a target event inside its customer's open
//! example's horizon, label that example positive; apply the event to the profile (a new
//! version); compute the feature vector as of the watermark; assign its segment; predict the
//! propensity; if the customer has no open example, open one; count the event towards the
//! segments' fit schedule, and fit them to the customer sample when one is due. Every
//! prediction is made before the example it scores is learned (prequential evaluation). The
//! scaler the propensity model reads is fed every event's vector and each silent customer's
//! vector at the end of a silent horizon.
//!
//! The propensity model learns from the population it is served: a training example is the
//! profile as of a *checkpoint*, not as of an event. A customer's checkpoints are one horizon
//! apart on a grid offset by a hash of the id (so examples are taken at times independent of
//! the customer's own events, and deadlines spread over the horizon); the example at checkpoint
//! `c` is positive if a target event comes in `(c, c + horizon]`, negative when the watermark
//! passes `c + horizon` first, and the next example is at `c + horizon`. A customer's first
//! example is at their first checkpoint after their first event. Until the first event after
//! its checkpoint, an example's features are implicit (the profile as of `c`, derivable from
//! the unchanged state); that event stores them. Chains of silence are capped: after
//! `silent_horizons` examples with no event, the chain stops until the customer returns. These
//! examples cost no writes of their own: they are derived from the unchanged stored state, and
//! stored only when the customer's state changes while one is open.

use super::held::{self, Held};
use super::recent::RecentRecords;
use super::sample::{self, Sample};
use super::{Ack, Item};
use crate::config::Config;
use crate::config::DriftReaction;
use crate::error::{Error, Result};
use crate::event::wall_clock_ms;
use crate::features::vector::FeatureLayout;
use crate::features::{CompactEvent, ProfileOp, ProfileState};
use crate::model::drift::{Detection, MIN_EXAMPLES};
use crate::model::ModelState;
use crate::storage::record::{PendingExample, ProfileRecord, RecordState};
use crate::storage::{keys, queue, Store};
use crate::Event;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// A record touched by the current batch.
struct Working {
    record: ProfileRecord,
    /// Whether the record must be written.
    dirty: bool,
}

/// Changes to the expiry queue made by a batch, undone if its commit fails.
enum Undo {
    Inserted(queue::Entry),
    Removed(queue::Entry),
    /// A change of the segment-fitting sample.
    Sample(sample::Change),
    /// A change of the positives held until their deadline.
    Held(held::Change),
}

/// The writer's state: the committed model (a working copy during a batch) and the queue of
/// open training examples ordered by the time their horizon ends.
pub(crate) struct Engine {
    pub(crate) model: ModelState,
    expiry: BTreeSet<queue::Entry>,
    layout: FeatureLayout,
    config: Config,
    horizon_ms: i64,
    /// Versions of the stored model snapshots, oldest first.
    snapshots: VecDeque<u64>,
    /// Where the persisted copy of `expiry` stands.
    queue_log: QueueLog,
    /// Batches handed to the apply stage that sled may not have applied yet.
    pub(crate) unapplied: Unapplied,
    /// Records read from sled ahead of the current round ([`Engine::prefetch`]), undecoded;
    /// None for a customer without a record.
    prefetched: HashMap<String, Option<sled::IVec>>,
    /// The records this writer wrote last, newest version each (see [`RecentRecords`]).
    recent: RecentRecords,
    /// The customers the segments are fitted on (see [`super::sample`]).
    sample: Sample,
    /// Members of `sample` not stored yet (a store written before the sample existed): the
    /// next commit writes them.
    sample_unsaved: Vec<sample::Member>,
    /// Positive examples waiting for their deadline to be learned (see [`super::held`]).
    held: Held,
}

/// Batches the writer has handed to the apply stage, oldest first, each with its sequence
/// number, kept until the apply stage reports them applied. The writer reads a record from
/// them before reading sled, so a batch never builds on a stale version of a record that an
/// earlier, not yet applied batch wrote.
#[derive(Default)]
pub(crate) struct Unapplied {
    batches: VecDeque<(u64, Arc<BatchState>)>,
}

/// What the unapplied batches say about a customer.
enum Pending<'a> {
    /// The newest unapplied batch that touched the customer left this record.
    Record(&'a ProfileRecord),
    /// It erased the customer.
    Erased,
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
    fn record(&self, customer: &str) -> Option<Pending<'_>> {
        self.batches.iter().rev().find_map(|(_, b)| {
            if b.erased.contains(customer) {
                Some(Pending::Erased)
            } else {
                b.records.get(customer).map(|w| Pending::Record(&w.record))
            }
        })
    }

    /// The model snapshot at `version`, if an unapplied batch wrote it.
    fn snapshot(&self, version: u64) -> Option<&ModelState> {
        self.batches
            .iter()
            .rev()
            .find_map(|(_, b)| b.snapshot.as_ref().filter(|s| s.version == version))
    }
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
enum QueueWrite {
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
    records: HashMap<String, Working>,
    undo: Vec<Undo>,
    /// Take a model snapshot with this batch even if `snapshot_every` does not ask for one.
    pub(crate) force_snapshot: bool,
    /// Snapshot written by this batch, and snapshots it deletes (applied to the list on commit).
    new_snapshot: Option<u64>,
    dropped_snapshots: Vec<u64>,
    /// Customers erased by this batch.
    erased: BTreeSet<String>,
    /// What this batch wrote of the persisted queue (applied to the log on commit).
    queue_write: Option<QueueWrite>,
    /// The model snapshot this batch writes, for reads before sled has applied it.
    snapshot: Option<ModelState>,
}

/// A record's model outcome before a write: its contribution to the segment statistics.
#[derive(Clone, Copy)]
struct Prev {
    segment: Option<u16>,
    propensity: f32,
    spend: f64,
}

impl Prev {
    fn of(r: &ProfileRecord) -> Prev {
        Prev {
            segment: r.segment,
            propensity: r.propensity,
            spend: r.state.spend,
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
        !self.force_snapshot && self.erased.is_empty() && !self.records.values().any(|w| w.dirty)
    }
}

impl Engine {
    /// Builds the engine from committed state: the model and the queue of open examples, as
    /// persisted or derived from the records.
    pub(crate) fn new(
        model: ModelState,
        queue: RecoveredQueue,
        snapshots: Vec<u64>,
        (sample, sample_unsaved): (Sample, bool),
        held: Held,
        layout: FeatureLayout,
        config: Config,
    ) -> Engine {
        let horizon_ms = config.horizon_ms();
        let watermark = model.watermark_ms;
        let (expiry, queue_log) = match queue {
            RecoveredQueue::Stored(q) => {
                // The previous checkpoint's chunks are replaced (or removed) by the next one.
                let mut stale: Vec<Vec<u8>> = (0..q.meta.chunks)
                    .map(|c| crate::storage::queue::chunk_key(c).to_vec())
                    .collect();
                stale.extend(q.deltas);
                let log = QueueLog {
                    chunks: q.meta.chunks,
                    entries: q.meta.entries,
                    stale,
                    next_delta: q.next_delta,
                    delta_entries: q.delta_entries,
                    checkpoint_due: false,
                };
                (q.entries, log)
            }
            RecoveredQueue::Derived { pending, keys } => {
                let expiry = crate::storage::queue::derive(
                    pending,
                    horizon_ms,
                    config.silent_horizons as u64,
                    watermark,
                );
                let log = QueueLog {
                    checkpoint_due: true,
                    ..keys
                };
                (expiry, log)
            }
        };
        let recent = RecentRecords::new(
            usize::try_from(config.record_cache_mb.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
        );
        Engine {
            model,
            expiry,
            layout,
            config,
            horizon_ms,
            snapshots: snapshots.into(),
            queue_log,
            unapplied: Unapplied::default(),
            prefetched: HashMap::new(),
            recent,
            held,
            sample_unsaved: if sample_unsaved {
                sample.members().cloned().collect()
            } else {
                Vec::new()
            },
            sample,
        }
    }

    /// Forgets what [`Engine::prefetch`] read and the round did not use: it is only valid
    /// for that round.
    pub(crate) fn end_round(&mut self) {
        self.prefetched.clear();
    }

    /// Most label-expiry candidates read ahead per round.
    const PREFETCH_EXPIRIES: usize = 4096;

    /// Reads from sled, ahead of applying `items`, the records the round will load: those of
    /// its customers and of the customers whose open example the round's latest event will
    /// expire, except those an unapplied batch or the cache of recent records holds, or read
    /// ahead already. The writer calls
    /// this before it hands the previous round to the apply stage, whose `apply_batch` blocks
    /// every sled read while it runs (the round's own work then overlaps that apply), and
    /// again for what it gathered after that, before it prepares the round. Every batch
    /// unapplied now must stay in [`Engine::unapplied`] until the round is prepared (it is
    /// newer than what was read). A read that fails is left to the round, which reads again
    /// and reports it.
    pub(crate) fn prefetch(&mut self, store: &Store, items: &[Item]) {
        let mut latest = i64::MIN;
        let mut wanted: Vec<&str> = Vec::new();
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for item in items {
            let customer = match item {
                Item::Event(e) => {
                    latest = latest.max(e.timestamp_ms);
                    e.customer_id.as_str()
                }
                Item::SetAttributes { customer, .. } | Item::Feedback { customer, .. } => {
                    customer.as_str()
                }
            };
            if seen.insert(customer) {
                wanted.push(customer);
            }
        }
        for (deadline, customer) in self.expiry.iter().take(Self::PREFETCH_EXPIRIES) {
            if *deadline >= latest {
                break;
            }
            if seen.insert(customer.as_str()) {
                wanted.push(customer.as_str());
            }
        }
        // Cheapest and most often decisive first: in a steady stream most customers are in
        // the recent records; the unapplied batches are one map lookup each.
        wanted.retain(|c| {
            !self.recent.contains(c)
                && !self.prefetched.contains_key(*c)
                && self.unapplied.record(c).is_none()
        });
        for (customer, raw) in read_all(store, &wanted) {
            self.prefetched.insert(customer.to_string(), raw);
        }
    }

    /// Loads a customer's record into the batch (from the batch, an unapplied batch, the
    /// recent records, the records read ahead, the store, or new).
    fn load<'b>(
        &mut self,
        store: &Store,
        records: &'b mut HashMap<String, Working>,
        customer: &str,
    ) -> Result<&'b mut Working> {
        if !records.contains_key(customer) {
            let record = match self.unapplied.record(customer) {
                Some(Pending::Record(r)) => Some(r.clone()),
                Some(Pending::Erased) => None,
                None => match self.recent.get(customer) {
                    Some(bytes) => Some(store.decode_profile(customer, bytes)?),
                    None => match self.prefetched.remove(customer) {
                        Some(Some(bytes)) => Some(store.decode_profile(customer, &bytes)?),
                        Some(None) => None,
                        None => store.profile(customer)?,
                    },
                },
            };
            let record = record.unwrap_or_else(|| ProfileRecord::new(store.params()));
            records.insert(
                customer.to_string(),
                Working {
                    record,
                    dirty: false,
                },
            );
        }
        records.get_mut(customer).ok_or_else(|| Error::Corruption {
            key: format!("profile {customer:?}"),
            detail: "vanished from the batch working set".into(),
        })
    }

    /// The leading fields of a customer's stored record (read ahead or from sled), for
    /// labelling; None if there is none or it does not decode.
    fn stored_state(&self, store: &Store, customer: &str) -> Option<RecordState> {
        if let Some(bytes) = self.recent.get(customer) {
            return store.decode_profile_state(customer, bytes).ok();
        }
        match self.prefetched.get(customer) {
            Some(Some(bytes)) => store.decode_profile_state(customer, bytes).ok(),
            Some(None) => None,
            None => store.profile_state(customer).ok().flatten(),
        }
    }

    /// Number of training examples not learned yet, their horizon not over: waiting for a
    /// label, or labelled positive and held until their deadline.
    pub(crate) fn open_examples(&self) -> usize {
        self.expiry.len() + self.held.len()
    }

    /// Applies one item to the batch.
    pub(crate) fn apply(&mut self, store: &Store, b: &mut BatchState, item: &Item) -> Result<Ack> {
        match item {
            Item::Event(e) => self.apply_event(store, b, e),
            Item::SetAttributes { customer, attrs } => {
                let now = self.model.watermark_ms;
                let (horizon, silent) = (self.horizon_ms, self.config.silent_horizons);
                let w = self.load(store, &mut b.records, customer)?;
                if w.record.version == 0 {
                    offer_to_sample(&mut self.sample, &mut b.undo, customer);
                }
                let prev = Prev::of(&w.record);
                // The open example is the profile as of its checkpoint: if that has passed and
                // its features are implicit, store them before the attributes change the state.
                if let Some((taken_at, k)) = open_example(&w.record, now, horizon, silent) {
                    if now > taken_at && is_implicit(&w.record.pending, k) {
                        let features = example_features(
                            &w.record.pending,
                            &w.record.state,
                            &self.layout,
                            taken_at,
                            k,
                        );
                        w.record.pending = Some(PendingExample {
                            taken_at_ms: taken_at,
                            features,
                        });
                    }
                }
                w.record.apply(
                    ProfileOp::SetAttributes(attrs.clone()),
                    store.params(),
                    self.config.history_versions,
                );
                let x = self.layout.vector(&w.record.state, now);
                let z = self.model.scaler.transform_vec(&x);
                let seg = self.model.segments.assign(&x);
                let p = self.model.propensity_of(w.record.state.event_count, &z);
                Ok(finish(&mut self.model, w, prev, seg, p))
            }
            Item::Feedback {
                customer,
                action,
                converted,
                id,
                segment,
            } => {
                let now = self.model.watermark_ms;
                let w = self.load(store, &mut b.records, customer)?;
                if w.record.version == 0 {
                    return Err(Error::invalid_argument(
                        "customer",
                        format!("no profile for {customer:?}; feedback needs a known customer"),
                    ));
                }
                let id_hash = id
                    .as_ref()
                    .map(|id| xxhash_rust::xxh3::xxh3_64(format!("feedback\0{id}").as_bytes()));
                if let Some(h) = id_hash {
                    if w.record.has_seen(h) {
                        return Ok(Ack {
                            version: w.record.version,
                            segment: *segment,
                            propensity: w.record.propensity as f64,
                            duplicate: true,
                        });
                    }
                }
                let seg = match segment {
                    Some(s) => *s,
                    None => {
                        let x = self.layout.vector(&w.record.state, now);
                        match self.model.segments.assign(&x) {
                            Some((s, _)) => s as u16,
                            None => {
                                return Err(Error::invalid_argument(
                                    "segment",
                                    "segments are not seeded yet; feedback needs a segment",
                                ))
                            }
                        }
                    }
                };
                self.model
                    .strategy
                    .record(seg as usize, *action, *converted);
                if let Some(h) = id_hash {
                    w.record.remember(h, i64::MIN, self.config.dedupe_window);
                    w.dirty = true;
                }
                Ok(Ack {
                    version: w.record.version,
                    segment: Some(seg),
                    propensity: w.record.propensity as f64,
                    duplicate: false,
                })
            }
        }
    }

    fn apply_event(&mut self, store: &Store, b: &mut BatchState, e: &Event) -> Result<Ack> {
        let limit = self
            .config
            .future_limit_ms(self.model.watermark_ms, wall_clock_ms());
        if e.timestamp_ms > limit {
            return Err(future_event(e.timestamp_ms, limit, &self.config));
        }
        // An event without an id has no identity to compare: every ingest of it counts.
        let id_hash = e
            .event_id
            .as_ref()
            .map(|id| xxhash_rust::xxh3::xxh3_64(id.as_bytes()));
        // Loaded before anything changes: a record that does not decode refuses the event here.
        let w = self.load(store, &mut b.records, &e.customer_id)?;
        if let Some(id_hash) = id_hash {
            if w.record.has_seen(id_hash) {
                return Ok(Ack {
                    version: w.record.version,
                    segment: w.record.segment,
                    propensity: w.record.propensity as f64,
                    duplicate: true,
                });
            }
            if let Some(floor) = w.record.dedupe_floor_ms {
                if e.timestamp_ms <= floor {
                    return Err(Error::invalid_argument(
                        "event",
                        format!(
                            "{:?} of customer {:?} at {} is not newer than the customer's \
                             de-duplication window (events up to {floor} have left it), so it \
                             cannot be told apart from a replay of an applied event",
                            e.event_id.as_deref().unwrap_or_default(),
                            e.customer_id,
                            e.timestamp_ms
                        ),
                    ));
                }
            }
        }
        self.advance_watermark(store, b, e.timestamp_ms);
        let now = self.model.watermark_ms;
        let params = *store.params();
        let horizon = self.horizon_ms;
        let w = self.load(store, &mut b.records, &e.customer_id)?;
        if w.record.version == 0 {
            offer_to_sample(&mut self.sample, &mut b.undo, &e.customer_id);
        }
        let prev = Prev::of(&w.record);

        let mut open = open_example(&w.record, now, horizon, self.config.silent_horizons);
        let mut positive = None;
        if let Some((taken_at, k)) = open {
            // The event is inside the example's window (after its checkpoint): the state as of
            // the checkpoint is final, and this event may label it.
            if e.timestamp_ms > taken_at {
                let features = example_features(
                    &w.record.pending,
                    &w.record.state,
                    &self.layout,
                    taken_at,
                    k,
                );
                if e.kind == self.config.target_kind && e.timestamp_ms <= taken_at + horizon {
                    // Positive: the target event came inside the example's horizon. The next
                    // example is taken at the next checkpoint of the chain.
                    let key = (taken_at + horizon, e.customer_id.as_str().into());
                    if self.expiry.remove(&key) {
                        b.undo.push(Undo::Removed(key));
                    }
                    open = Some((taken_at + horizon, 0));
                    w.record.pending = Some(PendingExample::at(taken_at + horizon));
                    let key: queue::Entry = (taken_at + 2 * horizon, e.customer_id.as_str().into());
                    if self.expiry.insert(key.clone()) {
                        b.undo.push(Undo::Inserted(key));
                    }
                    positive = Some((features, taken_at + horizon));
                } else if is_implicit(&w.record.pending, k) {
                    // The example's features are implicit (the state as of its checkpoint,
                    // unchanged since); the state is about to change, so store them now. Its
                    // expiry entry stays.
                    w.record.pending = Some(PendingExample {
                        taken_at_ms: taken_at,
                        features,
                    });
                }
            }
        }

        let compact = CompactEvent::from_event(e, &params);
        if let (Some(name), Some(bucket)) = (&e.category, compact.bucket) {
            self.model.categories.observe(bucket as usize, name);
        }
        w.record.apply(
            ProfileOp::Event(compact),
            &params,
            self.config.history_versions,
        );
        let x = self.layout.vector(&w.record.state, now);
        let (seg, z) = observe(&mut self.model, &x);
        let p = self.model.propensity.predict(&z);

        if open.is_none() {
            // A new chain of examples: the first at the customer's next checkpoint after the
            // watermark, its features implicit until then.
            let taken_at = next_checkpoint(&e.customer_id, now, horizon);
            w.record.pending = Some(PendingExample::at(taken_at));
            let key: queue::Entry = (taken_at + horizon, e.customer_id.as_str().into());
            if self.expiry.insert(key.clone()) {
                b.undo.push(Undo::Inserted(key));
            }
        }
        if let Some(id_hash) = id_hash {
            w.record
                .remember(id_hash, e.timestamp_ms, self.config.dedupe_window);
        }
        let ack = finish(&mut self.model, w, prev, seg, p);
        if let Some((features, deadline)) = positive {
            let change = self.held.add(deadline, &e.customer_id, features);
            b.undo.push(Undo::Held(change));
        }
        if self.model.segments.count_event() {
            self.fit_segments(store, b);
        }
        Ok(ack)
    }

    /// Fits the segments to the sample's customers as of the watermark (see
    /// [`crate::model::Segments::fit`]). Customers without events have no behaviour to
    /// segment and are left out; a record that cannot be read is left out too (reads of that
    /// customer report it).
    fn fit_segments(&mut self, store: &Store, b: &BatchState) {
        let now = self.model.watermark_ms;
        let layout = &self.layout;
        let vector = |state: &crate::features::ProfileState| {
            (state.event_count > 0).then(|| layout.vector(state, now))
        };
        let points: Vec<Vec<f64>> = self
            .sample
            .ids()
            .filter_map(|id| self.with_state(store, &b.records, id, |_, state| vector(state)))
            .flatten()
            .collect();
        self.model.segments.fit(&points);
    }

    /// Calls `f` with a customer's pending example and state as the writer sees them, without
    /// loading the record into the batch: the batch's copy, else the newest unapplied batch's,
    /// else the stored record decoded up to its state (not its history and de-duplication
    /// window) and not kept. `None` without a record, for a customer an unapplied batch
    /// erased, or for a record that does not decode.
    fn with_state<R>(
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

    /// Moves the watermark to `ts` if later. Every example whose horizon ended before it is
    /// labelled negative; for a customer still silent, the profile as of that moment is
    /// observed by the scaler, and the next silent-period example is queued (up to
    /// `silent_horizons` of them).
    fn advance_watermark(&mut self, store: &Store, b: &mut BatchState, ts: i64) {
        if ts <= self.model.watermark_ms {
            return;
        }
        self.model.watermark_ms = ts;
        self.model.labelled_through_ms = ts;
        let h = self.horizon_ms;
        loop {
            let expiring = self.expiry.first().map(|e| e.0).filter(|d| *d < ts);
            // Held positives and expiring negatives are learned in deadline order (a positive
            // first on a tie).
            if let Some(d) = self.held.first_due(ts) {
                if expiring.is_none_or(|e| d <= e) {
                    if let Some((deadline, features, change)) = self.held.pop_first() {
                        b.undo.push(Undo::Held(change));
                        self.learn(store, &features, true, deadline);
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
            let example = self.with_state(store, &b.records, &customer, |pending, state| {
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
    }

    /// Adds the batch's writes to `batch`: dirty profiles, membership changes, the model state.
    /// Returns the number of keys written (inserted or removed) and the bytes inserted.
    pub(crate) fn write_into(&mut self, b: &mut BatchState, batch: &mut sled::Batch) -> (u64, u64) {
        let mut keys_written = 0u64;
        let mut bytes = 0u64;
        let mut insert = |batch: &mut sled::Batch, k: Vec<u8>, v: sled::IVec| {
            keys_written += 1;
            bytes += (k.len() + v.len()) as u64;
            batch.insert(k, v);
        };
        let mut removed = 0u64;
        // Erasures first: a record written later in the same batch (none today: erasing runs
        // as a maintenance batch of its own) would then be a new profile, as it should.
        for id in &b.erased {
            batch.remove(keys::profile(id));
            self.recent.remove(id);
            removed += 1;
        }
        for (id, w) in &b.records {
            if w.dirty {
                let value = sled::IVec::from(w.record.encode());
                self.recent.insert(id, value.clone());
                insert(batch, keys::profile(id), value);
            }
        }
        for m in &self.sample_unsaved {
            insert(batch, keys::sample(m.0, &m.1), sled::IVec::default());
        }
        for u in &b.undo {
            match u {
                Undo::Sample(sample::Change::Added(m)) => {
                    insert(batch, keys::sample(m.0, &m.1), sled::IVec::default());
                }
                Undo::Sample(sample::Change::Removed(m)) => {
                    batch.remove(keys::sample(m.0, &m.1));
                    removed += 1;
                }
                Undo::Held(held::Change::Added(key)) => {
                    // Absent when learned in the same batch: the removal below wins.
                    if let Some(features) = self.held.get(key) {
                        let value = crate::storage::codec::encode(&features);
                        insert(batch, keys::held(key.0, &key.1), value.into());
                    }
                }
                Undo::Held(held::Change::Removed(key, _)) => {
                    batch.remove(keys::held(key.0, &key.1));
                    removed += 1;
                }
                _ => {}
            }
        }
        self.model.version += 1;
        let encoded = Store::encode_model(&self.model);
        let every = self.config.snapshot_every;
        if b.force_snapshot || (every > 0 && self.model.version % every == 0) {
            insert(
                batch,
                keys::snapshot(self.model.version).to_vec(),
                encoded.clone().into(),
            );
            let mut kept = self.snapshots.len() + 1;
            for old in &self.snapshots {
                if kept <= self.config.model_versions {
                    break;
                }
                batch.remove(&keys::snapshot(*old));
                removed += 1;
                b.dropped_snapshots.push(*old);
                kept -= 1;
            }
            b.new_snapshot = Some(self.model.version);
            b.snapshot = Some(self.model.clone());
        }
        insert(batch, keys::MODEL.to_vec(), encoded.into());
        let (queue_keys, queue_bytes) = self.write_queue(b, batch);
        (keys_written + removed + queue_keys, bytes + queue_bytes)
    }

    /// Adds the batch's changes of the expiry queue to `batch`: one delta, or a checkpoint of
    /// the whole queue (see [`crate::storage::queue`]). Returns keys written and bytes inserted.
    fn write_queue(&self, b: &mut BatchState, batch: &mut sled::Batch) -> (u64, u64) {
        use crate::storage::queue::{self, Change};
        let watermark = self.model.watermark_ms;
        // Entries before the watermark are dropped when the queue is loaded: their changes
        // need no logging.
        let changes: Vec<Change> = b
            .undo
            .iter()
            .filter_map(|u| match u {
                Undo::Inserted((d, id)) if *d >= watermark => Some(Change::Insert(*d, id.clone())),
                Undo::Removed((d, id)) if *d >= watermark => Some(Change::Remove(*d, id.clone())),
                _ => None,
            })
            .collect();
        let log = &self.queue_log;
        let budget = 2 * self.expiry.len().max(queue::CHUNK_ENTRIES) as u64;
        if log.checkpoint_due
            || !b.erased.is_empty()
            || log.delta_entries + changes.len() as u64 > budget
        {
            let (chunks, keys_written, bytes) = queue::write_checkpoint(
                batch,
                self.expiry.iter(),
                (
                    self.horizon_ms,
                    self.config.silent_horizons as u64,
                    self.model.version,
                ),
                log.stale.iter().cloned(),
            );
            b.queue_write = Some(QueueWrite::Checkpoint {
                chunks,
                entries: self.expiry.len() as u64,
            });
            return (keys_written, bytes);
        }
        // Every commit rewrites the meta record with its model version, so that a commit by a
        // build that does not keep the queue is noticed at the next open.
        let mut bytes = queue::write_meta(
            batch,
            &queue::QueueMeta {
                horizon_ms: self.horizon_ms,
                silent_horizons: self.config.silent_horizons as u64,
                chunks: log.chunks,
                entries: log.entries,
                model_version: self.model.version,
            },
        );
        if changes.is_empty() {
            return (1, bytes);
        }
        let value = queue::encode_delta(&changes);
        let key = queue::delta_key(log.next_delta);
        bytes += (key.len() + value.len()) as u64;
        batch.insert(&key, value);
        b.queue_write = Some(QueueWrite::Delta {
            entries: changes.len() as u64,
        });
        (2, bytes)
    }

    /// Versions of the stored model snapshots, oldest first.
    pub(crate) fn snapshot_versions(&self) -> Vec<u64> {
        self.snapshots.iter().copied().collect()
    }

    /// Updates in-memory bookkeeping once a batch is committed.
    pub(crate) fn committed(&mut self, b: &BatchState) {
        self.sample_unsaved.clear();
        let log = &mut self.queue_log;
        match b.queue_write {
            Some(QueueWrite::Checkpoint { chunks, entries }) => {
                log.chunks = chunks;
                log.entries = entries;
                log.stale = (0..chunks)
                    .map(|c| crate::storage::queue::chunk_key(c).to_vec())
                    .collect();
                log.delta_entries = 0;
                log.checkpoint_due = false;
            }
            Some(QueueWrite::Delta { entries }) => {
                log.stale
                    .push(crate::storage::queue::delta_key(log.next_delta).to_vec());
                log.next_delta += 1;
                log.delta_entries += entries;
            }
            None => {}
        }
        for d in &b.dropped_snapshots {
            self.snapshots.retain(|v| v != d);
        }
        if let Some(v) = b.new_snapshot {
            self.snapshots.push_back(v);
        }
    }

    /// Learns one labelled example due at `deadline` (its checkpoint + horizon), predicting it
    /// first for the prequential metrics. Hands it to the drift monitor, which scores it with its
    /// frozen forecaster and feeds the test in deadline order (`src/model/drift.rs`). Every
    /// example is learned when the watermark passes its deadline (positives are held until
    /// then), in deadline order: every example due before `min(deadline, watermark)` has then
    /// been learned.
    fn learn(&mut self, store: &Store, features: &[f32], label: bool, deadline: i64) {
        let model = &mut self.model;
        if features.len() != model.scaler.dim() {
            return;
        }
        let x: Vec<f64> = features.iter().map(|v| f64::from(*v)).collect();
        let z = model.scaler.transform_vec(&x);
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
            DriftReaction::Reset => model.propensity.reset(),
            DriftReaction::Rollback => {
                let restored =
                    self.snapshots
                        .back()
                        .and_then(|v| match self.unapplied.snapshot(*v) {
                            Some(s) => Some(s.clone()),
                            None => store.snapshot(*v).ok().flatten(),
                        });
                match restored {
                    Some(snap) if snap.propensity.dim() == model.propensity.dim() => {
                        model.propensity = snap.propensity;
                    }
                    // No usable snapshot: starting over is the closest to "before the drift".
                    _ => model.propensity.reset(),
                }
            }
        }
    }

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
        self.forget_erased_examples(b);
        Ok(erased)
    }

    /// Adds the erasure of `customer` to the batch: the profile record (with its history,
    /// de-duplication window and pending example) goes, and the customer's share of the
    /// segment sizes and statistics is taken out. Returns false, and changes nothing, if the
    /// customer has no record. A record that does not decode is erased too (its segment
    /// statistics cannot be corrected; its segment size is, if at least the record's leading
    /// fields decode). The caller must then call [`Engine::forget_erased_examples`].
    fn erase(&mut self, store: &Store, b: &mut BatchState, customer: &str) -> Result<bool> {
        if b.erased.contains(customer) {
            return Ok(false);
        }
        let stored = store.raw_profile(customer)?;
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
        b.erased.insert(customer.to_string());
        Ok(true)
    }

    /// Drops the expiry-queue entries of every customer erased by the batch (undone if the
    /// commit fails), so no open training example of theirs is ever learned.
    pub(crate) fn forget_erased_examples(&mut self, b: &mut BatchState) {
        if b.erased.is_empty() {
            return;
        }
        let gone: Vec<queue::Entry> = self
            .expiry
            .iter()
            .filter(|(_, c)| b.erased.contains(c.as_str()))
            .cloned()
            .collect();
        for key in gone {
            self.expiry.remove(&key);
            b.undo.push(Undo::Removed(key));
        }
        let erased = &b.erased;
        let dropped = self.held.forget(|c| erased.contains(c));
        b.undo.extend(dropped.into_iter().map(Undo::Held));
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
        self.forget_erased_examples(b);
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
            }
        }
    }
}

/// The refusal of an event later than the store accepts (see
/// [`Config::max_future_skew_secs`]).
fn future_event(ts: i64, limit: i64, config: &Config) -> Error {
    let show = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).map_or_else(
            || ms.to_string(),
            |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
    };
    Error::InvalidEvent(crate::event::InvalidEvent::new(
        "timestamp",
        ts.to_string(),
        format!(
            "({}) is later than {} ({limit}), the latest time accepted now: the later of the \
             store's watermark and the wall clock, plus max_future_skew_secs = {}",
            show(ts),
            show(limit),
            config.max_future_skew_secs
        ),
    ))
}

/// The customer's open training example at `now`, as (snapshot time, k): k = 0 is the stored
/// post-event snapshot, k >= 1 the k-th silent-period example, taken `k` horizons later and
/// implicit until the state changes. None once `silent_horizons` silent examples have passed.
fn open_example(
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
fn is_implicit(pending: &Option<PendingExample>, k: usize) -> bool {
    k > 0 || !pending.as_ref().is_some_and(PendingExample::is_stored)
}

/// The raw features of example (taken_at, k): stored for k = 0 once materialised, derived
/// from the (unchanged since) state as of `taken_at` otherwise.
fn example_features(
    pending: &Option<PendingExample>,
    state: &ProfileState,
    layout: &FeatureLayout,
    taken_at: i64,
    k: usize,
) -> Vec<f32> {
    match (pending, k) {
        (Some(p), 0) if p.is_stored() => p.features.clone(),
        _ => layout
            .vector(state, taken_at)
            .iter()
            .map(|v| *v as f32)
            .collect(),
    }
}

/// Offers a customer whose first record this batch creates to the segment sample, logging
/// what changed (to be written with the batch, or reverted if its commit fails).
fn offer_to_sample(sample: &mut Sample, undo: &mut Vec<Undo>, customer: &str) {
    undo.extend(sample.offer(customer).into_iter().map(Undo::Sample));
}

/// Feeds a raw vector to the scaler; returns its segment and its standardised vector.
fn observe(model: &mut ModelState, x: &[f64]) -> (Option<(usize, f64)>, Vec<f64>) {
    model.scaler.update(x);
    let z = model.scaler.transform_vec(x);
    (model.segments.assign(x), z)
}

/// The customer's first checkpoint after `now`: checkpoints are one horizon apart, on a grid
/// offset per customer (a hash of the id), so that examples are taken at times independent of
/// the customer's own events and their deadlines spread over the horizon instead of all
/// falling due in one batch.
fn next_checkpoint(customer: &str, now: i64, horizon_ms: i64) -> i64 {
    let h = horizon_ms.max(1);
    let offset = (xxhash_rust::xxh3::xxh3_64(customer.as_bytes()) % h.unsigned_abs()) as i64;
    let periods = now.saturating_sub(offset).div_euclid(h);
    offset.saturating_add(periods.saturating_add(1).saturating_mul(h))
}

/// Reads the records of `customers` from sled, on two threads when there are enough of them
/// (sled reads run in parallel; what bounds them at scale is sled loading pages its cache
/// evicted). A read that fails, or a helper thread that panics, leaves its customers out.
fn read_all<'c>(store: &Store, customers: &[&'c str]) -> Vec<(&'c str, Option<sled::IVec>)> {
    let read = |part: &[&'c str]| -> Vec<(&'c str, Option<sled::IVec>)> {
        part.iter()
            .filter_map(|c| store.raw_profile(c).ok().map(|raw| (*c, raw)))
            .collect()
    };
    if customers.len() < PARALLEL_READS_FROM {
        return read(customers);
    }
    let (first, second) = customers.split_at(customers.len() / 2);
    std::thread::scope(|s| {
        let helper = std::thread::Builder::new()
            .name("persona-prefetch".into())
            .spawn_scoped(s, || read(second));
        let mut out = read(first);
        match helper {
            Ok(h) => out.extend(h.join().unwrap_or_default()),
            // No thread: read the second half here.
            Err(_) => out.extend(read(second)),
        }
        out
    })
}

/// Fewest records [`read_all`] splits over two threads.
const PARALLEL_READS_FROM: usize = 128;

/// Moves a record's contribution in the segment sizes and statistics from its previous
/// segment to `new_segment` (which may be the same one, with new values).
fn move_segment(model: &mut ModelState, prev: Prev, new_segment: Option<u16>, spend: f64, p: f64) {
    if let Some(old) = prev.segment {
        if let Some(st) = model.segment_stats.get_mut(old as usize) {
            st.spend_sum -= prev.spend;
            st.propensity_sum -= f64::from(prev.propensity);
        }
        if new_segment != Some(old) {
            if let Some(n) = model.segment_sizes.get_mut(old as usize) {
                *n = n.saturating_sub(1);
            }
        }
    }
    if let Some(new) = new_segment {
        if let Some(st) = model.segment_stats.get_mut(new as usize) {
            st.spend_sum += spend;
            st.propensity_sum += p;
        }
        if prev.segment != Some(new) {
            if let Some(n) = model.segment_sizes.get_mut(new as usize) {
                *n += 1;
            }
        }
    }
}

/// Records the model outcome on the record and in the segment statistics, marks the record
/// dirty, builds the ack.
fn finish(
    model: &mut ModelState,
    w: &mut Working,
    prev: Prev,
    seg: Option<(usize, f64)>,
    p: f64,
) -> Ack {
    w.record
        .set_outcome(seg.map(|(s, d)| (s as u16, d as f32)), p);
    move_segment(model, prev, w.record.segment, w.record.state.spend, p);
    w.dirty = true;
    Ack {
        version: w.record.version,
        segment: w.record.segment,
        propensity: p,
        duplicate: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Enough customers for two threads: each read comes back with its own customer's value,
    /// and customers without a record come back as None.
    #[test]
    fn read_all_gives_each_customer_its_own_record_on_two_threads() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&Config::new(dir.path()))?;
        let ids: Vec<String> = (0..3 * PARALLEL_READS_FROM)
            .map(|i| format!("c{i}"))
            .collect();
        let mut batch = sled::Batch::default();
        // Customers whose id ends in 0 have no record.
        for id in ids.iter().filter(|id| !id.ends_with('0')) {
            batch.insert(keys::profile(id), id.as_bytes());
        }
        store.apply(batch)?;
        let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
        let got = read_all(&store, &wanted);
        assert_eq!(got.len(), ids.len());
        let mut seen = std::collections::HashSet::new();
        for (id, raw) in got {
            assert!(seen.insert(id), "{id} twice");
            match raw {
                Some(v) => assert_eq!(&v[..], id.as_bytes(), "{id}"),
                None => assert!(id.ends_with('0'), "{id} has a record"),
            }
        }
        Ok(())
    }
}
