//! The RESP server, in process on an ephemeral port: driven with the `redis` crate and with raw
//! bytes, asserting on exact replies.

use crate::common::resp::{TestResult, TestServer};
use crate::common::T0;
use persona::{Config, Db};
use rand::{Rng, SeedableRng};
use redis::Value;
use std::collections::HashMap;

const ACK1_RESP2: &str = "*8\r\n$7\r\nversion\r\n:1\r\n$7\r\nsegment\r\n$-1\r\n\
                          $10\r\npropensity\r\n$3\r\n0.5\r\n$9\r\nduplicate\r\n:0\r\n";
const ACK1_RESP3: &str = "%4\r\n$7\r\nversion\r\n:1\r\n$7\r\nsegment\r\n_\r\n\
                          $10\r\npropensity\r\n,0.5\r\n$9\r\nduplicate\r\n#f\r\n";

fn hello_reply(proto: u8, id: u64) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let head = if proto == 3 { "%7" } else { "*14" };
    format!(
        "{head}\r\n$6\r\nserver\r\n$7\r\npersona\r\n$7\r\nversion\r\n${}\r\n{version}\r\n\
         $5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
         $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
        version.len()
    )
}

/// A flat RESP2 field/value array as a map.
fn fields(value: Value) -> HashMap<String, Value> {
    let Value::Array(items) = value else {
        panic!("expected a flat array, got {value:?}");
    };
    items
        .chunks(2)
        .map(|pair| match pair {
            [Value::BulkString(k), v] => (String::from_utf8_lossy(k).into_owned(), v.clone()),
            other => panic!("bad pair {other:?}"),
        })
        .collect()
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn the_redis_crate_adds_events_and_reads_profiles() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut con = server.client()?;
    let add = |con: &mut redis::Connection, id: &str| -> redis::RedisResult<Value> {
        redis::cmd("EVENT.ADD")
            .arg("c1")
            .arg("purchase")
            .arg(19.5)
            .arg("CATEGORY")
            .arg("books")
            .arg("TS")
            .arg(T0)
            .arg("ID")
            .arg(id)
            .query(con)
    };
    let ack = fields(add(&mut con, "order-1")?);
    assert_eq!(ack["version"], Value::Int(1));
    assert_eq!(ack["segment"], Value::Nil);
    assert_eq!(ack["propensity"], bulk("0.5"));
    assert_eq!(ack["duplicate"], Value::Int(0));
    let again = fields(add(&mut con, "order-1")?);
    assert_eq!(again["version"], Value::Int(1));
    assert_eq!(again["duplicate"], Value::Int(1));

    let version: i64 = redis::cmd("PROFILE.SET")
        .arg("c1")
        .arg("age")
        .arg("34")
        .arg("region")
        .arg("north")
        .query(&mut con)?;
    assert_eq!(version, 2);

    let profile = fields(redis::cmd("PROFILE.GET").arg("c1").query(&mut con)?);
    assert_eq!(profile["customer_id"], bulk("c1"));
    assert_eq!(profile["version"], Value::Int(2));
    assert_eq!(profile["event_count"], Value::Int(1));
    assert_eq!(profile["first_seen_ms"], Value::Int(T0));
    assert_eq!(
        profile["attributes"],
        Value::Array(vec![bulk("age"), bulk("34"), bulk("region"), bulk("north")])
    );
    let features = fields(profile["features"].clone());
    assert_eq!(features["purchases"], bulk(&2f64.ln().to_string()));

    let old = fields(
        redis::cmd("PROFILE.GET")
            .arg("c1")
            .arg("VERSION")
            .arg(1)
            .query(&mut con)?,
    );
    assert_eq!(old["version"], Value::Int(1));
    assert_eq!(old["attributes"], Value::Array(vec![]));

    let missing: Value = redis::cmd("PROFILE.GET").arg("nobody").query(&mut con)?;
    assert_eq!(missing, Value::Nil);
    let size: i64 = redis::cmd("DBSIZE").query(&mut con)?;
    assert_eq!(size, 1);
    Ok(())
}

