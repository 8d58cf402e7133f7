//! The event loops: a few threads, each serving many connections from one `epoll` set (through
//! `mio`), instead of a thread per connection.
//!
//! The accept thread hands each admitted connection to a loop ([`Loops::admit`], round robin).
//! A loop wakes when one of its sockets is readable or writable, when the durability stage has
//! acknowledged a write one of its connections submitted, or when a command's own thread
//! finishes ([`Wake`], told through [`Notify`] with the connection's tag); it then advances
//! every connection concerned ([`Handler::advance`]), which never blocks.
//!
//! Invariants: a connection belongs to one loop for its whole life and is only touched by that
//! loop's thread; its [`ClientGuard`] is dropped (deregistering it from the server's client
//! table) when the loop drops it. A panic while advancing a connection drops that connection
//! only. Once shutdown is requested and a loop's connections are all closed, the loop ends; a
//! loop that ended is skipped by [`Loops::admit`].

use super::connection::Connection;
use super::handler::{Handler, Readiness, Status};
use super::listener::{ClientGuard, ServerState};
use crate::pipeline::Notify;
use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The token of a loop's waker; connections get the tokens after it.
const WAKE: Token = Token(0);
/// Most loops, whatever the number of cores.
const MAX_LOOPS: usize = 8;
/// How often idle connections are looked for, at most (when an idle timeout is set).
const IDLE_SWEEP: Duration = Duration::from_millis(100);
/// A connection to look at in full: new, or the server is stopping.
const ALL: Readiness = Readiness {
    readable: true,
    hung_up: false,
    writable: true,
};

/// A connection on its way from the accept thread to a loop.
struct Incoming {
    stream: std::net::TcpStream,
    guard: ClientGuard,
}

/// How a loop is woken from other threads, and what for.
struct Wake {
    waker: Waker,
    /// Tags of the connections that have news (acknowledged writes, finished commands).
    ready: Mutex<Vec<usize>>,
    /// Whether a wake-up is already on its way: one `eventfd` write per loop iteration at most.
    armed: AtomicBool,
}

impl Wake {
    fn wake(&self) {
        if !self.armed.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                tracing::error!("cannot wake an event loop: {e}");
            }
        }
    }
}

impl Notify for Wake {
    fn notify(&self, tag: usize) {
        self.ready.lock().push(tag);
        self.wake();
    }
}

/// One loop, as the accept thread sees it.
struct LoopHandle {
    incoming: Sender<Incoming>,
    wake: Arc<Wake>,
    thread: JoinHandle<()>,
}

/// The server's event loops.
pub(crate) struct Loops {
    loops: Vec<LoopHandle>,
    next: usize,
    stop: Arc<AtomicBool>,
}

impl Loops {
    /// Starts one loop per core (at most [`MAX_LOOPS`]).
    ///
    /// # Errors
    /// When the `epoll` set, its waker or a thread cannot be created.
    pub(crate) fn start(state: &Arc<ServerState>) -> io::Result<Loops> {
        let n = std::thread::available_parallelism()
            .map_or(2, usize::from)
            .clamp(1, MAX_LOOPS);
        let mut started = Loops {
            loops: Vec::with_capacity(n),
            next: 0,
            stop: Arc::new(AtomicBool::new(false)),
        };
        for i in 0..n {
            if let Err(e) = started.start_one(state, i) {
                // Those already running would wait for connections forever.
                started.stop();
                started.join();
                return Err(e);
            }
        }
        Ok(started)
    }

