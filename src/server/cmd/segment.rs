//! `SEGMENT.*`: the customer segments and their members.

use super::args::{count, integer, show};
use super::{ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Spec};
use crate::db::Target;
use crate::server::frame::Frame;
use std::fmt::Write as _;

/// Members returned by one `SEGMENT.MEMBERS` call unless `COUNT` says otherwise.
const DEFAULT_COUNT: usize = 10;
/// Most members one `SEGMENT.MEMBERS` call may ask for.
const MAX_COUNT: usize = 10_000;

/// `SEGMENT.LIST`.
pub(crate) const LIST: Spec = Spec {
    name: "SEGMENT.LIST",
    arity: 1,
    flags: &["readonly"],
    key: 0,
    group: "segment",
    since: "0.1.0",
    summary: "Lists every segment: size, members' statistics now, label, rule and best action.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::SegmentList(List)),
    container: "",
};

/// `SEGMENT.MEMBERS`.
pub(crate) const MEMBERS: Spec = Spec {
    name: "SEGMENT.MEMBERS",
    arity: -2,
    flags: &["readonly"],
    key: 0,
    group: "segment",
    since: "0.1.0",
    summary: "Iterates over the customers of a segment, like SCAN.",
    args: &[
        ArgDoc::new("segment", ArgKind::Integer),
        ArgDoc::new("cursor", ArgKind::String)
            .token("CURSOR")
            .optional(),
        ArgDoc::new("count", ArgKind::Integer)
            .token("COUNT")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Members::parse(args).map(Command::SegmentMembers),
    container: "",
};

/// `SEGMENT.NEAREST`.
pub(crate) const NEAREST: Spec = Spec {
    name: "SEGMENT.NEAREST",
    arity: -2,
    flags: &["readonly"],
    key: 0,
    group: "segment",
    since: "0.1.0",
    summary: "Returns the segments nearest to a customer or a feature vector, with distances.",
    args: &[
        ArgDoc::new(
            "target",
            ArgKind::OneOf(&[
                ArgDoc::new("customer", ArgKind::Key),
                ArgDoc::new("feature", ArgKind::Double)
                    .token("VECTOR")
                    .multiple(),
            ]),
        ),
        ArgDoc::new("count", ArgKind::Integer)
            .token("COUNT")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Nearest::parse(args).map(Command::SegmentNearest),
    container: "",
};

/// Every segment, in id order: an empty array until the segments are seeded. Each map holds
/// the members' statistics as of the watermark in raw units — computed over all members or a
/// uniform sample (`evaluated` says how many) — the label, the rule's action and the action
/// with the best posterior mean; the same numbers as `persona segments --json` (which adds the
/// centroid and every action's feedback counts). Runs on a thread of its own: it reads the
/// profile keys once.
///
/// # Format
///
/// ```text
/// SEGMENT.LIST
///
/// *1\r\n$12\r\nSEGMENT.LIST\r\n
/// -> *8\r\n%18\r\n$2\r\nid\r\n:0\r\n$4\r\nsize\r\n:120\r\n$9\r\nevaluated\r\n:120\r\n
///    $5\r\nlabel\r\n$14\r\nhigh spend ...\r\n$12\r\nrecency_days\r\n,3.5\r\n ...
///    $11\r\nrule_action\r\n$9\r\nvip_offer\r\n ...   (RESP2: each map a flat array)
/// ```
#[derive(Debug)]
pub(crate) struct List;

impl List {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let segments = ctx.server.db.segments()?;
        let opt = |v: Option<f64>| v.map_or(Frame::Null, Frame::Double);
        Ok(Frame::Array(
            segments
                .iter()
                .map(|s| {
                    let categories = s
                        .top_categories
                        .iter()
                        .map(|c| {
                            Frame::map_from([
                                ("name", Frame::bulk(&c.name)),
                                ("bucket", super::int(c.bucket as u64)),
                                ("share", Frame::Double(c.share)),
                            ])
                        })
                        .collect();
                    Frame::map_from([
                        ("id", Frame::Integer(i64::from(s.id))),
                        ("size", super::int(s.size)),
                        ("evaluated", super::int(s.evaluated)),
                        ("label", Frame::bulk(&s.label)),
                        ("recency_days", opt(s.recency_days)),
                        ("tenure_days", opt(s.tenure_days)),
                        ("days_since_purchase", opt(s.days_since_purchase)),
                        ("buyers", Frame::Double(s.buyers)),
                        ("purchases", Frame::Double(s.purchases)),
                        ("spend", Frame::Double(s.spend)),
                        ("mean_spend", Frame::Double(s.mean_spend)),
                        ("cart_adds", Frame::Double(s.cart_adds)),
                        ("recent_events", Frame::Double(s.recent_events)),
                        ("mean_propensity", Frame::Double(s.mean_propensity)),
                        (
                            "top_kind",
                            s.top_kind.as_ref().map_or(Frame::Null, Frame::bulk),
                        ),
                        ("top_categories", Frame::Array(categories)),
                        ("rule_action", Frame::bulk(&s.rule_action)),
                        ("best_action", Frame::bulk(&s.best_action)),
                    ])
                })
                .collect(),
        ))
    }
}

/// Customers of a segment in key order (by id, or by token in an encrypted store), a page at
/// a time. Start with cursor `0` (or no
/// `CURSOR`); each reply holds the cursor of the next page and the page; the cursor `0` means
/// the iteration is complete. A cursor is opaque: pass back what the server returned. On a
/// cluster node the pages go through every member's customers, one member after the other,
/// and the cursor names the member (`docs/cluster.md`).
///
/// # Format
///
/// ```text
/// SEGMENT.MEMBERS segment [CURSOR cursor] [COUNT count]
///
/// *4\r\n$15\r\nSEGMENT.MEMBERS\r\n$1\r\n3\r\n$5\r\nCOUNT\r\n$1\r\n2\r\n
/// -> *2\r\n$6\r\n633132\r\n*2\r\n$3\r\nc10\r\n$3\r\nc12\r\n
/// last page: *2\r\n$1\r\n0\r\n*1\r\n$3\r\nc99\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Members {
    segment: u16,
    after: Option<String>,
    /// On a cluster node: which member the cursor is in (by node id order).
    member: Option<usize>,
    count: usize,
}

