//! Writes through the writer thread: events (one, a batch, or without waiting), attribute
//! changes and strategy feedback.

use super::*;
use crate::error::{Error, Result};
use crate::event::{validate_customer_id, Event};
use crate::features::attributes::{validate_attribute, MAX_ATTRIBUTES};
use crate::features::consent;
use crate::features::AttrValue;
use crate::pipeline::{Ack, Item, Notify, Request, WriteReply};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A write queued with [`Db::ingest_async`], acknowledged once committed.
#[derive(Debug)]
pub struct PendingWrite {
    rx: crossbeam_channel::Receiver<Vec<Result<Ack>>>,
}

impl PendingWrite {
    /// Blocks until the write is committed (or failed).
    ///
    /// # Errors
    /// The write's own error (e.g. a failed commit), or [`Error::Closed`] if the writer stopped.
    pub fn wait(self) -> Result<Ack> {
        self.wait_all()?.pop().unwrap_or(Err(Error::Closed))
    }

    /// The write's result if it has arrived, without blocking; `None` while it is in flight.
    pub(crate) fn try_wait(&self) -> Option<Result<Ack>> {
        match self.rx.try_recv() {
            Ok(mut results) => Some(results.pop().unwrap_or(Err(Error::Closed))),
            Err(crossbeam_channel::TryRecvError::Empty) => None,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Some(Err(Error::Closed)),
        }
    }

    pub(super) fn wait_all(self) -> Result<Vec<Result<Ack>>> {
        self.rx.recv().map_err(|_| Error::Closed)
    }

    /// [`PendingWrite::wait_all`] that gives up with [`Error::Closed`] once `db` is closing
    /// and the results have not come (a write queued as the writer stopped is never answered).
    #[cfg(feature = "cluster")]
    fn wait_open(self, db: &Db) -> Result<Vec<Result<Ack>>> {
        loop {
            match self.rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(results) => return Ok(results),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Closed)
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if db.inner.closing.load(std::sync::atomic::Ordering::Acquire) {
                        return Err(Error::Closed);
                    }
                }
            }
        }
    }
}

