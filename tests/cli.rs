//! The real `persona` binary, end to end: generate → import --json → profile --json →
//! segments --json → model --json, with the JSON shapes scripts rely on; re-importing gives
//! duplicates; CSV, JSON Lines and standard input yield identical stores.

mod common;

use common::cli::{assert_keys, json, ok, persona, run, Result};
use common::T0;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// 120 customers × 1500 events: nobody has more than 57 events, so every event id stays in the
/// default de-duplication window of 64 ids per customer (see
/// `reimport_beyond_the_dedupe_window_is_all_duplicates` for busier customers).
const CUSTOMERS: usize = 120;
const EVENTS: usize = 1500;

fn generate(dir: &Path, file: &str) -> Result<std::path::PathBuf> {
    generate_n(dir, file, CUSTOMERS)
}

fn generate_n(dir: &Path, file: &str, customers: usize) -> Result<std::path::PathBuf> {
    let out = dir.join(file);
    let path = out.to_str().ok_or("temp path is not UTF-8")?;
    let (customers, events) = (customers.to_string(), EVENTS.to_string());
    ok(
        dir,
        &[
            "generate",
            "--customers",
            &customers,
            "--events",
            &events,
            "--seed",
            "7",
            "--out",
            path,
        ],
    )?;
    Ok(out)
}

