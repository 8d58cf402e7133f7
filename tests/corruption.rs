//! Damaged stores: `persona check` finds every kind of damage and names the key, and a damaged
//! profile record breaks only its own customer. Damage is made by closing the store and writing
//! through sled directly, as a disk or a bug would.

mod common;

use common::check_store;
use common::store::raw;
use persona::generator::{Generator, GeneratorConfig};
use persona::testing::storage::keys;
use persona::testing::storage::record::ProfileRecord;
use persona::testing::DbInternals;
use persona::{Db, Event, EventKind, ProblemKind, Target};
use std::path::Path;
use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A store with 200 customers, seeded segments and a few model snapshots; closed on return.
fn populated(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::open_with(
        common::plain_config(dir)
            .snapshot_every(3)
            .reservoir_size(64),
    )?;
    let events: Vec<Event> = Generator::new(GeneratorConfig {
        customers: 200,
        events: 3000,
        seed: 11,
        ..GeneratorConfig::default()
    })?
    .collect();
    for chunk in events.chunks(300) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    // Customers last seen before the segments were seeded get one too.
    db.resegment(100, persona::Centroids::Keep)?;
    Ok(db.close()?)
}

/// Every key and value of the store.
fn dump(dir: &Path) -> sled::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    raw(dir, |db| {
        db.iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect()
    })
}

/// The customer ids of the store, in key order.
fn customers(dir: &Path) -> sled::Result<Vec<String>> {
    raw(dir, |db| {
        db.scan_prefix([keys::PROFILE])
            .map(|kv| kv.map(|(k, _)| String::from_utf8_lossy(&k[1..]).into_owned()))
            .collect()
    })
}

fn decode(bytes: &[u8]) -> ProfileRecord {
    ProfileRecord::decode(&|| "test".into(), bytes).expect("a record Persona wrote decodes")
}

/// Problems as (key, kind) pairs.
fn problems(dir: &Path) -> persona::Result<Vec<(String, ProblemKind)>> {
    Ok(check_store(dir)?
        .problems
        .into_iter()
        .map(|p| (p.key, p.kind))
        .collect())
}

#[test]
fn a_healthy_store_checks_clean_and_check_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    let before = dump(dir.path())?;
    let report = check_store(dir.path())?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    let profiles = before.iter().filter(|(k, _)| k[0] == b'P').count() as u64;
    assert!(profiles > 150, "{profiles}");
    assert_eq!(report.profiles, profiles);
    assert_eq!(report.legacy_members, 0);
    assert!(
        report.snapshots >= 1,
        "snapshot_every = 3 over many batches"
    );
    assert_eq!(report.keys as usize, before.len());
    assert_eq!(dump(dir.path())?, before, "check wrote to the store");
    Ok(())
}

