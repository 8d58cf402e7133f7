//! Offline consistency check of a store (`persona check`).
//!
//! [`check_store`] opens the sled database directly — no writer thread, no metadata
//! initialisation, nothing inserted or removed — and verifies every key space:
//!
//! - `M`: the format byte (store format 1 or 2) and the settings fingerprint are present and
//!   decode;
//! - `P`: every profile record decodes, its key is a valid customer id, its numbers are finite,
//!   its history is contiguous (`base` at version `version − history.len()`, `None` only at
//!   version 0) and replaying the op log over `base` reproduces the stored state exactly;
//! - `G`: only a store of format 1 may have these (its segment membership index, dropped at
//!   the next open: counted, not judged); in a store of format 2 each is a problem;
//! - `S`: the model state decodes, has the layout's dimensions and `k`, finite parameters, a
//!   watermark equal to the latest event of any profile, and segment sizes equal to the number
//!   of profiles whose `segment` is that segment (not judged while a profile is damaged);
//! - `V`: every snapshot decodes, is keyed by its own version and is not newer than the model;
//! - `Q`: the persisted expiry queue (checkpoint meta, chunks and deltas) decodes, and replayed
//!   it holds exactly the open training examples the profile records give (missing and stray
//!   entries are both reported); a store without one (written by an older build) is fine;
//! - `K`: every member of the segment sample names a stored profile;
//! - `H`: every held positive example parses, decodes to the layout's dimensions, names a
//!   stored profile, and is due at or after the model's watermark (one past it would have been
//!   learned and removed in the same commit);
//! - `R`: every refit row of a sampled customer parses and decodes, is for a time no later
//!   than the end of the watermark's block, has the layout's dimensions and names a stored profile (`W` and `C`, the
//!   refit window and the whole cohorts of previous releases, are known: they are removed
//!   when the store is next opened);
//! - any other key is reported as unknown.
//!
//! Each problem names the key in printable form (`Pc42`, `G\x00\x03c42`, see
//! `docs/storage-format.md`) and what is wrong with it. The settings (segments, category buckets,
//! half-life) come from the store's own metadata, so no configuration file is needed.

use super::crypt::Crypt;
use super::models::decode_model_with;
use super::record::ProfileRecord;
use super::sealed::unseal_with;
use super::{codec, keys, Fingerprint, LEGACY_INDEXED_FORMAT, STORE_FORMAT_VERSION};
use crate::config::Config;
use crate::error::Result;
use crate::event::validate_customer_id;
use crate::features::vector::FeatureLayout;
use crate::features::{FeatureParams, ProfileState};
use crate::model::ModelState;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

mod derived;
use derived::{
    check_cohorts, check_feedback, check_held, check_queue, check_sample, check_unknown,
    opened_or_report,
};

/// Problems kept in a [`CheckReport`]; later ones are only counted.
pub const MAX_REPORTED: usize = 1000;

/// What kind of problem a key has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The value (or the key itself) does not decode.
    Undecodable,
    /// It decodes, but contradicts itself, the store's settings or another record.
    Inconsistent,
    /// A key outside the known key spaces.
    UnknownKey,
    /// A required key is absent.
    Missing,
}

/// One problem found by [`check_store`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The key, printable: ASCII as is, other bytes as `\xNN`.
    pub key: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// What is wrong, in words.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.detail)
    }
}

/// The result of [`check_store`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// The data directory checked.
    pub path: PathBuf,
    /// Keys looked at.
    pub keys: u64,
    /// Profile records.
    pub profiles: u64,
    /// Segment-membership entries of a store of format 1 (dropped when it is next opened).
    pub legacy_members: u64,
    /// Model snapshots.
    pub snapshots: u64,
    /// Version of the model state, if it decodes.
    pub model_version: Option<u64>,
    /// The problems, at most 1,000, in key-space order (M, P, G, S, V, Q, unknown).
    pub problems: Vec<Problem>,
    /// How many problems there were in all.
    pub problems_total: u64,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems_total == 0
    }

    fn push(&mut self, key: &[u8], kind: ProblemKind, detail: impl Into<String>) {
        self.problems_total += 1;
        if self.problems.len() < MAX_REPORTED {
            self.problems.push(Problem {
                key: printable(key),
                kind,
                detail: detail.into(),
            });
        }
    }
}

