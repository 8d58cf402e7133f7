//! The bad-input matrix: every class of bad input is rejected with its specific message and
//! changes nothing: CSV and JSON Lines rows (through the reader an import uses), events and
//! attributes through the API, RESP command arguments, configuration files, and the command line
//! (bad rows are reported and skipped, bad flags and files exit 2 before a store is created).
//! Good input right after a reject still works.

mod common;

use common::T0;
use persona::testing::event::parse::{EventReader, Format, MAX_LINE_BYTES};
use persona::testing::DbInternals;
use persona::{AttrValue, Config, Db, Durability, Error, Event, EventKind, Result};
use std::path::Path;
use std::process::Command;

const HEADER: &str = "event_id,customer_id,timestamp,kind,value,category\n";
const KINDS: &str =
    "view, click, search, cart_add, purchase, refund, like, comment, share, rating, complaint";

fn open(dir: &Path) -> Result<Db> {
    Config::new(dir).durability(Durability::None).open()
}

/// What a reader can see of the store, to check that a reject changed nothing.
fn fingerprint(db: &Db) -> Result<String> {
    let mut profiles = Vec::new();
    for item in db.store().scan_profiles() {
        let id = item?.0;
        profiles.push(format!("{:?}", db.profile(&id)?));
    }
    Ok(format!("{profiles:?} {:?}", db.model_info()))
}

/// Reads `input` as an import does and ingests the rows that parse. Returns the reject messages.
fn import(db: &Db, input: &[u8], format: Format) -> Result<Vec<String>> {
    let mut rejects = Vec::new();
    let mut events = Vec::new();
    for row in EventReader::new(input, format)? {
        match row {
            Ok(e) => events.push(e),
            Err(e) => rejects.push(e.to_string()),
        }
    }
    if !events.is_empty() {
        for r in db.ingest_batch(events)? {
            r?;
        }
    }
    Ok(rejects)
}

/// Imports one bad row followed by a good one: the bad row yields exactly `expected` (the whole
/// message, or its start when `expected` ends with `…`), and only the good row is stored.
#[track_caller]
fn check_rejected(db: &Db, format: Format, bad_row: &[u8], expected: &str) -> Result<()> {
    let good_id = format!("good-{}", db.profile_count());
    let (mut input, good_row) = match format {
        Format::Csv => (
            HEADER.as_bytes().to_vec(),
            format!(",{good_id},{T0},click,,\n"),
        ),
        Format::Jsonl => (
            Vec::new(),
            format!("{{\"customer_id\":\"{good_id}\",\"timestamp\":{T0},\"kind\":\"click\"}}\n"),
        ),
    };
    input.extend_from_slice(bad_row);
    input.extend_from_slice(good_row.as_bytes());
    let before = db.profile_count();
    let rejects = import(db, &input, format)?;
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    match expected.strip_suffix('…') {
        Some(prefix) => assert!(
            rejects[0].starts_with(prefix),
            "got      {}\nexpected {expected}",
            rejects[0]
        ),
        None => assert_eq!(rejects[0], expected),
    }
    assert_eq!(
        db.profile_count(),
        before + 1,
        "only the good row is stored"
    );
    assert_eq!(db.profile(&good_id)?.expect("stored").event_count, 1);
    Ok(())
}

