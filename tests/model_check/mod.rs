//! The model check shared by the proptest (`tests/proptest_model.rs`) and the cargo-fuzz target
//! `fuzz/fuzz_targets/model_ops.rs`: operations on a store (ingest, batches, re-sends,
//! attributes, erase, feedback, queries, injected commit failures, reopen), an in-memory reference of what the
//! store must then contain, and [`run`], which applies a sequence of operations to both and checks
//! them after every step. [`ops_from_bytes`] turns arbitrary bytes into operations (the fuzzer's
//! input); the proptest generates them with strategies instead.
#![allow(dead_code)]

use persona::testing::DbInternals;
use persona::testing::ProfileInternals;
use persona::{Ack, AttrValue, Config, Db, Durability, Error, Event, EventKind, Result};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
pub const T0: i64 = 1_767_225_600_000;
pub const HOUR: i64 = 3_600_000;
pub const CUSTOMERS: [&str; 4] = ["ann", "bob", "cy", "dee"];
pub const ATTRIBUTE_NAMES: [&str; 3] = ["age", "plan", "region"];
/// Marketing actions of the default catalogue.
pub const ACTIONS: [&str; 3] = ["vip_offer", "win_back_coupon", "none"];
/// Small on purpose, so that the window and history edges are reached in short sequences.
pub const DEDUPE_WINDOW: usize = 3;
pub const HISTORY_VERSIONS: usize = 3;

pub fn config(dir: &Path) -> Config {
    Config::new(dir)
        .segments(2)
        .reservoir_size(4)
        .dedupe_window(DEDUPE_WINDOW)
        .history_versions(HISTORY_VERSIONS)
        .durability(Durability::None)
}

/// One event to send; `id: None` means a derived id (a hash of the fields).
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub customer: usize,
    pub hours: i64,
    pub kind: EventKind,
    pub value: Option<f64>,
    pub id: Option<u8>,
}

impl EventSpec {
    fn event(&self) -> Event {
        let mut e = Event::new(CUSTOMERS[self.customer], T0 + self.hours * HOUR, self.kind);
        e.value = self.value;
        e.event_id = self.id.map(|i| format!("id{i}"));
        e
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Ingest(EventSpec),
    /// Re-sends the n-th event sent so far (modulo their number), unchanged.
    Resend(usize),
    /// One `ingest_batch` call: one commit.
    Batch(Vec<EventSpec>),
    SetAttributes {
        customer: usize,
        name: usize,
        value: AttrValue,
    },
    /// `Db::erase`: the customer is gone, and may come back as a new one.
    Erase(usize),
    /// `Db::feedback` on the customer's current segment; `id: None` has no feedback id.
    Feedback {
        customer: usize,
        action: usize,
        converted: bool,
        id: Option<u8>,
    },
    Query(usize),
    QueryAt {
        customer: usize,
        version: u64,
    },
    /// Arms one injected commit failure; the next commit (of whatever op) fails.
    FailNextCommit,
    Reopen,
}

/// What a customer's profile holds at one version.
#[derive(Debug, Clone, Default, PartialEq)]
struct Snapshot {
    events: u64,
    kind_counts: [u64; EventKind::COUNT],
    spend: f64,
    first_seen: Option<i64>,
    last_seen: Option<i64>,
    attributes: BTreeMap<String, AttrValue>,
}

#[derive(Debug, Default)]
struct RefCustomer {
    /// `versions[v - 1]` is the profile at version `v`.
    versions: Vec<Snapshot>,
    /// Effective ids and times of the last `DEDUPE_WINDOW` applied events, oldest first.
    recent: VecDeque<(String, i64)>,
    /// Latest time of an id that left the window: unknown ids at or before it are refused.
    floor: Option<i64>,
}

impl RefCustomer {
    fn version(&self) -> u64 {
        self.versions.len() as u64
    }

