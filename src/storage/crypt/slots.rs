//! The key slot file (`keys.slots`): encoding, loading and positional writes,
//! plus the small file-system helpers the crypt module needs (key files,
//! directory fsync). The byte layout is documented in the parent module.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use hmac::Mac;
use rand::rngs::OsRng;
use rand::RngCore;

use super::{Entry, HmacSha256, KeyMap, Token, NO_SLOT};
use crate::error::{Error, Result};

/// Name of the slot file inside the store directory.
pub(super) const SLOT_FILE: &str = "keys.slots";
/// A slot file being written (creation or rotation); discarded at open.
pub(super) const NEW_FILE: &str = "keys.slots.new";
pub(super) const MAGIC: &[u8; 16] = b"PERSONA-KEYSLOT1";
pub(super) const FORMAT: u32 = 1;
/// 128 bytes for the header and each slot: a slot never straddles a 512-byte sector, so a slot
/// written when the power fails is written whole or not at all on a disk whose sector writes
/// are atomic (an 80-byte slot would straddle one sector in six).
pub(super) const HEADER_LEN: usize = 128;
pub(super) const SLOT_LEN: usize = 128;
const USED: u8 = 1;
/// Slots read per `read_exact_at` while loading.
const CHUNK_SLOTS: usize = 4096;

/// Overwrites `bytes` with zeros (best effort against the optimiser).
pub(super) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// 32 bytes of key material, wiped on drop.
pub(super) struct Secret(pub(super) [u8; 32]);

impl Secret {
    pub(super) fn random() -> Result<Secret> {
        let mut s = Secret([0u8; 32]);
        OsRng.try_fill_bytes(&mut s.0).map_err(io::Error::other)?;
        Ok(s)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// HMAC-SHA256(key, label).
pub(super) fn hmac(key: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// Parses exactly 64 hex digits.
pub(super) fn parse_hex(text: &[u8]) -> Option<[u8; 32]> {
    fn digit(c: u8) -> Option<u8> {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(key)
}

/// The slot file and allocation state, behind the file mutex. Slot numbers
/// in `State` change only while this mutex is held.
pub(super) struct SlotFile {
    pub(super) file: File,
    pub(super) wrap_key: Secret,
    pub(super) token_secret: Secret,
    /// Free slots below `slot_count`.
    pub(super) free: BTreeSet<u32>,
    /// Slots assigned so far (the file may be shorter after a failed write).
    pub(super) slot_count: u32,
    /// Used slots that do not unwrap, with the token they name (`Slot::Damaged`): neither
    /// free nor keys, until their customer is erased or the store key is rotated.
    pub(super) damaged: Vec<(u32, Token)>,
}

impl SlotFile {
    pub(super) fn allocate(&mut self) -> Result<u32> {
        if let Some(slot) = self.free.pop_first() {
            return Ok(slot);
        }
        if self.slot_count >= NO_SLOT - 1 {
            return Err(Error::Io(io::Error::other("key slot file is full")));
        }
        self.slot_count += 1;
        Ok(self.slot_count - 1)
    }
}

/// `Error::Corruption` about the slot file.
pub(super) fn corrupt(detail: impl Into<String>) -> Error {
    Error::Corruption {
        key: "key slots".into(),
        detail: detail.into(),
    }
}

/// AES-256-GCM keyed with `key`.
pub(super) fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

/// A random 96-bit nonce from the thread-local CSPRNG (ChaCha, reseeded from
/// the OS): no system call per nonce.
pub(super) fn random_nonce() -> [u8; 12] {
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    nonce
}

/// Byte offset of slot `index`.
pub(super) fn slot_offset(index: u32) -> u64 {
    HEADER_LEN as u64 + SLOT_LEN as u64 * u64::from(index)
}

/// The header: magic, format, slot size and the wrapped token secret.
pub(super) fn encode_header(wrap: &Aes256Gcm, secret: &Secret) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..16].copy_from_slice(MAGIC);
    h[16..20].copy_from_slice(&FORMAT.to_le_bytes());
    h[20..24].copy_from_slice(&(SLOT_LEN as u32).to_le_bytes());
    let nonce = random_nonce();
    h[24..36].copy_from_slice(&nonce);
    h[36..68].copy_from_slice(&secret.0);
    let tag = wrap
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), MAGIC, &mut h[36..68])
        .expect("AES-GCM accepts a 32-byte plaintext");
    h[68..84].copy_from_slice(&tag);
    h
}

