//! MULTI / EXEC / DISCARD, as the `redis` crate's atomic pipelines (and redis-py's default
//! pipelines) send them, and the `[server]` table of the configuration file.

use crate::common::resp::{TestResult, TestServer};
use crate::common::T0;
use persona::ServerConfig;
use redis::Value;
use std::time::Duration;

#[test]
fn an_atomic_pipeline_runs_its_commands_and_answers_their_replies_in_order() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut con = server.client()?;
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..5 {
        pipe.cmd("EVENT.ADD")
            .arg("c-tx")
            .arg("view")
            .arg("TS")
            .arg(T0 + i);
    }
    pipe.cmd("PROFILE.SET").arg("c-tx").arg("region").arg("eu");
    pipe.cmd("PROFILE.GET").arg("c-tx");
    let replies: Vec<Value> = pipe.query(&mut con)?;
    assert_eq!(replies.len(), 7, "{replies:?}");
    let text = format!("{replies:?}");
    // The read at the end sees every write queued before it.
    assert!(text.contains("event_count"), "{text}");
    let profile: redis::Value = redis::cmd("PROFILE.GET").arg("c-tx").query(&mut con)?;
    let profile = format!("{profile:?}");
    assert!(profile.contains("\"eu\""), "{profile}");
    Ok(())
}

#[test]
fn raw_multi_exec_discard_answer_like_redis() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    raw.send(b"EXEC\r\n")?;
    assert_eq!(raw.reply_text()?, "-ERR EXEC without MULTI\r\n");
    raw.send(b"DISCARD\r\n")?;
    assert_eq!(raw.reply_text()?, "-ERR DISCARD without MULTI\r\n");

    raw.send(b"MULTI\r\n")?;
    assert_eq!(raw.reply_text()?, "+OK\r\n");
    raw.send(b"MULTI\r\n")?;
    assert_eq!(raw.reply_text()?, "-ERR MULTI calls can not be nested\r\n");
    raw.send(format!("EVENT.ADD c1 click TS {T0}\r\n").as_bytes())?;
    assert_eq!(raw.reply_text()?, "+QUEUED\r\n");
    raw.send(b"PING\r\n")?;
    assert_eq!(raw.reply_text()?, "+QUEUED\r\n");
    raw.send(b"PROFILE.GET c1\r\n")?;
    assert_eq!(raw.reply_text()?, "+QUEUED\r\n");
    raw.send(b"EXEC\r\n")?;
    let reply = raw.reply_text()?;
    assert!(
        reply.starts_with("*3\r\n*8\r\n$7\r\nversion\r\n:1\r\n"),
        "{reply}"
    );
    assert!(reply.contains("+PONG\r\n"), "{reply}");
    assert!(reply.contains("$11\r\nevent_count\r\n:1\r\n"), "{reply}");

    // DISCARD drops the queue: the event is never applied.
    raw.send(b"MULTI\r\n")?;
    assert_eq!(raw.reply_text()?, "+OK\r\n");
    raw.send(format!("EVENT.ADD c2 click TS {T0}\r\n").as_bytes())?;
    assert_eq!(raw.reply_text()?, "+QUEUED\r\n");
    raw.send(b"DISCARD\r\n")?;
    assert_eq!(raw.reply_text()?, "+OK\r\n");
    raw.send(b"PROFILE.GET c2\r\n")?;
    assert_eq!(raw.reply_text()?, "$-1\r\n");

    // A refused command aborts the whole transaction: nothing queued runs.
    raw.send(b"MULTI\r\n")?;
    assert_eq!(raw.reply_text()?, "+OK\r\n");
    raw.send(format!("EVENT.ADD c3 click TS {T0}\r\n").as_bytes())?;
    assert_eq!(raw.reply_text()?, "+QUEUED\r\n");
    raw.send(b"EVENT.ADD c3 teleport\r\n")?;
    let refused = raw.reply_text()?;
    assert!(
        refused.starts_with("-ERR invalid event: field kind: teleport must be one of"),
        "{refused}"
    );
    raw.send(b"SHUTDOWN\r\n")?;
    assert_eq!(
        raw.reply_text()?,
        "-ERR SHUTDOWN is not allowed inside a transaction\r\n"
    );
    raw.send(b"EXEC\r\n")?;
    assert_eq!(
        raw.reply_text()?,
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    raw.send(b"PROFILE.GET c3\r\n")?;
    assert_eq!(raw.reply_text()?, "$-1\r\n");

    // The connection is back to normal, and the server is still up.
    raw.send(b"PING\r\n")?;
    assert_eq!(raw.reply_text()?, "+PONG\r\n");
    Ok(())
}

#[test]
fn the_config_file_server_table_sets_every_server_option() -> TestResult {
    let c = ServerConfig::from_toml_str(
        "segments = 4\n[server]\nbind = \"127.0.0.1:7000\"\nrequirepass = \"pw\"\n\
         max_clients = 3\ntimeout_secs = 9\nunsafe_allow_no_password = true\n\
         max_bulk_len = 100\nmax_array_len = 10\nmax_inline_len = 50\nmax_request_len = 1000\n",
    )?;
    assert_eq!(c.bind, "127.0.0.1:7000");
    assert_eq!(c.requirepass.as_deref(), Some("pw"));
    assert_eq!(c.max_clients, 3);
    assert_eq!(c.idle_timeout, Some(Duration::from_secs(9)));
    assert!(c.unsafe_allow_no_password);
    assert_eq!(c.limits.max_bulk_len, 100);
    assert_eq!(c.limits.max_array_len, 10);
    assert_eq!(c.limits.max_inline_len, 50);
    assert_eq!(c.max_request_len, 1000);
    // The store's own parser accepts the same file.
    persona::Config::from_toml_str("d", "segments = 4\n[server]\nmax_clients = 3\n")?;

    let no_table = ServerConfig::from_toml_str("segments = 4\n")?;
    assert_eq!(no_table, ServerConfig::default());

    for (text, expected) in [
        (
            "[server]\nmax_clients = 0\n",
            "[server] max_clients: must be at least 1",
        ),
        (
            "[server]\nmax_bulk_len = 0\n",
            "[server] max_bulk_len: must be at least 1",
        ),
        (
            "[server]\nrequirepass = \"\"\n",
            "[server] requirepass: must not be empty",
        ),
        ("[server]\nport = 6379\n", "unknown field `port`"),
        ("[server]\nmax_clients = \"many\"\n", "invalid type"),
    ] {
        let err = ServerConfig::from_toml_str(text)
            .err()
            .ok_or_else(|| format!("{text:?} was accepted"))?
            .to_string();
        assert!(err.contains(expected), "{text:?}: {err}");
    }
    Ok(())
}

/// Nothing blocks inside a transaction, as in Redis: a queued `TRIGGER.READ … BLOCK 0` answers
/// what there is (nothing here) at once instead of stalling `EXEC` until a firing comes.
#[test]
fn a_blocking_read_inside_a_transaction_answers_at_once() -> TestResult {
    let server = TestServer::start(|_| {})?;
    let mut raw = server.raw()?;
    raw.send(b"MULTI\r\n")?;
    assert_eq!(raw.reply_text()?, "+OK\r\n");
    raw.send(b"TRIGGER.READ BLOCK 0\r\n")?;
    assert_eq!(raw.reply_text()?, "+QUEUED\r\n");
    raw.send(b"EXEC\r\n")?;
    assert_eq!(raw.reply_text()?, "*1\r\n*0\r\n");
    Ok(())
}