#[test]
fn bad_csv_rows_are_rejected_with_their_reason() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let long_id = "x".repeat(129);
    let long_category = "y".repeat(65);
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            format!(",c1,{T0},view,NaN,\n").into_bytes(),
            "invalid event: line 2: field value: NaN must be a finite number \
             (NaN and infinity are not allowed)"
                .into(),
        ),
        (
            format!(",c1,{T0},purchase,inf,\n").into_bytes(),
            "invalid event: line 2: field value: inf must be a finite number \
             (NaN and infinity are not allowed)"
                .into(),
        ),
        (
            format!(",c1,{T0},purchase,-3.5,\n").into_bytes(),
            "invalid event: line 2: field value: -3.5 for kind purchase must be >= 0".into(),
        ),
        (
            format!(",c1,{T0},rating,7,\n").into_bytes(),
            "invalid event: line 2: field value: 7 for kind rating must be a whole number of \
             stars from 1 to 5"
                .into(),
        ),
        (
            format!(",c1,{T0},purchase,,\n").into_bytes(),
            "invalid event: line 2: field value is required for kind purchase".into(),
        ),
        (
            format!(",c1,{T0},view,12 seconds,\n").into_bytes(),
            "invalid event: line 2: field value: 12 seconds is not a number".into(),
        ),
        (
            format!(",c1,{T0},teleport,,\n").into_bytes(),
            format!("invalid event: line 2: field kind: teleport must be one of: {KINDS}"),
        ),
        (
            format!(",c1,{T0},Purchase,1,\n").into_bytes(),
            format!("invalid event: line 2: field kind: Purchase must be one of: {KINDS}"),
        ),
        (
            b",c1,soon,view,,\n".to_vec(),
            "invalid event: line 2: field timestamp: soon is neither unix milliseconds nor an \
             RFC 3339 date-time like 2026-01-02T03:04:05Z (…"
                .into(),
        ),
        (
            b",c1,2026-13-01T00:00:00Z,view,,\n".to_vec(),
            "invalid event: line 2: field timestamp: 2026-13-01T00:00:00Z is neither unix \
             milliseconds nor an RFC 3339 date-time…"
                .into(),
        ),
        (
            b",c1,-1,view,,\n".to_vec(),
            "invalid event: line 2: field timestamp: -1 must be unix milliseconds between \
             1970-01-01 and 2200-01-01 (0..=7258118400000)"
                .into(),
        ),
        (
            b",c1,99999999999999999999,view,,\n".to_vec(),
            "invalid event: line 2: field timestamp: 99999999999999999999 is not a valid \
             integer of unix milliseconds"
                .into(),
        ),
        (
            format!(",{long_id},{T0},view,,\n").into_bytes(),
            format!(
                "invalid event: line 2: field customer_id: {}… is 129 bytes long; at most 128 \
                 bytes are allowed",
                "x".repeat(32)
            ),
        ),
        (
            format!(",c1,{T0},view,,{long_category}\n").into_bytes(),
            format!(
                "invalid event: line 2: field category: {}… is 65 bytes long; at most 64 \
                 bytes are allowed",
                "y".repeat(32)
            ),
        ),
        (
            format!("{},c1,{T0},view,,\n", "z".repeat(129)).into_bytes(),
            format!(
                "invalid event: line 2: field event_id: {}… is 129 bytes long; at most 128 \
                 bytes are allowed",
                "z".repeat(32)
            ),
        ),
        (
            format!(",,{T0},view,,\n").into_bytes(),
            "invalid event: line 2: field customer_id is required".into(),
        ),
        (
            ",c1,,view,,\n".into(),
            "invalid event: line 2: field timestamp is required".into(),
        ),
        (
            format!(",c1,{T0},,,\n").into_bytes(),
            "invalid event: line 2: field kind is required".into(),
        ),
        (
            format!(",c1,{T0},view\n").into_bytes(),
            "invalid event: line 2: field line has 4 fields; the header has 6 columns".into(),
        ),
        (
            format!(",c1,{T0},view,,,extra\n").into_bytes(),
            "invalid event: line 2: field line has 7 fields; the header has 6 columns".into(),
        ),
        (
            [b",c\xff1,", T0.to_string().as_bytes(), b",view,,\n"].concat(),
            "invalid event: line 2: field customer_id: c\u{fffd}1 is not valid UTF-8 \
             (bad byte at offset 1)"
                .into(),
        ),
        (
            [b",c1,", T0.to_string().as_bytes(), b",view,,bo\xc3oks\n"].concat(),
            "invalid event: line 2: field category: bo\u{fffd}oks is not valid UTF-8 \
             (bad byte at offset 2)"
                .into(),
        ),
        (
            format!(",\"c\u{7}1\",{T0},view,,\n").into_bytes(),
            "invalid event: line 2: field customer_id: c\\u{7}1 contains control character \
             U+0007; control characters are not allowed"
                .into(),
        ),
    ];
    for (row, expected) in cases {
        let before = fingerprint(&db)?;
        let rejects = import(&db, &[HEADER.as_bytes(), &row].concat(), Format::Csv)?;
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        match expected.strip_suffix('…') {
            Some(prefix) => assert!(rejects[0].starts_with(prefix), "{}", rejects[0]),
            None => assert_eq!(rejects[0], expected),
        }
        assert_eq!(
            fingerprint(&db)?,
            before,
            "a rejected row changed the store"
        );
        check_rejected(&db, Format::Csv, &row, &expected)?;
    }
    Ok(())
}

