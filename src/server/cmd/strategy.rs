//! `STRATEGY`, `FEEDBACK` and `RECOMMEND`: the action to take for a customer, whether it
//! converted, and what to offer them.

use super::args::{integer, show, utf8};
use super::{ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Spec};
use crate::server::frame::Frame;

/// `STRATEGY`.
pub(crate) const STRATEGY: Spec = Spec {
    name: "STRATEGY",
    arity: -2,
    flags: &["readonly"],
    key: 1,
    group: "strategy",
    since: "0.1.0",
    summary: "Recommends a marketing action for a customer (Thompson sampling, or GREEDY).",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new("greedy", ArgKind::PureToken)
            .token("GREEDY")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Strategy::parse(args).map(Command::Strategy),
    container: "",
};

/// `RECOMMEND`.
pub(crate) const RECOMMEND: Spec = Spec {
    name: "RECOMMEND",
    arity: -2,
    flags: &["readonly"],
    key: 1,
    group: "strategy",
    since: "0.1.0",
    summary: "What to offer a customer next: items or categories, each with a score and a reason.",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new("count", ArgKind::Integer)
            .token("COUNT")
            .optional(),
        ArgDoc::new("kind", ArgKind::String)
            .token("KIND")
            .optional(),
        ArgDoc::new("exclude_purchased", ArgKind::PureToken)
            .token("EXCLUDE_PURCHASED")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Recommend::parse(args).map(Command::Recommend),
    container: "",
};

/// `FEEDBACK`.
pub(crate) const FEEDBACK: Spec = Spec {
    name: "FEEDBACK",
    arity: -4,
    flags: &["write"],
    key: 1,
    group: "strategy",
    since: "0.1.0",
    summary: "Records whether an action taken for a customer converted.",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new("action", ArgKind::String),
        ArgDoc::new("converted", ArgKind::Integer),
        ArgDoc::new("id", ArgKind::String).token("ID").optional(),
        ArgDoc::new("segment", ArgKind::Integer)
            .token("SEGMENT")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Feedback::parse(args).map(Command::Feedback),
    container: "",
};

/// The action to take for a customer now: Thompson sampling over the statistics of the
/// customer's segment, or with `GREEDY` the best posterior mean. A null reply for an unknown
/// customer; an error before the segments are seeded.
///
/// # Format
///
/// ```text
/// STRATEGY customer [GREEDY]
///
/// *3\r\n$8\r\nSTRATEGY\r\n$3\r\nc42\r\n$6\r\nGREEDY\r\n
/// -> %11\r\n$11\r\ncustomer_id\r\n$3\r\nc42\r\n$7\r\nsegment\r\n:3\r\n
///    $13\r\nsegment_label\r\n$...\r\n$6\r\naction\r\n$8\r\ndiscount\r\n
///    $19\r\nexpected_conversion\r\n,0.2\r\n$9\r\nsuccesses\r\n:4\r\n$8\r\nfailures\r\n:9\r\n
///    $11\r\nrule_action\r\n$...\r\n$6\r\nreason\r\n$...\r\n$6\r\ngreedy\r\n#t\r\n
///    $11\r\nsuggestions\r\n*3\r\n$3\r\nmug\r\n...
///                                                         (RESP2: a flat array, greedy 1 or 0)
/// ```
#[derive(Debug)]
pub(crate) struct Strategy {
    customer: String,
    greedy: bool,
}

impl Strategy {
    fn parse(args: &mut Args) -> Result<Strategy, CommandError> {
        let customer = args.text("customer")?;
        let mut greedy = false;
        while let Some(word) = args.next() {
            if !word.eq_ignore_ascii_case(b"GREEDY") {
                return Err(
                    args.syntax(format!("unknown option '{}'; expected GREEDY", show(&word)))
                );
            }
            greedy = true;
        }
        Ok(Strategy { customer, greedy })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let Some(r) = ctx.server.db.strategy(
            &self.customer,
            if self.greedy {
                crate::Choice::Greedy
            } else {
                crate::Choice::Sample
            },
        )?
        else {
            return Ok(Frame::Null);
        };
        Ok(Frame::map_from([
            ("customer_id", Frame::bulk(&r.customer_id)),
            ("segment", Frame::Integer(i64::from(r.segment))),
            ("segment_label", Frame::bulk(&r.segment_label)),
            ("action", Frame::bulk(&r.action)),
            ("expected_conversion", Frame::Double(r.expected_conversion)),
            ("successes", super::int(r.successes)),
            ("failures", super::int(r.failures)),
            ("rule_action", Frame::bulk(&r.rule_action)),
            ("reason", Frame::bulk(&r.reason)),
            ("greedy", Frame::Boolean(r.greedy)),
            (
                "suggestions",
                Frame::Array(r.suggestions.iter().map(|s| Frame::bulk(&s.name)).collect()),
            ),
        ]))
    }
}

/// Records whether `action` converted (`1`) or not (`0`) for a customer, through the writer
/// like an event. It counts for the customer's current segment unless `SEGMENT` names the one
/// the recommendation was made for. With an `ID`, a repeat is acknowledged as a duplicate and
/// changes nothing. Replies with the customer's version and segment and the duplicate flag.
///
/// # Format
///
/// ```text
/// FEEDBACK customer action converted [ID id] [SEGMENT segment]
///
/// *6\r\n$8\r\nFEEDBACK\r\n$3\r\nc42\r\n$8\r\ndiscount\r\n$1\r\n1\r\n$2\r\nID\r\n$2\r\nf1\r\n
/// -> %3\r\n$7\r\nversion\r\n:7\r\n$7\r\nsegment\r\n:3\r\n$9\r\nduplicate\r\n#f\r\n
///                                                  (RESP2: a flat array, duplicate 1 or 0)
/// error: -ERR invalid converted '2': must be 1 (converted) or 0 (did not)\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Feedback {
    customer: String,
    action: String,
    converted: bool,
    id: Option<String>,
    segment: Option<u16>,
}

