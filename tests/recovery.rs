//! Reopen keeps everything: after `close` (or a plain drop) and a reopen, every profile, every
//! retained past version, the model (version, metrics, segment sizes, watermark) and the segment
//! membership index are bit-identical, and the store continues exactly as one never closed would.
//! Reopening with different fixed settings is refused and changes nothing.

mod common;

use persona::generator::{Generator, GeneratorConfig};
use persona::testing::model::ModelState;
use persona::testing::DbInternals;
use persona::{AttrValue, Db, Error, Event, ModelInfo, Result, SegmentInfo};

/// Deterministic generated events: `customers` customers, `events` events.
fn events(customers: u64, events: u64, seed: u64) -> Vec<Event> {
    Generator::new(GeneratorConfig {
        customers,
        events,
        seed,
        ..GeneratorConfig::default()
    })
    .expect("valid generator config")
    .collect()
}

fn ingest(db: &Db, events: &[Event]) -> Result<()> {
    for chunk in events.chunks(1000) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    Ok(())
}

/// Everything a reader can observe, in a comparable form. Profiles are compared through their
/// `Debug` text, which prints every `f64` with enough digits to round-trip: equal text means
/// bit-identical values.
#[derive(Debug, PartialEq)]
struct Snapshot {
    profiles: Vec<String>,
    history: Vec<String>,
    model: ModelState,
    info: ModelInfo,
    segments: Vec<SegmentInfo>,
    members: Vec<Vec<String>>,
    profile_count: usize,
}

fn snapshot(db: &Db) -> Result<Snapshot> {
    let mut ids = Vec::new();
    for item in db.store().scan_profiles() {
        ids.push(item?.0);
    }
    let mut profiles = Vec::new();
    let mut history = Vec::new();
    for id in &ids {
        let p = db.profile(id)?.expect("listed by the scan");
        for v in p.version.saturating_sub(3).max(1)..p.version {
            history.push(format!("{:?}", db.profile_at_version(id, v)?));
        }
        profiles.push(format!("{p:?}"));
    }
    let info = db.model_info();
    let members = (0..info.segments.len() as u16)
        .map(|s| db.segment_members(s, None, usize::MAX))
        .collect::<Result<Vec<_>>>()?;
    Ok(Snapshot {
        profiles,
        history,
        model: (*db.model()).clone(),
        info,
        segments: db.segments()?,
        members,
        profile_count: db.profile_count(),
    })
}

/// Ingests a workload with attributes, so that the snapshot covers seeded segments, labelled
/// examples, pending examples and attributes.
fn populate(db: &Db) -> Result<()> {
    ingest(db, &events(80, 3000, 11))?;
    for i in 0..10 {
        db.set_attributes(
            &format!("c{i:06}"),
            vec![
                ("age".into(), AttrValue::Number(20.0 + f64::from(i))),
                ("region".into(), AttrValue::Text(format!("r{}", i % 3))),
            ],
        )?;
    }
    Ok(())
}

#[test]
fn close_and_reopen_keeps_everything_bit_identical() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = common::config(dir.path()).history_versions(4).open()?;
    populate(&db)?;
    let before = snapshot(&db)?;
    // The snapshot is not trivially empty.
    assert!(before.info.segments_seeded);
    assert!(before.info.examples > 0 && before.info.pending_examples > 0);
    assert_eq!(
        before.info.version,
        3 + 10,
        "3 ingest batches and 10 attribute writes"
    );
    assert!(before.profile_count >= 70);
    assert_eq!(
        before.members.iter().map(Vec::len).sum::<usize>() as u64,
        before.info.segments.iter().sum::<u64>()
    );
    db.close()?;
    // A closed handle refuses writes.
    let closed = db.ingest(Event::new(
        "late",
        1_767_225_600_000,
        persona::EventKind::Click,
    ));
    assert!(matches!(closed, Err(Error::Closed)), "{closed:?}");
    drop(db);

    let db = common::config(dir.path()).history_versions(4).open()?;
    assert_eq!(snapshot(&db)?, before);
    db.close()?;
    // The store stays locked until the last handle is dropped, even after close.
    drop(db);
    // And a second round trip changes nothing either.
    let db = common::config(dir.path()).history_versions(4).open()?;
    assert_eq!(snapshot(&db)?, before);
    Ok(())
}

#[test]
fn drop_without_close_also_persists() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let before = {
        let db = common::config(dir.path()).history_versions(4).open()?;
        let clone = db.clone();
        populate(&clone)?;
        let s = snapshot(&db)?;
        drop(clone);
        drop(db); // the last handle: no explicit close
        s
    };
    let db = common::config(dir.path()).history_versions(4).open()?;
    assert_eq!(snapshot(&db)?, before);
    Ok(())
}

#[test]
fn reopened_store_continues_like_one_never_closed() -> Result<()> {
    let all = events(60, 4000, 5);
    let (first, second) = all.split_at(2500);

    let kept_open = tempfile::tempdir()?;
    let a = common::config(kept_open.path())
        .history_versions(4)
        .open()?;
    ingest(&a, first)?;
    ingest(&a, second)?;

    let reopened = tempfile::tempdir()?;
    let b = common::config(reopened.path()).history_versions(4).open()?;
    ingest(&b, first)?;
    b.close()?;
    drop(b);
    let b = common::config(reopened.path()).history_versions(4).open()?;
    ingest(&b, second)?;

    assert_eq!(snapshot(&b)?, snapshot(&a)?);
    Ok(())
}

#[test]
fn reopen_with_different_fixed_settings_is_refused_and_changes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = common::config(dir.path()).history_versions(4).open()?;
    populate(&db)?;
    let before = snapshot(&db)?;
    db.close()?;
    drop(db);

    let err = match common::config(dir.path())
        .history_versions(4)
        .segments(6)
        .open()
    {
        Err(e) => e,
        Ok(_) => panic!("a store created with 4 segments opened with 6"),
    };
    assert!(matches!(err, Error::ConfigMismatch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "store at {} was created with segments = 4, but the configuration says 6; \
             use the original value or a new data directory",
            dir.path().display()
        )
    );
    let err = match common::config(dir.path())
        .history_versions(4)
        .half_life_days(7.0)
        .open()
    {
        Err(e) => e,
        Ok(_) => panic!("a store created with a 30-day half-life opened with 7"),
    };
    assert!(err
        .to_string()
        .contains("was created with half_life_days = 30, but the configuration says 7"));

    // Settings that are not fixed at creation may change.
    let db = common::config(dir.path())
        .history_versions(4)
        .history_versions(8)
        .open()?;
    db.close()?;
    drop(db);
    let db = common::config(dir.path()).history_versions(4).open()?;
    assert_eq!(snapshot(&db)?, before);
    Ok(())
}
