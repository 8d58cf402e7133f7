//! Triggers on [`Db`]: defining them at run time, listing them, and reading the firings the
//! writer put in the outbox (see `src/triggers/`).

use super::Db;
use crate::error::{Error, Result};
use crate::pipeline::Maintenance;
use crate::storage::triggers::MAX_READ;
use crate::triggers::{Fired, Trigger, TriggerInfo};

impl Db {
    /// Defines a trigger at run time, stored with the store: `name`, then the definition's
    /// wire words (the condition, then optionally `ACTION a` and `COOLDOWN days`), as
    /// `TRIGGER.ADD name WHEN …` takes them. It applies to the events written after it. A
    /// segment may be named by its current label (`SEGMENT_ENTER`, `"high spend · recent"`):
    /// the trigger keeps the segment's id.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming what is wrong (an unknown condition, a value out of
    /// range, a name in use); nothing changes then.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// db.trigger_add("first", &["FIRST_PURCHASE", "COOLDOWN", "30"])?;
    /// db.ingest(Event::new("c1", 1_767_225_600_000, EventKind::Purchase).with_value(20.0))?;
    /// let fired = db.read_triggers(0, 10)?;
    /// assert_eq!(fired[0].trigger, "first");
    /// assert_eq!(fired[0].reason, "first purchase");
    /// assert!(db.trigger_add("first", &["FIRST_PURCHASE"]).is_err(), "the name is taken");
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn trigger_add(&self, name: &str, definition: &[&str]) -> Result<Trigger> {
        let config = &self.inner.config;
        let resolved = self.segment_by_label(definition)?;
        let words: Vec<&str> = resolved.iter().map(String::as_str).collect();
        let t = Trigger::parse(name, &words, config.model.segments, &config.actions)
            .map_err(|reason| Error::invalid_argument("trigger", reason))?;
        self.maintain(Maintenance::TriggerAdd(t.clone()))?;
        Ok(t)
    }

    /// The definition with a segment label after `SEGMENT_ENTER` / `SEGMENT_LEAVE` replaced
    /// by its segment's id (as `SEGMENT.LIST` labels the segments now; the trigger keeps the
    /// id, whatever the label becomes after later fits).
    fn segment_by_label(&self, definition: &[&str]) -> Result<Vec<String>> {
        let mut words: Vec<String> = definition.iter().map(|w| w.to_string()).collect();
        let segment_word = matches!(
            words.first().map(|w| w.to_ascii_uppercase()).as_deref(),
            Some("SEGMENT_ENTER" | "SEGMENT_LEAVE")
        );
        let Some(label) = words
            .get(1)
            .filter(|w| segment_word && w.parse::<u16>().is_err())
        else {
            return Ok(words);
        };
        let model = self.model();
        if !model.segments.is_seeded() {
            return Err(Error::invalid_argument(
                "trigger",
                format!("segment {label:?}: the segments are not fitted yet, so they have no labels; give the segment id"),
            ));
        }
        let segments = self.cached_segments(&model)?;
        let found: Vec<u16> = segments
            .iter()
            .filter(|s| s.label.eq_ignore_ascii_case(label))
            .map(|s| s.id)
            .collect();
        match found.as_slice() {
            [id] => words[1] = id.to_string(),
            [] => {
                let labels: Vec<String> = segments
                    .iter()
                    .map(|s| format!("{} ({})", s.id, s.label))
                    .collect();
                return Err(Error::invalid_argument(
                    "trigger",
                    format!(
                        "no segment is labelled {label:?}; segments: {}",
                        labels.join(", ")
                    ),
                ));
            }
            ids => {
                return Err(Error::invalid_argument(
                    "trigger",
                    format!("segments {ids:?} are all labelled {label:?}; give the segment id"),
                ))
            }
        }
        Ok(words)
    }

    /// Deletes a trigger defined at run time; its firings stay in the outbox.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if there is no run-time trigger of that name (one from the
    /// config file is removed there).
    pub fn trigger_del(&self, name: &str) -> Result<()> {
        crate::triggers::check_name(name).map_err(|r| Error::invalid_argument("name", r))?;
        self.maintain(Maintenance::TriggerDel(name.to_string()))?;
        Ok(())
    }

    /// Every trigger (the config file's, then the run time's), with how often each fired and
    /// was suppressed since the store was opened.
    pub fn triggers(&self) -> Vec<TriggerInfo> {
        self.inner.shared.triggers.read().as_ref().clone()
    }

