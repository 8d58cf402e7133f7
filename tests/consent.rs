//! Consent per purpose (`consent.profiling`, `consent.marketing`): a customer without consent
//! to profiling leaves every shared structure exactly as a run without their events; one
//! without consent to marketing is never in a trigger, a strategy or a recommendation; a
//! withdrawal takes the customer out of the segments and the lookalikes; every change is in
//! the history and the export with its time; bad values are refused.

mod common;

use common::{config, plain_config, DAY, T0};
use persona::generator::{Generator, GeneratorConfig};
use persona::testing::storage::keys;
use persona::testing::DbInternals;
use persona::{AttrValue, Choice, Db, Event, EventKind, Feedback, Search};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn text(v: &str) -> AttrValue {
    AttrValue::Text(v.into())
}

/// A generated stream of 150 customers, and the events of `extra` interleaved by time (items,
/// categories and purchases, the last one a day after everything else).
fn stream(extra: Option<&str>) -> Result<Vec<Event>> {
    let mut events: Vec<Event> = Generator::new(GeneratorConfig {
        customers: 150,
        events: 3000,
        seed: 11,
        items: 40,
        ..GeneratorConfig::default()
    })?
    .collect();
    let last = events.iter().map(|e| e.timestamp_ms).max().unwrap_or(T0);
    if let Some(x) = extra {
        for i in 0..30i64 {
            let t = T0 + i * 2 * DAY;
            let e = if i % 3 == 0 {
                Event::new(x, t, EventKind::Purchase)
                    .with_value(40.0 + i as f64)
                    .with_item(format!("item-{}", i % 5))
                    .with_category("garden")
            } else {
                Event::new(x, t, EventKind::View).with_item(format!("item-{}", i % 7))
            };
            events.push(e);
        }
        events.push(Event::new(x, last + DAY, EventKind::Purchase).with_value(99.0));
    }
    events.sort_by_key(|e| e.timestamp_ms);
    Ok(events)
}

/// Every key and value of the store but the model record, its snapshots, the meta records
/// (which carry the model version: one more commit in the store with the private customer),
/// the expiry queue's log (one delta key per batch: where batches end differs; what it holds
/// is derived from the records, compared here) and the private customer's own record.
fn shared_keys(db: &Db, private: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let own = keys::profile(private);
    let mut out = Vec::new();
    for item in db.store().sled().iter() {
        let (k, v) = item?;
        let skip =
            [keys::META, keys::SNAPSHOT, keys::QUEUE].contains(&k[0]) || k[..] == keys::MODEL[..];
        if !skip && k[..] != own[..] {
            out.push((k.to_vec(), v.to_vec()));
        }
    }
    Ok(out)
}

#[test]
fn without_consent_to_profiling_the_shared_state_is_bit_identical_to_a_run_without_them(
) -> Result<()> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    // Plain stores: their bytes show the shared state bit for bit (an encrypted store seals
    // each value with a random nonce; tests/encryption.rs covers its layout).
    let with = plain_config(a.path()).open()?;
    let without = plain_config(b.path()).open()?;
    with.set_attributes("x", vec![("consent.profiling".into(), text("no"))])?;
    for (db, events) in [(&with, stream(Some("x"))?), (&without, stream(None)?)] {
        for chunk in events.chunks(64) {
            for r in db.ingest_batch(chunk.to_vec())? {
                r?;
            }
        }
    }
    // Their own record has every event; they are in no segment.
    let x = with.profile("x")?.ok_or("x is stored")?;
    assert_eq!(x.event_count, 31);
    assert_eq!((x.segment, x.assigned_segment), (None, None));
    assert!(x.propensity.is_nan(), "not scored");
    assert!(!x.consent.profiling && x.consent.marketing);
    let json = x.to_json(&with.feature_names());
    assert_eq!(json["propensity"], serde_json::Value::Null);
    assert_eq!(json["consent"]["profiling"], false);
    assert!(!x.top_items.is_empty(), "their own lists are kept");
    // Not personalised: what an unknown customer gets.
    let popular = with.recommend("nobody-at-all", 5, Default::default())?;
    assert_eq!(with.recommend("x", 5, Default::default())?, popular);
    // The models, and every other key (sample, queue, held examples, cohorts), as without them.
    let mut m = (*with.model()).clone();
    m.version = without.model().version;
    assert!(m == *without.model(), "the model state differs");
    let (mine, theirs) = (shared_keys(&with, "x")?, shared_keys(&without, "x")?);
    let differ: Vec<String> = mine
        .iter()
        .filter(|kv| !theirs.contains(kv))
        .chain(theirs.iter().filter(|kv| !mine.contains(kv)))
        .map(|(k, _)| String::from_utf8_lossy(&k[..k.len().min(12)]).into_owned())
        .collect();
    assert!(differ.is_empty(), "keys that differ: {differ:?}");
    let open = |db: &Db| db.model_info().pending_examples;
    assert_eq!(
        open(&with),
        open(&without),
        "the same open training examples"
    );
    let export = with.export_customer("x")?.ok_or("x")?;
    assert!(export.pending_example.is_none() && export.training_examples.is_empty());
    // Nothing profiles them: score, lookalikes, feedback refused, saying why.
    for err in [
        with.score("x").map(|_| ()),
        with.similar("x", 3, Search::Exact).map(|_| ()),
        with.feedback(Feedback::new("x", "vip_offer", true))
            .map(|_| ()),
        with.strategy("x", Choice::Greedy).map(|_| ()),
    ] {
        let e = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("\"x\" has not consented to profiling"), "{e}");
    }
    let someone = with.profiles().next().ok_or("a profile")??.customer_id;
    let near = with
        .similar(&someone, 500, Search::Exact)?
        .unwrap_or_default();
    assert!(
        near.iter().all(|s| s.customer_id != "x"),
        "x is nobody's lookalike"
    );
    Ok(())
}

