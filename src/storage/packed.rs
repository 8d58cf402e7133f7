//! The compact field encodings of profile record format version 4 (see
//! [`super::record::PROFILE_FORMAT_VERSION`]): the same fields as version 3, each stored
//! losslessly in fewer bytes. Measured on the default `persona bench` workload (100k customers,
//! 1M events), version 3 records average 1,053 bytes, of which:
//!
//! - the pending example's 61 `f32` features take 255 bytes, and about 15 of them are non-zero;
//! - the state's 16 category affinities (`f64`) take 129 bytes with about 3 non-zero, and its
//!   per-kind decayed counters and lifetime sums are mostly zero too;
//! - every op-log entry takes about 27 bytes, most of them a 9-byte timestamp and an 8-byte
//!   value that is usually exactly 1.
//!
//! So version 4 stores float arrays as a **sparse block** and the op log's timestamps as
//! differences, and its values by how many bytes they need:
//!
//! ```text
//! sparse block (one bincode byte string; varints as in bincode's standard configuration):
//!   varint n                   number of values
//!   ceil(n / 8) bytes          bitmap, bit i (LSB first) set when value i has non-zero bits
//!   k × value, little-endian   the values whose bit is set, in order (4 bytes for f32, 8 for f64)
//!
//! state:   anchor_ms, first/last seen and last purchase as differences to anchor_ms,
//!          event_count, kind_counts, one sparse f64 block (kind_decayed ++ [spend, refunded,
//!          decayed_spend, view_seconds, rating_sum] ++ categories), attributes
//! pending: taken_at_ms, features as a sparse f32 block
//! op log:  entries; an event's time as the difference to the previous event's in the log
//!          (the first: to 0), its value as One | F32 | F64 (whichever is exact)
//! ```
//!
//! "Non-zero" compares bits, so `-0.0` and NaNs keep their exact bits: decoding gives back
//! exactly what was encoded (tests below, and `tests/record_format.rs`). Decoding checks every
//! length against the bytes present, so a damaged field is an error, never a panic or a large
//! allocation.

use super::window::{push_varint, read_varint_of};
use crate::event::EventKind;
use crate::features::{AttrValue, CompactEvent, ProfileOp, ProfileState};
use crate::storage::record::{HistoryEntry, PendingExample};
use serde::de::{Error as _, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;

/// Most values a sparse block may claim (a bound on allocations from damaged lengths; far above
/// any real array: 61 features, 16 categories by default).
const MAX_SPARSE_VALUES: u64 = 1 << 16;

/// Lifetime sums and totals stored in the state's sparse block after the decayed counters.
const STATE_SCALARS: usize = 5;

/// A float type a sparse block holds.
trait Packable: Copy + Sized {
    /// Bytes per stored value.
    const WIDTH: usize;
    /// Whether all bits are zero (`+0.0`), the values a block leaves out.
    fn is_zero_bits(self) -> bool;
    /// The zero value.
    fn zero() -> Self;
    /// Appends the value, little-endian.
    fn write(self, out: &mut Vec<u8>);
    /// Reads a value from exactly `WIDTH` bytes.
    fn read(bytes: &[u8]) -> Self;
}

/// Implements [`Packable`] for a float type of `$width` bytes.
macro_rules! packable {
    ($t:ty, $width:literal) => {
        impl Packable for $t {
            const WIDTH: usize = $width;
            fn is_zero_bits(self) -> bool {
                self.to_bits() == 0
            }
            fn zero() -> $t {
                0.0
            }
            fn write(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read(bytes: &[u8]) -> $t {
                let mut le = [0u8; $width];
                le.copy_from_slice(bytes);
                <$t>::from_le_bytes(le)
            }
        }
    };
}

packable!(f32, 4);
packable!(f64, 8);

/// The sparse block of `values` (see the module docs).
fn sparse_bytes<T: Packable>(values: impl ExactSizeIterator<Item = T> + Clone) -> Vec<u8> {
    let n = values.len();
    let mut out = Vec::with_capacity(3 + n.div_ceil(8) + n * T::WIDTH / 4);
    push_varint(&mut out, n as u64);
    let bitmap_at = out.len();
    out.resize(bitmap_at + n.div_ceil(8), 0);
    for (i, v) in values.clone().enumerate() {
        if !v.is_zero_bits() {
            out[bitmap_at + i / 8] |= 1 << (i % 8);
        }
    }
    for v in values.filter(|v| !v.is_zero_bits()) {
        v.write(&mut out);
    }
    out
}

/// Parses [`sparse_bytes`] output; the whole input must be used.
fn sparse_from_bytes<T: Packable>(mut bytes: &[u8]) -> Result<Vec<T>, String> {
    const WHAT: &str = "sparse float block";
    let n = read_varint_of(&mut bytes, WHAT)?;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n as u64 <= MAX_SPARSE_VALUES && n.div_ceil(8) <= bytes.len())
        .ok_or_else(|| format!("{WHAT} claims {n} values in {} bytes", bytes.len()))?;
    let (bitmap, values) = bytes.split_at(n.div_ceil(8));
    if n % 8 != 0 && bitmap.last().is_some_and(|b| b >> (n % 8) != 0) {
        return Err(format!("{WHAT} marks values past its {n}"));
    }
    let set = bitmap
        .iter()
        .map(|b| b.count_ones() as usize)
        .sum::<usize>();
    if values.len() != set * T::WIDTH {
        return Err(format!(
            "{WHAT} marks {set} non-zero values but holds {} bytes of them",
            values.len()
        ));
    }
    let mut stored = values.chunks_exact(T::WIDTH);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let bit = bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
        // `set` values are present for the `set` bits, so `next` has one for every set bit.
        out.push(match bit.then(|| stored.next()).flatten() {
            Some(v) => T::read(v),
            None => T::zero(),
        });
    }
    Ok(out)
}

