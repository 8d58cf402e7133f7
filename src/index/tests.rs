//! Unit tests of the lookalike index (a sibling file: the index module is long).

use super::*;
use crate::features::{CompactEvent, FeatureParams, ProfileOp};
use crate::EventKind;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_767_225_600_000;

fn layout() -> FeatureLayout {
    FeatureLayout::new(FeatureParams {
        half_life_ms: 30.0 * DAY as f64,
        category_buckets: 16,
    })
}

fn state(l: &FeatureLayout, events: &[(i64, EventKind, f64)]) -> ProfileState {
    let mut s = ProfileState::new(l.params());
    for &(t, kind, value) in events {
        s.apply(
            &ProfileOp::Event(CompactEvent {
                timestamp_ms: t,
                kind,
                value,
                bucket: Some(2),
            }),
            l.params(),
        );
    }
    s
}

fn row(idx: &LookalikeIndex, t: i64) -> Row {
    idx.quantiser.row(&state(
        &idx.quantiser.layout,
        &[(t, EventKind::Purchase, 20.0)],
    ))
}

#[test]
fn upsert_move_and_remove_keep_the_slots_and_rows_consistent() {
    let idx = LookalikeIndex::new(layout(), 4);
    idx.commit(
        [(
            "a",
            Some(1),
            &state(&layout(), &[(T0, EventKind::View, 5.0)]),
        )]
        .into_iter(),
        std::iter::empty(),
    );
    let w = idx.quantiser.width();
    {
        let mut d = idx.data.write();
        for (i, id) in ["b", "c", "d"].iter().enumerate() {
            d.upsert(id, 1, &row(&idx, T0 + i as i64 * DAY), w);
        }
        d.upsert("c", 3, &row(&idx, T0), w); // moves; "d" is swapped into c's old row
        d.remove("a", w);
        d.remove("zz", w); // unknown: nothing happens
        d.upsert("e", 4, &row(&idx, T0), w); // no segment (bucket k) reuses a's slot
    }
    let rows = idx.rows();
    let ids: Vec<(&str, Option<u16>)> = rows.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        ids,
        [("b", Some(1)), ("c", Some(3)), ("d", Some(1)), ("e", None)]
    );
    assert_eq!(
        rows[2].2,
        row(&idx, T0 + 2 * DAY).codes,
        "d's row moved intact"
    );
    let d = idx.data.read();
    assert_eq!(d.slots.len(), 4, "the erased slot was reused");
    for (bi, b) in d.buckets.iter().enumerate() {
        for (r, &s) in b.slots.iter().enumerate() {
            assert_eq!(d.slots[s as usize].bucket as usize, bi);
            assert_eq!(d.slots[s as usize].row as usize, r);
        }
    }
}

#[test]
fn erased_ids_leave_the_arena_when_compacted() {
    let idx = LookalikeIndex::new(layout(), 2);
    let w = idx.quantiser.width();
    let mut d = idx.data.write();
    for i in 0..100_000 {
        d.upsert(&format!("customer-{i:08}"), 0, &row(&idx, T0), w);
    }
    for i in 0..90_000 {
        d.remove(&format!("customer-{i:08}"), w);
    }
    assert!(d.names.len() < 100_000 * 17 / 2, "compacted");
    assert!(d.find("customer-00095000").is_some());
    assert!(d.find("customer-00000001").is_none());
    drop(d);
    assert_eq!(idx.rows().len(), 10_000);
    assert_eq!(idx.rows()[0].0, "customer-00090000");
}

#[test]
fn rows_brought_forward_match_the_vector_as_of_now() {
    // A customer silent for 40 days: the tables must turn the row (as of its last event)
    // into the vector as of now, within quantisation and age-bucket error.
    let l = layout();
    let idx = LookalikeIndex::new(l.clone(), 1);
    let s = state(
        &l,
        &[
            (T0, EventKind::Purchase, 120.0),
            (T0 + DAY, EventKind::View, 30.0),
            (T0 + 3 * DAY, EventKind::Click, 1.0),
        ],
    );
    let now = T0 + 43 * DAY;
    let x_now = l.vector(&s, now);
    let r = idx.quantiser.row(&s);
    let qz = &idx.quantiser;
    let age = (now as f64 / DAY_MS) as f32 - r.days;
    let b = ((age.sqrt() * BUCKETS_PER_SQRT_DAY) as usize).min(AGE_BUCKETS - 1) * 256;
    for (j, &i) in qz.order.iter().enumerate() {
        let c = r.codes[j] as usize;
        let v = if j < qz.n_static {
            qz.lo[j] + qz.step[j] * c as f32
        } else {
            match qz.kinds[j - qz.n_static] {
                TimeDependence::DaysSince => qz.days_table[b + c],
                TimeDependence::Decayed => qz.decay_table[b + c],
            }
        };
        assert!(
            (f64::from(v) - x_now[i]).abs() < 0.06,
            "dimension {i}: {v} vs {}",
            x_now[i]
        );
    }
}

