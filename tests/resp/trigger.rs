//! Triggers over RESP: `TRIGGER.ADD`, `TRIGGER.LIST`, `TRIGGER.DEL`, `TRIGGER.READ`,
//! `TRIGGER.ACK`, and live delivery with `SUBSCRIBE` / `PSUBSCRIBE` (the `redis` crate's pub/sub
//! client, redis-py's `pubsub()` when Debian's `python3-redis` is installed, and raw bytes).

use crate::common::resp::{TestResult, TestServer};
use crate::common::T0;
use persona::Config;
use std::time::Duration;

fn start() -> Result<TestServer, Box<dyn std::error::Error>> {
    TestServer::start_with(|c: Config| c.segments(4), |_| {})
}

fn purchase(con: &mut redis::Connection, customer: &str, t: i64, amount: f64) -> TestResult {
    redis::cmd("EVENT.ADD")
        .arg(customer)
        .arg("purchase")
        .arg(amount)
        .arg("TS")
        .arg(t)
        .query::<redis::Value>(con)?;
    Ok(())
}

/// Four triggers, one of each kind a generated stream makes fire: a first purchase, a segment
/// entered, a propensity crossing, a silence.
fn define_stream_triggers(con: &mut redis::Connection) -> TestResult {
    for def in [
        &["first", "WHEN", "FIRST_PURCHASE"][..],
        &["to_seg1", "WHEN", "SEGMENT_ENTER", "1", "COOLDOWN", "0"],
        &["likely", "WHEN", "PROPENSITY_ABOVE", "0.5", "COOLDOWN", "0"],
        &["quiet", "WHEN", "INACTIVE_DAYS", "20", "COOLDOWN", "0"],
    ] {
        redis::cmd("TRIGGER.ADD").arg(def).query::<String>(con)?;
    }
    Ok(())
}

/// Sends a generated stream (300 customers, 6,000 events, `seed`) as pipelined `EVENT.ADD`s.
fn send_generated(con: &mut redis::Connection, seed: u64) -> TestResult {
    use persona::generator::{Generator, GeneratorConfig};
    let events: Vec<persona::Event> = Generator::new(GeneratorConfig {
        customers: 300,
        events: 6000,
        seed,
        ..GeneratorConfig::default()
    })?
    .collect();
    for chunk in events.chunks(500) {
        let mut pipe = redis::pipe();
        for e in chunk {
            let cmd = pipe
                .cmd("EVENT.ADD")
                .arg(&e.customer_id)
                .arg(e.kind.as_str());
            if let Some(v) = e.value {
                cmd.arg(v);
            }
            cmd.arg("TS").arg(e.timestamp_ms).ignore();
        }
        pipe.query::<()>(con)?;
    }
    Ok(())
}

/// The whole outbox as (id, trigger), read with `TRIGGER.READ` page by page.
fn read_outbox(
    con: &mut redis::Connection,
) -> Result<Vec<(u64, String)>, Box<dyn std::error::Error>> {
    let mut outbox: Vec<(u64, String)> = Vec::new();
    loop {
        let since = outbox.last().map_or(0, |f| f.0).to_string();
        let page: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("TRIGGER.READ")
            .arg(&["SINCE", &since, "COUNT", "10000"])
            .query(con)?;
        if page.is_empty() {
            return Ok(outbox);
        }
        for f in page {
            outbox.push((
                redis::from_redis_value(&f["id"])?,
                redis::from_redis_value(&f["trigger"])?,
            ));
        }
    }
}

