//! The de-duplication window of a profile record (format version 2): one bincode byte string
//! instead of a sequence of `(u64, i64)` pairs, so it is written and read as a block.
//!
//! Content of the byte string (integers as in bincode's standard configuration: a varint is one
//! byte below 251, else `0xFB` + u16, `0xFC` + u32, `0xFD` + u64, little-endian; zig-zag maps a
//! signed `v` to `(v << 1) ^ (v >> 63)`):
//!
//! ```text
//! varint n                   number of ids
//! n × u64 little-endian      the xxh3 hashes, oldest first (fixed width: hashes do not shrink)
//! n × zig-zag varint         the event times: the oldest as is, each next one as the
//!                            difference to the one before it (wrapping)
//! ```
//!
//! Decoding checks every length against the bytes present and refuses trailing bytes, so a
//! damaged window is a decoding error, never a panic or a large allocation.

use serde::de::{Error as _, Visitor};
use serde::{Deserializer, Serializer};
use std::collections::VecDeque;
use std::fmt;

/// Appends `v` as a bincode varint.
pub(super) fn push_varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        // Below 251, so the cast keeps the value.
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(0xFB);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(0xFC);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(0xFD);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Reads a bincode varint from the front of `bytes`, advancing it. `what` names the byte
/// string in errors.
#[inline]
pub(super) fn read_varint_of(bytes: &mut &[u8], what: &str) -> Result<u64, String> {
    let short = || format!("{what} ends inside a number");
    let (&first, rest) = bytes.split_first().ok_or_else(short)?;
    let (value, rest) = match first {
        0..=250 => (u64::from(first), rest),
        0xFB => {
            let (b, rest) = rest.split_first_chunk::<2>().ok_or_else(short)?;
            (u64::from(u16::from_le_bytes(*b)), rest)
        }
        0xFC => {
            let (b, rest) = rest.split_first_chunk::<4>().ok_or_else(short)?;
            (u64::from(u32::from_le_bytes(*b)), rest)
        }
        0xFD => {
            let (b, rest) = rest.split_first_chunk::<8>().ok_or_else(short)?;
            (u64::from_le_bytes(*b), rest)
        }
        other => return Err(format!("{what} holds an invalid number tag {other:#04x}")),
    };
    *bytes = rest;
    Ok(value)
}

/// [`read_varint_of`] for the window.
#[inline]
fn read_varint(bytes: &mut &[u8]) -> Result<u64, String> {
    read_varint_of(bytes, "dedupe window")
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The window's byte-string content (see the module docs).
pub(crate) fn to_bytes(window: &VecDeque<(u64, i64)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + window.len() * 12);
    push_varint(&mut out, window.len() as u64);
    for (hash, _) in window {
        out.extend_from_slice(&hash.to_le_bytes());
    }
    let mut prev = 0i64;
    for (_, t) in window {
        push_varint(&mut out, zigzag(t.wrapping_sub(prev)));
        prev = *t;
    }
    out
}

/// Parses [`to_bytes`] output; the whole input must be used.
pub(crate) fn from_bytes(mut bytes: &[u8]) -> Result<VecDeque<(u64, i64)>, String> {
    let n = read_varint(&mut bytes)?;
    // Every id takes at least 9 bytes (its hash and a one-byte time), which bounds n before
    // anything is allocated.
    let n = usize::try_from(n)
        .ok()
        .filter(|n| n.checked_mul(9).is_some_and(|b| b <= bytes.len()))
        .ok_or_else(|| format!("dedupe window claims {n} ids in {} bytes", bytes.len()))?;
    let (hashes, mut times) = bytes
        .split_at_checked(n * 8)
        .ok_or("dedupe window is shorter than its hashes")?;
    let mut window = VecDeque::with_capacity(n);
    let mut prev = 0i64;
    for chunk in hashes.chunks_exact(8) {
        let mut le = [0u8; 8];
        le.copy_from_slice(chunk);
        let t = prev.wrapping_add(unzigzag(read_varint(&mut times)?));
        window.push_back((u64::from_le_bytes(le), t));
        prev = t;
    }
    if !times.is_empty() {
        return Err(format!(
            "{} trailing bytes after the dedupe window",
            times.len()
        ));
    }
    Ok(window)
}

/// `serialize_with` for the window: one byte string.
pub(crate) fn serialize<S: Serializer>(
    window: &&VecDeque<(u64, i64)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(&to_bytes(window))
}

/// `deserialize_with` for the window.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<VecDeque<(u64, i64)>, D::Error> {
    struct WindowVisitor;
    impl Visitor<'_> for WindowVisitor {
        type Value = VecDeque<(u64, i64)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a dedupe window byte string")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            from_bytes(v).map_err(E::custom)
        }
    }
    d.deserialize_bytes(WindowVisitor).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_byte_exact() {
        let w: VecDeque<(u64, i64)> = [(0x0102_0304_0506_0708, 1000), (7, 1003), (9, i64::MIN)]
            .into_iter()
            .collect();
        let bytes = to_bytes(&w);
        let mut expected = vec![3];
        expected.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
        expected.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
        // 1000 → zig-zag 2000 = 0xFB d0 07; +3 → 6; i64::MIN − 1003 wraps to
        // i64::MAX − 1002 → zig-zag 2^64 − 2006.
        expected.extend_from_slice(&[0xFB, 0xD0, 0x07, 6]);
        expected.push(0xFD);
        expected.extend_from_slice(&(u64::MAX - 2005).to_le_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(from_bytes(&bytes), Ok(w));
        assert_eq!(from_bytes(&[0]), Ok(VecDeque::new()));
    }

    #[test]
    fn damaged_windows_are_errors() {
        let w: VecDeque<(u64, i64)> = (0..20).map(|i| (i * 977, 5_000 + i as i64)).collect();
        let bytes = to_bytes(&w);
        for cut in 0..bytes.len() {
            assert!(from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(from_bytes(&trailing).is_err());
        assert!(from_bytes(&[0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]).is_err());
        assert!(from_bytes(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0xFE]).is_err());
    }
}
