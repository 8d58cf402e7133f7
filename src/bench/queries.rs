//! The read side of `persona bench`: latency of each query over customers drawn at random (seeded)
//! from the generated workload, next to a raw sled read of the same record (the floor of every
//! by-customer query), and recall@k of the indexed `similar` against the exact scan.

use super::ingest::nanos;
use super::{Latencies, Progress};
use crate::error::Result;
use crate::{Db, Target};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Instant;

/// How many of each query to time.
#[derive(Debug, Clone)]
pub(crate) struct QueryPlan {
    /// Profile gets, raw reads, nearest-segment and score queries.
    pub(crate) point: usize,
    /// Indexed `similar` queries.
    pub(crate) similar: usize,
    /// Of those, how many also run the exact scan to measure recall.
    pub(crate) recall: usize,
    /// Neighbours asked of `similar`.
    pub(crate) k: usize,
}

/// Query latencies in microseconds (p50 / p99) and recall.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueryReport {
    /// Queries timed per point query.
    pub samples: usize,
    /// Raw sled `get` of a profile record (the baseline of the by-customer queries).
    pub raw_record_get_us: Quantiles,
    /// `Db::profile`: read, decode, features as of now, nearest segment, propensity.
    pub profile_get_us: Quantiles,
    /// `Db::nearest_segments` given a feature vector.
    pub nearest_segment_vector_us: Quantiles,
    /// `Db::nearest_segments` given a customer (read + decode + features first).
    pub nearest_segment_customer_us: Quantiles,
    /// `Db::score` with its top contributions.
    pub score_us: Quantiles,
    /// `Db::recommend` of ten items (own, co-occurring and popular).
    pub recommend_us: Quantiles,
    /// `Db::similar` (indexed), k as in `similar_k`.
    pub similar_us: Quantiles,
    /// The shortlist step of indexed `similar` alone (lookalike index scan, no re-rank), over
    /// the same customers; `similar_us` minus this is the exact re-rank of the shortlist.
    pub similar_shortlist_us: Quantiles,
    /// `Db::similar` with `exact` (the full scan), over the recall queries.
    pub similar_exact_us: Quantiles,
    /// Neighbours asked of `similar`.
    pub similar_k: usize,
    /// Indexed `similar` queries timed.
    pub similar_samples: usize,
    /// Queries compared against the exact scan.
    pub recall_samples: usize,
    /// Mean fraction of the exact top k found by the indexed search.
    pub recall_at_k: f64,
    /// Segments (k of k-means) the nearest-segment query compares against.
    pub segments: usize,
    /// Dimensions of the feature vector.
    pub dims: usize,
}

/// The median and 99th percentile of a latency distribution, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl From<&Latencies> for Quantiles {
    fn from(l: &Latencies) -> Quantiles {
        Quantiles {
            p50: l.quantile(0.50) as f64 / 1e3,
            p99: l.quantile(0.99) as f64 / 1e3,
        }
    }
}

/// Times `f` once per id.
fn time<T>(ids: &[String], mut f: impl FnMut(&str) -> Result<T>) -> Result<Latencies> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let t = Instant::now();
        std::hint::black_box(f(id)?);
        out.push(nanos(t.elapsed()));
    }
    Ok(Latencies::new(out))
}

/// Runs the plan against `db`, whose customers are `c000000` … `c{customers-1}`.
pub(crate) fn run(
    db: &Db,
    customers: u64,
    plan: &QueryPlan,
    seed: u64,
    progress: &dyn Progress,
) -> Result<QueryReport> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut draw = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| format!("c{:06}", rng.gen_range(0..customers)))
            .collect()
    };
    let ids = draw(plan.point);
    progress.start(
        "queries",
        (plan.point * 7 + plan.similar + plan.recall) as u64,
    );
    // Warm the cache with the ids, as a serving process would be.
    for id in &ids {
        std::hint::black_box(db.store().raw_profile(id)?);
    }
    progress.inc(plan.point as u64);
    let raw = time(&ids, |id| db.store().raw_profile(id))?;
    progress.inc(plan.point as u64);
    let profile = time(&ids, |id| db.profile(id))?;
    progress.inc(plan.point as u64);
    let mut vectors = Vec::new();
    for id in ids.iter().take(256) {
        if let Some(p) = db.profile(id)? {
            vectors.push(p.features);
        }
    }
    let mut vec_lat = Vec::with_capacity(ids.len());
    if !vectors.is_empty() {
        for i in 0..ids.len() {
            let v = &vectors[i % vectors.len()];
            let t = Instant::now();
            std::hint::black_box(db.nearest_segments(Target::Vector(v), 1)?);
            vec_lat.push(nanos(t.elapsed()));
        }
    }
    progress.inc(plan.point as u64);
    let by_customer = time(&ids, |id| db.nearest_segments(Target::Customer(id), 1))?;
    progress.inc(plan.point as u64);
    let score = time(&ids, |id| db.score(id))?;
    progress.inc(plan.point as u64);
    let recommend = time(&ids, |id| {
        db.recommend(id, 10, crate::RecommendOptions::default())
    })?;
    progress.inc(plan.point as u64);

    let similar_ids: Vec<String> = draw(plan.similar.max(plan.recall) * 4)
        .into_iter()
        .filter(|id| matches!(db.store().raw_profile(id), Ok(Some(_))))
        .take(plan.similar.max(plan.recall))
        .collect();
    let mut similar = Vec::new();
    let mut shortlist = Vec::new();
    let mut exact_lat = Vec::new();
    let mut recall_sum = 0.0;
    let mut recall_n = 0usize;
    for (i, id) in similar_ids.iter().enumerate() {
        let t = Instant::now();
        let found = db
            .similar(id, plan.k, crate::Search::Probe)?
            .unwrap_or_default();
        if i < plan.similar {
            similar.push(nanos(t.elapsed()));
            let t = Instant::now();
            std::hint::black_box(db.lookalike_shortlist_len(id, plan.k)?);
            shortlist.push(nanos(t.elapsed()));
            progress.inc(1);
        }
        if i < plan.recall {
            let t = Instant::now();
            let exact = db
                .similar(id, plan.k, crate::Search::Exact)?
                .unwrap_or_default();
            exact_lat.push(nanos(t.elapsed()));
            if !exact.is_empty() {
                let hits = exact
                    .iter()
                    .filter(|e| found.iter().any(|f| f.customer_id == e.customer_id))
                    .count();
                recall_sum += hits as f64 / exact.len() as f64;
                recall_n += 1;
            }
            progress.inc(1);
        }
    }
    progress.finish();
    let model = db.model();
    Ok(QueryReport {
        samples: ids.len(),
        raw_record_get_us: (&raw).into(),
        profile_get_us: (&profile).into(),
        nearest_segment_vector_us: (&Latencies::new(vec_lat)).into(),
        nearest_segment_customer_us: (&by_customer).into(),
        score_us: (&score).into(),
        recommend_us: (&recommend).into(),
        similar_us: (&Latencies::new(similar)).into(),
        similar_shortlist_us: (&Latencies::new(shortlist)).into(),
        similar_exact_us: (&Latencies::new(exact_lat)).into(),
        similar_k: plan.k,
        similar_samples: plan.similar.min(similar_ids.len()),
        recall_samples: recall_n,
        recall_at_k: if recall_n == 0 {
            0.0
        } else {
            recall_sum / recall_n as f64
        },
        segments: model.segments.k(),
        dims: db.layout().dim(),
    })
}
