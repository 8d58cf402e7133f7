//! The Redis-protocol front end: how Persona talks to `redis-cli`, `redis-py`, the Rust `redis`
//! crate and `redis-benchmark`.
//!
//! | file | role |
//! |---|---|
//! | [`frame`] | the wire format (RESP2 and RESP3): [`frame::Frame`], reading commands, writing replies; no I/O |
//! | `connection.rs` | buffered reading of commands and writing of replies over one `TcpStream` |
//! | `listener.rs` | [`Server`]: the accept loop, the client limit, graceful shutdown |
//! | `event_loop.rs` | the event loops: one per core, each serving many connections from `epoll` (`mio`) |
//! | `handler.rs` | one connection as a non-blocking state machine: dispatch, authentication, pipelined writes kept in flight |
//! | `cmd/` | the commands, one file per family, each with its `# Format` |
//! | `pubsub.rs` | live trigger firings: the subscribers' registry and the thread that publishes new firings to them |
//!
//! The full command reference is `docs/protocol.md`.
//!
//! # Threads
//! One thread accepts connections and hands each to one of the event loops (one per core, at
//! most 8), which serves it for its whole life with non-blocking I/O: a loop wakes when one of
//! its sockets is readable or writable, or when the store acknowledges a write one of its
//! connections submitted, and then does all it can for that connection without blocking.
//! Commands that wait (the synchronous writes `PROFILE.SET`, `PROFILE.DEL`, `FEEDBACK`,
//! `MODEL.SNAPSHOT`, `MODEL.ROLLBACK`, `MODEL.ADVANCE`; the scans `SIMILAR`, `PROFILE.EXPORT`,
//! `SEGMENT.MEMBERS`, `DBSIZE`, `INFO`; and `EXEC`) run on a thread of their own, so that they
//! never hold up the other connections of their loop; their connection reads nothing more
//! until they answer.
//! [`ServerConfig::max_clients`] bounds the connections. Writes from every connection funnel
//! into the store's single writer, where they share group commits.
//!
//! # Pipelining
//! A connection parses every command already received before it waits for anything. `EVENT.ADD`
//! is queued with the store's writer (as [`Db::ingest_async`](crate::Db::ingest_async) does,
//! and the writer's durability stage tells the loop when it is acknowledged) and its reply waits
//! in an ordered per-connection queue, so consecutive pipelined events are in flight together.
//! Any other command is held until the writes queued before it are acknowledged (so a read sees
//! them) and their replies are written first: replies always come back in request order. Replies
//! are written once per batch of input (or every 64 KiB); a connection stops reading while
//! 256 KiB of replies wait for the client or 1024 replies wait for their writes, so a client
//! that pipelines without reading cannot make the server hold unbounded memory.
//!
//! # Shutdown
//! [`ShutdownHandle::shutdown`] (called by the `SHUTDOWN` command, by the CLI on SIGINT or SIGTERM,
//! or by an embedding program) stops the accept loop, lets every connection finish the commands
//! it has read and send their replies, closes the connections, and closes the store (which makes
//! everything durable) before [`Server::run`] returns.
//!
//! # Examples
//! ```
//! # let dir = tempfile::tempdir()?;
//! use persona::{Server, ServerConfig, ShutdownHandle};
//! use std::io::{Read, Write};
//!
//! let db = persona::Db::open(dir.path())?;
//! let config = ServerConfig::new("127.0.0.1:0");
//! let shutdown = ShutdownHandle::new();
//! let server = Server::bind(db, config, shutdown.clone())?;
//! let addr = server.local_addr();
//! let running = std::thread::spawn(move || server.run());
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//! client.write_all(b"PING\r\n")?;
//! let mut reply = [0u8; 7];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"+PONG\r\n");
//!
//! shutdown.shutdown();
//! running.join().expect("the server thread does not panic")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod frame;

mod cmd;
mod connection;
mod encode;
mod event_loop;
mod handler;
mod listener;
mod pubsub;
mod request;

#[cfg(test)]
mod frame_props;
#[cfg(test)]
mod frame_tests;

pub use frame::Limits;
pub use listener::Server;