#[test]
fn triggers_are_defined_listed_read_and_deleted_over_resp() -> TestResult {
    let server = start()?;
    let mut con = server.client()?;
    let ok: String = redis::cmd("TRIGGER.ADD")
        .arg(&["first", "WHEN", "FIRST_PURCHASE", "COOLDOWN", "0"])
        .query(&mut con)?;
    assert_eq!(ok, "OK");
    let err = redis::cmd("TRIGGER.ADD")
        .arg(&["bad", "WHEN", "PROPENSITY_ABOVE", "7"])
        .query::<String>(&mut con)
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of range"), "{err}");
    let err = redis::cmd("TRIGGER.ADD")
        .arg(&["bad", "IF", "FIRST_PURCHASE"])
        .query::<String>(&mut con)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected WHEN"), "{err}");
    purchase(&mut con, "a", T0, 10.0)?;
    purchase(&mut con, "b", T0 + 1, 10.0)?;
    purchase(&mut con, "a", T0 + 2, 10.0)?;
    let read: Vec<std::collections::HashMap<String, redis::Value>> =
        redis::cmd("TRIGGER.READ").query(&mut con)?;
    assert_eq!(read.len(), 2);
    let customer = |m: &std::collections::HashMap<String, redis::Value>| -> String {
        redis::from_redis_value(&m["customer"]).unwrap()
    };
    assert_eq!(customer(&read[0]), "a");
    assert_eq!(customer(&read[1]), "b");
    let after: Vec<redis::Value> = redis::cmd("TRIGGER.READ")
        .arg(&["SINCE", "1", "COUNT", "5"])
        .query(&mut con)?;
    assert_eq!(after.len(), 1);
    let err = redis::cmd("TRIGGER.READ")
        .arg(&["COUNT", "0"])
        .query::<redis::Value>(&mut con)
        .unwrap_err()
        .to_string();
    assert!(err.contains("COUNT"), "{err}");
    let list: Vec<std::collections::HashMap<String, redis::Value>> =
        redis::cmd("TRIGGER.LIST").query(&mut con)?;
    assert_eq!(list.len(), 1);
    let fired: i64 = redis::from_redis_value(&list[0]["fired"])?;
    assert_eq!(fired, 2);
    let definition: String = redis::from_redis_value(&list[0]["definition"])?;
    assert_eq!(definition, "first WHEN FIRST_PURCHASE COOLDOWN 0");
    let info: String = redis::cmd("INFO").arg("stats").query(&mut con)?;
    assert!(info.contains("persona_trigger_firings:2\r\n"), "{info}");
    assert!(info.contains("persona_trigger_suppressed:0\r\n"), "{info}");
    let deleted: i64 = redis::cmd("TRIGGER.DEL").arg("first").query(&mut con)?;
    assert_eq!(deleted, 1);
    assert!(redis::cmd("TRIGGER.DEL")
        .arg("first")
        .query::<i64>(&mut con)
        .is_err());
    Ok(())
}

#[test]
fn subscribers_receive_each_firing_of_their_channels_once_as_json() -> TestResult {
    let server = start()?;
    let mut con = server.client()?;
    redis::cmd("TRIGGER.ADD")
        .arg(&["first", "WHEN", "FIRST_PURCHASE"])
        .query::<String>(&mut con)?;
    redis::cmd("TRIGGER.ADD")
        .arg(&["big", "WHEN", "SPEND_ABOVE", "100", "ACTION", "vip_offer"])
        .query::<String>(&mut con)?;
    let mut listener = server.client()?;
    let mut ps = listener.as_pubsub();
    ps.subscribe("persona:trigger:big")?;
    ps.psubscribe("persona:trigger:f*")?;
    ps.set_read_timeout(Some(Duration::from_secs(10)))?;
    purchase(&mut con, "a", T0, 50.0)?;
    purchase(&mut con, "a", T0 + 1, 80.0)?;
    purchase(&mut con, "b", T0 + 2, 5.0)?;
    let mut got = Vec::new();
    for _ in 0..3 {
        let msg = ps.get_message()?;
        let payload: String = msg.get_payload()?;
        let v: serde_json::Value = serde_json::from_str(&payload)?;
        got.push((
            msg.get_channel_name().to_string(),
            msg.get_pattern::<Option<String>>()?,
            v["id"].as_u64().unwrap_or(0),
            v["customer"].as_str().unwrap_or("").to_string(),
            v["reason"].as_str().unwrap_or("").to_string(),
        ));
        for key in [
            "id",
            "trigger",
            "customer",
            "time_ms",
            "reason",
            "action",
            "expected_conversion",
            "segment",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {payload}");
        }
    }
    assert_eq!(
        got,
        [
            (
                "persona:trigger:first".to_string(),
                Some("persona:trigger:f*".to_string()),
                1,
                "a".to_string(),
                "first purchase".to_string()
            ),
            (
                "persona:trigger:big".to_string(),
                None,
                2,
                "a".to_string(),
                "spend 50.00 → 130.00".to_string()
            ),
            (
                "persona:trigger:first".to_string(),
                Some("persona:trigger:f*".to_string()),
                3,
                "b".to_string(),
                "first purchase".to_string()
            ),
        ]
    );
    // Nothing else arrives.
    ps.set_read_timeout(Some(Duration::from_millis(300)))?;
    assert!(ps.get_message().is_err(), "an extra message");
    Ok(())
}

