//! `PROFILE.*`: reading profiles, setting attributes, erasing and exporting a customer.

use super::args::{count, integer, show, unix_time, utf8};
use super::{ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Spec};
use crate::features::AttrValue;
use crate::query::{HistoryItem, Profile};
use crate::server::frame::{Frame, SharedKeys};
use std::sync::Arc;

/// `PROFILE.GET`.
pub(crate) const GET: Spec = Spec {
    name: "PROFILE.GET",
    arity: -2,
    flags: &["readonly"],
    key: 1,
    group: "profile",
    since: "0.1.0",
    summary: "Returns a customer's profile (now, at a past version or at a past time) with model \
              outputs.",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new(
            "when",
            ArgKind::OneOf(&[
                ArgDoc::new("version", ArgKind::Integer).token("VERSION"),
                ArgDoc::new("ts", ArgKind::UnixTime).token("AT"),
            ]),
        )
        .optional(),
    ],
    subcommands: &[],
    parse: |args| Get::parse(args).map(Command::ProfileGet),
    container: "",
};

/// `PROFILE.HISTORY`.
pub(crate) const HISTORY: Spec = Spec {
    name: "PROFILE.HISTORY",
    arity: -2,
    flags: &["readonly"],
    key: 1,
    group: "profile",
    since: "0.1.0",
    summary: "Returns a customer's most recent retained versions and what changed at each.",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new("count", ArgKind::Integer)
            .token("COUNT")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| History::parse(args).map(Command::ProfileHistory),
    container: "",
};

/// `PROFILE.SET`.
pub(crate) const SET: Spec = Spec {
    name: "PROFILE.SET",
    arity: -4,
    flags: &["write"],
    key: 1,
    group: "profile",
    since: "0.1.0",
    summary: "Sets attributes of a customer (creating the profile); returns the new version.",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new(
            "data",
            ArgKind::Block(&[
                ArgDoc::new("field", ArgKind::String),
                ArgDoc::new("value", ArgKind::String),
            ]),
        )
        .multiple(),
    ],
    subcommands: &[],
    parse: |args| Set::parse(args).map(Command::ProfileSet),
    container: "",
};

/// `PROFILE.DEL`.
pub(crate) const DEL: Spec = Spec {
    name: "PROFILE.DEL",
    arity: 2,
    flags: &["write"],
    key: 1,
    group: "profile",
    since: "0.1.0",
    summary: "Erases every trace of a customer; returns 1 if it existed, 0 if not.",
    args: &[ArgDoc::new("customer", ArgKind::Key)],
    subcommands: &[],
    parse: |args| Del::parse(args).map(Command::ProfileDel),
    container: "",
};

/// `PROFILE.EXPORT`.
pub(crate) const EXPORT: Spec = Spec {
    name: "PROFILE.EXPORT",
    arity: 2,
    flags: &["readonly"],
    key: 1,
    group: "profile",
    since: "0.1.0",
    summary: "Returns everything stored about a customer as a JSON document.",
    args: &[ArgDoc::new("customer", ArgKind::Key)],
    subcommands: &[],
    parse: |args| Export::parse(args).map(Command::ProfileExport),
    container: "",
};