impl Members {
    fn parse(args: &mut Args) -> Result<Members, CommandError> {
        let raw = args.required()?;
        let segment = integer(&raw)
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| CommandError::Invalid {
                name: "segment",
                value: show(&raw),
                allowed: "must be a segment number (see SEGMENT.LIST)".into(),
            })?;
        let (mut cursor, mut count) = (None, None);
        while let Some(word) = args.next() {
            let (name, slot) = match word.to_ascii_uppercase().as_slice() {
                b"CURSOR" => ("CURSOR", &mut cursor),
                b"COUNT" => ("COUNT", &mut count),
                _ => {
                    return Err(args.syntax(format!(
                        "unknown option '{}'; expected CURSOR or COUNT",
                        show(&word)
                    )))
                }
            };
            if slot.is_some() {
                return Err(args.syntax(format!("{name} given twice")));
            }
            *slot = Some(args.option_value(name)?);
        }
        let bad = |c: &[u8]| CommandError::Invalid {
            name: "CURSOR",
            value: show(c),
            allowed: "use 0 to start, then the cursor the previous reply returned".into(),
        };
        let (after, member) = match cursor {
            None => (None, None),
            // A cluster node's cursor: the member's index, `g`, the member's own cursor.
            Some(c) => match c.iter().position(|&b| b == b'g') {
                Some(at) => {
                    let index = std::str::from_utf8(&c[..at])
                        .ok()
                        .and_then(|i| i.parse::<usize>().ok())
                        .ok_or_else(|| bad(&c))?;
                    let after = match &c[at + 1..] {
                        [] => None,
                        rest => decode_cursor(rest).flatten().ok_or_else(|| bad(&c))?.into(),
                    };
                    (after, Some(index))
                }
                None => (decode_cursor(&c).ok_or_else(|| bad(&c))?, None),
            },
        };
        let count = match count {
            None => DEFAULT_COUNT,
            Some(c) => integer(&c)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=MAX_COUNT).contains(n))
                .ok_or_else(|| CommandError::Invalid {
                    name: "COUNT",
                    value: show(&c),
                    allowed: format!("must be a whole number from 1 to {MAX_COUNT}"),
                })?,
        };
        Ok(Members {
            segment,
            after,
            member,
            count,
        })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let db = &ctx.server.db;
        let segments = db.config().model.segments;
        if usize::from(self.segment) >= segments {
            return Err(CommandError::Invalid {
                name: "segment",
                value: self.segment.to_string(),
                allowed: format!(
                    "this store has segments 0 to {}",
                    segments.saturating_sub(1)
                ),
            });
        }
        #[cfg(feature = "cluster")]
        if let Some(view) = &ctx.server.config.cluster {
            return self.apply_cluster(ctx, view);
        }
        if self.member.is_some() {
            return Err(CommandError::Invalid {
                name: "CURSOR",
                value: "(a cluster node's cursor)".into(),
                allowed: "use 0 to start, then the cursor the previous reply returned".into(),
            });
        }
        let mut ids = db.segment_members(
            self.segment,
            self.after.as_deref(),
            self.count.saturating_add(1),
        )?;
        let next = if ids.len() > self.count {
            ids.truncate(self.count);
            ids.last()
                .map_or_else(|| "0".to_owned(), |id| encode_cursor(id))
        } else {
            "0".to_owned()
        };
        Ok(Frame::Array(vec![
            Frame::bulk(next),
            Frame::Array(ids.iter().map(Frame::bulk).collect()),
        ]))
    }

    /// On a cluster node: the members' customers one member after the other (by node id),
    /// each member's in its key order; the cursor names the member and its own cursor.
    #[cfg(feature = "cluster")]
    fn apply_cluster(
        self,
        ctx: &mut Ctx<'_>,
        view: &crate::ClusterView,
    ) -> Result<Frame, CommandError> {
        use crate::cluster::fanout::{self, Answer, Question};
        let members = fanout::members(view)?;
        let (mut i, mut after) = (self.member.unwrap_or(0), self.after);
        let mut ids: Vec<String> = Vec::new();
        let mut next = "0".to_owned();
        while i < members.len() {
            let want = self.count - ids.len();
            let question = Question::Members {
                segment: self.segment,
                after: after.take(),
                limit: want + 1,
            };
            let answers = fanout::ask(&ctx.server.db, view, &members[i..=i], &question)?;
            let mut page = match answers.into_iter().next() {
                Some(Answer::Members(page)) => page,
                _ => Vec::new(),
            };
            if page.len() > want {
                page.truncate(want);
                ids.extend(page);
                let last = ids.last().map(|id| encode_cursor(id)).unwrap_or_default();
                next = format!("{i}g{last}");
                break;
            }
            ids.extend(page);
            i += 1;
            if ids.len() == self.count && i < members.len() {
                next = format!("{i}g");
                break;
            }
        }
        Ok(Frame::Array(vec![
            Frame::bulk(next),
            Frame::Array(ids.iter().map(Frame::bulk).collect()),
        ]))
    }
}

