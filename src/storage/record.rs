//! The profile record: a customer's current state, its recent history, its pending training
//! example and its de-duplication window, all in one value so that an event costs one key write.
//!
//! History is kept as a *base state plus an op log*: `base` is the state at version
//! `version - history.len()`, and replaying `history` over it (deterministically, see
//! [`crate::features`]) reproduces every later version exactly. When the log grows past
//! `history_versions` entries the oldest op is folded into `base`. This keeps the last
//! `history_versions` versions readable at the cost of two states and a few dozen bytes per op,
//! instead of one full state per version.

use super::packed::{HistoryRef, PackedHistory, PackedPending, PackedState, PendingRef, StateRef};
use super::{codec, window};
use crate::error::Result;
use crate::features::affinity::{Affinity, AffinityV5};
use crate::features::{FeatureParams, ProfileOp, ProfileState};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Format version of the profile records this build writes. Version 6 is version 5 with the
/// items the customer bought ([`crate::features::affinity::Bought`]) after the engagement
/// lists. Version 5 is version 4 with the customer's engaged items and categories
/// ([`Affinity`]) after the propensity, so that the current profile ([`RecordCurrent`]) still
/// decodes as one prefix. Version 4 has the fields and order of version 3, each stored
/// losslessly in fewer bytes (sparse float blocks, op-log times as deltas:
/// `storage/packed.rs`). Versions 1 to 5 are still read (a record is rewritten as version 6 at
/// its next write; an older record has no engagement yet, and a version-5 record knows as
/// bought only the purchases its list holds).
pub const PROFILE_FORMAT_VERSION: u8 = 6;

/// One version's change and the model outcome right after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// What changed.
    pub op: ProfileOp,
    /// Segment assigned after the change (None before segments are seeded).
    pub segment: Option<u16>,
    /// Propensity predicted after the change.
    pub propensity: f32,
}

/// How many times the de-duplication window a burst of ids at one event time may hold (see
/// [`ProfileRecord::remember`]).
pub const BURST_FACTOR: usize = 8;

/// A training example waiting for its label: the profile's raw feature vector at `taken_at_ms`.
/// It becomes positive if a target event follows within the horizon, negative when the watermark
/// passes `taken_at_ms + horizon` without one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingExample {
    /// The example's checkpoint (event time): its features are the profile as of then.
    pub taken_at_ms: i64,
    /// Raw (unscaled) features as of `taken_at_ms`; empty while they are implicit (the
    /// profile has not changed since the checkpoint, so they are derived from the current
    /// state when needed, and stored by the first event after it).
    pub features: Vec<f32>,
}

impl PendingExample {
    /// An example at checkpoint `taken_at_ms` whose features are still implicit.
    pub fn at(taken_at_ms: i64) -> PendingExample {
        PendingExample {
            taken_at_ms,
            features: Vec::new(),
        }
    }

    /// Whether the features are stored (not implicit).
    pub fn is_stored(&self) -> bool {
        !self.features.is_empty()
    }
}

/// The leading field of a [`ProfileRecord`], decodable on its own (bincode is positional) so
/// that opening a store can rebuild the label-expiry queue without decoding whole records.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordHead {
    /// See [`ProfileRecord::pending`].
    pub pending: Option<PendingExample>,
}

/// The leading fields of a [`ProfileRecord`] up to its current state, decodable on their own:
/// what labelling an expired training example needs, without the base state, op log and
/// de-duplication window that make up most of a record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordState {
    /// See [`ProfileRecord::pending`].
    pub pending: Option<PendingExample>,
    /// See [`ProfileRecord::version`].
    pub version: u64,
    /// See [`ProfileRecord::state`].
    pub state: ProfileState,
}

