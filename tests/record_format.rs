//! Profile records written by earlier builds (format versions 1, 2 and 3) are read as they are,
//! give the same answers as version 4, and are rewritten in version 4 at their next write. The
//! store is converted by closing it and rewriting records through sled directly, as an earlier
//! build would have left them.

mod common;

use common::check_store;
use common::store::raw;
use persona::generator::{Generator, GeneratorConfig};
use persona::testing::storage::keys;
use persona::testing::storage::record::{ProfileRecord, PROFILE_FORMAT_VERSION};
use persona::{Db, Event, EventKind};
use std::path::Path;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Every profile's answers: current profile and every readable past version, as JSON-ish text.
fn answers(db: &Db, ids: &[String]) -> persona::Result<Vec<String>> {
    let mut out = Vec::new();
    for id in ids {
        let mut p = db.profile(id)?.expect("profile exists");
        // Not kept before version 5 (compared on their own below).
        p.top_items.clear();
        p.top_categories.clear();
        out.push(format!("{p:?}"));
        out.push(format!("{:?}", db.history(id, 100)?));
        for v in p.version.saturating_sub(20)..=p.version {
            out.push(format!(
                "{v} {:?}",
                db.profile_at_version(id, v).ok().flatten()
            ));
        }
    }
    Ok(out)
}

/// The format version byte of every profile record, by customer.
fn versions(dir: &Path) -> sled::Result<Vec<(String, u8)>> {
    raw(dir, |db| {
        db.scan_prefix([keys::PROFILE])
            .map(|kv| kv.map(|(k, v)| (String::from_utf8_lossy(&k[1..]).into_owned(), v[0])))
            .collect()
    })
}

#[test]
fn records_of_every_earlier_version_read_the_same_and_are_rewritten_at_their_next_write(
) -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(common::plain_config(dir.path()))?;
    let events: Vec<Event> = Generator::new(GeneratorConfig {
        customers: 60,
        events: 1500,
        seed: 5,
        ..GeneratorConfig::default()
    })?
    .collect();
    for r in db.ingest_batch(events)? {
        r?;
    }
    // Attributes too (an op of another kind in the log).
    let any = db.profiles().next().expect("a profile")?.customer_id;
    db.set_attributes(
        &any,
        vec![
            ("region".into(), "north".into()),
            ("age".into(), 41.0.into()),
        ],
    )?;
    db.close()?;
    drop(db);
    let ids: Vec<String> = versions(dir.path())?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(ids.len() > 50);
    assert!(versions(dir.path())?
        .iter()
        .all(|(_, v)| *v == PROFILE_FORMAT_VERSION));

    let db = Db::open_with(common::plain_config(dir.path()))?;
    let before = answers(&db, &ids)?;
    db.close()?;
    drop(db);

    // Rewrite the records as versions 1, 2, 3, 4 and 5, in turn.
    raw(dir.path(), |db| {
        for (i, kv) in db.scan_prefix([keys::PROFILE]).enumerate() {
            let (k, v) = kv?;
            let rec = ProfileRecord::decode(&|| "test".into(), &v).expect("decodes");
            let old = match i % 5 {
                0 => rec.encode_v1(),
                1 => rec.encode_v2(),
                2 => rec.encode_v3(),
                3 => rec.encode_v4(),
                _ => rec.encode_v5(),
            };
            assert_eq!(old[0], (i % 5) as u8 + 1);
            if i % 5 == 4 {
                // Version 5 keeps the lists; what it knows as bought is their purchases.
                let back = ProfileRecord::decode(&|| "test".into(), &old).expect("decodes");
                assert_eq!(back.affinity.items, rec.affinity.items);
                for e in &rec.affinity.items {
                    assert_eq!(back.affinity.bought.contains(&e.name), e.purchases > 0);
                }
            }
            if i % 5 < 3 {
                assert!(
                    old.len() > rec.encode_v4().len(),
                    "version 4 packs version 3"
                );
            }
            db.insert(k, old)?;
        }
        Ok(())
    })?;
    let report = check_store(dir.path())?;
    assert!(report.is_clean(), "{:#?}", report.problems);

    let db = Db::open_with(common::plain_config(dir.path()))?;
    assert_eq!(answers(&db, &ids)?, before, "older records answer the same");
    // They have no engagement lists yet (version 5 added them); the generator's events name
    // categories, so the version-5 records had some.
    let first_profile = db.profile(&ids[0])?.expect("exists");
    assert!(first_profile.top_categories.is_empty());
    // One more event for the first customer rewrites only its record, in version 5.
    let first = &ids[0];
    let last_seen = db.profile(first)?.and_then(|p| p.last_seen_ms).unwrap_or(0);
    db.ingest(
        Event::new(first.as_str(), last_seen + 1_000, EventKind::Click)
            .with_category("garden")
            .with_item("rake-7"),
    )?;
    let p = db.profile(first)?.expect("exists");
    assert_eq!(p.top_items.len(), 1);
    assert_eq!(p.top_items[0].name, "rake-7");
    // A click weighs 0.5 at its time, decayed to the profile's as-of time with the lists'
    // half-life: three times the store's 30 days.
    let age_days = (p.as_of_ms - (last_seen + 1_000)) as f64 / 86_400_000.0;
    let expected = 0.5 * 0.5f64.powf(age_days / 90.0);
    assert!((p.top_items[0].weight - expected).abs() < 1e-6, "{p:?}");
    assert_eq!(p.top_categories[0].name, "garden");
    db.close()?;
    drop(db);
    for (i, (id, v)) in versions(dir.path())?.into_iter().enumerate() {
        let expected = if id == *first {
            PROFILE_FORMAT_VERSION
        } else {
            (i % 5) as u8 + 1
        };
        assert_eq!(v, expected, "{id}");
    }
    assert!(check_store(dir.path())?.is_clean());
    Ok(())
}
