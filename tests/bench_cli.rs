//! `persona bench` end to end on a tiny workload: the JSON report has the keys scripts rely on,
//! with sane values. No timing thresholds: only that rates are positive and consistent.

mod common;

use common::resp::{installed, runs_with, TestResult};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `persona bench` on the tiny workload (50 customers, 500 events) with JSON output in
/// `work`, plus `args`.
fn tiny_bench(work: &Path, args: &[&str]) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_persona"))
        .args(["bench", "--customers", "50", "--events", "500", "--json"])
        .arg("--dir")
        .arg(work)
        .args(args)
        .output()
}

fn number(v: &serde_json::Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| format!("key {key} missing or not a number in {v}"))
}

#[test]
fn bench_json_has_sane_rates_and_ratios() -> TestResult {
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("bench");
    let out = tiny_bench(
        &work,
        &[
            "--queries",
            "50",
            "--similar-queries",
            "3",
            "--recall-queries",
            "2",
        ],
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ours = number(&v, "events_per_sec")?;
    let raw = number(&v, "raw_sled_inserts_per_sec")?;
    let ratio = number(&v, "ratio_to_raw_sled")?;
    assert!(ours > 0.0 && raw > 0.0, "{v}");
    assert!((ratio - ours / raw).abs() <= 1e-9 * ratio.max(1.0), "{v}");
    assert_eq!(number(&v, "events")?, 500.0);
    assert_eq!(number(&v, "rejected")?, 0.0);
    // Every event was committed; each commit writes at least the model state and one profile.
    let kwe = number(&v, "key_writes_per_event")?;
    assert!(kwe > 0.0 && kwe <= 3.0, "{v}");
    assert!(number(&v, "commits")? >= 1.0, "{v}");
    assert!(number(&v, "raw_record_bytes")? > 0.0, "{v}");
    assert!(number(&v, "disk_bytes")? > 0.0 && number(&v, "logical_bytes")? > 0.0);
    assert!(number(&v, "reopen_secs")? >= 0.0);
    // The store was compacted after the queries: one copy of every live key, still on disk.
    assert!(number(&v, "compacted_disk_bytes")? > 0.0, "{v}");
    assert!(number(&v, "compacted_to_logical")? > 0.0, "{v}");
    assert!(number(&v, "compact_secs")? >= 0.0, "{v}");
    let q = &v["queries"];
    assert_eq!(number(q, "samples")?, 50.0);
    for key in ["raw_record_get_us", "profile_get_us", "score_us"] {
        let p50 = number(&q[key], "p50")?;
        let p99 = number(&q[key], "p99")?;
        assert!(p50 > 0.0 && p99 >= p50, "{key}: {q}");
    }
    let recall = number(q, "recall_at_k")?;
    assert!((0.0..=1.0).contains(&recall), "{q}");
    // The working directory is removed afterwards unless --keep.
    assert!(!work.exists());
    Ok(())
}

#[test]
fn bench_refuses_a_non_empty_directory_and_leaves_it_alone() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("precious"), "keep me")?;
    let out = Command::new(env!("CARGO_BIN_EXE_persona"))
        .args([
            "bench",
            "--customers",
            "5",
            "--events",
            "10",
            "--json",
            "--dir",
        ])
        .arg(dir.path())
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious"))?,
        "keep me"
    );
    Ok(())
}

#[test]
fn queries_only_reruns_the_query_phase_on_a_kept_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("bench");
    let bench = |extra: &[&str]| {
        let queries = [
            "--queries",
            "20",
            "--similar-queries",
            "3",
            "--recall-queries",
            "2",
        ];
        tiny_bench(&work, &[&queries[..], extra].concat())
    };
    // Without a kept store there is nothing to query: a clear error, exit 1.
    let out = bench(&["--queries-only"])?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds no store"), "{stderr}");

    let out = bench(&["--keep"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bench(&["--queries-only"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(v.get("events_per_sec").is_none(), "no ingest: {v}");
    assert!(number(&v, "lookalike_index_rows")? > 0.0, "{v}");
    let q = &v["queries"];
    assert_eq!(number(q, "samples")?, 20.0);
    for key in ["similar_us", "similar_shortlist_us"] {
        assert!(
            number(&q[key], "p99")? >= number(&q[key], "p50")?,
            "{key}: {q}"
        );
    }
    assert!((0.0..=1.0).contains(&number(q, "recall_at_k")?), "{q}");
    assert!(work.join("persona").is_dir(), "the store is left as it was");
    Ok(())
}

#[test]
fn no_compact_leaves_the_compaction_out_of_the_report() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = tiny_bench(
        &dir.path().join("bench"),
        &[
            "--queries",
            "10",
            "--similar-queries",
            "1",
            "--recall-queries",
            "1",
            "--no-compact",
        ],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    for key in [
        "compacted_disk_bytes",
        "compacted_to_logical",
        "compact_secs",
    ] {
        assert!(v[key].is_null(), "{key}: {v}");
    }
    assert!(number(&v, "disk_to_logical")? > 0.0, "{v}");
    Ok(())
}

#[test]
fn bench_server_reports_every_comparison_and_the_storage_ceiling() -> TestResult {
    if !runs_with(
        installed("redis-benchmark"),
        "redis-benchmark",
        "apt-get install redis-tools",
    ) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("server");
    let out = Command::new(env!("CARGO_BIN_EXE_persona"))
        .args(["bench", "--server", "--requests", "2000", "--rounds", "1"])
        .args(["--clients", "10", "--json", "--dir"])
        .arg(&work)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let with_redis = installed("redis-server");
    let rows = v["rows"].as_array().ok_or("no rows")?;
    let row = |command: &str, pipeline: f64| {
        rows.iter()
            .find(|r| r["command"] == command && r["pipeline"].as_f64() == Some(pipeline))
            .ok_or_else(|| format!("no {command} -P {pipeline} row in {v}"))
    };
    for command in ["EVENT.ADD", "PROFILE.GET"] {
        for pipeline in [1.0, 16.0] {
            let r = row(command, pipeline)?;
            assert!(number(r, "persona_rps")? > 0.0, "{r}");
            assert_eq!(r["ratio"].is_number(), with_redis, "{r}");
        }
    }
    // The ceiling is shaped by what the server committed under EVENT.ADD -P 16: those 2,000
    // requests (acknowledged only once published; redis-benchmark sends whole pipelines of 16,
    // and 2,000 is a multiple of 16, so it sends exactly that many), in batches no larger than
    // the 10 clients' 160 in flight, each batch writing its records and the model.
    let c = &v["storage_ceiling"];
    let served = &c["served"];
    assert_eq!(number(served, "items")?, 2000.0, "{c}");
    assert!(
        number(served, "key_writes")? > number(served, "commits")?,
        "{c}"
    );
    let batch = number(c, "batch")?;
    assert!((1.0..=160.0).contains(&batch), "{c}");
    assert!(number(c, "value_bytes")? > 0.0, "{c}");
    assert_eq!(number(c, "inserts")?, 2000.0);
    let ceiling = number(c, "inserts_per_sec")?;
    assert!(ceiling > 0.0, "{c}");
    let event_add = number(row("EVENT.ADD", 16.0)?, "persona_rps")?;
    let to_ceiling = number(&v, "event_add_to_ceiling")?;
    assert!(
        (to_ceiling - event_add / ceiling).abs() <= 1e-9 * to_ceiling.max(1.0),
        "{v}"
    );
    assert_eq!(v["target_to_ceiling"].is_number(), with_redis, "{v}");
    assert!(!work.exists());
    Ok(())
}
