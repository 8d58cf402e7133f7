//! How a customer is named in the store's keys and values.
//!
//! A plain store keys a customer's data by their id and keeps values as encoded. An encrypted
//! store (see [`super::crypt`]) names them by their token, a keyed hash of the id, in every key
//! that names a customer (`P`, `H`, `R`, `K`, `F`), and seals each such value with the
//! customer's own data key, the id inside:
//!
//! ```text
//! sealed value = Crypt::seal(token, aad = the sled key, plaintext)
//! plaintext    = id length (1 byte) ‖ id (UTF-8) ‖ the value a plain store keeps
//! ```
//!
//! The key is bound to the value (a value moved under another key does not open), and scans
//! read the id from the value. Once the customer is erased their data key is gone (the slot
//! holding it is zeroed), so every copy of these values that sled's log files still hold is
//! unreadable, and the keys hold no id.

use super::crypt::{Crypt, Token};
use super::{keys, Store};
use crate::error::{Error, Result};

/// What names a customer in a key: their id, or (encrypted stores) their token.
pub(crate) enum Name<'a> {
    /// A plain store's id.
    Id(&'a str),
    /// An encrypted store's token.
    Token(Token),
}

impl Name<'_> {
    /// The bytes of the name.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Name::Id(id) => id.as_bytes(),
            Name::Token(t) => &t.0,
        }
    }
}