/// The same in an encrypted store (the default; both with the same key): the model state is
/// as without their events (its bytes are compared in plain stores above, since sealed values
/// carry random nonces).
#[test]
fn without_consent_to_profiling_an_encrypted_store_s_models_are_as_without_them() -> Result<()> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let with = config(a.path()).open()?;
    let without = config(b.path()).open()?;
    assert!(with.store().is_encrypted() && without.store().is_encrypted());
    with.set_attributes("x", vec![("consent.profiling".into(), text("no"))])?;
    for (db, events) in [(&with, stream(Some("x"))?), (&without, stream(None)?)] {
        for chunk in events.chunks(64) {
            for r in db.ingest_batch(chunk.to_vec())? {
                r?;
            }
        }
    }
    let mut m = (*with.model()).clone();
    m.version = without.model().version;
    assert!(m == *without.model(), "the model state differs");
    assert_eq!(
        with.model_info().pending_examples,
        without.model_info().pending_examples
    );
    Ok(())
}

#[test]
fn without_consent_to_marketing_a_customer_is_never_acted_on() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path()).open()?;
    db.trigger_add("first", &["FIRST_PURCHASE", "COOLDOWN", "0"])?;
    db.set_attributes("y", vec![("consent.marketing".into(), text("false"))])?;
    for events in stream(Some("y"))?.chunks(64) {
        for r in db.ingest_batch(events.to_vec())? {
            r?;
        }
    }
    let fired = db.read_triggers(0, 10_000)?;
    assert!(fired.len() > 50, "the others fire: {}", fired.len());
    assert!(fired.iter().all(|f| f.customer != "y"));
    // Profiled all the same: a segment and a score.
    assert!(db.profile("y")?.ok_or("y")?.segment.is_some());
    assert!(db.score("y")?.is_some());
    for err in [
        db.strategy("y", Choice::Greedy).map(|_| ()),
        db.recommend("y", 5, Default::default()).map(|_| ()),
    ] {
        let e = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("\"y\" has not consented to marketing"), "{e}");
    }
    // Given again: acted on from then on.
    db.set_attributes("y", vec![("consent.marketing".into(), text("yes"))])?;
    assert!(db.strategy("y", Choice::Greedy)?.is_some());
    Ok(())
}

