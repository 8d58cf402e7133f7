//! Drift detection on the propensity model's forecasts (Page–Hinkley test), fed in deadline
//! order.
//!
//! Each labelled example contributes one observation `x_t`. The test tracks the cumulative
//! deviation `m_t = Σ (x_i − x̄_i − δ)` from the running mean and its minimum `M_t`; when
//! `m_t − M_t > λ` the observations have risen persistently — the world the model learned has
//! changed — and a detection is reported. `δ` tolerates small fluctuations; `λ` sets how much
//! accumulated excess counts as drift.
//!
//! **What is observed.** Not the loss of the prediction made when the example is learned: the
//! model learns online and catches up with a change within a few hundred examples, and the
//! examples' own features (recency, purchases) soon show the new behaviour: on generated streams
//! whose buyers swap at a known time, that loss moved by −0.01 to +0.07 per example, a frozen
//! forecaster's surprise by +0.14 to +0.30 (`docs/model.md`).
//! The observation is the [`surprise`] of the *lagged forecaster*: the propensity's online model
//! (which learns every example as it completes; the served refit changes in steps, and its
//! lagged copies fired on the seasonal swings of the shared real logs, `docs/model.md`) frozen
//! as it was half a horizon to one horizon earlier ([`DriftMonitor::rotate`]: copies are taken
//! every half horizon, and the one before the newest scores). Every example is learned at its deadline
//! (positives are held until then, `crate::pipeline`'s held examples), so the copy has learned
//! none of the examples it scores: they are all due after it was taken. A frozen model's surprise
//! only moves when the data do, and the surprise (log loss minus the prediction's own entropy) is
//! zero on average for calibrated forecasts, whatever the share of buyers. A forecaster copied
//! less than two horizons after the first example is not used: the test is blind for about the
//! first two and a half horizons of a store.
//!
//! The copy's age trades how long a change accumulates surprise against how much a slow trend
//! does. Measured with held positives (`docs/model.md`): a copy one to two horizons old fired on
//! the pre-Christmas rise of two of the shared real logs (statistic 171 and 154 against λ 150); a
//! copy zero to one horizon old missed 3 of 13 planted changes; half a horizon to one raises no
//! alarm on the real logs or on stationary streams and finds all 13 within 11–28 days. (Before
//! positives were held, a copy less than a horizon old had already learned many of the positives
//! it scored, so the copy had to be one to two horizons old.)
//!
//! **Deadline order.** The test is fed in deadline order, one deadline day at a time, each
//! observation held back until its example's *deadline* (checkpoint + horizon) has passed and
//! every example due that day has been recorded. What waits is
//! part of the persisted model state (a store closed and reopened must hold exactly the state of
//! one never closed), so it is kept aggregated: per deadline day, the sum and the count
//! ([`PendingDay`]). Deadlines of examples still waiting lie within one horizon after the
//! watermark, so there are at most `horizon_days + 1` of them (31 by default, about 20 bytes
//! each), and never more than [`MAX_PENDING_DAYS`]. A day is fed as one observation of its mean
//! weighted by its count ([`PageHinkley::observe_weighted`]): the order within a day, which the
//! learning order fixes, does not matter.
//!
//! **Re-arming.** After an abrupt change the examples due over the next horizon straddle it, and
//! the lagged forecaster keeps scoring with a model from before the change for up to a horizon,
//! so the observations stay high for a while even if nothing changes again. A test merely
//! restarted after a detection would fire again, about daily. After a detection the
//! monitor therefore ignores the observations due within two horizons of the detection's day,
//! then restarts the test from scratch (a new running mean and [`MIN_EXAMPLES`] before it may
//! fire): a sustained new regime gives one alarm.
//!
//! Everything here is a function of the order in which examples are recorded: no clock, no hash
//! iteration.

use serde::{Deserialize, Serialize};

use super::propensity::{sigmoid, Propensity};

