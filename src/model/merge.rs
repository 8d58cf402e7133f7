//! What several nodes learned, merged into one model: the cluster's global model
//! (`docs/cluster.md`, "The global models").
//!
//! A node's learned parameters ([`Learned`]) are the global model it last adopted, plus the
//! changes it sent and the merge has not taken in yet, plus what it learned since it last sent
//! ([`Delta::between`]). The parts add up across nodes:
//! - the feature scaler, by Chan, Golub and LeVeque's pairwise update (exact);
//! - the online propensity model, by summing each node's weight and AdaGrad changes (so one
//!   node's changes are applied as they are, and several nodes' as if learned one after the
//!   other from the same start);
//! - the bandit's outcome counts, by sums (exact).
//!
//! The fits a node runs on its own sample replace each other instead: the propensity refit
//! (the merge averages the nodes' latest refits, weighted by the examples each learned) and
//! the segments (the merge clusters the nodes' latest centroids, weighted by the sample vectors
//! each owned, starting from the previous merge's, so a segment keeps its number).
//!
//! Everything else in a [`ModelState`] stays the node's own: the prequential metrics, the drift
//! test, the popularity summary, the rebuy ranking, category names, segment sizes and
//! statistics (they describe the node's customers).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::strategy::ActionStats;
use super::{ModelState, Scaler};

/// Most Lloyd passes of a segments merge.
const MERGE_ITERATIONS: usize = 100;

/// A node's last segments fit, in the form [`crate::model::Segments::fit_parts`] gives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentsFit {
    /// `k × dim` centroids, row-major, standardised by `scale`.
    pub centroids: Vec<f64>,
    /// Sample vectors each centroid owned.
    pub members: Vec<u64>,
    /// The standardisation of the fit's sample.
    pub scale: Scaler,
    /// Whether there has been a fit.
    pub seeded: bool,
}

/// The parameters of a [`ModelState`] that are merged across nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    /// The feature scaler.
    pub scaler: Scaler,
    /// The online propensity model's weights.
    pub weights: Vec<f64>,
    /// Its bias.
    pub bias: f64,
    /// Its AdaGrad sums of squared gradients, per weight.
    pub grad_sq: Vec<f64>,
    /// The bias's.
    pub bias_grad_sq: f64,
    /// The propensity refit (bias first; empty: none).
    pub refit: Vec<f64>,
    /// The segments.
    pub segments: SegmentsFit,
    /// The bandit's action names, in index order.
    pub actions: Vec<String>,
    /// The bandit's outcome counts, segment-major.
    pub counts: Vec<ActionStats>,
}

impl Learned {
    /// The merged parameters of `model`.
    pub fn of(model: &ModelState) -> Learned {
        let (weights, bias, grad_sq, bias_grad_sq) = model.propensity.online_parts();
        let (centroids, members, scale, seeded) = model.segments.fit_parts();
        Learned {
            scaler: model.scaler.clone(),
            weights: weights.to_vec(),
            bias,
            grad_sq: grad_sq.to_vec(),
            bias_grad_sq,
            refit: model
                .propensity
                .refit()
                .map(<[f64]>::to_vec)
                .unwrap_or_default(),
            segments: SegmentsFit {
                centroids: centroids.to_vec(),
                members: members.to_vec(),
                scale: scale.clone(),
                seeded,
            },
            actions: model.strategy.actions().to_vec(),
            counts: model.strategy.counts().to_vec(),
        }
    }

    /// Nothing learned, in the shape of `self`.
    pub fn zero_like(&self) -> Learned {
        let dim = self.weights.len();
        Learned {
            scaler: Scaler::new(dim),
            weights: vec![0.0; dim],
            bias: 0.0,
            grad_sq: vec![0.0; dim],
            bias_grad_sq: 0.0,
            refit: Vec::new(),
            segments: SegmentsFit {
                centroids: vec![0.0; self.segments.centroids.len()],
                members: vec![0; self.segments.members.len()],
                scale: Scaler::new(dim),
                seeded: false,
            },
            actions: self.actions.clone(),
            counts: vec![ActionStats::default(); self.counts.len()],
        }
    }

    /// Whether `other` has the same dimensions, segment count and actions.
    pub fn same_shape(&self, other: &Learned) -> bool {
        self.weights.len() == other.weights.len()
            && self.scaler.dim() == other.scaler.dim()
            && self.segments.centroids.len() == other.segments.centroids.len()
            && self.segments.members.len() == other.segments.members.len()
            && self.actions == other.actions
            && self.counts.len() == other.counts.len()
    }

