//! The trigger outbox (`T` keys) and the triggers defined at run time (`D` keys): see
//! `src/triggers/` for what they mean.

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

    /// Up to `count` firings with ids above `since`, in id order.
    ///
    /// # Errors
    /// [`Error::Corruption`] for a firing that does not decode; [`Error::Storage`] if sled
    /// fails.
    pub(crate) fn firings(&self, since: u64, count: usize) -> Result<Vec<Fired>> {
        let start = keys::trigger(since.saturating_add(1));
        let mut out = Vec::new();
        if since == u64::MAX {
            return Ok(out);
        }
        for item in self.db.range(start.to_vec()..vec![keys::TRIGGER + 1]) {
            if out.len() >= count {
                break;
            }
            let (k, v) = item?;
            out.push(decode_firing(&k, &v)?);
        }
        Ok(out)
    }

    /// The id of the newest firing the outbox holds (0 when empty).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn last_firing_id(&self) -> Result<u64> {
        Ok(match self.db.scan_prefix([keys::TRIGGER]).next_back() {
            Some(item) => keys::parse_trigger(&item?.0).unwrap_or(0),
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

    /// Every firing the outbox holds, in id order, each with its key.
    pub(crate) fn all_firings(&self) -> impl Iterator<Item = Result<(sled::IVec, Fired)>> + '_ {
        self.db.scan_prefix([keys::TRIGGER]).map(|item| {
            let (k, v) = item?;
            let f = decode_firing(&k, &v)?;
            Ok((k, f))
        })
    }
}

/// A firing from its outbox key and value; the key's id must match the value's.
pub(crate) fn decode_firing(k: &[u8], v: &[u8]) -> Result<Fired> {
    let id = keys::parse_trigger(k).ok_or_else(|| corrupt(k, "trigger outbox key".into()))?;
    let f: Fired =
        serde_json::from_slice(v).map_err(|e| corrupt(k, format!("trigger firing: {e}")))?;
    if f.id != id {
        return Err(corrupt(k, format!("firing {} stored under id {id}", f.id)));
    }
    Ok(f)
}