/// Default tolerance δ (in log-loss units per example).
pub const DEFAULT_DELTA: f64 = 0.05;
/// Default threshold λ. At 100 the pre-Christmas rise of the shared real logs (a surprise
/// 0.05–0.15 above the mean for seven weeks) crossed it; see `docs/model.md`.
pub const DEFAULT_LAMBDA: f64 = 150.0;
/// Examples before the test may fire (the running mean needs to settle).
pub const MIN_EXAMPLES: u64 = 200;
/// Detections kept in the state.
pub const MAX_DETECTIONS: usize = 16;
/// Most deadline days [`DriftMonitor`] keeps waiting. Covers horizons up to 399 days; with a
/// longer horizon a loss due after the last kept day joins that day (it is fed a little early).
pub const MAX_PENDING_DAYS: usize = 400;
/// One day in milliseconds: the granularity of deadlines.
pub const DAY_MS: i64 = 86_400_000;

/// One detected drift.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Event-time watermark when it fired, unix ms.
    pub watermark_ms: i64,
    /// Start (unix ms, UTC midnight) of the deadline day whose losses crossed the threshold.
    pub deadline_day_ms: i64,
    /// Model version (committed batches) when it fired.
    pub model_version: u64,
    /// Examples learned (prequential count) when it fired.
    pub examples: u64,
    /// The statistic `m_t − M_t` at detection.
    pub statistic: f64,
}

/// The log loss of predicting `p` for `label`, minus the loss the prediction itself expects (its
/// entropy `−p ln p − (1 − p) ln(1 − p)`). Its mean is 0 for a calibrated model whatever the
/// mix of customers scored, so a change in the share of buyers among the examples (churners
/// leaving a stream, a season) does not move it, while predictions that stopped being right do.
/// `p` is clamped to `[1e-15, 1 − 1e-15]`.
pub fn surprise(p: f64, label: bool) -> f64 {
    let p = p.clamp(1e-15, 1.0 - 1e-15);
    let loss = -(if label { p } else { 1.0 - p }).ln();
    let entropy = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
    loss - entropy
}

/// The Page–Hinkley test state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageHinkley {
    delta: f64,
    lambda: f64,
    n: u64,
    mean: f64,
    cumulative: f64,
    minimum: f64,
}

impl Default for PageHinkley {
    fn default() -> Self {
        PageHinkley::new(DEFAULT_DELTA, DEFAULT_LAMBDA)
    }
}

impl PageHinkley {
    /// A test with tolerance `delta` and threshold `lambda`.
    pub fn new(delta: f64, lambda: f64) -> PageHinkley {
        PageHinkley {
            delta,
            lambda,
            n: 0,
            mean: 0.0,
            cumulative: 0.0,
            minimum: 0.0,
        }
    }

    /// Adds one observation (a loss). Returns the statistic if drift was detected; the test then
    /// restarts.
    #[cfg(any(test, feature = "testing"))]
    pub fn observe(&mut self, x: f64) -> Option<f64> {
        self.observe_weighted(x, 1)
    }

    /// Adds `weight` observations whose mean is `x` as one step: the running mean takes all of
    /// them, and the cumulative deviation grows by `weight · (x − x̄ − δ)`, `x̄` the running mean
    /// after them (for `weight` 1 this is [`Self::observe`]). Returns the statistic if drift was
    /// detected; the test then restarts. Non-finite `x` and `weight` 0 are ignored.
    pub fn observe_weighted(&mut self, x: f64, weight: u64) -> Option<f64> {
        if !x.is_finite() || weight == 0 {
            return None;
        }
        self.n = self.n.saturating_add(weight);
        let w = weight as f64;
        self.mean += w * (x - self.mean) / self.n as f64;
        self.cumulative += w * (x - self.mean - self.delta);
        self.minimum = self.minimum.min(self.cumulative);
        let stat = self.cumulative - self.minimum;
        if self.n >= MIN_EXAMPLES && stat > self.lambda {
            self.restart();
            return Some(stat);
        }
        None
    }

    /// Examples since the last restart.
    #[cfg(any(test, feature = "testing"))]
    pub fn examples(&self) -> u64 {
        self.n
    }

