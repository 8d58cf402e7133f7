//! Privacy: erasing a customer leaves no byte of their id anywhere in the store (every key and
//! value of every sled tree, before and after reopening) while everyone else is intact;
//! exporting gives everything held about one customer; retention purges exactly the profiles
//! inactive for longer than the TTL (on demand and in the background); the data directory is
//! private; an erase takes back exactly the customer's strategy outcomes and reports it.

mod common;

use common::{DAY, T0};
use persona::testing::DbInternals;
use persona::testing::ProfileInternals;
use persona::{AttrValue, Db, Error, Event, EventKind, Result};

/// A customer id that cannot occur by chance in encoded numbers or other ids.
const VICTIM: &str = "erase-me-7f3a9c";
const OTHERS: [&str; 5] = ["keep-a", "keep-b", "keep-c", "keep-d", "keep-e"];

/// Events (with ids), attributes and feedback (with ids) for the victim and the others;
/// segments are seeded by the end.
fn populate(db: &Db) -> Result<()> {
    let mut customers = OTHERS.to_vec();
    customers.push(VICTIM);
    for (i, c) in customers.iter().enumerate() {
        for j in 0..6i64 {
            let kind = if j % 3 == 2 {
                EventKind::Purchase
            } else {
                EventKind::View
            };
            db.ingest(
                Event::new(*c, T0 + j * DAY + i as i64 * 3_600_000, kind)
                    .with_value(10.0 + (i * 7) as f64 + j as f64)
                    .with_category(if i % 2 == 0 { "books" } else { "garden" })
                    .with_id(format!("{c}-event-{j}")),
            )?;
        }
        db.set_attributes(
            c,
            vec![
                ("email".into(), AttrValue::Text(format!("{c}@example.com"))),
                ("age".into(), AttrValue::Number(30.0 + i as f64)),
            ],
        )?;
    }
    for c in &customers {
        db.feedback(
            persona::Feedback::new(c, "vip_offer", true).with_id(format!("{c}-feedback").as_str()),
        )?;
    }
    assert!(db.model().segments.is_seeded(), "segments must be seeded");
    Ok(())
}

