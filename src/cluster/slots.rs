//! Redis Cluster's key → slot function and Persona's slot → partition ranges.
//!
//! A customer's slot is `CRC16(id) mod 16384` (CRC16/XMODEM, as Redis), hashing only the part
//! between the first `{` and the next `}` when that part is not empty (Redis's hash-tag rule).
//! `P` partitions each cover a contiguous range of slots: partition `p` covers
//! `[p·16384/P, (p+1)·16384/P)`.

/// Slots in a Redis cluster.
pub const SLOTS: u16 = 16384;

/// The largest partition count a cluster may have: one slot each.
pub const MAX_PARTITIONS: u16 = SLOTS;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster hashes keys
/// with.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key, with Redis's hash-tag rule: if the key has a `{` followed later by a `}`
/// with at least one byte between them, only those bytes are hashed.
///
/// ```
/// assert_eq!(persona::key_slot(b"123456789"), 12739);
/// assert_eq!(persona::key_slot(b"{user1000}.following"), persona::key_slot(b"user1000"));
/// ```
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOTS
}

/// The partition of `slot` among `partitions` (1 ..= 16384) contiguous ranges.
pub fn partition_of_slot(slot: u16, partitions: u16) -> u16 {
    let p = u32::from(partitions.clamp(1, MAX_PARTITIONS));
    ((u32::from(slot % SLOTS) * p) / u32::from(SLOTS)) as u16
}

/// The slots partition `p` of `partitions` covers: `first ..= last`.
pub fn slot_range(p: u16, partitions: u16) -> (u16, u16) {
    let n = u32::from(partitions.clamp(1, MAX_PARTITIONS));
    let p = u32::from(p).min(n - 1);
    // The smallest slot s with s·n / 16384 ≥ p is ceil(p·16384 / n).
    let first = (p * u32::from(SLOTS)).div_ceil(n);
    let next = ((p + 1) * u32::from(SLOTS)).div_ceil(n);
    (first as u16, (next - 1) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from Redis's own `CLUSTER KEYSLOT` (and the cluster spec's check value).
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b""), 0);
        // The hash tag: only the first {...} with something inside counts.
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn partitions_cover_every_slot_once_in_order() {
        for partitions in [1u16, 2, 3, 7, 64, 100, 1000, 16383, 16384] {
            let mut next = 0u32;
            for p in 0..partitions {
                let (first, last) = slot_range(p, partitions);
                assert_eq!(u32::from(first), next, "P = {partitions}, p = {p}");
                assert!(last >= first);
                for s in [first, last] {
                    assert_eq!(partition_of_slot(s, partitions), p);
                }
                next = u32::from(last) + 1;
            }
            assert_eq!(next, u32::from(SLOTS));
        }
    }
}