/// The line `persona serve` prints on stderr once it listens (after its `persona: ` prefix):
/// scripts and tests read the address from it with [`parse_ready_line`].
#[cfg(any(feature = "cli", feature = "testing"))]
pub fn ready_line(data: &std::path::Path, addr: std::net::SocketAddr) -> String {
    format!(
        "serving {} on {addr} (RESP2/RESP3; stop with Ctrl-C or SHUTDOWN)",
        data.display()
    )
}

/// The address in a line printed by `persona serve` (see [`ready_line`]), with or without its
/// `persona: ` prefix and line end; None if the line is not that line.
///
/// # Examples
/// ```
/// use persona::testing::server::{parse_ready_line, ready_line};
/// let addr: std::net::SocketAddr = "127.0.0.1:6479".parse().unwrap();
/// let line = format!("persona: {}\n", ready_line("/data on disk".as_ref(), addr));
/// assert_eq!(parse_ready_line(&line), Some(addr));
/// assert_eq!(parse_ready_line("persona: error: cannot open"), None);
/// ```
#[cfg(any(feature = "cli", feature = "testing"))]
pub fn parse_ready_line(line: &str) -> Option<std::net::SocketAddr> {
    let line = line.trim_end();
    let rest = line.strip_prefix("persona: ").unwrap_or(line);
    let rest = rest.strip_prefix("serving ")?;
    let (_, after) = rest.rsplit_once(" on ")?;
    after.split_whitespace().next()?.parse().ok()
}

use crate::db::Db;
use crate::error::Result;
use parking_lot::Mutex;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Default listen address: loopback only, one port above Redis's 6379.
pub const DEFAULT_BIND: &str = "127.0.0.1:6479";

/// How the server listens and what it accepts. Every field has a default; see each one.
///
/// # Examples
/// ```
/// use persona::ServerConfig;
/// use std::time::Duration;
/// let mut config = ServerConfig::default();
/// config.requirepass = Some("s3cret".into());
/// config.idle_timeout = Some(Duration::from_secs(300));
/// assert_eq!(config.bind, "127.0.0.1:6479");
/// assert_eq!(ServerConfig::new("127.0.0.1:0").bind, "127.0.0.1:0");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[non_exhaustive]
#[derive(Clone, PartialEq)]
pub struct ServerConfig {
    /// Address to listen on, `host:port`. Default `127.0.0.1:6479`; port 0 picks a free port
    /// (see [`Server::local_addr`]).
    pub bind: String,
    /// Password clients must give with `AUTH` or `HELLO … AUTH` before any other command.
    /// Default none.
    pub requirepass: Option<String>,
    /// Allows listening on a non-loopback address without a password. Default false: such a
    /// server would let anyone who can reach it read and change every profile.
    pub unsafe_allow_no_password: bool,
    /// Most connections served at once; one more is told `-ERR max number of clients reached`
    /// and closed. Default 1024.
    pub max_clients: usize,
    /// Closes a connection that sent nothing for this long. Default `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Bounds on the commands a client may send. Defaults: bulk strings up to 1 MiB, arrays up
    /// to 4096 elements, inline commands up to 64 KiB.
    pub limits: Limits,
    /// Longest single command, all its arguments together, in bytes. Default 8 MiB.
    pub max_request_len: usize,
    /// Moves the store's watermark to the wall clock this often (`Db::advance_watermark`), so
    /// that a quiet store still refits daily and fires `INACTIVE_DAYS` triggers on time instead
    /// of at its next event. Default `None`: the watermark moves with the events only (it must,
    /// for a store fed with past events, which would all arrive late otherwise).
    pub follow_clock: Option<Duration>,
    /// This server is a node of a cluster (feature `cluster`): the view of the partition →
    /// owner map it routes by, from `Node::view` (feature `cluster`) or any other source of maps. A
    /// command on a customer another node owns is answered `-MOVED slot host:port`, and
    /// `CLUSTER …` answers from the map. Default `None`: a single node.
    pub cluster: Option<std::sync::Arc<crate::ClusterView>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: DEFAULT_BIND.to_owned(),
            requirepass: None,
            unsafe_allow_no_password: false,
            max_clients: 1024,
            idle_timeout: None,
            limits: Limits {
                max_array_len: 4096,
                ..Limits::default()
            },
            max_request_len: 8 << 20,
            follow_clock: None,
            cluster: None,
        }
    }
}