#[test]
fn a_withdrawal_takes_them_out_and_every_change_is_exported_with_its_time() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path()).open()?;
    for events in stream(Some("z"))?.chunks(64) {
        for r in db.ingest_batch(events.to_vec())? {
            r?;
        }
    }
    let segment = db
        .profile("z")?
        .ok_or("z")?
        .assigned_segment
        .ok_or("a segment")?;
    let sizes = db.model().segment_sizes.clone();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    db.set_attributes("z", vec![("consent.profiling".into(), text("false"))])?;
    let z = db.profile("z")?.ok_or("z")?;
    assert_eq!((z.segment, z.assigned_segment), (None, None));
    let after = db.model().segment_sizes.clone();
    assert_eq!(
        after[segment as usize] + 1,
        sizes[segment as usize],
        "z left the segment"
    );
    let members = db.segment_members(segment, None, 10_000)?;
    assert!(!members.contains(&"z".to_string()));
    db.ingest(Event::new("z", T0 + 200 * DAY, EventKind::View))?;
    let current = db.profile("z")?.ok_or("z")?;
    assert_eq!(current.assigned_segment, None);
    // No version of theirs is scored or segmented now, not even one from before the
    // withdrawal, and not through the history views either.
    for v in [current.version, current.version - 3] {
        let p = db.profile_at_version("z", v)?.ok_or("kept")?;
        assert!(p.segment.is_none() && p.propensity.is_nan(), "version {v}");
    }
    let first_kept = db
        .profile_at_version("z", current.version - 3)?
        .ok_or("kept")?;
    let at = first_kept.last_seen_ms.ok_or("had events")?;
    let then = db.profile_as_of("z", at)?.ok_or("had events")?;
    assert!(then.segment.is_none() && then.propensity.is_nan());
    let history = db.export_customer("z")?.ok_or("z")?.to_json();
    for version in history["history"].as_array().ok_or("history")? {
        assert!(version["profile"]["propensity"].is_null(), "{version}");
        assert!(version["profile"]["segment"].is_null(), "{version}");
    }
    db.set_attributes("z", vec![("consent.profiling".into(), text("1"))])?;
    let export = db.export_customer("z")?.ok_or("z")?;
    let changes = common::consent_changes(&export);
    assert_eq!(changes, [("profiling", false), ("profiling", true)]);
    assert!(export
        .consent
        .changes
        .iter()
        .all(|c| c.at_ms >= Some(before)));
    assert!(export.consent.profiling && export.consent.marketing);
    // Bad values and reserved names are refused, changing nothing.
    let version = export.version;
    for (name, value, says) in [
        (
            "consent.marketing",
            text("maybe"),
            "allowed true, false, yes, no, 1 or 0",
        ),
        ("consent.profiling_at", AttrValue::Number(1.0), "reserved"),
        ("consent.ads", text("yes"), "reserved"),
    ] {
        let e = db
            .set_attributes("z", vec![(name.into(), value)])
            .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    assert_eq!(db.profile("z")?.ok_or("z")?.version, version);
    Ok(())
}

#[test]
fn the_defaults_apply_to_customers_who_set_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path()).consent_defaults(false, true).open()?;
    let watermark = db.model().watermark_ms;
    db.ingest(Event::new("a", T0, EventKind::Purchase).with_value(5.0))?;
    assert_eq!(
        db.model().watermark_ms,
        watermark,
        "a private event moves nothing shared"
    );
    assert!(db.score("a").is_err());
    db.set_attributes("a", vec![("consent.profiling".into(), text("true"))])?;
    assert!(db.score("a")?.is_some());
    let toml = persona::Config::from_toml_str(dir.path(), "consent_marketing_default = false");
    assert!(toml.is_ok());
    let bad = persona::Config::from_toml_str(dir.path(), "consent_marketing_default = 2");
    assert!(bad.is_err());
    Ok(())
}

#[test]
fn erasing_a_customer_who_withdrew_reports_and_retrains_what_their_earlier_events_trained(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path()).open()?;
    for events in stream(Some("w"))?.chunks(64) {
        for r in db.ingest_batch(events.to_vec())? {
            r?;
        }
    }
    assert!(db.model().segments.is_seeded());
    db.set_attributes("w", vec![("consent.profiling".into(), text("no"))])?;
    let report = db.erase_and_retrain("w")?;
    assert!(report.erased && report.events > 0);
    assert!(
        report.kept_in_models.len() > 1
            && report.kept_in_models[0].contains("do not consent to profiling now"),
        "{report:?}"
    );
    assert_eq!(report.retrained.len(), 1, "{report:?}");
    // Withdrawing dropped their open examples already: nothing is left to drop.
    assert_eq!(report.training_examples_dropped, 0, "{report:?}");
    Ok(())
}