    /// Writes these parameters into `model`; an error, changing nothing, when their shape is
    /// not the model's.
    pub fn install(&self, model: &mut ModelState) -> Result<(), String> {
        let current = Learned::of(model);
        if !self.same_shape(&current) {
            return Err(format!(
                "the merged model has {} features, {} segment values and actions {:?}; this \
                 node's has {}, {} and {:?}",
                self.weights.len(),
                self.segments.centroids.len(),
                self.actions,
                current.weights.len(),
                current.segments.centroids.len(),
                current.actions
            ));
        }
        let mut next = model.clone();
        let online = (
            &self.weights[..],
            self.bias,
            &self.grad_sq[..],
            self.bias_grad_sq,
        );
        let s = &self.segments;
        let fit = (&s.centroids[..], &s.members[..], &s.scale, s.seeded);
        if !(next.propensity.set_parts(online, &self.refit)
            && next.segments.set_fit(fit)
            && next.strategy.set_counts(&self.counts))
        {
            return Err("the merged model holds a value that is not finite".into());
        }
        next.scaler = self.scaler.clone();
        *model = next;
        Ok(())
    }

    /// These parameters with `d`'s additive changes (scaler, online model, counts) and, where
    /// `d` carries one, its fits in place of these.
    pub fn with(&self, d: &Delta) -> Learned {
        if !d.fits(self) {
            return self.clone();
        }
        let mut out = self.plus(d);
        if let Some(refit) = &d.refit {
            out.refit = refit.clone();
        }
        if let Some(fit) = &d.segments {
            out.segments = fit.clone();
        }
        out
    }

    /// These parameters with `d`'s additive changes only; `d` must have their shape (both
    /// callers check [`Delta::fits`] first).
    fn plus(&self, d: &Delta) -> Learned {
        let mut out = self.clone();
        out.scaler = self.scaler.combined(&d.scaler);
        for (w, dw) in out.weights.iter_mut().zip(&d.weights) {
            *w += dw;
        }
        for (g, dg) in out.grad_sq.iter_mut().zip(&d.grad_sq) {
            *g = (*g + dg).max(0.0);
        }
        out.bias += d.bias;
        out.bias_grad_sq = (out.bias_grad_sq + d.bias_grad_sq).max(0.0);
        for (c, (ds, df)) in out.counts.iter_mut().zip(&d.counts) {
            c.successes = c.successes.saturating_add_signed(*ds);
            c.failures = c.failures.saturating_add_signed(*df);
        }
        out
    }

    /// A 64-bit checksum of the parameters (xxh3 of their bincode encoding): equal on two nodes
    /// exactly when they serve the same merged parameters.
    pub fn checksum(&self) -> u64 {
        let bytes = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .expect("sized serde types, which bincode always encodes");
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }
}

/// What a node learned between two moments: additive changes, and its fits if it ran new ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The statistics of the vectors the scaler folded in.
    pub scaler: Scaler,
    /// Change of each online weight.
    pub weights: Vec<f64>,
    /// Change of the bias.
    pub bias: f64,
    /// Change of each weight's sum of squared gradients.
    pub grad_sq: Vec<f64>,
    /// Change of the bias's.
    pub bias_grad_sq: f64,
    /// The action names the counts are of.
    pub actions: Vec<String>,
    /// Change of each (segment, action) pair's successes and failures.
    pub counts: Vec<(i64, i64)>,
    /// The node's new refit, if it ran one.
    pub refit: Option<Vec<f64>>,
    /// How much the refit weighs in a merge: the examples the node learned.
    pub weight: f64,
    /// The node's new segments fit, if it ran one.
    pub segments: Option<SegmentsFit>,
    /// The node's event-time watermark (unix ms).
    pub watermark_ms: i64,
}

