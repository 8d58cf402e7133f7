//! Configuration: a builder with documented defaults, loadable from a TOML file.
//!
//! Settings that shape what is stored (the number of segments, the feature layout, the decay
//! half-life, the label definition) are recorded in the store when it is created; reopening it
//! with different values is refused with [`crate::Error::ConfigMismatch`] instead of silently
//! mixing incompatible records.

use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::model::ModelConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// When an acknowledged write is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledge after sled's log is flushed *and* the log file is fsynced: survives power loss.
    #[default]
    Fsync,
    /// Acknowledge after sled's flush (`sync_file_range` on Linux): survives a process crash, not
    /// necessarily a power loss.
    Flush,
    /// Acknowledge once applied in memory; sled flushes in the background every 500 ms. A crash
    /// can lose the last half second of acknowledged writes.
    None,
}

impl Durability {
    /// Parses `fsync`, `flush` or `none`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the accepted values.
    pub fn parse(s: &str) -> Result<Durability> {
        match s {
            "fsync" => Ok(Durability::Fsync),
            "flush" => Ok(Durability::Flush),
            "none" => Ok(Durability::None),
            other => Err(Error::Config(format!(
                "durability {other:?} is not one of: fsync, flush, none"
            ))),
        }
    }

    /// The name accepted by [`Durability::parse`].
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Flush => "flush",
            Durability::None => "none",
        }
    }
}

/// How to open a store. Every knob has a default; see each field.
///
/// # Examples
/// ```
/// # let dir = tempfile::tempdir()?;
/// use persona::{Config, Durability};
/// let db = Config::new(dir.path())
///     .segments(4)
///     .durability(Durability::Flush)
///     .open()?;
/// assert_eq!(db.config().segment_count(), 4);
/// # Ok::<(), persona::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    // Each field is documented on its setter (`Config::new` gives the defaults).
    pub(crate) path: PathBuf,
    pub(crate) half_life_days: f64,
    pub(crate) horizon_days: f64,
    pub(crate) target_kind: EventKind,
    pub(crate) history_versions: usize,
    pub(crate) durability: Durability,
    pub(crate) max_batch: usize,
    pub(crate) max_batch_delay_us: u64,
    pub(crate) cache_capacity_mb: u64,
    pub(crate) record_cache_mb: u64,
    pub(crate) compression_level: u8,
    pub(crate) encryption: Encryption,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) queue_capacity: usize,
    pub(crate) dedupe_window: usize,
    pub(crate) max_future_skew_secs: u64,
    pub(crate) category_buckets: usize,
    pub(crate) silent_horizons: usize,
    pub(crate) top_items: usize,
    pub(crate) model: ModelConfig,
    pub(crate) actions: Vec<String>,
    /// `[[triggers]]` of the config file, and the firing limits (`triggers/`).
    pub(crate) triggers: Vec<crate::triggers::Trigger>,
    pub(crate) trigger_daily_cap: u32,
    pub(crate) trigger_retention: u64,
    /// Age in days (event time, against the watermark) past which firings are removed; none:
    /// no limit.
    pub(crate) trigger_retention_days: Option<f64>,
    /// The consent of a customer who set none (`features/consent.rs`).
    pub(crate) consent_defaults: crate::features::consent::Consent,
    pub(crate) drift_reaction: DriftReaction,
    pub(crate) snapshot_every: u64,
    pub(crate) model_versions: usize,
    pub(crate) nprobe: usize,
    pub(crate) resegment_interval_secs: u64,
    pub(crate) profile_ttl_days: Option<f64>,
    pub(crate) purge_interval_secs: u64,
}

/// Whether a new store encrypts what it keeps about each customer (`docs/privacy.md`,
/// "Encryption at rest").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Encryption {
    /// Every value that names a customer is sealed with that customer's own data key, and keys
    /// name customers by a keyed hash of their id: erasing a customer destroys their data key,
    /// which makes every copy of their data still in the store's files unreadable at once.
    #[default]
    On,
    /// Values and ids are stored as they are (erased data stays in sled's log files until
    /// sled reclaims the space or `persona compact` rewrites the store).
    Off,
}