/// A record's current version: its leading fields, everything but the base state, the op log and
/// the de-duplication window. What reads of the current profile need (profile, score, nearest
/// segment, lookalikes, scans), decoded without the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordCurrent {
    /// See [`ProfileRecord::pending`].
    pub pending: Option<PendingExample>,
    /// See [`ProfileRecord::version`].
    pub version: u64,
    /// See [`ProfileRecord::state`].
    pub state: ProfileState,
    /// See [`ProfileRecord::segment`].
    pub segment: Option<u16>,
    /// See [`ProfileRecord::distance`].
    pub distance: f32,
    /// See [`ProfileRecord::propensity`].
    pub propensity: f32,
    /// See [`ProfileRecord::affinity`].
    pub affinity: Affinity,
}

/// The current version of a version-3 record (see [`RecordCurrent`]).
#[derive(Deserialize)]
struct CurrentV3 {
    pending: Option<PendingExample>,
    version: u64,
    state: ProfileState,
    segment: Option<u16>,
    distance: f32,
    propensity: f32,
}

impl From<CurrentV3> for RecordCurrent {
    fn from(c: CurrentV3) -> RecordCurrent {
        RecordCurrent {
            pending: c.pending,
            version: c.version,
            state: c.state,
            segment: c.segment,
            distance: c.distance,
            propensity: c.propensity,
            affinity: Affinity::default(),
        }
    }
}

impl RecordCurrent {
    /// Decodes the current version of a profile record of any supported version: a prefix of a
    /// record of version 3 or later, the whole record of an older one. `key` names it in errors.
    ///
    /// # Errors
    /// As [`ProfileRecord::decode`] for an older record; for a later one, only the prefix is
    /// checked (trailing fields are not decoded).
    pub fn decode(key: &dyn Fn() -> String, bytes: &[u8]) -> Result<RecordCurrent> {
        let (version, body) = codec::split_version(key, bytes, PROFILE_FORMAT_VERSION)?;
        match version {
            6.. => Ok(codec::decode_body::<PackedCurrent<Affinity>>(key, body)?
                .0
                .into()),
            5 => Ok(codec::decode_body::<PackedCurrent<AffinityV5>>(key, body)?
                .0
                .into()),
            4 => Ok(codec::decode_body::<PackedCurrent<()>>(key, body)?.0.into()),
            3 => Ok(codec::decode_body::<CurrentV3>(key, body)?.0.into()),
            _ => Ok(ProfileRecord::decode(key, bytes)?.into_current()),
        }
    }
}

impl RecordHead {
    /// Decodes the head of a profile record of any supported version. `key` names it in errors.
    ///
    /// # Errors
    /// As [`ProfileRecord::decode`].
    pub fn decode(key: &dyn Fn() -> String, bytes: &[u8]) -> Result<RecordHead> {
        let (version, body) = codec::split_version(key, bytes, PROFILE_FORMAT_VERSION)?;
        if version >= 4 {
            let head: HeadV4 = codec::decode_body(key, body)?.0;
            return Ok(RecordHead {
                pending: head.pending.map(|p| p.0),
            });
        }
        Ok(codec::decode_body(key, body)?.0)
    }
}

impl RecordState {
    /// Decodes the leading fields of a profile record of any supported version, up to its
    /// state. `key` names it in errors.
    ///
    /// # Errors
    /// As [`ProfileRecord::decode`].
    pub fn decode(key: &dyn Fn() -> String, bytes: &[u8]) -> Result<RecordState> {
        let (version, body) = codec::split_version(key, bytes, PROFILE_FORMAT_VERSION)?;
        if version >= 4 {
            let head: StatePrefixV4 = codec::decode_body(key, body)?.0;
            return Ok(RecordState {
                pending: head.pending.map(|p| p.0),
                version: head.version,
                state: head.state.0,
            });
        }
        Ok(codec::decode_body(key, body)?.0)
    }
}