#[test]
fn an_active_customer_without_consent_to_profiling_never_fires_inactivity() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path()).open()?;
    db.set_attributes(
        "q",
        vec![
            ("consent.profiling".into(), text("no")),
            ("consent.marketing".into(), text("yes")),
        ],
    )?;
    db.ingest(Event::new("q", T0, EventKind::View))?;
    db.ingest(Event::new("o", T0, EventKind::View))?;
    // The index is built from the records when the trigger is added: q is in it.
    db.trigger_add("quiet", &["INACTIVE_DAYS", "10", "COOLDOWN", "0"])?;
    for d in 1..60 {
        db.ingest(Event::new("q", T0 + d * DAY, EventKind::View))?;
        if d < 5 {
            db.ingest(Event::new("o", T0 + d * DAY, EventKind::View))?;
        }
        db.ingest(Event::new("clock", T0 + d * DAY, EventKind::View))?;
    }
    let fired = db.read_triggers(0, 1000)?;
    assert!(
        fired.iter().any(|f| f.customer == "o"),
        "the trigger works: o went quiet ({fired:?})"
    );
    assert!(
        fired.iter().all(|f| f.customer != "q"),
        "q is active every day and not to be profiled ({fired:?})"
    );
    Ok(())
}

#[test]
fn giving_the_same_answer_again_keeps_the_time_it_was_given() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path()).open()?;
    let yes = || vec![("consent.marketing".to_string(), text("yes"))];
    db.set_attributes("r", yes())?;
    let stamp = |db: &Db| -> Result<Option<AttrValue>> {
        Ok(db
            .profile("r")?
            .ok_or("r")?
            .attributes
            .get("consent.marketing_at")
            .cloned())
    };
    let first = stamp(&db)?;
    assert!(first.is_some());
    std::thread::sleep(std::time::Duration::from_millis(5));
    db.set_attributes("r", yes())?;
    assert_eq!(stamp(&db)?, first, "the same answer again is not a change");
    db.set_attributes("r", vec![("consent.marketing".into(), text("0"))])?;
    assert_ne!(stamp(&db)?, first, "a withdrawal is");
    let export = db.export_customer("r")?.ok_or("r")?;
    assert_eq!(
        common::consent_changes(&export),
        [("marketing", true), ("marketing", false)]
    );
    Ok(())
}

#[test]
fn a_profiling_default_turned_off_between_opens_stops_learning_from_those_who_set_none(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let last = {
        let db = config(dir.path()).open()?;
        let events = stream(None)?;
        let last = events
            .iter()
            .map(|e| e.timestamp_ms)
            .max()
            .ok_or("events")?;
        for chunk in events.chunks(64) {
            for r in db.ingest_batch(chunk.to_vec())? {
                r?;
            }
        }
        assert!(db.model().segment_sizes.iter().sum::<u64>() > 0);
        db.close()?;
        last
    };
    let db = config(dir.path()).consent_defaults(false, true).open()?;
    db.set_attributes("clock", vec![("consent.profiling".into(), text("yes"))])?;
    let learned = db.model().metrics.examples();
    // The watermark moves a year on, a day at a time (the future-skew limit): every open
    // example of the others comes due.
    for d in 1..=365 {
        db.ingest(Event::new("clock", last + d * DAY, EventKind::View))?;
    }
    let model = db.model();
    assert!(
        model.metrics.examples() <= learned + 20,
        "at most the clock's own examples are learned: {} then {}",
        learned,
        model.metrics.examples()
    );
    // A re-segmentation takes everyone who set nothing out of the segments.
    db.resegment(1000, persona::Centroids::Keep)?;
    let sizes = db.model().segment_sizes.clone();
    assert!(
        sizes.iter().sum::<u64>() <= 1,
        "only the clock may be in a segment: {sizes:?}"
    );
    for s in 0..sizes.len() as u16 {
        let members = db.segment_members(s, None, 10_000)?;
        assert!(members.iter().all(|m| m == "clock"), "{members:?}");
    }
    Ok(())
}