impl Db {
    /// Ingests one event: validates it, commits it with its batch, returns its acknowledgement.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] if the event is rejected (nothing changes); storage errors if the
    /// commit fails (nothing of the batch is visible); [`Error::Closed`] after [`Db::close`].
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let e = Event::new("c1", 1_767_225_600_000, EventKind::View).with_value(30.0).with_id("v1");
    /// assert!(!db.ingest(e.clone())?.duplicate);
    /// assert!(db.ingest(e)?.duplicate);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn ingest(&self, event: Event) -> Result<Ack> {
        event.validate()?;
        let mut results = self.submit(vec![Item::Event(event)])?;
        results.pop().unwrap_or(Err(Error::Closed))
    }

    /// Ingests many events; they are committed together where possible. Returns one result per
    /// event, in order: a rejected event gets its [`Error::InvalidEvent`] and the others proceed.
    ///
    /// # Errors
    /// The outer error is [`Error::Closed`] if the writer is gone.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// let results = db.ingest_batch(vec![
    ///     Event::new("a", t, EventKind::Click),
    ///     Event::new("b", t, EventKind::Purchase).with_value(-1.0),
    /// ])?;
    /// assert!(results[0].is_ok());
    /// assert!(results[1].as_ref().unwrap_err().is_bad_input());
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn ingest_batch(&self, events: Vec<Event>) -> Result<Vec<Result<Ack>>> {
        let mut out: Vec<Option<Result<Ack>>> = Vec::with_capacity(events.len());
        let mut items = Vec::with_capacity(events.len());
        for e in events {
            match e.validate() {
                Ok(()) => {
                    items.push(Item::Event(e));
                    out.push(None);
                }
                Err(err) => out.push(Some(Err(err.into()))),
            }
        }
        self.submit_valid(items, out, |a| a)
    }

    /// Sets (or replaces) attributes of a customer, creating the profile if needed. Returns the
    /// new profile version. Numbers and texts are both allowed; see [`AttrValue`].
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] for a bad customer id, [`Error::InvalidArgument`] for a bad name or
    /// value or more than 64 attributes; nothing changes then.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{AttrValue, Db};
    /// let db = Db::open(dir.path())?;
    /// db.set_attributes("c1", vec![("age".into(), 34.0.into()), ("region".into(), "north".into())])?;
    /// let p = db.profile("c1")?.expect("created");
    /// assert_eq!(p.attributes["region"], AttrValue::Text("north".into()));
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn set_attributes(
        &self,
        customer_id: &str,
        attrs: Vec<(String, AttrValue)>,
    ) -> Result<u64> {
        let mut results = self.set_attributes_batch(vec![(customer_id.to_string(), attrs)])?;
        results.pop().unwrap_or(Err(Error::Closed))
    }

    /// Sets attributes of many customers (as [`Db::set_attributes`] each) in one submission:
    /// the valid ones share the writer's commits. One result per row, in order: the new
    /// profile version, or why the row was refused (it changes nothing).
    ///
    /// # Errors
    /// [`Error::Closed`] if the writer is gone; a row's own errors are in its result.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{AttrValue, Db};
    /// let db = Db::open(dir.path())?;
    /// let no = || vec![("consent.marketing".to_string(), AttrValue::Text("no".into()))];
    /// let done = db.set_attributes_batch(vec![("c1".into(), no()), ("".into(), no())])?;
    /// assert_eq!(done[0].as_ref().ok(), Some(&1));
    /// assert!(done[1].is_err(), "an empty id");
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn set_attributes_batch(
        &self,
        rows: Vec<(String, Vec<(String, AttrValue)>)>,
    ) -> Result<Vec<Result<u64>>> {
        let mut out: Vec<Option<Result<u64>>> = Vec::with_capacity(rows.len());
        let mut items = Vec::with_capacity(rows.len());
        // Attribute names per customer so far, the rows before counted.
        let mut names: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (customer, attrs) in rows {
            match self.check_attributes(&customer, &attrs, &mut names) {
                Ok(()) => {
                    items.push(Item::SetAttributes { customer, attrs });
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        self.submit_valid(items, out, |a| a.version)
    }

    /// Checks one row of attributes: the id, each name and value, and that the customer ends
    /// with at most 64 attributes (counting `names`, theirs from earlier rows, and the times
    /// the writer stamps on consent changes).
    fn check_attributes(
        &self,
        customer_id: &str,
        attrs: &[(String, AttrValue)],
        names: &mut HashMap<String, BTreeSet<String>>,
    ) -> Result<()> {
        validate_customer_id(customer_id)?;
        if attrs.is_empty() {
            return Err(Error::invalid_argument(
                "attributes",
                "at least one name and value is required",
            ));
        }
        for (name, value) in attrs {
            validate_attribute(name, value)?;
        }
        let held = match names.get_mut(customer_id) {
            Some(held) => held,
            None => {
                let existing = self.inner.store.profile_current(customer_id)?;
                let held = existing
                    .map(|r| r.state.attributes.into_keys().collect())
                    .unwrap_or_default();
                names.entry(customer_id.to_string()).or_insert(held)
            }
        };
        let mut after = held.clone();
        for (name, _) in attrs {
            after.insert(name.clone());
            match name.as_str() {
                consent::PROFILING => after.insert(consent::PROFILING_AT.to_string()),
                consent::MARKETING => after.insert(consent::MARKETING_AT.to_string()),
                _ => false,
            };
        }
        if after.len() > MAX_ATTRIBUTES {
            return Err(Error::invalid_argument(
                "attributes",
                format!("a customer may have at most {MAX_ATTRIBUTES} attributes"),
            ));
        }
        *held = after;
        Ok(())
    }

    /// Submits the valid `items` and fills the empty slots of `out` (one per input, the
    /// refused ones already holding their error) with their acks, in order, through `f`.
    fn submit_valid<T>(
        &self,
        items: Vec<Item>,
        out: Vec<Option<Result<T>>>,
        f: impl Fn(Ack) -> T,
    ) -> Result<Vec<Result<T>>> {
        let mut acks = if items.is_empty() {
            Vec::new().into_iter()
        } else {
            self.submit(items)?.into_iter()
        };
        Ok(out
            .into_iter()
            .map(|slot| slot.unwrap_or_else(|| acks.next().unwrap_or(Err(Error::Closed)).map(&f)))
            .collect())
    }

    /// Validates `event` and queues it for the writer without waiting for the commit: the
    /// returned [`PendingWrite`] yields the acknowledgement once the event is durable. Lets a
    /// caller (such as the RESP server with a pipelining client) keep several writes in flight so
    /// they share one group commit.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] at once if the event is rejected; [`Error::Closed`] if the writer
    /// is gone.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// let a = db.ingest_async(Event::new("a", t, EventKind::Click))?;
    /// let b = db.ingest_async(Event::new("b", t, EventKind::Click))?;
    /// assert_eq!(a.wait()?.version, 1);
    /// assert_eq!(b.wait()?.version, 1);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn ingest_async(&self, event: Event) -> Result<PendingWrite> {
        event.validate()?;
        self.submit_async(vec![Item::Event(event)])
    }

    /// [`Db::ingest_async`] that also tells `notify` (with `tag`) once the write's result is
    /// waiting, so that an event loop can learn it without blocking (see
    /// [`PendingWrite::try_wait`]).
    pub(crate) fn ingest_notify(
        &self,
        event: Event,
        notify: (Arc<dyn Notify>, usize),
    ) -> Result<PendingWrite> {
        event.validate()?;
        self.submit_with(vec![Item::Event(event)], Some(notify))
    }

    pub(super) fn submit_async(&self, items: Vec<Item>) -> Result<PendingWrite> {
        self.submit_with(items, None)
    }

    pub(super) fn submit_with(
        &self,
        items: Vec<Item>,
        notify: Option<(Arc<dyn Notify>, usize)>,
    ) -> Result<PendingWrite> {
        let (reply, pending) = write_channel(notify);
        self.inner
            .tx
            .send(Request::Write { items, reply })
            .map_err(|_| Error::Closed)?;
        Ok(pending)
    }

    pub(super) fn submit(&self, items: Vec<Item>) -> Result<Vec<Result<Ack>>> {
        self.submit_async(items)?.wait_all()
    }

    /// Applies `items` and writes `key` = `value` in the same commit (a cluster node's applied
    /// position in a partition log, `src/cluster/log.rs`); blocks until durable. With
    /// `replay`, the items change profiles but not the merged models (another node learned
    /// them: [`Item::Replay`]). One result per item of `items`, in order.
    ///
    /// # Errors
    /// [`Error::Closed`] if the writer is gone; an item's own errors are in its result.
    #[cfg(feature = "cluster")]
    pub(crate) fn apply_marked(
        &self,
        items: Vec<Item>,
        (key, value): (Vec<u8>, Vec<u8>),
        replay: bool,
    ) -> Result<Vec<Result<Ack>>> {
        let n = items.len();
        let mut all = Vec::with_capacity(n + 2);
        if replay {
            all.push(Item::Replay);
        }
        all.extend(items);
        all.push(Item::Mark { key, value });
        let mut results = self.submit_async(all)?.wait_open(self)?;
        if replay && !results.is_empty() {
            let _replay_marker = results.remove(0);
        }
        results.truncate(n);
        Ok(results)
    }

    /// The value of a metadata key written by [`Db::apply_marked`], if any.
    #[cfg(feature = "cluster")]
    pub(crate) fn mark(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.store().meta(key)?.map(|v| v.to_vec()))
    }

    /// Checks the attributes of one customer as [`Db::set_attributes`] does before it submits
    /// them (for a cluster node, before they go to the partition log).
    pub(crate) fn check_attributes_of(
        &self,
        customer_id: &str,
        attrs: &[(String, AttrValue)],
    ) -> Result<()> {
        self.check_attributes(customer_id, attrs, &mut HashMap::new())
    }

    /// Records whether a recommended action converted (see [`Feedback`]). Goes through the
    /// writer like an event (atomic, durable) and updates the statistics of the credited
    /// segment. With an id, a repeated feedback is acknowledged as a duplicate and changes
    /// nothing.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unknown action (naming the catalogue), an unknown
    /// customer, a segment out of range, or before segments are seeded.
    pub fn feedback(&self, feedback: Feedback<'_>) -> Result<Ack> {
        let item = self.feedback_item(feedback)?;
        let mut results = self.submit(vec![item])?;
        results.pop().unwrap_or(Err(Error::Closed))
    }

    /// A feedback outcome checked as [`Db::feedback`] checks it, as the writer's item (for a
    /// cluster node, to go through the partition log).
    pub(crate) fn feedback_item(&self, feedback: Feedback<'_>) -> Result<Item> {
        let Feedback {
            customer_id,
            action,
            converted,
            id,
            segment,
        } = feedback;
        validate_customer_id(customer_id)?;
        let actions = &self.inner.config.actions;
        let Some(action) = actions.iter().position(|a| a == action) else {
            return Err(Error::invalid_argument(
                "action",
                format!("{action:?} is not one of: {}", actions.join(", ")),
            ));
        };
        if let Some(id) = id {
            crate::event::validate_text("feedback id", id, crate::event::MAX_EVENT_ID_BYTES, false)
                .map_err(|e| Error::invalid_argument("feedback id", e.reason))?;
        }
        if let Some(s) = segment {
            if s as usize >= self.inner.config.model.segments {
                return Err(Error::invalid_argument(
                    "segment",
                    format!(
                        "{s} is out of range; segments are 0..{}",
                        self.inner.config.model.segments
                    ),
                ));
            }
        }
        Ok(Item::Feedback {
            customer: customer_id.to_string(),
            action,
            converted,
            id: id.map(str::to_string),
            segment,
        })
    }
}

/// A write's reply channel: the end that answers (the writer, or a cluster node's partition
/// log) and the [`PendingWrite`] that waits; `notify` is told once the answer is sent.
pub(crate) fn write_channel(
    notify: Option<(Arc<dyn Notify>, usize)>,
) -> (WriteReply, PendingWrite) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    (WriteReply::new(tx, notify), PendingWrite { rx })
}