impl Store {
    /// Whether the store is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.crypt.is_some()
    }

    /// How many customers have a data key (0 in a plain store).
    #[cfg(any(test, feature = "testing"))]
    pub fn data_keys(&self) -> usize {
        self.crypt.as_ref().map_or(0, |c| c.len())
    }

    /// The key of a customer's profile record, as this store names them (tests that damage
    /// stored bytes).
    #[cfg(any(test, feature = "testing"))]
    pub fn profile_key_of(&self, customer_id: &str) -> Vec<u8> {
        self.profile_key(customer_id)
    }

    /// The store's crypto context, if it is encrypted.
    pub(crate) fn crypt(&self) -> Option<&Crypt> {
        self.crypt.as_ref()
    }

    /// What names `customer_id` in keys.
    pub(crate) fn name<'a>(&self, customer_id: &'a str) -> Name<'a> {
        name_with(self.crypt.as_ref(), customer_id)
    }

    /// Key of a customer's profile record.
    pub(crate) fn profile_key(&self, customer_id: &str) -> Vec<u8> {
        profile_key_with(self.crypt.as_ref(), customer_id)
    }

    /// Key of a customer's example held until `deadline_ms`.
    pub(crate) fn held_key(&self, deadline_ms: i64, customer_id: &str) -> Vec<u8> {
        keys::time_and_name(keys::HELD, deadline_ms, self.name(customer_id).bytes())
    }

    /// Key of a customer's refit row as of `at_ms`.
    pub(crate) fn row_key(&self, at_ms: i64, customer_id: &str) -> Vec<u8> {
        keys::time_and_name(keys::SAMPLED_ROW, at_ms, self.name(customer_id).bytes())
    }

    /// Key of a member of the segment-fitting sample.
    pub(crate) fn sample_key(&self, hash: u64, customer_id: &str) -> Vec<u8> {
        keys::u64_and_name(keys::SAMPLE, hash, self.name(customer_id).bytes())
    }

    /// The prefix of every feedback-ledger key of a customer.
    pub(crate) fn feedback_prefix(&self, customer_id: &str) -> Vec<u8> {
        match &self.crypt {
            Some(c) => keys::token_prefix(keys::FEEDBACK, &c.token(customer_id).0),
            None => keys::feedback_prefix(customer_id),
        }
    }

    /// Key of a customer's `n`-th feedback outcome in the batch committed as `version`.
    pub(crate) fn feedback_key(&self, customer_id: &str, version: u64, n: u32) -> Vec<u8> {
        keys::feedback_of(&self.feedback_prefix(customer_id), version, n)
    }

    /// The value to store under `key` (a key naming `customer_id`) for `payload`: the payload
    /// itself in a plain store, sealed with the customer's data key in an encrypted one (a
    /// customer without one gets one, written to the key slots before the batch commits:
    /// [`Store::persist_new_keys`]).
    ///
    /// # Errors
    /// [`Error::Corruption`] if sealing fails (it cannot for a well-formed key).
    pub(crate) fn seal(&self, customer_id: &str, key: &[u8], payload: &[u8]) -> Result<sled::IVec> {
        match &self.crypt {
            Some(c) => seal_with(c, customer_id, key, payload).map(sled::IVec::from),
            None => Ok(sled::IVec::from(payload)),
        }
    }

    /// The customer and payload of `value`, stored under `key` (a key naming a customer).
    /// `Ok(None)` when the value cannot be read by design: in an encrypted store, the customer
    /// was erased (their data key is gone) but sled still returned a value, or (in a plain
    /// store) the key does not name a customer.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the key's kind if a sealed value does not open (damaged,
    /// or moved under another key) or its id is malformed.
    pub(crate) fn unseal(
        &self,
        key: &[u8],
        value: sled::IVec,
    ) -> Result<Option<(String, sled::IVec)>> {
        unseal_with(self.crypt.as_ref(), key, value)
    }

    /// Writes the data keys made since the last call to the key slots and fsyncs them (one
    /// fsync, only when there are new keys), before the batch that uses them commits, whatever
    /// the store's durability: a record that reached sled's log without its key would be lost
    /// for good, not merely late. Nothing in a plain store.
    ///
    /// # Errors
    /// [`Error::Io`] if the slot file cannot be written.
    pub(crate) fn persist_new_keys(&self) -> Result<()> {
        if let Some(c) = &self.crypt {
            c.persist_new()?;
        }
        Ok(())
    }

    /// The held example, refit rows and sample membership keys (`H`, `R`, `K`) of a customer
    /// whose data key is missing or damaged, found by their token (an erase removes them: the
    /// writer never loaded them, since they do not open). Empty in a plain store, whose values
    /// are readable without a key.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn unreadable_keys_of(&self, customer_id: &str) -> Result<Vec<Vec<u8>>> {
        let Some(c) = &self.crypt else {
            return Ok(Vec::new());
        };
        let token = c.token(customer_id);
        let mut out = Vec::new();
        for prefix in [keys::HELD, keys::SAMPLED_ROW, keys::SAMPLE] {
            let len = keys::token_offset(prefix).map(|at| at + keys::TOKEN_BYTES);
            for item in self.db.scan_prefix([prefix]) {
                let (k, _) = item?;
                if Some(k.len()) == len && k.ends_with(&token.0) {
                    out.push(k.to_vec());
                }
            }
        }
        Ok(out)
    }

    /// Crypto-shreds erased customers once the batch that removed their keys has committed:
    /// zeroes their key slots and fsyncs. Whatever of theirs sled's files still hold is then
    /// unreadable. Nothing in a plain store.
    ///
    /// # Errors
    /// [`Error::Io`] if the slot file cannot be written; the slots are then zeroed at the next
    /// open (a slot whose customer has no record is).
    pub(crate) fn shred(&self, customer_ids: &[String]) -> Result<()> {
        if let Some(c) = &self.crypt {
            let tokens: Vec<Token> = customer_ids.iter().map(|id| c.token(id)).collect();
            if !tokens.is_empty() {
                c.shred(&tokens)?;
            }
        }
        Ok(())
    }
}

/// [`Store::seal`] in an encrypted store with the crypto context `crypt`.
pub(crate) fn seal_with(
    crypt: &Crypt,
    customer_id: &str,
    key: &[u8],
    payload: &[u8],
) -> Result<Vec<u8>> {
    let mut plain = Vec::with_capacity(1 + customer_id.len() + payload.len());
    // Ids are at most 128 bytes (`MAX_CUSTOMER_ID_BYTES`): their length fits a byte.
    plain.push(customer_id.len().min(255) as u8);
    plain.extend_from_slice(customer_id.as_bytes());
    plain.extend_from_slice(payload);
    let mut out = Vec::with_capacity(plain.len() + 64);
    // The key names the customer by their token already: no second HMAC of the id.
    let token = token_of_key(key).unwrap_or_else(|| crypt.token(customer_id));
    debug_assert!(
        token == crypt.token(customer_id),
        "a key of another customer"
    );
    crypt.seal(token, key, &plain, &mut out)?;
    Ok(out)
}

