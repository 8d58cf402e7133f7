//! One batch, one atomic commit: a commit that fails (injected with `Db::fail_next_commits`)
//! fails every event of its batch, leaves no profile of it visible and the previous model in
//! place, and the next batch works as if the failed one had never been sent. Duplicates (the same
//! event id again) are acknowledged as such and change nothing. A sync that fails (injected with
//! `Db::fail_next_syncs`) poisons the store instead: nothing is acknowledged after it.

mod common;

use common::T0;
use persona::generator::{Generator, GeneratorConfig};
use persona::testing::DbInternals;
use persona::{AttrValue, Config, Db, Durability, Error, Event, EventKind, Result};
use std::path::Path;

const HOUR: i64 = 3_600_000;

fn open(dir: &Path) -> Result<Db> {
    Config::new(dir)
        .segments(4)
        .durability(Durability::Flush)
        .open()
}

/// A seeded workload that ends on day 120, so that segments are seeded, labels learned and
/// examples pending when the batches under test arrive.
fn base_events() -> Vec<Event> {
    Generator::new(GeneratorConfig {
        customers: 40,
        events: 1500,
        seed: 3,
        ..GeneratorConfig::default()
    })
    .expect("valid generator config")
    .collect()
}

fn ingest_all(db: &Db, events: &[Event]) -> Result<()> {
    for r in db.ingest_batch(events.to_vec())? {
        r?;
    }
    Ok(())
}

/// The batch under test: new customers, existing customers, and a purchase that labels a
/// pending example positive; the latest timestamps, so the watermark moves and examples expire.
fn test_batch(t: i64) -> Vec<Event> {
    let mut batch = Vec::new();
    for i in 0..20i64 {
        batch.push(
            Event::new(format!("new-{i}"), t + i * HOUR, EventKind::View)
                .with_value(30.0)
                .with_id(format!("n{i}")),
        );
        batch.push(
            Event::new(format!("c{:06}", i), t + i * HOUR, EventKind::Purchase)
                .with_value(12.5)
                .with_category("books")
                .with_id(format!("p{i}")),
        );
    }
    batch
}

/// Every profile (as `Debug` text: equal text means bit-identical values) plus the model.
fn state(db: &Db) -> Result<(Vec<String>, String, String)> {
    let mut profiles = Vec::new();
    for item in db.store().scan_profiles() {
        let id = item?.0;
        profiles.push(format!("{:?}", db.profile(&id)?));
    }
    // Scans go in key order, which in an encrypted store is by token (per store): compare ids.
    profiles.sort();
    Ok((
        profiles,
        format!("{:?}", db.model()),
        format!("{:?}", db.model_info()),
    ))
}

#[test]
fn failed_commit_fails_the_whole_batch_and_keeps_the_previous_model() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let base = base_events();
    ingest_all(&db, &base)?;
    let last = base.last().expect("non-empty").timestamp_ms;
    let info_before = db.model_info();
    let model_before = db.model();
    let state_before = state(&db)?;
    assert!(info_before.segments_seeded && info_before.pending_examples > 0);

    db.fail_next_commits(1);
    let mut batch = test_batch(last + HOUR);
    // An invalid event in the same call is rejected on its own, not by the commit failure.
    batch.push(Event::new("new-bad", last, EventKind::Purchase).with_value(-1.0));
    let results = db.ingest_batch(batch.clone())?;
    assert_eq!(results.len(), batch.len());
    for (r, e) in results.iter().zip(&batch) {
        let err = r.as_ref().expect_err("the commit failed");
        if e.customer_id == "new-bad" {
            assert!(err.is_bad_input(), "{err}");
        } else {
            assert!(matches!(err, Error::Io(_)), "{err:?}");
            assert_eq!(err.to_string(), "i/o error: injected commit failure");
        }
    }
    // Nothing of the batch is visible: no new profile, no changed profile, the same model.
    for i in 0..20 {
        assert!(db.profile(&format!("new-{i}"))?.is_none());
    }
    assert_eq!(db.model_info(), info_before);
    assert_eq!(*db.model(), *model_before);
    assert_eq!(state(&db)?, state_before);

    // The next batch works, and nothing of the failed attempt was remembered (not duplicates).
    batch.pop();
    for r in db.ingest_batch(batch.clone())? {
        let ack = r?;
        assert!(!ack.duplicate);
    }
    let info_after = db.model_info();
    assert_eq!(info_after.version, info_before.version + 1);
    // The batch did train the model (labelled examples), so "unchanged" above was meaningful.
    assert!(info_after.examples > info_before.examples);
    assert_ne!(info_after.watermark_ms, info_before.watermark_ms);
    assert_eq!(db.profile("new-0")?.expect("committed").event_count, 1);

    // The result is exactly that of a store which never saw the failure.
    let twin_dir = tempfile::tempdir()?;
    let twin = open(twin_dir.path())?;
    ingest_all(&twin, &base)?;
    ingest_all(&twin, &batch)?;
    assert_eq!(state(&db)?, state(&twin)?);

    // And it survives a reopen the same way.
    db.close()?;
    drop(db);
    let db = open(dir.path())?;
    assert_eq!(state(&db)?, state(&twin)?);
    Ok(())
}