    /// Forgets the running statistics.
    pub fn restart(&mut self) {
        self.n = 0;
        self.mean = 0.0;
        self.cumulative = 0.0;
        self.minimum = 0.0;
    }
}

/// The losses of the examples due on one day, waiting to be fed to the test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PendingDay {
    /// Day number: deadline (unix ms) divided by [`DAY_MS`], rounded down.
    pub day: i64,
    /// Sum of the losses.
    pub sum: f64,
    /// Number of losses (at least 1).
    pub count: u64,
}

/// A drift raised by [`DriftMonitor::record`]: the test's statistic and the deadline day whose
/// losses crossed the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alarm {
    /// The statistic `m_t − M_t` at detection.
    pub statistic: f64,
    /// Start (unix ms) of the deadline day fed when the test fired.
    pub deadline_day_ms: i64,
}

/// A frozen copy of the propensity's online model, used to score examples as the model of about
/// one horizon earlier would have (see [`DriftMonitor::rotate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecaster {
    weights: Vec<f64>,
    bias: f64,
    /// Whether the copy may score: the model had learned at least [`MIN_EXAMPLES`] examples of
    /// each class and the copy was taken two horizons or more after the first example.
    trained: bool,
}

impl Forecaster {
    /// A frozen copy of `model`'s online part: it learns every example as it completes, so its
    /// forecasts change gradually, where the served refit changes in steps.
    fn of(model: &Propensity, trained: bool) -> Forecaster {
        let (weights, bias) = model.online();
        Forecaster {
            weights: weights.to_vec(),
            bias,
            trained,
        }
    }

    /// Probability of a positive label for `z`; `None` for a `z` of another dimension.
    fn predict(&self, z: &[f64]) -> Option<f64> {
        if z.len() != self.weights.len() {
            return None;
        }
        let logit = self.bias + self.weights.iter().zip(z).map(|(w, v)| w * v).sum::<f64>();
        Some(sigmoid(logit))
    }
}

/// The Page–Hinkley test fed in deadline order, with the losses still waiting for their
/// deadline, the re-arming hold-off and the recent detections; see the
/// [module documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftMonitor {
    /// The test.
    pub test: PageHinkley,
    /// Losses waiting, one entry per deadline day, days strictly increasing.
    pending: Vec<PendingDay>,
    /// Every day before this one has been fed (a loss due earlier joins this day).
    fed_before_day: i64,
    /// Losses due before this day are dropped unfed: the hold-off after a detection.
    armed_from_day: i64,
    /// Watermark (unix ms) of the first example the monitor saw; `None` before it.
    first_ms: Option<i64>,
    /// Horizon block (watermark divided by the horizon) of the last rotation; `None` before it.
    block: Option<i64>,
    /// The model as of the start of the current half-horizon block.
    next: Option<Forecaster>,
    /// The model as of the start of the previous half-horizon block: half a horizon to one
    /// horizon old. It scores the examples the test sees.
    lagged: Option<Forecaster>,
    /// Most recent detections, oldest first (at most [`MAX_DETECTIONS`]).
    pub detections: Vec<Detection>,
}

impl Default for DriftMonitor {
    fn default() -> Self {
        DriftMonitor::new(PageHinkley::default())
    }
}

impl DriftMonitor {
    /// A monitor around `test`, with nothing pending.
    pub fn new(test: PageHinkley) -> DriftMonitor {
        DriftMonitor {
            test,
            pending: Vec::new(),
            fed_before_day: i64::MIN,
            armed_from_day: i64::MIN,
            first_ms: None,
            block: None,
            next: None,
            lagged: None,
            detections: Vec::new(),
        }
    }