#[test]
fn bad_csv_headers_are_rejected_before_any_row() -> Result<()> {
    let header_error = |text: &str| match EventReader::new(text.as_bytes(), Format::Csv) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("header {text:?} was accepted"),
    };
    assert_eq!(
        header_error("customer_id,kind\nc1,view\n"),
        "invalid argument header: missing required column \"timestamp\"; the header must \
         name customer_id, timestamp and kind (and optionally event_id, value, category, item)"
    );
    assert_eq!(
        header_error("customer_id,timestamp,kind,kind\n"),
        "invalid argument header: column \"kind\" appears twice"
    );
    // Unknown columns are ignored (an export's extra data); a misspelt required one is missing.
    assert_eq!(
        header_error("customer_id,timest\u{0}amp,kind\n"),
        "invalid argument header: missing required column \"timestamp\"; the header must \
         name customer_id, timestamp and kind (and optionally event_id, value, category, item)"
    );
    let bad_utf8 = EventReader::new(&b"customer_id,t\xffs,kind\n"[..], Format::Csv);
    assert_eq!(
        bad_utf8.err().map(|e| e.to_string()).as_deref(),
        Some("invalid argument header: column names must be UTF-8")
    );
    Ok(())
}

#[test]
fn bad_jsonl_rows_are_rejected_with_their_reason() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let row = |fields: &str| format!("{{{fields}}}\n").into_bytes();
    let ok = format!("\"customer_id\":\"c1\",\"timestamp\":{T0}");
    let mut over_long = br#"{"customer_id":""#.to_vec();
    over_long.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES));
    over_long.extend_from_slice(format!("\",\"timestamp\":{T0},\"kind\":\"view\"}}\n").as_bytes());
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            b"hello\n".to_vec(),
            "invalid event: line 1: field line is not valid JSON: expected value at line 1 \
             column 1"
                .into(),
        ),
        (
            format!("{{{ok},\"kind\":\"view\"\n").into_bytes(),
            "invalid event: line 1: field line is not valid JSON: EOF while parsing an object \
             at line 2 column 0"
                .into(),
        ),
        (
            b"[1, 2]\n".to_vec(),
            "invalid event: line 1: field line must be a JSON object with fields customer_id, \
             timestamp, kind"
                .into(),
        ),
        (
            row(&format!("{ok},\"kind\":\"view\",\"value\":\"NaN\"")),
            "invalid event: line 1: field value: NaN must be a finite number \
             (NaN and infinity are not allowed)"
                .into(),
        ),
        (
            row(&format!("{ok},\"kind\":\"refund\",\"value\":\"-inf\"")),
            "invalid event: line 1: field value: -inf must be a finite number \
             (NaN and infinity are not allowed)"
                .into(),
        ),
        (
            row(&format!("{ok},\"kind\":\"view\",\"value\":1e999")),
            "invalid event: line 1: field line is not valid JSON: number out of range at line \
             1 column …"
                .into(),
        ),
        (
            row(&format!("{ok},\"kind\":\"view\",\"value\":true")),
            "invalid event: line 1: field value: true must be a number".into(),
        ),
        (
            row(&format!("{ok},\"kind\":\"teleport\"")),
            format!("invalid event: line 1: field kind: teleport must be one of: {KINDS}"),
        ),
        (
            row(&format!("{ok},\"kind\":3")),
            "invalid event: line 1: field kind: 3 must be a string".into(),
        ),
        (
            row("\"customer_id\":\"c1\",\"timestamp\":1.5,\"kind\":\"view\""),
            "invalid event: line 1: field timestamp: 1.5 must be an integer of unix \
             milliseconds"
                .into(),
        ),
        (
            row("\"customer_id\":\"c1\",\"timestamp\":true,\"kind\":\"view\""),
            "invalid event: line 1: field timestamp: true must be unix milliseconds or an \
             RFC 3339 string"
                .into(),
        ),
        (
            row("\"customer_id\":\"c1\",\"timestamp\":\"yesterday\",\"kind\":\"view\""),
            "invalid event: line 1: field timestamp: yesterday is neither unix milliseconds \
             nor an RFC 3339 date-time like 2026-01-02T03:04:05Z (…"
                .into(),
        ),
        (
            row("\"customer_id\":\"c1\",\"timestamp\":-5,\"kind\":\"view\""),
            "invalid event: line 1: field timestamp: -5 must be unix milliseconds between \
             1970-01-01 and 2200-01-01 (0..=7258118400000)"
                .into(),
        ),
        (
            row("\"customer_id\":\"c1\",\"kind\":\"view\""),
            "invalid event: line 1: field timestamp is required".into(),
        ),
        (
            row(&format!("\"timestamp\":{T0},\"kind\":\"view\"")),
            "invalid event: line 1: field customer_id is required".into(),
        ),
        (
            row(&format!(
                "\"customer_id\":7,\"timestamp\":{T0},\"kind\":\"view\""
            )),
            "invalid event: line 1: field customer_id: 7 must be a string".into(),
        ),
        (
            row(&format!(
                "{ok},\"kind\":\"view\",\"category\":\"{}\"",
                "y".repeat(65)
            )),
            format!(
                "invalid event: line 1: field category: {}… is 65 bytes long; at most 64 \
                 bytes are allowed",
                "y".repeat(32)
            ),
        ),
        (
            row(&format!("{ok},\"kind\":\"view\",\"event_id\":\"a\\nb\"")),
            "invalid event: line 1: field event_id: a\\nb contains control character U+000A; \
             control characters are not allowed"
                .into(),
        ),
        (
            [
                b"{\"customer_id\":\"c\xe9\",\"timestamp\":",
                T0.to_string().as_bytes(),
                b"}\n",
            ]
            .concat(),
            "invalid event: line 1: field line: {\"customer_id\":\"c\u{fffd}\",\"timestamp\":\
             1767225600000}\n is not valid UTF-8 (bad byte at offset 17)"
                .into(),
        ),
        (
            over_long,
            format!("invalid event: line 1: field line is longer than {MAX_LINE_BYTES} bytes"),
        ),
    ];
    for (row, expected) in cases {
        let before = fingerprint(&db)?;
        let rejects = import(&db, &row, Format::Jsonl)?;
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        match expected.strip_suffix('…') {
            Some(prefix) => assert!(rejects[0].starts_with(prefix), "{}", rejects[0]),
            None => assert_eq!(rejects[0], expected),
        }
        assert_eq!(
            fingerprint(&db)?,
            before,
            "a rejected row changed the store"
        );
        check_rejected(&db, Format::Jsonl, &row, &expected)?;
    }
    Ok(())
}