/// Borrowed floats, serialized as one sparse block.
struct SparseRef<'a, T>(&'a [T]);

impl<T: Packable> Serialize for SparseRef<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&sparse_bytes(self.0.iter().copied()))
    }
}

/// Floats read from one sparse block.
struct Sparse<T>(Vec<T>);

impl<'de, T: Packable> Deserialize<'de> for Sparse<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SparseVisitor<T>(PhantomData<T>);
        impl<T: Packable> Visitor<'_> for SparseVisitor<T> {
            type Value = Sparse<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sparse float block")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                sparse_from_bytes(v).map(Sparse).map_err(E::custom)
            }
        }
        d.deserialize_bytes(SparseVisitor(PhantomData))
            .map_err(D::Error::custom)
    }
}

/// A pending example as version 4 writes it (borrowed).
#[derive(Serialize)]
pub(super) struct PendingRef<'a> {
    taken_at_ms: i64,
    features: SparseRef<'a, f32>,
}

impl<'a> PendingRef<'a> {
    /// The stored form of `p`.
    pub(super) fn new(p: &'a PendingExample) -> PendingRef<'a> {
        PendingRef {
            taken_at_ms: p.taken_at_ms,
            features: SparseRef(&p.features),
        }
    }
}

/// A pending example as version 4 stores it.
#[derive(Deserialize)]
struct PendingV4 {
    taken_at_ms: i64,
    features: Sparse<f32>,
}

/// A pending example read from a version-4 record.
#[derive(Deserialize)]
#[serde(from = "PendingV4")]
pub(super) struct PackedPending(pub(super) PendingExample);

impl From<PendingV4> for PackedPending {
    fn from(p: PendingV4) -> PackedPending {
        PackedPending(PendingExample {
            taken_at_ms: p.taken_at_ms,
            features: p.features.0,
        })
    }
}

/// The difference of an optional time to the anchor (wrapping: any i64 round-trips).
fn relative(t: Option<i64>, anchor: i64) -> Option<i64> {
    t.map(|t| t.wrapping_sub(anchor))
}

/// A state's floats in the order of its sparse block (see the module docs).
fn state_floats(s: &ProfileState) -> Vec<f64> {
    let mut floats = Vec::with_capacity(EventKind::COUNT + STATE_SCALARS + s.categories.len());
    floats.extend_from_slice(&s.kind_decayed);
    floats.extend_from_slice(&[
        s.spend,
        s.refunded,
        s.decayed_spend,
        s.view_seconds,
        s.rating_sum,
    ]);
    floats.extend_from_slice(&s.categories);
    floats
}

/// A state's floats serialized as one sparse block.
struct StateFloatsRef<'a>(&'a ProfileState);

impl Serialize for StateFloatsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&sparse_bytes(state_floats(self.0).into_iter()))
    }
}

/// A profile state as version 4 writes it (borrowed).
#[derive(Serialize)]
pub(super) struct StateRef<'a> {
    anchor_ms: i64,
    first_seen_ms: Option<i64>,
    last_seen_ms: Option<i64>,
    last_purchase_ms: Option<i64>,
    event_count: u64,
    kind_counts: &'a [u64; EventKind::COUNT],
    floats: StateFloatsRef<'a>,
    attributes: &'a BTreeMap<String, AttrValue>,
}