#[test]
fn shortlist_ranks_by_distance_as_of_now() {
    let l = layout();
    let idx = LookalikeIndex::new(l.clone(), 1);
    let now = T0 + 60 * DAY;
    // Same purchase, different last activity: "recent" is like the query now, "lapsed"
    // was like it 50 days ago.
    let query = state(&l, &[(now, EventKind::Purchase, 20.0)]);
    let recent = state(&l, &[(now - DAY / 2, EventKind::Purchase, 20.0)]);
    let lapsed = state(&l, &[(T0 + 10 * DAY, EventKind::Purchase, 20.0)]);
    idx.commit(
        [("lapsed", Some(0), &lapsed), ("recent", Some(0), &recent)].into_iter(),
        std::iter::empty(),
    );
    let ones = vec![1.0; l.dim()];
    let q = idx.query(&l.vector(&query, now), &ones, now);
    assert_eq!(idx.shortlist(&q, &[0], 2), ["recent", "lapsed"]);
    assert_eq!(idx.shortlist(&q, &[0], 1), ["recent"]);
    assert!(idx.shortlist(&q, &[0], 0).is_empty());
}

/// A seeded population of `n` profiles with 1–8 events each over 200 days, a few habits
/// (kinds, spend, categories) per customer so that neighbours exist.
fn population(l: &FeatureLayout, n: usize, seed: u64) -> Vec<(String, ProfileState)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let kinds = [
        EventKind::View,
        EventKind::Click,
        EventKind::Search,
        EventKind::CartAdd,
        EventKind::Purchase,
    ];
    (0..n)
        .map(|i| {
            let mut s = ProfileState::new(l.params());
            let habit = rng.gen_range(0..kinds.len());
            let spend = rng.gen_range(1.0..200.0f64);
            let bucket = rng.gen_range(0..16u16);
            let mut t = T0 + rng.gen_range(0..200 * DAY);
            for _ in 0..rng.gen_range(1..=8) {
                let kind = if rng.gen_bool(0.7) {
                    kinds[habit]
                } else {
                    kinds[rng.gen_range(0..kinds.len())]
                };
                s.apply(
                    &ProfileOp::Event(CompactEvent {
                        timestamp_ms: t,
                        kind,
                        value: spend * rng.gen_range(0.5..1.5),
                        bucket: Some(bucket),
                    }),
                    l.params(),
                );
                t += rng.gen_range(0..5 * DAY);
            }
            (format!("p{i:06}"), s)
        })
        .collect()
}

/// Checks that every row sits in the sub-list its group's centroids choose, and that slots and
/// arrays point at each other.
fn assert_lists_consistent(idx: &LookalikeIndex) {
    let d = idx.data.read();
    let (w, ns) = (idx.quantiser.width(), idx.quantiser.n_static);
    for (bi, b) in d.buckets.iter().enumerate() {
        let group = bi / MAX_SUBLISTS;
        for (r, (&s, codes)) in b.slots.iter().zip(b.codes.chunks_exact(w)).enumerate() {
            assert_eq!(d.slots[s as usize].bucket as usize, bi);
            assert_eq!(d.slots[s as usize].row as usize, r);
            let sub = d.routing[group].nearest(&codes[..ns]);
            assert_eq!(bi, group * MAX_SUBLISTS + sub, "row {r} of list {bi}");
        }
    }
}

/// Customer → sub-list.
fn lists(idx: &LookalikeIndex) -> std::collections::BTreeMap<String, u16> {
    let d = idx.data.read();
    d.slots
        .iter()
        .filter(|s| s.bucket != FREE)
        .map(|s| {
            let name = &d.names[s.name_at as usize..][..s.name_len as usize];
            (String::from_utf8_lossy(name).into_owned(), s.bucket)
        })
        .collect()
}

