//! Triggers through the library: definitions from the config file and at run time, crossings
//! that fire and levels that do not, the outbox read in id order, cooldowns and the daily cap,
//! what survives a reopen, erasure, a failed commit, bad definitions, the retention by count
//! and by age, and the consumers' positions. (That a cooldown
//! holds across a reopen, rebuilt from the outbox, is a unit test of `triggers/state.rs`.)

mod common;

use common::{DAY, T0};
use persona::{Config, Db, Event, EventKind, Result};

fn purchase(customer: &str, t: i64, amount: f64) -> Event {
    Event::new(customer, t, EventKind::Purchase).with_value(amount)
}

fn config(dir: &std::path::Path, toml: &str) -> Result<Config> {
    Config::from_toml_str(
        dir,
        &format!("segments = 4\ndurability = \"flush\"\n{toml}"),
    )
}

/// (id, customer) of every firing in the outbox.
fn ids(db: &Db) -> Result<Vec<(u64, String)>> {
    Ok(db
        .read_triggers(0, 100)?
        .into_iter()
        .map(|f| (f.id, f.customer))
        .collect())
}

const TRIGGERS: &str = r#"
trigger_daily_cap = 2
[[triggers]]
name = "first"
when = "FIRST_PURCHASE"
cooldown_days = 0
[[triggers]]
name = "big_spender"
when = "SPEND_ABOVE 100"
action = "vip_offer"
cooldown_days = 30
"#;

#[test]
fn crossings_fire_once_in_id_order_and_levels_do_not() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), TRIGGERS)?.open()?;
    db.ingest(Event::new("a", T0, EventKind::View))?;
    assert!(
        db.read_triggers(0, 100)?.is_empty(),
        "a view crosses nothing"
    );
    db.ingest(purchase("a", T0 + 1, 40.0))?;
    db.ingest(purchase("a", T0 + 2, 40.0))?; // spend 80: below
    db.ingest(purchase("a", T0 + 3, 40.0))?; // spend 120: crosses
    db.ingest(purchase("a", T0 + 4, 40.0))?; // stays above
    db.ingest(purchase("b", T0 + 5, 500.0))?; // both at once
    let fired = db.read_triggers(0, 100)?;
    let seen: Vec<(u64, &str, &str, &str)> = fired
        .iter()
        .map(|f| {
            (
                f.id,
                f.trigger.as_str(),
                f.customer.as_str(),
                f.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "first", "a", "first purchase"),
            (2, "big_spender", "a", "spend 80.00 → 120.00"),
            (3, "first", "b", "first purchase"),
            (4, "big_spender", "b", "spend 0.00 → 500.00"),
        ]
    );
    assert_eq!(fired[1].action.as_deref(), Some("vip_offer"));
    assert_eq!(fired[1].time_ms, T0 + 3);
    assert!(fired
        .iter()
        .all(|f| f.propensity.is_some_and(|p| (0.0..=1.0).contains(&p))));
    // Resuming after an id returns what follows it; a count bounds the answer.
    let after: Vec<u64> = db.read_triggers(2, 100)?.iter().map(|f| f.id).collect();
    assert_eq!(after, [3, 4]);
    assert_eq!(db.read_triggers(0, 1)?.len(), 1);
    assert!(db.read_triggers(0, 0).is_err());
    Ok(())
}

#[test]
fn cooldowns_and_the_daily_cap_suppress_and_are_counted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), TRIGGERS)?.open()?;
    db.trigger_add("whale", &["SPEND_ABOVE", "1000", "COOLDOWN", "0"])?;
    // One event crosses all three: the cap of two a day lets the first two through.
    db.ingest(purchase("a", T0, 2000.0))?;
    let fired: Vec<String> = db
        .read_triggers(0, 100)?
        .into_iter()
        .map(|f| f.trigger)
        .collect();
    assert_eq!(fired, ["first", "big_spender"]);
    let info = db.triggers();
    let whale = info.iter().find(|t| t.trigger.name == "whale").unwrap();
    assert_eq!((whale.fired, whale.suppressed), (0, 1));
    assert!(!whale.from_config);
    // A trigger added at run time applies to the events after it.
    db.trigger_add("likely_first", &["FIRST_PURCHASE", "COOLDOWN", "30"])?;
    db.ingest(purchase("c", T0 + DAY, 5.0))?;
    let names: Vec<String> = db
        .read_triggers(2, 100)?
        .into_iter()
        .map(|f| f.trigger)
        .collect();
    assert_eq!(names, ["first", "likely_first"]);
    Ok(())
}

