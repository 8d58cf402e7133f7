//! `CLUSTER` and the cluster connection commands (`ASKING`, `READONLY`, `READWRITE`).
//!
//! A single-node server answers them as a Redis without cluster support does (which
//! cluster-probing clients read as "a single server"). A node of a cluster (feature `cluster`,
//! [`crate::ServerConfig::cluster`]) answers them from the partition → owner map it has
//! installed, in Redis 7's formats, so that Redis Cluster clients route by customer id
//! (`docs/cluster.md`).

use super::{ArgDoc, ArgKind, Command, CommandError, Ctx, Spec};
use crate::cluster::{key_slot, ClusterMap, ClusterView, Member, Writes, SLOTS};
use crate::server::frame::Frame;
use std::fmt::Write as _;

/// `CLUSTER subcommand [arg ...]`.
///
/// # Format
///
/// ```text
/// CLUSTER SLOTS          -> *N\r\n*3\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\n<id>\r\n*0\r\n...
/// CLUSTER SHARDS         -> *N\r\n(map: slots, nodes)...
/// CLUSTER NODES          -> $<len>\r\n<id> 127.0.0.1:7001@17001 myself,master - 0 0 3 connected 0-5460\n...
/// CLUSTER INFO           -> $<len>\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\n...
/// CLUSTER KEYSLOT key    -> :12739\r\n
/// CLUSTER MYID           -> $40\r\n<id>\r\n
/// (a single node)        -> -ERR This instance has cluster support disabled\r\n
/// ```
pub(crate) const CLUSTER: Spec = Spec {
    name: "CLUSTER",
    arity: -2,
    flags: &["loading", "stale"],
    key: 0,
    group: "cluster",
    since: "0.1.0",
    summary: "The cluster's slots, shards, nodes and state as Redis Cluster reports them; refused as by a Redis without cluster support on a single node.",
    args: &[
        ArgDoc::new("subcommand", ArgKind::String),
        ArgDoc::new("arg", ArgKind::String).optional().multiple(),
    ],
    subcommands: &[],
    parse: |args| {
        let sub = args.next().unwrap_or_default();
        let rest: Vec<Vec<u8>> = std::iter::from_fn(|| args.next()).collect();
        Ok(Command::Cluster(Query {
            sub: String::from_utf8_lossy(&sub).to_ascii_uppercase(),
            args: rest,
        }))
    },
    container: "",
};

/// `ASKING`: accepted (a node never answers `-ASK`: partitions move whole, with `-MOVED`).
pub(crate) const ASKING: Spec = connection_command(
    "ASKING",
    "Accepted for Redis Cluster clients: Persona never answers -ASK.",
);
/// `READONLY`: accepted (every node answers reads for the slots it owns).
pub(crate) const READONLY: Spec = connection_command(
    "READONLY",
    "Accepted for Redis Cluster clients: reads go to the owner.",
);
/// `READWRITE`: accepted.
pub(crate) const READWRITE: Spec =
    connection_command("READWRITE", "Accepted for Redis Cluster clients.");

const fn connection_command(name: &'static str, summary: &'static str) -> Spec {
    Spec {
        name,
        arity: 1,
        flags: &["fast", "loading", "stale"],
        key: 0,
        group: "cluster",
        since: "0.1.0",
        summary,
        args: &[],
        subcommands: &[],
        parse: |_| Ok(Command::ClusterConnection),
        container: "",
    }
}

/// A parsed `CLUSTER` command.
#[derive(Debug)]
pub(crate) struct Query {
    sub: String,
    args: Vec<Vec<u8>>,
}

impl Query {
    pub(crate) fn apply(self, ctx: &Ctx<'_>) -> Frame {
        let Some(view) = ctx.server.config.cluster.as_deref() else {
            return disabled();
        };
        let map = view.map();
        let argc = |n: usize| -> Result<(), CommandError> {
            if self.args.len() == n {
                Ok(())
            } else {
                Err(CommandError::Arity {
                    command: format!("cluster|{}", self.sub.to_ascii_lowercase()),
                    usage: format!("CLUSTER {}{}", self.sub, if n == 1 { " key" } else { "" }),
                })
            }
        };
        let reply = match self.sub.as_str() {
            "SLOTS" => argc(0).map(|()| slots(map.as_ref())),
            "SHARDS" => argc(0).map(|()| shards(map.as_ref(), view)),
            "NODES" => argc(0).map(|()| Frame::bulk(nodes(map.as_ref(), view))),
            "INFO" => argc(0).map(|()| Frame::bulk(info(map.as_ref()))),
            "MYID" => argc(0).map(|()| Frame::bulk(view.id())),
            "KEYSLOT" => argc(1).map(|()| Frame::Integer(i64::from(key_slot(&self.args[0])))),
            _ => Err(CommandError::UnknownSubcommand {
                sub: super::args::show(self.sub.as_bytes()),
                container: "CLUSTER",
            }),
        };
        reply.unwrap_or_else(Frame::from)
    }
}

/// `ASKING`, `READONLY`, `READWRITE`.
pub(crate) fn connection(ctx: &Ctx<'_>) -> Frame {
    match ctx.server.config.cluster {
        Some(_) => Frame::ok(),
        None => disabled(),
    }
}

/// Word for word what Redis answers when its `cluster-enabled` is `no` (clients match it).
pub(crate) fn disabled() -> Frame {
    Frame::error("ERR This instance has cluster support disabled")
}

