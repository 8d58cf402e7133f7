//! The cluster's global model (feature `cluster`): what each node learns is merged into one
//! model that every node serves (`docs/cluster.md`, "The global models").
//!
//! - **Deltas.** Every tick (a second), a node *cuts* what its models learned since its last
//!   cut ([`Delta::between`]) and publishes it to the stream `PERSONA_NAME_MODEL_DELTAS`
//!   (kept an hour), with a message id, so a publication retried after a lost answer is
//!   taken once.
//! - **The merge.** The *controller*, the member with the smallest id in the agreed map, adds
//!   every delta after the last merged version's (by stream sequence, so each delta is merged
//!   once, whoever merges) to that version and publishes the result to the one-subject stream
//!   `PERSONA_NAME_MODEL`, expecting its last sequence to be that version's: of two nodes that
//!   both think they are the controller (a map changing hands), one wins. A version's stream
//!   sequence is its number.
//! - **Adopting.** A node that sees a newer version installs it, plus the deltas it sent that
//!   the version does not include yet, plus what it learned since its last cut
//!   ([`Adoption`]), through its writer, in one commit; its watermark moves up to the
//!   cluster's. A node that learned nothing since then serves the version exactly, so after
//!   quiescence every node serves the same parameters (same checksum in its heartbeat).
//! - **A node (re)starting** adopts the latest version as it is: what it learned in its last
//!   second before a crash, not yet cut, is not in the merged model (its events are in the
//!   store and the log).

use super::identity::random_hex;
use super::log::last_message;
use super::node::bounded;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::model::merge::{Adoption, Delta, Global, Learned};
use async_nats::jetstream::{
    context::{GetStreamErrorKind, PublishErrorKind},
    message::PublishMessage,
    stream, Context, ErrorCode,
};
use serde::{Deserialize, Serialize};
use std::future::IntoFuture;
use std::time::Duration;

/// Bound on each NATS call.
const CALL: Duration = Duration::from_secs(5);
/// How long the deltas stream keeps a delta: a merge must run within it.
const DELTA_AGE: Duration = Duration::from_secs(3600);
/// Most deltas one merge takes in (the next merge takes the rest).
const MERGE_BATCH: u64 = 256;
/// Largest version or delta decoded, in bytes.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE>()
}

/// What a node reports of its model in its heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelBeat {
    /// The global model version it adopted last (0: none yet).
    pub version: u64,
    /// The checksum of the merged parameters it serves (16 hex digits).
    pub checksum: String,
}

/// A delta as published: who learned it.
#[derive(Serialize, Deserialize)]
struct Published {
    node: String,
    delta: Delta,
}

/// A node's side of the global model.
pub(super) struct Models {
    js: Context,
    deltas: stream::Stream,
    global: stream::Stream,
    delta_subject: String,
    global_subject: String,
    node: String,
    /// Tells this process's deltas from those of the node's earlier runs, in message ids.
    boot: String,
    db: Db,
    /// What the node's parameters are accounted for by (the version adopted, plus the deltas
    /// sent since); None before the first sync.
    anchor: Option<Learned>,
    /// Deltas published, with their stream sequence, not in the adopted version.
    inflight: Vec<(u64, Delta)>,
    /// A cut delta whose publication got no answer: published again with the same id.
    unsent: Option<(String, Delta)>,
    cuts: u64,
    /// The version adopted last (0: none).
    adopted: u64,
}

