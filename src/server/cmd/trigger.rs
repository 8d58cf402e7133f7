//! `TRIGGER.*`: defining triggers at run time and reading their firings from the outbox
//! (`src/triggers/`).

use super::args::{count, integer, show, utf8};
use super::{ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Spec};
use crate::server::frame::Frame;
use crate::triggers::Fired;

/// `TRIGGER.ADD`.
pub(crate) const ADD: Spec = Spec {
    name: "TRIGGER.ADD",
    arity: -4,
    flags: &["write"],
    key: 0,
    group: "trigger",
    since: "0.2.0",
    summary:
        "Defines a trigger: a condition checked at every event, its firings written to the outbox.",
    args: &[
        ArgDoc::new("name", ArgKind::String),
        ArgDoc::new("condition", ArgKind::String)
            .token("WHEN")
            .multiple(),
        ArgDoc::new("action", ArgKind::String)
            .token("ACTION")
            .optional(),
        ArgDoc::new("days", ArgKind::Double)
            .token("COOLDOWN")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Add::parse(args).map(Command::TriggerAdd),
    container: "",
};

/// `TRIGGER.DEL`.
pub(crate) const DEL: Spec = Spec {
    name: "TRIGGER.DEL",
    arity: 2,
    flags: &["write"],
    key: 0,
    group: "trigger",
    since: "0.2.0",
    summary: "Deletes a trigger defined at run time.",
    args: &[ArgDoc::new("name", ArgKind::String)],
    subcommands: &[],
    parse: |args| {
        Ok(Command::TriggerDel(Del {
            name: args.text("name")?,
        }))
    },
    container: "",
};

/// `TRIGGER.LIST`.
pub(crate) const LIST: Spec = Spec {
    name: "TRIGGER.LIST",
    arity: 1,
    flags: &["readonly", "fast"],
    key: 0,
    group: "trigger",
    since: "0.2.0",
    summary: "Lists the triggers with how often each fired and was suppressed.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::TriggerList(List)),
    container: "",
};

/// `TRIGGER.READ`.
pub(crate) const READ: Spec = Spec {
    name: "TRIGGER.READ",
    arity: -1,
    flags: &["readonly"],
    key: 0,
    group: "trigger",
    since: "0.2.0",
    summary: "Returns the firings after an id, or after a consumer's position, oldest first.",
    args: &[
        ArgDoc::new(
            "from",
            ArgKind::OneOf(&[
                ArgDoc::new("id", ArgKind::Integer).token("SINCE"),
                ArgDoc::new("consumer", ArgKind::String).token("CONSUMER"),
            ]),
        )
        .optional(),
        ArgDoc::new("count", ArgKind::Integer)
            .token("COUNT")
            .optional(),
        ArgDoc::new("milliseconds", ArgKind::Integer)
            .token("BLOCK")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Read::parse(args).map(Command::TriggerRead),
    container: "",
};

/// `TRIGGER.ACK`.
pub(crate) const ACK: Spec = Spec {
    name: "TRIGGER.ACK",
    arity: 3,
    flags: &["write"],
    key: 0,
    group: "trigger",
    since: "0.2.0",
    summary: "Acknowledges a consumer's firings up to an id: its position, where TRIGGER.READ CONSUMER resumes.",
    args: &[
        ArgDoc::new("consumer", ArgKind::String),
        ArgDoc::new("id", ArgKind::Integer),
    ],
    subcommands: &[],
    parse: |args| Ack::parse(args).map(Command::TriggerAck),
    container: "",
};

/// Defines a trigger (`Db::trigger_add`): the words after `WHEN` are the condition
/// (`SEGMENT_ENTER id`, `SEGMENT_LEAVE id`, `PROPENSITY_ABOVE x`, `PROPENSITY_BELOW x`,
/// `FIRST_PURCHASE`, `SPEND_ABOVE amount`), then optionally `ACTION a` and `COOLDOWN days`.
///
/// # Format
///
/// ```text
/// TRIGGER.ADD likely WHEN PROPENSITY_ABOVE 0.7 ACTION vip_offer COOLDOWN 7
///
/// -> +OK
/// error: -ERR invalid argument trigger: trigger likely: PROPENSITY_ABOVE 1.5 is out of range; …
/// ```
#[derive(Debug)]
pub(crate) struct Add {
    name: String,
    words: Vec<String>,
}

impl Add {
    fn parse(args: &mut Args) -> Result<Add, CommandError> {
        let name = args.text("name")?;
        let when = args.required()?;
        if !when.eq_ignore_ascii_case(b"WHEN") {
            return Err(args.syntax(format!("expected WHEN, got '{}'", show(&when))));
        }
        let mut words = Vec::new();
        while let Some(w) = args.next() {
            words.push(utf8("condition", w)?);
        }
        Ok(Add { name, words })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let words: Vec<&str> = self.words.iter().map(String::as_str).collect();
        ctx.server.db.trigger_add(&self.name, &words)?;
        Ok(Frame::ok())
    }
}

/// Deletes a run-time trigger (`Db::trigger_del`); replies 1.
///
/// # Format
///
/// ```text
/// TRIGGER.DEL likely
///
/// -> :1
/// error: -ERR invalid argument name: no trigger named likely
/// ```
#[derive(Debug)]
pub(crate) struct Del {
    name: String,
}

impl Del {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        ctx.server.db.trigger_del(&self.name)?;
        Ok(Frame::Integer(1))
    }
}

/// Every trigger: a map per trigger with `name`, `definition` (as `TRIGGER.ADD` takes it),
/// `source` (`config` or `runtime`), `fired` and `suppressed` (since the store was opened).
///
/// # Format
///
/// ```text
/// TRIGGER.LIST
///
/// -> *1\r\n%5\r\n$4\r\nname\r\n$6\r\nlikely\r\n$10\r\ndefinition\r\n$…\r\nlikely WHEN …\r\n
///    $6\r\nsource\r\n$7\r\nruntime\r\n$5\r\nfired\r\n:12\r\n$10\r\nsuppressed\r\n:3\r\n
/// ```
#[derive(Debug)]
pub(crate) struct List;

impl List {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Frame {
        Frame::Array(
            ctx.server
                .db
                .triggers()
                .into_iter()
                .map(|t| {
                    Frame::map_from([
                        ("name", Frame::bulk(&t.trigger.name)),
                        ("definition", Frame::bulk(t.trigger.describe())),
                        (
                            "source",
                            Frame::bulk(if t.from_config { "config" } else { "runtime" }),
                        ),
                        ("fired", super::int(t.fired)),
                        ("suppressed", super::int(t.suppressed)),
                    ])
                })
                .collect(),
        )
    }
}

/// Up to `COUNT` (default 100, at most 10,000) firings with ids above `SINCE` (default 0),
/// oldest first (`Db::read_triggers`): each a map with `id`, `trigger`, `customer`, `time_ms`,
/// `reason`, `action`, `expected_conversion`, `segment`, `propensity` (null where unknown).
/// A consumer passes the last id it processed as `SINCE` to resume exactly there, or names
/// itself with `CONSUMER name` to resume after its position (`TRIGGER.ACK`; from the start
/// if it never acknowledged). With
/// `BLOCK ms` (as `XREAD`'s), when there is nothing yet it waits up to `ms` milliseconds (0:
/// until something comes, the server shuts down or the client disconnects) and answers what
/// came, or an empty array.
///
/// # Format
///
/// ```text
/// TRIGGER.READ SINCE 41 COUNT 2
///
/// -> *1\r\n%9\r\n$2\r\nid\r\n:42\r\n$7\r\ntrigger\r\n$6\r\nlikely\r\n …
/// ```
#[derive(Debug)]
pub(crate) struct Read {
    since: u64,
    consumer: Option<String>,
    count: usize,
    block: Option<u64>,
}

/// How often a blocked `TRIGGER.READ` looks again.
const BLOCK_POLL: std::time::Duration = std::time::Duration::from_millis(10);

impl Read {
    /// The same read without `BLOCK`: inside a transaction, as Redis runs its blocking
    /// commands there, it answers what there is at once instead of stalling `EXEC`.
    pub(crate) fn without_block(self) -> Read {
        Read {
            block: None,
            ..self
        }
    }

    fn parse(args: &mut Args) -> Result<Read, CommandError> {
        let mut r = Read {
            since: 0,
            consumer: None,
            count: 100,
            block: None,
        };
        let mut since_given = false;
        while let Some(opt) = args.next() {
            if opt.eq_ignore_ascii_case(b"CONSUMER") {
                let v = args.option_value("CONSUMER")?;
                r.consumer = Some(utf8("consumer", v)?);
            } else if opt.eq_ignore_ascii_case(b"SINCE") {
                since_given = true;
                r.since = firing_id("SINCE", &args.option_value("SINCE")?)?;
            } else if opt.eq_ignore_ascii_case(b"COUNT") {
                r.count = count(&args.option_value("COUNT")?, 10_000)?;
            } else if opt.eq_ignore_ascii_case(b"BLOCK") {
                let v = args.option_value("BLOCK")?;
                r.block = Some(integer(&v).and_then(|n| u64::try_from(n).ok()).ok_or_else(
                    || CommandError::Invalid {
                        name: "BLOCK",
                        value: show(&v),
                        allowed: "must be a whole number of milliseconds ≥ 0".into(),
                    },
                )?);
            } else {
                return Err(args.syntax(format!("unknown option '{}'", show(&opt))));
            }
        }
        if since_given && r.consumer.is_some() {
            return Err(args.syntax(
                "SINCE and CONSUMER exclude each other: a consumer reads after its position",
            ));
        }
        Ok(r)
    }

    pub(crate) fn apply(mut self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        if let Some(name) = &self.consumer {
            self.since = ctx.server.db.trigger_position(name)?.unwrap_or(0);
        }
        let until = self.block.map(|ms| {
            (ms > 0).then(|| std::time::Instant::now() + std::time::Duration::from_millis(ms))
        });
        loop {
            let page = ctx.server.db.read_trigger_page(self.since, self.count)?;
            let fired = page.fired;
            let going_on = !ctx.server.shutdown.is_shutdown() && !ctx.abandoned();
            let waiting = match until {
                None => false,
                Some(None) => going_on,
                Some(Some(t)) => std::time::Instant::now() < t && going_on,
            };
            if !fired.is_empty() || !waiting {
                return Ok(Frame::Array(fired.iter().map(firing).collect()));
            }
            // Nothing to act on yet: wait for what comes after what was looked at.
            self.since = page.through;
            std::thread::sleep(BLOCK_POLL);
        }
    }
}

/// Acknowledges the consumer's firings up to `id` (`Db::trigger_ack`): its position moves
/// there, never back, and `TRIGGER.READ CONSUMER name` resumes after it. Replies the position.
///
/// # Format
///
/// ```text
/// TRIGGER.ACK mailer 42
///
/// -> :42
/// error: -ERR invalid argument id: 57 was never given to a firing; the newest firing is 42
/// ```
#[derive(Debug)]
pub(crate) struct Ack {
    consumer: String,
    id: u64,
}

impl Ack {
    fn parse(args: &mut Args) -> Result<Ack, CommandError> {
        let consumer = args.text("consumer")?;
        let id = firing_id("id", &args.required()?)?;
        Ok(Ack { consumer, id })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let at = ctx.server.db.trigger_ack(&self.consumer, self.id)?;
        Ok(super::int(at))
    }
}

/// A firing id given as the argument `name`.
fn firing_id(name: &'static str, v: &[u8]) -> Result<u64, CommandError> {
    integer(v)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| CommandError::Invalid {
            name,
            value: show(v),
            allowed: "must be a firing id, a whole number ≥ 0".into(),
        })
}

/// A firing as a map.
fn firing(f: &Fired) -> Frame {
    Frame::map_from([
        ("id", super::int(f.id)),
        ("trigger", Frame::bulk(&f.trigger)),
        ("customer", Frame::bulk(&f.customer)),
        ("time_ms", Frame::Integer(f.time_ms)),
        ("reason", Frame::bulk(&f.reason)),
        ("action", f.action.as_ref().map_or(Frame::Null, Frame::bulk)),
        (
            "expected_conversion",
            f.expected_conversion.map_or(Frame::Null, Frame::Double),
        ),
        ("segment", super::opt_int(f.segment.map(u64::from))),
        (
            "propensity",
            f.propensity.map_or(Frame::Null, Frame::Double),
        ),
    ])
}
