//! The query and model commands of the RESP server (`PROFILE.GET … AT`, `PROFILE.HISTORY`,
//! `SEGMENT.NEAREST`, `SIMILAR`, `SCORE`, `STRATEGY`, `RECOMMEND`, `FEEDBACK`, `MODEL.VERSIONS`,
//! `MODEL.SNAPSHOT`, `MODEL.ROLLBACK`) over a store loaded with generated data, checked against
//! the library's own answers.

use crate::common::resp::{TestResult, TestServer};
use persona::generator::{Generator, GeneratorConfig, DEFAULT_START_MS};
use persona::{Config, Db, Durability, Target};
use redis::Value;
use std::collections::HashMap;

const CUSTOMERS: u64 = 300;

/// A server over 300 generated customers and 6000 events, segmented; and the store itself.
fn loaded() -> Result<(TestServer, Db), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    let events: Vec<_> = Generator::new(GeneratorConfig {
        customers: CUSTOMERS,
        events: 6000,
        seed: 11,
        ..GeneratorConfig::default()
    })?
    .collect();
    for chunk in events.chunks(1000) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    db.resegment(500, persona::Centroids::Refit)?;
    let server = TestServer::over(db.clone(), dir)?;
    Ok((server, db))
}

fn resp3(server: &TestServer) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(server.url("?protocol=resp3"))?.get_connection()
}

/// A RESP3 map reply keyed by its bulk-string keys.
fn map(value: Value) -> HashMap<String, Value> {
    let Value::Map(pairs) = value else {
        panic!("expected a map, got {value:?}");
    };
    pairs
        .into_iter()
        .map(|(k, v)| match k {
            Value::BulkString(k) => (String::from_utf8_lossy(&k).into_owned(), v),
            other => panic!("bad key {other:?}"),
        })
        .collect()
}

fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected an array, got {other:?}"),
    }
}

fn double(value: &Value) -> f64 {
    match value {
        Value::Double(d) => *d,
        other => panic!("expected a double, got {other:?}"),
    }
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

/// The error message of a refused command.
fn err(con: &mut redis::Connection, cmd: &mut redis::Cmd) -> String {
    match cmd.query::<Value>(con) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("command succeeded with {v:?}"),
    }
}

#[test]
fn similar_excludes_the_customer_is_sorted_and_matches_the_library() -> TestResult {
    let (server, db) = loaded()?;
    let mut con = resp3(&server)?;
    for search in [persona::Search::Exact, persona::Search::Probe] {
        let exact = search == persona::Search::Exact;
        let mut cmd = redis::cmd("SIMILAR");
        cmd.arg("c000007").arg("COUNT").arg(5);
        if exact {
            cmd.arg("EXACT");
        }
        let reply = array(cmd.query(&mut con)?);
        let expected = db.similar("c000007", 5, search)?.expect("c000007 exists");
        assert_eq!(reply.len(), expected.len());
        assert!(!reply.is_empty());
        let mut last = 0.0;
        for (pair, want) in reply.into_iter().zip(&expected) {
            let pair = array(pair);
            let (id, d) = (text(&pair[0]), double(&pair[1]));
            assert_ne!(id, "c000007");
            assert_eq!(id, want.customer_id);
            assert!(d >= last, "not sorted: {d} after {last}");
            last = d;
        }
    }
    let default: Vec<Value> = array(redis::cmd("SIMILAR").arg("c000007").query(&mut con)?);
    assert_eq!(default.len(), 10);
    assert_eq!(
        redis::cmd("SIMILAR")
            .arg("nobody")
            .query::<Value>(&mut con)?,
        Value::Nil
    );
    assert!(err(
        &mut con,
        redis::cmd("SIMILAR").arg("c1").arg("COUNT").arg(0)
    )
    .contains("invalid COUNT '0': must be a whole number from 1 to 1000"));
    assert!(err(&mut con, redis::cmd("SIMILAR").arg("c1").arg("FAST"))
        .contains("unknown option 'FAST'; expected COUNT or EXACT"));
    Ok(())
}

