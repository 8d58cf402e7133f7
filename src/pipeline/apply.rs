//! Applying one batch: events and attribute changes → profile records, model updates and the
//! set of keys to write. Runs on the writer thread only. The batch's state is in
//! [`super::batch`], the training examples in [`super::examples`], turning a batch into sled
//! writes in [`super::commit`], erasure, re-segmentation and undo in [`super::maintain`].
//!
//! Per event, in order: advance the watermark, learning every training example whose deadline it
//! passed (and, when it enters a new block, refitting the propensity on the due cohort and taking
//! the next, [`super::cohorts`]); if the event is a target event inside its customer's open
//! example's horizon, label that example positive (held until its deadline, [`super::held`]); apply
//! the event to the profile (a new version); compute the feature vector as of the watermark; assign
//! its segment; predict the propensity; if the customer has no open example, open one; count the
//! event towards the segments' fit schedule, and fit them to the customer sample when one is due.
//! Every prediction is made before the example it scores is learned (prequential evaluation). The
//! scaler the propensity model reads is fed every event's vector and each silent customer's vector
//! at the end of a silent horizon.
//!
//! The propensity model learns from the population it is served: a training example is the
//! profile as of a *checkpoint*, not as of an event (see [`super::examples`]). Until the first
//! event after its checkpoint, an example's features are implicit (the profile as of the
//! checkpoint, derivable from the unchanged state); that event stores them. Open examples cost
//! no writes of their own; a positive costs one key written when it is labelled and removed
//! when it is learned.

use super::batch::*;
use super::cohorts::Cohorts;
use super::consent::stamp_consent;
use super::examples::*;
use super::held::Held;
use super::recent::RecentRecords;
use super::sample::{self, Sample};
use super::{Ack, Item};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::wall_clock_ms;
use crate::event::EventKind;
use crate::features::affinity::Engaged;
use crate::features::consent::{self, Consent};
use crate::features::vector::FeatureLayout;
use crate::features::{CompactEvent, ProfileOp};
use crate::model::{rebuy, ModelState};
use crate::storage::record::{PendingExample, ProfileRecord, RecordState};
use crate::storage::{queue, Store};
use crate::together::{TakenUp, Together};
use crate::triggers::TriggerState;
use crate::Event;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// The writer's state: the committed model (a working copy during a batch) and the queue of
/// open training examples ordered by the time their horizon ends.
pub(crate) struct Engine {
    pub(crate) model: ModelState,
    pub(super) expiry: BTreeSet<queue::Entry>,
    pub(super) layout: FeatureLayout,
    pub(super) config: Config,
    pub(super) horizon_ms: i64,
    /// Versions of the stored model snapshots, oldest first.
    pub(super) snapshots: VecDeque<u64>,
    /// Where the persisted copy of `expiry` stands.
    pub(super) queue_log: QueueLog,
    /// Batches handed to the apply stage that sled may not have applied yet.
    pub(crate) unapplied: Unapplied,
    /// Records read from sled ahead of the current round ([`Engine::prefetch`]), undecoded;
    /// None for a customer without a record.
    pub(super) prefetched: HashMap<String, Option<sled::IVec>>,
    /// The records this writer wrote last, newest version each (see [`RecentRecords`]).
    pub(super) recent: RecentRecords,
    /// The customers the cohorts are taken of and the segments fitted on (see
    /// [`super::sample`]).
    pub(super) sample: Sample,
    /// Positive examples waiting for their deadline to be learned (see [`super::held`]).
    pub(super) held: Held,
    /// The cohorts the propensity model is refitted on (see [`super::cohorts`]).
    pub(super) cohorts: Cohorts,
    /// The co-occurrence table of `recommend` (`together.rs`), counted here as events are
    /// applied, in their order.
    pub(super) together: Arc<Together>,
    /// The trigger definitions, cooldowns and outbox range (`triggers/`).
    pub(crate) triggers: TriggerState,
    /// Between an [`Item::Replay`] and its request's [`Item::Mark`]: the items change
    /// profiles, not the merged models (another cluster node learned them).
    replaying: bool,
}