impl Models {
    /// Opens (or creates) the cluster `name`'s model streams for node `node` over `db`.
    pub(super) async fn open(
        js: Context,
        name: &str,
        replicas: usize,
        node: &str,
        db: Db,
    ) -> Result<Models> {
        let delta_subject = format!("persona.{name}.model.delta");
        let global_subject = format!("persona.{name}.model");
        let create = |stream_name: String, subject: &str, max_age: Duration, max: i64| {
            js.get_or_create_stream(stream::Config {
                name: stream_name,
                subjects: vec![subject.to_owned()],
                num_replicas: replicas,
                storage: stream::StorageType::File,
                max_age,
                max_messages: max,
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            })
        };
        let deltas = bounded(
            "creating the model deltas stream",
            CALL,
            create(
                format!("PERSONA_{name}_MODEL_DELTAS"),
                &delta_subject,
                DELTA_AGE,
                -1,
            ),
        )
        .await?;
        let global = bounded(
            "creating the model stream",
            CALL,
            create(
                format!("PERSONA_{name}_MODEL"),
                &global_subject,
                Duration::ZERO,
                16,
            ),
        )
        .await?;
        Ok(Models {
            js,
            deltas,
            global,
            delta_subject,
            global_subject,
            node: node.to_owned(),
            boot: random_hex()[..8].to_owned(),
            db,
            anchor: None,
            inflight: Vec::new(),
            unsent: None,
            cuts: 0,
            adopted: 0,
        })
    }

    /// The version adopted and the checksum of the parameters served now.
    pub(super) fn beat(&self) -> ModelBeat {
        ModelBeat {
            version: self.adopted,
            checksum: format!("{:016x}", Learned::of(&self.db.model()).checksum()),
        }
    }

    /// One tick: cut and publish what was learned, merge if this node is the controller
    /// (`members`: the agreed map's), adopt a newer version.
    ///
    /// # Errors
    /// [`Error::Cluster`] when NATS does not answer or a version cannot be read or adopted;
    /// the next tick tries again (nothing is lost: a cut delta is kept until published).
    pub(super) async fn sync(&mut self, controller: bool, members: &[String]) -> Result<()> {
        if self.anchor.is_none() {
            self.start().await?;
        }
        self.publish().await?;
        if controller {
            self.merge(members).await?;
        }
        self.adopt().await
    }

    /// Publishes what the node learned since its last cut, and a delta still unsent.
    pub(super) async fn publish(&mut self) -> Result<()> {
        let Some(anchor) = &self.anchor else {
            return Ok(());
        };
        if self.unsent.is_none() {
            let model = self.db.model();
            let now = Learned::of(&model);
            if now != *anchor {
                let weight = model.metrics.examples() as f64;
                let delta = Delta::between(&now, anchor, weight, model.watermark_ms);
                self.cuts += 1;
                let id = format!("{}:{}:{}", self.node, self.boot, self.cuts);
                self.unsent = Some((id, delta));
                self.anchor = Some(now);
            }
        }
        let Some((id, delta)) = &self.unsent else {
            return Ok(());
        };
        let published = Published {
            node: self.node.clone(),
            delta: delta.clone(),
        };
        let payload = bincode::serde::encode_to_vec(&published, codec())
            .map_err(|e| Error::Cluster(format!("encoding a model delta: {e}")))?;
        let sent = bounded(
            "publishing a model delta",
            CALL,
            self.js.send_publish(
                self.delta_subject.clone(),
                PublishMessage::build()
                    .payload(payload.into())
                    .message_id(id.as_str()),
            ),
        )
        .await?;
        let ack = bounded("publishing a model delta", CALL, sent.into_future()).await?;
        if let Some((_, delta)) = self.unsent.take() {
            self.inflight.push((ack.sequence, delta));
        }
        Ok(())
    }

    /// The first sync: adopts the latest version as it is, or (none yet) counts everything the
    /// node learned as its first delta.
    async fn start(&mut self) -> Result<()> {
        let now = Learned::of(&self.db.model());
        match self.latest().await? {
            Some((version, global)) => {
                self.install(now, global.learned.clone(), &global, version)
                    .await?
            }
            None => self.anchor = Some(now.zero_like()),
        }
        Ok(())
    }

