//! The engine behind `persona bench`: end-to-end ingest of a generated workload through the
//! public API, measured against the baseline that bounds it — raw sled inserts of records of the
//! same size under the same durability policy, on the same disk, in the same run — followed by
//! query latencies. [`server`] drives `redis-benchmark` against `persona serve` and redis-server,
//! and [`ceiling`] measures, in that run, how fast raw sled alone commits what the server committed.
//!
//! # The raw-sled baseline
//! Persona's write path ends in sled, so sled is the ceiling. The baseline opens a second sled
//! database next to the store (same disk, same sled settings: [`crate::storage::sled_config`])
//! and is fed by the same feeder as the ingest: the same generated events, the same number of
//! threads, the same chunks. For every event it inserts one record of the *average profile-record
//! size* measured after the ingest, keyed by the customer's profile key; after every chunk it
//! makes the inserts durable exactly as Persona makes a group commit durable (`fsync`: sled
//! flush + `fdatasync` of sled's log; `flush`: sled flush; `none`: nothing). That is what a
//! program using sled directly would pay to acknowledge each chunk durably, without features,
//! models, dedupe, history or membership — so `ratio_to_raw_sled` is the fraction of the storage
//! engine's durable write rate that Persona keeps.
//!
//! # What is measured
//! Ingest: events/s over the whole run and over the first and last 10% (at most a million
//! events each), per-chunk acknowledgement latency, key writes per event (from [`crate::Db::stats`]).
//! Then the store is closed (timed until sled lets go of its lock) and reopened (timed), its
//! size on disk compared with its logical size, refitted and re-segmented like `persona import`
//! does (timed), queried and closed; after the baseline's run it is compacted like `persona
//! compact` does (timed, with its size on disk afterwards). Peak RSS is the process's `VmHWM` up
//! to the queries, reset before the ingest where the kernel allows it.

pub mod ceiling;
mod ingest;
mod probe;
mod queries;
pub mod server;

pub use queries::{Quantiles, QueryReport};

use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::generator::GeneratorConfig;

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Receives progress of a benchmark run (the CLI draws a bar).
pub trait Progress: Sync {
    /// A new phase begins with `total` units of work.
    fn start(&self, phase: &str, total: u64);
    /// `n` more units are done.
    fn inc(&self, n: u64);
    /// The current phase is over.
    fn finish(&self);
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A directory that does not exist or is empty; the store and the baseline go under it.
    pub dir: PathBuf,
    /// Customers in the generated workload.
    pub customers: u64,
    /// Events in the generated workload.
    pub events: u64,
    /// Durability of both Persona and the raw-sled baseline.
    pub durability: Durability,
    /// Threads that ingest (each owns the customers hashed to it).
    pub threads: usize,
    /// Events per `ingest_batch` call (and per durable chunk of the baseline).
    pub chunk: usize,
    /// Seed of the workload and of the query sample.
    pub seed: u64,
    /// Point queries timed per kind.
    pub queries: usize,
    /// Indexed `similar` queries timed.
    pub similar_queries: usize,
    /// Catalogue size of the generated events' items (0: events name no item).
    pub items: u32,
    /// Of those, how many also run the exact scan for recall.
    pub recall_queries: usize,
    /// Skip the refit + re-segmentation after the ingest.
    pub no_resegment: bool,
    /// Skip the compaction at the end (`persona compact` of the store after the baseline ran,
    /// timed, with its size on disk afterwards).
    pub no_compact: bool,
    /// Keep the store and the baseline on disk afterwards.
    pub keep: bool,
    /// A TOML configuration file with the store's settings (as `persona --config`); its
    /// `data` path is replaced by the benchmark's, its durability by [`BenchConfig::durability`].
    /// The raw-sled baseline is opened with the same sled settings.
    pub config_file: Option<PathBuf>,
}

/// What [`run_queries`] measured on an existing store.
#[derive(Debug, Clone, Serialize)]
pub struct QueriesOnlyReport {
    /// Customer ids the queries draw from (`c000000` …).
    pub customers: u64,
    /// Seconds to open the store.
    pub reopen_secs: f64,
    /// Seconds from the open until the lookalike index was ready.
    pub lookalike_index_secs: f64,
    /// Heap bytes of the lookalike index once built.
    pub lookalike_index_bytes: usize,
    /// Profiles in the lookalike index once built.
    pub lookalike_index_rows: usize,
    /// Query latencies.
    pub queries: QueryReport,
}