/// Everything stored about one customer. Stored with [`ProfileRecord::encode`] (not the generic
/// codec: the record has its own format version).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRecord {
    /// Example awaiting its label. Must stay the first field (see [`RecordHead`]).
    pub pending: Option<PendingExample>,
    /// Current version: the number of ops applied since the profile was created.
    pub version: u64,
    /// Current state.
    pub state: ProfileState,
    /// State at version `version - history.len()`; `None` means the empty profile (version 0).
    pub base: Option<ProfileState>,
    /// Ops of the versions after `base`, oldest first.
    pub history: VecDeque<HistoryEntry>,
    /// Hashes (xxh3) of the most recent event ids with their event times, oldest first.
    pub recent_ids: VecDeque<(u64, i64)>,
    /// Latest event time among ids that left the window: an event at or before it whose id is
    /// not in the window cannot be told apart from a replay, so it is refused.
    pub dedupe_floor_ms: Option<i64>,
    /// Segment in the membership index.
    pub segment: Option<u16>,
    /// Distance to that segment's centroid (standardised units) when assigned.
    pub distance: f32,
    /// Propensity predicted at the last write.
    pub propensity: f32,
    /// The customer's most engaged items and categories as of the last write (not versioned:
    /// see `features/affinity.rs`).
    pub affinity: Affinity,
}

/// A [`ProfileRecord`] as versions 4 to 6 write it (borrowed), in the encodings of
/// `storage/packed.rs`: version 3's fields in version 3's order, and from version 5 the affinity
/// after the propensity. `A` is `&Affinity` for version 6, [`AffinityV5`] for version 5 and `()`
/// for version 4 (bincode writes nothing for a unit).
#[derive(Serialize)]
struct PackedRef<'a, A> {
    pending: Option<PendingRef<'a>>,
    version: u64,
    state: StateRef<'a>,
    segment: Option<u16>,
    distance: f32,
    propensity: f32,
    affinity: A,
    base: Option<StateRef<'a>>,
    history: HistoryRef<'a>,
    #[serde(serialize_with = "window::serialize")]
    recent_ids: &'a VecDeque<(u64, i64)>,
    dedupe_floor_ms: Option<i64>,
}

/// The leading field of a version-4 record (see [`RecordHead`]).
#[derive(Deserialize)]
struct HeadV4 {
    pending: Option<PackedPending>,
}

/// The leading fields of a version-4 record up to its state (see [`RecordState`]).
#[derive(Deserialize)]
struct StatePrefixV4 {
    pending: Option<PackedPending>,
    version: u64,
    state: PackedState,
}

/// The current version of a version-4, -5 or -6 record (see [`RecordCurrent`]); `A` as in
/// [`PackedRef`]: `()` reads nothing, and a version-4 record has no lists yet.
#[derive(Deserialize)]
struct PackedCurrent<A> {
    pending: Option<PackedPending>,
    version: u64,
    state: PackedState,
    segment: Option<u16>,
    distance: f32,
    propensity: f32,
    affinity: A,
}

/// A version-4 record's (absent) engagement lists.
impl From<()> for Affinity {
    fn from((): ()) -> Affinity {
        Affinity::default()
    }
}

impl<A: Into<Affinity>> From<PackedCurrent<A>> for RecordCurrent {
    fn from(c: PackedCurrent<A>) -> RecordCurrent {
        RecordCurrent {
            pending: c.pending.map(|p| p.0),
            version: c.version,
            state: c.state.0,
            segment: c.segment,
            distance: c.distance,
            propensity: c.propensity,
            affinity: c.affinity.into(),
        }
    }
}

/// A [`ProfileRecord`] as versions 4 to 6 store it: its current version, then the rest.
#[derive(Deserialize)]
struct PackedStored<A> {
    current: PackedCurrent<A>,
    base: Option<PackedState>,
    history: PackedHistory,
    recent_ids: PackedWindow,
    dedupe_floor_ms: Option<i64>,
}

