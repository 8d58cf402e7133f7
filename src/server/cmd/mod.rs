//! The commands: a table of [`Spec`]s (name, arity, flags, documentation, parser) and the
//! [`Command`] enum of parsed commands, each applied to a [`Ctx`].
//!
//! One file per family: `event.rs` (EVENT.*), `profile.rs` (PROFILE.*), `segment.rs`
//! (SEGMENT.*), `model.rs` (MODEL.*), `query.rs` (SIMILAR, SCORE), `strategy.rs` (STRATEGY,
//! RECOMMEND, FEEDBACK), `trigger.rs` (TRIGGER.*), `pubsub.rs` ((P)SUBSCRIBE, (P)UNSUBSCRIBE), `admin.rs` (connection and server commands every Redis
//! client expects), `transaction.rs` (MULTI, EXEC, DISCARD) and `introspect.rs` (COMMAND, CONFIG, INFO). Adding a command means: a struct
//! with `parse` and `apply` and a `const` [`Spec`] in its family's file, a variant of
//! [`Command`], and a line in [`COMMANDS`]. `COMMAND`, `COMMAND DOCS` and the arity and usage
//! messages are derived from the table.
//!
//! Dispatch order follows Redis: an unknown name, then a wrong argument count, then missing
//! authentication, then the command's own argument checks. Every refusal is a [`CommandError`],
//! answered as an error reply; the connection stays usable.

mod admin;
mod args;
mod cluster;
mod event;
mod introspect;
mod model;
mod profile;
mod pubsub;
mod query;
mod segment;
mod strategy;
mod transaction;
mod trigger;

pub(crate) use args::Args;

use super::frame::{Frame, Proto};
use super::listener::ServerState;
use crate::db::PendingWrite;
use crate::error::Error;
use crate::pipeline::{Ack, Notify};
use std::fmt::Write as _;
use std::sync::Arc;

/// Every top-level command, in the order `COMMAND` lists them.
pub(crate) static COMMANDS: &[Spec] = &[
    event::ADD,
    profile::GET,
    profile::HISTORY,
    profile::SET,
    profile::DEL,
    profile::EXPORT,
    segment::LIST,
    segment::MEMBERS,
    segment::NEAREST,
    query::SIMILAR,
    query::SCORE,
    strategy::STRATEGY,
    strategy::RECOMMEND,
    strategy::FEEDBACK,
    trigger::ADD,
    trigger::DEL,
    trigger::LIST,
    trigger::READ,
    trigger::ACK,
    pubsub::SUBSCRIBE,
    pubsub::PSUBSCRIBE,
    pubsub::UNSUBSCRIBE,
    pubsub::PUNSUBSCRIBE,
    model::INFO,
    model::VERSIONS,
    model::SNAPSHOT,
    model::ROLLBACK,
    model::ADVANCE,
    admin::PING,
    admin::ECHO,
    admin::HELLO,
    admin::AUTH,
    admin::QUIT,
    admin::SELECT,
    admin::CLIENT,
    admin::DBSIZE,
    admin::SHUTDOWN,
    transaction::MULTI,
    transaction::EXEC,
    transaction::DISCARD,
    introspect::COMMAND,
    introspect::CONFIG,
    introspect::INFO,
    cluster::CLUSTER,
    cluster::ASKING,
    cluster::READONLY,
    cluster::READWRITE,
];