/// The `[server]` table of the TOML configuration file (`persona --config FILE serve`): every
/// key optional, unknown keys rejected. Command-line flags override it.
///
/// ```toml
/// [server]
/// bind = "127.0.0.1:6479"
/// requirepass = "s3cret"
/// max_clients = 256
/// timeout_secs = 300
/// unsafe_allow_no_password = false
/// max_bulk_len = 1048576
/// max_array_len = 4096
/// max_inline_len = 65536
/// max_request_len = 8388608
/// follow_clock_secs = 60
/// ```
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    bind: Option<String>,
    requirepass: Option<String>,
    max_clients: Option<usize>,
    timeout_secs: Option<u64>,
    unsafe_allow_no_password: Option<bool>,
    max_bulk_len: Option<usize>,
    max_array_len: Option<usize>,
    max_inline_len: Option<usize>,
    max_request_len: Option<usize>,
    follow_clock_secs: Option<u64>,
}

/// The whole configuration file as the server reads it: only the `[server]` table matters here
/// (the store's keys are read and checked by [`crate::Config::from_toml_str`]).
#[derive(serde::Deserialize)]
struct FileWithServer {
    #[serde(default)]
    server: Option<ServerFile>,
}

impl ServerConfig {
    /// The defaults, listening on `bind` (`host:port`; port 0 picks a free port).
    pub fn new(bind: impl Into<String>) -> ServerConfig {
        ServerConfig {
            bind: bind.into(),
            ..ServerConfig::default()
        }
    }

    /// The defaults, overridden by the `[server]` table of a TOML configuration file (see the
    /// README for its keys). A file without a `[server]` table gives the defaults.
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the key when the TOML is malformed, a key is unknown, or
    /// a value is out of range (`max_clients`, `max_bulk_len`, `max_array_len`,
    /// `max_inline_len` and `max_request_len` must be at least 1; `requirepass` must not be
    /// empty).
    ///
    /// # Examples
    /// ```
    /// use persona::ServerConfig;
    /// let c = ServerConfig::from_toml_str("[server]\nmax_clients = 8\ntimeout_secs = 60\n")?;
    /// assert_eq!(c.max_clients, 8);
    /// assert_eq!(c.idle_timeout, Some(std::time::Duration::from_secs(60)));
    /// assert!(ServerConfig::from_toml_str("[server]\nmax_clients = 0\n").is_err());
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn from_toml_str(text: &str) -> Result<ServerConfig> {
        use crate::error::Error;
        let file: FileWithServer = toml::from_str(text).map_err(|e| {
            Error::Config(format!(
                "[server]: {}",
                crate::config::toml_message(text, &e)
            ))
        })?;
        let mut c = ServerConfig::default();
        let Some(f) = file.server else {
            return Ok(c);
        };
        let positive = |key: &str, v: Option<usize>| -> Result<Option<usize>> {
            match v {
                Some(0) => Err(Error::Config(format!(
                    "[server] {key}: must be at least 1, got 0"
                ))),
                v => Ok(v),
            }
        };
        if let Some(b) = f.bind {
            c.bind = b;
        }
        if let Some(p) = f.requirepass {
            if p.is_empty() {
                return Err(Error::Config(
                    "[server] requirepass: must not be empty (leave the key out for no password)"
                        .into(),
                ));
            }
            c.requirepass = Some(p);
        }
        if let Some(n) = positive("max_clients", f.max_clients)? {
            c.max_clients = n;
        }
        if let Some(secs) = f.timeout_secs {
            c.idle_timeout = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(u) = f.unsafe_allow_no_password {
            c.unsafe_allow_no_password = u;
        }
        if let Some(n) = positive("max_bulk_len", f.max_bulk_len)? {
            c.limits.max_bulk_len = n;
        }
        if let Some(n) = positive("max_array_len", f.max_array_len)? {
            c.limits.max_array_len = n;
        }
        if let Some(n) = positive("max_inline_len", f.max_inline_len)? {
            c.limits.max_inline_len = n;
        }
        if let Some(n) = positive("max_request_len", f.max_request_len)? {
            c.max_request_len = n;
        }
        if let Some(secs) = f.follow_clock_secs {
            c.follow_clock = follow_clock(secs)
                .map_err(|e| Error::Config(format!("[server] follow_clock_secs: {e}")))?;
        }
        Ok(c)
    }

    /// [`ServerConfig::from_toml_str`] on a file's contents.
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the file when it cannot be read, else as
    /// [`ServerConfig::from_toml_str`].
    pub fn from_toml_file(file: impl AsRef<std::path::Path>) -> Result<ServerConfig> {
        let file = file.as_ref();
        let text = std::fs::read_to_string(file).map_err(|e| {
            crate::error::Error::Config(format!("cannot read {}: {e}", file.display()))
        })?;
        ServerConfig::from_toml_str(&text)
    }
}

/// The interval of [`ServerConfig::follow_clock`] for `follow_clock_secs = secs`: 0 turns it
/// off; at most a day.
///
/// # Errors
/// What is allowed, for more than a day (86,400 seconds).
pub(crate) fn follow_clock(secs: u64) -> std::result::Result<Option<Duration>, String> {
    match secs {
        0 => Ok(None),
        1..=86_400 => Ok(Some(Duration::from_secs(secs))),
        _ => Err(format!(
            "must be from 0 (off) to 86400 seconds (a day), got {secs}"
        )),
    }
}

/// The password is never printed.
impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field(
                "requirepass",
                &self.requirepass.as_ref().map(|_| "<redacted>"),
            )
            .field("unsafe_allow_no_password", &self.unsafe_allow_no_password)
            .field("max_clients", &self.max_clients)
            .field("idle_timeout", &self.idle_timeout)
            .field("limits", &self.limits)
            .field("max_request_len", &self.max_request_len)
            .field("follow_clock", &self.follow_clock)
            .finish()
    }
}

