//! [`Db`]: the embedded facade. Open a store, ingest events, set attributes, read profiles and
//! model information, close.
//!
//! A `Db` is a cheap handle (`Clone`, `Send + Sync`): clones share one store and one writer
//! thread. Writes go through the single writer (see [`crate::pipeline`]) and return only once
//! committed and as durable as configured; reads go straight to committed records and the
//! latest published model, so a read after a returned write sees it.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{validate_customer_id, Event};
use crate::features::attributes::{validate_attribute, MAX_ATTRIBUTES};
use crate::features::vector::FeatureLayout;
use crate::features::{AttrValue, FeatureParams};
use crate::model::ModelState;
use crate::pipeline::{
    self, Ack, Item, Maintenance, MaintenanceOutcome, Notify, Request, Shared, WriteReply,
    WriteStats,
};
use crate::query::lookalike_index::{BuildState, LookalikeIndex};
use crate::query::similar::Scan;
use crate::query::{
    history, score, segments, similar, strategy, HistoryItem, ModelInfo, Profile, Recommendation,
    Score, SegmentDistance, SegmentInfo, SimilarCustomer,
};
use crate::storage::record::HistoryError;
use crate::storage::Store;
use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

mod privacy;

pub use privacy::PurgeReport;

/// An open Persona store.
///
/// # Examples
/// ```
/// # let dir = tempfile::tempdir()?;
/// use persona::{Db, Event, EventKind};
/// let db = Db::open(dir.path())?;
/// let ack = db.ingest(
///     Event::new("c42", 1_767_225_600_000, EventKind::Purchase)
///         .with_value(25.0)
///         .with_category("books"),
/// )?;
/// assert_eq!(ack.version, 1);
/// let profile = db.profile("c42")?.expect("just written");
/// assert_eq!(profile.event_count, 1);
/// db.close()?;
/// # Ok::<(), persona::Error>(())
/// ```
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    tx: Sender<Request>,
    shared: Arc<Shared>,
    layout: FeatureLayout,
    config: Config,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The background build of the lookalike index, started by the first query that needs it
    /// (joined on close: it holds the store).
    index_builder: Mutex<IndexBuilder>,
    /// Randomness for Thompson sampling: seeded, so recommendations are reproducible.
    rng: Mutex<rand_pcg::Pcg64>,
    /// Dropping this stops the background re-segmentation thread, if any.
    stop_background: Mutex<Option<Sender<()>>>,
    /// The last segment descriptions, for the strategy's rules and labels.
    segment_cache: segments::SegmentCache,
}

/// One entry of the lookalike index as [`Db::lookalike_index_rows`] shows it: customer id,
/// segment, 8-bit codes, the time they are as of (days since the epoch). For tests.
#[doc(hidden)]
pub type LookalikeRow = (String, Option<u16>, Vec<u8>, f32);

/// What [`Db::nearest_segments`] measures from.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A customer, evaluated as of the watermark.
    Customer(&'a str),
    /// A raw feature vector in the profile-feature layout.
    Vector(&'a [f64]),
}

/// What [`Db::resegment`] did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ResegmentReport {
    /// Whether the centroids were refitted first.
    pub refitted: bool,
    /// Profiles looked at.
    pub scanned: usize,
    /// Profiles whose segment changed.
    pub changed: usize,
    /// Commits it took.
    pub batches: usize,
}