/// One stored entry: (tree name, key, value).
type Entry = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Every (tree, key, value) of every sled tree.
fn dump(db: &Db) -> Result<Vec<Entry>> {
    let sled = db.store().sled();
    let mut out = Vec::new();
    for name in sled.tree_names() {
        let tree = sled.open_tree(&name)?;
        for item in tree.iter() {
            let (k, v) = item?;
            out.push((name.to_vec(), k.to_vec(), v.to_vec()));
        }
    }
    Ok(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that no tree name, key or value holds `id`'s bytes; returns how many entries were
/// looked at.
#[track_caller]
fn assert_no_trace(db: &Db, id: &str) -> Result<usize> {
    let entries = dump(db)?;
    for (tree, k, v) in &entries {
        let tree_name = String::from_utf8_lossy(tree);
        assert!(!contains(tree, id.as_bytes()), "tree name {tree_name}");
        assert!(
            !contains(k, id.as_bytes()),
            "key {:?} in tree {tree_name} holds {id:?}",
            String::from_utf8_lossy(k)
        );
        assert!(
            !contains(v, id.as_bytes()),
            "value of key {:?} in tree {tree_name} holds {id:?}",
            String::from_utf8_lossy(k)
        );
    }
    Ok(entries.len())
}

/// What a reader sees of the other customers: their export documents.
fn others(db: &Db) -> Result<Vec<serde_json::Value>> {
    OTHERS
        .iter()
        .map(|c| {
            let doc = db.export_customer(c)?.expect("other customers stay");
            // The profile as of now depends on the model, which erasing changes (segment
            // sizes); what is stored about the customer must not change.
            Ok(serde_json::json!({
                "version": doc.version,
                "state": doc.state(),
                "history": doc.history.iter().map(|h| h.change.clone()).collect::<Vec<_>>(),
                "pending": doc.pending_example.map(|p| p.taken_at_ms),
                "dedupe_ids_held": doc.dedupe_ids_held,
                "feedback_ids_held": doc.feedback_ids_held,
                "assigned_segment": doc.assigned_segment,
            }))
        })
        .collect()
}

/// An erased customer who comes back starts from nothing: no earlier event, attribute or
/// de-duplicated id survives in the writer (its cache of recent records included).
#[test]
fn a_customer_who_returns_after_erasure_starts_a_new_profile() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(common::config(dir.path()).segments(3).reservoir_size(8))?;
    populate(&db)?;
    assert_eq!(db.profile(VICTIM)?.map(|p| p.event_count), Some(6));
    assert!(db.erase(VICTIM)?);
    // The same event id as before the erasure is a new event now, not a duplicate.
    let ack = db.ingest(
        Event::new(VICTIM, T0 + 30 * DAY, EventKind::View).with_id(format!("{VICTIM}-event-0")),
    )?;
    assert!(!ack.duplicate, "{ack:?}");
    let p = db.profile(VICTIM)?.expect("a new profile");
    assert_eq!(p.event_count, 1);
    assert_eq!(p.version, 1);
    assert!(p.attributes.is_empty(), "{:?}", p.attributes);
    assert_eq!(p.first_seen_ms, Some(T0 + 30 * DAY));
    db.close()?;
    drop(db);
    // And so it stays once reopened.
    let db = Db::open_with(common::config(dir.path()).segments(3).reservoir_size(8))?;
    assert_eq!(db.profile(VICTIM)?.map(|p| p.event_count), Some(1));
    db.close()?;
    Ok(())
}

#[test]
fn erase_leaves_no_trace_of_the_customer() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let before_others;
    {
        let db = Db::open_with(
            common::plain_config(dir.path())
                .segments(3)
                .reservoir_size(8),
        )?;
        populate(&db)?;
        db.take_model_snapshot()?;
        // The victim is really there, in its record and in its segment's member list.
        let all = dump(&db)?;
        assert!(all
            .iter()
            .any(|(_, k, _)| k == format!("P{VICTIM}").as_bytes()));
        let open_before = db.model_info().pending_examples;
        assert!(open_before >= 1);
        let victim = db.profile(VICTIM)?.expect("populated");
        let seg = victim.assigned_segment.expect("assigned");
        assert!(db
            .segment_members(seg, None, usize::MAX)?
            .iter()
            .any(|m| m == VICTIM));
        let sizes_before: u64 = db.model_info().segments.iter().sum();
        before_others = others(&db)?;

        assert!(db.erase(VICTIM)?);

        let scanned = assert_no_trace(&db, VICTIM)?;
        assert!(scanned > OTHERS.len(), "only {scanned} entries");
        assert!(db.profile(VICTIM)?.is_none());
        assert!(db.export_customer(VICTIM)?.is_none());
        assert!(db.history(VICTIM, 10)?.is_none());
        assert_eq!(
            db.model_info().pending_examples,
            open_before - 1,
            "the writer's expiry queue still holds the erased customer's example"
        );
        let info = db.model_info();
        assert_eq!(
            info.segments.iter().sum::<u64>(),
            sizes_before - 1,
            "segment sizes still count the erased customer"
        );
        for s in 0..3 {
            let members = db.segment_members(s, None, 100)?;
            assert!(!members.iter().any(|m| m == VICTIM));
        }
        assert_eq!(others(&db)?, before_others);
        db.close()?;
    }
    // Durable: after reopening, still no trace, the others intact, the expiry queue rebuilt
    // without the customer.
    let db = Db::open_with(common::config(dir.path()).segments(3).reservoir_size(8))?;
    assert_no_trace(&db, VICTIM)?;
    assert!(db.profile(VICTIM)?.is_none());
    assert_eq!(others(&db)?, before_others);
    assert_eq!(db.model_info().pending_examples, OTHERS.len() as u64);

    // The customer may come back: a brand-new profile, old event ids no longer known.
    let ack = db.ingest(
        Event::new(VICTIM, T0 + 10 * DAY, EventKind::View)
            .with_value(5.0)
            .with_id(format!("{VICTIM}-event-0")),
    )?;
    assert!(!ack.duplicate);
    assert_eq!(ack.version, 1);
    let p = db.profile(VICTIM)?.expect("new profile");
    assert_eq!(p.event_count, 1);
    assert!(p.attributes.is_empty());
    Ok(())
}