#[test]
fn generate_import_inspect_reimport() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let csv_path = generate(dir.path(), "events.csv")?;
    let truth = dir.path().join("truth.csv");
    ok(
        &data,
        &[
            "generate",
            "--customers",
            "120",
            "--events",
            "1500",
            "--seed",
            "7",
            "--out",
            dir.path().join("again.csv").to_str().ok_or("path")?,
            "--truth",
            truth.to_str().ok_or("path")?,
        ],
    )?;
    // The same seed writes the same file; the truth names every customer.
    let csv = std::fs::read_to_string(&csv_path)?;
    assert_eq!(csv, std::fs::read_to_string(dir.path().join("again.csv"))?);
    assert_eq!(csv.lines().count(), EVENTS + 1);
    assert!(csv.starts_with("event_id,customer_id,timestamp,kind,value,category\n"));
    let truth = std::fs::read_to_string(&truth)?;
    assert_eq!(truth.lines().count(), CUSTOMERS + 1);
    assert!(truth.starts_with("customer_id,persona\nc000000,"));

    let mut per_customer: HashMap<String, u64> = HashMap::new();
    for line in csv.lines().skip(1) {
        let id = line.split(',').nth(1).ok_or("no customer column")?;
        *per_customer.entry(id.to_string()).or_default() += 1;
    }

    assert!(per_customer.values().all(|n| *n <= 64));
    let csv_arg = csv_path.to_str().ok_or("path")?;
    let summary = json(&data, &["import", csv_arg])?;
    assert_keys(&summary, &["applied", "duplicates", "rejected"]);
    assert_eq!(summary["applied"], EVENTS as u64);
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["rejected"], 0);
    assert_eq!(summary["failed"], 0);

    // profile --json
    let (busiest, n) = per_customer
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse((*id).clone())))
        .ok_or("no events")?;
    assert!(
        *n > 16,
        "the busiest customer has more events than history keeps"
    );
    let p = json(&data, &["profile", busiest])?;
    assert_keys(
        &p,
        &[
            "customer_id",
            "version",
            "event_count",
            "segment",
            "propensity",
            "attributes",
            "features",
            "raw_features",
        ],
    );
    assert_eq!(p["customer_id"], busiest.as_str());
    assert_eq!(p["event_count"], *n);
    assert_eq!(p["version"], *n);
    assert!(
        p["segment"].is_u64(),
        "segments are seeded: {}",
        p["segment"]
    );
    let propensity = p["propensity"].as_f64().ok_or("propensity is a number")?;
    assert!(propensity > 0.0 && propensity < 1.0);
    assert_eq!(p["attributes"], serde_json::json!({}));
    let features = p["features"].as_object().ok_or("features is an object")?;
    assert_eq!(features.len(), 61);
    assert!(features["purchases"].is_f64() && features["recency_days"].is_f64());
    // Raw units next to the model's values: the same names but the attribute slots, days and
    // counts instead of their logarithms.
    let raw = p["raw_features"]
        .as_object()
        .ok_or("raw_features is an object")?;
    assert_eq!(raw.len(), 61 - 12);
    for name in ["recency_days", "purchases", "spend"] {
        let (r, f) = (raw[name].as_f64(), features[name].as_f64());
        let (r, f) = (r.ok_or("raw")?, f.ok_or("model")?);
        assert!((r.ln_1p() - f).abs() < 1e-9, "{name}: raw {r}, model {f}");
    }

    // profile --version: a retained version, and a pruned one (exit 1 with the range).
    let older = (n - 1).to_string();
    let past = json(&data, &["profile", busiest, "--version", &older])?;
    assert_eq!(past["version"], n - 1);
    assert_eq!(past["event_count"], n - 1);
    let pruned = persona(&data, &["profile", busiest, "--version", "1"])?;
    assert_eq!(pruned.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&pruned.stderr).trim(),
        format!(
            "persona: invalid argument version: 1 of \"{busiest}\" was pruned; versions {}..={n} \
             are kept",
            n - 15
        )
    );

    // segments --json
    let segments = json(&data, &["segments"])?;
    let segments = segments.as_array().ok_or("segments is a list")?;
    assert_eq!(segments.len(), 8);
    for (i, s) in segments.iter().enumerate() {
        assert_keys(
            s,
            &[
                "id",
                "size",
                "evaluated",
                "label",
                "recency_days",
                "buyers",
                "spend",
                "mean_spend",
                "mean_propensity",
                "rule_action",
                "best_action",
                "centroid",
            ],
        );
        assert_eq!(s["id"], i as u64);
        assert_eq!(
            s["evaluated"], s["size"],
            "a small store is evaluated whole"
        );
    }
    // export segments gives the same statistics, from the same computation.
    let exported = ok(&data, &["export", "segments", "--format", "jsonl"])?;
    let exported: Vec<Value> = exported
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?;
    assert_eq!(&exported, segments);

    // model --json
    let model = json(&data, &["model"])?;
    assert_keys(
        &model,
        &["version", "examples", "rolling_auc", "log_loss", "segments"],
    );
    assert!(model["version"].as_u64().is_some_and(|v| v >= 1));
    assert!(model["examples"].as_u64().is_some_and(|v| v > 0));
    assert!(model["log_loss"].as_f64().is_some_and(|v| v > 0.0));
    let sizes: Vec<u64> = model["segments"]
        .as_array()
        .ok_or("segments is a list")?
        .iter()
        .map(|v| v.as_u64().ok_or("size is a count"))
        .collect::<std::result::Result<_, _>>()?;
    assert_eq!(sizes.len(), 8);
    let listed: Vec<u64> = segments
        .iter()
        .map(|s| s["size"].as_u64().unwrap_or(u64::MAX))
        .collect();
    assert_eq!(sizes, listed);
    // Sizes count the membership index: customers assigned a segment at a write after the
    // segments were seeded (customers last written before seeding have none yet).
    {
        let db = persona::Db::open(&data)?;
        let mut assigned = vec![0u64; 8];
        for id in per_customer.keys() {
            let p = db
                .profile(id)?
                .ok_or("every customer with events has a profile")?;
            if let Some(s) = p.assigned_segment {
                assigned[usize::from(s)] += 1;
            }
        }
        assert_eq!(assigned, sizes);
        for (s, n) in sizes.iter().enumerate() {
            assert_eq!(db.segment_members(s as u16, None, 1000)?.len() as u64, *n);
        }
        assert!(sizes.iter().sum::<u64>() > per_customer.len() as u64 / 2);
    }

    // Human-readable views work too.
    assert!(ok(&data, &["model"])?.starts_with("model version"));
    assert!(ok(&data, &["profile", busiest])?.starts_with(&format!("customer   {busiest}")));

    // Re-importing the same file: every event is a duplicate and nothing changes.
    let again = json(&data, &["import", csv_arg])?;
    assert_eq!(again["applied"], 0);
    assert_eq!(again["duplicates"], EVENTS as u64);
    assert_eq!(again["rejected"], 0);
    assert_eq!(json(&data, &["model"])?, model);
    assert_eq!(json(&data, &["profile", busiest])?, p);
    Ok(())
}