#[test]
fn the_redis_crate_speaks_resp3() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut con = redis::Client::open(server.url("?protocol=resp3"))?.get_connection()?;
    let ack: Value = redis::cmd("EVENT.ADD")
        .arg("c1")
        .arg("click")
        .arg("TS")
        .arg(T0)
        .query(&mut con)?;
    assert_eq!(
        ack,
        Value::Map(vec![
            (bulk("version"), Value::Int(1)),
            (bulk("segment"), Value::Nil),
            (bulk("propensity"), Value::Double(0.5)),
            (bulk("duplicate"), Value::Boolean(false)),
        ])
    );
    let info: Value = redis::cmd("MODEL.INFO").query(&mut con)?;
    let Value::Map(pairs) = info else {
        panic!("MODEL.INFO is not a map: {info:?}");
    };
    assert_eq!(pairs[0], (bulk("version"), Value::Int(1)));
    assert!(pairs.contains(&(bulk("segments_seeded"), Value::Boolean(false))));
    Ok(())
}

#[test]
fn pipelined_events_come_back_in_order_and_a_following_read_sees_them() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut con = server.client()?;
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("EVENT.ADD")
            .arg("c-pipe")
            .arg("view")
            .arg(i)
            .arg("TS")
            .arg(T0 + i);
    }
    pipe.cmd("PROFILE.GET").arg("c-pipe");
    let mut replies: Vec<Value> = pipe.query(&mut con)?;
    let profile = fields(replies.pop().ok_or("no replies")?);
    assert_eq!(profile["event_count"], Value::Int(200));
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(fields(reply)["version"], Value::Int(i as i64 + 1));
    }
    Ok(())
}

#[test]
fn raw_pipelines_and_split_frames_are_answered_in_order() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    raw.send(b"*1\r\n$4\r\nPI")?;
    raw.send(b"NG\r\n")?;
    assert_eq!(raw.reply_text()?, "+PONG\r\n");

    let event =
        format!("*5\r\n$9\r\nEVENT.ADD\r\n$2\r\nc9\r\n$5\r\nclick\r\n$2\r\nTS\r\n$13\r\n{T0}\r\n");
    for byte in event.as_bytes() {
        raw.send(&[*byte])?;
    }
    assert_eq!(raw.reply_text()?, ACK1_RESP2);

    // Writes, an error, a read that must see the writes, and an inline command in one go.
    let mut batch = Vec::new();
    for i in 1..=3 {
        batch.extend_from_slice(format!("EVENT.ADD c10 click TS {}\r\n", T0 + i).as_bytes());
    }
    batch.extend_from_slice(b"EVENT.ADD c10 purchase -3.5\r\n");
    batch.extend_from_slice(b"*2\r\n$11\r\nPROFILE.GET\r\n$3\r\nc10\r\n");
    batch.extend_from_slice(b"ECHO \"done\\x21\"\r\n");
    raw.send(&batch)?;
    for version in 1..=3 {
        let reply = raw.reply_text()?;
        assert!(
            reply.starts_with(&format!("*8\r\n$7\r\nversion\r\n:{version}\r\n")),
            "{reply}"
        );
    }
    assert_eq!(
        raw.reply_text()?,
        "-ERR invalid event: field value: -3.5 for kind purchase must be >= 0\r\n"
    );
    let profile = raw.reply_text()?;
    assert!(
        profile.contains("$11\r\nevent_count\r\n:3\r\n"),
        "{profile}"
    );
    assert_eq!(raw.reply_text()?, "$5\r\ndone!\r\n");
    Ok(())
}

#[test]
fn hello_3_switches_to_maps_and_hello_2_back() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    assert_eq!(raw.call(&["HELLO", "3"])?, hello_reply(3, 1));
    assert_eq!(
        raw.call(&["EVENT.ADD", "c1", "click", "TS", &T0.to_string()])?,
        ACK1_RESP3
    );
    assert_eq!(raw.call(&["PROFILE.GET", "nobody"])?, "_\r\n");
    assert_eq!(
        raw.call(&["CONFIG", "GET", "save"])?,
        "%1\r\n$4\r\nsave\r\n$0\r\n\r\n"
    );
    let keyspace = "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n";
    assert_eq!(
        raw.call(&["INFO", "keyspace"])?,
        format!("={}\r\ntxt:{keyspace}\r\n", keyspace.len() + 4)
    );
    assert_eq!(raw.call(&["HELLO", "2"])?, hello_reply(2, 1));
    assert_eq!(raw.call(&["PROFILE.GET", "nobody"])?, "$-1\r\n");
    assert_eq!(
        raw.call(&["CONFIG", "GET", "save"])?,
        "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
    );
    assert_eq!(
        raw.call(&["HELLO", "4"])?,
        "-NOPROTO unsupported protocol version\r\n"
    );
    assert_eq!(
        raw.call(&["HELLO", "three"])?,
        "-ERR Protocol version is not an integer or out of range\r\n"
    );
    Ok(())
}