#[test]
fn erasing_an_unknown_customer_writes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(common::config(dir.path()).segments(3).reservoir_size(8))?;
    populate(&db)?;
    let before = dump(&db)?;
    let version = db.model().version;
    assert!(!db.erase("nobody-here")?);
    assert_eq!(db.model().version, version, "a batch was committed");
    assert_eq!(dump(&db)?, before);
    // Erasing twice: the second time there is nothing left.
    assert!(db.erase("keep-a")?);
    assert!(!db.erase("keep-a")?);
    Ok(())
}

#[test]
fn erase_rejects_invalid_ids_and_changes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(common::config(dir.path()).segments(3).reservoir_size(8))?;
    populate(&db)?;
    let before = dump(&db)?;
    for bad in ["", "has\nnewline", &"x".repeat(129)] {
        let err = db.erase(bad).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(err.to_string().contains("customer_id"), "{err}");
    }
    assert_eq!(dump(&db)?, before);
    Ok(())
}

#[test]
fn a_failed_erase_commit_erases_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(common::config(dir.path()).segments(3).reservoir_size(8))?;
    populate(&db)?;
    let open = db.model_info().pending_examples;
    let sizes = db.model_info().segments;
    db.fail_next_commits(1);
    assert!(db.erase(VICTIM).is_err());
    assert!(db.profile(VICTIM)?.is_some());
    assert_eq!(db.model_info().pending_examples, open);
    assert_eq!(db.model_info().segments, sizes);
    // And the retry erases everything, expiry entry included.
    assert!(db.erase(VICTIM)?);
    assert_no_trace(&db, VICTIM)?;
    assert_eq!(db.model_info().pending_examples, open - 1);
    Ok(())
}

#[test]
fn export_holds_everything_about_the_customer() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(common::config(dir.path()).segments(3).reservoir_size(8))?;
    populate(&db)?;
    let export = db.export_customer(VICTIM)?.expect("known");
    let doc = export.to_json();
    let names = db.feature_names();
    // 6 events and one attribute change; feedback does not add a version.
    assert_eq!(doc["version"], 7);
    assert_eq!(doc["oldest_version"], 1);
    assert_eq!(doc["customer_id"], VICTIM);
    assert_eq!(
        doc["profile"]["attributes"]["email"],
        format!("{VICTIM}@example.com")
    );
    assert_eq!(doc["profile"]["attributes"]["age"], 35.0);
    assert_eq!(doc["state"]["event_count"], 6);
    let current = db.profile(VICTIM)?.expect("known");
    assert_eq!(doc["profile"], current.to_json(&names));
    assert_eq!(
        doc["assigned_segment"],
        serde_json::json!(current.assigned_segment)
    );
    // Every retained version, oldest first, exactly as profile_at_version gives it.
    let history = doc["history"].as_array().expect("array");
    assert_eq!(history.len(), 7);
    for (i, h) in history.iter().enumerate() {
        let v = i as u64 + 1;
        assert_eq!(h["change"]["version"], v);
        let at = db.profile_at_version(VICTIM, v)?.expect("retained");
        assert_eq!(h["profile"], at.to_json(&names), "version {v}");
    }
    assert_eq!(history[6]["change"]["change"], "attributes");
    assert_eq!(history[0]["change"]["kind"], "view");
    // Six event ids and one feedback id are held for de-duplication.
    assert_eq!(doc["dedupe_ids_held"], 7);
    assert_eq!(doc["feedback_ids_held"], 1);
    let pending = &doc["pending_example"];
    assert!(pending["taken_at_ms"].is_i64(), "{pending}");
    // Stored, or derived from the unchanged profile: every feature is shown either way.
    assert!(pending["stored"].is_boolean(), "{pending}");
    assert_eq!(
        pending["features"].as_object().map(|m| m.len()),
        Some(names.len())
    );
    for key in ["propensity_at_last_write", "assigned_distance", "as_of_ms"] {
        assert!(doc[key].is_number(), "{key}: {doc}");
    }
    assert!(db.export_customer("unknown-customer")?.is_none());
    assert!(db.export_customer("").unwrap_err().is_bad_input());
    Ok(())
}

