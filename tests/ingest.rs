//! Ingest through the `Db` facade: a hand-computed event sequence gives exact profile values,
//! decayed values are expressed at the watermark and recency keeps growing while a customer is
//! silent, past versions are readable (and pruned ones are refused with the readable range),
//! attributes are stored and overwritten, and acknowledgements carry the right fields.

mod common;

use common::{DAY, T0};
use persona::testing::DbInternals;
use persona::testing::ProfileInternals;
use persona::{AttrValue, Config, Db, Durability, Event, EventKind, Profile, Result};
use std::path::Path;

/// A store with a 10-day half-life (so 10 silent days halve every decayed value) that keeps
/// four versions per profile.
fn open(dir: &Path) -> Result<Db> {
    Config::new(dir)
        .half_life_days(10.0)
        .history_versions(4)
        .durability(Durability::None)
        .open()
}

/// The named feature of a profile.
fn feature(db: &Db, p: &Profile, name: &str) -> f64 {
    let i = db
        .feature_names()
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no feature named {name}"));
    p.features[i]
}

/// Asserts `actual` equals the hand-computed `expected` up to floating-point rounding.
#[track_caller]
fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

#[test]
fn hand_computed_sequence_gives_exact_profile_values() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let params = *db.layout().params();
    let (books, music) = (params.bucket("books"), params.bucket("music"));
    assert_ne!(books, music, "the test needs two distinct category buckets");

    db.ingest(
        Event::new("alice", T0, EventKind::Purchase)
            .with_value(100.0)
            .with_category("books"),
    )?;
    db.ingest(
        Event::new("alice", T0 + 10 * DAY, EventKind::Purchase)
            .with_value(50.0)
            .with_category("books"),
    )?;
    db.ingest(
        Event::new("alice", T0 + 20 * DAY, EventKind::View)
            .with_value(30.0)
            .with_category("music"),
    )?;
    db.ingest(Event::new("alice", T0 + 20 * DAY, EventKind::Rating).with_value(4.0))?;
    db.ingest(Event::new("alice", T0 + 20 * DAY, EventKind::Refund).with_value(30.0))?;

    let p = db.profile("alice")?.expect("alice was just written");
    assert_eq!(p.customer_id, "alice");
    assert_eq!((p.version, p.event_count), (5, 5));
    assert_eq!(p.first_seen_ms, Some(T0));
    assert_eq!(p.last_seen_ms, Some(T0 + 20 * DAY));
    assert_eq!(p.as_of_ms, T0 + 20 * DAY);
    assert_eq!(p.state().last_purchase_ms, Some(T0 + 10 * DAY));
    // Lifetime sums are exact.
    assert_eq!(p.state().spend, 150.0);
    assert_eq!(p.state().refunded, 30.0);
    assert_eq!(p.state().view_seconds, 30.0);
    assert_eq!(p.state().rating_sum, 4.0);
    // Decayed values at the anchor (day 20): the first purchase is two half-lives old, the
    // second one half-life.
    assert_close(
        p.state().decayed_spend,
        100.0 * 0.25 + 50.0 * 0.5,
        "decayed spend",
    );
    assert_close(
        p.state().kind_decayed[EventKind::Purchase.index()],
        0.75,
        "decayed purchases",
    );
    assert_close(p.state().categories[books as usize], 0.75, "books affinity");
    assert_close(p.state().categories[music as usize], 1.0, "music affinity");

    // The feature vector as of the watermark (day 20).
    let f = |name: &str| feature(&db, &p, name);
    assert_eq!(f("recency_days"), 0.0);
    assert_close(f("tenure_days"), 21f64.ln(), "tenure");
    assert_close(f("days_since_purchase"), 11f64.ln(), "days since purchase");
    assert_close(f("purchases"), 3f64.ln(), "purchases");
    assert_close(f("spend"), 151f64.ln(), "spend");
    assert_close(f("decayed_purchases"), 1.75f64.ln(), "decayed purchases");
    assert_close(f("decayed_spend"), 51f64.ln(), "decayed spend");
    assert_close(f("avg_order_value"), 76f64.ln(), "average order value");
    assert_close(f("view_seconds"), 31f64.ln(), "view seconds");
    assert_close(f("refund_share"), 30.0 / 180.0, "refund share");
    assert_close(f("rating_mean"), 1.0, "rating mean");
    assert_close(f("decayed_view"), 2f64.ln(), "decayed views");
    assert_close(f("mix_purchase"), 0.4, "purchase share");
    assert_close(f("mix_view"), 0.2, "view share");
    assert_eq!(f("mix_click"), 0.0);
    assert_close(f(&format!("category_{books}")), 0.75 / 1.75, "books share");
    assert_close(f(&format!("category_{music}")), 1.0 / 1.75, "music share");
    assert!(p.features.iter().all(|v| v.is_finite()));
    assert!(p.propensity > 0.0 && p.propensity < 1.0);
    // 5 events are far below the k-means reservoir: no segment yet.
    assert_eq!((p.segment, p.assigned_segment), (None, None));
    db.close()?;
    Ok(())
}