#[test]
fn command_errors_are_answered_and_the_connection_stays_usable() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    let cases: &[(&[&str], &str)] = &[
        (
            &["FOO", "bar", "baz"],
            "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n",
        ),
        (
            &["EVENT.ADD", "c1"],
            "-ERR wrong number of arguments for 'event.add' command; usage: EVENT.ADD customer \
             kind [value] [CATEGORY category] [ITEM item] [TS time] [ID event_id]\r\n",
        ),
        (
            &["EVENT.ADD", "c1", "purchase", "-3.5"],
            "-ERR invalid event: field value: -3.5 for kind purchase must be >= 0\r\n",
        ),
        (
            &["EVENT.ADD", "c1", "purchase"],
            "-ERR invalid event: field value is required for kind purchase\r\n",
        ),
        (
            &["EVENT.ADD", "c1", "click", "TS", "-1"],
            "-ERR invalid event: field timestamp: -1 must be unix milliseconds between 1970-01-01 \
             and 2200-01-01 (0..=7258118400000)\r\n",
        ),
        (
            &["EVENT.ADD", "c1", "click", "COLOR", "red"],
            "-ERR invalid event: field value: COLOR must be a number (or an option: CATEGORY, \
             ITEM, TS or ID)\r\n",
        ),
        (
            &["EVENT.ADD", "c1", "click", "1", "COLOR", "red"],
            "-ERR syntax error: unknown option 'COLOR'; expected CATEGORY, ITEM, TS or ID; usage: \
             EVENT.ADD customer kind [value] [CATEGORY category] [ITEM item] [TS time] [ID event_id]\r\n",
        ),
        (
            &["PROFILE.GET", ""],
            "-ERR invalid event: field customer_id must not be empty\r\n",
        ),
        (
            &["PROFILE.GET", "c1", "VERSION", "0"],
            "-ERR invalid VERSION '0': must be a whole number >= 1\r\n",
        ),
        (
            &["PROFILE.SET", "c1", "", "x"],
            "-ERR invalid argument attribute name: \"\" must not be empty\r\n",
        ),
        (
            &["SEGMENT.MEMBERS", "99"],
            "-ERR invalid segment '99': this store has segments 0 to 7\r\n",
        ),
        (
            &["SEGMENT.MEMBERS", "0", "COUNT", "0"],
            "-ERR invalid COUNT '0': must be a whole number from 1 to 10000\r\n",
        ),
        (
            &["SEGMENT.MEMBERS", "0", "CURSOR", "xyz"],
            "-ERR invalid CURSOR 'xyz': use 0 to start, then the cursor the previous reply \
             returned\r\n",
        ),
        (
            &["SELECT", "1"],
            "-ERR DB index is out of range: Persona has a single database, 0\r\n",
        ),
        (
            &["AUTH", "pw"],
            "-ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?\r\n",
        ),
        (
            &["CLIENT", "KILL", "x"],
            "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n",
        ),
        (
            &["CONFIG", "SET", "save", ""],
            "-ERR CONFIG SET is not supported: the server's settings are fixed when it starts \
             (see persona serve --help)\r\n",
        ),
        (
            &["SHUTDOWN", "ABORT"],
            "-ERR SHUTDOWN ABORT is not supported: a Persona shutdown cannot be cancelled\r\n",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(&raw.call(args)?, expected, "{args:?}");
    }
    assert_eq!(raw.call(&["PING"])?, "+PONG\r\n");
    assert_eq!(raw.call(&["SELECT", "0"])?, "+OK\r\n");
    Ok(())
}

