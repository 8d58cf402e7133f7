//! Lookalike queries (`similar`) and the lifecycle of the in-memory lookalike index they use.

use super::*;
use crate::error::Result;
use crate::event::validate_customer_id;
use crate::features::consent::{self, Consent};
use crate::index::BuildState;
use crate::model::ModelState;
use crate::query::similar::Scan;
use crate::query::{similar, SimilarCustomer};
use std::thread::JoinHandle;

/// Where the background build of the lookalike index stands.
pub(super) enum IndexBuilder {
    /// Nothing has needed the index yet: short-lived handles (a CLI command) never scan.
    NotStarted,
    /// Scanning the records in this thread.
    Started(JoinHandle<()>),
    /// The store is closed (or closing): never start.
    Closed,
}

/// Candidates shortlisted from the lookalike index for an exact re-rank of `k` neighbours.
/// Re-ranking fetches and decodes one record per candidate (~5 µs each when sled has the page
/// cached, 30–45 µs at 1M customers when it does not), so this bounds the cost of `similar`;
/// the approximate distances are close enough that the true neighbours rank inside it (at 1M
/// customers recall@10 is bounded by which sub-lists are scanned, not by this length:
/// docs/bench-history.md; tests/query.rs and tests/lookalike_index.rs measure recall against the
/// exact scan).
pub(super) fn shortlist_len(k: usize) -> usize {
    k.saturating_mul(5).max(50)
}

/// 1 / the scaler's divisor per dimension, exactly as [`crate::model::Scaler::transform`]
/// divides (it standardises `x` as `(x − mean) / divisor`, so transforming 1 and 0 differ by
/// 1 / divisor).
pub(super) fn inverse_divisors(model: &ModelState) -> Vec<f64> {
    let dim = model.scaler.dim();
    let zero = model.scaler.transform_vec(&vec![0.0; dim]);
    let one = model.scaler.transform_vec(&vec![1.0; dim]);
    one.iter().zip(&zero).map(|(a, b)| a - b).collect()
}

impl Db {
    /// The `k` customers most similar to `customer_id` (lookalikes), nearest first, excluding
    /// the customer, searched as `search` says. `None` for an unknown customer.
    ///
    /// # Errors
    /// [`Error::Corruption`](crate::Error::Corruption) if the customer's own record does not decode; damaged records of
    /// other customers are skipped (with a warning in the log).
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// for (id, v) in [("a", 10.0), ("b", 11.0), ("c", 500.0)] {
    ///     db.ingest(Event::new(id, t, EventKind::Purchase).with_value(v))?;
    /// }
    /// let similar = db.similar("a", 1, persona::Search::Exact)?.expect("a exists");
    /// assert_eq!(similar[0].customer_id, "b");
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn similar(
        &self,
        customer_id: &str,
        k: usize,
        search: Search,
    ) -> Result<Option<Vec<SimilarCustomer>>> {
        self.similar_where(customer_id, k, search, None)
            .map(|found| found.map(|(_, similar)| similar))
    }