/// A command's name, shape and documentation, and its parser.
pub(crate) struct Spec {
    /// Wire name, upper case (`EVENT.ADD`); for a subcommand, the subcommand alone (`SETNAME`).
    pub(crate) name: &'static str,
    /// Redis convention, counting the name (and for a subcommand, its container): `N` means
    /// exactly N arguments, `-N` at least N.
    pub(crate) arity: i64,
    /// Redis command flags (`write`, `readonly`, `fast`, `no-auth`, ...), reported by `COMMAND`.
    pub(crate) flags: &'static [&'static str],
    /// Position of the customer id among the arguments (1-based), or 0 if there is none.
    pub(crate) key: i64,
    /// `COMMAND DOCS` group.
    pub(crate) group: &'static str,
    /// Persona version that introduced the command.
    pub(crate) since: &'static str,
    /// One-line description.
    pub(crate) summary: &'static str,
    /// The arguments after the name, for usage messages and `COMMAND DOCS`.
    pub(crate) args: &'static [ArgDoc],
    /// Subcommands, for a container such as `CLIENT`; its `parse` is then [`subcommand`].
    pub(crate) subcommands: &'static [Spec],
    /// Reads the arguments after the name (and subcommand).
    pub(crate) parse: fn(&mut Args) -> Result<Command, CommandError>,
    /// Container name for a subcommand (`CLIENT`), empty for a top-level command.
    pub(crate) container: &'static str,
}

impl Spec {
    /// Whether the command may run before the client authenticated.
    fn no_auth(&self) -> bool {
        self.flags.contains(&"no-auth")
    }

    /// Lower-case full name as Redis prints it: `event.add`, `client|setname`.
    pub(crate) fn full_name(&self) -> String {
        if self.container.is_empty() {
            self.name.to_ascii_lowercase()
        } else {
            format!("{}|{}", self.container, self.name).to_ascii_lowercase()
        }
    }

    /// The syntax line: `EVENT.ADD customer kind [value] [CATEGORY category] ...`.
    pub(crate) fn usage(&self) -> String {
        let mut out = String::new();
        if !self.container.is_empty() {
            out.push_str(self.container);
            out.push(' ');
        }
        out.push_str(self.name);
        for arg in self.args {
            out.push(' ');
            arg.usage(&mut out);
        }
        out
    }

    /// Whether `argc` arguments (name included) satisfy the arity.
    fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }
}

/// One documented argument, as `COMMAND DOCS` describes it.
pub(crate) struct ArgDoc {
    pub(crate) name: &'static str,
    pub(crate) kind: ArgKind,
    /// A keyword that precedes the value (`CATEGORY`).
    pub(crate) token: Option<&'static str>,
    pub(crate) optional: bool,
    pub(crate) multiple: bool,
}

/// The type of an [`ArgDoc`], with Redis's names.
pub(crate) enum ArgKind {
    Key,
    String,
    Integer,
    Double,
    UnixTime,
    PureToken,
    OneOf(&'static [ArgDoc]),
    Block(&'static [ArgDoc]),
}

impl ArgDoc {
    /// A required argument.
    pub(crate) const fn new(name: &'static str, kind: ArgKind) -> ArgDoc {
        ArgDoc {
            name,
            kind,
            token: None,
            optional: false,
            multiple: false,
        }
    }

    /// The same argument, optional.
    pub(crate) const fn optional(mut self) -> ArgDoc {
        self.optional = true;
        self
    }

    /// The same argument, repeatable.
    pub(crate) const fn multiple(mut self) -> ArgDoc {
        self.multiple = true;
        self
    }

    /// The same argument, preceded by a keyword.
    pub(crate) const fn token(mut self, token: &'static str) -> ArgDoc {
        self.token = Some(token);
        self
    }

    /// Redis's name for the type.
    pub(crate) fn type_name(&self) -> &'static str {
        match self.kind {
            ArgKind::Key => "key",
            ArgKind::String => "string",
            ArgKind::Integer => "integer",
            ArgKind::Double => "double",
            ArgKind::UnixTime => "unix-time",
            ArgKind::PureToken => "pure-token",
            ArgKind::OneOf(_) => "oneof",
            ArgKind::Block(_) => "block",
        }
    }

    /// Appends the argument as a syntax line shows it, the way `redis-cli` builds its hints.
    fn usage(&self, out: &mut String) {
        let mut body = String::new();
        match (&self.kind, self.token) {
            (ArgKind::PureToken, Some(token)) => body.push_str(token),
            (kind, token) => {
                if let Some(token) = token {
                    body.push_str(token);
                    body.push(' ');
                }
                match kind {
                    ArgKind::OneOf(items) | ArgKind::Block(items) => {
                        let sep = if matches!(kind, ArgKind::OneOf(_)) {
                            "|"
                        } else {
                            " "
                        };
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                body.push_str(sep);
                            }
                            item.usage(&mut body);
                        }
                    }
                    _ => body.push_str(self.name),
                }
            }
        }
        let body = if self.multiple {
            format!("{body} [{body} ...]")
        } else {
            body
        };
        if self.optional {
            let _ = write!(out, "[{body}]");
        } else {
            out.push_str(&body);
        }
    }
}

