//! `persona compact` / `storage::compact::compact`: a closed store is rewritten with one copy
//! of every live key, smaller on disk, with every key and value unchanged, and opens as before.

mod common;

use common::check_store;
use persona::generator::{Generator, GeneratorConfig};
use persona::testing::storage::compact::{
    compact, temp_path,
    CopyCompression::{AsStored, Level},
};
use persona::testing::DbInternals;
use persona::{Db, Event};
use std::path::Path;
use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;
/// Every key and value of a store, in key order.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A store whose profiles were rewritten many times (small batches), closed on return.
fn populated(dir: &Path) -> TestResult {
    let db = Db::open_with(common::config(dir))?;
    let events: Vec<Event> = Generator::new(GeneratorConfig {
        customers: 300,
        events: 12_000,
        seed: 3,
        ..GeneratorConfig::default()
    })?
    .collect();
    for chunk in events.chunks(40) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    db.close()?;
    Ok(())
}

/// Every key and value of the store, read through sled directly.
fn dump(dir: &Path) -> Result<Pairs, Box<dyn std::error::Error>> {
    let db = Db::open_with(common::config(dir))?;
    let out = db
        .store()
        .sled()
        .iter()
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()?;
    db.close()?;
    Ok(out)
}

#[test]
fn compaction_keeps_every_key_and_value_and_shrinks_the_store() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    populated(&dir)?;
    let before = dump(&dir)?;
    // A leftover of a compaction that stopped half-way is cleared, not trusted.
    std::fs::create_dir(temp_path(&dir))?;
    std::fs::write(temp_path(&dir).join("junk"), b"partial copy")?;

    let report = compact(&dir, 64, AsStored(0))?;
    assert!(report.keys as usize == before.len(), "{report:?}");
    assert!(
        report.bytes_after < report.bytes_before,
        "smaller on disk: {report:?}"
    );
    assert!(!temp_path(&dir).exists(), "the old files are gone");
    assert_eq!(dump(&dir)?, before);
    assert!(check_store(&dir)?.is_clean());
    // It still works as a store: writes and reads go on from where they were.
    let db = Db::open_with(common::config(&dir))?;
    let version = db.profile("c000001")?.map(|p| p.version);
    db.ingest(Event::new(
        "c000001",
        1_790_000_000_000, // after the generated data, before today
        persona::EventKind::View,
    ))?;
    assert_eq!(
        db.profile("c000001")?.map(|p| p.version),
        version.map(|v| v + 1).or(Some(1))
    );
    db.close()?;
    Ok(())
}

#[test]
fn compression_is_chosen_at_creation_kept_at_reopen_and_changed_by_compaction() -> TestResult {
    use persona::testing::storage::stored_compression;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    assert_eq!(stored_compression(&dir), None, "no store yet");
    // Created compressed.
    let db = Db::open_with(common::config(&dir).compression_level(3))?;
    db.ingest(Event::new(
        "c1",
        1_700_000_000_000,
        persona::EventKind::View,
    ))?;
    db.close()?;
    drop(db);
    assert_eq!(stored_compression(&dir), Some(true));
    // Reopened by a configuration that asks for none: still compressed, still readable and
    // writable (sled itself would refuse a different setting).
    let db = Db::open_with(common::config(&dir))?;
    assert_eq!(db.profile("c1")?.map(|p| p.event_count), Some(1));
    db.ingest(Event::new(
        "c1",
        1_700_000_001_000,
        persona::EventKind::View,
    ))?;
    db.close()?;
    drop(db);
    assert_eq!(stored_compression(&dir), Some(true));
    assert!(check_store(&dir)?.is_clean());
    let before = dump(&dir)?;

    // Compaction keeps it unless told otherwise, and converts both ways.
    compact(&dir, 64, AsStored(0))?;
    assert_eq!(stored_compression(&dir), Some(true));
    compact(&dir, 64, Level(0))?;
    assert_eq!(stored_compression(&dir), Some(false));
    assert_eq!(dump(&dir)?, before);
    compact(&dir, 64, Level(1))?;
    assert_eq!(stored_compression(&dir), Some(true));
    assert_eq!(dump(&dir)?, before);

    // An uncompressed store opened with a compression level stays uncompressed.
    compact(&dir, 64, Level(0))?;
    let db = Db::open_with(common::config(&dir).compression_level(5))?;
    assert_eq!(db.profile("c1")?.map(|p| p.event_count), Some(2));
    db.close()?;
    drop(db);
    assert_eq!(stored_compression(&dir), Some(false));
    Ok(())
}

#[test]
fn a_compressed_store_is_smaller_on_disk() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let plain = tmp.path().join("plain");
    // An unencrypted store: sealed values are as random as they look and do not compress (see
    // `Config::compression_level`).
    {
        let db = Db::open_with(common::plain_config(&plain))?;
        db.close()?;
    }
    populated(&plain)?;
    let packed = tmp.path().join("packed");
    // The same store, compacted into each form, so that only compression differs.
    let p = compact(&plain, 64, Level(0))?.bytes_after;
    copy_dir(&plain, &packed)?;
    let z = compact(&packed, 64, Level(3))?.bytes_after;
    assert_eq!(dump(&packed)?, dump(&plain)?);
    // Small stores carry sled's fixed overhead, which does not compress, records are packed
    // since format version 4 (sparse blocks, relative times), and the model state and its
    // snapshots (floats, hardly compressible) weigh more since model record version 2; how many
    // snapshots there are depends on how the writer grouped the commits. Measured 0.84–0.93 of
    // the uncompressed size over eight runs: a twentieth at least.
    assert!(
        z * 20 < p * 19,
        "compressed {z} bytes against {p} uncompressed"
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[test]
fn a_store_in_use_or_missing_is_refused_and_left_alone() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let err = compact(&dir, 64, AsStored(0)).unwrap_err().to_string();
    assert!(err.contains("holds no store"), "{err}");

    populated(&dir)?;
    let before = dump(&dir)?;
    let db = Db::open_with(common::config(&dir))?;
    let err = compact(&dir, 64, AsStored(0)).unwrap_err();
    assert!(matches!(&err, persona::Error::Locked { .. }), "{err}");
    db.close()?;
    drop(db);
    assert!(!temp_path(&dir).exists() || std::fs::read_dir(temp_path(&dir))?.count() == 0);
    assert_eq!(dump(&dir)?, before);
    Ok(())
}

#[test]
fn the_cli_compacts_and_reports() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    populated(&dir)?;
    let out = Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(&dir)
        .args(["compact", "--json"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(
        json["bytes_after"].as_u64() < json["bytes_before"].as_u64(),
        "{json}"
    );
    assert!(json["keys"].as_u64().is_some_and(|k| k > 300), "{json}");
    assert!(check_store(&dir)?.is_clean());
    Ok(())
}

#[cfg(target_os = "linux")]
#[test]
fn waiting_for_the_lock_sees_an_open_store_and_its_release() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let db = Db::open_with(common::config(&dir))?;
    let err = persona::testing::storage::wait_unlocked(&dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("still locked"), "{err}");
    db.close()?;
    drop(db);
    persona::testing::storage::wait_unlocked(&dir)?;
    // Free means free: sled opens it at once.
    drop(Db::open_with(common::config(&dir))?);
    Ok(())
}
