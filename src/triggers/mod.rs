//! Triggers: conditions on a customer's profile that the writer checks as it applies each
//! event, and whose firings it writes in the same atomic batch as the event (a transactional
//! outbox), for a marketer's script to read.
//!
//! A [`Trigger`] has a name, a [`Condition`] (a *crossing*: the profile was not in the
//! condition before the event and is after it), an optional action to name in its firings, and
//! a per-customer cooldown. Definitions come from the config file (`[[triggers]]`, see
//! `README.md`) and from `TRIGGER.ADD` at run time (stored in the store, `Mtriggers`).
//!
//! A firing ([`Fired`]) gets the next id of a monotonically increasing sequence and is stored
//! with the batch of the event that caused it (one `T` key per batch, holding its firings): no firing exists for an event
//! that was not committed, and no committed event loses its firing, across crashes
//! (`docs/protocol.md`, "Triggers"). Firings within a trigger's cooldown for the customer, or
//! beyond the daily cap of firings per customer, are not written but counted as *suppressed*.
//!
//! `INACTIVE_DAYS n` is checked as the watermark advances, like the expiry of training examples:
//! the writer keeps, per such trigger, every customer's last event time plus `n` days, in order,
//! built at open (and when the trigger is defined) by a scan of the records. `DRIFT` fires when
//! the drift detector does (`model/drift.rs`), with no customer.
//!
//! `SEGMENT_ENTER` / `SEGMENT_LEAVE` take a segment id; at run time (`Db::trigger_add`) also a
//! segment's current label, resolved to its id when the trigger is defined.

mod silence;
mod state;

pub(crate) use state::{Firing, Observed, SilenceUndo, TriggerState};

use serde::{Deserialize, Serialize};

/// Longest trigger name, in bytes.
pub const MAX_NAME: usize = 64;
/// Longest cooldown, in days.
pub const MAX_COOLDOWN_DAYS: f64 = 3650.0;
/// The cooldown of a trigger defined without one, in days.
pub const DEFAULT_COOLDOWN_DAYS: f64 = 1.0;

/// When a trigger fires: the profile crosses into the condition with an event.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    /// The customer's segment becomes this one (`SEGMENT_ENTER id`).
    SegmentEnter(u16),
    /// The customer's segment stops being this one (`SEGMENT_LEAVE id`).
    SegmentLeave(u16),
    /// The propensity goes from below this value to at least it (`PROPENSITY_ABOVE x`).
    PropensityAbove(f64),
    /// The propensity goes from at least this value to below it (`PROPENSITY_BELOW x`).
    PropensityBelow(f64),
    /// The customer's first purchase (`FIRST_PURCHASE`).
    FirstPurchase,
    /// Lifetime spend goes from below this amount to at least it (`SPEND_ABOVE amount`).
    SpendAbove(f64),
    /// The customer has had no event for this many days, as the watermark (the latest event
    /// time) passes their last event plus the days (`INACTIVE_DAYS n`); once per silence.
    InactiveDays(f64),
    /// The drift detector fires on the propensity model (`DRIFT`): a firing with no customer.
    Drift,
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::SegmentEnter(s) => write!(f, "SEGMENT_ENTER {s}"),
            Condition::SegmentLeave(s) => write!(f, "SEGMENT_LEAVE {s}"),
            Condition::PropensityAbove(x) => write!(f, "PROPENSITY_ABOVE {x}"),
            Condition::PropensityBelow(x) => write!(f, "PROPENSITY_BELOW {x}"),
            Condition::FirstPurchase => write!(f, "FIRST_PURCHASE"),
            Condition::SpendAbove(x) => write!(f, "SPEND_ABOVE {x}"),
            Condition::InactiveDays(n) => write!(f, "INACTIVE_DAYS {n}"),
            Condition::Drift => write!(f, "DRIFT"),
        }
    }
}