    /// Installs `after` in place of `before` (see [`Adoption`]) and records version `version`.
    async fn install(
        &mut self,
        before: Learned,
        after: Learned,
        global: &Global,
        version: u64,
    ) -> Result<()> {
        let adoption = Adoption {
            before,
            after: after.clone(),
            watermark_ms: global.watermark_ms,
        };
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.adopt_model(adoption))
            .await
            .map_err(|e| Error::Cluster(format!("adopting the merged model: {e}")))??;
        self.anchor = Some(after);
        self.adopted = version;
        Ok(())
    }

    /// Adopts the latest version if it is newer than the one adopted.
    async fn adopt(&mut self) -> Result<()> {
        let Some((version, global)) = self.latest().await? else {
            return Ok(());
        };
        if version <= self.adopted {
            return Ok(());
        }
        let Some(before) = self.anchor.clone() else {
            return Ok(());
        };
        self.inflight
            .retain(|(seq, _)| *seq > global.deltas_through);
        let mut after = global.learned.clone();
        for (_, d) in &self.inflight {
            after = after.with(d);
        }
        if let Some((_, d)) = &self.unsent {
            after = after.with(d);
        }
        self.install(before, after, &global, version).await
    }

    /// The controller's merge: the deltas after the latest version's, added to it, published
    /// as the next version unless another node published one first.
    async fn merge(&self, members: &[String]) -> Result<()> {
        let latest = self.latest().await?;
        let (version, base) = match latest {
            Some((v, g)) => (v, g),
            None => (0, Global::empty(&Learned::of(&self.db.model()))),
        };
        let mut info = self.deltas.clone();
        let last = bounded("reading the model deltas stream", CALL, info.info())
            .await?
            .state
            .last_sequence;
        if last <= base.deltas_through {
            return Ok(());
        }
        let through = last.min(base.deltas_through + MERGE_BATCH);
        let mut deltas = Vec::new();
        for seq in base.deltas_through + 1..=through {
            let got = tokio::time::timeout(CALL, self.deltas.get_raw_message(seq)).await;
            let message = match got {
                Ok(Ok(m)) => m,
                Ok(Err(e)) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {
                    tracing::warn!(
                        "cluster: model delta {seq} is gone (older than the deltas stream \
                         keeps): what it held is not in the merged model"
                    );
                    continue;
                }
                Ok(Err(e)) => {
                    return Err(Error::Cluster(format!("reading model delta {seq}: {e}")))
                }
                Err(_) => {
                    return Err(Error::Cluster(format!(
                        "reading model delta {seq}: no answer from NATS within {CALL:?}"
                    )))
                }
            };
            match bincode::serde::decode_from_slice::<Published, _>(&message.payload, codec()) {
                Ok((p, used)) if used == message.payload.len() => deltas.push((p.node, p.delta)),
                _ => tracing::warn!("cluster: model delta {seq} does not decode; left out"),
            }
        }
        let (next, refused) = base.merge(&deltas, through, members);
        for why in refused {
            tracing::warn!("cluster: {why}; left out of the merged model");
        }
        let payload = bincode::serde::encode_to_vec(&next, codec())
            .map_err(|e| Error::Cluster(format!("encoding the merged model: {e}")))?;
        let sent = bounded(
            "publishing the merged model",
            CALL,
            self.js.send_publish(
                self.global_subject.clone(),
                PublishMessage::build()
                    .payload(payload.into())
                    .expected_last_sequence(version),
            ),
        )
        .await?;
        match tokio::time::timeout(CALL, sent).await {
            Ok(Ok(_)) => Ok(()),
            // Another node merged first: its version is the next one.
            Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(()),
            Ok(Err(e)) => Err(Error::Cluster(format!("publishing the merged model: {e}"))),
            Err(_) => Err(Error::Cluster(
                "publishing the merged model: no answer".into(),
            )),
        }
    }

    /// The latest version and its number; None before the first merge.
    async fn latest(&self) -> Result<Option<(u64, Global)>> {
        latest_version(&self.global, &self.global_subject).await
    }
}