#[test]
fn malformed_framing_is_answered_then_the_connection_closes() -> TestResult {
    let server = TestServer::start(|c| c.max_request_len = 4096)?;
    let cases: &[(&[u8], &str)] = &[
        (
            b"*1\r\n$x\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*1\r\n$2000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*5000\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"PING \"unclosed\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"*1\r\n$3\r\nPINGX\r\n",
            "-ERR Protocol error: expected '\\r\\n' after bulk data\r\n",
        ),
        (
            b"PING\r\n*1\r\n$x\r\n",
            "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (bytes, expected) in cases {
        let mut raw = server.raw()?;
        raw.send(bytes)?;
        let mut got = String::new();
        while got.len() < expected.len() {
            got.push_str(&raw.reply_text()?);
        }
        assert_eq!(&got, expected, "{:?}", String::from_utf8_lossy(bytes));
        raw.assert_closed()?;
    }

    let mut big = server.raw()?;
    let mut request = b"*2\r\n$4\r\nECHO\r\n$100000\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 8192));
    big.send(&request)?;
    assert_eq!(
        big.reply_text()?,
        "-ERR Protocol error: request is larger than 4096 bytes\r\n"
    );
    big.assert_closed()?;

    assert_eq!(server.raw()?.call(&["PING"])?, "+PONG\r\n");
    Ok(())
}

#[test]
fn a_password_guards_everything_but_auth_hello_and_quit() -> TestResult {
    let server = TestServer::start(|c| c.requirepass = Some("s3cret".into()))?;
    let mut raw = server.raw()?;
    let noauth = "-NOAUTH Authentication required.\r\n";
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(raw.call(&["PING"])?, noauth);
    assert_eq!(raw.call(&["PROFILE.GET", "c1"])?, noauth);
    assert!(raw
        .call(&["NOPE"])?
        .starts_with("-ERR unknown command 'NOPE'"));
    assert_eq!(raw.call(&["AUTH", "wrong"])?, wrongpass);
    assert_eq!(raw.call(&["AUTH", "admin", "s3cret"])?, wrongpass);
    assert!(raw
        .call(&["HELLO", "3"])?
        .starts_with("-NOAUTH HELLO must be called with the client already authenticated"));
    assert_eq!(
        raw.call(&["HELLO", "3", "AUTH", "default", "nope"])?,
        wrongpass
    );
    assert_eq!(raw.call(&["PING"])?, noauth);
    assert_eq!(
        raw.call(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "w1"])?,
        hello_reply(3, 1)
    );
    assert_eq!(raw.call(&["CLIENT", "GETNAME"])?, "$2\r\nw1\r\n");
    assert_eq!(raw.call(&["PING"])?, "+PONG\r\n");

    let mut other = server.raw()?;
    assert_eq!(other.call(&["AUTH", "s3cret"])?, "+OK\r\n");
    assert_eq!(other.call(&["DBSIZE"])?, ":0\r\n");
    let mut quitter = server.raw()?;
    assert_eq!(quitter.call(&["QUIT"])?, "+OK\r\n");
    quitter.assert_closed()?;

    let mut anonymous = server.client()?;
    let refused = redis::cmd("PING").query::<String>(&mut anonymous);
    assert_eq!(
        refused.map_err(|e| e.code().map(str::to_owned)),
        Err(Some("NOAUTH".into()))
    );
    let authed = redis::Client::open(format!("redis://:s3cret@{}/", server.addr))?;
    let pong: String = redis::cmd("PING").query(&mut authed.get_connection()?)?;
    assert_eq!(pong, "PONG");
    Ok(())
}

#[test]
fn connections_over_the_limit_are_turned_away() -> TestResult {
    let server = TestServer::start(|c| c.max_clients = 1)?;
    let mut first = server.raw()?;
    assert_eq!(first.call(&["PING"])?, "+PONG\r\n");
    let mut second = server.raw()?;
    assert_eq!(
        second.reply_text()?,
        "-ERR max number of clients reached\r\n"
    );
    second.assert_closed()?;
    assert_eq!(first.call(&["PING"])?, "+PONG\r\n");
    Ok(())
}

#[test]
fn inline_commands_work_like_redis_cli_telnet_sessions() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    raw.send(
        format!("EVENT.ADD c-in purchase 12.5 CATEGORY \"home garden\" TS {T0} ID 'o 1'\r\n")
            .as_bytes(),
    )?;
    assert!(raw
        .reply_text()?
        .starts_with("*8\r\n$7\r\nversion\r\n:1\r\n"));
    raw.send(b"PROFILE.GET c-in\n")?;
    let profile = raw.reply_text()?;
    assert!(
        profile.contains("$11\r\nevent_count\r\n:1\r\n"),
        "{profile}"
    );
    raw.send(b"\r\n\r\nPING\r\n")?;
    assert_eq!(raw.reply_text()?, "+PONG\r\n");
    Ok(())
}

