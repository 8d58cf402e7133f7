//! `SIMILAR` and `SCORE`: questions about one customer answered from the models.

use super::args::{count, show};
use super::{ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Spec};
use crate::server::frame::Frame;

/// Customers `SIMILAR` returns unless `COUNT` says otherwise.
const SIMILAR_DEFAULT_COUNT: usize = 10;
/// Most customers one `SIMILAR` may ask for.
const SIMILAR_MAX_COUNT: usize = 1_000;

/// `SIMILAR`.
pub(crate) const SIMILAR: Spec = Spec {
    name: "SIMILAR",
    arity: -2,
    flags: &["readonly"],
    key: 1,
    group: "query",
    since: "0.1.0",
    summary: "Returns the customers most similar to a customer (lookalikes), nearest first.",
    args: &[
        ArgDoc::new("customer", ArgKind::Key),
        ArgDoc::new("count", ArgKind::Integer)
            .token("COUNT")
            .optional(),
        ArgDoc::new("exact", ArgKind::PureToken)
            .token("EXACT")
            .optional(),
    ],
    subcommands: &[],
    parse: |args| Similar::parse(args).map(Command::Similar),
    container: "",
};

/// `SCORE`.
pub(crate) const SCORE: Spec = Spec {
    name: "SCORE",
    arity: 2,
    flags: &["readonly"],
    key: 1,
    group: "query",
    since: "0.1.0",
    summary: "Returns a customer's propensity with the current model and the features behind it.",
    args: &[ArgDoc::new("customer", ArgKind::Key)],
    subcommands: &[],
    parse: |args| {
        Ok(Command::Score(Score {
            customer: args.text("customer")?,
        }))
    },
    container: "",
};

/// The `COUNT` customers (10 by default) most similar to a customer, nearest first, the customer
/// excluded, each as `[customer_id, distance]` (standardised units). Searches the members of the
/// segments nearest to the customer unless `EXACT` asks for a scan of every profile. A null reply
/// for an unknown customer. On a cluster node (the customer's owner), every member searches its
/// own customers and the nearest of all are returned (`docs/cluster.md`).
///
/// # Format
///
/// ```text
/// SIMILAR customer [COUNT count] [EXACT]
///
/// *5\r\n$7\r\nSIMILAR\r\n$3\r\nc42\r\n$5\r\nCOUNT\r\n$1\r\n2\r\n$5\r\nEXACT\r\n
/// -> *2\r\n*2\r\n$3\r\nc17\r\n,0.41\r\n*2\r\n$3\r\nc90\r\n,0.57\r\n (RESP2: distances as bulk strings)
/// ```
#[derive(Debug)]
pub(crate) struct Similar {
    customer: String,
    count: usize,
    exact: bool,
}

impl Similar {
    fn parse(args: &mut Args) -> Result<Similar, CommandError> {
        let customer = args.text("customer")?;
        let (mut n, mut exact) = (None, false);
        while let Some(word) = args.next() {
            if word.eq_ignore_ascii_case(b"COUNT") {
                if n.is_some() {
                    return Err(args.syntax("COUNT given twice"));
                }
                n = Some(count(&args.option_value("COUNT")?, SIMILAR_MAX_COUNT)?);
            } else if word.eq_ignore_ascii_case(b"EXACT") {
                exact = true;
            } else {
                return Err(args.syntax(format!(
                    "unknown option '{}'; expected COUNT or EXACT",
                    show(&word)
                )));
            }
        }
        Ok(Similar {
            customer,
            count: n.unwrap_or(SIMILAR_DEFAULT_COUNT),
            exact,
        })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let search = if self.exact {
            crate::Search::Exact
        } else {
            crate::Search::Probe
        };
        #[cfg(feature = "cluster")]
        if let Some(view) = &ctx.server.config.cluster {
            return self.apply_cluster(ctx, view, search);
        }
        let found = ctx.server.db.similar(&self.customer, self.count, search)?;
        Ok(similar_reply(found))
    }

