//! The connection and server commands every Redis client and tool expects: `PING`, `ECHO`,
//! `HELLO`, `AUTH`, `QUIT`, `SELECT`, `CLIENT`, `DBSIZE`, `SHUTDOWN`.

use super::args::{integer, show, utf8};
use super::{subcommand, ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Spec};
use crate::server::frame::{Frame, Proto};

/// `PING`.
pub(crate) const PING: Spec = Spec {
    name: "PING",
    arity: -1,
    flags: &["fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Returns PONG, or the message given.",
    args: &[ArgDoc::new("message", ArgKind::String).optional()],
    subcommands: &[],
    parse: |args| Ping::parse(args).map(Command::Ping),
    container: "",
};

/// `ECHO`.
pub(crate) const ECHO: Spec = Spec {
    name: "ECHO",
    arity: 2,
    flags: &["fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Returns the message given.",
    args: &[ArgDoc::new("message", ArgKind::String)],
    subcommands: &[],
    parse: |args| Ok(Command::Echo(Echo(args.required()?))),
    container: "",
};

/// `HELLO`.
pub(crate) const HELLO: Spec = Spec {
    name: "HELLO",
    arity: -1,
    flags: &["no-auth", "fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Switches the protocol version, authenticates and names the connection.",
    args: &[ArgDoc::new(
        "arguments",
        ArgKind::Block(&[
            ArgDoc::new("protover", ArgKind::Integer),
            ArgDoc::new(
                "username_password",
                ArgKind::Block(&[
                    ArgDoc::new("username", ArgKind::String),
                    ArgDoc::new("password", ArgKind::String),
                ]),
            )
            .token("AUTH")
            .optional(),
            ArgDoc::new("clientname", ArgKind::String)
                .token("SETNAME")
                .optional(),
        ]),
    )
    .optional()],
    subcommands: &[],
    parse: |args| Hello::parse(args).map(Command::Hello),
    container: "",
};

/// `AUTH`.
pub(crate) const AUTH: Spec = Spec {
    name: "AUTH",
    arity: -2,
    flags: &["no-auth", "fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Authenticates the connection with the server's password.",
    args: &[
        ArgDoc::new("username", ArgKind::String).optional(),
        ArgDoc::new("password", ArgKind::String),
    ],
    subcommands: &[],
    parse: |args| Auth::parse(args).map(Command::Auth),
    container: "",
};

/// `QUIT`.
pub(crate) const QUIT: Spec = Spec {
    name: "QUIT",
    arity: -1,
    flags: &["no-auth", "fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Replies OK and closes the connection.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::Quit),
    container: "",
};

/// `SELECT`.
pub(crate) const SELECT: Spec = Spec {
    name: "SELECT",
    arity: 2,
    flags: &["fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Selects database 0, the only one.",
    args: &[ArgDoc::new("index", ArgKind::Integer)],
    subcommands: &[],
    parse: parse_select,
    container: "",
};

/// `CLIENT`.
pub(crate) const CLIENT: Spec = Spec {
    name: "CLIENT",
    arity: -2,
    flags: &[],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "A container for connection commands.",
    args: &[],
    subcommands: &[CLIENT_ID, CLIENT_GETNAME, CLIENT_SETNAME, CLIENT_SETINFO],
    parse: subcommand,
    container: "",
};

const CLIENT_ID: Spec = Spec {
    name: "ID",
    arity: 2,
    flags: &["fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Returns the unique id of the connection.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::Client(Client::Id)),
    container: "CLIENT",
};

const CLIENT_GETNAME: Spec = Spec {
    name: "GETNAME",
    arity: 2,
    flags: &["fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Returns the name of the connection, or null.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::Client(Client::GetName)),
    container: "CLIENT",
};

const CLIENT_SETNAME: Spec = Spec {
    name: "SETNAME",
    arity: 3,
    flags: &["fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Names the connection; an empty name removes it.",
    args: &[ArgDoc::new("connection-name", ArgKind::String)],
    subcommands: &[],
    parse: |args| Ok(Command::Client(Client::SetName(client_name(args)?))),
    container: "CLIENT",
};

const CLIENT_SETINFO: Spec = Spec {
    name: "SETINFO",
    arity: 4,
    flags: &["fast"],
    key: 0,
    group: "connection",
    since: "0.1.0",
    summary: "Records the client library's name or version.",
    args: &[ArgDoc::new(
        "attr",
        ArgKind::OneOf(&[
            ArgDoc::new("libname", ArgKind::String).token("LIB-NAME"),
            ArgDoc::new("libver", ArgKind::String).token("LIB-VER"),
        ]),
    )],
    subcommands: &[],
    parse: parse_setinfo,
    container: "CLIENT",
};

/// `DBSIZE`.
pub(crate) const DBSIZE: Spec = Spec {
    name: "DBSIZE",
    arity: 1,
    flags: &["readonly"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Returns the number of customer profiles (counts them: O(customers)).",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::DbSize),
    container: "",
};

/// `SHUTDOWN`.
pub(crate) const SHUTDOWN: Spec = Spec {
    name: "SHUTDOWN",
    arity: -1,
    flags: &["admin"],
    key: 0,
    group: "server",
    since: "0.1.0",
    summary: "Finishes in-flight commands, makes everything durable and stops the server.",
    args: &[
        ArgDoc::new(
            "save-selector",
            ArgKind::OneOf(&[
                ArgDoc::new("nosave", ArgKind::PureToken).token("NOSAVE"),
                ArgDoc::new("save", ArgKind::PureToken).token("SAVE"),
            ]),
        )
        .optional(),
        ArgDoc::new("now", ArgKind::PureToken)
            .token("NOW")
            .optional(),
        ArgDoc::new("force", ArgKind::PureToken)
            .token("FORCE")
            .optional(),
    ],
    subcommands: &[],
    parse: parse_shutdown,
    container: "",
};

/// Answers `PONG`, or echoes the message.
///
/// # Format
///
/// ```text
/// PING [message]
///
/// *1\r\n$4\r\nPING\r\n          -> +PONG\r\n
/// *2\r\n$4\r\nPING\r\n$2\r\nhi\r\n   -> $2\r\nhi\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Ping(Option<Vec<u8>>);

impl Ping {
    fn parse(args: &mut Args) -> Result<Ping, CommandError> {
        if args.remaining() > 1 {
            return Err(args.arity_error());
        }
        Ok(Ping(args.next()))
    }

    pub(crate) fn apply(self, _ctx: &mut Ctx<'_>) -> Frame {
        match self.0 {
            None => Frame::Simple("PONG".into()),
            Some(message) => Frame::Bulk(message),
        }
    }

    /// The reply on a RESP2 connection that is subscribed: `["pong", message or ""]`, as
    /// Redis answers there.
    pub(crate) fn subscribed_reply(self) -> Frame {
        Frame::Array(vec![
            Frame::bulk("pong"),
            Frame::Bulk(self.0.unwrap_or_default()),
        ])
    }
}

/// Returns its argument.
///
/// # Format
///
/// ```text
/// ECHO message
///
/// *2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n   -> $2\r\nhi\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Echo(Vec<u8>);

impl Echo {
    pub(crate) fn apply(self) -> Frame {
        Frame::Bulk(self.0)
    }
}

/// Switches the reply dialect (2 or 3), optionally authenticating and naming the connection in
/// the same step, and describes the server. Without arguments it only describes the server.
///
/// # Format
///
/// ```text
/// HELLO [protover [AUTH username password] [SETNAME clientname]]
///
/// *2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n
/// -> %7\r\n$6\r\nserver\r\n$7\r\npersona\r\n$7\r\nversion\r\n$5\r\n0.1.0\r\n
///    $5\r\nproto\r\n:3\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n
///    $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n
/// errors: -NOPROTO unsupported protocol version, -WRONGPASS ..., -NOAUTH HELLO must be called ...
/// ```
pub(crate) struct Hello {
    proto: Option<i64>,
    auth: Option<(Vec<u8>, Vec<u8>)>,
    name: Option<String>,
}

/// The password is never printed, not even in debug output.
impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("proto", &self.proto)
            .field(
                "auth",
                &self
                    .auth
                    .as_ref()
                    .map(|(user, _)| (String::from_utf8_lossy(user), "<redacted>")),
            )
            .field("name", &self.name)
            .finish()
    }
}

impl Hello {
    fn parse(args: &mut Args) -> Result<Hello, CommandError> {
        let mut hello = Hello {
            proto: None,
            auth: None,
            name: None,
        };
        let Some(version) = args.next() else {
            return Ok(hello);
        };
        hello.proto = Some(integer(&version).ok_or_else(|| {
            CommandError::Other("Protocol version is not an integer or out of range".into())
        })?);
        while let Some(word) = args.next() {
            if word.eq_ignore_ascii_case(b"AUTH") && args.remaining() >= 2 {
                let user = args.required()?;
                let pass = args.required()?;
                hello.auth = Some((user, pass));
            } else if word.eq_ignore_ascii_case(b"SETNAME") && args.remaining() >= 1 {
                hello.name = Some(client_name(args)?);
            } else {
                return Err(CommandError::Other(format!(
                    "Syntax error in HELLO option '{}'",
                    show(&word)
                )));
            }
        }
        Ok(hello)
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let proto = match self.proto {
            None => ctx.session.proto,
            Some(2) => Proto::Resp2,
            Some(3) => Proto::Resp3,
            Some(_) => return Err(CommandError::NoProto),
        };
        if let Some((user, pass)) = &self.auth {
            check_password(ctx, Some(user), pass)?;
            ctx.session.authenticated = true;
        } else if !ctx.session.authenticated {
            return Err(CommandError::NoAuthHello);
        }
        if let Some(name) = self.name {
            ctx.session.name = Some(name).filter(|n| !n.is_empty());
        }
        ctx.session.proto = proto;
        Ok(Frame::map_from([
            ("server", Frame::bulk("persona")),
            ("version", Frame::bulk(env!("CARGO_PKG_VERSION"))),
            (
                "proto",
                Frame::Integer(if proto == Proto::Resp3 { 3 } else { 2 }),
            ),
            ("id", super::int(ctx.session.id)),
            ("mode", Frame::bulk("standalone")),
            ("role", Frame::bulk("master")),
            ("modules", Frame::Array(Vec::new())),
        ]))
    }
}

/// Authenticates the connection. The only user is `default`.
///
/// # Format
///
/// ```text
/// AUTH [username] password
///
/// *2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n   -> +OK\r\n
/// wrong: -WRONGPASS invalid username-password pair or user is disabled.\r\n
/// ```
pub(crate) struct Auth {
    user: Option<Vec<u8>>,
    pass: Vec<u8>,
}

/// The password is never printed, not even in debug output.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("user", &self.user.as_deref().map(String::from_utf8_lossy))
            .field("pass", &"<redacted>")
            .finish()
    }
}

impl Auth {
    fn parse(args: &mut Args) -> Result<Auth, CommandError> {
        if args.remaining() > 2 {
            return Err(args.syntax("AUTH takes a password, or a user name and a password"));
        }
        let first = args.required()?;
        Ok(match args.next() {
            Some(pass) => Auth {
                user: Some(first),
                pass,
            },
            None => Auth {
                user: None,
                pass: first,
            },
        })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        check_password(ctx, self.user.as_deref(), &self.pass)?;
        ctx.session.authenticated = true;
        Ok(Frame::ok())
    }
}

/// Checks credentials against the configured password, in time independent of where they
/// differ. Without a password every connection is authenticated already; `AUTH <password>` is
/// then a configuration mistake worth reporting, `AUTH default <anything>` is accepted.
fn check_password(ctx: &Ctx<'_>, user: Option<&[u8]>, pass: &[u8]) -> Result<(), CommandError> {
    let user_ok = user.is_none_or(|u| u == b"default");
    match ctx.server.config.requirepass.as_deref() {
        None if user.is_none() => Err(CommandError::NoPasswordSet),
        None if user_ok => Ok(()),
        Some(secret) if constant_time_eq(pass, secret.as_bytes()) && user_ok => Ok(()),
        _ => Err(CommandError::WrongPass),
    }
}

/// Compares a client-supplied `given` with `secret` in time that depends only on `given`'s
/// length (which the client knows), not on the position of the first difference.
fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = given.len() ^ secret.len();
    for (i, &g) in given.iter().enumerate() {
        let s = secret.get(i).copied().unwrap_or(0);
        diff |= usize::from(g ^ s);
        diff = std::hint::black_box(diff);
    }
    diff == 0
}

fn parse_select(args: &mut Args) -> Result<Command, CommandError> {
    let index = args.required()?;
    match integer(&index) {
        Some(0) => Ok(Command::Select),
        Some(_) => Err(CommandError::Other(
            "DB index is out of range: Persona has a single database, 0".into(),
        )),
        None => Err(CommandError::Other(
            "value is not an integer or out of range".into(),
        )),
    }
}

/// `CLIENT` subcommands.
///
/// # Format
///
/// ```text
/// CLIENT ID                                   -> :7\r\n
/// CLIENT SETNAME connection-name              -> +OK\r\n
/// CLIENT GETNAME                              -> $6\r\nworker\r\n   (or null)
/// CLIENT SETINFO LIB-NAME|LIB-VER value       -> +OK\r\n
/// ```
#[derive(Debug)]
pub(crate) enum Client {
    Id,
    GetName,
    SetName(String),
    SetInfo { version: bool, value: String },
}

impl Client {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Frame {
        let session = &mut *ctx.session;
        match self {
            Client::Id => super::int(session.id),
            Client::GetName => session.name.as_ref().map_or(Frame::Null, Frame::bulk),
            Client::SetName(name) => {
                session.name = Some(name).filter(|n| !n.is_empty());
                Frame::ok()
            }
            Client::SetInfo { version, value } => {
                let slot = if version {
                    &mut session.lib_ver
                } else {
                    &mut session.lib_name
                };
                *slot = Some(value).filter(|v| !v.is_empty());
                Frame::ok()
            }
        }
    }
}

/// A connection name: printable ASCII without spaces, as Redis requires.
fn client_name(args: &mut Args) -> Result<String, CommandError> {
    let name = args.required()?;
    if !name.iter().all(|b| (b'!'..=b'~').contains(b)) {
        return Err(CommandError::Other(
            "Client names cannot contain spaces, newlines or special characters.".into(),
        ));
    }
    utf8("connection-name", name)
}

fn parse_setinfo(args: &mut Args) -> Result<Command, CommandError> {
    let attr = args.required()?;
    let version = if attr.eq_ignore_ascii_case(b"LIB-VER") {
        true
    } else if attr.eq_ignore_ascii_case(b"LIB-NAME") {
        false
    } else {
        return Err(CommandError::Other(format!(
            "Unrecognized option '{}'; expected LIB-NAME or LIB-VER",
            show(&attr)
        )));
    };
    let value = args.required()?;
    if !value.iter().all(|b| (b'!'..=b'~').contains(b)) {
        return Err(CommandError::Other(format!(
            "{} cannot contain spaces, newlines or special characters.",
            if version { "lib-ver" } else { "lib-name" }
        )));
    }
    let value = utf8("value", value)?;
    Ok(Command::Client(Client::SetInfo { version, value }))
}

/// The number of customer profiles (a full count). On a cluster node, the cluster's: every
/// member counts the customers of the partitions it owns (an error if one does not answer).
///
/// # Format
///
/// ```text
/// DBSIZE
///
/// *1\r\n$6\r\nDBSIZE\r\n   -> :1042\r\n
/// ```
pub(crate) fn dbsize(ctx: &mut Ctx<'_>) -> Frame {
    #[cfg(feature = "cluster")]
    if let Some(view) = &ctx.server.config.cluster {
        use crate::cluster::fanout::{self, Answer, Question};
        let counted = fanout::members(view)
            .and_then(|members| fanout::ask(&ctx.server.db, view, &members, &Question::Count));
        return match counted {
            Ok(answers) => super::int(
                answers
                    .iter()
                    .map(|a| match a {
                        Answer::Count(n) => *n,
                        _ => 0,
                    })
                    .sum::<u64>(),
            ),
            Err(e) => super::CommandError::Db(e).into(),
        };
    }
    super::int(u64::try_from(ctx.server.db.profile_count()).unwrap_or(u64::MAX))
}

/// Stops the server: the connection's in-flight commands finish and are answered, the
/// connection closes without a reply (as Redis's does), every connection finishes what it has
/// read, and the store is closed, which makes everything durable. `NOSAVE`, `SAVE`, `NOW` and
/// `FORCE` are accepted for compatibility and change nothing: Persona never skips durability.
///
/// # Format
///
/// ```text
/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]
///
/// *1\r\n$8\r\nSHUTDOWN\r\n   -> (connection closed)
/// ```
fn parse_shutdown(args: &mut Args) -> Result<Command, CommandError> {
    while let Some(word) = args.next() {
        let upper = word.to_ascii_uppercase();
        match upper.as_slice() {
            b"NOSAVE" | b"SAVE" | b"NOW" | b"FORCE" => {}
            b"ABORT" => {
                return Err(CommandError::Other(
                    "SHUTDOWN ABORT is not supported: a Persona shutdown cannot be cancelled"
                        .into(),
                ))
            }
            _ => {
                return Err(args.syntax(format!(
                    "unknown option '{}'; expected NOSAVE, SAVE, NOW or FORCE",
                    show(&word)
                )))
            }
        }
    }
    Ok(Command::Shutdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_comparison_needs_every_byte() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"secret!", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let argv = |words: &[&str]| words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let shown = match super::super::parse(argv(&["AUTH", "default", "hunter2"]), false, None) {
            Ok(super::super::Command::Auth(a)) => format!("{a:?}"),
            _ => panic!("AUTH did not parse"),
        };
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
        let words = ["HELLO", "3", "AUTH", "default", "hunter2", "SETNAME", "app"];
        let shown = match super::super::parse(argv(&words), false, None) {
            Ok(super::super::Command::Hello(h)) => format!("{h:?}"),
            _ => panic!("HELLO did not parse"),
        };
        assert!(
            !shown.contains("hunter2") && shown.contains("app"),
            "{shown}"
        );
    }
}
