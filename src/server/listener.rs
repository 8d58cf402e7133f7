//! The accept loop: the client limit, handing connections to the event loops, graceful shutdown.
//!
//! Invariants: a connection counts against [`ServerConfig::max_clients`] from the moment it is
//! accepted until its event loop drops it (a guard deregisters it, even if the loop panics);
//! once shutdown is requested no connection is admitted, and the store is closed only after
//! every event loop has ended.

use super::event_loop::Loops;
use super::frame::SharedKeys;
use super::{ServerConfig, ShutdownHandle};
use crate::db::Db;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long connections get to finish their commands after shutdown is requested before their
/// sockets are closed under them (which unblocks a client that stopped reading).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A bound, not yet running, RESP server. `docs/architecture.md` describes its threads.
pub struct Server {
    listener: TcpListener,
    state: Arc<ServerState>,
}

/// What every connection of a server shares.
pub(crate) struct ServerState {
    pub(crate) db: Db,
    pub(crate) config: ServerConfig,
    pub(crate) shutdown: ShutdownHandle,
    pub(crate) local_addr: SocketAddr,
    pub(crate) started: Instant,
    pub(crate) stats: Stats,
    /// The store's feature names, encoded once for every `PROFILE.GET` reply.
    pub(crate) feature_keys: Arc<SharedKeys>,
    clients: Mutex<HashMap<u64, TcpStream>>,
    next_client_id: AtomicU64,
    /// The connections subscribed to trigger channels.
    pub(crate) pubsub: super::pubsub::PubSub,
}

/// Counters reported by `INFO stats`.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) connections_received: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) commands_processed: AtomicU64,
    /// `EVENT.ADD`s without `TS` whose clock time fell more than a horizon after the store's
    /// latest event time (see [`ServerState::clock_event`]).
    pub(crate) clock_events_after_history: AtomicU64,
    /// The largest such gap seen, in milliseconds.
    pub(crate) clock_gap_ms: AtomicU64,
}

impl ServerState {
    /// Connections being served now.
    pub(crate) fn connected_clients(&self) -> usize {
        self.clients.lock().len()
    }

    /// Notes an event the server dated with its own clock (`EVENT.ADD` without `TS`). When that
    /// time is more than a horizon after the store's watermark, the store holds historical data
    /// and the clock is about to move its watermark (and every profile's recency) far ahead:
    /// counted in `INFO stats`, shown by `MODEL.INFO`, and logged the first time.
    pub(crate) fn clock_event(&self, clock_ms: i64) {
        let watermark = self.db.model().watermark_ms;
        let gap = clock_ms.saturating_sub(watermark);
        if watermark <= 0 || gap <= self.db.config().horizon_ms() {
            return;
        }
        let gap = u64::try_from(gap).unwrap_or(u64::MAX);
        self.stats.clock_gap_ms.fetch_max(gap, Ordering::Relaxed);
        if self
            .stats
            .clock_events_after_history
            .fetch_add(1, Ordering::Relaxed)
            == 0
        {
            tracing::warn!("{}", clock_warning(gap));
        }
    }

    /// The clock warning to show, if any `EVENT.ADD` without `TS` landed far after the data.
    pub(crate) fn clock_warning(&self) -> Option<String> {
        let count = self
            .stats
            .clock_events_after_history
            .load(Ordering::Relaxed);
        (count > 0).then(|| {
            format!(
                "{count} event(s) so far; {}",
                clock_warning(self.stats.clock_gap_ms.load(Ordering::Relaxed))
            )
        })
    }

    /// Admits a connection unless the server is full or shutting down: returns its id.
    fn register(self: &Arc<Self>, stream: &TcpStream) -> Option<ClientGuard> {
        let mut clients = self.clients.lock();
        if clients.len() >= self.config.max_clients || self.shutdown.is_shutdown() {
            return None;
        }
        let clone = match stream.try_clone() {
            Ok(clone) => clone,
            Err(e) => {
                tracing::warn!("cannot track a new connection: {e}");
                return None;
            }
        };
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        clients.insert(id, clone);
        Some(ClientGuard {
            id,
            state: Arc::clone(self),
        })
    }

    /// Shuts down `how` every connection still registered.
    fn shutdown_clients(&self, how: Shutdown) {
        for stream in self.clients.lock().values() {
            // A socket the peer already closed reports an error here; nothing to do about it.
            let _ = stream.shutdown(how);
        }
    }
}