#[test]
fn csv_jsonl_and_stdin_imports_give_identical_stores() -> Result {
    let dir = tempfile::tempdir()?;
    let csv = generate(dir.path(), "events.csv")?;
    let jsonl = generate(dir.path(), "events.jsonl")?;
    assert!(std::fs::read_to_string(&jsonl)?.starts_with("{\"event_id\":\"e0\""));

    let from_csv = dir.path().join("a");
    let from_jsonl = dir.path().join("b");
    let from_stdin = dir.path().join("c");
    for data in [&from_csv, &from_jsonl, &from_stdin] {
        common::with_shared_key(data)?;
    }
    json(&from_csv, &["import", csv.to_str().ok_or("path")?])?;
    json(&from_jsonl, &["import", jsonl.to_str().ok_or("path")?])?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(&from_stdin)
        .args(["import", "-", "--format", "csv", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("stdin is piped")?;
        stdin.write_all(&std::fs::read(&csv)?)?;
    }
    let out = child.wait_with_output()?;
    assert_eq!(out.status.code(), Some(0));
    let summary: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(summary["applied"], EVENTS as u64);

    for args in [
        &["model"][..],
        &["segments"],
        &["profile", "c000000"],
        &["profile", "c000033"],
    ] {
        let a = json(&from_csv, args)?;
        assert_eq!(json(&from_jsonl, args)?, a, "{args:?}");
        assert_eq!(json(&from_stdin, args)?, a, "{args:?}");
    }
    Ok(())
}

// postmortem: dedupe remembered only the last 64 ids per customer, so re-importing 60 customers
// x 1500 events (seed 7; two customers have more than 64 events) applied 166 events a second
// time. Now an event older than the ids that left the window is refused as a possible replay.
#[test]
fn reimport_beyond_the_dedupe_window_applies_nothing() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let csv = generate_n(dir.path(), "events.csv", 60)?;
    let csv = csv.to_str().ok_or("path")?;
    let first = json(&data, &["import", csv])?;
    assert_eq!(first["applied"], EVENTS as u64);
    let model = json(&data, &["model"])?;
    // Re-importing the same file must apply nothing, however many events a customer has:
    // replays inside a customer's window are duplicates, older ones are refused.
    let again = json(&data, &["import", csv])?;
    let (dups, rejected) = (
        again["duplicates"].as_u64().ok_or("duplicates")?,
        again["rejected"].as_u64().ok_or("rejected")?,
    );
    assert_eq!(again["applied"].as_u64(), Some(0));
    assert_eq!(dups + rejected, EVENTS as u64);
    assert_eq!(json(&data, &["model"])?, model);
    Ok(())
}

/// The README's main job, `persona quickstart`, on a small data set: it generates, imports with
/// every event applied, refits, and prints the segments, the model and three customers; run
/// again it shows the existing store instead of importing twice; the store checks clean.
#[test]
fn quickstart_builds_a_store_and_shows_it_again_on_a_second_run() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let args = ["quickstart", "--customers", "300", "--events", "5000"];
    let first = ok(&data, &args)?;
    assert!(
        first.contains("imported 5000 events (0 duplicates, 0 rejected)"),
        "{first}"
    );
    for section in [
        "== segments",
        "== model",
        "== three example customers",
        "segments           8 (fitted ",
        "5000 events)",
    ] {
        assert!(first.contains(section), "{section} missing:\n{first}");
    }
    assert_eq!(first.matches("(planted persona: ").count(), 3, "{first}");
    let second = ok(&data, &args)?;
    assert!(
        second.contains("already holds a store; showing it"),
        "{second}"
    );
    assert!(!second.contains("imported"), "{second}");
    // Every profile the import created is there, and exactly as many as the segments hold.
    let db = persona::Db::open(&data)?;
    let in_segments: usize = db.segments()?.iter().map(|s| s.size as usize).sum();
    assert!(db.profile_count() > 0);
    assert_eq!(db.profile_count(), in_segments);
    db.close()?;
    drop(db);
    let report = common::check_store(&data)?;
    assert!(report.is_clean(), "{:?}", report.problems);
    Ok(())
}

