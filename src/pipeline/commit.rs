//! Turning a prepared batch into sled writes (records, sample and held-example keys, the model
//! state and its snapshots, the expiry queue's delta or checkpoint), and what the writer
//! updates once the batch has committed.

use super::apply::*;
use super::batch::*;
use super::held;
use super::sample::{self};
use crate::storage::{keys, Store};

impl Engine {
    /// Adds the batch's writes to `batch`: dirty profiles, membership changes, the model state.
    /// Returns the number of keys written (inserted or removed) and the bytes inserted.
    ///
    /// # Errors
    /// Only an encrypted store's sealing of a value can fail (`storage/sealed.rs`).
    pub(crate) fn write_into(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        batch: &mut sled::Batch,
    ) -> crate::Result<(u64, u64)> {
        let mut keys_written = 0u64;
        let mut bytes = 0u64;
        let mut insert = |batch: &mut sled::Batch, k: Vec<u8>, v: sled::IVec| {
            keys_written += 1;
            bytes += (k.len() + v.len()) as u64;
            batch.insert(k, v);
        };
        let mut removed = 0u64;
        // Erasures first: a record written later in the same batch (none today: erasing runs
        // as a maintenance batch of its own) would then be a new profile, as it should.
        for id in &b.erased {
            batch.remove(store.profile_key(id));
            self.recent.remove(id);
            removed += 1;
        }
        // The refit rows (`cohorts.rs`) of the sampled customers the batch changed, for the
        // end of the block the watermark is in.
        let block_end = crate::storage::refit_block_end(self.model.watermark_ms, self.horizon_ms);
        self.take_rows(b, block_end);
        for (id, w) in &b.records {
            if w.dirty {
                let value = sled::IVec::from(w.record.encode());
                let key = store.profile_key(id);
                let stored = store.seal(id, &key, &value)?;
                self.recent.insert(id, value);
                insert(batch, key, stored);
            }
        }
        // Triggers: the batch's firings under the next ids, the oldest dropped past the
        // retention, an erased customer's removed; definitions added or deleted.
        let first = self.triggers.next_id;
        for (i, f) in (0u64..).zip(b.fired.iter_mut()) {
            f.fired.id = first.saturating_add(i); // a next id near u64::MAX only from corrupt bytes
        }
        if !b.fired.is_empty() {
            let firings: Vec<&crate::triggers::Fired> = b.fired.iter().map(|f| &f.fired).collect();
            let next = first.saturating_add(firings.len() as u64);
            let value = store.encode_chunk(next, &firings)?;
            insert(batch, keys::trigger(first).to_vec(), value.into());
        }
        let watermark = self.model.watermark_ms;
        let trimmed = self.triggers.to_trim(b.fired.len() as u64, watermark);
        b.outbox_trimmed = trimmed.len();
        for key in &trimmed {
            batch.remove(&keys::trigger(*key));
            removed += 1;
        }
        // An erasure's rewrites (never of a key trimmed here); a key left empty goes, but the
        // newest, which keeps the next id for the next open.
        for (chunk, newest) in &b.outbox_rewrites {
            if trimmed.contains(&chunk.key) {
                continue;
            }
            if chunk.firings.is_empty() && !newest {
                batch.remove(&keys::trigger(chunk.key));
                removed += 1;
            } else {
                let firings: Vec<&crate::triggers::Fired> = chunk.firings.iter().collect();
                let value = store.encode_chunk(chunk.next_id, &firings)?;
                insert(batch, keys::trigger(chunk.key).to_vec(), value.into());
            }
        }
        for (name, def) in &b.trigger_defs {
            match def {
                Some(t) => {
                    let value = serde_json::to_vec(t).expect(
                        "a definition is strings and numbers, which serde_json always encodes",
                    );
                    insert(batch, keys::trigger_def(name), value.into());
                }
                None => {
                    batch.remove(keys::trigger_def(name));
                    removed += 1;
                }
            }
        }
        for (key, value) in &b.marks {
            insert(batch, key.clone(), value.as_slice().into());
        }
        for (name, id) in &b.trigger_acks {
            insert(
                batch,
                keys::trigger_ack(name),
                id.to_be_bytes().to_vec().into(),
            );
        }
        for u in &b.undo {
            match u {
                Undo::Sample(sample::Change::Added(m)) => {
                    let key = store.sample_key(m.0, &m.1);
                    let value = store.seal(&m.1, &key, &[])?;
                    insert(batch, key, value);
                }
                Undo::Sample(sample::Change::Removed(m)) => {
                    batch.remove(store.sample_key(m.0, &m.1));
                    removed += 1;
                }
                Undo::Held(held::Change::Added(key)) => {
                    // Absent when learned in the same batch: the removal below wins.
                    if let Some(features) = self.held.get(key) {
                        let k = store.held_key(key.0, &key.1);
                        let value = crate::storage::codec::encode(&features);
                        let value = store.seal(&key.1, &k, &value)?;
                        insert(batch, k, value);
                    }
                }
                Undo::Held(held::Change::Removed(key, _)) => {
                    batch.remove(store.held_key(key.0, &key.1));
                    removed += 1;
                }
                Undo::Cohort(change) => {
                    // The row as it is after the batch (a later change of the same row in
                    // this batch writes the same again). A row of the block still open is
                    // written when the block closes, and one of a block this batch closes
                    // below, with the rest of that block's.
                    let key = store.row_key(change.at_ms, &change.customer);
                    match self.cohorts.get(&change.customer, change.at_ms) {
                        Some(_)
                            if change.at_ms >= block_end
                                || b.rows_closed.contains(&change.at_ms) => {}
                        Some(row) => {
                            let value = crate::storage::codec::encode(row);
                            let value = store.seal(&change.customer, &key, &value)?;
                            insert(batch, key, value);
                        }
                        None => {
                            batch.remove(key);
                            removed += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        // The rows of the blocks the batch closed: each customer's row for the block, as it
        // stands at its end (`cohorts.rs`, "Persisted").
        for &closed in &b.rows_closed {
            for (customer, row) in self.cohorts.rows_at(closed) {
                let key = store.row_key(closed, customer);
                let value = crate::storage::codec::encode(row);
                insert(batch, key.clone(), store.seal(customer, &key, &value)?);
            }
        }
        self.model.version += 1;
        for (n, (customer, outcome)) in (0u32..).zip(&b.feedback) {
            let key = store.feedback_key(customer, self.model.version, n);
            let value = crate::storage::codec::encode(outcome);
            insert(batch, key.clone(), store.seal(customer, &key, &value)?);
        }
        for key in &b.ledger_removed {
            batch.remove(key.as_slice());
            removed += 1;
        }
        for (version, bytes) in std::mem::take(&mut b.snapshot_rewrites) {
            insert(batch, keys::snapshot(version).to_vec(), bytes.into());
        }
        let encoded = store.encode_model(&mut self.model)?;
        let every = self.config.snapshot_every;
        if b.force_snapshot || (every > 0 && self.model.version % every == 0) {
            insert(
                batch,
                keys::snapshot(self.model.version).to_vec(),
                encoded.clone().into(),
            );
            let mut kept = self.snapshots.len() + 1;
            for old in &self.snapshots {
                if kept <= self.config.model_versions {
                    break;
                }
                batch.remove(&keys::snapshot(*old));
                removed += 1;
                b.dropped_snapshots.push(*old);
                kept -= 1;
            }
            b.new_snapshot = Some(self.model.version);
            b.snapshot = Some(self.model.clone());
        }
        insert(batch, keys::MODEL.to_vec(), encoded.into());
        // An encrypted store keeps no copy of the expiry queue (`db/open.rs`).
        let (queue_keys, queue_bytes) = if store.is_encrypted() {
            (0, 0)
        } else {
            self.write_queue(b, batch)
        };
        Ok((keys_written + removed + queue_keys, bytes + queue_bytes))
    }

    /// Adds the batch's changes of the expiry queue to `batch`: one delta, or a checkpoint of
    /// the whole queue (see [`crate::storage::queue`]). Returns keys written and bytes inserted.
    pub(super) fn write_queue(&self, b: &mut BatchState, batch: &mut sled::Batch) -> (u64, u64) {
        use crate::storage::queue::{self, Change};
        let watermark = self.model.watermark_ms;
        // Entries before the watermark are dropped when the queue is loaded: their changes
        // need no logging.
        let changes: Vec<Change> = b
            .undo
            .iter()
            .filter_map(|u| match u {
                Undo::Inserted((d, id)) if *d >= watermark => Some(Change::Insert(*d, id.clone())),
                Undo::Removed((d, id)) if *d >= watermark => Some(Change::Remove(*d, id.clone())),
                _ => None,
            })
            .collect();
        let log = &self.queue_log;
        let budget = 2 * self.expiry.len().max(queue::CHUNK_ENTRIES) as u64;
        if log.checkpoint_due
            || !b.erased.is_empty()
            || log.delta_entries + changes.len() as u64 > budget
        {
            let (chunks, keys_written, bytes) = queue::write_checkpoint(
                batch,
                self.expiry.iter(),
                (
                    self.horizon_ms,
                    self.config.silent_horizons as u64,
                    self.model.version,
                ),
                log.stale.iter().cloned(),
            );
            b.queue_write = Some(QueueWrite::Checkpoint {
                chunks,
                entries: self.expiry.len() as u64,
            });
            return (keys_written, bytes);
        }
        // Every commit rewrites the meta record with its model version, so that a commit by a
        // build that does not keep the queue is noticed at the next open.
        let mut bytes = queue::write_meta(
            batch,
            &queue::QueueMeta {
                horizon_ms: self.horizon_ms,
                silent_horizons: self.config.silent_horizons as u64,
                chunks: log.chunks,
                entries: log.entries,
                model_version: self.model.version,
            },
        );
        if changes.is_empty() {
            return (1, bytes);
        }
        let value = queue::encode_delta(&changes);
        let key = queue::delta_key(log.next_delta);
        bytes += (key.len() + value.len()) as u64;
        batch.insert(&key, value);
        b.queue_write = Some(QueueWrite::Delta {
            entries: changes.len() as u64,
        });
        (2, bytes)
    }

    /// Versions of the stored model snapshots, oldest first.
    pub(crate) fn snapshot_versions(&self) -> Vec<u64> {
        self.snapshots.iter().copied().collect()
    }

    /// Updates in-memory bookkeeping once a batch is committed.
    pub(crate) fn committed(&mut self, b: &BatchState) {
        let log = &mut self.queue_log;
        match b.queue_write {
            Some(QueueWrite::Checkpoint { chunks, entries }) => {
                log.chunks = chunks;
                log.entries = entries;
                log.stale = (0..chunks)
                    .map(|c| crate::storage::queue::chunk_key(c).to_vec())
                    .collect();
                log.delta_entries = 0;
                log.checkpoint_due = false;
            }
            Some(QueueWrite::Delta { entries }) => {
                log.stale
                    .push(crate::storage::queue::delta_key(log.next_delta).to_vec());
                log.next_delta += 1;
                log.delta_entries += entries;
            }
            None => {}
        }
        let rewritten: Vec<(u64, usize)> = b
            .outbox_rewrites
            .iter()
            .map(|(c, _)| (c.key, c.firings.len()))
            .collect();
        (self.triggers).committed(&b.fired, &b.suppressed, b.outbox_trimmed, &rewritten);
        for (name, def) in &b.trigger_defs {
            self.triggers.from_runtime.retain(|t| &t.name != name);
            match def {
                Some(t) => self.triggers.from_runtime.push(t.clone()),
                // The config file's trigger of that name, if any, keeps its index.
                None if self.triggers.from_config.iter().any(|t| &t.name == name) => {}
                None => self.triggers.deleted(name),
            }
        }
        for id in &b.erased {
            self.triggers.forget(id);
        }
        for d in &b.dropped_snapshots {
            self.snapshots.retain(|v| v != d);
        }
        if let Some(v) = b.new_snapshot {
            self.snapshots.push_back(v);
        }
    }
}