#[test]
fn score_and_strategy_match_the_library() -> TestResult {
    let (server, db) = loaded()?;
    let mut con = resp3(&server)?;
    let reply = map(redis::cmd("SCORE").arg("c000042").query(&mut con)?);
    let want = db.score("c000042")?.expect("c000042 exists");
    let p = double(&reply["propensity"]);
    assert!((0.0..=1.0).contains(&p));
    assert_eq!(p, want.propensity);
    assert_eq!(int(&reply["as_of_ms"]), want.as_of_ms);
    assert_eq!(int(&reply["model_version"]), want.model_version as i64);
    assert_eq!(double(&reply["bias"]), want.bias);
    let top = array(reply["top"].clone());
    assert_eq!(top.len(), want.top.len());
    assert!(!top.is_empty());
    for (t, w) in top.into_iter().zip(&want.top) {
        let t = map(t);
        assert_eq!(text(&t["feature"]), w.feature);
        assert_eq!(double(&t["contribution"]), w.contribution);
        assert_eq!(double(&t["z"]), w.z);
        assert_eq!(double(&t["value"]), w.value);
    }
    assert_eq!(
        redis::cmd("SCORE").arg("nobody").query::<Value>(&mut con)?,
        Value::Nil
    );

    let rec = map(redis::cmd("STRATEGY")
        .arg("c000042")
        .arg("GREEDY")
        .query(&mut con)?);
    let want = db
        .strategy("c000042", persona::Choice::Greedy)?
        .expect("c000042 exists");
    assert_eq!(text(&rec["customer_id"]), "c000042");
    assert_eq!(int(&rec["segment"]), i64::from(want.segment));
    assert_eq!(text(&rec["action"]), want.action);
    assert_eq!(text(&rec["rule_action"]), want.rule_action);
    assert_eq!(rec["greedy"], Value::Boolean(true));
    assert_eq!(rec.len(), 11);
    assert_eq!(
        rec["suggestions"],
        Value::Array(Vec::new()),
        "no event named an item"
    );
    let sampled = map(redis::cmd("STRATEGY").arg("c000042").query(&mut con)?);
    assert_eq!(sampled["greedy"], Value::Boolean(false));
    assert_eq!(
        redis::cmd("STRATEGY")
            .arg("nobody")
            .query::<Value>(&mut con)?,
        Value::Nil
    );
    assert!(
        err(&mut con, redis::cmd("STRATEGY").arg("c000042").arg("BEST"))
            .contains("unknown option 'BEST'; expected GREEDY")
    );

    // RECOMMEND answers what Db::recommend does (the generated events name categories, no
    // items: the item list is empty).
    let reply = array(
        redis::cmd("RECOMMEND")
            .arg("c000042")
            .arg("KIND")
            .arg("category")
            .arg("COUNT")
            .arg(3)
            .query(&mut con)?,
    );
    let options = persona::RecommendOptions::default().categories();
    let want = db.recommend("c000042", 3, options)?;
    assert_eq!(reply.len(), want.len());
    assert!(!want.is_empty());
    for (got, w) in reply.into_iter().zip(&want) {
        let got = map(got);
        assert_eq!(text(&got["category"]), w.name);
        assert_eq!(double(&got["score"]), w.score);
        assert_eq!(text(&got["reason"]), w.reason);
    }
    let items = array(redis::cmd("RECOMMEND").arg("c000042").query(&mut con)?);
    assert!(items.is_empty(), "no event named an item");
    assert!(err(
        &mut con,
        redis::cmd("RECOMMEND").arg("c000042").arg("COUNT").arg(0)
    )
    .contains("invalid count '0': an integer from 1 to 100"));
    assert!(err(
        &mut con,
        redis::cmd("RECOMMEND")
            .arg("c000042")
            .arg("KIND")
            .arg("sku")
    )
    .contains("invalid kind 'sku': item or category"));
    Ok(())
}

