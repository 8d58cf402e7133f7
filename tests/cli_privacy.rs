//! The real `persona` binary: `export-customer` (stdout and a private `--out` file), `erase`
//! (`--json`, idempotent), `purge` (configured TTL, `--ttl-days`, refusals with exit 2) and
//! `consent` (show, set, a CSV file with wrong rows reported).

mod common;

use common::cli::{run, stdout_json as json, Result};
use common::{DAY, T0};
use serde_json::Value;
use std::path::Path;

/// Imports two old customers (day 0) and two recent ones (day 100).
fn store(dir: &Path) -> Result<std::path::PathBuf> {
    let data = dir.join("store");
    let csv = dir.join("events.csv");
    let mut text = String::from("event_id,customer_id,timestamp,kind,value,category\n");
    for (c, t) in [
        ("old-1", T0),
        ("old-2", T0 + 1),
        ("recent-1", T0 + 100 * DAY),
        ("recent-2", T0 + 100 * DAY + 1),
    ] {
        for j in 0..3 {
            text.push_str(&format!("{c}-{j},{c},{},purchase,12.5,books\n", t + j));
        }
    }
    std::fs::write(&csv, text)?;
    let summary = json(&data, &["import", csv.to_str().ok_or("path")?, "--json"])?;
    assert_eq!(summary["applied"], 12);
    Ok(data)
}

