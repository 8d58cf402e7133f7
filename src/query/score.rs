//! Propensity scores with their explanation: the features that pushed the score up or down.

use crate::features::vector::FeatureLayout;
use crate::features::ProfileState;
use crate::model::ModelState;
use serde::Serialize;

/// Contributions listed with a score.
pub const TOP_CONTRIBUTIONS: usize = 6;

/// One feature's part in a score: `weight × standardised value`, in logit units.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// Feature name.
    pub feature: String,
    /// The feature's value as the model sees it (`ln(1 + x)` for days, counts and amounts).
    pub value: f64,
    /// The same in its own unit (days, a count, an amount, a share, stars:
    /// `FeatureLayout::raw_values`); `None` where the quantity does not exist (days since a
    /// purchase that never happened) and for attribute slots.
    pub raw_value: Option<f64>,
    /// The unit of `raw_value`, for people: `days`, `count`, `amount`, `seconds`, `share`,
    /// `stars`, or empty.
    pub unit: &'static str,
    /// Standardised value (how unusual it is).
    pub z: f64,
    /// Contribution to the logit (positive raises the propensity).
    pub contribution: f64,
}

/// A customer's propensity and why.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// The customer.
    pub customer_id: String,
    /// P(target event within the horizon), as of `as_of_ms`.
    pub propensity: f64,
    /// The time the profile was evaluated at (the watermark).
    pub as_of_ms: i64,
    /// Model version used.
    pub model_version: u64,
    /// The model's bias (logit with every feature at its mean).
    pub bias: f64,
    /// The largest contributions by magnitude, largest first; empty for a profile without
    /// events, which gets the base rate.
    pub top: Vec<Contribution>,
}

/// Scores `state` as of the model's watermark.
pub(crate) fn score(
    customer_id: &str,
    state: &ProfileState,
    model: &ModelState,
    layout: &FeatureLayout,
) -> Score {
    let as_of_ms = model
        .watermark_ms
        .max(state.last_seen_ms.unwrap_or(i64::MIN));
    let x = layout.vector(state, as_of_ms);
    let raw = layout.raw_values(state, as_of_ms);
    let z = model.scaler.transform_vec(&x);
    let contributions = model.propensity.contributions(&z);
    let names = layout.name_list();
    // Rank dimensions by |contribution| (ties in dimension order), then name the top ones.
    let mut order: Vec<usize> = (0..contributions.len().min(names.len()).min(x.len())).collect();
    order.sort_by(|a, b| contributions[*b].abs().total_cmp(&contributions[*a].abs()));
    // A profile without events gets the base rate: no feature contributes.
    order.truncate(if state.event_count > 0 {
        TOP_CONTRIBUTIONS
    } else {
        0
    });
    let top: Vec<Contribution> = order
        .into_iter()
        .map(|i| Contribution {
            feature: names[i].clone(),
            value: x[i],
            raw_value: raw.get(i).copied().flatten(),
            unit: layout.unit(i).name(),
            z: z[i],
            contribution: contributions[i],
        })
        .collect();
    Score {
        customer_id: customer_id.to_string(),
        propensity: model.propensity_of(state.event_count, &z),
        as_of_ms,
        model_version: model.version,
        bias: model.propensity.bias(),
        top,
    }
}
