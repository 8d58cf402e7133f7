//! The partition → owner map every node of a cluster serves from, and the view of it the RESP
//! server routes by.
//!
//! A map is the whole agreed state: the cluster's name and id, its partition count, its
//! members (node id and advertised address) and each partition's owner. Its *epoch* is the
//! sequence at which it was agreed (the control stream's, see `docs/cluster.md`). Owners are
//! assigned by rendezvous hashing over the members: each partition goes to the member with the
//! highest hash of (partition, member id), so a partition moves only when its owner leaves or a
//! member that scores higher joins.

use super::slots::{key_slot, partition_of_slot, slot_range, MAX_PARTITIONS};
use crate::pipeline::{Item, WriteReply};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

/// A node of the cluster as the map lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id: 40 lower-case hex digits, kept in its data directory across restarts.
    pub id: String,
    /// The `host:port` clients reach its RESP server at.
    pub addr: String,
}

/// The agreed partition → owner map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    /// The cluster's name (its streams' names derive from it).
    pub name: String,
    /// The cluster's id, drawn when its first map was agreed: a store that served another
    /// cluster (another id) is refused.
    pub cluster_id: String,
    /// The partition count, fixed at the cluster's creation.
    pub partitions: u16,
    /// The members, sorted by id.
    pub members: Vec<Member>,
    /// Each partition's owner, an index into `members` (None: no member, the slots are down).
    pub owners: Vec<Option<u32>>,
    /// The sequence of the control stream this map was agreed at (0 for a map not agreed yet).
    #[serde(skip)]
    pub epoch: u64,
}

impl ClusterMap {
    /// The map that assigns `partitions` over `members` by rendezvous hashing (members sorted
    /// by id, duplicates by id dropped).
    pub fn assign(name: &str, cluster_id: &str, partitions: u16, members: &[Member]) -> Self {
        let mut members = members.to_vec();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        let partitions = partitions.clamp(1, MAX_PARTITIONS);
        let owners = (0..partitions)
            .map(|p| {
                members
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, m)| rendezvous(p, &m.id))
                    .map(|(i, _)| i as u32)
            })
            .collect();
        ClusterMap {
            name: name.to_owned(),
            cluster_id: cluster_id.to_owned(),
            partitions,
            members,
            owners,
            epoch: 0,
        }
    }

    /// Whether this map lists exactly `members` (by id and address, in any order).
    pub fn has_members(&self, members: &[Member]) -> bool {
        let mut theirs = members.to_vec();
        theirs.sort_by(|a, b| a.id.cmp(&b.id));
        theirs.dedup_by(|a, b| a.id == b.id);
        theirs == self.members
    }

    /// The owner of the partition covering `slot`.
    pub fn owner_of_slot(&self, slot: u16) -> Option<&Member> {
        let p = partition_of_slot(slot, self.partitions);
        self.owner_of_partition(p)
    }

    /// The owner of partition `p`.
    pub fn owner_of_partition(&self, p: u16) -> Option<&Member> {
        let index = (*self.owners.get(usize::from(p))?)?;
        self.members.get(index as usize)
    }

    /// The partitions `id` owns.
    pub fn partitions_of(&self, id: &str) -> Vec<u16> {
        (0..self.partitions)
            .filter(|&p| self.owner_of_partition(p).is_some_and(|m| m.id == id))
            .collect()
    }

    /// Contiguous slot ranges with the same owner, in slot order: `(first, last, owner)`.
    /// Ranges without an owner are left out.
    pub fn slot_ranges(&self) -> Vec<(u16, u16, &Member)> {
        let mut out: Vec<(u16, u16, &Member)> = Vec::new();
        for p in 0..self.partitions {
            let Some(owner) = self.owner_of_partition(p) else {
                continue;
            };
            let (first, last) = slot_range(p, self.partitions);
            match out.last_mut() {
                Some((_, prev_last, prev)) if prev.id == owner.id && *prev_last + 1 == first => {
                    *prev_last = last;
                }
                _ => out.push((first, last, owner)),
            }
        }
        out
    }

    /// Checks a map read from the control stream: sizes agree, owners index members.
    pub fn validate(&self) -> Result<(), String> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(format!(
                "partition count {} is outside 1..={MAX_PARTITIONS}",
                self.partitions
            ));
        }
        if self.owners.len() != usize::from(self.partitions) {
            return Err(format!(
                "{} owners for {} partitions",
                self.owners.len(),
                self.partitions
            ));
        }
        if let Some(bad) = self
            .owners
            .iter()
            .flatten()
            .find(|&&i| i as usize >= self.members.len())
        {
            return Err(format!(
                "an owner index {bad} past the {} members",
                self.members.len()
            ));
        }
        Ok(())
    }
}

