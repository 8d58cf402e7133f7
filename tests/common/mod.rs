//! Helpers shared by the integration tests: time constants, the `persona` binary ([`cli`]), an
//! in-process RESP server and a raw client ([`resp`]), and direct access to a closed store's
//! sled database ([`store`]). Every test binary declares `mod common;` and uses a subset.
#![allow(dead_code)]

use persona::{Config, Durability};
use std::path::Path;

pub mod cli;
pub mod resp;
pub mod store;

/// One day in milliseconds.
pub const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z in unix milliseconds: the start of the tests' event streams.
pub const T0: i64 = 1_767_225_600_000;

/// The tests' usual store at `dir`: 4 segments, writes flushed (not fsynced) before they are
/// acknowledged, encrypted with the [`shared_key`] (so that stores compared with each other
/// scan their customers in the same order). Tests that need more change it with the builder.
pub fn config(dir: &Path) -> Config {
    Config::new(dir)
        .segments(4)
        .durability(Durability::Flush)
        .key_file(shared_key())
}

/// [`config`] for a plain (unencrypted) store: for tests that read or damage the bytes of the
/// plain layout (ids in keys, values as encoded).
pub fn plain_config(dir: &Path) -> Config {
    config(dir).encryption(persona::Encryption::Off)
}

/// The store key of the tests that compare stores: two stores created with the same key name
/// (and so scan) their customers alike, so that what they compute from the same events is
/// bit-identical. A key file, mode 0600, made once per test binary.
pub fn shared_key() -> &'static Path {
    static KEY: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    let (_, path) = KEY.get_or_init(|| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("shared.key");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("a new key file");
        f.write_all(SHARED_KEY_HEX.as_bytes())
            .expect("the key written");
        (dir, path)
    });
    path
}

/// Makes the data directory `data` (mode 0700) with the [`shared_key`] as its `store.key`, so
/// that the store a `persona` process creates there is encrypted with it (stores compared with
/// each other must share a key: see [`shared_key`]).
pub fn with_shared_key(data: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data.join("store.key"))?;
    std::io::Write::write_all(&mut f, SHARED_KEY_HEX.as_bytes())
}

/// The bytes of [`shared_key`], as `PERSONA_KEY` takes them (for child processes).
pub const SHARED_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// `persona check` of the closed store in `dir`, made by [`config`] or [`plain_config`] (with
/// the [`shared_key`] when it is encrypted) or by a default configuration (its key in `dir`).
pub fn check_store(dir: &Path) -> persona::Result<persona::CheckReport> {
    if dir.join("store.key").exists() {
        // A store made with the default configuration keeps its generated key there.
        return persona::check_store(dir);
    }
    persona::check_store_with(&config(dir))
}

/// (purpose, granted) of each consent change an export lists, oldest first.
pub fn consent_changes(export: &persona::CustomerExport) -> Vec<(&str, bool)> {
    export
        .consent
        .changes
        .iter()
        .map(|c| (c.purpose, c.granted))
        .collect()
}