#[test]
fn segment_members_page_through_every_segment_like_scan() -> TestResult {
    let server = TestServer::start_with(|c| c.segments(3).reservoir_size(10), |_| {})?;
    let mut con = server.client()?;
    let mut pipe = redis::pipe();
    for i in 0..60 {
        let kind = if i % 3 == 0 { "purchase" } else { "view" };
        pipe.cmd("EVENT.ADD")
            .arg(format!("c{i:02}"))
            .arg(kind)
            .arg(i)
            .arg("TS")
            .arg(T0 + i)
            .ignore();
    }
    pipe.query::<()>(&mut con)?;
    let segments: Vec<Value> = redis::cmd("SEGMENT.LIST").query(&mut con)?;
    assert_eq!(segments.len(), 3);
    let mut total = 0;
    for (id, segment) in segments.into_iter().enumerate() {
        let info = fields(segment);
        assert_eq!(info["id"], Value::Int(id as i64));
        let Value::Int(size) = info["size"] else {
            panic!("size is {:?}", info["size"]);
        };
        let mut members: Vec<String> = Vec::new();
        let mut cursor = "0".to_string();
        loop {
            let (next, page): (String, Vec<String>) = redis::cmd("SEGMENT.MEMBERS")
                .arg(id)
                .arg("CURSOR")
                .arg(&cursor)
                .arg("COUNT")
                .arg(4)
                .query(&mut con)?;
            assert!(page.len() <= 4);
            members.extend(page);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        // In key order: by id in a plain store, by token (a keyed hash of the id) in an
        // encrypted one, as here. Every member once.
        let mut sorted = members.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), members.len(), "pages without repeats");
        assert_eq!(members.len() as i64, size);
        total += size;
    }
    assert!(total > 0, "some customers were assigned");
    Ok(())
}

#[test]
fn shutdown_answers_what_was_sent_before_it_and_keeps_every_write() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend_from_slice(format!("EVENT.ADD c-down click TS {}\r\n", T0 + i).as_bytes());
    }
    batch.extend_from_slice(b"SHUTDOWN\r\n");
    raw.send(&batch)?;
    for version in 1..=50 {
        let reply = raw.reply_text()?;
        assert!(reply.starts_with(&format!("*8\r\n$7\r\nversion\r\n:{version}\r\n")));
    }
    raw.assert_closed()?;
    let (dir, result) = server.wait()?;
    result?;
    let db = Db::open_with(Config::new(dir.path()))?;
    let profile = db.profile("c-down")?.ok_or("profile lost")?;
    assert_eq!(profile.event_count, 50);
    db.close()?;
    Ok(())
}

#[test]
fn a_shutdown_handle_stops_the_server_with_clients_connected() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut idle = server.raw()?;
    assert_eq!(idle.call(&["PING"])?, "+PONG\r\n");
    let mut half = server.raw()?;
    half.send(b"*2\r\n$4\r\nECHO\r\n")?;
    let dir = server.path();
    server.stop()?;
    idle.assert_closed()?;
    half.assert_closed()?;
    Db::open(dir)?.close()?;
    Ok(())
}

#[test]
fn idle_connections_are_closed_when_a_timeout_is_set() -> TestResult {
    let server = TestServer::start(|c| c.idle_timeout = Some(std::time::Duration::from_secs(1)))?;
    let mut raw = server.raw()?;
    assert_eq!(raw.call(&["PING"])?, "+PONG\r\n");
    raw.assert_closed()?;
    Ok(())
}

