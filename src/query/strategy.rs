//! From segments to actions: which marketing action to take for a customer now.
//!
//! Each segment gets a rule-based default action from its members' statistics as of now
//! ([`rule_for`]: lapsing segments get `win_back_coupon`, big spenders `vip_offer`, cart
//! abandoners `cart_reminder`, engaged non-buyers and newcomers `new_product`, otherwise
//! `none`). The rule only sets the prior; feedback moves the
//! per-(segment, action) Beta posteriors, and the recommendation is drawn by Thompson sampling
//! (or, with `greedy`, the best posterior mean). See [`crate::model::strategy`].

use crate::model::strategy::Posterior;
use crate::model::ModelState;
use crate::query::segment_stats::MemberStats;
use crate::query::segments::Traits;
use serde::Serialize;

/// A recommended action.
#[non_exhaustive]
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
    /// What to offer with the action (`Db::recommend`, at most three): items new to the
    /// customer for `new_product`, their own favourites for the other actions, none for
    /// `none` or when no event names an item.
    pub suggestions: Vec<crate::query::recommend::Suggestion>,
}

/// One action's statistics within a segment.
#[non_exhaustive]
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

/// The action the domain rules suggest for a segment with statistics `st` and traits
/// `traits` (see [`Traits`]), by name; the first rule that holds wins:
/// 1. *lapsing* → `win_back_coupon`: most members have been silent for longer than the
///    horizon and than customers usually are;
/// 2. *high spend* (and not lapsing) → `vip_offer`;
/// 3. cart abandoners — at least 0.5 cart adds per member and twice as many cart adds as
///    purchases → `cart_reminder`;
/// 4. engaged but not buying — fewer than half the members ever purchased — or newcomers —
///    median tenure under one horizon → `new_product`;
/// 5. otherwise `none`.
///
/// Every comparison is in raw units (days, counts, amounts) on the segment's own members as of
/// now. An action the catalogue lacks falls back to `none` where the caller looks it up.
pub fn rule_for(st: &MemberStats, traits: &Traits, horizon_days: f64) -> &'static str {
    if st.evaluated == 0 {
        "none"
    } else if traits.lapsing {
        "win_back_coupon"
    } else if traits.high_spend {
        "vip_offer"
    } else if st.cart_adds >= 0.5 && st.cart_adds >= 2.0 * st.purchases {
        "cart_reminder"
    } else if st.buyers < 0.5 || st.tenure_days.is_some_and(|t| t < horizon_days) {
        "new_product"
    } else {
        "none"
    }
}

/// The index of action `name` in `model`'s catalogue, or of `none` (or the first action) when
/// the catalogue lacks it.
pub fn action_index(model: &ModelState, name: &str) -> usize {
    let actions = model.strategy.actions();
    let find = |name: &str| actions.iter().position(|a| a == name);
    find(name).or_else(|| find("none")).unwrap_or(0)
}

/// Every action's statistics in `seg`, in catalogue order, the rule's action being `rule`.
pub fn summaries(model: &ModelState, seg: usize, rule: &str) -> Vec<ActionSummary> {
    let rule = action_index(model, rule);
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
        suggestions: Vec::new(),
    }
}