#[test]
fn the_outbox_and_the_run_time_definitions_survive_a_reopen() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let db = config(dir.path(), TRIGGERS)?.open()?;
        db.trigger_add("seg0", &["SEGMENT_ENTER", "0"])?;
        db.ingest(purchase("a", T0, 200.0))?;
        db.close()?;
    }
    let db = config(dir.path(), TRIGGERS)?.open()?;
    let names: Vec<String> = db.triggers().into_iter().map(|t| t.trigger.name).collect();
    assert_eq!(names, ["first", "big_spender", "seg0"]);
    let before = db.read_triggers(0, 100)?;
    assert_eq!(before.len(), 2);
    // Ids continue after the reopen.
    db.ingest(purchase("b", T0 + 1, 1.0))?;
    let all = db.read_triggers(0, 100)?;
    assert_eq!(all.last().map(|f| f.id), Some(3));
    assert_eq!(all[2].trigger, "first");
    db.trigger_del("seg0")?;
    assert!(db.trigger_del("seg0").is_err(), "deleted already");
    let err = db.trigger_del("first").unwrap_err().to_string();
    assert!(err.contains("defined in the config file"), "{err}");
    Ok(())
}

#[test]
fn erasing_a_customer_removes_their_firings_only() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), TRIGGERS)?.open()?;
    db.ingest(purchase("a", T0, 10.0))?;
    db.ingest(purchase("b", T0 + 1, 10.0))?;
    db.ingest(purchase("a", T0 + 2, 200.0))?;
    // An access request shows the customer's firings, and only theirs.
    let export = db.export_customer("a")?.expect("a is known");
    let ids: Vec<u64> = export.triggers.iter().map(|f| f.id).collect();
    assert_eq!(ids, [1, 3]);
    assert_eq!(export.to_json()["triggers"][1]["trigger"], "big_spender");
    assert!(db.erase("a")?);
    let left: Vec<(u64, String)> = db
        .read_triggers(0, 100)?
        .into_iter()
        .map(|f| (f.id, f.customer))
        .collect();
    assert_eq!(left, [(2, "b".to_string())]);
    // The erased customer starts afresh: their first purchase fires again.
    db.ingest(purchase("a", T0 + 3, 10.0))?;
    let last = db.read_triggers(2, 100)?;
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].id, last[0].customer.as_str()), (4, "a"));
    Ok(())
}

#[test]
fn a_failed_commit_fires_nothing_and_the_retry_fires_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), TRIGGERS)?.open()?;
    db.fail_next_commits(1);
    assert!(db.ingest(purchase("a", T0, 10.0)).is_err());
    assert!(db.read_triggers(0, 100)?.is_empty());
    db.ingest(purchase("a", T0, 10.0))?;
    let fired = db.read_triggers(0, 100)?;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].id, 1, "the failed batch used no id");
    Ok(())
}