/// Two old customers (last seen day 0..2), two recent ones (day 100), one with attributes only.
fn aged_store(db: &Db) -> Result<()> {
    for (i, c) in ["old-1", "old-2"].iter().enumerate() {
        for j in 0..3i64 {
            db.ingest(
                Event::new(*c, T0 + j * DAY / 2 + i as i64, EventKind::Purchase)
                    .with_value(20.0)
                    .with_id(format!("{c}-{j}")),
            )?;
        }
        db.set_attributes(c, vec![("tier".into(), AttrValue::Text("gold".into()))])?;
    }
    for (i, c) in ["recent-1", "recent-2"].iter().enumerate() {
        db.ingest(Event::new(*c, T0 + 20 * DAY, EventKind::View).with_value(3.0))?;
        db.ingest(Event::new(*c, T0 + 100 * DAY + i as i64, EventKind::Click))?;
    }
    db.set_attributes("attrs-only", vec![("age".into(), AttrValue::Number(40.0))])?;
    Ok(())
}

#[test]
fn purge_erases_only_profiles_older_than_the_ttl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(
        common::plain_config(dir.path())
            .segments(3)
            .reservoir_size(8)
            .profile_ttl_days(Some(30.0)),
    )?;
    aged_store(&db)?;
    let report = db.purge()?;
    assert_eq!(report.erased, 2, "{report:?}");
    assert_eq!(report.scanned, 5);
    assert_eq!(report.ttl_days, 30.0);
    assert_eq!(report.watermark_ms, T0 + 100 * DAY + 1);
    assert_eq!(report.cutoff_ms, T0 + 70 * DAY + 1);
    for gone in ["old-1", "old-2"] {
        assert_no_trace(&db, gone)?;
        assert!(db.profile(gone)?.is_none());
    }
    for kept in ["recent-1", "recent-2", "attrs-only"] {
        assert!(db.profile(kept)?.is_some(), "{kept}");
        let keys = dump(&db)?;
        assert!(keys
            .iter()
            .any(|(_, k, _)| k == format!("P{kept}").as_bytes()));
    }
    assert_eq!(db.profile_count(), 3);
    // Nothing more to purge.
    assert_eq!(db.purge()?.erased, 0);
    Ok(())
}

#[test]
fn purge_needs_a_ttl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(common::config(dir.path()).segments(3).reservoir_size(8))?;
    aged_store(&db)?;
    let err = db.purge().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(
        err.to_string().contains("profile_ttl_days is not set"),
        "{err}"
    );
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = db.purge_older_than(bad).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(err.to_string().contains("ttl_days"), "{err}");
    }
    assert_eq!(db.profile_count(), 5);
    // An explicit period works without configuration.
    assert_eq!(db.purge_older_than(30.0)?.erased, 2);
    Ok(())
}

#[test]
fn ttl_config_is_validated_with_the_key_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in [0.0, -3.0, f64::NAN, f64::INFINITY] {
        let err = Db::open_with(
            common::config(dir.path())
                .segments(3)
                .reservoir_size(8)
                .profile_ttl_days(Some(bad)),
        )
        .err()
        .expect("refused");
        assert!(matches!(err, Error::Config(_)), "{err}");
        assert!(err.to_string().contains("profile_ttl_days"), "{err}");
    }
}

#[test]
fn background_purge_runs_when_a_ttl_is_set() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(
        common::config(dir.path())
            .segments(3)
            .reservoir_size(8)
            .profile_ttl_days(Some(30.0))
            .purge_interval_secs(1),
    )?;
    aged_store(&db)?;
    // A hang guard, not a timing assertion: the purge runs every second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while db.profile("old-1")?.is_some() || db.profile("old-2")?.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "background purge never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(db.profile("recent-1")?.is_some());
    assert!(db.profile("attrs-only")?.is_some());
    db.close()?;
    Ok(())
}

#[cfg(unix)]
#[test]
fn data_directory_is_created_owner_only() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("nested").join("store");
    let db = Db::open(&data)?;
    for path in [&data, &dir.path().join("nested")] {
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", path.display());
    }
    db.close()?;
    Ok(())
}

