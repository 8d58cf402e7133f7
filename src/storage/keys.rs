//! Key layout. Everything lives in sled's default tree, partitioned by a one-byte prefix, so that
//! one `apply_batch` commits profiles, index and model state atomically (sled batches are atomic
//! per tree, and are recovered all-or-nothing after a crash).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `M` | `M` + name (`format`, `config`, `crypt`); `Mcluster/` + partition (u16 big-endian) | metadata (see `docs/storage-format.md`); a cluster node's applied position in that partition's log (u64 big-endian) |
//! | `S` | `S` | the current [`crate::model::ModelState`] record |
//! | `P` | `P` + customer id (UTF-8) | a [`super::record::ProfileRecord`] |
//! | `G` | `G` + segment (u16 big-endian) + customer id | store format 1 only: the segment membership index, dropped when such a store is opened (format 2 reads members from the records) |
//! | `V` | `V` + model version (u64 big-endian) | a model-state snapshot |
//! | `Q` | `Qm`; `Qc` + chunk (u32 big-endian); `Qd` + sequence (u64 big-endian) | the persisted expiry queue ([`super::queue`]) |
//! | `K` | `K` + hash (u64 big-endian) + customer id (UTF-8) | empty: the customer is in the sample the segments are fitted on |
//! | `H` | `H` + deadline (i64 as order-preserving u64, big-endian) + customer id (UTF-8) | a positive training example held until its deadline: its raw features, `Vec<f32>` in the versioned codec |
//! | `R` | `R` + time (i64 as order-preserving u64, big-endian) + customer id (UTF-8) | a sampled customer's refit row as of that time ([`crate::storage::SampledRow`]: target and event counts, consent to profiling, the time-dependent state and the raw features), in the versioned codec; the propensity is refitted on these (`src/pipeline/cohorts.rs`); written when the block of that time closes (the open block's rows are rebuilt from the records at open) |
//! | `C` | `C` + time + chunk (u32 big-endian) | no longer written: whole cohorts of the previous release, removed when such a store is opened |
//! | `T` | `T` + first firing id (u64 big-endian) | one batch's trigger firings (the outbox, `triggers/`), `Vec<Fired>` |
//! | `D` | `D` + trigger name | a trigger defined at run time, JSON |
//! | `W` | `W` + deadline (as in `H`) + customer id (UTF-8) | no longer written: the refit window of the previous release, removed when such a store is opened |
//!
//! Format 2 writes no `G` key: keeping the index cost one or two more sled writes for every
//! event that moved a customer between segments (see `docs/bench-history.md`, "no segment-membership index").

/// Prefix of metadata keys.
pub const META: u8 = b'M';
/// Key of the store's format version.
pub const META_FORMAT: &[u8] = b"Mformat";
/// Key of the fingerprint of the settings fixed at creation.
pub const META_CONFIG: &[u8] = b"Mconfig";
/// Key of the record saying the store is encrypted (`storage/encryption.rs`).
pub const META_CRYPT: &[u8] = b"Mcrypt";
/// Prefix of a cluster node's applied positions: `Mcluster/` + partition (u16 big-endian) →
/// the sequence (u64 big-endian) of the last round of that partition's log the store applied
/// (`src/cluster/log.rs`), written in the same commit as the round.
pub const META_CLUSTER: &[u8] = b"Mcluster/";

/// The key of partition `p`'s applied position.
#[cfg(feature = "cluster")]
pub fn cluster_applied(p: u16) -> Vec<u8> {
    let mut key = META_CLUSTER.to_vec();
    key.extend_from_slice(&p.to_be_bytes());
    key
}

/// Key of the model state.
pub const MODEL: &[u8] = b"S";
/// Prefix of profile records.
pub const PROFILE: u8 = b'P';
/// Prefix of the segment-membership entries of store format 1 (no longer written; see
/// [`crate::storage::LEGACY_INDEXED_FORMAT`]).
pub const MEMBER: u8 = b'G';

/// Prefix of model snapshots.
pub const SNAPSHOT: u8 = b'V';

/// Prefix of the persisted expiry queue (see [`super::queue`]).
pub const QUEUE: u8 = b'Q';

/// Prefix of the segment-fitting sample's members.
pub const SAMPLE: u8 = b'K';

/// Prefix of the trigger outbox: `T` + the id (u64 big-endian) of the first firing of a
/// batch → the id after the batch and its firings, `(u64, Vec<`[`crate::Fired`]`>)` in the
/// versioned codec.
pub const TRIGGER: u8 = b'T';

/// Prefix of the triggers defined at run time: `D` + name → the definition, JSON
/// ([`crate::Trigger`]).
pub const TRIGGER_DEF: u8 = b'D';