impl<'a> StateRef<'a> {
    /// The stored form of `s`.
    pub(super) fn new(s: &'a ProfileState) -> StateRef<'a> {
        StateRef {
            anchor_ms: s.anchor_ms,
            first_seen_ms: relative(s.first_seen_ms, s.anchor_ms),
            last_seen_ms: relative(s.last_seen_ms, s.anchor_ms),
            last_purchase_ms: relative(s.last_purchase_ms, s.anchor_ms),
            event_count: s.event_count,
            kind_counts: &s.kind_counts,
            floats: StateFloatsRef(s),
            attributes: &s.attributes,
        }
    }
}

/// A profile state as version 4 stores it.
#[derive(Deserialize)]
struct StateV4 {
    anchor_ms: i64,
    first_seen_ms: Option<i64>,
    last_seen_ms: Option<i64>,
    last_purchase_ms: Option<i64>,
    event_count: u64,
    kind_counts: [u64; EventKind::COUNT],
    floats: Sparse<f64>,
    attributes: BTreeMap<String, AttrValue>,
}

/// A profile state read from a version-4 record.
#[derive(Deserialize)]
#[serde(try_from = "StateV4")]
pub(super) struct PackedState(pub(super) ProfileState);

impl TryFrom<StateV4> for PackedState {
    type Error = String;
    fn try_from(s: StateV4) -> Result<PackedState, String> {
        let mut floats = s.floats.0;
        if floats.len() < EventKind::COUNT + STATE_SCALARS {
            return Err(format!(
                "a profile state holds {} floats; it needs at least {}",
                floats.len(),
                EventKind::COUNT + STATE_SCALARS
            ));
        }
        let categories = floats.split_off(EventKind::COUNT + STATE_SCALARS);
        let kind_decayed = std::array::from_fn(|i| floats[i]);
        let scalar = |j: usize| floats[EventKind::COUNT + j];
        let absolute = |t: Option<i64>| t.map(|d| s.anchor_ms.wrapping_add(d));
        Ok(PackedState(ProfileState {
            first_seen_ms: absolute(s.first_seen_ms),
            last_seen_ms: absolute(s.last_seen_ms),
            last_purchase_ms: absolute(s.last_purchase_ms),
            anchor_ms: s.anchor_ms,
            event_count: s.event_count,
            kind_counts: s.kind_counts,
            kind_decayed,
            spend: scalar(0),
            refunded: scalar(1),
            decayed_spend: scalar(2),
            view_seconds: scalar(3),
            rating_sum: scalar(4),
            categories,
            attributes: s.attributes,
        }))
    }
}

/// An event value in the fewest bytes that keep it exact.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Value {
    /// Exactly 1.0 (views without seconds, clicks, cart adds, likes…).
    One,
    /// A value an `f32` holds exactly.
    F32(f32),
    /// Any other value.
    F64(f64),
}

impl Value {
    fn of(v: f64) -> Value {
        if v.to_bits() == 1.0f64.to_bits() {
            Value::One
        } else if f64::from(v as f32).to_bits() == v.to_bits() {
            Value::F32(v as f32)
        } else {
            Value::F64(v)
        }
    }

    fn get(self) -> f64 {
        match self {
            Value::One => 1.0,
            Value::F32(v) => f64::from(v),
            Value::F64(v) => v,
        }
    }
}

/// An op as version 4 writes it (borrowed).
#[derive(Serialize)]
enum OpRef<'a> {
    Event {
        dt: i64,
        kind: EventKind,
        value: Value,
        bucket: Option<u16>,
    },
    SetAttributes(&'a Vec<(String, AttrValue)>),
}

/// An op as version 4 stores it; the same layout as [`OpRef`].
#[derive(Deserialize)]
enum OpV4 {
    Event {
        dt: i64,
        kind: EventKind,
        value: Value,
        bucket: Option<u16>,
    },
    SetAttributes(Vec<(String, AttrValue)>),
}

/// An op-log entry as version 4 writes it (borrowed).
#[derive(Serialize)]
struct EntryRef<'a> {
    op: OpRef<'a>,
    segment: Option<u16>,
    propensity: f32,
}

/// An op-log entry as version 4 stores it.
#[derive(Deserialize)]
struct EntryV4 {
    op: OpV4,
    segment: Option<u16>,
    propensity: f32,
}

