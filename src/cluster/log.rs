//! The partition write log (feature `cluster`): every write to a customer goes through their
//! partition's stream in NATS JetStream before the owner applies it, so that the stream, not
//! any node's store, is the partition's history, and a partition's data moves with it.
//!
//! - **Appending.** The owner gathers the writes queued for a partition into a *round* and
//!   publishes it to the partition's stream `PERSONA_NAME_P{pppp}` (one subject) with
//!   `Nats-Expected-Last-Sequence` = the last sequence it applied and a message id: the server
//!   accepts it only if nothing was appended since, so a deposed owner that still believes it
//!   owns the partition is fenced. Only then is the round applied to the store, with the
//!   round's sequence under `Mcluster/` + partition in the same commit, and the writers
//!   acknowledged. One round of a partition is in flight at a time.
//! - **Taking a partition over.** A node that becomes a partition's owner (at its start, or
//!   when the map moves the partition to it) answers its customers `-TRYAGAIN` while it
//!   *catches up*: it applies every round after its own applied position, in order, then
//!   appends an empty round (a *fence*) with the expectation of the last one. If someone
//!   appended meanwhile (the previous owner, before it saw the new map), the fence fails and
//!   the catch-up goes on; once it lands, no earlier owner can append any more.
//! - **Exactly once.** A round is applied with its sequence in one commit, and a round at or
//!   below the applied position is skipped, so a replay (a restart, a catch-up) applies each
//!   round once; a round whose publication timed out is published again with the same
//!   message id, which the stream's duplicate window recognises.
//!
//! What the log carries: `EVENT.ADD`, `PROFILE.SET` and `FEEDBACK`. `PROFILE.DEL` (erasure)
//! is refused on a cluster node for now (see docs/cluster.md).

use super::map::{ClusterView, Writes};
use super::slots::{key_slot, partition_of_slot};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::features::AttrValue;
use crate::pipeline::{Ack, Item, WriteReply};
use crate::storage::keys;
use crate::Event;
use async_nats::jetstream::{
    consumer::{pull::OrderedConfig, DeliverPolicy},
    context::PublishErrorKind,
    message::PublishMessage,
    stream, Context,
};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

/// A task the log spawns (boxed: appending and taking over spawn each other).
type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Most writes in one round.
const MAX_ROUND: usize = 512;
/// Bound on each NATS call.
const CALL: Duration = Duration::from_secs(5);
/// The streams' duplicate window: a round published again within it is recognised.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// One write as the log carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Entry {
    Event(Event),
    Set {
        customer: String,
        attrs: Vec<(String, AttrValue)>,
    },
    /// A strategy outcome; `action` indexes the configured actions (the same on every node).
    Feedback {
        customer: String,
        action: usize,
        converted: bool,
        id: Option<String>,
        segment: Option<u16>,
    },
}

impl Entry {
    fn customer(&self) -> &str {
        match self {
            Entry::Event(e) => &e.customer_id,
            Entry::Set { customer, .. } | Entry::Feedback { customer, .. } => customer,
        }
    }

    fn into_item(self) -> Item {
        match self {
            Entry::Event(e) => Item::Event(e),
            Entry::Set { customer, attrs } => Item::SetAttributes { customer, attrs },
            Entry::Feedback {
                customer,
                action,
                converted,
                id,
                segment,
            } => Item::Feedback {
                customer,
                action,
                converted,
                id,
                segment,
            },
        }
    }
}

/// A round: the writes of one append, in order (none: a fence).
#[derive(Debug, Serialize, Deserialize)]
struct Round {
    /// The node that appended it.
    node: String,
    entries: Vec<Entry>,
}

/// The codec of rounds: bincode, a round at most 8 MiB (NATS's own payload limit is lower).
fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 8 * 1024 * 1024 }>()
}

fn encode(round: &Round) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(round, codec())
        .map_err(|e| Error::Cluster(format!("encoding a round: {e}")))
}

fn decode(bytes: &[u8]) -> std::result::Result<Round, String> {
    bincode::serde::decode_from_slice(bytes, codec())
        .map(|(round, _)| round)
        .map_err(|e| e.to_string())
}