/// A trigger definition (see the module docs).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Its name: 1 to 64 bytes of ASCII letters, digits, `_`, `-` and `.`; firings
    /// name it, and its `SUBSCRIBE` channel is `persona:trigger:<name>`.
    pub name: String,
    /// When it fires.
    pub when: Condition,
    /// The action its firings name (one of the store's strategy actions), if any.
    pub action: Option<String>,
    /// Days after a firing for a customer during which it does not fire again for them.
    pub cooldown_days: f64,
}

/// A trigger as `TRIGGER.LIST` shows it: its definition, where it was defined, and how often
/// it fired and was suppressed since the store was opened.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerInfo {
    /// The definition.
    pub trigger: Trigger,
    /// Defined in the config file (true) or at run time.
    pub from_config: bool,
    /// Firings written since the store was opened.
    pub fired: u64,
    /// Firings suppressed (cooldown, daily cap) since the store was opened.
    pub suppressed: u64,
}

/// A trigger that fired: what the outbox stores and `TRIGGER.READ` returns (JSON keys as the
/// field names).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fired {
    /// Position in the store's sequence of firings (from 1, increasing, never reused).
    pub id: u64,
    /// The trigger's name.
    pub trigger: String,
    /// The customer (empty for a `DRIFT` firing, which is about the model).
    pub customer: String,
    /// Event time of the event that made it fire, unix ms.
    pub time_ms: i64,
    /// What crossed, in words: "propensity 0.31 → 0.74", "segment 2 → 5", "first purchase",
    /// "spend 80.00 → 120.00", "no event for 30 days (last on 2026-01-05)", "drift on the
    /// propensity forecasts due 2026-03-01 (statistic 41.2)".
    pub reason: String,
    /// The trigger's action, if it names one.
    pub action: Option<String>,
    /// The action's observed conversion rate in the customer's segment (the strategy's
    /// recorded outcomes, `STRATEGY.FEEDBACK`), when the trigger names an action, the customer
    /// has a segment and outcomes were recorded.
    pub expected_conversion: Option<f64>,
    /// The customer's segment after the event.
    pub segment: Option<u16>,
    /// The customer's propensity after the event (for `INACTIVE_DAYS`: as last computed; none
    /// for `DRIFT`).
    pub propensity: Option<f64>,
}

