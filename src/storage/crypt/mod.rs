//! Crypto-shredding: per-customer data keys kept in a slot file.
//!
//! Every stored value of a customer is sealed with AES-256-GCM under that
//! customer's random 32-byte *data key*. Data keys live only in memory and,
//! wrapped, in `keys.slots`, a file of fixed-size slots overwritten in place
//! and fsynced. Erasing a customer zeroes their slot, which makes every copy
//! of their ciphertext still present in sled's log unreadable at once.
//! Sled keys name customers by a [`Token`] (keyed hash of the id), never by
//! the id itself.
//!
//! # Keys
//!
//! * store key: 32 bytes held by the operator ([`StoreKey`]).
//! * wrap key = HMAC-SHA256(store key, `b"persona/wrap/v1"`): wraps the
//!   token secret and the data keys in the slot file.
//! * token secret = HMAC-SHA256(store key, `b"persona/token/v1"`) of the key
//!   the slot file was created with, kept wrapped in its header; token =
//!   HMAC-SHA256(token secret, id)[..16]. Rotating the store key re-wraps the
//!   secret, so tokens never change; two stores created with the same key
//!   name (and so order) their customers alike.
//! * check value = HMAC-SHA256(store key, `b"persona/check/v1"`)[..16].
//!
//! # Slot file `keys.slots` (format 1, integers little-endian)
//!
//! Header, 128 bytes:
//!
//! | offset | len | contents                                            |
//! |-------:|----:|-----------------------------------------------------|
//! |      0 |  16 | magic `b"PERSONA-KEYSLOT1"`                         |
//! |     16 |   4 | format, u32 = 1                                     |
//! |     20 |   4 | slot size, u32 = 128                                |
//! |     24 |  12 | nonce                                               |
//! |     36 |  48 | AES-256-GCM(wrap key, nonce, token secret (32 bytes), aad = magic): ciphertext 32 ‖ tag 16 |
//! |     84 |  44 | zero                                                |
//!
//! Slot `i` (u32), 128 bytes at offset 128 + 128·i (no slot straddles a
//! 512-byte sector):
//!
//! | offset | len | contents                                            |
//! |-------:|----:|-----------------------------------------------------|
//! |      0 |   1 | 1 = used, 0 = free                                  |
//! |      1 |  16 | token                                               |
//! |     17 |  12 | nonce                                               |
//! |     29 |  48 | AES-256-GCM(wrap key, nonce, data key (32 bytes), aad = token ‖ i as u32 LE): ciphertext 32 ‖ tag 16 |
//! |     77 |  51 | zero                                                |
//!
//! A free slot is 128 zero bytes. At open, a free slot with other non-zero
//! bytes that do not unwrap (an interrupted shred) is counted, re-zeroed and
//! reused; one whose bytes unwrap (its flag byte lost its bit) is kept as
//! used, unless a flagged slot holds the same token (then it is an old key,
//! zeroed); a used slot (flag 1) that does not unwrap is damaged: kept as
//! it is and listed ([`Crypt::damaged`]), neither free nor a key, so that
//! the store still opens and only that customer's records read as corrupt;
//! an erase of the token it names and a rotation zero it (the open's sweep
//! of orphan slots leaves it: its token bytes may be the damaged part). A flag byte other than 0 or 1 is corruption. `open_read_only`
//! (`persona check`) zeroes nothing. The file length must be 128 + 128·n.
//! Free slots are reused lowest index first; otherwise slots are appended.
//! The file is created (mode 0600) as `keys.slots.new`, fsynced, renamed into
//! place and the directory fsynced; `rotate` writes the whole file the same
//! way. A leftover `keys.slots.new` is deleted at open.
//!
//! # Sealed values
//!
//! `0xE1` ‖ nonce (12, random) ‖ AES-256-GCM(data key, nonce, value,
//! aad = caller's aad, normally the sled key): ciphertext ‖ tag (16).
//!
//! # Concurrency
//!
//! [`Crypt`] is `Send + Sync`. The key map sits behind a `RwLock`: `token`,
//! `open_sealed`, `has_key` and `seal` for a customer who has a key only take
//! it shared, briefly, to copy a 32-byte key. File work (`persist_new`,
//! `shred`, `rotate`) is serialised by a separate mutex and does its I/O and
//! fsync without holding the map lock.

