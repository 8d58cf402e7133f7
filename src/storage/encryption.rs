//! Opening an encrypted store: where its key comes from, the check that it is the right key,
//! the sweep of key slots no record uses, and the rotation of the key (see `docs/privacy.md`,
//! "Encryption at rest").
//!
//! The store records that it is encrypted under [`keys::META_CRYPT`]: a version byte (1) and
//! the key's 16-byte check value ([`StoreKey::check_value`]). A store without that key is a
//! plain store, opened as it was created whatever the configuration says.

use super::crypt::{Crypt, StoreKey, Token};
use super::{keys, Store};
use crate::config::{Config, Encryption};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The environment variable that may hold the store key (64 hex digits).
pub const KEY_ENV: &str = "PERSONA_KEY";

/// The key file a new store writes its generated key to, in the data directory, when neither
/// `key_file` nor [`KEY_ENV`] gives one.
pub const DEFAULT_KEY_FILE: &str = "store.key";

/// The key slot file in the data directory (`storage/crypt/`).
pub const SLOT_FILE: &str = "keys.slots";

/// Version byte of the [`keys::META_CRYPT`] record.
const CRYPT_META_VERSION: u8 = 1;

/// Where a store key was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// A key file (`key_file`, or the data directory's [`DEFAULT_KEY_FILE`]).
    File(PathBuf),
    /// The environment variable [`KEY_ENV`].
    Env,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "key file {}", p.display()),
            KeySource::Env => write!(f, "environment variable {KEY_ENV}"),
        }
    }
}

/// Where the key of the store at `dir` is read from under `config`: its `key_file`, else
/// [`KEY_ENV`], else the data directory's [`DEFAULT_KEY_FILE`].
fn find_key(config: &Config, dir: &Path) -> Result<Option<(StoreKey, KeySource)>> {
    if let Some(path) = &config.key_file {
        return Ok(Some((StoreKey::load(path)?, KeySource::File(path.clone()))));
    }
    if let Ok(text) = std::env::var(KEY_ENV) {
        let source = KeySource::Env;
        return Ok(Some((
            StoreKey::from_hex(&text, &source.to_string())?,
            source,
        )));
    }
    let path = dir.join(DEFAULT_KEY_FILE);
    if path.exists() {
        return Ok(Some((StoreKey::load(&path)?, KeySource::File(path))));
    }
    Ok(None)
}

/// The file a rotation writes the new key of the key file `path` to before it replaces it:
/// `path` with `.new` appended.
fn pending_key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".new");
    PathBuf::from(name)
}

/// The key a new store is created with: the configured one, or a new one written to
/// `key_file` (if it names a file that does not exist yet) or to [`DEFAULT_KEY_FILE`].
pub(super) fn new_key(config: &Config, dir: &Path) -> Result<StoreKey> {
    if let Some(path) = &config.key_file {
        if !path.exists() {
            let key = StoreKey::generate();
            key.write_new(path)?;
            tracing::info!("generated the store key in {}", path.display());
            return Ok(key);
        }
    }
    if let Some((key, _)) = find_key(config, dir)? {
        return Ok(key);
    }
    let path: PathBuf = dir.join(DEFAULT_KEY_FILE);
    let key = StoreKey::generate();
    key.write_new(&path)?;
    tracing::info!(
        "generated the store key in {} (keep a copy elsewhere: without it the store cannot be read)",
        path.display()
    );
    Ok(key)
}

impl Store {
    /// The crypto context of a store being created with [`Encryption::On`], and the value of
    /// its [`keys::META_CRYPT`] record (committed with the store's other metadata).
    pub(super) fn create_crypt(&self, config: &Config) -> Result<(Crypt, Vec<u8>)> {
        let key = new_key(config, &self.path)?;
        let crypt = Crypt::open(&self.path, &key)?;
        Ok((crypt, crypt_meta(&key)))
    }

