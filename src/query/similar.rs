//! Lookalikes: the customers most similar to a given one.
//!
//! Distance is Euclidean between standardised feature vectors, every profile evaluated as of the
//! watermark from its record. `search` does that evaluation for the profiles a `Scan` names:
//! all of them (`exact`), a shortlist taken from the in-memory lookalike index
//! (`index`; the indexed search; while that index is still being rebuilt
//! after open, the indexed search scans all of them too). Either way the answer's distances are
//! exact; only which profiles are looked at is approximate.

use crate::error::Result;
use crate::features::consent::Consent;
use crate::features::vector::FeatureLayout;
use crate::model::ModelState;
use crate::storage::record::RecordCurrent;
use crate::storage::Store;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One similar customer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimilarCustomer {
    /// The customer.
    pub customer_id: String,
    /// Distance to the query customer (standardised units).
    pub distance: f64,
}

/// Heap entry ordered by distance (max-heap keeps the current worst on top).
struct Candidate(f64, String);

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .total_cmp(&other.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

/// Which profiles [`search`] evaluates exactly.
pub(crate) enum Scan {
    /// Every profile (the exact search).
    All,
    /// These customers: a shortlist from the lookalike index.
    Candidates(Vec<String>),
}

/// Who may be a lookalike: anyone but the customer asking, among those who consent to
/// profiling (`consent`: the store's defaults).
pub(crate) struct Eligible<'a> {
    /// The customer the search is for.
    pub(crate) exclude: &'a str,
    /// The consent of a customer who set none.
    pub(crate) consent: Consent,
    /// The customers that may be answered (a cluster node: those of the partitions it owns
    /// now); None: all.
    pub(crate) keep: Option<&'a dyn Fn(&str) -> bool>,
}

/// The `k` customers nearest to `query` (a standardised vector) among the profiles `scan`
/// names that are `eligible`, each evaluated as of the watermark from its record.
pub(crate) fn search(
    store: &Store,
    model: &ModelState,
    layout: &FeatureLayout,
    query: &[f64],
    eligible: Eligible<'_>,
    k: usize,
    scan: Scan,
) -> Result<Vec<SimilarCustomer>> {
    let Eligible {
        exclude,
        consent,
        keep,
    } = eligible;
    let now = model.watermark_ms;
    let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(k + 1);
    let mut x = vec![0.0; layout.dim()];
    let mut z = vec![0.0; layout.dim()];
    // A damaged record must not fail every lookalike query: it is skipped (reads of that
    // customer report it, and `persona check` lists it).
    let decode = |id: &str, bytes: &[u8]| match store.decode_profile_current(id, bytes) {
        Ok(rec) => Some(rec),
        Err(e) => {
            tracing::warn!("similar: skipping a candidate: {e}");
            None
        }
    };
    let mut consider = |id: &str, rec: &RecordCurrent| {
        // A customer without consent to profiling is nobody's lookalike.
        if id == exclude
            || keep.is_some_and(|keep| !keep(id))
            || !Consent::of(&rec.state, consent).profiling
        {
            return;
        }
        layout.write_vector(&rec.state, now, &mut x);
        model.scaler.transform(&x, &mut z);
        let d2: f64 = z.iter().zip(query).map(|(a, b)| (a - b) * (a - b)).sum();
        if heap.len() < k {
            heap.push(Candidate(d2, id.to_string()));
        } else if heap.peek().is_some_and(|w| d2 < w.0) {
            heap.pop();
            heap.push(Candidate(d2, id.to_string()));
        }
    };
    match scan {
        Scan::All => {
            for item in store.scan_profiles() {
                let (id, bytes) = item?;
                if let Some(rec) = decode(&id, &bytes) {
                    consider(&id, &rec);
                }
            }
        }
        Scan::Candidates(ids) => {
            for id in ids {
                // Gone since the shortlist was taken (erased): not a lookalike any more.
                if let Some(bytes) = store.raw_profile(&id)? {
                    if let Some(rec) = decode(&id, &bytes) {
                        consider(&id, &rec);
                    }
                }
            }
        }
    }
    let mut out: Vec<SimilarCustomer> = heap
        .into_vec()
        .into_iter()
        .map(|Candidate(d2, id)| SimilarCustomer {
            customer_id: id,
            distance: d2.sqrt(),
        })
        .collect();
    out.sort_by(nearest_first);
    Ok(out)
}

/// The order of a lookalike answer: by distance, then by customer id.
pub(crate) fn nearest_first(a: &SimilarCustomer, b: &SimilarCustomer) -> Ordering {
    a.distance
        .total_cmp(&b.distance)
        .then_with(|| a.customer_id.cmp(&b.customer_id))
}
