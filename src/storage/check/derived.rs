//! Checks of the key spaces derived from the profiles and the model: the persisted expiry
//! queue (`Q`), the segment sample (`K`), the held positive examples (`H`), and any key outside
//! every key space.

use super::*;
use crate::error::Result;
use crate::storage::crypt::Crypt;
use crate::storage::sealed::{profile_key_with, unseal_with};
use crate::storage::{codec, keys, queue};

/// Checks the persisted expiry queue against the records' open training examples, given the
/// model state's version and watermark (only that it decodes when the model state is
/// unavailable).
pub(super) fn check_queue(
    db: &sled::Db,
    profiles: &ProfileSummary,
    model: Option<(u64, i64)>,
    report: &mut CheckReport,
) -> Result<()> {
    let meta_key = queue::meta_key();
    let mut queue_keys = 0u64;
    for item in db.scan_prefix([keys::QUEUE]) {
        let (key, _) = item?;
        report.keys += 1;
        queue_keys += 1;
        let known = *key == meta_key
            || queue::parse_chunk_key(&key).is_some()
            || queue::parse_delta_key(&key).is_some();
        if !known {
            report.push(
                &key,
                ProblemKind::UnknownKey,
                "unknown key in the expiry-queue key space",
            );
        }
    }
    let meta = match queue::load_meta(db) {
        Ok(Some(m)) => m,
        Ok(None) => {
            if queue_keys > 0 {
                report.push(
                    &meta_key,
                    ProblemKind::Missing,
                    "expiry-queue chunks or deltas are stored without the checkpoint's meta record",
                );
            }
            return Ok(());
        }
        Err(e) => {
            report.push(&meta_key, ProblemKind::Undecodable, e.to_string());
            return Ok(());
        }
    };
    let Some((model_version, watermark_ms)) = model else {
        // Without the model state only whether the queue decodes can be judged.
        if let Err(e) = queue::load(
            db,
            meta.horizon_ms,
            meta.silent_horizons,
            0,
            meta.model_version,
        ) {
            report.push(&meta_key, ProblemKind::Undecodable, e.to_string());
        }
        return Ok(());
    };
    if meta.model_version != model_version {
        report.push(
            &meta_key,
            ProblemKind::Inconsistent,
            format!(
                "the expiry queue was last written at model version {}, the model state is at \
                 {model_version}; the next open derives it from the profile records",
                meta.model_version
            ),
        );
        return Ok(());
    }
    let stored = match queue::load(
        db,
        meta.horizon_ms,
        meta.silent_horizons,
        watermark_ms,
        model_version,
    ) {
        Ok(Some(q)) => q.entries,
        Ok(None) => return Ok(()),
        Err(e) => {
            report.push(&meta_key, ProblemKind::Undecodable, e.to_string());
            return Ok(());
        }
    };
    let derived = queue::derive(
        profiles.pending.iter().cloned(),
        meta.horizon_ms,
        meta.silent_horizons,
        watermark_ms,
    );
    // Damaged records cannot be judged (their customers' entries are neither expected nor
    // stray).
    let judged = |(_, id): &&queue::Entry| !profiles.damaged.contains(id.as_str());
    for (deadline, id) in derived.difference(&stored).filter(judged) {
        report.push(
            &meta_key,
            ProblemKind::Inconsistent,
            format!(
                "the expiry queue lacks the open training example of customer {id:?} \
                 (deadline {deadline})"
            ),
        );
    }
    for (deadline, id) in stored.difference(&derived).filter(judged) {
        report.push(
            &meta_key,
            ProblemKind::Inconsistent,
            format!(
                "the expiry queue holds an entry for customer {id:?} (deadline {deadline}) \
                 that no profile record's training example gives"
            ),
        );
    }
    Ok(())
}