/// Why a command was refused; its Display is the error reply, code included.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CommandError {
    /// No command by that name.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    Unknown { name: String, args: String },
    /// No subcommand by that name.
    #[error("ERR unknown subcommand '{sub}'. Try {container} HELP.")]
    UnknownSubcommand {
        sub: String,
        container: &'static str,
    },
    /// Too few or too many arguments.
    #[error("ERR wrong number of arguments for '{command}' command; usage: {usage}")]
    Arity { command: String, usage: String },
    /// An argument that is not allowed where it is.
    #[error("ERR syntax error: {reason}; usage: {usage}")]
    Syntax { reason: String, usage: String },
    /// An argument with a value that is not allowed.
    #[error("ERR invalid {name} '{value}': {allowed}")]
    Invalid {
        name: &'static str,
        value: String,
        allowed: String,
    },
    /// Anything else the command refuses, with its message.
    #[error("ERR {0}")]
    Other(String),
    /// Not authenticated.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// `HELLO` without `AUTH` on a connection that is not authenticated.
    #[error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO \
         <proto> AUTH <user> <pass> option can be used to authenticate the client and select the \
         RESP protocol version at the same time"
    )]
    NoAuthHello,
    /// Wrong user name or password.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// `AUTH` when no password is configured.
    #[error(
        "ERR AUTH <password> called without any password configured for the default user. Are \
         you sure your configuration is correct?"
    )]
    NoPasswordSet,
    /// `HELLO` with a protocol version other than 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// The store refused or failed the request (a cluster node's redirect is sent as Redis
    /// Cluster words it, without `ERR`).
    #[error("{}", db_reply(.0))]
    Db(#[from] Error),
}

/// The error reply for a store error: `ERR` and its message, or a cluster redirect as it is.
fn db_reply(e: &Error) -> String {
    match e {
        Error::Redirect(reply) => reply.clone(),
        e => format!("ERR {e}"),
    }
}

impl From<CommandError> for Frame {
    fn from(err: CommandError) -> Frame {
        Frame::Error(err.to_string())
    }
}

/// One connection's state, as commands see and change it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// `CLIENT ID`.
    pub(crate) id: u64,
    /// Dialect of the replies.
    pub(crate) proto: Proto,
    /// Whether the client may run commands (always, when no password is set).
    pub(crate) authenticated: bool,
    /// `CLIENT SETNAME`.
    pub(crate) name: Option<String>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub(crate) lib_name: Option<String>,
    /// `CLIENT SETINFO LIB-VER`.
    pub(crate) lib_ver: Option<String>,
}

/// What a command runs against.
pub(crate) struct Ctx<'a> {
    pub(crate) server: &'a ServerState,
    pub(crate) session: &'a mut Session,
    /// Whom `EVENT.ADD` tells when its write is acknowledged (the connection's event loop,
    /// with the connection's tag); None where the reply is waited for (inside `EXEC`).
    pub(crate) notify: Option<(Arc<dyn Notify>, usize)>,
    /// For a command on a thread of its own: raised when the client went away, so that a
    /// blocked wait ends (None: the command runs on the connection's loop, never waiting).
    pub(crate) abandoned: Option<&'a std::sync::atomic::AtomicBool>,
}