#[test]
fn firings_made_before_a_withdrawal_are_no_longer_handed_out() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path()).open()?;
    db.trigger_add("spend", &["SPEND_ABOVE", "10", "COOLDOWN", "0"])?;
    db.trigger_add("first", &["FIRST_PURCHASE"])?;
    let buy = |c: &str, d: i64| Event::new(c, T0 + d * DAY, EventKind::Purchase).with_value(20.0);
    db.ingest(buy("m", 0))?;
    db.ingest(buy("n", 1))?;
    db.ingest(buy("m", 2))?;
    let all = db.read_triggers(0, 100)?;
    assert!(
        all.iter().filter(|f| f.customer == "m").count() >= 2,
        "{all:?}"
    );
    db.set_attributes("m", vec![("consent.marketing".into(), text("no"))])?;
    let now = db.read_triggers(0, 100)?;
    assert!(now.iter().all(|f| f.customer == "n"), "{now:?}");
    assert!(!now.is_empty());
    // The read looked through to the newest firing (theirs): a consumer goes on from there.
    let page = db.read_trigger_page(0, 100)?;
    assert_eq!(page.through, db.last_trigger_id()?);
    assert_eq!(page.fired, now);
    let past = db.read_trigger_page(page.through, 100)?;
    assert!(past.fired.is_empty() && past.through == page.through);
    // A page of one skips every firing of theirs to the next that may be acted on.
    let one = db.read_triggers(0, 1)?;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].customer, "n");
    // Given again, they are handed out again (nothing was removed).
    db.set_attributes("m", vec![("consent.marketing".into(), text("yes"))])?;
    assert_eq!(db.read_triggers(0, 100)?.len(), all.len());
    Ok(())
}

#[test]
fn a_customer_without_consent_has_no_refit_row_even_after_a_reopen() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let rows_of = |db: &Db, who: &str| -> Result<usize> {
        let mut n = 0;
        for k in db.store().sled().scan_prefix([keys::SAMPLED_ROW]).keys() {
            let k = k.map_err(|e| e.to_string())?;
            n += usize::from(keys::parse_sampled_row(&k).is_some_and(|(_, c)| c == who));
        }
        Ok(n)
    };
    {
        let db = plain_config(dir.path()).open()?;
        for c in ["a", "b"] {
            db.ingest(Event::new(c, T0, EventKind::Purchase).with_value(5.0))?;
        }
        // A row is written when its block (a day) closes.
        assert_eq!(rows_of(&db, "b")?, 0, "the day is still open");
        db.advance_watermark(T0 + DAY)?;
        assert_eq!(rows_of(&db, "b")?, 1, "sampled, with a row");
        db.set_attributes("b", vec![("consent.profiling".into(), text("no"))])?;
        assert_eq!(rows_of(&db, "b")?, 0, "withdrawn: their rows go");
        db.close()?;
    }
    // The reopen rebuilds the sample (it has fewer members than profiles) with b in it; b's
    // events still write no row.
    let db = plain_config(dir.path()).open()?;
    db.ingest(Event::new("b", T0 + 2 * DAY, EventKind::Purchase).with_value(5.0))?;
    db.ingest(Event::new("a", T0 + 3 * DAY, EventKind::Purchase).with_value(5.0))?;
    assert_eq!(rows_of(&db, "b")?, 0);
    assert!(rows_of(&db, "a")? >= 1);
    Ok(())
}

/// The access export lists a sampled customer's refit row of the day still open, which the
/// writer keeps in memory until the day closes, and lists it once after it is written.
#[test]
fn the_export_lists_the_refit_row_of_the_open_day_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = plain_config(dir.path()).open()?;
    let stored = |db: &Db| -> Result<usize> {
        let mut n = 0;
        for k in db.store().sled().scan_prefix([keys::SAMPLED_ROW]).keys() {
            let k = k.map_err(|e| e.to_string())?;
            n += usize::from(keys::parse_sampled_row(&k).is_some_and(|(_, c)| c == "a"));
        }
        Ok(n)
    };
    let listed = |db: &Db| -> Result<usize> {
        let doc = db.export_customer("a")?.ok_or("a exists")?.to_json();
        let examples = doc["training_examples"].as_array().ok_or("a list")?;
        Ok(examples
            .iter()
            .filter(|e| e["kept_as"] == "refit_cohort")
            .count())
    };
    db.ingest(Event::new("a", T0, EventKind::Purchase).with_value(5.0))?;
    assert_eq!((stored(&db)?, listed(&db)?), (0, 1), "in memory, listed");
    db.advance_watermark(T0 + DAY)?;
    assert_eq!((stored(&db)?, listed(&db)?), (1, 1), "written, listed once");
    db.ingest(Event::new("a", T0 + DAY + 1, EventKind::Purchase).with_value(5.0))?;
    assert_eq!((stored(&db)?, listed(&db)?), (1, 2), "a new day's row");
    // Without consent to profiling: no row at all.
    db.set_attributes("a", vec![("consent.profiling".into(), text("no"))])?;
    assert_eq!((stored(&db)?, listed(&db)?), (0, 0));
    Ok(())
}