/// A customer's profile as of the store's watermark, at a past `VERSION` (the most recent
/// versions are kept, 16 by default), or `AT` a past event time (unix ms or RFC 3339): the latest
/// retained version whose events all happened by then, evaluated as of then. A null reply when
/// the customer is unknown (or, with `AT`, had no events by then).
///
/// # Format
///
/// ```text
/// PROFILE.GET customer [VERSION version|AT ts]
///
/// *2\r\n$11\r\nPROFILE.GET\r\n$3\r\nc42\r\n
///
/// RESP3: %13\r\n$11\r\ncustomer_id\r\n$3\r\nc42\r\n$7\r\nversion\r\n:3\r\n ...
///        $10\r\nattributes\r\n%1\r\n$3\r\nage\r\n,34\r\n
///        $8\r\nfeatures\r\n%N\r\n$12\r\nrecency_days\r\n,0.5\r\n ...
///        $12\r\nraw_features\r\n%M\r\n$12\r\nrecency_days\r\n,0.65\r\n ...
///        $19\r\ndays_since_purchase\r\n_\r\n ...   (never purchased)
/// RESP2: the same as flat arrays: *26\r\n$11\r\ncustomer_id\r\n$3\r\nc42\r\n ...
/// unknown customer: _\r\n (RESP3), $-1\r\n (RESP2)
/// ```
#[derive(Debug)]
pub(crate) struct Get {
    customer: String,
    when: Option<When>,
}

/// Which past profile `PROFILE.GET` reads.
#[derive(Debug)]
enum When {
    Version(u64),
    At(i64),
}

impl Get {
    fn parse(args: &mut Args) -> Result<Get, CommandError> {
        let customer = args.text("customer")?;
        let mut when = None;
        while let Some(word) = args.next() {
            let at = if word.eq_ignore_ascii_case(b"VERSION") {
                false
            } else if word.eq_ignore_ascii_case(b"AT") {
                true
            } else {
                return Err(args.syntax(format!(
                    "unknown option '{}'; expected VERSION or AT",
                    show(&word)
                )));
            };
            if when.is_some() {
                return Err(args.syntax("give at most one of VERSION and AT"));
            }
            if at {
                let ts = unix_time("AT", &args.option_value("AT")?)?;
                when = Some(When::At(ts));
            } else {
                let value = args.option_value("VERSION")?;
                let parsed = integer(&value)
                    .and_then(|v| u64::try_from(v).ok())
                    .filter(|&v| v >= 1);
                when = Some(When::Version(parsed.ok_or_else(|| {
                    CommandError::Invalid {
                        name: "VERSION",
                        value: show(&value),
                        allowed: "must be a whole number >= 1".into(),
                    }
                })?));
            }
        }
        Ok(Get { customer, when })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let db = &ctx.server.db;
        let profile = match self.when {
            Some(When::Version(v)) => db.profile_at_version(&self.customer, v)?,
            Some(When::At(ts)) => db.profile_as_of(&self.customer, ts)?,
            None => db.profile(&self.customer)?,
        };
        Ok(match profile {
            Some(p) => profile_frame(p, &ctx.server.feature_keys, db.layout().name_list()),
            None => Frame::Null,
        })
    }
}

/// A profile as a map; attributes, features and raw features are nested maps (features keyed
/// by `names`, raw features by `raw_names`, the same names; a raw feature that does not exist
/// is null).
fn profile_frame(p: Profile, names: &Arc<SharedKeys>, raw_names: &[String]) -> Frame {
    let attributes = p
        .attributes
        .iter()
        .map(|(name, value)| {
            let value = match value {
                AttrValue::Number(n) => Frame::Double(*n),
                AttrValue::Text(t) => Frame::bulk(t),
            };
            (Frame::bulk(name), value)
        })
        .collect();
    let raw_features = raw_names
        .iter()
        .zip(&p.raw_features)
        .map(|(name, v)| (Frame::bulk(name), v.map_or(Frame::Null, Frame::Double)))
        .collect();
    let features = Frame::DoubleMap(Arc::clone(names), p.features);
    let time = |ms: Option<i64>| ms.map_or(Frame::Null, Frame::Integer);
    Frame::map_from([
        ("customer_id", Frame::bulk(&p.customer_id)),
        ("version", super::int(p.version)),
        ("event_count", super::int(p.event_count)),
        ("first_seen_ms", time(p.first_seen_ms)),
        ("last_seen_ms", time(p.last_seen_ms)),
        ("as_of_ms", Frame::Integer(p.as_of_ms)),
        ("segment", super::opt_int(p.segment.map(u64::from))),
        (
            "segment_distance",
            p.segment_distance.map_or(Frame::Null, Frame::Double),
        ),
        (
            "assigned_segment",
            super::opt_int(p.assigned_segment.map(u64::from)),
        ),
        (
            "propensity",
            Some(p.propensity)
                .filter(|v| !v.is_nan())
                .map_or(Frame::Null, Frame::Double),
        ),
        ("attributes", Frame::Map(attributes)),
        ("features", features),
        ("raw_features", Frame::Map(raw_features)),
    ])
}