#[test]
fn export_customer_prints_and_writes_a_private_file() -> Result {
    let dir = tempfile::tempdir()?;
    let data = store(dir.path())?;
    let doc = json(&data, &["export-customer", "old-1"])?;
    assert_eq!(doc["customer_id"], "old-1");
    assert_eq!(doc["version"], 3);
    assert_eq!(doc["dedupe_ids_held"], 3);
    assert_eq!(doc["history"].as_array().map(Vec::len), Some(3));
    assert_eq!(doc["profile"]["event_count"], 3);

    let file = dir.path().join("old-1.json");
    let (stdout, stderr) = run(
        &data,
        &[
            "export-customer",
            "old-1",
            "--out",
            file.to_str().ok_or("path")?,
        ],
        0,
    )?;
    assert!(stdout.is_empty());
    assert!(stderr.contains("exported customer \"old-1\""), "{stderr}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    assert_eq!(written, doc);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "export file mode {mode:o}");
    }

    let (_, stderr) = run(&data, &["export-customer", "nobody"], 1)?;
    assert!(
        stderr.contains("no profile for customer \"nobody\""),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn erase_is_idempotent_and_reports_what_it_did() -> Result {
    let dir = tempfile::tempdir()?;
    let data = store(dir.path())?;
    // One outcome recorded for old-1, taken back by the erase.
    run(
        &data,
        &[
            "feedback",
            "old-1",
            "vip_offer",
            "--converted",
            "--segment",
            "0",
        ],
        0,
    )?;
    let out = json(&data, &["erase", "old-1", "--json"])?;
    assert_eq!(
        (out["customer_id"].as_str(), out["erased"].as_bool()),
        (Some("old-1"), Some(true))
    );
    assert_eq!(out["events"], 3, "{out}");
    assert_eq!(out["feedback_outcomes_subtracted"], 1, "{out}");
    assert!(
        out["kept_in_models"]
            .as_array()
            .is_some_and(|k| !k.is_empty()),
        "{out}"
    );
    let out = json(&data, &["erase", "old-1", "--json"])?;
    assert_eq!(out["erased"], false);
    let (stdout, _) = run(&data, &["erase", "old-1"], 0)?;
    assert!(stdout.contains("nothing to erase"), "{stdout}");
    let (stdout, _) = run(&data, &["erase", "old-2"], 0)?;
    assert!(stdout.contains("erased customer \"old-2\""), "{stdout}");
    assert!(
        stdout.contains("strategy outcomes:      0 subtracted"),
        "{stdout}"
    );
    assert!(stdout.contains("stays in the models:"), "{stdout}");
    let (_, stderr) = run(&data, &["profile", "old-1"], 1)?;
    assert!(stderr.contains("no profile"), "{stderr}");
    assert_eq!(json(&data, &["export-customer", "recent-1"])?["version"], 3);
    // With --retrain the report lists what was refitted (nothing here: too few customers for
    // segments, `tests/privacy.rs` has a store with them).
    let out = json(&data, &["erase", "recent-1", "--retrain", "--json"])?;
    assert_eq!(out["erased"], true, "{out}");
    assert!(out["retrained"].is_array(), "{out}");
    let (_, stderr) = run(&data, &["resegment", "--refit", "--fresh"], 2)?;
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let (_, stderr) = run(&data, &["erase", ""], 1)?;
    assert!(stderr.contains("customer_id"), "{stderr}");
    Ok(())
}

#[test]
fn purge_uses_the_configured_ttl_or_the_flag() -> Result {
    let dir = tempfile::tempdir()?;
    let data = store(dir.path())?;
    // No TTL anywhere: bad configuration, exit 2, and nothing is erased.
    let (_, stderr) = run(&data, &["purge"], 2)?;
    assert!(stderr.contains("profile_ttl_days is not set"), "{stderr}");
    let (_, stderr) = run(&data, &["purge", "--ttl-days", "0"], 2)?;
    assert!(stderr.contains("must be a number of days > 0"), "{stderr}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "profile_ttl_days = -5\n")?;
    let (_, stderr) = run(
        &data,
        &["--config", bad.to_str().ok_or("path")?, "purge"],
        2,
    )?;
    assert!(stderr.contains("profile_ttl_days = -5"), "{stderr}");
    assert_eq!(json(&data, &["export-customer", "old-1"])?["version"], 3);

    let config = dir.path().join("ttl.toml");
    std::fs::write(&config, "profile_ttl_days = 30\n")?;
    let report = json(
        &data,
        &[
            "--config",
            config.to_str().ok_or("path")?,
            "purge",
            "--json",
        ],
    )?;
    assert_eq!(report["erased"], 2, "{report}");
    assert_eq!(report["scanned"], 4);
    assert_eq!(report["ttl_days"], 30.0);
    run(&data, &["profile", "old-1"], 1)?;
    run(&data, &["profile", "old-2"], 1)?;
    run(&data, &["profile", "recent-1"], 0)?;
    // The flag overrides: a period of 1 day keeps only the two newest customers' last events.
    let report = json(&data, &["purge", "--ttl-days", "1", "--json"])?;
    assert_eq!(report["erased"], 0);
    let (stdout, _) = run(&data, &["purge", "--ttl-days", "1"], 0)?;
    assert!(stdout.starts_with("purged 0 of 2 profiles"), "{stdout}");
    Ok(())
}

#[test]
fn consent_is_shown_set_and_read_from_a_file_with_wrong_rows_reported() -> Result {
    let dir = tempfile::tempdir()?;
    let data = store(dir.path())?;
    let shown = json(&data, &["consent", "old-1", "--json"])?;
    assert_eq!(
        (shown["profiling"].clone(), shown["marketing"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
    assert_eq!(shown["changes"], serde_json::json!([]));
    let set = json(&data, &["consent", "old-1", "--marketing", "no", "--json"])?;
    assert_eq!(set["marketing"], false);
    assert_eq!(set["changes"][0]["purpose"], "marketing");
    assert!(set["changes"][0]["at_ms"].as_i64().is_some_and(|t| t > T0));
    let (out, _) = run(&data, &["consent", "old-1"], 0)?;
    assert!(out.contains("marketing  withdrawn since "), "{out}");
    assert!(
        out.contains("profiling  given     the store's default"),
        "{out}"
    );
    let (_, err) = run(&data, &["consent", "old-1", "--profiling", "maybe"], 2)?;
    assert!(err.contains("\"maybe\" is not a consent"), "{err}");
    let (_, err) = run(&data, &["consent", "nobody"], 2)?;
    assert!(err.contains("no profile for customer \"nobody\""), "{err}");

    let file = dir.path().join("consents.csv");
    std::fs::write(
        &file,
        "customer_id,profiling,marketing\n\
         recent-1,no,\n\
         recent-2,yes,false\n\
         ,no,no\n\
         old-2,perhaps,no\n\
         old-1,,\n\
         new-1,0,1\n",
    )?;
    let report = json(
        &data,
        &["consent", "--file", file.to_str().ok_or("path")?, "--json"],
    )?;
    assert_eq!(
        (report["applied"].as_u64(), report["unchanged"].as_u64()),
        (Some(3), Some(1))
    );
    let rejected: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .ok_or("rejected")?
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap_or(0),
                r["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(rejected.len(), 2, "{report}");
    assert_eq!(rejected[0].0, 4);
    assert!(rejected[0].1.contains("customer"), "{report}");
    assert_eq!(rejected[1].0, 5);
    assert!(
        rejected[1].1.contains("\"perhaps\" is not a consent"),
        "{report}"
    );
    let now = |id: &str| -> Result<(Value, Value)> {
        let v = json(&data, &["consent", id, "--json"])?;
        Ok((v["profiling"].clone(), v["marketing"].clone()))
    };
    assert_eq!(now("recent-1")?, (Value::Bool(false), Value::Bool(true)));
    assert_eq!(now("recent-2")?, (Value::Bool(true), Value::Bool(false)));
    assert_eq!(
        now("old-2")?,
        (Value::Bool(true), Value::Bool(true)),
        "a wrong row changes nothing"
    );
    assert_eq!(now("new-1")?, (Value::Bool(false), Value::Bool(true)));
    let (_, err) = run(&data, &["consent", "--file", "/nonexistent.csv"], 1)?;
    assert!(err.contains("cannot open /nonexistent.csv"), "{err}");
    Ok(())
}

/// A store made by the CLI is encrypted with a key it generates in the data directory; `erase`
/// leaves no file holding the id; `key rotate` replaces the key and the store reads as before;
/// `check` passes; a plain store is converted by `compact --encrypt`.
#[test]
fn the_cli_encrypts_rotates_and_converts() -> Result {
    let dir = tempfile::tempdir()?;
    let data = store(dir.path())?;
    assert!(data.join("store.key").exists() && data.join("keys.slots").exists());
    assert_eq!(
        common::store::files_holding(&data, "recent-1")?,
        Vec::<String>::new()
    );
    let before = json(&data, &["profile", "recent-1", "--json"])?;
    let old_key = std::fs::read(data.join("store.key"))?;
    let rotated = json(&data, &["key", "rotate", "--json"])?;
    assert_eq!(rotated["data_keys"], 4);
    assert_ne!(std::fs::read(data.join("store.key"))?, old_key);
    assert_eq!(json(&data, &["profile", "recent-1", "--json"])?, before);
    run(&data, &["erase", "old-1"], 0)?;
    run(&data, &["check"], 0)?;

    // A key file elsewhere, named in the configuration.
    let key = dir.path().join("elsewhere.key");
    let config = dir.path().join("persona.toml");
    std::fs::write(
        &config,
        format!("key_file = {:?}\n", key.display().to_string()),
    )?;
    let other = dir.path().join("other");
    let conf = config.to_str().ok_or("path")?;
    run(
        &other,
        &["--config", conf, "consent", "c1", "--marketing", "no"],
        0,
    )?;
    assert!(key.exists() && !other.join("store.key").exists());
    run(&other, &["--config", conf, "check"], 0)?;
    let (_, stderr) = run(&other, &["check"], 2)?;
    assert!(
        stderr.contains("is encrypted and no key was given"),
        "{stderr}"
    );

    // A plain store, converted.
    let off = dir.path().join("off.toml");
    std::fs::write(&off, "encryption = \"off\"\n")?;
    let plain = dir.path().join("plain");
    let off = off.to_str().ok_or("path")?;
    run(
        &plain,
        &[
            "--config",
            off,
            "consent",
            "plain-cust-71q",
            "--marketing",
            "no",
        ],
        0,
    )?;
    assert!(!common::store::files_holding(&plain, "plain-cust-71q")?.is_empty());
    run(&plain, &["compact", "--encrypt"], 0)?;
    assert_eq!(
        common::store::files_holding(&plain, "plain-cust-71q")?,
        Vec::<String>::new()
    );
    let doc = json(&plain, &["export-customer", "plain-cust-71q"])?;
    assert_eq!(doc["customer_id"], "plain-cust-71q");
    Ok(())
}

#[test]
fn an_erase_takes_its_customer_out_of_the_import_reports_in_the_data_directory() -> Result {
    let dir = tempfile::tempdir()?;
    let data = store(dir.path())?;
    // A file imported twice: every row a duplicate, listed in DATA/duplicates.txt by customer.
    let csv = dir.path().join("again.csv");
    let mut text = String::from("event_id,customer_id,timestamp,kind,value,category\n");
    for c in ["gone-7Qw2", "stays-3Rt9"] {
        text.push_str(&format!("{c}-e,{c},{T0},purchase,12.5,books\n"));
    }
    std::fs::write(&csv, &text)?;
    json(&data, &["import", csv.to_str().ok_or("path")?, "--json"])?;
    let summary = json(&data, &["import", csv.to_str().ok_or("path")?, "--json"])?;
    assert_eq!(summary["duplicates"], 2, "{summary}");
    // The files holding `needle`, by name.
    let holding = |needle| -> Result<Vec<String>> {
        let paths = common::store::files_holding(&data, needle)?;
        Ok(paths
            .iter()
            .filter_map(|p| Path::new(p).file_name()?.to_str().map(String::from))
            .collect())
    };
    assert_eq!(holding("gone-7Qw2")?, ["duplicates.txt"]);
    run(&data, &["erase", "gone-7Qw2"], 0)?;
    assert_eq!(
        holding("gone-7Qw2")?,
        Vec::<String>::new(),
        "after the erase"
    );
    assert_eq!(
        holding("stays-3Rt9")?,
        ["duplicates.txt"],
        "the other's line stays"
    );
    Ok(())
}