    /// On a cluster node (the customer's owner): the nearest among this node's customers and
    /// those each other member finds among its own, merged.
    #[cfg(feature = "cluster")]
    fn apply_cluster(
        self,
        ctx: &mut Ctx<'_>,
        view: &crate::ClusterView,
        search: crate::Search,
    ) -> Result<Frame, CommandError> {
        use crate::cluster::fanout::{self, Answer};
        let members = fanout::members(view)?;
        let others: Vec<crate::Member> =
            members.into_iter().filter(|m| m.id != view.id()).collect();
        let db = &ctx.server.db;
        let owned = fanout::owned(view);
        let Some((state, mut found)) =
            db.similar_where(&self.customer, self.count, search, Some(&owned))?
        else {
            return Ok(Frame::Null);
        };
        let question = fanout::similar_question(&self.customer, &state, self.count, self.exact)?;
        for answer in fanout::ask(db, view, &others, &question)? {
            if let Answer::Similar(some) = answer {
                found.extend(some.into_iter().map(|(customer_id, distance)| {
                    crate::SimilarCustomer {
                        customer_id,
                        distance,
                    }
                }));
            }
        }
        found.sort_by(crate::query::similar::nearest_first);
        found.truncate(self.count);
        Ok(similar_reply(Some(found)))
    }
}

/// `SIMILAR`'s reply: `[customer, distance]` pairs, or null for an unknown customer.
fn similar_reply(found: Option<Vec<crate::SimilarCustomer>>) -> Frame {
    {
        match found {
            Some(found) => Frame::Array(
                found
                    .iter()
                    .map(|c| {
                        Frame::Array(vec![Frame::bulk(&c.customer_id), Frame::Double(c.distance)])
                    })
                    .collect(),
            ),
            None => Frame::Null,
        }
    }
}

/// A customer's propensity with the current model, as of the watermark, the model's bias and
/// the features that contributed most (largest magnitude first). A null reply for an unknown
/// customer.
///
/// # Format
///
/// ```text
/// SCORE customer
///
/// *2\r\n$5\r\nSCORE\r\n$3\r\nc42\r\n
/// -> %5\r\n$10\r\npropensity\r\n,0.61\r\n$8\r\nas_of_ms\r\n:1767225600000\r\n
///    $13\r\nmodel_version\r\n:12\r\n$4\r\nbias\r\n,-0.3\r\n
///    $3\r\ntop\r\n*6\r\n%6\r\n$7\r\nfeature\r\n$12\r\nrecency_days\r\n$5\r\nvalue\r\n,2\r\n
///    $9\r\nraw_value\r\n,6.39\r\n$4\r\nunit\r\n$4\r\ndays\r\n
///    $1\r\nz\r\n,-0.8\r\n$12\r\ncontribution\r\n,0.4\r\n ...   (RESP2: each map a flat array)
/// ```
#[derive(Debug)]
pub(crate) struct Score {
    customer: String,
}

impl Score {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let Some(s) = ctx.server.db.score(&self.customer)? else {
            return Ok(Frame::Null);
        };
        let top = s
            .top
            .iter()
            .map(|c| {
                Frame::map_from([
                    ("feature", Frame::bulk(&c.feature)),
                    ("value", Frame::Double(c.value)),
                    ("raw_value", c.raw_value.map_or(Frame::Null, Frame::Double)),
                    ("unit", Frame::bulk(c.unit)),
                    ("z", Frame::Double(c.z)),
                    ("contribution", Frame::Double(c.contribution)),
                ])
            })
            .collect();
        Ok(Frame::map_from([
            ("propensity", Frame::Double(s.propensity)),
            ("as_of_ms", Frame::Integer(s.as_of_ms)),
            ("model_version", super::int(s.model_version)),
            ("bias", Frame::Double(s.bias)),
            ("top", Frame::Array(top)),
        ]))
    }
}