#[test]
fn invalid_events_through_the_api_are_rejected_and_change_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    db.ingest(Event::new("c1", T0, EventKind::Click))?;
    let cases = [
        (
            Event::new("c1", T0, EventKind::View).with_value(f64::NAN),
            "invalid event: field value: NaN must be a finite number (NaN and infinity are not \
             allowed)",
        ),
        (
            Event::new("c1", T0, EventKind::Purchase).with_value(f64::INFINITY),
            "invalid event: field value: inf must be a finite number (NaN and infinity are not \
             allowed)",
        ),
        (
            Event::new("c1", T0, EventKind::Purchase).with_value(-3.5),
            "invalid event: field value: -3.5 for kind purchase must be >= 0",
        ),
        (
            Event::new("c1", T0, EventKind::Click).with_value(2e12),
            "invalid event: field value: 2000000000000 for kind click must be <= 1e12",
        ),
        (
            Event::new("c1", T0, EventKind::Rating).with_value(4.5),
            "invalid event: field value: 4.5 for kind rating must be a whole number of stars \
             from 1 to 5",
        ),
        (
            Event::new("c1", T0, EventKind::Refund),
            "invalid event: field value is required for kind refund",
        ),
        (
            Event::new("", T0, EventKind::Click),
            "invalid event: field customer_id must not be empty",
        ),
        (
            Event::new("c\u{1b}1", T0, EventKind::Click),
            "invalid event: field customer_id: c\\u{1b}1 contains control character U+001B; \
             control characters are not allowed",
        ),
        (
            Event::new("c1", -1, EventKind::Click),
            "invalid event: field timestamp: -1 must be unix milliseconds between \
             1970-01-01 and 2200-01-01 (0..=7258118400000)",
        ),
        (
            Event::new("c1", T0, EventKind::Click).with_id(""),
            "invalid event: field event_id must not be empty",
        ),
        (
            Event::new("c1", T0, EventKind::Click).with_category(""),
            "invalid event: field category must not be empty",
        ),
    ];
    for (event, expected) in cases {
        let before = fingerprint(&db)?;
        let err = db.ingest(event.clone()).unwrap_err();
        assert!(matches!(err, Error::InvalidEvent(_)), "{err:?}");
        assert!(err.is_bad_input());
        assert_eq!(err.to_string(), expected);
        // The same through the batch and asynchronous paths.
        let results = db.ingest_batch(vec![event.clone()])?;
        assert_eq!(results[0].as_ref().unwrap_err().to_string(), expected);
        assert_eq!(db.ingest_async(event).unwrap_err().to_string(), expected);
        assert_eq!(fingerprint(&db)?, before, "{expected}");
    }
    // A rejected event in a batch does not stop the others.
    let results = db.ingest_batch(vec![
        Event::new("c2", T0, EventKind::Click),
        Event::new("c3", T0, EventKind::Purchase),
        Event::new("c4", T0, EventKind::Click),
    ])?;
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(results[1].as_ref().unwrap_err().is_bad_input());
    assert!(db.profile("c3")?.is_none());
    assert_eq!(db.profile("c4")?.expect("stored").event_count, 1);
    // Reads validate the id too.
    assert_eq!(
        db.profile("").unwrap_err().to_string(),
        "invalid event: field customer_id must not be empty"
    );
    Ok(())
}