/// Sets attributes of a customer, creating the profile if needed. A value that reads as a
/// finite number is stored as a number, anything else as text. Replies the new version.
///
/// # Format
///
/// ```text
/// PROFILE.SET customer field value [field value ...]
///
/// *6\r\n$11\r\nPROFILE.SET\r\n$3\r\nc42\r\n$3\r\nage\r\n$2\r\n34\r\n$6\r\nregion\r\n$5\r\nnorth\r\n
/// -> :4\r\n
/// error: -ERR invalid argument attribute name: "" must not be empty\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Set {
    customer: String,
    attrs: Vec<(String, AttrValue)>,
}

impl Set {
    fn parse(args: &mut Args) -> Result<Set, CommandError> {
        let customer = args.text("customer")?;
        if args.remaining() % 2 != 0 {
            return Err(args.arity_error());
        }
        let mut attrs = Vec::with_capacity(args.remaining() / 2);
        while let Some(name) = args.next() {
            let name = utf8("field", name)?;
            let value = args.text("value")?;
            attrs.push((name, AttrValue::from_text(&value)));
        }
        Ok(Set { customer, attrs })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        // A cluster node's attributes go through their partition's log (`cluster/log.rs`).
        if let Some(writes) = super::cluster::log_of(ctx) {
            ctx.server
                .db
                .check_attributes_of(&self.customer, &self.attrs)?;
            let item = crate::pipeline::Item::SetAttributes {
                customer: self.customer,
                attrs: self.attrs,
            };
            let pending = super::cluster::through_log(writes.as_ref(), item, None);
            return Ok(super::int(pending.wait()?.version));
        }
        let version = ctx.server.db.set_attributes(&self.customer, self.attrs)?;
        Ok(super::int(version))
    }
}

/// Versions `PROFILE.HISTORY` returns unless `COUNT` says otherwise.
const HISTORY_DEFAULT_COUNT: usize = 10;
/// Most versions one `PROFILE.HISTORY` may ask for (more than are ever retained).
const HISTORY_MAX_COUNT: usize = 10_000;

/// A customer's last `COUNT` retained versions (10 by default), newest first: what changed
/// (`event` with its kind, time and value, or `attributes` with the names set) and the segment
/// and propensity right after. A null reply when the customer is unknown.
///
/// # Format
///
/// ```text
/// PROFILE.HISTORY customer [COUNT count]
///
/// *4\r\n$15\r\nPROFILE.HISTORY\r\n$3\r\nc42\r\n$5\r\nCOUNT\r\n$1\r\n1\r\n
/// -> *1\r\n%8\r\n$7\r\nversion\r\n:3\r\n$6\r\nchange\r\n$5\r\nevent\r\n
///    $4\r\nkind\r\n$8\r\npurchase\r\n$12\r\ntimestamp_ms\r\n:1767225600000\r\n
///    $5\r\nvalue\r\n,19.5\r\n$10\r\nattributes\r\n*0\r\n$7\r\nsegment\r\n:2\r\n
///    $10\r\npropensity\r\n,0.61\r\n                    (RESP2: each map a flat array)
/// ```
#[derive(Debug)]
pub(crate) struct History {
    customer: String,
    count: usize,
}