mod slots;
pub(crate) use slots::{hex, sync_dir};

use std::collections::HashSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Nonce, Tag};
use hmac::{Hmac, Mac};
use parking_lot::{Mutex, RwLock};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

use self::slots::{hmac, parse_hex, wipe, Secret, SlotFile};
use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;
/// Token → key. foldhash: tokens are keyed hashes already, and at a million customers the
/// lookup's own hashing showed in the profile of an open.
type KeyMap = std::collections::HashMap<Token, Entry, foldhash::fast::RandomState>;

/// `Entry::slot` of a key that has no slot assigned yet.
const NO_SLOT: u32 = u32::MAX;
/// First byte of a sealed value (format 1).
const SEALED_MARK: u8 = 0xE1;
/// Mark, nonce and tag.
const SEALED_OVERHEAD: usize = 1 + 12 + 16;
const WRAP_LABEL: &[u8] = b"persona/wrap/v1";
const CHECK_LABEL: &[u8] = b"persona/check/v1";
const TOKEN_LABEL: &[u8] = b"persona/token/v1";

/// A 32-byte store key. Its `Debug` output never shows the bytes, and the
/// bytes are wiped on drop.
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// A fresh random key from the operating system's generator.
    ///
    /// # Panics
    ///
    /// If the operating system's random generator fails.
    #[must_use]
    pub fn generate() -> StoreKey {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        StoreKey(key)
    }

    /// Parses a key given as exactly 64 hex digits (surrounding whitespace is
    /// ignored). `source` names where the text came from, e.g.
    /// `"environment variable PERSONA_KEY"`.
    ///
    /// # Errors
    ///
    /// `Error::Key` naming `source` and what is allowed; the text itself is
    /// never echoed.
    pub fn from_hex(text: &str, source: &str) -> Result<StoreKey> {
        let text = text.trim();
        parse_hex(text.as_bytes()).map(StoreKey).ok_or_else(|| {
            let problem = if text.len() != 64 {
                format!("it has {} characters", text.chars().count())
            } else {
                "it contains a character that is not a hex digit".to_string()
            };
            Error::Key(format!(
                "{source} must be exactly 64 hex digits (0-9, a-f, A-F) encoding \
                 32 bytes, optionally surrounded by whitespace; {problem}"
            ))
        })
    }

    /// The key as 64 lower-case hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        slots::hex(&self.0)
    }

    /// Reads a key file holding 64 hex digits and an optional trailing
    /// newline.
    ///
    /// # Errors
    ///
    /// `Error::Key` naming the path if the file is missing, not a regular
    /// file, readable or writable by group or others, unreadable or
    /// malformed.
    pub fn load(path: &Path) -> Result<StoreKey> {
        let mut text = slots::read_key_file(path)?;
        let mut body: &[u8] = &text;
        if let Some(rest) = body.strip_suffix(b"\n") {
            body = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        let key = parse_hex(body).map(StoreKey);
        wipe(&mut text);
        key.ok_or_else(|| {
            Error::Key(format!(
                "key file {} is malformed: it must hold exactly 64 hex digits \
                 (0-9, a-f, A-F) and an optional trailing newline",
                path.display()
            ))
        })
    }

    /// Writes the key to a new file with mode 0600 (never overwriting an
    /// existing file) and fsyncs the file and its directory.
    ///
    /// # Errors
    ///
    /// `Error::Key` if `path` already exists; `Error::Io` if it cannot be
    /// created, written or synced (a partial file is removed).
    pub fn write_new(&self, path: &Path) -> Result<()> {
        let mut text = self.to_hex().into_bytes();
        text.push(b'\n');
        let written = slots::write_key_file(path, &text);
        wipe(&mut text);
        written
    }

    /// The 16-byte check value kept in the store's metadata to detect a
    /// wrong key: HMAC-SHA256(key, `b"persona/check/v1"`)[..16].
    #[must_use]
    pub fn check_value(&self) -> [u8; 16] {
        let mac = hmac(&self.0, CHECK_LABEL);
        let mut check = [0u8; 16];
        check.copy_from_slice(&mac[..16]);
        check
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

impl Drop for StoreKey {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// A customer's token: HMAC-SHA256(token secret, customer id)[..16]. Used in
/// sled keys instead of the id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Token(pub [u8; 16]);

/// One data key in memory.
struct Entry {
    key: [u8; 32],
    /// Its slot, or `NO_SLOT` while pending and not yet assigned one.
    slot: u32,
}

/// The key map, behind the `RwLock`.
struct State {
    keys: KeyMap,
    /// Keys not yet durable, oldest first. Only `seal` appends; only
    /// `persist_new` and `shred` (under the file mutex) remove.
    pending: Vec<Token>,
}

impl Drop for State {
    fn drop(&mut self) {
        for entry in self.keys.values_mut() {
            wipe(&mut entry.key);
        }
    }
}

/// The crypto context of an open store: token key, wrap key and the key
/// slots. `Send + Sync`; see the module documentation for locking.
pub struct Crypt {
    dir: PathBuf,
    /// HMAC state keyed with the token secret, cloned per `token` call.
    token_mac: HmacSha256,
    state: RwLock<State>,
    file: Mutex<SlotFile>,
    #[cfg(test)]
    stale_free: usize,
}

impl fmt::Debug for Crypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypt")
            .field("dir", &self.dir)
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

impl Crypt {
    /// Opens the slot file `dir/keys.slots`, creating it (with the token
    /// secret derived from `key`) if missing, and loads every data key. Zeroes again any free
    /// slot that still holds stray bytes.
    ///
    /// Creating a new file means new tokens: call this for an existing store
    /// only when its slot file is known to exist.
    ///
    /// # Errors
    ///
    /// * `Error::Key` if `key` does not unwrap the header (wrong key).
    /// * `Error::Corruption` (key `"key slots"`) for a file that is not the
    ///   header plus whole slots (truncated), has a bad magic, format or slot
    ///   size, a bad flag byte, or the same token in two slots. A used slot
    ///   that does not unwrap is kept and listed ([`Crypt::damaged`]), not
    ///   refused: only its customer's records become unreadable.
    /// * `Error::Io` if the file cannot be read, created or written.
    pub fn open(dir: &Path, key: &StoreKey) -> Result<Crypt> {
        Crypt::open_with(dir, key, true)
    }

    /// [`Crypt::open`] for a reader that must change nothing (`persona check`): the slot file
    /// must exist, is opened read-only, and is not repaired (no leftover file removed, no
    /// stray free slot zeroed). The result cannot persist or shred keys.
    ///
    /// # Errors
    ///
    /// As [`Crypt::open`]; `Error::Io` for a missing slot file.
    pub fn open_read_only(dir: &Path, key: &StoreKey) -> Result<Crypt> {
        Crypt::open_with(dir, key, false)
    }

    fn open_with(dir: &Path, key: &StoreKey, writable: bool) -> Result<Crypt> {
        let wrap_key = Secret(hmac(&key.0, WRAP_LABEL));
        let wrap = slots::cipher(&wrap_key.0);
        if writable {
            slots::remove_if_exists(&dir.join(slots::NEW_FILE))?;
        }
        let path = dir.join(slots::SLOT_FILE);
        let file = match OpenOptions::new().read(true).write(writable).open(&path) {
            Ok(file) => file,
            Err(e) if writable && e.kind() == io::ErrorKind::NotFound => {
                slots::create(dir, &wrap, Secret(hmac(&key.0, TOKEN_LABEL)))?
            }
            Err(e) => return Err(e.into()),
        };
        let loaded = slots::load(&file, &wrap)?;
        if !loaded.stale.is_empty() && writable {
            tracing::info!(
                "zeroing again {} free key slot(s) left with stray bytes (an interrupted erase)",
                loaded.stale.len()
            );
            let zeros = loaded.stale.iter().map(|&i| (i, [0u8; slots::SLOT_LEN]));
            slots::write_slots(&file, zeros)?;
            file.sync_data()?;
        }
        let token_mac =
            HmacSha256::new_from_slice(&loaded.secret.0).expect("HMAC accepts keys of any length");
        Ok(Crypt {
            dir: dir.to_path_buf(),
            token_mac,
            state: RwLock::new(State {
                keys: loaded.keys,
                pending: Vec::new(),
            }),
            file: Mutex::new(SlotFile {
                file,
                wrap_key,
                token_secret: loaded.secret,
                free: loaded.free,
                slot_count: loaded.slot_count,
                damaged: loaded.damaged,
            }),
            #[cfg(test)]
            stale_free: loaded.stale.len(),
        })
    }

    /// The token naming `customer_id` in this store (stable across reopen
    /// and [`rotate`](Crypt::rotate)).
    #[must_use]
    pub fn token(&self, customer_id: &str) -> Token {
        let mut mac = self.token_mac.clone();
        mac.update(customer_id.as_bytes());
        let mut token = Token([0u8; 16]);
        token.0.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        token
    }

    /// A copy of `token`'s data key, if it has one.
    fn key_of(&self, token: Token) -> Option<Secret> {
        self.state.read().keys.get(&token).map(|e| Secret(e.key))
    }

    /// `token`'s data key, creating a pending one if it has none.
    fn key_for_seal(&self, token: Token) -> Result<Secret> {
        if let Some(key) = self.key_of(token) {
            return Ok(key);
        }
        let fresh = Secret::random()?;
        let mut state = self.state.write();
        let State { keys, pending } = &mut *state;
        let entry = keys.entry(token).or_insert_with(|| {
            pending.push(token);
            Entry {
                key: fresh.0,
                slot: NO_SLOT,
            }
        });
        Ok(Secret(entry.key))
    }

    /// Encrypts `plaintext` for `token` under the customer's data key,
    /// creating the key if the customer has none (it stays pending, in
    /// memory only, until [`persist_new`](Crypt::persist_new)). `aad` (the
    /// sled key) is bound to the ciphertext. Appends `0xE1` ‖ nonce (12) ‖
    /// ciphertext ‖ tag (16) to `out`.
    ///
    /// # Errors
    ///
    /// `Error::Io` if the operating system's random generator fails while
    /// creating a key, or if `plaintext` exceeds AES-GCM's limit (64 GiB);
    /// `out` is then left as it was.
    pub fn seal(
        &self,
        token: Token,
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let key = self.key_for_seal(token)?;
        let nonce = slots::random_nonce();
        let start = out.len();
        out.reserve(plaintext.len() + SEALED_OVERHEAD);
        out.push(SEALED_MARK);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let sealed = slots::cipher(&key.0).encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            aad,
            &mut out[start + 13..],
        );
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(Error::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "value too large to encrypt",
                )))
            }
        }
    }

    /// Decrypts a value made by [`seal`](Crypt::seal) with the same `aad`.
    /// `Ok(None)` if `token` has no data key (shredded: unreadable by
    /// design). `what` names the record in errors and is only called then.
    ///
    /// # Errors
    ///
    /// `Error::Corruption` (key = `what()`) if the value is malformed (this
    /// is checked before the key lookup) or fails authentication.
    pub fn open_sealed(
        &self,
        token: Token,
        aad: &[u8],
        sealed: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<Option<Vec<u8>>> {
        if sealed.len() < SEALED_OVERHEAD || sealed[0] != SEALED_MARK {
            return Err(Error::Corruption {
                key: what(),
                detail: format!(
                    "sealed value is malformed ({} bytes; expected at least \
                     {SEALED_OVERHEAD} starting with 0xE1)",
                    sealed.len()
                ),
            });
        }
        let Some(key) = self.key_of(token) else {
            return Ok(None);
        };
        let (body, tag) = sealed.split_at(sealed.len() - 16);
        let mut plain = body[13..].to_vec();
        slots::cipher(&key.0)
            .decrypt_in_place_detached(
                Nonce::from_slice(&body[1..13]),
                aad,
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| Error::Corruption {
                key: what(),
                detail: "sealed value fails authentication (damaged, or sealed \
                         for another record or key)"
                    .into(),
            })?;
        Ok(Some(plain))
    }

    /// Whether `token` has a data key (persisted or pending).
    #[cfg(test)]
    pub fn has_key(&self, token: Token) -> bool {
        self.state.read().keys.contains_key(&token)
    }

    /// Writes every pending key to a slot (positional writes, adjacent slots
    /// coalesced) and fsyncs the file once; nothing pending → no I/O. The
    /// writer must call this before committing the sled batch whose values
    /// were sealed with new keys. Returns how many slots were written.
    ///
    /// # Errors
    ///
    /// `Error::Io` if a write or the fsync fails. The keys then stay pending
    /// (keeping the slots chosen for them) and a later call retries; the
    /// batch must not be committed.
    pub fn persist_new(&self) -> Result<usize> {
        let mut file = self.file.lock();
        self.persist_locked(&mut file)
    }

    fn persist_locked(&self, file: &mut SlotFile) -> Result<usize> {
        let mut plan: Vec<(u32, Token, Secret)> = {
            let mut state = self.state.write();
            let State { keys, pending } = &mut *state;
            let mut plan = Vec::with_capacity(pending.len());
            for token in pending.iter() {
                let entry = keys
                    .get_mut(token)
                    .expect("every pending token has a key in the map");
                if entry.slot == NO_SLOT {
                    entry.slot = file.allocate()?;
                }
                plan.push((entry.slot, *token, Secret(entry.key)));
            }
            plan
        };
        if plan.is_empty() {
            return Ok(0);
        }
        plan.sort_unstable_by_key(|p| p.0);
        let wrap = slots::cipher(&file.wrap_key.0);
        let encoded = plan
            .iter()
            .map(|(slot, token, key)| (*slot, slots::encode_slot(&wrap, *slot, token, &key.0)));
        slots::write_slots(&file.file, encoded)?;
        file.file.sync_data()?;
        // `pending` began with exactly the planned tokens: `seal` only
        // appends, and removal needs the file mutex, which we hold.
        self.state.write().pending.drain(..plan.len());
        Ok(plan.len())
    }

    /// Crypto-shreds: overwrites each token's slot with zeros, fsyncs once,
    /// then forgets the keys (a pending key that never had a slot is just
    /// dropped). Freed slots are reused by later new keys. Returns how many
    /// of the (distinct) tokens had a key. Do not seal for a customer while
    /// shredding them.
    ///
    /// # Errors
    ///
    /// `Error::Io` if a write or the fsync fails; the keys are then kept in
    /// memory so the call can be retried.
    pub fn shred(&self, tokens: &[Token]) -> Result<usize> {
        let mut file = self.file.lock();
        let wanted: HashSet<Token> = tokens.iter().copied().collect();
        let targets: Vec<(Token, u32)> = {
            let state = self.state.read();
            wanted
                .iter()
                .filter_map(|t| state.keys.get(t).map(|e| (*t, e.slot)))
                .collect()
        };
        // A damaged slot of theirs goes too: its bytes may still hold most of their key.
        let damaged: Vec<u32> = file
            .damaged
            .iter()
            .filter(|(_, t)| wanted.contains(t))
            .map(|(i, _)| *i)
            .collect();
        let mut on_disk: Vec<u32> = targets
            .iter()
            .map(|t| t.1)
            .filter(|&s| s != NO_SLOT)
            .chain(damaged.iter().copied())
            .collect();
        if !on_disk.is_empty() {
            on_disk.sort_unstable();
            let zeros = on_disk.iter().map(|&slot| (slot, [0u8; slots::SLOT_LEN]));
            slots::write_slots(&file.file, zeros)?;
            file.file.sync_data()?;
        }
        let mut state = self.state.write();
        let mut shredded = HashSet::with_capacity(targets.len());
        for (token, slot) in &targets {
            if let Some(mut entry) = state.keys.remove(token) {
                wipe(&mut entry.key);
            }
            if *slot != NO_SLOT {
                file.free.insert(*slot);
            }
            shredded.insert(*token);
        }
        if !state.pending.is_empty() {
            state.pending.retain(|t| !shredded.contains(t));
        }
        if !damaged.is_empty() {
            file.damaged.retain(|(i, _)| !damaged.contains(i));
            file.free.extend(damaged);
        }
        Ok(targets.len())
    }

    /// The used slots that do not unwrap (damaged), with the token each names,
    /// in slot order.
    pub fn damaged(&self) -> Vec<(u32, Token)> {
        self.file.lock().damaged.clone()
    }

    /// Every token that has a data key, persisted or pending (for the orphan
    /// sweep at open), in no particular order.
    pub fn tokens(&self) -> Vec<Token> {
        self.state.read().keys.keys().copied().collect()
    }

    /// How many tokens have a data key (persisted or pending).
    pub fn len(&self) -> usize {
        self.state.read().keys.len()
    }

    /// Whether no token has a data key.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many free slots `open` found holding stray non-zero bytes (an
    /// interrupted shred) and zeroed again (logged at open).
    #[cfg(test)]
    pub fn stale_free_slots(&self) -> usize {
        self.stale_free
    }

    /// Re-wraps the token secret and every data key under `new`: persists
    /// pending keys, writes `keys.slots.new` (same slot numbers), fsyncs it,
    /// renames it over `keys.slots` and fsyncs the directory. Afterwards this
    /// `Crypt` wraps with `new` and only `new` opens the store; tokens and
    /// data keys are unchanged. New customers' `seal` may wait on the
    /// map lock only while the keys are copied.
    ///
    /// # Errors
    ///
    /// `Error::Io` on a write, fsync or rename failure. Before the rename the
    /// old file and key stay in force; if only the final directory fsync
    /// fails the rotation has happened in memory and on disk but may not
    /// survive a crash (both keys must be kept until it succeeds).
    pub fn rotate(&self, new: &StoreKey) -> Result<()> {
        let mut file = self.file.lock();
        self.persist_locked(&mut file)?;
        let mut keys: Vec<(u32, Token, Secret)> = {
            let state = self.state.read();
            let persisted = state.keys.iter().filter(|(_, e)| e.slot != NO_SLOT);
            persisted
                .map(|(t, e)| (e.slot, *t, Secret(e.key)))
                .collect()
        };
        keys.sort_unstable_by_key(|k| k.0);
        let new_wrap_key = Secret(hmac(&new.0, WRAP_LABEL));
        let wrap = slots::cipher(&new_wrap_key.0);
        let new_file =
            slots::write_rotated(&self.dir, &wrap, &file.token_secret, file.slot_count, &keys)?;
        drop(keys);
        if let Err(e) = slots::install_new_file(&self.dir) {
            let _ = std::fs::remove_file(self.dir.join(slots::NEW_FILE));
            return Err(e.into());
        }
        file.file = new_file;
        file.wrap_key = new_wrap_key;
        // Damaged slots cannot be re-wrapped: the new file has zeros there.
        let damaged: Vec<u32> = file.damaged.drain(..).map(|(i, _)| i).collect();
        file.free.extend(damaged);
        slots::sync_dir(&self.dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