impl<A: Into<Affinity>> From<PackedStored<A>> for ProfileRecord {
    fn from(s: PackedStored<A>) -> ProfileRecord {
        ProfileRecord::from_parts(
            s.current.into(),
            StoredRest {
                base: s.base.map(|b| b.0),
                history: s.history.0,
                recent_ids: s.recent_ids,
                dedupe_floor_ms: s.dedupe_floor_ms,
            },
        )
    }
}

/// A [`ProfileRecord`] as version 3 writes it (borrowed, for encoding).
#[cfg(any(test, feature = "testing"))]
#[derive(Serialize)]
struct StoredRef<'a> {
    pending: &'a Option<PendingExample>,
    version: u64,
    state: &'a ProfileState,
    segment: Option<u16>,
    distance: f32,
    propensity: f32,
    base: &'a Option<ProfileState>,
    history: &'a VecDeque<HistoryEntry>,
    #[serde(serialize_with = "window::serialize")]
    recent_ids: &'a VecDeque<(u64, i64)>,
    dedupe_floor_ms: Option<i64>,
}

/// A [`ProfileRecord`] as version 3 stores it (see [`StoredRef`]): its current version, then
/// the rest. bincode writes a nested struct as its fields in order, so this reads exactly the
/// flat layout `StoredRef` writes, and [`RecordCurrent`] alone reads its prefix.
#[derive(Deserialize)]
struct StoredV3 {
    current: CurrentV3,
    rest: StoredRest,
}

/// The fields of a version-3 record after its current version (and of a version-4 record, once
/// unpacked).
#[derive(Deserialize)]
struct StoredRest {
    base: Option<ProfileState>,
    history: VecDeque<HistoryEntry>,
    recent_ids: PackedWindow,
    dedupe_floor_ms: Option<i64>,
}

impl From<StoredV3> for ProfileRecord {
    fn from(s: StoredV3) -> ProfileRecord {
        ProfileRecord::from_parts(s.current.into(), s.rest)
    }
}

impl ProfileRecord {
    /// The record made of its current version and the fields after it (versions 3 to 5 store
    /// it in this order).
    fn from_parts(current: RecordCurrent, rest: StoredRest) -> ProfileRecord {
        let RecordCurrent {
            pending,
            version,
            state,
            segment,
            distance,
            propensity,
            affinity,
        } = current;
        let StoredRest {
            base,
            history,
            recent_ids,
            dedupe_floor_ms,
        } = rest;
        ProfileRecord {
            pending,
            version,
            state,
            base,
            history,
            recent_ids: recent_ids.into(),
            dedupe_floor_ms,
            segment,
            distance,
            propensity,
            affinity,
        }
    }
}

/// A [`ProfileRecord`] as versions 1 and 2 stored it, generic over the layout of its
/// de-duplication window: version 1 stores it as a plain sequence of pairs ([`StoredV1`]),
/// version 2 as one byte string ([`StoredV2`]). Every other field is laid out the same in both.
#[derive(Serialize, Deserialize)]
struct Stored<W> {
    pending: Option<PendingExample>,
    version: u64,
    state: ProfileState,
    base: Option<ProfileState>,
    history: VecDeque<HistoryEntry>,
    recent_ids: W,
    dedupe_floor_ms: Option<i64>,
    segment: Option<u16>,
    distance: f32,
    propensity: f32,
}

/// A [`ProfileRecord`] as version 1 stores it.
type StoredV1 = Stored<VecDeque<(u64, i64)>>;

/// A [`ProfileRecord`] as version 2 stores it.
type StoredV2 = Stored<PackedWindow>;