/// Reopens the store a run with `keep` left in `cfg.dir` and runs only the query phase
/// (no ingest, no re-segmentation, no baseline): for comparing query-side changes on the same
/// data without regenerating it. `cfg.customers` must be the workload's.
///
/// # Errors
/// [`Error::InvalidArgument`] if `cfg.dir` holds no store; any storage error.
pub fn run_queries(cfg: &BenchConfig, progress: &dyn Progress) -> Result<QueriesOnlyReport> {
    let path = cfg.dir.join("persona");
    if !path.is_dir() {
        return Err(Error::invalid_argument(
            "dir",
            format!(
                "{} holds no store; run the benchmark with --keep first",
                cfg.dir.display()
            ),
        ));
    }
    let (db, reopen_secs, lookalike_index_secs) = open_timed(cfg.store_config(path)?, progress)?;
    let queries = query_phase(&db, cfg, progress)?;
    let report = QueriesOnlyReport {
        customers: cfg.customers,
        reopen_secs,
        lookalike_index_secs,
        lookalike_index_bytes: db.lookalike_index_bytes(),
        lookalike_index_rows: db.lookalike_index_len(),
        queries,
    };
    db.close()?;
    Ok(report)
}

impl BenchConfig {
    /// Defaults for `customers` and `events` in `dir`: 4 threads, chunks of 256, fsync.
    pub fn new(dir: impl Into<PathBuf>, customers: u64, events: u64) -> BenchConfig {
        BenchConfig {
            dir: dir.into(),
            customers,
            events,
            durability: Durability::Fsync,
            threads: 16,
            chunk: 256,
            seed: 42,
            queries: 10_000,
            similar_queries: 50,
            items: 0,
            recall_queries: 10,
            no_resegment: false,
            no_compact: false,
            keep: false,
            config_file: None,
        }
    }

    /// The store settings for a database at `path`: from the configuration file if one was
    /// given, else the defaults; with the benchmark's durability.
    ///
    /// # Errors
    /// As [`Config::from_toml_file`].
    pub fn store_config(&self, path: PathBuf) -> Result<Config> {
        let base = match &self.config_file {
            Some(file) => Config::from_toml_file(&path, file)?,
            None => Config::new(path),
        };
        Ok(base.durability(self.durability))
    }
}

/// Everything one run measured. Rates are per second, sizes in bytes, latencies as noted.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Customers in the workload.
    pub customers: u64,
    /// Events ingested.
    pub events: u64,
    /// `fsync`, `flush` or `none` (both sides).
    pub durability: String,
    /// Ingesting threads (both sides).
    pub threads: usize,
    /// Events per call / per durable chunk (both sides).
    pub chunk: usize,
    /// Persona's end-to-end ingest rate.
    pub events_per_sec: f64,
    /// The raw-sled baseline's rate (records of `raw_record_bytes`, same durability).
    pub raw_sled_inserts_per_sec: f64,
    /// `events_per_sec / raw_sled_inserts_per_sec`.
    pub ratio_to_raw_sled: f64,
    /// Size of each baseline record: the average profile-record value after the ingest.
    pub raw_record_bytes: u64,
    /// Keys written (inserted or removed) per committed event, from [`crate::Db::stats`].
    pub key_writes_per_event: f64,
    /// Bytes of keys and values the writer inserted per committed event (model state included).
    pub bytes_written_per_event: f64,
    /// sled batches committed by the writer.
    pub commits: u64,
    /// Events per commit (group-commit size).
    pub events_per_commit: f64,
    /// Events the store rejected as invalid (0 for generated workloads).
    pub rejected: u64,
    /// Acknowledgement latency of one `ingest_batch` call of `chunk` events, milliseconds.
    pub ack_latency_ms: Quantiles,
    /// Events in each of the first/last windows.
    pub window_events: u64,
    /// Ingest rate over the first window.
    pub first_window_events_per_sec: f64,
    /// Ingest rate over the last window.
    pub last_window_events_per_sec: f64,
    /// `last_window_events_per_sec / first_window_events_per_sec`.
    pub last_to_first_window: f64,
    /// The raw-sled baseline's last/first window ratio (the same windows of the same feed):
    /// how much of the slope sled alone shows.
    pub raw_sled_last_to_first_window: f64,
    /// The store's size on disk after close and reopen.
    pub disk_bytes: u64,
    /// The bytes of every key and value in the store.
    pub logical_bytes: u64,
    /// `disk_bytes / logical_bytes`.
    pub disk_to_logical: f64,
    /// The baseline's size on disk.
    pub raw_sled_disk_bytes: u64,
    /// The store compacted as `persona compact` does, at the end of the run (None with
    /// `no_compact`): the bytes of its files afterwards.
    pub compacted_disk_bytes: Option<u64>,
    /// `compacted_disk_bytes` over the keys and values the compaction copied (every tree).
    pub compacted_to_logical: Option<f64>,
    /// Seconds the compaction took (copy, verify, swap).
    pub compact_secs: Option<f64>,
    /// Peak resident set (VmHWM) of the process during ingest, reopen and queries.
    pub peak_rss_bytes: Option<u64>,
    /// Whether the peak was reset before the ingest (otherwise it includes earlier work).
    pub peak_rss_reset: bool,
    /// Seconds from the end of the ingest until the closed store's files are free again
    /// (`Db::close`, dropping the handle, sled's background threads letting go of the lock).
    pub close_secs: f64,
    /// Seconds `Db::open` takes on the closed store (the lock already free): what a restarted
    /// process waits for.
    pub reopen_secs: f64,
    /// Seconds from the reopen until the lookalike index (rebuilt in the background) was
    /// ready; queries wait for it.
    pub lookalike_index_secs: f64,
    /// Heap bytes of the lookalike index once built.
    pub lookalike_index_bytes: usize,
    /// Profiles in the lookalike index once built.
    pub lookalike_index_rows: usize,
    /// Heap bytes of `recommend`'s co-occurrence table once rebuilt from the records.
    pub co_occurrence_bytes: usize,
    /// Seconds from the open until that rebuild was done (it runs next to the lookalike
    /// index's build).
    pub co_occurrence_secs: f64,
    /// Seconds the refit + re-segmentation took (None if skipped or the segments are not seeded).
    pub resegment_secs: Option<f64>,
    /// Query latencies after the reopen.
    pub queries: QueryReport,
}

