//! The model's keys, read and written through [`Store`]: the model state (`S`) and its
//! snapshots (`V`), the customer sample (`K`), the held positives (`H`), the refit cohorts (`C`)
//! and the expiry queue's checkpoint (`Q`). The profiles' keys (`P`) are in the parent module.

use super::crypt::{Crypt, Token};
use super::*;
use crate::model::names::Holder;

impl Store {
    /// Reads the model state, if one was ever committed.
    ///
    /// # Errors
    /// [`Error::Corruption`] / [`Error::Model`] if it does not decode or is inconsistent.
    pub fn model(&self) -> Result<Option<ModelState>> {
        match self.db.get(keys::MODEL)? {
            Some(bytes) => self.decode_model("model state", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Versions of every stored model snapshot, oldest first.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn snapshot_versions(&self) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([keys::SNAPSHOT]) {
            let (k, _) = item?;
            out.extend(keys::parse_snapshot(&k));
        }
        Ok(out)
    }

    /// The stored members of the segment-fitting sample, (hash, customer id). Keys that do
    /// not parse are skipped (`persona check` reports them).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn sample_members(&self) -> Result<Vec<(u64, String)>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([keys::SAMPLE]) {
            let (k, v) = item?;
            let Some(hash) = keys::u64_of(&k) else {
                continue;
            };
            match self.unseal(&k, v) {
                Ok(Some((id, _))) => out.push((hash, id)),
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}; left out of the sample"),
            }
        }
        // An encrypted store's keys order customers by token, which differs from store to
        // store: the order of ids makes what is built from them the same in every store.
        out.sort_unstable();
        Ok(out)
    }

    /// Whether `customer_id` (whose sample hash is `hash`) is a stored member of the sample.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn is_sampled(&self, hash: u64, customer_id: &str) -> Result<bool> {
        Ok(self.db.contains_key(self.sample_key(hash, customer_id))?)
    }

    /// The positive training examples held until their deadline (`H` keys): ((deadline,
    /// customer), raw features). A key or value that does not decode is left out with a
    /// warning (one fewer training example; `persona check` reports it).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn held_examples(&self) -> Result<Vec<HeldExample>> {
        self.scan_held(None)
    }

    /// The sampled customers' refit rows (`R` keys), oldest first. A key or value that does
    /// not decode is left out with a warning (`persona check` reports it): that customer's
    /// refit reads their previous row, or leaves them out.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn sampled_rows(&self) -> Result<Vec<SampledRowAt>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([keys::SAMPLED_ROW]) {
            let (k, v) = item?;
            let name = || format!("refit row {}", sealed::hex_key(&k));
            let (Some(at), Ok(Some((customer, v)))) = (keys::time_of(&k), self.unseal(&k, v))
            else {
                tracing::warn!("{}: unreadable key or value; left out", name());
                continue;
            };
            match codec::decode::<SampledRow>(&name, &v) {
                Ok(row) => out.push((at, customer, row)),
                Err(e) => tracing::warn!("{e}; left out"),
            }
        }
        // By time, then id, in every store (see `sample_members`).
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(out)
    }

    /// Removes the whole cohorts of the previous release (`C` keys), if any. Returns how many
    /// keys.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn remove_legacy_cohorts(&self) -> Result<usize> {
        self.remove_prefix(keys::COHORT)
    }

    /// Removes every key under `prefix`, in one batch. Returns how many.
    fn remove_prefix(&self, prefix: u8) -> Result<usize> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in self.db.scan_prefix([prefix]) {
            batch.remove(item?.0);
            n += 1;
        }
        if n > 0 {
            self.db.apply_batch(batch)?;
        }
        Ok(n)
    }

    /// Removes these keys, in one batch (at open).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn remove_keys(&self, keys: &[Vec<u8>]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in keys {
            batch.remove(k.as_slice());
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Stores refit rows (tests).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    #[cfg(test)]
    pub(crate) fn put_sampled_rows(&self, rows: &[SampledRowAt]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (at, customer, row) in rows {
            let key = self.row_key(*at, customer);
            let value = self.seal(customer, &key, &codec::encode(row))?;
            batch.insert(key, value);
        }
        self.persist_new_keys()?;
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// The held examples and the refit rows (with each row's time) of one customer.
    pub(crate) fn examples_of(
        &self,
        customer_id: &str,
    ) -> Result<(Vec<HeldExample>, Vec<CohortExample>)> {
        let held = self.scan_held(Some(customer_id))?;
        let rows = self
            .sampled_rows()?
            .into_iter()
            .filter(|(_, c, _)| c == customer_id)
            .map(|(at, _, row)| (at, row))
            .collect();
        Ok((held, rows))
    }

    /// Replaces the stored customer sample (`K` keys) by `members`, in one batch.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn replace_sample(&self, members: &[(u64, String)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for item in self.db.scan_prefix([keys::SAMPLE]) {
            batch.remove(item?.0);
        }
        for (hash, id) in members {
            let key = self.sample_key(*hash, id);
            let value = self.seal(id, &key, &[])?;
            batch.insert(key, value);
        }
        self.persist_new_keys()?;
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Removes the keys of the previous release's refit window (`W`), if any. Returns how many.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn remove_legacy_refit_window(&self) -> Result<usize> {
        self.remove_prefix(keys::LEGACY_REFIT)
    }

    /// The held examples (`H` keys), of `only` that customer if given; keys and values that do
    /// not decode are left out with a warning.
    pub(super) fn scan_held(&self, only: Option<&str>) -> Result<Vec<HeldExample>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([keys::HELD]) {
            let (k, v) = item?;
            let name = || format!("held example {}", sealed::hex_key(&k));
            let (Some(d), Ok(Some((id, v)))) = (keys::time_of(&k), self.unseal(&k, v)) else {
                tracing::warn!(
                    "{}: unreadable key or value; the example is not learned",
                    name()
                );
                continue;
            };
            if only.is_some_and(|c| c != id) {
                continue;
            }
            match codec::decode::<Vec<f32>>(&name, &v) {
                Ok(example) => out.push(((d, id), example)),
                Err(e) => tracing::warn!("{e}; the example is not learned"),
            }
        }
        // By deadline, then id, in every store (see `sample_members`).
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Reads the model snapshot taken at `version`.
    ///
    /// # Errors
    /// [`Error::Corruption`] / [`Error::Model`] if it does not decode.
    pub fn snapshot(&self, version: u64) -> Result<Option<ModelState>> {
        match self.db.get(keys::snapshot(version))? {
            Some(bytes) => self
                .decode_model(&format!("model snapshot {version}"), &bytes)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Decodes a model record (`S` or `V`) of this store, its sealed names opened.
    pub(super) fn decode_model(&self, name: &str, bytes: &[u8]) -> Result<ModelState> {
        decode_model_with(self.crypt.as_ref(), name, bytes)
    }

    /// Encodes a model state as stored ([`MODEL_FORMAT_VERSION`] + state), the names one
    /// customer alone gave sealed with their data key in an encrypted store
    /// (`model/names.rs`).
    ///
    /// # Errors
    /// [`Error::Corruption`] if a name cannot be sealed (it cannot for a well-formed state).
    pub fn encode_model(&self, state: &mut ModelState) -> Result<Vec<u8>> {
        encode_model_with(self.crypt.as_ref(), state)
    }

    /// What stands for `customer_id` as the holder of a name in the models: their token in an
    /// encrypted store, a hash of their id in a plain one.
    pub(crate) fn holder_of(&self, customer_id: &str) -> Holder {
        match &self.crypt {
            Some(c) => c.token(customer_id).0,
            None => plain_holder(customer_id),
        }
    }

    /// Every customer with a pending training example: (customer id, snapshot time).
    ///
    /// A record whose head does not decode is skipped with a warning rather than making the
    /// whole store unopenable: reads of that customer report the corruption, and
    /// `persona check` lists it. Its example (if any) is lost for training.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn pending_examples(&self) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for item in self.scan_profiles() {
            let (id, v) = match item {
                Ok(item) => item,
                Err(Error::Storage(e)) => return Err(Error::Storage(e)),
                Err(e) => {
                    tracing::warn!("skipping a training example: {e}");
                    continue;
                }
            };
            match RecordHead::decode(&|| format!("profile {id:?}"), &v) {
                Ok(head) => {
                    if let Some(p) = head.pending {
                        out.push((id.to_string(), p.taken_at_ms));
                    }
                }
                Err(e) => tracing::warn!("skipping the training example of {id:?}: {e}"),
            }
        }
        Ok(out)
    }

    /// The persisted expiry queue (see [`queue::load`]); `Ok(None)` when the store has none
    /// usable for these settings.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails, [`Error::Corruption`] for damaged queue records.
    pub fn load_queue(
        &self,
        horizon_ms: i64,
        silent_horizons: u64,
        watermark_ms: i64,
        model_version: u64,
    ) -> Result<Option<queue::LoadedQueue>> {
        queue::load(
            &self.db,
            horizon_ms,
            silent_horizons,
            watermark_ms,
            model_version,
        )
    }

    /// Every key of the expiry queue's key space (see [`queue::stored_keys`]).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn queue_keys(&self) -> Result<Vec<Vec<u8>>> {
        queue::stored_keys(&self.db)
    }
}