#[test]
fn invalid_attributes_are_rejected_and_change_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    db.set_attributes("c1", vec![("age".into(), AttrValue::Number(30.0))])?;
    let attr = |name: &str, v: AttrValue| vec![(name.to_string(), v)];
    let many: Vec<(String, AttrValue)> = (0..65)
        .map(|i| (format!("a{i}"), AttrValue::Number(1.0)))
        .collect();
    type Attributes = Vec<(String, AttrValue)>;
    let cases: Vec<(&str, Attributes, String)> = vec![
        (
            "c1",
            vec![],
            "invalid argument attributes: at least one name and value is required".into(),
        ),
        (
            "c1",
            attr("", 1.0.into()),
            "invalid argument attribute name: \"\" must not be empty".into(),
        ),
        (
            "c1",
            attr(&"n".repeat(65), 1.0.into()),
            format!(
                "invalid argument attribute name: \"{}…\" is 65 bytes long; at most 64 bytes \
                 are allowed",
                "n".repeat(32)
            ),
        ),
        (
            "c1",
            attr("a\tb", 1.0.into()),
            "invalid argument attribute name: \"a\\tb\" contains control character U+0009; \
             control characters are not allowed"
                .into(),
        ),
        (
            "c1",
            attr("age", AttrValue::Number(f64::NAN)),
            "invalid argument attribute age: value NaN must be a finite number".into(),
        ),
        (
            "c1",
            attr("age", AttrValue::Number(f64::NEG_INFINITY)),
            "invalid argument attribute age: value -inf must be a finite number".into(),
        ),
        (
            "c1",
            attr("bio", AttrValue::Text("b".repeat(257))),
            "invalid argument attribute bio: value is 257 bytes long; at most 256 bytes are \
             allowed"
                .into(),
        ),
        (
            "c1",
            attr("bio", AttrValue::Text("line\nbreak".into())),
            "invalid argument attribute bio: value contains control character U+000A; control \
             characters are not allowed"
                .into(),
        ),
        (
            "",
            attr("age", 1.0.into()),
            "invalid event: field customer_id must not be empty".into(),
        ),
        (
            "c2",
            many.clone(),
            "invalid argument attributes: a customer may have at most 64 attributes".into(),
        ),
        (
            // c1 has one attribute already; 64 new names make 65.
            "c1",
            many[1..].to_vec(),
            "invalid argument attributes: a customer may have at most 64 attributes".into(),
        ),
        (
            // One bad value rejects the whole call, including the good ones before it.
            "c1",
            vec![
                ("plan".into(), "gold".into()),
                ("score".into(), AttrValue::Number(f64::NAN)),
            ],
            "invalid argument attribute score: value NaN must be a finite number".into(),
        ),
    ];
    for (customer, attrs, expected) in cases {
        let before = fingerprint(&db)?;
        let err = db.set_attributes(customer, attrs).unwrap_err();
        assert!(err.is_bad_input(), "{err:?}");
        assert_eq!(err.to_string(), expected);
        assert_eq!(fingerprint(&db)?, before, "{expected}");
    }
    assert!(db.profile("c2")?.is_none());
    // Good input right after works, up to exactly 64 attributes.
    assert_eq!(db.set_attributes("c1", many[1..64].to_vec())?, 2);
    assert_eq!(db.profile("c1")?.expect("exists").attributes.len(), 64);
    Ok(())
}

fn persona_cmd(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_persona"));
    cmd.arg("--data").arg(data);
    cmd
}

