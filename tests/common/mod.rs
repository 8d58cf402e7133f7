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
/// acknowledged. Tests that need more change it with the builder.
pub fn config(dir: &Path) -> Config {
    Config::new(dir).segments(4).durability(Durability::Flush)
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
