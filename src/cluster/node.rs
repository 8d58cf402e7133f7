//! A cluster node's agent (feature `cluster`): joins the cluster through NATS JetStream,
//! heartbeats, agrees the partition → owner map with the other nodes, and keeps the node's
//! [`ClusterView`] on the latest map.
//!
//! What goes through JetStream (names for a cluster called `NAME`):
//! - **Membership**: the key-value bucket `persona_NAME_members`, one key per node id, its value
//!   the node's address and partition count, rewritten every heartbeat; the bucket's `max_age`
//!   is the liveness timeout, so a node that stops heartbeating drops out of it.
//! - **The map**: the stream `PERSONA_NAME_CTL` with the one subject `persona.NAME.ctl`, each
//!   message a whole map. A node that sees a map whose members differ from the live ones
//!   computes the rendezvous assignment over the live members and publishes it with
//!   `Nats-Expected-Last-Sequence` = the sequence of the map it computed from: of nodes racing
//!   on the same map exactly one wins (the server checks it when it applies the message; the
//!   measurement is in `docs/cluster.md`), the others read the winner's. The stream sequence is
//!   the map's epoch.
//!
//! The agent runs on a thread of its own with a single-threaded tokio runtime; the RESP server
//! only reads the view.

use super::ask;
use super::identity::{random_hex, Identity, IDENTITY_FILE};
use super::log::{read_map, Log};
use super::map::{ClusterMap, ClusterView, Member};
use super::models::{self, ModelBeat};
use super::slots::MAX_PARTITIONS;
use crate::error::{Error, Result};
use async_nats::jetstream::{
    self, context::PublishErrorKind, kv, message::PublishMessage, stream, Context,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How a node joins its cluster.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// NATS server URLs (`nats://host:port`), any of the cluster's.
    pub urls: Vec<String>,
    /// The cluster's name: 1 to 32 ASCII letters, digits, `_` or `-`. Default `persona`.
    pub name: String,
    /// The `host:port` clients reach this node's RESP server at.
    pub advertise: String,
    /// The partition count: the cluster's must be the same (fixed when its first node starts).
    /// Default 64.
    pub partitions: u16,
    /// Replicas of the cluster's streams (at most the JetStream servers there are). Default 1.
    pub replicas: usize,
    /// The node's data directory: its identity (`cluster.json`: node id, cluster name and id) is kept there.
    pub data_dir: PathBuf,
    /// How often the node heartbeats and checks the map. Default 1 s.
    pub heartbeat: Duration,
    /// A node that has not heartbeat for this long is no longer a member. Default 5 s.
    pub liveness: Duration,
    /// How long joining may take before it fails. Default 15 s.
    pub join_timeout: Duration,
}

impl NodeConfig {
    /// The defaults for a node advertising `advertise`, storing in `data_dir`, reaching NATS at
    /// `urls`.
    pub fn new(urls: Vec<String>, advertise: &str, data_dir: &Path) -> Self {
        NodeConfig {
            urls,
            name: "persona".to_owned(),
            advertise: advertise.to_owned(),
            partitions: 64,
            replicas: 1,
            data_dir: data_dir.to_owned(),
            heartbeat: Duration::from_secs(1),
            liveness: Duration::from_secs(5),
            join_timeout: Duration::from_secs(15),
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        if self.urls.is_empty() {
            return bad("cluster: no NATS URL given (`--cluster nats://HOST:PORT[,…]`)".into());
        }
        if self.name.is_empty()
            || self.name.len() > 32
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return bad(format!(
                "cluster name {:?}: 1 to 32 ASCII letters, digits, `_` or `-` are allowed",
                self.name
            ));
        }
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return bad(format!(
                "partitions = {}: 1 to {MAX_PARTITIONS} are allowed",
                self.partitions
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return bad(format!(
                "replicas = {}: 1 to 5 are allowed (JetStream's limit)",
                self.replicas
            ));
        }
        if self.advertise.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!(
                "advertise address {:?}: an IP address and port are required (`127.0.0.1:7001`), \
                 as Redis Cluster clients connect to what it says",
                self.advertise
            ));
        }
        if self.liveness <= self.heartbeat {
            return bad("the liveness timeout must be longer than the heartbeat".into());
        }
        Ok(())
    }

    fn stream(&self) -> String {
        format!("PERSONA_{}_CTL", self.name)
    }

    fn subject(&self) -> String {
        format!("persona.{}.ctl", self.name)
    }

    fn bucket(&self) -> String {
        format!("persona_{}_members", self.name)
    }
}

