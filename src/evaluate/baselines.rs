//! Batch baselines the online learners are measured against: an L2-regularised logistic
//! regression fitted by Newton's method (IRLS) on standardised features, and k-means (k-means++
//! seeding, then Lloyd iterations). Both are deterministic: the same input (and seed) gives the
//! same model bit for bit.

use crate::model::logistic;
use crate::model::propensity::sigmoid;
use crate::model::Scaler;
use rand::SeedableRng;

/// L2 penalty of the batch logistic regression (on the weights, not the bias), per example.
pub const BATCH_LR_L2: f64 = 1e-3;
/// Most Lloyd iterations of the batch k-means.
const LLOYD_STEPS: usize = 100;

/// A logistic regression fitted in one batch on standardised features.
#[derive(Debug, Clone)]
pub struct BatchLogistic {
    scaler: Scaler,
    /// Bias first, then one weight per dimension.
    coef: Vec<f64>,
}

impl BatchLogistic {
    /// Fits the model on raw feature vectors `x` (all of one length) with labels `y`: the
    /// features are standardised with their own mean and standard deviation (the online
    /// model's [`Scaler`]), then the L2-penalised log likelihood is maximised by Newton's
    /// method. `None` without examples of both classes.
    ///
    /// # Examples
    /// ```
    /// use persona::testing::evaluate::baselines::BatchLogistic;
    /// let x: Vec<Vec<f64>> = (0..20).map(|i| vec![f64::from(i)]).collect();
    /// let y: Vec<bool> = (0..20).map(|i| i % 3 == 0 || i > 12).collect();
    /// let model = BatchLogistic::fit(&x, &y).expect("both classes occur");
    /// assert!(model.predict(&[19.0]) > model.predict(&[1.0]));
    /// ```
    pub fn fit(x: &[Vec<f64>], y: &[bool]) -> Option<BatchLogistic> {
        let dim = x.first()?.len();
        if x.len() != y.len() || !y.iter().any(|l| *l) || y.iter().all(|l| *l) {
            return None;
        }
        let mut scaler = Scaler::new(dim);
        for row in x {
            scaler.update(row);
        }
        let z: Vec<Vec<f64>> = x.iter().map(|row| scaler.transform_vec(row)).collect();
        let rows: Vec<&[f64]> = z.iter().map(Vec::as_slice).collect();
        let coef = logistic::fit(&rows, y, &vec![1.0; rows.len()], dim, BATCH_LR_L2, None)?;
        Some(BatchLogistic { scaler, coef })
    }

    /// P(label) for a raw feature vector.
    pub fn predict(&self, x: &[f64]) -> f64 {
        let z = self.scaler.transform_vec(x);
        let logit = self.coef[0]
            + self.coef[1..]
                .iter()
                .zip(&z)
                .map(|(c, v)| c * v)
                .sum::<f64>();
        sigmoid(logit)
    }

    /// The bias (the logit at the training means).
    #[cfg(test)]
    fn bias(&self) -> f64 {
        self.coef[0]
    }

    /// The weights on the standardised features.
    #[cfg(test)]
    fn weights(&self) -> &[f64] {
        &self.coef[1..]
    }
}

