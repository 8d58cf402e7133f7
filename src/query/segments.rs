//! Segment summaries: size, centroid in feature units, a human-readable label.
//!
//! Centroids live in standardised space (the scaler's z-scores); for people they are mapped back
//! to feature units with the current scaler and described relative to the average customer now
//! (the size-weighted mean of the centroids): "high spend · frequent · recent · mostly purchase ·
//! top category: books".

use crate::event::EventKind;
use crate::features::vector::{FeatureLayout, DECAYED_KINDS, MIX_KINDS, PURCHASES, RECENCY, SPEND};
use crate::model::ModelState;
use crate::query::strategy::{rule_action, summaries, ActionSummary};
use serde::Serialize;

/// One segment, described.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentInfo {
    /// Segment number.
    pub id: u16,
    /// Profiles assigned to it (whose record's segment is this one).
    pub size: u64,
    /// A short description derived from the centroid.
    pub label: String,
    /// Centroid mapped back to feature units (same layout as profile features).
    pub centroid: Vec<f64>,
    /// Typical days since last activity (from the centroid).
    pub recency_days: f64,
    /// Typical lifetime purchases (from the centroid).
    pub purchases: f64,
    /// Typical lifetime spend (from the centroid).
    pub spend: f64,
    /// Propensity of the centroid with the current model.
    pub propensity: f64,
    /// Mean lifetime spend of the current members.
    pub mean_spend: f64,
    /// Mean propensity of the current members (at their last write).
    pub mean_propensity: f64,
    /// The action the domain rules suggest for this segment.
    pub rule_action: String,
    /// The action with the best posterior mean conversion rate.
    pub best_action: String,
    /// Every action's feedback statistics in this segment.
    pub actions: Vec<ActionSummary>,
}

/// A segment and a distance to it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SegmentDistance {
    /// Segment number.
    pub segment: u16,
    /// Euclidean distance in standardised units.
    pub distance: f64,
}

/// Describes every segment of `model` (empty before seeding).
pub fn describe(
    model: &ModelState,
    layout: &FeatureLayout,
    category_name: &dyn Fn(usize) -> Option<String>,
) -> Vec<SegmentInfo> {
    if !model.segments.is_seeded() {
        return Vec::new();
    }
    let reference = population_centre(model);
    (0..model.segments.k())
        .map(|i| {
            // The centroid in the segments' own standardisation (the customers as of now, so
            // relative to `reference` it reads as "more / less than the average customer"),
            // in raw units, and as the propensity model standardises it.
            let z = model.segments.scaled_centroid(i);
            let raw = model.segments.centroid(i);
            let scored = model.scaler.transform_vec(&raw);
            let size = model.segment_sizes.get(i).copied().unwrap_or(0);
            let stats = model.segment_stats.get(i).copied().unwrap_or_default();
            let per = |sum: f64| if size > 0 { sum / size as f64 } else { 0.0 };
            let actions = summaries(model, i);
            let best_action = actions
                .iter()
                .max_by(|a, b| a.expected_conversion.total_cmp(&b.expected_conversion))
                .map(|a| a.action.clone())
                .unwrap_or_default();
            let rule = rule_action(model, i);
            SegmentInfo {
                id: i as u16,
                size,
                mean_spend: per(stats.spend_sum).max(0.0),
                mean_propensity: per(stats.propensity_sum).clamp(0.0, 1.0),
                rule_action: model
                    .strategy
                    .actions()
                    .get(rule)
                    .cloned()
                    .unwrap_or_default(),
                best_action,
                actions,
                label: label(&relative(z, &reference), &raw, layout, category_name),
                recency_days: raw[RECENCY].exp_m1().max(0.0),
                purchases: raw[PURCHASES].exp_m1().max(0.0),
                spend: raw[SPEND].exp_m1().max(0.0),
                propensity: model.propensity.predict(&scored),
                centroid: raw,
            }
        })
        .collect()
}

/// The size-weighted mean of the centroids: the average customer *now* (the scaler's mean is
/// the average over every event ever seen, when customers had just been active).
fn population_centre(model: &ModelState) -> Vec<f64> {
    let k = model.segments.k();
    let total: u64 = model.segment_sizes.iter().sum();
    let mut centre = vec![0.0; model.segments.dim()];
    for i in 0..k {
        let w = if total > 0 {
            model.segment_sizes.get(i).copied().unwrap_or(0) as f64 / total as f64
        } else {
            1.0 / k as f64
        };
        for (c, z) in centre.iter_mut().zip(model.segments.scaled_centroid(i)) {
            *c += w * z;
        }
    }
    centre
}

fn relative(z: &[f64], reference: &[f64]) -> Vec<f64> {
    z.iter().zip(reference).map(|(a, b)| a - b).collect()
}

fn label(
    z: &[f64],
    raw: &[f64],
    layout: &FeatureLayout,
    category_name: &dyn Fn(usize) -> Option<String>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    let level = |v: f64, hi: &str, lo: &str| -> Option<String> {
        if v > 0.5 {
            Some(hi.to_string())
        } else if v < -0.5 {
            Some(lo.to_string())
        } else {
            None
        }
    };
    parts.extend(level(z[SPEND], "high spend", "low spend"));
    let activity: f64 = (0..EventKind::COUNT)
        .map(|k| z[DECAYED_KINDS + k])
        .sum::<f64>()
        / EventKind::COUNT as f64;
    parts.extend(level(activity, "frequent", "occasional"));
    parts.extend(level(-z[RECENCY], "recent", "lapsing"));
    if let Some((k, share)) = (0..EventKind::COUNT)
        .map(|k| (k, raw[MIX_KINDS + k]))
        .max_by(|a, b| a.1.total_cmp(&b.1))
    {
        if share > 0.0 {
            parts.push(format!("mostly {}", EventKind::ALL[k]));
        }
    }
    let cats = layout.category_start();
    if let Some((b, share)) = (0..layout.params().category_buckets)
        .map(|b| (b, raw[cats + b]))
        .max_by(|a, b| a.1.total_cmp(&b.1))
    {
        if share > 0.05 {
            let name = category_name(b).unwrap_or_else(|| format!("bucket {b}"));
            parts.push(format!("top category: {name}"));
        }
    }
    if parts.is_empty() {
        "average".to_string()
    } else {
        parts.join(" · ")
    }
}