/// What a node heartbeats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Beat {
    addr: String,
    partitions: u16,
    /// The merged model it serves (none before a store is attached).
    #[serde(default)]
    pub(super) model: Option<ModelBeat>,
}

/// A joined node: its view of the map, kept current by the agent thread until [`Node::leave`].
pub struct Node {
    view: Arc<ClusterView>,
    stop: Option<oneshot::Sender<()>>,
    attach: tokio::sync::mpsc::UnboundedSender<crate::Db>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.view.id()).finish()
    }
}

impl Node {
    /// Joins the cluster: checks the setup, heartbeats, and returns once a map that lists this
    /// node is installed (or fails after [`NodeConfig::join_timeout`]).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration; [`Error::Cluster`] when NATS cannot be
    /// reached, JetStream is not enabled there, the cluster has another partition count, the
    /// store belonged to another cluster, another live node advertises the same address, or
    /// no map listing this node was agreed in time. Nothing is changed then (no heartbeat is
    /// left behind).
    pub fn join(config: NodeConfig) -> Result<Node> {
        config.validate()?;
        let identity = Identity::load_or_new(&config.data_dir, &config.name)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Arc<ClusterView>>>();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (attach_tx, attach_rx) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("persona-cluster".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Io(e)));
                        return;
                    }
                };
                runtime.block_on(run(config, identity, ready_tx, stop_rx, attach_rx));
                // Rounds being applied end once the store closes (`PendingWrite::wait_open`).
                runtime.shutdown_timeout(Duration::from_secs(5));
            })?;
        let joined = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(Error::Cluster("the cluster agent stopped".into())));
        match joined {
            Ok(view) => Ok(Node {
                view,
                stop: Some(stop_tx),
                attach: attach_tx,
                thread: Some(thread),
            }),
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    /// The node's view of the cluster, for [`crate::ServerConfig::cluster`].
    pub fn view(&self) -> Arc<ClusterView> {
        Arc::clone(&self.view)
    }

    /// Starts the partition log over `db`, the node's store: from now on the events and
    /// attributes the node's RESP server receives go through their partition's log
    /// (`log.rs`), and the partitions the map gives this node are caught up with theirs.
    ///
    /// # Errors
    /// [`Error::Cluster`] if the node's agent has stopped.
    pub fn attach(&self, db: crate::Db) -> Result<()> {
        self.attach
            .send(db)
            .map_err(|_| Error::Cluster("the cluster agent stopped".into()))
    }

    /// Leaves the cluster: removes this node's heartbeat and publishes a map without it, so its
    /// partitions move at once instead of after the liveness timeout.
    pub fn leave(mut self) {
        self.stop_agent();
    }

    fn stop_agent(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_agent();
    }
}

/// The connection and handles an agent works with.
pub(super) struct Agent {
    pub(super) config: NodeConfig,
    identity: Identity,
    pub(super) js: Context,
    members: kv::Store,
    ctl: stream::Stream,
    view: Arc<ClusterView>,
    /// The partition log, once a store is attached.
    log: Option<Arc<Log>>,
    /// What the node's model task reports for the heartbeat (`models.rs`).
    model_beat: Arc<parking_lot::Mutex<Option<ModelBeat>>>,
    /// The model task, once a store is attached: its stop signal and handle.
    models: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

/// Why a heartbeat and map check did not complete.
enum Tick {
    /// The cluster refuses this node (another partition count, another cluster).
    Refused(Error),
    /// A NATS call failed: try again at the next tick.
    Failed(Error),
}

impl From<Error> for Tick {
    fn from(e: Error) -> Tick {
        Tick::Failed(e)
    }
}

impl std::fmt::Display for Tick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tick::Refused(e) | Tick::Failed(e) => e.fmt(f),
        }
    }
}

