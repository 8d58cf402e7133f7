//! Storage: sled, the key layout ([`keys`]), the record codec ([`codec`]) and the profile
//! record ([`record`]).
//!
//! [`Store`] is a thin, typed layer over one sled tree. It reads records (decoding them with
//! errors that name the key) and commits a prepared [`sled::Batch`] atomically with the requested
//! durability. It knows nothing about features or models beyond their encodings; the pipeline
//! decides what goes into a batch.

pub mod check;
pub mod codec;
#[cfg(any(feature = "cli", feature = "testing"))]
pub mod compact;
pub(crate) mod crypt;
pub mod encryption;
pub(crate) mod feedback;
pub mod keys;
mod lock;
pub(crate) mod models;
mod packed;
pub mod queue;
pub mod record;
pub(crate) mod reports;
mod sealed;
mod sled_setup;
pub(crate) mod triggers;
mod window;

/// Version byte of model records (`S`, `V`). Versions 1 (builds before the segments were fitted
/// to a customer sample, `ModelState::decode_legacy`), 2 (before the propensity refit,
/// `ModelState::decode_v2`), 3 (before the item popularity summary, `ModelState::decode_v3`)
/// 4 (before the rebuy ranking, `ModelState::decode_v4`) and 5 (before names had holders,
/// `ModelState::decode_v5`) are still read, and converted.
pub const MODEL_FORMAT_VERSION: u8 = 6;

use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::features::FeatureParams;
use crate::model::ModelState;
use record::{ProfileRecord, RecordCurrent, RecordHead, RecordState};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::PathBuf;

#[cfg(any(test, feature = "testing"))]
pub use lock::is_lock_error;
#[cfg(any(feature = "cli", feature = "testing"))]
pub use lock::wait_unlocked;
pub use sled_setup::require_store;
#[cfg(feature = "cli")]
pub use sled_setup::sled_config;
#[cfg(any(feature = "cli", feature = "testing"))]
pub use sled_setup::stored_compression;
use sled_setup::{create_private_dir, open_sled};

/// The store's layout version, kept under [`keys::META_FORMAT`]. Version 2 keeps no segment
/// membership index (the `G` key space of version 1): a segment's members are read from the
/// profile records' `segment` fields. See `docs/storage-format.md`.
pub const STORE_FORMAT_VERSION: u8 = 2;

/// The format written before 2026-12-01, with the `G` membership index: opening such a store
/// drops the index and records [`STORE_FORMAT_VERSION`].
pub const LEGACY_INDEXED_FORMAT: u8 = 1;

/// Membership keys removed per batch when a format-1 store is migrated.
const MIGRATION_CHUNK: usize = 10_000;

/// sled's log file inside the data directory: the file fsync durability `fdatasync`s.
pub const LOG_FILE: &str = "db";

/// zstd level new writes of a compressed store use when the configuration asks for none (the
/// store was created compressed by another configuration).
pub(crate) const FALLBACK_COMPRESSION_LEVEL: u8 = 1;

/// The logical size of a store: what its keys and values add up to (see [`Store::logical_size`]).
#[cfg(any(feature = "cli", feature = "testing"))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogicalSize {
    /// Keys of every kind.
    pub keys: u64,
    /// Bytes of every key and value.
    pub bytes: u64,
    /// Profile records.
    pub profiles: u64,
    /// Bytes of the profile records' values.
    pub profile_value_bytes: u64,
}

/// Settings recorded at creation; reopening with different values is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Number of segments.
    pub segments: u64,
    /// Category buckets.
    pub category_buckets: u64,
    /// Half-life in days.
    pub half_life_days: f64,
    /// Horizon in days.
    pub horizon_days: f64,
    /// Target kind name.
    pub target_kind: String,
}

impl Fingerprint {
    /// The fingerprint of a configuration.
    pub fn of(config: &Config) -> Fingerprint {
        Fingerprint {
            segments: config.model.segments as u64,
            category_buckets: config.category_buckets as u64,
            half_life_days: config.half_life_days,
            horizon_days: config.horizon_days,
            target_kind: config.target_kind.as_str().to_string(),
        }
    }