const HEADER: &str = "event_id,customer_id,timestamp,kind,value,category\n";

/// Runs `persona --data DATA ARGS…` and returns (exit code, stdout, stderr).
fn outcome(data: &Path, args: &[&str]) -> Result<(Option<i32>, String, String)> {
    let out = persona(data, args)?;
    Ok((
        out.status.code(),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

// postmortem: identical id-less rows were merged silently and events refused as possible
// replays were counted as rejected but listed nowhere (no line, no rejects file); an import
// that rejected every row exited 0.
#[test]
fn import_lists_duplicates_and_replays_and_fails_when_every_row_is_rejected() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    // A window of one id per customer: an event older than the id that left it is a replay.
    let config = dir.path().join("persona.toml");
    std::fs::write(&config, "dedupe_window = 1\n")?;
    let config = config.to_str().ok_or("path")?;
    let first = dir.path().join("first.csv");
    std::fs::write(
        &first,
        format!(
            "{HEADER}a,c9,{},click,,\n\
             b,c9,{},click,,\n\
             ,c1,{T0},view,3,books\n\
             ,c1,{T0},view,3,books\n\
             x,c2,{T0},teleport,,\n",
            T0 + 1,
            T0 + 2
        ),
    )?;
    let s = json(
        &data,
        &["--config", config, "import", first.to_str().ok_or("path")?],
    )?;
    assert_eq!(
        (s["applied"].as_u64(), s["rejected"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(s["duplicates"], 1);
    let dup = "line 5: duplicate: an identical row of customer \"c1\" was already applied (a row \
               without an event_id is identified by its content)";
    assert_eq!(s["first_duplicates"], serde_json::json!([dup]));
    assert_eq!(
        std::fs::read_to_string(data.join("duplicates.txt"))?,
        format!("{dup}\n")
    );
    // Every row of this file is refused as a possible replay: each is listed with its line,
    // and the import exits 1.
    let replay = dir.path().join("replay.csv");
    std::fs::write(&replay, format!("{HEADER}a,c9,{},click,,\n", T0 + 1))?;
    let (code, stdout, stderr) = outcome(
        &data,
        &[
            "--config",
            config,
            "import",
            "--json",
            replay.to_str().ok_or("path")?,
        ],
    )?;
    assert_eq!(code, Some(1), "{stderr}");
    let s: Value = serde_json::from_str(&stdout)?;
    assert_eq!(
        (s["applied"].as_u64(), s["rejected"].as_u64()),
        (Some(0), Some(1))
    );
    let listed = s["first_rejects"][0]
        .as_str()
        .ok_or("the replay is listed")?;
    assert!(
        listed.starts_with(
            "line 2: customer \"c9\": invalid argument event: \"a\" of customer \"c9\""
        ) && listed.contains("de-duplication window"),
        "{listed}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("rejects.txt"))?,
        format!("{listed}\n")
    );
    assert_eq!(
        stderr.trim(),
        format!(
            "persona: nothing was imported: every one of the 1 rows was rejected (listed in {})",
            data.join("rejects.txt").display()
        )
    );
    Ok(())
}

#[test]
fn strict_import_applies_nothing_when_any_row_is_rejected() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let file = dir.path().join("events.csv");
    let good = format!("e1,c1,{T0},click,,\ne2,c2,{T0},view,,\n");
    std::fs::write(&file, format!("{HEADER}{good}e3,c3,{T0},view,-1,\n"))?;
    let path = file.to_str().ok_or("path")?;
    let (code, stdout, stderr) = outcome(&data, &["import", "--strict", "--json", path])?;
    assert_eq!(code, Some(1), "{stderr}");
    let s: Value = serde_json::from_str(&stdout)?;
    assert_eq!(s["validated_only"], true);
    assert_eq!(
        (s["applied"].as_u64(), s["rejected"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(s["first_rejects"][0]
        .as_str()
        .is_some_and(|r| r.starts_with("line 4: field value: -1 for kind view must be >= 0")));
    assert!(
        stderr.contains("--strict: 1 of 3 rows rejected"),
        "{stderr}"
    );
    assert!(!data.join("conf").exists(), "no store was created");
    // A clean file is applied whole, from a file and from standard input.
    std::fs::write(&file, format!("{HEADER}{good}"))?;
    assert_eq!(json(&data, &["import", "--strict", path])?["applied"], 2);
    let mut child = Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(dir.path().join("from-stdin"))
        .args(["import", "-", "--format", "csv", "--strict", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("stdin is piped")?;
        stdin.write_all(format!("{HEADER}{good}").as_bytes())?;
    }
    let out = child.wait_with_output()?;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout)?["applied"], 2);
    Ok(())
}

/// Shared logs are stored gzip-compressed and with more columns than an event has; empty files
/// import as nothing in both formats.
#[test]
fn import_reads_gzip_ignores_unknown_columns_and_takes_empty_files() -> Result {
    use std::io::Write;
    let dir = tempfile::tempdir()?;
    let gzip = |name: &str, text: &str| -> Result<String> {
        let path = dir.path().join(name);
        let mut w = flate2::write::GzEncoder::new(
            std::fs::File::create(&path)?,
            flate2::Compression::default(),
        );
        w.write_all(text.as_bytes())?;
        w.finish()?;
        Ok(path.to_str().ok_or("path")?.to_string())
    };
    let csv = gzip(
        "items.csv.gz",
        &format!(
            "event_id,customer_id,timestamp,kind,value,category,item,quantity\n\
             1-1,c1,{T0},purchase,8.5,,85048,3\n1-2,c1,{T0},purchase,2,,79323P,1\n"
        ),
    )?;
    let jsonl = gzip(
        "items.jsonl.gz",
        &format!(
            "{{\"event_id\":\"1-1\",\"customer_id\":\"c1\",\"timestamp\":{T0},\"kind\":\"purchase\",\"value\":8.5,\"item\":\"85048\",\"quantity\":3}}\n\
             {{\"event_id\":\"1-2\",\"customer_id\":\"c1\",\"timestamp\":{T0},\"kind\":\"purchase\",\"value\":2,\"item\":\"79323P\",\"quantity\":1}}\n"
        ),
    )?;
    // (--strict reads the input twice and still names the ignored column once.)
    for (store, file, option) in [("a", &csv, "--strict"), ("b", &jsonl, "--no-resegment")] {
        let args = ["import", "--json", option, file.as_str()];
        let (code, stdout, stderr) = outcome(&dir.path().join(store), &args)?;
        assert_eq!(code, Some(0), "{file}: {stderr}");
        let s: Value = serde_json::from_str(&stdout)?;
        assert_eq!(
            (s["applied"].as_u64(), s["rejected"].as_u64()),
            (Some(2), Some(0))
        );
        assert_eq!(s["ignored_fields"], serde_json::json!(["quantity"]));
        assert_eq!(stderr.matches("ignoring the").count(), 1, "{stderr}");
        assert!(
            !stderr.contains('\u{1b}'),
            "plain text when not a terminal: {stderr}"
        );
    }
    assert_eq!(
        json(&dir.path().join("a"), &["profile", "c1"])?,
        json(&dir.path().join("b"), &["profile", "c1"])?
    );
    // The items are kept by name (a purchase weighs 3 and is counted).
    let profile = json(&dir.path().join("a"), &["profile", "c1"])?;
    let items: Vec<&str> = profile["top_items"]
        .as_array()
        .ok_or("top_items")?
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(items, ["79323P", "85048"], "{profile}");
    assert_eq!(profile["top_items"][0]["purchases"], 1);
    // `generate` writes gzip for a `.gz` name, and it imports back.
    let generated = generate_n(dir.path(), "generated.jsonl.gz", 20)?;
    let bytes = std::fs::read(&generated)?;
    assert_eq!(bytes.get(..2), Some(&[0x1f, 0x8b][..]), "gzip magic");
    let generated = generated.to_str().ok_or("path")?;
    let s = json(
        &dir.path().join("c"),
        &["import", "--no-resegment", generated],
    )?;
    assert_eq!(s["applied"], EVENTS as u64);
    for name in ["empty.csv", "empty.jsonl"] {
        let file = dir.path().join(name);
        std::fs::write(&file, "")?;
        let s = json(
            &dir.path().join("a"),
            &["import", file.to_str().ok_or("path")?],
        )?;
        assert_eq!(
            (
                s["applied"].as_u64(),
                s["duplicates"].as_u64(),
                s["rejected"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn read_commands_never_create_a_store() -> Result {
    let dir = tempfile::tempdir()?;
    let typo = dir.path().join("typo");
    let expected = format!(
        "persona: no store at {} (it has no sled `conf` file; is the data directory right?)",
        typo.display()
    );
    for args in [
        &["profile", "x"][..],
        &["history", "x"],
        &["segments"],
        &["similar", "x"],
        &["score", "x"],
        &["strategy", "x"],
        &["model"],
        &["export", "profiles"],
        &["export-customer", "x"],
        &["report", "--out", "x.svg"],
        &["check"],
    ] {
        let (code, _, stderr) = outcome(&typo, args)?;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim(), expected, "{args:?}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    Ok(())
}

/// While `persona serve` holds the store, a CLI read fails at once (no wait for the lock) with
/// one sentence that says what to do.
#[test]
fn a_read_while_the_server_holds_the_store_fails_with_one_sentence() -> Result {
    use std::io::BufRead;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let file = dir.path().join("events.csv");
    std::fs::write(&file, format!("{HEADER}e1,c1,{T0},click,,\n"))?;
    json(&data, &["import", file.to_str().ok_or("path")?])?;
    /// Stops the server however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_persona"))
            .arg("--data")
            .arg(&data)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let stderr = server.0.stderr.take().ok_or("stderr is piped")?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    lines
        .find(|l| l.as_ref().is_ok_and(|l| l.contains("serving")))
        .ok_or("the server did not start")??;
    let (code, _, stderr) = outcome(&data, &["profile", "c1"])?;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "persona: the store at {} is open in another process (a running `persona \
             serve`?); query the running server instead: redis-cli -p PORT PROFILE.GET id\n",
            data.display()
        )
    );
    Ok(())
}

// postmortem: errors printed their cause twice (`Is a directory (os error 21): Is a directory
// (os error 21)`), usage errors found after parsing exited 1, and a closed stdout was an error.
#[test]
fn errors_print_once_usage_errors_exit_2_and_a_closed_pipe_is_quiet() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let csv = generate_n(dir.path(), "events.csv", 2000)?;
    let csv = csv.to_str().ok_or("path")?;
    json(&data, &["import", csv])?;
    let (code, _, stderr) = outcome(&data, &["erase", ""])?;
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        "persona: invalid event: field customer_id must not be empty"
    );
    let (code, _, stderr) = outcome(&data, &["import", "--rejects", "/", csv])?;
    assert_eq!(code, Some(0), "no rejects, so no rejects file: {stderr}");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{HEADER}e1,c1,{T0},teleport,,\n"))?;
    let rejects = dir.path().to_str().ok_or("path")?;
    let (code, _, stderr) = outcome(
        &data,
        &["import", "--rejects", rejects, bad.to_str().ok_or("path")?],
    )?;
    assert_eq!(code, Some(1));
    assert_eq!(stderr.matches("Is a directory").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot create rejects file {rejects}")),
        "{stderr}"
    );
    // A fixed setting that differs from the store's is a configuration error: exit 2.
    let config = dir.path().join("persona.toml");
    std::fs::write(&config, "segments = 3\n")?;
    let (code, _, stderr) = outcome(
        &data,
        &["--config", config.to_str().ok_or("path")?, "segments"],
    )?;
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.matches("segments = 8").count(), 1, "{stderr}");
    // `persona export profiles | head -1`: the reader stops early; exit 0, nothing on stderr.
    let mut child = Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(&data)
        .args(["export", "profiles"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        use std::io::BufRead;
        let stdout = child.stdout.take().ok_or("stdout is piped")?;
        let mut first = String::new();
        // The export is larger than a pipe holds: the child is still writing when this closes.
        std::io::BufReader::new(stdout).read_line(&mut first)?;
        assert!(first.starts_with("customer_id,"), "{first}");
    }
    let out = child.wait_with_output()?;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stderr)?, "");
    // The extension of --out chooses the format, as for `generate`.
    let out = dir.path().join("profiles.jsonl");
    run(
        &data,
        &["export", "profiles", "--out", out.to_str().ok_or("path")?],
        0,
    )?;
    let first = std::fs::read_to_string(&out)?;
    let first: Value = serde_json::from_str(first.lines().next().ok_or("rows")?)?;
    assert!(first["customer_id"].is_string());
    Ok(())
}

/// After `compact --compression-level 3` the store is compressed; opening it with the default
/// configuration says nothing. A level the user set that the store cannot honour is one plain
/// sentence naming that level.
#[test]
fn compression_is_warned_about_only_when_the_user_set_a_level_that_differs() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let file = dir.path().join("events.csv");
    std::fs::write(&file, format!("{HEADER}e1,c1,{T0},click,,\n"))?;
    json(&data, &["import", file.to_str().ok_or("path")?])?;
    let config = dir.path().join("persona.toml");
    std::fs::write(&config, "compression_level = 5\n")?;
    let config = config.to_str().ok_or("path")?;
    let (code, _, stderr) = outcome(&data, &["--config", config, "segments"])?;
    assert_eq!(code, Some(0));
    assert!(
        stderr.contains("compression_level = 5 applies to new stores only"),
        "{stderr}"
    );
    let message = stderr.split("persona::storage").nth(1).ok_or("a warning")?;
    assert!(
        !stderr.contains('\u{1b}') && !message.contains("  "),
        "{stderr:?}"
    );
    run(&data, &["compact", "--compression-level", "3"], 0)?;
    let (code, _, stderr) = outcome(&data, &["segments"])?;
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    Ok(())
}

/// `persona model --advance TIME`: the watermark moves to TIME (unix ms or RFC 3339) with no
/// event; an earlier time changes nothing; a time that is not one is a usage error.
#[test]
fn model_advance_moves_the_watermark_without_an_event() -> Result {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let file = dir.path().join("events.csv");
    std::fs::write(&file, format!("{HEADER}e1,c1,{T0},purchase,5,\n"))?;
    json(&data, &["import", file.to_str().ok_or("path")?])?;
    let later = T0 + 3 * 86_400_000;
    let moved = json(&data, &["model", "--advance", &later.to_string()])?;
    assert_eq!(moved["watermark_ms"], later);
    let version = moved["version"].as_u64().ok_or("version")?;
    let same = json(&data, &["model", "--advance", "2026-01-01T00:00:00Z"])?;
    assert_eq!(same["watermark_ms"], later);
    assert_eq!(same["version"], version);
    assert_eq!(json(&data, &["model"])?["watermark_ms"], later);
    let (code, _, stderr) = outcome(&data, &["model", "--advance", "tomorrow"])?;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--advance"), "{stderr}");
    Ok(())
}