impl Feedback {
    fn parse(args: &mut Args) -> Result<Feedback, CommandError> {
        let customer = args.text("customer")?;
        let action = args.text("action")?;
        let raw = args.required()?;
        let converted = match raw.as_slice() {
            b"1" => true,
            b"0" => false,
            _ => {
                return Err(CommandError::Invalid {
                    name: "converted",
                    value: show(&raw),
                    allowed: "must be 1 (converted) or 0 (did not)".into(),
                })
            }
        };
        let (mut id, mut segment) = (None, None);
        while let Some(word) = args.next() {
            if word.eq_ignore_ascii_case(b"ID") {
                if id.is_some() {
                    return Err(args.syntax("ID given twice"));
                }
                id = Some(utf8("ID", args.option_value("ID")?)?);
            } else if word.eq_ignore_ascii_case(b"SEGMENT") {
                if segment.is_some() {
                    return Err(args.syntax("SEGMENT given twice"));
                }
                let value = args.option_value("SEGMENT")?;
                segment = Some(
                    integer(&value)
                        .and_then(|s| u16::try_from(s).ok())
                        .ok_or_else(|| CommandError::Invalid {
                            name: "SEGMENT",
                            value: show(&value),
                            allowed: "must be a segment number (see SEGMENT.LIST)".into(),
                        })?,
                );
            } else {
                return Err(args.syntax(format!(
                    "unknown option '{}'; expected ID or SEGMENT",
                    show(&word)
                )));
            }
        }
        Ok(Feedback {
            customer,
            action,
            converted,
            id,
            segment,
        })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let feedback = crate::Feedback::new(&self.customer, &self.action, self.converted)
            .with_id(self.id.as_deref())
            .with_segment(self.segment);
        // A cluster node's outcomes go through their partition's log (`cluster/log.rs`).
        let ack = match super::cluster::log_of(ctx) {
            Some(writes) => {
                let item = ctx.server.db.feedback_item(feedback)?;
                super::cluster::through_log(writes.as_ref(), item, None).wait()?
            }
            None => ctx.server.db.feedback(feedback)?,
        };
        Ok(Frame::map_from([
            ("version", super::int(ack.version)),
            ("segment", super::opt_int(ack.segment.map(u64::from))),
            ("duplicate", Frame::Boolean(ack.duplicate)),
        ]))
    }
}

/// What to offer a customer next (`Db::recommend`): an array of maps `item` (or `category`
/// with `KIND category`), `score`, `reason`, best first; `COUNT` 1 to 100 (default 10);
/// `EXCLUDE_PURCHASED` leaves out what the customer bought. An unknown customer gets the
/// popular items.
///
/// # Format
///
/// ```text
/// RECOMMEND customer [COUNT count] [KIND item|category] [EXCLUDE_PURCHASED]
///
/// *4\r\n$9\r\nRECOMMEND\r\n$3\r\nc42\r\n$5\r\nCOUNT\r\n$1\r\n2\r\n
/// -> *2\r\n%3\r\n$4\r\nitem\r\n$3\r\nmug\r\n$5\r\nscore\r\n,2\r\n
///       $6\r\nreason\r\n$...\r\n%3\r\n...          (RESP2: arrays of field/value pairs)
/// error: -ERR invalid count '0': an integer from 1 to 100
/// ```
#[derive(Debug)]
pub(crate) struct Recommend {
    customer: String,
    count: usize,
    options: crate::RecommendOptions,
}

impl Recommend {
    fn parse(args: &mut Args) -> Result<Recommend, CommandError> {
        let customer = args.text("customer")?;
        let mut count = 10;
        let mut options = crate::RecommendOptions::default();
        while let Some(word) = args.next() {
            match word.to_ascii_uppercase().as_slice() {
                b"COUNT" => {
                    let value = args.option_value("COUNT")?;
                    count = integer(&value)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| CommandError::Invalid {
                            name: "count",
                            value: show(&value),
                            allowed: "an integer from 1 to 100".into(),
                        })?;
                }
                b"KIND" => {
                    let value = args.option_value("KIND")?;
                    match value.to_ascii_lowercase().as_slice() {
                        b"item" => {}
                        b"category" => options = options.categories(),
                        _ => {
                            return Err(CommandError::Invalid {
                                name: "kind",
                                value: show(&value),
                                allowed: "item or category".into(),
                            })
                        }
                    }
                }
                b"EXCLUDE_PURCHASED" => options = options.exclude_purchased(),
                _ => {
                    return Err(args.syntax(format!(
                        "unknown option '{}'; expected COUNT, KIND or EXCLUDE_PURCHASED",
                        show(&word)
                    )))
                }
            }
        }
        Ok(Recommend {
            customer,
            count,
            options,
        })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let key = match self.options.catalogue {
            crate::Catalogue::Categories => "category",
            _ => "item",
        };
        let list = ctx
            .server
            .db
            .recommend(&self.customer, self.count, self.options)?;
        Ok(Frame::Array(
            list.into_iter()
                .map(|s| {
                    Frame::map_from([
                        (key, Frame::bulk(&s.name)),
                        ("score", Frame::Double(s.score)),
                        ("reason", Frame::bulk(&s.reason)),
                    ])
                })
                .collect(),
        ))
    }
}
