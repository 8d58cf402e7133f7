//! Model lifecycle: drift detection, snapshots and rollback, re-segmentation, history queries.

mod common;

use common::{DAY, T0};
use persona::testing::DbInternals;
use persona::{Config, Db, DriftReaction, Durability, Event, EventKind, Result, Target};

/// A world where viewers buy and clickers don't, then (from day 100) the opposite.
fn flipping_world(db: &Db) -> Result<()> {
    let mut events = Vec::new();
    for i in 0..4000i64 {
        let start = T0 + (i * 200 * DAY) / 4000;
        let flipped = start >= T0 + 100 * DAY;
        let viewer = i % 2 == 0;
        let kind = if viewer {
            EventKind::View
        } else {
            EventKind::Click
        };
        let id = format!("u{i}");
        for j in 0..3 {
            let mut e = Event::new(&id, start + j * 3_600_000, kind);
            if kind == EventKind::View {
                e = e.with_value(30.0);
            }
            events.push(e);
        }
        // Buyers buy every five days for two months, so that every training example of theirs
        // in that time (one per 30-day horizon, at a checkpoint offset by the id's hash) is
        // positive, whatever its offset.
        if viewer != flipped {
            for k in 1..=12 {
                events.push(
                    Event::new(&id, start + k * 5 * DAY, EventKind::Purchase).with_value(20.0),
                );
            }
        }
    }
    events.sort_by_key(|e| e.timestamp_ms);
    for chunk in events.chunks(1024) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    Ok(())
}

#[test]
fn drift_is_detected_after_the_world_flips() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .drift_reaction(DriftReaction::Reset)
        .open()?;
    flipping_world(&db)?;
    let info = db.model_info();
    assert!(!info.drift.is_empty(), "no drift detected: {info:?}");
    let after_flip: Vec<_> = info
        .drift
        .iter()
        .filter(|d| d.watermark_ms >= T0 + 100 * DAY)
        .collect();
    assert!(!after_flip.is_empty(), "detections: {:?}", info.drift);
    // The model keeps learning after the reset and ends up useful again.
    assert!(
        info.rolling_auc.is_some_and(|a| a > 0.7),
        "{:?}",
        info.rolling_auc
    );
    Ok(())
}

#[test]
fn snapshots_are_taken_kept_and_rolled_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .snapshot_every(4)
        .model_versions(3)
        .max_batch(256)
        .open()?;
    flipping_world(&db)?;
    let info = db.model_info();
    assert_eq!(info.snapshots.len(), 3, "kept: {:?}", info.snapshots);
    assert!(info.snapshots.iter().all(|v| v % 4 == 0));
    let manual = db.take_model_snapshot()?;
    let versions: Vec<u64> = db.model_versions()?.iter().map(|m| m.version).collect();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions.last(), Some(&manual));
    let oldest = versions[0];
    let snap = db.read_model_snapshot(oldest)?.expect("kept");
    let now = db.rollback_model(oldest)?;
    assert!(now > manual);
    let model = db.model();
    assert_eq!(model.propensity, snap.propensity);
    assert_eq!(model.segments, snap.segments);
    assert_eq!(model.watermark_ms, info.watermark_ms, "bookkeeping is kept");
    let err = db.rollback_model(1).unwrap_err().to_string();
    assert!(
        err.contains("no model snapshot 1; snapshots kept: ["),
        "{err}"
    );
    // Survives reopen.
    db.close()?;
    drop(db);
    let db = Config::new(dir.path()).open()?;
    assert_eq!(db.model().propensity, snap.propensity);
    Ok(())
}

#[test]
fn resegment_makes_the_index_agree_with_profiles_as_of_now() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    flipping_world(&db)?;
    let report = db.resegment(700, persona::Centroids::Refit)?;
    assert!(report.refitted);
    assert_eq!(report.scanned, 4000);
    assert!(report.batches >= 6);
    let mut per_segment = vec![0u64; db.config().segment_count()];
    for p in db.profiles() {
        let p = p?;
        assert_eq!(p.segment, p.assigned_segment, "{}", p.customer_id);
        per_segment[p.segment.expect("seeded") as usize] += 1;
    }
    assert_eq!(db.model_info().segments, per_segment);
    for (s, n) in per_segment.iter().enumerate() {
        let members = db.segment_members(s as u16, None, usize::MAX)?;
        assert_eq!(members.len() as u64, *n);
    }
    // Paging with a cursor returns every member once, in order.
    let all = db.segment_members(0, None, usize::MAX)?;
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = db.segment_members(0, cursor.as_deref(), 7)?;
        if page.is_empty() {
            break;
        }
        cursor = page.last().cloned();
        paged.extend(page);
    }
    assert_eq!(paged, all);
    // Nearest segments of a customer agree with its profile's segment.
    let p = db.profile("u10")?.expect("exists");
    let near = db.nearest_segments(Target::Customer("u10"), 3)?;
    assert_eq!(Some(near[0].segment), p.segment);
    assert!(near.windows(2).all(|w| w[0].distance <= w[1].distance));
    let by_vector = db.nearest_segments(Target::Vector(&p.features), 1)?;
    assert_eq!(by_vector[0].segment, near[0].segment);
    Ok(())
}

#[test]
fn history_score_and_as_of_queries() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .history_versions(4)
        .open()?;
    for d in 0..6 {
        db.ingest(
            Event::new("h", T0 + d * DAY, EventKind::Purchase).with_value(10.0 * (d + 1) as f64),
        )?;
    }
    let h = db.history("h", 10)?.expect("exists");
    assert_eq!(
        h.iter().map(|i| i.version).collect::<Vec<_>>(),
        vec![6, 5, 4, 3]
    );
    assert_eq!(h[0].kind.as_deref(), Some("purchase"));
    assert_eq!(h[0].value, Some(60.0));
    let at = db
        .profile_as_of("h", T0 + 3 * DAY + 1)?
        .expect("had events");
    assert_eq!(at.version, 4);
    assert_eq!(at.event_count, 4);
    assert_eq!(at.as_of_ms, T0 + 3 * DAY + 1);
    let oldest = db
        .profile_as_of("h", T0 + 2 * DAY)?
        .expect("version 3 is the oldest kept");
    assert_eq!(oldest.version, 3);
    let err = db.profile_as_of("h", T0 + DAY).unwrap_err().to_string();
    assert!(
        err.contains("older than the retained history of \"h\" (versions 3..=6 are kept)"),
        "{err}"
    );
    assert!(db.profile_as_of("nobody", T0)?.is_none());
    let s = db.score("h")?.expect("exists");
    assert_eq!(s.top.len(), 6);
    assert!(s
        .top
        .windows(2)
        .all(|w| w[0].contribution.abs() >= w[1].contribution.abs()));
    // Each contribution names its own dimension: its value is the profile's feature of that name.
    let names = db.feature_names();
    let features = db.profile("h")?.expect("exists").features;
    for c in &s.top {
        let i = names
            .iter()
            .position(|n| *n == c.feature)
            .expect("a feature name");
        assert_eq!(c.value, features[i], "{}", c.feature);
    }
    assert!((0.0..=1.0).contains(&s.propensity));
    let e = db
        .nearest_segments(Target::Vector(&[f64::NAN; 61]), 1)
        .unwrap_err();
    assert!(e.to_string().contains("vector component 0 is NaN"), "{e}");
    Ok(())
}