/// The token an encrypted store's key names its customer by (`None`: a key of a prefix that
/// names no customer, or too short to hold a token).
fn token_of_key(key: &[u8]) -> Option<Token> {
    let at = keys::token_offset(*key.first()?)?;
    let token = key.get(at..at + keys::TOKEN_BYTES)?;
    Some(Token(token.try_into().ok()?))
}

/// [`Store::unseal`] with the crypto context `crypt` (`None`: a plain store), for readers of
/// the raw sled tree (`persona check`).
pub(crate) fn unseal_with(
    crypt: Option<&Crypt>,
    key: &[u8],
    value: sled::IVec,
) -> Result<Option<(String, sled::IVec)>> {
    let prefix = key.first().copied().unwrap_or(0);
    let what = || format!("{} key {}", kind_name(prefix), hex_key(key));
    let Some(c) = crypt else {
        return Ok(plain_id(key).map(|(id, _)| (id.to_string(), value)));
    };
    let token = token_of_key(key).ok_or_else(|| Error::Corruption {
        key: what(),
        detail: "the key is too short to hold a customer token".into(),
    })?;
    let Some(plain) = c.open_sealed(token, key, &value, &what)? else {
        return Ok(None);
    };
    let bad = |detail: &str| Error::Corruption {
        key: what(),
        detail: detail.into(),
    };
    let (&len, rest) = plain.split_first().ok_or_else(|| bad("empty"))?;
    let len = usize::from(len);
    let id = rest
        .get(..len)
        .ok_or_else(|| bad("the customer id is cut short"))?;
    let id = std::str::from_utf8(id).map_err(|_| bad("the customer id is not UTF-8"))?;
    // The value is bound to its key (the associated data), so the id inside is the one the
    // key was made for: no need to hash it again.
    if id.is_empty() {
        return Err(bad("the customer id is empty"));
    }
    Ok(Some((id.to_string(), sled::IVec::from(&rest[len..]))))
}

/// The customer id a plain store's key names (non-empty UTF-8), with what follows it in the
/// key: nothing, but for a feedback-ledger key (`F` ‖ id ‖ 0 ‖ version ‖ position), whose id
/// ends at the 0 (an `F` key without it has an empty tail). `None` for a key of a prefix that
/// names no customer, or whose id is empty or not UTF-8.
pub(crate) fn plain_id(key: &[u8]) -> Option<(&str, &[u8])> {
    let prefix = *key.first()?;
    let rest = key.get(keys::token_offset(prefix)?..)?;
    let (id, tail) = match prefix {
        keys::FEEDBACK => match rest.iter().position(|&b| b == 0) {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &[][..]),
        },
        _ => (rest, &[][..]),
    };
    let id = std::str::from_utf8(id).ok().filter(|id| !id.is_empty())?;
    Some((id, tail))
}

/// What names `customer_id` in keys with the crypto context `crypt` (`None`: a plain store).
fn name_with<'a>(crypt: Option<&Crypt>, customer_id: &'a str) -> Name<'a> {
    match crypt {
        Some(c) => Name::Token(c.token(customer_id)),
        None => Name::Id(customer_id),
    }
}

/// The key of a customer's profile record with the crypto context `crypt` (`None`: a plain
/// store).
pub(crate) fn profile_key_with(crypt: Option<&Crypt>, customer_id: &str) -> Vec<u8> {
    keys::token_prefix(keys::PROFILE, name_with(crypt, customer_id).bytes())
}

/// The error for a sealed profile record (named `what`) whose data key is missing from the key
/// slots: damage, never a customer to take for new (an erase removes the record first).
pub(crate) fn missing_key(what: String) -> Error {
    Error::Corruption {
        key: what,
        detail: format!(
            "its data key is missing from {} (damaged or truncated key slots)",
            super::encryption::SLOT_FILE
        ),
    }
}

/// The kind of data under keys with this prefix, for error messages.
fn kind_name(prefix: u8) -> &'static str {
    match prefix {
        keys::PROFILE => "profile",
        keys::HELD => "held example",
        keys::SAMPLED_ROW => "refit row",
        keys::SAMPLE => "sample",
        keys::FEEDBACK => "feedback ledger",
        _ => "customer",
    }
}

/// A key, printable: its prefix letter and the rest in hex (a token is not text).
pub(crate) fn hex_key(key: &[u8]) -> String {
    match key.split_first() {
        Some((&p, rest)) => format!("{}{}", char::from(p), super::crypt::hex(rest)),
        None => String::new(),
    }
}
