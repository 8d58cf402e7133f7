//! Applying one batch: events and attribute changes → profile records, model updates and the
//! set of keys to write. Runs on the writer thread only.
//!
//! Per event, in order: advance the watermark, labelling as negative every training example
//! whose horizon ended before it; if the event is a target event inside its customer's open
//! example's horizon, label that example positive; apply the event to the profile (a new
//! version); compute the feature vector as of the watermark; update the scaler and k-means;
//! predict the propensity; and, if the customer has no open example, snapshot one. Every
//! prediction is made before the example it scores is learned (prequential evaluation).
//!
//! Labels are honest about silence: when an example expires and the customer is still silent,
//! the next example is the profile as of that moment (recency = one horizon, then two, …, up to
//! `silent_horizons`). These silent-period examples cost no writes: they are derived from the
//! unchanged stored state, and stored only when the customer's state changes while one is open.

use super::{Ack, Item};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::features::vector::FeatureLayout;
use crate::features::{CompactEvent, ProfileOp};
use crate::model::ModelState;
use crate::storage::record::{PendingExample, ProfileRecord};
use crate::storage::{codec, keys, Store};
use crate::Event;
use std::collections::{BTreeSet, HashMap};

/// A record touched by the current batch.
struct Working {
    record: ProfileRecord,
    /// Segment in the membership index before this batch.
    old_segment: Option<u16>,
    /// Whether the record must be written.
    dirty: bool,
}

/// Changes to the expiry queue made by a batch, undone if its commit fails.
enum Undo {
    Inserted((i64, String)),
    Removed((i64, String)),
}

/// The writer's state: the committed model (a working copy during a batch) and the queue of
/// open training examples ordered by the time their horizon ends.
pub(crate) struct Engine {
    pub(crate) model: ModelState,
    expiry: BTreeSet<(i64, String)>,
    layout: FeatureLayout,
    config: Config,
    horizon_ms: i64,
}

/// The working set of one batch.
#[derive(Default)]
pub(crate) struct BatchState {
    records: HashMap<String, Working>,
    undo: Vec<Undo>,
}

impl BatchState {
    /// Whether the batch changed anything that must be committed.
    pub(crate) fn is_empty(&self) -> bool {
        !self.records.values().any(|w| w.dirty)
    }
}

impl Engine {
    /// Builds the engine from committed state: the model and the open examples of every profile.
    pub(crate) fn new(
        model: ModelState,
        pending: Vec<(String, i64)>,
        layout: FeatureLayout,
        config: Config,
    ) -> Engine {
        let horizon_ms = config.horizon_ms();
        let watermark = model.watermark_ms;
        let silent = config.silent_horizons as i64;
        let expiry = pending
            .into_iter()
            .filter_map(|(id, taken)| {
                // The next deadline at or after the watermark, if the chain is not exhausted.
                let age = watermark - taken;
                let k = if age <= horizon_ms {
                    0
                } else {
                    (age - 1) / horizon_ms
                };
                (k <= silent).then(|| (taken + (k + 1) * horizon_ms, id))
            })
            .collect();
        Engine {
            model,
            expiry,
            layout,
            config,
            horizon_ms,
        }
    }

    /// Number of training examples waiting for a label.
    pub(crate) fn open_examples(&self) -> usize {
        self.expiry.len()
    }

    /// Applies one item to the batch.
    pub(crate) fn apply(&mut self, store: &Store, b: &mut BatchState, item: &Item) -> Result<Ack> {
        match item {
            Item::Event(e) => self.apply_event(store, b, e),
            Item::SetAttributes { customer, attrs } => {
                let now = self.model.watermark_ms;
                let w = load(store, &mut b.records, customer)?;
                w.record.apply(
                    ProfileOp::SetAttributes(attrs.clone()),
                    store.params(),
                    self.config.history_versions,
                );
                let x = self.layout.vector(&w.record.state, now);
                let z = self.model.scaler.transform_vec(&x);
                let seg = self.model.segments.nearest(&z);
                let p = self.model.propensity.predict(&z);
                Ok(finish(&mut self.model, w, seg, p, false))
            }
        }
    }