/// Key of the outbox's firings of a batch whose first firing is `id`.
pub fn trigger(id: u64) -> [u8; 9] {
    let mut k = [TRIGGER; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The first firing id of a trigger-outbox key.
pub fn parse_trigger(key: &[u8]) -> Option<u64> {
    match key {
        [TRIGGER, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// Key of the run-time trigger definition `name`.
pub fn trigger_def(name: &str) -> Vec<u8> {
    let mut k = vec![TRIGGER_DEF];
    k.extend_from_slice(name.as_bytes());
    k
}

/// Prefix of the trigger consumers' positions (`A` ‖ consumer name → the id of the last firing
/// the consumer acknowledged, u64 big-endian).
pub const TRIGGER_ACK: u8 = b'A';

/// Key of the position of the trigger consumer `name`.
pub fn trigger_ack(name: &str) -> Vec<u8> {
    let mut k = vec![TRIGGER_ACK];
    k.extend_from_slice(name.as_bytes());
    k
}

/// Prefix of the feedback ledger: `F` ‖ customer id ‖ 0x00 ‖ model version of the batch (u64
/// big-endian) ‖ position in the batch (u32 big-endian) → a strategy outcome of the customer
/// (`storage/feedback.rs`). Customer ids hold no control characters, so the 0x00 ends the id.
pub const FEEDBACK: u8 = b'F';

/// Key of the `n`-th feedback outcome of `customer` in the batch committed as `version`.
#[cfg(any(test, feature = "testing"))]
pub fn feedback(customer: &str, version: u64, n: u32) -> Vec<u8> {
    feedback_of(&feedback_prefix(customer), version, n)
}

/// The key under a customer's ledger `prefix` ([`feedback_prefix`], or an encrypted store's
/// [`token_prefix`] of [`FEEDBACK`]) of their `n`-th outcome in the batch of `version`.
pub fn feedback_of(prefix: &[u8], version: u64, n: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 12);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&version.to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The prefix of every feedback-ledger key of `customer`.
pub fn feedback_prefix(customer: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(customer.len() + 14);
    k.push(FEEDBACK);
    k.extend_from_slice(customer.as_bytes());
    k.push(0);
    k
}

/// Bytes of a token (a keyed hash of a customer id), which name the customer in the keys of an
/// encrypted store instead of the id.
pub const TOKEN_BYTES: usize = 16;

/// `prefix` ‖ `name`: the key of an encrypted store's profile (`P`) and the prefix of its
/// feedback ledger (`F`), `name` being the customer's token.
pub fn token_prefix(prefix: u8, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(prefix);
    k.extend_from_slice(name);
    k
}

/// Where the bytes naming the customer start in a key of an encrypted store with this prefix
/// (`P`, `F`: after the prefix; `H`, `R`, `K`: after the prefix and a u64), if keys of that
/// prefix name one.
pub fn token_offset(prefix: u8) -> Option<usize> {
    match prefix {
        PROFILE | FEEDBACK => Some(1),
        HELD | SAMPLED_ROW | SAMPLE => Some(9),
        _ => None,
    }
}

/// Prefix of the positive training examples held until their deadline.
pub const HELD: u8 = b'H';

/// Key of the positive example of `customer_id` held until `deadline_ms`. The deadline is
/// stored with its sign bit flipped, so that keys sort by deadline.
#[cfg(any(test, feature = "testing"))]
pub fn held(deadline_ms: i64, customer_id: &str) -> Vec<u8> {
    time_and_id(HELD, deadline_ms, customer_id)
}

/// `prefix` ‖ `t_ms` with its sign bit flipped (so keys sort by time) ‖ `customer_id`: the
/// layout of `H` and `R` keys.
#[cfg(any(test, feature = "testing"))]
fn time_and_id(prefix: u8, t_ms: i64, customer_id: &str) -> Vec<u8> {
    time_and_name(prefix, t_ms, customer_id.as_bytes())
}

/// `prefix` ‖ `t_ms` with its sign bit flipped ‖ `name` (an id, or an encrypted store's
/// token): `H` and `R` keys.
pub fn time_and_name(prefix: u8, t_ms: i64, name: &[u8]) -> Vec<u8> {
    u64_and_name(prefix, (t_ms as u64) ^ (1 << 63), name)
}

/// `prefix` ‖ `n` big-endian ‖ `name`: `K` keys (and, through [`time_and_name`], `H` and `R`).
pub fn u64_and_name(prefix: u8, n: u64, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + name.len());
    k.push(prefix);
    k.extend_from_slice(&n.to_be_bytes());
    k.extend_from_slice(name);
    k
}

/// The time (sign bit restored) of an `H` or `R` key, whatever names the customer in it.
pub fn time_of(key: &[u8]) -> Option<i64> {
    let n = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    Some((n ^ (1 << 63)) as i64)
}

/// The u64 after the prefix of a `K` key (the sample hash).
pub fn u64_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

/// The deadline and customer id of a held-example key.
#[cfg(any(test, feature = "testing"))]
pub fn parse_held(key: &[u8]) -> Option<(i64, &str)> {
    match key {
        [HELD, rest @ ..] => deadline_and_id(rest),
        _ => None,
    }
}

/// Prefix of the refit window of the previous release (`W` ‖ deadline ‖ customer id), no
/// longer written: its keys are removed when such a store is opened.
pub const LEGACY_REFIT: u8 = b'W';

/// Prefix of the previous release's whole cohorts (`C` ‖ time ‖ chunk), no longer written:
/// their keys are removed when such a store is opened.
pub const COHORT: u8 = b'C';

/// Prefix of the sampled customers' refit rows.
pub const SAMPLED_ROW: u8 = b'R';

/// Key of `customer_id`'s refit row as of `at_ms` (the time with its sign bit flipped, so that
/// keys sort by time).
#[cfg(any(test, feature = "testing"))]
pub fn sampled_row(at_ms: i64, customer_id: &str) -> Vec<u8> {
    time_and_id(SAMPLED_ROW, at_ms, customer_id)
}

/// The time and customer id of a refit-row key.
#[cfg(any(test, feature = "testing"))]
pub fn parse_sampled_row(key: &[u8]) -> Option<(i64, &str)> {
    match key {
        [SAMPLED_ROW, rest @ ..] => deadline_and_id(rest),
        _ => None,
    }
}

/// A deadline with its sign bit flipped, then a customer id (the tail of an `H` key).
#[cfg(any(test, feature = "testing"))]
fn deadline_and_id(rest: &[u8]) -> Option<(i64, &str)> {
    let (d, id) = u64_and_id(rest)?;
    Some(((d ^ (1 << 63)) as i64, id))
}

/// A big-endian u64 followed by a non-empty UTF-8 customer id (the tail of a `K` or `H` key).
#[cfg(any(test, feature = "testing"))]
fn u64_and_id(rest: &[u8]) -> Option<(u64, &str)> {
    if rest.len() <= 8 {
        return None;
    }
    let (n, id) = rest.split_at(8);
    let n = u64::from_be_bytes(n.try_into().ok()?);
    Some((n, std::str::from_utf8(id).ok()?))
}

/// Key of a member of the segment-fitting sample.
#[cfg(any(test, feature = "testing"))]
pub fn sample(hash: u64, customer_id: &str) -> Vec<u8> {
    u64_and_name(SAMPLE, hash, customer_id.as_bytes())
}

/// The hash and customer id of a sample key.
#[cfg(any(test, feature = "testing"))]
pub fn parse_sample(key: &[u8]) -> Option<(u64, &str)> {
    match key {
        [SAMPLE, rest @ ..] => u64_and_id(rest),
        _ => None,
    }
}

/// Key of the model snapshot taken at `version`.
pub fn snapshot(version: u64) -> [u8; 9] {
    let mut k = [SNAPSHOT; 9];
    k[1..].copy_from_slice(&version.to_be_bytes());
    k
}

/// The version of a snapshot key.
pub fn parse_snapshot(key: &[u8]) -> Option<u64> {
    match key {
        [SNAPSHOT, rest @ ..] if rest.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(rest);
            Some(u64::from_be_bytes(b))
        }
        _ => None,
    }
}

/// Key of a customer's profile record in a plain store (a store names its customers through
/// `Store::profile_key`; this is for the raw-sled baseline and tests).
#[cfg(any(test, feature = "testing", feature = "cli"))]
pub fn profile(customer_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + customer_id.len());
    k.push(PROFILE);
    k.extend_from_slice(customer_id.as_bytes());
    k
}

/// Key of a (format 1) membership entry.
#[cfg(any(test, feature = "testing"))]
pub fn member(segment: u16, customer_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + customer_id.len());
    k.push(MEMBER);
    k.extend_from_slice(&segment.to_be_bytes());
    k.extend_from_slice(customer_id.as_bytes());
    k
}

/// The customer id of a profile key.
#[cfg(any(test, feature = "testing"))]
pub fn parse_profile(key: &[u8]) -> Option<&str> {
    match key.split_first() {
        Some((&PROFILE, rest)) if !rest.is_empty() => std::str::from_utf8(rest).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(profile("c1"), b"Pc1");
        assert_eq!(parse_profile(b"Pc1"), Some("c1"));
        assert_eq!(parse_profile(b"P"), None);
        let k = member(258, "c9");
        assert_eq!(k, b"G\x01\x02c9");
        assert_eq!(parse_snapshot(&snapshot(7)), Some(7));
        assert_eq!(parse_snapshot(b"V12"), None);
        assert_eq!(parse_sample(&sample(7, "c9")), Some((7, "c9")));
        for d in [i64::MIN, -1, 0, 1_700_000_000_000, i64::MAX] {
            assert_eq!(parse_held(&held(d, "c9")), Some((d, "c9")));
        }
        assert!(held(-1, "a") < held(0, "a") && held(0, "b") < held(1, "a"));
        assert_eq!(parse_held(b"H12345678"), None);
        for t in [i64::MIN, -1, 0, 1_700_000_000_000, i64::MAX] {
            assert_eq!(parse_sampled_row(&sampled_row(t, "c1")), Some((t, "c1")));
        }
        assert!(sampled_row(-1, "b") < sampled_row(0, "a"));
        assert_eq!(parse_sampled_row(&sampled_row(5, "")), None);
        assert_eq!(parse_sample(b"K1234567"), None);
    }
}