#[test]
fn decay_is_evaluated_at_the_watermark_and_recency_grows_while_silent() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    db.ingest(Event::new("alice", T0, EventKind::Purchase).with_value(100.0))?;
    db.ingest(Event::new("alice", T0 + 10 * DAY, EventKind::Purchase).with_value(50.0))?;
    let before = db.profile("alice")?.expect("written");
    assert_eq!(before.as_of_ms, T0 + 10 * DAY);
    assert_close(
        feature(&db, &before, "decayed_spend"),
        101f64.ln(),
        "day 10",
    );

    // Other customers move the watermark; alice stays silent.
    for (i, silent_days) in [10, 30].into_iter().enumerate() {
        let now = T0 + 10 * DAY + silent_days * DAY;
        db.ingest(Event::new(format!("bob{i}"), now, EventKind::Click))?;
        assert_eq!(db.model_info().watermark_ms, now);
        let p = db.profile("alice")?.expect("written");
        assert_eq!(p.as_of_ms, now);
        // Nothing of alice changed: same version, same stored state.
        assert_eq!((p.version, p.event_count), (2, 2));
        assert_eq!(p.state(), before.state());
        let halvings = silent_days as f64 / 10.0;
        let f = |name| feature(&db, &p, name);
        assert_close(
            f("recency_days"),
            (1.0 + silent_days as f64).ln(),
            "recency",
        );
        assert_close(
            f("days_since_purchase"),
            (1.0 + silent_days as f64).ln(),
            "days since purchase",
        );
        assert_close(f("tenure_days"), (11.0 + silent_days as f64).ln(), "tenure");
        assert_close(
            f("decayed_spend"),
            (1.0 + 100.0 * 2f64.powf(-halvings)).ln(),
            "decayed spend",
        );
        assert_close(
            f("decayed_purchases"),
            (1.0 + 1.5 * 2f64.powf(-halvings)).ln(),
            "decayed purchases",
        );
        // Lifetime features do not decay.
        assert_close(f("spend"), 151f64.ln(), "spend");
        assert_close(f("purchases"), 3f64.ln(), "purchases");
        assert!(f("recency_days") > feature(&db, &before, "recency_days"));
    }

    // An event older than alice's anchor is decayed to it, not moved forward.
    db.ingest(Event::new("alice", T0, EventKind::Click))?;
    let p = db.profile("alice")?.expect("written");
    assert_close(
        p.state().kind_decayed[EventKind::Click.index()],
        0.5,
        "late click at the anchor (one half-life after it happened)",
    );
    assert_eq!(p.last_seen_ms, Some(T0 + 10 * DAY));
    assert_eq!(p.first_seen_ms, Some(T0));
    db.close()?;
    Ok(())
}