impl Encryption {
    /// Parses `on` or `off`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the accepted values.
    pub fn parse(s: &str) -> Result<Encryption> {
        match s {
            "on" => Ok(Encryption::On),
            "off" => Ok(Encryption::Off),
            other => Err(Error::Config(format!(
                "encryption {other:?} is not one of: on, off"
            ))),
        }
    }
}

/// The reaction to detected drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriftReaction {
    /// Record the detection in `model_info` and log a warning.
    #[default]
    Warn,
    /// Also restart the propensity's online model. The served refit stays: it is refitted
    /// every day (a thirtieth of a horizon) anyway (`docs/model.md`).
    Reset,
    /// Also restore the propensity model from the last snapshot taken before the drift (served
    /// until the next refit; without a snapshot, as `Reset`).
    Rollback,
}

impl DriftReaction {
    /// Parses `warn`, `reset` or `rollback`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the accepted values.
    pub fn parse(s: &str) -> Result<DriftReaction> {
        match s {
            "warn" => Ok(DriftReaction::Warn),
            "reset" => Ok(DriftReaction::Reset),
            "rollback" => Ok(DriftReaction::Rollback),
            other => Err(Error::Config(format!(
                "drift_reaction {other:?} is not one of: warn, reset, rollback"
            ))),
        }
    }
}

/// The default action catalogue.
pub const DEFAULT_ACTIONS: [&str; 5] = [
    "vip_offer",
    "new_product",
    "win_back_coupon",
    "cart_reminder",
    "none",
];

/// Most segments a store may have.
pub const MAX_SEGMENTS: usize = 256;
/// Longest retention period, in days (about 1000 years: far beyond any policy, and small
/// enough that the period in milliseconds fits an `i64`).
pub const MAX_TTL_DAYS: f64 = 365_000.0;
/// Most items (and categories) a profile may keep as its most engaged.
pub const MAX_TOP_ITEMS: usize = 256;
/// Most category buckets a store may have.
pub const MAX_CATEGORY_BUCKETS: usize = 64;
/// Highest zstd level [`Config::compression_level`] allows (zstd's own maximum).
pub const MAX_COMPRESSION_LEVEL: u8 = 22;
/// Largest accepted [`Config::max_future_skew_secs`]: about 250 years, enough to accept any
/// valid timestamp (set it this high to turn the check off, e.g. for simulated futures).
pub const MAX_FUTURE_SKEW_SECS: u64 = 8_000_000_000;

impl Config {
    /// Defaults for a store at `path`.
    pub fn new(path: impl AsRef<Path>) -> Config {
        Config {
            path: path.as_ref().to_path_buf(),
            half_life_days: 30.0,
            horizon_days: 30.0,
            target_kind: EventKind::Purchase,
            history_versions: 16,
            durability: Durability::Fsync,
            max_batch: 1024,
            max_batch_delay_us: 200,
            cache_capacity_mb: 256,
            compression_level: 0,
            encryption: Encryption::default(),
            key_file: None,
            record_cache_mb: 64,
            queue_capacity: 4096,
            dedupe_window: 512,
            max_future_skew_secs: 86_400,
            category_buckets: 16,
            silent_horizons: 3,
            top_items: 32,
            model: ModelConfig::default(),
            actions: DEFAULT_ACTIONS.iter().map(|a| a.to_string()).collect(),
            triggers: Vec::new(),
            trigger_daily_cap: 3,
            trigger_retention: 1_000_000,
            trigger_retention_days: None,
            consent_defaults: crate::features::consent::Consent::default(),
            drift_reaction: DriftReaction::Warn,
            snapshot_every: 1000,
            model_versions: 8,
            nprobe: 3,
            resegment_interval_secs: 0,
            profile_ttl_days: None,
            purge_interval_secs: 3600,
        }
    }

