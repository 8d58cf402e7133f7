//! Unit tests of `record`.

use super::*;
use crate::event::EventKind;
use crate::features::CompactEvent;

/// A burst of ids at one time outlives the window (up to `BURST_FACTOR` windows) instead
/// of raising the floor to the time it is still written at; a later time lets it go.
#[test]
fn a_burst_at_one_time_stays_in_the_window() {
    let mut r = ProfileRecord::new(&params());
    for i in 0..10 {
        r.remember(i, 100, 4);
    }
    assert_eq!(r.recent_ids.len(), 10);
    assert_eq!(r.dedupe_floor_ms, None, "no id of the burst left");
    r.remember(99, 101, 4);
    assert_eq!(r.recent_ids.len(), 4);
    assert_eq!(r.dedupe_floor_ms, Some(100));
    // Beyond the cap, the burst's oldest go.
    let mut r = ProfileRecord::new(&params());
    for i in 0..(4 * BURST_FACTOR as u64 + 3) {
        r.remember(i, 7, 4);
    }
    assert_eq!(r.recent_ids.len(), 4 * BURST_FACTOR);
    assert_eq!(r.dedupe_floor_ms, Some(7));
    // Ids without a time (feedback) leave as before.
    let mut r = ProfileRecord::new(&params());
    for i in 0..6 {
        r.remember(i, i64::MIN, 4);
    }
    assert_eq!((r.recent_ids.len(), r.dedupe_floor_ms), (4, None));
}

fn params() -> FeatureParams {
    FeatureParams {
        half_life_ms: 86_400_000.0,
        category_buckets: 4,
    }
}

fn op(i: i64) -> ProfileOp {
    ProfileOp::Event(CompactEvent {
        timestamp_ms: 1_767_225_600_000 + i * 3_600_000,
        kind: EventKind::Purchase,
        value: i as f64,
        bucket: Some((i % 4) as u16),
    })
}

#[test]
fn every_retained_version_replays_exactly() {
    let p = params();
    let mut rec = ProfileRecord::new(&p);
    let mut states = vec![ProfileState::new(&p)];
    for i in 1..=20 {
        rec.apply(op(i), &p, 4);
        rec.set_outcome(Some((i as u16, 0.5)), i as f64 / 100.0);
        states.push(rec.state.clone());
    }
    assert_eq!(rec.version, 20);
    assert_eq!(rec.history.len(), 4);
    assert_eq!(rec.oldest_version(), 17);
    for v in 17..=20u64 {
        let (s, seg, prop) = rec.state_at(v, &p).expect("retained");
        assert_eq!(s, states[v as usize], "version {v}");
        assert_eq!(seg, Some(v as u16));
        assert!((prop - v as f32 / 100.0).abs() < 1e-6);
    }
    assert_eq!(
        rec.state_at(16, &p).unwrap_err(),
        HistoryError::Pruned { oldest: 17 }
    );
    assert_eq!(
        rec.state_at(21, &p).unwrap_err(),
        HistoryError::Future { current: 20 }
    );
}

#[test]
fn unpruned_history_starts_at_version_one() {
    let p = params();
    let mut rec = ProfileRecord::new(&p);
    rec.apply(op(1), &p, 16);
    rec.apply(op(2), &p, 16);
    assert_eq!(rec.oldest_version(), 1);
    assert!(rec.state_at(0, &p).is_err());
    assert_eq!(rec.state_at(1, &p).expect("kept").0.event_count, 1);
}

#[test]
fn dedupe_window_forgets_the_oldest() {
    let p = params();
    let mut rec = ProfileRecord::new(&p);
    for h in 0..5 {
        rec.remember(h, 100 + h as i64, 3);
    }
    assert!(!rec.has_seen(1));
    assert!(rec.has_seen(2) && rec.has_seen(4));
    assert_eq!(rec.dedupe_floor_ms, Some(101));
    rec.remember(9, i64::MIN, 3);
    assert_eq!(rec.dedupe_floor_ms, Some(102));
}

#[test]
fn head_decodes_from_a_full_record() -> crate::Result<()> {
    let p = params();
    let mut rec = ProfileRecord::new(&p);
    rec.pending = Some(PendingExample {
        taken_at_ms: 5,
        features: vec![1.0, 2.0],
    });
    rec.apply(op(1), &p, 4);
    rec.set_outcome(Some((3, 0.25)), 0.5);
    for bytes in [
        rec.encode(),
        rec.encode_v3(),
        rec.encode_v2(),
        rec.encode_v1(),
    ] {
        let head = RecordHead::decode(&|| "t".to_string(), &bytes)?;
        assert_eq!(head.pending, rec.pending);
        let st = RecordState::decode(&|| "t".to_string(), &bytes)?;
        assert_eq!(
            (&st.pending, st.version, &st.state),
            (&rec.pending, 1, &rec.state)
        );
        let current = RecordCurrent::decode(&|| "t".to_string(), &bytes)?;
        assert_eq!(current, rec.clone().into_current());
        assert_eq!(
            (current.segment, current.distance, current.propensity),
            (Some(3), 0.25, 0.5)
        );
    }
    Ok(())
}