#[test]
fn consecutive_failures_and_failed_attribute_writes_change_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    db.ingest(Event::new("a", T0, EventKind::Click).with_id("a1"))?;
    db.set_attributes("a", vec![("plan".into(), "free".into())])?;
    let before = state(&db)?;

    db.fail_next_commits(2);
    let err = db
        .set_attributes("a", vec![("plan".into(), "gold".into())])
        .unwrap_err();
    assert_eq!(err.to_string(), "i/o error: injected commit failure");
    let err = db
        .ingest(Event::new("a", T0 + HOUR, EventKind::Click).with_id("a2"))
        .unwrap_err();
    assert_eq!(err.to_string(), "i/o error: injected commit failure");
    assert_eq!(state(&db)?, before);
    let p = db.profile("a")?.expect("exists");
    assert_eq!(p.attributes["plan"], AttrValue::Text("free".into()));
    assert_eq!((p.version, p.event_count), (2, 1));

    // The third commit is not failed.
    assert_eq!(
        db.set_attributes("a", vec![("plan".into(), "gold".into())])?,
        3
    );
    let ack = db.ingest(Event::new("a", T0 + HOUR, EventKind::Click).with_id("a2"))?;
    assert_eq!((ack.version, ack.duplicate), (4, false));
    let p = db.profile("a")?.expect("exists");
    assert_eq!(p.attributes["plan"], AttrValue::Text("gold".into()));
    assert_eq!(p.event_count, 2);
    Ok(())
}

#[test]
fn duplicates_are_acknowledged_and_change_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let order = Event::new("c1", T0, EventKind::Purchase)
        .with_value(25.0)
        .with_id("order-1");
    let first = db.ingest(order.clone())?;
    assert_eq!((first.version, first.duplicate), (1, false));
    let profile = format!("{:?}", db.profile("c1")?);
    let info = db.model_info();

    // The same id again, even with different fields: a duplicate, nothing committed.
    for again in [
        order.clone(),
        order.clone().with_value(99.0),
        Event::new("c1", T0 + HOUR, EventKind::Refund)
            .with_value(25.0)
            .with_id("order-1"),
    ] {
        let ack = db.ingest(again)?;
        assert!(ack.duplicate);
        assert_eq!(ack.version, 1);
        assert_eq!(ack.segment, first.segment);
        assert_eq!(ack.propensity, first.propensity);
    }
    assert_eq!(format!("{:?}", db.profile("c1")?), profile);
    assert_eq!(db.model_info(), info, "a duplicate commits nothing");

    // A file row without an id gets the hash of its fields (`with_row_id`, as the readers do):
    // the same row is a duplicate, a different one is not. An event without any id is never
    // one: every ingest of it counts.
    let row = Event::new("c2", T0, EventKind::View).with_value(12.0);
    assert!(!db.ingest(row.clone().with_row_id())?.duplicate);
    assert!(db.ingest(row.clone().with_row_id())?.duplicate);
    assert!(
        !db.ingest(row.clone().with_value(13.0).with_row_id())?
            .duplicate
    );
    assert_eq!(db.profile("c2")?.expect("exists").event_count, 2);
    assert!(!db.ingest(row.clone())?.duplicate);
    assert!(!db.ingest(row)?.duplicate);
    assert_eq!(db.profile("c2")?.expect("exists").event_count, 4);

    // Within one batch, the second copy is the duplicate.
    let acks = db.ingest_batch(vec![
        Event::new("c3", T0, EventKind::Like).with_id("l1"),
        Event::new("c3", T0, EventKind::Like).with_id("l1"),
    ])?;
    let acks: Vec<_> = acks.into_iter().collect::<Result<_>>()?;
    assert_eq!((acks[0].version, acks[0].duplicate), (1, false));
    assert_eq!((acks[1].version, acks[1].duplicate), (1, true));

    // Ids are remembered per customer: the same id for another customer is a new event.
    assert!(
        !db.ingest(Event::new("c4", T0, EventKind::Like).with_id("l1"))?
            .duplicate
    );

    // Remembered across a reopen.
    db.close()?;
    drop(db);
    let db = open(dir.path())?;
    let ack = db.ingest(order)?;
    assert!(ack.duplicate);
    assert_eq!(ack.version, 1);
    assert_eq!(format!("{:?}", db.profile("c1")?), profile);
    Ok(())
}

