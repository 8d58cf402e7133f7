//! The persisted expiry queue: the writer's queue of open training examples (deadline,
//! customer), kept on disk so that opening a store does not have to read every profile record
//! to rebuild it.
//!
//! The queue is derived data: every entry follows from a record's pending example and the
//! watermark, and a store without it (created by an older build, or whose queue keys are
//! damaged) is opened by deriving it from the records as before. What is stored:
//!
//! - a **checkpoint**: the whole queue in chunks of at most [`CHUNK_ENTRIES`] entries (`Qc` +
//!   chunk number), described by a meta record (`Qm`: the horizon and silent-horizon count it
//!   was built with, the number of chunks and entries);
//! - one **delta** per committed batch that changed the queue (`Qd` + sequence number): the
//!   batch's insertions and removals in order, written in the same atomic sled batch as the
//!   records whose examples they follow. Entries the watermark passed are not logged as
//!   removals: loading drops every entry whose deadline is before the model's watermark, which
//!   is exactly what the writer did with them.
//!
//! The writer writes a new checkpoint, and removes every delta, when the deltas since the last
//! one hold more entries than twice the queue (so loading replays at most that), and in every
//! batch that erases a customer (so no id of an erased customer stays in a delta).

use super::codec;
use super::keys;
use crate::error::Result;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most entries in one checkpoint chunk (a chunk is then well under the codec's record limit).
pub const CHUNK_ENTRIES: usize = 32 * 1024;

/// One entry of the queue: the deadline of an open example (ms) and its customer.
///
/// The customer is a [`CompactString`], which keeps ids of up to 24 bytes inline: the writer
/// looks entries up in a `BTreeSet` ordered by deadline, and events stamped by the server share
/// deadlines by the dozen, so comparing ids must not chase a pointer per comparison. It orders
/// and serialises exactly as a `String` does (the stored queue is unchanged).
pub type Entry = (i64, CompactString);

/// What describes the stored checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueMeta {
    /// Horizon the deadlines were computed with, in ms.
    pub horizon_ms: i64,
    /// `silent_horizons` setting the queue was built under (it decides which entries exist).
    pub silent_horizons: u64,
    /// Number of checkpoint chunks (`Qc` 0 .. chunks).
    pub chunks: u32,
    /// Number of entries in the checkpoint.
    pub entries: u64,
    /// The model version of the last commit, which rewrote this record: a model state of
    /// another version means the queue was not kept up to date (a build without it wrote the
    /// store since), and is derived from the records instead.
    pub model_version: u64,
}

/// One change of a delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// The entry joined the queue.
    Insert(i64, CompactString),
    /// The entry left the queue (a positive label, an erasure).
    Remove(i64, CompactString),
}

/// The queue as stored, loaded and replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedQueue {
    /// The entries, after the deltas and the watermark.
    pub entries: BTreeSet<Entry>,
    /// The checkpoint's meta record.
    pub meta: QueueMeta,
    /// Keys of the stored deltas, in order (the next checkpoint removes them).
    pub deltas: Vec<Vec<u8>>,
    /// Sequence number the next delta gets.
    pub next_delta: u64,
    /// Entries in the stored deltas.
    pub delta_entries: u64,
}

/// Key of the checkpoint's meta record.
pub fn meta_key() -> [u8; 2] {
    [keys::QUEUE, b'm']
}