#[test]
fn older_versions_still_decode_and_each_is_smaller_than_the_one_before() -> crate::Result<()> {
    let p = params();
    let mut rec = ProfileRecord::new(&p);
    for i in 0..40 {
        rec.apply(op(i), &p, 16);
        rec.remember(
            (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            1_767_225_600_000 + i * 60_000,
            32,
        );
        rec.set_outcome(Some(((i % 5) as u16, i as f32)), 0.01 * i as f64);
    }
    rec.apply(
        ProfileOp::SetAttributes(vec![("region".into(), crate::AttrValue::Text("n".into()))]),
        &p,
        16,
    );
    rec.pending = Some(PendingExample {
        taken_at_ms: 1_767_225_600_000,
        features: (0..61)
            .map(|i| if i % 4 == 0 { i as f32 } else { 0.0 })
            .collect(),
    });
    rec.remember(3, i64::MIN, 32);
    for (i, item) in ["mug", "pan", "mug"].into_iter().enumerate() {
        let t = 1_767_225_600_000 + i as i64 * 60_000;
        let kind = crate::EventKind::Purchase;
        rec.affinity
            .observe(kind, Some(item), Some("kitchen"), t, 30.0 * 86_400_000.0, 8);
    }
    // Versions before 5 have no engagement lists: they decode to the record without them.
    let mut plain = rec.clone();
    plain.affinity = crate::features::affinity::Affinity::default();
    let key = || "t".to_string();
    let v1 = rec.encode_v1();
    let v2 = rec.encode_v2();
    let v3 = rec.encode_v3();
    let v4 = rec.encode_v4();
    let v5 = rec.encode_v5();
    let v6 = rec.encode();
    assert_eq!(
        (v1[0], v2[0], v3[0], v4[0], v5[0], v6[0]),
        (1, 2, 3, 4, 5, PROFILE_FORMAT_VERSION)
    );
    for bytes in [&v1, &v2, &v3, &v4] {
        assert_eq!(ProfileRecord::decode(&key, bytes)?, plain);
    }
    // Version 5 has the lists; its bought set is their purchases (here every item bought).
    assert_eq!(ProfileRecord::decode(&key, &v5)?, rec);
    assert_eq!(ProfileRecord::decode(&key, &v6)?, rec);
    assert_eq!(v6.len(), v5.len() + 1 + 2 * 4, "two items bought: 9 bytes");
    assert_eq!(
        plain.encode().len(),
        v4.len() + 4,
        "empty lists and an empty bought set cost 4 bytes"
    );
    assert!(v2.len() < v1.len(), "{} vs {}", v2.len(), v1.len());
    // Version 3 holds the same fields as version 2, in another order.
    assert_eq!(v3.len(), v2.len());
    assert_ne!(v3, v2);
    // Version 4 packs them (this record: 1,566 bytes in version 3, 1,050 in version 4, of
    // which the 32-id window, the same in both, takes about 400).
    assert!(v4.len() * 10 < v3.len() * 7, "{} vs {}", v4.len(), v3.len());
    let mut future = v6.clone();
    future[0] = 7;
    assert_eq!(
        ProfileRecord::decode(&key, &future)
            .unwrap_err()
            .to_string(),
        "record t has format version 7; this build reads up to 6"
    );
    for bytes in [&v3, &v4, &v5, &v6] {
        for cut in 0..bytes.len() {
            assert!(ProfileRecord::decode(&key, &bytes[..cut]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(ProfileRecord::decode(&key, &trailing).is_err());
        // The current version is a prefix of a record of version 3 or later: cut anywhere
        // inside it, the record does not decode; cut after it, it still does (the rest is not
        // read).
        let current = RecordCurrent::decode(&key, bytes)?;
        let whole = if bytes[0] >= 5 { &rec } else { &plain };
        assert_eq!(current, whole.clone().into_current());
        let mut prefix = None;
        for cut in 0..bytes.len() {
            if RecordCurrent::decode(&key, &bytes[..cut]).is_ok() {
                prefix = Some(cut);
                break;
            }
        }
        let prefix = prefix.expect("some prefix decodes");
        assert!(prefix < bytes.len() / 2, "{prefix} of {}", bytes.len());
        for cut in prefix..bytes.len() {
            assert_eq!(RecordCurrent::decode(&key, &bytes[..cut])?, current);
        }
    }
    Ok(())
}

#[test]
fn version_4_keeps_every_bit() -> crate::Result<()> {
    // Values chosen to break a lossy or sign-dropping encoding: -0.0, NaN payloads,
    // subnormals, times before 1970 and at the ends of i64, non-f32 values.
    let p = params();
    let mut rec = ProfileRecord::new(&p);
    let odd = [
        -0.0,
        f64::from_bits(0x7ff8_0000_0000_0001),
        5e-324,
        19.99,
        1.0,
        0.25,
    ];
    for (i, v) in odd.iter().enumerate() {
        rec.apply(
            ProfileOp::Event(CompactEvent {
                timestamp_ms: [i64::MIN, -5, 0, i64::MAX, 1_767_225_600_000, 7][i],
                kind: EventKind::ALL[i % EventKind::COUNT],
                value: *v,
                bucket: (i % 2 == 0).then_some(i as u16),
            }),
            &p,
            3,
        );
    }
    rec.state.spend = -0.0;
    rec.state.categories[1] = f64::from_bits(0x7ff0_0000_0000_0002);
    rec.state.last_purchase_ms = Some(i64::MIN);
    rec.pending = Some(PendingExample {
        taken_at_ms: i64::MIN,
        features: vec![-0.0, f32::from_bits(0x7fc0_0001), 0.0, 1e-45],
    });
    let bytes = rec.encode();
    let back = ProfileRecord::decode(&|| "t".to_string(), &bytes)?;
    // PartialEq on floats would call NaN unequal and -0.0 equal: compare the bits, as the
    // plain bincode fields of the version-3 layout.
    let bits = |r: &ProfileRecord| r.encode_v3();
    assert_eq!(bits(&back), bits(&rec));
    Ok(())
}