/// Rendezvous score of partition `p` for member `id`.
fn rendezvous(p: u16, id: &str) -> u64 {
    let mut bytes = Vec::with_capacity(id.len() + 2);
    bytes.extend_from_slice(&p.to_le_bytes());
    bytes.extend_from_slice(id.as_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Where a keyed command must run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Here: this node owns the key's partition.
    Local,
    /// On another node: `-MOVED slot addr`.
    Moved(u16, String),
    /// Nowhere yet: no map, or no owner for the partition (`-CLUSTERDOWN`).
    Down(u16),
}

/// Where a cluster node's writes go instead of straight to its store: the partition log
/// (`log.rs`), which answers `reply` once the write is appended and applied.
pub(crate) trait Writes: Send + Sync {
    /// Queues one write (an event or attributes) for its customer's partition.
    fn submit(&self, item: Item, reply: WriteReply);

    /// Whether the partition of `key` (a customer this node owns) is served now: not while
    /// it catches up with its log, when its reads would miss writes already acknowledged.
    /// The error is the reply (`TRYAGAIN …`).
    fn ready(&self, key: &[u8]) -> Result<(), crate::Error>;
}

impl Route {
    /// The refusal a Redis Cluster node answers for a key it does not serve (`MOVED slot
    /// host:port`, `CLUSTERDOWN Hash slot not served`), as the RESP server sends it; None
    /// here.
    pub fn refusal(&self) -> Option<crate::Error> {
        match self {
            Route::Local => None,
            Route::Moved(slot, addr) => {
                Some(crate::Error::Redirect(format!("MOVED {slot} {addr}")))
            }
            Route::Down(_) => Some(crate::Error::Redirect(
                "CLUSTERDOWN Hash slot not served".into(),
            )),
        }
    }
}

/// A node's view of its cluster: who it is and the latest map it has installed. Shared by the
/// RESP server (which routes by it) and the task that follows the control stream.
pub struct ClusterView {
    id: String,
    addr: String,
    map: RwLock<Option<ClusterMap>>,
    writes: OnceLock<Arc<dyn Writes>>,
    asks: OnceLock<Arc<dyn super::fanout::Asks>>,
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("epoch", &self.epoch())
            .field("log", &self.writes.get().is_some())
            .finish()
    }
}

/// Two views are equal when they are the same node's (id and address), whatever map each has
/// installed.
impl PartialEq for ClusterView {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.addr == other.addr
    }
}

impl ClusterView {
    /// A view for node `id` advertising `addr`, with no map yet.
    pub fn new(id: &str, addr: &str) -> Self {
        ClusterView {
            id: id.to_owned(),
            addr: addr.to_owned(),
            map: RwLock::new(None),
            writes: OnceLock::new(),
            asks: OnceLock::new(),
        }
    }

