//! A cluster node's identity: its id and the cluster its store belongs to, kept in
//! [`IDENTITY_FILE`] in its data directory so that a restarted node keeps its id and a store
//! of another cluster is refused.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file in a node's data directory that names the node and the cluster its store belongs to.
pub(super) const IDENTITY_FILE: &str = "cluster.json";

/// The node's identity, kept in [`IDENTITY_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Identity {
    pub(super) node_id: String,
    pub(super) cluster: String,
    /// The id of the cluster this store served; None until its first map.
    pub(super) cluster_id: Option<String>,
}

impl Identity {
    /// Reads the identity in `dir`, or draws a new node id for a directory without one.
    pub(super) fn load_or_new(dir: &Path, cluster: &str) -> Result<Identity> {
        let path = dir.join(IDENTITY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let id: Identity = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Cluster(format!("{} is not a node identity: {e}", path.display()))
                })?;
                if id.node_id.len() != 40 || !id.node_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Cluster(format!(
                        "{}: node_id must be 40 hex digits",
                        path.display()
                    )));
                }
                if id.cluster != cluster {
                    return Err(Error::Cluster(format!(
                        "the store at {} belongs to the cluster {:?}, not {cluster:?}: use its \
                         own cluster name or another data directory",
                        dir.display(),
                        id.cluster
                    )));
                }
                Ok(id)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Identity {
                node_id: random_hex(),
                cluster: cluster.to_owned(),
                cluster_id: None,
            }),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// Writes the identity atomically.
    pub(super) fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Cluster(e.to_string()))?;
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join(IDENTITY_FILE))?;
        Ok(())
    }
}

/// 40 random lower-case hex digits (Redis Cluster's node id shape).
pub(super) fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