    /// The consent of a customer who never set `consent.profiling` / `consent.marketing`
    /// (see [`Consent`](crate::Consent)). Default: both given. May change between opens: it
    /// applies to those customers from then on. Turning profiling off stops every model from
    /// learning from them at once (their open examples are not learned, their cohort rows not
    /// fitted, the segments not fitted to them); `persona resegment` (or [`crate::Db::resegment`])
    /// then takes them out of their segments, the segment-fitting sample and the lookalikes as
    /// a withdrawal would.
    pub fn consent_defaults(mut self, profiling: bool, marketing: bool) -> Config {
        self.consent_defaults = crate::features::consent::Consent {
            profiling,
            marketing,
        };
        self
    }

    /// Number of customer segments k. Default 8. Fixed when the store is created.
    pub fn segments(mut self, k: usize) -> Config {
        self.model.segments = k;
        self
    }

    /// Half-life of time-decayed counters, in days. Default 30. Fixed when the store is created.
    pub fn half_life_days(mut self, days: f64) -> Config {
        self.half_life_days = days;
        self
    }

    /// Propensity horizon: does the customer do `target_kind` within this many days? Default 30.
    /// Fixed when the store is created.
    pub fn horizon_days(mut self, days: f64) -> Config {
        self.horizon_days = days;
        self
    }

    /// The event kind the propensity model predicts. Default `purchase`. Fixed at creation.
    pub fn target_kind(mut self, kind: EventKind) -> Config {
        self.target_kind = kind;
        self
    }

    /// How many versions of each profile stay readable. Default 16 (minimum 1).
    pub fn history_versions(mut self, n: usize) -> Config {
        self.history_versions = n;
        self
    }

    /// When a write is acknowledged. Default [`Durability::Fsync`].
    pub fn durability(mut self, d: Durability) -> Config {
        self.durability = d;
        self
    }

    /// Most events committed together in one batch. Default 1024.
    pub fn max_batch(mut self, n: usize) -> Config {
        self.max_batch = n;
        self
    }

    /// Longest the writer waits for more events before committing a non-full batch, in
    /// microseconds. Default 200. Batches also grow naturally while the previous commit syncs.
    pub fn max_batch_delay_us(mut self, us: u64) -> Config {
        self.max_batch_delay_us = us;
        self
    }

    /// sled page-cache size in MiB. Default 256.
    pub fn cache_capacity_mb(mut self, mb: u64) -> Config {
        self.cache_capacity_mb = mb;
        self
    }

    /// Budget in MiB of the writer's cache of the profile records it wrote last (encoded), which
    /// spares the next event of a recent customer a sled read. Default 64; 0 turns it off.
    pub fn record_cache_mb(mut self, mb: u64) -> Config {
        self.record_cache_mb = mb;
        self
    }

    /// zstd level (1–22) sled compresses its log with, or 0 for no compression (the default).
    /// Takes effect when a store is created: sled records whether a store is compressed, and a
    /// store is always opened the way it was created (a different setting is logged and
    /// ignored; `persona compact --compression-level` converts a store). Compression keeps the
    /// store at about a third of the disk space, at the cost of ingest speed and of reopen time
    /// (see docs/bench-history.md, "Compression: disk at 1.7× logical"). An encrypted store
    /// (the default, [`Config::encryption`]) gains little from it: what it keeps of its
    /// customers is sealed, and sealed bytes do not compress.
    pub fn compression_level(mut self, level: u8) -> Config {
        self.compression_level = level;
        self
    }

    /// Whether a store created with this configuration is encrypted ([`Encryption::On`], the
    /// default). Takes effect at creation: an existing store is opened as it was created (an
    /// unencrypted one stays readable; `persona compact --encrypt` converts it).
    pub fn encryption(mut self, e: Encryption) -> Config {
        self.encryption = e;
        self
    }

