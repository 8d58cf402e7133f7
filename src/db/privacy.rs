//! Privacy operations on [`Db`]: erasing a customer, exporting everything held about one, and
//! retention (purging profiles inactive for longer than `profile_ttl_days`).
//!
//! Erasure goes through the writer like any write: one maintenance batch removes the profile
//! record (with its history, de-duplication window, pending training example and segment), the
//! customer's entry in the writer's label-expiry queue and their share of the per-segment
//! statistics, in ONE atomic sled batch, made as durable as configured.
//! The trigger outbox names customers too: erasing removes their firings in the same batch.
//! Nothing else holds a customer id: the model state and its snapshots are aggregates.
//!
//! Limit: sled 0.34 appends to a log; the bytes of an erased record stay in old log segments
//! until sled's segment cleaner relocates their live data and reuses them, and sled 0.34.7 has
//! no call to force that. See docs/architecture.md ("Erasure and retention").

use super::Db;
use crate::error::{Error, Result};
use crate::event::validate_customer_id;
use crate::pipeline::Maintenance;
use crate::query::{export, CustomerExport};
use crate::storage::record::{RecordCurrent, RecordState};
use crate::Centroids;

/// Expired profiles a retention purge erases per writer batch: ingestion interleaves between
/// batches.
const PURGE_BATCH: usize = 10_000;

/// What [`Db::purge`] did.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PurgeReport {
    /// The retention period applied, in days.
    pub ttl_days: f64,
    /// The watermark the period was measured from (event time, unix ms).
    pub watermark_ms: i64,
    /// Profiles whose last event is before this time (unix ms) were erased.
    pub cutoff_ms: i64,
    /// Profiles looked at.
    pub scanned: usize,
    /// Profiles erased.
    pub erased: usize,
    /// Writer batches it took (one per group of up to 10,000 expired profiles).
    pub batches: usize,
}

/// What [`Db::erase_report`] removed with a customer, and what of theirs stays in the models.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct EraseReport {
    /// The customer.
    pub customer_id: String,
    /// Whether they had a profile (false: nothing to erase).
    pub erased: bool,
    /// Events their profile had applied.
    pub events: u64,
    /// The segment they left (its size and sums no longer count them).
    pub segment: Option<u16>,
    /// Training examples of theirs dropped before any model learned them: the open one, a
    /// held positive, their refit rows.
    pub training_examples_dropped: usize,
    /// Their trigger firings removed from the outbox.
    pub trigger_firings_removed: usize,
    /// Their strategy outcomes subtracted from the per-segment action counts (exactly: from
    /// the feedback ledger).
    pub feedback_outcomes_subtracted: usize,
    /// Item and category names they alone had given the models (popularity lists, category
    /// labels), dropped from them (see docs/privacy.md).
    pub catalogue_names_dropped: usize,
    /// What of theirs stays in the models' aggregates, in words.
    pub kept_in_models: Vec<String>,
    /// What was retrained without them after the erase, in words (only from
    /// [`Db::erase_and_retrain`]).
    pub retrained: Vec<String>,
    /// What could not be read, if anything: the customer's record or examples before the erase
    /// (the counts above are then missing), or feedback-ledger entries that did not decode
    /// (removed without being subtracted). Erased all the same.
    pub unreadable: Option<String>,
}

/// The report's words for the centroids' share of a customer's influence, until retrained.
const CENTROIDS_KEPT: &str = "segment centroids fitted on samples they may have been in; not \
                              undone (`persona erase --retrain` refits them without them)";