    fn differences(&self, other: &Fingerprint) -> Option<(&'static str, String, String)> {
        let pairs = [
            (
                "segments",
                self.segments.to_string(),
                other.segments.to_string(),
            ),
            (
                "category_buckets",
                self.category_buckets.to_string(),
                other.category_buckets.to_string(),
            ),
            (
                "half_life_days",
                self.half_life_days.to_string(),
                other.half_life_days.to_string(),
            ),
            (
                "horizon_days",
                self.horizon_days.to_string(),
                other.horizon_days.to_string(),
            ),
            (
                "target_kind",
                self.target_kind.clone(),
                other.target_kind.clone(),
            ),
        ];
        pairs.into_iter().find(|(_, a, b)| a != b)
    }
}

/// The sled-backed store.
pub struct Store {
    db: sled::Db,
    /// The log file, opened by us to fsync it: sled's own flush only issues `sync_file_range`.
    log_file: Option<File>,
    path: PathBuf,
    params: FeatureParams,
    /// The crypto context of an encrypted store (`sealed.rs`, `encryption.rs`).
    crypt: Option<crypt::Crypt>,
}

/// A positive training example held until its deadline: ((deadline unix ms, customer id), raw
/// features).
pub type HeldExample = ((i64, String), Vec<f32>);

/// A customer's refit row with a time in unix ms: in a customer export, the deadline of the
/// refit it is the base of (its time plus one horizon).
pub type CohortExample = (i64, SampledRow);

/// A sampled customer's refit row as of some time (`R` keys, see `src/pipeline/cohorts.rs`):
/// what the propensity's refit reads of them as of any later time, until their state changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampledRow {
    /// Their count of target events.
    pub target_count: u64,
    /// Their count of events (a profile with attributes only has none, and is not fitted on).
    pub event_count: u64,
    /// Their answer to consent to profiling (`None`: the store's default applies).
    pub profiling: Option<bool>,
    /// The time-dependent part of their state.
    pub temporal: crate::features::vector::Temporal,
    /// Their raw feature vector as of the row's time (the time-dependent dimensions are
    /// recomputed from `temporal` as of the time the row is read at).
    pub features: Vec<f32>,
}

/// A refit row as [`Store`] returns it: (time, customer id, row).
pub type SampledRowAt = (i64, String, SampledRow);

/// Blocks per horizon: the propensity is refitted at each block boundary, and a refit row's
/// time is the end of the block it was taken in (`src/pipeline/cohorts.rs`).
pub const REFIT_BLOCKS_PER_HORIZON: i64 = 30;

/// The length of a refit block for a horizon of `horizon_ms`.
pub fn refit_block_ms(horizon_ms: i64) -> i64 {
    (horizon_ms / REFIT_BLOCKS_PER_HORIZON).max(1)
}

/// The end of the refit block `at_ms` is in (blocks of [`refit_block_ms`], from the epoch):
/// the time of a refit row taken then.
pub fn refit_block_end(at_ms: i64, horizon_ms: i64) -> i64 {
    let block = refit_block_ms(horizon_ms);
    at_ms
        .div_euclid(block)
        .saturating_add(1)
        .saturating_mul(block)
}

impl Store {
    /// Opens or creates the store described by `config`, checking the format version and the
    /// settings fixed at creation.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be created, [`Error::Locked`] if another process
    /// holds the store, [`Error::Storage`] if sled fails, [`Error::ConfigMismatch`] /
    /// [`Error::UnsupportedVersion`] for an incompatible store.
    pub fn open(config: &Config) -> Result<Store> {
        create_private_dir(&config.path)?;
        let db = open_sled(
            &config.path,
            config.cache_capacity_mb,
            Some(config.compression_level),
        )?;
        let log_path = config.path.join(LOG_FILE);
        let log_file = File::open(&log_path).ok();
        let mut store = Store {
            db,
            log_file,
            path: config.path.clone(),
            params: FeatureParams {
                half_life_ms: config.half_life_ms(),
                category_buckets: config.category_buckets,
            },
            crypt: None,
        };
        let created = store.check_meta(config)?;
        store.open_crypt(config, created)?;
        Ok(store)
    }

