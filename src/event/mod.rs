//! Events: the input to Persona, and the one place that decides what input is acceptable.
//!
//! An [`Event`] is one thing a customer did at one moment (of *event* time, unix milliseconds).
//! [`Event::validate`] checks every field and returns an [`InvalidEvent`] naming the field, the
//! offending value and what is allowed. Everything that enters the store passes through it, whether
//! it came from a file ([`crate::event::parse`]), the network or the Rust API.

#[cfg(any(feature = "cli", feature = "testing"))]
pub mod parse;

pub use crate::error::InvalidEvent;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest accepted customer id, in bytes of UTF-8.
pub const MAX_CUSTOMER_ID_BYTES: usize = 128;
/// Longest accepted event id, in bytes of UTF-8.
pub const MAX_EVENT_ID_BYTES: usize = 128;
/// Longest accepted category, in bytes of UTF-8.
pub const MAX_CATEGORY_BYTES: usize = 64;
/// Longest accepted item id, in bytes of UTF-8.
pub const MAX_ITEM_BYTES: usize = 128;
/// Earliest accepted timestamp: 1970-01-01T00:00:00Z (unix milliseconds 0), so that historical
/// logs import.
pub const MIN_TIMESTAMP_MS: i64 = 0;
/// Latest accepted timestamp: 2200-01-01T00:00:00Z in unix milliseconds.
pub const MAX_TIMESTAMP_MS: i64 = 7_258_118_400_000;
/// Largest accepted purchase or refund amount, and view duration in seconds.
pub const MAX_VALUE: f64 = 1e12;

/// The wall clock in unix milliseconds (0 if it is before 1970): the time of an event the server
/// dates itself, and the reference of the future-skew limit.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A unix-ms time as its UTC day (`2011-07-05`); the number itself if chrono cannot date it.
pub(crate) fn utc_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// What a customer did. The set is closed: an unknown kind is rejected, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Looked at a product page; `value` is seconds spent (>= 0).
    View,
    /// Clicked something (a banner, a link, a recommendation).
    Click,
    /// Ran a search.
    Search,
    /// Put a product in the cart.
    CartAdd,
    /// Bought something; `value` is the amount (>= 0).
    Purchase,
    /// Returned something; `value` is the refunded amount (>= 0).
    Refund,
    /// Liked a product or post.
    Like,
    /// Wrote a comment or review.
    Comment,
    /// Shared a product or post.
    Share,
    /// Rated a product; `value` is the number of stars, 1 to 5.
    Rating,
    /// Complained to support.
    Complaint,
}

impl EventKind {
    /// Every kind, in the fixed order used by the feature vector layout.
    pub const ALL: [EventKind; 11] = [
        EventKind::View,
        EventKind::Click,
        EventKind::Search,
        EventKind::CartAdd,
        EventKind::Purchase,
        EventKind::Refund,
        EventKind::Like,
        EventKind::Comment,
        EventKind::Share,
        EventKind::Rating,
        EventKind::Complaint,
    ];

    /// Number of kinds.
    pub const COUNT: usize = Self::ALL.len();