#[test]
fn cli_import_reports_bad_rows_and_exits_zero() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let file = dir.path().join("events.csv");
    std::fs::write(
        &file,
        format!(
            "{HEADER}e1,c1,{T0},purchase,10,books\n\
             e2,c1,{T0},teleport,,\n\
             e3,c2,{T0},view,NaN,\n\
             e4,c2,{T0},view,5,music\n\
             e5,c3,later,click,,\n"
        ),
    )?;
    let rejects = dir.path().join("rejects.txt");
    let out = persona_cmd(&data)
        .args(["import", "--json", "--rejects"])
        .arg(&rejects)
        .arg(&file)
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(summary["applied"], 2);
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["rejected"], 3);
    let first = summary["first_rejects"]
        .as_array()
        .expect("first_rejects is a list");
    assert_eq!(first.len(), 3);
    assert!(first[0]
        .as_str()
        .is_some_and(|s| s.starts_with("line 3: field kind: teleport must be one of: view")));
    assert_eq!(
        first[1],
        "line 4: field value: NaN must be a finite number (NaN and infinity are not allowed)"
    );
    assert!(first[2]
        .as_str()
        .is_some_and(|s| s.starts_with("line 6: field timestamp: later is neither")));
    let all = std::fs::read_to_string(&rejects)?;
    assert_eq!(all.lines().count(), 3);
    assert!(all.lines().zip(first).all(|(l, f)| f == l));

    // The human summary says the same.
    let out = persona_cmd(&data).arg("import").arg(&file).output()?;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("imported 0 events (2 duplicates, 3 rejected)"),
        "{text}"
    );
    assert!(text.contains("line 4: field value: NaN must be a finite number"));

    // Only the good rows were stored.
    let db = open(&data)?;
    assert_eq!(db.profile_count(), 2);
    assert!(db.profile("c3")?.is_none());
    assert_eq!(db.profile("c1")?.expect("stored").event_count, 1);
    assert_eq!(db.profile("c2")?.expect("stored").event_count, 1);
    Ok(())
}

#[test]
fn cli_bad_flags_exit_2_and_failures_exit_1() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let run = |args: &[&str]| -> Result<(Option<i32>, String)> {
        let out = persona_cmd(&data).args(args).output()?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    for args in [
        &["import", "--frobnicate", "x.csv"][..],
        &["import", "--format", "xml", "x.csv"],
        &["import"],
        &["generate", "--events", "many", "--out", "x.csv"],
        &["teleport"],
        &[],
    ] {
        let (code, stderr) = run(args)?;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(!stderr.is_empty(), "{args:?} printed no reason");
    }
    // A bad configuration file is bad usage too.
    let config = dir.path().join("persona.toml");
    std::fs::write(&config, "segmnets = 3\n")?;
    let out = persona_cmd(&data)
        .arg("--config")
        .arg(&config)
        .arg("model")
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `segmnets`"));

    // A command that runs and fails exits 1 with its reason.
    let (code, stderr) = run(&["import", "events.txt"])?;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("cannot tell the format of events.txt from its extension"),
        "{stderr}"
    );
    // (An empty import creates the store; read commands never do.)
    assert_eq!(run(&["import", "-", "--format", "jsonl"])?.0, Some(0));
    let (code, stderr) = run(&["profile", "nobody"])?;
    assert_eq!(code, Some(1));
    assert_eq!(stderr.trim(), "persona: no profile for customer \"nobody\"");
    Ok(())
}

