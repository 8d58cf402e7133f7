//! What the server is and can do: `COMMAND` (used by `redis-cli` for its hints), `CONFIG GET`
//! (asked by `redis-benchmark` and client libraries on connect), `INFO`, and `CLUSTER` (probed
//! by `redis-cli -c` and cluster-aware clients), answered as a Redis without cluster support.

use super::{
    lookup, subcommand, ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Spec, COMMANDS,
};
use crate::server::frame::{Frame, Proto};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

/// `COMMAND`.
pub(crate) const COMMAND: Spec = Spec {
    name: "COMMAND",
    arity: -1,
    flags: &["loading", "stale"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Describes every command (with no subcommand), or as the subcommand asks.",
    args: &[],
    subcommands: &[COMMAND_COUNT, COMMAND_DOCS, COMMAND_INFO, COMMAND_LIST],
    parse: |args| {
        if args.remaining() == 0 {
            Ok(Command::Commands(CommandQuery::All))
        } else {
            subcommand(args)
        }
    },
    container: "",
};

const COMMAND_COUNT: Spec = Spec {
    name: "COUNT",
    arity: 2,
    flags: &["loading", "stale"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Returns the number of commands.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::Commands(CommandQuery::Count)),
    container: "COMMAND",
};

const COMMAND_DOCS: Spec = Spec {
    name: "DOCS",
    arity: -2,
    flags: &["loading", "stale"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Returns the documentation of the named commands, or of all.",
    args: &[ArgDoc::new("command-name", ArgKind::String)
        .optional()
        .multiple()],
    subcommands: &[],
    parse: |args| Ok(Command::Commands(CommandQuery::Docs(rest(args)))),
    container: "COMMAND",
};

const COMMAND_INFO: Spec = Spec {
    name: "INFO",
    arity: -2,
    flags: &["loading", "stale"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Describes the named commands, or all.",
    args: &[ArgDoc::new("command-name", ArgKind::String)
        .optional()
        .multiple()],
    subcommands: &[],
    parse: |args| Ok(Command::Commands(CommandQuery::Info(rest(args)))),
    container: "COMMAND",
};

const COMMAND_LIST: Spec = Spec {
    name: "LIST",
    arity: 2,
    flags: &["loading", "stale"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Returns the names of all commands.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::Commands(CommandQuery::List)),
    container: "COMMAND",
};

/// `CONFIG`.
pub(crate) const CONFIG: Spec = Spec {
    name: "CONFIG",
    arity: -2,
    flags: &[],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "A container for configuration commands.",
    args: &[],
    subcommands: &[CONFIG_GET, CONFIG_SET],
    parse: subcommand,
    container: "",
};

const CONFIG_GET: Spec = Spec {
    name: "GET",
    arity: -3,
    flags: &["admin", "loading", "stale"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Returns the settings whose names match the glob patterns.",
    args: &[ArgDoc::new("parameter", ArgKind::String).multiple()],
    subcommands: &[],
    parse: |args| Ok(Command::ConfigGet(ConfigGet(rest(args)))),
    container: "CONFIG",
};

const CONFIG_SET: Spec = Spec {
    name: "SET",
    arity: -4,
    flags: &["admin"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Not supported: settings are fixed when the server starts.",
    args: &[ArgDoc::new(
        "data",
        ArgKind::Block(&[
            ArgDoc::new("parameter", ArgKind::String),
            ArgDoc::new("value", ArgKind::String),
        ]),
    )
    .multiple()],
    subcommands: &[],
    parse: |args| {
        rest(args);
        Ok(Command::ConfigSet)
    },
    container: "CONFIG",
};

/// `INFO`.
pub(crate) const INFO: Spec = Spec {
    name: "INFO",
    arity: -1,
    flags: &["loading", "stale"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Returns server, client, persistence, statistics, keyspace and model information.",
    args: &[ArgDoc::new("section", ArgKind::String)
        .optional()
        .multiple()],
    subcommands: &[],
    parse: |args| {
        let sections = rest(args)
            .iter()
            .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
            .collect();
        Ok(Command::Info(Info(sections)))
    },
    container: "",
};

/// Every argument not read yet.
fn rest(args: &mut Args) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| args.next()).collect()
}

/// `COMMAND` and its subcommands, in Redis 7's reply shapes.
///
/// # Format
///
/// ```text
/// COMMAND                          -> *N\r\n<info>...       (every command)
/// COMMAND COUNT                    -> :34\r\n
/// COMMAND LIST                     -> *18\r\n$9\r\nevent.add\r\n...
/// COMMAND INFO [command-name ...]  -> *1\r\n<info>        (null for an unknown name)
/// COMMAND DOCS [command-name ...]  -> %1\r\n$9\r\nevent.add\r\n%4\r\n$7\r\nsummary\r\n...
///
/// <info> = *10\r\n$9\r\nevent.add\r\n:-3\r\n~2\r\n+write\r\n+fast\r\n:1\r\n:1\r\n:1\r\n
///          ~0\r\n~0\r\n*0\r\n*0\r\n       (name, arity, flags, first/last key, step,
///                                           acl categories, tips, key specs, subcommands)
/// ```
#[derive(Debug)]
pub(crate) enum CommandQuery {
    All,
    Count,
    List,
    Info(Vec<Vec<u8>>),
    Docs(Vec<Vec<u8>>),
}

impl CommandQuery {
    pub(crate) fn apply(self) -> Frame {
        match self {
            CommandQuery::All => Frame::Array(COMMANDS.iter().map(info).collect()),
            CommandQuery::Count => super::int(u64::try_from(COMMANDS.len()).unwrap_or(0)),
            CommandQuery::List => Frame::Array(
                COMMANDS
                    .iter()
                    .map(|s| Frame::bulk(s.full_name()))
                    .collect(),
            ),
            CommandQuery::Info(names) => Frame::Array(
                names
                    .iter()
                    .map(|n| lookup(n).map_or(Frame::Null, info))
                    .collect(),
            ),
            CommandQuery::Docs(names) => {
                let specs: Vec<&Spec> = if names.is_empty() {
                    COMMANDS.iter().collect()
                } else {
                    names.iter().filter_map(|n| lookup(n)).collect()
                };
                Frame::Map(
                    specs
                        .into_iter()
                        .map(|s| (Frame::bulk(s.full_name()), docs(s)))
                        .collect(),
                )
            }
        }
    }
}

fn status_set(items: &[&str]) -> Frame {
    Frame::Set(items.iter().map(|s| Frame::Simple((*s).into())).collect())
}

/// One command as `COMMAND INFO` describes it.
fn info(spec: &Spec) -> Frame {
    Frame::Array(vec![
        Frame::bulk(spec.full_name()),
        Frame::Integer(spec.arity),
        status_set(spec.flags),
        Frame::Integer(spec.key),
        Frame::Integer(spec.key),
        Frame::Integer(i64::from(spec.key != 0)),
        status_set(&[]),
        status_set(&[]),
        Frame::Array(Vec::new()),
        Frame::Array(spec.subcommands.iter().map(info).collect()),
    ])
}

/// One command as `COMMAND DOCS` describes it (the shape `redis-cli` reads for its hints).
fn docs(spec: &Spec) -> Frame {
    let mut fields = vec![
        ("summary", Frame::bulk(spec.summary)),
        ("since", Frame::bulk(spec.since)),
        ("group", Frame::bulk(spec.group)),
    ];
    if !spec.args.is_empty() {
        fields.push(("arguments", arg_docs(spec.args)));
    }
    if !spec.subcommands.is_empty() {
        let subs = spec
            .subcommands
            .iter()
            .map(|s| (Frame::bulk(s.full_name()), docs(s)))
            .collect();
        fields.push(("subcommands", Frame::Map(subs)));
    }
    Frame::map_from(fields)
}

fn arg_docs(args: &[ArgDoc]) -> Frame {
    Frame::Array(
        args.iter()
            .map(|arg| {
                let mut fields = vec![
                    ("name", Frame::bulk(arg.name)),
                    ("type", Frame::bulk(arg.type_name())),
                ];
                if let Some(token) = arg.token {
                    fields.push(("token", Frame::bulk(token)));
                }
                let flags: Vec<&str> = [(arg.optional, "optional"), (arg.multiple, "multiple")]
                    .into_iter()
                    .filter_map(|(on, flag)| on.then_some(flag))
                    .collect();
                if !flags.is_empty() {
                    fields.push(("flags", status_set(&flags)));
                }
                if let ArgKind::OneOf(items) | ArgKind::Block(items) = arg.kind {
                    fields.push(("arguments", arg_docs(items)));
                }
                Frame::map_from(fields)
            })
            .collect(),
    )
}

/// Settings matching glob patterns (`*`, `?`), as name/value pairs. Only what clients and tools
/// ask for is reported; the password never is.
///
/// # Format
///
/// ```text
/// CONFIG GET parameter [parameter ...]
///
/// *3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n
/// -> RESP2: *2\r\n$4\r\nsave\r\n$0\r\n\r\n     RESP3: %1\r\n$4\r\nsave\r\n$0\r\n\r\n
/// ```
#[derive(Debug)]
pub(crate) struct ConfigGet(Vec<Vec<u8>>);

impl ConfigGet {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Frame {
        let server = ctx.server;
        let config = &server.config;
        let db = server.db.config();
        let settings: [(&str, String); 11] = [
            ("bind", server.local_addr.ip().to_string()),
            ("port", server.local_addr.port().to_string()),
            ("databases", "1".into()),
            ("maxclients", config.max_clients.to_string()),
            (
                "timeout",
                config.idle_timeout.map_or(0, |t| t.as_secs()).to_string(),
            ),
            ("save", String::new()),
            ("appendonly", "yes".into()),
            ("maxmemory", "0".into()),
            ("proto-max-bulk-len", config.limits.max_bulk_len.to_string()),
            ("persona-durability", db.durability.as_str().into()),
            ("persona-data-dir", db.path.display().to_string()),
        ];
        Frame::map_from(
            settings
                .into_iter()
                .filter(|(name, _)| self.0.iter().any(|p| glob_match(p, name.as_bytes())))
                .map(|(name, value)| (name, Frame::bulk(value))),
        )
    }
}

/// `CONFIG SET`: refused.
pub(crate) fn config_set() -> Frame {
    CommandError::Other(
        "CONFIG SET is not supported: the server's settings are fixed when it starts \
         (see persona serve --help)"
            .into(),
    )
    .into()
}

/// Case-insensitive glob match, as Redis matches `CONFIG GET` patterns (see
/// [`crate::server::pubsub::glob`]).
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    crate::server::pubsub::glob(pattern, name, true)
}

/// Server information as `field:value` lines in sections, like Redis's `INFO`. With no section
/// named (or `all`, `default`, `everything`), every section: `server`, `clients`,
/// `persistence`, `stats`, `cluster` (`cluster_enabled:0`), `keyspace`, `model`.
///
/// # Format
///
/// ```text
/// INFO [section ...]
///
/// *2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n
/// -> RESP2: $N\r\n# Stats\r\ntotal_connections_received:3\r\n...\r\n
///    RESP3: =N\r\ntxt:# Stats\r\n...\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Info(Vec<String>);

const SECTIONS: [&str; 7] = [
    "server",
    "clients",
    "persistence",
    "stats",
    "cluster",
    "keyspace",
    "model",
];

impl Info {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Frame {
        let all = self.0.is_empty()
            || self
                .0
                .iter()
                .any(|s| matches!(s.as_str(), "all" | "default" | "everything"));
        let mut text = String::new();
        for section in SECTIONS {
            if all || self.0.iter().any(|s| s == section) {
                if !text.is_empty() {
                    text.push_str("\r\n");
                }
                info_section(ctx, section, &mut text);
            }
        }
        match ctx.session.proto {
            Proto::Resp3 => Frame::Verbatim {
                format: *b"txt",
                text: text.into_bytes(),
            },
            Proto::Resp2 => Frame::Bulk(text.into_bytes()),
        }
    }
}

fn info_section(ctx: &Ctx<'_>, section: &str, out: &mut String) {
    let server = ctx.server;
    let title = match section {
        "server" => "Server",
        "clients" => "Clients",
        "persistence" => "Persistence",
        "stats" => "Stats",
        "cluster" => "Cluster",
        "keyspace" => "Keyspace",
        _ => "Model",
    };
    let _ = write!(out, "# {title}\r\n");
    let mut line = |name: &str, value: &dyn std::fmt::Display| {
        let _ = write!(out, "{name}:{value}\r\n");
    };
    match section {
        "server" => {
            // The Redis version whose protocol and connection commands this server speaks;
            // some client libraries read it to choose features.
            line("redis_version", &"7.0.0");
            line("persona_version", &env!("CARGO_PKG_VERSION"));
            line("redis_mode", &"standalone");
            line("os", &std::env::consts::OS);
            line("arch", &std::env::consts::ARCH);
            line("process_id", &std::process::id());
            line("tcp_port", &server.local_addr.port());
            let uptime = server.started.elapsed().as_secs();
            line("uptime_in_seconds", &uptime);
            line("uptime_in_days", &(uptime / 86_400));
        }
        "clients" => {
            line("connected_clients", &server.connected_clients());
            line("maxclients", &server.config.max_clients);
        }
        "persistence" => {
            let config = server.db.config();
            line("loading", &0);
            line("durability", &config.durability.as_str());
            line("data_dir", &config.path.display());
            match server.db.size_on_disk() {
                Ok(bytes) => line("size_on_disk", &bytes),
                Err(e) => line("size_on_disk_error", &e),
            }
        }
        "stats" => {
            let stats = &server.stats;
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            line(
                "total_connections_received",
                &get(&stats.connections_received),
            );
            line("total_commands_processed", &get(&stats.commands_processed));
            line("rejected_connections", &get(&stats.rejected_connections));
            // EVENT.ADDs dated by the server's clock far after the store's data (see
            // ServerState::clock_event), and the largest such gap in days.
            line(
                "persona_clock_events_after_history",
                &get(&stats.clock_events_after_history),
            );
            line(
                "persona_clock_gap_days",
                &format!("{:.1}", get(&stats.clock_gap_ms) as f64 / 86_400_000.0),
            );
            // The write pipeline's totals since the store opened: committed sled batches, the
            // items they held, and the keys and bytes they wrote (items per commit is the
            // group-commit size under load).
            let writes = server.db.stats();
            line("persona_commits", &writes.commits);
            line("persona_items_committed", &writes.items);
            line("persona_key_writes", &writes.key_writes);
            line("persona_bytes_written", &writes.bytes_written);
            // Triggers since the store opened: firings written, and those a cooldown or the
            // daily cap suppressed; connections subscribed to trigger channels.
            let triggers = server.db.triggers();
            line(
                "persona_trigger_firings",
                &triggers.iter().map(|t| t.fired).sum::<u64>(),
            );
            line(
                "persona_trigger_suppressed",
                &triggers.iter().map(|t| t.suppressed).sum::<u64>(),
            );
            line("persona_trigger_subscribers", &server.pubsub.subscribers());
        }
        "cluster" => line(
            "cluster_enabled",
            &u8::from(server.config.cluster.is_some()),
        ),
        "keyspace" => {
            let keys = server.db.profile_count();
            line("db0", &format!("keys={keys},expires=0,avg_ttl=0"));
        }
        _ => {
            let m = server.db.model_info();
            let metric = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
            line("model_version", &m.version);
            line("model_watermark_ms", &m.watermark_ms);
            line("model_examples", &m.examples);
            line("model_positives", &m.positives);
            line("model_pending_examples", &m.pending_examples);
            line("model_rolling_auc", &metric(m.rolling_auc));
            line("model_log_loss", &metric(m.log_loss));
            line("model_segments", &m.segments.len());
            line("model_segments_seeded", &u8::from(m.segments_seeded));
            line("model_dim", &m.dim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_redis() {
        assert!(glob_match(b"*", b"save"));
        assert!(glob_match(b"SAVE", b"save"));
        assert!(glob_match(b"app*", b"appendonly"));
        assert!(glob_match(b"*only", b"appendonly"));
        assert!(glob_match(b"s?ve", b"save"));
        assert!(glob_match(b"*a*e*", b"databases"));
        assert!(!glob_match(b"sav", b"save"));
        assert!(!glob_match(b"save?", b"save"));
        assert!(!glob_match(b"", b"save"));
        assert!(glob_match(b"**", b""));
    }
}