#[test]
fn erase_takes_back_exactly_the_customer_s_strategy_outcomes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = common::config(dir.path()).open()?;
    for (i, c) in OTHERS.iter().chain([&VICTIM]).enumerate() {
        for j in 0..4i64 {
            let t = T0 + j * DAY + i as i64;
            db.ingest(Event::new(*c, t, EventKind::Purchase).with_value(10.0 + i as f64))?;
        }
    }
    db.trigger_add("first", &["FIRST_PURCHASE"])?;
    for c in OTHERS {
        db.feedback(persona::Feedback::new(c, "vip_offer", true).with_segment(1))?;
    }
    let without_victim = db.model().strategy.clone();
    for (action, converted, segment) in [
        ("vip_offer", true, 1),
        ("vip_offer", false, 1),
        ("win_back_coupon", false, 3),
    ] {
        let f = persona::Feedback::new(VICTIM, action, converted).with_segment(segment);
        db.feedback(f)?;
    }
    assert_ne!(db.model().strategy, without_victim);
    let exported = db.export_customer(VICTIM)?.ok_or(Error::Closed)?;
    assert_eq!(exported.feedback.len(), 3);
    assert_eq!(exported.feedback[2].action, "win_back_coupon");
    let report = db.erase_report(VICTIM)?;
    assert!(report.erased);
    assert_eq!(report.events, 4);
    assert_eq!(report.feedback_outcomes_subtracted, 3);
    // Their open training example (four days of purchases: not labelled yet) went with them.
    assert!(report.training_examples_dropped >= 1, "{report:?}");
    assert!(!report.kept_in_models.is_empty());
    assert!(
        db.model().strategy == without_victim,
        "the counts are as without the victim"
    );
    assert_no_trace(&db, VICTIM)?;
    // The others' ledger stays, and the store checks clean.
    assert_eq!(
        db.export_customer(OTHERS[0])?
            .ok_or(Error::Closed)?
            .feedback
            .len(),
        1
    );
    db.close()?;
    drop(db);
    common::store::assert_clean(dir.path())?;
    Ok(())
}

#[test]
fn a_damaged_feedback_entry_does_not_stop_an_erase() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let db = common::plain_config(dir.path()).open()?;
        db.ingest(Event::new(VICTIM, T0, EventKind::Purchase).with_value(5.0))?;
        for converted in [true, false] {
            db.feedback(persona::Feedback::new(VICTIM, "vip_offer", converted).with_segment(0))?;
        }
        db.close()?;
    }
    // Damage the first ledger entry, as a disk or a bug would.
    common::store::raw(dir.path(), |sled| {
        let prefix = persona::testing::storage::keys::feedback_prefix(VICTIM);
        let first = sled.scan_prefix(&prefix).next().transpose()?;
        if let Some((k, _)) = first {
            sled.insert(k, &b"\x01\xff\xff"[..])?;
        }
        Ok(())
    })
    .map_err(Error::from)?;
    let found = common::check_store(dir.path())?;
    assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
    assert_eq!(found.problems[0].kind, persona::ProblemKind::Undecodable);
    let db = common::plain_config(dir.path()).open()?;
    let err = db.export_customer(VICTIM).unwrap_err();
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
    let report = db.erase_report(VICTIM)?;
    assert!(report.erased);
    assert_eq!(report.feedback_outcomes_subtracted, 1, "the readable one");
    let why = report.unreadable.unwrap_or_default();
    assert!(why.contains("feedback ledger"), "{why}");
    assert_no_trace(&db, VICTIM)?;
    Ok(())
}

/// A population of four behaviours over 60 days.
fn population(db: &Db) -> Result<()> {
    for c in 0..240u32 {
        let id = format!("p{c}");
        let persona = c % 4;
        let n = 2 + (c % 7) + 3 * persona;
        for j in 0..n {
            let t = T0 + i64::from((j * 60) / n) * DAY + i64::from(c);
            let kind = match (persona, j % 3) {
                (0, _) | (1, 0) => EventKind::View,
                (2, 0) => EventKind::CartAdd,
                _ => EventKind::Purchase,
            };
            db.ingest(Event::new(&id, t, kind).with_value(f64::from(1 + persona * 40 + j)))?;
        }
    }
    Ok(())
}

/// The centroids in a canonical order (a fit numbers segments after the ones before it).
fn centroids(db: &Db) -> Vec<Vec<u64>> {
    let model = db.model();
    let s = &model.segments;
    let mut rows: Vec<Vec<u64>> = (0..db.config().segment_count())
        .map(|i| s.centroid(i).iter().map(|v| v.to_bits()).collect())
        .collect();
    rows.sort();
    rows
}