/// The window of versions 2 and 3: one byte string (see `storage/window.rs`).
#[derive(Deserialize)]
struct PackedWindow(#[serde(deserialize_with = "window::deserialize")] VecDeque<(u64, i64)>);

impl From<PackedWindow> for VecDeque<(u64, i64)> {
    fn from(w: PackedWindow) -> Self {
        w.0
    }
}

impl<W: Into<VecDeque<(u64, i64)>>> From<Stored<W>> for ProfileRecord {
    fn from(s: Stored<W>) -> ProfileRecord {
        ProfileRecord {
            pending: s.pending,
            version: s.version,
            state: s.state,
            base: s.base,
            history: s.history,
            recent_ids: s.recent_ids.into(),
            dedupe_floor_ms: s.dedupe_floor_ms,
            segment: s.segment,
            distance: s.distance,
            propensity: s.propensity,
            affinity: Affinity::default(),
        }
    }
}

/// A [`ProfileRecord`] in the version-2 layout, borrowed (for compatibility tests).
#[cfg(any(test, feature = "testing"))]
#[derive(Serialize)]
struct StoredV2Ref<'a> {
    pending: &'a Option<PendingExample>,
    version: u64,
    state: &'a ProfileState,
    base: &'a Option<ProfileState>,
    history: &'a VecDeque<HistoryEntry>,
    #[serde(serialize_with = "window::serialize")]
    recent_ids: &'a VecDeque<(u64, i64)>,
    dedupe_floor_ms: Option<i64>,
    segment: Option<u16>,
    distance: f32,
    propensity: f32,
}

impl From<ProfileRecord> for StoredV1 {
    fn from(r: ProfileRecord) -> StoredV1 {
        Stored {
            pending: r.pending,
            version: r.version,
            state: r.state,
            base: r.base,
            history: r.history,
            recent_ids: r.recent_ids,
            dedupe_floor_ms: r.dedupe_floor_ms,
            segment: r.segment,
            distance: r.distance,
            propensity: r.propensity,
        }
    }
}

/// Why a historical version cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryError {
    /// The version is older than the retained history; `oldest` is the oldest readable one.
    Pruned {
        /// Oldest readable version.
        oldest: u64,
    },
    /// The version does not exist yet; `current` is the latest.
    Future {
        /// Latest version.
        current: u64,
    },
}

impl ProfileRecord {
    /// A new, empty record.
    pub fn new(params: &FeatureParams) -> ProfileRecord {
        ProfileRecord {
            pending: None,
            version: 0,
            state: ProfileState::new(params),
            base: None,
            history: VecDeque::new(),
            recent_ids: VecDeque::new(),
            dedupe_floor_ms: None,
            segment: None,
            distance: 0.0,
            propensity: 0.0,
            affinity: Affinity::default(),
        }
    }