#[test]
fn a_garbage_profile_breaks_only_its_customer() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    let ids = customers(dir.path())?;
    let victim = ids[7].clone();
    let other = ids[8].clone();
    raw(dir.path(), |db| {
        db.insert(
            keys::profile(&victim),
            &b"\x01\xff\xfe garbage \x00\x07"[..],
        )
    })?;

    // check names exactly that key.
    let found = problems(dir.path())?;
    assert_eq!(
        found,
        vec![(format!("P{victim}"), ProblemKind::Undecodable)],
        "{found:?}"
    );

    // The store opens (the expiry queue skips the record) and only the victim fails.
    let db = Db::open_with(
        common::plain_config(dir.path())
            .snapshot_every(3)
            .reservoir_size(64),
    )?;
    let named = |e: persona::Error| {
        let text = e.to_string();
        assert!(
            text.contains(&format!("profile {victim:?}")) && text.starts_with("corrupt record"),
            "{text}"
        );
        assert!(matches!(e, persona::Error::Corruption { .. }), "{e:?}");
    };
    named(db.profile(&victim).unwrap_err());
    named(db.profile_at_version(&victim, 1).unwrap_err());
    named(db.score(&victim).unwrap_err());
    named(db.history(&victim, 3).unwrap_err());
    named(db.similar(&victim, 5, persona::Search::Probe).unwrap_err());
    named(db.strategy(&victim, persona::Choice::Greedy).unwrap_err());
    named(
        db.nearest_segments(Target::Customer(&victim), 2)
            .unwrap_err(),
    );
    let t = db.model().watermark_ms + 1000;
    named(
        db.ingest(Event::new(victim.as_str(), t, EventKind::Click))
            .unwrap_err(),
    );
    named(
        db.set_attributes(&victim, vec![("age".into(), 30.0.into())])
            .unwrap_err(),
    );
    named(
        db.feedback(persona::Feedback::new(&victim, "vip_offer", true))
            .unwrap_err(),
    );

    // Everyone else works, including in the same batch as a failing write.
    let before = db.profile(&other)?.ok_or("other customer exists")?;
    let results = db.ingest_batch(vec![
        Event::new(victim.as_str(), t + 1, EventKind::Click),
        Event::new(other.as_str(), t + 2, EventKind::Purchase).with_value(5.0),
    ])?;
    assert!(results[0].is_err());
    assert_eq!(
        results[1].as_ref().map_err(|e| e.to_string())?.version,
        before.version + 1
    );
    let after = db.profile(&other)?.ok_or("still there")?;
    assert_eq!(after.event_count, before.event_count + 1);
    assert!(db.score(&other)?.is_some());
    assert!(db.history(&other, 2)?.is_some_and(|h| h.len() == 2));
    for search in [persona::Search::Exact, persona::Search::Probe] {
        let similar = db.similar(&other, 10, search)?.ok_or("other exists")?;
        assert_eq!(similar.len(), 10);
        assert!(similar.iter().all(|s| s.customer_id != victim));
    }
    let mut listed = 0;
    for seg in 0..4 {
        listed += db.segment_members(seg, None, usize::MAX)?.len();
    }
    assert_eq!(
        listed,
        ids.len() - 1,
        "every member but the victim (its segment is in the damaged record) is listed"
    );
    let report = db.resegment(50, persona::Centroids::Refit)?;
    assert_eq!(report.scanned, ids.len());
    assert!(db.report_input(1000)?.points.len() == ids.len() - 1);
    assert_eq!(db.profiles().filter(|p| p.is_err()).count(), 1);
    db.close()?;
    drop(db);

    // After all that, the victim is still the only problem.
    assert_eq!(
        problems(dir.path())?,
        vec![(format!("P{victim}"), ProblemKind::Undecodable)]
    );
    Ok(())
}

#[test]
fn the_server_reports_a_damaged_profile_and_keeps_serving() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    let ids = customers(dir.path())?;
    raw(dir.path(), |db| {
        db.insert(keys::profile(&ids[0]), &b"\x01\x05"[..])
    })?;
    let db = Db::open_with(
        common::plain_config(dir.path())
            .snapshot_every(3)
            .reservoir_size(64),
    )?;
    let server = common::resp::TestServer::over(db, dir)?;
    let mut c = server.raw()?;
    let reply = c.call(&["PROFILE.GET", &ids[0]])?;
    assert!(
        reply.starts_with(&format!("-ERR corrupt record profile {:?}", ids[0])),
        "{reply}"
    );
    let reply = c.call(&["EVENT.ADD", &ids[0], "click"])?;
    assert!(reply.starts_with("-ERR corrupt record profile"), "{reply}");
    let reply = c.call(&["PROFILE.GET", &ids[1]])?;
    assert!(reply.starts_with('*'), "{reply}");
    let reply = c.call(&["EVENT.ADD", &ids[1], "click"])?;
    assert!(reply.starts_with("*8\r\n$7\r\nversion\r\n"), "{reply}");
    Ok(())
}