/// What the clock warning says for a gap of `gap_ms` between the clock and the watermark.
fn clock_warning(gap_ms: u64) -> String {
    format!(
        "EVENT.ADD without TS was dated by the server's clock up to {:.1} days after the \
         store's latest event time, which moves the watermark (and every profile's recency) \
         that far; for historical or replayed data pass the event's own time with TS \
         (unix ms or RFC 3339)",
        gap_ms as f64 / 86_400_000.0
    )
}

/// Deregisters a connection when it is dropped, however that happens.
pub(crate) struct ClientGuard {
    /// The connection's id (`CLIENT ID`).
    pub(crate) id: u64,
    state: Arc<ServerState>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.state.clients.lock().remove(&self.id);
    }
}

impl Server {
    /// Checks `config` and binds its address; the server accepts connections once
    /// [`Server::run`] is called. Use port 0 for a free port and ask [`Server::local_addr`].
    ///
    /// # Errors
    /// [`Error::Config`] for an unusable configuration: an address that does not resolve, a
    /// non-loopback address without a password (unless
    /// [`ServerConfig::unsafe_allow_no_password`]), an empty password or `max_clients` 0;
    /// [`Error::Io`] if the address cannot be bound (in use, not permitted).
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Server, ServerConfig, ShutdownHandle};
    /// let db = persona::Db::open(dir.path())?;
    /// let exposed = ServerConfig::new("0.0.0.0:0");
    /// assert!(Server::bind(db.clone(), exposed, ShutdownHandle::new()).is_err());
    /// let local = ServerConfig::new("127.0.0.1:0");
    /// let server = Server::bind(db, local, ShutdownHandle::new())?;
    /// assert_ne!(server.local_addr().port(), 0);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn bind(db: Db, config: ServerConfig, shutdown: ShutdownHandle) -> Result<Server> {
        let addrs = check(&config)?;
        let listener = TcpListener::bind(addrs.as_slice())?;
        // A server answers SIMILAR for a long time: build the lookalike index now, not at the
        // first query.
        db.prepare_lookalikes()?;
        let local_addr = listener.local_addr()?;
        shutdown.register(local_addr);
        let feature_keys = SharedKeys::new(db.layout().name_list());
        Ok(Server {
            listener,
            state: Arc::new(ServerState {
                feature_keys,
                db,
                config,
                shutdown,
                local_addr,
                started: Instant::now(),
                stats: Stats::default(),
                clients: Mutex::new(HashMap::new()),
                next_client_id: AtomicU64::new(1),
                pubsub: Default::default(),
            }),
        })
    }

    /// The address the server listens on (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.state.local_addr
    }

    /// A handle that stops this server (a clone of the one given to [`Server::bind`]).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.state.shutdown.clone()
    }

    /// Accepts and serves connections until shutdown is requested; then lets connections finish
    /// the commands they have read, closes them, and closes the store.
    ///
    /// # Errors
    /// Storage errors from closing the store. Failures of single connections are logged and
    /// never end the server.
    pub fn run(self) -> Result<()> {
        let Server { listener, state } = self;
        let mut loops = match Loops::start(&state) {
            Ok(loops) => loops,
            Err(e) => {
                state.db.close()?;
                return Err(e.into());
            }
        };
        let publisher = {
            let state = state.clone();
            std::thread::Builder::new()
                .name("persona-publish".into())
                .spawn(move || super::pubsub::run_publisher(state))
        };
        let publisher = match publisher {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(
                    "cannot start the trigger publisher ({e}); SUBSCRIBE delivers nothing"
                );
                None
            }
        };
        let clock = state.config.follow_clock.and_then(|every| {
            let state = state.clone();
            std::thread::Builder::new()
                .name("persona-clock".into())
                .spawn(move || follow_clock(&state, every))
                .map_err(|e| {
                    tracing::error!(
                        "cannot start the clock thread ({e}); the watermark follows the events only"
                    )
                })
                .ok()
        });
        let mut failures = 0u32;
        while !state.shutdown.is_shutdown() {
            match listener.accept() {
                Ok((stream, _)) => {
                    failures = 0;
                    if state.shutdown.is_shutdown() {
                        break;
                    }
                    admit(&state, stream, &mut loops);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning, and
                    // keep serving the connections we have.
                    failures = failures.saturating_add(1);
                    tracing::warn!("accepting a connection failed: {e}");
                    std::thread::sleep(Duration::from_millis(u64::from(failures.min(100))));
                }
            }
        }
        drop(listener);
        finish(&state, loops);
        if let Some(p) = publisher {
            let _ = p.join();
        }
        if let Some(c) = clock {
            let _ = c.join();
        }
        state.db.close()
    }
}