    /// The stored form: [`PROFILE_FORMAT_VERSION`], then the record in bincode.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_packed(PROFILE_FORMAT_VERSION, &self.affinity)
    }

    /// The record in the version-4 layout, as builds before [`PROFILE_FORMAT_VERSION`] 5 wrote
    /// it (no affinity; for compatibility tests).
    #[doc(hidden)]
    #[cfg(any(test, feature = "testing"))]
    pub fn encode_v4(&self) -> Vec<u8> {
        self.encode_packed(4, ())
    }

    /// The record in the version-5 layout, as builds before [`PROFILE_FORMAT_VERSION`] 6 wrote
    /// it (no bought set; for compatibility tests).
    #[doc(hidden)]
    #[cfg(any(test, feature = "testing"))]
    pub fn encode_v5(&self) -> Vec<u8> {
        let a = &self.affinity;
        let v5 = AffinityV5 {
            anchor_ms: a.anchor_ms,
            items: a.items.clone(),
            categories: a.categories.clone(),
        };
        self.encode_packed(5, v5)
    }

    /// The record in the packed layout of versions 4 (`affinity` `()`), 5 ([`AffinityV5`])
    /// and 6.
    fn encode_packed<A: Serialize>(&self, version: u8, affinity: A) -> Vec<u8> {
        codec::encode_as(
            version,
            &PackedRef {
                pending: self.pending.as_ref().map(PendingRef::new),
                version: self.version,
                state: StateRef::new(&self.state),
                segment: self.segment,
                distance: self.distance,
                propensity: self.propensity,
                affinity,
                base: self.base.as_ref().map(StateRef::new),
                history: HistoryRef(&self.history),
                recent_ids: &self.recent_ids,
                dedupe_floor_ms: self.dedupe_floor_ms,
            },
        )
    }

    /// The record in the version-3 layout, as builds before [`PROFILE_FORMAT_VERSION`] 4 wrote
    /// it (for compatibility tests and benchmarks).
    #[doc(hidden)]
    #[cfg(any(test, feature = "testing"))]
    pub fn encode_v3(&self) -> Vec<u8> {
        codec::encode_as(
            3,
            &StoredRef {
                pending: &self.pending,
                version: self.version,
                state: &self.state,
                segment: self.segment,
                distance: self.distance,
                propensity: self.propensity,
                base: &self.base,
                history: &self.history,
                recent_ids: &self.recent_ids,
                dedupe_floor_ms: self.dedupe_floor_ms,
            },
        )
    }

    /// Decodes a stored record of any supported version (1 to 6). `key` names it in errors.
    /// Does not check the fields against the store's settings (see
    /// [`ProfileRecord::is_consistent`]).
    ///
    /// # Errors
    /// [`crate::Error::UnsupportedVersion`] for an unknown version byte,
    /// [`crate::Error::Corruption`] for anything that does not decode, including trailing bytes.
    pub fn decode(key: &dyn Fn() -> String, bytes: &[u8]) -> Result<ProfileRecord> {
        let (version, body) = codec::split_version(key, bytes, PROFILE_FORMAT_VERSION)?;
        Ok(match version {
            1 => codec::decode_whole_body::<StoredV1>(key, body)?.into(),
            2 => codec::decode_whole_body::<StoredV2>(key, body)?.into(),
            3 => codec::decode_whole_body::<StoredV3>(key, body)?.into(),
            4 => codec::decode_whole_body::<PackedStored<()>>(key, body)?.into(),
            5 => codec::decode_whole_body::<PackedStored<AffinityV5>>(key, body)?.into(),
            _ => codec::decode_whole_body::<PackedStored<Affinity>>(key, body)?.into(),
        })
    }

    /// The current version alone (see [`RecordCurrent`]), taking the state out of the record.
    pub fn into_current(self) -> RecordCurrent {
        RecordCurrent {
            pending: self.pending,
            version: self.version,
            state: self.state,
            segment: self.segment,
            distance: self.distance,
            propensity: self.propensity,
            affinity: self.affinity,
        }
    }

    /// The record in the version-1 layout, as builds before [`PROFILE_FORMAT_VERSION`] 2 wrote
    /// it (for compatibility tests).
    #[doc(hidden)]
    #[cfg(any(test, feature = "testing"))]
    pub fn encode_v1(&self) -> Vec<u8> {
        codec::encode_as(1, &StoredV1::from(self.clone()))
    }

    /// The record in the version-2 layout, as builds before [`PROFILE_FORMAT_VERSION`] 3 wrote
    /// it (for compatibility tests).
    #[doc(hidden)]
    #[cfg(any(test, feature = "testing"))]
    pub fn encode_v2(&self) -> Vec<u8> {
        codec::encode_as(
            2,
            &StoredV2Ref {
                pending: &self.pending,
                version: self.version,
                state: &self.state,
                base: &self.base,
                history: &self.history,
                recent_ids: &self.recent_ids,
                dedupe_floor_ms: self.dedupe_floor_ms,
                segment: self.segment,
                distance: self.distance,
                propensity: self.propensity,
            },
        )
    }

    /// Version of `base`.
    pub fn base_version(&self) -> u64 {
        self.version - self.history.len() as u64
    }

    /// Oldest version that can still be read: the first one in the op log.
    pub fn oldest_version(&self) -> u64 {
        (self.base_version() + 1).min(self.version)
    }

    /// Applies `op` as a new version, keeping the last `history_versions` versions (their ops)
    /// readable.
    /// The outcome fields of the new history entry start as the previous ones; set them with
    /// [`ProfileRecord::set_outcome`].
    pub fn apply(&mut self, op: ProfileOp, params: &FeatureParams, history_versions: usize) {
        self.state.apply(&op, params);
        self.version += 1;
        self.history.push_back(HistoryEntry {
            op,
            segment: self.segment,
            propensity: self.propensity,
        });
        while self.history.len() > history_versions {
            let Some(oldest) = self.history.pop_front() else {
                break;
            };
            self.base
                .get_or_insert_with(|| ProfileState::new(params))
                .apply(&oldest.op, params);
        }
    }

    /// Records the model outcome of the latest version.
    pub fn set_outcome(&mut self, segment: Option<(u16, f32)>, propensity: f64) {
        if let Some((s, d)) = segment {
            self.segment = Some(s);
            self.distance = d;
        }
        self.propensity = propensity as f32;
        if let Some(last) = self.history.back_mut() {
            last.segment = self.segment;
            last.propensity = self.propensity;
        }
    }

    /// The state at `version`, replayed from the retained history.
    ///
    /// # Errors
    /// [`HistoryError::Pruned`] or [`HistoryError::Future`].
    pub fn state_at(
        &self,
        version: u64,
        params: &FeatureParams,
    ) -> Result<(ProfileState, Option<u16>, f32), HistoryError> {
        if version > self.version {
            return Err(HistoryError::Future {
                current: self.version,
            });
        }
        let base_version = self.base_version();
        if version <= base_version {
            return Err(HistoryError::Pruned {
                oldest: self.oldest_version(),
            });
        }
        if version == self.version {
            return Ok((self.state.clone(), self.segment, self.propensity));
        }
        let mut state = self
            .base
            .clone()
            .unwrap_or_else(|| ProfileState::new(params));
        let mut outcome = (None, 0.0);
        for entry in self.history.iter().take((version - base_version) as usize) {
            state.apply(&entry.op, params);
            outcome = (entry.segment, entry.propensity);
        }
        Ok((state, outcome.0, outcome.1))
    }

    /// Whether an event id hash is in the de-duplication window.
    pub fn has_seen(&self, id_hash: u64) -> bool {
        self.recent_ids.iter().any(|(h, _)| *h == id_hash)
    }

    /// Adds an event id hash (with its event time; `i64::MIN` for ids without one) to the
    /// window, forgetting the oldest beyond `window` and raising the floor to their times.
    ///
    /// A burst of ids at one event time (an order of many lines, all stamped alike) is kept
    /// whole, up to [`BURST_FACTOR`] times `window`: forgetting one of them would raise the
    /// floor to the time the burst is still being written at, and refuse its next lines as
    /// possible replays.
    pub fn remember(&mut self, id_hash: u64, timestamp_ms: i64, window: usize) {
        self.recent_ids.push_back((id_hash, timestamp_ms));
        if self.recent_ids.len() <= window {
            return;
        }
        let newest = self
            .recent_ids
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(i64::MIN);
        let cap = window.saturating_mul(BURST_FACTOR);
        while self.recent_ids.len() > window {
            let Some(&(_, oldest)) = self.recent_ids.front() else {
                break;
            };
            if oldest != i64::MIN && oldest >= newest && self.recent_ids.len() <= cap {
                break;
            }
            self.recent_ids.pop_front();
            if oldest != i64::MIN {
                self.dedupe_floor_ms = Some(self.dedupe_floor_ms.map_or(oldest, |f| f.max(oldest)));
            }
        }
    }

    /// Checks internal consistency after decoding (a corrupt record must not cause a panic).
    pub fn is_consistent(&self, params: &FeatureParams) -> bool {
        self.state.is_consistent(params)
            && self.affinity.is_consistent()
            && self.base.as_ref().is_none_or(|b| b.is_consistent(params))
            && self.history.len() as u64 <= self.version
    }
}

#[cfg(test)]
mod tests;
