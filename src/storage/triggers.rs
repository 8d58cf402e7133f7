//! The trigger outbox (`T` keys), the triggers defined at run time (`D` keys) and the
//! consumers' positions (`A` keys): see `src/triggers/` for what they mean.

use super::{keys, Store};
use crate::error::{Error, Result};
use crate::triggers::{Fired, Trigger};

/// Firings returned by one read at most.
pub const MAX_READ: usize = 10_000;

fn corrupt(key: &[u8], detail: String) -> Error {
    Error::Corruption {
        key: String::from_utf8_lossy(key).into_owned(),
        detail,
    }
}

impl Store {
    /// The triggers defined at run time, by name.
    ///
    /// # Errors
    /// [`Error::Corruption`] for a definition that does not decode; [`Error::Storage`] if sled
    /// fails.
    pub(crate) fn trigger_defs(&self) -> Result<Vec<Trigger>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([keys::TRIGGER_DEF]) {
            let (k, v) = item?;
            let t: Trigger = serde_json::from_slice(&v)
                .map_err(|e| corrupt(&k, format!("trigger definition: {e}")))?;
            out.push(t);
        }
        Ok(out)
    }

    /// The id of the last firing the consumer `name` acknowledged, if it ever did.
    ///
    /// # Errors
    /// [`Error::Corruption`] for a position that is not 8 bytes; [`Error::Storage`] if sled
    /// fails.
    pub(crate) fn trigger_acked(&self, name: &str) -> Result<Option<u64>> {
        let key = keys::trigger_ack(name);
        self.db
            .get(&key)?
            .map(|v| decode_position(&key, &v))
            .transpose()
    }

    /// Every consumer that acknowledged firings, with its position, by name.
    ///
    /// # Errors
    /// As [`Store::trigger_acked`].
    pub(crate) fn trigger_consumers(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([keys::TRIGGER_ACK]) {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k[1..]).into_owned();
            out.push((name, decode_position(&k, &v)?));
        }
        Ok(out)
    }

    /// Up to `count` firings with ids above `since`, in id order.
    ///
    /// # Errors
    /// [`Error::Corruption`] for a key of the outbox that does not decode; [`Error::Storage`]
    /// if sled fails.
    pub(crate) fn firings(&self, since: u64, count: usize) -> Result<Vec<Fired>> {
        let mut out = Vec::new();
        let Some(next) = since.checked_add(1) else {
            return Ok(out);
        };
        // The chunk holding `next`, if any, starts at or before it.
        let mut start = vec![keys::TRIGGER];
        if let Some(item) = self
            .db
            .range(vec![keys::TRIGGER]..=keys::trigger(next).to_vec())
            .next_back()
        {
            start = item?.0.to_vec();
        }
        for item in self.db.range(start..vec![keys::TRIGGER + 1]) {
            let (k, v) = item?;
            let chunk = self.decode_chunk(&k, &v)?;
            out.extend(chunk.firings.into_iter().filter(|f| f.id > since));
            if out.len() >= count {
                out.truncate(count);
                break;
            }
        }
        Ok(out)
    }

    /// The id of the newest firing ever written (0 before the first), erased or not: where a
    /// consumer that wants only what comes next starts.
    ///
    /// # Errors
    /// [`Error::Corruption`] for a key of the outbox that does not decode; [`Error::Storage`]
    /// if sled fails.
    pub(crate) fn last_firing_id(&self) -> Result<u64> {
        Ok(match self.db.scan_prefix([keys::TRIGGER]).next_back() {
            Some(item) => {
                let (k, v) = item?;
                self.decode_chunk(&k, &v)?.next_id.saturating_sub(1)
            }
            None => 0,
        })
    }

    /// Every customer with events and their last event time, for the `INACTIVE_DAYS` triggers'
    /// index. A record that does not decode is left out with a warning (`persona check`
    /// reports it).
    pub(crate) fn last_seen(&self) -> impl Iterator<Item = (String, i64)> + '_ {
        self.scan_profiles().filter_map(|item| {
            let (id, bytes) = item
                .map_err(|e| tracing::warn!("triggers: scanning the profiles: {e}"))
                .ok()?;
            match self.decode_profile_current(&id, &bytes) {
                Ok(rec) => rec.state.last_seen_ms.map(|t| (id, t)),
                Err(e) => {
                    tracing::warn!("triggers: {e}; left out of INACTIVE_DAYS");
                    None
                }
            }
        })
    }

    /// Every key of the outbox in order.
    pub(crate) fn firing_chunks(&self) -> impl Iterator<Item = Result<Chunk>> + '_ {
        self.db.scan_prefix([keys::TRIGGER]).map(|item| {
            let (k, v) = item?;
            self.decode_chunk(&k, &v)
        })
    }

    /// The firings the outbox holds for `customer`, in id order (a scan of the whole outbox).
    ///
    /// # Errors
    /// [`Error::Corruption`] for a key of the outbox that does not decode; [`Error::Storage`]
    /// if sled fails.
    pub(crate) fn firings_of(&self, customer: &str) -> Result<Vec<Fired>> {
        let mut out = Vec::new();
        for chunk in self.firing_chunks() {
            out.extend(
                chunk?
                    .firings
                    .into_iter()
                    .filter(|f| f.customer == customer),
            );
        }
        Ok(out)
    }
}