/// Sorted latency samples in nanoseconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Latencies(Vec<u64>);

impl Latencies {
    pub(crate) fn new(mut v: Vec<u64>) -> Latencies {
        v.sort_unstable();
        Latencies(v)
    }

    /// The `q` quantile (nearest rank), 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }
}

/// Runs the benchmark.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad workload or a non-empty `dir`; any storage error of the
/// store or the baseline.
pub fn run(cfg: &BenchConfig, progress: &dyn Progress) -> Result<BenchReport> {
    if cfg.threads == 0 || cfg.chunk == 0 {
        return Err(Error::invalid_argument(
            "threads/chunk",
            "threads and chunk must be at least 1",
        ));
    }
    prepare_dir(&cfg.dir)?;
    let result = run_in(cfg, progress);
    if !cfg.keep {
        let _ = std::fs::remove_dir_all(cfg.dir.join("persona"));
        let _ = std::fs::remove_dir_all(cfg.dir.join("raw-sled"));
        let _ = std::fs::remove_dir(&cfg.dir);
    }
    result
}

fn run_in(cfg: &BenchConfig, progress: &dyn Progress) -> Result<BenchReport> {
    let gen_cfg = GeneratorConfig {
        customers: cfg.customers,
        events: cfg.events,
        seed: cfg.seed,
        items: cfg.items,
        ..GeneratorConfig::default()
    };
    let store_cfg = cfg.store_config(cfg.dir.join("persona"))?;
    let peak_rss_reset = reset_peak_rss();

    // Persona, end to end.
    let db = store_cfg.clone().open()?;
    let rejected = AtomicU64::new(0);
    progress.start("ingest (persona)", cfg.events);
    let ours = ingest::feed(&gen_cfg, cfg.threads, cfg.chunk, progress, |events| {
        ingest::ingest_chunk(&db, events, &rejected)
    })?;
    progress.finish();
    let stats = db.stats();
    let t = Instant::now();
    db.close()?;
    drop(db);
    crate::storage::wait_unlocked(&store_cfg.path)?;
    let close_secs = t.elapsed().as_secs_f64();

    let (db, reopen_secs, lookalike_index_secs) = open_timed(store_cfg.clone(), progress)?;
    let lookalike_index_bytes = db.lookalike_index_bytes();
    let lookalike_index_rows = db.lookalike_index_len();
    // The co-occurrence rebuild started at the open too, and ran next to the lookalike build.
    let co_occurrence_bytes = db.co_occurrence_bytes();
    let co_occurrence_secs = db.co_occurrence_ready_secs();
    let disk_bytes = db.size_on_disk()?;
    let logical = db.store().logical_size()?;
    let raw_record_bytes = logical
        .profile_value_bytes
        .checked_div(logical.profiles)
        .unwrap_or(0);
    // A tiny workload may not have seeded the segments yet: nothing to refit then.
    let resegment_secs = if cfg.no_resegment || !db.model().segments.is_seeded() {
        None
    } else {
        progress.start("refit + re-segment", 0);
        let t = Instant::now();
        db.resegment(1000, crate::Centroids::Refit)?;
        progress.finish();
        Some(t.elapsed().as_secs_f64())
    };
    let queries = query_phase(&db, cfg, progress)?;
    let peak_rss_bytes = peak_rss();
    db.close()?;
    drop(db);

    // The baseline: same feeder, same threads and chunks, same durability, same disk.
    let raw_cfg = cfg.store_config(cfg.dir.join("raw-sled"))?;
    let raw = ingest::RawSled::open(&raw_cfg, raw_record_bytes as usize)?;
    progress.start("ingest (raw sled baseline)", cfg.events);
    let theirs = ingest::feed(&gen_cfg, cfg.threads, cfg.chunk, progress, |events| {
        raw.write_chunk(events)
    })?;
    progress.finish();
    let raw_sled_disk_bytes = raw.size_on_disk()?;
    drop(raw);
    // What the disk target would read after a compaction (sled's log keeps superseded record
    // versions; see docs/bench-history.md). After the baseline, so that the gigabytes it rewrites
    // and frees do not weigh on the baseline's timed ingest.
    let compacted = if cfg.no_compact {
        None
    } else {
        progress.start("compact", 0);
        crate::storage::wait_unlocked(&store_cfg.path)?;
        let report = crate::storage::compact::compact(
            &store_cfg.path,
            store_cfg.cache_capacity_mb,
            crate::storage::compact::CopyCompression::AsStored(store_cfg.compression_level),
        )?;
        progress.finish();
        Some(report)
    };

    let events_per_sec = ours.rate();
    let raw_rate = theirs.rate();
    Ok(BenchReport {
        customers: cfg.customers,
        events: ours.events,
        durability: cfg.durability.as_str().to_string(),
        threads: cfg.threads,
        chunk: cfg.chunk,
        events_per_sec,
        raw_sled_inserts_per_sec: raw_rate,
        ratio_to_raw_sled: ratio(events_per_sec, raw_rate),
        raw_record_bytes,
        key_writes_per_event: stats.key_writes_per_item(),
        bytes_written_per_event: ratio(stats.bytes_written as f64, stats.items as f64),
        commits: stats.commits,
        events_per_commit: ratio(stats.items as f64, stats.commits as f64),
        rejected: rejected.into_inner(),
        ack_latency_ms: Quantiles {
            p50: ours.latencies.quantile(0.50) as f64 / 1e6,
            p99: ours.latencies.quantile(0.99) as f64 / 1e6,
        },
        window_events: ours.window,
        first_window_events_per_sec: ours.first_window_rate,
        last_window_events_per_sec: ours.last_window_rate,
        last_to_first_window: ratio(ours.last_window_rate, ours.first_window_rate),
        raw_sled_last_to_first_window: ratio(theirs.last_window_rate, theirs.first_window_rate),
        disk_bytes,
        logical_bytes: logical.bytes,
        disk_to_logical: ratio(disk_bytes as f64, logical.bytes as f64),
        raw_sled_disk_bytes,
        compacted_disk_bytes: compacted.as_ref().map(|c| c.bytes_after),
        compacted_to_logical: compacted
            .as_ref()
            .map(|c| ratio(c.bytes_after as f64, c.logical_bytes as f64)),
        compact_secs: compacted.as_ref().map(|c| c.seconds),
        peak_rss_bytes,
        peak_rss_reset,
        close_secs,
        reopen_secs,
        lookalike_index_secs,
        lookalike_index_bytes,
        lookalike_index_rows,
        co_occurrence_bytes,
        co_occurrence_secs,
        resegment_secs,
        queries,
    })
}

