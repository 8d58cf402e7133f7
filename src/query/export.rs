//! Everything stored about one customer, as one document: the answer to a data-subject access
//! request (`Db::export_customer`, `persona export-customer`, `PROFILE.EXPORT`).
//!
//! The document is built from the customer's profile record alone — the only place Persona keeps
//! anything about a single customer. The models hold aggregates only (centroids, weights,
//! per-segment sums and counts), which are not per-customer data and are not exported.

use super::history::{self, HistoryItem};
use super::Profile;
use crate::features::consent;
use crate::features::vector::FeatureLayout;
use crate::features::{FeatureParams, ProfileState};
use crate::model::ModelState;
use crate::storage::record::ProfileRecord;
use serde::Serialize;

/// Everything Persona holds about one customer. Serialises to the JSON document printed by
/// `persona export-customer` and returned by `PROFILE.EXPORT` (see [`CustomerExport::to_json`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerExport {
    /// The customer.
    pub customer_id: String,
    /// The time the profiles below are evaluated at (the store's watermark), unix ms.
    pub as_of_ms: i64,
    /// Current profile version (number of events and attribute changes applied).
    pub version: u64,
    /// Oldest version still readable; older ones were folded into the base state.
    pub oldest_version: u64,
    /// The current profile as `persona profile --json` prints it: attributes, features as of
    /// `as_of_ms`, nearest segment and propensity with the current model.
    pub profile: serde_json::Value,
    /// The raw accumulators the features derive from (counts, decayed values, spend,
    /// category affinities, attributes).
    pub(crate) state: ProfileState,
    /// Segment recorded in the profile record at the last write.
    pub assigned_segment: Option<u16>,
    /// Distance to that segment's centroid when it was assigned (standardised units).
    pub assigned_distance: f64,
    /// Propensity predicted at the last write.
    pub propensity_at_last_write: f64,
    /// Every retained version, oldest first: what changed and the profile as
    /// `Db::profile_at_version` gives it.
    pub history: Vec<ExportedVersion>,
    /// The open training example waiting for its label, if any.
    pub pending_example: Option<ExportedExample>,
    /// Training examples stored with the customer's id: a positive held until its deadline,
    /// and their refit rows (what the propensity is refitted on). Oldest deadline first.
    pub training_examples: Vec<ExportedLabelledExample>,
    /// Event and feedback ids held for de-duplication (as 64-bit hashes; the ids themselves
    /// are never stored).
    pub dedupe_ids_held: usize,
    /// Of those, how many are ids of feedback attributed to this customer.
    pub feedback_ids_held: usize,
    /// Latest event time among ids that left the de-duplication window, if any.
    pub dedupe_floor_ms: Option<i64>,
    /// The trigger firings the outbox holds for this customer, oldest first.
    pub triggers: Vec<crate::triggers::Fired>,
    /// Consent per purpose now, and its changes in the retained history.
    pub consent: ExportedConsent,
    /// The strategy outcomes recorded for this customer (`FEEDBACK`), oldest first.
    pub feedback: Vec<crate::storage::feedback::FeedbackOutcome>,
}

/// A customer's consent in an export (`features/consent.rs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedConsent {
    /// Consent to profiling now (the store's default if the customer never set it).
    pub profiling: bool,
    /// Consent to marketing now (likewise).
    pub marketing: bool,
    /// Every change of either the retained history holds, oldest first.
    pub changes: Vec<ConsentChange>,
}

/// One change of consent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentChange {
    /// The profile version that recorded it.
    pub version: u64,
    /// `profiling` or `marketing`.
    pub purpose: &'static str,
    /// Whether consent was given (true) or withdrawn (false).
    pub granted: bool,
    /// When the writer recorded it (wall clock, unix ms).
    pub at_ms: Option<i64>,
}

/// One retained version of a profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedVersion {
    /// What changed at this version, and the segment and propensity right after.
    pub change: HistoryItem,
    /// The profile at this version, as `persona profile --version V --json` prints it.
    pub profile: serde_json::Value,
}

/// A training example waiting for its label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedExample {
    /// The example's checkpoint (event time, unix ms): its features are the profile as of then.
    pub taken_at_ms: i64,
    /// Raw features at that time, by feature name.
    pub features: serde_json::Map<String, serde_json::Value>,
    /// Whether the features are stored (`false`: not stored, derived from the profile, which
    /// has not changed since the checkpoint or, if it is still ahead, until now).
    pub stored: bool,
}

/// A training example stored with the customer's id (labelled, or waiting for its label).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedLabelledExample {
    /// The example's deadline (its checkpoint, or its cohort's time, plus one horizon), unix ms.
    pub deadline_ms: i64,
    /// Whether the customer made a target event within the horizon; `None` while the horizon
    /// has not ended.
    pub label: Option<bool>,
    /// `"held"`: a positive waiting for its deadline to be learned; `"refit_cohort"`: a row of a
    /// cohort the propensity will be refitted on once its horizon has ended.
    pub kept_as: &'static str,
    /// Raw features at the checkpoint (for a cohort, the time it was taken), by feature name.
    pub features: serde_json::Map<String, serde_json::Value>,
}