/// Key of checkpoint chunk `i`.
pub fn chunk_key(i: u32) -> [u8; 6] {
    let mut k = [keys::QUEUE, b'c', 0, 0, 0, 0];
    k[2..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Key of delta `seq`.
pub fn delta_key(seq: u64) -> [u8; 10] {
    let mut k = [keys::QUEUE, b'd', 0, 0, 0, 0, 0, 0, 0, 0];
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number of a delta key.
pub fn parse_delta_key(key: &[u8]) -> Option<u64> {
    match key {
        [keys::QUEUE, b'd', rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// The chunk number of a chunk key.
pub fn parse_chunk_key(key: &[u8]) -> Option<u32> {
    match key {
        [keys::QUEUE, b'c', rest @ ..] => Some(u32::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// Adds a checkpoint of `entries` to `batch`: first removes `stale` (the previous checkpoint's
/// chunks and the deltas since), then inserts the meta record (`meta_base`: horizon,
/// silent-horizon count, model version) and the chunks (a chunk key in
/// both is simply replaced: the batch keeps the last operation on a key). Returns the number of
/// chunks written, the keys written (inserted or removed) and the bytes inserted.
pub fn write_checkpoint<'a>(
    batch: &mut sled::Batch,
    entries: impl ExactSizeIterator<Item = &'a Entry>,
    meta_base: (i64, u64, u64),
    stale: impl IntoIterator<Item = Vec<u8>>,
) -> (u32, u64, u64) {
    let (mut keys_written, mut bytes) = (0u64, 0u64);
    for key in stale {
        batch.remove(key);
        keys_written += 1;
    }
    let total = entries.len();
    let mut chunks = 0u32;
    let mut chunk: Vec<&Entry> = Vec::with_capacity(CHUNK_ENTRIES.min(total));
    let mut flush = |chunk: &mut Vec<&Entry>, chunks: &mut u32| {
        let value = codec::encode(chunk);
        keys_written += 1;
        bytes += (6 + value.len()) as u64;
        batch.insert(&chunk_key(*chunks), value);
        *chunks += 1;
        chunk.clear();
    };
    for e in entries {
        chunk.push(e);
        if chunk.len() == CHUNK_ENTRIES {
            flush(&mut chunk, &mut chunks);
        }
    }
    if !chunk.is_empty() {
        flush(&mut chunk, &mut chunks);
    }
    let meta = QueueMeta {
        horizon_ms: meta_base.0,
        silent_horizons: meta_base.1,
        chunks,
        entries: total as u64,
        model_version: meta_base.2,
    };
    bytes += write_meta(batch, &meta);
    (chunks, keys_written + 1, bytes)
}

/// Adds the meta record to `batch`; returns the bytes inserted.
pub fn write_meta(batch: &mut sled::Batch, meta: &QueueMeta) -> u64 {
    let value = codec::encode(meta);
    let bytes = (2 + value.len()) as u64;
    batch.insert(&meta_key(), value);
    bytes
}

/// Highest delta sequence number a store may hold: a larger one is damage (sequence numbers
/// count commits from zero), and the queue is then derived from the records instead.
pub const MAX_DELTA_SEQ: u64 = 1 << 62;

/// The checkpoint's meta record, if stored.
///
/// # Errors
/// [`crate::Error::Storage`] if sled fails, [`crate::Error::Corruption`] if it does not decode.
pub fn load_meta(db: &sled::Db) -> Result<Option<QueueMeta>> {
    match db.get(meta_key())? {
        Some(bytes) => Ok(Some(codec::decode(&|| "expiry queue meta".into(), &bytes)?)),
        None => Ok(None),
    }
}

/// Encodes one batch's changes as a delta value.
pub fn encode_delta(changes: &[Change]) -> Vec<u8> {
    codec::encode(&changes)
}

/// Loads the stored queue: the checkpoint, then every delta in order, then drops the entries
/// whose deadline is before `watermark_ms`. `Ok(None)` when there is no checkpoint, or it was
/// built with another horizon or silent-horizon count, or its last commit is not the model
/// state's (`model_version`): the caller derives the queue from the records instead.
///
/// # Errors
/// [`crate::Error::Storage`] if sled fails, [`crate::Error::Corruption`] naming the key for a
/// queue record that does not decode or a chunk that is missing.
pub fn load(
    db: &sled::Db,
    horizon_ms: i64,
    silent_horizons: u64,
    watermark_ms: i64,
    model_version: u64,
) -> Result<Option<LoadedQueue>> {
    let Some(meta) = load_meta(db)? else {
        return Ok(None);
    };
    if meta.horizon_ms != horizon_ms || meta.silent_horizons != silent_horizons {
        return Ok(None);
    }
    if meta.model_version != model_version {
        tracing::warn!(
            "the stored expiry queue was last written at model version {}, the model state is \
             at {model_version} (a build without it wrote the store since?): deriving it from \
             the profile records",
            meta.model_version
        );
        return Ok(None);
    }
    let mut entries = BTreeSet::new();
    for i in 0..meta.chunks {
        let name = || format!("expiry queue chunk {i}");
        let Some(bytes) = db.get(chunk_key(i))? else {
            return Err(crate::Error::Corruption {
                key: name(),
                detail: format!("missing (the checkpoint has {} chunks)", meta.chunks),
            });
        };
        let chunk: Vec<Entry> = codec::decode(&name, &bytes)?;
        entries.extend(chunk);
    }
    if entries.len() as u64 != meta.entries {
        return Err(crate::Error::Corruption {
            key: "expiry queue meta".into(),
            detail: format!(
                "says {} entries, the chunks hold {}",
                meta.entries,
                entries.len()
            ),
        });
    }
    let (mut deltas, mut next_delta, mut delta_entries) = (Vec::new(), 0u64, 0u64);
    for item in db.scan_prefix([keys::QUEUE, b'd']) {
        let (k, v) = item?;
        let seq = parse_delta_key(&k).filter(|&s| s <= MAX_DELTA_SEQ);
        let Some(seq) = seq else {
            return Err(crate::Error::Corruption {
                key: format!("expiry queue key {k:?}"),
                detail: format!("not a delta key with a sequence number up to {MAX_DELTA_SEQ}"),
            });
        };
        let changes: Vec<Change> = codec::decode(&|| format!("expiry queue delta {seq}"), &v)?;
        delta_entries += changes.len() as u64;
        for c in changes {
            match c {
                Change::Insert(d, id) => {
                    entries.insert((d, id));
                }
                Change::Remove(d, id) => {
                    entries.remove(&(d, id));
                }
            }
        }
        deltas.push(k.to_vec());
        next_delta = seq + 1;
    }
    // The writer popped every entry before the watermark; those pops are not logged.
    let kept = entries.split_off(&(watermark_ms, CompactString::default()));
    Ok(Some(LoadedQueue {
        entries: kept,
        meta,
        deltas,
        next_delta,
        delta_entries,
    }))
}

/// The queue derived from the records: for every customer with a stored example taken at
/// `taken` (ms), the next deadline at or after the watermark of its chain of silent-period
/// examples, if the chain (`silent_horizons` examples after the first) is not exhausted.
pub fn derive(
    pending: impl IntoIterator<Item = (String, i64)>,
    horizon_ms: i64,
    silent_horizons: u64,
    watermark_ms: i64,
) -> BTreeSet<Entry> {
    let h = horizon_ms.max(1);
    let silent = i64::try_from(silent_horizons).unwrap_or(i64::MAX);
    pending
        .into_iter()
        .filter_map(|(id, taken)| {
            let age = watermark_ms.saturating_sub(taken);
            let k = if age <= h { 0 } else { (age - 1) / h };
            let deadline = taken.saturating_add(k.saturating_add(1).saturating_mul(h));
            (k <= silent).then_some((deadline, id.into()))
        })
        .collect()
}

/// Every key of the queue's key space, whatever its value (when the queue is derived from
/// the records, the first checkpoint removes them all).
///
/// # Errors
/// [`crate::Error::Storage`] if sled fails.
pub fn stored_keys(db: &sled::Db) -> Result<Vec<Vec<u8>>> {
    db.scan_prefix([keys::QUEUE])
        .keys()
        .map(|k| Ok(k?.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> BTreeSet<Entry> {
        (0..n)
            .map(|i| (i as i64 * 10, format!("c{i}").into()))
            .collect()
    }

    /// Entries and changes are stored exactly as when the id was a `String` (stores written
    /// before the id became a `CompactString` load unchanged), and ids order as strings do,
    /// short (inline) and long (on the heap) alike.
    #[test]
    fn compact_ids_encode_and_order_as_strings() {
        let ids = [
            "",
            "a",
            "cust:12345",
            "cust:12345\u{0}",
            "cust:2",
            "a-customer-id-longer-than-twenty-four-bytes",
            "a-customer-id-longer-than-twenty-four-bytes-too",
            "é",
        ];
        for id in ids {
            let compact: Entry = (-7, id.into());
            let plain: (i64, String) = (-7, id.to_string());
            assert_eq!(
                codec::encode(&vec![&compact]),
                codec::encode(&vec![&plain]),
                "{id:?}"
            );
            let (d, c) = compact.clone();
            let decoded: Vec<Entry> =
                codec::decode(&|| "chunk".into(), &codec::encode(&vec![&plain])).unwrap();
            assert_eq!(decoded, vec![compact]);
            assert_eq!(
                encode_delta(&[Change::Insert(d, c.clone()), Change::Remove(d, c)]),
                {
                    #[derive(Serialize)]
                    enum Plain {
                        Insert(i64, String),
                        Remove(i64, String),
                    }
                    codec::encode(&vec![
                        Plain::Insert(-7, id.to_string()),
                        Plain::Remove(-7, id.to_string()),
                    ])
                },
                "{id:?}"
            );
            for other in ids {
                let a: Entry = (1, id.into());
                let b: Entry = (1, other.into());
                assert_eq!(a.cmp(&b), id.cmp(other), "{id:?} against {other:?}");
            }
        }
    }

    #[test]
    fn a_checkpoint_and_deltas_load_back_without_entries_before_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let all = entries(CHUNK_ENTRIES + 5);
        let mut batch = sled::Batch::default();
        let (chunks, _, _) = write_checkpoint(&mut batch, all.iter(), (100, 3, 1), []);
        assert_eq!(chunks, 2);
        let changes = vec![
            Change::Insert(5, "new".into()),
            Change::Remove(20, "c2".into()),
            Change::Insert(7, "gone-by-watermark".into()),
        ];
        batch.insert(&delta_key(0), encode_delta(&changes));
        batch.insert(
            &delta_key(1),
            encode_delta(&[Change::Remove(5, "new".into())]),
        );
        db.apply_batch(batch).unwrap();

        let loaded = load(&db, 100, 3, 8, 1).unwrap().unwrap();
        let mut want = all.clone();
        want.remove(&(20, "c2".into()));
        let want = want.split_off(&(8, CompactString::default()));
        assert_eq!(loaded.entries, want);
        assert_eq!(
            loaded.deltas,
            vec![delta_key(0).to_vec(), delta_key(1).to_vec()]
        );
        assert_eq!(loaded.next_delta, 2);
        assert_eq!(loaded.delta_entries, 4);
        // Another horizon or silent count: not usable, derive from the records instead.
        assert_eq!(load(&db, 101, 3, 8, 1).unwrap(), None);
        assert_eq!(load(&db, 100, 2, 8, 1).unwrap(), None);
        // A model state of another version: the queue was not kept up to date.
        assert_eq!(load(&db, 100, 3, 8, 2).unwrap(), None);

        // A smaller checkpoint removes the extra chunk and the deltas.
        let mut batch = sled::Batch::default();
        let small = entries(3);
        let stale = stored_keys(&db).unwrap();
        assert_eq!(stale.len(), 5, "meta, two chunks, two deltas");
        write_checkpoint(&mut batch, small.iter(), (100, 3, 2), stale);
        db.apply_batch(batch).unwrap();
        assert_eq!(db.get(chunk_key(1)).unwrap(), None);
        assert_eq!(db.scan_prefix([keys::QUEUE, b'd']).count(), 0);
        let loaded = load(&db, 100, 3, 0, 2).unwrap().unwrap();
        assert_eq!(loaded.entries, small);
        assert_eq!((loaded.deltas.len(), loaded.next_delta), (0, 0));
        assert_eq!(chunks, 2);
    }

    #[test]
    fn damaged_queue_records_are_named_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        assert_eq!(load(&db, 1, 1, 0, 0).unwrap(), None);
        db.insert(meta_key(), vec![1, 2]).unwrap();
        let e = load(&db, 1, 1, 0, 0).unwrap_err().to_string();
        assert!(e.contains("expiry queue meta"), "{e}");
        let mut batch = sled::Batch::default();
        write_checkpoint(&mut batch, entries(2).iter(), (1, 1, 0), []);
        db.apply_batch(batch).unwrap();
        db.insert(chunk_key(0), vec![1, 0xff]).unwrap();
        let e = load(&db, 1, 1, 0, 0).unwrap_err().to_string();
        assert!(e.contains("expiry queue chunk 0"), "{e}");
        db.remove(chunk_key(0)).unwrap();
        let e = load(&db, 1, 1, 0, 0).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        let mut batch = sled::Batch::default();
        write_checkpoint(&mut batch, entries(2).iter(), (1, 1, 0), []);
        batch.insert(&delta_key(9), vec![1, 0xff, 0xff]);
        db.apply_batch(batch).unwrap();
        let e = load(&db, 1, 1, 0, 0).unwrap_err().to_string();
        assert!(e.contains("expiry queue delta 9"), "{e}");
        db.remove(delta_key(9)).unwrap();
        db.insert(delta_key(u64::MAX), encode_delta(&[])).unwrap();
        let e = load(&db, 1, 1, 0, 0).unwrap_err().to_string();
        assert!(e.contains("not a delta key"), "{e}");
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(parse_delta_key(&delta_key(77)), Some(77));
        assert_eq!(parse_chunk_key(&chunk_key(3)), Some(3));
        assert_eq!(parse_delta_key(&chunk_key(3)), None);
        assert_eq!(parse_delta_key(b"Qd12"), None);
    }
}