    /// Keeps the forecasters half a horizon and one horizon old: when the watermark enters a new
    /// block of half `horizon_ms` (blocks aligned on the unix epoch), the model copied at the
    /// start of the previous block becomes the lagged forecaster and `current` is copied. A copy
    /// scores examples only if `trained` (the caller's judgement: at least [`MIN_EXAMPLES`] of
    /// each class) and it was taken two horizons or more after the first example: an earlier
    /// copy has learned from a handful of examples of customers with hardly any history, and its
    /// losses would set the test's reference far too high. Call before learning each example.
    pub fn rotate(
        &mut self,
        current: &Propensity,
        trained: bool,
        watermark_ms: i64,
        horizon_ms: i64,
    ) {
        let horizon_ms = horizon_ms.max(1);
        let first = *self.first_ms.get_or_insert(watermark_ms);
        let trained = trained && watermark_ms >= first.saturating_add(horizon_ms.saturating_mul(2));
        let block = watermark_ms.div_euclid((horizon_ms / 2).max(1));
        match self.block {
            // Blocks only grow under one horizon; a smaller one means the horizon changed
            // between opens, which starts a new block as well.
            Some(b) if b == block => {}
            Some(_) => {
                self.lagged = self.next.take();
                self.next = Some(Forecaster::of(current, trained));
                self.block = Some(block);
            }
            None => {
                self.next = Some(Forecaster::of(current, trained));
                self.block = Some(block);
            }
        }
    }

    /// The drift test's view of a labelled example `(z, label)` due at `deadline_ms`: the
    /// [`surprise`] of the lagged forecaster's prediction (the model of half a horizon to one
    /// horizon before, which has not learned the example) is recorded for the deadline's day, then every complete day is fed
    /// ([`Self::record`]). Without a trained lagged forecaster nothing is recorded (the days
    /// already waiting are still fed). Returns the alarms raised (almost always none).
    pub fn record_example(
        &mut self,
        z: &[f64],
        label: bool,
        deadline_ms: i64,
        complete_before_ms: i64,
        horizon_ms: i64,
    ) -> Vec<Alarm> {
        let p = self
            .lagged
            .as_ref()
            .filter(|f| f.trained)
            .and_then(|f| f.predict(z));
        let loss = p.map_or(f64::NAN, |p| surprise(p, label));
        self.record(deadline_ms, loss, complete_before_ms, horizon_ms)
    }

    /// Records the loss of an example due at `deadline_ms` (its checkpoint + horizon), then feeds
    /// the test, in day order, every waiting day that ends at or before `complete_before_ms`: the
    /// caller guarantees that every example due before that time has been recorded. After a
    /// detection the losses due within two `horizon_ms` of the detection's day are dropped, then
    /// the test starts afresh (it restarted at the detection). Returns the alarms raised (almost always none).
    pub fn record(
        &mut self,
        deadline_ms: i64,
        loss: f64,
        complete_before_ms: i64,
        horizon_ms: i64,
    ) -> Vec<Alarm> {
        if loss.is_finite() {
            self.defer(deadline_ms.div_euclid(DAY_MS), loss);
        }
        self.feed_before(complete_before_ms.div_euclid(DAY_MS), horizon_ms)
    }

    /// Adds `loss` to the waiting losses of `day` (or of the first day not yet fed, if `day` was).
    fn defer(&mut self, day: i64, loss: f64) {
        let day = day.max(self.fed_before_day);
        match self.pending.binary_search_by_key(&day, |p| p.day) {
            Ok(i) => {
                let p = &mut self.pending[i];
                p.sum += loss;
                p.count = p.count.saturating_add(1);
            }
            Err(i) if self.pending.len() < MAX_PENDING_DAYS || i < self.pending.len() => {
                self.pending.insert(
                    i,
                    PendingDay {
                        day,
                        sum: loss,
                        count: 1,
                    },
                );
                if self.pending.len() > MAX_PENDING_DAYS {
                    // Inserted before the last day: merge the last two so the bound holds.
                    if let (Some(last), Some(prev)) = (self.pending.pop(), self.pending.last_mut())
                    {
                        prev.sum += last.sum;
                        prev.count = prev.count.saturating_add(last.count);
                    }
                }
            }
            Err(_) => {
                if let Some(last) = self.pending.last_mut() {
                    last.sum += loss;
                    last.count = last.count.saturating_add(1);
                }
            }
        }
    }

