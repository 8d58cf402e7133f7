//! One connection as a state machine driven by its event loop: read commands, dispatch them,
//! keep pipelined writes in flight, answer in order, and never block the loop.
//!
//! Invariants:
//! - Replies leave in request order. A reply is written to the output buffer directly only when
//!   no write of this connection is in flight; otherwise it joins the queue behind them.
//! - Only `EVENT.ADD` (and the transaction bookkeeping: `MULTI`, `DISCARD`, queueing inside a
//!   transaction) starts while earlier writes are in flight. Every other command is held
//!   (`stalled`) until they are acknowledged, so a read sees the connection's own writes, and a
//!   command that changes the session (`HELLO 3`) never changes how earlier replies are encoded.
//! - Commands that wait (the synchronous writes, `SIMILAR`, exports, `EXEC`, see
//!   [`Command::waits`]) run on a thread of their own; the connection reads nothing more until
//!   their reply is back. Everything else runs on the loop's thread.
//! - [`Handler::advance`] does everything that can be done now, up to [`BUDGET`] commands, and
//!   returns; the loop calls it again when the socket is readable or writable, when a write of
//!   this connection is acknowledged (or dropped unanswered), when a command's thread finishes
//!   (or panics), or, after a full budget, on its next turn (the connection notifies itself),
//!   so that one client sending without pause cannot keep its loop from the others.
//! - While a command's thread runs, the connection stays (even if its socket fails) until the
//!   thread is back: a command never outlives its connection's slot or the server.
//! - Input is read only while less than [`HIGH_WATER`] bytes of replies wait for the client and
//!   fewer than [`MAX_IN_FLIGHT`] replies are queued: a client that pipelines without reading
//!   cannot make the server hold unbounded memory.
//! - A framing error is answered `-ERR Protocol error: …` after the replies before it, then the
//!   connection is closed; a command error is answered and the connection goes on.
//! - Between `MULTI` and `EXEC` commands are parsed and queued, not run (`+QUEUED`); `EXEC`
//!   runs the queue in order and answers one array. `QUIT` is never queued; `SHUTDOWN` is
//!   refused inside a transaction.

use super::cmd::{self, Command, Ctx, Reply, Session};
use super::connection::{Connection, Filled};
use super::frame::{Frame, Proto};
use super::listener::ServerState;
use super::pubsub::Mailbox;
use crate::db::PendingWrite;
use crate::pipeline::{Ack, Notify};
use crossbeam_channel::{Receiver, TryRecvError};
use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Most replies of one connection queued behind writes in flight before it stops reading.
const MAX_IN_FLIGHT: usize = 1024;
/// Most commands one [`Handler::advance`] runs before it lets the loop serve others.
const BUDGET: usize = 512;
/// Reply bytes buffered before they are written even though more input is pending.
const FLUSH_AT: usize = 64 * 1024;
/// Reply bytes the client has not taken above which the connection stops reading.
const HIGH_WATER: usize = 256 * 1024;

/// A reply waiting for the writes queued before it.
enum Queued {
    /// Known already.
    Ready(Frame),
    /// A write in flight, and how to turn its acknowledgement into the reply.
    Write(PendingWrite, fn(crate::Result<Ack>) -> Frame),
}

/// Why the connection is closing once everything pending is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client left, sent `QUIT`, or broke the protocol.
    Close,
    /// `SHUTDOWN`: close, then stop the server.
    Shutdown,
}

/// What the event loop saw of a connection's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Readiness {
    /// Input arrived.
    pub(crate) readable: bool,
    /// The peer's end of input, or an error, arrived.
    pub(crate) hung_up: bool,
    /// Room to write.
    pub(crate) writable: bool,
}

/// What [`Handler::advance`] left the connection as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Waiting for the socket, an acknowledgement or a command's thread.
    Open,
    /// Finished: deregister and drop it.
    Closed,
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

/// What a command's own thread sends back.
type Finished = (Reply, Session);

/// One client connection.
pub(crate) struct Handler {
    state: Arc<ServerState>,
    conn: Connection,
    session: Session,
    queue: VecDeque<Queued>,
    /// The open transaction, between `MULTI` and `EXEC`/`DISCARD`.
    multi: Option<Transaction>,
    /// A command waiting for the writes before it.
    stalled: Option<Command>,
    /// A command running on its own thread.
    busy: Option<Receiver<Finished>>,
    /// Raised when the client goes away while `busy`: a blocked command stops waiting.
    abandoned: Arc<AtomicBool>,
    /// Set once the connection only answers what is pending and then closes.
    ending: Option<Ending>,
    /// The peer closed its side: no more input.
    eof: bool,
    /// Told when a write of this connection is acknowledged or its command's thread finishes.
    notify: (Arc<dyn Notify>, usize),
    /// When input last arrived (or the connection was accepted).
    last_input: Instant,
    /// The channels and patterns this connection is subscribed to, and its mailbox.
    subs: Subscriptions,
}