/// Every member of the segment-fitting sample (`K` keys) must parse and name a stored profile.
pub(super) fn check_sample(
    db: &sled::Db,
    crypt: Option<&Crypt>,
    report: &mut CheckReport,
) -> Result<()> {
    for item in db.scan_prefix([keys::SAMPLE]) {
        let (key, value) = item?;
        report.keys += 1;
        match keys::u64_of(&key).and(unseal_with(crypt, &key, value).transpose()) {
            None if crypt.is_some() && key.len() == 9 + keys::TOKEN_BYTES => report.push(
                &key,
                ProblemKind::Undecodable,
                "sample member whose data key is missing from the key slots",
            ),
            None => report.push(
                &key,
                ProblemKind::UnknownKey,
                "unknown key in the segment-sample key space",
            ),
            Some(Err(e)) => report.push(&key, ProblemKind::Undecodable, e.to_string()),
            Some(Ok((id, _))) => {
                if !db.contains_key(profile_key_with(crypt, &id))? {
                    report.push(
                        &key,
                        ProblemKind::Inconsistent,
                        format!("sample member {id:?} has no profile record"),
                    );
                }
            }
        }
    }
    Ok(())
}

/// Every feedback-ledger entry (`F` keys) must decode and name a stored profile.
pub(super) fn check_feedback(
    db: &sled::Db,
    crypt: Option<&Crypt>,
    report: &mut CheckReport,
) -> Result<()> {
    for item in db.scan_prefix([keys::FEEDBACK]) {
        let (key, value) = item?;
        report.keys += 1;
        let shape = match crypt {
            Some(_) => key.len() == 1 + keys::TOKEN_BYTES + 12,
            None => key.len() >= 2 + 12 && key[1..].contains(&0),
        };
        let opened = if shape {
            unseal_with(crypt, &key, value)
        } else {
            Ok(None)
        };
        let none = (
            ProblemKind::UnknownKey,
            "unknown key in the feedback ledger",
        );
        let Some((id, value)) = opened_or_report(report, &key, opened, none) else {
            continue;
        };
        let id = id.as_str();
        let name = || format!("feedback ledger key of customer {id:?}");
        let decoded: Result<crate::storage::feedback::FeedbackOutcome> =
            crate::storage::codec::decode(&name, &value);
        if let Err(e) = decoded {
            report.push(&key, ProblemKind::Undecodable, e.to_string());
        } else if !db.contains_key(profile_key_with(crypt, id))? {
            report.push(
                &key,
                ProblemKind::Inconsistent,
                format!("feedback of {id:?}, who has no profile record"),
            );
        }
    }
    Ok(())
}

/// Every held positive example (`H` keys) must parse, decode to `dim` features, name a
/// stored profile and not be due before the model's `watermark` (when it is readable).
pub(super) fn check_held(
    db: &sled::Db,
    crypt: Option<&Crypt>,
    dim: usize,
    watermark: Option<i64>,
    report: &mut CheckReport,
) -> Result<()> {
    for item in db.scan_prefix([keys::HELD]) {
        let (key, value) = item?;
        report.keys += 1;
        let opened = opened_timed(crypt, &key, value);
        let none = (
            ProblemKind::UnknownKey,
            "unknown key in the held example key space",
        );
        let Some((deadline, id, value)) = opened_or_report(report, &key, opened, none) else {
            continue;
        };
        let name = || format!("held example {}", printable(&key));
        match codec::decode::<Vec<f32>>(&name, &value) {
            Err(e) => report.push(&key, ProblemKind::Undecodable, e.to_string()),
            Ok(f) if f.len() != dim => report.push(
                &key,
                ProblemKind::Inconsistent,
                format!(
                    "held example has {} features; the layout has {dim}",
                    f.len()
                ),
            ),
            Ok(_) => {}
        }
        if !db.contains_key(profile_key_with(crypt, &id))? {
            report.push(
                &key,
                ProblemKind::Inconsistent,
                format!("held example of customer {id:?} has no profile record"),
            );
        }
        if let Some(w) = watermark.filter(|w| deadline < *w) {
            report.push(
                &key,
                ProblemKind::Inconsistent,
                format!(
                    "held example due {deadline} is before the watermark {w}: it was never learned"
                ),
            );
        }
    }
    Ok(())
}