/// k-means on the rows of `x` (already standardised): k-means++ seeding from `seed`, then Lloyd
/// iterations until no assignment changes (at most 100). Returns each row's cluster, in
/// `0..k.min(rows)`; empty for no rows.
///
/// # Examples
/// ```
/// use persona::testing::evaluate::baselines::kmeans;
/// let x = vec![vec![0.0], vec![0.1], vec![9.0], vec![9.2]];
/// let a = kmeans(&x, 2, 7);
/// assert!(a[0] == a[1] && a[2] == a[3] && a[0] != a[2]);
/// ```
pub fn kmeans(x: &[Vec<f64>], k: usize, seed: u64) -> Vec<usize> {
    use crate::model::{kmeans_pp, lloyd, nearest_row};
    let k = k.min(x.len());
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    match kmeans_pp(x, k, &mut rng) {
        Some(mut c) => {
            lloyd(&mut c, x, LLOYD_STEPS);
            x.iter().map(|r| nearest_row(&c, r).0).collect()
        }
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::metrics::{adjusted_rand_index, auc};
    use rand::Rng;
    use rand_distr::{Distribution, Normal};

    /// Planted signal: P(y) = σ(2·x0 − x1), x2 pure noise, x3 constant. The fit recovers the
    /// signs and ratio of the weights, ignores the noise and ranks held-out data nearly as well
    /// as the true model.
    #[test]
    fn batch_lr_recovers_a_planted_signal() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let normal = Normal::new(0.0, 1.0).expect("valid normal");
        let mut sample = |n: usize| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for _ in 0..n {
                let row = vec![
                    normal.sample(&mut rng),
                    normal.sample(&mut rng),
                    normal.sample(&mut rng),
                    5.0,
                ];
                let p = sigmoid(2.0 * row[0] - row[1] - 0.5);
                y.push(rng.gen::<f64>() < p);
                x.push(row);
            }
            (x, y)
        };
        let (x, y) = sample(4000);
        let model = BatchLogistic::fit(&x, &y).expect("both classes");
        let w = model.weights();
        assert!(w[0] > 1.5 && w[0] < 2.5, "{w:?}");
        assert!(w[1] < -0.7 && w[1] > -1.3, "{w:?}");
        assert!(w[2].abs() < 0.15, "{w:?}");
        assert_eq!(
            w[3], 0.0,
            "a constant feature standardises to 0 and is penalised"
        );
        let (tx, ty) = sample(2000);
        let fitted: Vec<f64> = tx.iter().map(|r| model.predict(r)).collect();
        let truth: Vec<f64> = tx.iter().map(|r| 2.0 * r[0] - r[1]).collect();
        let (a, best) = (
            auc(&fitted, &ty).expect("both"),
            auc(&truth, &ty).expect("both"),
        );
        assert!(a > best - 0.01, "fitted {a} vs true {best}");
        // Deterministic.
        let again = BatchLogistic::fit(&x, &y).expect("both classes");
        assert_eq!(again.weights(), model.weights());
        assert_eq!(again.bias(), model.bias());
    }

    /// Linearly separable data: the penalty keeps the weights finite and the ranking perfect.
    #[test]
    fn batch_lr_handles_separable_data() {
        let x: Vec<Vec<f64>> = (0..40).map(|i| vec![f64::from(i)]).collect();
        let y: Vec<bool> = (0..40).map(|i| i >= 20).collect();
        let model = BatchLogistic::fit(&x, &y).expect("both classes");
        assert!(model.weights()[0].is_finite() && model.weights()[0] > 0.0);
        let p: Vec<f64> = x.iter().map(|r| model.predict(r)).collect();
        assert_eq!(auc(&p, &y), Some(1.0));
        assert!(p[0] < 0.05 && p[39] > 0.95);
        assert!(BatchLogistic::fit(&x, &[false; 40]).is_none());
    }

    /// Three well-separated planted blobs are recovered exactly.
    #[test]
    fn kmeans_recovers_planted_clusters() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        let normal = Normal::new(0.0, 0.3).expect("valid normal");
        let centres = [[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]];
        let mut x = Vec::new();
        let mut truth = Vec::new();
        for i in 0..300 {
            let c = centres[i % 3];
            x.push(vec![
                c[0] + normal.sample(&mut rng),
                c[1] + normal.sample(&mut rng),
            ]);
            truth.push(i % 3);
        }
        let assign = kmeans(&x, 3, 11);
        assert_eq!(adjusted_rand_index(&assign, &truth), Some(1.0));
        assert_eq!(kmeans(&x, 3, 11), assign, "deterministic for a seed");
        assert!(kmeans(&[], 3, 1).is_empty());
        assert_eq!(kmeans(&x[..2], 5, 1).len(), 2);
    }
}