    /// Opens the crypto context of an existing encrypted store: reads its key, checks it
    /// against the stored check value, opens the key slots and zeroes those no record uses. A
    /// plain store stays plain, whatever the configuration says.
    pub(super) fn open_crypt(&mut self, config: &Config, created: bool) -> Result<()> {
        if created {
            return Ok(());
        }
        self.crypt = existing_crypt(&self.db, config, &self.path, true)?;
        if self.crypt.is_some() {
            self.sweep_orphan_slots()?;
        } else if config.encryption == Encryption::On {
            tracing::info!(
                "the store at {} was created unencrypted and is opened so; \
                 `persona compact --encrypt` converts it",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Zeroes the key slots of customers who have no record: an erase whose slot was not zeroed
    /// before a crash, or keys made for a batch that never committed. Damaged slots are left.
    fn sweep_orphan_slots(&self) -> Result<()> {
        let Some(c) = &self.crypt else {
            return Ok(());
        };
        // One pass over the records' keys (sequential) rather than a lookup per key slot.
        let mut named: std::collections::HashSet<[u8; keys::TOKEN_BYTES]> =
            std::collections::HashSet::with_capacity(c.len());
        for item in self.db.scan_prefix([keys::PROFILE]) {
            let (k, _) = item?;
            if let Some(t) = k.get(1..).and_then(|t| t.try_into().ok()) {
                named.insert(t);
            }
        }
        // Damaged slots (they do not unwrap) are not swept: the token they name may be the
        // damaged part, and their bytes may still be repaired; an erase or a rotation zeroes
        // them.
        let orphans: Vec<Token> = c
            .tokens()
            .into_iter()
            .filter(|t| !named.contains(&t.0))
            .collect();
        if !orphans.is_empty() {
            tracing::info!(
                "zeroing {} key slot(s) whose customer has no record",
                orphans.len()
            );
            c.shred(&orphans)?;
        }
        Ok(())
    }
}

/// The crypto context of the store in `db` at `dir` if it is encrypted (`None` for a plain
/// store): its key found as `config` says, checked against the stored check value.
///
/// A rotation (`persona key rotate`) interrupted by a crash is finished here when `finish`:
/// if the key file does not open the store but the new key written beside it
/// (`<key file>.new`) does, the check value is updated and the new key file renamed over the
/// old one. Without `finish` (`persona check`, which writes nothing) the new key is used as
/// it is.
///
/// # Errors
/// [`Error::Key`] for a missing or wrong key; [`Error::Corruption`] for damaged metadata or
/// key slots.
pub(crate) fn existing_crypt(
    db: &sled::Db,
    config: &Config,
    dir: &Path,
    finish: bool,
) -> Result<Option<Crypt>> {
    let Some(check) = stored_check(db)? else {
        if dir.join(SLOT_FILE).exists() {
            // Opened as plain, it would write customers' data in clear next to sealed records.
            return Err(Error::Corruption {
                key: "metadata crypt".into(),
                detail: format!(
                    "missing, but the data directory holds key slots ({SLOT_FILE}): the store was \
                     encrypted; restore its metadata from a backup"
                ),
            });
        }
        return Ok(None);
    };
    if !dir.join(SLOT_FILE).exists() {
        // Opening creates a missing slot file, with a new token secret: only a new store may.
        return Err(Error::Corruption {
            key: "key slots".into(),
            detail: format!(
                "the store at {} is encrypted but its key slot file {SLOT_FILE} is missing; \
                 restore it from a backup of this directory (without it no customer's data can \
                 be read)",
                dir.display()
            ),
        });
    }
    let Some((key, source)) = find_key(config, dir)? else {
        return Err(Error::Key(format!(
            "the store at {} is encrypted and no key was given: set `key_file` in the \
             configuration, or the environment variable {KEY_ENV}, or put the key file back at \
             {}",
            dir.display(),
            dir.join(DEFAULT_KEY_FILE).display()
        )));
    };
    let wrong = || {
        Error::Key(format!(
            "the key from {source} does not open the store at {} (wrong key file? if a \
             `persona key rotate` was cut short, use the new key it wrote)",
            dir.display()
        ))
    };
    let open = |key: &StoreKey| {
        if finish {
            Crypt::open(dir, key)
        } else {
            Crypt::open_read_only(dir, key)
        }
    };
    let failed = match open(&key) {
        Ok(c) => {
            if key.check_value() != check && finish {
                // A rotation cut short after the slots were re-wrapped under this key and
                // before its check value was recorded: the slots are the authority.
                record_check(db, dir, &key)?;
                tracing::warn!("finished an interrupted key rotation (the check value)");
            }
            return Ok(Some(c));
        }
        Err(Error::Key(_)) => wrong(),
        Err(e) if key.check_value() == check => return Err(e),
        // A damaged slot file read with a key that is not this store's: say the key is wrong.
        Err(_) => wrong(),
    };
    // An interrupted rotation: the new key beside the key file.
    let KeySource::File(path) = &source else {
        return Err(failed);
    };
    let pending = pending_key_path(path);
    if !pending.exists() {
        return Err(failed);
    }
    let new = StoreKey::load(&pending)?;
    let Ok(crypt) = open(&new) else {
        return Err(failed);
    };
    if finish {
        record_check(db, dir, &new)?;
        std::fs::rename(&pending, path)?;
        sync_parent(path)?;
        tracing::warn!(
            "finished an interrupted key rotation: {} now holds the new store key",
            path.display()
        );
    }
    Ok(Some(crypt))
}

/// The check value stored in an encrypted store's [`keys::META_CRYPT`] record (`None`: a plain
/// store).
fn stored_check(db: &sled::Db) -> Result<Option<[u8; 16]>> {
    let Some(meta) = db.get(keys::META_CRYPT)? else {
        return Ok(None);
    };
    match meta.split_first() {
        Some((&CRYPT_META_VERSION, check)) => {
            Ok(Some(check.try_into().map_err(|_| Error::Corruption {
                key: "metadata crypt".into(),
                detail: format!("{} bytes; expected 17", meta.len()),
            })?))
        }
        Some((&found, _)) => Err(Error::UnsupportedVersion {
            key: "metadata crypt".into(),
            found,
            supported: CRYPT_META_VERSION,
        }),
        None => Err(Error::Corruption {
            key: "metadata crypt".into(),
            detail: "empty".into(),
        }),
    }
}

/// The [`keys::META_CRYPT`] record of a store whose key is `key`.
pub(super) fn crypt_meta(key: &StoreKey) -> Vec<u8> {
    let mut meta = vec![CRYPT_META_VERSION];
    meta.extend_from_slice(&key.check_value());
    meta
}

/// Records `key`'s check value in the store at `dir`, durably.
fn record_check(db: &sled::Db, dir: &Path, key: &StoreKey) -> Result<()> {
    db.insert(keys::META_CRYPT, crypt_meta(key))?;
    db.flush()?;
    std::fs::File::open(dir.join(super::LOG_FILE))?.sync_data()?;
    Ok(())
}

/// Fsyncs the directory holding `path` (the current directory for a bare file name).
fn sync_parent(path: &Path) -> Result<()> {
    Ok(super::crypt::sync_dir(
        path.parent().unwrap_or(Path::new("")),
    )?)
}

/// What `persona key rotate` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rotation {
    /// Customers whose data key was re-wrapped.
    pub data_keys: usize,
    /// Where the new store key is.
    pub key_file: PathBuf,
}

/// Rotates the store key of the closed encrypted store `config` names: every data key is
/// re-wrapped under a new key, which is written to `new_key_file` (which must not exist) or,
/// when the current key comes from a key file and none is given, replaces that file (written
/// beside it first, as `<key file>.new`, and renamed over it once the store is rotated). Tokens
/// and data keys do not change; the old key no longer opens the store.
///
/// # Errors
/// [`Error::Key`] for a plain store, a missing or wrong current key, a current key from the
/// environment without `new_key_file`, or a `new_key_file` that exists; what opening the store
/// returns; [`Error::Io`] if a file cannot be written.
pub fn rotate_key(config: &Config, new_key_file: Option<&Path>) -> Result<Rotation> {
    let store = Store::open(config)?;
    let Some(crypt) = store.crypt() else {
        return Err(Error::Key(format!(
            "the store at {} is not encrypted: there is no key to rotate \
             (`persona compact --encrypt` encrypts it)",
            config.path.display()
        )));
    };
    let source = find_key(config, &config.path)?.map(|(_, s)| s);
    let (target, replaces) = match (new_key_file, source) {
        (Some(p), _) => (p.to_path_buf(), None),
        (None, Some(KeySource::File(p))) => (pending_key_path(&p), Some(p)),
        (None, _) => {
            return Err(Error::Key(format!(
                "the store key comes from the environment variable {KEY_ENV}: say where to \
                 write the new one with --new-key-file"
            )))
        }
    };
    if target.exists() {
        return Err(Error::Key(format!(
            "{} already exists; refusing to overwrite it (remove it if it is left from an \
             earlier rotation that did not finish, or choose another file)",
            target.display()
        )));
    }
    let new = StoreKey::generate();
    new.write_new(&target)?;
    crypt.rotate(&new)?;
    record_check(&store.db, &store.path, &new)?;
    let key_file = match replaces {
        Some(old) => {
            std::fs::rename(&target, &old)?;
            sync_parent(&old)?;
            old
        }
        None => target,
    };
    let data_keys = crypt.len();
    store.close()?;
    Ok(Rotation {
        data_keys,
        key_file,
    })
}