    /// Checks the format and the settings fixed at creation, or records them in a new store;
    /// whether the store was created now.
    fn check_meta(&mut self, config: &Config) -> Result<bool> {
        let wanted = Fingerprint::of(config);
        match self.db.get(keys::META_FORMAT)? {
            Some(v) => {
                let found = v.first().copied().unwrap_or(0);
                if found != STORE_FORMAT_VERSION && found != LEGACY_INDEXED_FORMAT {
                    return Err(Error::UnsupportedVersion {
                        key: "store format".into(),
                        found,
                        supported: STORE_FORMAT_VERSION,
                    });
                }
                let stored: Fingerprint = match self.db.get(keys::META_CONFIG)? {
                    Some(bytes) => codec::decode(&|| "metadata config".into(), &bytes)?,
                    None => {
                        return Err(Error::Corruption {
                            key: "metadata config".into(),
                            detail: "missing".into(),
                        })
                    }
                };
                if let Some((key, s, c)) = stored.differences(&wanted) {
                    return Err(Error::ConfigMismatch {
                        path: self.path.display().to_string(),
                        key: key.into(),
                        stored: s,
                        configured: c,
                    });
                }
                if found == LEGACY_INDEXED_FORMAT {
                    self.drop_membership_index()?;
                }
                Ok(false)
            }
            None => {
                let mut batch = sled::Batch::default();
                batch.insert(keys::META_FORMAT, &[STORE_FORMAT_VERSION]);
                batch.insert(keys::META_CONFIG, codec::encode(&wanted));
                if config.encryption == crate::config::Encryption::On {
                    let (crypt, meta) = self.create_crypt(config)?;
                    batch.insert(keys::META_CRYPT, meta);
                    self.crypt = Some(crypt);
                }
                self.db.apply_batch(batch)?;
                self.db.flush()?;
                self.sync_log()?;
                Ok(true)
            }
        }
    }