#[test]
fn nearest_segments_of_a_customer_and_a_vector() -> TestResult {
    let (server, db) = loaded()?;
    let mut con = resp3(&server)?;
    let reply = array(
        redis::cmd("SEGMENT.NEAREST")
            .arg("c000007")
            .arg("COUNT")
            .arg(3)
            .query(&mut con)?,
    );
    let want = db.nearest_segments(Target::Customer("c000007"), 3)?;
    assert_eq!(reply.len(), 3);
    for (pair, w) in reply.into_iter().zip(&want) {
        let pair = array(pair);
        assert_eq!(int(&pair[0]), i64::from(w.segment));
        assert_eq!(double(&pair[1]), w.distance);
    }
    let one = array(
        redis::cmd("SEGMENT.NEAREST")
            .arg("c000007")
            .query(&mut con)?,
    );
    assert_eq!(one.len(), 1);

    let features = db.profile("c000007")?.expect("c000007 exists").features;
    let mut cmd = redis::cmd("SEGMENT.NEAREST");
    cmd.arg("VECTOR");
    for f in &features {
        cmd.arg(*f);
    }
    cmd.arg("COUNT").arg(2);
    let reply = array(cmd.query(&mut con)?);
    let want = db.nearest_segments(Target::Vector(&features), 2)?;
    assert_eq!(reply.len(), 2);
    for (pair, w) in reply.into_iter().zip(&want) {
        let pair = array(pair);
        assert_eq!(int(&pair[0]), i64::from(w.segment));
        assert_eq!(double(&pair[1]), w.distance);
    }

    assert_eq!(
        redis::cmd("SEGMENT.NEAREST")
            .arg("nobody")
            .query::<Value>(&mut con)?,
        Value::Nil
    );
    let msg = err(
        &mut con,
        redis::cmd("SEGMENT.NEAREST").arg("VECTOR").arg(1).arg(2),
    );
    assert!(msg.contains("vector has 2 dimensions"), "{msg}");
    let msg = err(
        &mut con,
        redis::cmd("SEGMENT.NEAREST").arg("VECTOR").arg(1).arg("x"),
    );
    assert!(
        msg.contains("invalid feature 'x': must be a number"),
        "{msg}"
    );
    let msg = err(&mut con, redis::cmd("SEGMENT.NEAREST").arg("VECTOR"));
    assert!(msg.contains("VECTOR needs one number per feature"), "{msg}");
    Ok(())
}

#[test]
fn history_and_profiles_at_a_time() -> TestResult {
    let (server, db) = loaded()?;
    let mut con = resp3(&server)?;
    let reply = array(
        redis::cmd("PROFILE.HISTORY")
            .arg("c000010")
            .arg("COUNT")
            .arg(3)
            .query(&mut con)?,
    );
    let want = db.history("c000010", 3)?.expect("c000010 exists");
    assert_eq!(reply.len(), want.len());
    assert!(!reply.is_empty());
    let mut last_version = i64::MAX;
    for (item, w) in reply.into_iter().zip(&want) {
        let item = map(item);
        assert_eq!(item.len(), 8);
        let v = int(&item["version"]);
        assert!(v < last_version, "newest first");
        last_version = v;
        assert_eq!(v, w.version as i64);
        assert_eq!(text(&item["change"]), w.change);
        assert_eq!(text(&item["kind"]), w.kind.clone().unwrap_or_default());
        assert_eq!(int(&item["timestamp_ms"]), w.timestamp_ms.unwrap_or(0));
        assert_eq!(double(&item["propensity"]), f64::from(w.propensity));
    }
    assert_eq!(
        redis::cmd("PROFILE.HISTORY")
            .arg("nobody")
            .query::<Value>(&mut con)?,
        Value::Nil
    );
    assert!(err(
        &mut con,
        redis::cmd("PROFILE.HISTORY")
            .arg("c1")
            .arg("COUNT")
            .arg("x")
    )
    .contains("invalid COUNT 'x'"));

    // AT the time of the newest version's event: that version.
    let newest = &want[0];
    let ts = newest.timestamp_ms.expect("generated history is events");
    let at = map(redis::cmd("PROFILE.GET")
        .arg("c000010")
        .arg("AT")
        .arg(ts)
        .query(&mut con)?);
    let lib = db
        .profile_as_of("c000010", ts)?
        .expect("had events by then");
    assert_eq!(int(&at["version"]), lib.version as i64);
    assert_eq!(int(&at["as_of_ms"]), ts);
    // RFC 3339 names the same moment.
    let rfc = map(redis::cmd("PROFILE.GET")
        .arg("c000010")
        .arg("AT")
        .arg("2026-12-31T00:00:00Z")
        .query(&mut con)?);
    assert_eq!(int(&rfc["as_of_ms"]), DEFAULT_START_MS + 364 * 86_400_000);
    assert!(err(
        &mut con,
        redis::cmd("PROFILE.GET")
            .arg("c000010")
            .arg("AT")
            .arg("soon")
    )
    .contains("invalid AT 'soon': must be unix milliseconds or an RFC 3339 time"));
    assert!(err(
        &mut con,
        redis::cmd("PROFILE.GET")
            .arg("c000010")
            .arg("AT")
            .arg(ts)
            .arg("VERSION")
            .arg(1)
    )
    .contains("give at most one of VERSION and AT"));
    Ok(())
}