/// The associated data a name in the models is sealed with.
const NAME_AAD: &[u8] = b"persona/model-name/v1";

/// A plain store's holder of names: the first 16 bytes of SHA-256 of the id, domain-separated.
pub(crate) fn plain_holder(customer_id: &str) -> Holder {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"persona/holder/v1\0");
    h.update(customer_id.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// [`Store::encode_model`] with the crypto context `crypt` (`None`: a plain store).
pub(crate) fn encode_model_with(crypt: Option<&Crypt>, state: &mut ModelState) -> Result<Vec<u8>> {
    let body = match crypt {
        None => state.encode(),
        Some(c) => state.encode_sealed(|holder, name| {
            let mut out = Vec::with_capacity(name.len() + 32);
            c.seal(Token(*holder), NAME_AAD, name.as_bytes(), &mut out)?;
            Ok::<_, Error>(out)
        })?,
    };
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(MODEL_FORMAT_VERSION);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a model record `name` (`S` or `V`) with the crypto context `crypt` (`None`: a plain
/// store): an encrypted store's sealed names are opened, and those whose holder's data key is
/// gone (they were erased) are dropped.
pub(crate) fn decode_model_with(
    crypt: Option<&Crypt>,
    name: &str,
    bytes: &[u8],
) -> Result<ModelState> {
    let corrupt = |detail: String| Error::Corruption {
        key: name.into(),
        detail,
    };
    let Some((&version, body)) = bytes.split_first() else {
        return Err(corrupt("record is empty".into()));
    };
    let decoded = match version {
        MODEL_FORMAT_VERSION => ModelState::decode(body),
        5 => ModelState::decode_v5(body),
        4 => ModelState::decode_v4(body),
        3 => ModelState::decode_v3(body),
        2 => ModelState::decode_v2(body),
        1 => ModelState::decode_legacy(body),
        _ => {
            return Err(Error::UnsupportedVersion {
                key: name.into(),
                found: version,
                supported: MODEL_FORMAT_VERSION,
            })
        }
    };
    let mut state = decoded.map_err(|e| corrupt(e.to_string()))?;
    if state.has_sealed_names() {
        let Some(c) = crypt else {
            return Err(corrupt(
                "the model holds sealed names, but the store is not encrypted".into(),
            ));
        };
        let what = || format!("a name in the {name}");
        state.open_names(|holder, sealed| {
            let Some(plain) = c.open_sealed(Token(*holder), NAME_AAD, sealed, &what)? else {
                return Ok(None);
            };
            String::from_utf8(plain)
                .map(Some)
                .map_err(|_| corrupt("a sealed name is not UTF-8".into()))
        })?;
    }
    Ok(state)
}