#[test]
fn check_reports_every_kind_of_damage_with_its_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    let ids = customers(dir.path())?;
    let (a, b, c, d) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    raw(dir.path(), |db| {
        // a: truncated record.
        let bytes = db.get(keys::profile(a))?.expect("exists");
        db.insert(keys::profile(a), &bytes[..bytes.len() / 2])?;
        // b: a record from a future format.
        let mut bytes = db.get(keys::profile(b))?.expect("exists").to_vec();
        bytes[0] = 9;
        db.insert(keys::profile(b), bytes)?;
        // c: state that its history does not reproduce.
        let mut rec = decode(&db.get(keys::profile(c))?.expect("exists"));
        rec.state.event_count += 1;
        db.insert(keys::profile(c), rec.encode())?;
        // d: a membership entry, which a store of format 2 never has.
        let seg_d = decode(&db.get(keys::profile(d))?.expect("exists"))
            .segment
            .expect("seeded");
        db.insert(keys::member(seg_d, d), &[][..])?;
        let snap = db
            .scan_prefix([keys::SNAPSHOT])
            .next()
            .expect("a snapshot")?
            .0;
        db.insert(snap, &b"\x01\x00"[..])?;
        db.insert(&b"Zfoo"[..], &b"x"[..])?;
        db.insert(&b"\x00"[..], &b""[..])?;
        db.insert(&b"Sextra"[..], &b""[..])?;
        // Training-example keys: a refit row of nobody with 3 features, one of `a` taken
        // after the watermark, one that does not decode, a held example that does not decode,
        // and a key too short to name a refit row.
        let row = persona::testing::storage::SampledRow {
            target_count: 0,
            event_count: 1,
            profiling: None,
            temporal: persona::testing::features::vector::Temporal::of(
                &persona::testing::features::ProfileState::new(
                    &persona::testing::features::FeatureParams {
                        half_life_ms: 1.0,
                        category_buckets: 1,
                    },
                ),
            ),
            features: vec![0.5f32; 3],
        };
        let encode =
            persona::testing::storage::codec::encode::<persona::testing::storage::SampledRow>;
        db.insert(keys::sampled_row(1_000, "ghost"), encode(&row))?;
        db.insert(keys::sampled_row(i64::MAX - 1, a), encode(&row))?;
        db.insert(keys::sampled_row(3_000, b), &b"\x01\xff"[..])?;
        db.insert(keys::held(2_000, "ghost"), &b"\x01"[..])?;
        db.insert(&b"Rx"[..], &b""[..])?;
        Ok(())
    })?;
    let report = check_store(dir.path())?;
    let has = |key: &str, kind: ProblemKind, words: &str| {
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.key == key && p.kind == kind && p.detail.contains(words)),
            "no {kind:?} problem on {key} mentioning {words:?} in {:#?}",
            report.problems
        );
    };
    has(&format!("P{a}"), ProblemKind::Undecodable, "cannot decode");
    has(
        &format!("P{b}"),
        ProblemKind::Undecodable,
        "format version 9",
    );
    has(
        &format!("P{c}"),
        ProblemKind::Inconsistent,
        "does not reproduce",
    );
    let seg_d = {
        let rec = raw(dir.path(), |db| db.get(keys::profile(d)))?.expect("exists");
        decode(&rec).segment.expect("set")
    };
    has(
        &format!("G\\x00\\x{seg_d:02x}{d}"),
        ProblemKind::UnknownKey,
        "keeps none",
    );
    has("Zfoo", ProblemKind::UnknownKey, "outside every key space");
    has("\\x00", ProblemKind::UnknownKey, "outside every key space");
    has("Sextra", ProblemKind::UnknownKey, "model key space");
    let on = |prefix: char, kind: ProblemKind, words: &str| {
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.key.starts_with(prefix) && p.kind == kind && p.detail.contains(words)),
            "no {kind:?} problem on a {prefix} key mentioning {words:?} in {:#?}",
            report.problems
        );
    };
    on('R', ProblemKind::Inconsistent, "has 3 features");
    on(
        'R',
        ProblemKind::Inconsistent,
        "of customer \"ghost\" has no profile record",
    );
    on(
        'R',
        ProblemKind::Inconsistent,
        "after the end of the watermark's block",
    );
    on('R', ProblemKind::Undecodable, "refit row");
    on('H', ProblemKind::Undecodable, "held example");
    has("Rx", ProblemKind::UnknownKey, "refit-row key space");
    assert!(report
        .problems
        .iter()
        .any(|p| p.key.starts_with('V') && p.kind == ProblemKind::Undecodable));
    assert!(!report.is_clean());

    // The CLI: exit 1, every problem listed with its key, JSON for scripts.
    let out = Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(dir.path())
        .args(["check", "--json"])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["problems_total"], report.problems_total);
    assert_eq!(json["problems"][0]["key"], report.problems[0].key.as_str());
    let stderr = String::from_utf8(out.stderr)?;
    assert!(
        stderr.contains(&format!("found {} problems", report.problems_total)),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn check_reports_segment_sizes_that_disagree_with_the_records() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    let ids = customers(dir.path())?;
    // A record moved to another segment (consistently with itself) without the model's sizes
    // following.
    let (old, new) = raw(dir.path(), |db| {
        let mut rec = decode(&db.get(keys::profile(&ids[5]))?.expect("exists"));
        let old = rec.segment.expect("seeded");
        rec.segment = Some((old + 1) % 4);
        db.insert(keys::profile(&ids[5]), rec.encode())?;
        Ok((old, (old + 1) % 4))
    })?;
    let report = check_store(dir.path())?;
    let sizes: Vec<&str> = report
        .problems
        .iter()
        .filter(|p| p.key == "S")
        .map(|p| p.detail.as_str())
        .collect();
    assert_eq!(sizes.len(), 2, "{:#?}", report.problems);
    assert!(sizes[0].starts_with(&format!("segment {}", old.min(new))));
    assert!(sizes.iter().all(|d| d.contains("profiles are in it")));
    assert_eq!(report.problems_total, 2, "{:#?}", report.problems);
    Ok(())
}