/// A connection's subscriptions (`SUBSCRIBE`, `PSUBSCRIBE`; see `pubsub.rs`).
#[derive(Default)]
struct Subscriptions {
    channels: BTreeSet<String>,
    patterns: BTreeSet<String>,
    mailbox: Arc<Mailbox>,
}

impl Subscriptions {
    fn count(&self) -> i64 {
        i64::try_from(self.channels.len() + self.patterns.len()).unwrap_or(i64::MAX)
    }

    fn active(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty()
    }
}

impl Handler {
    /// A handler for an accepted connection; `notify` (the loop's, with this connection's tag)
    /// is told whenever there is something new for [`Handler::advance`] to do.
    pub(crate) fn new(
        state: Arc<ServerState>,
        conn: Connection,
        id: u64,
        notify: (Arc<dyn Notify>, usize),
    ) -> Handler {
        let authenticated = state.config.requirepass.is_none();
        Handler {
            state,
            conn,
            session: Session {
                id,
                proto: Proto::Resp2,
                authenticated,
                name: None,
                lib_name: None,
                lib_ver: None,
            },
            queue: VecDeque::new(),
            multi: None,
            stalled: None,
            busy: None,
            abandoned: Arc::new(AtomicBool::new(false)),
            ending: None,
            eof: false,
            notify,
            last_input: Instant::now(),
            subs: Subscriptions::default(),
        }
    }

    /// The socket, to register with the event loop.
    pub(crate) fn stream(&mut self) -> &mut mio::net::TcpStream {
        self.conn.stream()
    }

