//! The real `persona` binary: `triggers add` then `import` fires them; `triggers tail` (lines,
//! JSON Lines, `--since`, `--count`, `--consumer` with `--ack`), `triggers ack`, `triggers list` (counts, config-file triggers with
//! `--config`), `triggers del`; bad definitions and names refused with a message naming the
//! problem, changing nothing.

mod common;

use common::cli::{json, ok, run, Result};
use common::T0;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Writes `rows` (customer, time, kind, value) as an event CSV in `dir` and returns its path.
fn events(dir: &Path, file: &str, rows: &[(&str, i64, &str, f64)]) -> Result<PathBuf> {
    let mut text = String::from("event_id,customer_id,timestamp,kind,value,category\n");
    for (i, (c, t, kind, value)) in rows.iter().enumerate() {
        text.push_str(&format!("{file}-{i},{c},{t},{kind},{value},books\n"));
    }
    let path = dir.join(file);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Imports `file` (with `extra` arguments such as `--config F`) and checks every row applied.
fn import(data: &Path, file: &Path, extra: &[&str], rows: usize) -> Result {
    let mut args = vec!["import", file.to_str().ok_or("path")?];
    args.extend(extra);
    let summary = json(data, &args)?;
    assert_eq!(summary["applied"], rows, "{summary}");
    Ok(())
}

/// `triggers tail --json` parsed: one object per line.
fn tail(data: &Path, args: &[&str]) -> Result<Vec<Value>> {
    let mut all = vec!["triggers", "tail", "--json"];
    all.extend(args);
    ok(data, &all)?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// (id, trigger, customer, reason) of each firing.
fn summary(fired: &[Value]) -> Vec<(u64, String, String, String)> {
    fired
        .iter()
        .map(|f| {
            (
                f["id"].as_u64().unwrap_or(0),
                f["trigger"].as_str().unwrap_or("").to_string(),
                f["customer"].as_str().unwrap_or("").to_string(),
                f["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn row(id: u64, trigger: &str, customer: &str, reason: &str) -> (u64, String, String, String) {
    (id, trigger.into(), customer.into(), reason.into())
}

/// `triggers list --json` as (name, source, fired) per trigger, in order.
fn listed(data: &Path, extra: &[&str]) -> Result<Vec<(String, String, u64)>> {
    let mut args = vec!["triggers", "list"];
    args.extend(extra);
    let list = json(data, &args)?;
    let list = list.as_array().ok_or("list --json is not an array")?;
    Ok(list
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or("").to_string(),
                t["source"].as_str().unwrap_or("").to_string(),
                t["fired"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect())
}

#[test]
fn added_triggers_fire_on_import_and_tail_reads_them_in_id_order() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    // `add` creates the store, takes WHEN in any case and prints the stored definition.
    assert_eq!(
        ok(
            &data,
            &[
                "triggers",
                "add",
                "first",
                "WHEN",
                "FIRST_PURCHASE",
                "ACTION",
                "vip_offer",
                "COOLDOWN",
                "0"
            ]
        )?,
        "first WHEN FIRST_PURCHASE ACTION vip_offer COOLDOWN 0\n"
    );
    assert_eq!(
        ok(
            &data,
            &["triggers", "add", "spender", "when", "spend_above", "100"]
        )?,
        "spender WHEN SPEND_ABOVE 100 COOLDOWN 1\n"
    );
    assert_eq!(
        listed(&data, &[])?,
        [
            ("first".into(), "runtime".into(), 0),
            ("spender".into(), "runtime".into(), 0)
        ]
    );

    let file = events(
        dir.path(),
        "day1.csv",
        &[
            ("a", T0, "view", 30.0),
            ("a", T0 + 1_000, "purchase", 40.0),
            ("a", T0 + 2_000, "purchase", 40.0),
            ("a", T0 + 3_000, "purchase", 40.0), // spend 120: crosses 100
            ("a", T0 + 4_000, "purchase", 40.0), // stays above
            ("b", T0 + 5_000, "purchase", 500.0), // both at once
            ("c", T0 + 6_000, "view", 30.0),     // crosses nothing
        ],
    )?;
    import(&data, &file, &[], 7)?;

    let fired = tail(&data, &[])?;
    assert_eq!(
        summary(&fired),
        [
            row(1, "first", "a", "first purchase"),
            row(2, "spender", "a", "spend 80.00 → 120.00"),
            row(3, "first", "b", "first purchase"),
            row(4, "spender", "b", "spend 0.00 → 500.00"),
        ]
    );
    assert_eq!(fired[0]["action"], "vip_offer");
    assert_eq!(fired[1]["action"], Value::Null);
    assert_eq!(fired[1]["time_ms"], T0 + 3_000);
    for f in &fired {
        let keys = [
            "id",
            "trigger",
            "customer",
            "time_ms",
            "reason",
            "action",
            "expected_conversion",
            "segment",
            "propensity",
        ];
        common::cli::assert_keys(f, &keys);
        let p = f["propensity"]
            .as_f64()
            .ok_or("propensity is not a number")?;
        assert!((0.0..=1.0).contains(&p), "{f}");
    }

    // --since resumes after an id; --count bounds the answer.
    let ids = |v: Vec<Value>| -> Vec<u64> { v.iter().filter_map(|f| f["id"].as_u64()).collect() };
    assert_eq!(ids(tail(&data, &["--since", "2"])?), [3, 4]);
    assert_eq!(ids(tail(&data, &["--count", "1"])?), [1]);
    assert_eq!(ids(tail(&data, &["--since", "1", "--count", "2"])?), [2, 3]);
    assert!(tail(&data, &["--since", "4"])?.is_empty());

    // Without --json: one tab-separated line per firing, the time in RFC 3339 (UTC).
    let (text, stderr) = run(&data, &["triggers", "tail", "--count", "2"], 0)?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "1\t2026-01-01T00:00:01Z\tfirst\ta\tfirst purchase\tvip_offer",
            "2\t2026-01-01T00:00:03Z\tspender\ta\tspend 80.00 → 120.00\t-",
        ]
    );
    assert!(stderr.contains("--since 2"), "{stderr}");
    let (text, stderr) = run(&data, &["triggers", "tail", "--since", "9"], 0)?;
    assert!(text.is_empty(), "{text}");
    assert!(stderr.contains("no firings after id 9"), "{stderr}");

    // list counts the firings the outbox holds per trigger.
    assert_eq!(
        listed(&data, &[])?,
        [
            ("first".into(), "runtime".into(), 2),
            ("spender".into(), "runtime".into(), 2)
        ]
    );
    let list = json(&data, &["triggers", "list"])?;
    assert_eq!(
        list[1]["definition"],
        "spender WHEN SPEND_ABOVE 100 COOLDOWN 1"
    );
    assert_eq!(list[1]["suppressed"], Value::Null);
    let table = ok(&data, &["triggers", "list"])?;
    assert!(
        table.contains("WHEN FIRST_PURCHASE ACTION vip_offer COOLDOWN 0"),
        "{table}"
    );

    // del removes the definition, not its firings; later events no longer fire it.
    assert_eq!(
        ok(&data, &["triggers", "del", "spender"])?,
        "deleted trigger spender\n"
    );
    assert_eq!(listed(&data, &[])?, [("first".into(), "runtime".into(), 2)]);
    let file = events(
        dir.path(),
        "day2.csv",
        &[("d", T0 + 7_000, "purchase", 900.0)],
    )?;
    import(&data, &file, &[], 1)?;
    assert_eq!(
        summary(&tail(&data, &["--since", "2"])?),
        [
            row(3, "first", "b", "first purchase"),
            row(4, "spender", "b", "spend 0.00 → 500.00"),
            row(5, "first", "d", "first purchase"),
        ]
    );
    Ok(())
}

#[test]
fn config_file_triggers_are_listed_with_config_and_cannot_be_deleted_at_run_time() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let config = dir.path().join("persona.toml");
    std::fs::write(
        &config,
        "trigger_daily_cap = 1\n\
         [[triggers]]\n\
         name = \"welcome\"\n\
         when = \"FIRST_PURCHASE\"\n\
         action = \"new_product\"\n",
    )?;
    let config = config.to_str().ok_or("path")?;
    let with_config = ["--config", config];
    let mut add = vec!["triggers", "add", "big", "WHEN", "SPEND_ABOVE", "50"];
    add.extend(with_config);
    ok(&data, &add)?;
    let file = events(
        dir.path(),
        "events.csv",
        &[
            ("a", T0, "purchase", 100.0), // both cross: the daily cap of 1 keeps the first
            ("b", T0 + 1_000, "purchase", 10.0),
        ],
    )?;
    import(&data, &file, &with_config, 2)?;
    assert_eq!(
        summary(&tail(&data, &[])?),
        [
            row(1, "welcome", "a", "first purchase"),
            row(2, "welcome", "b", "first purchase"),
        ]
    );
    assert_eq!(
        listed(&data, &with_config)?,
        [
            ("welcome".into(), "config".into(), 2),
            ("big".into(), "runtime".into(), 0)
        ]
    );
    // Without the config file only the run-time definitions exist.
    assert_eq!(listed(&data, &[])?, [("big".into(), "runtime".into(), 0)]);
    let mut del = vec!["triggers", "del", "welcome"];
    del.extend(with_config);
    let (_, stderr) = run(&data, &del, 1)?;
    assert!(
        stderr.contains("trigger welcome is defined in the config file; remove it there"),
        "{stderr}"
    );
    assert_eq!(listed(&data, &with_config)?.len(), 2);
    Ok(())
}

#[test]
fn bad_definitions_and_names_are_refused_naming_the_problem_and_change_nothing() -> Result {
    let dir = tempfile::tempdir()?;
    let fresh = dir.path().join("fresh");
    // A bad definition is refused before a store is created.
    let (_, stderr) = run(&fresh, &["triggers", "add", "x", "WHEN", "BOUGHT", "3"], 2)?;
    assert!(stderr.contains("unknown condition \"BOUGHT\""), "{stderr}");
    assert!(!fresh.exists(), "a refused add created a store");
    // Commands other than add need a store.
    for args in [
        &["triggers", "list"][..],
        &["triggers", "tail"],
        &["triggers", "del", "x"],
    ] {
        let (_, stderr) = run(&fresh, args, 2)?;
        assert!(stderr.contains("no store at"), "{args:?}: {stderr}");
    }

    let data = dir.path().join("store");
    ok(
        &data,
        &[
            "triggers",
            "add",
            "likely",
            "WHEN",
            "PROPENSITY_ABOVE",
            "0.7",
        ],
    )?;
    let before = json(&data, &["triggers", "list"])?;
    let refused: [(&[&str], i32, &str); 11] = [
        (
            &["x", "WHEN", "BOUGHT"],
            2,
            "trigger x: unknown condition \"BOUGHT\"; allowed: SEGMENT_ENTER id",
        ),
        (
            &["x", "PROPENSITY_ABOVE", "0.5"],
            2,
            "trigger x: expected WHEN after the name, got \"PROPENSITY_ABOVE\"",
        ),
        (
            &["x", "WHEN", "PROPENSITY_ABOVE", "1.5"],
            2,
            "PROPENSITY_ABOVE 1.5 is out of range; allowed between 0 and 1",
        ),
        (
            &["x", "WHEN", "FIRST_PURCHASE", "COOLDOWN", "-1"],
            2,
            "COOLDOWN -1 is out of range; allowed 0..=3650 days",
        ),
        (
            &["x", "WHEN", "SPEND_ABOVE", "lots"],
            2,
            "SPEND_ABOVE \"lots\" is not a finite number",
        ),
        (
            &["x", "WHEN", "SEGMENT_ENTER", "99"],
            2,
            "SEGMENT_ENTER 99: no such segment",
        ),
        (
            &["x", "WHEN", "FIRST_PURCHASE", "ACTION", "coupon"],
            2,
            "ACTION \"coupon\" is not one of the store's actions",
        ),
        (
            &["x", "WHEN", "INACTIVE_DAYS", "0"],
            2,
            "INACTIVE_DAYS 0 is out of range",
        ),
        (&["x", "WHEN"], 2, "trigger x: a condition is missing"),
        (
            &["bad/name", "WHEN", "FIRST_PURCHASE"],
            2,
            "trigger name \"bad/name\": allowed 1 to 64",
        ),
        (
            &["likely", "WHEN", "FIRST_PURCHASE"],
            1,
            "a trigger named likely exists; delete it first",
        ),
    ];
    for (words, code, message) in refused {
        let mut args = vec!["triggers", "add"];
        args.extend(words);
        let (stdout, stderr) = run(&data, &args, code)?;
        assert!(stdout.is_empty(), "{words:?}: {stdout}");
        assert!(stderr.contains(message), "{words:?}: {stderr}");
    }
    let (_, stderr) = run(&data, &["triggers", "del", "nope"], 1)?;
    assert!(stderr.contains("no trigger named nope"), "{stderr}");
    let (_, stderr) = run(&data, &["triggers", "del", "bad name"], 2)?;
    assert!(stderr.contains("trigger name \"bad name\""), "{stderr}");
    // Counts outside 1..=10000 are bad usage.
    for count in ["0", "10001"] {
        let (_, stderr) = run(&data, &["triggers", "tail", "--count", count], 2)?;
        assert!(stderr.contains("--count"), "{stderr}");
    }
    assert_eq!(json(&data, &["triggers", "list"])?, before);
    Ok(())
}

#[test]
fn a_cron_consumer_reads_each_firing_once_with_tail_consumer_ack() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    ok(
        &data,
        &["triggers", "add", "first", "WHEN", "FIRST_PURCHASE"],
    )?;
    let rows: Vec<(String, i64)> = (0..5).map(|i| (format!("c{i}"), T0 + i * 1_000)).collect();
    let day: Vec<(&str, i64, &str, f64)> = rows
        .iter()
        .map(|(c, t)| (c.as_str(), *t, "purchase", 10.0))
        .collect();
    import(&data, &events(dir.path(), "day1.csv", &day)?, &[], 5)?;
    let customers = |fired: &[Value]| -> Vec<String> {
        fired
            .iter()
            .map(|f| f["customer"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let mailer = ["--consumer", "mailer", "--ack", "--count", "3"];
    assert_eq!(customers(&tail(&data, &mailer)?), ["c0", "c1", "c2"]);
    assert_eq!(customers(&tail(&data, &mailer)?), ["c3", "c4"]);
    assert!(tail(&data, &mailer)?.is_empty(), "nothing new");
    // Without --ack the position stays; another consumer has its own.
    assert_eq!(customers(&tail(&data, &["--consumer", "crm"])?).len(), 5);
    assert_eq!(customers(&tail(&data, &["--consumer", "crm"])?).len(), 5);
    let (_, said) = run(&data, &["triggers", "ack", "crm", "4"], 0)?;
    assert!(said.contains("consumer crm is at firing 4"), "{said}");
    assert_eq!(customers(&tail(&data, &["--consumer", "crm"])?), ["c4"]);
    let listing = ok(&data, &["triggers", "list"])?;
    assert!(
        listing.contains("consumer crm: acknowledged up to firing 4"),
        "{listing}"
    );
    assert!(
        listing.contains("consumer mailer: acknowledged up to firing 5"),
        "{listing}"
    );
    // Refused, changing nothing: an id never given, a bad name, --ack without a consumer.
    let (_, said) = run(&data, &["triggers", "ack", "crm", "9"], 1)?;
    assert!(
        said.contains("9 was never given to a firing; the newest firing is 5"),
        "{said}"
    );
    let (_, said) = run(&data, &["triggers", "ack", "no spaces", "1"], 2)?;
    assert!(said.contains("consumer name"), "{said}");
    let (_, said) = run(&data, &["triggers", "tail", "--ack"], 2)?;
    assert!(said.contains("--consumer"), "{said}");
    let (_, said) = run(
        &data,
        &["triggers", "tail", "--consumer", "crm", "--since", "1"],
        2,
    )?;
    assert!(said.contains("cannot be used with"), "{said}");
    assert_eq!(customers(&tail(&data, &["--consumer", "crm"])?), ["c4"]);
    Ok(())
}