    /// The kind's wire name, as accepted by [`EventKind::parse`].
    ///
    /// # Examples
    /// ```
    /// use persona::EventKind;
    /// assert_eq!(EventKind::CartAdd.as_str(), "cart_add");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Click => "click",
            EventKind::Search => "search",
            EventKind::CartAdd => "cart_add",
            EventKind::Purchase => "purchase",
            EventKind::Refund => "refund",
            EventKind::Like => "like",
            EventKind::Comment => "comment",
            EventKind::Share => "share",
            EventKind::Rating => "rating",
            EventKind::Complaint => "complaint",
        }
    }

    /// The kind's position in [`EventKind::ALL`] (and in the feature vector's per-kind blocks).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a wire name (exact, lowercase).
    ///
    /// # Errors
    /// Returns an [`InvalidEvent`] for field `kind` listing the accepted names.
    ///
    /// # Examples
    /// ```
    /// use persona::EventKind;
    /// assert_eq!(EventKind::parse("purchase")?, EventKind::Purchase);
    /// assert!(EventKind::parse("buy").is_err());
    /// # Ok::<(), persona::InvalidEvent>(())
    /// ```
    pub fn parse(s: &str) -> Result<EventKind, InvalidEvent> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidEvent::new("kind", s, format!("must be one of: {}", kind_list())))
    }

    /// Whether `value` is required for this kind (purchase, refund, rating).
    pub fn requires_value(self) -> bool {
        matches!(
            self,
            EventKind::Purchase | EventKind::Refund | EventKind::Rating
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn kind_list() -> String {
    EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One customer event.
///
/// Build one with [`Event::new`] and the `with_*` setters; [`Event::validate`] runs on every
/// ingest, so an invalid event is rejected before it changes anything.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Idempotency key: an event whose id the customer's de-duplication window remembers is
    /// acknowledged as a duplicate and changes nothing. `None` means the event has no identity
    /// to compare: every ingest of it counts. File readers give id-less rows a stable hash of
    /// the row instead ([`Event::row_id`]), so that a re-import is idempotent.
    pub event_id: Option<String>,
    /// The customer: 1 to 128 bytes of UTF-8, no control characters.
    pub customer_id: String,
    /// Event time, unix milliseconds (between 1970-01-01 and 2200-01-01; the store also refuses
    /// times more than `max_future_skew_secs` past its watermark and the wall clock).
    pub timestamp_ms: i64,
    /// What happened.
    pub kind: EventKind,
    /// Amount (purchase, refund), seconds (view), stars (rating); optional for other kinds.
    pub value: Option<f64>,
    /// Optional product category (at most 64 bytes, no control characters).
    pub category: Option<String>,
    /// Optional item (a product or content id: at most 128 bytes, no control characters). The
    /// customer's most engaged items are kept with their profile (`Profile::top_items`).
    #[serde(default)]
    pub item: Option<String>,
}

impl Event {
    /// A new event with no value, category or explicit id.
    ///
    /// # Examples
    /// ```
    /// use persona::{Event, EventKind};
    /// let e = Event::new("c42", 1_767_225_600_000, EventKind::Purchase)
    ///     .with_value(19.90)
    ///     .with_category("books")
    ///     .with_id("order-1");
    /// assert!(e.validate().is_ok());
    /// ```
    pub fn new(customer_id: impl Into<String>, timestamp_ms: i64, kind: EventKind) -> Event {
        Event {
            event_id: None,
            customer_id: customer_id.into(),
            timestamp_ms,
            kind,
            value: None,
            category: None,
            item: None,
        }
    }

    /// Sets the value (amount, seconds or stars, depending on the kind).
    pub fn with_value(mut self, value: f64) -> Event {
        self.value = Some(value);
        self
    }

    /// Sets the category.
    pub fn with_category(mut self, category: impl Into<String>) -> Event {
        self.category = Some(category.into());
        self
    }

    /// Sets the item (a product or content id).
    pub fn with_item(mut self, item: impl Into<String>) -> Event {
        self.item = Some(item.into());
        self
    }

    /// Sets the idempotency key.
    pub fn with_id(mut self, id: impl Into<String>) -> Event {
        self.event_id = Some(id.into());
        self
    }

    /// The value used by the features: the given value, or 1 for kinds where it is optional.
    pub fn effective_value(&self) -> f64 {
        self.value.unwrap_or(1.0)
    }

    /// A stable hash of every field but the id (`h:` + 16 hex digits): the id file readers give
    /// a row without one, so that re-importing the same row is recognised as a duplicate
    /// (within the customer's de-duplication window; an older replay is refused, never applied
    /// twice — see [`crate::Config::dedupe_window`]). Two identical rows get the same id: the
    /// second is reported as a duplicate.
    ///
    /// # Examples
    /// ```
    /// use persona::{Event, EventKind};
    /// let e = Event::new("c42", 1_767_225_600_000, EventKind::Click);
    /// assert_eq!(e.row_id(), e.clone().row_id());
    /// assert!(e.row_id().starts_with("h:"));
    /// ```
    pub fn row_id(&self) -> String {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(self.customer_id.as_bytes());
        buf.push(0);
        buf.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        buf.push(self.kind as u8);
        match self.value {
            Some(v) => buf.extend_from_slice(&v.to_bits().to_le_bytes()),
            None => buf.push(0xff),
        }
        if let Some(c) = &self.category {
            buf.extend_from_slice(c.as_bytes());
        }
        // Appended only when present, so a row without an item keeps the id earlier builds gave
        // it (a re-import stays idempotent); two rows that differ only in their item differ.
        if let Some(item) = &self.item {
            buf.push(0);
            buf.push(b'i');
            buf.extend_from_slice(item.as_bytes());
        }
        format!("h:{:016x}", xxhash_rust::xxh3::xxh3_64(&buf))
    }

    /// The event with its id, or [`Event::row_id`] when it has none (what file readers do).
    pub fn with_row_id(mut self) -> Event {
        if self.event_id.is_none() {
            self.event_id = Some(self.row_id());
        }
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// An [`InvalidEvent`] naming the first field that is wrong, its value and what is allowed.
    ///
    /// # Examples
    /// ```
    /// use persona::{Event, EventKind};
    /// let bad = Event::new("c1", 1_767_225_600_000, EventKind::Rating).with_value(7.0);
    /// let err = bad.validate().unwrap_err();
    /// assert_eq!(err.to_string(), "field value: 7 for kind rating must be a whole number of stars from 1 to 5");
    /// ```
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        validate_customer_id(&self.customer_id)?;
        if let Some(id) = &self.event_id {
            validate_text("event_id", id, MAX_EVENT_ID_BYTES, false)?;
        }
        if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&self.timestamp_ms) {
            return Err(InvalidEvent::new(
                "timestamp",
                self.timestamp_ms.to_string(),
                "must be unix milliseconds between 1970-01-01 and 2200-01-01 \
                 (0..=7258118400000)",
            ));
        }
        if let Some(c) = &self.category {
            validate_text("category", c, MAX_CATEGORY_BYTES, false)?;
        }
        if let Some(item) = &self.item {
            validate_text("item", item, MAX_ITEM_BYTES, false)?;
        }
        self.validate_value()
    }

    fn validate_value(&self) -> Result<(), InvalidEvent> {
        let kind = self.kind;
        let Some(v) = self.value else {
            if kind.requires_value() {
                return Err(InvalidEvent::new(
                    "value",
                    "",
                    format!("is required for kind {kind}"),
                ));
            }
            return Ok(());
        };
        let shown = format_value(v);
        if !v.is_finite() {
            return Err(InvalidEvent::new(
                "value",
                shown,
                "must be a finite number (NaN and infinity are not allowed)",
            ));
        }
        match kind {
            EventKind::Rating => {
                if !(1.0..=5.0).contains(&v) || v.fract() != 0.0 {
                    return Err(InvalidEvent::new(
                        "value",
                        shown,
                        "for kind rating must be a whole number of stars from 1 to 5",
                    ));
                }
            }
            _ => {
                if v < 0.0 {
                    return Err(InvalidEvent::new(
                        "value",
                        shown,
                        format!("for kind {kind} must be >= 0"),
                    ));
                }
                if v > MAX_VALUE {
                    return Err(InvalidEvent::new(
                        "value",
                        shown,
                        format!("for kind {kind} must be <= 1e12"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else {
        v.to_string()
    }
}

/// Checks a customer id: 1 to 128 bytes of UTF-8 with no control characters.
///
/// # Errors
/// An [`InvalidEvent`] for field `customer_id` saying what is wrong.
///
/// # Examples
/// ```
/// assert!(persona::testing::event::validate_customer_id("c42").is_ok());
/// assert!(persona::testing::event::validate_customer_id("").is_err());
/// ```
pub fn validate_customer_id(id: &str) -> Result<(), InvalidEvent> {
    validate_text("customer_id", id, MAX_CUSTOMER_ID_BYTES, false)
}

/// Checks a short text field: non-empty (unless `allow_empty`), at most `max` bytes, no control
/// characters.
pub(crate) fn validate_text(
    field: &'static str,
    s: &str,
    max: usize,
    allow_empty: bool,
) -> Result<(), InvalidEvent> {
    if s.is_empty() && !allow_empty {
        return Err(InvalidEvent::new(field, "", "must not be empty"));
    }
    if s.len() > max {
        let mut shown: String = s.chars().take(32).collect();
        shown.push('…');
        return Err(InvalidEvent::new(
            field,
            shown,
            format!("is {} bytes long; at most {max} bytes are allowed", s.len()),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(InvalidEvent::new(
            field,
            s.escape_debug().to_string(),
            format!(
                "contains control character U+{:04X}; control characters are not allowed",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// Parses a timestamp: integer unix milliseconds, or an RFC 3339 date-time such as
/// `2026-01-02T03:04:05Z` or `2026-01-02T03:04:05.250+01:00`.
///
/// # Errors
/// An [`InvalidEvent`] for field `timestamp` saying which forms are accepted.
///
/// # Examples
/// ```
/// use persona::parse_timestamp;
/// assert_eq!(parse_timestamp("1767225600000")?, 1_767_225_600_000);
/// assert_eq!(parse_timestamp("2026-01-01T00:00:00Z")?, 1_767_225_600_000);
/// assert!(parse_timestamp("yesterday").is_err());
/// # Ok::<(), persona::InvalidEvent>(())
/// ```
pub fn parse_timestamp(s: &str) -> Result<i64, InvalidEvent> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return t.parse::<i64>().map_err(|_| {
            InvalidEvent::new(
                "timestamp",
                s,
                "is not a valid integer of unix milliseconds",
            )
        });
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .map_err(|e| {
            InvalidEvent::new(
                "timestamp",
                s,
                format!(
                    "is neither unix milliseconds nor an RFC 3339 date-time \
                     like 2026-01-02T03:04:05Z ({e})"
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_767_225_600_000;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Ok(k));
        }
        assert_eq!(EventKind::ALL[EventKind::Rating.index()], EventKind::Rating);
    }

    #[test]
    fn unknown_kind_lists_the_allowed_ones() {
        let e = EventKind::parse("Purchase").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("field kind: Purchase must be one of: view, click"));
    }

    #[test]
    fn values_are_checked_per_kind() {
        let ok = |k, v| Event::new("c", T, k).with_value(v).validate();
        assert!(ok(EventKind::Purchase, 0.0).is_ok());
        assert_eq!(
            ok(EventKind::Purchase, -3.5).unwrap_err().to_string(),
            "field value: -3.5 for kind purchase must be >= 0"
        );
        assert!(ok(EventKind::View, f64::NAN)
            .unwrap_err()
            .to_string()
            .contains("NaN and infinity"));
        assert!(ok(EventKind::Refund, f64::INFINITY).is_err());
        assert!(ok(EventKind::Rating, 0.0).is_err());
        assert!(ok(EventKind::Rating, 4.5).is_err());
        assert!(ok(EventKind::Rating, 5.0).is_ok());
        assert!(ok(EventKind::Click, 1e13).is_err());
        let missing = Event::new("c", T, EventKind::Purchase)
            .validate()
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "field value is required for kind purchase"
        );
        assert!(Event::new("c", T, EventKind::Like).validate().is_ok());
    }

    #[test]
    fn ids_and_text_fields_are_checked() {
        let long = "x".repeat(129);
        let e = Event::new(long, T, EventKind::Click)
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "customer_id");
        assert!(e.reason.contains("129 bytes long; at most 128"));
        assert!(Event::new("x".repeat(128), T, EventKind::Click)
            .validate()
            .is_ok());
        assert_eq!(
            Event::new("", T, EventKind::Click)
                .validate()
                .unwrap_err()
                .to_string(),
            "field customer_id must not be empty"
        );
        let ctl = Event::new("a\u{7}b", T, EventKind::Click)
            .validate()
            .unwrap_err();
        assert!(ctl.reason.contains("U+0007"));
        let cat = Event::new("c", T, EventKind::Click).with_category("a\nb");
        assert_eq!(cat.validate().unwrap_err().field, "category");
        let id = Event::new("c", T, EventKind::Click).with_id("");
        assert_eq!(id.validate().unwrap_err().field, "event_id");
    }

    #[test]
    fn timestamps_out_of_range_are_rejected() {
        assert!(Event::new("c", -1, EventKind::Click).validate().is_err());
        // A 1997 log imports.
        assert!(Event::new("c", 852_076_800_000, EventKind::Click)
            .validate()
            .is_ok());
        assert!(Event::new("c", MAX_TIMESTAMP_MS + 1, EventKind::Click)
            .validate()
            .is_err());
        assert!(Event::new("c", MIN_TIMESTAMP_MS, EventKind::Click)
            .validate()
            .is_ok());
    }

    #[test]
    fn derived_ids_are_stable_and_distinguish_rows() {
        let a = Event::new("c", T, EventKind::Purchase).with_value(10.0);
        let b = a.clone().with_value(11.0);
        assert_eq!(a.row_id(), a.clone().row_id());
        assert_ne!(a.row_id(), b.row_id());
        assert!(a.row_id().starts_with("h:"));
        assert_eq!(
            a.clone().with_id("x").with_row_id().event_id.as_deref(),
            Some("x")
        );
        assert_eq!(a.clone().with_row_id().event_id, Some(a.row_id()));
    }
}