#[test]
fn past_versions_are_readable_and_pruned_ones_name_the_range() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let mut current = Vec::new();
    for i in 0..6 {
        let ack = db.ingest(
            Event::new("dave", T0 + i * DAY, EventKind::Purchase).with_value(10.0 * (i + 1) as f64),
        )?;
        assert_eq!(ack.version, i as u64 + 1);
        current.push(db.profile("dave")?.expect("written"));
    }
    // history_versions(4): versions 3..=6 stay readable, each exactly as it was.
    for v in 3..=6u64 {
        let p = db.profile_at_version("dave", v)?.expect("dave exists");
        let then = &current[v as usize - 1];
        assert_eq!(p.version, v);
        assert_eq!(p.event_count, v);
        assert_eq!(p.state(), then.state(), "version {v}");
        assert_eq!(
            p.state().spend,
            (1..=v).map(|i| 10.0 * i as f64).sum::<f64>()
        );
    }
    let pruned = db.profile_at_version("dave", 2).unwrap_err();
    assert!(pruned.is_bad_input());
    assert_eq!(
        pruned.to_string(),
        "invalid argument version: 2 of \"dave\" was pruned; versions 3..=6 are kept"
    );
    let zero = db.profile_at_version("dave", 0).unwrap_err();
    assert_eq!(
        zero.to_string(),
        "invalid argument version: 0 of \"dave\" was pruned; versions 3..=6 are kept"
    );
    let future = db.profile_at_version("dave", 7).unwrap_err();
    assert_eq!(
        future.to_string(),
        "invalid argument version: 7 of \"dave\" does not exist; the latest is 6"
    );
    // Absent is not an error.
    assert!(db.profile_at_version("nobody", 1)?.is_none());
    assert!(db.profile("nobody")?.is_none());
    db.close()?;
    Ok(())
}

#[test]
fn attributes_are_stored_overwritten_and_versioned() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    // Attributes alone create a profile without events.
    let v = db.set_attributes(
        "erin",
        vec![
            ("age".into(), AttrValue::Number(34.0)),
            ("region".into(), "north".into()),
        ],
    )?;
    assert_eq!(v, 1);
    let p = db.profile("erin")?.expect("created by set_attributes");
    assert_eq!((p.version, p.event_count), (1, 0));
    assert_eq!(p.attributes["age"], AttrValue::Number(34.0));
    assert_eq!(p.attributes["region"], AttrValue::Text("north".into()));
    assert_eq!((p.first_seen_ms, p.last_seen_ms), (None, None));
    // Attributes feed the hashed attribute slots.
    let names = db.feature_names();
    let attr_sum = |p: &Profile| -> f64 {
        names
            .iter()
            .zip(&p.features)
            .filter(|(n, _)| n.starts_with("attr_num_"))
            .map(|(_, v)| v)
            .sum()
    };
    let text_slots = |p: &Profile| -> f64 {
        names
            .iter()
            .zip(&p.features)
            .filter(|(n, _)| n.starts_with("attr_cat_"))
            .map(|(_, v)| v)
            .sum()
    };
    assert_close(attr_sum(&p), 35f64.ln(), "numeric attribute slot");
    assert_eq!(text_slots(&p), 1.0);

    let ack = db.ingest(Event::new("erin", T0, EventKind::Click))?;
    assert_eq!(ack.version, 2);
    let v = db.set_attributes(
        "erin",
        vec![
            ("age".into(), AttrValue::Number(35.0)),
            ("plan".into(), AttrValue::from_text("gold")),
        ],
    )?;
    assert_eq!(v, 3);
    let p = db.profile("erin")?.expect("exists");
    assert_eq!(p.version, 3);
    assert_eq!(p.event_count, 1);
    assert_eq!(p.attributes.len(), 3);
    assert_eq!(p.attributes["age"], AttrValue::Number(35.0));
    assert_eq!(p.attributes["region"], AttrValue::Text("north".into()));
    assert_eq!(p.attributes["plan"], AttrValue::Text("gold".into()));
    // History keeps the attributes of each version.
    let v1 = db.profile_at_version("erin", 1)?.expect("kept");
    assert_eq!(v1.attributes["age"], AttrValue::Number(34.0));
    assert!(!v1.attributes.contains_key("plan"));
    let v2 = db.profile_at_version("erin", 2)?.expect("kept");
    assert_eq!((v2.event_count, v2.attributes.len()), (1, 2));
    db.close()?;
    Ok(())
}

