//! Commands whose answer spans the cluster: `DBSIZE`, `SEGMENT.MEMBERS` and `SIMILAR` on a
//! cluster node ask every member (`docs/cluster.md`, "Fan-out"). Each member answers over the
//! customers of the partitions it owns now (a node's store may still hold customers of
//! partitions it owned before: those are another node's to answer); this node answers its
//! own part from its store, the others over NATS request/reply (`ask.rs`).
#![cfg_attr(not(feature = "cluster"), allow(dead_code))]

use super::map::{ClusterView, Member};
use super::slots::key_slot;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::Search;
use serde::{Deserialize, Serialize};

/// Largest question or answer decoded, in bytes.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The bincode configuration of questions and answers.
pub(crate) fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE>()
}

/// What one member is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Question {
    /// How many customers it owns have a profile.
    Count,
    /// Up to `limit` customers it owns in `segment`, after `after` in its key order.
    Members {
        segment: u16,
        after: Option<String>,
        limit: usize,
    },
    /// The `k` customers it owns nearest to a customer with features `state` (a
    /// `ProfileState`, bincode), other than `exclude`.
    Similar {
        exclude: String,
        state: Vec<u8>,
        k: usize,
        exact: bool,
    },
}

/// A member's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// To [`Question::Count`].
    Count(u64),
    /// To [`Question::Members`].
    Members(Vec<String>),
    /// To [`Question::Similar`]: (customer, distance), nearest first.
    Similar(Vec<(String, f64)>),
    /// The member could not answer, and why.
    Failed(String),
}

/// How a node asks the other members (NATS request/reply: `ask.rs`).
pub(crate) trait Asks: Send + Sync {
    /// Asks each of `members` `question`; one result per member, in order (an error for a
    /// member that did not answer in time).
    fn ask(
        &self,
        members: &[Member],
        question: &Question,
    ) -> Vec<std::result::Result<Answer, String>>;
}

/// Whether a customer is of a partition `view`'s installed map gives this node now (the map
/// as of the call: one read for a whole scan).
pub(crate) fn owned(view: &ClusterView) -> impl Fn(&str) -> bool + '_ {
    let map = view.map();
    move |id: &str| {
        map.as_ref()
            .and_then(|m| m.owner_of_slot(key_slot(id.as_bytes())))
            .is_some_and(|owner| owner.id == view.id())
    }
}

/// Answers `question` from this node's store `db`, over the customers of the partitions
/// `view` says it owns now.
pub(crate) fn answer(db: &Db, view: &ClusterView, question: &Question) -> Answer {
    let keep = owned(view);
    let answered = match question {
        Question::Count => db.profile_count_where(&keep).map(Answer::Count),
        Question::Members {
            segment,
            after,
            limit,
        } => db
            .segment_members_where(*segment, after.as_deref(), *limit, &keep)
            .map(Answer::Members),
        Question::Similar {
            exclude,
            state,
            k,
            exact,
        } => match bincode::serde::decode_from_slice(state, codec()) {
            Ok((state, _)) => {
                let search = if *exact { Search::Exact } else { Search::Probe };
                db.similar_to(&state, exclude, *k, search, Some(&keep))
                    .map(|found| {
                        Answer::Similar(
                            found
                                .into_iter()
                                .map(|c| (c.customer_id, c.distance))
                                .collect(),
                        )
                    })
            }
            Err(e) => Err(Error::Cluster(format!("the question's features: {e}"))),
        },
    };
    answered.unwrap_or_else(|e| Answer::Failed(e.to_string()))
}

/// The members of the installed map, by id.
pub(crate) fn members(view: &ClusterView) -> Result<Vec<Member>> {
    let map = view
        .map()
        .ok_or_else(|| Error::Redirect("CLUSTERDOWN The cluster has no map yet".into()))?;
    let mut members = map.members;
    members.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(members)
}

/// Asks `members` `question`: this node answers from `db`, the others through `view`'s
/// [`Asks`]. One answer per member, in order.
///
/// # Errors
/// [`Error::Cluster`] naming the first member that did not answer or could not.
pub(crate) fn ask(
    db: &Db,
    view: &ClusterView,
    members: &[Member],
    question: &Question,
) -> Result<Vec<Answer>> {
    let others: Vec<Member> = members
        .iter()
        .filter(|m| m.id != view.id())
        .cloned()
        .collect();
    let mut remote = match (others.is_empty(), view.asks()) {
        (true, _) => Vec::new(),
        (false, Some(asks)) => asks.ask(&others, question),
        (false, None) => others
            .iter()
            .map(|_| Err("this node cannot ask the others yet (no store attached)".into()))
            .collect(),
    }
    .into_iter();
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let answer = if m.id == view.id() {
            answer(db, view, question)
        } else {
            match remote.next() {
                Some(Ok(a)) => a,
                Some(Err(e)) => Answer::Failed(e),
                None => Answer::Failed("no answer".into()),
            }
        };
        if let Answer::Failed(why) = &answer {
            return Err(Error::Cluster(format!(
                "node {} at {} did not answer: {why}",
                m.id, m.addr
            )));
        }
        out.push(answer);
    }
    Ok(out)
}

/// The question for `SIMILAR` over the other members: the customer's features.
pub(crate) fn similar_question(
    customer: &str,
    state: &crate::features::ProfileState,
    k: usize,
    exact: bool,
) -> Result<Question> {
    let state = bincode::serde::encode_to_vec(state, codec())
        .map_err(|e| Error::Cluster(format!("encoding the customer's features: {e}")))?;
    Ok(Question::Similar {
        exclude: customer.to_owned(),
        state,
        k,
        exact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_answers_round_trip_and_bad_bytes_are_an_error() {
        let qs = [
            Question::Count,
            Question::Members {
                segment: 3,
                after: Some("c9".into()),
                limit: 10,
            },
            Question::Similar {
                exclude: "c1".into(),
                state: vec![1, 2, 3],
                k: 5,
                exact: true,
            },
        ];
        for q in qs {
            let bytes = bincode::serde::encode_to_vec(&q, codec()).unwrap();
            let (back, used): (Question, usize) =
                bincode::serde::decode_from_slice(&bytes, codec()).unwrap();
            assert_eq!((back, used), (q, bytes.len()));
        }
        let a = Answer::Similar(vec![("c2".into(), 0.5)]);
        let bytes = bincode::serde::encode_to_vec(&a, codec()).unwrap();
        let (back, _): (Answer, usize) =
            bincode::serde::decode_from_slice(&bytes, codec()).unwrap();
        assert_eq!(back, a);
        assert!(bincode::serde::decode_from_slice::<Answer, _>(&[9, 9, 9], codec()).is_err());
    }
}
