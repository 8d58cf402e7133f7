//! Helpers shared by the tests that run the real `persona` binary (`tests/cli.rs`,
//! `tests/cli_privacy.rs`, `tests/evaluate.rs`, `tests/drift.rs`).

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// The tests' result type.
pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs `persona --data DATA ARGS…` and returns what it printed and how it exited.
pub fn persona(data: &Path, args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()?)
}

/// Runs a command that must exit with `code`; returns (stdout, stderr).
#[track_caller]
pub fn run(data: &Path, args: &[&str], code: i32) -> Result<(String, String)> {
    let out = persona(data, args)?;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(code), "persona {args:?}: {stderr}");
    Ok((String::from_utf8(out.stdout)?, stderr))
}

/// Runs a command that must succeed and returns its stdout.
#[track_caller]
pub fn ok(data: &Path, args: &[&str]) -> Result<String> {
    Ok(run(data, args, 0)?.0)
}

/// Runs a command that must succeed and parses its stdout as JSON (the arguments as given).
#[track_caller]
pub fn stdout_json(data: &Path, args: &[&str]) -> Result<Value> {
    Ok(serde_json::from_str(&ok(data, args)?)?)
}

/// Runs a command with `--json` appended that must succeed, and parses its output.
#[track_caller]
pub fn json(data: &Path, args: &[&str]) -> Result<Value> {
    let mut args = args.to_vec();
    args.push("--json");
    stdout_json(data, &args)
}

/// Asserts that `v` is a JSON object holding every key of `keys`.
#[track_caller]
pub fn assert_keys(v: &Value, keys: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for k in keys {
        assert!(obj.contains_key(*k), "key {k:?} missing in {v}");
    }
}
