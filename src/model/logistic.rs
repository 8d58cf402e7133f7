//! L2-penalised logistic regression fitted exactly by Newton's method (IRLS), on features the
//! caller has already standardised. Used by the writer's periodic refit of the propensity model
//! (`src/pipeline/cohorts.rs`) and by the batch baseline of `persona evaluate`.
//!
//! Minimises `Σ wⱼ·ℓ(yⱼ, b + w·zⱼ) + λ/2·‖w‖²` (ℓ the log loss, the bias not penalised) with
//! `λ = l2 · Σ wⱼ`, so the penalty per unit of example weight stays the same whatever the number
//! of examples. Deterministic: the same input gives the same coefficients bit for bit.

use super::propensity::sigmoid;

/// Most Newton steps.
const NEWTON_STEPS: usize = 50;
/// Newton stops once no coefficient moves by more than this.
const NEWTON_TOLERANCE: f64 = 1e-8;

/// Fits the model on rows `z` (all of length `dim`), labels `y` and example weights `weight`,
/// starting from `start` (bias first, then one weight per dimension; zeros if `None`). Returns
/// the coefficients, bias first; `None` without examples of both classes, with rows of the wrong
/// length or if a Newton system is not positive definite (never for `l2 > 0`).
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // the backtest's batch LR; the writer uses fit_steps
pub(crate) fn fit(
    z: &[&[f64]],
    y: &[bool],
    weight: &[f64],
    dim: usize,
    l2: f64,
    start: Option<&[f64]>,
) -> Option<Vec<f64>> {
    fit_steps(z, y, weight, dim, l2, start, Steps::CONVERGE)
}

/// How far [`fit_steps`] goes: at most `max` Newton steps (at least one, at most 50), each
/// with its Hessian summed over every `hessian_stride`-th row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Steps {
    /// Most Newton steps.
    pub(crate) max: usize,
    /// The Hessian's rows: every `hessian_stride`-th (at least 1: all).
    pub(crate) hessian_stride: usize,
}

impl Steps {
    /// To convergence, with the whole Hessian (what [`fit`] does).
    pub(crate) const CONVERGE: Steps = Steps {
        max: NEWTON_STEPS,
        hessian_stride: 1,
    };
}

/// [`fit`] with at most `steps.max` Newton steps (at least one): from a start near the
/// optimum (the previous fit on similar data) one or two steps get as close as the data
/// resolve, at a fraction of the cost of converging to the tolerance. The Hessian is summed
/// over every `steps.hessian_stride`-th row only (times the stride), the gradient and the objective
/// over all: the steps still lead to the exact optimum, each a little less far, and the
/// Hessian, most of a step's cost, costs `1 / hessian_stride`.
pub(crate) fn fit_steps(
    z: &[&[f64]],
    y: &[bool],
    weight: &[f64],
    dim: usize,
    l2: f64,
    start: Option<&[f64]>,
    steps: Steps,
) -> Option<Vec<f64>> {
    let stride = steps.hessian_stride.max(1);
    if z.len() != y.len()
        || z.len() != weight.len()
        || z.iter().any(|r| r.len() != dim)
        || !y.iter().any(|l| *l)
        || y.iter().all(|l| *l)
    {
        return None;
    }
    let p = dim + 1;
    let lambda = l2 * weight.iter().sum::<f64>();
    let mut coef = match start {
        Some(s) if s.len() == p && s.iter().all(|c| c.is_finite()) => s.to_vec(),
        _ => vec![0.0; p],
    };
    let mut grad = vec![0.0; p];
    let mut hess = vec![0.0; p * p];
    let mut row = vec![0.0; p];
    for _ in 0..steps.max.clamp(1, NEWTON_STEPS) {
        grad.fill(0.0);
        hess.fill(0.0);
        // The objective at `coef`, summed as `objective` sums it.
        let mut loss = 0.0;
        for (j, ((zi, yi), wt)) in z.iter().zip(y).zip(weight).enumerate() {
            row[0] = 1.0;
            row[1..].copy_from_slice(zi);
            let logit = coef[0] + dot(&coef[1..], zi);
            loss += wt * log_loss(logit, *yi);
            let prob = sigmoid(logit);
            let err = wt * (prob - f64::from(u8::from(*yi)));
            for (g, r) in grad.iter_mut().zip(&row) {
                *g += err * r;
            }
            if j % stride != 0 {
                continue;
            }
            let w = stride as f64 * wt * (prob * (1.0 - prob)).max(1e-12);
            for a in 0..p {
                let wa = w * row[a];
                if wa == 0.0 {
                    continue;
                }
                // The upper triangle of row a, as slices (no bounds checks, so it vectorises).
                let upper = &mut hess[a * p + a..(a + 1) * p];
                for (h, r) in upper.iter_mut().zip(&row[a..]) {
                    *h += wa * r;
                }
            }
        }
        for a in 1..p {
            grad[a] += lambda * coef[a];
            hess[a * p + a] += lambda;
        }
        // A tiny ridge on the bias keeps the system positive definite in degenerate cases.
        hess[0] += 1e-9;
        for a in 0..p {
            for b in 0..a {
                hess[a * p + b] = hess[b * p + a];
            }
        }
        let step = cholesky_solve(&hess, &grad, p)?;
        // Damped Newton: halve the step until the objective does not increase, so that a start
        // far from the optimum (saturated predictions, a nearly flat Hessian) cannot diverge.
        let current = loss + lambda / 2.0 * coef[1..].iter().map(|c| c * c).sum::<f64>();
        let mut t = 1.0;
        let mut next = coef.clone();
        loop {
            for ((n, c), s) in next.iter_mut().zip(&coef).zip(&step) {
                *n = c - t * s;
            }
            if objective(&next, z, y, weight, lambda) <= current {
                break;
            }
            t *= 0.5;
            if t < 1e-10 {
                return Some(coef); // no descent along the step: already at the optimum
            }
        }
        let largest = step.iter().fold(0.0f64, |m, s| m.max((t * s).abs()));
        coef = next;
        if !largest.is_finite() {
            return None;
        }
        if largest < NEWTON_TOLERANCE {
            break;
        }
    }
    Some(coef)
}