#[test]
fn acks_report_version_segment_propensity_and_duplicates() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // A tiny reservoir so that segments seed after a handful of events.
    let db = Config::new(dir.path())
        .segments(3)
        .reservoir_size(8)
        .durability(Durability::None)
        .open()?;
    let first = db.ingest(
        Event::new("c0", T0, EventKind::Purchase)
            .with_value(20.0)
            .with_id("o-1"),
    )?;
    assert_eq!(first.version, 1);
    assert!(!first.duplicate);
    assert_eq!(first.segment, None, "segments are not seeded yet");
    assert!(first.propensity > 0.0 && first.propensity < 1.0);
    // The acknowledged propensity is the one a read right after the write sees.
    let p = db.profile("c0")?.expect("written");
    assert_eq!(p.propensity, first.propensity);

    // Enough varied customers to seed the segments.
    let kinds = [EventKind::View, EventKind::Click, EventKind::Like];
    let mut last = first;
    for i in 1..30i64 {
        let kind = kinds[i as usize % kinds.len()];
        last = db.ingest(Event::new(format!("c{i}"), T0 + i * 3_600_000, kind))?;
    }
    let seg = last.segment.expect("segments are seeded after 30 events");
    assert!(usize::from(seg) < 3);
    let p = db.profile("c29")?.expect("written");
    assert_eq!(p.assigned_segment, Some(seg));
    assert!(db
        .segment_members(seg, None, 100)?
        .contains(&"c29".to_string()));
    let info = db.model_info();
    assert!(info.segments_seeded);
    assert_eq!(info.segments.len(), 3);

    // Re-sending an id: a duplicate ack with the current version and nothing changed.
    let dup = db.ingest(
        Event::new("c0", T0, EventKind::Purchase)
            .with_value(20.0)
            .with_id("o-1"),
    )?;
    assert!(dup.duplicate);
    assert_eq!(dup.version, 1);
    assert_eq!(db.model_info(), info);
    db.close()?;
    Ok(())
}

/// The wall clock in unix milliseconds.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[test]
fn events_without_an_id_each_count_even_in_the_same_millisecond() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    // Ten identical id-less events at one time, in one group commit and one by one: every one
    // is applied (they used to share a derived id and nine were acknowledged as duplicates).
    let batch: Vec<Event> = (0..10)
        .map(|_| Event::new("dup", T0, EventKind::Click))
        .collect();
    for ack in db.ingest_batch(batch)? {
        assert!(!ack?.duplicate);
    }
    for _ in 0..5 {
        assert!(
            !db.ingest(Event::new("dup", T0, EventKind::Click))?
                .duplicate
        );
    }
    let p = db.profile("dup")?.expect("dup exists");
    assert_eq!(p.event_count, 15);
    // An id keeps retries idempotent.
    let with_id = Event::new("dup", T0, EventKind::Click).with_id("retry-1");
    assert!(!db.ingest(with_id.clone())?.duplicate);
    assert!(db.ingest(with_id)?.duplicate);
    assert_eq!(db.profile("dup")?.map(|p| p.event_count), Some(16));
    Ok(())
}

#[test]
fn historical_events_from_1970_on_import_from_csv_and_jsonl() -> Result<()> {
    use persona::testing::event::parse::{EventReader, Format};
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let csv = "event_id,customer_id,timestamp,kind,value,category\n\
               o-1,c1997,1997-03-04T05:06:07Z,purchase,12.5,books\n\
               o-2,c1997,852076800000,purchase,3,books\n\
               o-3,c1970,0,click,,\n";
    let jsonl = "{\"customer_id\":\"j1997\",\"timestamp\":\"1997-03-04T05:06:07Z\",\"kind\":\"view\",\"value\":3}\n";
    let mut events = Vec::new();
    for e in EventReader::new(csv.as_bytes(), Format::Csv)? {
        events.push(e?);
    }
    for e in EventReader::new(jsonl.as_bytes(), Format::Jsonl)? {
        events.push(e?);
    }
    assert_eq!(events.len(), 4);
    for ack in db.ingest_batch(events)? {
        assert!(!ack?.duplicate);
    }
    let p = db.profile("c1997")?.expect("c1997 exists");
    assert_eq!(p.event_count, 2);
    assert_eq!(db.model_info().watermark_ms, 857_451_967_000);
    assert!(db.profile("c1970")?.is_some());
    assert!(db.profile("j1997")?.is_some());
    // Before 1970 is still refused, naming the range.
    let err = db
        .ingest(Event::new("c", -1, EventKind::Click))
        .unwrap_err()
        .to_string();
    assert!(err.contains("between 1970-01-01 and 2200-01-01"), "{err}");
    Ok(())
}