#[test]
fn feedback_is_ordered_after_pipelined_events_and_deduplicated() -> TestResult {
    let (server, _db) = loaded()?;
    let mut raw = server.raw()?;
    // A new customer's first event and its feedback in one write: FEEDBACK must wait for the
    // event, or the customer would be unknown to it.
    let ts = (DEFAULT_START_MS + 200 * 86_400_000).to_string();
    let mut bytes = Vec::new();
    for args in [
        &["EVENT.ADD", "fresh", "purchase", "25", "TS", ts.as_str()][..],
        &["FEEDBACK", "fresh", "vip_offer", "1", "ID", "fb-1"][..],
        &["FEEDBACK", "fresh", "vip_offer", "1", "ID", "fb-1"][..],
    ] {
        bytes.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            bytes.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }
    raw.send(&bytes)?;
    let event = raw.reply_text()?;
    assert!(
        event.starts_with("*8\r\n$7\r\nversion\r\n:1\r\n"),
        "{event}"
    );
    let first = raw.reply_text()?;
    assert!(
        first.starts_with("*6\r\n$7\r\nversion\r\n:1\r\n$7\r\nsegment\r\n:"),
        "{first}"
    );
    assert!(first.ends_with("$9\r\nduplicate\r\n:0\r\n"), "{first}");
    let second = raw.reply_text()?;
    assert!(
        second.starts_with("*6\r\n$7\r\nversion\r\n:1\r\n"),
        "{second}"
    );
    assert!(second.ends_with("$9\r\nduplicate\r\n:1\r\n"), "{second}");

    let mut con = resp3(&server)?;
    let ack = map(redis::cmd("FEEDBACK")
        .arg("c000001")
        .arg("new_product")
        .arg(0)
        .arg("SEGMENT")
        .arg(0)
        .query(&mut con)?);
    assert_eq!(ack["duplicate"], Value::Boolean(false));
    assert!(err(
        &mut con,
        redis::cmd("FEEDBACK")
            .arg("c000001")
            .arg("new_product")
            .arg(2)
    )
    .contains("invalid converted '2': must be 1 (converted) or 0 (did not)"));
    let msg = err(
        &mut con,
        redis::cmd("FEEDBACK").arg("c000001").arg("spam").arg(1),
    );
    assert!(msg.contains("\"spam\" is not one of: vip_offer"), "{msg}");
    let msg = err(
        &mut con,
        redis::cmd("FEEDBACK")
            .arg("c000001")
            .arg("vip_offer")
            .arg(1)
            .arg("SEGMENT")
            .arg("x"),
    );
    assert!(msg.contains("invalid SEGMENT 'x'"), "{msg}");
    Ok(())
}

