//! The persisted expiry queue (`Q` keys): reopening a store resumes from it instead of reading
//! every profile record, and it must make the writer behave exactly as if the store had never
//! been closed; a store without it (an older build's) or with a damaged one is opened by
//! deriving the queue from the records, and the next commit writes it anew.

mod common;

use common::check_store;
use common::store::raw;
use persona::generator::{Generator, GeneratorConfig};
use persona::testing::storage::{keys, queue};
use persona::testing::DbInternals;
use persona::{Config, Db, Event};
use std::path::Path;

/// Events per `ingest_batch` call (one commit each); the session splits are multiples of it,
/// so split and unsplit runs commit the same batches.
const CHUNK: usize = 250;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A short horizon, so that examples are labelled (positive and silent-period negatives)
/// many times over the generated period.
fn config(dir: &Path) -> Config {
    common::plain_config(dir)
        .horizon_days(3.0)
        .silent_horizons(2)
        .reservoir_size(64)
}

fn events() -> Result<Vec<Event>, Box<dyn std::error::Error>> {
    Ok(Generator::new(GeneratorConfig {
        customers: 150,
        events: 4000,
        seed: 5,
        days: 60,
        ..GeneratorConfig::default()
    })?
    .collect())
}

fn ingest(db: &Db, events: &[Event]) -> TestResult {
    for chunk in events.chunks(CHUNK) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    Ok(())
}

/// The model after ingesting `events` in one session, and in sessions split at `splits`, with
/// `between` run on the closed store at every split.
fn model_after(
    dir: &Path,
    events: &[Event],
    splits: &[usize],
    between: &dyn Fn(&Path) -> TestResult,
) -> Result<persona::testing::model::ModelState, Box<dyn std::error::Error>> {
    let mut start = 0;
    for &end in splits.iter().chain([&events.len()]) {
        let model = {
            let db = Db::open_with(config(dir))?;
            ingest(&db, &events[start..end])?;
            let model = (*db.model()).clone();
            db.close()?;
            model
        };
        start = end;
        if end == events.len() {
            return Ok(model);
        }
        between(dir)?;
    }
    unreachable!("the last split is the end of the events")
}

/// The two models are equal (compared part by part, so that a failure says which part and
/// does not print two whole models).
fn assert_same(
    a: &persona::testing::model::ModelState,
    b: &persona::testing::model::ModelState,
    case: &str,
) {
    assert_eq!(a.watermark_ms, b.watermark_ms, "{case}: watermark");
    assert!(a.metrics == b.metrics, "{case}: prequential metrics differ");
    assert!(a.propensity == b.propensity, "{case}: propensity differs");
    assert!(a.scaler == b.scaler, "{case}: scaler differs");
    assert!(a.segments == b.segments, "{case}: segments differ");
    assert!(a.drift == b.drift, "{case}: drift detector differs");
    assert!(
        a == b,
        "{case}: model states differ (version {} / {})",
        a.version,
        b.version
    );
}

fn queue_keys(dir: &Path) -> sled::Result<(usize, usize, bool)> {
    raw(dir, |db| {
        let chunks = db.scan_prefix([keys::QUEUE, b'c']).count();
        let deltas = db.scan_prefix([keys::QUEUE, b'd']).count();
        Ok((chunks, deltas, db.contains_key(queue::meta_key())?))
    })
}

#[test]
fn reopening_resumes_the_queue_exactly_and_check_agrees_with_the_records() -> TestResult {
    let events = events()?;
    let once = tempfile::tempdir()?;
    let whole = model_after(once.path(), &events, &[], &|_| Ok(()))?;
    let split = tempfile::tempdir()?;
    let splits = [750, 2000, 3000];
    let resumed = model_after(split.path(), &events, &splits, &|dir| {
        // Between sessions the persisted queue is consistent with the records.
        let report = check_store(dir)?;
        assert!(report.is_clean(), "{:#?}", report.problems);
        Ok(())
    })?;
    // Same labels learned at the same moments: the same model, to the last bit (refits
    // included: the refit rows are persisted).
    assert!(
        whole.propensity.refit().is_some(),
        "the stream is long enough to refit"
    );
    assert_same(&whole, &resumed, "split in four sessions");
    let rows = |dir: &std::path::Path| {
        raw(dir, |db| {
            db.scan_prefix([keys::SAMPLED_ROW])
                .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect::<Result<Vec<_>, _>>()
        })
    };
    let stored = rows(split.path())?;
    assert!(!stored.is_empty(), "the refit rows are stored");
    assert!(
        stored == rows(once.path())?,
        "the same refit rows, stored the same way"
    );
    let (chunks, deltas, meta) = queue_keys(split.path())?;
    assert!(meta && chunks >= 1, "checkpoint stored: {chunks} chunks");
    assert!(deltas >= 1, "deltas since the checkpoint: {deltas}");
    let report = check_store(split.path())?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    Ok(())
}