#[test]
fn an_event_far_in_the_future_is_refused_and_changes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    db.ingest(Event::new("a", T0, EventKind::Click))?;
    let before = db.model_info();
    // 2150-01-01: one mistyped row used to move the watermark for everyone.
    let err = db
        .ingest(Event::new("b", 5_680_281_600_000, EventKind::Purchase).with_value(1.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("field timestamp: 5680281600000"), "{err}");
    assert!(err.contains("max_future_skew_secs = 86400"), "{err}");
    assert!(db.profile("b")?.is_none());
    let after = db.model_info();
    assert_eq!(after.watermark_ms, before.watermark_ms);
    assert_eq!(after.version, before.version);
    // In a batch, the refusal is that event's alone.
    let now = wall_ms();
    let acks = db.ingest_batch(vec![
        Event::new("c", now + 2 * DAY, EventKind::Click),
        Event::new("c", now + DAY / 2, EventKind::Click),
    ])?;
    assert!(acks[0].is_err());
    assert!(acks[1].is_ok(), "within the skew of the wall clock");
    assert_eq!(db.profile("c")?.map(|p| p.event_count), Some(1));
    Ok(())
}

#[test]
fn the_future_limit_follows_the_watermark_when_it_is_ahead_of_the_clock() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // 2100-01-01, accepted by a store told to accept any time.
    let ahead = 4_102_444_800_000;
    {
        let db = Config::new(dir.path())
            .durability(Durability::None)
            .max_future_skew_secs(persona::testing::config::MAX_FUTURE_SKEW_SECS)
            .open()?;
        db.ingest(Event::new("sim", ahead, EventKind::Click))?;
        db.close()?;
    }
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .max_future_skew_secs(3600)
        .open()?;
    assert!(db
        .ingest(Event::new("sim", ahead + 1800 * 1000, EventKind::Click))
        .is_ok());
    let err = db
        .ingest(Event::new("sim", ahead + 7200 * 1000, EventKind::Click))
        .unwrap_err();
    assert!(
        err.to_string().contains("max_future_skew_secs = 3600"),
        "{err}"
    );
    Ok(())
}

/// The watermark is one time, the latest event time ever applied; erasing the customer whose
/// event set it leaves it (moving it back would reopen training examples whose labels that time
/// already gave and the models already learned). It names no one, and the store stays
/// consistent. The future-skew guard keeps a mistyped future time from setting it at all.
#[test]
fn erasing_the_customer_who_set_the_watermark_leaves_it_and_the_store_consistent() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let db = open(dir.path())?;
        db.ingest(Event::new("a", T0, EventKind::Click))?;
        db.ingest(Event::new("late", T0 + 40 * DAY, EventKind::Click))?;
        assert!(db.erase("late")?);
        assert!(db.profile("late")?.is_none());
        assert_eq!(db.model_info().watermark_ms, T0 + 40 * DAY);
        db.close()?;
    }
    let report = common::check_store(dir.path())?;
    assert!(report.is_clean(), "{:?}", report.problems);
    Ok(())
}

/// The propensity model's examples are the profile as of a checkpoint after the event, not as of
/// the event itself (which would always have recency 0, unlike the profiles it scores).
#[test]
fn training_examples_are_taken_at_a_checkpoint_after_the_event() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let horizon = 30 * DAY;
    db.ingest(Event::new("a", T0, EventKind::View).with_value(10.0))?;
    let first = db
        .export_customer("a")?
        .and_then(|x| x.pending_example)
        .expect("an open example");
    assert!(first.taken_at_ms > T0 && first.taken_at_ms <= T0 + horizon);
    assert!(!first.stored, "implicit until the checkpoint has passed");
    // An event after the checkpoint stores the features as of the checkpoint: the recency then
    // is the time from the first event to the checkpoint.
    let later = first.taken_at_ms + DAY;
    db.ingest(Event::new("a", later, EventKind::View).with_value(10.0))?;
    let stored = db
        .export_customer("a")?
        .and_then(|x| x.pending_example)
        .expect("still open");
    assert_eq!(stored.taken_at_ms, first.taken_at_ms);
    assert!(stored.stored);
    let days = (first.taken_at_ms - T0) as f64 / DAY as f64;
    let recency = stored.features["recency_days"].as_f64().expect("a number");
    // Stored as f32.
    assert_eq!(
        recency,
        f64::from(days.ln_1p() as f32),
        "recency at the checkpoint"
    );
    // A purchase inside its horizon labels it positive; the next example is a horizon later.
    let info = db.model_info();
    db.ingest(Event::new("a", later + DAY, EventKind::Purchase).with_value(5.0))?;
    let next = db
        .export_customer("a")?
        .and_then(|x| x.pending_example)
        .expect("the next example");
    assert_eq!(next.taken_at_ms, first.taken_at_ms + horizon);
    // The positive is held until its deadline (the checkpoint plus one horizon), like the
    // negatives it is learned with, and the hold survives a reopen.
    let held = db.model_info();
    assert_eq!(
        (held.examples, held.positives),
        (info.examples, info.positives)
    );
    assert_eq!(held.pending_examples, info.pending_examples + 1);
    db.close()?;
    drop(db);
    let db = open(dir.path())?;
    assert_eq!(db.model_info().pending_examples, held.pending_examples);
    let deadline = first.taken_at_ms + horizon;
    db.ingest(Event::new("b", deadline, EventKind::View))?;
    assert_eq!(
        db.model_info().examples,
        info.examples,
        "due strictly before the watermark"
    );
    db.ingest(Event::new("b", deadline + 1, EventKind::View))?;
    let after = db.model_info();
    assert_eq!(after.examples, info.examples + 1);
    assert_eq!(after.positives, info.positives + 1);
    db.close()?;
    drop(db);
    let report = common::check_store(dir.path())?;
    assert!(report.is_clean(), "{:?}", report.problems);
    Ok(())
}

