//! Offline compaction (`persona compact`): rewrite a closed store into a fresh sled database
//! holding one copy of every live key, then swap the two directories atomically.
//!
//! sled's log keeps superseded versions of rewritten records in its segments until its own
//! cleaner reclaims them, and it offers no setting to make that more eager, so a store whose
//! profiles are rewritten often ends up several times its logical size on disk (see
//! docs/bench-history.md). Copying the live keys into a new database drops all of that.
//!
//! Safety: the copy is built next to the store (`<dir>.compact-tmp`), flushed, fsynced and
//! verified (same keys and values per tree: key count and sled's CRC32 checksum) before the two
//! directories are exchanged with one `renameat2(RENAME_EXCHANGE)`. A crash at any moment
//! leaves the data directory holding either the old store or the complete new one; a leftover
//! `…compact-tmp` (a crash before the exchange, or the old store after it) is removed by the next
//! compaction. The store must be closed: sled's file lock makes a compaction of a store that a
//! process has open fail instead of copying a moving target.

use super::{
    create_private_dir, open_sled, stored_compression, wait_unlocked, FALLBACK_COMPRESSION_LEVEL,
};
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Keys copied per sled batch.
const COPY_BATCH: usize = 4096;

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompactReport {
    /// The store's directory.
    pub path: PathBuf,
    /// Bytes of the files in the store's directory before.
    pub bytes_before: u64,
    /// Bytes of the files in the store's directory after.
    pub bytes_after: u64,
    /// Keys copied (all trees).
    pub keys: u64,
    /// Bytes of keys and values copied.
    pub logical_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// How a compaction compresses the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyCompression {
    /// As the store is: a compressed store at this zstd level (sled records only *whether* a
    /// store is compressed, not the level, so the caller passes its configured
    /// [`crate::Config::compression_level`]; 0 falls back to level 1), an uncompressed one
    /// uncompressed.
    AsStored(u8),
    /// At this zstd level, 0 meaning uncompressed: how a store changes compression.
    Level(u8),
}

/// The sibling directory a compaction of `path` builds the copy in.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(".compact-tmp");
    path.with_file_name(name)
}

/// Compacts the closed store at `path` (see the module documentation). `cache_capacity_mb`
/// sizes sled's cache for both databases during the copy. `compression` says how the copy is
/// compressed (see [`CopyCompression`] and [`crate::Config::compression_level`]).
///
/// # Errors
/// [`Error::Config`] if `path` holds no store; [`Error::Storage`] if sled fails (including when
/// another process has the store open); [`Error::Io`] if the copy cannot be written, synced or
/// swapped in (the store is then unchanged); [`Error::Corruption`] if the copy does not verify
/// (the store is unchanged and the copy removed).
pub fn compact(
    path: &Path,
    cache_capacity_mb: u64,
    compression: CopyCompression,
) -> Result<CompactReport> {
    compact_with(path, cache_capacity_mb, compression, None)
}

/// [`compact`] of a plain store into an encrypted one (`persona compact --encrypt`): the copy
/// names customers by token and seals every value that names one, as a store created with
/// [`crate::Encryption::On`] does (see `docs/privacy.md`). Its key is found, or generated, as
/// for a new store under `config` (its `key_file`, `PERSONA_KEY`, or a new `store.key` in
/// the data directory); the copy's key slots are made next to it, and its expiry-queue keys
/// are left out (an encrypted store derives the queue at open). The copy is verified by
/// counting its keys and opening every sealed value, then swapped in as by [`compact`].
///
/// # Errors
/// As [`compact`]; [`Error::Config`] if the store is encrypted already; [`Error::Key`] for a
/// key that cannot be read or written.
pub fn encrypt(
    path: &Path,
    cache_capacity_mb: u64,
    compression: CopyCompression,
    config: &crate::Config,
) -> Result<CompactReport> {
    compact_with(path, cache_capacity_mb, compression, Some(config))
}