/// `host` and `port` of an advertised address (validated at join: an IP and a port).
fn host_port(addr: &str) -> (&str, i64) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (
            host.trim_start_matches('[').trim_end_matches(']'),
            port.parse().unwrap_or(0),
        ),
        None => (addr, 0),
    }
}

fn slots(map: Option<&ClusterMap>) -> Frame {
    let Some(map) = map else {
        return Frame::Array(Vec::new());
    };
    Frame::Array(
        map.slot_ranges()
            .into_iter()
            .map(|(first, last, owner)| {
                let (host, port) = host_port(&owner.addr);
                Frame::Array(vec![
                    Frame::Integer(i64::from(first)),
                    Frame::Integer(i64::from(last)),
                    Frame::Array(vec![
                        Frame::bulk(host),
                        Frame::Integer(port),
                        Frame::bulk(&owner.id),
                        Frame::Map(Vec::new()),
                    ]),
                ])
            })
            .collect(),
    )
}

fn shards(map: Option<&ClusterMap>, view: &ClusterView) -> Frame {
    let Some(map) = map else {
        return Frame::Array(Vec::new());
    };
    let ranges = map.slot_ranges();
    Frame::Array(
        map.members
            .iter()
            .map(|m| {
                let slots = ranges
                    .iter()
                    .filter(|(_, _, owner)| owner.id == m.id)
                    .flat_map(|(a, b, _)| {
                        [Frame::Integer(i64::from(*a)), Frame::Integer(i64::from(*b))]
                    })
                    .collect();
                Frame::map_from([
                    ("slots", Frame::Array(slots)),
                    ("nodes", Frame::Array(vec![shard_node(m, view)])),
                ])
            })
            .collect(),
    )
}

fn shard_node(m: &Member, _view: &ClusterView) -> Frame {
    let (host, port) = host_port(&m.addr);
    Frame::map_from([
        ("id", Frame::bulk(&m.id)),
        ("port", Frame::Integer(port)),
        ("ip", Frame::bulk(host)),
        ("endpoint", Frame::bulk(host)),
        ("role", Frame::bulk("master")),
        ("replication-offset", Frame::Integer(0)),
        ("health", Frame::bulk("online")),
    ])
}

fn nodes(map: Option<&ClusterMap>, view: &ClusterView) -> String {
    let mut out = String::new();
    let Some(map) = map else {
        let (host, port) = host_port(view.addr());
        let _ = writeln!(
            out,
            "{} {host}:{port}@{} myself,master - 0 0 0 connected",
            view.id(),
            port + 10000
        );
        return out;
    };
    let ranges = map.slot_ranges();
    for m in &map.members {
        let (host, port) = host_port(&m.addr);
        let flags = if m.id == view.id() {
            "myself,master"
        } else {
            "master"
        };
        let _ = write!(
            out,
            "{} {host}:{port}@{} {flags} - 0 0 {} connected",
            m.id,
            port + 10000,
            map.epoch
        );
        for (a, b, _) in ranges.iter().filter(|(_, _, o)| o.id == m.id) {
            if a == b {
                let _ = write!(out, " {a}");
            } else {
                let _ = write!(out, " {a}-{b}");
            }
        }
        out.push('\n');
    }
    out
}

fn info(map: Option<&ClusterMap>) -> String {
    let assigned: u32 = map.map_or(0, |m| {
        m.slot_ranges()
            .iter()
            .map(|(a, b, _)| u32::from(*b) - u32::from(*a) + 1)
            .sum()
    });
    let state = if assigned == u32::from(SLOTS) {
        "ok"
    } else {
        "fail"
    };
    let members = map.map_or(0, |m| m.members.len());
    let serving = map.map_or(0, |m| {
        m.members
            .iter()
            .filter(|x| !m.partitions_of(&x.id).is_empty())
            .count()
    });
    let epoch = map.map_or(0, |m| m.epoch);
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{members}\r\n\
         cluster_size:{serving}\r\ncluster_current_epoch:{epoch}\r\ncluster_my_epoch:{epoch}\r\n\
         cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n"
    )
}

/// A cluster node's partition log, where its writes go (None: a single node, or a view without
/// a log).
pub(crate) fn log_of<'a>(ctx: &'a Ctx<'_>) -> Option<&'a std::sync::Arc<dyn Writes>> {
    ctx.server
        .config
        .cluster
        .as_deref()
        .and_then(ClusterView::writes)
}

/// Queues `item` with the partition log `writes`; the returned write is answered (and
/// `notify` told) once the item is appended and applied.
pub(crate) fn through_log(
    writes: &dyn Writes,
    item: crate::pipeline::Item,
    notify: Option<(std::sync::Arc<dyn crate::pipeline::Notify>, usize)>,
) -> crate::db::PendingWrite {
    let (reply, pending) = crate::db::write_channel(notify);
    writes.submit(item, reply);
    pending
}

/// Where a keyed command must run: None here, or the error a Redis Cluster node answers.
pub(crate) fn misrouted(view: &ClusterView, key: &[u8]) -> Option<CommandError> {
    let route = view.route(key);
    route
        .refusal()
        .or_else(|| match view.writes() {
            Some(w) => w.ready(key).err(),
            // Between the server's start and its partition log's: a write now would bypass
            // the log.
            None => Some(crate::Error::Redirect(
                "TRYAGAIN this node is starting: its partition log is not running yet".into(),
            )),
        })
        .map(CommandError::Db)
}