    /// Starts loop number `i`.
    fn start_one(&mut self, state: &Arc<ServerState>, i: usize) -> io::Result<()> {
        let poll = Poll::new()?;
        let wake = Arc::new(Wake {
            waker: Waker::new(poll.registry(), WAKE)?,
            ready: Mutex::new(Vec::new()),
            armed: AtomicBool::new(false),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let event_loop = EventLoop {
            state: Arc::clone(state),
            poll,
            wake: Arc::clone(&wake),
            incoming: rx,
            stop: Arc::clone(&self.stop),
            conns: HashMap::new(),
            next_token: WAKE.0 + 1,
        };
        let thread = std::thread::Builder::new()
            .name(format!("persona-loop-{i}"))
            .spawn(move || event_loop.run())?;
        self.loops.push(LoopHandle {
            incoming: tx,
            wake,
            thread,
        });
        Ok(())
    }

    /// Hands an admitted connection to the next loop that is still running; if none is, the
    /// connection is dropped (closed).
    pub(crate) fn admit(&mut self, stream: std::net::TcpStream, guard: ClientGuard) {
        let mut incoming = Incoming { stream, guard };
        for _ in 0..self.loops.len() {
            let Some(target) = self.loops.get(self.next % self.loops.len()) else {
                return;
            };
            self.next = self.next.wrapping_add(1);
            // A loop that ended has dropped its receiver: the connection comes back.
            match target.incoming.send(incoming) {
                Ok(()) => {
                    target.wake.wake();
                    return;
                }
                Err(back) => incoming = back.into_inner(),
            }
        }
        tracing::error!("no event loop is running; a connection was closed");
    }

    /// Tells every loop that shutdown is requested (they end once their connections are
    /// closed) and wakes them so that they look at every connection again.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// Wakes every loop to advance all its connections (after their sockets were shut down).
    pub(crate) fn wake_all(&self) {
        for l in &self.loops {
            l.wake.wake();
        }
    }

    /// Whether every loop has ended.
    pub(crate) fn finished(&self) -> bool {
        self.loops.iter().all(|l| l.thread.is_finished())
    }

    /// Waits for every loop to end.
    pub(crate) fn join(self) {
        for l in self.loops {
            if l.thread.join().is_err() {
                tracing::error!("an event loop panicked; its connections were dropped");
            }
        }
    }
}

/// One connection inside its loop.
struct Conn {
    handler: Handler,
    /// Dropped with the connection: deregisters it from the server's client table.
    _guard: ClientGuard,
}

/// One loop's thread state.
struct EventLoop {
    state: Arc<ServerState>,
    poll: Poll,
    wake: Arc<Wake>,
    incoming: Receiver<Incoming>,
    stop: Arc<AtomicBool>,
    conns: HashMap<usize, Conn>,
    next_token: usize,
}

impl EventLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let idle_timeout = self.state.config.idle_timeout.filter(|t| !t.is_zero());
        let mut last_sweep = Instant::now();
        let mut touched: Vec<(usize, Readiness)> = Vec::new();
        loop {
            let timeout =
                idle_timeout.map(|t| (t / 4).clamp(Duration::from_millis(10), IDLE_SWEEP));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("an event loop failed to wait for events: {e}");
                    break;
                }
            }
            touched.clear();
            for event in events.iter() {
                let Token(t) = event.token();
                if t != WAKE.0 {
                    touched.push((
                        t,
                        Readiness {
                            readable: event.is_readable(),
                            hung_up: event.is_read_closed() || event.is_error(),
                            writable: event.is_writable(),
                        },
                    ));
                }
            }
            // Re-armed before anything it announces is looked at: a wake-up from now on
            // (`stop`, a notification, a connection) wakes the next `poll`.
            self.wake.armed.store(false, Ordering::SeqCst);
            let stopping = self.stop.load(Ordering::SeqCst);
            touched.extend(
                self.wake
                    .ready
                    .lock()
                    .drain(..)
                    .map(|t| (t, Readiness::default())),
            );
            while let Ok(incoming) = self.incoming.try_recv() {
                if let Some(token) = self.register(incoming) {
                    touched.push((token, ALL));
                }
            }
            if stopping {
                // Sockets shut down by the server may report nothing: look at all of them.
                touched.extend(self.conns.keys().map(|&t| (t, ALL)));
            }
            for &(token, ready) in &touched {
                self.advance(token, ready);
            }
            if let Some(limit) = idle_timeout {
                if last_sweep.elapsed() >= IDLE_SWEEP.min(limit) {
                    last_sweep = Instant::now();
                    self.close_idle(limit);
                }
            }
            if stopping && self.conns.is_empty() && self.incoming.is_empty() {
                break;
            }
        }
    }

    /// Takes over an accepted connection: non-blocking, registered for reading and writing.
    fn register(&mut self, incoming: Incoming) -> Option<usize> {
        let Incoming { stream, guard } = incoming;
        let id = guard.id;
        if let Err(e) = stream.set_nonblocking(true) {
            tracing::warn!(client = id, "cannot make a connection non-blocking: {e}");
            return None;
        }
        // Replies are batched by the output buffer; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(WAKE.0 + 1);
        let config = &self.state.config;
        let conn = Connection::new(
            mio::net::TcpStream::from_std(stream),
            config.limits,
            config.max_request_len,
        );
        let notify: Arc<dyn Notify> = self.wake.clone();
        let mut handler = Handler::new(Arc::clone(&self.state), conn, id, (notify, token));
        if let Err(e) = self.poll.registry().register(
            handler.stream(),
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(client = id, "cannot watch a connection: {e}");
            return None;
        }
        self.conns.insert(
            token,
            Conn {
                handler,
                _guard: guard,
            },
        );
        Some(token)
    }

    /// Advances one connection, dropping it once it is closed (or if it panicked).
    fn advance(&mut self, token: usize, ready: Readiness) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return; // closed already; a late acknowledgement or event
        };
        let handler = &mut conn.handler;
        let status =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.advance(ready)));
        match status {
            Ok(Status::Open) => {}
            Ok(Status::Closed) => self.drop_conn(token),
            Err(_) => {
                tracing::error!("serving a connection panicked; the connection was closed");
                self.drop_conn(token);
            }
        }
    }

    fn drop_conn(&mut self, token: usize) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(conn.handler.stream());
        }
    }

    /// Closes the connections that have waited longer than `limit` for a command.
    fn close_idle(&mut self, limit: Duration) {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.handler.idle_since().is_some_and(|t| t.elapsed() >= limit))
            .map(|(&token, _)| token)
            .collect();
        for token in idle {
            tracing::debug!("closing an idle connection");
            self.drop_conn(token);
        }
    }
}