/// What the model task needs to open the model streams.
pub(super) struct Setup {
    /// The JetStream context.
    pub js: Context,
    /// The cluster's name.
    pub name: String,
    /// Stream replicas.
    pub replicas: usize,
    /// The store.
    pub db: Db,
    /// How often a node syncs (its heartbeat period).
    pub period: Duration,
}

/// The node's model task: opens the model streams and syncs every `period`, on its own (a
/// NATS call that hangs here must not delay the heartbeats), until `stop`; then publishes what
/// was learned since the last sync. `started` is told after the first sync that succeeds; `beat`
/// holds what the node heartbeats of its model.
pub(super) async fn run(
    setup: Setup,
    view: std::sync::Arc<super::map::ClusterView>,
    started: tokio::sync::oneshot::Sender<()>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    beat: std::sync::Arc<parking_lot::Mutex<Option<ModelBeat>>>,
) {
    let mut started = Some(started);
    let mut models: Option<Models> = None;
    let mut ticks = tokio::time::interval(setup.period);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {}
        }
        if models.is_none() {
            let (js, db) = (setup.js.clone(), setup.db.clone());
            match Models::open(js, &setup.name, setup.replicas, view.id(), db).await {
                Ok(m) => models = Some(m),
                Err(e) => {
                    tracing::warn!("cluster: the merged model: {e}");
                    continue;
                }
            }
        }
        let Some(m) = models.as_mut() else { continue };
        let members: Vec<String> = view
            .map()
            .map(|map| map.members.iter().map(|m| m.id.clone()).collect())
            .unwrap_or_default();
        let controller = members.iter().min().is_some_and(|id| id == view.id());
        match m.sync(controller, &members).await {
            Ok(()) => {
                if let Some(s) = started.take() {
                    let _ = s.send(());
                }
            }
            Err(e) => tracing::warn!("cluster: the merged model: {e}"),
        }
        *beat.lock() = Some(m.beat());
    }
    // What the models learned since the last sync goes out before the node does.
    if let Some(m) = models.as_mut() {
        if let Err(e) = m.publish().await {
            tracing::warn!("cluster: the last model delta was not published: {e}");
        }
    }
}

/// The latest version of the model stream `global` (subject `subject`) and its number.
pub(super) async fn latest_version(
    global: &stream::Stream,
    subject: &str,
) -> Result<Option<(u64, Global)>> {
    let Some(message) = last_message(global, subject, "the merged model").await? else {
        return Ok(None);
    };
    match bincode::serde::decode_from_slice::<Global, _>(&message.payload, codec()) {
        Ok((g, used)) if used == message.payload.len() => Ok(Some((message.sequence, g))),
        Ok(_) => Err(Error::Cluster(format!(
            "the merged model version {} has trailing bytes",
            message.sequence
        ))),
        Err(e) => Err(Error::Cluster(format!(
            "the merged model version {} does not decode: {e}",
            message.sequence
        ))),
    }
}

/// The latest merged model version of cluster `name` (0: none yet), without creating
/// anything.
pub(super) async fn model_version(js: &Context, name: &str) -> Result<u64> {
    let got = tokio::time::timeout(CALL, js.get_stream(format!("PERSONA_{name}_MODEL"))).await;
    let global = match got {
        Ok(Ok(s)) => s,
        Ok(Err(e))
            if matches!(e.kind(), GetStreamErrorKind::JetStream(j)
                if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            return Ok(0)
        }
        Ok(Err(e)) => return Err(Error::Cluster(format!("reading the model stream: {e}"))),
        Err(_) => return Err(Error::Cluster("reading the model stream: no answer".into())),
    };
    let subject = format!("persona.{name}.model");
    let last = last_message(&global, &subject, "the merged model").await?;
    Ok(last.map_or(0, |m| m.sequence))
}