#[test]
fn bad_definitions_are_refused_with_their_reason_and_change_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), "")?.open()?;
    let err = |name: &str, words: &[&str]| db.trigger_add(name, words).unwrap_err().to_string();
    assert!(err("x", &["PROPENSITY_ABOVE", "2"]).contains("out of range"));
    assert!(err("x", &["SEGMENT_ENTER", "9"]).contains("no such segment; allowed 0..=3"));
    assert!(err("x", &["INACTIVE_DAYS", "0"]).contains("out of range"));
    assert!(
        err("x", &["FIRST_PURCHASE", "ACTION", "spam"]).contains("not one of the store's actions")
    );
    assert!(err("no spaces", &["FIRST_PURCHASE"]).contains("trigger name"));
    assert!(db.triggers().is_empty());
    db.trigger_add("x", &["FIRST_PURCHASE"])?;
    assert!(err("x", &["FIRST_PURCHASE"]).contains("exists"));
    assert_eq!(db.triggers().len(), 1);
    // The config file's definitions are checked the same way.
    for (toml, says) in [
        ("[[triggers]]\nname = \"y\"\nwhen = \"SPEND_ABOVE -1\"", "allowed > 0"),
        ("[[triggers]]\nname = \"y\"\nwhen = \"FIRST_PURCHASE\"\nfrequency = 2", "unknown field"),
        (
            "[[triggers]]\nname = \"y\"\nwhen = \"FIRST_PURCHASE\"\n[[triggers]]\nname = \"y\"\nwhen = \"FIRST_PURCHASE\"",
            "defined twice",
        ),
    ] {
        let e = config(dir.path(), toml).unwrap_err().to_string();
        assert!(e.contains(says), "{toml}: {e}");
    }
    Ok(())
}

#[test]
fn a_store_without_triggers_writes_no_outbox_and_one_with_them_checks_clean() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db: Db = config(dir.path(), "")?.open()?;
    db.ingest(purchase("a", T0, 500.0))?;
    assert!(db.read_triggers(0, 10)?.is_empty());
    db.trigger_add("first", &["FIRST_PURCHASE"])?;
    db.ingest(purchase("b", T0, 500.0))?;
    assert_eq!(db.read_triggers(0, 10)?.len(), 1);
    db.close()?;
    drop(db);
    common::store::assert_clean(dir.path())?;
    Ok(())
}

#[test]
fn silent_customers_fire_once_per_silence_as_the_watermark_passes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let quiet = |db: &Db| -> Result<Vec<(String, i64, String)>> {
        Ok(db
            .read_triggers(0, 100)?
            .into_iter()
            .map(|f| (f.customer, f.time_ms, f.reason))
            .collect())
    };
    {
        let db = config(dir.path(), "")?.open()?;
        db.ingest(Event::new("a", T0, EventKind::View))?;
        db.ingest(Event::new("b", T0 + 10 * DAY, EventKind::View))?;
        // Defined after their events: the index comes from a scan of the records.
        db.trigger_add("quiet", &["INACTIVE_DAYS", "30", "COOLDOWN", "0"])?;
        db.ingest(Event::new("c", T0 + 31 * DAY, EventKind::View))?;
        assert_eq!(
            quiet(&db)?,
            [(
                "a".to_string(),
                T0 + 30 * DAY,
                "no event for 30 days (last on 2026-01-01)".to_string()
            )]
        );
        db.ingest(Event::new("c", T0 + 45 * DAY, EventKind::View))?; // b falls silent at 40
        db.ingest(Event::new("a", T0 + 50 * DAY, EventKind::View))?; // a is back: re-armed
        let who: Vec<String> = quiet(&db)?.into_iter().map(|f| f.0).collect();
        assert_eq!(who, ["a", "b"], "once per silence");
        db.close()?;
    }
    // After a reopen the index is rebuilt: a (due at 80) and c (75) fire, b not again.
    let db = config(dir.path(), "")?.open()?;
    db.ingest(Event::new("d", T0 + 100 * DAY, EventKind::View))?;
    let fired = quiet(&db)?;
    let tail: Vec<(&str, i64)> = fired[2..].iter().map(|f| (f.0.as_str(), f.1)).collect();
    assert_eq!(tail, [("c", T0 + 75 * DAY), ("a", T0 + 80 * DAY)]);
    // An erased customer is forgotten: d never fires.
    assert!(db.erase("d")?);
    db.ingest(Event::new("e", T0 + 200 * DAY, EventKind::View))?;
    assert!(db.read_triggers(0, 100)?.iter().all(|f| f.customer != "d"));
    Ok(())
}