impl CustomerExport {
    /// The export as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|e| {
            // Every field is plain data with string keys; serialising cannot fail.
            serde_json::json!({ "customer_id": self.customer_id, "error": e.to_string() })
        })
    }
}

/// The training examples stored under keys of their own that name one customer.
pub(crate) struct StoredExamples {
    /// Positives held until their deadline (`H` keys).
    pub(crate) held: Vec<crate::storage::HeldExample>,
    /// Their refit rows (`R` keys), with their deadline (the row's time plus one horizon).
    pub(crate) cohorts: Vec<crate::storage::CohortExample>,
    /// The customer's trigger firings in the outbox (`T` keys).
    pub(crate) triggers: Vec<crate::triggers::Fired>,
    /// The customer's feedback ledger (`F` keys).
    pub(crate) feedback: Vec<crate::storage::feedback::FeedbackOutcome>,
}

/// Builds the export of one record.
pub(crate) fn export(
    customer_id: &str,
    record: &ProfileRecord,
    model: &ModelState,
    layout: &FeatureLayout,
    params: &FeatureParams,
    examples: &StoredExamples,
    consent: consent::Consent,
) -> CustomerExport {
    let names = layout.names();
    let by_name = |features: &[f32]| -> serde_json::Map<String, serde_json::Value> {
        names
            .iter()
            .zip(features)
            .map(|(n, v)| (n.clone(), serde_json::json!(f64::from(*v))))
            .collect()
    };
    let held = examples
        .held
        .iter()
        .map(|((deadline_ms, _), f)| ExportedLabelledExample {
            deadline_ms: *deadline_ms,
            label: Some(true),
            kept_as: "held",
            features: by_name(f),
        });
    let cohorts = examples
        .cohorts
        .iter()
        .map(|(deadline_ms, row)| ExportedLabelledExample {
            deadline_ms: *deadline_ms,
            label: None,
            kept_as: "refit_cohort",
            features: by_name(&row.features),
        });
    let mut training_examples: Vec<ExportedLabelledExample> = held.chain(cohorts).collect();
    training_examples.sort_by_key(|e| e.deadline_ms);
    let current = Profile::evaluate(
        customer_id,
        record.clone().into_current(),
        model,
        layout,
        consent,
    );
    // Every version is evaluated under the consent the customer gives now.
    let now = current.consent;
    let mut changes = history::recent(record, usize::MAX);
    changes.reverse();
    let mut consent_changes = Vec::new();
    let history = changes
        .into_iter()
        .filter_map(|change| {
            let (state, _, _) = record.state_at(change.version, params).ok()?;
            for (purpose, name, at) in [
                ("profiling", consent::PROFILING, consent::PROFILING_AT),
                ("marketing", consent::MARKETING, consent::MARKETING_AT),
            ] {
                // A change of consent is stamped by the writer; an answer set again is not one.
                let set = |n: &str| change.attributes.iter().any(|a| a == n);
                if !set(name) || !set(at) {
                    continue;
                }
                let granted = state.attributes.get(name).and_then(consent::parse);
                let at_ms = match state.attributes.get(at) {
                    Some(crate::AttrValue::Number(ms)) => Some(*ms as i64),
                    _ => None,
                };
                if let Some(granted) = granted {
                    consent_changes.push(ConsentChange {
                        version: change.version,
                        purpose,
                        granted,
                        at_ms,
                    });
                }
            }
            let profile =
                Profile::of_state(customer_id, change.version, state, model, layout, None, now);
            Some(ExportedVersion {
                profile: profile.to_json(&names),
                change,
            })
        })
        .collect();
    let pending_example = record.pending.as_ref().map(|p| {
        let values: Vec<f64> = if p.is_stored() {
            p.features.iter().map(|v| f64::from(*v)).collect()
        } else {
            layout.vector(&record.state, p.taken_at_ms)
        };
        ExportedExample {
            taken_at_ms: p.taken_at_ms,
            features: names
                .iter()
                .zip(values)
                .map(|(n, v)| (n.clone(), serde_json::json!(v)))
                .collect(),
            stored: p.is_stored(),
        }
    });
    CustomerExport {
        customer_id: customer_id.to_string(),
        as_of_ms: current.as_of_ms,
        version: record.version,
        oldest_version: record.oldest_version(),
        profile: current.to_json(&names),
        state: record.state.clone(),
        assigned_segment: record.segment,
        assigned_distance: f64::from(record.distance),
        propensity_at_last_write: f64::from(record.propensity),
        history,
        pending_example,
        training_examples,
        dedupe_ids_held: record.recent_ids.len(),
        // Feedback ids are remembered without an event time (see `pipeline::apply`).
        feedback_ids_held: record
            .recent_ids
            .iter()
            .filter(|(_, t)| *t == i64::MIN)
            .count(),
        dedupe_floor_ms: record.dedupe_floor_ms,
        triggers: examples.triggers.clone(),
        feedback: examples.feedback.clone(),
        consent: {
            let now = consent::Consent::of(&record.state, consent);
            ExportedConsent {
                profiling: now.profiling,
                marketing: now.marketing,
                changes: consent_changes,
            }
        },
    }
}