fn compact_with(
    path: &Path,
    cache_capacity_mb: u64,
    compression: CopyCompression,
    encrypt: Option<&crate::Config>,
) -> Result<CompactReport> {
    let start = Instant::now();
    if !path.join("conf").is_file() {
        return Err(Error::Config(format!(
            "{} holds no store (no sled `conf` file)",
            path.display()
        )));
    }
    let tmp = temp_path(path);
    let bytes_before = dir_size(path)?;
    let (keys, logical_bytes) = {
        // Holding the store's lock from here on also keeps a second compaction out of `tmp`.
        let old = open_sled(path, cache_capacity_mb, None)?;
        if tmp.exists() {
            // A previous compaction stopped before its exchange (a partial copy) or after it
            // (the old store): either way nothing in it is needed.
            std::fs::remove_dir_all(&tmp)?;
        }
        create_private_dir(&tmp)?;
        let level = match compression {
            CopyCompression::Level(level) => level,
            CopyCompression::AsStored(level) => match stored_compression(path) {
                Some(true) if level > 0 => level,
                Some(true) => FALLBACK_COMPRESSION_LEVEL,
                _ => 0,
            },
        };
        if encrypt.is_some() && old.contains_key(super::keys::META_CRYPT)? {
            return Err(Error::Config(format!(
                "the store at {} is encrypted already",
                path.display()
            )));
        }
        let new = open_sled(&tmp, cache_capacity_mb, Some(level))?;
        let copied = match encrypt {
            None => copy_all(&old, &new).and_then(|c| {
                new.flush()?;
                copy_other_files(path, &tmp)?;
                sync_dir_files(&tmp)?;
                verify(&old, &new)?;
                Ok(c)
            }),
            Some(config) => encrypt_all(&old, &new, config, &tmp).and_then(|c| {
                new.flush()?;
                sync_dir_files(&tmp)?;
                Ok(c)
            }),
        };
        match copied {
            Ok(c) => c,
            Err(e) => {
                drop(new);
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        }
    };
    // Both databases are closed; sled releases their locks from background threads, so wait
    // for them before the exchange (a reopen right after must find the new store free).
    wait_unlocked(&tmp)?;
    wait_unlocked(path)?;
    exchange(&tmp, path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    std::fs::remove_dir_all(&tmp)?;
    let bytes_after = dir_size(path)?;
    Ok(CompactReport {
        path: path.to_path_buf(),
        bytes_before,
        bytes_after,
        keys,
        logical_bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Copies every file of the data directory that is not sled's (`conf`, `db`, `snap.*`,
/// `blobs/`) next to the copy, with its permissions: an encrypted store's key slots (the
/// copied values are sealed with the data keys in them, under the same keys, so they open as
/// before), its key file and a rotation's new key when they are kept there, an import's lists
/// of rejects and duplicates.
fn copy_other_files(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let sled_file =
            name == "conf" || name == "db" || name.to_string_lossy().starts_with("snap.");
        if !entry.file_type()?.is_file() || sled_file || to.join(&name).exists() {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name))?;
    }
    Ok(())
}

/// Copies a plain store into an encrypted one at `dir` (see [`encrypt`]); returns (keys,
/// bytes) copied.
fn encrypt_all(
    old: &sled::Db,
    new: &sled::Db,
    config: &crate::Config,
    dir: &Path,
) -> Result<(u64, u64)> {
    use super::encryption::{crypt_meta, new_key};
    if old.tree_names().len() > 1 {
        return Err(Error::Config(
            "the store has sled trees other than the default one; Persona keeps none".into(),
        ));
    }
    let key = new_key(config, dir)?;
    let crypt = super::crypt::Crypt::open(dir, &key)?;
    let (mut keys, mut bytes, mut left_out) = (0u64, 0u64, 0u64);
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    // The model records name holders of names by a hash of their id: they become tokens once
    // every customer is known (`model/names.rs`).
    let mut holders = std::collections::HashMap::new();
    let mut models = Vec::new();
    for item in old.iter() {
        let (k, v) = item?;
        if k.first() == Some(&super::keys::PROFILE) {
            if let Some((id, _)) = super::sealed::plain_id(&k) {
                holders.insert(super::models::plain_holder(id), crypt.token(id).0);
            }
        }
        if k.first() == Some(&super::keys::SNAPSHOT) || &*k == super::keys::MODEL {
            models.push((k, v));
            continue;
        }
        match sealed_pair(&crypt, &k, &v)? {
            Some((k, v)) => {
                keys += 1;
                bytes += (k.len() + v.len()) as u64;
                batch.insert(k, v);
                in_batch += 1;
            }
            None => left_out += 1,
        }
        if in_batch == COPY_BATCH {
            crypt.persist_new()?;
            new.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    for (k, v) in models {
        let name = super::check::printable(&k);
        let mut state = super::models::decode_model_with(None, &name, &v)?;
        state.map_holders(|h| holders.get(h).copied());
        let value = super::models::encode_model_with(Some(&crypt), &mut state)?;
        keys += 1;
        bytes += (k.len() + value.len()) as u64;
        batch.insert(k, value);
    }
    batch.insert(super::keys::META_CRYPT, crypt_meta(&key));
    crypt.persist_new()?;
    new.apply_batch(batch)?;
    // Verify: every key there (but the queue's, and with the new metadata key), and every
    // sealed value opens to its customer.
    let wanted = old.len() as u64 - left_out + 1;
    if new.len() as u64 != wanted {
        return Err(Error::Corruption {
            key: "encrypted copy".into(),
            detail: format!("{} keys; expected {wanted}", new.len()),
        });
    }
    for item in new.iter() {
        let (k, v) = item?;
        if k.first()
            .copied()
            .and_then(super::keys::token_offset)
            .is_some()
            && super::sealed::unseal_with(Some(&crypt), &k, v)?.is_none()
        {
            return Err(Error::Corruption {
                key: "encrypted copy".into(),
                detail: format!("{} has no data key", super::sealed::hex_key(&k)),
            });
        }
    }
    Ok((keys, bytes))
}

/// The key and value an encrypted store keeps for a plain store's `k` and `v`; `None` for the
/// expiry queue's keys, which an encrypted store does not keep.
fn sealed_pair(
    crypt: &super::crypt::Crypt,
    k: &[u8],
    v: &[u8],
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    use super::keys;
    let prefix = k.first().copied().unwrap_or(0);
    let bad = |detail: &str| Error::Corruption {
        key: super::check::printable(k),
        detail: detail.into(),
    };
    match prefix {
        // Derived data the encrypted store does not keep, and the legacy key spaces that name
        // customers in clear (removed at the next open anyway).
        keys::QUEUE | keys::MEMBER | keys::LEGACY_REFIT | keys::COHORT => return Ok(None),
        keys::TRIGGER => {
            let chunk = super::triggers::decode_chunk_with(None, k, v)?;
            let firings: Vec<&crate::triggers::Fired> = chunk.firings.iter().collect();
            let value = super::triggers::encode_chunk_with(Some(crypt), chunk.next_id, &firings)?;
            return Ok(Some((k.to_vec(), value)));
        }
        _ => {}
    }
    let Some(at) = keys::token_offset(prefix) else {
        return Ok(Some((k.to_vec(), v.to_vec())));
    };
    let (id, tail) = super::sealed::plain_id(k)
        .ok_or_else(|| bad("the key names no customer (too short, or an empty or non-UTF-8 id)"))?;
    if prefix == keys::FEEDBACK && tail.is_empty() {
        return Err(bad("feedback key without the 0 after the id"));
    }
    let mut key = k[..at].to_vec();
    key.extend_from_slice(&crypt.token(id).0);
    key.extend_from_slice(tail);
    let value = super::sealed::seal_with(crypt, id, &key, v)?;
    Ok(Some((key, value)))
}

/// Copies every tree's keys and values; returns (keys, bytes).
fn copy_all(old: &sled::Db, new: &sled::Db) -> Result<(u64, u64)> {
    let (mut keys, mut bytes) = (0u64, 0u64);
    for name in old.tree_names() {
        let from = old.open_tree(&name)?;
        let to = new.open_tree(&name)?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for item in from.iter() {
            let (k, v) = item?;
            keys += 1;
            bytes += (k.len() + v.len()) as u64;
            batch.insert(k, v);
            in_batch += 1;
            if in_batch == COPY_BATCH {
                to.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        to.apply_batch(batch)?;
    }
    Ok((keys, bytes))
}

/// Same trees, each with the same number of keys and the same checksum.
fn verify(old: &sled::Db, new: &sled::Db) -> Result<()> {
    let mut names = old.tree_names();
    let mut new_names = new.tree_names();
    names.sort();
    new_names.sort();
    if names != new_names {
        return Err(Error::Corruption {
            key: "compacted copy".into(),
            detail: format!("has {} trees, the store {}", new_names.len(), names.len()),
        });
    }
    for name in names {
        let (a, b) = (old.open_tree(&name)?, new.open_tree(&name)?);
        let (na, nb) = (a.len(), b.len());
        let (ca, cb) = (a.checksum()?, b.checksum()?);
        if na != nb || ca != cb {
            return Err(Error::Corruption {
                key: format!(
                    "compacted copy of tree {:?}",
                    String::from_utf8_lossy(&name)
                ),
                detail: format!(
                    "{nb} keys with checksum {cb:#010x}; the store has {na} with {ca:#010x}"
                ),
            });
        }
    }
    Ok(())
}

/// fsyncs every regular file directly in `dir`, then `dir` itself.
fn sync_dir_files(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Bytes of every file under `dir`.
fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Atomically exchanges the directories `a` and `b`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).map_err(|e| {
        Error::Io(std::io::Error::other(format!(
            "cannot exchange {} and {} atomically ({e}); the store is unchanged and the \
             compacted copy was left at {}",
            a.display(),
            b.display(),
            a.display()
        )))
    })
}

/// Without an atomic exchange a crash could leave no store at the data path: refuse.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(a: &Path, _b: &Path) -> Result<()> {
    Err(Error::Io(std::io::Error::other(format!(
        "compaction needs an atomic directory exchange (Linux renameat2); the compacted copy \
         was left at {}",
        a.display()
    ))))
}