#[test]
fn tool_commands_answer_what_clients_ask_on_connect() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    assert_eq!(raw.call(&["CLIENT", "ID"])?, ":1\r\n");
    assert_eq!(raw.call(&["CLIENT", "GETNAME"])?, "$-1\r\n");
    assert_eq!(raw.call(&["CLIENT", "SETNAME", "loader"])?, "+OK\r\n");
    assert_eq!(raw.call(&["CLIENT", "GETNAME"])?, "$6\r\nloader\r\n");
    assert_eq!(
        raw.call(&["CLIENT", "SETNAME", "two words"])?,
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        raw.call(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"])?,
        "+OK\r\n"
    );
    assert_eq!(raw.call(&["ECHO", "hi"])?, "$2\r\nhi\r\n");
    assert_eq!(raw.call(&["PING", "hi"])?, "$2\r\nhi\r\n");
    assert_eq!(raw.call(&["COMMAND", "COUNT"])?, ":47\r\n");
    assert_eq!(
        raw.call(&["COMMAND", "INFO", "event.add", "nope"])?,
        "*2\r\n*10\r\n$9\r\nevent.add\r\n:-3\r\n*2\r\n+write\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
         *0\r\n*0\r\n*0\r\n*0\r\n$-1\r\n"
    );
    let docs = raw.call(&["COMMAND", "DOCS", "segment.members"])?;
    assert!(docs.starts_with("*2\r\n$15\r\nsegment.members\r\n*8\r\n$7\r\nsummary\r\n"));
    assert!(docs.contains("$5\r\ntoken\r\n$6\r\nCURSOR\r\n$5\r\nflags\r\n*1\r\n+optional\r\n"));
    let config = raw.call(&["CONFIG", "GET", "appendonly", "save", "max*"])?;
    assert_eq!(
        config,
        "*8\r\n$10\r\nmaxclients\r\n$4\r\n1024\r\n$4\r\nsave\r\n$0\r\n\r\n\
         $10\r\nappendonly\r\n$3\r\nyes\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
    );
    assert!(!raw.call(&["CONFIG", "GET", "*"])?.contains("requirepass"));
    assert_eq!(
        raw.call(&["EVENT.ADD", "c1", "click"])?.len(),
        ACK1_RESP2.len()
    );
    let info = raw.call(&["INFO"])?;
    for section in [
        "Server",
        "Clients",
        "Persistence",
        "Stats",
        "Keyspace",
        "Model",
    ] {
        assert!(
            info.contains(&format!("# {section}\r\n")),
            "{section}: {info}"
        );
    }
    assert!(info.contains("db0:keys=1,expires=0,avg_ttl=0\r\n"));
    assert!(info.contains("connected_clients:1\r\n"));
    assert!(info.contains("model_version:1\r\n"));
    let stats = raw.call(&["info", "STATS"])?;
    assert!(stats.contains("total_commands_processed:"));
    assert!(!stats.contains("# Server"));
    // One event, one commit, as `Db::stats` counts it: the profile record, the new customer's
    // entry in the segment sample and the model state are 3 key writes (the refit row waits for
    // the day's end; an encrypted store keeps no copy of the expiry queue).
    assert!(stats.contains("persona_commits:1\r\n"), "{stats}");
    assert!(stats.contains("persona_items_committed:1\r\n"), "{stats}");
    assert!(stats.contains("persona_key_writes:3\r\n"), "{stats}");
    let bytes_written: u64 = stats
        .split("persona_bytes_written:")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .and_then(|n| n.parse().ok())
        .ok_or("no persona_bytes_written line")?;
    assert!(bytes_written > 0, "{stats}");
    assert_eq!(raw.call(&["DBSIZE"])?, ":1\r\n");
    let help = raw.call(&["CONFIG", "HELP"])?;
    assert!(help.contains("CONFIG GET parameter [parameter ...]"));
    Ok(())
}

// postmortem: `CLUSTER INFO` and `CLUSTER SLOTS` were unknown commands, which `redis-cli -c` and
// cluster-probing clients do not read as "a single server".
#[test]
fn cluster_probes_are_answered_as_by_a_redis_without_cluster_support() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    for args in [
        &["CLUSTER", "INFO"][..],
        &["CLUSTER", "SLOTS"],
        &["cluster", "nodes"],
        &["CLUSTER", "SHARDS"],
    ] {
        assert_eq!(
            raw.call(args)?,
            "-ERR This instance has cluster support disabled\r\n",
            "{args:?}"
        );
    }
    let section = "# Cluster\r\ncluster_enabled:0\r\n";
    assert_eq!(
        raw.call(&["INFO", "cluster"])?,
        format!("${}\r\n{section}\r\n", section.len())
    );
    assert!(raw.call(&["INFO"])?.contains(section));
    // A client library sees an ordinary server error and the connection stays usable.
    let mut con = server.client()?;
    let err = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Value>(&mut con)
        .err()
        .ok_or("CLUSTER SLOTS is refused")?;
    assert!(
        err.to_string().contains("cluster support disabled"),
        "{err}"
    );
    let pong: String = redis::cmd("PING").query(&mut con)?;
    assert_eq!(pong, "PONG");
    Ok(())
}

