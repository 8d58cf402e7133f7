//! The index of one `INACTIVE_DAYS` trigger: when each customer falls silent.

use compact_str::CompactString;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A change to a silence index, undone if its batch's commit fails: (trigger, customer, their
/// entry before the change).
pub(crate) type SilenceUndo = (Arc<str>, CompactString, Option<Entry>);

/// A customer's entry in a silence index: when they fall silent (their last event plus the
/// trigger's days), and the time they are scheduled at in the ordered set (never later).
pub(crate) type Entry = (i64, i64);

/// When each customer falls silent for one `INACTIVE_DAYS` trigger (only times after the
/// watermark are kept). An event only moves the customer's due time in the map; the ordered
/// set keeps the time they were scheduled at, and when that comes the customer is either
/// silent (they fire) or rescheduled at their due time: one B-tree move per silence period
/// rather than one per event.
#[derive(Debug)]
pub(super) struct Silence {
    /// The trigger's name.
    pub(super) name: Arc<str>,
    /// Its days, in ms.
    pub(super) after_ms: i64,
    /// (time, customer), in time order: when each customer is next looked at.
    pub(super) scheduled: BTreeSet<(i64, CompactString)>,
    /// Each customer's entry.
    pub(super) by_customer: HashMap<CompactString, Entry>,
}

impl Silence {
    /// An empty index for the trigger `name` of `after_ms`.
    pub(super) fn new(name: &str, after_ms: i64) -> Silence {
        Silence {
            name: name.into(),
            after_ms,
            scheduled: BTreeSet::new(),
            by_customer: HashMap::new(),
        }
    }

    /// Sets when `customer` falls silent; returns their entry before.
    pub(super) fn set(&mut self, customer: &str, due_ms: i64) -> Option<Entry> {
        match self.by_customer.get_mut(customer) {
            Some(e) => {
                let old = *e;
                e.0 = due_ms;
                if due_ms < e.1 {
                    // Earlier than scheduled (only an undo moves a due time back).
                    e.1 = due_ms;
                    let key = CompactString::from(customer);
                    self.scheduled.remove(&(old.1, key.clone()));
                    self.scheduled.insert((due_ms, key));
                }
                Some(old)
            }
            None => {
                let key = CompactString::from(customer);
                self.by_customer.insert(key.clone(), (due_ms, due_ms));
                self.scheduled.insert((due_ms, key));
                None
            }
        }
    }

    /// Forgets `customer`; returns their entry.
    pub(super) fn remove(&mut self, customer: &str) -> Option<Entry> {
        let old = self.by_customer.remove(customer);
        if let Some((_, at)) = old {
            self.scheduled.remove(&(at, CompactString::from(customer)));
        }
        old
    }

    /// Puts `customer`'s entry back as it was (`None`: absent).
    pub(super) fn restore(&mut self, customer: &str, entry: Option<Entry>) {
        self.remove(customer);
        if let Some(e) = entry {
            let key = CompactString::from(customer);
            self.scheduled.insert((e.1, key.clone()));
            self.by_customer.insert(key, e);
        }
    }
}