/// One key of the outbox: the firings of one batch, and the id the next batch's first firing
/// got. The key is the batch's first firing id; a customer's erasure removes their firings, so
/// the first left may be later, and the newest key stays even when its last firing is erased,
/// holding `next_id`: ids are never handed out twice, even across a reopen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chunk {
    /// The key's id.
    pub(crate) key: u64,
    /// The id after the batch's last firing.
    pub(crate) next_id: u64,
    /// The firings left, ids strictly increasing in `key..next_id`.
    pub(crate) firings: Vec<Fired>,
    /// Encrypted stores: the tokens of firings left out because their customer has no data
    /// key (erased, or a damaged key slot); an erase of that customer rewrites the chunk
    /// without them.
    pub(crate) unopened: Vec<super::crypt::Token>,
}

/// Parses one key of the outbox (`(next_id, Vec<Fired>)` in the versioned codec) and checks its
/// ids.
/// A consumer's stored position.
fn decode_position(key: &[u8], v: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = v
        .try_into()
        .map_err(|_| corrupt(key, format!("consumer position: {} bytes, not 8", v.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// A firing as an encrypted store keeps it in the outbox: its id, and its customer's token with
/// the firing sealed with their data key (`sealed.rs`; the sealed plaintext is the encoded
/// [`Fired`], and its key the outbox key's prefix and the firing's id), or no token and the
/// firing as it is when it names no customer (`DRIFT`).
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedFiring {
    id: u64,
    token: Option<[u8; keys::TOKEN_BYTES]>,
    body: Vec<u8>,
}

/// The bytes a sealed firing is bound to.
fn firing_aad(id: u64) -> [u8; 9] {
    keys::trigger(id)
}

impl Store {
    /// The value of one key of the outbox: `(next_id, Vec<Fired>)` in the versioned codec in a
    /// plain store; in an encrypted one `(next_id, Vec<SealedFiring>)`.
    ///
    /// # Errors
    /// Only sealing can fail (see [`Store::seal`]).
    pub(crate) fn encode_chunk(&self, next_id: u64, firings: &[&Fired]) -> Result<Vec<u8>> {
        encode_chunk_with(self.crypt(), next_id, firings)
    }

    /// Parses one key of the outbox (see [`Store::encode_chunk`]) and checks its ids. In an
    /// encrypted store a firing whose customer's data key is gone (erased) is left out.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the key.
    pub(crate) fn decode_chunk(&self, k: &[u8], v: &[u8]) -> Result<Chunk> {
        decode_chunk_with(self.crypt(), k, v)
    }
}

/// [`Store::encode_chunk`] with the crypto context `crypt` (`None`: a plain store).
///
/// # Errors
/// Only sealing can fail.
pub(crate) fn encode_chunk_with(
    crypt: Option<&super::crypt::Crypt>,
    next_id: u64,
    firings: &[&Fired],
) -> Result<Vec<u8>> {
    let Some(c) = crypt else {
        return Ok(super::codec::encode(&(next_id, firings)));
    };
    let mut sealed = Vec::with_capacity(firings.len());
    for f in firings {
        let plain = super::codec::encode(*f);
        if f.customer.is_empty() {
            sealed.push(SealedFiring {
                id: f.id,
                token: None,
                body: plain,
            });
        } else {
            let token = c.token(&f.customer);
            let mut body = Vec::with_capacity(plain.len() + 32);
            c.seal(token, &firing_aad(f.id), &plain, &mut body)?;
            sealed.push(SealedFiring {
                id: f.id,
                token: Some(token.0),
                body,
            });
        }
    }
    Ok(super::codec::encode(&(next_id, sealed)))
}

/// [`Store::decode_chunk`] with the crypto context `crypt` (`None`: a plain store).
///
/// # Errors
/// [`Error::Corruption`] naming the key.
pub(crate) fn decode_chunk_with(
    crypt: Option<&super::crypt::Crypt>,
    k: &[u8],
    v: &[u8],
) -> Result<Chunk> {
    let key = keys::parse_trigger(k).ok_or_else(|| corrupt(k, "trigger outbox key".into()))?;
    let name = || format!("trigger outbox key {key}");
    let Some(c) = crypt else {
        let (next_id, firings): (u64, Vec<Fired>) = super::codec::decode(&name, v)?;
        return check_chunk(k, next_id, firings);
    };
    let (next_id, sealed): (u64, Vec<SealedFiring>) = super::codec::decode(&name, v)?;
    let mut firings = Vec::with_capacity(sealed.len());
    let mut unopened = Vec::new();
    for s in sealed {
        let plain = match s.token {
            None => s.body,
            Some(t) => {
                let token = super::crypt::Token(t);
                match c.open_sealed(token, &firing_aad(s.id), &s.body, &name)? {
                    Some(plain) => plain,
                    None => {
                        unopened.push(token);
                        continue;
                    }
                }
            }
        };
        let f: Fired = super::codec::decode(&name, &plain)?;
        if f.id != s.id {
            return Err(corrupt(k, format!("firing {} stored as {}", f.id, s.id)));
        }
        firings.push(f);
    }
    let mut chunk = check_chunk(k, next_id, firings)?;
    chunk.unopened = unopened;
    Ok(chunk)
}

/// Checks the ids of one key of the outbox.
fn check_chunk(k: &[u8], next_id: u64, firings: Vec<Fired>) -> Result<Chunk> {
    let key = keys::parse_trigger(k).ok_or_else(|| corrupt(k, "trigger outbox key".into()))?;
    let mut floor = key;
    for (i, f) in firings.iter().enumerate() {
        if f.id < floor || (i > 0 && f.id == floor) || f.id >= next_id {
            return Err(corrupt(
                k,
                format!(
                    "firing {} out of order in the key of id {key} (next {next_id})",
                    f.id
                ),
            ));
        }
        floor = f.id;
    }
    if next_id < key {
        return Err(corrupt(
            k,
            format!("next id {next_id} before the key's {key}"),
        ));
    }
    Ok(Chunk {
        key,
        next_id,
        firings,
        unopened: Vec::new(),
    })
}