    /// Since when the connection has been waiting for nothing but the client's next command;
    /// None while it has work in flight, replies to send or is closing.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        let quiet = !self.subs.active()
            && self.queue.is_empty()
            && self.stalled.is_none()
            && self.busy.is_none()
            && self.ending.is_none()
            && self.conn.buffered() == 0;
        quiet.then_some(self.last_input)
    }

    /// Does everything that can be done now: collects acknowledged writes and finished
    /// commands, writes replies out, reads and runs commands. Never blocks. `ready`: what the
    /// loop saw of the socket (nothing, when it advances the connection for an acknowledgement).
    pub(crate) fn advance(&mut self, ready: Readiness) -> Status {
        self.conn
            .ready(ready.readable, ready.hung_up, ready.writable);
        match self.step() {
            Ok(status) => status,
            Err(e) => {
                tracing::debug!(client = self.session.id, "connection ended: {e}");
                Status::Closed
            }
        }
    }

    fn step(&mut self) -> io::Result<Status> {
        let mut budget = BUDGET;
        loop {
            if let Some(done) = &self.busy {
                match done.try_recv() {
                    Ok((reply, session)) => {
                        self.busy = None;
                        self.session = session;
                        self.finish(reply);
                    }
                    Err(TryRecvError::Empty) => {
                        // A socket that failed is noticed once the thread is back (the
                        // connection must outlive it); a client that went away ends a
                        // blocked wait there (as Redis frees a client blocked in `XREAD`).
                        if self.conn.hung_up() {
                            self.abandoned.store(true, Ordering::Relaxed);
                        }
                        let _ = self.conn.flush();
                        return Ok(Status::Open);
                    }
                    // The command's thread panicked; its session is lost with it.
                    Err(TryRecvError::Disconnected) => return Ok(Status::Closed),
                }
            }
            if self.subs.active() {
                // Messages leave the mailbox only as fast as the client takes them: one that
                // does not keep up fills its mailbox, not the server's memory, and is dropped.
                if self.conn.buffered() < HIGH_WATER {
                    for frame in self.subs.mailbox.take() {
                        self.emit(frame);
                    }
                }
                if self.subs.mailbox.overflowed() && self.ending.is_none() {
                    self.emit(Frame::error(format!(
                        "ERR pub/sub mailbox over {} messages: the client does not keep up; \
                         reconnect and catch up with TRIGGER.READ SINCE the last id received",
                        super::pubsub::MAX_MAILBOX
                    )));
                    self.ending = Some(Ending::Close);
                }
            }
            if budget == 0 {
                // Others on this loop get their turn; this connection's comes next.
                let (notify, tag) = &self.notify;
                notify.notify(*tag);
                return self.wait();
            }
            self.collect();
            if let Some(ending) = self.ending {
                let flushed = self.conn.flush()?;
                if self.queue.is_empty() && flushed {
                    if ending == Ending::Shutdown {
                        self.state.shutdown.shutdown();
                    }
                    tracing::debug!(client = self.session.id, "connection closed");
                    return Ok(Status::Closed);
                }
                return Ok(Status::Open);
            }
            // Replies go out in one write per batch of input, or when they pile up.
            if self.conn.buffered() >= FLUSH_AT {
                self.conn.flush()?;
                if self.conn.buffered() >= HIGH_WATER {
                    return Ok(Status::Open); // resumed when the socket is writable
                }
            }
            if let Some(command) = self.stalled.take() {
                if self.writes_in_flight() {
                    self.stalled = Some(command);
                    return self.wait(); // resumed by the acknowledgement
                }
                self.run(command);
                continue;
            }
            if self.queue.len() >= MAX_IN_FLIGHT {
                return self.wait(); // resumed by the acknowledgements
            }
            match self.conn.next_command() {
                Ok(Some(argv)) if argv.is_empty() => {}
                Ok(Some(argv)) => {
                    budget -= 1;
                    if let Some(command) = self.parse(argv) {
                        if self.waits_for_writes(&command) && self.writes_in_flight() {
                            self.stalled = Some(command);
                        } else {
                            self.run(command);
                        }
                    }
                }
                Ok(None) if self.eof => self.ending = Some(Ending::Close),
                Ok(None) => match self.conn.fill()? {
                    Filled::Data => self.last_input = Instant::now(),
                    Filled::Closed => self.eof = true,
                    Filled::Empty => return self.wait(), // resumed when the socket is readable
                },
                Err(e) => {
                    self.emit(Frame::Error(format!("ERR {e}")));
                    self.ending = Some(Ending::Close);
                }
            }
        }
    }

    /// Writes out what can be written and leaves the connection waiting for its loop.
    fn wait(&mut self) -> io::Result<Status> {
        self.conn.flush()?;
        Ok(Status::Open)
    }

    /// Parses one command; a refusal is answered here (and fails an open transaction).
    fn parse(&mut self, argv: Vec<Vec<u8>>) -> Option<Command> {
        self.state
            .stats
            .commands_processed
            .fetch_add(1, Ordering::Relaxed);
        match cmd::parse(
            argv,
            self.session.authenticated,
            self.state.config.cluster.as_deref(),
        ) {
            Ok(command) => Some(command),
            Err(e) => {
                if let Some(t) = &mut self.multi {
                    t.failed = true;
                }
                self.emit(e.into());
                None
            }
        }
    }

    /// Whether `command` must wait for the writes in flight before it runs.
    fn waits_for_writes(&self, command: &Command) -> bool {
        match command {
            Command::Multi | Command::Discard => false,
            Command::Exec | Command::Quit => true,
            _ if self.multi.is_some() => false, // only queued
            c => !c.stays_in_flight(),
        }
    }

    /// Whether a write of this connection is still waiting for its acknowledgement.
    fn writes_in_flight(&self) -> bool {
        self.queue.iter().any(|q| matches!(q, Queued::Write(..)))
    }

    /// Runs one parsed command (every write before it acknowledged, unless it stays in flight).
    fn run(&mut self, command: Command) {
        match command {
            Command::Multi => {
                let reply = if self.multi.is_some() {
                    Frame::error("ERR MULTI calls can not be nested")
                } else {
                    self.multi = Some(Transaction::default());
                    Frame::ok()
                };
                self.emit(reply);
                return;
            }
            Command::Exec => {
                match self.multi.take() {
                    None => self.emit(Frame::error("ERR EXEC without MULTI")),
                    Some(t) if t.failed => self.emit(Frame::error(
                        "EXECABORT Transaction discarded because of previous errors.",
                    )),
                    Some(t) => self.spawn(Job::Exec(t.commands)),
                }
                return;
            }
            Command::Discard => {
                let reply = if self.multi.take().is_some() {
                    Frame::ok()
                } else {
                    Frame::error("ERR DISCARD without MULTI")
                };
                self.emit(reply);
                return;
            }
            _ => {}
        }
        if let Some(t) = &mut self.multi {
            if !matches!(command, Command::Quit) {
                let refusal = if matches!(command, Command::Shutdown) {
                    Some("ERR SHUTDOWN is not allowed inside a transaction")
                } else if is_pubsub(&command) {
                    Some("ERR pub/sub commands are not allowed inside a transaction")
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
                return;
            }
        }
        if self.subs.active() || is_pubsub(&command) {
            if let Some(command) = self.pubsub(command) {
                self.run_now(command);
            }
            return;
        }
        self.run_now(command);
    }

    /// Runs a command that is not a transaction's, on this thread or on its own.
    fn run_now(&mut self, command: Command) {
        if command.waits() {
            self.spawn(Job::Command(command));
            return;
        }
        let mut ctx = Ctx {
            server: &self.state,
            session: &mut self.session,
            notify: Some(self.notify.clone()),
            abandoned: None,
        };
        let reply = command.apply(&mut ctx);
        self.finish(reply);
    }

    /// Runs a pub/sub command, or refuses a command a subscribed RESP2 connection may not run
    /// (as Redis does); gives back any other command to run.
    fn pubsub(&mut self, command: Command) -> Option<Command> {
        let resp2 = self.session.proto == Proto::Resp2;
        let reply = |kind: &str, name: Frame, count: i64| {
            Frame::Push(vec![Frame::bulk(kind), name, Frame::Integer(count)])
        };
        match command {
            Command::Subscribe(names) | Command::PSubscribe(names)
                if names.iter().any(|n| n.len() > 1024) =>
            {
                self.emit(Frame::error(
                    "ERR a channel or pattern is longer than 1024 bytes",
                ));
            }
            Command::Subscribe(names) => {
                for n in names {
                    self.subs.channels.insert(n.clone());
                    self.emit(reply("subscribe", Frame::bulk(n), self.subs.count()));
                }
            }
            Command::PSubscribe(names) => {
                for n in names {
                    self.subs.patterns.insert(n.clone());
                    self.emit(reply("psubscribe", Frame::bulk(n), self.subs.count()));
                }
            }
            Command::Unsubscribe(names) => self.unsubscribe(names, false),
            Command::PUnsubscribe(names) => self.unsubscribe(names, true),
            Command::Ping(p) if resp2 && self.subs.active() => self.emit(p.subscribed_reply()),
            Command::Quit => return Some(Command::Quit),
            _ if resp2 && self.subs.active() => {
                self.emit(Frame::error(
                    "ERR only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT are allowed in this context",
                ));
            }
            other => return Some(other),
        }
        self.state.pubsub.set(
            self.session.id,
            &self.subs.channels,
            &self.subs.patterns,
            &self.subs.mailbox,
            &self.notify,
        );
        if !self.subs.active() {
            // Unsubscribed from everything: what was waiting is for subscriptions gone.
            self.subs.mailbox.take();
        }
        None
    }

    /// `UNSUBSCRIBE` (`patterns`: `PUNSUBSCRIBE`) from `names`, or from all when none: one
    /// reply per name with the subscriptions left (one with a null name if there were none).
    fn unsubscribe(&mut self, names: Vec<String>, patterns: bool) {
        let kind = if patterns {
            "punsubscribe"
        } else {
            "unsubscribe"
        };
        let names: Vec<String> = match (names.is_empty(), patterns) {
            (false, _) => names,
            (true, true) => self.subs.patterns.iter().cloned().collect(),
            (true, false) => self.subs.channels.iter().cloned().collect(),
        };
        let push = |name: Frame, left: i64| {
            Frame::Push(vec![Frame::bulk(kind), name, Frame::Integer(left)])
        };
        if names.is_empty() {
            let left = self.subs.count();
            self.emit(push(Frame::Null, left));
        }
        for n in names {
            if patterns {
                self.subs.patterns.remove(&n);
            } else {
                self.subs.channels.remove(&n);
            }
            let left = self.subs.count();
            self.emit(push(Frame::bulk(n), left));
        }
    }

    /// Runs `job` on a thread of its own; its reply comes back through `busy`.
    fn spawn(&mut self, job: Job) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let state = Arc::clone(&self.state);
        let mut session = self.session.clone();
        let (notify, tag) = self.notify.clone();
        let abandoned = Arc::new(AtomicBool::new(false));
        self.abandoned = Arc::clone(&abandoned);
        let spawned = std::thread::Builder::new()
            .name(format!("persona-cmd-{}", self.session.id))
            .spawn(move || {
                // Tells the loop when this thread ends, however it ends (a panic included:
                // the connection then finds the channel closed).
                let _told = NotifyOnDrop(notify, tag);
                // Dropped before `_told`: the loop finds the reply, or the channel closed.
                let tx = tx;
                let reply = job.run(&state, &mut session, &abandoned);
                let _ = tx.send((reply, session));
            });
        match spawned {
            Ok(_) => self.busy = Some(rx),
            Err(e) => {
                tracing::error!("cannot start a thread for a command: {e}");
                self.emit(Frame::error(format!(
                    "ERR the server cannot start a thread for this command: {e}"
                )));
            }
        }
    }

    /// Sends a command's reply, or queues it behind the writes in flight.
    fn finish(&mut self, reply: Reply) {
        match reply {
            Reply::Frame(frame) => self.emit(frame),
            Reply::InFlight(pending, reply) => self.queue.push_back(Queued::Write(pending, reply)),
            Reply::Quit => {
                self.emit(Frame::ok());
                self.ending = Some(Ending::Close);
            }
            Reply::Shutdown => self.ending = Some(Ending::Shutdown),
        }
    }

    /// Sends `frame` after every reply before it.
    fn emit(&mut self, frame: Frame) {
        if self.queue.is_empty() {
            self.conn.push(&frame, self.session.proto);
        } else {
            self.queue.push_back(Queued::Ready(frame));
        }
    }

    /// Moves the replies at the front of the queue that are known (acknowledged writes
    /// included) to the output, in order, up to the first write still in flight.
    fn collect(&mut self) {
        while let Some(front) = self.queue.front() {
            let frame = match front {
                Queued::Ready(_) => match self.queue.pop_front() {
                    Some(Queued::Ready(frame)) => frame,
                    _ => break,
                },
                Queued::Write(pending, reply) => match pending.try_wait() {
                    Some(result) => {
                        let frame = reply(result);
                        self.queue.pop_front();
                        frame
                    }
                    None => break,
                },
            };
            self.conn.push(&frame, self.session.proto);
        }
    }
}

