//! Consent per purpose, kept as two attributes of the profile:
//!
//! - `consent.profiling`: the customer's events may train the shared models (propensity,
//!   segments, strategy, item tables) and the customer may be scored, segmented and found as a
//!   lookalike. Without it their events still update their own record (their history, counts
//!   and lists: what an access request exports), and nothing shared.
//! - `consent.marketing`: the customer may be acted on: `STRATEGY`, `RECOMMEND` and triggers.
//!
//! Each is `true` or `false` (also `1`, `0`, `yes`, `no`); a customer who never set one has
//! the store's default (`consent_profiling_default`, `consent_marketing_default`, both true).
//! The writer stamps every change with `consent.profiling_at` / `consent.marketing_at` (unix
//! ms, wall clock), so the profile history records when consent was given or withdrawn. No
//! other `consent.` name is allowed, and none of them is a model feature.

use super::{AttrValue, ProfileState};
use crate::error::{Error, Result};

/// The attribute of consent to profiling.
pub const PROFILING: &str = "consent.profiling";
/// The attribute of consent to marketing.
pub const MARKETING: &str = "consent.marketing";
/// The attribute the writer stamps with the time `consent.profiling` last changed.
pub const PROFILING_AT: &str = "consent.profiling_at";
/// The attribute the writer stamps with the time `consent.marketing` last changed.
pub const MARKETING_AT: &str = "consent.marketing_at";
/// What every consent attribute's name starts with.
pub const PREFIX: &str = "consent.";

/// A customer's consent per purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Consent {
    /// To profiling: training the shared models, being scored and segmented.
    pub profiling: bool,
    /// To marketing: strategy, recommendations, triggers.
    pub marketing: bool,
}

impl Default for Consent {
    fn default() -> Consent {
        Consent {
            profiling: true,
            marketing: true,
        }
    }
}

impl Consent {
    /// The consent of a profile in this state, `defaults` where it set none.
    pub fn of(state: &ProfileState, defaults: Consent) -> Consent {
        let get = |name: &str, default: bool| {
            state
                .attributes
                .get(name)
                .and_then(parse)
                .unwrap_or(default)
        };
        Consent {
            profiling: get(PROFILING, defaults.profiling),
            marketing: get(MARKETING, defaults.marketing),
        }
    }
}

/// A consent value: `true`, `false`, `yes`, `no` (any case), `1` or `0`.
pub fn parse(v: &AttrValue) -> Option<bool> {
    match v {
        AttrValue::Number(n) if *n == 1.0 => Some(true),
        AttrValue::Number(n) if *n == 0.0 => Some(false),
        AttrValue::Text(t) => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        AttrValue::Number(_) => None,
    }
}

/// Whether an attribute is about consent (and so no model feature).
pub fn is_consent(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// Checks an attribute a caller sets: under `consent.` only the two purposes, with a consent
/// value (the `_at` stamps are the writer's).
///
/// # Errors
/// [`Error::InvalidArgument`] naming the attribute and what is allowed.
pub fn validate(name: &str, value: &AttrValue) -> Result<()> {
    if !is_consent(name) {
        return Ok(());
    }
    if name != PROFILING && name != MARKETING {
        return Err(Error::invalid_argument(
            format!("attribute {name}"),
            format!(
                "the consent. names are reserved: allowed {PROFILING} and {MARKETING} (the \
                 writer stamps the _at times itself)"
            ),
        ));
    }
    if parse(value).is_none() {
        return Err(Error::invalid_argument(
            format!("attribute {name}"),
            format!("{value} is not a consent; allowed true, false, yes, no, 1 or 0"),
        ));
    }
    Ok(())
}

/// Why an action is refused for a customer without consent to `purpose`.
pub fn refused(customer: &str, purpose: &str) -> Error {
    Error::invalid_argument(
        "customer",
        format!("{customer:?} has not consented to {purpose} (consent.{purpose} is false)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_names_are_reserved() {
        assert_eq!(parse(&AttrValue::Text("No".into())), Some(false));
        assert_eq!(parse(&AttrValue::Number(1.0)), Some(true));
        assert_eq!(parse(&AttrValue::Text("maybe".into())), None);
        assert!(validate(PROFILING, &AttrValue::Text("yes".into())).is_ok());
        assert!(validate("region", &AttrValue::Text("maybe".into())).is_ok());
        let e = validate(MARKETING, &AttrValue::Text("maybe".into())).unwrap_err();
        assert!(e.to_string().contains("allowed true, false"), "{e}");
        let e = validate(PROFILING_AT, &AttrValue::Number(1.0)).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
        let mut s = ProfileState::new(&crate::features::FeatureParams {
            half_life_ms: 1e9,
            category_buckets: 4,
        });
        assert_eq!(Consent::of(&s, Consent::default()), Consent::default());
        s.attributes
            .insert(PROFILING.into(), AttrValue::Text("false".into()));
        let c = Consent::of(&s, Consent::default());
        assert!(!c.profiling && c.marketing);
    }
}
