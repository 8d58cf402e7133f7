//! `persona cluster status` (feature `cluster`): a cluster's state read from NATS without
//! joining it.

use super::identity::{random_hex, Identity};
use super::map::{ClusterMap, Member};
use super::models::{self, ModelBeat};
use super::node::{Agent, NodeConfig};
use crate::error::Result;
use serde::Serialize;
use std::path::Path;

/// What `persona cluster status` prints: the agreed map and the live members.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The latest map (None: no node has joined yet).
    pub map: Option<ClusterMap>,
    /// The map's epoch.
    pub epoch: u64,
    /// The members heartbeating now.
    pub live: Vec<Member>,
    /// The latest merged model version (0: none yet).
    pub model_version: u64,
    /// What each live member reports of its model, by node id (none: no store attached yet).
    pub models: std::collections::BTreeMap<String, ModelBeat>,
}

/// Reads the cluster's state without joining it.
///
/// # Errors
/// As [`super::Node::join`] for an unreachable NATS or JetStream not enabled.
pub fn cluster_status(urls: &[String], name: &str) -> Result<ClusterStatus> {
    let mut config = NodeConfig::new(urls.to_vec(), "127.0.0.1:1", Path::new("."));
    config.name = name.to_owned();
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let identity = Identity {
            node_id: random_hex(),
            cluster: name.to_owned(),
            cluster_id: None,
        };
        let mut agent = Agent::connect(config, identity).await?;
        let map = agent.current().await?;
        // Members heartbeat the cluster's partition count: count those.
        if let Some(m) = &map {
            agent.config.partitions = m.partitions;
        }
        let beats = agent.beats().await?;
        let model_version = models::model_version(&agent.js, name).await?;
        let models = beats
            .iter()
            .filter_map(|(m, b)| Some((m.id.clone(), b.model.clone()?)))
            .collect();
        Ok(ClusterStatus {
            epoch: map.as_ref().map_or(0, |m| m.epoch),
            map,
            live: beats.into_iter().map(|(m, _)| m).collect(),
            model_version,
            models,
        })
    })
}