/// Bounds every NATS call: a server that stops answering must not hang a node.
pub(super) async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    limit: Duration,
    f: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Cluster(format!("{what}: {e}"))),
        Err(_) => Err(Error::Cluster(format!(
            "{what}: no answer from NATS within {limit:?}"
        ))),
    }
}

const CALL: Duration = Duration::from_secs(5);

async fn run(
    config: NodeConfig,
    identity: Identity,
    ready: std::sync::mpsc::Sender<Result<Arc<ClusterView>>>,
    mut stop: oneshot::Receiver<()>,
    mut attach: tokio::sync::mpsc::UnboundedReceiver<crate::Db>,
) {
    let mut agent = match Agent::connect(config, identity).await {
        Ok(a) => a,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if let Err(e) = agent.join().await {
        agent.withdraw().await;
        let _ = ready.send(Err(e));
        return;
    }
    let _ = ready.send(Ok(Arc::clone(&agent.view)));
    let mut ticks = tokio::time::interval(agent.config.heartbeat);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(db) = attach.recv(), if agent.log.is_none() => {
                // The merged model first, before any write reaches the store: a first
                // adoption takes the latest version as it is (`models.rs`).
                agent.start_models(db.clone()).await;
                let log = Log::new(
                    agent.js.clone(),
                    (agent.ctl.clone(), agent.config.subject()),
                    db.clone(),
                    Arc::clone(&agent.view),
                    &agent.config.name,
                    agent.config.replicas,
                    agent.config.partitions,
                    tokio::runtime::Handle::current(),
                );
                agent.view.set_writes(Arc::new(Arc::clone(&log)));
                log.follow_map();
                agent.log = Some(log);
                let client = agent.js.client();
                let name = agent.config.name.clone();
                let asks = ask::NatsAsks::new(client.clone(), tokio::runtime::Handle::current(), &name);
                agent.view.set_asks(Arc::new(asks));
                if let Err(e) = ask::serve(client, &name, Arc::clone(&agent.view), db).await {
                    tracing::warn!("cluster: this node will not answer the others' questions: {e}");
                }
            }
            _ = ticks.tick() => {
                if let Err(e) = agent.tick().await {
                    tracing::warn!("cluster: {e}");
                }
                if let Some(log) = &agent.log {
                    log.follow_map();
                }
            }
        }
    }
    // What the models learned since the last sync goes out before the node does.
    if let Some((stop, task)) = agent.models.take() {
        let _ = stop.send(());
        let _ = tokio::time::timeout(2 * CALL, task).await;
    }
    agent.withdraw().await;
    agent.hand_over().await;
}

