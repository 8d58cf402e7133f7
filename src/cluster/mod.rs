//! Scale-out (issue #26, in progress): partitions of the Redis Cluster slot space owned by the
//! nodes of a cluster that agree through NATS JetStream. See `docs/cluster.md`.
//!
//! | file | role |
//! |---|---|
//! | `slots.rs` | Redis Cluster's key → slot function; slot → partition ranges |
//! | `map.rs` | the partition → owner map (rendezvous assignment) and a node's view of it, which the RESP server routes by |
//! | `node.rs` | (feature `cluster`) a node's agent: joins over NATS, heartbeats, agrees the map, follows it |
//! | `fanout.rs` | the questions of the commands whose answer spans the cluster (`DBSIZE`, `SEGMENT.MEMBERS`, `SIMILAR`), answered over the partitions a node owns |
//! | `ask.rs` | (feature `cluster`) those questions over NATS request/reply: a node's responder, and its requests to the others |
//! | `identity.rs` | (feature `cluster`) the node's id and cluster, kept in its data directory |
//! | `log.rs` | (feature `cluster`) the partition write log: writes appended to their partition's stream, then applied; catch-up and fencing when a partition moves |
//! | `status.rs` | (feature `cluster`) `persona cluster status`: the cluster's state, read without joining |
//! | `models.rs` | (feature `cluster`) the global model: each node's deltas published, merged by the controller, adopted by every node |

#[cfg(feature = "cluster")]
mod ask;
pub(crate) mod fanout;
#[cfg(feature = "cluster")]
mod identity;
#[cfg(feature = "cluster")]
mod log;
mod map;
#[cfg(feature = "cluster")]
mod models;
#[cfg(feature = "cluster")]
mod node;
mod slots;
#[cfg(feature = "cluster")]
mod status;

pub(crate) use map::Writes;
pub use map::{ClusterMap, ClusterView, Member, Route};
#[cfg(feature = "cluster")]
pub use models::ModelBeat;
#[cfg(feature = "cluster")]
pub use node::{Node, NodeConfig};
pub use slots::key_slot;
pub(crate) use slots::SLOTS;
#[cfg(feature = "cluster")]
pub use status::{cluster_status, ClusterStatus};