/// A key with printable ASCII kept and every other byte escaped as `\xNN`.
///
/// # Examples
/// ```
/// use persona::testing::storage::check::printable;
/// assert_eq!(printable(b"G\x00\x03c42"), "G\\x00\\x03c42");
/// ```
pub fn printable(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Checks the store in `path` without modifying it (see the module docs for what is verified).
/// Fails if the store is open in another process (sled holds a lock on it).
///
/// # Errors
/// [`Error::NoStore`](crate::Error::NoStore) if `path` holds no store;
/// [`Error::Locked`](crate::Error::Locked) while another process has it open;
/// [`Error::Storage`](crate::Error::Storage) if sled cannot open it or a read fails. Damaged
/// records are not errors: they are the report's problems.
///
/// # Examples
/// ```
/// # let dir = tempfile::tempdir()?;
/// use persona::{Db, Event, EventKind};
/// let db = Db::open(dir.path())?;
/// db.ingest(Event::new("c1", 1_767_225_600_000, EventKind::Click))?;
/// db.close()?;
/// drop(db);
/// let report = persona::check_store(dir.path())?;
/// assert!(report.is_clean(), "{:?}", report.problems);
/// assert_eq!(report.profiles, 1);
/// # Ok::<(), persona::Error>(())
/// ```
pub fn check_store(path: &Path) -> Result<CheckReport> {
    check_store_with(&Config::new(path))
}

/// [`check_store`] of the store at `config`'s path, with the key of an encrypted store found
/// as `config` says (its `key_file`, else `PERSONA_KEY`, else the data directory's
/// `store.key`): nothing else of `config` is used.
///
/// # Errors
/// As [`check_store`], and [`Error::Key`](crate::Error::Key) when an encrypted store's key is
/// missing or wrong.
pub fn check_store_with(config: &Config) -> Result<CheckReport> {
    let path = config.path();
    // sled would create an empty database in any directory: refuse to, this is a read.
    super::require_store(path)?;
    // Level 0: as the store was created.
    let db = super::open_sled(path, 64, None)?;
    let crypt = super::encryption::existing_crypt(&db, config, path, false)?;
    let crypt = crypt.as_ref();
    let mut report = CheckReport {
        path: path.to_path_buf(),
        keys: 0,
        profiles: 0,
        legacy_members: 0,
        snapshots: 0,
        model_version: None,
        problems: Vec::new(),
        problems_total: 0,
    };
    for (slot, token) in crypt.map(Crypt::damaged).unwrap_or_default() {
        report.push(
            b"keys.slots",
            ProblemKind::Undecodable,
            format!(
                "key slot {slot} (token {}) does not unwrap: damaged; the records of that \
                 customer cannot be read",
                super::crypt::hex(&token.0)
            ),
        );
    }
    let (format, fingerprint) = check_meta(&db, &mut report)?;
    let defaults = Config::new(path);
    let fp = fingerprint.unwrap_or_else(|| Fingerprint::of(&defaults));
    let params = FeatureParams {
        half_life_ms: fp.half_life_days * 86_400_000.0,
        category_buckets: usize::try_from(fp.category_buckets).unwrap_or(usize::MAX),
    };
    let k = usize::try_from(fp.segments).unwrap_or(usize::MAX);
    let profiles = check_profiles(&db, crypt, &params, k, &mut report)?;
    check_legacy_members(&db, format, &mut report)?;
    let model = check_model(
        &db,
        crypt,
        &FeatureLayout::new(params),
        k,
        &profiles,
        &mut report,
    )?;
    let model_version = model.map(|(version, _)| version);
    report.model_version = model_version;
    check_snapshots(&db, crypt, model_version, &mut report)?;
    if crypt.is_some() {
        // An encrypted store keeps no copy of the expiry queue: its entries name customers.
        for item in db.scan_prefix([keys::QUEUE]) {
            let (key, _) = item?;
            report.keys += 1;
            report.push(
                &key,
                ProblemKind::Inconsistent,
                "an expiry-queue key in an encrypted store, which keeps none (it would name \
                 customers in clear)",
            );
        }
    } else {
        check_queue(&db, &profiles, model, &mut report)?;
    }
    check_sample(&db, crypt, &mut report)?;
    check_feedback(&db, crypt, &mut report)?;
    let layout = FeatureLayout::new(params);
    check_held(&db, crypt, layout.dim(), model.map(|m| m.1), &mut report)?;
    // A refit row is for the end of the block its batch's watermark was in.
    let horizon_ms = (fp.horizon_days * crate::features::DAY_MS) as i64;
    let rows_until = model.map(|m| super::refit_block_end(m.1, horizon_ms));
    check_cohorts(&db, crypt, layout.dim(), rows_until, &mut report)?;
    check_unknown(&db, &mut report)?;
    // Nothing was written; this waits for sled's background I/O threads (started by its own
    // recovery at open), which hold the store's file lock until they finish, so that the store
    // can be reopened as soon as this returns.
    db.flush()?;
    Ok(report)
}

/// Checks the metadata; returns the store format (if readable) and the fingerprint.
fn check_meta(
    db: &sled::Db,
    report: &mut CheckReport,
) -> Result<(Option<u8>, Option<Fingerprint>)> {
    let mut fingerprint = None;
    let mut format = None;
    for item in db.scan_prefix([keys::META]) {
        let (k, v) = item?;
        report.keys += 1;
        if &*k == keys::META_FORMAT {
            match *v {
                [f] if f == STORE_FORMAT_VERSION || f == LEGACY_INDEXED_FORMAT => format = Some(f),
                _ => report.push(
                    &k,
                    ProblemKind::Inconsistent,
                    format!(
                        "store format is {:?}; this build reads [{LEGACY_INDEXED_FORMAT}] and \
                         [{STORE_FORMAT_VERSION}]",
                        &*v
                    ),
                ),
            }
        } else if &*k == keys::META_CONFIG {
            match codec::decode::<Fingerprint>(&|| "metadata config".into(), &v) {
                Ok(f) => fingerprint = Some(f),
                Err(e) => report.push(&k, ProblemKind::Undecodable, e.to_string()),
            }
        } else if &*k == keys::META_CRYPT {
            // Read (and checked against the key) before the checks start.
        } else if let Some(p) = k.strip_prefix(keys::META_CLUSTER) {
            if p.len() != 2 || v.len() != 8 {
                report.push(
                    &k,
                    ProblemKind::Inconsistent,
                    format!(
                        "a cluster position must be a 2-byte partition and an 8-byte sequence, \
                         found {} and {} bytes",
                        p.len(),
                        v.len()
                    ),
                );
            }
        } else {
            report.push(&k, ProblemKind::UnknownKey, "unknown metadata key");
        }
    }
    for key in [keys::META_FORMAT, keys::META_CONFIG] {
        if !db.contains_key(key)? {
            report.push(
                key,
                ProblemKind::Missing,
                "required metadata key is missing",
            );
        }
    }
    Ok((format, fingerprint))
}

/// What the other checks need to know about the profiles.
#[derive(Default)]
struct ProfileSummary {
    /// Segment of every decodable profile that has one.
    segments: HashMap<String, u16>,
    /// Customers whose record does not decode or is inconsistent (their index entries are not
    /// judged).
    damaged: HashSet<String>,
    /// Latest event time of any decodable profile.
    last_seen_ms: Option<i64>,
    /// Every decodable profile's stored training example: (id, snapshot time).
    pending: Vec<(String, i64)>,
}

fn check_profiles(
    db: &sled::Db,
    crypt: Option<&Crypt>,
    params: &FeatureParams,
    k: usize,
    report: &mut CheckReport,
) -> Result<ProfileSummary> {
    let mut summary = ProfileSummary::default();
    for item in db.scan_prefix([keys::PROFILE]) {
        let (key, value) = item?;
        report.keys += 1;
        report.profiles += 1;
        let none = match crypt {
            Some(_) => "profile record whose customer's data key is gone (erased?)",
            None => "profile key has an empty or non-UTF-8 customer id",
        };
        let opened = unseal_with(crypt, &key, value);
        let Some((id, value)) =
            opened_or_report(report, &key, opened, (ProblemKind::Undecodable, none))
        else {
            continue;
        };
        let id = id.as_str();
        if let Err(e) = validate_customer_id(id) {
            report.push(
                &key,
                ProblemKind::Inconsistent,
                format!("invalid customer id: {e}"),
            );
        }
        let rec = match ProfileRecord::decode(&|| format!("profile {id:?}"), &value) {
            Ok(r) => r,
            Err(e) => {
                report.push(&key, ProblemKind::Undecodable, e.to_string());
                summary.damaged.insert(id.to_string());
                continue;
            }
        };
        let problems = profile_problems(&rec, params, k);
        if !problems.is_empty() {
            summary.damaged.insert(id.to_string());
        }
        for p in problems {
            report.push(&key, ProblemKind::Inconsistent, p);
        }
        if let Some(s) = rec.segment {
            summary.segments.insert(id.to_string(), s);
        }
        if let Some(p) = &rec.pending {
            summary.pending.push((id.to_string(), p.taken_at_ms));
        }
        if let Some(t) = rec.state.last_seen_ms {
            summary.last_seen_ms = Some(summary.last_seen_ms.map_or(t, |m| m.max(t)));
        }
    }
    Ok(summary)
}

/// Everything wrong with one decoded profile record.
fn profile_problems(rec: &ProfileRecord, params: &FeatureParams, k: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (name, state) in [("state", Some(&rec.state)), ("base", rec.base.as_ref())] {
        let Some(state) = state else { continue };
        if !state.is_consistent(params) {
            out.push(format!(
                "{name} has {} category buckets; the store has {}",
                state.categories.len(),
                params.category_buckets
            ));
        }
        if let Some(field) = non_finite_field(state) {
            out.push(format!("{name}.{field} is not finite"));
        }
    }
    let history = rec.history.len() as u64;
    if history > rec.version {
        out.push(format!(
            "history holds {history} versions but the record is at version {}",
            rec.version
        ));
        return out;
    }
    let base_version = rec.version - history;
    if rec.base.is_none() && base_version != 0 {
        out.push(format!(
            "history covers versions {}..={} but there is no base state for version {base_version}",
            base_version + 1,
            rec.version
        ));
    }
    if out.is_empty() {
        let mut replayed = rec
            .base
            .clone()
            .unwrap_or_else(|| ProfileState::new(params));
        for entry in &rec.history {
            replayed.apply(&entry.op, params);
        }
        if replayed != rec.state {
            out.push(format!(
                "replaying versions {}..={} over the base does not reproduce the current state \
                 ({} events replayed, {} stored)",
                base_version + 1,
                rec.version,
                replayed.event_count,
                rec.state.event_count
            ));
        }
    }
    if let Some(s) = rec.segment {
        if usize::from(s) >= k {
            out.push(format!("segment {s} is out of range; the store has {k}"));
        }
    }
    if let Some((i, e)) = rec
        .history
        .iter()
        .enumerate()
        .find(|(_, e)| e.segment.is_some_and(|s| usize::from(s) >= k))
    {
        out.push(format!(
            "history entry for version {} has segment {:?}, out of range 0..{k}",
            base_version + 1 + i as u64,
            e.segment
        ));
    }
    if !rec.distance.is_finite() || rec.distance < 0.0 {
        out.push(format!(
            "distance {} is not a finite value >= 0",
            rec.distance
        ));
    }
    if !(0.0..=1.0).contains(&rec.propensity) {
        out.push(format!("propensity {} is outside [0, 1]", rec.propensity));
    }
    if let Some(p) = &rec.pending {
        if p.features.iter().any(|v| !v.is_finite()) {
            out.push("pending example has non-finite features".into());
        }
    }
    out
}

/// The first float field of a state that is NaN or infinite.
fn non_finite_field(s: &ProfileState) -> Option<&'static str> {
    let scalars = [
        ("spend", s.spend),
        ("refunded", s.refunded),
        ("decayed_spend", s.decayed_spend),
        ("view_seconds", s.view_seconds),
        ("rating_sum", s.rating_sum),
    ];
    if let Some((name, _)) = scalars.iter().find(|(_, v)| !v.is_finite()) {
        return Some(name);
    }
    if s.kind_decayed.iter().any(|v| !v.is_finite()) {
        return Some("kind_decayed");
    }
    if s.categories.iter().any(|v| !v.is_finite()) {
        return Some("categories");
    }
    None
}