    /// Migrates a store of format 1 to [`STORE_FORMAT_VERSION`]: removes its segment
    /// membership index (the `G` keys), a chunk per batch, then records the new format in the
    /// last batch. Interrupted, it resumes at the next open (the format is still 1 until the
    /// end, and removing a removed key is a no-op).
    fn drop_membership_index(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let mut removed = 0u64;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0usize;
            for item in self.db.scan_prefix([keys::MEMBER]).take(MIGRATION_CHUNK) {
                let (k, _) = item?;
                batch.remove(k);
                n += 1;
            }
            removed += n as u64;
            let last = n < MIGRATION_CHUNK;
            if last {
                batch.insert(keys::META_FORMAT, &[STORE_FORMAT_VERSION]);
            }
            self.db.apply_batch(batch)?;
            if last {
                break;
            }
        }
        self.db.flush()?;
        self.sync_log()?;
        tracing::info!(
            "store format 1 -> {STORE_FORMAT_VERSION}: dropped {removed} segment-membership \
             entries in {:.1?} (segments are now read from the profile records)",
            started.elapsed()
        );
        Ok(())
    }

    /// The data directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The feature parameters records are checked against.
    pub fn params(&self) -> &FeatureParams {
        &self.params
    }

    /// Reads a customer's record.
    ///
    /// # Errors
    /// [`Error::Corruption`] / [`Error::UnsupportedVersion`] naming the customer if the record
    /// does not decode; [`Error::Storage`] if sled fails.
    pub fn profile(&self, customer_id: &str) -> Result<Option<ProfileRecord>> {
        self.read_profile(customer_id, Store::decode_profile)
    }

    /// A customer's current profile without its history and de-duplication window (see
    /// [`RecordCurrent`]): what every read of the current profile needs, at a fraction of the
    /// decoding cost of [`Store::profile`].
    ///
    /// # Errors
    /// As [`Store::profile`].
    pub fn profile_current(&self, customer_id: &str) -> Result<Option<RecordCurrent>> {
        self.read_profile(customer_id, Store::decode_profile_current)
    }

    /// Decodes and checks the current version of a profile record (see [`RecordCurrent`]).
    ///
    /// # Errors
    /// As [`Store::profile`].
    pub fn decode_profile_current(&self, customer_id: &str, bytes: &[u8]) -> Result<RecordCurrent> {
        self.checked(customer_id, bytes, RecordCurrent::decode, |rec, params| {
            rec.state.is_consistent(params)
        })
    }

    /// The leading fields of a customer's record, up to its current state (see
    /// [`RecordState`]): a fraction of the cost of [`Store::profile`].
    ///
    /// # Errors
    /// As [`Store::profile`].
    pub fn profile_state(&self, customer_id: &str) -> Result<Option<RecordState>> {
        self.read_profile(customer_id, Store::decode_profile_state)
    }

    /// Reads a customer's record and decodes it (all or part of it) with `decode`.
    fn read_profile<T>(
        &self,
        customer_id: &str,
        decode: fn(&Store, &str, &[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.raw_profile(customer_id)? {
            Some(bytes) => decode(self, customer_id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Decodes and checks the leading fields of a profile record, up to its current state.
    ///
    /// # Errors
    /// As [`Store::profile`].
    pub fn decode_profile_state(&self, customer_id: &str, bytes: &[u8]) -> Result<RecordState> {
        self.checked(customer_id, bytes, RecordState::decode, |rec, params| {
            rec.state.is_consistent(params)
        })
    }

    /// A customer's record, undecoded (and, in an encrypted store, opened: `sealed.rs`).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails; [`Error::Corruption`] if a sealed record does not
    /// open.
    pub fn raw_profile(&self, customer_id: &str) -> Result<Option<sled::IVec>> {
        let key = self.profile_key(customer_id);
        let Some(value) = self.db.get(&key)? else {
            return Ok(None);
        };
        if self.crypt.is_none() {
            return Ok(Some(value));
        }
        match self.unseal(&key, value)? {
            Some((_, bytes)) => Ok(Some(bytes)),
            // Erased since it was read (the key goes after the record): absent.
            None if !self.db.contains_key(&key)? => Ok(None),
            None => Err(sealed::missing_key(format!("profile {customer_id:?}"))),
        }
    }

    /// Whether the store holds a record for `customer_id`, readable or not.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn has_record(&self, customer_id: &str) -> Result<bool> {
        Ok(self.db.contains_key(self.profile_key(customer_id))?)
    }

    /// Decodes and checks a profile record.
    ///
    /// # Errors
    /// As [`Store::profile`].
    pub fn decode_profile(&self, customer_id: &str, bytes: &[u8]) -> Result<ProfileRecord> {
        self.checked(
            customer_id,
            bytes,
            ProfileRecord::decode,
            ProfileRecord::is_consistent,
        )
    }

    /// Decodes (all or part of) a customer's record with `decode` and checks what it decoded
    /// against the store's settings with `consistent`: the errors name the customer.
    fn checked<T>(
        &self,
        customer_id: &str,
        bytes: &[u8],
        decode: fn(&dyn Fn() -> String, &[u8]) -> Result<T>,
        consistent: fn(&T, &FeatureParams) -> bool,
    ) -> Result<T> {
        let name = || format!("profile {customer_id:?}");
        let rec = decode(&name, bytes)?;
        if !consistent(&rec, &self.params) {
            return Err(Error::Corruption {
                key: name(),
                detail: "fields are inconsistent with the store's settings".into(),
            });
        }
        Ok(rec)
    }

    /// Iterates over profile records after the one of `after` (exclusive), as (id, raw
    /// bytes), in key order: by id in a plain store, by token (a keyed hash of the id) in an
    /// encrypted one. `after` need not have a record (an erased customer's id still resumes
    /// where it was). A sealed record that does not open is skipped with a warning, as is one
    /// whose customer was erased.
    pub fn profiles_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, sled::IVec)>> + 'a {
        let start = match after {
            Some(a) => {
                let mut k = self.profile_key(a);
                k.push(0);
                k
            }
            None => vec![keys::PROFILE],
        };
        let items = self.db.range(start..).take_while(|item| {
            item.as_ref()
                .map(|(k, _)| k.first() == Some(&keys::PROFILE))
                .unwrap_or(true)
        });
        self.profile_items(items)
    }

    /// The (id, record bytes) of raw profile items from sled; a sealed record that does not
    /// open, or whose data key is missing, is skipped with a warning: it breaks only its own
    /// customer, as a plain record that does not decode (reads of them report it, and
    /// `persona check` names it).
    fn profile_items<'a>(
        &'a self,
        items: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a,
    ) -> impl Iterator<Item = Result<(String, sled::IVec)>> + 'a {
        self.profile_items_strict(items).filter(|item| match item {
            Err(Error::Storage(_)) | Ok(_) => true,
            Err(e) => {
                tracing::warn!("skipping a profile record: {e}");
                false
            }
        })
    }

    /// [`Store::profile_items`] that returns a record that does not open, or whose data key is
    /// missing, as an error item.
    fn profile_items_strict<'a>(
        &'a self,
        items: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a,
    ) -> impl Iterator<Item = Result<(String, sled::IVec)>> + 'a {
        items.filter_map(|item| match item {
            Ok((k, v)) => match self.unseal(&k, v) {
                Ok(Some(opened)) => Some(Ok(opened)),
                // A plain store's key that names no customer (empty or not UTF-8) is no
                // record.
                Ok(None) if self.crypt.is_none() => None,
                Ok(None) => Some(Err(sealed::missing_key(format!(
                    "profile key {}",
                    sealed::hex_key(&k)
                )))),
                Err(e) => Some(Err(e)),
            },
            Err(e) => Some(Err(Error::from(e))),
        })
    }

    /// Members of `segment` that `keep` accepts, with ids after `after` (exclusive), at most
    /// `limit`, in id order:
    /// the profiles whose record's `segment` is `segment`, found by scanning the records from
    /// `after` and decoding each one's leading fields (a page costs the records scanned to
    /// fill it: about `limit` divided by the segment's share of the profiles).
    ///
    /// A record that does not decode is skipped with a warning, as by the lookalike search: a
    /// damaged record breaks only its own customer (reads of it report the damage, and
    /// `persona check` names it).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn members(
        &self,
        segment: u16,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for item in self.profiles_after(after) {
            let (id, bytes) = item?;
            match self.decode_profile_current(&id, &bytes) {
                Ok(rec) if rec.segment == Some(segment) && keep(&id) => {
                    out.push(id);
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("segment members: skipping a record: {e}"),
            }
        }
        Ok(out)
    }

    /// The underlying sled database, for tools and tests that must see every byte stored
    /// (for example, checking that an erased customer left no trace in any tree).
    #[cfg(any(test, feature = "testing"))]
    pub fn sled(&self) -> &sled::Db {
        &self.db
    }

    /// The value of a metadata key (`M…`), read as stored (never sealed).
    #[cfg(feature = "cluster")]
    pub(crate) fn meta(&self, key: &[u8]) -> Result<Option<sled::IVec>> {
        debug_assert!(key.first() == Some(&keys::META));
        Ok(self.db.get(key)?)
    }

    /// Number of profile records.
    pub fn profile_count(&self) -> usize {
        self.db.scan_prefix([keys::PROFILE]).count()
    }

    /// [`Store::scan_profiles`] that returns a sealed record that does not open, or whose data
    /// key is missing, as an error item instead of skipping it (exports: nothing left out
    /// silently).
    pub(crate) fn scan_profiles_strict(
        &self,
    ) -> impl Iterator<Item = Result<(String, sled::IVec)>> + '_ {
        self.profile_items_strict(self.db.scan_prefix([keys::PROFILE]))
    }

    /// Iterates over all profile records as (customer id, raw bytes); in an encrypted store a
    /// record that does not open is skipped with a warning ([`Store::scan_profiles_strict`]
    /// returns it as an error).
    pub fn scan_profiles(&self) -> impl Iterator<Item = Result<(String, sled::IVec)>> + '_ {
        self.profile_items(self.db.scan_prefix([keys::PROFILE]))
    }

    /// Applies `batch` atomically, then makes it as durable as `durability` promises.
    ///
    /// # Errors
    /// [`Error::Storage`] / [`Error::Io`]. If applying fails, nothing of the batch is visible;
    /// if making it durable fails, the caller must treat the store as poisoned.
    pub fn apply(&self, batch: sled::Batch) -> Result<()> {
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Makes everything applied so far durable.
    ///
    /// # Errors
    /// [`Error::Storage`] / [`Error::Io`] from the flush or fsync.
    pub fn sync(&self, durability: Durability) -> Result<()> {
        match durability {
            Durability::None => Ok(()),
            Durability::Flush => {
                self.db.flush()?;
                Ok(())
            }
            Durability::Fsync => {
                self.db.flush()?;
                self.sync_log()
            }
        }
    }

    fn sync_log(&self) -> Result<()> {
        if let Some(f) = &self.log_file {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Counts every key and the bytes of keys and values (the logical size, to compare with
    /// [`Store::size_on_disk`]); a full scan.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    #[cfg(any(feature = "cli", feature = "testing"))]
    pub fn logical_size(&self) -> Result<LogicalSize> {
        let mut size = LogicalSize::default();
        for item in self.db.iter() {
            let (k, v) = item?;
            size.keys += 1;
            size.bytes += (k.len() + v.len()) as u64;
            if k.first() == Some(&keys::PROFILE) {
                size.profiles += 1;
                size.profile_value_bytes += v.len() as u64;
            }
        }
        Ok(size)
    }

    /// Bytes the store occupies on disk.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Flushes and fsyncs everything (used on close).
    ///
    /// # Errors
    /// [`Error::Storage`] / [`Error::Io`].
    pub fn close(&self) -> Result<()> {
        self.db.flush()?;
        self.sync_log()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(count: u64) -> SampledRow {
        SampledRow {
            target_count: count,
            event_count: 1,
            profiling: Some(true),
            temporal: crate::features::vector::Temporal::of(&crate::features::ProfileState::new(
                &crate::features::FeatureParams {
                    half_life_ms: 1.0,
                    category_buckets: 1,
                },
            )),
            features: vec![count as f32; 2],
        }
    }

    /// Refit rows load back in time order; a value that does not decode is left out, the
    /// others are not; the previous release's cohort keys are removed.
    #[test]
    fn refit_rows_load_in_time_order_and_damaged_ones_are_left_out() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&Config::new(dir.path()))?;
        store.put_sampled_rows(&[(20, "b".into(), row(2)), (10, "a".into(), row(1))])?;
        store
            .sled()
            .insert(keys::sampled_row(15, "c"), &b"\x01\xff"[..])?; // undecodable
        assert_eq!(
            store.sampled_rows()?,
            vec![(10, "a".into(), row(1)), (20, "b".into(), row(2))]
        );
        store
            .sled()
            .insert(&b"C\x80\0\0\0\0\0\0\0\0\0\0\0"[..], &b"x"[..])?;
        assert_eq!(store.remove_legacy_cohorts()?, 1);
        assert_eq!(store.remove_legacy_cohorts()?, 0);
        Ok(())
    }
}