/// Configuration files: each bad file is refused with a message naming the key and what is
/// allowed, through the library and through the CLI (exit 2), and no store is created; the good
/// file right after opens.
#[test]
fn bad_configuration_files_name_the_key_and_create_nothing() -> Result<()> {
    let cases: &[(&str, &str)] = &[
        ("segmnets = 3", "unknown field `segmnets`"),
        (
            "segments = 0",
            "segments = 0 is out of range; allowed 1..=256",
        ),
        (
            "segments = \"eight\"",
            "invalid type: string \"eight\", expected usize",
        ),
        (
            "half_life_days = -1",
            "half_life_days = -1 is out of range; allowed 0.001..=36500",
        ),
        ("horizon_days = nan", "horizon_days = NaN is out of range"),
        ("durability = \"sometimes\"", "sometimes"),
        ("target_kind = \"teleport\"", "target_kind: "),
        ("drift_reaction = \"panic\"", "panic"),
        (
            "actions = []",
            "actions has 0 entries; between 1 and 64 are allowed",
        ),
        (
            "actions = [\"a b\"]",
            "action \"a b\" must be 1 to 64 characters",
        ),
        ("actions = [\"x\", \"x\"]", "action \"x\" is listed twice"),
        (
            "max_batch = 0",
            "max_batch = 0 is out of range; allowed 1..=65536",
        ),
        (
            "dedupe_window = 100000",
            "dedupe_window = 100000 is out of range; allowed 1..=4096",
        ),
        (
            "category_buckets = 65",
            "category_buckets = 65 is out of range; allowed 1..=64",
        ),
        ("learning_rate = 0", "learning_rate = 0 is out of range"),
        (
            "auc_window = 5",
            "auc_window = 5 is out of range; allowed 10..=1000000",
        ),
        ("segments = 4\nsegments = 5", "duplicate key"),
        (
            "[server]\nmax_clients = 0",
            "[server] max_clients: must be at least 1, got 0",
        ),
        ("[server]\nport = 1", "unknown field `port`"),
    ];
    let dir = tempfile::tempdir()?;
    for (text, expected) in cases {
        let data = dir.path().join("never");
        let lib = Config::from_toml_str(&data, text)
            .and_then(|_| persona::ServerConfig::from_toml_str(text).map(|_| ()));
        let err = lib.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(expected), "{text:?}: library said {err:?}");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text)?;
        // `serve` reads the [server] table too; it never gets to listen on a bad file.
        let out = persona_cmd(&data)
            .arg("--config")
            .arg(&file)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(stderr.contains(expected), "{text:?}: CLI said {stderr:?}");
        assert!(!data.exists(), "{text:?} created the store");
    }
    // Good input right after: the store opens (an import of nothing creates it).
    let file = dir.path().join("good.toml");
    std::fs::write(&file, "segments = 3\n[server]\nmax_clients = 2\n")?;
    let out = persona_cmd(&dir.path().join("good"))
        .arg("--config")
        .arg(&file)
        .args(["import", "-", "--format", "jsonl"])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    Ok(())
}

/// CLI flags: each bad command line is refused with exit 2 and a message naming the flag or
/// value, before any store is created.
#[test]
fn bad_cli_flags_name_what_is_wrong() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let cases: &[(&[&str], &str)] = &[
        (
            &["import", "--frobnicate", "x.csv"],
            "unexpected argument '--frobnicate'",
        ),
        (
            &["import", "--format", "xml", "x.csv"],
            "invalid value 'xml' for '--format",
        ),
        (&["import"], "required arguments were not provided"),
        (
            &["generate", "--events", "many", "--out", "x.csv"],
            "invalid value 'many' for '--events",
        ),
        (&["teleport"], "unrecognized subcommand 'teleport'"),
        (&["similar", "c1", "-k", "-3"], "-3"),
        (
            &["serve", "--max-clients", "0"],
            "invalid value '0' for '--max-clients",
        ),
        (
            &["serve", "--timeout", "soon"],
            "invalid value 'soon' for '--timeout",
        ),
        (&["feedback", "c1", "vip_offer"], "--converted"),
        // Counts of 0 are refused as the server refuses `COUNT 0`.
        (
            &["history", "c1", "-n", "0"],
            "invalid value '0' for '-n <N>'",
        ),
        (
            &["similar", "c1", "-k", "0"],
            "invalid value '0' for '--k <K>'",
        ),
        (
            &["resegment", "--batch", "0"],
            "invalid value '0' for '--batch",
        ),
        (
            &["profile", "c1", "--at", "yesterday"],
            "invalid value 'yesterday' for '--at",
        ),
        (&["quickstart", "--customers", "0"], "must be at least 1"),
        (
            &["generate", "--events", "0", "--out", "x.csv"],
            "must be at least 1",
        ),
    ];
    for (args, expected) in cases {
        let out = persona_cmd(&data).args(*args).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!data.exists(), "{args:?} created the store");
    }
    // Good input right after works (an import of nothing creates the store).
    let out = persona_cmd(&data)
        .args(["import", "-", "--format", "jsonl"])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    Ok(())
}