#[test]
fn a_follower_sees_each_new_firing_and_ends_when_the_store_closes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), TRIGGERS)?.open()?;
    db.ingest(purchase("old", T0, 1.0))?;
    let follower = db.follow_triggers(db.last_trigger_id()?);
    let reader = std::thread::spawn(move || -> Result<Vec<String>> {
        follower.map(|f| f.map(|f| f.customer)).collect()
    });
    for (i, c) in ["a", "b", "c"].into_iter().enumerate() {
        db.ingest(purchase(c, T0 + 1 + i as i64, 1.0))?;
    }
    // Closing ends the follower once it has delivered everything committed before.
    db.close()?;
    let seen = reader.join().map_err(|_| persona::Error::Closed)??;
    assert_eq!(seen, ["a", "b", "c"]);
    Ok(())
}

#[test]
fn a_batch_s_firings_share_a_key_that_erasure_rewrites_and_retention_drops_whole() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), &format!("trigger_retention = 4\n{TRIGGERS}"))?.open()?;
    let batch: Vec<Event> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, c)| purchase(c, T0 + i as i64, 1.0))
        .collect();
    for r in db.ingest_batch(batch)? {
        r?;
    }
    assert_eq!(ids(&db)?.len(), 3);
    assert!(db.erase("b")?);
    assert_eq!(ids(&db)?, [(1, "a".into()), (3, "c".into())]);
    // Reading from inside a key works whatever was removed before it.
    assert_eq!(db.read_triggers(1, 10)?.len(), 1);
    db.ingest(purchase("d", T0 + 10, 1.0))?;
    db.ingest(purchase("e", T0 + 11, 1.0))?;
    // Four kept at most: the oldest key (a and c) goes as a whole, once the daily cap and the
    // cooldowns no longer need it (a late event may come up to 7 days after the day after
    // theirs).
    db.ingest(purchase("f", T0 + DAY, 1.0))?;
    assert_eq!(ids(&db)?.len(), 5, "the cap of the day still needs a and c");
    db.ingest(purchase("f", T0 + 8 * DAY - 1, 1.0))?;
    assert_eq!(ids(&db)?.len(), 5, "a late event could still need a and c");
    db.ingest(purchase("f", T0 + 8 * DAY, 1.0))?;
    assert_eq!(
        ids(&db)?,
        [(4, "d".into()), (5, "e".into()), (6, "f".into())]
    );
    db.close()?;
    drop(db);
    common::store::assert_clean(dir.path())?;
    let db = config(dir.path(), &format!("trigger_retention = 4\n{TRIGGERS}"))?.open()?;
    assert_eq!(db.last_trigger_id()?, 6);
    db.ingest(purchase("g", T0 + 2 * DAY + 1, 1.0))?;
    assert_eq!(db.read_triggers(6, 10)?[0].id, 7);
    Ok(())
}

#[test]
fn a_segment_is_named_by_its_label_and_kept_as_its_id(
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    use persona::generator::{Generator, GeneratorConfig};
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), "")?.open()?;
    let err = db
        .trigger_add("x", &["SEGMENT_ENTER", "high spend"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not fitted yet"), "{err}");
    let events: Vec<Event> = Generator::new(GeneratorConfig {
        customers: 300,
        events: 6000,
        seed: 3,
        ..GeneratorConfig::default()
    })?
    .collect();
    for r in db.ingest_batch(events)? {
        r?;
    }
    db.resegment(500, persona::Centroids::Refit)?;
    let segments = db.segments()?;
    let target = segments
        .iter()
        .find(|s| segments.iter().filter(|t| t.label == s.label).count() == 1)
        .expect("a segment with a label of its own");
    let t = db.trigger_add("to_it", &["SEGMENT_ENTER", &target.label.to_uppercase()])?;
    assert_eq!(t.when, persona::Condition::SegmentEnter(target.id));
    assert_eq!(
        db.triggers()[0].trigger.describe(),
        format!("to_it WHEN SEGMENT_ENTER {} COOLDOWN 1", target.id)
    );
    let err = db
        .trigger_add("y", &["SEGMENT_LEAVE", "no such label"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no segment is labelled"), "{err}");
    assert!(
        err.contains(&target.label),
        "the message lists the labels: {err}"
    );
    Ok(())
}

#[test]
fn ids_are_never_handed_out_twice_even_after_erasing_the_newest_and_a_reopen() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let db = config(dir.path(), TRIGGERS)?.open()?;
        db.ingest(purchase("a", T0, 1.0))?;
        db.ingest(purchase("b", T0 + 1, 1.0))?;
        assert!(db.erase("b")?);
        assert!(db.erase("a")?);
        assert!(db.read_triggers(0, 10)?.is_empty());
        assert_eq!(db.last_trigger_id()?, 2, "the newest id stays known");
        db.close()?;
    }
    common::store::assert_clean(dir.path())?;
    let db = config(dir.path(), TRIGGERS)?.open()?;
    db.ingest(purchase("c", T0 + 2, 1.0))?;
    let fired = db.read_triggers(0, 10)?;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].id, 3, "a consumer that read up to 2 sees it");
    Ok(())
}