impl Agent {
    pub(super) async fn connect(config: NodeConfig, identity: Identity) -> Result<Agent> {
        let urls = config.urls.join(",");
        let client = bounded(
            &format!("cannot reach NATS at {urls}"),
            CALL,
            async_nats::ConnectOptions::new()
                .name(format!("persona-node-{}", identity.node_id))
                .connection_timeout(CALL)
                .connect(config.urls.clone()),
        )
        .await?;
        let js = jetstream::new(client);
        // A JetStream cluster that is still electing its leaders answers "temporarily
        // unavailable" or not at all for a moment: tried again until the join's deadline. A
        // server without JetStream is refused at once.
        let deadline = tokio::time::Instant::now() + config.join_timeout;
        let (ctl, members) = loop {
            match open_streams(&js, &config).await {
                Ok(opened) => break opened,
                Err(e) => {
                    let m = e.to_string();
                    if (m.contains("unavailable") || m.contains("not enabled"))
                        && !m.contains("temporarily")
                    {
                        return Err(Error::Cluster(format!(
                            "JetStream is not enabled on the NATS server at {urls}: start \
                             nats-server with `-js` (or a `jetstream {{}}` block in its \
                             configuration)"
                        )));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        let view = Arc::new(ClusterView::new(&identity.node_id, &config.advertise));
        Ok(Agent {
            config,
            identity,
            js,
            members,
            ctl,
            view,
            log: None,
            model_beat: Arc::default(),
            models: None,
        })
    }

    /// Starts the model task over `db` (`models.rs`) and waits, up to the join timeout,
    /// for its first sync.
    async fn start_models(&mut self, db: crate::Db) {
        let setup = models::Setup {
            js: self.js.clone(),
            name: self.config.name.clone(),
            replicas: self.config.replicas,
            db,
            period: self.config.heartbeat,
        };
        let (started_tx, started) = oneshot::channel();
        let (stop_tx, stop) = oneshot::channel();
        let view = Arc::clone(&self.view);
        let beat = Arc::clone(&self.model_beat);
        let task = tokio::spawn(models::run(setup, view, started_tx, stop, beat));
        self.models = Some((stop_tx, task));
        if tokio::time::timeout(self.config.join_timeout, started)
            .await
            .is_err()
        {
            tracing::warn!(
                "cluster: the merged model is not synced yet; this node serves writes anyway"
            );
        }
    }

    /// The checks before a first heartbeat, then heartbeats until a map lists this node.
    async fn join(&mut self) -> Result<()> {
        if let Some(map) = self.current().await? {
            self.check_compatible(&map)?;
        }
        let live = self.live().await?;
        if let Some(other) = live
            .iter()
            .find(|m| m.addr == self.config.advertise && m.id != self.identity.node_id)
        {
            return Err(Error::Cluster(format!(
                "the address {} is advertised by the live node {} already: give each node its \
                 own --advertise address",
                other.addr, other.id
            )));
        }
        let deadline = tokio::time::Instant::now() + self.config.join_timeout;
        let mut failed = None;
        loop {
            // A cluster that refuses this node ends the join; a NATS call that fails (a
            // stream just created on a JetStream cluster may not take messages for a moment)
            // is tried again until the deadline.
            match self.tick().await {
                Ok(()) => {}
                Err(Tick::Refused(e)) => return Err(e),
                Err(Tick::Failed(e)) => failed = Some(e),
            }
            if let Some(map) = self.view.map() {
                if map.members.iter().any(|m| m.id == self.identity.node_id) {
                    if self.identity.cluster_id.as_deref() != Some(map.cluster_id.as_str()) {
                        self.identity.cluster_id = Some(map.cluster_id.clone());
                        self.identity.save(&self.config.data_dir)?;
                    }
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed.unwrap_or_else(|| {
                    Error::Cluster(format!(
                        "no map listing this node was agreed within {:?}",
                        self.config.join_timeout
                    ))
                }));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Refuses a cluster this node cannot be part of.
    fn check_compatible(&self, map: &ClusterMap) -> Result<()> {
        if map.partitions != self.config.partitions {
            return Err(Error::Cluster(format!(
                "this node was started with {} partitions, the cluster {:?} has {}: the count \
                 is fixed when a cluster is created",
                self.config.partitions, self.config.name, map.partitions
            )));
        }
        if let Some(id) = &self.identity.cluster_id {
            if *id != map.cluster_id {
                return Err(Error::Cluster(format!(
                    "the store at {} belonged to another cluster (id {id}), not to the cluster \
                     {:?} running now (id {}): use another data directory",
                    self.config.data_dir.display(),
                    self.config.name,
                    map.cluster_id
                )));
            }
        }
        Ok(())
    }

    /// One heartbeat, then the map: proposes a new one if its members are not the live ones,
    /// and installs the latest.
    async fn tick(&mut self) -> std::result::Result<(), Tick> {
        let beat = Beat {
            addr: self.config.advertise.clone(),
            partitions: self.config.partitions,
            model: self.model_beat.lock().clone(),
        };
        let value = serde_json::to_vec(&beat).map_err(|e| Error::Cluster(e.to_string()))?;
        bounded(
            "heartbeat",
            CALL,
            self.members.put(&self.identity.node_id, value.into()),
        )
        .await?;
        let live = self.live().await?;
        let current = self.current().await?;
        if let Some(map) = &current {
            self.check_compatible(map).map_err(Tick::Refused)?;
        }
        if let (None, Some(id)) = (&current, &self.identity.cluster_id) {
            return Err(Tick::Refused(Error::Cluster(format!(
                "the store at {} belonged to another cluster (id {id}); these NATS servers have \
                 no cluster {:?}, so this node would found a new one: use another data \
                 directory (or remove {} to let this store found a new cluster)",
                self.config.data_dir.display(),
                self.config.name,
                self.config.data_dir.join(IDENTITY_FILE).display()
            ))));
        }
        let stale = current.as_ref().is_none_or(|m| !m.has_members(&live));
        if stale {
            let cluster_id = current
                .as_ref()
                .map_or_else(random_hex, |m| m.cluster_id.clone());
            let expected = current.as_ref().map_or(0, |m| m.epoch);
            let proposed = ClusterMap::assign(
                &self.config.name,
                &cluster_id,
                self.config.partitions,
                &live,
            );
            self.propose(proposed, expected).await?;
        } else if let Some(map) = current {
            self.view.install(map);
        }
        Ok(())
    }

    /// Publishes `map` if the control stream's last sequence is still `expected`; installs
    /// whichever map won.
    async fn propose(&self, mut map: ClusterMap, expected: u64) -> Result<()> {
        let payload = serde_json::to_vec(&map).map_err(|e| Error::Cluster(e.to_string()))?;
        let sent = bounded(
            "publishing a map",
            CALL,
            self.js.send_publish(
                self.config.subject(),
                PublishMessage::build()
                    .payload(payload.into())
                    .expected_last_sequence(expected),
            ),
        )
        .await?;
        match tokio::time::timeout(CALL, sent).await {
            Ok(Ok(ack)) => {
                map.epoch = ack.sequence;
                self.view.install(map);
            }
            Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => {
                // Another node's proposal won: take the map it published.
                if let Some(map) = self.current().await? {
                    self.view.install(map);
                }
            }
            Ok(Err(e)) => return Err(Error::Cluster(format!("publishing a map: {e}"))),
            Err(_) => return Err(Error::Cluster("publishing a map: no answer".into())),
        }
        Ok(())
    }

    /// The latest agreed map, with its epoch.
    pub(super) async fn current(&self) -> Result<Option<ClusterMap>> {
        read_map(&self.ctl, &self.config.subject()).await
    }

    /// The members whose heartbeat is live, with this cluster's partition count.
    async fn live(&self) -> Result<Vec<Member>> {
        Ok(self.beats().await?.into_iter().map(|(m, _)| m).collect())
    }

    /// [`Self::live`], with what each heartbeats.
    pub(super) async fn beats(&self) -> Result<Vec<(Member, Beat)>> {
        let mut keys = bounded("listing members", CALL, self.members.keys()).await?;
        let mut ids = Vec::new();
        loop {
            match tokio::time::timeout(CALL, keys.next()).await {
                Ok(Some(Ok(key))) => ids.push(key),
                Ok(Some(Err(e))) => return Err(Error::Cluster(format!("listing members: {e}"))),
                Ok(None) => break,
                Err(_) => return Err(Error::Cluster("listing members: no answer".into())),
            }
        }
        let mut live = Vec::new();
        for id in ids {
            let Some(value) = bounded("reading a member", CALL, self.members.get(&id)).await?
            else {
                continue;
            };
            // A value that does not parse, or another partition count, is a node that will
            // refuse to join: it is not counted.
            if let Ok(beat) = serde_json::from_slice::<Beat>(&value) {
                if beat.partitions == self.config.partitions {
                    let member = Member {
                        id,
                        addr: beat.addr.clone(),
                    };
                    live.push((member, beat));
                }
            }
        }
        Ok(live)
    }

    /// Removes this node's heartbeat (best effort).
    async fn withdraw(&self) {
        let _ = tokio::time::timeout(CALL, self.members.delete(&self.identity.node_id)).await;
    }

    /// Publishes a map without this node (best effort), so its partitions move now.
    async fn hand_over(&self) {
        let Ok(Some(current)) = self.current().await else {
            return;
        };
        let Ok(live) = self.live().await else {
            return;
        };
        let others: Vec<Member> = live
            .into_iter()
            .filter(|m| m.id != self.identity.node_id)
            .collect();
        if current.has_members(&others) {
            return;
        }
        let map = ClusterMap::assign(
            &self.config.name,
            &current.cluster_id,
            self.config.partitions,
            &others,
        );
        let _ = self.propose(map, current.epoch).await;
    }
}

/// Creates (or opens) the control stream and the membership bucket of `config`'s cluster.
async fn open_streams(js: &Context, config: &NodeConfig) -> Result<(stream::Stream, kv::Store)> {
    let ctl = bounded(
        "creating the control stream",
        CALL,
        js.get_or_create_stream(stream::Config {
            name: config.stream(),
            subjects: vec![config.subject()],
            num_replicas: config.replicas,
            storage: stream::StorageType::File,
            max_messages: 1000,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }),
    )
    .await?;
    // The bucket's stream is created directly: `create_key_value` of async-nats ≥ 0.41
    // cannot parse the account reply of a server before 2.10.8 (docs/cluster.md).
    let bucket = config.bucket();
    bounded(
        "creating the membership bucket",
        CALL,
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: config.liveness,
            num_replicas: config.replicas,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            ..Default::default()
        }),
    )
    .await?;
    let members = bounded(
        "opening the membership bucket",
        CALL,
        js.get_key_value(bucket),
    )
    .await?;
    Ok((ctl, members))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_are_refused_with_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let ok = NodeConfig::new(
            vec!["nats://127.0.0.1:4222".into()],
            "127.0.0.1:7001",
            dir.path(),
        );
        ok.validate().unwrap();
        let cases: Vec<(NodeConfig, &str)> = vec![
            (
                NodeConfig {
                    urls: vec![],
                    ..ok.clone()
                },
                "no NATS URL",
            ),
            (
                NodeConfig {
                    name: "a.b".into(),
                    ..ok.clone()
                },
                "cluster name",
            ),
            (
                NodeConfig {
                    partitions: 0,
                    ..ok.clone()
                },
                "partitions = 0",
            ),
            (
                NodeConfig {
                    replicas: 7,
                    ..ok.clone()
                },
                "replicas = 7",
            ),
            (
                NodeConfig {
                    advertise: "localhost".into(),
                    ..ok.clone()
                },
                "advertise address",
            ),
        ];
        for (config, expected) in cases {
            let e = config.validate().unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        }
    }

    #[test]
    fn a_store_of_another_cluster_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::load_or_new(dir.path(), "a").unwrap();
        id.save(dir.path()).unwrap();
        assert_eq!(Identity::load_or_new(dir.path(), "a").unwrap(), id);
        let e = Identity::load_or_new(dir.path(), "b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("belongs to the cluster \"a\""), "{e}");
        std::fs::write(dir.path().join(IDENTITY_FILE), b"{").unwrap();
        let e = Identity::load_or_new(dir.path(), "a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a node identity"), "{e}");
    }
}
