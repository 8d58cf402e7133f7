//! One connection's loop: read commands, dispatch them, keep pipelined writes in flight, answer
//! in order.
//!
//! Invariants:
//! - Replies leave in request order. A reply is written to the output buffer directly only when
//!   no write of this connection is in flight; otherwise it joins the queue behind them.
//! - Only `EVENT.ADD` starts while earlier writes are in flight. Every other command first waits
//!   for them ([`Handler::settle`]), so a read sees the connection's own writes, and a command
//!   that changes the session (`HELLO 3`) never changes how earlier replies are encoded.
//! - Before the loop blocks on the socket, every in-flight write is settled and every reply
//!   flushed: a client waiting for its replies always gets them.
//! - A framing error is answered `-ERR Protocol error: …` after the replies before it, then the
//!   connection is closed; a command error is answered and the connection goes on.

use super::cmd::{self, Ctx, Reply, Session};
use super::connection::{Connection, Filled};
use super::frame::{Frame, Proto};
use super::listener::ServerState;
use crate::db::PendingWrite;
use crate::pipeline::Ack;
use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::Ordering;

/// Most writes of one connection in flight before it waits for them: bounds the memory a client
/// that pipelines without reading can make the server hold.
const MAX_IN_FLIGHT: usize = 1024;
/// Output buffered before it is written even though more input is pending.
const FLUSH_AT: usize = 64 * 1024;

/// Serves one accepted connection until the client leaves, idles out, breaks the protocol or
/// the server shuts down. Never panics; errors end only this connection.
pub(crate) fn serve(state: &ServerState, stream: TcpStream, id: u64) {
    let idle = state.config.idle_timeout.filter(|t| !t.is_zero());
    if let Err(e) = stream.set_read_timeout(idle) {
        tracing::warn!(client = id, "cannot set the idle timeout: {e}");
    }
    // Replies are batched by the output buffer; Nagle would only delay them.
    let _ = stream.set_nodelay(true);
    let mut handler = Handler {
        state,
        conn: Connection::new(stream, state.config.limits, state.config.max_request_len),
        session: Session {
            id,
            proto: Proto::Resp2,
            authenticated: state.config.requirepass.is_none(),
            name: None,
            lib_name: None,
            lib_ver: None,
        },
        queue: VecDeque::new(),
    };
    match handler.run() {
        Ok(()) => tracing::debug!(client = id, "connection closed"),
        Err(e) => tracing::debug!(client = id, "connection ended: {e}"),
    }
}

/// A reply waiting for the writes queued before it.
enum Queued {
    /// Known already.
    Ready(Frame),
    /// A write in flight, and how to turn its acknowledgement into the reply.
    Write(PendingWrite, fn(crate::Result<Ack>) -> Frame),
}

/// What the loop does after a command.
enum Flow {
    Continue,
    /// Answer what is pending and close (QUIT).
    Close,
    /// Answer what is pending, close, and stop the server (SHUTDOWN).
    Shutdown,
}

struct Handler<'a> {
    state: &'a ServerState,
    conn: Connection,
    session: Session,
    queue: VecDeque<Queued>,
}

impl Handler<'_> {
    fn run(&mut self) -> io::Result<()> {
        loop {
            match self.conn.next_command() {
                Ok(Some(argv)) if argv.is_empty() => {}
                Ok(Some(argv)) => {
                    match self.execute(argv) {
                        Flow::Continue => {}
                        Flow::Close => return self.drain(),
                        Flow::Shutdown => {
                            let result = self.drain();
                            self.state.shutdown.shutdown();
                            return result;
                        }
                    }
                    if self.queue.len() >= MAX_IN_FLIGHT || self.conn.buffered() >= FLUSH_AT {
                        self.drain()?;
                    }
                }
                Ok(None) => {
                    self.drain()?;
                    match self.conn.fill()? {
                        Filled::Data => {}
                        Filled::Closed | Filled::Idle => return Ok(()),
                    }
                }
                Err(e) => {
                    self.settle();
                    self.conn
                        .push(&Frame::Error(format!("ERR {e}")), self.session.proto);
                    return self.conn.flush();
                }
            }
        }
    }

    /// Parses and applies one command.
    fn execute(&mut self, argv: Vec<Vec<u8>>) -> Flow {
        self.state
            .stats
            .commands_processed
            .fetch_add(1, Ordering::Relaxed);
        let command = match cmd::parse(argv, self.session.authenticated) {
            Ok(command) => command,
            Err(e) => {
                self.emit(e.into());
                return Flow::Continue;
            }
        };
        if !command.stays_in_flight() {
            self.settle();
        }
        let mut ctx = Ctx {
            server: self.state,
            session: &mut self.session,
        };
        match command.apply(&mut ctx) {
            Reply::Frame(frame) => self.emit(frame),
            Reply::InFlight(pending, reply) => self.queue.push_back(Queued::Write(pending, reply)),
            Reply::Quit => {
                self.emit(Frame::ok());
                return Flow::Close;
            }
            Reply::Shutdown => return Flow::Shutdown,
        }
        Flow::Continue
    }

    /// Sends `frame` after every reply before it.
    fn emit(&mut self, frame: Frame) {
        if self.queue.is_empty() {
            self.conn.push(&frame, self.session.proto);
        } else {
            self.queue.push_back(Queued::Ready(frame));
        }
    }

    /// Waits for every write in flight and moves all queued replies, in order, to the output.
    fn settle(&mut self) {
        while let Some(queued) = self.queue.pop_front() {
            let frame = match queued {
                Queued::Ready(frame) => frame,
                Queued::Write(pending, reply) => reply(pending.wait()),
            };
            self.conn.push(&frame, self.session.proto);
        }
    }

    /// Settles and writes everything out.
    fn drain(&mut self) -> io::Result<()> {
        self.settle();
        self.conn.flush()
    }
}