/// The penalised, weighted log loss at `coef` (bias first).
fn objective(coef: &[f64], z: &[&[f64]], y: &[bool], weight: &[f64], lambda: f64) -> f64 {
    let mut loss = 0.0;
    for ((zi, yi), wt) in z.iter().zip(y).zip(weight) {
        let logit = coef[0] + dot(&coef[1..], zi);
        loss += wt * log_loss(logit, *yi);
    }
    loss + lambda / 2.0 * coef[1..].iter().map(|c| c * c).sum::<f64>()
}

/// −log σ(±logit) for label `y`, computed without overflow: log(1 + e^−m) for the margin m.
fn log_loss(logit: f64, y: bool) -> f64 {
    let margin = if y { logit } else { -logit };
    if margin > 0.0 {
        (-margin).exp().ln_1p()
    } else {
        -margin + margin.exp().ln_1p()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `a x = b` for a symmetric positive definite `p × p` matrix `a` (row-major) by Cholesky
/// decomposition; `None` if `a` is not positive definite.
fn cholesky_solve(a: &[f64], b: &[f64], p: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..=i {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * p + i] = s.sqrt();
            } else {
                l[i * p + j] = s / l[j * p + j];
            }
        }
    }
    let mut y = vec![0.0; p];
    for i in 0..p {
        let s: f64 = (0..i).map(|k| l[i * p + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * p + i];
    }
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        let s: f64 = (i + 1..p).map(|k| l[k * p + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * p + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        // [[4, 2], [2, 3]] x = [2, 1] → x = [0.5, 0].
        let x = cholesky_solve(&[4.0, 2.0, 2.0, 3.0], &[2.0, 1.0], 2).expect("SPD");
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12);
        assert!(cholesky_solve(&[0.0, 0.0, 0.0, 0.0], &[1.0, 1.0], 2).is_none());
    }

    /// One feature, no penalty: the fit's gradient is zero, i.e. the predicted positives match
    /// the observed ones overall and weighted by the feature (the likelihood equations).
    #[test]
    fn the_fit_solves_the_likelihood_equations() {
        let rows: Vec<[f64; 1]> = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
            .iter()
            .map(|v| [*v])
            .collect();
        let z: Vec<&[f64]> = rows.iter().map(|r| &r[..]).collect();
        let y = [false, false, true, false, true, false, true, true];
        let weight = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0];
        let c = fit(&z, &y, &weight, 1, 0.0, None).expect("both classes");
        let (mut g0, mut g1) = (0.0, 0.0);
        for ((r, l), w) in rows.iter().zip(&y).zip(&weight) {
            let e = w * (sigmoid(c[0] + c[1] * r[0]) - f64::from(u8::from(*l)));
            g0 += e;
            g1 += e * r[0];
        }
        assert!(g0.abs() < 1e-9 && g1.abs() < 1e-9, "gradient {g0} {g1}");
        assert!(c[1] > 0.0);
        // The same data from a different start gives the same answer.
        let again = fit(&z, &y, &weight, 1, 0.0, Some(&[3.0, -3.0])).expect("both classes");
        assert!((again[0] - c[0]).abs() < 1e-9 && (again[1] - c[1]).abs() < 1e-9);
    }

    #[test]
    fn one_class_or_bad_rows_are_refused() {
        let rows = [[1.0], [2.0]];
        let z: Vec<&[f64]> = rows.iter().map(|r| &r[..]).collect();
        assert!(fit(&z, &[true, true], &[1.0, 1.0], 1, 1e-3, None).is_none());
        assert!(fit(&z, &[true, false], &[1.0, 1.0], 2, 1e-3, None).is_none());
        assert!(fit(&z, &[true], &[1.0], 1, 1e-3, None).is_none());
        assert!(fit(&z, &[true, false], &[1.0, 1.0], 1, 1e-3, None).is_some());
    }
}