/// Checks the header's fixed fields and unwraps the token secret.
fn decode_header(wrap: &Aes256Gcm, h: &[u8; HEADER_LEN]) -> Result<Secret> {
    if &h[..16] != MAGIC {
        return Err(corrupt("bad magic: not a Persona key slot file"));
    }
    let format = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    if format != FORMAT {
        return Err(corrupt(format!(
            "unsupported format version {format} (expected {FORMAT})"
        )));
    }
    let slot_len = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
    if slot_len != SLOT_LEN as u32 {
        return Err(corrupt(format!(
            "slot size {slot_len} (expected {SLOT_LEN})"
        )));
    }
    let mut secret = Secret([0u8; 32]);
    secret.0.copy_from_slice(&h[36..68]);
    wrap.decrypt_in_place_detached(
        Nonce::from_slice(&h[24..36]),
        MAGIC,
        &mut secret.0,
        Tag::from_slice(&h[68..84]),
    )
    .map_err(|_| {
        Error::Key("the store key does not open this store's key slots (wrong key?)".into())
    })?;
    Ok(secret)
}

/// Associated data of slot `index`: token ‖ index (u32 LE).
fn slot_aad(token: &Token, index: u32) -> [u8; 20] {
    let mut aad = [0u8; 20];
    aad[..16].copy_from_slice(&token.0);
    aad[16..].copy_from_slice(&index.to_le_bytes());
    aad
}

/// A used slot holding `key` for `token` at position `index`.
pub(super) fn encode_slot(
    wrap: &Aes256Gcm,
    index: u32,
    token: &Token,
    key: &[u8; 32],
) -> [u8; SLOT_LEN] {
    let mut s = [0u8; SLOT_LEN];
    s[0] = USED;
    s[1..17].copy_from_slice(&token.0);
    let nonce = random_nonce();
    s[17..29].copy_from_slice(&nonce);
    s[29..61].copy_from_slice(key);
    let tag = wrap
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &slot_aad(token, index),
            &mut s[29..61],
        )
        .expect("AES-GCM accepts a 32-byte plaintext");
    s[61..77].copy_from_slice(&tag);
    s
}

/// What one slot holds.
enum Slot {
    Free,
    /// Flag byte 0 but other bytes non-zero that do not unwrap (an interrupted zeroing).
    StaleFree,
    Used(Token, Secret),
    /// Flag byte 0 but a whole wrapped key that unwraps: the flag lost its bit (a zeroing
    /// writes the slot whole, in one sector). Kept as used; the open's sweep zeroes it if no
    /// record names its token.
    Unflagged(Token, Secret),
    /// Flag byte 1 but a wrapped key that does not unwrap: damaged. Kept as it is (neither
    /// free nor a key): its customer's records read as corruption, and an erase of the token
    /// it names zeroes it.
    Damaged(Token),
}

/// The token and data key of slot `index`, if its bytes unwrap under `wrap`.
fn unwrap_slot(wrap: &Aes256Gcm, index: u32, s: &[u8]) -> Option<(Token, Secret)> {
    let mut token = Token([0u8; 16]);
    token.0.copy_from_slice(&s[1..17]);
    let mut key = Secret([0u8; 32]);
    key.0.copy_from_slice(&s[29..61]);
    wrap.decrypt_in_place_detached(
        Nonce::from_slice(&s[17..29]),
        &slot_aad(&token, index),
        &mut key.0,
        Tag::from_slice(&s[61..77]),
    )
    .ok()?;
    Some((token, key))
}

fn decode_slot(wrap: &Aes256Gcm, index: u32, s: &[u8]) -> Result<Slot> {
    match s[0] {
        0 if s.iter().all(|&b| b == 0) => Ok(Slot::Free),
        0 => Ok(match unwrap_slot(wrap, index, s) {
            Some((token, key)) => Slot::Unflagged(token, key),
            None => Slot::StaleFree,
        }),
        USED => Ok(match unwrap_slot(wrap, index, s) {
            Some((token, key)) => Slot::Used(token, key),
            None => {
                let mut token = Token([0u8; 16]);
                token.0.copy_from_slice(&s[1..17]);
                Slot::Damaged(token)
            }
        }),
        flag => Err(corrupt(format!(
            "slot {index} has invalid flag byte {flag}"
        ))),
    }
}

/// The decoded contents of a slot file.
pub(super) struct Loaded {
    pub(super) secret: Secret,
    pub(super) keys: KeyMap,
    /// Free slots (all-zero or stale), to be reused lowest first.
    pub(super) free: BTreeSet<u32>,
    /// Free slots with leftover non-zero bytes; the caller re-zeroes them.
    pub(super) stale: Vec<u32>,
    /// Used slots that do not unwrap, with the token they name (see `Slot::Damaged`).
    pub(super) damaged: Vec<(u32, Token)>,
    pub(super) slot_count: u32,
}