#[test]
fn a_format_1_store_loses_its_membership_index_at_open_and_nothing_else() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    // Make it a store as the builds before format 2 left it: format byte 1 and a `G` entry per
    // profile with a segment.
    let entries = raw(dir.path(), |db| {
        let mut n = 0u64;
        for item in db.scan_prefix([keys::PROFILE]) {
            let (k, v) = item?;
            let id = std::str::from_utf8(&k[1..]).expect("utf-8 ids");
            if let Some(seg) = decode(&v).segment {
                db.insert(keys::member(seg, id), &[][..])?;
                n += 1;
            }
        }
        db.insert(keys::META_FORMAT, &[1u8][..])?;
        Ok(n)
    })?;
    assert!(entries > 150, "{entries}");
    let legacy = dump(dir.path())?;
    let report = check_store(dir.path())?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.legacy_members, entries);

    let db = Db::open_with(
        common::plain_config(dir.path())
            .snapshot_every(3)
            .reservoir_size(64),
    )?;
    let mut listed = 0;
    for seg in 0..4 {
        listed += db.segment_members(seg, None, usize::MAX)?.len() as u64;
    }
    assert_eq!(listed, entries);
    db.close()?;
    drop(db);
    let after = dump(dir.path())?;
    let expected: Vec<(Vec<u8>, Vec<u8>)> = legacy
        .into_iter()
        .filter(|(k, _)| k[0] != keys::MEMBER)
        .map(|(k, v)| {
            if k == keys::META_FORMAT {
                (k, vec![2])
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(
        after, expected,
        "only the index and the format byte changed"
    );
    let report = check_store(dir.path())?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.legacy_members, 0);
    Ok(())
}

#[test]
fn a_damaged_model_state_refuses_to_open_and_is_reported() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    raw(dir.path(), |db| {
        let mut bytes = db.get(keys::MODEL)?.expect("committed").to_vec();
        bytes.truncate(bytes.len() - 10);
        db.insert(keys::MODEL, bytes)
    })?;
    let err = Db::open_with(
        common::plain_config(dir.path())
            .snapshot_every(3)
            .reservoir_size(64),
    )
    .err()
    .ok_or("opened")?;
    assert!(
        err.to_string().starts_with("corrupt record model state:"),
        "{err}"
    );
    let report = check_store(dir.path())?;
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert_eq!(report.problems[0].key, "S");
    assert_eq!(report.problems[0].kind, ProblemKind::Undecodable);
    // The rest was still checked.
    assert!(report.profiles > 150);
    Ok(())
}