/// The `COUNT` segments (1 by default) nearest to a customer, evaluated as of the watermark, or
/// to a raw feature vector in the layout of `PROFILE.GET`'s `features` (every dimension, in
/// order), nearest first, each as `[segment, distance]` (Euclidean, in standardised units). An
/// empty array before the segments are seeded; a null reply for an unknown customer. The first
/// argument `VECTOR` (any case) always starts a vector.
///
/// # Format
///
/// ```text
/// SEGMENT.NEAREST customer [COUNT count]
/// SEGMENT.NEAREST VECTOR feature [feature ...] [COUNT count]
///
/// *4\r\n$15\r\nSEGMENT.NEAREST\r\n$3\r\nc42\r\n$5\r\nCOUNT\r\n$1\r\n2\r\n
/// -> *2\r\n*2\r\n:3\r\n,0.82\r\n*2\r\n:0\r\n,1.9\r\n    (RESP2: distances as bulk strings)
/// error: -ERR invalid argument vector: vector has 2 dimensions; the model expects 61\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Nearest {
    target: NearestTarget,
    count: usize,
}

/// What `SEGMENT.NEAREST` measures from.
#[derive(Debug)]
enum NearestTarget {
    Customer(String),
    Vector(Vec<f64>),
}

impl Nearest {
    fn parse(args: &mut Args) -> Result<Nearest, CommandError> {
        let first = args.required()?;
        let mut pending = None;
        let target = if first.eq_ignore_ascii_case(b"VECTOR") {
            let mut v = Vec::new();
            while let Some(word) = args.next() {
                if word.eq_ignore_ascii_case(b"COUNT") {
                    pending = Some(word);
                    break;
                }
                let x = std::str::from_utf8(&word)
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .ok_or_else(|| CommandError::Invalid {
                        name: "feature",
                        value: show(&word),
                        allowed: "must be a number".into(),
                    })?;
                v.push(x);
            }
            if v.is_empty() {
                return Err(args.syntax("VECTOR needs one number per feature"));
            }
            NearestTarget::Vector(v)
        } else {
            NearestTarget::Customer(super::args::utf8("customer", first)?)
        };
        let mut n = None;
        while let Some(word) = pending.take().or_else(|| args.next()) {
            if !word.eq_ignore_ascii_case(b"COUNT") {
                return Err(
                    args.syntax(format!("unknown option '{}'; expected COUNT", show(&word)))
                );
            }
            if n.is_some() {
                return Err(args.syntax("COUNT given twice"));
            }
            n = Some(count(&args.option_value("COUNT")?, MAX_COUNT)?);
        }
        Ok(Nearest {
            target,
            count: n.unwrap_or(1),
        })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let db = &ctx.server.db;
        let found = match &self.target {
            NearestTarget::Vector(v) => db.nearest_segments(Target::Vector(v), self.count)?,
            NearestTarget::Customer(id) => {
                let found = db.nearest_segments(Target::Customer(id), self.count)?;
                // The library answers an unknown customer with no segments; tell it apart.
                if found.is_empty() && db.profile(id)?.is_none() {
                    return Ok(Frame::Null);
                }
                found
            }
        };
        Ok(Frame::Array(
            found
                .iter()
                .map(|s| {
                    Frame::Array(vec![
                        Frame::Integer(i64::from(s.segment)),
                        Frame::Double(s.distance),
                    ])
                })
                .collect(),
        ))
    }
}

/// A cursor names the last customer returned, hex-encoded: never `0`, and safe to print.
fn encode_cursor(last: &str) -> String {
    let mut out = String::with_capacity(last.len() * 2);
    for b in last.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `Some(None)` for the start, `Some(Some(id))` to continue after `id`, `None` if malformed.
fn decode_cursor(cursor: &[u8]) -> Option<Option<String>> {
    if cursor == b"0" {
        return Some(None);
    }
    if cursor.is_empty() || cursor.len() % 2 != 0 || !cursor.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let bytes = cursor
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_zero_is_the_start() {
        for id in ["0", "c42", "ü-ñ", "x y"] {
            let c = encode_cursor(id);
            assert_ne!(c, "0");
            assert_eq!(decode_cursor(c.as_bytes()), Some(Some(id.to_owned())));
        }
        assert_eq!(decode_cursor(b"0"), Some(None));
        assert_eq!(decode_cursor(b"abc"), None);
        assert_eq!(decode_cursor(b"zz"), None);
        assert_eq!(decode_cursor(b"ff"), None);
        assert_eq!(decode_cursor(b"+1"), None);
    }
}