impl History {
    fn parse(args: &mut Args) -> Result<History, CommandError> {
        let customer = args.text("customer")?;
        let mut n = None;
        while let Some(word) = args.next() {
            if !word.eq_ignore_ascii_case(b"COUNT") {
                return Err(
                    args.syntax(format!("unknown option '{}'; expected COUNT", show(&word)))
                );
            }
            if n.is_some() {
                return Err(args.syntax("COUNT given twice"));
            }
            n = Some(count(&args.option_value("COUNT")?, HISTORY_MAX_COUNT)?);
        }
        Ok(History {
            customer,
            count: n.unwrap_or(HISTORY_DEFAULT_COUNT),
        })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        Ok(match ctx.server.db.history(&self.customer, self.count)? {
            Some(items) => Frame::Array(items.iter().map(history_frame).collect()),
            None => Frame::Null,
        })
    }
}

/// One history entry as a map; fields that do not apply to the change are null.
fn history_frame(h: &HistoryItem) -> Frame {
    Frame::map_from([
        ("version", super::int(h.version)),
        ("change", Frame::bulk(&h.change)),
        ("kind", h.kind.as_ref().map_or(Frame::Null, Frame::bulk)),
        (
            "timestamp_ms",
            h.timestamp_ms.map_or(Frame::Null, Frame::Integer),
        ),
        ("value", h.value.map_or(Frame::Null, Frame::Double)),
        (
            "attributes",
            Frame::Array(h.attributes.iter().map(Frame::bulk).collect()),
        ),
        ("segment", super::opt_int(h.segment.map(u64::from))),
        ("propensity", Frame::Double(f64::from(h.propensity))),
    ])
}

/// Erases every trace of a customer — profile, retained history, de-duplication ids, pending
/// training example, segment membership — atomically and durably, through the writer. Replies
/// 1 if the customer existed, 0 if not (nothing is written then). Afterwards the customer is
/// unknown; new events start a new profile.
///
/// # Format
///
/// ```text
/// PROFILE.DEL customer
///
/// *2\r\n$11\r\nPROFILE.DEL\r\n$3\r\nc42\r\n   -> :1\r\n   (again: :0\r\n)
/// error: -ERR invalid event: field customer_id: "" must not be empty\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Del {
    customer: String,
}

impl Del {
    fn parse(args: &mut Args) -> Result<Del, CommandError> {
        Ok(Del {
            customer: args.text("customer")?,
        })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        // Not through the partition log yet: an erase applied by this node alone would come
        // back when another node replays the partition's log, and the log itself keeps the
        // customer's events (docs/cluster.md). Refused rather than undone later.
        if ctx.server.config.cluster.is_some() {
            return Err(CommandError::Other(
                "PROFILE.DEL is not available on a cluster node yet: the partition log keeps \
                 the customer's events, so an erase here would not be final (docs/cluster.md, \
                 \"Not built yet\")"
                    .into(),
            ));
        }
        let erased = ctx.server.db.erase(&self.customer)?;
        Ok(Frame::Integer(i64::from(erased)))
    }
}

/// Everything stored about a customer (the answer to an access request) as one JSON document
/// in a bulk string — the document `persona export-customer` prints — or null if unknown.
///
/// # Format
///
/// ```text
/// PROFILE.EXPORT customer
///
/// *2\r\n$14\r\nPROFILE.EXPORT\r\n$3\r\nc42\r\n
/// -> $<len>\r\n{"as_of_ms":1767225600000,"assigned_distance":0.0,...}\r\n
/// unknown customer: _\r\n (RESP3), $-1\r\n (RESP2)
/// ```
#[derive(Debug)]
pub(crate) struct Export {
    customer: String,
}

impl Export {
    fn parse(args: &mut Args) -> Result<Export, CommandError> {
        Ok(Export {
            customer: args.text("customer")?,
        })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        Ok(match ctx.server.db.export_customer(&self.customer)? {
            Some(export) => Frame::bulk(export.to_json().to_string()),
            None => Frame::Null,
        })
    }
}
