//! Model maintenance: snapshots and rollback, re-segmentation, and the fault injection the
//! crash and atomicity tests use.

use super::*;
use crate::error::{Error, Result};
#[cfg(feature = "testing")]
use crate::model::ModelState;
use crate::pipeline::{Maintenance, MaintenanceOutcome, Request};
use crate::query::ModelInfo;
#[cfg(feature = "testing")]
use std::sync::atomic::Ordering;

/// What [`Db::resegment`] did.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ResegmentReport {
    /// Whether the centroids were refitted first.
    pub refitted: bool,
    /// Profiles looked at.
    pub scanned: usize,
    /// Profiles whose segment changed.
    pub changed: usize,
    /// Commits it took.
    pub batches: usize,
}

impl Db {
    /// The stored model snapshots, oldest first.
    ///
    /// # Errors
    /// [`Error::Corruption`] if a snapshot does not decode.
    pub fn model_versions(&self) -> Result<Vec<ModelInfo>> {
        let versions = self.inner.shared.snapshots.read().clone();
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            if let Some(snap) = self.inner.store.snapshot(v)? {
                out.push(ModelInfo::of(&snap, 0, Vec::new()));
            }
        }
        Ok(out)
    }

    /// The model snapshot taken at `version`, if kept.
    ///
    /// # Errors
    /// [`Error::Corruption`] if it does not decode.
    #[cfg(feature = "testing")]
    pub(crate) fn read_model_snapshot(&self, version: u64) -> Result<Option<ModelState>> {
        self.inner.store.snapshot(version)
    }

    /// Declares that every event up to `to_ms` (unix ms, event time) has been ingested: the
    /// watermark moves there, through the writer, as an event at that time would move it,
    /// without one. Training examples whose horizon ended fall due, the propensity's daily
    /// refit runs if a day boundary (a thirtieth of the horizon) is passed, `INACTIVE_DAYS`
    /// triggers fire for the silences that came. A store whose events stopped before midnight
    /// otherwise refits only with the first event after it; `persona evaluate` calls this at
    /// each cutoff before scoring. Nothing happens if the watermark is at or after `to_ms`.
    /// Returns the model version.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a time later than an
    /// event would be accepted at (the later of the watermark and the wall clock, plus
    /// `max_future_skew_secs`); storage errors from the commit.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// db.ingest(Event::new("c", t, EventKind::View))?;
    /// db.advance_watermark(t + 3_600_000)?;
    /// assert_eq!(db.model_info().watermark_ms, t + 3_600_000);
    /// assert!(db.advance_watermark(i64::MAX).is_err());
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn advance_watermark(&self, to_ms: i64) -> Result<u64> {
        Ok(self
            .maintain(Maintenance::AdvanceWatermark(to_ms))?
            .model_version)
    }

    /// Snapshots the model now (through the writer); returns the snapshot's version.
    ///
    /// # Errors
    /// Storage errors from the commit.
    pub fn take_model_snapshot(&self) -> Result<u64> {
        Ok(self.maintain(Maintenance::Snapshot)?.model_version)
    }

    /// Rolls the learned parameters back to the snapshot taken at `version`, atomically through
    /// the writer. Bookkeeping (watermark, segment sizes, metrics) is kept; run
    /// [`Db::resegment`] afterwards so stored assignments follow the restored centroids.
    /// Returns the new model version.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if no such snapshot is kept (the message lists the kept ones).
    pub fn rollback_model(&self, version: u64) -> Result<u64> {
        Ok(self.maintain(Maintenance::Rollback(version))?.model_version)
    }

    /// Re-assigns every profile to its nearest segment as of now (and the segment sizes and
    /// statistics with it), in batches of `batch` profiles, each its own commit so ingestion
    /// interleaves.
    /// With [`Centroids::Refit`], first refits the centroids (k-means on a sample of profiles);
    /// with [`Centroids::Fresh`], from fresh starts only.
    /// When profiles changed segment, the lookalike index then re-trains its sub-lists (see
    /// docs/architecture.md, "Lookalikes"; not timed separately).
    ///
    /// # Errors
    /// Storage errors; [`Error::InvalidArgument`] if the segments are not seeded yet.
    pub fn resegment(&self, batch: usize, centroids: Centroids) -> Result<ResegmentReport> {
        let refit = centroids != Centroids::Keep;
        let model = self.model();
        if !model.segments.is_seeded() {
            return Err(Error::invalid_argument(
                "segments",
                "are not seeded yet; nothing to re-assign",
            ));
        }
        let mut report = ResegmentReport::default();
        if refit {
            let points = crate::query::refit::sample(
                &self.inner.store,
                &model,
                &self.inner.layout,
                crate::query::refit::SAMPLE,
                self.inner.config.model.seed,
                self.inner.config.consent_defaults,
            )?;
            let fresh = (centroids == Centroids::Fresh).then_some(self.inner.config.model.seed);
            report.refitted = self
                .maintain(Maintenance::FitSegments { points, fresh })?
                .refitted;
        }
        let mut cursor: Option<String> = None;
        loop {
            let out = self.maintain(Maintenance::Resegment {
                after: cursor.clone(),
                limit: batch.max(1),
            })?;
            report.scanned += out.scanned;
            report.changed += out.changed;
            report.batches += 1;
            match out.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        if report.changed > 0 {
            // Profiles moved between segments: fit each segment's sub-lists to its new members.
            self.inner.shared.lookalikes.retrain();
        }
        Ok(report)
    }

    /// Takes a cluster's merged model on, through the writer (`src/cluster/models.rs`);
    /// returns the new model version.
    ///
    /// # Errors
    /// [`Error::Cluster`](crate::Error::Cluster) for a merged model of another shape (feature
    /// count, segments, actions); storage errors from the commit.
    #[cfg(feature = "cluster")]
    pub(crate) fn adopt_model(&self, adoption: crate::model::merge::Adoption) -> Result<u64> {
        Ok(self
            .maintain(Maintenance::Adopt(Box::new(adoption)))?
            .model_version)
    }

    pub(super) fn maintain(&self, op: Maintenance) -> Result<MaintenanceOutcome> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.inner
            .tx
            .send(Request::Maintain { op, reply })
            .map_err(|_| Error::Closed)?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// Makes the next `n` commits fail before anything is written, as an I/O error would.
    /// For tests of the failure path (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn fail_next_commits(&self, n: u32) {
        self.inner
            .shared
            .faults
            .fail_commits
            .store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` syncs of the durability stage fail, as a failed `fsync` would: the
    /// store is poisoned. For tests of the failure path (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn fail_next_syncs(&self, n: u32) {
        self.inner
            .shared
            .faults
            .fail_syncs
            .store(n, Ordering::SeqCst);
    }

    /// Makes the apply stage wait `delay` before handing each batch to sled, so that the
    /// writer prepares later batches on top of batches sled has not applied yet. For tests of
    /// the pipelined writer (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn delay_applies(&self, delay: std::time::Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.inner
            .shared
            .faults
            .apply_delay_us
            .store(us, Ordering::SeqCst);
    }
}