/// Counts the `G` keys of a format-1 store (its membership index, dropped at the next open);
/// in a store of any other format each is a problem.
fn check_legacy_members(db: &sled::Db, format: Option<u8>, report: &mut CheckReport) -> Result<()> {
    for item in db.scan_prefix([keys::MEMBER]) {
        let (key, _) = item?;
        report.keys += 1;
        if format == Some(LEGACY_INDEXED_FORMAT) {
            report.legacy_members += 1;
        } else {
            report.push(
                &key,
                ProblemKind::UnknownKey,
                format!(
                    "segment-membership entry in a store of format {STORE_FORMAT_VERSION}, which \
                     keeps none (only format {LEGACY_INDEXED_FORMAT} had the index)"
                ),
            );
        }
    }
    Ok(())
}

fn check_model(
    db: &sled::Db,
    crypt: Option<&Crypt>,
    layout: &FeatureLayout,
    k: usize,
    profiles: &ProfileSummary,
    report: &mut CheckReport,
) -> Result<Option<(u64, i64)>> {
    for item in db.scan_prefix(keys::MODEL) {
        let (key, _) = item?;
        if &*key != keys::MODEL {
            report.keys += 1;
            report.push(
                &key,
                ProblemKind::UnknownKey,
                "unknown key in the model key space",
            );
        }
    }
    let Some(bytes) = db.get(keys::MODEL)? else {
        // A store that never committed a batch has no model state; then it has no profiles.
        if report.profiles > 0 {
            report.push(
                keys::MODEL,
                ProblemKind::Missing,
                format!("no model state, but {} profiles", report.profiles),
            );
        }
        return Ok(None);
    };
    report.keys += 1;
    let model = match decode_model_with(crypt, "model state", &bytes) {
        Ok(m) => m,
        Err(e) => {
            report.push(keys::MODEL, ProblemKind::Undecodable, e.to_string());
            return Ok(None);
        }
    };
    for p in model_problems(&model, layout, k) {
        report.push(keys::MODEL, ProblemKind::Inconsistent, p);
    }
    // A damaged record's segment is unknown (the record itself is reported): then the sizes
    // cannot be judged.
    if profiles.damaged.is_empty() {
        let mut counts: HashMap<u16, u64> = HashMap::new();
        for &seg in profiles.segments.values() {
            *counts.entry(seg).or_default() += 1;
        }
        for (s, &size) in model.segment_sizes.iter().enumerate() {
            let assigned = u16::try_from(s)
                .ok()
                .and_then(|s| counts.get(&s))
                .copied()
                .unwrap_or(0);
            if size != assigned {
                report.push(
                    keys::MODEL,
                    ProblemKind::Inconsistent,
                    format!("segment {s} has size {size} but {assigned} profiles are in it"),
                );
            }
        }
    }
    if let Some(last) = profiles.last_seen_ms {
        // The watermark is the latest event time ever applied, written in the same batch as the
        // profile of that event. It never moves back: erasing or purging the customer whose
        // event set it leaves it ahead of every remaining profile, so only `<` is a fault.
        if model.watermark_ms < last {
            report.push(
                keys::MODEL,
                ProblemKind::Inconsistent,
                format!(
                    "watermark {} is older than the latest event of a profile ({last})",
                    model.watermark_ms
                ),
            );
        }
    }
    Ok(Some((model.version, model.watermark_ms)))
}