/// Checks the sampled customers' refit rows (`R`): each key parses, each value decodes to the
/// layout's dimensions, is for a time no later than `until` (the end of the watermark's
/// block) and names a stored profile.
pub(super) fn check_cohorts(
    db: &sled::Db,
    crypt: Option<&Crypt>,
    dim: usize,
    until: Option<i64>,
    report: &mut CheckReport,
) -> Result<()> {
    for item in db.scan_prefix([keys::SAMPLED_ROW]) {
        let (key, value) = item?;
        report.keys += 1;
        let opened = opened_timed(crypt, &key, value);
        let none = (
            ProblemKind::UnknownKey,
            "unknown key in the refit-row key space",
        );
        let Some((at, id, value)) = opened_or_report(report, &key, opened, none) else {
            continue;
        };
        let name = || format!("refit row {}", printable(&key));
        let row = match codec::decode::<crate::storage::SampledRow>(&name, &value) {
            Ok(row) => row,
            Err(e) => {
                report.push(&key, ProblemKind::Undecodable, e.to_string());
                continue;
            }
        };
        if let Some(u) = until.filter(|u| at > *u) {
            report.push(
                &key,
                ProblemKind::Inconsistent,
                format!(
                    "refit row of customer {id:?} is for {at}, after the end of the watermark's \
                     block ({u})"
                ),
            );
        }
        if row.features.len() != dim {
            report.push(
                &key,
                ProblemKind::Inconsistent,
                format!(
                    "refit row of customer {id:?} has {} features; the layout has {dim}",
                    row.features.len()
                ),
            );
        }
        if !db.contains_key(profile_key_with(crypt, &id))? {
            report.push(
                &key,
                ProblemKind::Inconsistent,
                format!("refit row of customer {id:?} has no profile record"),
            );
        }
    }
    Ok(())
}

/// Reports every key outside the M, P, G, S, V, Q, K, H, R, T, D, A and F key spaces (and W and C,
/// the refit window and the whole cohorts of previous releases, removed when the store is next
/// opened).
pub(super) fn check_unknown(db: &sled::Db, report: &mut CheckReport) -> Result<()> {
    let mut known = [
        keys::QUEUE,
        keys::MEMBER,
        keys::META,
        keys::PROFILE,
        keys::MODEL[0],
        keys::SNAPSHOT,
        keys::SAMPLE,
        keys::HELD,
        keys::COHORT,
        keys::SAMPLED_ROW,
        keys::TRIGGER,
        keys::TRIGGER_DEF,
        keys::TRIGGER_ACK,
        keys::FEEDBACK,
        keys::LEGACY_REFIT,
    ];
    known.sort_unstable();
    let mut start: Vec<u8> = Vec::new();
    for prefix in known.iter().map(|p| Some(*p)).chain([None]) {
        let range = match prefix {
            Some(p) => db.range(start.clone()..vec![p]),
            None => db.range(start.clone()..),
        };
        for item in range {
            let (key, _) = item?;
            report.keys += 1;
            report.push(&key, ProblemKind::UnknownKey, "key outside every key space");
        }
        if let Some(p) = prefix {
            start = vec![p + 1];
        }
    }
    Ok(())
}

/// The time, customer and value of an `H` or `R` key and its value; `Ok(None)` for a key that
/// does not parse (or whose customer's data key is gone).
fn opened_timed(
    crypt: Option<&Crypt>,
    key: &[u8],
    value: sled::IVec,
) -> Result<Option<(i64, String, sled::IVec)>> {
    if key.len() <= 9 {
        return Ok(None);
    }
    let Some(t) = keys::time_of(key) else {
        return Ok(None);
    };
    Ok(unseal_with(crypt, key, value)?.map(|(id, v)| (t, id, v)))
}

/// What `opened` holds for `key`, or `None` once the report says why not: its error as
/// undecodable, or, when it opened to nothing, the problem `none`.
pub(super) fn opened_or_report<T>(
    report: &mut CheckReport,
    key: &[u8],
    opened: Result<Option<T>>,
    none: (ProblemKind, &str),
) -> Option<T> {
    match opened {
        Ok(Some(opened)) => Some(opened),
        Ok(None) => {
            report.push(key, none.0, none.1);
            None
        }
        Err(e) => {
            report.push(key, ProblemKind::Undecodable, e.to_string());
            None
        }
    }
}
