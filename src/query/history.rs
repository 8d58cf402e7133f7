//! A customer's recent versions: what changed at each, and the model outcome right after.

use crate::features::ProfileOp;
use crate::storage::record::ProfileRecord;
use serde::Serialize;

/// One version in a customer's history.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryItem {
    /// Profile version.
    pub version: u64,
    /// What changed: `event` or `attributes`.
    pub change: String,
    /// Event kind, for events.
    pub kind: Option<String>,
    /// Event time, for events.
    pub timestamp_ms: Option<i64>,
    /// Event value, for events.
    pub value: Option<f64>,
    /// Attribute names set, for attribute changes.
    pub attributes: Vec<String>,
    /// Segment after the change.
    pub segment: Option<u16>,
    /// Propensity after the change.
    pub propensity: f32,
}

/// The last `n` retained versions, newest first.
pub(crate) fn recent(record: &ProfileRecord, n: usize) -> Vec<HistoryItem> {
    let base = record.base_version();
    record
        .history
        .iter()
        .enumerate()
        .rev()
        .take(n)
        .map(|(i, entry)| {
            let version = base + i as u64 + 1;
            let mut item = HistoryItem {
                version,
                change: String::new(),
                kind: None,
                timestamp_ms: None,
                value: None,
                attributes: Vec::new(),
                segment: entry.segment,
                propensity: entry.propensity,
            };
            match &entry.op {
                ProfileOp::Event(e) => {
                    item.change = "event".into();
                    item.kind = Some(e.kind.as_str().to_string());
                    item.timestamp_ms = Some(e.timestamp_ms);
                    item.value = Some(e.value);
                }
                ProfileOp::SetAttributes(attrs) => {
                    item.change = "attributes".into();
                    item.attributes = attrs.iter().map(|(k, _)| k.clone()).collect();
                }
            }
            item
        })
        .collect()
}