    /// Feeds every waiting day before `day` to the test, oldest first.
    fn feed_before(&mut self, day: i64, horizon_ms: i64) -> Vec<Alarm> {
        let mut alarms = Vec::new();
        if day <= self.fed_before_day {
            return alarms;
        }
        self.fed_before_day = day;
        let due = self.pending.partition_point(|p| p.day < day);
        // Two horizons: the examples straddling the change, then those the lagged forecaster (up
        // to a horizon old) still scores with the model from before it.
        let horizon_days = horizon_ms.max(0) / DAY_MS + i64::from(horizon_ms % DAY_MS != 0);
        let hold_off_days = horizon_days.max(1).saturating_mul(2);
        for p in self.pending.drain(..due) {
            if p.day < self.armed_from_day {
                continue;
            }
            let mean = p.sum / p.count as f64;
            if let Some(statistic) = self.test.observe_weighted(mean, p.count) {
                self.armed_from_day = p.day.saturating_add(hold_off_days);
                alarms.push(Alarm {
                    statistic,
                    deadline_day_ms: p.day.saturating_mul(DAY_MS),
                });
            }
        }
        alarms
    }

    /// Days with losses waiting.
    #[cfg(any(test, feature = "testing"))]
    pub fn pending_days(&self) -> usize {
        self.pending.len()
    }

    /// Losses waiting, over all days.
    #[cfg(any(test, feature = "testing"))]
    pub fn pending_losses(&self) -> u64 {
        self.pending
            .iter()
            .fold(0u64, |n, p| n.saturating_add(p.count))
    }

    /// Records a detection, keeping the most recent [`MAX_DETECTIONS`].
    pub fn push_detection(&mut self, d: Detection) {
        self.detections.push(d);
        if self.detections.len() > MAX_DETECTIONS {
            self.detections.remove(0);
        }
    }