    fn current(&self) -> Snapshot {
        self.versions.last().cloned().unwrap_or_default()
    }
}

/// The reference: what the store must contain.
#[derive(Debug, Default)]
struct Reference {
    customers: BTreeMap<String, RefCustomer>,
    watermark: i64,
    model_version: u64,
    armed_failures: u32,
}

/// The outcome the reference predicts for one item of a write call.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Applied as this version.
    Applied(u64),
    /// Already applied; the customer is at this version.
    Duplicate(u64),
    /// Invalid: rejected before reaching the writer.
    Rejected,
    /// Refused by the writer: not newer than ids that left the de-duplication window, so it
    /// could be a replay.
    Refused,
    /// Its batch's commit failed.
    Failed,
}

impl Outcome {
    fn committed(outcomes: &[Outcome]) -> bool {
        outcomes.iter().any(|o| matches!(o, Outcome::Applied(_)))
    }
}

impl Reference {
    /// Applies one write call; returns the per-item outcomes. If the reference predicts that the
    /// commit fails (an armed failure and something to commit), nothing changes and every item
    /// that reached the writer is `Failed`.
    fn batch(&mut self, events: &[Event]) -> Vec<Outcome> {
        let mut work: BTreeMap<String, RefCustomer> = BTreeMap::new();
        let mut watermark = self.watermark;
        let mut outcomes = Vec::new();
        for e in events {
            if e.validate().is_err() {
                outcomes.push(Outcome::Rejected);
                continue;
            }
            let c = work.entry(e.customer_id.clone()).or_insert_with(|| {
                let old = self.customers.get(&e.customer_id);
                RefCustomer {
                    versions: old.map(|c| c.versions.clone()).unwrap_or_default(),
                    recent: old.map(|c| c.recent.clone()).unwrap_or_default(),
                    floor: old.and_then(|c| c.floor),
                }
            });
            // An event without an id has no identity: never a duplicate, never a replay.
            let id = e.event_id.clone();
            if let Some(id) = &id {
                if c.recent.iter().any(|(r, _)| r == id) {
                    outcomes.push(Outcome::Duplicate(c.version()));
                    continue;
                }
                if c.floor.is_some_and(|f| e.timestamp_ms <= f) {
                    // Possibly a replay of an event that left the window: refused by the writer.
                    outcomes.push(Outcome::Refused);
                    continue;
                }
            }
            let mut s = c.current();
            let t = e.timestamp_ms;
            s.events += 1;
            s.kind_counts[e.kind.index()] += 1;
            if e.kind == EventKind::Purchase {
                s.spend += e.effective_value();
            }
            s.first_seen = Some(s.first_seen.map_or(t, |f| f.min(t)));
            s.last_seen = Some(s.last_seen.map_or(t, |l| l.max(t)));
            c.versions.push(s);
            if let Some(id) = id {
                c.recent.push_back((id, t));
                // A burst at the newest time stays whole (up to 8 windows): see
                // `ProfileRecord::remember`.
                let newest = c.recent.iter().map(|(_, t)| *t).max().unwrap_or(t);
                while c.recent.len() > DEDUPE_WINDOW {
                    let oldest = c.recent.front().map_or(newest, |(_, o)| *o);
                    if oldest >= newest && c.recent.len() <= 8 * DEDUPE_WINDOW {
                        break;
                    }
                    if let Some((_, gone)) = c.recent.pop_front() {
                        c.floor = Some(c.floor.map_or(gone, |f| f.max(gone)));
                    }
                }
            }
            watermark = watermark.max(t);
            outcomes.push(Outcome::Applied(c.version()));
        }
        let commits = outcomes.iter().any(|o| matches!(o, Outcome::Applied(_)));
        if commits {
            if self.armed_failures > 0 {
                self.armed_failures -= 1;
                return outcomes
                    .into_iter()
                    .map(|o| match o {
                        Outcome::Rejected => Outcome::Rejected,
                        Outcome::Refused => Outcome::Refused,
                        _ => Outcome::Failed,
                    })
                    .collect();
            }
            self.model_version += 1;
            self.watermark = watermark;
            for (id, c) in work {
                // Customers touched only by duplicates are unchanged; inserting them as they
                // were is harmless (they already existed).
                self.customers.insert(id, c);
            }
        }
        outcomes
    }