    /// Up to `count` firings (at most 10,000) with ids above `since`, oldest first: what a
    /// consumer that processed everything up to `since` reads next (0: from the start of the
    /// outbox). Only firings of committed batches are returned, and only those of customers who
    /// consent to marketing and profiling *now*: a firing made before the customer withdrew
    /// consent stays in the outbox but is no longer handed to anyone to act on (ids then have
    /// gaps). [`Db::read_trigger_page`] also says how far the read looked.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a `count` of 0 or above 10,000; [`Error::Corruption`] if
    /// a stored firing does not decode.
    pub fn read_triggers(&self, since: u64, count: usize) -> Result<Vec<Fired>> {
        Ok(self.read_trigger_page(since, count)?.fired)
    }

    /// [`Db::read_triggers`], with the id through which the outbox was looked at
    /// ([`TriggerPage::through`]): a consumer continues from there, past firings it may not act
    /// on, instead of looking at them again.
    ///
    /// # Errors
    /// As [`Db::read_triggers`].
    pub fn read_trigger_page(&self, since: u64, count: usize) -> Result<TriggerPage> {
        if !(1..=MAX_READ).contains(&count) {
            return Err(Error::invalid_argument(
                "count",
                format!("{count} is out of range; allowed 1..={MAX_READ}"),
            ));
        }
        let durable = self.durable_firings();
        let mut fired = Vec::new();
        let mut through = since;
        loop {
            // Whole pages of the largest size, whatever `count` is: each read decodes the
            // batch keys it touches, and a long run of firings no one may act on is crossed in
            // a few reads.
            let page = self.inner.store.firings(through, MAX_READ)?;
            let mut end = page.len() < MAX_READ;
            for f in page {
                let id = f.id;
                if id >= durable {
                    end = true;
                    break;
                }
                if self.actionable(&f)? {
                    fired.push(f);
                    if fired.len() == count {
                        return Ok(TriggerPage { fired, through: id });
                    }
                }
                through = id;
            }
            if end {
                return Ok(TriggerPage { fired, through });
            }
        }
    }

    /// Every firing in the outbox with an id above `since`, up to `count`, whoever it names
    /// (for counting what the outbox holds).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // `persona triggers list` only
    pub(crate) fn outbox(&self, since: u64, count: usize) -> Result<Vec<Fired>> {
        self.inner.store.firings(since, count)
    }

    /// Whether a firing may be acted on now: its customer (if it names one) consents to
    /// marketing and to profiling. A customer without a record (erased since: their firings
    /// are being removed) is not acted on.
    fn actionable(&self, f: &Fired) -> Result<bool> {
        if f.customer.is_empty() {
            return Ok(true); // a store-wide firing (DRIFT)
        }
        let defaults = self.inner.config.consent_defaults;
        Ok(match self.inner.store.profile_current(&f.customer) {
            Ok(Some(rec)) => {
                let c = crate::features::consent::Consent::of(&rec.state, defaults);
                c.marketing && c.profiling
            }
            Ok(None) => false,
            // A record that does not decode: `persona check` reports it; its firing is
            // handed out as it was made.
            Err(Error::Corruption { .. }) => true,
            Err(e) => return Err(e),
        })
    }