    /// The file holding the store key of an encrypted store: 64 hex digits, mode 0600 (a file
    /// readable or writable by group or others is refused). Without it the key is read from
    /// the environment variable `PERSONA_KEY`, or else from `store.key` in the data directory,
    /// which is where a new store writes the key it generates when neither is given. A key
    /// kept in the data directory protects erasure (crypto-shredding) but not a copy of the
    /// whole directory: keep the key elsewhere for that (`docs/privacy.md`).
    pub fn key_file(mut self, path: impl AsRef<Path>) -> Config {
        self.key_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// How many recent event ids per customer are remembered for de-duplication. Default 512.
    /// A repeated id inside the window is acknowledged as a duplicate; an event whose id is not
    /// in the window but whose time is not newer than the ids that left it is refused (it
    /// cannot be told apart from a replay), so nothing is ever applied twice.
    pub fn dedupe_window(mut self, n: usize) -> Config {
        self.dedupe_window = n;
        self
    }

    /// How far past the later of the store's watermark and the wall clock an event's time may
    /// be, in seconds. Default 86 400 (one day). A later event is refused with an error naming
    /// the limit: one mistyped future timestamp would otherwise move the watermark, and with it
    /// every profile's recency and every open training example's label, for everyone.
    pub fn max_future_skew_secs(mut self, secs: u64) -> Config {
        self.max_future_skew_secs = secs;
        self
    }

    /// The largest accepted event time when the watermark is `watermark_ms` and the wall clock
    /// `wall_ms` (see [`Config::max_future_skew_secs`]).
    pub(crate) fn future_limit_ms(&self, watermark_ms: i64, wall_ms: i64) -> i64 {
        let skew =
            i64::try_from(self.max_future_skew_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        watermark_ms.max(wall_ms).saturating_add(skew)
    }

    /// The marketing-action catalogue. Default: `vip_offer`, `new_product`, `win_back_coupon`,
    /// `cart_reminder`, `none`. Rule-based priors know these names; other names start neutral.
    pub fn actions<S: Into<String>>(mut self, actions: impl IntoIterator<Item = S>) -> Config {
        self.actions = actions.into_iter().map(Into::into).collect();
        self
    }

    /// What to do when drift is detected on the propensity model's forecasts
    /// (the drift monitor, `docs/model.md`). Default `warn`.
    pub fn drift_reaction(mut self, r: DriftReaction) -> Config {
        self.drift_reaction = r;
        self
    }

    /// Snapshot the model state every this many committed batches (0 = only on demand).
    /// Default 1000.
    pub fn snapshot_every(mut self, batches: u64) -> Config {
        self.snapshot_every = batches;
        self
    }

    /// Model snapshots kept. Default 8.
    pub fn model_versions(mut self, n: usize) -> Config {
        self.model_versions = n;
        self
    }

    /// Segments probed by `similar` (inverted lists = segment membership). Default 3.
    pub fn nprobe(mut self, n: usize) -> Config {
        self.nprobe = n;
        self
    }

    /// Retention: erase every profile whose last event is more than this many days older than
    /// the watermark (the latest event time seen — event time, not wall-clock time). `None`
    /// (the default) keeps profiles forever. When set, a background thread purges every
    /// `purge_interval_secs`; [`crate::Db::purge`] purges on demand. Profiles with attributes
    /// but no events are never purged (they have no event time).
    pub fn profile_ttl_days(mut self, days: Option<f64>) -> Config {
        self.profile_ttl_days = days;
        self
    }

    /// How often the background purge runs when `profile_ttl_days` is set, in seconds.
    /// Default 3600.
    pub fn purge_interval_secs(mut self, secs: u64) -> Config {
        self.purge_interval_secs = secs;
        self
    }

    /// The retention period in milliseconds, if set.
    pub fn profile_ttl_ms(&self) -> Option<i64> {
        self.profile_ttl_days.map(|d| (d * 86_400_000.0) as i64)
    }

    /// How many consecutive horizons of silence still produce (negative or positive) training
    /// examples of the online model (and observations of the drift monitor) for a customer who
    /// stopped coming back. Default 3. The served refit's cohorts hold every sampled customer,
    /// whatever their silence.
    pub fn silent_horizons(mut self, n: usize) -> Config {
        self.silent_horizons = n;
        self
    }

    /// Category-affinity hash buckets in the feature vector. Default 16. Fixed at creation.
    pub fn category_buckets(mut self, n: usize) -> Config {
        self.category_buckets = n;
        self
    }

    /// Replaces every online-model hyperparameter ([`ModelConfig`]: k-means reservoir, learning
    /// rate, L2 penalty, metrics window, seed) **and the number of segments**, which is stored
    /// once, in `model.segments`: `Config::new(p).segments(4).model(m)` has `m.segments`
    /// segments. Set the segments in `m`, or call [`Config::segments`] after this.
    pub fn model(mut self, model: ModelConfig) -> Config {
        self.model = model;
        self
    }

    /// Events before the segments are first fitted, and the fewest events between two fits
    /// ([`ModelConfig::reservoir_size`]). Default 512.
    pub fn reservoir_size(mut self, n: usize) -> Config {
        self.model.reservoir_size = n;
        self
    }

    /// How many items, and how many categories, each profile keeps as the customer's most
    /// engaged (kind-weighted and decayed: `Profile::top_items`). Default 32, at most 256; 0
    /// keeps none. A lower value applies to each profile at its next write.
    pub fn top_items(mut self, n: usize) -> Config {
        self.top_items = n;
        self
    }

    /// Capacity of the queue in front of the writer, in requests. Default 4096.
    pub fn queue_capacity(mut self, n: usize) -> Config {
        self.queue_capacity = n;
        self
    }

    /// Re-segment every profile in the background every this many seconds (0 = never). Default 0.
    pub fn resegment_interval_secs(mut self, secs: u64) -> Config {
        self.resegment_interval_secs = secs;
        self
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of customer segments `k` (stored in the model hyperparameters).
    pub fn segment_count(&self) -> usize {
        self.model.segments
    }

    /// The marketing-action catalogue.
    pub fn action_names(&self) -> &[String] {
        &self.actions
    }

    /// The batching delay as a [`Duration`].
    pub fn max_batch_delay(&self) -> Duration {
        Duration::from_micros(self.max_batch_delay_us)
    }

    /// Half-life in milliseconds.
    pub fn half_life_ms(&self) -> f64 {
        self.half_life_days * 86_400_000.0
    }

    /// Horizon in milliseconds.
    pub fn horizon_ms(&self) -> i64 {
        (self.horizon_days * 86_400_000.0) as i64
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key, its value and the allowed range.
    pub fn validate(&self) -> Result<()> {
        let range = |key: &str, v: f64, lo: f64, hi: f64| -> Result<()> {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{key} = {v} is out of range; allowed {lo}..={hi}"
                )))
            }
        };
        range(
            "trigger_retention",
            self.trigger_retention as f64,
            1.0,
            1e12,
        )?;
        if let Some(d) = self.trigger_retention_days {
            range("trigger_retention_days", d, 1.0 / 24.0, 36_500.0)?;
        }
        for (i, t) in self.triggers.iter().enumerate() {
            if self.triggers[..i].iter().any(|u| u.name == t.name) {
                return Err(Error::Config(format!(
                    "[[triggers]]: the name {} is defined twice",
                    t.name
                )));
            }
        }
        range(
            "segments",
            self.model.segments as f64,
            1.0,
            MAX_SEGMENTS as f64,
        )?;
        range("half_life_days", self.half_life_days, 0.001, 36_500.0)?;
        range("horizon_days", self.horizon_days, 0.001, 3650.0)?;
        range(
            "history_versions",
            self.history_versions as f64,
            1.0,
            1024.0,
        )?;
        range("max_batch", self.max_batch as f64, 1.0, 65_536.0)?;
        range(
            "max_batch_delay_us",
            self.max_batch_delay_us as f64,
            0.0,
            1e6,
        )?;
        range("cache_capacity_mb", self.cache_capacity_mb as f64, 1.0, 1e6)?;
        range("record_cache_mb", self.record_cache_mb as f64, 0.0, 1e6)?;
        range(
            "compression_level",
            f64::from(self.compression_level),
            0.0,
            f64::from(MAX_COMPRESSION_LEVEL),
        )?;
        range("queue_capacity", self.queue_capacity as f64, 1.0, 1e6)?;
        range("dedupe_window", self.dedupe_window as f64, 1.0, 4096.0)?;
        range(
            "max_future_skew_secs",
            self.max_future_skew_secs as f64,
            0.0,
            MAX_FUTURE_SKEW_SECS as f64,
        )?;
        range("silent_horizons", self.silent_horizons as f64, 0.0, 1000.0)?;
        range(
            "top_items",
            self.top_items as f64,
            0.0,
            MAX_TOP_ITEMS as f64,
        )?;
        range("model_versions", self.model_versions as f64, 1.0, 1000.0)?;
        range("nprobe", self.nprobe as f64, 1.0, MAX_SEGMENTS as f64)?;
        if let Some(days) = self.profile_ttl_days {
            if !(days.is_finite() && days > 0.0 && days <= MAX_TTL_DAYS) {
                return Err(Error::Config(format!(
                    "profile_ttl_days = {days} is out of range; it must be a number of days > 0 \
                     and <= {MAX_TTL_DAYS} (leave it out to keep profiles forever)"
                )));
            }
        }
        range(
            "purge_interval_secs",
            self.purge_interval_secs as f64,
            1.0,
            31_536_000.0,
        )?;
        if self.actions.is_empty() || self.actions.len() > 64 {
            return Err(Error::Config(format!(
                "actions has {} entries; between 1 and 64 are allowed",
                self.actions.len()
            )));
        }
        for (i, a) in self.actions.iter().enumerate() {
            let ok = !a.is_empty()
                && a.len() <= 64
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(Error::Config(format!(
                    "action {a:?} must be 1 to 64 characters of a-z, A-Z, 0-9, _ or -"
                )));
            }
            if self.actions[..i].contains(a) {
                return Err(Error::Config(format!("action {a:?} is listed twice")));
            }
        }
        range(
            "category_buckets",
            self.category_buckets as f64,
            1.0,
            MAX_CATEGORY_BUCKETS as f64,
        )?;
        range(
            "reservoir_size",
            self.model.reservoir_size as f64,
            1.0,
            1_000_000.0,
        )?;
        range("learning_rate", self.model.learning_rate, 1e-9, 100.0)?;
        range("l2", self.model.l2, 0.0, 100.0)?;
        range("kmeans_min_rate", self.model.kmeans_min_rate, 0.0, 1.0)?;
        range(
            "auc_window",
            self.model.auc_window as f64,
            10.0,
            1_000_000.0,
        )?;
        Ok(())
    }

    /// Loads a TOML file over the defaults for data directory `path`. Unknown keys are errors
    /// (a typo must not silently fall back to a default).
    ///
    /// ```toml
    /// segments = 6
    /// half_life_days = 14
    /// durability = "flush"
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::Config`] for bad TOML, unknown keys or
    /// values out of range.
    pub fn from_toml_file(path: impl AsRef<Path>, file: impl AsRef<Path>) -> Result<Config> {
        let file = file.as_ref();
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", file.display()))
        })?;
        Config::from_toml_str(path, &text)
            .map_err(|e| Error::Config(format!("{}: {}", file.display(), strip_prefix(&e))))
    }

    /// Like [`Config::from_toml_file`], from a string.
    ///
    /// # Errors
    /// [`Error::Config`] for bad TOML, unknown keys or values out of range.
    ///
    /// # Examples
    /// ```
    /// let cfg = persona::Config::from_toml_str("data", "segments = 5\ntarget_kind = \"cart_add\"")?;
    /// assert_eq!(cfg.segment_count(), 5);
    /// assert!(persona::Config::from_toml_str("data", "segmnets = 5").is_err());
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn from_toml_str(path: impl AsRef<Path>, text: &str) -> Result<Config> {
        let f: ConfigFile =
            toml::from_str(text).map_err(|e| Error::Config(toml_message(text, &e)))?;
        let mut c = Config::new(path);
        if let Some(v) = f.segments {
            c = c.segments(v);
        }
        set(&mut c.half_life_days, f.half_life_days);
        set(&mut c.horizon_days, f.horizon_days);
        if let Some(k) = f.target_kind {
            c.target_kind =
                EventKind::parse(&k).map_err(|e| Error::Config(format!("target_kind: {e}")))?;
        }
        set(&mut c.history_versions, f.history_versions);
        if let Some(d) = f.durability {
            c.durability = Durability::parse(&d)?;
        }
        set(&mut c.max_batch, f.max_batch);
        set(&mut c.max_batch_delay_us, f.max_batch_delay_us);
        set(&mut c.cache_capacity_mb, f.cache_capacity_mb);
        set(&mut c.compression_level, f.compression_level);
        if let Some(e) = f.encryption {
            c.encryption = Encryption::parse(&e)?;
        }
        if let Some(k) = f.key_file {
            c.key_file = Some(k);
        }
        set(&mut c.record_cache_mb, f.record_cache_mb);
        set(&mut c.queue_capacity, f.queue_capacity);
        set(&mut c.dedupe_window, f.dedupe_window);
        set(&mut c.max_future_skew_secs, f.max_future_skew_secs);
        set(&mut c.category_buckets, f.category_buckets);
        set(&mut c.silent_horizons, f.silent_horizons);
        set(&mut c.top_items, f.top_items);
        set(&mut c.actions, f.actions);
        if let Some(r) = f.drift_reaction {
            c.drift_reaction = DriftReaction::parse(&r)?;
        }
        set(&mut c.snapshot_every, f.snapshot_every);
        set(&mut c.model_versions, f.model_versions);
        set(&mut c.nprobe, f.nprobe);
        set(&mut c.resegment_interval_secs, f.resegment_interval_secs);
        if f.profile_ttl_days.is_some() {
            c.profile_ttl_days = f.profile_ttl_days;
        }
        set(&mut c.purge_interval_secs, f.purge_interval_secs);
        set(&mut c.model.reservoir_size, f.reservoir_size);
        set(&mut c.model.learning_rate, f.learning_rate);
        set(&mut c.model.l2, f.l2);
        set(&mut c.model.kmeans_min_rate, f.kmeans_min_rate);
        set(&mut c.model.auc_window, f.auc_window);
        set(&mut c.model.seed, f.seed);
        set(&mut c.trigger_daily_cap, f.trigger_daily_cap);
        set(&mut c.trigger_retention, f.trigger_retention);
        set(
            &mut c.consent_defaults.profiling,
            f.consent_profiling_default,
        );
        set(
            &mut c.consent_defaults.marketing,
            f.consent_marketing_default,
        );
        if f.trigger_retention_days.is_some() {
            c.trigger_retention_days = f.trigger_retention_days;
        }
        for t in f.triggers.unwrap_or_default() {
            let t = t.parse(c.model.segments, &c.actions);
            c.triggers
                .push(t.map_err(|e| Error::Config(format!("[[triggers]]: {e}")))?);
        }
        c.validate()?;
        Ok(c)
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn strip_prefix(e: &Error) -> String {
    match e {
        Error::Config(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The TOML file's shape: every key optional, unknown keys rejected.
/// A TOML error's message with the line it is on (toml's message alone does not say which key
/// a bad value belongs to).
pub(crate) fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let at = e
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| before.matches('\n').count());
    match at.and_then(|n| text.lines().nth(n).map(|line| (n, line.trim()))) {
        // The key only, never the value: it may be a password (`requirepass`).
        Some((n, line)) => match line.split_once('=') {
            Some((key, _)) => format!("{} (line {}, key `{}`)", e.message(), n + 1, key.trim()),
            None => format!("{} (line {})", e.message(), n + 1),
        },
        None => e.message().into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    triggers: Option<Vec<crate::triggers::TriggerFile>>,
    trigger_daily_cap: Option<u32>,
    trigger_retention: Option<u64>,
    trigger_retention_days: Option<f64>,
    consent_profiling_default: Option<bool>,
    consent_marketing_default: Option<bool>,
    segments: Option<usize>,
    half_life_days: Option<f64>,
    horizon_days: Option<f64>,
    target_kind: Option<String>,
    history_versions: Option<usize>,
    durability: Option<String>,
    max_batch: Option<usize>,
    max_batch_delay_us: Option<u64>,
    cache_capacity_mb: Option<u64>,
    compression_level: Option<u8>,
    encryption: Option<String>,
    key_file: Option<PathBuf>,
    record_cache_mb: Option<u64>,
    queue_capacity: Option<usize>,
    dedupe_window: Option<usize>,
    max_future_skew_secs: Option<u64>,
    category_buckets: Option<usize>,
    top_items: Option<usize>,
    silent_horizons: Option<usize>,
    actions: Option<Vec<String>>,
    drift_reaction: Option<String>,
    snapshot_every: Option<u64>,
    model_versions: Option<usize>,
    nprobe: Option<usize>,
    resegment_interval_secs: Option<u64>,
    profile_ttl_days: Option<f64>,
    purge_interval_secs: Option<u64>,
    reservoir_size: Option<usize>,
    learning_rate: Option<f64>,
    l2: Option<f64>,
    kmeans_min_rate: Option<f64>,
    auc_window: Option<usize>,
    seed: Option<u64>,
    /// The `[server]` table: read and checked by `ServerConfig::from_toml_str`, not here.
    #[allow(dead_code)]
    server: Option<toml::Table>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::new("x").validate().is_ok());
    }

    #[test]
    fn toml_sets_every_documented_key() -> Result<()> {
        let c = Config::from_toml_str(
            "d",
            r#"
            segments = 6
            half_life_days = 14.5
            horizon_days = 7
            target_kind = "cart_add"
            history_versions = 4
            durability = "none"
            max_batch = 64
            max_batch_delay_us = 0
            cache_capacity_mb = 32
            compression_level = 3
            record_cache_mb = 0
            dedupe_window = 8
            category_buckets = 16
            seed = 7
            "#,
        )?;
        assert_eq!(c.model.segments, 6);
        assert_eq!(c.half_life_days, 14.5);
        assert_eq!(c.horizon_days, 7.0);
        assert_eq!(c.target_kind, EventKind::CartAdd);
        assert_eq!(c.history_versions, 4);
        assert_eq!(c.durability, Durability::None);
        assert_eq!(c.max_batch, 64);
        assert_eq!(c.max_batch_delay_us, 0);
        assert_eq!(c.cache_capacity_mb, 32);
        assert_eq!(c.compression_level, 3);
        assert_eq!(c.record_cache_mb, 0);
        assert_eq!(c.dedupe_window, 8);
        assert_eq!(c.category_buckets, 16);
        assert_eq!(c.model.seed, 7);
        Ok(())
    }

    #[test]
    fn bad_toml_is_specific() {
        let msg = |s: &str| Config::from_toml_str("d", s).unwrap_err().to_string();
        assert!(msg("segmnets = 3").contains("unknown field `segmnets`"));
        assert!(msg("segments = 0").contains("segments = 0 is out of range; allowed 1..=256"));
        assert!(msg("durability = \"always\"").contains("not one of: fsync, flush, none"));
        assert!(msg("target_kind = \"buy\"").contains("target_kind: field kind: buy"));
        assert!(msg("half_life_days = nan").contains("half_life_days = NaN is out of range"));
        assert!(msg("segments = \"x\"").contains("invalid type"));
        for bad in ["0", "-1", "nan", "inf", "1e9"] {
            let m = msg(&format!("profile_ttl_days = {bad}"));
            assert!(m.contains("profile_ttl_days = "), "{m}");
            assert!(m.contains("must be a number of days > 0"), "{m}");
        }
        assert!(msg("purge_interval_secs = 0").contains("purge_interval_secs = 0 is out of range"));
        assert!(msg("compression_level = 23")
            .contains("compression_level = 23 is out of range; allowed 0..=22"));
        let secret = msg("[server]\nrequirepass = s3cret-pw");
        assert!(!secret.contains("s3cret"), "{secret}");
        let m = msg("compression_level = -1");
        assert!(
            m.contains("expected u8 (line 1, key `compression_level`)"),
            "{m}"
        );
    }

    #[test]
    fn retention_is_off_by_default_and_loads_from_toml() -> Result<()> {
        assert_eq!(Config::new("d").profile_ttl_days, None);
        let c = Config::from_toml_str("d", "profile_ttl_days = 365\npurge_interval_secs = 60")?;
        assert_eq!(c.profile_ttl_days, Some(365.0));
        assert_eq!(c.profile_ttl_ms(), Some(365 * 86_400_000));
        assert_eq!(c.purge_interval_secs, 60);
        Ok(())
    }
}