#[test]
fn snapshots_are_listed_and_rolled_back_to() -> TestResult {
    let (server, db) = loaded()?;
    let mut con = resp3(&server)?;
    let v: i64 = redis::cmd("MODEL.SNAPSHOT").query(&mut con)?;
    assert!(v >= 1);
    let versions = array(redis::cmd("MODEL.VERSIONS").query(&mut con)?);
    let listed: Vec<HashMap<String, Value>> = versions.into_iter().map(map).collect();
    let ours = listed
        .iter()
        .find(|m| int(&m["version"]) == v)
        .expect("the new snapshot is listed");
    assert_eq!(ours.len(), 4);
    assert_eq!(int(&ours["watermark_ms"]), db.model_info().watermark_ms);
    assert_eq!(listed.len(), db.model_versions()?.len());

    let new: i64 = redis::cmd("MODEL.ROLLBACK").arg(v).query(&mut con)?;
    assert!(new > v);
    assert_eq!(db.model_info().version as i64, new);
    let msg = err(&mut con, redis::cmd("MODEL.ROLLBACK").arg(999_999));
    assert!(msg.contains("999999"), "{msg}");
    assert!(err(&mut con, redis::cmd("MODEL.ROLLBACK").arg("latest"))
        .contains("invalid version 'latest': must be a snapshot version (see MODEL.VERSIONS)"));
    assert!(err(&mut con, redis::cmd("MODEL.SNAPSHOT").arg("now"))
        .contains("wrong number of arguments for 'model.snapshot' command"));

    // RESP2: the same list as flat arrays.
    let mut con2 = server.client()?;
    let flat = array(redis::cmd("MODEL.VERSIONS").query(&mut con2)?);
    let first = array(flat[0].clone());
    assert_eq!(text(&first[0]), "version");
    assert_eq!(first.len(), 8);
    Ok(())
}

/// `SEGMENT.LIST` replies the library's segment statistics (one computation, every surface).
#[test]
fn segment_list_matches_the_library() -> TestResult {
    let (server, db) = loaded()?;
    let mut con = resp3(&server)?;
    let reply = array(redis::cmd("SEGMENT.LIST").query(&mut con)?);
    let want = db.segments()?;
    assert_eq!(reply.len(), want.len());
    for (got, w) in reply.into_iter().zip(&want) {
        let got = map(got);
        assert_eq!(int(&got["id"]), i64::from(w.id));
        assert_eq!(int(&got["size"]), w.size as i64);
        assert_eq!(int(&got["evaluated"]), w.evaluated as i64);
        assert_eq!(text(&got["label"]), w.label);
        assert_eq!(double(&got["mean_spend"]), w.mean_spend);
        assert_eq!(double(&got["mean_propensity"]), w.mean_propensity);
        assert_eq!(double(&got["buyers"]), w.buyers);
        match w.recency_days {
            Some(d) => assert_eq!(double(&got["recency_days"]), d),
            None => assert_eq!(got["recency_days"], Value::Nil),
        }
        assert_eq!(text(&got["rule_action"]), w.rule_action);
        assert_eq!(text(&got["best_action"]), w.best_action);
        assert_eq!(
            array(got["top_categories"].clone()).len(),
            w.top_categories.len()
        );
    }
    // A profile's raw features: null for what never happened.
    let p = map(redis::cmd("PROFILE.GET").arg("c000042").query(&mut con)?);
    let raw = map(p["raw_features"].clone());
    let profile = db.profile("c000042")?.expect("c000042 exists");
    let names = db.feature_names();
    for (i, v) in profile.raw_features.iter().enumerate() {
        match v {
            Some(v) => assert_eq!(double(&raw[&names[i]]), *v, "{}", names[i]),
            None => assert_eq!(raw[&names[i]], Value::Nil, "{}", names[i]),
        }
    }
    Ok(())
}
