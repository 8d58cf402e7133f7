//! Planted structure is recovered: generate a workload with six planted personas, ingest it, and
//! check that the segments the writer keeps (no re-segmentation) agree with the personas (adjusted Rand index) and that
//! the propensity model learns the planted purchase signal (prequential rolling AUC).
//!
//! A third test clusters the same final profiles offline (seeded k-means++ and Lloyd, here in
//! the test) in the store's own standardised feature space: it separates a failure of the
//! features (which would fail it too) from a failure of the online segmenter (which does not).

use persona::generator::{self, Generator, GeneratorConfig, Persona};
use persona::testing::DbInternals;
use persona::{Config, Db, Durability, Event, Result};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// 600 customers × 15 000 events: 25 events per customer on average, 100 per persona.
fn workload() -> GeneratorConfig {
    GeneratorConfig {
        customers: 600,
        events: 15_000,
        seed: 42,
        ..GeneratorConfig::default()
    }
}

/// Adjusted Rand index of two labelings of the same items (Hubert & Arabie 1985), from the
/// contingency table `n_ij`, its row sums `a_i` and column sums `b_j`:
///
/// ```text
/// index    = Σ_ij C(n_ij, 2)
/// expected = Σ_i C(a_i, 2) · Σ_j C(b_j, 2) / C(n, 2)
/// max      = (Σ_i C(a_i, 2) + Σ_j C(b_j, 2)) / 2
/// ARI      = (index − expected) / (max − expected)
/// ```
fn adjusted_rand_index<A, B>(pairs: &[(A, B)]) -> f64
where
    A: std::hash::Hash + Eq + Copy,
    B: std::hash::Hash + Eq + Copy,
{
    let choose2 = |n: u64| (n * n.saturating_sub(1)) as f64 / 2.0;
    let mut table: HashMap<(A, B), u64> = HashMap::new();
    let mut rows: HashMap<A, u64> = HashMap::new();
    let mut cols: HashMap<B, u64> = HashMap::new();
    for &(a, b) in pairs {
        *table.entry((a, b)).or_default() += 1;
        *rows.entry(a).or_default() += 1;
        *cols.entry(b).or_default() += 1;
    }
    let index: f64 = table.values().map(|&n| choose2(n)).sum();
    let sum_rows: f64 = rows.values().map(|&n| choose2(n)).sum();
    let sum_cols: f64 = cols.values().map(|&n| choose2(n)).sum();
    let expected = sum_rows * sum_cols / choose2(pairs.len() as u64);
    let max = (sum_rows + sum_cols) / 2.0;
    if max == expected {
        return 1.0; // both labelings are trivial (one cluster each, or all singletons)
    }
    (index - expected) / (max - expected)
}

#[test]
fn ari_matches_known_values() {
    // Identical partitions (up to renaming) score 1.
    let same: Vec<(u8, char)> = vec![(0, 'a'), (0, 'a'), (1, 'b'), (1, 'b'), (2, 'c')];
    assert!((adjusted_rand_index(&same) - 1.0).abs() < 1e-12);
    // Hand-computed: truth {0,0,0,1,1,1}, clusters {a,a,b,b,c,c}.
    // n_ij: (0,a)=2 (0,b)=1 (1,b)=1 (1,c)=2 → index = 1 + 1 = 2;
    // rows C(3,2)+C(3,2) = 6; cols 3 × C(2,2) = 3; expected = 6·3/15 = 1.2; max = 4.5;
    // ARI = (2 − 1.2) / (4.5 − 1.2) = 0.8 / 3.3.
    let pairs = [(0, 'a'), (0, 'a'), (0, 'b'), (1, 'b'), (1, 'c'), (1, 'c')];
    assert!((adjusted_rand_index(&pairs) - 0.8 / 3.3).abs() < 1e-12);
    // A labeling independent of the truth scores (about) 0 or below.
    let crossed = [(0, 'a'), (0, 'b'), (1, 'a'), (1, 'b')];
    assert!(adjusted_rand_index(&crossed) <= 0.0);
}