    fn set_attributes(&mut self, customer: &str, name: &str, value: &AttrValue) -> Option<u64> {
        if self.armed_failures > 0 {
            self.armed_failures -= 1;
            return None;
        }
        let c = self.customers.entry(customer.to_string()).or_default();
        let mut s = c.current();
        s.attributes.insert(name.to_string(), value.clone());
        c.versions.push(s);
        self.model_version += 1;
        Some(c.version())
    }
}

/// What the reference predicts for one `Db::feedback` call.
#[derive(Debug, PartialEq)]
enum FeedbackOutcome {
    /// Recorded: the model version moves on; the customer's version does not.
    Recorded(u64),
    /// The feedback id was already recorded: nothing changes.
    Duplicate(u64),
    /// Refused: unknown customer, or no segments to attribute it to yet.
    Refused,
    /// Its commit failed.
    Failed,
}

impl Reference {
    /// Feedback with an optional id on a customer; `seeded` says whether the model has segments
    /// (the reference does not model k-means). A feedback id takes a slot of the customer's
    /// de-duplication window without a time, so it never raises the floor.
    fn feedback(&mut self, customer: &str, id: Option<&str>, seeded: bool) -> FeedbackOutcome {
        let Some(c) = self.customers.get_mut(customer) else {
            return FeedbackOutcome::Refused;
        };
        let key = id.map(|id| format!("feedback\0{id}"));
        if let Some(k) = &key {
            if c.recent.iter().any(|(r, _)| r == k) {
                return FeedbackOutcome::Duplicate(c.version());
            }
        }
        if !seeded {
            return FeedbackOutcome::Refused;
        }
        if self.armed_failures > 0 {
            self.armed_failures -= 1;
            return FeedbackOutcome::Failed;
        }
        if let Some(k) = key {
            c.recent.push_back((k, i64::MIN));
            while c.recent.len() > DEDUPE_WINDOW {
                if let Some((_, gone)) = c.recent.pop_front() {
                    if gone != i64::MIN {
                        c.floor = Some(c.floor.map_or(gone, |f| f.max(gone)));
                    }
                }
            }
        }
        self.model_version += 1;
        FeedbackOutcome::Recorded(c.version())
    }
}

impl Reference {
    /// `Some(existed)`, or `None` if the erase's commit fails (nothing changes then). An
    /// unknown customer commits nothing, so it does not consume an armed failure.
    fn erase(&mut self, customer: &str) -> Option<bool> {
        if !self.customers.contains_key(customer) {
            return Some(false);
        }
        if self.armed_failures > 0 {
            self.armed_failures -= 1;
            return None;
        }
        // The watermark stays: erasing never moves it back.
        self.customers.remove(customer);
        self.model_version += 1;
        Some(true)
    }
}

fn snapshot_of(p: &persona::Profile) -> Snapshot {
    Snapshot {
        events: p.event_count,
        kind_counts: p.state().kind_counts,
        spend: p.state().spend,
        first_seen: p.first_seen_ms,
        last_seen: p.last_seen_ms,
        attributes: p.attributes.clone(),
    }
}

/// Checks the results of one write call against the reference's prediction.
#[track_caller]
fn check_acks(results: Vec<Result<Ack>>, expected: &[Outcome]) {
    assert_eq!(results.len(), expected.len());
    for (r, o) in results.into_iter().zip(expected) {
        let got = match r {
            Ok(ack) if ack.duplicate => Outcome::Duplicate(ack.version),
            Ok(ack) => Outcome::Applied(ack.version),
            Err(Error::InvalidEvent(_)) => Outcome::Rejected,
            Err(e @ Error::InvalidArgument { .. }) => {
                assert!(
                    e.to_string().contains("de-duplication window"),
                    "unexpected refusal: {e}"
                );
                Outcome::Refused
            }
            Err(e) => {
                assert_eq!(e.to_string(), "i/o error: injected commit failure");
                Outcome::Failed
            }
        };
        assert_eq!(&got, o);
    }
}