impl Db {
    /// Erases a customer as [`Db::erase`] does, and reports what went with them and what of
    /// their influence stays in the models (which hold aggregates: see docs/privacy.md). The
    /// counts are read just before the erase.
    ///
    /// # Errors
    /// As [`Db::erase`].
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// db.ingest(Event::new("c1", 1_767_225_600_000, EventKind::Click))?;
    /// let report = db.erase_report("c1")?;
    /// assert!(report.erased);
    /// assert_eq!(report.events, 1);
    /// assert!(!db.erase_report("c1")?.erased);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn erase_report(&self, customer_id: &str) -> Result<EraseReport> {
        validate_customer_id(customer_id)?;
        // What goes with them, read just before; a damaged record must not stop the erase:
        // the report says so.
        let store = &self.inner.store;
        let before = || -> Result<Option<(RecordCurrent, usize)>> {
            let Some(rec) = store.profile_current(customer_id)? else {
                return Ok(None);
            };
            let firings = store.firings_of(customer_id)?.len();
            Ok(Some((rec, firings)))
        };
        let (before, mut unreadable) = match before() {
            Ok(b) => (b, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let out = self.maintain(Maintenance::Erase(vec![customer_id.to_string()]))?;
        if out.feedback_unreadable > 0 {
            let why = format!(
                "{} feedback ledger entries did not decode: removed, not subtracted",
                out.feedback_unreadable
            );
            unreadable = Some(unreadable.map_or(why.clone(), |u| format!("{u}; {why}")));
        }
        let mut report = EraseReport {
            customer_id: customer_id.to_string(),
            erased: out.erased > 0,
            feedback_outcomes_subtracted: out.feedback_undone,
            unreadable,
            ..EraseReport::default()
        };
        report.training_examples_dropped = out.examples_dropped;
        report.catalogue_names_dropped = out.names_dropped;
        if let (true, Some((rec, firings))) = (report.erased, before) {
            report.events = rec.state.event_count;
            report.segment = rec.segment;
            report.trigger_firings_removed = firings;
            let consent = self.inner.config.consent_defaults;
            let profiled = crate::features::consent::Consent::of(&rec.state, consent).profiling;
            if report.events > 0 {
                if !profiled {
                    // Consent given when their events came (withdrawn since, or a store
                    // default that changed) let those events train the models: say so.
                    report.kept_in_models.push(
                        "they do not consent to profiling now, and their events since the \
                         withdrawal trained nothing; events that came while they did (consent \
                         given then, or a store default that allowed it) trained the models as \
                         follows"
                            .to_string(),
                    );
                }
                report.kept_in_models.extend([
                    format!(
                        "the feature scaler's running means and variances saw their profile at \
                         each of their {} events; not undone (the vectors are not kept)",
                        report.events
                    ),
                    "the propensity weights moved by SGD on their training examples already \
                     learned, and refits on rows of theirs; not undone (gradient steps \
                     cannot be subtracted)"
                        .to_string(),
                    CENTROIDS_KEPT.to_string(),
                    "item popularity and co-occurrence counts of items others also named, and the \
                     drift statistics; not undone"
                        .to_string(),
                ]);
            }
        }
        Ok(report)
    }

    /// Erases a customer as [`Db::erase_report`] does, then takes what can be taken of their
    /// influence out of the models by retraining: the segment centroids are refitted from
    /// fresh starts on a sample of the profiles without them ([`Centroids::Fresh`], so the fit
    /// depends on that sample alone) and every profile is re-assigned, in batches of 1,000
    /// that interleave with ingestion. The report's `retrained` says what was refitted;
    /// `kept_in_models` what still carries their influence (the propensity's refit is replaced
    /// within a day of event time by one without them, as erasing removed their refit rows;
    /// see docs/privacy.md).
    ///
    /// Nothing is retrained for an unknown customer, one without events, or before the
    /// segments are seeded. A customer without consent to profiling now is retrained for all
    /// the same: events from before a withdrawal trained the models.
    ///
    /// # Errors
    /// As [`Db::erase`]; then storage errors of the re-assignment (the erase has happened:
    /// run `persona resegment --fresh` to finish it).
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// db.ingest(Event::new("c1", 1_767_225_600_000, EventKind::Click))?;
    /// let report = db.erase_and_retrain("c1")?;
    /// assert!(report.erased);
    /// assert!(report.retrained.is_empty()); // one click: no segments fitted yet
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn erase_and_retrain(&self, customer_id: &str) -> Result<EraseReport> {
        let mut report = self.erase_report(customer_id)?;
        if report.kept_in_models.is_empty() || !self.model().segments.is_seeded() {
            return Ok(report);
        }
        let r = self.resegment(1000, Centroids::Fresh)?;
        if !r.refitted {
            // Too few distinct profiles left to fit: the centroids before stay, and say so.
            report.kept_in_models.push(
                "the segments could not be refitted without them (fewer distinct profiles than \
                 segments): the centroids they were fitted into stay"
                    .to_string(),
            );
            return Ok(report);
        }
        report.retrained.push(format!(
            "segment centroids refitted from fresh starts on a sample without them; {} profiles \
             re-assigned, {} moved to another segment",
            r.scanned, r.changed
        ));
        report.kept_in_models.retain(|k| k != CENTROIDS_KEPT);
        Ok(report)
    }

    /// Erases every trace of a customer: profile record, retained history, de-duplication ids
    /// (events and feedback), pending training example, segment membership. Atomic and
    /// durable like any write, through the writer. Returns true if the customer existed; an
    /// unknown customer returns false and writes nothing. Afterwards the customer is unknown,
    /// and new events for the same id start a new profile (old event ids are forgotten too, so
    /// they are no longer recognised as duplicates).
    ///
    /// The models keep their aggregates (centroids, weights, per-segment action statistics),
    /// which the customer contributed to but which hold nothing that identifies them; the
    /// customer's share of the segment sizes and sums is removed.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] for an invalid customer id (nothing changes); storage errors if
    /// the commit fails (nothing is erased).
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// db.ingest(Event::new("c1", 1_767_225_600_000, EventKind::Click))?;
    /// assert!(db.erase("c1")?);
    /// assert!(db.profile("c1")?.is_none());
    /// assert!(!db.erase("c1")?);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn erase(&self, customer_id: &str) -> Result<bool> {
        validate_customer_id(customer_id)?;
        let out = self.maintain(Maintenance::Erase(vec![customer_id.to_string()]))?;
        Ok(out.erased > 0)
    }