#[test]
fn a_store_without_a_queue_or_with_a_damaged_one_derives_it_and_rewrites_it() -> TestResult {
    let events = events()?;
    let once = tempfile::tempdir()?;
    let whole = model_after(once.path(), &events, &[], &|_| Ok(()))?;

    // As an older build left it: no queue keys at all.
    let old = tempfile::tempdir()?;
    let resumed = model_after(old.path(), &events, &[1500], &|dir| {
        raw(dir, |db| {
            for k in db.scan_prefix([keys::QUEUE]).keys() {
                db.remove(k?)?;
            }
            Ok(())
        })?;
        assert!(check_store(dir)?.is_clean(), "no queue is not a problem");
        Ok(())
    })?;
    assert_same(&whole, &resumed, "no queue keys");

    // A damaged chunk, a damaged delta, and a checkpoint meta for other settings.
    type Damage = fn(&sled::Db) -> sled::Result<()>;
    let damages: [(&str, Damage); 4] = [
        ("chunk", |db| {
            db.insert(queue::chunk_key(0), vec![1, 0xff, 0xff])?;
            Ok(())
        }),
        ("delta", |db| {
            db.insert(queue::delta_key(u64::MAX), vec![1, 7])?;
            Ok(())
        }),
        ("meta", |db| {
            // Valid, but built with another silent-horizon count: not usable as it is.
            let bytes = db.get(queue::meta_key())?.expect("meta");
            let mut meta: queue::QueueMeta =
                persona::testing::storage::codec::decode(&|| "meta".into(), &bytes)
                    .expect("decodes");
            meta.silent_horizons += 1;
            db.insert(
                queue::meta_key(),
                persona::testing::storage::codec::encode(&meta),
            )?;
            Ok(())
        }),
        ("stale", |db| {
            // As if a build that does not keep the queue had committed since.
            let mut meta = queue::load_meta(db).expect("decodes").expect("meta");
            meta.model_version -= 1;
            db.insert(
                queue::meta_key(),
                persona::testing::storage::codec::encode(&meta),
            )?;
            Ok(())
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir()?;
        let resumed = model_after(dir.path(), &events, &[2000], &|dir| {
            raw(dir, damage)?;
            if what != "meta" {
                let report = check_store(dir)?;
                assert!(!report.is_clean(), "check sees the damaged {what}");
                assert!(
                    report.problems.iter().any(|p| p.key.starts_with('Q')),
                    "{:#?}",
                    report.problems
                );
            }
            Ok(())
        })?;
        assert_same(&whole, &resumed, what);
        // The first commit after the open replaced the damaged queue with a checkpoint.
        let report = check_store(dir.path())?;
        assert!(report.is_clean(), "{what}: {:#?}", report.problems);
    }
    Ok(())
}

#[test]
fn erasing_a_customer_leaves_no_queue_or_example_record_naming_them() -> TestResult {
    let dir = tempfile::tempdir()?;
    let events = events()?;
    let db = Db::open_with(config(dir.path()))?;
    ingest(&db, &events)?;
    db.close()?;
    drop(db);
    // The first customer has events in every cohort.
    let victim = events[0].customer_id.clone();
    let needle = victim.as_bytes();
    // Held keys end with the customer id.
    let names_victim = |k: &[u8]| k.ends_with(needle) && k.len() == 9 + needle.len();
    let in_cohorts = raw(dir.path(), |db| {
        let mut rows = 0;
        for k in db.scan_prefix([keys::SAMPLED_ROW]).keys() {
            let k = k?;
            rows += usize::from(keys::parse_sampled_row(&k).is_some_and(|(_, c)| c == victim));
        }
        Ok(rows)
    })?;
    assert!(in_cohorts > 0, "{victim} has refit rows");
    let db = Db::open_with(config(dir.path()))?;
    // The customer's export lists those examples (the right of access covers them too).
    let export = db
        .export_customer(&victim)?
        .ok_or("the victim exists")?
        .to_json();
    let listed = export["training_examples"]
        .as_array()
        .ok_or("training_examples is a list")?
        .iter()
        .filter(|e| e["kept_as"] == "refit_cohort")
        .count();
    assert_eq!(listed, in_cohorts, "{export:#}");
    assert!(db.erase(&victim)?);
    db.close()?;
    drop(db);
    raw(dir.path(), |db| {
        for kv in db.scan_prefix([keys::QUEUE]) {
            let (k, v) = kv?;
            assert!(
                !v.windows(needle.len()).any(|w| w == needle),
                "{k:?} still names {victim}"
            );
        }
        for k in db.scan_prefix([keys::HELD]).keys() {
            let k = k?;
            assert!(!names_victim(&k), "{k:?} still names {victim}");
        }
        for kv in db.scan_prefix([keys::COHORT]) {
            let (k, v) = kv?;
            assert!(
                !v.windows(needle.len()).any(|w| w == needle),
                "{k:?} still names {victim}"
            );
        }
        Ok(())
    })?;
    assert!(check_store(dir.path())?.is_clean());
    Ok(())
}

#[test]
fn a_retention_purge_erases_in_one_batch_and_leaves_no_queue_record_naming_them() -> TestResult {
    let dir = tempfile::tempdir()?;
    let events = events()?;
    let db = Db::open_with(config(dir.path()))?;
    ingest(&db, &events)?;
    let report = db.purge_older_than(20.0)?;
    let mut last_seen = std::collections::HashMap::new();
    for e in &events {
        let t = last_seen
            .entry(e.customer_id.clone())
            .or_insert(e.timestamp_ms);
        *t = (*t).max(e.timestamp_ms);
    }
    let expired: Vec<&String> = last_seen
        .iter()
        .filter(|(_, &t)| t < report.cutoff_ms)
        .map(|(id, _)| id)
        .collect();
    assert!(
        !expired.is_empty(),
        "the workload has customers silent for 20 days"
    );
    assert_eq!(report.erased, expired.len());
    assert_eq!(report.batches, 1, "{report:?}");
    for id in &expired {
        assert!(db.profile(id)?.is_none(), "{id} erased");
    }
    db.close()?;
    drop(db);
    raw(dir.path(), |db| {
        for kv in db.scan_prefix([keys::QUEUE]) {
            let (k, v) = kv?;
            for id in &expired {
                // Ids are fixed-width ("c000042"), so no id is a substring of another.
                let needle = id.as_bytes();
                assert!(
                    !v.windows(needle.len()).any(|w| w == needle),
                    "{k:?} still names {id}"
                );
            }
        }
        Ok(())
    })?;
    assert!(check_store(dir.path())?.is_clean());
    Ok(())
}

#[test]
fn refit_rows_and_refits_do_not_depend_on_how_events_are_batched() -> TestResult {
    // A gap of five days makes the watermark jump many blocks inside a batch.
    let day = 86_400_000;
    let all = events()?;
    let t0 = all
        .iter()
        .map(|e| e.timestamp_ms)
        .min()
        .ok_or("no events")?;
    let events: Vec<Event> = all
        .into_iter()
        .filter(|e| !(t0 + 20 * day..t0 + 25 * day).contains(&e.timestamp_ms))
        .collect();
    let run = |chunk: usize| -> Result<_, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = Db::open_with(config(dir.path()))?;
        for part in events.chunks(chunk) {
            for r in db.ingest_batch(part.to_vec())? {
                r?;
            }
        }
        let refit = db.model().propensity.refit().map(<[f64]>::to_vec);
        db.close()?;
        drop(db);
        let rows = raw(dir.path(), |db| {
            db.scan_prefix([keys::SAMPLED_ROW])
                .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok((refit, rows))
    };
    let (refit, rows) = run(CHUNK)?;
    assert!(refit.is_some(), "refitted");
    assert!(!rows.is_empty());
    for chunk in [1, 7, 1000] {
        let (other_refit, other_rows) = run(chunk)?;
        assert!(
            other_refit == refit,
            "the refit differs in batches of {chunk}"
        );
        assert!(
            other_rows == rows,
            "the refit rows differ in batches of {chunk}"
        );
    }
    Ok(())
}