/// Where a partition stands on this node.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Another node's (or nobody's).
    NotOwned,
    /// Ours, applying the rounds appended before we took it.
    CatchingUp,
    /// Ours, appending: `last` is the sequence of the last round appended and applied.
    Serving { last: u64 },
    /// Ours, but its log cannot be applied (a round that does not decode, a log whose start
    /// was deleted): writes are refused with this reason.
    Broken(String),
}

struct Part {
    phase: Phase,
    queue: Vec<(Entry, WriteReply)>,
    /// A task is appending rounds of this partition.
    appending: bool,
    /// Bumped at every change of ownership: a task of an older generation stops.
    generation: u64,
}

/// A node's partition logs.
pub(crate) struct Log {
    js: Context,
    /// The control stream and its subject: a node about to fence a partition checks there
    /// that the partition is still its own.
    ctl: stream::Stream,
    ctl_subject: String,
    db: Db,
    view: Arc<ClusterView>,
    name: String,
    replicas: usize,
    partitions: u16,
    parts: Vec<Mutex<Part>>,
    /// Serialises the applying of each partition's rounds (appends and catch-ups).
    applying: Vec<tokio::sync::Mutex<u64>>,
    handle: Handle,
}

impl Log {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        js: Context,
        ctl: (stream::Stream, String),
        db: Db,
        view: Arc<ClusterView>,
        name: &str,
        replicas: usize,
        partitions: u16,
        handle: Handle,
    ) -> Arc<Log> {
        Arc::new(Log {
            js,
            ctl: ctl.0,
            ctl_subject: ctl.1,
            db,
            view,
            name: name.to_owned(),
            replicas,
            partitions,
            parts: (0..partitions)
                .map(|_| {
                    Mutex::new(Part {
                        phase: Phase::NotOwned,
                        queue: Vec::new(),
                        appending: false,
                        generation: 0,
                    })
                })
                .collect(),
            applying: (0..partitions)
                .map(|_| tokio::sync::Mutex::new(0))
                .collect(),
            handle,
        })
    }

    fn stream_name(&self, p: u16) -> String {
        format!("PERSONA_{}_P{p:04}", self.name)
    }

    fn subject(&self, p: u16) -> String {
        format!("persona.{}.p.{p}", self.name)
    }

    /// Brings each partition's phase in line with the installed map: catches up the
    /// partitions that became ours, refuses the queued writes of those that are not any more.
    pub(crate) fn follow_map(self: &Arc<Self>) {
        let Some(map) = self.view.map() else {
            return;
        };
        for p in 0..self.partitions {
            let ours = map
                .owner_of_partition(p)
                .is_some_and(|m| m.id == self.view.id());
            let mut part = self.parts[usize::from(p)].lock();
            match (ours, &part.phase) {
                (true, Phase::NotOwned) => {
                    part.generation += 1;
                    part.phase = Phase::CatchingUp;
                    let (me, generation) = (Arc::clone(self), part.generation);
                    self.handle.spawn(me.take_over(p, generation));
                }
                (false, phase) if *phase != Phase::NotOwned => self.release(part),
                _ => {}
            }
        }
    }

    /// Gives a partition up: a new generation (its tasks stop), not ours, and the writes
    /// queued for it answered with where to go.
    fn release(&self, mut part: parking_lot::MutexGuard<'_, Part>) {
        part.generation += 1;
        part.phase = Phase::NotOwned;
        let queued = std::mem::take(&mut part.queue);
        drop(part);
        for (entry, reply) in queued {
            reply.send(vec![Err(self.not_here(entry.customer().as_bytes()))]);
        }
    }

    /// The error for a customer this node does not serve now.
    fn not_here(&self, customer: &[u8]) -> Error {
        self.view.route(customer).refusal().unwrap_or_else(|| {
            Error::Redirect("TRYAGAIN the partition is changing hands; try again".into())
        })
    }

    /// Why partition `p`, in `phase`, cannot serve `customer` now (None: it serves).
    fn refusal(&self, p: u16, phase: &Phase, customer: &[u8]) -> Option<Error> {
        match phase {
            Phase::Serving { .. } => None,
            Phase::CatchingUp => Some(Error::Redirect(format!(
                "TRYAGAIN partition {p} is catching up with its log"
            ))),
            Phase::NotOwned => Some(self.not_here(customer)),
            Phase::Broken(why) => Some(Error::Cluster(format!(
                "partition {p} cannot be served: {why}"
            ))),
        }
    }

    /// Queues a write for its partition's next round.
    fn submit_entry(self: &Arc<Self>, entry: Entry, reply: WriteReply) {
        let p = partition_of_slot(key_slot(entry.customer().as_bytes()), self.partitions);
        let mut part = self.parts[usize::from(p)].lock();
        if let Some(e) = self.refusal(p, &part.phase, entry.customer().as_bytes()) {
            drop(part);
            return reply.send(vec![Err(e)]);
        }
        part.queue.push((entry, reply));
        if !part.appending {
            part.appending = true;
            let (me, generation) = (Arc::clone(self), part.generation);
            self.handle.spawn(me.append_rounds(p, generation));
        }
    }

    /// Appends and applies the queued writes of partition `p`, a round at a time, until the
    /// queue is empty or the partition changes hands.
    fn append_rounds(self: Arc<Self>, p: u16, generation: u64) -> Task {
        Box::pin(async move { self.append_rounds_now(p, generation).await })
    }

    async fn append_rounds_now(self: Arc<Self>, p: u16, generation: u64) {
        loop {
            let (batch, last) = {
                let mut part = self.parts[usize::from(p)].lock();
                let last = match part.phase {
                    Phase::Serving { last } if part.generation == generation => last,
                    _ => {
                        part.appending = false;
                        return; // whoever changed the phase answered the queue
                    }
                };
                if part.queue.is_empty() {
                    part.appending = false;
                    return;
                }
                let n = part.queue.len().min(MAX_ROUND);
                (part.queue.drain(..n).collect::<Vec<_>>(), last)
            };
            let (entries, replies): (Vec<Entry>, Vec<WriteReply>) = batch.into_iter().unzip();
            let round = Round {
                node: self.view.id().to_owned(),
                entries,
            };
            match self.append(p, &round, last).await {
                Ok(seq) => {
                    let results = self.apply(p, seq, round.entries, false).await;
                    match results {
                        Ok(results) => {
                            {
                                let mut part = self.parts[usize::from(p)].lock();
                                if part.generation == generation {
                                    part.phase = Phase::Serving { last: seq };
                                }
                            }
                            for (reply, result) in replies.into_iter().zip(results) {
                                reply.send(vec![result]);
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                reply.send(vec![Err(e.clone())]);
                            }
                        }
                    }
                }
                Err(e) => {
                    // Someone appended since (a new owner), or the append's fate is unknown:
                    // catch up with the log before appending again.
                    for reply in replies {
                        reply.send(vec![Err(e.clone())]);
                    }
                    let mut part = self.parts[usize::from(p)].lock();
                    part.appending = false;
                    if part.generation == generation {
                        part.generation += 1;
                        part.phase = Phase::CatchingUp;
                        let (me, generation) = (Arc::clone(&self), part.generation);
                        self.handle.spawn(me.take_over(p, generation));
                    }
                    return;
                }
            }
        }
    }

    /// Publishes `round` to partition `p`'s stream if its last sequence is `last`; returns the
    /// round's sequence. A publication that times out is retried once with the same message id.
    async fn append(&self, p: u16, round: &Round, last: u64) -> Result<u64> {
        let payload = encode(round)?;
        let id = format!("{}:{p}:{last}", self.view.id());
        for attempt in 0..2 {
            let sent = tokio::time::timeout(
                CALL,
                self.js.send_publish(
                    self.subject(p),
                    PublishMessage::build()
                        .payload(payload.clone().into())
                        .message_id(id.as_str())
                        .expected_last_sequence(last),
                ),
            )
            .await;
            let ack = match sent {
                Ok(Ok(future)) => tokio::time::timeout(CALL, future).await,
                Ok(Err(e)) => {
                    return Err(Error::Cluster(format!(
                        "the write was not appended to partition {p}'s log: {e}"
                    )))
                }
                Err(_) => continue,
            };
            match ack {
                Ok(Ok(ack)) => return Ok(ack.sequence),
                Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    return Err(Error::Redirect(format!(
                        "TRYAGAIN partition {p} was written by another node; try again"
                    )))
                }
                Ok(Err(e)) if attempt == 0 && e.kind() == PublishErrorKind::TimedOut => continue,
                Ok(Err(e)) if e.kind() == PublishErrorKind::TimedOut => break,
                Ok(Err(e)) => {
                    return Err(Error::Cluster(format!(
                        "the write was not appended to partition {p}'s log: {e}"
                    )))
                }
                Err(_) => continue,
            }
        }
        Err(Error::Cluster(format!(
            "partition {p}'s log did not answer: the write may or may not be applied (retry \
             with an event id to be sure it is applied once)"
        )))
    }

    /// Applies round `seq` of partition `p` (unless it was applied already) with its position,
    /// in one commit; with `replay`, without the merged models learning it (another node did:
    /// `Item::Replay`). One result per entry.
    async fn apply(
        &self,
        p: u16,
        seq: u64,
        entries: Vec<Entry>,
        replay: bool,
    ) -> Result<Vec<Result<Ack>>> {
        let mut applied = self.applying[usize::from(p)].lock().await;
        if *applied == 0 {
            *applied = self.applied_position(p).await?;
        }
        if seq <= *applied {
            let n = entries.len();
            return Ok((0..n)
                .map(|_| {
                    Err(Error::Redirect(format!(
                        "TRYAGAIN round {seq} of partition {p} was applied already"
                    )))
                })
                .collect());
        }
        let db = self.db.clone();
        let items: Vec<Item> = entries.into_iter().map(Entry::into_item).collect();
        let results = tokio::task::spawn_blocking(move || {
            let mark = (keys::cluster_applied(p), seq.to_be_bytes().to_vec());
            db.apply_marked(items, mark, replay)
        })
        .await
        .map_err(|e| Error::Cluster(format!("applying a round: {e}")))??;
        *applied = seq;
        Ok(results)
    }

    /// The store's applied position in partition `p`'s log (0: none).
    async fn applied_position(&self, p: u16) -> Result<u64> {
        let db = self.db.clone();
        let stored = tokio::task::spawn_blocking(move || db.mark(&keys::cluster_applied(p)))
            .await
            .map_err(|e| Error::Cluster(format!("reading an applied position: {e}")))??;
        Ok(match stored {
            Some(bytes) => {
                let bytes: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                    Error::Cluster(format!(
                        "the applied position of partition {p} is {} bytes, not 8",
                        bytes.len()
                    ))
                })?;
                u64::from_be_bytes(bytes)
            }
            None => 0,
        })
    }

    /// Takes partition `p` over: applies its log after the store's position, fences it, and
    /// serves it; on an error, tries again after a pause while `generation` is current.
    fn take_over(self: Arc<Self>, p: u16, generation: u64) -> Task {
        Box::pin(async move { self.take_over_now(p, generation).await })
    }

    async fn take_over_now(self: Arc<Self>, p: u16, generation: u64) {
        loop {
            if self.parts[usize::from(p)].lock().generation != generation {
                return;
            }
            match self.catch_up(p).await {
                Ok(last) => {
                    let mut part = self.parts[usize::from(p)].lock();
                    if part.generation != generation {
                        return;
                    }
                    part.phase = Phase::Serving { last };
                    if !part.queue.is_empty() && !part.appending {
                        part.appending = true;
                        let me = Arc::clone(&self);
                        self.handle.spawn(me.append_rounds(p, generation));
                    }
                    return;
                }
                Err(CatchUp::NotOurs) => {
                    let part = self.parts[usize::from(p)].lock();
                    if part.generation == generation {
                        self.release(part);
                    }
                    return;
                }
                Err(CatchUp::Retry(e)) => {
                    tracing::warn!("cluster: taking partition {p} over: {e}; trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(CatchUp::Broken(why)) => {
                    tracing::error!("cluster: partition {p} cannot be served: {why}");
                    let mut part = self.parts[usize::from(p)].lock();
                    if part.generation == generation {
                        part.phase = Phase::Broken(why);
                        let queued = std::mem::take(&mut part.queue);
                        drop(part);
                        for (_, reply) in queued {
                            reply.send(vec![Err(Error::Cluster(format!(
                                "partition {p} cannot be served"
                            )))]);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Applies every round of partition `p` after the store's position, then appends a fence
    /// with the expectation of the last one; returns the fence's sequence.
    async fn catch_up(&self, p: u16) -> std::result::Result<u64, CatchUp> {
        let retry = |e: Error| CatchUp::Retry(e.to_string());
        let stream = tokio::time::timeout(
            CALL,
            self.js.get_or_create_stream(stream::Config {
                name: self.stream_name(p),
                subjects: vec![self.subject(p)],
                num_replicas: self.replicas,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| CatchUp::Retry("no answer creating the stream".into()))?
        .map_err(|e| CatchUp::Retry(format!("creating the stream: {e}")))?;
        loop {
            let mut applied = {
                let mut guard = self.applying[usize::from(p)].lock().await;
                *guard = self.applied_position(p).await.map_err(retry)?;
                *guard
            };
            let mut info = stream.clone();
            let state = tokio::time::timeout(CALL, info.info())
                .await
                .map_err(|_| CatchUp::Retry("no answer reading the stream".into()))?
                .map_err(|e| CatchUp::Retry(format!("reading the stream: {e}")))?
                .state
                .clone();
            if applied > state.last_sequence {
                // Seen while a JetStream cluster recovers from losing its majority: checked
                // again after a pause rather than refused for good. If it lasts, the log was
                // recreated or lost rounds, and the partition stays unserved, saying so.
                return Err(CatchUp::Retry(format!(
                    "the store applied round {applied} of partition {p}'s log, which ends at \
                     {} now: a recovering NATS cluster, or the log was recreated (a store of \
                     another cluster?) or lost acknowledged rounds (docs/cluster.md, \
                     \"Durability\")",
                    state.last_sequence
                )));
            }
            if applied < state.last_sequence {
                if state.messages > 0 && applied + 1 < state.first_sequence {
                    return Err(CatchUp::Broken(format!(
                        "the log starts at round {}, after this store's position {applied}",
                        state.first_sequence
                    )));
                }
                let consumer = stream
                    .create_consumer(OrderedConfig {
                        deliver_policy: DeliverPolicy::ByStartSequence {
                            start_sequence: applied + 1,
                        },
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| CatchUp::Retry(format!("reading the log: {e}")))?;
                let mut messages = consumer
                    .messages()
                    .await
                    .map_err(|e| CatchUp::Retry(format!("reading the log: {e}")))?;
                while applied < state.last_sequence {
                    let message = match tokio::time::timeout(CALL, messages.next()).await {
                        Ok(Some(Ok(m))) => m,
                        Ok(Some(Err(e))) => {
                            return Err(CatchUp::Retry(format!("reading the log: {e}")))
                        }
                        Ok(None) | Err(_) => {
                            return Err(CatchUp::Retry("the log stopped answering".into()))
                        }
                    };
                    let seq = message
                        .info()
                        .map_err(|e| CatchUp::Retry(format!("a log message: {e}")))?
                        .stream_sequence;
                    let round = decode(&message.payload).map_err(|e| {
                        CatchUp::Broken(format!("round {seq} does not decode: {e}"))
                    })?;
                    // Each entry's own refusal was answered when it was appended. A round
                    // another node appended, it applied and its models learned (unless it
                    // died in between: docs/cluster.md); one this node appended and did not
                    // apply (it stopped in between), no model learned yet.
                    let replay = round.node != self.view.id();
                    self.apply(p, seq, round.entries, replay)
                        .await
                        .map_err(retry)?;
                    applied = seq;
                }
            }
            // Only the partition's owner in the latest agreed map fences it (this node's view
            // may be a tick behind: two fencing owners would take turns).
            let map = read_map(&self.ctl, &self.ctl_subject)
                .await
                .map_err(retry)?;
            let ours = map
                .as_ref()
                .and_then(|m| m.owner_of_partition(p))
                .is_some_and(|m| m.id == self.view.id());
            if !ours {
                return Err(CatchUp::NotOurs);
            }
            // Fence: nobody appends after an earlier position from now on.
            let fence = Round {
                node: self.view.id().to_owned(),
                entries: Vec::new(),
            };
            match self.append(p, &fence, state.last_sequence).await {
                Ok(seq) => {
                    self.apply(p, seq, Vec::new(), false).await.map_err(retry)?;
                    return Ok(seq);
                }
                // Appended to since: catch up again.
                Err(Error::Redirect(_)) => continue,
                Err(e) => return Err(retry(e)),
            }
        }
    }
}

/// The last message of `subject` in `stream` (None: there is none yet); `what` names it in
/// errors.
pub(super) async fn last_message(
    stream: &stream::Stream,
    subject: &str,
    what: &str,
) -> Result<Option<async_nats::jetstream::message::StreamMessage>> {
    let got = tokio::time::timeout(CALL, stream.get_last_raw_message_by_subject(subject))
        .await
        .map_err(|_| Error::Cluster(format!("reading {what}: no answer")))?;
    match got {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(Error::Cluster(format!("reading {what}: {e}"))),
    }
}

/// The latest map of the control stream `ctl` (subject `subject`), with its epoch; None before
/// the first.
pub(super) async fn read_map(
    ctl: &stream::Stream,
    subject: &str,
) -> Result<Option<super::map::ClusterMap>> {
    let Some(message) = last_message(ctl, subject, "the map").await? else {
        return Ok(None);
    };
    let mut map: super::map::ClusterMap =
        serde_json::from_slice(&message.payload).map_err(|e| {
            Error::Cluster(format!(
                "the map at sequence {} of the control stream is not readable: {e}",
                message.sequence
            ))
        })?;
    map.validate().map_err(|e| {
        Error::Cluster(format!(
            "the map at sequence {} of the control stream is invalid: {e}",
            message.sequence
        ))
    })?;
    map.epoch = message.sequence;
    Ok(Some(map))
}

/// Why a catch-up stopped.
enum CatchUp {
    /// Try again (NATS did not answer, the store is busy).
    Retry(String),
    /// The latest map gives the partition to another node: stop (the map will reach this
    /// node's view at its next tick).
    NotOurs,
    /// The log cannot be applied: the partition is refused until an operator looks.
    Broken(String),
}

impl Writes for Arc<Log> {
    fn submit(&self, item: Item, reply: WriteReply) {
        let entry = match item {
            Item::Event(e) => Entry::Event(e),
            Item::SetAttributes { customer, attrs } => Entry::Set { customer, attrs },
            Item::Feedback {
                customer,
                action,
                converted,
                id,
                segment,
            } => Entry::Feedback {
                customer,
                action,
                converted,
                id,
                segment,
            },
            Item::Mark { .. } | Item::Replay => {
                return reply.send(vec![Err(Error::Cluster(
                    "a position or replay marker is not a write of the partition log".into(),
                ))])
            }
        };
        self.submit_entry(entry, reply);
    }

    fn ready(&self, key: &[u8]) -> Result<()> {
        let p = partition_of_slot(key_slot(key), self.partitions);
        let phase = self.parts[usize::from(p)].lock().phase.clone();
        match self.refusal(p, &phase, key) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_round_trip_and_bad_bytes_are_an_error() {
        let round = Round {
            node: "n".into(),
            entries: vec![
                Entry::Event(Event::new("c1", 1, crate::EventKind::Click)),
                Entry::Set {
                    customer: "c2".into(),
                    attrs: vec![("plan".into(), AttrValue::Text("pro".into()))],
                },
            ],
        };
        let bytes = encode(&round).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.entries.len(), 2);
        assert_eq!(back.entries[0].customer(), "c1");
        assert_eq!(back.entries[1].customer(), "c2");
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode(&[0xff; 7]).is_err());
    }
}