#[test]
fn hostile_bytes_never_take_the_server_down() -> TestResult {
    let server = TestServer::start(|c| c.limits.max_bulk_len = 4096)?;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
    let pieces: &[&[u8]] = &[
        b"*",
        b"$",
        b"\r\n",
        b"-1",
        b"0",
        b"99999999999999999999",
        b"EVENT.ADD",
        b"PROFILE.GET",
        b"HELLO",
        b"3",
        b"\"",
        b"'",
        b"\\x",
        b"\x00",
        b"\xff",
        b" ",
        b"\n",
        b"%2",
        b"SEGMENT.MEMBERS",
        b"CURSOR",
        b"COUNT",
        b"TS",
        b"purchase",
        b"-3.5",
        b"nan",
        b"CLIENT",
        b"SETNAME",
    ];
    for _ in 0..40 {
        let mut raw = server.raw()?;
        let mut bytes = Vec::new();
        for _ in 0..rng.gen_range(1..60) {
            if rng.gen_bool(0.2) {
                let n = rng.gen_range(1..16);
                bytes.extend((0..n).map(|_| rng.gen::<u8>()));
            } else {
                bytes.extend_from_slice(pieces[rng.gen_range(0..pieces.len())]);
            }
        }
        raw.send(&bytes)?;
        raw.close_write()?;
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut raw.stream, &mut sink);
    }
    // Well-formed commands with random arguments must each get exactly one reply.
    let names = [
        "EVENT.ADD",
        "PROFILE.GET",
        "PROFILE.SET",
        "SEGMENT.MEMBERS",
        "CLIENT",
        "AUTH",
    ];
    let words = [
        "c1", "click", "purchase", "1e308", "-0", "TS", "COUNT", "0", "", "\u{7}", "3",
    ];
    let mut raw = server.raw()?;
    for _ in 0..300 {
        let mut args = vec![names[rng.gen_range(0..names.len())]];
        for _ in 0..rng.gen_range(0..6) {
            args.push(words[rng.gen_range(0..words.len())]);
        }
        let reply = raw.call(&args)?;
        assert!(!reply.is_empty());
    }
    assert_eq!(server.raw()?.call(&["PING"])?, "+PONG\r\n");
    Ok(())
}

#[test]
fn a_command_waiting_for_its_commit_does_not_hold_up_other_connections() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = persona::Db::open(dir.path())?;
    let server = TestServer::over(db.clone(), dir)?;
    let mut writer = server.raw()?;
    // More connections than there are event loops, so some share the writer's loop.
    let mut others = (0..9)
        .map(|_| server.raw())
        .collect::<Result<Vec<_>, _>>()?;
    for other in &mut others {
        assert_eq!(other.call(&["PING"])?, "+PONG\r\n");
    }
    // Every commit from now on waits in the apply stage, far longer than the PINGs below take.
    db.delay_applies(std::time::Duration::from_secs(2));
    writer.command(&["PROFILE.SET", "c-wait", "age", "41"])?;
    for other in &mut others {
        assert_eq!(other.call(&["PING"])?, "+PONG\r\n");
    }
    // The PINGs were answered while the write still waited for its commit (had it run on the
    // event loop, the PINGs sharing that loop would have waited for the commit too).
    writer.stream.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    let pending = std::io::Read::read(&mut writer.stream, &mut byte);
    assert!(
        matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{pending:?}"
    );
    writer.stream.set_nonblocking(false)?;
    assert_eq!(writer.reply_text()?, ":1\r\n");
    db.delay_applies(std::time::Duration::ZERO);
    Ok(())
}

#[test]
fn a_client_that_pipelines_without_reading_gets_every_reply_in_order() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    assert_eq!(
        raw.call(&["EVENT.ADD", "c-big", "purchase", "7", "TS", &T0.to_string()])?,
        ACK1_RESP2
    );
    let profile = raw.call(&["PROFILE.GET", "c-big"])?;
    assert!(profile.len() > 1000, "{}", profile.len());
    // About 8 MB of replies, far more than the socket buffers and the server's output bound
    // hold: the server stops reading while the client is not reading, and goes on after.
    let n = 6000;
    let writer = {
        let mut stream = raw.stream.try_clone()?;
        std::thread::spawn(move || -> std::io::Result<()> {
            let one = b"*2\r\n$11\r\nPROFILE.GET\r\n$5\r\nc-big\r\n";
            let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * n).collect();
            std::io::Write::write_all(&mut stream, &batch)?;
            std::io::Write::write_all(&mut stream, b"*1\r\n$4\r\nPING\r\n")
        })
    };
    for i in 0..n {
        assert_eq!(raw.reply_text()?, profile, "reply {i}");
    }
    assert_eq!(raw.reply_text()?, "+PONG\r\n");
    writer.join().map_err(|_| "the writing thread panicked")??;
    Ok(())
}