/// Reads and validates the whole slot file.
pub(super) fn load(file: &File, wrap: &Aes256Gcm) -> Result<Loaded> {
    let len = file.metadata()?.len();
    if len < HEADER_LEN as u64 {
        return Err(corrupt(format!(
            "file is {len} bytes, shorter than its {HEADER_LEN}-byte header (truncated)"
        )));
    }
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, 0)?;
    let extra = (len - HEADER_LEN as u64) % SLOT_LEN as u64;
    if &header[..16] == MAGIC && extra != 0 {
        return Err(corrupt(format!(
            "file length {len} is not the {HEADER_LEN}-byte header plus whole \
             {SLOT_LEN}-byte slots: {extra} bytes extra (truncated or partially written)"
        )));
    }
    let secret = decode_header(wrap, &header)?;
    let slot_count = (len - HEADER_LEN as u64) / SLOT_LEN as u64;
    let slot_count = u32::try_from(slot_count)
        .ok()
        .filter(|&n| n < NO_SLOT)
        .ok_or_else(|| corrupt(format!("{slot_count} slots is more than supported")))?;

    let mut loaded = Loaded {
        secret,
        // Capped so that a bogus length cannot make us reserve gigabytes.
        keys: KeyMap::with_capacity_and_hasher(
            (slot_count as usize).min(1 << 22),
            Default::default(),
        ),
        free: BTreeSet::new(),
        stale: Vec::new(),
        damaged: Vec::new(),
        slot_count,
    };
    // Slots whose flag byte is 0 but whose key unwraps (see `Slot::Unflagged`).
    let mut unflagged: BTreeSet<u32> = BTreeSet::new();
    let mut buf = vec![0u8; CHUNK_SLOTS * SLOT_LEN];
    let mut first = 0u32;
    while first < slot_count {
        let n = (slot_count - first).min(CHUNK_SLOTS as u32);
        let chunk = &mut buf[..n as usize * SLOT_LEN];
        file.read_exact_at(chunk, slot_offset(first))?;
        for (i, s) in (first..).zip(chunk.chunks_exact(SLOT_LEN)) {
            match decode_slot(wrap, i, s)? {
                Slot::Free => {
                    loaded.free.insert(i);
                }
                Slot::StaleFree => {
                    loaded.free.insert(i);
                    loaded.stale.push(i);
                }
                Slot::Used(token, key) => {
                    let entry = Entry {
                        key: key.0,
                        slot: i,
                    };
                    if let Some(old) = loaded.keys.insert(token, entry) {
                        if !unflagged.remove(&old.slot) {
                            return Err(corrupt(format!(
                                "token {} is in both slot {} and slot {i}",
                                hex(&token.0),
                                old.slot
                            )));
                        }
                        // The unflagged one is an old key of theirs: free, to be zeroed.
                        loaded.free.insert(old.slot);
                        loaded.stale.push(old.slot);
                    }
                }
                Slot::Damaged(token) => loaded.damaged.push((i, token)),
                Slot::Unflagged(token, key) => match loaded.keys.entry(token) {
                    std::collections::hash_map::Entry::Occupied(_) => {
                        loaded.free.insert(i);
                        loaded.stale.push(i);
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        unflagged.insert(i);
                        v.insert(Entry {
                            key: key.0,
                            slot: i,
                        });
                    }
                },
            }
        }
        first += n;
    }
    wipe(&mut buf);
    if !loaded.damaged.is_empty() {
        tracing::warn!(
            "{} key slot(s) do not unwrap (damaged): kept as they are; the records of the \
             customers they belong to read as corrupt (`persona check` names them), and an \
             erase of those customers zeroes them",
            loaded.damaged.len()
        );
    }
    if !unflagged.is_empty() {
        tracing::warn!(
            "{} key slot(s) have a cleared flag byte but a whole key: kept (an open zeroes \
             those no record names)",
            unflagged.len()
        );
    }
    Ok(loaded)
}