#[test]
fn a_run_time_definition_the_config_file_overrides_can_still_be_deleted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let db = config(dir.path(), "")?.open()?;
        db.trigger_add("first", &["SPEND_ABOVE", "5"])?;
        db.close()?;
    }
    {
        let db = config(dir.path(), TRIGGERS)?.open()?;
        let first = db
            .triggers()
            .into_iter()
            .find(|t| t.trigger.name == "first");
        assert!(
            first.is_some_and(|t| t.from_config),
            "the config file's is used"
        );
        db.trigger_del("first")?;
        let err = db.trigger_del("first").unwrap_err().to_string();
        assert!(err.contains("defined in the config file"), "{err}");
        db.close()?;
    }
    let db = config(dir.path(), "")?.open()?;
    assert!(db.triggers().is_empty(), "the stored definition is gone");
    Ok(())
}

#[test]
fn retention_by_age_drops_old_keys_but_not_what_a_cooldown_still_needs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let toml = format!("trigger_retention_days = 5\n{TRIGGERS}");
    {
        let db = config(dir.path(), &toml)?.open()?;
        db.ingest(purchase("a", T0, 150.0))?; // first (1) and big_spender (2): 30 days' cooldown
        db.ingest(purchase("b", T0 + 20 * DAY, 1.0))?; // first (3)
        assert_eq!(
            ids(&db)?,
            [(1, "a".into()), (2, "a".into()), (3, "b".into())],
            "a's firings are older than 5 days, but big_spender's cooldown still needs them"
        );
        db.ingest(purchase("c", T0 + 40 * DAY, 1.0))?; // first (4)
        assert_eq!(ids(&db)?, [(4, "c".into())]);
        // No firing: the newest key stays, however old (it carries the next id).
        db.ingest(Event::new("c", T0 + 100 * DAY, EventKind::View))?;
        assert_eq!(ids(&db)?, [(4, "c".into())]);
        db.close()?;
    }
    let db = config(dir.path(), &toml)?.open()?;
    db.ingest(purchase("d", T0 + 101 * DAY, 1.0))?;
    assert_eq!(ids(&db)?, [(5, "d".into())]);
    let bad = config(
        dir.path(),
        &format!("trigger_retention_days = 0\n{TRIGGERS}"),
    );
    let err = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("trigger_retention_days = 0 is out of range"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_consumer_s_position_moves_forward_only_and_survives_a_reopen() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let db = config(dir.path(), TRIGGERS)?.open()?;
        for (i, c) in ["a", "b", "c"].into_iter().enumerate() {
            db.ingest(purchase(c, T0 + i as i64, 1.0))?;
        }
        assert_eq!(db.trigger_position("mailer")?, None);
        assert_eq!(db.trigger_ack("mailer", 2)?, 2);
        assert_eq!(db.trigger_ack("mailer", 1)?, 2, "never back");
        let err = db.trigger_ack("mailer", 9).unwrap_err().to_string();
        assert!(
            err.contains("9 was never given to a firing; the newest firing is 3"),
            "{err}"
        );
        let err = db.trigger_ack("no spaces", 1).unwrap_err().to_string();
        assert!(err.contains("consumer name"), "{err}");
        assert_eq!(db.trigger_consumers()?, [("mailer".to_string(), 2)]);
        let next = db.read_triggers(db.trigger_position("mailer")?.unwrap_or(0), 10)?;
        let who: Vec<&str> = next.iter().map(|f| f.customer.as_str()).collect();
        assert_eq!(who, ["c"]);
        db.close()?;
    }
    common::store::assert_clean(dir.path())?;
    let db = config(dir.path(), TRIGGERS)?.open()?;
    assert_eq!(db.trigger_position("mailer")?, Some(2));
    Ok(())
}