    /// Everything held about one customer — attributes, features and raw accumulators, version
    /// and every retained version, segment, distance, propensity, the pending training
    /// example, how many de-duplication and feedback ids are held — or `None` if unknown.
    /// [`CustomerExport::to_json`] gives the JSON document.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] for an invalid customer id; [`Error::Corruption`] if the record
    /// does not decode.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// db.ingest(Event::new("c1", 1_767_225_600_000, EventKind::Click).with_id("e1"))?;
    /// let doc = db.export_customer("c1")?.expect("known").to_json();
    /// assert_eq!(doc["version"], 1);
    /// assert_eq!(doc["dedupe_ids_held"], 1);
    /// assert!(db.export_customer("nobody")?.is_none());
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn export_customer(&self, customer_id: &str) -> Result<Option<CustomerExport>> {
        validate_customer_id(customer_id)?;
        let Some(record) = self.inner.store.profile(customer_id)? else {
            return Ok(None);
        };
        let store = &self.inner.store;
        let (held, mut cohorts) = store.examples_of(customer_id)?;
        if let Some(open) = self.open_row(customer_id, &record, &cohorts)? {
            cohorts.push(open);
        }
        let horizon = self.inner.config.horizon_ms();
        let cohorts = cohorts
            .into_iter()
            .map(|(at, row)| (at.saturating_add(horizon), row))
            .collect();
        let triggers = store.firings_of(customer_id)?;
        let feedback = store
            .feedback_of(customer_id)?
            .into_iter()
            .map(|(_, f)| f)
            .collect::<Result<_>>()?;
        let examples = export::StoredExamples {
            held,
            cohorts,
            triggers,
            feedback,
        };
        Ok(Some(export::export(
            customer_id,
            &record,
            &self.model(),
            &self.inner.layout,
            store.params(),
            &examples,
            self.inner.config.consent_defaults,
        )))
    }

    /// A sampled customer's refit row for the day still open, which the writer holds in memory
    /// until the day closes (`pipeline/cohorts.rs`, "Persisted"): rebuilt from their record as
    /// the store does at open, given their `stored` rows. None if they are not sampled, do not
    /// consent to profiling, or have not changed since their latest stored row.
    fn open_row(
        &self,
        customer_id: &str,
        record: &crate::storage::record::ProfileRecord,
        stored: &[crate::storage::CohortExample],
    ) -> Result<Option<crate::storage::CohortExample>> {
        use crate::pipeline::{cohorts, sample};
        let config = &self.inner.config;
        let layout = self.layout();
        let until = crate::storage::refit_block_end(self.model().watermark_ms, config.horizon_ms());
        let target = config.target_kind.index();
        let defaults = config.consent_defaults;
        let Some(row) = cohorts::consenting_row(layout, &record.state, target, defaults, until)
        else {
            return Ok(None);
        };
        if !self
            .inner
            .store
            .is_sampled(sample::hash(customer_id), customer_id)?
        {
            return Ok(None);
        }
        // Their stored rows are in time order (`R` keys sort by time): the last is their latest.
        let unchanged = stored
            .last()
            .is_some_and(|(_, latest)| cohorts::same_state(layout, latest, &row));
        Ok((!unchanged).then_some((until, row)))
    }