impl Db {
    /// Opens (or creates) a store at `path` with the default [`Config`].
    ///
    /// # Errors
    /// See [`Db::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(Config::new(path))
    }

    /// Opens (or creates) a store with `config`.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings, [`Error::ConfigMismatch`] if the store was created
    /// with different fixed settings, [`Error::Locked`] at once while another process has it
    /// open, [`Error::Storage`] if sled cannot open it otherwise, [`Error::Corruption`] if its
    /// model state does not decode. A damaged profile record does not stop the open: reads of
    /// that customer report it.
    pub fn open_with(config: Config) -> Result<Db> {
        config.validate()?;
        let store = Arc::new(Store::open(&config)?);
        let params = FeatureParams {
            half_life_ms: config.half_life_ms(),
            category_buckets: config.category_buckets,
        };
        let layout = FeatureLayout::new(params);
        let dim = layout.dim();
        let model = match store.model()? {
            Some(m) => {
                if m.scaler.dim() != dim || m.segments.k() != config.segments {
                    return Err(Error::Corruption {
                        key: "model state".into(),
                        detail: format!(
                            "has {} dimensions and {} segments; this store needs {dim} and {}",
                            m.scaler.dim(),
                            m.segments.k(),
                            config.segments
                        ),
                    });
                }
                m
            }
            None => ModelState::new(dim, &config.model),
        };
        let mut model = model;
        if model.categories.len() != config.category_buckets {
            model.categories =
                crate::features::categories::CategoryNames::new(config.category_buckets);
        }
        if model.strategy.actions() != config.actions.as_slice() {
            // A changed catalogue keeps the statistics of actions that kept their names.
            model.strategy = model.strategy.with_actions(&config.actions);
        }
        let queue = recover_queue(&store, &config, &model)?;
        let shared = Arc::new(Shared {
            model: RwLock::new(Arc::new(model.clone())),
            fail_commits: AtomicU32::new(0),
            apply_delay_us: AtomicU64::new(0),
            fail_syncs: AtomicU32::new(0),
            open_examples: AtomicUsize::new(0),
            snapshots: RwLock::new(Vec::new()),
            counters: Default::default(),
            lookalikes: Arc::new(LookalikeIndex::new(layout.clone(), config.segments)),
        });
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity);
        let seed = config.model.seed;
        let writer = pipeline::spawn(
            store.clone(),
            config.clone(),
            layout.clone(),
            pipeline::Recovered {
                model,
                queue,
                snapshots: store.snapshot_versions()?,
                sample: recover_sample(&store)?,
                held: pipeline::held::Held::new(store.held_examples()?),
            },
            shared.clone(),
            rx,
        )?;
        let db = Db {
            inner: Arc::new(Inner {
                store,
                tx,
                shared,
                layout,
                config,
                writer: Mutex::new(Some(writer)),
                index_builder: Mutex::new(IndexBuilder::NotStarted),
                rng: Mutex::new(rand::SeedableRng::seed_from_u64(seed)),
                stop_background: Mutex::new(None),
                segment_cache: segments::SegmentCache::default(),
            }),
        };
        db.start_background_jobs()?;
        Ok(db)
    }

    /// Starts the background threads the configuration asks for: periodic re-segmentation
    /// when `resegment_interval_secs` > 0, periodic retention purges when `profile_ttl_days` is
    /// set. They hold only a weak reference, so they never keep a dropped store open, and stop
    /// when the store closes.
    fn start_background_jobs(&self) -> Result<()> {
        let config = &self.inner.config;
        let resegment = config.resegment_interval_secs;
        let purge = config.profile_ttl_days.map(|_| config.purge_interval_secs);
        if resegment == 0 && purge.is_none() {
            return Ok(());
        }
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        *self.inner.stop_background.lock() = Some(stop);
        if resegment > 0 {
            self.spawn_periodic(
                "persona-resegment",
                resegment,
                stopped.clone(),
                |db| match db.resegment(1000, false) {
                    Ok(r) => tracing::info!(
                        "background re-segmentation: {} scanned, {} changed",
                        r.scanned,
                        r.changed
                    ),
                    Err(e) => tracing::warn!("background re-segmentation failed: {e}"),
                },
            )?;
        }
        if let Some(secs) = purge {
            self.spawn_periodic("persona-purge", secs, stopped, |db| match db.purge() {
                Ok(r) => tracing::info!(
                    "background retention purge: {} scanned, {} erased",
                    r.scanned,
                    r.erased
                ),
                Err(e) => tracing::warn!("background retention purge failed: {e}"),
            })?;
        }
        Ok(())
    }

    /// Runs `job` every `secs` seconds on a thread of its own until `stopped` disconnects or
    /// the store is dropped.
    fn spawn_periodic(
        &self,
        name: &str,
        secs: u64,
        stopped: crossbeam_channel::Receiver<()>,
        job: fn(&Db),
    ) -> Result<()> {
        let weak = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let interval = std::time::Duration::from_secs(secs);
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(interval)
                {
                    let Some(inner) = weak.upgrade() else { return };
                    job(&Db { inner });
                }
            })?;
        Ok(())
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Ingests one event: validates it, commits it with its batch, returns its acknowledgement.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] if the event is rejected (nothing changes); storage errors if the
    /// commit fails (nothing of the batch is visible); [`Error::Closed`] after [`Db::close`].
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let e = Event::new("c1", 1_767_225_600_000, EventKind::View).with_value(30.0).with_id("v1");
    /// assert!(!db.ingest(e.clone())?.duplicate);
    /// assert!(db.ingest(e)?.duplicate);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn ingest(&self, event: Event) -> Result<Ack> {
        event.validate()?;
        let mut results = self.submit(vec![Item::Event(event)])?;
        results.pop().unwrap_or(Err(Error::Closed))
    }

    /// Ingests many events; they are committed together where possible. Returns one result per
    /// event, in order: a rejected event gets its [`Error::InvalidEvent`] and the others proceed.
    ///
    /// # Errors
    /// The outer error is [`Error::Closed`] if the writer is gone.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// let results = db.ingest_batch(vec![
    ///     Event::new("a", t, EventKind::Click),
    ///     Event::new("b", t, EventKind::Purchase).with_value(-1.0),
    /// ])?;
    /// assert!(results[0].is_ok());
    /// assert!(results[1].as_ref().unwrap_err().is_bad_input());
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn ingest_batch(&self, events: Vec<Event>) -> Result<Vec<Result<Ack>>> {
        let mut out: Vec<Option<Result<Ack>>> = Vec::with_capacity(events.len());
        let mut items = Vec::with_capacity(events.len());
        for e in events {
            match e.validate() {
                Ok(()) => {
                    items.push(Item::Event(e));
                    out.push(None);
                }
                Err(err) => out.push(Some(Err(err.into()))),
            }
        }
        let mut acks = if items.is_empty() {
            Vec::new().into_iter()
        } else {
            self.submit(items)?.into_iter()
        };
        Ok(out
            .into_iter()
            .map(|slot| slot.unwrap_or_else(|| acks.next().unwrap_or(Err(Error::Closed))))
            .collect())
    }

    /// Sets (or replaces) attributes of a customer, creating the profile if needed. Returns the
    /// new profile version. Numbers and texts are both allowed; see [`AttrValue`].
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] for a bad customer id, [`Error::InvalidArgument`] for a bad name or
    /// value or more than 64 attributes; nothing changes then.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{AttrValue, Db};
    /// let db = Db::open(dir.path())?;
    /// db.set_attributes("c1", vec![("age".into(), 34.0.into()), ("region".into(), "north".into())])?;
    /// let p = db.profile("c1")?.expect("created");
    /// assert_eq!(p.attributes["region"], AttrValue::Text("north".into()));
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn set_attributes(
        &self,
        customer_id: &str,
        attrs: Vec<(String, AttrValue)>,
    ) -> Result<u64> {
        validate_customer_id(customer_id)?;
        if attrs.is_empty() {
            return Err(Error::invalid_argument(
                "attributes",
                "at least one name and value is required",
            ));
        }
        for (name, value) in &attrs {
            validate_attribute(name, value)?;
        }
        if let Some(existing) = self.inner.store.profile_current(customer_id)? {
            let mut names: std::collections::BTreeSet<&str> = existing
                .state
                .attributes
                .keys()
                .map(String::as_str)
                .collect();
            names.extend(attrs.iter().map(|(n, _)| n.as_str()));
            if names.len() > MAX_ATTRIBUTES {
                return Err(Error::invalid_argument(
                    "attributes",
                    format!("a customer may have at most {MAX_ATTRIBUTES} attributes"),
                ));
            }
        } else if attrs.len() > MAX_ATTRIBUTES {
            return Err(Error::invalid_argument(
                "attributes",
                format!("a customer may have at most {MAX_ATTRIBUTES} attributes"),
            ));
        }
        let mut results = self.submit(vec![Item::SetAttributes {
            customer: customer_id.to_string(),
            attrs,
        }])?;
        results
            .pop()
            .unwrap_or(Err(Error::Closed))
            .map(|a| a.version)
    }

    /// Validates `event` and queues it for the writer without waiting for the commit: the
    /// returned [`PendingWrite`] yields the acknowledgement once the event is durable. Lets a
    /// caller (such as the RESP server with a pipelining client) keep several writes in flight so
    /// they share one group commit.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] at once if the event is rejected; [`Error::Closed`] if the writer
    /// is gone.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// let a = db.ingest_async(Event::new("a", t, EventKind::Click))?;
    /// let b = db.ingest_async(Event::new("b", t, EventKind::Click))?;
    /// assert_eq!(a.wait()?.version, 1);
    /// assert_eq!(b.wait()?.version, 1);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn ingest_async(&self, event: Event) -> Result<PendingWrite> {
        event.validate()?;
        self.submit_async(vec![Item::Event(event)])
    }

    /// [`Db::ingest_async`] that also tells `notify` (with `tag`) once the write's result is
    /// waiting, so that an event loop can learn it without blocking (see
    /// [`PendingWrite::try_wait`]).
    pub(crate) fn ingest_notify(
        &self,
        event: Event,
        notify: (Arc<dyn Notify>, usize),
    ) -> Result<PendingWrite> {
        event.validate()?;
        self.submit_with(vec![Item::Event(event)], Some(notify))
    }

    fn submit_async(&self, items: Vec<Item>) -> Result<PendingWrite> {
        self.submit_with(items, None)
    }

    fn submit_with(
        &self,
        items: Vec<Item>,
        notify: Option<(Arc<dyn Notify>, usize)>,
    ) -> Result<PendingWrite> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let reply = WriteReply::new(tx, notify);
        self.inner
            .tx
            .send(Request::Write { items, reply })
            .map_err(|_| Error::Closed)?;
        Ok(PendingWrite { rx })
    }

    fn submit(&self, items: Vec<Item>) -> Result<Vec<Result<Ack>>> {
        self.submit_async(items)?.wait_all()
    }

    /// A customer's profile as of the current watermark, or `None` if unknown.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the customer if their record does not decode (other customers
    /// are unaffected); [`Error::InvalidEvent`] for an invalid customer id.
    pub fn profile(&self, customer_id: &str) -> Result<Option<Profile>> {
        validate_customer_id(customer_id)?;
        let Some(record) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        let model = self.model();
        Ok(Some(Profile::evaluate(
            customer_id,
            record,
            &model,
            &self.inner.layout,
        )))
    }

    /// A customer's profile at a past `version` (the last `history_versions` are kept).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if that version was pruned or does not exist yet (the message
    /// names the readable range); [`Error::Corruption`] as for [`Db::profile`].
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// db.ingest(Event::new("c", t, EventKind::Click))?;
    /// db.ingest(Event::new("c", t + 1, EventKind::Click))?;
    /// assert_eq!(db.profile_at("c", 1)?.expect("kept").event_count, 1);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn profile_at(&self, customer_id: &str, version: u64) -> Result<Option<Profile>> {
        validate_customer_id(customer_id)?;
        let Some(record) = self.inner.store.profile(customer_id)? else {
            return Ok(None);
        };
        match record.state_at(version, self.inner.store.params()) {
            Ok((state, _, _)) => Ok(Some(Profile::of_state(
                customer_id,
                version,
                state,
                &self.model(),
                &self.inner.layout,
                None,
            ))),
            Err(HistoryError::Pruned { oldest }) => Err(Error::invalid_argument(
                "version",
                format!(
                    "{version} of {customer_id:?} was pruned; versions {oldest}..={} are kept",
                    record.version
                ),
            )),
            Err(HistoryError::Future { current }) => Err(Error::invalid_argument(
                "version",
                format!("{version} of {customer_id:?} does not exist; the latest is {current}"),
            )),
        }
    }

    /// The model as of the last committed batch.
    pub fn model(&self) -> Arc<ModelState> {
        self.inner.shared.model.read().clone()
    }

    /// Model metrics and segment sizes.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let db = persona::Db::open(dir.path())?;
    /// let info = db.model_info();
    /// assert_eq!(info.examples, 0);
    /// assert_eq!(info.segments.len(), 8);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn model_info(&self) -> ModelInfo {
        ModelInfo::of(
            &self.model(),
            self.inner.shared.open_examples.load(Ordering::Relaxed) as u64,
            self.inner.shared.snapshots.read().clone(),
        )
    }

    /// Every segment: its size, and its members' statistics as of the watermark in raw units
    /// (median days since the last event, mean and median spend, buyers, mean propensity, …),
    /// computed over all members or, in a large store, a uniform sample of about
    /// [`crate::query::segment_stats::SAMPLE`] of them (each segment says how many it
    /// evaluated); the label and the rule's action derived from those statistics, and the
    /// feedback statistics of every action. Empty until the segments are seeded. One pass over
    /// the profile keys: every surface (`persona segments`, `export segments`, `SEGMENT.LIST`,
    /// the report) reads this.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails while scanning.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let db = persona::Db::open(dir.path())?;
    /// assert!(db.segments()?.is_empty(), "not seeded yet");
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        Ok(self.segments_of(&self.model())?.as_ref().clone())
    }

    /// Describes the segments of `model` and remembers the result for [`Db::strategy`].
    fn segments_of(&self, model: &ModelState) -> Result<Arc<Vec<SegmentInfo>>> {
        let segs = Arc::new(segments::summarise_and_describe(
            &self.inner.store,
            model,
            &self.inner.layout,
            self.inner.config.horizon_days,
        )?);
        self.inner
            .segment_cache
            .put(model.version, Arc::clone(&segs));
        Ok(segs)
    }

    /// Names of the feature-vector dimensions, in order.
    pub fn feature_names(&self) -> Vec<String> {
        self.inner.layout.names()
    }

    /// The feature layout.
    pub fn layout(&self) -> &FeatureLayout {
        &self.inner.layout
    }

    /// Members of a segment in customer-id order, after `cursor` (exclusive), at most `limit`.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn segment_members(
        &self,
        segment: u16,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.inner.store.members(segment, cursor, limit)
    }

    /// Every profile, evaluated as of the watermark with the current model, in customer-id
    /// order. Streams: one record is decoded at a time.
    pub fn profiles(&self) -> impl Iterator<Item = Result<Profile>> + '_ {
        let model = self.model();
        self.inner.store.scan_profiles().map(move |item| {
            let (id, bytes) = item?;
            let rec = self.inner.store.decode_profile_current(&id, &bytes)?;
            Ok(Profile::evaluate(&id, rec, &model, &self.inner.layout))
        })
    }

    /// What `persona report` draws: every segment (size, label, standardised centroid) and a
    /// uniform sample of at most `sample` customers (standardised vector as of the watermark,
    /// nearest segment).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails; damaged records are left out of the sample.
    pub fn report_input(&self, sample: usize) -> Result<crate::query::report::ReportInput> {
        use crate::query::report::{ReportInput, ReportPoint, ReportSegment};
        use rand::{Rng, SeedableRng};
        let model = self.model();
        let segments = self.segments_of(&model)?;
        let mut rng = rand_pcg::Pcg64::seed_from_u64(self.inner.config.model.seed);
        let mut points: Vec<ReportPoint> = Vec::new();
        let mut customers = 0u64;
        for item in self.inner.store.scan_profiles() {
            let (id, bytes) = item?;
            customers += 1;
            let slot = if points.len() < sample {
                None
            } else {
                let j = rng.gen_range(0..customers as usize);
                if j >= sample {
                    continue;
                }
                Some(j)
            };
            let Ok(rec) = self.inner.store.decode_profile_current(&id, &bytes) else {
                continue; // a damaged record is left out of the picture; `check` reports it
            };
            let x = self.as_of_now(&rec.state, &model);
            let Some((seg, _)) = model.segments.assign(&x) else {
                continue;
            };
            let point = ReportPoint {
                segment: seg as u16,
                vector: model.segments.scale().transform_vec(&x),
            };
            match slot {
                None => points.push(point),
                Some(j) => points[j] = point,
            }
        }
        let as_of = chrono::DateTime::from_timestamp_millis(model.watermark_ms)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| model.watermark_ms.to_string());
        Ok(ReportInput {
            title: "Customer segments".into(),
            subtitle: format!(
                "{customers} customers · {} segments · as of {as_of}",
                segments.len()
            ),
            segments: segments
                .iter()
                .map(|s| ReportSegment {
                    id: s.id,
                    size: s.size,
                    label: s.label.clone(),
                    centroid: model.segments.scaled_centroid(s.id as usize).to_vec(),
                })
                .collect(),
            points,
        })
    }

    /// Number of customers with a profile (a full scan: O(customers)).
    pub fn profile_count(&self) -> usize {
        self.inner.store.profile_count()
    }

    /// Bytes on disk.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.inner.store.size_on_disk()
    }

    /// What the writer has committed since this handle opened the store: commits, items, key
    /// writes and bytes written. `persona bench` reports key writes per event from it.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// db.ingest(Event::new("c1", 1_767_225_600_000, EventKind::Click))?;
    /// let first = db.stats();
    /// assert_eq!((first.commits, first.items), (1, 1));
    /// // The profile record, the new customer's entry in the segment sample (while the sample
    /// // is not full, every new customer joins it), the model state, and the expiry queue's
    /// // first checkpoint (its meta record and one chunk).
    /// assert_eq!(first.key_writes, 5);
    /// db.ingest(Event::new("c1", 1_767_225_601_000, EventKind::Click))?;
    /// // The profile record, the model state and the queue's meta record (the open training
    /// // example did not change, so there is no queue delta).
    /// assert_eq!(db.stats().key_writes - first.key_writes, 3);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn stats(&self) -> WriteStats {
        self.inner.shared.counters.snapshot()
    }

    /// The storage layer (for maintenance tools and tests).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The `n` segments nearest to a customer (evaluated as of the watermark) or to a raw
    /// feature vector (same layout as [`Profile::features`]), nearest first. Empty before the
    /// segments are seeded, and for an unknown customer.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a vector of the wrong length or with non-finite values;
    /// [`Error::Corruption`] if the customer's record does not decode.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Target};
    /// let db = Db::open(dir.path())?;
    /// let err = db.nearest_segments(Target::Vector(&[1.0, 2.0]), 3).unwrap_err();
    /// assert!(err.to_string().contains("vector has 2 dimensions; the model expects 61"));
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn nearest_segments(&self, target: Target<'_>, n: usize) -> Result<Vec<SegmentDistance>> {
        let model = self.model();
        let x = match target {
            Target::Vector(v) => {
                crate::model::check_vector(v, self.inner.layout.dim())
                    .map_err(|e| Error::invalid_argument("vector", e.to_string()))?;
                v.to_vec()
            }
            Target::Customer(id) => {
                validate_customer_id(id)?;
                match self.inner.store.profile_current(id)? {
                    Some(rec) => self.as_of_now(&rec.state, &model),
                    None => return Ok(Vec::new()),
                }
            }
        };
        Ok(model
            .segments
            .assign_n(&x, n)
            .into_iter()
            .map(|(s, d)| SegmentDistance {
                segment: s as u16,
                distance: d,
            })
            .collect())
    }

    fn standardised(&self, state: &crate::features::ProfileState, model: &ModelState) -> Vec<f64> {
        model.scaler.transform_vec(&self.as_of_now(state, model))
    }

    /// The raw feature vector of `state` as of now (the watermark, or the profile's own last
    /// event if later).
    fn as_of_now(&self, state: &crate::features::ProfileState, model: &ModelState) -> Vec<f64> {
        let as_of = model
            .watermark_ms
            .max(state.last_seen_ms.unwrap_or(i64::MIN));
        self.inner.layout.vector(state, as_of)
    }

    /// The `k` customers most similar to `customer_id` (lookalikes), nearest first, excluding
    /// the customer. With `exact` every profile is scanned; otherwise only the members of the
    /// `nprobe` segments nearest to the customer. `None` for an unknown customer.
    ///
    /// # Errors
    /// [`Error::Corruption`] if the customer's own record does not decode; damaged records of
    /// other customers are skipped (with a warning in the log).
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// for (id, v) in [("a", 10.0), ("b", 11.0), ("c", 500.0)] {
    ///     db.ingest(Event::new(id, t, EventKind::Purchase).with_value(v))?;
    /// }
    /// let similar = db.similar("a", 1, true)?.expect("a exists");
    /// assert_eq!(similar[0].customer_id, "b");
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn similar(
        &self,
        customer_id: &str,
        k: usize,
        exact: bool,
    ) -> Result<Option<Vec<SimilarCustomer>>> {
        validate_customer_id(customer_id)?;
        let Some(rec) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        let model = self.model();
        let z = self.standardised(&rec.state, &model);
        let scan = self.similar_scan(&rec.state, &model, k, exact)?;
        similar::search(
            &self.inner.store,
            &model,
            &self.inner.layout,
            &z,
            customer_id,
            k,
            scan,
        )
        .map(Some)
    }

    /// Which profiles [`Db::similar`] evaluates exactly for a customer in `state`.
    fn similar_scan(
        &self,
        state: &crate::features::ProfileState,
        model: &ModelState,
        k: usize,
        exact: bool,
    ) -> Result<Scan> {
        if exact || !model.segments.is_seeded() {
            return Ok(Scan::All);
        }
        let index = &self.inner.shared.lookalikes;
        self.inner.start_index_build()?;
        if !index.is_ready() {
            // Until the background build after open is done: the exact search.
            return Ok(Scan::All);
        }
        // Members were assigned as of their last write, when they had just been active; the
        // customers similar to this one *now* were assigned near where this one was at its
        // own last activity. Probe around both positions.
        let nprobe = self.inner.config.nprobe;
        let at_last_write = self
            .inner
            .layout
            .vector(state, state.last_seen_ms.unwrap_or(model.watermark_ms));
        let mut segs: Vec<u16> = Vec::new();
        for (s, _) in model
            .segments
            .assign_n(&self.as_of_now(state, model), nprobe)
            .into_iter()
            .chain(model.segments.assign_n(&at_last_write, nprobe))
        {
            if !segs.contains(&(s as u16)) {
                segs.push(s as u16);
            }
        }
        // Shortlist from the compact vectors, brought forward to now; the exact re-rank
        // decodes only the shortlist.
        let now = model.watermark_ms;
        let x = self.inner.layout.vector(state, now);
        let query = index.query(&x, &inverse_divisors(model), now);
        // +1: the customer itself is usually on its own shortlist.
        Ok(Scan::Candidates(index.shortlist(
            &query,
            &segs,
            shortlist_len(k) + 1,
        )))
    }

    /// The first step of indexed [`Db::similar`] alone: the candidates the lookalike index
    /// shortlists for `customer_id` (how many), without the exact re-rank. `None` for an
    /// unknown customer or when the index is not ready. For benchmarks (the re-rank's share).
    ///
    /// # Errors
    /// As [`Db::similar`].
    #[doc(hidden)]
    pub fn lookalike_shortlist_len(&self, customer_id: &str, k: usize) -> Result<Option<usize>> {
        validate_customer_id(customer_id)?;
        let Some(rec) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        let model = self.model();
        Ok(match self.similar_scan(&rec.state, &model, k, false)? {
            Scan::Candidates(ids) => Some(ids.len()),
            Scan::All => None,
        })
    }

    /// Starts rebuilding the lookalike index of the stored profiles in the background now,
    /// instead of at the first [`Db::similar`] (which scans the records until the index is
    /// ready). A long-running process that answers `similar` calls it once after open; calling
    /// it again does nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if the background thread cannot be spawned.
    pub fn prepare_lookalikes(&self) -> Result<()> {
        self.inner.start_index_build()
    }

    /// Starts the lookalike index's background build if it has not started, and blocks until
    /// it is built; true if it is ready (false if its build failed or was stopped: `similar`
    /// then scans the records). For tests and benchmarks.
    #[doc(hidden)]
    pub fn wait_for_lookalike_index(&self) -> bool {
        if self.inner.start_index_build().is_err() {
            return false;
        }
        self.inner.shared.lookalikes.wait_built() == BuildState::Ready
    }

    /// Every customer in the lookalike index with its segment and compact row (codes and the
    /// time they are as of, in days), in id order; `None` until the index is built. For tests.
    #[doc(hidden)]
    pub fn lookalike_index_rows(&self) -> Option<Vec<LookalikeRow>> {
        let index = &self.inner.shared.lookalikes;
        index.is_ready().then(|| index.rows())
    }

    /// Customers in the lookalike index. For benchmarks.
    #[doc(hidden)]
    pub fn lookalike_index_len(&self) -> usize {
        self.inner.shared.lookalikes.len()
    }

    /// Approximate heap bytes held by the lookalike index. For benchmarks.
    #[doc(hidden)]
    pub fn lookalike_index_bytes(&self) -> usize {
        self.inner.shared.lookalikes.heap_bytes()
    }

    /// A customer's propensity with the current model, as of the watermark, and the features
    /// that contributed most. `None` for an unknown customer.
    ///
    /// # Errors
    /// [`Error::Corruption`] if the record does not decode.
    pub fn score(&self, customer_id: &str) -> Result<Option<Score>> {
        validate_customer_id(customer_id)?;
        let Some(rec) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        Ok(Some(score::score(
            customer_id,
            &rec.state,
            &self.model(),
            &self.inner.layout,
        )))
    }

    /// The last `n` retained versions of a customer's profile, newest first. `None` for an
    /// unknown customer.
    ///
    /// # Errors
    /// [`Error::Corruption`] if the record does not decode.
    pub fn history(&self, customer_id: &str, n: usize) -> Result<Option<Vec<HistoryItem>>> {
        validate_customer_id(customer_id)?;
        Ok(self
            .inner
            .store
            .profile(customer_id)?
            .map(|rec| history::recent(&rec, n)))
    }

    /// The profile as it was at event time `timestamp_ms`: the latest retained version whose
    /// events all happened at or before it, evaluated as of that time. `None` if the customer
    /// is unknown or had no events by then.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if that moment is older than the retained history.
    pub fn profile_as_of(&self, customer_id: &str, timestamp_ms: i64) -> Result<Option<Profile>> {
        validate_customer_id(customer_id)?;
        let Some(rec) = self.inner.store.profile(customer_id)? else {
            return Ok(None);
        };
        let params = self.inner.store.params();
        let oldest = rec.oldest_version();
        for v in (oldest..=rec.version).rev() {
            let Ok((state, _, _)) = rec.state_at(v, params) else {
                continue;
            };
            if state.last_seen_ms.is_none_or(|t| t <= timestamp_ms) {
                if state.event_count == 0 {
                    return Ok(None);
                }
                return Ok(Some(Profile::of_state(
                    customer_id,
                    v,
                    state,
                    &self.model(),
                    &self.inner.layout,
                    Some(timestamp_ms),
                )));
            }
        }
        if rec.base_version() == 0 {
            return Ok(None); // the customer's first event is later than `timestamp_ms`
        }
        Err(Error::invalid_argument(
            "timestamp",
            format!(
                "{timestamp_ms} is older than the retained history of {customer_id:?} \
                 (versions {oldest}..={} are kept)",
                rec.version
            ),
        ))
    }

    /// The marketing action to take for a customer now: Thompson sampling over the per-segment
    /// action statistics (or, with `greedy`, the best posterior mean), with rule-based priors.
    /// `None` for an unknown customer. The rule and label of the customer's segment are those
    /// [`Db::segments`] computed last, if the model has not changed since or it was less than
    /// five minutes ago; otherwise they are computed again first (one pass over the profile
    /// keys: about 1 s at 500k profiles, so the first call after opening a large store is
    /// slow).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the segments are not seeded yet; [`Error::Storage`] if sled
    /// fails while the segment statistics are computed.
    pub fn strategy(&self, customer_id: &str, greedy: bool) -> Result<Option<Recommendation>> {
        validate_customer_id(customer_id)?;
        let Some(rec) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        let model = self.model();
        let Some((seg, _)) = model.segments.assign(&self.as_of_now(&rec.state, &model)) else {
            return Err(Error::invalid_argument(
                "segment",
                "segments are not seeded yet; strategies need segments",
            ));
        };
        let described = match self.inner.segment_cache.get(model.version) {
            Some(segs) => segs,
            None => self.segments_of(&model)?,
        };
        let (label, rule) = described
            .get(seg)
            .map(|s| (s.label.clone(), s.rule_action.clone()))
            .unwrap_or_default();
        let rule = strategy::action_index(&model, &rule);
        let chosen = {
            let mut rng = self.inner.rng.lock();
            model.strategy.choose(seg, rule, greedy, &mut *rng)
        };
        let Some((action, posterior)) = chosen else {
            return Err(Error::Config("the action catalogue is empty".into()));
        };
        Ok(Some(strategy::explain(
            &model,
            customer_id,
            seg,
            &label,
            action,
            posterior,
            rule,
            greedy,
        )))
    }

    /// Records whether a recommended action converted. Goes through the writer like an event
    /// (atomic, durable) and updates the statistics of the customer's segment — by default the
    /// segment the customer is in now, which is the one [`Db::strategy`] used unless their
    /// profile changed since; pass `segment` to attribute it explicitly. With an `id`, a repeated
    /// feedback is acknowledged as a duplicate and changes nothing.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unknown action (naming the catalogue), an unknown
    /// customer, a segment out of range, or before segments are seeded.
    pub fn feedback(
        &self,
        customer_id: &str,
        action: &str,
        converted: bool,
        id: Option<&str>,
        segment: Option<u16>,
    ) -> Result<Ack> {
        validate_customer_id(customer_id)?;
        let actions = &self.inner.config.actions;
        let Some(action) = actions.iter().position(|a| a == action) else {
            return Err(Error::invalid_argument(
                "action",
                format!("{action:?} is not one of: {}", actions.join(", ")),
            ));
        };
        if let Some(id) = id {
            crate::event::validate_text("feedback id", id, crate::event::MAX_EVENT_ID_BYTES, false)
                .map_err(|e| Error::invalid_argument("feedback id", e.reason))?;
        }
        if let Some(s) = segment {
            if s as usize >= self.inner.config.segments {
                return Err(Error::invalid_argument(
                    "segment",
                    format!(
                        "{s} is out of range; segments are 0..{}",
                        self.inner.config.segments
                    ),
                ));
            }
        }
        let mut results = self.submit(vec![Item::Feedback {
            customer: customer_id.to_string(),
            action,
            converted,
            id: id.map(str::to_string),
            segment,
        }])?;
        results.pop().unwrap_or(Err(Error::Closed))
    }

    /// The stored model snapshots, oldest first.
    ///
    /// # Errors
    /// [`Error::Corruption`] if a snapshot does not decode.
    pub fn model_versions(&self) -> Result<Vec<ModelInfo>> {
        let versions = self.inner.shared.snapshots.read().clone();
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            if let Some(snap) = self.inner.store.snapshot(v)? {
                out.push(ModelInfo::of(&snap, 0, Vec::new()));
            }
        }
        Ok(out)
    }

    /// The model snapshot taken at `version`, if kept.
    ///
    /// # Errors
    /// [`Error::Corruption`] if it does not decode.
    pub fn model_snapshot(&self, version: u64) -> Result<Option<ModelState>> {
        self.inner.store.snapshot(version)
    }

    /// Snapshots the model now (through the writer); returns the snapshot's version.
    ///
    /// # Errors
    /// Storage errors from the commit.
    pub fn snapshot_model(&self) -> Result<u64> {
        Ok(self.maintain(Maintenance::Snapshot)?.model_version)
    }

    /// Rolls the learned parameters back to the snapshot taken at `version`, atomically through
    /// the writer. Bookkeeping (watermark, segment sizes, metrics) is kept; run
    /// [`Db::resegment`] afterwards so stored assignments follow the restored centroids.
    /// Returns the new model version.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if no such snapshot is kept (the message lists the kept ones).
    pub fn rollback_model(&self, version: u64) -> Result<u64> {
        Ok(self.maintain(Maintenance::Rollback(version))?.model_version)
    }

    /// Re-assigns every profile to its nearest segment as of now (and the segment sizes and
    /// statistics with it), in batches of `batch` profiles, each its own commit so ingestion
    /// interleaves.
    /// With `refit`, first refits the centroids by mini-batch k-means over a sample of profiles.
    /// When profiles changed segment, the lookalike index then re-trains its sub-lists (see
    /// docs/architecture.md, "Lookalikes"; not timed separately).
    ///
    /// # Errors
    /// Storage errors; [`Error::InvalidArgument`] if the segments are not seeded yet.
    pub fn resegment(&self, batch: usize, refit: bool) -> Result<ResegmentReport> {
        let model = self.model();
        if !model.segments.is_seeded() {
            return Err(Error::invalid_argument(
                "segments",
                "are not seeded yet; nothing to re-assign",
            ));
        }
        let mut report = ResegmentReport::default();
        if refit {
            let points = crate::query::refit::sample(
                &self.inner.store,
                &model,
                &self.inner.layout,
                crate::query::refit::SAMPLE,
                self.inner.config.model.seed,
            )?;
            self.maintain(Maintenance::FitSegments(points))?;
            report.refitted = true;
        }
        let mut cursor: Option<String> = None;
        loop {
            let out = self.maintain(Maintenance::Resegment {
                after: cursor.clone(),
                limit: batch.max(1),
            })?;
            report.scanned += out.scanned;
            report.changed += out.changed;
            report.batches += 1;
            match out.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        if report.changed > 0 {
            // Profiles moved between segments: fit each segment's sub-lists to its new members.
            self.inner.shared.lookalikes.retrain();
        }
        Ok(report)
    }

    fn maintain(&self, op: Maintenance) -> Result<MaintenanceOutcome> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.inner
            .tx
            .send(Request::Maintain { op, reply })
            .map_err(|_| Error::Closed)?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// Makes the next `n` commits fail before anything is written, as an I/O error would.
    /// For tests of the failure path; has no other use.
    #[doc(hidden)]
    pub fn fail_next_commits(&self, n: u32) {
        self.inner.shared.fail_commits.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` syncs of the durability stage fail, as a failed `fsync` would: the
    /// store is poisoned. For tests of the failure path; has no other use.
    #[doc(hidden)]
    pub fn fail_next_syncs(&self, n: u32) {
        self.inner.shared.fail_syncs.store(n, Ordering::SeqCst);
    }

    /// Makes the apply stage wait `delay` before handing each batch to sled, so that the
    /// writer prepares later batches on top of batches sled has not applied yet. For tests of
    /// the pipelined writer; has no other use.
    #[doc(hidden)]
    pub fn delay_applies(&self, delay: std::time::Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.inner.shared.apply_delay_us.store(us, Ordering::SeqCst);
    }

    /// Finishes queued writes, makes everything durable and stops the writer. Other clones of
    /// this handle get [`Error::Closed`] for writes afterwards. Dropping the last handle does the
    /// same.
    ///
    /// # Errors
    /// Storage errors from the final flush.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

/// The writer's queue of open training examples: the persisted copy when it is usable, else
/// derived from every profile record's pending example (a store written by an older build, a
/// changed `silent_horizons`, a queue an older build did not keep up to date, or damaged queue
/// records, which are then replaced by the first
/// commit's checkpoint).
fn recover_queue(
    store: &Store,
    config: &Config,
    model: &ModelState,
) -> Result<pipeline::RecoveredQueue> {
    let horizon = config.horizon_ms();
    let silent = config.silent_horizons as u64;
    match store.load_queue(horizon, silent, model.watermark_ms, model.version) {
        Ok(Some(q)) => return Ok(pipeline::RecoveredQueue::Stored(q)),
        Ok(None) => {}
        Err(e @ (Error::Corruption { .. } | Error::UnsupportedVersion { .. })) => {
            tracing::warn!("deriving the expiry queue from the profile records: {e}");
        }
        Err(e) => return Err(e),
    }
    let stale = store.queue_keys()?;
    Ok(pipeline::RecoveredQueue::Derived {
        pending: store.pending_examples()?,
        keys: pipeline::QueueLog {
            chunks: 0,
            entries: 0,
            stale,
            next_delta: 0,
            delta_entries: 0,
            checkpoint_due: true,
        },
    })
}

/// Candidates shortlisted from the lookalike index for an exact re-rank of `k` neighbours.
/// Re-ranking fetches and decodes one record per candidate (~5 µs each when sled has the page
/// cached, 30–45 µs at 1M customers when it does not), so this bounds the cost of `similar`;
/// the approximate distances are close enough that the true neighbours rank inside it (at 1M
/// customers recall@10 is bounded by which sub-lists are scanned, not by this length:
/// docs/bench-history.md; tests/query.rs and tests/lookalike_index.rs measure recall against the
/// exact scan).
fn shortlist_len(k: usize) -> usize {
    k.saturating_mul(5).max(50)
}

/// 1 / the scaler's divisor per dimension, exactly as [`crate::model::scaler::Scaler::transform`]
/// divides (it standardises `x` as `(x − mean) / divisor`, so transforming 1 and 0 differ by
/// 1 / divisor).
fn inverse_divisors(model: &ModelState) -> Vec<f64> {
    let dim = model.scaler.dim();
    let zero = model.scaler.transform_vec(&vec![0.0; dim]);
    let one = model.scaler.transform_vec(&vec![1.0; dim]);
    one.iter().zip(&zero).map(|(a, b)| a - b).collect()
}

/// A write queued with [`Db::ingest_async`], acknowledged once committed.
#[derive(Debug)]
pub struct PendingWrite {
    rx: crossbeam_channel::Receiver<Vec<Result<Ack>>>,
}

impl PendingWrite {
    /// Blocks until the write is committed (or failed).
    ///
    /// # Errors
    /// The write's own error (e.g. a failed commit), or [`Error::Closed`] if the writer stopped.
    pub fn wait(self) -> Result<Ack> {
        self.wait_all()?.pop().unwrap_or(Err(Error::Closed))
    }

    /// The write's result if it has arrived, without blocking; `None` while it is in flight.
    pub(crate) fn try_wait(&self) -> Option<Result<Ack>> {
        match self.rx.try_recv() {
            Ok(mut results) => Some(results.pop().unwrap_or(Err(Error::Closed))),
            Err(crossbeam_channel::TryRecvError::Empty) => None,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Some(Err(Error::Closed)),
        }
    }

    fn wait_all(self) -> Result<Vec<Result<Ack>>> {
        self.rx.recv().map_err(|_| Error::Closed)
    }
}

/// Where the background build of the lookalike index stands.
enum IndexBuilder {
    /// Nothing has needed the index yet: short-lived handles (a CLI command) never scan.
    NotStarted,
    /// Scanning the records in this thread.
    Started(JoinHandle<()>),
    /// The store is closed (or closing): never start.
    Closed,
}

impl Inner {
    /// Starts rebuilding the lookalike index in the background, once. The writer keeps the
    /// index up to date from open on, and its updates take precedence over what the scan finds,
    /// so starting late loses nothing; until the scan is done `similar` scans the records.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be spawned.
    fn start_index_build(&self) -> Result<()> {
        let mut builder = self.index_builder.lock();
        if matches!(*builder, IndexBuilder::NotStarted) {
            let (index, store) = (self.shared.lookalikes.clone(), self.store.clone());
            let handle = std::thread::Builder::new()
                .name("persona-lookalike-index".into())
                .spawn(move || index.build(&store))?;
            *builder = IndexBuilder::Started(handle);
        }
        Ok(())
    }

    fn close(&self) -> Result<()> {
        self.stop_background.lock().take();
        self.shared.lookalikes.stop_build();
        if let IndexBuilder::Started(builder) =
            std::mem::replace(&mut *self.index_builder.lock(), IndexBuilder::Closed)
        {
            // A panicked build only means the index is not ready; closing goes on.
            let _ = builder.join();
        }
        let Some(handle) = self.writer.lock().take() else {
            return Ok(());
        };
        let (reply, rx) = crossbeam_channel::bounded(1);
        let result = match self.tx.send(Request::Shutdown { reply }) {
            Ok(()) => rx.recv().unwrap_or(Err(Error::Closed)),
            Err(_) => Err(Error::Closed),
        };
        if handle.join().is_err() {
            return Err(Error::Closed);
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!("closing persona store failed: {e}");
        }
    }
}

/// The segment-fitting sample as stored; for a store written before the sample existed (no
/// `K` keys but profiles), the bottom-k sample of its profiles, to be stored by the next
/// commit.
fn recover_sample(store: &Store) -> Result<(pipeline::sample::Sample, bool)> {
    use pipeline::sample::{Sample, CAPACITY};
    let stored = store.sample_members()?;
    if !stored.is_empty() {
        return Ok((Sample::new(stored, CAPACITY), false));
    }
    let mut ids = Vec::new();
    for item in store.profiles_after(None) {
        ids.push(item?.0);
    }
    let sample = Sample::bottom_k(ids.iter().map(String::as_str), CAPACITY);
    let unsaved = sample.len() > 0;
    Ok((sample, unsaved))
}