/// Ingests the planted workload into a fresh store with six segments; returns the store, the
/// events and the workload config.
fn ingest_workload(dir: &std::path::Path) -> Result<(Db, Vec<Event>, GeneratorConfig)> {
    // Durability does not change what is computed; `None` keeps the test fast.
    let db = Config::new(dir)
        .segments(6)
        .durability(Durability::None)
        .open()?;
    let cfg = workload();
    let events: Vec<Event> = Generator::new(cfg.clone())
        .expect("the workload config is valid")
        .collect();
    assert_eq!(events.len(), 15_000);
    for chunk in events.chunks(2048) {
        for r in db.ingest_batch(chunk.to_vec())? {
            assert!(!r?.duplicate, "generated event ids are unique");
        }
    }
    Ok((db, events, cfg))
}

/// Each customer with events, their planted persona and their final profile, in id order.
fn final_profiles(
    db: &Db,
    events: &[Event],
    cfg: &GeneratorConfig,
) -> Result<Vec<(Persona, persona::Profile)>> {
    // A few low-activity customers draw no events at all; they have no profile to cluster.
    let mut expected_events: HashMap<&str, u64> = HashMap::new();
    for e in events {
        *expected_events.entry(e.customer_id.as_str()).or_default() += 1;
    }
    let mut out = Vec::new();
    for (id, persona) in generator::truth(cfg) {
        match (db.profile(&id)?, expected_events.get(id.as_str())) {
            (Some(p), Some(&n)) => {
                assert_eq!(p.event_count, n, "{id}");
                out.push((persona, p));
            }
            (None, None) => {}
            (p, n) => panic!(
                "{id}: has a profile: {}, generated events: {n:?}",
                p.is_some()
            ),
        }
    }
    assert!(out.len() >= 550, "only {} customers have events", out.len());
    Ok(out)
}

// The streaming path: segments as the writer keeps them, with no re-segmentation and no refit
// (what a server fed by EVENT.ADD has), must recover the personas; then an explicit refit must
// too. Measured (seed 42): online ARI 0.68, after the refit 0.69; the online k-means this
// replaced reached 0.29 without the refit.
#[test]
fn segments_recover_planted_personas() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, events, cfg) = ingest_workload(dir.path())?;
    // A few low-activity customers draw no events at all; they have no profile to cluster.
    let mut expected_events: HashMap<&str, u64> = HashMap::new();
    for e in &events {
        *expected_events.entry(e.customer_id.as_str()).or_default() += 1;
    }
    let mut pairs: Vec<(Persona, u16)> = Vec::new();
    for (id, persona) in generator::truth(&cfg) {
        match (db.profile(&id)?, expected_events.get(id.as_str())) {
            (Some(p), Some(&n)) => {
                assert_eq!(p.event_count, n, "{id}");
                let segment = p.segment.expect("segments are seeded after 15 000 events");
                pairs.push((persona, segment));
            }
            (None, None) => {}
            (p, n) => panic!(
                "{id}: has a profile: {}, generated events: {n:?}",
                p.is_some()
            ),
        }
    }
    assert!(
        pairs.len() >= 550,
        "only {} customers have events",
        pairs.len()
    );
    let online = adjusted_rand_index(&pairs);
    eprintln!(
        "planted: online ARI {online:.3} over {} customers; segment sizes {:?}",
        pairs.len(),
        db.model_info().segments
    );
    assert!(
        online >= 0.6,
        "streaming-path adjusted Rand index {online:.3} < 0.6"
    );
    let report = db.resegment(1000, persona::Centroids::Refit)?;
    assert!(report.refitted && report.scanned == pairs.len());
    let mut after = Vec::new();
    for (id, persona) in generator::truth(&cfg) {
        if let Some(p) = db.profile(&id)? {
            let segment = p.segment.expect("seeded");
            assert_eq!(p.assigned_segment, Some(segment), "{id}: index agrees");
            after.push((persona, segment));
        }
    }
    let ari = adjusted_rand_index(&after);
    eprintln!(
        "planted: ARI after refit {ari:.3}; sizes {:?}",
        db.model_info().segments
    );
    assert!(ari >= 0.6, "adjusted Rand index {ari:.3} < 0.6");
    db.close()?;
    Ok(())
}