    /// Applies the retention policy now: erases (as [`Db::erase`] does) every profile whose
    /// last event is more than `profile_ttl_days` older than the watermark, in batches of 1000
    /// profiles, each its own commit so ingestion interleaves. Profiles with attributes but no
    /// events are kept.
    ///
    /// # Errors
    /// [`Error::Config`] if `profile_ttl_days` is not set; storage errors from a commit
    /// (batches committed before it stay erased).
    pub fn purge(&self) -> Result<PurgeReport> {
        let Some(days) = self.inner.config.profile_ttl_days else {
            return Err(Error::Config(
                "profile_ttl_days is not set; set it in the configuration file (for example \
                 profile_ttl_days = 365) to purge inactive profiles"
                    .into(),
            ));
        };
        self.purge_older_than(days)
    }

    /// Like [`Db::purge`] with a retention period of `ttl_days` instead of the configured one.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `ttl_days` is finite, > 0 and at most
    /// 365,000 days; storage errors from a commit.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let day = 86_400_000;
    /// let t = 1_767_225_600_000;
    /// db.ingest(Event::new("old", t, EventKind::Click))?;
    /// db.ingest(Event::new("new", t + 100 * day, EventKind::Click))?;
    /// let report = db.purge_older_than(30.0)?;
    /// assert_eq!(report.erased, 1);
    /// assert!(db.profile("old")?.is_none());
    /// assert!(db.profile("new")?.is_some());
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn purge_older_than(&self, ttl_days: f64) -> Result<PurgeReport> {
        let max = crate::config::MAX_TTL_DAYS;
        if !(ttl_days.is_finite() && ttl_days > 0.0 && ttl_days <= max) {
            return Err(Error::invalid_argument(
                "ttl_days",
                format!("{ttl_days} must be a number of days > 0 and <= {max}"),
            ));
        }
        let watermark_ms = self.model().watermark_ms;
        let ttl_ms = (ttl_days * 86_400_000.0) as i64;
        let mut report = PurgeReport {
            ttl_days,
            watermark_ms,
            cutoff_ms: watermark_ms.saturating_sub(ttl_ms),
            ..PurgeReport::default()
        };
        if watermark_ms == 0 {
            return Ok(report); // no event yet: nothing has an age
        }
        // Candidates are found by a read-only scan (the writer goes on meanwhile) and erased in
        // groups, each group one maintenance batch that checks every candidate again. Grouping
        // matters: a batch that erases rewrites the persisted expiry queue's checkpoint (no
        // queue record may name an erased customer), so fewer, larger batches write less.
        let mut group: Vec<String> = Vec::new();
        let erase_group = |group: &mut Vec<String>, report: &mut PurgeReport| -> Result<()> {
            let out = self.maintain(Maintenance::Purge {
                ids: std::mem::take(group),
                cutoff_ms: report.cutoff_ms,
            })?;
            report.erased += out.erased;
            report.batches += 1;
            Ok(())
        };
        for item in self.inner.store.profiles_after(None) {
            let (id, bytes) = item?;
            report.scanned += 1;
            let Ok(head) = RecordState::decode(&|| format!("profile {id:?}"), &bytes) else {
                continue; // a damaged record is kept; `persona check` reports it
            };
            if head
                .state
                .last_seen_ms
                .is_some_and(|t| t < report.cutoff_ms)
            {
                group.push(id);
                if group.len() == PURGE_BATCH {
                    erase_group(&mut group, &mut report)?;
                }
            }
        }
        if !group.is_empty() {
            erase_group(&mut group, &mut report)?;
        }
        Ok(report)
    }
}
