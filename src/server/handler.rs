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
//! - Between `MULTI` and `EXEC` commands are parsed and queued, not run (`+QUEUED`); `EXEC`
//!   settles earlier writes, runs the queue in order and answers one array. `QUIT` is never
//!   queued; `SHUTDOWN` is refused inside a transaction.

use super::cmd::{self, Command, Ctx, Reply, Session};
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
        multi: None,
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
    /// The open transaction, between `MULTI` and `EXEC`/`DISCARD`.
    multi: Option<Transaction>,
}

/// Commands queued by `MULTI`.
#[derive(Default)]
struct Transaction {
    commands: Vec<Command>,
    /// A queued command was refused: `EXEC` answers `-EXECABORT` and runs nothing.
    failed: bool,
}

/// Most commands one transaction may queue: bounds the memory a client can make the server hold.
const MAX_QUEUED: usize = 4096;

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
                if let Some(t) = &mut self.multi {
                    t.failed = true;
                }
                self.emit(e.into());
                return Flow::Continue;
            }
        };
        match command {
            Command::Multi => {
                let reply = if self.multi.is_some() {
                    Frame::error("ERR MULTI calls can not be nested")
                } else {
                    self.multi = Some(Transaction::default());
                    Frame::ok()
                };
                self.emit(reply);
                return Flow::Continue;
            }
            Command::Exec => {
                return match self.multi.take() {
                    None => {
                        self.emit(Frame::error("ERR EXEC without MULTI"));
                        Flow::Continue
                    }
                    Some(t) if t.failed => {
                        self.emit(Frame::error(
                            "EXECABORT Transaction discarded because of previous errors.",
                        ));
                        Flow::Continue
                    }
                    Some(t) => self.exec(t.commands),
                };
            }
            Command::Discard => {
                let reply = if self.multi.take().is_some() {
                    Frame::ok()
                } else {
                    Frame::error("ERR DISCARD without MULTI")
                };
                self.emit(reply);
                return Flow::Continue;
            }
            _ => {}
        }
        if let Some(t) = &mut self.multi {
            if !matches!(command, Command::Quit) {
                let refusal = if matches!(command, Command::Shutdown) {
                    Some("ERR SHUTDOWN is not allowed inside a transaction")
                } else if t.commands.len() >= MAX_QUEUED {
                    Some("ERR too many commands queued in this transaction (at most 4096)")
                } else {
                    None
                };
                let reply = match refusal {
                    Some(message) => {
                        t.failed = true;
                        Frame::error(message)
                    }
                    None => {
                        t.commands.push(command);
                        Frame::Simple("QUEUED".into())
                    }
                };
                self.emit(reply);
                return Flow::Continue;
            }
        }
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

    /// Runs a transaction's commands in order and answers the array of their replies. Pipelined
    /// writes inside it stay in flight together (they share group commits); any other command
    /// first waits for them, as outside a transaction.
    fn exec(&mut self, commands: Vec<Command>) -> Flow {
        self.settle();
        let mut replies: Vec<Queued> = Vec::with_capacity(commands.len());
        for command in commands {
            if !command.stays_in_flight() {
                for queued in &mut replies {
                    if matches!(queued, Queued::Write(..)) {
                        let placeholder = Queued::Ready(Frame::Null);
                        if let Queued::Write(pending, reply) =
                            std::mem::replace(queued, placeholder)
                        {
                            *queued = Queued::Ready(reply(pending.wait()));
                        }
                    }
                }
            }
            let mut ctx = Ctx {
                server: self.state,
                session: &mut self.session,
            };
            replies.push(match command.apply(&mut ctx) {
                Reply::Frame(frame) => Queued::Ready(frame),
                Reply::InFlight(pending, reply) => Queued::Write(pending, reply),
                // Neither is ever queued (see `execute`); answer as Redis would if they were.
                Reply::Quit => Queued::Ready(Frame::ok()),
                Reply::Shutdown => Queued::Ready(Frame::error(
                    "ERR SHUTDOWN is not allowed inside a transaction",
                )),
            });
        }
        let frames = replies
            .into_iter()
            .map(|queued| match queued {
                Queued::Ready(frame) => frame,
                Queued::Write(pending, reply) => reply(pending.wait()),
            })
            .collect();
        self.emit(Frame::Array(frames));
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