#[test]
fn a_client_that_closes_right_after_its_commands_is_answered_and_closed() -> TestResult {
    let server = TestServer::start(|_| {})?;
    // Commands and the end of input often arrive together: the server must still notice the
    // end, answer, and close (before the fix it kept most such connections open for ever).
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
                let mut stream = std::net::TcpStream::connect(addr)?;
                stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
                std::io::Write::write_all(&mut stream, "PING\r\n".repeat(20).as_bytes())?;
                stream.shutdown(std::net::Shutdown::Write)?;
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut stream, &mut got)?;
                Ok(got)
            })
        })
        .collect();
    for handle in handles {
        let got = handle.join().map_err(|_| "a client thread panicked")??;
        assert_eq!(String::from_utf8(got)?, "+PONG\r\n".repeat(20));
    }
    let mut raw = server.raw()?;
    let info = raw.call(&["INFO", "clients"])?;
    assert!(info.contains("connected_clients:1\r\n"), "{info}");
    Ok(())
}

#[test]
fn events_without_an_id_are_all_applied_and_ts_takes_rfc_3339() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut con = server.client()?;
    // Ten id-less events in one pipeline, no TS: the server's clock gives most of them the same
    // millisecond, and each used to be acknowledged as a duplicate of the first.
    let mut pipe = redis::pipe();
    for _ in 0..10 {
        pipe.cmd("EVENT.ADD").arg("dupcheck").arg("click");
    }
    let acks: Vec<Value> = pipe.query(&mut con)?;
    for ack in acks {
        assert_eq!(fields(ack)["duplicate"], Value::Int(0));
    }
    let profile = fields(redis::cmd("PROFILE.GET").arg("dupcheck").query(&mut con)?);
    assert_eq!(profile["event_count"], Value::Int(10));
    // An ID still makes a retry idempotent.
    for expected in [0, 1] {
        let ack: Value = redis::cmd("EVENT.ADD")
            .arg("dupcheck")
            .arg("click")
            .arg("ID")
            .arg("r-1")
            .query(&mut con)?;
        assert_eq!(fields(ack)["duplicate"], Value::Int(expected));
    }
    // TS as RFC 3339, as in files; a 1997 time is accepted.
    let _: Value = redis::cmd("EVENT.ADD")
        .arg("old")
        .arg("view")
        .arg("TS")
        .arg("1997-03-04T05:06:07Z")
        .query(&mut con)?;
    let old = fields(redis::cmd("PROFILE.GET").arg("old").query(&mut con)?);
    assert_eq!(old["first_seen_ms"], Value::Int(857_451_967_000));
    Ok(())
}

#[test]
fn clock_dated_events_after_historical_data_are_counted_and_shown() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    let count = |raw: &mut crate::common::resp::Raw| -> Result<String, Box<dyn std::error::Error>> {
        let info = raw.call(&["INFO", "stats"])?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("persona_clock_events_after_history:"))
            .ok_or("INFO stats lacks persona_clock_events_after_history")?
            .to_string())
    };
    // Historical data with its own times, then a future-refused event.
    raw.call(&["EVENT.ADD", "h", "click", "TS", "2020-01-01T00:00:00Z"])?;
    assert_eq!(count(&mut raw)?, "0");
    let far = raw.call(&["EVENT.ADD", "h", "click", "TS", "2150-01-01T00:00:00Z"])?;
    assert!(
        far.starts_with("-ERR invalid event: field timestamp: 5680281600000"),
        "{far}"
    );
    assert!(far.contains("max_future_skew_secs"), "{far}");
    // Then one without TS: dated by the clock, years after the data.
    raw.call(&["EVENT.ADD", "h", "click"])?;
    assert_eq!(count(&mut raw)?, "1");
    let mut con = server.client()?;
    let info = fields(redis::cmd("MODEL.INFO").query(&mut con)?);
    let Value::Array(warnings) = &info["warnings"] else {
        panic!("MODEL.INFO warnings is not an array: {info:?}");
    };
    let [Value::BulkString(w)] = warnings.as_slice() else {
        panic!("expected one warning, got {warnings:?}");
    };
    let w = String::from_utf8_lossy(w);
    assert!(w.contains("pass the event's own time with TS"), "{w}");
    Ok(())
}