#[test]
fn rows_moving_between_sub_lists_match_a_redistribution_from_the_final_states() {
    let l = layout();
    let pop = population(&l, 12_000, 3);
    let idx = LookalikeIndex::new(l.clone(), 2);
    let seg = |i: usize| Some((i % 3) as u16).filter(|&s| s < 2);
    idx.commit(
        pop.iter()
            .enumerate()
            .map(|(i, (id, s))| (id.as_str(), seg(i), s)),
        std::iter::empty(),
    );
    idx.split_groups();
    let trained: Vec<usize> = idx.data.read().routing.iter().map(SubLists::len).collect();
    assert!(
        trained.iter().all(|&n| n > 1),
        "every group split: {trained:?}"
    );
    assert_lists_consistent(&idx);

    // The writer changes a third of the profiles (new codes, some a new segment) and erases
    // some: rows move between sub-lists and groups.
    let changed = population(&l, 4_000, 4);
    let mut finals: Vec<(String, Option<u16>, ProfileState)> = pop
        .iter()
        .enumerate()
        .map(|(i, (id, s))| (id.clone(), seg(i), s.clone()))
        .collect();
    for (i, (_, s)) in changed.iter().enumerate() {
        finals[i * 3].2 = s.clone();
        finals[i * 3].1 = seg(i);
    }
    // Not among the rewritten ones (multiples of 3): an erased customer written in the same
    // batch would come back.
    let erased: Vec<String> = (0..200).map(|i| format!("p{:06}", i * 30 + 1)).collect();
    idx.commit(
        finals
            .iter()
            .step_by(3)
            .map(|(id, seg, s)| (id.as_str(), *seg, s)),
        erased.iter().map(String::as_str),
    );
    finals.retain(|(id, _, _)| !erased.contains(id));
    assert_lists_consistent(&idx);

    // The same final states, inserted afresh and redistributed with the same centroids, land
    // in the same sub-lists with the same rows.
    let fresh = LookalikeIndex::new(l, 2);
    fresh.commit(
        finals.iter().map(|(id, seg, s)| (id.as_str(), *seg, s)),
        std::iter::empty(),
    );
    {
        let routing = idx.data.read().routing.clone();
        let w = fresh.quantiser.width();
        let mut d = fresh.data.write();
        for (g, r) in routing.into_iter().enumerate() {
            d.redistribute(g, r, w);
        }
    }
    assert_lists_consistent(&fresh);
    let (a, b) = (lists(&fresh), lists(&idx));
    let differ = a.iter().filter(|(id, l)| b.get(*id) != Some(l)).count();
    assert_eq!(
        (a.len(), differ),
        (b.len(), 0),
        "customers, in another sub-list"
    );
    assert!(fresh.rows() == idx.rows(), "same rows");
}

#[test]
fn erased_customers_leave_their_sub_lists() {
    let l = layout();
    let pop = population(&l, 5_000, 5);
    let idx = LookalikeIndex::new(l.clone(), 1);
    idx.commit(
        pop.iter().map(|(id, s)| (id.as_str(), Some(0), s)),
        std::iter::empty(),
    );
    idx.split_groups();
    let gone: Vec<&str> = pop.iter().step_by(2).map(|(id, _)| id.as_str()).collect();
    idx.commit(std::iter::empty(), gone.iter().copied());
    assert_lists_consistent(&idx);
    assert_eq!(idx.len(), 2_500);
    let left = lists(&idx);
    assert!(gone.iter().all(|id| !left.contains_key(*id)));
    let rows: usize = idx.data.read().buckets.iter().map(|b| b.slots.len()).sum();
    assert_eq!(rows, 2_500, "no sub-list keeps an erased row");
    // Nor does a query find them.
    let now = T0 + 220 * DAY;
    let q = idx.query(&l.vector(&pop[0].1, now), &vec![1.0; l.dim()], now);
    let found = idx.shortlist(&q, &[0], 2_500);
    assert_eq!(found.len(), 2_500);
    assert!(found.iter().all(|id| !gone.contains(&id.as_str())));
}

#[test]
fn shortlist_from_the_nearest_sub_lists_keeps_the_true_neighbours() {
    // More rows than one query scans, so only the nearest sub-lists are looked at: the exact
    // top 10 (vectors as of now, standardised) must still be on the shortlist of 50.
    let l = layout();
    let n = 3 * SCAN_ROWS;
    let pop = population(&l, n, 6);
    let idx = LookalikeIndex::new(l.clone(), 1);
    idx.commit(
        pop.iter().map(|(id, s)| (id.as_str(), Some(0), s)),
        std::iter::empty(),
    );
    idx.split_groups();
    assert!(idx.data.read().routing[0].len() > 8);
    let now = T0 + 220 * DAY;
    let vectors: Vec<Vec<f64>> = pop.iter().map(|(_, s)| l.vector(s, now)).collect();
    let inv: Vec<f64> = (0..l.dim())
        .map(|j| {
            let mean = vectors.iter().map(|v| v[j]).sum::<f64>() / n as f64;
            let var = vectors.iter().map(|v| (v[j] - mean).powi(2)).sum::<f64>() / n as f64;
            if var > 1e-12 {
                1.0 / var.sqrt()
            } else {
                0.0
            }
        })
        .collect();
    let queries = population(&l, 20, 7);
    let mut hits = 0;
    for (_, s) in &queries {
        let x = l.vector(s, now);
        let mut exact: Vec<(f64, usize)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let d = v
                    .iter()
                    .zip(&x)
                    .zip(&inv)
                    .map(|((a, b), w)| ((a - b) * w).powi(2))
                    .sum::<f64>();
                (d, i)
            })
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        let short = idx.shortlist(&idx.query(&x, &inv, now), &[0], 50);
        hits += exact[..10]
            .iter()
            .filter(|(_, i)| short.contains(&pop[*i].0))
            .count();
    }
    let recall = hits as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.9, "recall@10 of the shortlist: {recall}");
}