#[test]
fn dedupe_window_is_per_customer_and_bounded() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .dedupe_window(2)
        .durability(Durability::None)
        .open()?;
    let e = |id: &str, h: i64| Event::new("w", T0 + h * HOUR, EventKind::Click).with_id(id);
    db.ingest(e("x", 0))?;
    db.ingest(e("y", 1))?;
    assert!(
        db.ingest(e("x", 0))?.duplicate,
        "x is within the last 2 ids"
    );
    db.ingest(e("z", 2))?;
    // x has left the window of 2 (y, z): it cannot be told apart from a replay, so it is
    // refused rather than applied twice, and nothing changes.
    let err = db.ingest(e("x", 0)).unwrap_err();
    assert!(err.is_bad_input());
    assert!(
        err.to_string()
            .contains("is not newer than the customer's de-duplication window"),
        "{err}"
    );
    assert_eq!(db.profile("w")?.expect("exists").version, 3);
    // A new event later than everything that left the window is applied as usual.
    assert_eq!(db.ingest(e("v", 3))?.version, 4);
    Ok(())
}

/// A sync that fails poisons the store: the writes it covered and every later one fail with
/// `Error::Poisoned` (none is acknowledged), reads keep working, close reports the poison, and
/// a reopen finds every acknowledged write.
#[test]
fn a_failed_sync_poisons_the_store_and_acknowledges_nothing_after_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let acked = db.ingest(Event::new("a", T0, EventKind::Click).with_id("a1"))?;
    assert_eq!(acked.version, 1);

    db.fail_next_syncs(1);
    let err = db
        .ingest(Event::new("a", T0 + HOUR, EventKind::Click).with_id("a2"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Poisoned(why) if why.contains("injected sync failure")),
        "{err}"
    );
    // Later writes are refused, not merely slow (the durability stage must not hang).
    let err = db
        .ingest(Event::new("b", T0 + 2 * HOUR, EventKind::Click).with_id("b1"))
        .unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    assert!(db.profile("a")?.is_some(), "reads still work");
    assert!(matches!(db.close(), Err(Error::Poisoned(_))));
    drop(db);

    let db = open(dir.path())?;
    let p = db.profile("a")?.expect("the acknowledged write survives");
    assert!(p.version >= 1);
    assert!(
        db.profile("b")?.is_none(),
        "a refused write was never applied"
    );
    Ok(())
}

/// A firing is handed out only once the batch that made it is durable: the firing of a write
/// whose sync failed (never acknowledged, maybe lost in a crash, its id maybe given again) is
/// not read by anyone.
#[test]
fn a_firing_is_not_handed_out_before_its_batch_is_durable() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    db.trigger_add("first", &["FIRST_PURCHASE"])?;
    db.ingest(Event::new("a", T0, EventKind::Purchase).with_value(5.0))?;
    assert_eq!(db.read_triggers(0, 10)?.len(), 1);
    db.fail_next_syncs(1);
    let err = db
        .ingest(Event::new("b", T0 + 1, EventKind::Purchase).with_value(5.0))
        .unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    let fired = db.read_triggers(0, 10)?;
    assert_eq!(
        fired.len(),
        1,
        "b's firing is applied but not durable: {fired:?}"
    );
    assert_eq!(fired[0].customer, "a");
    assert_eq!(db.last_trigger_id()?, fired[0].id);
    Ok(())
}