impl Delta {
    /// What `now` learned since `before` (an earlier copy of the same node's parameters):
    /// `before.with(&Delta::between(now, before, ..))` is `now` up to rounding. `weight` is
    /// what the node's refit weighs ([`Delta::weight`]).
    pub fn between(now: &Learned, before: &Learned, weight: f64, watermark_ms: i64) -> Delta {
        let diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x - y).collect();
        let signed = |a: u64, b: u64| {
            i64::try_from(i128::from(a) - i128::from(b)).unwrap_or(if a > b {
                i64::MAX
            } else {
                i64::MIN
            })
        };
        Delta {
            scaler: now.scaler.since(&before.scaler),
            weights: diff(&now.weights, &before.weights),
            bias: now.bias - before.bias,
            grad_sq: diff(&now.grad_sq, &before.grad_sq),
            bias_grad_sq: now.bias_grad_sq - before.bias_grad_sq,
            actions: now.actions.clone(),
            counts: now
                .counts
                .iter()
                .zip(&before.counts)
                .map(|(a, b)| {
                    (
                        signed(a.successes, b.successes),
                        signed(a.failures, b.failures),
                    )
                })
                .collect(),
            refit: (now.refit != before.refit && !now.refit.is_empty()).then(|| now.refit.clone()),
            weight,
            segments: (now.segments != before.segments && now.segments.seeded)
                .then(|| now.segments.clone()),
            watermark_ms,
        }
    }

    /// Whether this delta has the shape of `learned` (the same features, segments and actions).
    pub fn fits(&self, learned: &Learned) -> bool {
        let dim = learned.weights.len();
        self.scaler.dim() == learned.scaler.dim()
            && self.weights.len() == dim
            && self.grad_sq.len() == dim
            && self.actions == learned.actions
            && self.counts.len() == learned.counts.len()
            && self.refit.as_ref().is_none_or(|r| r.len() == dim + 1)
            && self.segments.as_ref().is_none_or(|s| {
                s.centroids.len() == learned.segments.centroids.len()
                    && s.members.len() == learned.segments.members.len()
                    && s.scale.dim() == dim
            })
    }
}

/// A node taking a merged model on: the parameters it had accounted for (`before`: the last
/// version it adopted, with the deltas it had sent) replaced by `after` (the new version, with
/// the deltas it sent that this version does not include yet), keeping what it learned since.
#[derive(Clone, Debug, PartialEq)]
pub struct Adoption {
    /// What the node's parameters were, less what it learned since.
    pub before: Learned,
    /// What they become, less what it learned since.
    pub after: Learned,
    /// The cluster's watermark (unix ms): the node's moves up to it.
    pub watermark_ms: i64,
}

impl Adoption {
    /// Installs `after` plus what `model` learned since `before` (exactly `after` when it
    /// learned nothing since); an error, changing nothing, for parameters of another shape.
    pub fn apply(&self, model: &mut ModelState) -> Result<(), String> {
        let now = Learned::of(model);
        let next = match now == self.before {
            true => self.after.clone(),
            false => self.after.with(&Delta::between(&now, &self.before, 0.0, 0)),
        };
        next.install(model)
    }
}

/// A node's latest fits, as the merge keeps them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFits {
    /// The node's latest refit and its weight.
    pub refit: Option<(Vec<f64>, f64)>,
    /// The node's latest segments fit.
    pub segments: Option<SegmentsFit>,
}

/// A version of the cluster's global model: the merged parameters, how far into the stream of
/// deltas they reach, and each node's latest fits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Global {
    /// The merged parameters.
    pub learned: Learned,
    /// The last delta (stream sequence) merged in; every delta up to it is.
    pub deltas_through: u64,
    /// The latest event time any node reported (unix ms).
    pub watermark_ms: i64,
    /// Each member's latest fits, by node id.
    pub fits: BTreeMap<String, NodeFits>,
}

impl Global {
    /// The model before any delta, in the shape of `like`.
    pub fn empty(like: &Learned) -> Global {
        Global {
            learned: like.zero_like(),
            deltas_through: 0,
            watermark_ms: 0,
            fits: BTreeMap::new(),
        }
    }

