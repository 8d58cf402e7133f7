//! From segments to actions: which marketing action to take for a customer now.
//!
//! Each segment gets a rule-based default action from its centroid (the domain rules: big
//! spenders get `vip_offer`, lapsing buyers `win_back_coupon`, cart abandoners `cart_reminder`,
//! newcomers `new_product`, otherwise `none`). The rule only sets the prior; feedback moves the
//! per-(segment, action) Beta posteriors, and the recommendation is drawn by Thompson sampling
//! (or, with `greedy`, the best posterior mean). See [`crate::model::strategy`].

use crate::event::EventKind;
use crate::features::vector::{DECAYED_KINDS, DECAYED_PURCHASES, RECENCY, SPEND};
use crate::model::strategy::Posterior;
use crate::model::ModelState;
use serde::Serialize;

/// A recommended action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The customer.
    pub customer_id: String,
    /// The customer's segment as of the watermark.
    pub segment: u16,
    /// The segment's label.
    pub segment_label: String,
    /// The action to take.
    pub action: String,
    /// Posterior mean conversion rate of that action in that segment.
    pub expected_conversion: f64,
    /// Conversions observed for that (segment, action).
    pub successes: u64,
    /// Non-conversions observed for that (segment, action).
    pub failures: u64,
    /// The action the domain rules suggest for the segment (the prior's favourite).
    pub rule_action: String,
    /// Why, in one sentence.
    pub reason: String,
    /// Whether the choice was greedy (best posterior mean) rather than Thompson-sampled.
    pub greedy: bool,
}

/// One action's statistics within a segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionSummary {
    /// Action name.
    pub action: String,
    /// Conversions observed.
    pub successes: u64,
    /// Non-conversions observed.
    pub failures: u64,
    /// Posterior mean conversion rate (prior included).
    pub expected_conversion: f64,
}

/// The action the domain rules suggest for segment `seg`, as an index into the catalogue.
pub fn rule_action(model: &ModelState, seg: usize) -> usize {
    let actions = model.strategy.actions();
    let find = |name: &str| actions.iter().position(|a| a == name);
    let fallback = find("none").unwrap_or(0);
    if !model.segments.is_seeded() || seg >= model.segments.k() {
        return fallback;
    }
    let z = model.scaler.transform_vec(&model.segments.centroid(seg));
    let cart = z[DECAYED_KINDS + EventKind::CartAdd.index()];
    let rules = [
        (z[SPEND] > 0.5 && z[RECENCY] <= 0.5, "vip_offer"),
        (z[RECENCY] > 0.5 && z[SPEND] > -0.5, "win_back_coupon"),
        (cart > 0.5 && z[DECAYED_PURCHASES] < cart, "cart_reminder"),
        (z[1] < -0.5, "new_product"),
    ];
    rules
        .iter()
        .filter(|(hit, _)| *hit)
        .find_map(|(_, name)| find(name))
        .unwrap_or(fallback)
}

/// Every action's statistics in `seg`, in catalogue order.
pub fn summaries(model: &ModelState, seg: usize) -> Vec<ActionSummary> {
    let rule = rule_action(model, seg);
    model
        .strategy
        .actions()
        .iter()
        .enumerate()
        .map(|(a, name)| {
            let s = model.strategy.stats(seg, a);
            ActionSummary {
                action: name.clone(),
                successes: s.successes,
                failures: s.failures,
                expected_conversion: model.strategy.posterior(seg, a, rule).mean(),
            }
        })
        .collect()
}

/// Builds the recommendation for a chosen action.
#[allow(clippy::too_many_arguments)]
pub(crate) fn explain(
    model: &ModelState,
    customer_id: &str,
    seg: usize,
    label: &str,
    action: usize,
    posterior: Posterior,
    rule: usize,
    greedy: bool,
) -> Recommendation {
    let names = model.strategy.actions();
    let name = names.get(action).cloned().unwrap_or_default();
    let rule_name = names.get(rule).cloned().unwrap_or_default();
    let s = model.strategy.stats(seg, action);
    let tried = s.successes + s.failures;
    let reason = if tried == 0 {
        if action == rule {
            format!("no feedback yet in segment {seg}; {name} is the rule for \"{label}\"")
        } else {
            format!(
                "no feedback yet for {name} in segment {seg}; exploring it (the rule says {rule_name})"
            )
        }
    } else {
        format!(
            "{name} converted {}/{tried} in segment {seg} (\"{label}\"); expected rate {:.1}%",
            s.successes,
            posterior.mean() * 100.0
        )
    };
    Recommendation {
        customer_id: customer_id.to_string(),
        segment: seg as u16,
        segment_label: label.to_string(),
        action: name,
        expected_conversion: posterior.mean(),
        successes: s.successes,
        failures: s.failures,
        rule_action: rule_name,
        reason,
        greedy,
    }
}
