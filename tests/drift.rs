//! Drift detection end to end, through the normal write path: no alarm on a stationary generated
//! stream, and a planted abrupt change (`persona generate --drift-at`) detected within one
//! horizon, once. The streams span 200 days so that the test is armed (about three horizons
//! into a store, see `src/model/drift.rs`) well before the change.

mod common;

use common::cli::Result;
use common::DAY;
use persona::generator::{Generator, GeneratorConfig, DEFAULT_START_MS};
use persona::testing::model::drift::Detection;
use persona::{Config, Durability, Event};

/// The default horizon.
const HORIZON: i64 = 30 * DAY;

fn workload(seed: u64, drift_at_ms: Option<i64>) -> GeneratorConfig {
    GeneratorConfig {
        customers: 5000,
        events: 200_000,
        seed,
        days: 200,
        drift_at_ms,
        ..GeneratorConfig::default()
    }
}

/// The detections after ingesting the whole workload with the default configuration.
fn detections(cfg: GeneratorConfig) -> Result<Vec<Detection>> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    let events: Vec<Event> = Generator::new(cfg)?.collect();
    for chunk in events.chunks(2048) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    Ok(db.model_info().drift)
}

#[test]
fn a_stationary_stream_raises_no_alarm() -> Result {
    let found = detections(workload(1, None))?;
    assert!(found.is_empty(), "false alarms: {found:?}");
    Ok(())
}

#[test]
fn a_planted_change_is_detected_within_one_horizon_and_once() -> Result {
    let drift_at = DEFAULT_START_MS + 130 * DAY;
    let found = detections(workload(1, Some(drift_at)))?;
    assert_eq!(found.len(), 1, "one alarm for one change: {found:?}");
    let d = found[0];
    assert!(
        d.watermark_ms > drift_at && d.watermark_ms <= drift_at + HORIZON,
        "detected {} days after the change",
        (d.watermark_ms - drift_at) as f64 / DAY as f64
    );
    assert!(d.deadline_day_ms >= drift_at - DAY && d.deadline_day_ms < d.watermark_ms);
    Ok(())
}

#[test]
fn generate_drift_at_changes_only_what_follows() -> Result {
    let dir = tempfile::tempdir()?;
    let run = |name: &str, extra: &[&str]| -> Result<String> {
        let out = dir.path().join(name);
        let out_s = out.to_str().ok_or("path")?;
        let mut args = vec![
            "generate",
            "--customers",
            "60",
            "--events",
            "3000",
            "--out",
            out_s,
        ];
        args.extend_from_slice(extra);
        let o = common::cli::persona(dir.path(), &args)?;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Ok(std::fs::read_to_string(out)?)
    };
    let plain = run("plain.csv", &[])?;
    let drifted = run("drifted.csv", &["--drift-at", "2026-03-01T00:00:00Z"])?;
    let as_ms = run("ms.csv", &["--drift-at", "1772323200000"])?;
    assert_eq!(drifted, as_ms, "RFC 3339 and unix ms name the same time");
    let drift_ms = 1_772_323_200_000i64;
    let ts = |line: &str| line.split(',').nth(2).and_then(|t| t.parse::<i64>().ok());
    assert_eq!(plain.lines().count(), drifted.lines().count());
    let before = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .take_while(|l| ts(l).is_some_and(|t| t < drift_ms))
            .map(str::to_string)
            .collect()
    };
    assert!(!before(&plain).is_empty());
    assert_eq!(
        before(&plain),
        before(&drifted),
        "events before the drift are unchanged"
    );
    assert_ne!(plain, drifted, "nothing changed after the drift");
    let bad = dir.path().join("bad.csv");
    let bad = bad.to_str().ok_or("path")?;
    let o = common::cli::persona(
        dir.path(),
        &["generate", "--out", bad, "--drift-at", "soon"],
    )?;
    assert!(!o.status.success());
    Ok(())
}