/// A held positive example is personal data: erasing its customer removes it (no key names
/// them), and it is never learned.
#[test]
fn erasing_a_customer_drops_their_held_positive_example() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let horizon = 30 * DAY;
    db.ingest(Event::new("held-one", T0, EventKind::View).with_value(10.0))?;
    let taken_at = db
        .export_customer("held-one")?
        .and_then(|x| x.pending_example)
        .expect("an open example")
        .taken_at_ms;
    db.ingest(Event::new("held-one", taken_at + DAY, EventKind::Purchase).with_value(5.0))?;
    let info = db.model_info();
    assert!(db.erase("held-one")?);
    db.ingest(Event::new("other", taken_at + horizon + 1, EventKind::View))?;
    let after = db.model_info();
    assert_eq!(
        (after.examples, after.positives),
        (info.examples, info.positives)
    );
    db.close()?;
    drop(db);
    let report = common::check_store(dir.path())?;
    assert!(report.is_clean(), "{:?}", report.problems);
    let named = common::store::raw(dir.path(), |db| {
        let needle = b"held-one";
        let mut named = Vec::new();
        for kv in db.iter() {
            let (k, v) = kv?;
            if k.windows(needle.len()).any(|w| w == needle)
                || v.windows(needle.len()).any(|w| w == needle)
            {
                named.push(String::from_utf8_lossy(&k).into_owned());
            }
        }
        Ok(named)
    })
    .map_err(persona::Error::from)?;
    assert!(
        named.is_empty(),
        "keys still naming the erased customer: {named:?}"
    );
    Ok(())
}

/// A profile with attributes and no events has nothing the model learned from: it gets the base
/// rate (0.5 before any example, then the share of positive examples), not a prediction from
/// an all-default feature vector.
#[test]
fn a_profile_without_events_gets_the_base_rate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    db.set_attributes("attrs-only", vec![("age".into(), AttrValue::from(34.0))])?;
    assert_eq!(db.profile("attrs-only")?.map(|p| p.propensity), Some(0.5));
    // Teach the model: buyers every week for a while, and one-off viewers.
    for c in 0..40 {
        for w in 0..12 {
            let t = T0 + w * 7 * DAY + c * 60_000;
            if c % 2 == 0 {
                db.ingest(Event::new(format!("b{c}"), t, EventKind::Purchase).with_value(20.0))?;
            } else if w == 0 {
                db.ingest(Event::new(format!("v{c}"), t, EventKind::View).with_value(5.0))?;
            }
        }
    }
    let info = db.model_info();
    assert!(info.examples > 0);
    let base = info.positives as f64 / info.examples as f64;
    let p = db.profile("attrs-only")?.expect("exists");
    assert_close(p.propensity, base, "base rate");
    let score = db.score("attrs-only")?.expect("exists");
    assert_close(score.propensity, base, "score's base rate");
    assert!(score.top.is_empty(), "no feature explains it");
    Ok(())
}

