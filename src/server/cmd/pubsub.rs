//! `SUBSCRIBE`, `PSUBSCRIBE`, `UNSUBSCRIBE`, `PUNSUBSCRIBE`: live trigger firings on the
//! channels `persona:trigger:<name>` (`src/server/pubsub.rs`). Parsed here; the connection runs
//! them (`handler.rs`), as they change what it sends without being asked.

use super::args::utf8;
use super::{ArgDoc, ArgKind, Args, Command, CommandError, Spec};

/// `SUBSCRIBE`.
pub(crate) const SUBSCRIBE: Spec = Spec {
    name: "SUBSCRIBE",
    arity: -2,
    flags: &["pubsub", "noscript", "loading", "stale"],
    key: 0,
    group: "pubsub",
    since: "0.2.0",
    summary: "Listens for trigger firings on channels (persona:trigger:<name>).",
    args: &[ArgDoc::new("channel", ArgKind::String).multiple()],
    subcommands: &[],
    parse: |args| names(args, "channel").map(Command::Subscribe),
    container: "",
};

/// `PSUBSCRIBE`.
pub(crate) const PSUBSCRIBE: Spec = Spec {
    name: "PSUBSCRIBE",
    arity: -2,
    flags: &["pubsub", "noscript", "loading", "stale"],
    key: 0,
    group: "pubsub",
    since: "0.2.0",
    summary: "Listens for trigger firings on channels matching glob-style patterns.",
    args: &[ArgDoc::new("pattern", ArgKind::String).multiple()],
    subcommands: &[],
    parse: |args| names(args, "pattern").map(Command::PSubscribe),
    container: "",
};

/// `UNSUBSCRIBE`.
pub(crate) const UNSUBSCRIBE: Spec = Spec {
    name: "UNSUBSCRIBE",
    arity: -1,
    flags: &["pubsub", "noscript", "loading", "stale"],
    key: 0,
    group: "pubsub",
    since: "0.2.0",
    summary: "Stops listening on the channels given, or on all.",
    args: &[ArgDoc::new("channel", ArgKind::String)
        .optional()
        .multiple()],
    subcommands: &[],
    parse: |args| names(args, "channel").map(Command::Unsubscribe),
    container: "",
};

/// `PUNSUBSCRIBE`.
pub(crate) const PUNSUBSCRIBE: Spec = Spec {
    name: "PUNSUBSCRIBE",
    arity: -1,
    flags: &["pubsub", "noscript", "loading", "stale"],
    key: 0,
    group: "pubsub",
    since: "0.2.0",
    summary: "Stops listening on the patterns given, or on all.",
    args: &[ArgDoc::new("pattern", ArgKind::String)
        .optional()
        .multiple()],
    subcommands: &[],
    parse: |args| names(args, "pattern").map(Command::PUnsubscribe),
    container: "",
};

/// The remaining arguments as UTF-8 names.
fn names(args: &mut Args, what: &'static str) -> Result<Vec<String>, CommandError> {
    let mut out = Vec::new();
    while let Some(a) = args.next() {
        out.push(utf8(what, a)?);
    }
    Ok(out)
}