#[test]
fn erase_and_retrain_leaves_the_centroids_of_a_store_that_never_saw_them() -> Result<()> {
    // The victim is the most extreme spender, and their events come first, so that both stores
    // end at the same watermark and the others' profiles are the same in both.
    let (a_dir, b_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = common::config(a_dir.path()).open()?;
    let b = common::config(b_dir.path()).open()?;
    for d in 0..20i64 {
        let e = Event::new(VICTIM, T0 - 40 * DAY + d, EventKind::Purchase).with_value(9_000.0);
        a.ingest(e)?;
    }
    population(&a)?;
    population(&b)?;
    assert!(a.model().segments.is_seeded() && b.model().segments.is_seeded());
    assert_eq!(a.model().watermark_ms, b.model().watermark_ms);

    let report = a.erase_and_retrain(VICTIM)?;
    assert!(report.erased);
    assert_eq!(report.retrained.len(), 1, "{report:?}");
    assert!(report.retrained[0].contains("re-assigned"), "{report:?}");
    assert!(
        !report
            .kept_in_models
            .iter()
            .any(|k| k.contains("centroids")),
        "{report:?}"
    );
    b.resegment(1000, persona::Centroids::Fresh)?;
    assert_eq!(
        centroids(&a),
        centroids(&b),
        "the centroids are those of the store without the victim"
    );
    // A plain erase says the centroids keep their influence.
    let plain = b.erase_report("p7")?;
    assert!(plain.retrained.is_empty());
    assert!(plain.kept_in_models.iter().any(|k| k.contains("centroids")));
    assert_no_trace(&a, VICTIM)?;
    Ok(())
}

#[test]
fn erase_and_retrain_says_so_when_too_few_profiles_are_left_to_refit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // A first fit after a few events (the default waits for thousands).
    let db = common::config(dir.path()).reservoir_size(4).open()?;
    // Four segments, four customers of four behaviours: the segments are fitted to them.
    for (i, c) in ["a", "b", "c", "d"].iter().enumerate() {
        for j in 0..=i as i64 {
            let kind = [
                EventKind::View,
                EventKind::Click,
                EventKind::CartAdd,
                EventKind::Purchase,
            ][i];
            db.ingest(Event::new(*c, T0 + j * DAY, kind).with_value(1.0 + 50.0 * i as f64))?;
        }
    }
    assert!(
        db.model().segments.is_seeded(),
        "four distinct profiles fit four segments"
    );
    let report = db.erase_and_retrain("d")?;
    assert!(report.erased);
    assert!(report.retrained.is_empty(), "{report:?}");
    assert!(
        report
            .kept_in_models
            .iter()
            .any(|k| k.contains("could not be refitted")),
        "{report:?}"
    );
    Ok(())
}

/// The names only an erased customer gave leave the live model state and every kept snapshot,
/// in a plain store too (where nothing is sealed): no snapshot keeps the name, nor the hash of
/// the id that stood for its holder.
#[test]
fn an_erase_takes_the_names_only_its_customer_gave_out_of_the_state_and_the_snapshots() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = common::plain_config(dir.path()).open()?;
    for (c, item) in [
        ("keeps", "shared-item"),
        ("goes", "shared-item"),
        ("goes", "only-theirs"),
    ] {
        db.ingest(
            Event::new(c, T0 + DAY, EventKind::Purchase)
                .with_value(5.0)
                .with_item(item)
                .with_category(format!("cat-{item}")),
        )?;
    }
    let listed = |db: &Db, name: &str| format!("{:?}", db.model().popularity).contains(name);
    assert!(listed(&db, "only-theirs") && listed(&db, "shared-item"));
    let version = db.take_model_snapshot()?;
    let report = db.erase_report("goes")?;
    // The item in the global list, its category in a bucket.
    assert_eq!(report.catalogue_names_dropped, 2, "{report:?}");
    assert!(!listed(&db, "only-theirs") && listed(&db, "shared-item"));
    let snapshot = db.store().snapshot(version)?.expect("kept");
    let names = format!("{:?} {:?}", snapshot.popularity, snapshot.categories);
    assert!(!names.contains("only-theirs"), "{names}");
    assert!(
        names.contains("shared-item") && names.contains("cat-shared-item"),
        "{names}"
    );
    Ok(())
}
