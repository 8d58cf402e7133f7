//! `persona serve`: the RESP server (see docs/protocol.md). Runs until SIGINT or SIGTERM (or a
//! client's `SHUTDOWN`), then finishes in-flight commands, closes the store and exits 0.

use crate::server::{Server, ServerConfig, ShutdownHandle};
use crate::Db;
use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (host:port) [default: 127.0.0.1:6479]. A non-loopback address needs
    /// --requirepass or --unsafe-allow-no-password. Config file: `[server] bind`.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Password clients must give with AUTH (or HELLO ... AUTH) before any other command.
    /// Config file: `[server] requirepass`.
    #[arg(long, value_name = "PASS")]
    requirepass: Option<String>,
    /// Most connections served at once [default: 1024]. Config file:
    /// `[server] max_clients`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: Option<u32>,
    /// Close connections idle this many seconds; 0 never closes them [default: 0]. Config
    /// file: `[server] timeout_secs`.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Listen on a non-loopback address without a password: anyone who can reach it can read
    /// and change every profile. Config file: `[server] unsafe_allow_no_password = true`.
    #[arg(long)]
    unsafe_allow_no_password: bool,
    /// Move the store's watermark to the wall clock every SECS seconds (0: never, the default),
    /// so that a quiet store refits daily and fires INACTIVE_DAYS triggers on time. Only for a
    /// store fed live: events dated before the clock then arrive late. Config file: `[server]
    /// follow_clock_secs`.
    #[arg(long, value_name = "SECS")]
    follow_clock: Option<u64>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How `persona serve` joins a cluster (feature `cluster`; see docs/cluster.md).
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Run as a node of a cluster that agrees through these NATS JetStream servers
    /// (comma-separated `nats://HOST:PORT`). Needs --advertise. A build without the `cluster`
    /// feature refuses it and says how to get it.
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub cluster: Option<Vec<String>>,
    /// The address (IP:PORT) Redis Cluster clients reach this node at: what `CLUSTER SLOTS`
    /// and `-MOVED` tell them.
    #[arg(long, value_name = "ADDR", requires = "cluster")]
    pub advertise: Option<String>,
    /// The cluster's partition count, fixed when its first node starts [default: 64].
    #[arg(long, value_name = "N", requires = "cluster", value_parser = clap::value_parser!(u16).range(1..=16384))]
    pub partitions: Option<u16>,
    /// The cluster's name: its streams are named after it [default: persona].
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub cluster_name: Option<String>,
    /// Replicas of the cluster's streams, at most the JetStream servers there are [default: 1].
    #[arg(long, value_name = "N", requires = "cluster")]
    pub replicas: Option<usize>,
}

/// The password is never printed, not even in debug output.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("bind", &self.bind)
            .field(
                "requirepass",
                &self.requirepass.as_ref().map(|_| "<redacted>"),
            )
            .field("max_clients", &self.max_clients)
            .field("timeout", &self.timeout)
            .field("unsafe_allow_no_password", &self.unsafe_allow_no_password)
            .field("follow_clock", &self.follow_clock)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// The server settings: defaults, then the config file's `[server]` table, then the flags.
pub fn server_config(args: &Args, file: Option<&PathBuf>) -> Result<ServerConfig> {
    let mut config = match file {
        Some(f) => ServerConfig::from_toml_file(f)?,
        None => ServerConfig::default(),
    };
    if let Some(b) = &args.bind {
        config.bind = b.clone();
    }
    if let Some(p) = &args.requirepass {
        config.requirepass = Some(p.clone());
    }
    if let Some(n) = args.max_clients {
        config.max_clients = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(secs) = args.timeout {
        config.idle_timeout = (secs > 0).then(|| Duration::from_secs(secs));
    }
    config.unsafe_allow_no_password |= args.unsafe_allow_no_password;
    if let Some(secs) = args.follow_clock {
        config.follow_clock = crate::server::follow_clock(secs)
            .map_err(|e| anyhow::anyhow!("--follow-clock: {e}"))?;
    }
    Ok(config)
}

/// Joins the cluster `args` names, if any, and points the server's routing at the node's view.
/// The node is returned to be kept (and left) for as long as the server runs.
#[cfg(feature = "cluster")]
pub fn join_cluster(
    args: &ClusterArgs,
    data: &std::path::Path,
    config: &mut ServerConfig,
) -> Result<Option<crate::Node>> {
    let Some(urls) = &args.cluster else {
        return Ok(None);
    };
    let advertise = args.advertise.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "--cluster needs --advertise IP:PORT, the address clients reach this node at"
        )
    })?;
    let mut node = crate::NodeConfig::new(urls.clone(), advertise, data);
    if let Some(p) = args.partitions {
        node.partitions = p;
    }
    if let Some(name) = &args.cluster_name {
        node.name = name.clone();
    }
    if let Some(r) = args.replicas {
        node.replicas = r;
    }
    let node = crate::Node::join(node)?;
    note(&format!(
        "joined the cluster as node {} ({advertise})",
        node.view().id()
    ));
    config.cluster = Some(node.view());
    Ok(Some(node))
}

/// Without the `cluster` feature: `--cluster` is refused with how to get it.
#[cfg(not(feature = "cluster"))]
pub fn join_cluster(
    args: &ClusterArgs,
    _data: &std::path::Path,
    _config: &mut ServerConfig,
) -> Result<Option<()>> {
    match args.cluster {
        Some(_) => Err(anyhow::anyhow!(
            "this persona was built without the `cluster` feature: build it with `cargo build \
             --release --features cluster` (or `cargo install --path . --features cluster`) to \
             run `persona serve --cluster`"
        )),
        None => Ok(None),
    }
}

/// Starts the joined node's partition log over the opened store.
#[cfg(feature = "cluster")]
pub fn attach(node: Option<&crate::Node>, db: &Db) -> Result<()> {
    if let Some(node) = node {
        node.attach(db.clone())?;
    }
    Ok(())
}

/// Without the `cluster` feature there is no node to attach.
#[cfg(not(feature = "cluster"))]
pub fn attach(_node: Option<&()>, _db: &Db) -> Result<()> {
    Ok(())
}

pub fn run(db: Db, config: ServerConfig) -> Result<()> {
    let bind = config.bind.clone();
    let data = db.config().path.clone();
    let shutdown = ShutdownHandle::new();
    let server = Server::bind(db, config, shutdown.clone())
        .with_context(|| format!("cannot listen on {bind}"))?;
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).context("cannot install the SIGINT/SIGTERM handlers")?;
    std::thread::Builder::new()
        .name("persona-signals".into())
        .spawn(move || {
            let mut received = signals.forever();
            if let Some(signal) = received.next() {
                shutdown.shutdown();
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                note(&format!("received {name}; shutting down"));
            }
            if received.next().is_some() {
                note("second signal; exiting without waiting for clients");
                std::process::exit(1);
            }
        })
        .context("cannot start the signal thread")?;
    note(&crate::server::ready_line(&data, server.local_addr()));
    server.run().context("shutting down the server")?;
    note("stopped; the store is closed");
    Ok(())
}

/// A status line on stderr. A server may outlive its terminal: a closed stderr is not an error
/// (`eprintln!` would panic on it).
fn note(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "persona: {message}");
}