    /// Checks what decoding cannot: at most [`MAX_PENDING_DAYS`] waiting days, strictly
    /// increasing, each with a count of at least 1 and a finite sum, none before the days fed,
    /// and at most [`MAX_DETECTIONS`] detections.
    pub fn validate(&self) -> Result<(), String> {
        if self.pending.len() > MAX_PENDING_DAYS {
            return Err(format!(
                "{} pending loss days, at most {MAX_PENDING_DAYS}",
                self.pending.len()
            ));
        }
        if self.detections.len() > MAX_DETECTIONS {
            return Err(format!(
                "{} drift detections, at most {MAX_DETECTIONS}",
                self.detections.len()
            ));
        }
        let mut previous = None;
        for p in &self.pending {
            if p.count == 0 || !p.sum.is_finite() {
                return Err(format!("pending losses of day {} are invalid", p.day));
            }
            if p.day < self.fed_before_day || previous.is_some_and(|d| d >= p.day) {
                return Err(format!("pending loss day {} is out of order", p.day));
            }
            previous = Some(p.day);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    const H: i64 = 30 * DAY_MS;

    #[test]
    fn stationary_loss_does_not_fire_and_a_jump_does() {
        let mut ph = PageHinkley::default();
        let mut rng = Pcg64::seed_from_u64(3);
        for _ in 0..20_000 {
            assert_eq!(ph.observe(0.4 + rng.gen_range(-0.2..0.2)), None);
        }
        let mut fired_after = None;
        for i in 0..2000 {
            if ph.observe(1.2 + rng.gen_range(-0.2..0.2)).is_some() {
                fired_after = Some(i);
                break;
            }
        }
        // Excess per example ≈ 0.8 − δ = 0.75, so λ = 150 is crossed after ~200 examples.
        let i = fired_after.expect("drift detected");
        assert!((170..260).contains(&i), "fired after {i}");
        assert_eq!(ph.examples(), 0, "restarted");
    }

    #[test]
    fn statistic_matches_hand_computation() {
        let mut ph = PageHinkley::new(0.0, 1e9);
        for x in [1.0, 1.0, 4.0] {
            ph.observe(x);
        }
        // means: 1, 1, 2; cumulative: 0, 0, 2; minimum 0.
        assert!((ph.cumulative - 2.0).abs() < 1e-12);
        assert_eq!(ph.minimum, 0.0);
        // A weighted step: 2 observations of mean 5 (δ = 0.5). n 2 → 4, mean 1 → 3,
        // cumulative += 2 · (5 − 3 − 0.5) = 3.
        let mut ph = PageHinkley::new(0.5, 1e9);
        ph.observe_weighted(1.0, 2);
        assert!((ph.cumulative - (-1.0)).abs() < 1e-12, "{}", ph.cumulative);
        ph.observe_weighted(5.0, 2);
        assert_eq!(ph.examples(), 4);
        assert!((ph.mean - 3.0).abs() < 1e-12);
        assert!((ph.cumulative - 2.0).abs() < 1e-12, "{}", ph.cumulative);
        assert_eq!(ph.minimum, -1.0);
        // Weight 1 is `observe`; weight 0 and non-finite values are ignored.
        let (mut a, mut b) = (PageHinkley::default(), PageHinkley::default());
        for x in [0.3, 0.9, 0.1] {
            assert_eq!(a.observe(x), b.observe_weighted(x, 1));
        }
        assert_eq!(b.observe_weighted(7.0, 0), None);
        assert_eq!(b.observe_weighted(f64::NAN, 3), None);
        assert_eq!(a, b);
    }

    #[test]
    fn losses_wait_for_their_day_and_are_fed_in_deadline_order() {
        let mut m = DriftMonitor::new(PageHinkley::new(0.0, 1e9));
        // Recorded out of deadline order: day 12 (twice), then day 10, all complete before day 10.
        assert!(m.record(12 * DAY_MS + 5, 2.0, 10 * DAY_MS, H).is_empty());
        assert!(m.record(12 * DAY_MS + 9, 4.0, 10 * DAY_MS, H).is_empty());
        assert!(m.record(10 * DAY_MS, 1.0, 10 * DAY_MS, H).is_empty());
        assert_eq!((m.pending_days(), m.pending_losses()), (2, 3));
        assert_eq!(
            m.pending,
            vec![
                PendingDay {
                    day: 10,
                    sum: 1.0,
                    count: 1
                },
                PendingDay {
                    day: 12,
                    sum: 6.0,
                    count: 2
                },
            ]
        );
        assert_eq!(
            m.test.examples(),
            0,
            "nothing is fed before its day is complete"
        );
        // Day 10 completes (the watermark enters day 11), then day 12 (the watermark is in 13).
        m.record(11 * DAY_MS + 1, 0.5, 11 * DAY_MS + 1, H);
        assert_eq!(m.test.examples(), 1);
        m.record(13 * DAY_MS, 0.5, 13 * DAY_MS, H);
        assert_eq!((m.test.examples(), m.pending_losses()), (4, 1));
        // The same as feeding the days in order by hand: day 10 (1.0 × 1), day 11 (0.5 × 1),
        // day 12 (mean 3.0 × 2); day 13 waits.
        let mut by_hand = PageHinkley::new(0.0, 1e9);
        by_hand.observe_weighted(1.0, 1);
        by_hand.observe_weighted(0.5, 1);
        by_hand.observe_weighted(3.0, 2);
        assert_eq!(m.test, by_hand);
        assert_eq!(
            m.pending,
            vec![PendingDay {
                day: 13,
                sum: 0.5,
                count: 1
            }]
        );
    }

    #[test]
    fn a_loss_due_on_a_day_already_fed_joins_the_first_open_day() {
        let mut m = DriftMonitor::new(PageHinkley::new(0.0, 1e9));
        m.record(5 * DAY_MS, 1.0, 8 * DAY_MS, H);
        assert_eq!(m.test.examples(), 1);
        m.record(3 * DAY_MS, 2.0, 8 * DAY_MS, H);
        assert_eq!(
            m.pending,
            vec![PendingDay {
                day: 8,
                sum: 2.0,
                count: 1
            }]
        );
        assert!(m.validate().is_ok());
        // Non-finite losses are not kept.
        m.record(9 * DAY_MS, f64::INFINITY, 8 * DAY_MS, H);
        assert_eq!(m.pending_losses(), 1);
    }

    #[test]
    fn waiting_days_are_bounded_whatever_the_deadlines() {
        let mut m = DriftMonitor::default();
        let mut rng = Pcg64::seed_from_u64(9);
        for _ in 0..5000 {
            let day = rng.gen_range(0..3000);
            m.record(day * DAY_MS, 0.5, 0, 3650 * DAY_MS);
            assert!(m.pending_days() <= MAX_PENDING_DAYS);
        }
        assert_eq!(m.pending_losses(), 5000, "no loss is lost");
        assert!(m.validate().is_ok());
        m.record(0, 0.5, 4000 * DAY_MS, 3650 * DAY_MS);
        assert_eq!((m.pending_days(), m.test.examples()), (0, 5001));
    }

    /// Daily losses of a model facing an abrupt change on `change_day`: 0.4 ± noise before; over
    /// the next horizon the examples due straddle the change, so the mean loss ramps up to 1.0,
    /// then stays there (a model that does not adapt). `per_day` examples a day.
    fn abrupt_change(days: i64, change_day: i64, per_day: usize, seed: u64) -> Vec<(i64, f64)> {
        let mut rng = Pcg64::seed_from_u64(seed);
        let mut out = Vec::new();
        for day in 0..days {
            let shift = ((day - change_day) as f64 / 30.0).clamp(0.0, 1.0);
            for _ in 0..per_day {
                out.push((day, 0.4 + 0.6 * shift + rng.gen_range(-0.3..0.3)));
            }
        }
        out
    }

    #[test]
    fn a_sustained_new_regime_raises_one_alarm_and_the_test_re_arms() {
        let losses = abrupt_change(200, 60, 300, 1);
        let mut m = DriftMonitor::default();
        let mut alarms = Vec::new();
        for &(day, loss) in &losses {
            // Recorded at the deadline, as negatives are; the day before is then complete.
            alarms.extend(m.record(day * DAY_MS, loss, day * DAY_MS, H));
        }
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        let day = alarms[0].deadline_day_ms / DAY_MS;
        assert!((61..61 + 30).contains(&day), "fired on day {day}");
        assert_eq!(
            m.test.examples(),
            (200 - day - 1 - 60) as u64 * 300,
            "re-armed"
        );

        // The plain test restarted after each detection fires again and again on the ramp.
        let mut plain = PageHinkley::default();
        let mut days = std::collections::BTreeSet::new();
        for &(day, loss) in &losses {
            if plain.observe(loss).is_some() {
                days.insert(day);
            }
        }
        assert!(days.len() >= 2, "plain restarts fired on days {days:?}");

        // Re-armed, the monitor detects the next change.
        let mut second = Vec::new();
        for &(day, loss) in &abrupt_change(200, 60, 300, 2) {
            second.extend(m.record((200 + day) * DAY_MS, loss + 1.0, (200 + day) * DAY_MS, H));
        }
        assert!(
            !second.is_empty(),
            "the re-armed test missed a second change"
        );
    }

    #[test]
    fn a_stationary_stream_never_fires() {
        for seed in 0..3 {
            let mut m = DriftMonitor::default();
            for &(day, loss) in &abrupt_change(365, i64::MAX / 2, 300, seed) {
                assert!(m.record(day * DAY_MS, loss, day * DAY_MS, H).is_empty());
            }
        }
    }

    #[test]
    fn surprise_is_zero_on_average_for_a_calibrated_forecast() {
        for p in [0.01, 0.3, 0.5, 0.9] {
            let mean = p * surprise(p, true) + (1.0 - p) * surprise(p, false);
            assert!(mean.abs() < 1e-12, "{p}: {mean}");
        }
        // p = 0.2: loss ln 5 (positive) or ln 1.25 (negative), entropy 0.5004.
        let entropy = -(0.2f64 * 0.2f64.ln() + 0.8 * 0.8f64.ln());
        assert!((surprise(0.2, true) - (5f64.ln() - entropy)).abs() < 1e-12);
        assert!((surprise(0.2, false) - (1.25f64.ln() - entropy)).abs() < 1e-12);
        assert!(surprise(0.0, true).is_finite() && surprise(1.0, true).is_finite());
    }

    #[test]
    fn examples_are_scored_by_the_model_of_half_a_horizon_to_one_before() {
        let cfg = crate::model::ModelConfig::default();
        let mut model = Propensity::new(2, &cfg);
        let mut m = DriftMonitor::default();
        let z = [1.0, -0.5];
        let half = H / 2;
        let t0 = 20 * half; // a block boundary
                            // Block 20: the first example; copies taken in the first two horizons are not trusted.
        m.rotate(&model, true, t0, H);
        assert!(m.record_example(&z, true, t0 + H, t0, H).is_empty());
        assert_eq!(m.pending_losses(), 0, "no lagged forecaster yet");
        for _ in 0..50 {
            model.learn(&z, true);
        }
        m.rotate(&model, true, t0 + 3 * half, H);
        for _ in 0..50 {
            model.learn(&z, false);
        }
        m.rotate(&model, true, t0 + 4 * half, H);
        m.record_example(&z, true, t0 + 5 * half, t0 + 4 * half, H);
        assert_eq!(
            m.pending_losses(),
            0,
            "the lagged copy was taken in the first two horizons"
        );
        // Block 25: the block-24 copy (two horizons after the first example) becomes the lagged
        // forecaster and scores, while the model learns on.
        let as_of_block_24 = model.predict(&z);
        for _ in 0..50 {
            model.learn(&z, true);
        }
        m.rotate(&model, true, t0 + 5 * half, H);
        m.rotate(&model, true, t0 + 5 * half + half / 2, H); // same block: no rotation
        m.record_example(&z, false, t0 + 6 * half, t0 + 5 * half, H);
        assert_eq!(
            m.pending,
            vec![PendingDay {
                day: (t0 + 6 * half) / DAY_MS,
                sum: surprise(as_of_block_24, false),
                count: 1,
            }]
        );
        assert_ne!(model.predict(&z), as_of_block_24);
        // Untrained copies (the caller's judgement) never score; nor does a wrong dimension.
        m.rotate(&model, false, t0 + 6 * half, H);
        m.rotate(&model, false, t0 + 7 * half, H);
        m.record_example(&z, true, t0 + 8 * half, t0 + 7 * half, H);
        assert_eq!(
            m.pending_losses(),
            0,
            "earlier days fed, nothing new recorded"
        );
        m.rotate(&model, true, t0 + 8 * half, H);
        m.rotate(&model, true, t0 + 9 * half, H);
        m.record_example(&[1.0], true, t0 + 10 * half, t0 + 9 * half, H);
        assert_eq!(m.pending_losses(), 0, "wrong dimension");
    }

    #[test]
    fn round_trips_and_rejects_inconsistent_waiting_days() {
        let mut m = DriftMonitor::default();
        for day in [4, 2, 9, 2] {
            m.record(day * DAY_MS, 0.25 * day as f64, DAY_MS, H);
        }
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&m, cfg).unwrap();
        let (back, _): (DriftMonitor, usize) =
            bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(back, m);
        assert!(back.validate().is_ok());
        let mut bad = m.clone();
        bad.pending.swap(0, 1);
        assert!(bad.validate().unwrap_err().contains("out of order"));
        let mut bad = m.clone();
        bad.pending[0].count = 0;
        assert!(bad.validate().is_err());
        let mut bad = m;
        bad.fed_before_day = 3;
        assert!(bad.validate().is_err(), "a waiting day before the days fed");
    }
}