/// Checks every customer and the model against the reference.
fn check_all(db: &Db, r: &Reference) -> Result<()> {
    let info = db.model_info();
    assert_eq!(info.version, r.model_version, "model version");
    assert_eq!(info.watermark_ms, r.watermark, "watermark");
    let mut assigned = 0u64;
    for name in CUSTOMERS {
        let p = db.profile(name)?;
        match r.customers.get(name) {
            None => assert!(p.is_none(), "{name} should not exist"),
            Some(c) => {
                let p = p.unwrap_or_else(|| panic!("{name} should exist"));
                assert_eq!(p.version, c.version(), "{name} version");
                assert_eq!(snapshot_of(&p), c.current(), "{name}");
                assert_eq!(
                    p.as_of_ms,
                    r.watermark.max(p.last_seen_ms.unwrap_or(i64::MIN))
                );
                assigned += u64::from(p.assigned_segment.is_some());
            }
        }
    }
    // Segment sizes count exactly the customers assigned a segment.
    assert_eq!(info.segments.iter().sum::<u64>(), assigned, "segment sizes");
    assert_eq!(db.profile_count(), r.customers.len());
    Ok(())
}

fn query_at(db: &Db, r: &Reference, customer: &str, version: u64) -> Result<()> {
    let got = db.profile_at_version(customer, version);
    let Some(c) = r.customers.get(customer) else {
        assert!(got?.is_none());
        return Ok(());
    };
    let current = c.version();
    let base = current - current.min(HISTORY_VERSIONS as u64 - 1);
    let oldest = base.max(1).min(current);
    if version > current {
        let err = got.expect_err("a future version");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid argument version: {version} of \"{customer}\" does not exist; the \
                 latest is {current}"
            )
        );
    } else if version == 0 || version < base {
        let err = got.expect_err("a pruned version");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid argument version: {version} of \"{customer}\" was pruned; versions \
                 {oldest}..={current} are kept"
            )
        );
    } else {
        let p = got?.expect("a retained version");
        assert_eq!(p.version, version);
        assert_eq!(snapshot_of(&p), c.versions[version as usize - 1]);
    }
    Ok(())
}