/// `a / b`, 0 when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Creates `dir` or checks that it is empty: the run must not mix with an existing store.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)?;
        if entries.next().is_some() {
            return Err(Error::invalid_argument(
                "dir",
                format!(
                    "{} is not empty; the benchmark needs a new or empty directory",
                    dir.display()
                ),
            ));
        }
    } else {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
}

/// Resets the kernel's peak-RSS mark (`echo 5 > /proc/self/clear_refs`); false where unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident set (`VmHWM` in /proc/self/status), where available.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The query phase as configured: point queries, `similar` (k = 10) and its recall.
fn query_phase(db: &crate::Db, cfg: &BenchConfig, progress: &dyn Progress) -> Result<QueryReport> {
    let plan = queries::QueryPlan {
        point: cfg.queries.max(1),
        similar: cfg.similar_queries,
        recall: cfg.recall_queries.min(cfg.similar_queries),
        k: 10,
    };
    queries::run(db, cfg.customers, &plan, cfg.seed ^ 0x5eed, progress)
}

/// Opens the store, timed, then waits for the lookalike index (built in the background): the
/// handle, seconds to open, seconds from the open until the index was ready.
fn open_timed(config: Config, progress: &dyn Progress) -> Result<(crate::Db, f64, f64)> {
    let t = Instant::now();
    let db = config.open()?;
    let open_secs = t.elapsed().as_secs_f64();
    progress.start("lookalike index build", 0);
    if !db.wait_for_lookalike_index() {
        tracing::warn!("the lookalike index was not built: similar scans the records");
    }
    progress.finish();
    Ok((db, open_secs, t.elapsed().as_secs_f64()))
}