impl Engine {
    /// Builds the engine from committed state: the model and the queue of open examples, as
    /// persisted or derived from the records.
    pub(crate) fn new(
        model: ModelState,
        queue: RecoveredQueue,
        snapshots: Vec<u64>,
        sample: Sample,
        (held, cohorts, together, triggers): (Held, Cohorts, Arc<Together>, TriggerState),
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
            cohorts,
            sample,
            together,
            triggers,
            replaying: false,
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
                Item::Mark { .. } | Item::Replay => continue,
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
    pub(super) fn load<'b>(
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
                    holder: None,
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
    pub(super) fn stored_state(&self, store: &Store, customer: &str) -> Option<RecordState> {
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
            Item::Replay => {
                self.replaying = true;
                Ok(Ack {
                    version: 0,
                    segment: None,
                    propensity: 0.0,
                    duplicate: false,
                })
            }
            Item::Mark { key, value } => {
                self.replaying = false;
                b.marks.push((key.clone(), value.clone()));
                Ok(Ack {
                    version: 0,
                    segment: None,
                    propensity: 0.0,
                    duplicate: false,
                })
            }
            Item::SetAttributes { customer, attrs } => {
                let now = self.model.watermark_ms;
                let (horizon, silent) = (self.horizon_ms, self.config.silent_horizons);
                let defaults = self.config.consent_defaults;
                let w = self.load(store, &mut b.records, customer)?;
                let before = Consent::of(&w.record.state, defaults);
                let stored = &w.record.state.attributes;
                let (attrs, after) = stamp_consent(attrs, stored, before, wall_clock_ms());
                let new = w.record.version == 0;
                if !after.profiling {
                    return self.set_private(store, b, customer, attrs, before.profiling && !new);
                }
                let w = self.load(store, &mut b.records, customer)?;
                if new || !before.profiling {
                    offer_to_sample((&mut self.sample, &mut self.cohorts), &mut b.undo, customer);
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
                    ProfileOp::SetAttributes(attrs),
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
                let defaults = self.config.consent_defaults;
                let w = self.load(store, &mut b.records, customer)?;
                if w.record.version == 0 {
                    return Err(Error::invalid_argument(
                        "customer",
                        format!("no profile for {customer:?}; feedback needs a known customer"),
                    ));
                }
                // An outcome trains the shared strategy.
                if !Consent::of(&w.record.state, defaults).profiling {
                    return Err(consent::refused(customer, "profiling"));
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
                if !self.replaying {
                    self.model
                        .strategy
                        .record(seg as usize, *action, *converted);
                }
                // In the ledger, so that an erase takes exactly this back.
                if let Some(name) = self.config.actions.get(*action) {
                    b.feedback.push((
                        customer.clone(),
                        crate::storage::feedback::FeedbackOutcome {
                            action: name.clone(),
                            segment: seg,
                            converted: *converted,
                            at_ms: now,
                        },
                    ));
                }
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

    /// Moves the watermark to `to_ms` as an event at that time would, without one: examples
    /// fall due, a block boundary passed refits the propensity, silences fire. Refused past the
    /// latest time an event is accepted at ([`Config::future_limit_ms`]).
    pub(super) fn advance_watermark_to(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        to_ms: i64,
    ) -> Result<()> {
        let limit = self
            .config
            .future_limit_ms(self.model.watermark_ms, wall_clock_ms());
        if to_ms > limit {
            return Err(Error::invalid_argument(
                "time",
                format!(
                    "{to_ms} is later than {limit}, the latest time an event is accepted at now: \
                     the later of the store's watermark and the wall clock, plus \
                     max_future_skew_secs = {}",
                    self.config.max_future_skew_secs
                ),
            ));
        }
        self.advance_watermark(store, b, to_ms);
        Ok(())
    }

    pub(super) fn apply_event(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        e: &Event,
    ) -> Result<Ack> {
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
        if !Consent::of(&w.record.state, self.config.consent_defaults).profiling {
            return self.apply_private_event(store, b, e, id_hash);
        }
        self.advance_watermark(store, b, e.timestamp_ms);
        let now = self.model.watermark_ms;
        let params = *store.params();
        let horizon = self.horizon_ms;
        let w = self.load(store, &mut b.records, &e.customer_id)?;
        if w.record.version == 0 {
            let sampled = (&mut self.sample, &mut self.cohorts);
            offer_to_sample(sampled, &mut b.undo, &e.customer_id);
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
            let by = w.holder(store, &e.customer_id);
            self.model.categories.observe(bucket as usize, name, &by);
        }
        w.record.apply(
            ProfileOp::Event(compact),
            &params,
            self.config.history_versions,
        );
        if e.kind == EventKind::Purchase {
            if let Some(item) = e.item.as_deref() {
                learn_rebuy(
                    &mut self.model,
                    &self.together,
                    &w.record.affinity.items,
                    item,
                    e.timestamp_ms,
                );
            }
        }
        let listed = |items: &[Engaged], item: &str| items.iter().any(|x| x.name == item);
        let new_item = e
            .item
            .as_deref()
            .filter(|item| !listed(&w.record.affinity.items, item));
        w.record.affinity.observe(
            e.kind,
            e.item.as_deref(),
            e.category.as_deref(),
            e.timestamp_ms,
            params.item_half_life_ms(),
            self.config.top_items,
        );
        if let Some(item) = new_item.filter(|item| listed(&w.record.affinity.items, item)) {
            let items = &w.record.affinity.items;
            self.together
                .take_up(&e.customer_id, &TakenUp::of(item, items, e.timestamp_ms));
        }
        let x = self.layout.vector(&w.record.state, now);
        let (seg, z) = observe(&mut self.model, &x, !self.replaying);
        let p = self.model.propensity.predict(&z);
        if let Some(item) = e.item.as_deref() {
            let k = self.model.segments.k();
            let by = w.holder(store, &e.customer_id);
            self.model.popularity.observe(
                e.kind,
                item,
                &by,
                seg.map(|(s, _)| s),
                k,
                e.timestamp_ms,
                params.item_half_life_ms(),
            );
        }

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
        if self.triggers.watches_silence() {
            let last = w.record.state.last_seen_ms.unwrap_or(e.timestamp_ms);
            let watermark = self.model.watermark_ms;
            let mut undo = Vec::new();
            self.triggers
                .seen(&e.customer_id, last, watermark, &mut undo);
            b.undo.extend(undo.into_iter().map(Undo::Silence));
        }
        let marketing = || Consent::of(&w.record.state, self.config.consent_defaults).marketing;
        if self.triggers.all().next().is_some() && marketing() {
            let after = Prev::of(&w.record).observed();
            let change = (prev.observed(), after);
            let (fired, suppressed) = (self.triggers).evaluate(
                &e.customer_id,
                e.timestamp_ms,
                change,
                &b.fired,
                &self.model.strategy,
            );
            b.fired.extend(fired);
            b.suppressed.extend(suppressed);
        }
        if let Some((features, deadline)) = positive {
            let change = self.held.add(deadline, &e.customer_id, features);
            b.undo.push(Undo::Held(change));
        }
        if !self.replaying && self.model.segments.count_event() {
            self.fit_segments(store, b);
        }
        Ok(ack)
    }

    /// Fits the segments to the sample's customers as of the watermark (see
    /// [`crate::model::Segments::fit`]). Customers without events have no behaviour to
    /// segment and are left out; a record that cannot be read is left out too (reads of that
    /// customer report it).
    pub(super) fn fit_segments(&mut self, store: &Store, b: &BatchState) {
        let now = self.model.watermark_ms;
        let (layout, defaults) = (&self.layout, self.config.consent_defaults);
        // A sampled customer without consent to profiling (the store's default changed since
        // they were sampled) is not fitted.
        let vector = |state: &crate::features::ProfileState| {
            (state.event_count > 0 && Consent::of(state, defaults).profiling)
                .then(|| layout.vector(state, now))
        };
        let points: Vec<Vec<f64>> = self
            .sample
            .ids()
            .take(sample::SEGMENT_MEMBERS)
            .filter_map(|id| self.with_state(store, &b.records, id, |_, state| vector(state)))
            .flatten()
            .collect();
        self.model.segments.fit(&points);
    }
}

/// The refusal of an event later than the store accepts (see
/// [`Config::max_future_skew_secs`]).
pub(super) fn future_event(ts: i64, limit: i64, config: &Config) -> Error {
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

/// Offers a customer whose first record this batch creates to the segment sample, logging
/// what changed (to be written with the batch, or reverted if its commit fails).
pub(super) fn offer_to_sample(
    (sample, cohorts): (&mut Sample, &mut Cohorts),
    undo: &mut Vec<Undo>,
    customer: &str,
) {
    for change in sample.offer(customer) {
        // A member evicted by a smaller hash leaves the refits at once.
        if let sample::Change::Removed((_, evicted)) = &change {
            undo.extend(cohorts.forget_one(evicted).into_iter().map(Undo::Cohort));
        }
        undo.push(Undo::Sample(change));
    }
}

/// Feeds a raw vector to the scaler (unless `learn` is false: a replay, `Item::Replay`);
/// returns its segment and its standardised vector.
pub(super) fn observe(
    model: &mut ModelState,
    x: &[f64],
    learn: bool,
) -> (Option<(usize, f64)>, Vec<f64>) {
    if learn {
        model.scaler.update(x);
    }
    let z = model.scaler.transform_vec(x);
    (model.segments.assign(x), z)
}

/// Reads the records of `customers` from sled, on two threads when there are enough of them
/// (sled reads run in parallel; what bounds them at scale is sled loading pages its cache
/// evicted). A read that fails, or a helper thread that panics, leaves its customers out.
pub(super) fn read_all<'c>(
    store: &Store,
    customers: &[&'c str],
) -> Vec<(&'c str, Option<sled::IVec>)> {
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
pub(super) fn move_segment(
    model: &mut ModelState,
    prev: Prev,
    new_segment: Option<u16>,
    spend: f64,
    p: f64,
) {
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
pub(super) fn finish(
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

/// A purchase of `item` at `t_ms` by a customer whose engagement list is `items` (before the
/// purchase): if they had engaged with it before, one example for the rebuy ranking
/// (`model/rebuy.rs`), the candidates being the listed items last engaged before `t_ms`.
fn learn_rebuy(
    model: &mut ModelState,
    together: &Together,
    items: &[Engaged],
    item: &str,
    t_ms: i64,
) {
    let listed: Vec<&Engaged> = items.iter().filter(|e| e.last_ms < t_ms).collect();
    let Some(chosen) = listed.iter().position(|e| e.name == item) else {
        return;
    };
    let popularity = together.popularity(listed.iter().map(|e| e.name.as_str()), t_ms);
    let candidates: Vec<[f32; rebuy::FEATURES]> = listed
        .iter()
        .zip(popularity)
        .map(|(e, p)| rebuy::features(e.purchases, e.last_ms, p, t_ms))
        .collect();
    model.rebuy.learn(&candidates, chosen);
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let key = store.profile_key(id);
            let value = store.seal(id, &key, id.as_bytes())?;
            batch.insert(key, value);
        }
        store.persist_new_keys()?;
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