#[test]
fn flipped_bytes_never_panic_and_check_sees_every_undecodable_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    let ids = customers(dir.path())?;
    let victims: Vec<&String> = ids.iter().take(40).collect();
    // A seeded walk over byte positions: each victim gets one byte changed.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    raw(dir.path(), |db| {
        for id in &victims {
            let mut bytes = db.get(keys::profile(id))?.expect("exists").to_vec();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = 1 + (state as usize) % (bytes.len() - 1);
            bytes[at] ^= 1 << (state >> 60 & 7);
            db.insert(keys::profile(id), bytes)?;
        }
        Ok(())
    })?;
    let report = check_store(dir.path())?;
    let db = Db::open_with(
        common::plain_config(dir.path())
            .snapshot_every(3)
            .reservoir_size(64),
    )?;
    for id in &victims {
        let read = db.profile(id);
        if read.is_err() {
            // Every record a read rejects is one check reports.
            assert!(
                report.problems.iter().any(|p| p.key == format!("P{id}")),
                "{id}: {:?} not in {:#?}",
                read.err(),
                report.problems
            );
        }
        // Whatever decodes must be usable without a panic.
        let _ = db.score(id);
        let _ = db.similar(id, 3, persona::Search::Probe);
        let _ = db.history(id, 20);
    }
    assert!(
        report.problems_total > 0,
        "40 flipped bytes left no trace at all"
    );
    let t = db.model().watermark_ms + 1;
    for id in ids.iter().skip(40).take(5) {
        db.ingest(Event::new(id.as_str(), t, EventKind::Click))?;
    }
    db.close()?;
    Ok(())
}

#[test]
fn a_store_of_the_previous_build_loses_its_refit_window_and_rebuilds_its_sample_at_open(
) -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    let profiles = customers(dir.path())?;
    // As the build before cohorts left it: `W` keys of its refit window, and a sample smaller
    // than the store's customers (that build kept 2,048; here half of the 200 are dropped).
    raw(dir.path(), |db| {
        for (i, id) in profiles.iter().enumerate().take(20) {
            let mut k = vec![keys::LEGACY_REFIT];
            k.extend_from_slice(&(i as u64).to_be_bytes());
            k.extend_from_slice(id.as_bytes());
            db.insert(k, &b"\x01"[..])?;
        }
        let members: Vec<sled::IVec> = db
            .scan_prefix([keys::SAMPLE])
            .keys()
            .collect::<Result<_, _>>()?;
        for k in members.iter().step_by(2) {
            db.remove(k)?;
        }
        Ok(())
    })?;
    let report = check_store(dir.path())?;
    assert!(report.is_clean(), "{:#?}", report.problems);

    // Opening is enough: nothing is written through the writer.
    let db = Db::open_with(
        common::plain_config(dir.path())
            .snapshot_every(3)
            .reservoir_size(64),
    )?;
    db.close()?;
    drop(db);
    let (window, sample) = raw(dir.path(), |db| {
        Ok((
            db.scan_prefix([keys::LEGACY_REFIT]).count(),
            db.scan_prefix([keys::SAMPLE]).count(),
        ))
    })?;
    assert_eq!(window, 0, "the refit window's keys are removed at open");
    assert_eq!(
        sample,
        profiles.len(),
        "every customer is in the sample again"
    );
    let report = check_store(dir.path())?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    Ok(())
}