#[test]
fn a_subscribed_resp2_connection_answers_only_pubsub_commands_and_ping() -> TestResult {
    let server = start()?;
    let mut raw = server.raw()?;
    assert_eq!(
        raw.call(&["SUBSCRIBE", "persona:trigger:x", "persona:trigger:y"])?,
        "*3\r\n$9\r\nsubscribe\r\n$17\r\npersona:trigger:x\r\n:1\r\n"
    );
    assert_eq!(
        raw.reply_text()?,
        "*3\r\n$9\r\nsubscribe\r\n$17\r\npersona:trigger:y\r\n:2\r\n"
    );
    let refused = raw.call(&["PROFILE.GET", "a"])?;
    assert!(refused.starts_with("-ERR only (P)SUBSCRIBE"), "{refused}");
    assert_eq!(raw.call(&["PING"])?, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(
        raw.call(&["UNSUBSCRIBE", "persona:trigger:x"])?,
        "*3\r\n$11\r\nunsubscribe\r\n$17\r\npersona:trigger:x\r\n:1\r\n"
    );
    assert_eq!(
        raw.call(&["UNSUBSCRIBE"])?,
        "*3\r\n$11\r\nunsubscribe\r\n$17\r\npersona:trigger:y\r\n:0\r\n"
    );
    // Unsubscribed from everything: back to normal commands.
    assert_eq!(raw.call(&["PING"])?, "+PONG\r\n");
    assert_eq!(
        raw.call(&["PUNSUBSCRIBE"])?,
        "*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n"
    );
    assert!(raw.call(&["MULTI"])?.starts_with("+OK"));
    assert!(raw
        .call(&["SUBSCRIBE", "c"])?
        .starts_with("-ERR pub/sub commands are not allowed"));
    Ok(())
}

#[test]
fn a_blocked_read_returns_when_a_firing_is_committed_or_times_out_empty() -> TestResult {
    let server = start()?;
    let mut con = server.client()?;
    redis::cmd("TRIGGER.ADD")
        .arg(&["first", "WHEN", "FIRST_PURCHASE"])
        .query::<String>(&mut con)?;
    let empty: Vec<redis::Value> = redis::cmd("TRIGGER.READ")
        .arg(&["BLOCK", "50"])
        .query(&mut con)?;
    assert!(empty.is_empty());
    let mut reader = server.client()?;
    let blocked = std::thread::spawn(move || -> redis::RedisResult<Vec<redis::Value>> {
        redis::cmd("TRIGGER.READ")
            .arg(&["SINCE", "0", "BLOCK", "0"])
            .query(&mut reader)
    });
    std::thread::sleep(Duration::from_millis(100));
    purchase(&mut con, "a", T0, 10.0)?;
    let got = blocked.join().map_err(|_| "the reader panicked")??;
    assert_eq!(got.len(), 1);
    Ok(())
}

#[test]
fn a_client_that_disconnects_while_blocked_is_let_go() -> TestResult {
    let server = start()?;
    let mut con = server.client()?;
    let clients = |con: &mut redis::Connection| -> redis::RedisResult<String> {
        let info: String = redis::cmd("INFO").arg("clients").query(con)?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .unwrap_or("")
            .to_string())
    };
    assert_eq!(clients(&mut con)?, "1");
    let mut blocked = server.raw()?;
    blocked.command(&["TRIGGER.READ", "SINCE", "0", "BLOCK", "0"])?;
    // The server has taken the command once it counts the connection.
    while clients(&mut con)? != "2" {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    drop(blocked);
    // Nothing will ever fire: only the disconnect can end the wait and free the connection
    // (before the fix it stayed, with its thread, until the server stopped).
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while clients(&mut con)? != "1" {
        assert!(
            std::time::Instant::now() < give_up,
            "the blocked connection was never let go"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop()?;
    Ok(())
}

#[test]
fn a_generated_stream_publishes_exactly_what_the_outbox_holds() -> TestResult {
    let server = start()?;
    let mut con = server.client()?;
    define_stream_triggers(&mut con)?;
    let mut listener = server.client()?;
    let mut ps = listener.as_pubsub();
    ps.psubscribe("persona:trigger:*")?;
    ps.set_read_timeout(Some(Duration::from_secs(10)))?;
    send_generated(&mut con, 5)?;
    let outbox = read_outbox(&mut con)?;
    let kinds: std::collections::BTreeSet<&str> = outbox.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["first", "likely", "quiet", "to_seg1"],
        "every kind of trigger fired on this stream"
    );
    // Live: the same firings, once each, in id order, on their channels.
    let mut live: Vec<(u64, String)> = Vec::new();
    for _ in 0..outbox.len() {
        let msg = ps.get_message()?;
        let v: serde_json::Value = serde_json::from_str(&msg.get_payload::<String>()?)?;
        let trigger = v["trigger"].as_str().unwrap_or("").to_string();
        assert_eq!(msg.get_channel_name(), format!("persona:trigger:{trigger}"));
        live.push((v["id"].as_u64().unwrap_or(0), trigger));
    }
    assert_eq!(live, outbox);
    ps.set_read_timeout(Some(Duration::from_millis(300)))?;
    assert!(
        ps.get_message().is_err(),
        "a message the outbox does not hold"
    );
    Ok(())
}

#[test]
fn a_consumer_acknowledges_and_resumes_after_its_position() -> TestResult {
    let server = start()?;
    let mut con = server.client()?;
    redis::cmd("TRIGGER.ADD")
        .arg(&["first", "WHEN", "FIRST_PURCHASE"])
        .query::<String>(&mut con)?;
    for (i, c) in ["a", "b", "c"].into_iter().enumerate() {
        purchase(&mut con, c, T0 + i as i64, 5.0)?;
    }
    type Page = Vec<std::collections::HashMap<String, redis::Value>>;
    let customers = |page: &Page| -> Result<Vec<String>, redis::RedisError> {
        page.iter()
            .map(|f| redis::from_redis_value(&f["customer"]))
            .collect()
    };
    let read = |con: &mut redis::Connection| -> Result<Page, redis::RedisError> {
        redis::cmd("TRIGGER.READ")
            .arg(&["CONSUMER", "mailer", "COUNT", "2"])
            .query(con)
    };
    let page = read(&mut con)?;
    assert_eq!(
        customers(&page)?,
        ["a", "b"],
        "never acknowledged: from the start"
    );
    let at: u64 = redis::cmd("TRIGGER.ACK")
        .arg(&["mailer", "2"])
        .query(&mut con)?;
    assert_eq!(at, 2);
    assert_eq!(customers(&read(&mut con)?)?, ["c"]);
    let at: u64 = redis::cmd("TRIGGER.ACK")
        .arg(&["mailer", "1"])
        .query(&mut con)?;
    assert_eq!(at, 2, "a position never goes back");
    let err = redis::cmd("TRIGGER.ACK")
        .arg(&["mailer", "7"])
        .query::<u64>(&mut con)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("7 was never given to a firing; the newest firing is 3"),
        "{err}"
    );
    let err = redis::cmd("TRIGGER.READ")
        .arg(&["CONSUMER", "mailer", "SINCE", "1"])
        .query::<redis::Value>(&mut con)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SINCE and CONSUMER exclude each other"),
        "{err}"
    );
    let err = redis::cmd("TRIGGER.ACK")
        .arg(&["bad name", "1"])
        .query::<u64>(&mut con)
        .unwrap_err()
        .to_string();
    assert!(err.contains("consumer name"), "{err}");
    Ok(())
}