impl Trigger {
    /// Parses a definition from its wire words: `name`, then the condition's words, then
    /// optionally `ACTION a` and `COOLDOWN days` (keywords in any case). `segments` is the
    /// store's number of segments, `actions` its strategy actions.
    ///
    /// # Errors
    /// A message naming the word that is wrong and what is allowed.
    pub fn parse(
        name: &str,
        words: &[&str],
        segments: usize,
        actions: &[String],
    ) -> Result<Trigger, String> {
        check_name(name)?;
        let mut rest = words;
        let keyword = |w: &str| w.to_ascii_uppercase();
        let Some(first) = rest.first() else {
            return Err(format!(
                "trigger {name}: a condition is missing; {CONDITIONS}"
            ));
        };
        let number = |what: &str, w: Option<&&str>| -> Result<f64, String> {
            let w = w.ok_or_else(|| format!("trigger {name}: {what} needs a number"))?;
            w.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("trigger {name}: {what} {w:?} is not a finite number"))
        };
        let segment = |what: &str, w: Option<&&str>| -> Result<u16, String> {
            let w = w.ok_or_else(|| format!("trigger {name}: {what} needs a segment id"))?;
            match w.parse::<u16>() {
                Ok(s) if usize::from(s) < segments => Ok(s),
                Ok(s) => Err(format!(
                    "trigger {name}: {what} {s}: no such segment; allowed 0..={}",
                    segments.saturating_sub(1)
                )),
                Err(_) => Err(format!(
                    "trigger {name}: {what} {w:?}: give the segment id (0..={}, see SEGMENT.LIST); \
                     a label is taken at run time (TRIGGER.ADD), not in the config file",
                    segments.saturating_sub(1)
                )),
            }
        };
        let (when, used) = match keyword(first).as_str() {
            "SEGMENT_ENTER" => (
                Condition::SegmentEnter(segment("SEGMENT_ENTER", rest.get(1))?),
                2,
            ),
            "SEGMENT_LEAVE" => (
                Condition::SegmentLeave(segment("SEGMENT_LEAVE", rest.get(1))?),
                2,
            ),
            k @ ("PROPENSITY_ABOVE" | "PROPENSITY_BELOW") => {
                let x = number(k, rest.get(1))?;
                if !(x > 0.0 && x < 1.0) {
                    return Err(format!(
                        "trigger {name}: {k} {x} is out of range; allowed between 0 and 1, exclusive"
                    ));
                }
                let c = if k == "PROPENSITY_ABOVE" {
                    Condition::PropensityAbove(x)
                } else {
                    Condition::PropensityBelow(x)
                };
                (c, 2)
            }
            "FIRST_PURCHASE" => (Condition::FirstPurchase, 1),
            "SPEND_ABOVE" => {
                let x = number("SPEND_ABOVE", rest.get(1))?;
                if x <= 0.0 {
                    return Err(format!(
                        "trigger {name}: SPEND_ABOVE {x} is out of range; allowed > 0"
                    ));
                }
                (Condition::SpendAbove(x), 2)
            }
            "INACTIVE_DAYS" => {
                let n = number("INACTIVE_DAYS", rest.get(1))?;
                if !(n > 0.0 && n <= MAX_COOLDOWN_DAYS) {
                    return Err(format!(
                        "trigger {name}: INACTIVE_DAYS {n} is out of range; allowed > 0 and ≤ {MAX_COOLDOWN_DAYS} days"
                    ));
                }
                (Condition::InactiveDays(n), 2)
            }
            "DRIFT" => (Condition::Drift, 1),
            _ => {
                return Err(format!(
                    "trigger {name}: unknown condition {first:?}; {CONDITIONS}"
                ))
            }
        };
        rest = &rest[used..];
        let mut action = None;
        let mut cooldown_days = DEFAULT_COOLDOWN_DAYS;
        while let Some(w) = rest.first() {
            match keyword(w).as_str() {
                "ACTION" => {
                    let a = rest
                        .get(1)
                        .ok_or_else(|| format!("trigger {name}: ACTION needs an action name"))?;
                    if !actions.iter().any(|x| x == a) {
                        return Err(format!(
                            "trigger {name}: ACTION {a:?} is not one of the store's actions: {}",
                            actions.join(", ")
                        ));
                    }
                    action = Some(a.to_string());
                }
                "COOLDOWN" => {
                    let d = number("COOLDOWN", rest.get(1))?;
                    if !(0.0..=MAX_COOLDOWN_DAYS).contains(&d) {
                        return Err(format!(
                            "trigger {name}: COOLDOWN {d} is out of range; allowed 0..={MAX_COOLDOWN_DAYS} days"
                        ));
                    }
                    cooldown_days = d;
                }
                _ => {
                    return Err(format!(
                        "trigger {name}: unexpected {w:?} after the condition; allowed ACTION a, COOLDOWN days"
                    ))
                }
            }
            rest = &rest[2..];
        }
        Ok(Trigger {
            name: name.to_string(),
            when,
            action,
            cooldown_days,
        })
    }

    /// The cooldown in milliseconds of event time.
    pub(crate) fn cooldown_ms(&self) -> i64 {
        (self.cooldown_days * crate::features::DAY_MS) as i64
    }

    /// The definition in wire words (what `TRIGGER.LIST` shows and `TRIGGER.ADD` takes).
    pub fn describe(&self) -> String {
        let mut s = format!("{} WHEN {}", self.name, self.when);
        if let Some(a) = &self.action {
            s.push_str(&format!(" ACTION {a}"));
        }
        s.push_str(&format!(" COOLDOWN {}", self.cooldown_days));
        s
    }
}

/// The conditions this build evaluates, for error messages.
const CONDITIONS: &str = "allowed: SEGMENT_ENTER id, SEGMENT_LEAVE id, PROPENSITY_ABOVE x, \
                          PROPENSITY_BELOW x, FIRST_PURCHASE, SPEND_ABOVE amount, \
                          INACTIVE_DAYS n, DRIFT";