/// An op log as version 4 writes it (borrowed): a sequence of entries, event times as
/// differences.
pub(super) struct HistoryRef<'a>(pub(super) &'a VecDeque<HistoryEntry>);

impl Serialize for HistoryRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut prev = 0i64;
        s.collect_seq(self.0.iter().map(|entry| EntryRef {
            op: match &entry.op {
                ProfileOp::Event(e) => {
                    let dt = e.timestamp_ms.wrapping_sub(prev);
                    prev = e.timestamp_ms;
                    OpRef::Event {
                        dt,
                        kind: e.kind,
                        value: Value::of(e.value),
                        bucket: e.bucket,
                    }
                }
                ProfileOp::SetAttributes(attrs) => OpRef::SetAttributes(attrs),
            },
            segment: entry.segment,
            propensity: entry.propensity,
        }))
    }
}

/// An op log read from a version-4 record.
#[derive(Deserialize)]
#[serde(from = "Vec<EntryV4>")]
pub(super) struct PackedHistory(pub(super) VecDeque<HistoryEntry>);

impl From<Vec<EntryV4>> for PackedHistory {
    fn from(entries: Vec<EntryV4>) -> PackedHistory {
        let mut prev = 0i64;
        PackedHistory(
            entries
                .into_iter()
                .map(|entry| HistoryEntry {
                    op: match entry.op {
                        OpV4::Event {
                            dt,
                            kind,
                            value,
                            bucket,
                        } => {
                            prev = prev.wrapping_add(dt);
                            ProfileOp::Event(CompactEvent {
                                timestamp_ms: prev,
                                kind,
                                value: value.get(),
                                bucket,
                            })
                        }
                        OpV4::SetAttributes(attrs) => ProfileOp::SetAttributes(attrs),
                    },
                    segment: entry.segment,
                    propensity: entry.propensity,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Packable + PartialEq + fmt::Debug>(values: &[T]) -> Vec<u8> {
        let bytes = sparse_bytes(values.iter().copied());
        let back: Vec<T> = sparse_from_bytes(&bytes).expect("decodes");
        assert_eq!(back.len(), values.len());
        for (a, b) in back.iter().zip(values) {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        bytes
    }

    #[test]
    fn sparse_blocks_are_byte_exact_and_keep_every_bit() {
        let bytes = round_trip(&[0.0f32, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.0]);
        let mut expected = vec![9, 0b0000_0010, 0b0000_0001];
        expected.extend_from_slice(&1.5f32.to_le_bytes());
        expected.extend_from_slice(&(-0.0f32).to_le_bytes());
        assert_eq!(bytes, expected);
        round_trip::<f64>(&[]);
        round_trip(&[f64::NAN, f64::INFINITY, f64::MIN_POSITIVE, 0.0, -1e300]);
        let nan = f64::from_bits(0x7ff8_0000_dead_beef);
        let back: Vec<f64> = sparse_from_bytes(&sparse_bytes([nan].into_iter())).expect("decodes");
        assert_eq!(back[0].to_bits(), nan.to_bits());
    }

    #[test]
    fn damaged_sparse_blocks_are_errors() {
        let values: Vec<f64> = (0..20)
            .map(|i| if i % 3 == 0 { i as f64 } else { 0.0 })
            .collect();
        let bytes = sparse_bytes(values.iter().copied());
        for cut in 0..bytes.len() {
            assert!(
                sparse_from_bytes::<f64>(&bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(sparse_from_bytes::<f64>(&trailing).is_err());
        // A bit past the claimed length.
        assert!(sparse_from_bytes::<f32>(&[1, 0b10, 0, 0, 0, 0]).is_err());
        // A huge claimed length is refused before anything is allocated.
        let mut huge = vec![0xFC];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend(std::iter::repeat_n(0, 64));
        assert!(sparse_from_bytes::<f32>(&huge).is_err());
    }

    #[test]
    fn values_take_the_fewest_exact_bytes() {
        for (v, expected) in [
            (1.0, Value::One),
            (0.5, Value::F32(0.5)),
            (19.99, Value::F64(19.99)),
            (-0.0, Value::F32(-0.0)),
        ] {
            let got = Value::of(v);
            assert_eq!(format!("{got:?}"), format!("{expected:?}"));
            assert_eq!(got.get().to_bits(), f64::to_bits(v));
        }
        let nan = f64::from_bits(0x7ff8_0000_dead_beef);
        assert_eq!(Value::of(nan).get().to_bits(), nan.to_bits());
    }
}