    /// How this node asks the other members, once its store is attached (None before).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn asks(&self) -> Option<&Arc<dyn super::fanout::Asks>> {
        self.asks.get()
    }

    /// Sets how this node asks the other members (once).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn set_asks(&self, asks: Arc<dyn super::fanout::Asks>) {
        let _ = self.asks.set(asks);
    }

    /// Where this node's writes go, once its partition log runs (None: straight to the store).
    pub(crate) fn writes(&self) -> Option<&Arc<dyn Writes>> {
        self.writes.get()
    }

    /// Sets where this node's writes go (once).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn set_writes(&self, writes: Arc<dyn Writes>) {
        let _ = self.writes.set(writes);
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address this node advertises.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Installs `map` if it is newer than the installed one (by epoch). Returns whether it did.
    pub fn install(&self, map: ClusterMap) -> bool {
        let mut current = self.map.write();
        if current.as_ref().is_some_and(|c| c.epoch >= map.epoch) {
            return false;
        }
        *current = Some(map);
        true
    }

    /// The installed map.
    pub fn map(&self) -> Option<ClusterMap> {
        self.map.read().clone()
    }

    /// The installed map's epoch (0: none).
    pub fn epoch(&self) -> u64 {
        self.map.read().as_ref().map_or(0, |m| m.epoch)
    }

    /// Where a command on `key` runs.
    pub fn route(&self, key: &[u8]) -> Route {
        let slot = key_slot(key);
        let map = self.map.read();
        match map.as_ref().and_then(|m| m.owner_of_slot(slot)) {
            None => Route::Down(slot),
            Some(owner) if owner.id == self.id => Route::Local,
            Some(owner) => Route::Moved(slot, owner.addr.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::slots::SLOTS;

    fn member(n: u8) -> Member {
        Member {
            id: format!("{n:040x}"),
            addr: format!("127.0.0.1:70{n:02}"),
        }
    }

    #[test]
    fn every_slot_has_one_owner_and_the_ranges_cover_them_once() {
        let members: Vec<Member> = (1..=3).map(member).collect();
        let map = ClusterMap::assign("t", "c", 64, &members);
        map.validate().unwrap();
        let mut next = 0u32;
        for (first, last, owner) in map.slot_ranges() {
            assert_eq!(u32::from(first), next);
            for s in [first, last] {
                assert_eq!(map.owner_of_slot(s).unwrap(), owner);
            }
            next = u32::from(last) + 1;
        }
        assert_eq!(next, u32::from(SLOTS));
        let owned: usize = members.iter().map(|m| map.partitions_of(&m.id).len()).sum();
        assert_eq!(owned, 64);
        // Each of three members gets a share (rendezvous spreads them).
        for m in &members {
            assert!(map.partitions_of(&m.id).len() >= 8, "{}", m.id);
        }
    }

    #[test]
    fn a_partition_moves_only_when_its_owner_leaves() {
        let three: Vec<Member> = (1..=3).map(member).collect();
        let before = ClusterMap::assign("t", "c", 64, &three);
        let after = ClusterMap::assign("t", "c", 64, &three[..2]);
        for p in 0..64 {
            let was = before.owner_of_partition(p).unwrap();
            let now = after.owner_of_partition(p).unwrap();
            if was.id != three[2].id {
                assert_eq!(was, now, "partition {p} moved though its owner stayed");
            }
        }
        // The member list order does not change the assignment.
        let reversed: Vec<Member> = three.iter().rev().cloned().collect();
        assert_eq!(ClusterMap::assign("t", "c", 64, &reversed), before);
        assert!(before.has_members(&reversed));
        assert!(!before.has_members(&three[..2]));
    }

    #[test]
    fn routes_follow_the_installed_map() {
        let members: Vec<Member> = (1..=2).map(member).collect();
        let view = ClusterView::new(&members[0].id, &members[0].addr);
        assert_eq!(view.route(b"c1"), Route::Down(key_slot(b"c1")));
        let mut map = ClusterMap::assign("t", "c", 16, &members);
        map.epoch = 5;
        assert!(view.install(map.clone()));
        let mut older = map.clone();
        older.epoch = 4;
        assert!(!view.install(older));
        assert_eq!(view.epoch(), 5);
        for n in 0..200 {
            let key = format!("c{n}");
            let slot = key_slot(key.as_bytes());
            let owner = map.owner_of_slot(slot).unwrap();
            let expected = if owner.id == members[0].id {
                Route::Local
            } else {
                Route::Moved(slot, owner.addr.clone())
            };
            assert_eq!(view.route(key.as_bytes()), expected);
        }
    }

    #[test]
    fn bad_maps_are_named() {
        let members: Vec<Member> = (1..=2).map(member).collect();
        let mut map = ClusterMap::assign("t", "c", 4, &members);
        map.owners[1] = Some(9);
        assert!(map.validate().unwrap_err().contains("owner index 9"));
        map.owners.pop();
        assert!(map.validate().unwrap_err().contains("3 owners for 4"));
    }
}