#[test]
fn redis_py_pubsub_receives_exactly_the_firings_of_a_generated_stream() -> TestResult {
    use crate::common::resp::{python_with_redis, runs_with};
    use std::io::{BufRead, Write};
    let python = python_with_redis();
    if !runs_with(
        python.is_some(),
        "redis-py",
        "apt-get install python3-redis",
    ) {
        return Ok(());
    }
    let server = start()?;
    let mut con = server.client()?;
    define_stream_triggers(&mut con)?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/resp/py/pubsub.py");
    let mut py = std::process::Command::new(python.unwrap_or("python3"))
        .arg(script)
        .arg(server.addr.port().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdout = std::io::BufReader::new(py.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    assert_eq!(line.trim(), "ready", "the subscriber did not start");
    send_generated(&mut con, 9)?;
    let outbox = read_outbox(&mut con)?;
    let kinds: std::collections::BTreeSet<&str> = outbox.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["first", "likely", "quiet", "to_seg1"],
        "segment changes, propensity crossings and silences all fired on this stream"
    );
    let mut stdin = py.stdin.take().ok_or("no stdin")?;
    writeln!(stdin, "{}", outbox.len())?;
    drop(stdin);
    let mut report = String::new();
    stdout.read_line(&mut report)?;
    assert!(py.wait()?.success(), "the subscriber failed");
    let got: Vec<serde_json::Value> = serde_json::from_str(&report)?;
    let mut live: Vec<(u64, String)> = Vec::new();
    for m in &got {
        assert_eq!(m["type"], "pmessage", "{m}");
        assert_eq!(m["pattern"], "persona:trigger:*", "{m}");
        let v: serde_json::Value = serde_json::from_str(m["data"].as_str().unwrap_or(""))?;
        let trigger = v["trigger"].as_str().unwrap_or("").to_string();
        assert_eq!(m["channel"], format!("persona:trigger:{trigger}"), "{m}");
        live.push((v["id"].as_u64().unwrap_or(0), trigger));
    }
    assert_eq!(
        live, outbox,
        "each firing once, in id order, and nothing else"
    );
    Ok(())
}

/// `MODEL.ADVANCE`: a silence fires when the client says the time has come, without another
/// event; a time already passed changes nothing; bad times are refused, naming the argument.
#[test]
fn a_silence_fires_when_the_watermark_is_advanced_without_an_event() -> TestResult {
    const DAY: i64 = 86_400_000;
    let server = start()?;
    let mut con = server.client()?;
    redis::cmd("TRIGGER.ADD")
        .arg(&["quiet", "WHEN", "INACTIVE_DAYS", "20"])
        .query::<String>(&mut con)?;
    purchase(&mut con, "c1", T0, 10.0)?;
    assert!(read_outbox(&mut con)?.iter().all(|f| f.1 != "quiet"));

    let reply: std::collections::HashMap<String, i64> = redis::cmd("MODEL.ADVANCE")
        .arg(T0 + 21 * DAY)
        .query(&mut con)?;
    assert_eq!(reply["watermark_ms"], T0 + 21 * DAY);
    let outbox = read_outbox(&mut con)?;
    assert_eq!(outbox.iter().filter(|f| f.1 == "quiet").count(), 1);

    // Earlier than the watermark (here as RFC 3339): nothing to do, the same version.
    let again: std::collections::HashMap<String, i64> = redis::cmd("MODEL.ADVANCE")
        .arg("2026-01-02T00:00:00Z")
        .query(&mut con)?;
    assert_eq!(again, reply);

    for (arg, expect) in [
        (
            "soon",
            "invalid ts 'soon': must be unix milliseconds or an RFC 3339 time",
        ),
        ("9999999999999999", "later than"),
    ] {
        let e = redis::cmd("MODEL.ADVANCE")
            .arg(arg)
            .query::<redis::Value>(&mut con)
            .expect_err("refused");
        assert!(e.to_string().contains(expect), "{arg}: {e}");
    }
    assert_eq!(read_outbox(&mut con)?, outbox);
    Ok(())
}

/// `follow_clock`: a server over a store whose last event is 30 days old moves the watermark to
/// the wall clock by itself, and the silence fires with no event and no command.
#[test]
fn a_server_following_the_clock_fires_a_silence_by_itself() -> TestResult {
    const DAY: i64 = 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let server = TestServer::start_with(
        |c: Config| c.segments(4),
        |s| s.follow_clock = Some(Duration::from_millis(200)),
    )?;
    let mut con = server.client()?;
    redis::cmd("TRIGGER.ADD")
        .arg(&["quiet", "WHEN", "INACTIVE_DAYS", "20"])
        .query::<String>(&mut con)?;
    purchase(&mut con, "c1", now - 30 * DAY, 10.0)?;
    // Bounded wait for the clock thread (a tick every 200 ms), not a timing assertion.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if read_outbox(&mut con)?.iter().any(|f| f.1 == "quiet") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no silence fired within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let info: std::collections::HashMap<String, redis::Value> =
        redis::cmd("MODEL.INFO").query(&mut con)?;
    let redis::Value::Int(watermark) = info["watermark_ms"] else {
        return Err("watermark_ms is not an integer".into());
    };
    assert!(watermark >= now, "{watermark} < {now}");
    server.stop()?;
    Ok(())
}

#[test]
fn follow_clock_secs_is_bounded_in_the_config_file() {
    let c = persona::ServerConfig::from_toml_str("[server]\nfollow_clock_secs = 60\n").unwrap();
    assert_eq!(c.follow_clock, Some(Duration::from_secs(60)));
    let off = persona::ServerConfig::from_toml_str("[server]\nfollow_clock_secs = 0\n").unwrap();
    assert_eq!(off.follow_clock, None);
    let e = persona::ServerConfig::from_toml_str("[server]\nfollow_clock_secs = 90000\n")
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("follow_clock_secs: must be from 0 (off) to 86400 seconds (a day), got 90000"),
        "{e}"
    );
}