    fn apply_event(&mut self, store: &Store, b: &mut BatchState, e: &Event) -> Result<Ack> {
        let id_hash = xxhash_rust::xxh3::xxh3_64(e.effective_id().as_bytes());
        {
            let w = load(store, &mut b.records, &e.customer_id)?;
            if w.record.has_seen(id_hash) {
                return Ok(Ack {
                    version: w.record.version,
                    segment: w.record.segment,
                    propensity: w.record.propensity as f64,
                    duplicate: true,
                });
            }
        }
        self.advance_watermark(store, b, e.timestamp_ms);
        let now = self.model.watermark_ms;
        let params = *store.params();
        let horizon = self.horizon_ms;
        let w = load(store, &mut b.records, &e.customer_id)?;

        let mut open = open_example(&w.record, now, horizon, self.config.silent_horizons);
        if let Some((taken_at, k)) = open {
            let features = example_features(&w.record, &self.layout, taken_at, k);
            if e.kind == self.config.target_kind
                && e.timestamp_ms > taken_at
                && e.timestamp_ms <= taken_at + horizon
            {
                // Positive: the target event came inside the example's horizon.
                learn(&mut self.model, &features, true);
                w.record.pending = None;
                let key = (taken_at + horizon, e.customer_id.clone());
                if self.expiry.remove(&key) {
                    b.undo.push(Undo::Removed(key));
                }
                open = None;
            } else if k > 0 {
                // A silent-period example is implicit (derived from the unchanged state); the
                // state is about to change, so store its features now. Its expiry entry stays.
                w.record.pending = Some(PendingExample {
                    taken_at_ms: taken_at,
                    features,
                });
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
        let (seg, z) = observe(&mut self.model, &x, self.config.model.reservoir_size);
        let p = self.model.propensity.predict(&z);

        if open.is_none() {
            w.record.pending = Some(PendingExample {
                taken_at_ms: now,
                features: x.iter().map(|v| *v as f32).collect(),
            });
            let key = (now + horizon, e.customer_id.clone());
            if self.expiry.insert(key.clone()) {
                b.undo.push(Undo::Inserted(key));
            }
        }
        w.record.remember(id_hash, self.config.dedupe_window);
        Ok(finish(&mut self.model, w, seg, p, false))
    }

    /// Moves the watermark to `ts` if later. Every example whose horizon ended before it is
    /// labelled negative; for a customer still silent, the profile as of that moment is
    /// observed by the scaler and k-means, and the next silent-period example is queued (up to
    /// `silent_horizons` of them).
    fn advance_watermark(&mut self, store: &Store, b: &mut BatchState, ts: i64) {
        if ts <= self.model.watermark_ms {
            return;
        }
        self.model.watermark_ms = ts;
        self.model.labelled_through_ms = ts;
        let h = self.horizon_ms;
        while let Some(first) = self.expiry.first() {
            if first.0 >= ts {
                break;
            }
            let Some(key) = self.expiry.pop_first() else {
                break;
            };
            b.undo.push(Undo::Removed(key.clone()));
            let (deadline, customer) = key;
            // A record that cannot be read is reported when its customer is next touched;
            // here it only means one fewer training example.
            let Ok(w) = load(store, &mut b.records, &customer) else {
                continue;
            };
            let Some(p) = &w.record.pending else {
                continue;
            };
            let age = deadline - p.taken_at_ms;
            if age <= 0 || age % h != 0 {
                continue; // stale entry: the example was replaced
            }
            let k = (age / h - 1) as usize;
            if k > self.config.silent_horizons {
                continue;
            }
            let features = example_features(&w.record, &self.layout, deadline - h, k);
            learn(&mut self.model, &features, false);
            let x = self.layout.vector(&w.record.state, deadline);
            observe(&mut self.model, &x, self.config.model.reservoir_size);
            if k < self.config.silent_horizons {
                let next = (deadline + h, customer);
                if self.expiry.insert(next.clone()) {
                    b.undo.push(Undo::Inserted(next));
                }
            }
        }
    }

    /// Adds the batch's writes to `batch`: dirty profiles, membership changes, the model state.
    pub(crate) fn write_into(&mut self, b: &BatchState, batch: &mut sled::Batch) {
        for (id, w) in &b.records {
            if !w.dirty {
                continue;
            }
            batch.insert(keys::profile(id), codec::encode(&w.record));
            if w.record.segment != w.old_segment {
                if let Some(old) = w.old_segment {
                    batch.remove(keys::member(old, id));
                }
                if let Some(new) = w.record.segment {
                    batch.insert(keys::member(new, id), &[]);
                }
            }
        }
        self.model.version += 1;
        batch.insert(keys::MODEL, Store::encode_model(&self.model));
    }

    /// Reverts the expiry queue after a failed commit (the model is restored by the caller).
    pub(crate) fn undo(&mut self, b: BatchState) {
        for u in b.undo.into_iter().rev() {
            match u {
                Undo::Inserted(k) => {
                    self.expiry.remove(&k);
                }
                Undo::Removed(k) => {
                    self.expiry.insert(k);
                }
            }
        }
    }
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

/// The raw features of example (taken_at, k): stored for k = 0, derived from the (unchanged
/// since) state as of `taken_at` otherwise.
fn example_features(
    record: &ProfileRecord,
    layout: &FeatureLayout,
    taken_at: i64,
    k: usize,
) -> Vec<f32> {
    match (&record.pending, k) {
        (Some(p), 0) => p.features.clone(),
        _ => layout
            .vector(&record.state, taken_at)
            .iter()
            .map(|v| *v as f32)
            .collect(),
    }
}

/// Feeds a raw vector to the scaler and (once the scaler has seen `warmup` vectors, so that
/// standardised values are meaningful) to k-means. Returns the segment and the scaled vector.
fn observe(model: &mut ModelState, x: &[f64], warmup: usize) -> (Option<(usize, f64)>, Vec<f64>) {
    model.scaler.update(x);
    let z = model.scaler.transform_vec(x);
    let seg = if model.scaler.count() > warmup as u64 {
        model.segments.observe(&z)
    } else {
        None
    };
    (seg, z)
}

/// Loads a customer's record into the batch (from the batch, the store, or new).
fn load<'b>(
    store: &Store,
    records: &'b mut HashMap<String, Working>,
    customer: &str,
) -> Result<&'b mut Working> {
    if !records.contains_key(customer) {
        let record = store.profile(customer)?;
        let old_segment = record.as_ref().and_then(|r| r.segment);
        let record = record.unwrap_or_else(|| ProfileRecord::new(store.params()));
        records.insert(
            customer.to_string(),
            Working {
                record,
                old_segment,
                dirty: false,
            },
        );
    }
    records.get_mut(customer).ok_or_else(|| Error::Corruption {
        key: format!("profile {customer:?}"),
        detail: "vanished from the batch working set".into(),
    })
}

/// Learns one labelled example (predicting it first, for the prequential metrics).
fn learn(model: &mut ModelState, features: &[f32], label: bool) {
    if features.len() != model.scaler.dim() {
        return;
    }
    let x: Vec<f64> = features.iter().map(|v| f64::from(*v)).collect();
    let z = model.scaler.transform_vec(&x);
    let p = model.propensity.learn(&z, label);
    model.metrics.record(p, label);
}

/// Records the model outcome on the record and the segment sizes, marks it dirty, builds the ack.
fn finish(
    model: &mut ModelState,
    w: &mut Working,
    seg: Option<(usize, f64)>,
    p: f64,
    duplicate: bool,
) -> Ack {
    let new_seg = seg.map(|(s, d)| (s as u16, d as f32));
    if let Some((s, _)) = new_seg {
        if w.record.segment != Some(s) {
            if let Some(old) = w.record.segment {
                if let Some(n) = model.segment_sizes.get_mut(old as usize) {
                    *n = n.saturating_sub(1);
                }
            }
            if let Some(n) = model.segment_sizes.get_mut(s as usize) {
                *n += 1;
            }
        }
    }
    w.record.set_outcome(new_seg, p);
    w.dirty = true;
    Ack {
        version: w.record.version,
        segment: w.record.segment,
        propensity: p,
        duplicate,
    }
}