impl Ctx<'_> {
    /// Whether the client this command answers went away.
    pub(crate) fn abandoned(&self) -> bool {
        self.abandoned
            .is_some_and(|a| a.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// What a command asks the connection to do.
pub(crate) enum Reply {
    /// Send this reply.
    Frame(Frame),
    /// A write in flight: when it is acknowledged, send the reply this function makes of it.
    InFlight(PendingWrite, fn(crate::Result<Ack>) -> Frame),
    /// Send `+OK` and close the connection (`QUIT`).
    Quit,
    /// Close the connection without a reply and stop the server (`SHUTDOWN`).
    Shutdown,
}

impl From<Result<Frame, CommandError>> for Reply {
    fn from(result: Result<Frame, CommandError>) -> Reply {
        Reply::Frame(result.unwrap_or_else(Frame::from))
    }
}

/// A parsed command, ready to apply.
pub(crate) enum Command {
    EventAdd(event::Add),
    ProfileGet(profile::Get),
    ProfileHistory(profile::History),
    ProfileSet(profile::Set),
    ProfileDel(profile::Del),
    ProfileExport(profile::Export),
    SegmentList(segment::List),
    SegmentMembers(segment::Members),
    SegmentNearest(segment::Nearest),
    Similar(query::Similar),
    Score(query::Score),
    Strategy(strategy::Strategy),
    Recommend(strategy::Recommend),
    Feedback(strategy::Feedback),
    TriggerAdd(trigger::Add),
    TriggerDel(trigger::Del),
    TriggerList(trigger::List),
    TriggerRead(trigger::Read),
    TriggerAck(trigger::Ack),
    /// `SUBSCRIBE`: run by the connection (it changes what the connection sends unasked).
    Subscribe(Vec<String>),
    /// `PSUBSCRIBE`: run by the connection.
    PSubscribe(Vec<String>),
    /// `UNSUBSCRIBE`: run by the connection.
    Unsubscribe(Vec<String>),
    /// `PUNSUBSCRIBE`: run by the connection.
    PUnsubscribe(Vec<String>),
    ModelInfo(model::Info),
    ModelVersions(model::Versions),
    ModelSnapshot(model::Snapshot),
    ModelRollback(model::Rollback),
    ModelAdvance(model::Advance),
    Ping(admin::Ping),
    Echo(admin::Echo),
    Hello(admin::Hello),
    Auth(admin::Auth),
    Quit,
    Select,
    Client(admin::Client),
    DbSize,
    Shutdown,
    /// `MULTI`: handled by the connection, which owns the transaction queue.
    Multi,
    /// `EXEC`: handled by the connection.
    Exec,
    /// `DISCARD`: handled by the connection.
    Discard,
    Commands(introspect::CommandQuery),
    ConfigGet(introspect::ConfigGet),
    ConfigSet,
    Info(introspect::Info),
    /// `CLUSTER …`: answered from the cluster map, or refused as by a Redis without cluster
    /// support on a single node.
    Cluster(cluster::Query),
    /// `ASKING`, `READONLY`, `READWRITE`.
    ClusterConnection,
    /// `<CONTAINER> HELP`.
    Help(&'static Spec),
}

impl Command {
    /// Whether the command may start while earlier writes of the connection are still in flight.
    /// Everything else waits for them, so that it observes them — reads, and the synchronous
    /// writes (`PROFILE.SET`, `PROFILE.DEL`, `FEEDBACK`, `MODEL.SNAPSHOT`, `MODEL.ROLLBACK`, `MODEL.ADVANCE`), which are thereby
    /// ordered after the connection's pipelined `EVENT.ADD`s.
    pub(crate) fn stays_in_flight(&self) -> bool {
        matches!(self, Command::EventAdd(_))
    }

    /// Whether the command may wait (for a durable commit, or for a scan of many records), so
    /// that it runs on a thread of its own instead of the connection's event loop: the
    /// synchronous writes, `SIMILAR`, `PROFILE.EXPORT`, `SEGMENT.LIST`, `STRATEGY` and
    /// `RECOMMEND` (they read every profile key, `STRATEGY` and `RECOMMEND` when their segment
    /// statistics are older than five minutes), `SEGMENT.MEMBERS`, and `DBSIZE` and
    /// `INFO` (they count the profiles). Never `EVENT.ADD`, which is asynchronous.
    pub(crate) fn waits(&self) -> bool {
        matches!(
            self,
            Command::ProfileSet(_)
                | Command::ProfileDel(_)
                | Command::ProfileExport(_)
                | Command::SegmentList(_)
                | Command::SegmentMembers(_)
                | Command::Similar(_)
                | Command::Strategy(_)
                | Command::Recommend(_)
                | Command::Feedback(_)
                | Command::TriggerAdd(_)
                | Command::TriggerDel(_)
                | Command::TriggerRead(_)
                | Command::TriggerAck(_)
                | Command::ModelSnapshot(_)
                | Command::ModelRollback(_)
                | Command::ModelAdvance(_)
                | Command::DbSize
                | Command::Info(_)
        )
    }

    /// Runs the command.
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Reply {
        match self {
            Command::EventAdd(c) => c.apply(ctx),
            Command::ProfileGet(c) => c.apply(ctx).into(),
            Command::ProfileHistory(c) => c.apply(ctx).into(),
            Command::ProfileSet(c) => c.apply(ctx).into(),
            Command::ProfileDel(c) => c.apply(ctx).into(),
            Command::ProfileExport(c) => c.apply(ctx).into(),
            Command::SegmentList(c) => c.apply(ctx).into(),
            Command::SegmentMembers(c) => c.apply(ctx).into(),
            Command::SegmentNearest(c) => c.apply(ctx).into(),
            Command::Similar(c) => c.apply(ctx).into(),
            Command::Score(c) => c.apply(ctx).into(),
            Command::Strategy(c) => c.apply(ctx).into(),
            Command::Recommend(c) => c.apply(ctx).into(),
            Command::Feedback(c) => c.apply(ctx).into(),
            Command::TriggerAdd(c) => c.apply(ctx).into(),
            Command::TriggerDel(c) => c.apply(ctx).into(),
            Command::TriggerList(c) => Reply::Frame(c.apply(ctx)),
            Command::TriggerRead(c) => c.apply(ctx).into(),
            Command::TriggerAck(c) => c.apply(ctx).into(),
            // The connection runs these (`handler.rs`); here only inside `EXEC`, which the
            // connection refuses to queue them in.
            Command::Subscribe(_)
            | Command::PSubscribe(_)
            | Command::Unsubscribe(_)
            | Command::PUnsubscribe(_) => Reply::Frame(Frame::error(
                "ERR pub/sub commands are not allowed inside a transaction",
            )),
            Command::ModelInfo(c) => Reply::Frame(c.apply(ctx)),
            Command::ModelVersions(c) => c.apply(ctx).into(),
            Command::ModelSnapshot(c) => c.apply(ctx).into(),
            Command::ModelRollback(c) => c.apply(ctx).into(),
            Command::ModelAdvance(c) => c.apply(ctx).into(),
            Command::Ping(c) => Reply::Frame(c.apply(ctx)),
            Command::Echo(c) => Reply::Frame(c.apply()),
            Command::Hello(c) => c.apply(ctx).into(),
            Command::Auth(c) => c.apply(ctx).into(),
            Command::Quit => Reply::Quit,
            Command::Select => Reply::Frame(Frame::ok()),
            Command::Client(c) => Reply::Frame(c.apply(ctx)),
            Command::DbSize => Reply::Frame(admin::dbsize(ctx)),
            Command::Shutdown => Reply::Shutdown,
            // The connection handles these before applying anything; reaching here means a
            // transaction command outside the handler's control, which it treats as misuse.
            Command::Multi | Command::Exec | Command::Discard => Reply::Frame(Frame::error(
                "ERR transaction commands are handled by the connection",
            )),
            Command::Commands(c) => Reply::Frame(c.apply()),
            Command::ConfigGet(c) => Reply::Frame(c.apply(ctx)),
            Command::ConfigSet => Reply::Frame(introspect::config_set()),
            Command::Info(c) => Reply::Frame(c.apply(ctx)),
            Command::Cluster(c) => Reply::Frame(c.apply(ctx)),
            Command::ClusterConnection => Reply::Frame(cluster::connection(ctx)),
            Command::Help(spec) => Reply::Frame(help(spec)),
        }
    }
}

/// An integer reply from a count (saturating; counts never get near `i64::MAX`).
pub(crate) fn int(n: u64) -> Frame {
    Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// An integer reply, or null.
pub(crate) fn opt_int(n: Option<u64>) -> Frame {
    n.map_or(Frame::Null, int)
}

/// Finds a top-level command by name, ignoring ASCII case.
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Parses one command: checks the name, the argument count and authentication, then the
/// arguments. `argv` is not empty.
///
/// # Errors
/// The first [`CommandError`] found, in Redis's order.
/// On a cluster node (`cluster`), a command whose customer's partition is another node's is
/// refused with `-MOVED` before its arguments are read, as Redis Cluster does.
pub(crate) fn parse(
    argv: Vec<Vec<u8>>,
    authenticated: bool,
    cluster: Option<&crate::cluster::ClusterView>,
) -> Result<Command, CommandError> {
    let argc = argv.len();
    let mut argv = argv.into_iter();
    let name = argv.next().unwrap_or_default();
    let Some(spec) = lookup(&name) else {
        return Err(unknown_command(&name, argv.as_slice()));
    };
    if !spec.arity_ok(argc) {
        return Err(CommandError::Arity {
            command: spec.full_name(),
            usage: spec.usage(),
        });
    }
    if !authenticated && !spec.no_auth() {
        return Err(CommandError::NoAuth);
    }
    if let (Some(view), Ok(k @ 1..)) = (cluster, usize::try_from(spec.key)) {
        if let Some(e) = argv
            .as_slice()
            .get(k - 1)
            .and_then(|key| cluster::misrouted(view, key))
        {
            return Err(e);
        }
    }
    let mut args = Args::new(spec, argc, argv);
    let command = (spec.parse)(&mut args)?;
    args.finish()?;
    Ok(command)
}

/// The parser of a container (`CLIENT`, `CONFIG`, `COMMAND`): finds the subcommand and runs its
/// parser. `HELP` lists the subcommands.
pub(crate) fn subcommand(args: &mut Args) -> Result<Command, CommandError> {
    let container = args.spec();
    let Some(sub) = args.next() else {
        return Err(args.arity_error());
    };
    if sub.eq_ignore_ascii_case(b"HELP") {
        return Ok(Command::Help(container));
    }
    let Some(spec) = container
        .subcommands
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(&sub))
    else {
        return Err(CommandError::UnknownSubcommand {
            sub: args::show(&sub),
            container: container.name,
        });
    };
    args.enter(spec)?;
    (spec.parse)(args)
}

/// Redis's unknown-command message: the name and the start of the arguments, quoted.
fn unknown_command(name: &[u8], rest: &[Vec<u8>]) -> CommandError {
    let mut shown = String::new();
    for arg in rest {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        let text = String::from_utf8_lossy(arg);
        let clipped: String = text.chars().take(room).collect();
        let _ = write!(shown, "'{clipped}' ");
    }
    CommandError::Unknown {
        name: String::from_utf8_lossy(name).chars().take(128).collect(),
        args: shown,
    }
}

/// `<CONTAINER> HELP`: the subcommands and their syntax, one line each.
fn help(spec: &Spec) -> Frame {
    let mut lines = vec![Frame::Simple(format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        spec.name
    ))];
    for sub in spec.subcommands {
        lines.push(Frame::Simple(sub.usage()));
        lines.push(Frame::Simple(format!("    {}", sub.summary)));
    }
    lines.push(Frame::Simple("HELP".into()));
    lines.push(Frame::Simple("    Print this help.".into()));
    Frame::Array(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn error(words: &[&str]) -> String {
        match parse(argv(words), true, None) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{words:?} parsed"),
        }
    }

    #[test]
    fn names_are_unique_and_upper_case() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len());
        for spec in COMMANDS {
            assert_eq!(spec.name, spec.name.to_ascii_uppercase());
            assert!(spec.container.is_empty());
            for sub in spec.subcommands {
                assert_eq!(sub.container, spec.name, "{}", sub.name);
            }
        }
    }

    #[test]
    fn unknown_commands_are_reported_like_redis() {
        assert_eq!(
            error(&["FOO", "a", "b"]),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            error(&["nope"]),
            "ERR unknown command 'nope', with args beginning with: "
        );
        let long = "x".repeat(300);
        let msg = error(&["FOO", &long, "next"]);
        assert!(msg.ends_with(&format!("'{}' ", "x".repeat(128))), "{msg}");
    }

    #[test]
    fn arity_errors_name_the_command_and_its_usage() {
        assert_eq!(
            error(&["event.add", "c1"]),
            "ERR wrong number of arguments for 'event.add' command; usage: EVENT.ADD customer \
             kind [value] [CATEGORY category] [ITEM item] [TS time] [ID event_id]"
        );
        assert_eq!(
            error(&["CLIENT", "SETNAME"]),
            "ERR wrong number of arguments for 'client|setname' command; usage: CLIENT SETNAME \
             connection-name"
        );
        assert_eq!(
            error(&["PROFILE.SET", "c1", "age"]),
            "ERR wrong number of arguments for 'profile.set' command; usage: PROFILE.SET \
             customer field value [field value ...]"
        );
    }

    #[test]
    fn authentication_is_checked_after_name_and_arity() {
        let noauth = |words: &[&str]| match parse(argv(words), false, None) {
            Err(e) => e.to_string(),
            Ok(_) => "parsed".to_string(),
        };
        assert_eq!(
            noauth(&["PROFILE.GET", "c1"]),
            "NOAUTH Authentication required."
        );
        assert!(noauth(&["FOO"]).starts_with("ERR unknown command"));
        assert!(noauth(&["PROFILE.GET"]).starts_with("ERR wrong number"));
        assert_eq!(noauth(&["AUTH", "pw"]), "parsed");
        assert_eq!(noauth(&["HELLO"]), "parsed");
        assert_eq!(noauth(&["QUIT"]), "parsed");
    }

    #[test]
    fn unknown_subcommands_point_to_help() {
        assert_eq!(
            error(&["CLIENT", "KILL", "x"]),
            "ERR unknown subcommand 'KILL'. Try CLIENT HELP."
        );
        assert!(matches!(
            parse(argv(&["client", "help"]), true, None),
            Ok(Command::Help(spec)) if spec.name == "CLIENT"
        ));
    }

    #[test]
    fn usage_lines_follow_redis_cli() {
        let members = lookup(b"segment.members").map(Spec::usage);
        assert_eq!(
            members.as_deref(),
            Some("SEGMENT.MEMBERS segment [CURSOR cursor] [COUNT count]")
        );
        let hello = lookup(b"HELLO").map(Spec::usage);
        assert_eq!(
            hello.as_deref(),
            Some("HELLO [protover [AUTH username password] [SETNAME clientname]]")
        );
    }
}