/// Attributes set after an example's checkpoint do not leak into it: its features are stored
/// as of the checkpoint before the attributes change the profile.
#[test]
fn attributes_set_after_a_checkpoint_stay_out_of_its_example() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    db.ingest(Event::new("a", T0, EventKind::View).with_value(10.0))?;
    let first = db
        .export_customer("a")?
        .and_then(|x| x.pending_example)
        .expect("an open example");
    // Another customer's event moves the watermark past a's checkpoint.
    db.ingest(Event::new("b", first.taken_at_ms + DAY, EventKind::View).with_value(1.0))?;
    db.set_attributes("a", vec![("age".into(), AttrValue::from(34.0))])?;
    let after = db
        .export_customer("a")?
        .and_then(|x| x.pending_example)
        .expect("still open");
    assert_eq!(after.taken_at_ms, first.taken_at_ms);
    assert!(after.stored, "stored before the attributes changed");
    let names = db.feature_names();
    let a = db.profile("a")?.expect("a exists");
    let changed: Vec<&String> = names
        .iter()
        .zip(&a.features)
        .filter(|(n, v)| n.starts_with("attr_") && **v != 0.0)
        .map(|(n, _)| n)
        .collect();
    assert!(!changed.is_empty(), "the attribute shows in the profile");
    for name in changed {
        assert_eq!(
            after.features[name.as_str()],
            0.0,
            "{name} leaked into the example"
        );
    }
    Ok(())
}

/// Items and categories named by events are kept per customer, most engaged first: kinds weigh
/// purchase 3, cart_add 2, view 1 (decayed with the half-life); a purchase is counted; a bad item
/// is refused with the field named and changes nothing.
#[test]
fn the_most_engaged_items_and_categories_are_kept_by_name() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let ev = |t: i64, kind: EventKind, item: &str| {
        Event::new("ann", t, kind)
            .with_item(item)
            .with_category("kitchen")
    };
    db.ingest(ev(T0, EventKind::View, "mug"))?;
    db.ingest(ev(T0, EventKind::View, "pan"))?;
    db.ingest(ev(T0, EventKind::CartAdd, "pan"))?;
    db.ingest(ev(T0, EventKind::Purchase, "pot").with_value(30.0))?;
    db.ingest(
        Event::new("ann", T0, EventKind::View)
            .with_item("lamp")
            .with_category("lighting"),
    )?;
    let p = db.profile("ann")?.expect("ann exists");
    let items: Vec<(&str, f64, u32)> = p
        .top_items
        .iter()
        .map(|e| (e.name.as_str(), e.weight, e.purchases))
        .collect();
    assert_eq!(
        items,
        [
            ("pan", 3.0, 0),
            ("pot", 3.0, 1),
            ("lamp", 1.0, 0),
            ("mug", 1.0, 0)
        ],
        "weights are kind-weighted; ties by name"
    );
    let categories: Vec<(&str, f64)> = p
        .top_categories
        .iter()
        .map(|e| (e.name.as_str(), e.weight))
        .collect();
    assert_eq!(categories, [("kitchen", 7.0), ("lighting", 1.0)]);

    // Thirty days later (one half-life of the lists: three times the store's 10 days), a click
    // on the mug: the rest weigh half.
    db.ingest(ev(T0 + 30 * DAY, EventKind::Click, "mug"))?;
    let p = db.profile("ann")?.expect("ann exists");
    assert_eq!(p.top_items[0].name, "pan");
    assert_close(p.top_items[0].weight, 1.5, "pan after a half-life");
    let mug = p.top_items.iter().find(|e| e.name == "mug").expect("mug");
    assert_close(mug.weight, 1.0, "mug: 0.5 + 0.5");
    assert_eq!(mug.last_ms, T0 + 30 * DAY);
    let json = p.to_json(&db.feature_names());
    assert_eq!(json["top_items"][0]["name"], "pan");

    // A bad item is refused, naming the field, and changes nothing.
    let before = db.profile("ann")?;
    for (item, reason) in [
        ("x".repeat(129), "at most 128 bytes"),
        ("a\u{7}b".to_string(), "control"),
        (String::new(), "empty"),
    ] {
        let err = db
            .ingest(Event::new("ann", T0 + 31 * DAY, EventKind::View).with_item(item.as_str()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("field item"), "{err}");
        assert!(err.contains(reason), "{err}");
    }
    assert_eq!(db.profile("ann")?, before);
    Ok(())
}