/// Everything wrong with a decoded model state (beyond what decoding already validates).
fn model_problems(model: &ModelState, layout: &FeatureLayout, k: usize) -> Vec<String> {
    let mut out = Vec::new();
    if model.dim() != layout.dim() {
        out.push(format!(
            "has {} feature dimensions; the store's layout has {}",
            model.dim(),
            layout.dim()
        ));
    }
    if model.segments.k() != k {
        out.push(format!(
            "has {} segments; the store has {k}",
            model.segments.k()
        ));
    }
    let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
    if !finite(model.scaler.mean()) || !finite(&model.scaler.variance()) {
        out.push("scaler holds non-finite values".into());
    }
    if !finite(&model.propensity.weights()) || !model.propensity.bias().is_finite() {
        out.push("propensity model holds non-finite weights".into());
    }
    if model
        .segment_stats
        .iter()
        .any(|s| !s.spend_sum.is_finite() || !s.propensity_sum.is_finite())
    {
        out.push("segment statistics hold non-finite sums".into());
    }
    if model.labelled_through_ms > model.watermark_ms {
        out.push(format!(
            "labels learned through {} are past the watermark {}",
            model.labelled_through_ms, model.watermark_ms
        ));
    }
    out
}

fn check_snapshots(
    db: &sled::Db,
    crypt: Option<&Crypt>,
    model_version: Option<u64>,
    report: &mut CheckReport,
) -> Result<()> {
    for item in db.scan_prefix([keys::SNAPSHOT]) {
        let (key, value) = item?;
        report.keys += 1;
        report.snapshots += 1;
        let Some(version) = keys::parse_snapshot(&key) else {
            report.push(
                &key,
                ProblemKind::Undecodable,
                "snapshot key is not 'V' + an 8-byte version",
            );
            continue;
        };
        let snap = match decode_model_with(crypt, &format!("model snapshot {version}"), &value) {
            Ok(s) => s,
            Err(e) => {
                report.push(&key, ProblemKind::Undecodable, e.to_string());
                continue;
            }
        };
        if snap.version != version {
            report.push(
                &key,
                ProblemKind::Inconsistent,
                format!("holds model version {}, not {version}", snap.version),
            );
        }
        if let Some(current) = model_version {
            if version > current {
                report.push(
                    &key,
                    ProblemKind::Inconsistent,
                    format!("is newer than the model state (version {current})"),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_non_graphic_bytes() {
        assert_eq!(printable(b"Pc42"), "Pc42");
        assert_eq!(printable(b"G\x00\x03c 4\\"), "G\\x00\\x03c\\x204\\x5c");
        assert_eq!(printable(&[0xff]), "\\xff");
    }
}