/// Writes whole slots at their offsets. `slots` must come in ascending
/// index order; runs of adjacent indices are coalesced into one
/// `write_all_at` of at most about 1 MiB. Does not fsync.
pub(super) fn write_slots(
    file: &File,
    slots: impl IntoIterator<Item = (u32, [u8; SLOT_LEN])>,
) -> io::Result<()> {
    const MAX_RUN: usize = 1 << 20;
    let mut run: Vec<u8> = Vec::new();
    let mut run_start = 0u32;
    let mut next = None;
    for (index, bytes) in slots {
        if next != Some(index) || run.len() >= MAX_RUN {
            if !run.is_empty() {
                file.write_all_at(&run, slot_offset(run_start))?;
                run.clear();
            }
            run_start = index;
        }
        run.extend_from_slice(&bytes);
        next = index.checked_add(1);
    }
    if !run.is_empty() {
        file.write_all_at(&run, slot_offset(run_start))?;
    }
    Ok(())
}

/// Removes `path` if it exists.
pub(super) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Fsyncs a directory so a create / rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Writes `dir/keys.slots.new` (mode 0600, create_new) with `write`, fsyncs
/// it and returns it open for reading and writing. Removes it on failure.
pub(super) fn write_new_file(
    dir: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<File> {
    let tmp = dir.join(NEW_FILE);
    remove_if_exists(&tmp)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = (|| {
        let mut w = BufWriter::with_capacity(1 << 16, &file);
        write(&mut w)?;
        w.flush()?;
        drop(w);
        file.sync_all()
    })();
    match written {
        Ok(()) => Ok(file),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes the complete slot file `dir/keys.slots.new` for a rotation:
/// header wrapping `secret` under `wrap`, then `slot_count` slots, used ones
/// from `keys` (sorted by slot), the rest zero. Fsynced; removed on failure.
pub(super) fn write_rotated(
    dir: &Path,
    wrap: &Aes256Gcm,
    secret: &Secret,
    slot_count: u32,
    keys: &[(u32, Token, Secret)],
) -> io::Result<File> {
    let header = encode_header(wrap, secret);
    write_new_file(dir, |w| {
        w.write_all(&header)?;
        let mut next = keys.iter().peekable();
        for i in 0..slot_count {
            match next.next_if(|k| k.0 == i) {
                Some((_, token, key)) => w.write_all(&encode_slot(wrap, i, token, &key.0))?,
                None => w.write_all(&[0u8; SLOT_LEN])?,
            }
        }
        Ok(())
    })
}

/// Renames `dir/keys.slots.new` over `dir/keys.slots` (not yet fsyncing the
/// directory).
pub(super) fn install_new_file(dir: &Path) -> io::Result<()> {
    fs::rename(dir.join(NEW_FILE), dir.join(SLOT_FILE))
}

/// Creates a slot file holding only a header with the token secret `secret`:
/// written beside, fsynced, renamed into place, directory fsynced, so a crash
/// never leaves a partial `keys.slots`.
pub(super) fn create(dir: &Path, wrap: &Aes256Gcm, secret: Secret) -> Result<File> {
    let header = encode_header(wrap, &secret);
    let file = write_new_file(dir, |w| w.write_all(&header))?;
    install_new_file(dir)?;
    sync_dir(dir)?;
    Ok(file)
}

/// Reads a key file's bytes after checking it is a regular file that only
/// its owner can access. Errors are `Error::Key` naming the path.
pub(super) fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display();
    let refuse = |e: io::Error| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::Key(format!("key file {shown} does not exist"))
        } else {
            Error::Key(format!("cannot read key file {shown}: {e}"))
        }
    };
    let check = |meta: &fs::Metadata| {
        if !meta.file_type().is_file() {
            return Err(Error::Key(format!(
                "key file {shown} is not a regular file"
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::Key(format!(
                "key file {shown} is readable or writable by group or others \
                 (mode {mode:04o}; chmod 600 it)"
            )));
        }
        Ok(())
    };
    // Check before opening (so a FIFO cannot block us) and again on the
    // opened file (so a swapped-in file cannot slip through).
    check(&fs::metadata(path).map_err(refuse)?)?;
    let file = File::open(path).map_err(refuse)?;
    check(&file.metadata().map_err(refuse)?)?;
    let mut text = Vec::with_capacity(72);
    file.take(72).read_to_end(&mut text).map_err(refuse)?;
    Ok(text)
}

/// Creates `path` (mode 0600, never overwriting) holding `text`, fsyncs it
/// and its directory. Removes a partially written file.
pub(super) fn write_key_file(path: &Path, text: &[u8]) -> Result<()> {
    let shown = path.display();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::Key(format!(
                    "key file {shown} already exists; refusing to overwrite it"
                ))
            } else {
                Error::Io(io::Error::new(
                    e.kind(),
                    format!("creating key file {shown}: {e}"),
                ))
            }
        })?;
    let written = file.write_all(text).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(Error::Io(io::Error::new(
            e.kind(),
            format!("writing key file {shown}: {e}"),
        )));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}
