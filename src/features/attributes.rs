//! Customer attributes: static facts (age, region, plan, …) set through the API, not derived from
//! events. Any name is allowed; values are numbers or short texts, and both feed the feature
//! vector through hashed slots (see [`super::vector`]).

use crate::error::{Error, Result};
use crate::event::validate_text;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest attribute name, in bytes.
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 64;
/// Longest text attribute value, in bytes.
pub const MAX_ATTRIBUTE_TEXT_BYTES: usize = 256;
/// Most attributes one customer may have.
pub const MAX_ATTRIBUTES: usize = 64;

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttrValue {
    /// A number (age, income, …). Must be finite.
    Number(f64),
    /// A category (region, gender, plan, …): at most 256 bytes, no control characters.
    Text(String),
}

impl AttrValue {
    /// Reads a value typed as text: anything that parses as a finite number is a number,
    /// everything else is text. `"42"` → `Number(42.0)`, `"north"` → `Text("north")`.
    ///
    /// # Examples
    /// ```
    /// use persona::AttrValue;
    /// assert_eq!(AttrValue::from_text("42"), AttrValue::Number(42.0));
    /// assert_eq!(AttrValue::from_text("north"), AttrValue::Text("north".into()));
    /// ```
    pub fn from_text(s: &str) -> AttrValue {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => AttrValue::Number(v),
            _ => AttrValue::Text(s.to_string()),
        }
    }

    /// As JSON (a number or a string).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AttrValue::Number(v) => serde_json::json!(v),
            AttrValue::Text(s) => serde_json::json!(s),
        }
    }
}

impl From<f64> for AttrValue {
    fn from(v: f64) -> AttrValue {
        AttrValue::Number(v)
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> AttrValue {
        AttrValue::Text(s.to_string())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> AttrValue {
        AttrValue::Text(s)
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Number(v) => write!(f, "{v}"),
            AttrValue::Text(s) => f.write_str(s),
        }
    }
}

/// Checks one attribute name and value.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the attribute and what is wrong.
pub fn validate_attribute(name: &str, value: &AttrValue) -> Result<()> {
    // `e.value` is already escaped (control characters) or shortened; quoting it with `{:?}`
    // would escape it a second time ("a\\tb" for a name holding one tab).
    validate_text("attribute", name, MAX_ATTRIBUTE_NAME_BYTES, false).map_err(|e| {
        Error::invalid_argument("attribute name", format!("\"{}\" {}", e.value, e.reason))
    })?;
    match value {
        AttrValue::Number(v) if !v.is_finite() => Err(Error::invalid_argument(
            format!("attribute {name}"),
            format!("value {v} must be a finite number"),
        )),
        AttrValue::Number(_) => Ok(()),
        AttrValue::Text(s) => validate_text("attribute", s, MAX_ATTRIBUTE_TEXT_BYTES, true)
            .map_err(|e| {
                Error::invalid_argument(format!("attribute {name}"), format!("value {}", e.reason))
            }),
    }?;
    super::consent::validate(name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_validated() {
        assert!(validate_attribute("age", &AttrValue::Number(31.0)).is_ok());
        assert!(validate_attribute("region", &"north".into()).is_ok());
        let e = validate_attribute("", &AttrValue::Number(1.0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument attribute name: \"\" must not be empty"
        );
        let e = validate_attribute("age", &AttrValue::Number(f64::NAN)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument attribute age: value NaN must be a finite number"
        );
        let e = validate_attribute("a\tb", &AttrValue::Number(1.0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument attribute name: \"a\\tb\" contains control character U+0009; \
             control characters are not allowed"
        );
        let long = AttrValue::Text("x".repeat(257));
        assert!(validate_attribute("bio", &long)
            .unwrap_err()
            .to_string()
            .contains("257 bytes long; at most 256"));
    }
}