/// [`ServerConfig::follow_clock`]: every `every`, moves the watermark to the wall clock, until
/// shutdown. A refusal (a store whose watermark is far ahead of this machine's clock) is logged
/// once, not at every tick.
fn follow_clock(state: &ServerState, every: Duration) {
    let step = Duration::from_millis(50).min(every);
    let mut last = Instant::now();
    let mut refused = false;
    while !state.shutdown.is_shutdown() {
        std::thread::sleep(step);
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        match state.db.advance_watermark(crate::event::wall_clock_ms()) {
            Ok(_) => refused = false,
            Err(e) if !refused => {
                refused = true;
                tracing::warn!("follow_clock: cannot move the watermark to the wall clock: {e}");
            }
            Err(_) => {}
        }
    }
}

/// Checks the configuration and resolves the listen address.
fn check(config: &ServerConfig) -> Result<Vec<SocketAddr>> {
    if config.max_clients == 0 {
        return Err(Error::Config(
            "max_clients is 0; at least 1 client must be allowed".into(),
        ));
    }
    if config.requirepass.as_deref() == Some("") {
        return Err(Error::Config(
            "the password is empty; give a non-empty password or none".into(),
        ));
    }
    let addrs: Vec<SocketAddr> = config
        .bind
        .to_socket_addrs()
        .map_err(|e| {
            Error::Config(format!(
                "bind address {:?} is not a usable host:port ({e})",
                config.bind
            ))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Config(format!(
            "bind address {:?} resolves to no address",
            config.bind
        )));
    }
    let exposed = addrs.iter().any(|a| !a.ip().is_loopback());
    if exposed && config.requirepass.is_none() && !config.unsafe_allow_no_password {
        return Err(Error::Config(format!(
            "refusing to listen on {} without a password: anyone who can reach it could read and \
             change every profile; set a password (--requirepass), bind a loopback address such \
             as 127.0.0.1, or pass --unsafe-allow-no-password",
            config.bind
        )));
    }
    Ok(addrs)
}

/// Hands one accepted connection to an event loop, or turns it away when the server is full.
fn admit(state: &Arc<ServerState>, stream: TcpStream, loops: &mut Loops) {
    state
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    let Some(guard) = state.register(&stream) else {
        state
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        // The socket's send buffer is empty, so this short write does not block; the timeout is
        // a second line of defence.
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = (&stream).write_all(b"-ERR max number of clients reached\r\n");
        return;
    };
    loops.admit(stream, guard);
}

/// Lets connections finish what they have read, then closes them and waits for the loops.
fn finish(state: &ServerState, loops: Loops) {
    // A connection sees end of input, answers what it has read, and closes.
    state.shutdown_clients(Shutdown::Read);
    loops.stop();
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !loops.finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Whoever is left is waiting to write to a client that stopped reading.
    state.shutdown_clients(Shutdown::Both);
    loops.wake_all();
    loops.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bind: &str) -> ServerConfig {
        ServerConfig {
            bind: bind.into(),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn loopback_needs_no_password() -> Result<()> {
        assert!(check(&config("127.0.0.1:0"))?[0].ip().is_loopback());
        assert!(check(&config("[::1]:0")).is_ok());
        Ok(())
    }

    #[test]
    fn exposed_address_without_password_is_refused() {
        let err = check(&config("0.0.0.0:0")).unwrap_err().to_string();
        assert!(err.contains("refusing to listen on 0.0.0.0:0 without a password"));
        assert!(err.contains("--unsafe-allow-no-password"));
        let with_password = ServerConfig {
            requirepass: Some("pw".into()),
            ..config("0.0.0.0:0")
        };
        assert!(check(&with_password).is_ok());
        let unsafe_ok = ServerConfig {
            unsafe_allow_no_password: true,
            ..config("0.0.0.0:0")
        };
        assert!(check(&unsafe_ok).is_ok());
    }

    #[test]
    fn bad_settings_are_named() {
        let err = check(&config("nonsense")).unwrap_err().to_string();
        assert!(err.contains("bind address \"nonsense\" is not a usable host:port"));
        let empty = ServerConfig {
            requirepass: Some(String::new()),
            ..config("127.0.0.1:0")
        };
        assert!(check(&empty).unwrap_err().to_string().contains("empty"));
        let none = ServerConfig {
            max_clients: 0,
            ..config("127.0.0.1:0")
        };
        assert!(check(&none)
            .unwrap_err()
            .to_string()
            .contains("max_clients"));
    }
}