    /// The id of the newest firing in the outbox (0 when it is empty): where a consumer that
    /// wants only what comes next starts reading.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn last_trigger_id(&self) -> Result<u64> {
        Ok(self
            .inner
            .store
            .last_firing_id()?
            .min(self.durable_firings().saturating_sub(1)))
    }

    /// The id of the first firing not yet durable: readers see only the firings below it, so
    /// none is acted on that a crash could take back.
    fn durable_firings(&self) -> u64 {
        (self.inner.shared.durable_firings).load(std::sync::atomic::Ordering::Acquire)
    }

    /// Acknowledges, for the consumer `consumer`, every firing up to `id`: the consumer's
    /// position, stored with the store, moves there (never back: an older id changes nothing),
    /// so that a consumer that restarts resumes after it ([`Db::trigger_position`],
    /// `TRIGGER.READ CONSUMER name`). Returns the position. Acknowledging removes nothing:
    /// the outbox keeps firings by `trigger_retention` and `trigger_retention_days`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name outside 1 to 64 ASCII letters, digits, `_`, `-`
    /// and `.`, or an id no firing was given yet; nothing changes then.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// db.trigger_add("first", &["FIRST_PURCHASE"])?;
    /// for c in ["c1", "c2"] {
    ///     db.ingest(Event::new(c, 1_767_225_600_000, EventKind::Purchase).with_value(5.0))?;
    /// }
    /// let since = db.trigger_position("mailer")?.unwrap_or(0);
    /// let page = db.read_triggers(since, 1)?;
    /// // … the mailer sends page[0] …
    /// db.trigger_ack("mailer", page[0].id)?;
    /// let next = db.read_triggers(db.trigger_position("mailer")?.unwrap_or(0), 10)?;
    /// assert_eq!(next[0].customer, "c2");
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn trigger_ack(&self, consumer: &str, id: u64) -> Result<u64> {
        crate::triggers::check_consumer(consumer)
            .map_err(|r| Error::invalid_argument("consumer", r))?;
        self.maintain(Maintenance::TriggerAck(consumer.to_string(), id))?;
        Ok(self.trigger_position(consumer)?.unwrap_or(0))
    }

    /// The id of the last firing the consumer `consumer` acknowledged ([`Db::trigger_ack`]),
    /// `None` if it never did.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name [`Db::trigger_ack`] refuses;
    /// [`Error::Corruption`] for a stored position that does not decode.
    pub fn trigger_position(&self, consumer: &str) -> Result<Option<u64>> {
        crate::triggers::check_consumer(consumer)
            .map_err(|r| Error::invalid_argument("consumer", r))?;
        self.inner.store.trigger_acked(consumer)
    }

    /// Every consumer that acknowledged firings, with its position, by name.
    ///
    /// # Errors
    /// [`Error::Corruption`] for a stored position that does not decode.
    pub fn trigger_consumers(&self) -> Result<Vec<(String, u64)>> {
        self.inner.store.trigger_consumers()
    }

    /// Follows the outbox: an iterator over the firings with ids above `since`, oldest first,
    /// that waits (looking every 20 ms) for the next one to be committed, and ends once the
    /// store is closed (by [`Db::close`] on any handle) and every firing committed before is
    /// delivered. It holds a handle of the store.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// db.trigger_add("first", &["FIRST_PURCHASE"])?;
    /// let mut firings = db.follow_triggers(db.last_trigger_id()?);
    /// db.ingest(Event::new("c1", 1_767_225_600_000, EventKind::Purchase).with_value(5.0))?;
    /// let next = firings.next().expect("the store is open")?;
    /// assert_eq!((next.trigger.as_str(), next.customer.as_str()), ("first", "c1"));
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn follow_triggers(&self, since: u64) -> TriggerFollower {
        TriggerFollower {
            db: self.clone(),
            since,
            ready: std::collections::VecDeque::new(),
        }
    }

    /// Whether [`Db::close`] was called on some handle.
    fn is_closed(&self) -> bool {
        self.inner.writer.lock().is_none()
    }
}

/// A page of the outbox ([`Db::read_trigger_page`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TriggerPage {
    /// The firings that may be acted on, oldest first.
    pub fired: Vec<Fired>,
    /// The id through which the outbox was looked at: the last firing returned when the page
    /// is full, else the newest firing read (`since` when there was none). Reading on from
    /// here skips only firings no one may act on.
    pub through: u64,
}

/// The iterator of [`Db::follow_triggers`].
pub struct TriggerFollower {
    db: Db,
    since: u64,
    ready: std::collections::VecDeque<Fired>,
}

impl std::fmt::Debug for TriggerFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerFollower")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

impl Iterator for TriggerFollower {
    type Item = Result<Fired>;

    fn next(&mut self) -> Option<Result<Fired>> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                self.since = f.id;
                return Some(Ok(f));
            }
            // Closed before this read: the read sees everything committed, and is the last.
            let closed = self.db.is_closed();
            match self.db.read_trigger_page(self.since, 1000) {
                Ok(page) if page.fired.is_empty() => {
                    self.since = page.through;
                    if closed {
                        return None;
                    }
                    std::thread::sleep(FOLLOW_POLL);
                }
                Ok(page) => self.ready.extend(page.fired),
                Err(_) if closed => return None,
                Err(e) => {
                    // Not at once again: a caller that logs the error and goes on must not spin.
                    std::thread::sleep(FOLLOW_POLL);
                    return Some(Err(e));
                }
            }
        }
    }
}

/// How often [`TriggerFollower`] looks for new firings.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(20);
