//! What the writer does for a customer without consent to profiling (`features/consent.rs`):
//! their events and attributes update their own record and nothing shared; a withdrawal takes
//! them out of what is shared. And the writer's time stamps on consent changes.

use super::apply::*;
use super::batch::*;
use super::Ack;
use crate::error::Result;
use crate::features::consent::{self, Consent};
use crate::features::{CompactEvent, ProfileOp};
use crate::storage::Store;
use crate::Event;

impl Engine {
    /// An event of a customer without consent to profiling: it updates their own record (its
    /// history, counts and lists) and nothing shared: not the watermark, the models, the
    /// sample, the training examples, the segments or the triggers. The ack has no segment.
    pub(super) fn apply_private_event(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        e: &Event,
        id_hash: Option<u64>,
    ) -> Result<Ack> {
        let params = *store.params();
        let (history, dedupe, top) = (
            self.config.history_versions,
            self.config.dedupe_window,
            self.config.top_items,
        );
        let w = self.load(store, &mut b.records, &e.customer_id)?;
        let compact = CompactEvent::from_event(e, &params);
        w.record.apply(ProfileOp::Event(compact), &params, history);
        w.record.affinity.observe(
            e.kind,
            e.item.as_deref(),
            e.category.as_deref(),
            e.timestamp_ms,
            params.item_half_life_ms(),
            top,
        );
        if let Some(h) = id_hash {
            w.record.remember(h, e.timestamp_ms, dedupe);
        }
        w.dirty = true;
        Ok(Ack {
            version: w.record.version,
            segment: None,
            // Not scored: the propensity stored from before a withdrawal is not theirs to see.
            propensity: f64::NAN,
            duplicate: false,
        })
    }

    /// Attributes set on a customer who, with them, has no consent to profiling: applied to
    /// their record, and nothing shared. When they withdrew it (`withdrew`), they leave their
    /// segment, the segment-fitting sample, and every open or held training example of theirs
    /// is dropped (what they already taught the models stays: see docs/privacy.md).
    pub(super) fn set_private(
        &mut self,
        store: &Store,
        b: &mut BatchState,
        customer: &str,
        attrs: Vec<(String, crate::AttrValue)>,
        withdrew: bool,
    ) -> Result<Ack> {
        if withdrew {
            self.forget_customer(&mut b.undo, customer);
            // The names they alone gave the models leave them too (the model is restored
            // whole if the commit fails).
            self.model.forget_holder(&store.holder_of(customer));
        }
        let history = self.config.history_versions;
        let w = self.load(store, &mut b.records, customer)?;
        let prev = Prev::of(&w.record);
        w.record
            .apply(ProfileOp::SetAttributes(attrs), store.params(), history);
        if withdrew {
            w.record.pending = None;
        }
        let ack = Ack {
            version: w.record.version,
            segment: None,
            propensity: f64::NAN,
            duplicate: false,
        };
        leave_segment(&mut self.model, w, prev);
        Ok(ack)
    }

    /// Drops what the writer holds of `customer` for the shared models, as a withdrawal of
    /// consent to profiling does: their open and held training examples, their refit rows and
    /// their place in the segment-fitting sample (undone if the commit fails).
    pub(super) fn forget_customer(&mut self, undo: &mut Vec<Undo>, customer: &str) {
        self.forget_examples(undo, |c| c == customer);
        undo.extend(self.sample.remove(customer).map(Undo::Sample));
    }
}

/// `w` leaves its segment, as a customer without consent to profiling does: no segment, no
/// distance, and its share of the segment sizes and sums (`prev`: its outcome before the batch
/// changed the record) taken out of `model`.
pub(super) fn leave_segment(model: &mut crate::model::ModelState, w: &mut Working, prev: Prev) {
    let p = f64::from(w.record.propensity);
    w.record.segment = None;
    w.record.distance = 0.0;
    w.record.set_outcome(None, p);
    w.dirty = true;
    move_segment(model, prev, None, 0.0, 0.0);
}

/// `attrs` with the writer's stamps of the consent they change (`consent.profiling_at`,
/// `consent.marketing_at`: `now_ms`, the wall clock), and the consent they leave (`before`
/// where they set none). A purpose is stamped when the customer's recorded answer changes
/// (`stored`: their attributes before): from none to one, or from one to the other; setting the
/// answer they gave already (a consent file imported twice) keeps the time it was given.
pub(super) fn stamp_consent(
    attrs: &[(String, crate::AttrValue)],
    stored: &std::collections::BTreeMap<String, crate::AttrValue>,
    before: Consent,
    now_ms: i64,
) -> (Vec<(String, crate::AttrValue)>, Consent) {
    let mut after = before;
    let mut out = attrs.to_vec();
    for (name, value) in attrs {
        let Some(v) = consent::parse(value) else {
            continue;
        };
        let (slot, stamp) = match name.as_str() {
            consent::PROFILING => (&mut after.profiling, consent::PROFILING_AT),
            consent::MARKETING => (&mut after.marketing, consent::MARKETING_AT),
            _ => continue,
        };
        *slot = v;
        if stored.get(name.as_str()).and_then(consent::parse) == Some(v) {
            continue; // the answer they gave already
        }
        out.retain(|(n, _)| n != stamp);
        out.push((stamp.to_string(), crate::AttrValue::Number(now_ms as f64)));
    }
    (out, after)
}