/// A write that committed, to replay into a twin store.
enum Write {
    Events(Vec<Event>),
    Attribute(&'static str, &'static str, AttrValue),
    Erase(&'static str),
    Feedback(&'static str, &'static str, bool, Option<String>),
}

/// Everything observable about the store, as text (equal text means bit-identical values).
pub fn full_state(db: &Db) -> Result<String> {
    let mut out = format!("{:?}\n{:?}\n", db.model(), db.model_info());
    for name in CUSTOMERS {
        out.push_str(&format!("{:?}\n", db.profile(name)?));
    }
    Ok(out)
}

/// Runs `ops` against a fresh store and the reference, checking after every step; finally
/// replays the writes that committed into a twin store that is never reopened and never fails,
/// which must end bit-identical.
pub fn run(ops: &[Op]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut db = config(dir.path()).open()?;
    let mut r = Reference::default();
    let mut sent: Vec<Event> = Vec::new();
    let mut committed: Vec<Write> = Vec::new();
    for op in ops {
        match op {
            Op::Ingest(spec) => {
                let e = spec.event();
                let expected = r.batch(std::slice::from_ref(&e));
                if Outcome::committed(&expected) {
                    committed.push(Write::Events(vec![e.clone()]));
                }
                check_acks(vec![db.ingest(e.clone())], &expected);
                sent.push(e);
            }
            Op::Resend(n) => {
                if sent.is_empty() {
                    continue;
                }
                let e = sent[n % sent.len()].clone();
                let expected = r.batch(std::slice::from_ref(&e));
                if Outcome::committed(&expected) {
                    committed.push(Write::Events(vec![e.clone()]));
                }
                check_acks(vec![db.ingest(e)], &expected);
            }
            Op::Batch(specs) => {
                let events: Vec<Event> = specs.iter().map(EventSpec::event).collect();
                let expected = r.batch(&events);
                if Outcome::committed(&expected) {
                    committed.push(Write::Events(events.clone()));
                }
                check_acks(db.ingest_batch(events.clone())?, &expected);
                sent.extend(events);
            }
            Op::SetAttributes {
                customer,
                name,
                value,
            } => {
                let (customer, name) = (CUSTOMERS[*customer], ATTRIBUTE_NAMES[*name]);
                let expected = r.set_attributes(customer, name, value);
                let got = db.set_attributes(customer, vec![(name.to_string(), value.clone())]);
                match expected {
                    Some(v) => {
                        assert_eq!(got?, v);
                        committed.push(Write::Attribute(customer, name, value.clone()));
                    }
                    None => assert!(matches!(got, Err(Error::Io(_))), "{got:?}"),
                }
            }
            Op::Erase(customer) => {
                let customer = CUSTOMERS[*customer];
                let got = db.erase(customer);
                match r.erase(customer) {
                    Some(existed) => {
                        assert_eq!(got?, existed, "erase {customer}");
                        if existed {
                            committed.push(Write::Erase(customer));
                        }
                    }
                    None => assert!(matches!(got, Err(Error::Io(_))), "{got:?}"),
                }
            }
            Op::Feedback {
                customer,
                action,
                converted,
                id,
            } => {
                let customer = CUSTOMERS[*customer];
                let action = ACTIONS[*action % ACTIONS.len()];
                let id = id.map(|i| format!("fb{i}"));
                let seeded = db.model().segments.is_seeded();
                let got = db.feedback(
                    persona::Feedback::new(customer, action, *converted).with_id(id.as_deref()),
                );
                match r.feedback(customer, id.as_deref(), seeded) {
                    FeedbackOutcome::Recorded(v) => {
                        let ack = got?;
                        assert!(!ack.duplicate, "feedback {customer}: {ack:?}");
                        assert_eq!(ack.version, v, "feedback keeps the profile version");
                        committed.push(Write::Feedback(customer, action, *converted, id));
                    }
                    FeedbackOutcome::Duplicate(v) => {
                        let ack = got?;
                        assert!(ack.duplicate, "feedback {customer}: {ack:?}");
                        assert_eq!(ack.version, v);
                    }
                    FeedbackOutcome::Refused => {
                        assert!(
                            matches!(&got, Err(e) if e.is_bad_input()),
                            "feedback {customer}: {got:?}"
                        );
                    }
                    FeedbackOutcome::Failed => {
                        assert!(matches!(got, Err(Error::Io(_))), "{got:?}")
                    }
                }
            }
            Op::Query(customer) => {
                let p = db.profile(CUSTOMERS[*customer])?;
                let c = r.customers.get(CUSTOMERS[*customer]);
                assert_eq!(p.map(|p| snapshot_of(&p)), c.map(RefCustomer::current));
            }
            Op::QueryAt { customer, version } => {
                query_at(&db, &r, CUSTOMERS[*customer], *version)?;
            }
            Op::FailNextCommit => {
                r.armed_failures += 1;
                db.fail_next_commits(r.armed_failures);
            }
            Op::Reopen => {
                let before = full_state(&db)?;
                db.close()?;
                drop(db);
                db = config(dir.path()).open()?;
                assert_eq!(full_state(&db)?, before, "reopen changed the store");
                // Injected failures are a property of the open handle, not of the store.
                r.armed_failures = 0;
            }
        }
        check_all(&db, &r)?;
    }
    let twin_dir = tempfile::tempdir()?;
    let twin = config(twin_dir.path()).open()?;
    for w in committed {
        match w {
            Write::Events(events) => {
                for r in twin.ingest_batch(events)? {
                    if let Err(e) = r {
                        assert!(e.is_bad_input(), "{e}");
                    }
                }
            }
            Write::Attribute(customer, name, value) => {
                twin.set_attributes(customer, vec![(name.to_string(), value)])?;
            }
            Write::Erase(customer) => {
                assert!(twin.erase(customer)?);
            }
            Write::Feedback(customer, action, converted, id) => {
                let ack = twin.feedback(
                    persona::Feedback::new(customer, action, converted).with_id(id.as_deref()),
                )?;
                assert!(!ack.duplicate);
            }
        }
    }
    assert_eq!(
        full_state(&db)?,
        full_state(&twin)?,
        "the twin store differs"
    );
    db.close()?;
    drop(db);
    // Whatever the operations did, the store on disk passes the offline check.
    let report = persona::check_store(dir.path())?;
    assert!(report.is_clean(), "persona check: {:?}", report.problems);
    Ok(())
}

/// Reads operations from arbitrary bytes (the fuzzer's input), a few bytes each, covering the
/// same operations and value ranges as the proptest strategies, invalid events included. Never
/// fails: missing bytes read as zero; at most 64 operations.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let mut ops = Vec::new();
    while ops.len() < 64 {
        let Some(tag) = next() else { break };
        let mut byte = || next().unwrap_or(0);
        let op = match tag % 16 {
            0..=5 => Op::Ingest(spec_from(&mut byte)),
            6 | 7 => Op::Resend(usize::from(byte())),
            8 | 9 => {
                let n = 1 + usize::from(byte() % 5);
                Op::Batch((0..n).map(|_| spec_from(&mut byte)).collect())
            }
            10 | 11 => {
                let customer = usize::from(byte()) % CUSTOMERS.len();
                let name = usize::from(byte()) % ATTRIBUTE_NAMES.len();
                let v = byte();
                let value = if v & 1 == 0 {
                    AttrValue::Number(f64::from(i32::from(v >> 1) - 64))
                } else {
                    AttrValue::Text(["", "a", "b", "ab", "cc"][usize::from(v >> 1) % 5].to_string())
                };
                Op::SetAttributes {
                    customer,
                    name,
                    value,
                }
            }
            12 if byte() & 1 == 0 => Op::Query(usize::from(byte()) % CUSTOMERS.len()),
            12 => {
                let (c, a, f) = (byte(), byte(), byte());
                Op::Feedback {
                    customer: usize::from(c) % CUSTOMERS.len(),
                    action: usize::from(a) % ACTIONS.len(),
                    converted: f & 1 == 1,
                    id: (f & 2 == 2).then_some((f >> 2) % 6),
                }
            }
            13 => Op::QueryAt {
                customer: usize::from(byte()) % CUSTOMERS.len(),
                version: u64::from(byte() % 12),
            },
            14 if byte() & 1 == 0 => Op::FailNextCommit,
            14 => Op::Erase(usize::from(byte()) % CUSTOMERS.len()),
            _ => Op::Reopen,
        };
        ops.push(op);
    }
    ops
}

/// One event from four bytes.
fn spec_from(byte: &mut impl FnMut() -> u8) -> EventSpec {
    let (customer, hours_hi, hours_lo, kv) = (byte(), byte(), byte(), byte());
    let amount = f64::from(kv >> 3);
    let (kind, value) = match kv % 8 {
        0 => (EventKind::Purchase, Some(amount * 3.25)),
        1 => (EventKind::Refund, Some(amount)),
        2 => (EventKind::Rating, Some(f64::from(1 + (kv >> 3) % 5))),
        3 => (EventKind::View, Some(amount * 9.0)),
        4 => (EventKind::Purchase, Some(-1.0)),
        5 => (EventKind::Click, None),
        6 => (EventKind::Like, None),
        _ => (EventKind::Rating, Some(9.0)),
    };
    let id_byte = byte();
    EventSpec {
        customer: usize::from(customer) % CUSTOMERS.len(),
        hours: (i64::from(hours_hi) << 8 | i64::from(hours_lo)) % 2400,
        kind,
        value,
        id: (id_byte % 10 < 7).then_some(id_byte % 12),
    }
}