    /// The next version: `deltas` (node id, delta), in stream order, through stream sequence
    /// `through`, added to this one; the fits of nodes not in `members` are dropped (their
    /// customers moved to the members) unless `members` is empty. Returns the deltas refused
    /// for their shape, by node id, with why.
    pub fn merge(
        &self,
        deltas: &[(String, Delta)],
        through: u64,
        members: &[String],
    ) -> (Global, Vec<String>) {
        let mut next = self.clone();
        let mut refused = Vec::new();
        next.deltas_through = through.max(self.deltas_through);
        for (node, d) in deltas {
            if !d.fits(&next.learned) {
                refused.push(format!(
                    "a model delta of node {node} has another shape ({} features, actions \
                     {:?}) than the cluster's ({} features, actions {:?})",
                    d.weights.len(),
                    d.actions,
                    next.learned.weights.len(),
                    next.learned.actions
                ));
                continue;
            }
            next.learned = next.learned.plus(d);
            next.watermark_ms = next.watermark_ms.max(d.watermark_ms);
            let fits = next.fits.entry(node.clone()).or_default();
            if let Some(r) = &d.refit {
                fits.refit = Some((r.clone(), d.weight));
            }
            if let Some(s) = &d.segments {
                fits.segments = Some(s.clone());
            }
        }
        if !members.is_empty() {
            next.fits.retain(|node, _| members.contains(node));
        }
        if let Some(refit) = average_refit(next.fits.values().filter_map(|f| f.refit.as_ref())) {
            next.learned.refit = refit;
        }
        let fits: Vec<&SegmentsFit> = next
            .fits
            .values()
            .filter_map(|f| f.segments.as_ref())
            .filter(|s| s.seeded)
            .collect();
        if let Some(merged) = merge_segments(&fits, &next.learned.segments) {
            next.learned.segments = merged;
        }
        (next, refused)
    }
}

/// The nodes' refits averaged, weighted by the examples each learned (equally when none
/// reports any); None without refits.
fn average_refit<'a>(refits: impl Iterator<Item = &'a (Vec<f64>, f64)>) -> Option<Vec<f64>> {
    let refits: Vec<&(Vec<f64>, f64)> = refits.collect();
    let len = refits.first()?.0.len();
    let total: f64 = refits.iter().map(|(_, w)| w.max(0.0)).sum();
    let mut out = vec![0.0; len];
    for (r, w) in &refits {
        let share = if total > 0.0 {
            w.max(0.0) / total
        } else {
            1.0 / refits.len() as f64
        };
        for (o, v) in out.iter_mut().zip(r) {
            *o += share * v;
        }
    }
    Some(out)
}

