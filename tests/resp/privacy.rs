//! `PROFILE.DEL` and `PROFILE.EXPORT` over the wire, with the `redis` crate and raw bytes:
//! the export is the library's document, deletion leaves no trace in the store, both answer
//! unknown customers and bad ids as documented, and a pipelined delete sees the connection's
//! earlier writes.

use crate::common::resp::{TestResult, TestServer};
use crate::common::T0;
use persona::testing::DbInternals;
use persona::{Config, Db, Durability};

const ID: &str = "resp-erase-1d4e";

fn server() -> Result<(TestServer, Db), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    let server = TestServer::over(db.clone(), dir)?;
    Ok((server, db))
}

fn holds(db: &Db, id: &str) -> Result<bool, Box<dyn std::error::Error>> {
    let sled = db.store().sled();
    for name in sled.tree_names() {
        for item in sled.open_tree(&name)?.iter() {
            let (k, v) = item?;
            for bytes in [&k[..], &v[..]] {
                if bytes.windows(id.len()).any(|w| w == id.as_bytes()) {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

#[test]
fn export_returns_the_library_document_and_del_erases() -> TestResult {
    let (server, db) = server()?;
    let mut con = server.client()?;
    for i in 0..3i64 {
        let _: redis::Value = redis::cmd("EVENT.ADD")
            .arg(ID)
            .arg("purchase")
            .arg(10 + i)
            .arg("TS")
            .arg(T0 + i)
            .arg("ID")
            .arg(format!("order-{i}"))
            .query(&mut con)?;
    }
    let _: i64 = redis::cmd("PROFILE.SET")
        .arg(ID)
        .arg("email")
        .arg(format!("{ID}@example.com"))
        .query(&mut con)?;

    let text: String = redis::cmd("PROFILE.EXPORT").arg(ID).query(&mut con)?;
    // Byte for byte the library's document (compared as text: serde_json's default float
    // parsing is not exact in the last digit).
    let expected = db.export_customer(ID)?.expect("known").to_json();
    assert_eq!(text, expected.to_string());
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(doc["version"], 4);
    assert_eq!(doc["dedupe_ids_held"], 3);
    assert_eq!(
        doc["profile"]["attributes"]["email"],
        format!("{ID}@example.com")
    );
    let none: Option<String> = redis::cmd("PROFILE.EXPORT").arg("nobody").query(&mut con)?;
    assert_eq!(none, None);

    // An encrypted store (the default) holds the id in no key and no value, sealed or not: the
    // record is found through its token.
    assert!(!holds(&db, ID)?);
    assert!(db.profile(ID)?.is_some());
    let erased: i64 = redis::cmd("PROFILE.DEL").arg(ID).query(&mut con)?;
    assert_eq!(erased, 1);
    assert!(!holds(&db, ID)?, "the store still holds {ID:?}");
    let again: i64 = redis::cmd("PROFILE.DEL").arg(ID).query(&mut con)?;
    assert_eq!(again, 0);
    let profile: redis::Value = redis::cmd("PROFILE.GET").arg(ID).query(&mut con)?;
    assert_eq!(profile, redis::Value::Nil);
    let none: Option<String> = redis::cmd("PROFILE.EXPORT").arg(ID).query(&mut con)?;
    assert_eq!(none, None);
    Ok(())
}

#[test]
fn raw_replies_errors_and_pipelining() -> TestResult {
    let (server, db) = server()?;
    let mut raw = server.raw()?;
    // A pipelined delete waits for the connection's in-flight EVENT.ADD, so it erases it.
    raw.command(&["EVENT.ADD", "c-pipe", "click", "TS", &T0.to_string()])?;
    raw.command(&["PROFILE.DEL", "c-pipe"])?;
    raw.command(&["PROFILE.EXPORT", "c-pipe"])?;
    let ack = raw.reply_text()?;
    assert!(ack.starts_with("*8\r\n"), "{ack}");
    assert_eq!(raw.reply_text()?, ":1\r\n");
    assert_eq!(raw.reply_text()?, "$-1\r\n");
    assert!(db.profile("c-pipe")?.is_none());

    assert_eq!(raw.call(&["PROFILE.DEL", "unknown"])?, ":0\r\n");
    assert_eq!(
        raw.call(&["PROFILE.DEL"])?,
        "-ERR wrong number of arguments for 'profile.del' command; usage: PROFILE.DEL \
         customer\r\n"
    );
    assert_eq!(
        raw.call(&["PROFILE.EXPORT", "a", "b"])?,
        "-ERR wrong number of arguments for 'profile.export' command; usage: PROFILE.EXPORT \
         customer\r\n"
    );
    let err = raw.call(&["PROFILE.DEL", ""])?;
    assert!(
        err.starts_with("-ERR invalid event: field customer_id")
            && err.contains("must not be empty"),
        "{err}"
    );
    let err = raw.call(&["PROFILE.EXPORT", &"x".repeat(200)])?;
    assert!(err.contains("at most 128 bytes"), "{err}");
    // The connection stays usable; RESP3 answers an unknown customer with its null.
    assert_eq!(raw.call(&["PING"])?, "+PONG\r\n");
    raw.command(&["HELLO", "3"])?;
    raw.reply()?;
    assert_eq!(raw.call(&["PROFILE.EXPORT", "unknown"])?, "_\r\n");
    let info = raw.call(&["COMMAND", "INFO", "PROFILE.DEL", "PROFILE.EXPORT"])?;
    assert!(
        info.contains("profile.del") && info.contains("write"),
        "{info}"
    );
    assert!(
        info.contains("profile.export") && info.contains("readonly"),
        "{info}"
    );
    Ok(())
}

#[test]
fn consent_is_set_with_profile_set_and_refusals_say_why() -> TestResult {
    let (server, db) = server()?;
    let mut con = server.client()?;
    let set = |con: &mut redis::Connection, purpose: &str, v: &str| -> redis::RedisResult<i64> {
        redis::cmd("PROFILE.SET")
            .arg("c1")
            .arg(format!("consent.{purpose}"))
            .arg(v)
            .query(con)
    };
    set(&mut con, "profiling", "false")?;
    // An event of a customer without consent to profiling: stored, no segment.
    let ack: std::collections::HashMap<String, redis::Value> = redis::cmd("EVENT.ADD")
        .arg(&["c1", "purchase", "12", "TS"])
        .arg(T0)
        .query(&mut con)?;
    assert_eq!(ack["segment"], redis::Value::Nil);
    assert_eq!(db.profile("c1")?.map(|p| p.event_count), Some(1));
    let refused = |con: &mut redis::Connection, cmd: &str, purpose: &str| {
        let err = redis::cmd(cmd)
            .arg("c1")
            .query::<redis::Value>(con)
            .unwrap_err()
            .to_string();
        let says = format!("has not consented to {purpose}");
        assert!(err.contains(&says), "{cmd}: {err}");
    };
    refused(&mut con, "SCORE", "profiling");
    refused(&mut con, "SIMILAR", "profiling");
    set(&mut con, "profiling", "true")?;
    set(&mut con, "marketing", "no")?;
    refused(&mut con, "STRATEGY", "marketing");
    refused(&mut con, "RECOMMEND", "marketing");
    let err = set(&mut con, "marketing", "perhaps")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("allowed true, false, yes, no, 1 or 0"),
        "{err}"
    );
    let export = db.export_customer("c1")?.ok_or("c1")?;
    let changes = crate::common::consent_changes(&export);
    assert_eq!(
        changes,
        [
            ("profiling", false),
            ("profiling", true),
            ("marketing", false)
        ]
    );
    Ok(())
}
