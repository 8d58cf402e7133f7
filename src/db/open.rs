//! Opening and closing a store: recovering the writer's state (model, expiry queue, segment
//! sample, held examples), starting the writer and the background jobs, and shutting them down.

use super::*;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::features::vector::FeatureLayout;
use crate::features::FeatureParams;
use crate::index::LookalikeIndex;
use crate::model::ModelState;
use crate::pipeline::{self, Request, Shared};
use crate::query::segments;
use crate::storage::Store;
use crate::together::Together;
use parking_lot::{Mutex, RwLock};
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// The writer's queue of open training examples: the persisted copy when it is usable, else
/// derived from every profile record's pending example (a store written by an older build, a
/// changed `silent_horizons`, a queue an older build did not keep up to date, or damaged queue
/// records, which are then replaced by the first
/// commit's checkpoint).
pub(super) fn recover_queue(
    store: &Store,
    config: &Config,
    model: &ModelState,
) -> Result<pipeline::RecoveredQueue> {
    let horizon = config.horizon_ms();
    let silent = config.silent_horizons as u64;
    // An encrypted store keeps no copy of the queue: its entries name customers (see
    // `docs/privacy.md`), so it is always derived from the records.
    let stored = if store.is_encrypted() {
        Ok(None)
    } else {
        store.load_queue(horizon, silent, model.watermark_ms, model.version)
    };
    match stored {
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

/// The sampled customers' refit rows: those stored (the blocks closed so far), but those of
/// customers no longer in the sample and those for a time after the end of the watermark's
/// block (only from damaged bytes; `persona check` reports them), which are removed; then the
/// rows of the block still open, which are written only when it closes: each member who
/// consents to profiling and whose record differs from their latest stored row (or who has
/// none) gets a row for the end of the watermark's block from their record, which is what
/// their row was before the store was closed. A store written by an older build, without
/// rows, gets one per such member that way: its refits resume a horizon later.
fn recover_rows(
    store: &Store,
    config: &Config,
    layout: &FeatureLayout,
    sample: &pipeline::sample::Sample,
    watermark_ms: i64,
) -> Result<pipeline::cohorts::Cohorts> {
    use pipeline::cohorts::{consenting_row, Cohorts};
    let until = crate::storage::refit_block_end(watermark_ms, config.horizon_ms());
    let (kept, stale): (Vec<_>, Vec<_>) = store
        .sampled_rows()?
        .into_iter()
        .partition(|(at, id, _)| *at <= until && sample.contains(id));
    if !stale.is_empty() {
        let keys: Vec<Vec<u8>> = stale
            .iter()
            .map(|(at, id, _)| store.row_key(*at, id))
            .collect();
        store.remove_keys(&keys)?;
        tracing::info!(
            "removed {} refit rows of customers no longer sampled",
            keys.len()
        );
    }
    let stored = kept.len();
    let mut cohorts = Cohorts::new(kept);
    if watermark_ms <= 0 {
        return Ok(cohorts);
    }
    let target = config.target_kind.index();
    let defaults = config.consent_defaults;
    let mut open = 0;
    for (_, id) in sample.members() {
        // A record that does not decode is reported by `persona check`; no row.
        if let Ok(Some(record)) = store.profile_current(id) {
            if let Some(row) = consenting_row(layout, &record.state, target, defaults, until) {
                open += usize::from(cohorts.put_changed(layout, id, until, row).is_some());
            }
        }
    }
    if stored == 0 && open > 0 {
        tracing::info!("took the refit rows of {open} sampled customers");
    }
    Ok(cohorts)
}

/// The customer sample as stored. A store written before the sample existed (no `K` keys but
/// profiles) or with a smaller one gets the bottom-k sample of its profiles, stored at once.
pub(super) fn recover_sample(store: &Store) -> Result<pipeline::sample::Sample> {
    use pipeline::sample::{Sample, CAPACITY};
    let stored = store.sample_members()?;
    // A sample below its capacity holds every customer, unless the store was written with a
    // smaller sample (or none): then it has fewer members than the store has profiles.
    let complete = stored.len() >= CAPACITY || {
        let mut profiles = 0;
        for item in store.profiles_after(None).take(stored.len() + 1) {
            item?;
            profiles += 1;
        }
        profiles <= stored.len()
    };
    if complete {
        return Ok(Sample::new(stored, CAPACITY));
    }
    let mut ids = Vec::new();
    for item in store.profiles_after(None) {
        ids.push(item?.0);
    }
    let sample = Sample::bottom_k(ids.iter().map(String::as_str), CAPACITY);
    let members: Vec<(u64, String)> = sample.members().cloned().collect();
    store.replace_sample(&members)?;
    tracing::info!(
        "rebuilt the customer sample from {} profiles: {} members (was {})",
        ids.len(),
        members.len(),
        stored.len()
    );
    Ok(sample)
}

impl Inner {
    /// Starts rebuilding the lookalike index in the background, once. The writer keeps the
    /// index up to date from open on, and its updates take precedence over what the scan finds,
    /// so starting late loses nothing; until the scan is done `similar` scans the records.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be spawned.
    pub(super) fn start_index_build(&self) -> Result<()> {
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

    pub(super) fn close(&self) -> Result<()> {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
        self.stop_background.lock().take();
        self.shared.lookalikes.stop_build();
        self.shared.together.stop_build();
        if let Some(builder) = self.together_builder.lock().take() {
            // As for the lookalike index: a panicked rebuild only loses the co-occurrence tier.
            let _ = builder.join();
        }
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
                if m.scaler.dim() != dim || m.segments.k() != config.model.segments {
                    return Err(Error::Corruption {
                        key: "model state".into(),
                        detail: format!(
                            "has {} dimensions and {} segments; this store needs {dim} and {}",
                            m.scaler.dim(),
                            m.segments.k(),
                            config.model.segments
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
        let legacy = store.remove_legacy_refit_window()?;
        if legacy > 0 {
            tracing::info!(
                "removed {legacy} keys of the previous release's refit window; the propensity \
                 refits on cohorts from now on"
            );
        }
        let legacy = store.remove_legacy_cohorts()?;
        if legacy > 0 {
            tracing::info!(
                "removed {legacy} keys of the previous release's whole cohorts; the propensity \
                 refits on the sampled customers' rows from now on"
            );
        }
        let queue = recover_queue(&store, &config, &model)?;
        let sample = recover_sample(&store)?;
        let cohorts = recover_rows(&store, &config, &layout, &sample, model.watermark_ms)?;
        // A store whose events never named an item has no co-occurrence to rebuild.
        let items_seen = !model.popularity.global.is_empty();
        let shared = Arc::new(Shared {
            model: RwLock::new(Arc::new(model.clone())),
            faults: Default::default(),
            open_examples: AtomicUsize::new(0),
            snapshots: RwLock::new(Vec::new()),
            counters: Default::default(),
            lookalikes: Arc::new(
                LookalikeIndex::new(layout.clone(), config.model.segments)
                    .with_consent(config.consent_defaults),
            ),
            together: Arc::new(
                Together::new(params.item_half_life_ms(), items_seen)
                    .with_consent(config.consent_defaults),
            ),
            triggers: RwLock::new(Arc::new(Vec::new())),
            durable_firings: std::sync::atomic::AtomicU64::new(0),
        });
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity);
        let seed = config.model.seed;
        let triggers = recover_triggers(&store, &config, model.watermark_ms)?;
        // Everything recovered from sled at open is durable.
        shared
            .durable_firings
            .store(triggers.next_id, std::sync::atomic::Ordering::Release);
        let writer = pipeline::spawn(
            store.clone(),
            config.clone(),
            layout.clone(),
            pipeline::Recovered {
                model,
                queue,
                snapshots: store.snapshot_versions()?,
                sample,
                held: pipeline::held::Held::new(store.held_examples()?),
                cohorts,
                triggers,
            },
            shared.clone(),
            rx,
        )?;
        let together_builder = if items_seen {
            let (table, store) = (shared.together.clone(), store.clone());
            Some(
                std::thread::Builder::new()
                    .name("persona-co-occurrence".into())
                    .spawn(move || table.build(&store))?,
            )
        } else {
            None
        };
        let db = Db {
            inner: Arc::new(Inner {
                store,
                tx,
                shared,
                together_builder: Mutex::new(together_builder),
                layout,
                config,
                writer: Mutex::new(Some(writer)),
                index_builder: Mutex::new(IndexBuilder::NotStarted),
                rng: Mutex::new(rand::SeedableRng::seed_from_u64(seed)),
                stop_background: Mutex::new(None),
                closing: std::sync::atomic::AtomicBool::new(false),
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
    pub(super) fn start_background_jobs(&self) -> Result<()> {
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
                |db| match db.resegment(1000, crate::Centroids::Keep) {
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
    pub(super) fn spawn_periodic(
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

/// Defined here rather than in `config.rs`, so that the configuration does not depend on the
/// facade it opens.
impl Config {
    /// Opens (or creates) the store this configuration describes.
    ///
    /// # Errors
    /// See [`Db::open_with`].
    pub fn open(self) -> Result<Db> {
        Db::open_with(self)
    }
}

/// The trigger state at open: the config file's definitions, those defined at run time (a
/// name the config file now defines too is the config file's), what the outbox holds, and for
/// `INACTIVE_DAYS` triggers when each customer falls silent (a scan of the records).
fn recover_triggers(
    store: &Store,
    config: &Config,
    watermark_ms: i64,
) -> Result<crate::triggers::TriggerState> {
    let mut t = crate::triggers::TriggerState::new(
        config.triggers.clone(),
        config.trigger_daily_cap,
        config.trigger_retention,
    );
    t.retention_ms = config
        .trigger_retention_days
        .map_or(0, |d| (d * crate::features::DAY_MS) as i64);
    for def in store.trigger_defs()? {
        if config.triggers.iter().any(|c| c.name == def.name) {
            tracing::warn!(
                "trigger {}: defined in the config file and at run time; the config file's is used",
                def.name
            );
        } else {
            t.from_runtime.push(def);
        }
    }
    for chunk in store.firing_chunks() {
        let chunk = chunk?;
        t.recover(chunk.key, chunk.next_id, &chunk.firings);
    }
    for missing in t.silences_missing() {
        let mut last_seen = store.last_seen();
        t.index_silence(missing, &mut last_seen, watermark_ms);
    }
    // What the running store remembers as of its watermark, and no older late event fires.
    if watermark_ms > 0 {
        t.prune(watermark_ms);
    }
    Ok(t)
}