/// The nodes' segment fits clustered into `previous.members.len()` segments: every node's
/// centroids, in raw units, weighted by the sample vectors each owned, re-standardised by all
/// the fits' samples together, and clustered by weighted k-means from `previous`'s centroids
/// (or the heaviest fit's before there are any). A segment left without centroids takes the
/// centroid farthest from its own. None without seeded fits.
fn merge_segments(fits: &[&SegmentsFit], previous: &SegmentsFit) -> Option<SegmentsFit> {
    let k = previous.members.len();
    let dim = previous.scale.dim();
    if fits.is_empty() || k == 0 || dim == 0 {
        return None;
    }
    let scale = fits
        .iter()
        .fold(Scaler::new(dim), |acc, f| acc.combined(&f.scale));
    let mut points: Vec<Vec<f64>> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    for f in fits {
        for (row, m) in f.centroids.chunks_exact(dim).zip(&f.members) {
            points.push(scale.transform_vec(&f.scale.inverse(row)));
            weights.push(*m as f64);
        }
    }
    if weights.iter().all(|w| *w == 0.0) {
        weights.fill(1.0);
    }
    let start = match previous.seeded {
        true => previous,
        false => fits
            .iter()
            .copied()
            .max_by_key(|f| f.members.iter().sum::<u64>())?,
    };
    let mut centres: Vec<Vec<f64>> = start
        .centroids
        .chunks_exact(dim)
        .map(|row| scale.transform_vec(&start.scale.inverse(row)))
        .collect();
    let nearest = |centres: &[Vec<f64>], p: &[f64]| {
        (0..centres.len())
            .map(|c| (c, sq_dist(&centres[c], p)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map_or(0, |(c, _)| c)
    };
    let mut owner = vec![usize::MAX; points.len()];
    for _ in 0..MERGE_ITERATIONS {
        let mut moved = false;
        for (i, p) in points.iter().enumerate() {
            let c = nearest(&centres, p);
            moved |= owner[i] != c;
            owner[i] = c;
        }
        // A segment without centroids takes the one farthest from its centre.
        for c in 0..k {
            if owner.contains(&c) {
                continue;
            }
            let far = (0..points.len())
                .filter(|&i| owner.iter().filter(|&&o| o == owner[i]).count() > 1)
                .max_by(|&a, &b| {
                    let da = weights[a] * sq_dist(&centres[owner[a]], &points[a]);
                    let db = weights[b] * sq_dist(&centres[owner[b]], &points[b]);
                    da.total_cmp(&db).then(b.cmp(&a))
                });
            if let Some(i) = far {
                owner[i] = c;
                centres[c] = points[i].clone();
                moved = true;
            }
        }
        for (c, centre) in centres.iter_mut().enumerate() {
            let mut sum = vec![0.0; dim];
            let mut total = 0.0;
            for (i, p) in points.iter().enumerate().filter(|(i, _)| owner[*i] == c) {
                total += weights[i];
                for (s, v) in sum.iter_mut().zip(p) {
                    *s += weights[i] * v;
                }
            }
            if total > 0.0 {
                *centre = sum.into_iter().map(|s| s / total).collect();
            }
        }
        if !moved {
            break;
        }
    }
    let mut members = vec![0u64; k];
    for (i, f) in fits.iter().flat_map(|f| f.members.iter()).enumerate() {
        members[owner[i]] = members[owner[i]].saturating_add(*f);
    }
    Some(SegmentsFit {
        centroids: centres.concat(),
        members,
        scale,
        seeded: true,
    })
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    fn state() -> ModelState {
        let config = ModelConfig {
            segments: 2,
            ..Default::default()
        };
        let mut s = ModelState::new(3, &config);
        s.strategy = crate::model::strategy::Strategy::new(2, vec!["a".into(), "b".into()]);
        s
    }

    fn learn(s: &mut ModelState, xs: &[[f64; 3]]) {
        for x in xs {
            s.scaler.update(x);
            let z = s.scaler.transform_vec(x);
            s.propensity.learn(&z, x[0] > 0.0);
            s.strategy.record(usize::from(x[1] > 0.0), 1, x[2] > 0.0);
        }
    }

    const A: [[f64; 3]; 4] = [
        [1.0, 2.0, 3.0],
        [-1.0, 0.5, -2.0],
        [2.0, -1.0, 0.0],
        [0.5, 0.5, 1.0],
    ];
    const B: [[f64; 3]; 3] = [[-3.0, 1.0, 1.0], [0.0, -2.0, 4.0], [1.5, 1.0, -1.0]];

    #[test]
    fn a_delta_added_to_its_start_gives_the_node_back() {
        let mut s = state();
        learn(&mut s, &A);
        let before = Learned::of(&s);
        learn(&mut s, &B);
        let now = Learned::of(&s);
        let d = Delta::between(&now, &before, 1.0, 0);
        let back = before.with(&d);
        assert_eq!(back.counts, now.counts);
        assert_eq!(back.scaler.count(), now.scaler.count());
        for (a, b) in back.weights.iter().zip(&now.weights) {
            assert!((a - b).abs() < 1e-12);
        }
        for (a, b) in back.scaler.mean().iter().zip(now.scaler.mean()) {
            assert!((a - b).abs() < 1e-12);
        }
        let nothing = Delta::between(&now, &now, 1.0, 0);
        assert_eq!(nothing.scaler.count(), 0);
        assert!(nothing.refit.is_none() && nothing.segments.is_none());
    }

    #[test]
    fn merged_counts_and_scaler_equal_one_node_that_saw_everything() {
        let (mut one, mut n1, mut n2) = (state(), state(), state());
        learn(&mut one, &A);
        learn(&mut one, &B);
        learn(&mut n1, &A);
        learn(&mut n2, &B);
        let zero = Learned::of(&state());
        let g = Global::empty(&zero);
        let deltas = vec![
            (
                "n1".to_string(),
                Delta::between(&Learned::of(&n1), &zero, 4.0, 10),
            ),
            (
                "n2".to_string(),
                Delta::between(&Learned::of(&n2), &zero, 3.0, 20),
            ),
        ];
        let (next, refused) = g.merge(&deltas, 2, &[]);
        assert!(refused.is_empty());
        let all = Learned::of(&one);
        assert_eq!(next.learned.counts, all.counts, "bandit counts are exact");
        assert_eq!(next.learned.scaler.count(), all.scaler.count());
        for (a, b) in next.learned.scaler.mean().iter().zip(all.scaler.mean()) {
            assert!((a - b).abs() < 1e-12);
        }
        for (a, b) in next
            .learned
            .scaler
            .variance()
            .iter()
            .zip(all.scaler.variance())
        {
            assert!((a - b).abs() < 1e-9);
        }
        assert_eq!((next.deltas_through, next.watermark_ms), (2, 20));
        // Installing the merge makes a node serve exactly it.
        let mut s = state();
        next.learned.install(&mut s).unwrap();
        assert_eq!(Learned::of(&s), next.learned);
        assert_eq!(Learned::of(&s).checksum(), next.learned.checksum());
    }

    #[test]
    fn deltas_of_another_shape_are_refused_with_the_reason() {
        let zero = Learned::of(&state());
        let mut other = state();
        other.strategy = crate::model::strategy::Strategy::new(2, vec!["x".into()]);
        learn(&mut other, &A);
        let d = Delta::between(
            &Learned::of(&other),
            &Learned::of(&other).zero_like(),
            1.0,
            0,
        );
        let (next, refused) = Global::empty(&zero).merge(&[("n9".into(), d)], 1, &[]);
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].contains("n9") && refused[0].contains("actions"),
            "{refused:?}"
        );
        assert_eq!(next.learned, zero);
        assert_eq!(next.deltas_through, 1, "a refused delta is still passed");
        let mut wrong = state();
        let config = ModelConfig {
            segments: 2,
            ..Default::default()
        };
        let bigger = Learned::of(&ModelState::new(4, &config));
        assert!(bigger.install(&mut wrong).is_err());
    }

    fn fit(centres: &[[f64; 2]], members: &[u64]) -> SegmentsFit {
        let mut scale = Scaler::new(2);
        for c in centres {
            scale.update(c);
        }
        SegmentsFit {
            centroids: centres
                .iter()
                .flat_map(|c| scale.transform_vec(c))
                .collect(),
            members: members.to_vec(),
            scale,
            seeded: true,
        }
    }

    #[test]
    fn segments_merge_matches_close_centroids_and_keeps_their_numbers() {
        let previous = fit(&[[0.0, 0.0], [10.0, 10.0], [0.0, 10.0]], &[1, 1, 1]);
        let n1 = fit(&[[0.5, 0.0], [10.0, 9.0], [0.0, 11.0]], &[10, 30, 20]);
        let n2 = fit(&[[9.5, 10.5], [-0.5, 0.0], [1.0, 10.0]], &[30, 10, 20]);
        let merged = merge_segments(&[&n1, &n2], &previous).unwrap();
        let raw: Vec<Vec<f64>> = merged
            .centroids
            .chunks(2)
            .map(|r| merged.scale.inverse(r))
            .collect();
        let close =
            |a: &[f64], b: [f64; 2]| (a[0] - b[0]).abs() < 1e-9 && (a[1] - b[1]).abs() < 1e-9;
        assert!(close(&raw[0], [0.0, 0.0]), "{raw:?}");
        assert!(close(&raw[1], [9.75, 9.75]), "{raw:?}");
        assert!(close(&raw[2], [0.5, 10.5]), "{raw:?}");
        assert_eq!(merged.members, vec![20, 60, 40]);
        // One node's fit merged alone comes back as it was, even from far-off centres.
        let far = fit(&[[100.0, 0.0], [100.0, 1.0], [100.0, 2.0]], &[1, 1, 1]);
        let alone = merge_segments(&[&n1], &far).unwrap();
        let mut got: Vec<Vec<f64>> = alone
            .centroids
            .chunks(2)
            .map(|r| {
                alone
                    .scale
                    .inverse(r)
                    .iter()
                    .map(|v| (v * 1e6).round() / 1e6)
                    .collect()
            })
            .collect();
        got.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        assert_eq!(got, vec![vec![0.0, 11.0], vec![0.5, 0.0], vec![10.0, 9.0]]);
    }

    #[test]
    fn refits_average_by_weight_and_departed_nodes_drop_out() {
        let zero = Learned::of(&state());
        let mut d1 = Delta::between(&zero, &zero, 3.0, 0);
        d1.refit = Some(vec![1.0, 1.0, 1.0, 1.0]);
        let mut d2 = Delta::between(&zero, &zero, 1.0, 0);
        d2.refit = Some(vec![5.0, 5.0, 5.0, 5.0]);
        let (g, _) = Global::empty(&zero).merge(&[("a".into(), d1), ("b".into(), d2)], 2, &[]);
        assert_eq!(g.learned.refit, vec![2.0; 4]);
        let (g, _) = g.merge(&[], 2, &["a".to_string()]);
        assert_eq!(g.learned.refit, vec![1.0; 4]);
        assert_eq!(g.fits.keys().collect::<Vec<_>>(), vec!["a"]);
    }
}
