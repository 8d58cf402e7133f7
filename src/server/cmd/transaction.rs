//! `MULTI`, `EXEC`, `DISCARD`: queue commands and run them together, as Redis clients expect
//! (redis-py's default pipeline wraps its commands in `MULTI` … `EXEC`).
//!
//! The queueing itself lives in the connection handler (it owns the queue); this file holds the
//! table entries. Between `MULTI` and `EXEC` every command is parsed and checked at once: a
//! refused one is answered with its error and marks the transaction failed (its `EXEC` answers
//! `-EXECABORT` and runs nothing); an accepted one is answered `+QUEUED`. `EXEC` runs the queued
//! commands in order and answers an array of their replies. Each write is atomic and durable on
//! its own, as outside a transaction; writes of other connections may interleave between them.

use super::{Command, Spec};

/// `MULTI`.
pub(crate) const MULTI: Spec = Spec {
    name: "MULTI",
    arity: 1,
    flags: &["fast", "no-multi"],
    key: 0,
    group: "transactions",
    since: "0.1.0",
    summary: "Starts a transaction: later commands are queued until EXEC.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::Multi),
    container: "",
};

/// `EXEC`.
pub(crate) const EXEC: Spec = Spec {
    name: "EXEC",
    arity: 1,
    flags: &["no-multi"],
    key: 0,
    group: "transactions",
    since: "0.1.0",
    summary: "Runs the queued commands in order and returns their replies as an array.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::Exec),
    container: "",
};

/// `DISCARD`.
pub(crate) const DISCARD: Spec = Spec {
    name: "DISCARD",
    arity: 1,
    flags: &["fast", "no-multi"],
    key: 0,
    group: "transactions",
    since: "0.1.0",
    summary: "Drops the queued commands and leaves the transaction.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::Discard),
    container: "",
};