/// RESP arguments: each bad command gets its specific error reply, the store is unchanged (the
/// profile and the model read the same), and the connection keeps working; a good command right
/// after is applied.
#[test]
fn bad_resp_arguments_are_answered_and_change_nothing() -> common::resp::TestResult {
    let server = common::resp::TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    let ts = T0.to_string();
    raw.call(&["EVENT.ADD", "c1", "purchase", "10", "TS", &ts])?;
    let state = |raw: &mut common::resp::Raw| -> Result<String, Box<dyn std::error::Error>> {
        Ok(format!(
            "{}{}{}",
            raw.call(&["PROFILE.GET", "c1"])?,
            raw.call(&["MODEL.INFO"])?,
            raw.call(&["DBSIZE"])?
        ))
    };
    let before = state(&mut raw)?;
    let usage_add =
        "usage: EVENT.ADD customer kind [value] [CATEGORY category] [ITEM item] [TS time] [ID event_id]";
    let cases: &[(&[&str], &str)] = &[
        (&["EVENT.ADD", "c1", "teleport"], "-ERR invalid event: field kind: teleport must be one of: view, click"),
        (&["EVENT.ADD", "c1", "purchase", "-3"], "-ERR invalid event: field value: -3 for kind purchase must be >= 0"),
        (&["EVENT.ADD", "c1", "purchase", "abc"], "-ERR invalid event: field value: abc must be a number (or an option: CATEGORY, ITEM, TS or ID)"),
        (&["EVENT.ADD", "c1", "purchase", "10", "TS", "yesterday"], "-ERR invalid event: field timestamp: yesterday is neither unix milliseconds nor an RFC 3339 date-time"),
        (&["EVENT.ADD", "c1", "purchase", "10", "COLOR", "red"], "-ERR syntax error: unknown option 'COLOR'; expected CATEGORY, ITEM, TS or ID"),
        (&["EVENT.ADD", "", "view"], "-ERR invalid event: field customer_id must not be empty"),
        (&["EVENT.ADD", "c1"], "-ERR wrong number of arguments for 'event.add' command"),
        (&["EVENT.ADD", "c1", "rating", "9"], "-ERR invalid event: field value: 9 for kind rating must be a whole number of stars from 1 to 5"),
        (&["EVENT.ADD", "c1", "view", "1", "CATEGORY"], "-ERR syntax error: CATEGORY needs a value"),
        (&["PROFILE.GET", "c1", "VERSION", "0"], "-ERR invalid VERSION '0': must be a whole number >= 1"),
        (&["PROFILE.GET", "c1", "AT", "notatime"], "-ERR invalid AT 'notatime': must be unix milliseconds or an RFC 3339 time"),
        (&["PROFILE.SET", "c1", "age"], "-ERR wrong number of arguments for 'profile.set' command"),
        (&["PROFILE.SET", "c1", "", "3"], "-ERR invalid argument attribute name: \"\" must not be empty"),
        (&["PROFILE.HISTORY", "c1", "COUNT", "-1"], "-ERR invalid COUNT '-1': must be a whole number from 1 to 10000"),
        (&["SEGMENT.MEMBERS", "999"], "-ERR invalid segment '999': this store has segments 0 to 7"),
        (&["SEGMENT.NEAREST", "VECTOR", "1", "2"], "-ERR invalid argument vector: vector has 2 dimensions; the model expects 61"),
        (&["SIMILAR", "c1", "COUNT", "0"], "-ERR invalid COUNT '0': must be a whole number from 1 to 1000"),
        (&["STRATEGY", "c1", "extra"], "-ERR syntax error: unknown option 'extra'; expected GREEDY"),
        (&["FEEDBACK", "c1", "nope", "1"], "-ERR invalid argument action: \"nope\" is not one of: vip_offer"),
        (&["FEEDBACK", "c1", "vip_offer", "2"], "-ERR invalid converted '2': must be 1 (converted) or 0 (did not)"),
        (&["MODEL.ROLLBACK", "999"], "-ERR invalid argument version: no model snapshot 999"),
        (&["SELECT", "3"], "-ERR DB index is out of range: Persona has a single database, 0"),
        (&["HELLO", "4"], "-NOPROTO unsupported protocol version"),
        (&["CONFIG", "SET", "x", "y"], "-ERR CONFIG SET is not supported"),
        (&["NOSUCH", "a"], "-ERR unknown command 'NOSUCH', with args beginning with: 'a'"),
    ];
    for (args, expected) in cases {
        let reply = raw.call(args)?;
        assert!(reply.starts_with(expected), "{args:?}: {reply:?}");
        if expected.contains("usage")
            || expected.starts_with("-ERR syntax error: unknown option 'COLOR'")
        {
            assert!(reply.contains(usage_add), "{args:?}: {reply:?}");
        }
        assert_eq!(state(&mut raw)?, before, "{args:?} changed the store");
    }
    // Good input right after is applied.
    let ts2 = (T0 + 1).to_string();
    let reply = raw.call(&["EVENT.ADD", "c1", "view", "TS", &ts2])?;
    assert!(
        reply.starts_with("*8\r\n$7\r\nversion\r\n:2\r\n"),
        "{reply}"
    );
    Ok(())
}
