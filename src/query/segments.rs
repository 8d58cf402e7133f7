//! Segment summaries: size, centroid in feature units, a human-readable label.
//!
//! Centroids live in standardised space (the scaler's z-scores); for people they are mapped back
//! to feature units with the current scaler and described relative to the average customer:
//! "high spend · frequent · recent · mostly purchase · top category: books".

use crate::event::EventKind;
use crate::features::vector::{FeatureLayout, DECAYED_KINDS, MIX_KINDS, PURCHASES, RECENCY, SPEND};
use crate::model::ModelState;
use serde::Serialize;

/// One segment, described.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentInfo {
    /// Segment number.
    pub id: u16,
    /// Profiles assigned to it in the membership index.
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
    let mean = model.scaler.mean();
    (0..model.segments.k())
        .map(|i| {
            let z = model.segments.centroid(i);
            let raw: Vec<f64> = z
                .iter()
                .enumerate()
                .map(|(d, zv)| zv * model.scaler.std_dev(d) + mean[d])
                .collect();
            SegmentInfo {
                id: i as u16,
                size: model.segment_sizes.get(i).copied().unwrap_or(0),
                label: label(z, &raw, layout, category_name),
                recency_days: raw[RECENCY].exp_m1().max(0.0),
                purchases: raw[PURCHASES].exp_m1().max(0.0),
                spend: raw[SPEND].exp_m1().max(0.0),
                propensity: model.propensity.predict(z),
                centroid: raw,
            }
        })
        .collect()
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
