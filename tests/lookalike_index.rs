//! The lookalike index behind indexed `similar`: the copy the writer maintains equals one rebuilt
//! from the records after erasures, re-segmentation, failed commits and reopen; and indexed
//! answers are exact distances that agree with the full scan.

mod common;

use persona::generator::{Generator, GeneratorConfig};
use persona::testing::DbInternals;
use persona::{Config, Db, Durability, Event, EventKind, Result};
use std::collections::BTreeSet;

fn load(db: &Db, customers: u64, events: u64) -> Result<()> {
    let gen = Generator::new(GeneratorConfig {
        customers,
        events,
        seed: 11,
        ..GeneratorConfig::default()
    })
    .map_err(|e| persona::Error::invalid_argument("generator", e.to_string()))?;
    let events: Vec<_> = gen.collect();
    for chunk in events.chunks(2048) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    Ok(())
}

type Rows = Vec<(String, Option<u16>, Vec<u8>, f32)>;

fn rows(db: &Db) -> Rows {
    assert!(db.wait_for_lookalike_index(), "the index builds");
    db.lookalike_index_rows().expect("built")
}

fn ids(rows: &Rows) -> BTreeSet<String> {
    rows.iter().map(|r| r.0.clone()).collect()
}

#[test]
fn maintained_index_equals_the_rebuilt_one_after_erase_resegment_and_failed_commits() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    load(&db, 600, 9_000)?;
    let all: BTreeSet<String> = db
        .profiles()
        .map(|p| p.map(|p| p.customer_id))
        .collect::<Result<_>>()?;
    assert_eq!(ids(&rows(&db)), all, "every profile is indexed");
    let pick: Vec<&str> = all.iter().map(String::as_str).step_by(50).take(4).collect();
    let [a, b, c, d] = pick[..] else {
        panic!("the generator made at least 200 profiles")
    };

    assert!(db.erase(a)?);
    assert!(db.erase(b)?);
    db.resegment(100, persona::Centroids::Refit)?;
    // A failed write and a failed erasure leave no trace in the index.
    db.fail_next_commits(1);
    let t = db.model().watermark_ms;
    assert!(db
        .ingest(Event::new("newcomer", t, EventKind::Purchase).with_value(5.0))
        .is_err());
    db.fail_next_commits(1);
    assert!(db.erase(c).is_err());

    let maintained = rows(&db);
    let names = ids(&maintained);
    assert!(!names.contains(a) && !names.contains(b));
    assert!(
        !names.contains("newcomer"),
        "a failed commit is not indexed"
    );
    assert!(
        names.contains("c000005"),
        "a failed erasure keeps the customer"
    );
    // Segments in the index are the records' (after re-segmentation).
    for seg in 0..8u16 {
        let members: BTreeSet<String> = db
            .segment_members(seg, None, usize::MAX)?
            .into_iter()
            .collect();
        let indexed: BTreeSet<String> = maintained
            .iter()
            .filter(|r| r.1 == Some(seg))
            .map(|r| r.0.clone())
            .collect();
        assert_eq!(indexed, members, "segment {seg}");
    }
    db.close()?;
    drop(db);

    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    assert_eq!(rows(&db), maintained, "rebuilt from the records on reopen");
    // Writes after the rebuild keep it current.
    let t = db.model().watermark_ms;
    db.ingest(Event::new("newcomer", t, EventKind::Purchase).with_value(5.0))?;
    assert!(db.erase(d)?);
    let updated = rows(&db);
    db.close()?;
    drop(db);
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    assert_eq!(rows(&db), updated);
    assert!(ids(&updated).contains("newcomer") && !ids(&updated).contains(d));
    Ok(())
}

#[test]
fn indexed_similar_agrees_with_the_exact_scan_on_a_reopened_store() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    load(&db, 2_000, 30_000)?;
    db.resegment(500, persona::Centroids::Refit)?;
    db.close()?;
    drop(db);
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    assert!(db.wait_for_lookalike_index());
    let (mut hit, mut total) = (0, 0);
    let ids: Vec<String> = db
        .profiles()
        .map(|p| p.map(|p| p.customer_id))
        .collect::<Result<_>>()?;
    assert!(ids.len() > 1_000);
    for id in ids.iter().step_by(ids.len() / 50) {
        let exact = db.similar(id, 10, persona::Search::Exact)?.expect("exists");
        let fast = db.similar(id, 10, persona::Search::Probe)?.expect("exists");
        assert_eq!(fast.len(), exact.len(), "{id}");
        assert!(
            fast.iter().all(|f| &f.customer_id != id),
            "the query is not its own lookalike"
        );
        for (rank, (f, e)) in fast.iter().zip(&exact).enumerate() {
            // The re-rank is exact: never better than the true rank-th neighbour, and the
            // distance of a shared neighbour is the exact one.
            assert!(f.distance >= e.distance - 1e-9, "{id} rank {rank}");
            if let Some(same) = exact.iter().find(|x| x.customer_id == f.customer_id) {
                assert_eq!(same.distance, f.distance, "{id}: {}", f.customer_id);
            }
        }
        total += exact.len();
        hit += exact
            .iter()
            .filter(|e| fast.iter().any(|f| f.customer_id == e.customer_id))
            .count();
    }
    let recall = hit as f64 / total as f64;
    eprintln!("recall@10 of the index after reopen: {recall:.3}");
    assert!(recall >= 0.9, "recall@10 = {recall:.3}");
    Ok(())
}

/// Opening a store does not scan it for the index: a short-lived handle (a CLI command) never
/// pays for the build. The first `similar` starts it, and the built index covers every profile.
#[test]
fn the_index_is_built_when_first_needed_not_at_open() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    load(&db, 300, 3_000)?;
    db.close()?;
    drop(db);

    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    let profiles = db.profile_count();
    assert!(profiles > 0);
    // Nothing needed the index and nothing was written since open: it holds no row.
    assert_eq!(db.lookalike_index_len(), 0);
    let some = db.profiles().next().expect("profiles exist")?.customer_id;
    assert!(db.similar(&some, 5, persona::Search::Probe)?.is_some());
    assert!(db.wait_for_lookalike_index());
    assert_eq!(db.lookalike_index_len(), profiles);
    // prepare_lookalikes after the build changes nothing.
    db.prepare_lookalikes()?;
    assert_eq!(db.lookalike_index_len(), profiles);
    db.close()?;
    Ok(())
}