#[test]
fn propensity_learns_planted_purchase_signal() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, _, _) = ingest_workload(dir.path())?;
    let info = db.model_info();
    let auc = info
        .rolling_auc
        .expect("both labels have been seen after 120 days of events");
    eprintln!(
        "planted: rolling AUC {auc:.3} over the last {} of {} examples ({} positive)",
        info.examples.min(1000),
        info.examples,
        info.positives
    );
    // A full rolling window, so the AUC is not an artefact of a handful of examples.
    assert!(info.examples >= 1000, "only {} examples", info.examples);
    assert!(info.positives > 0 && info.positives < info.examples);
    assert!(auc >= 0.7, "rolling AUC {auc:.3} < 0.7");
    db.close()?;
    Ok(())
}

/// Squared Euclidean distance.
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Batch k-means: k-means++ seeding from a seeded RNG, then Lloyd iterations until no point
/// changes cluster. Returns each point's cluster and the sum of squared distances.
fn kmeans(points: &[Vec<f64>], k: usize, seed: u64) -> (Vec<usize>, f64) {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut centroids = vec![points[rng.gen_range(0..points.len())].clone()];
    while centroids.len() < k {
        let d2: Vec<f64> = points
            .iter()
            .map(|p| {
                centroids
                    .iter()
                    .map(|c| sq_dist(p, c))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        let mut target = rng.gen::<f64>() * d2.iter().sum::<f64>();
        let pick = d2
            .iter()
            .position(|&d| {
                target -= d;
                target < 0.0
            })
            .unwrap_or(points.len() - 1);
        centroids.push(points[pick].clone());
    }
    let nearest = |p: &[f64], centroids: &[Vec<f64>]| {
        (0..k)
            .min_by(|&a, &b| sq_dist(p, &centroids[a]).total_cmp(&sq_dist(p, &centroids[b])))
            .expect("k >= 1")
    };
    let mut owner = vec![usize::MAX; points.len()];
    for _ in 0..100 {
        let next: Vec<usize> = points.iter().map(|p| nearest(p, &centroids)).collect();
        if next == owner {
            break;
        }
        owner = next;
        for (c, centroid) in centroids.iter_mut().enumerate() {
            let members: Vec<&Vec<f64>> = points
                .iter()
                .zip(&owner)
                .filter(|(_, &o)| o == c)
                .map(|(p, _)| p)
                .collect();
            if members.is_empty() {
                continue;
            }
            for (d, v) in centroid.iter_mut().enumerate() {
                *v = members.iter().map(|m| m[d]).sum::<f64>() / members.len() as f64;
            }
        }
    }
    let sse = points
        .iter()
        .zip(&owner)
        .map(|(p, &o)| sq_dist(p, &centroids[o]))
        .sum();
    (owner, sse)
}

#[test]
fn final_profiles_carry_the_planted_structure() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, events, cfg) = ingest_workload(dir.path())?;
    let model = db.model();
    let (personas, points): (Vec<Persona>, Vec<Vec<f64>>) = final_profiles(&db, &events, &cfg)?
        .into_iter()
        .map(|(persona, p)| (persona, model.scaler.transform_vec(&p.features)))
        .unzip();
    // The best of ten seeded restarts, by within-cluster sum of squares (not by ARI).
    let (clusters, _) = (0..10)
        .map(|seed| kmeans(&points, 6, seed))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("ten restarts");
    let pairs: Vec<(Persona, usize)> = personas.into_iter().zip(clusters).collect();
    let ari = adjusted_rand_index(&pairs);
    eprintln!("planted: offline k-means on the final profiles: ARI {ari:.3}");
    assert!(ari >= 0.6, "adjusted Rand index {ari:.3} < 0.6");
    db.close()?;
    Ok(())
}