#[test]
fn a_failed_commit_loses_no_silence() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), "")?.open()?;
    db.trigger_add("quiet", &["INACTIVE_DAYS", "30", "COOLDOWN", "0"])?;
    db.ingest(Event::new("a", T0, EventKind::View))?;
    db.ingest(Event::new("b", T0 + DAY, EventKind::View))?;
    // The watermark passes a's silence in a batch that fails, with b's event re-arming b.
    db.fail_next_commits(1);
    assert!(db
        .ingest(Event::new("b", T0 + 31 * DAY, EventKind::View))
        .is_err());
    assert!(db.read_triggers(0, 100)?.is_empty());
    // Applied after all: a fell silent at 30; b's event of day 31 never happened, so b fell
    // silent at 31 too.
    db.ingest(Event::new("c", T0 + 32 * DAY, EventKind::View))?;
    let fired: Vec<(String, i64)> = db
        .read_triggers(0, 100)?
        .into_iter()
        .map(|f| (f.customer, f.time_ms))
        .collect();
    assert_eq!(
        fired,
        [
            ("a".to_string(), T0 + 30 * DAY),
            ("b".to_string(), T0 + 31 * DAY)
        ]
    );
    Ok(())
}

#[test]
fn advancing_the_watermark_fires_the_silences_and_runs_the_refits_that_came() -> Result<()> {
    use persona::testing::DbInternals;
    let dir = tempfile::tempdir()?;
    let db = config(dir.path(), "")?.open()?;
    db.trigger_add("quiet", &["INACTIVE_DAYS", "20", "COOLDOWN", "0"])?;
    // Two months of weekly purchases by 30 customers, and by 30 more who stop after 20 days:
    // the daily refits have started, and those 30 have fallen silent.
    for day in 0..60 {
        let events: Vec<Event> = (0..60)
            .filter(|c| (c + day) % 7 == 0 && (*c < 30 || day < 20))
            .map(|c| purchase(&format!("c{c}"), T0 + day * DAY + c, 1.0 + c as f64))
            .collect();
        for r in db.ingest_batch(events)? {
            r?;
        }
    }
    assert_eq!(db.read_triggers(0, 100)?.len(), 30);
    let refit = db.model().propensity.refit().map(<[f64]>::to_vec);
    assert!(refit.is_some(), "refitted by now");
    let last = db.model_info().watermark_ms;
    // Refused past the latest time an event is accepted at; nothing changes.
    let err = db.advance_watermark(i64::MAX);
    assert!(
        matches!(&err, Err(e) if e.to_string().contains("max_future_skew_secs")),
        "{err:?}"
    );
    assert_eq!(db.model_info().watermark_ms, last);
    // Within the day: no boundary, no refit, no silence.
    db.advance_watermark(last + 1)?;
    assert_eq!(db.model().propensity.refit().map(<[f64]>::to_vec), refit);
    assert_eq!(db.read_triggers(0, 100)?.len(), 30);
    // Nothing came for 25 days: the refits of those days ran, the others fell silent too.
    db.advance_watermark(last + 25 * DAY)?;
    assert_eq!(db.model_info().watermark_ms, last + 25 * DAY);
    assert_ne!(db.model().propensity.refit().map(<[f64]>::to_vec), refit);
    assert_eq!(db.read_triggers(0, 100)?.len(), 60);
    // Backwards: nothing.
    let version = db.model_info().version;
    db.advance_watermark(T0)?;
    assert_eq!(db.model_info().version, version);
    Ok(())
}