/// Whether `command` subscribes or unsubscribes.
fn is_pubsub(command: &Command) -> bool {
    matches!(
        command,
        Command::Subscribe(_)
            | Command::PSubscribe(_)
            | Command::Unsubscribe(_)
            | Command::PUnsubscribe(_)
    )
}

impl Drop for Handler {
    fn drop(&mut self) {
        if self.subs.active() {
            self.state.pubsub.remove(self.session.id);
        }
    }
}

/// Notifies its loop when dropped.
struct NotifyOnDrop(Arc<dyn Notify>, usize);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify(self.1);
    }
}

/// Work that runs on a thread of its own because it waits (see [`Command::waits`]).
enum Job {
    Command(Command),
    Exec(Vec<Command>),
}

impl Job {
    fn run(self, state: &ServerState, session: &mut Session, abandoned: &AtomicBool) -> Reply {
        match self {
            Job::Command(command) => command.apply(&mut Ctx {
                server: state,
                session,
                notify: None,
                abandoned: Some(abandoned),
            }),
            Job::Exec(commands) => Reply::Frame(exec(state, session, commands)),
        }
    }
}

/// Runs a transaction's commands in order and answers the array of their replies. Pipelined
/// writes inside it stay in flight together (they share group commits); any other command
/// first waits for them, as outside a transaction.
fn exec(state: &ServerState, session: &mut Session, commands: Vec<Command>) -> Frame {
    let mut replies: Vec<Queued> = Vec::with_capacity(commands.len());
    for command in commands {
        if !command.stays_in_flight() {
            for queued in &mut replies {
                if matches!(queued, Queued::Write(..)) {
                    let placeholder = Queued::Ready(Frame::Null);
                    if let Queued::Write(pending, reply) = std::mem::replace(queued, placeholder) {
                        *queued = Queued::Ready(reply(pending.wait()));
                    }
                }
            }
        }
        let mut ctx = Ctx {
            server: state,
            session: &mut *session,
            notify: None,
            abandoned: None,
        };
        // Nothing blocks inside a transaction (as in Redis): `EXEC` answers at once.
        let command = match command {
            Command::TriggerRead(read) => Command::TriggerRead(read.without_block()),
            other => other,
        };
        replies.push(match command.apply(&mut ctx) {
            Reply::Frame(frame) => Queued::Ready(frame),
            Reply::InFlight(pending, reply) => Queued::Write(pending, reply),
            // Neither is ever queued (see `Handler::run`); answer as Redis would if they were.
            Reply::Quit => Queued::Ready(Frame::ok()),
            Reply::Shutdown => Queued::Ready(Frame::error(
                "ERR SHUTDOWN is not allowed inside a transaction",
            )),
        });
    }
    Frame::Array(
        replies
            .into_iter()
            .map(|queued| match queued {
                Queued::Ready(frame) => frame,
                Queued::Write(pending, reply) => reply(pending.wait()),
            })
            .collect(),
    )
}
