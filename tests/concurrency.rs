//! Concurrent ingest from many threads loses nothing: 8 threads write to private customers,
//! to customers they all share, and race each other with the very same events. Afterwards every
//! event is counted exactly once, every version number was handed out exactly once per customer,
//! each contested event was applied by exactly one thread, and a reopen sees the same. Run
//! twice: as it comes, and with sled's apply held back so that batches are prepared on top of
//! batches sled has not applied yet (the pipelined writer).

mod common;

use common::T0;
use persona::testing::DbInternals;
use persona::testing::ProfileInternals;
use persona::{Ack, Config, Db, Event, EventKind, PendingWrite, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const MINUTE: i64 = 60_000;
const THREADS: usize = 8;
const EVENTS_PER_THREAD: usize = 500;
const SHARED: usize = 5;
const CONTESTED: usize = 25;

/// What one customer should end up with.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    events: u64,
    purchases: u64,
    spend: f64,
}

/// Event `i` of thread `t`: even ones to the thread's private customers, odd ones to the shared
/// customers. Purchase amounts are whole numbers, so their sum is exact in any order.
fn event(t: usize, i: usize) -> Event {
    let customer = if i % 2 == 0 {
        format!("t{t}-c{}", i % 6)
    } else {
        format!("shared-{}", i % SHARED)
    };
    let ts = T0 + (i * THREADS + t) as i64 * MINUTE;
    let e = if i % 5 == 0 {
        Event::new(customer, ts, EventKind::Purchase).with_value((i % 7 + 1) as f64)
    } else {
        Event::new(customer, ts, EventKind::View).with_value(10.0)
    };
    e.with_id(format!("t{t}-e{i}"))
}

/// Contested event `j`: every thread sends exactly this event (same id, same fields).
fn contested(j: usize) -> Event {
    Event::new(
        format!("contested-{}", j % 3),
        T0 + j as i64,
        EventKind::Click,
    )
    .with_id(format!("race-{j}"))
}

/// Sends thread `t`'s events through all three write paths and returns (event id, customer,
/// ack) for each.
fn writer(db: &Db, t: usize) -> Result<Vec<(String, String, Ack)>> {
    let mut out = Vec::new();
    let mut batch: Vec<Event> = Vec::new();
    let mut pending: Vec<(Event, PendingWrite)> = Vec::new();
    let flush = |batch: &mut Vec<Event>, out: &mut Vec<(String, String, Ack)>| -> Result<()> {
        let events = std::mem::take(batch);
        for (e, r) in events.iter().zip(db.ingest_batch(events.clone())?) {
            out.push((
                e.event_id.clone().unwrap_or_default(),
                e.customer_id.clone(),
                r?,
            ));
        }
        Ok(())
    };
    for i in 0..EVENTS_PER_THREAD {
        let e = event(t, i);
        match i % 3 {
            0 => {
                let ack = db.ingest(e.clone())?;
                // Read your own write: a read after the ack sees at least that version.
                let p = db.profile(&e.customer_id)?.expect("just acknowledged");
                assert!(p.version >= ack.version);
                out.push((e.event_id.clone().unwrap_or_default(), e.customer_id, ack));
            }
            1 => {
                let w = db.ingest_async(e.clone())?;
                pending.push((e, w));
            }
            _ => {
                batch.push(e);
                if batch.len() == 20 {
                    flush(&mut batch, &mut out)?;
                }
            }
        }
        if i % 20 == 0 {
            let j = i / 20;
            if j < CONTESTED {
                let e = contested(j);
                let ack = db.ingest(e.clone())?;
                out.push((e.event_id.clone().unwrap_or_default(), e.customer_id, ack));
            }
        }
    }
    flush(&mut batch, &mut out)?;
    for (e, w) in pending {
        out.push((
            e.event_id.clone().unwrap_or_default(),
            e.customer_id,
            w.wait()?,
        ));
    }
    Ok(out)
}

fn expected() -> BTreeMap<String, Expected> {
    let mut m: BTreeMap<String, Expected> = BTreeMap::new();
    for t in 0..THREADS {
        for i in 0..EVENTS_PER_THREAD {
            let e = event(t, i);
            let x = m.entry(e.customer_id.clone()).or_default();
            x.events += 1;
            if e.kind == EventKind::Purchase {
                x.purchases += 1;
                x.spend += e.value.expect("purchases have a value");
            }
        }
    }
    for j in 0..CONTESTED {
        m.entry(contested(j).customer_id).or_default().events += 1;
    }
    m
}

fn check_store(db: &Db, expected: &BTreeMap<String, Expected>) -> Result<()> {
    assert_eq!(db.profile_count(), expected.len());
    let mut total = 0;
    for (id, x) in expected {
        let p = db.profile(id)?.expect("every customer was written");
        let got = Expected {
            events: p.event_count,
            purchases: p.state().purchases(),
            spend: p.state().spend,
        };
        assert_eq!(&got, x, "{id}");
        assert_eq!(p.version, x.events, "{id}: one version per event");
        total += x.events;
    }
    // Every applied event was counted once by the model.
    assert_eq!(db.model().segments.events(), total);
    Ok(())
}

fn open(dir: &Path) -> Result<Db> {
    // The default durability (fsync), so that group commit is exercised as in production.
    Config::new(dir).segments(4).open()
}

#[test]
fn concurrent_ingest_loses_nothing_and_counts_everything_once() -> Result<()> {
    race(None)
}

/// The same race with the apply stage held back before every batch, so the writer prepares
/// most batches while the one before is not yet in sled: each must build on that batch's
/// records, not on the older ones sled still has (otherwise versions repeat and events vanish).
#[test]
fn batches_prepared_before_the_last_one_is_applied_build_on_it() -> Result<()> {
    race(Some(std::time::Duration::from_millis(3)))
}

/// Runs the race of every writer thread, then checks the acknowledgements, the store, and the
/// store again after a reopen.
fn race(apply_delay: Option<std::time::Duration>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    if let Some(d) = apply_delay {
        db.delay_applies(d);
    }
    let results: Vec<Vec<(String, String, Ack)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = db.clone();
                s.spawn(move || writer(&db, t))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;

    let expected = expected();
    // Per customer, the versions acknowledged for applied events are exactly 1..=n.
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut applied_races: BTreeMap<String, usize> = BTreeMap::new();
    let mut acks = 0;
    for (id, customer, ack) in results.into_iter().flatten() {
        acks += 1;
        if id.starts_with("race-") {
            *applied_races.entry(id).or_default() += usize::from(!ack.duplicate);
            if ack.duplicate {
                continue;
            }
        } else {
            assert!(
                !ack.duplicate,
                "{id} is unique but was acknowledged as a duplicate"
            );
        }
        versions.entry(customer).or_default().push(ack.version);
    }
    assert_eq!(acks, THREADS * (EVENTS_PER_THREAD + CONTESTED));
    assert_eq!(applied_races.len(), CONTESTED);
    for (id, n) in &applied_races {
        assert_eq!(*n, 1, "{id} was applied {n} times");
    }
    assert_eq!(
        versions.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>()
    );
    for (customer, mut v) in versions {
        v.sort_unstable();
        let n = expected[&customer].events;
        assert_eq!(v, (1..=n).collect::<Vec<_>>(), "{customer}");
    }
    check_store(&db, &expected)?;

    db.close()?;
    drop(db);
    let db = open(dir.path())?;
    check_store(&db, &expected)?;
    Ok(())
}