    /// [`Db::similar`] among the customers `keep` accepts (all with None), with the customer's
    /// features (a cluster node asks the other nodes with them: `src/cluster/fanout.rs`).
    ///
    /// # Errors
    /// As [`Db::similar`].
    pub(crate) fn similar_where(
        &self,
        customer_id: &str,
        k: usize,
        search: Search,
        keep: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Option<(crate::features::ProfileState, Vec<SimilarCustomer>)>> {
        validate_customer_id(customer_id)?;
        let Some(rec) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        let consent = self.inner.config.consent_defaults;
        if !Consent::of(&rec.state, consent).profiling {
            return Err(consent::refused(customer_id, "profiling"));
        }
        let found = self.similar_to(&rec.state, customer_id, k, search, keep)?;
        Ok(Some((rec.state, found)))
    }

    /// The `k` customers most similar to a customer with features `state` (not `exclude`)
    /// among those `keep` accepts, as [`Db::similar`] searches.
    ///
    /// # Errors
    /// As [`Db::similar`].
    pub(crate) fn similar_to(
        &self,
        state: &crate::features::ProfileState,
        exclude: &str,
        k: usize,
        search: Search,
        keep: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Vec<SimilarCustomer>> {
        let model = self.model();
        let z = self.standardised(state, &model);
        let scan = self.similar_scan(state, &model, k, search == Search::Exact)?;
        similar::search(
            &self.inner.store,
            &model,
            &self.inner.layout,
            &z,
            similar::Eligible {
                exclude,
                consent: self.inner.config.consent_defaults,
                keep,
            },
            k,
            scan,
        )
    }

    /// Which profiles [`Db::similar`] evaluates exactly for a customer in `state`.
    pub(super) fn similar_scan(
        &self,
        state: &crate::features::ProfileState,
        model: &ModelState,
        k: usize,
        exact: bool,
    ) -> Result<Scan> {
        if exact || !model.segments.is_seeded() {
            return Ok(Scan::All);
        }
        let index = &self.inner.shared.lookalikes;
        self.inner.start_index_build()?;
        if !index.is_ready() {
            // Until the background build after open is done: the exact search.
            return Ok(Scan::All);
        }
        // Members were assigned as of their last write, when they had just been active; the
        // customers similar to this one *now* were assigned near where this one was at its
        // own last activity. Probe around both positions.
        let nprobe = self.inner.config.nprobe;
        let at_last_write = self
            .inner
            .layout
            .vector(state, state.last_seen_ms.unwrap_or(model.watermark_ms));
        let mut segs: Vec<u16> = Vec::new();
        for (s, _) in model
            .segments
            .assign_n(&self.as_of_now(state, model), nprobe)
            .into_iter()
            .chain(model.segments.assign_n(&at_last_write, nprobe))
        {
            if !segs.contains(&(s as u16)) {
                segs.push(s as u16);
            }
        }
        // Shortlist from the compact vectors, brought forward to now; the exact re-rank
        // decodes only the shortlist.
        let now = model.watermark_ms;
        let x = self.inner.layout.vector(state, now);
        let query = index.query(&x, &inverse_divisors(model), now);
        // +1: the customer itself is usually on its own shortlist.
        Ok(Scan::Candidates(index.shortlist(
            &query,
            &segs,
            shortlist_len(k) + 1,
        )))
    }

    /// The first step of indexed [`Db::similar`] alone: the candidates the lookalike index
    /// shortlists for `customer_id` (how many), without the exact re-rank. `None` for an
    /// unknown customer or when the index is not ready. For benchmarks (the re-rank's share).
    ///
    /// # Errors
    /// As [`Db::similar`].
    #[cfg(feature = "cli")]
    pub(crate) fn lookalike_shortlist_len(
        &self,
        customer_id: &str,
        k: usize,
    ) -> Result<Option<usize>> {
        validate_customer_id(customer_id)?;
        let Some(rec) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        let model = self.model();
        Ok(match self.similar_scan(&rec.state, &model, k, false)? {
            Scan::Candidates(ids) => Some(ids.len()),
            Scan::All => None,
        })
    }

    /// Starts rebuilding the lookalike index of the stored profiles in the background now,
    /// instead of at the first [`Db::similar`] (which scans the records until the index is
    /// ready). A long-running process that answers `similar` calls it once after open; calling
    /// it again does nothing.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the background thread cannot be spawned.
    pub fn prepare_lookalikes(&self) -> Result<()> {
        self.inner.start_index_build()
    }

    /// Starts the lookalike index's background build if it has not started, and blocks until
    /// it is built; true if it is ready (false if its build failed or was stopped: `similar`
    /// then scans the records): a program that wants `similar` at full speed from its first
    /// call waits for it once after open.
    pub fn wait_for_lookalike_index(&self) -> bool {
        if self.inner.start_index_build().is_err() {
            return false;
        }
        self.inner.shared.lookalikes.wait_built() == BuildState::Ready
    }

    /// Every customer in the lookalike index with its segment and compact row (codes and the
    /// time they are as of, in days), in id order; `None` until the index is built. For tests.
    #[cfg(feature = "testing")]
    pub(crate) fn lookalike_index_rows(&self) -> Option<Vec<LookalikeRow>> {
        let index = &self.inner.shared.lookalikes;
        index.is_ready().then(|| index.rows())
    }

    /// Customers in the lookalike index. For benchmarks.
    #[cfg(any(feature = "cli", feature = "testing"))]
    pub(crate) fn lookalike_index_len(&self) -> usize {
        self.inner.shared.lookalikes.len()
    }

    /// Approximate heap bytes of the co-occurrence table of `recommend`, once rebuilt (waits
    /// for the rebuild). For benchmarks.
    #[cfg(feature = "cli")]
    pub(crate) fn co_occurrence_bytes(&self) -> usize {
        self.inner
            .shared
            .together
            .read(true, |t| t.heap_bytes())
            .unwrap_or(0)
    }

    /// Seconds from the open until the co-occurrence rebuild was done (0 if none was needed);
    /// call after [`Db::co_occurrence_bytes`]. For benchmarks.
    #[cfg(feature = "cli")]
    pub(crate) fn co_occurrence_ready_secs(&self) -> f64 {
        self.inner.shared.together.ready_secs()
    }

    /// Approximate heap bytes held by the lookalike index. For benchmarks.
    #[cfg(feature = "cli")]
    pub(crate) fn lookalike_index_bytes(&self) -> usize {
        self.inner.shared.lookalikes.heap_bytes()
    }
}