/// Stops a running [`Server`] gracefully. Clones share one switch: create it before
/// [`Server::bind`], keep a clone, and call [`ShutdownHandle::shutdown`] from any thread (a signal
/// handler thread, a test, the `SHUTDOWN` command).
#[derive(Clone, Default)]
pub struct ShutdownHandle {
    inner: Arc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    requested: AtomicBool,
    /// Addresses of the listeners to wake: a blocked `accept` returns when someone connects.
    wake: Mutex<Vec<SocketAddr>>,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.is_shutdown())
            .finish()
    }
}

impl ShutdownHandle {
    /// A handle whose shutdown has not been requested.
    pub fn new() -> ShutdownHandle {
        ShutdownHandle::default()
    }

    /// Requests shutdown: the server stops accepting connections, finishes the commands its
    /// connections have read, closes them and closes the store; [`Server::run`] then returns.
    /// Returns at once; calling it again does nothing more.
    pub fn shutdown(&self) {
        if self.inner.requested.swap(true, Ordering::SeqCst) {
            return;
        }
        let wake = self.inner.wake.lock().clone();
        for addr in wake {
            // The accept loop sees the flag as soon as this connection arrives; if the listener
            // is already gone the connect fails, which is just as good.
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }

    /// Whether [`ShutdownHandle::shutdown`] was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Registers a listener to wake on shutdown; `addr` is where it listens.
    fn register(&self, addr: SocketAddr) {
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        self.inner
            .wake
            .lock()
            .push(SocketAddr::new(ip, addr.port()));
    }
}

/// Serves `db` over RESP until `shutdown` is requested, then closes `db`. The same as
/// [`Server::bind`] followed by [`Server::run`].
///
/// # Errors
/// As [`Server::bind`] and [`Server::run`].
///
/// # Examples
/// ```
/// # let dir = tempfile::tempdir()?;
/// use persona::{serve, ServerConfig, ShutdownHandle};
/// let db = persona::Db::open(dir.path())?;
/// let shutdown = ShutdownHandle::new();
/// shutdown.shutdown(); // requested before it starts: it returns at once
/// let config = ServerConfig::new("127.0.0.1:0");
/// serve(db, config, shutdown)?;
/// # Ok::<(), persona::Error>(())
/// ```
pub fn serve(db: Db, config: ServerConfig, shutdown: ShutdownHandle) -> Result<()> {
    Server::bind(db, config, shutdown)?.run()
}