/// Checks a trigger name (see [`Trigger::name`]).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    check_word("trigger name", name)
}

/// Checks a trigger consumer's name (as a trigger's).
pub(crate) fn check_consumer(name: &str) -> Result<(), String> {
    check_word("consumer name", name)
}

fn check_word(what: &str, name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(ok) {
        return Err(format!(
            "{what} {name:?}: allowed 1 to {MAX_NAME} ASCII letters, digits, '_', '-' or '.'"
        ));
    }
    Ok(())
}

/// A `[[triggers]]` entry of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerFile {
    name: String,
    when: String,
    action: Option<String>,
    cooldown_days: Option<f64>,
}

impl TriggerFile {
    /// The definition, checked like `TRIGGER.ADD`'s.
    pub(crate) fn parse(&self, segments: usize, actions: &[String]) -> Result<Trigger, String> {
        let mut words: Vec<String> = self.when.split_whitespace().map(str::to_string).collect();
        if let Some(a) = &self.action {
            words.extend(["ACTION".to_string(), a.clone()]);
        }
        if let Some(d) = self.cooldown_days {
            words.extend(["COOLDOWN".to_string(), d.to_string()]);
        }
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        Trigger::parse(&self.name, &words, segments, actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions() -> Vec<String> {
        vec!["vip_offer".to_string(), "win_back_coupon".to_string()]
    }

    fn parse(words: &str) -> Result<Trigger, String> {
        let w: Vec<&str> = words.split_whitespace().collect();
        Trigger::parse(w[0], &w[1..], 8, &actions())
    }

    #[test]
    fn definitions_parse_with_their_options_and_describe_themselves() {
        let t = parse("likely PROPENSITY_ABOVE 0.7 action vip_offer COOLDOWN 7").unwrap();
        assert_eq!(t.when, Condition::PropensityAbove(0.7));
        assert_eq!(t.action.as_deref(), Some("vip_offer"));
        assert_eq!(t.cooldown_days, 7.0);
        assert_eq!(
            t.describe(),
            "likely WHEN PROPENSITY_ABOVE 0.7 ACTION vip_offer COOLDOWN 7"
        );
        let t = parse("first first_purchase").unwrap();
        assert_eq!(t.when, Condition::FirstPurchase);
        assert_eq!(t.cooldown_days, DEFAULT_COOLDOWN_DAYS);
        assert_eq!(
            parse("lapse SEGMENT_ENTER 3").unwrap().when,
            Condition::SegmentEnter(3)
        );
    }

    #[test]
    fn bad_definitions_say_what_is_wrong() {
        let err = |w: &str| parse(w).unwrap_err();
        assert!(err("x PROPENSITY_ABOVE 1.5").contains("out of range"));
        assert!(err("x PROPENSITY_ABOVE nan").contains("not a finite number"));
        assert!(err("x SEGMENT_ENTER 8").contains("no such segment; allowed 0..=7"));
        assert!(err("x SEGMENT_ENTER lapsing").contains("give the segment id"));
        assert!(err("x INACTIVE_DAYS 0").contains("out of range"));
        assert_eq!(
            parse("quiet INACTIVE_DAYS 30").unwrap().when,
            Condition::InactiveDays(30.0)
        );
        assert_eq!(parse("d DRIFT").unwrap().when, Condition::Drift);
        assert!(err("x BOUGHT").contains("unknown condition"));
        assert!(err("x FIRST_PURCHASE ACTION coupon").contains("not one of the store's actions"));
        assert!(err("x FIRST_PURCHASE COOLDOWN -1").contains("out of range"));
        assert!(err("x FIRST_PURCHASE LOUDLY").contains("unexpected"));
        assert!(err("x SPEND_ABOVE 0").contains("allowed > 0"));
        assert!(Trigger::parse("bad name", &["FIRST_PURCHASE"], 8, &actions()).is_err());
        assert!(Trigger::parse("x", &[], 8, &actions())
            .unwrap_err()
            .contains("condition is missing"));
    }
}
