//! Backtesting the propensity model and the segments on an event log (`persona evaluate`).
//!
//! For each cutoff `c` the log's events up to `c` are replayed, in time order, into a scratch
//! store through the normal write path ([`Db::ingest_batch`]) with the caller's configuration;
//! every customer with at least one event by `c` is then scored *as of `c`* and labelled
//! positive if they have a `target_kind` event in `(c, c + horizon]`. Customers first seen after
//! `c` cannot be ranked and are not counted.
//!
//! The same run scores baselines on the same customers:
//! - `neg_recency`: minus the days since the customer's last event;
//! - `frequency`: the customer's lifetime count of `target_kind` events;
//! - `monetary`: the customer's lifetime purchase amount;
//! - `batch_lr`: a logistic regression fitted in one batch ([`baselines::BatchLogistic`]) on the
//!   feature vectors as of `c − horizon` of the customers seen by then, labelled by their target
//!   events in `(c − horizon, c]`, then applied to the vectors as of `c`. It sees exactly the
//!   information the online model could have used, so the gap between the two is the price of
//!   learning online.
//!
//! The first three are not probabilities: they get AUC and lift only.
//!
//! With ground-truth labels, the online segments (the nearest centroid as of `c`) and a batch
//! k-means ([`baselines::kmeans`], k = the configured segment count) on the same standardised
//! vectors are compared with them by adjusted Rand index.
//!
//! Invariants: one scratch store serves every cutoff (events are fed once, in time order, and the
//! replay stops at each `c − horizon` and `c` in turn); nothing outside the scratch directory is
//! written; the result depends only on the events, the configuration and the options.

pub mod baselines;
pub mod compare;
pub mod metrics;
pub mod recommend;

use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::query::Profile;
use crate::Db;
use metrics::CalibrationBin;
use recommend::{ItemTracker, RecommendationReport};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Events handed to [`Db::ingest_batch`] per call during the replay.
const CHUNK: usize = 4096;
/// Days in a millisecond count.
const DAY_MS: f64 = 86_400_000.0;

/// Where the backtest cuts the log.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Cutoffs {
    /// This many cutoffs spread over the log's span (see [`default_cutoffs`]).
    Spread(usize),
    /// These times, unix ms (sorted and de-duplicated before use).
    At(Vec<i64>),
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EvaluateOptions {
    /// The cutoffs. Default: 3 spread over the log.
    pub cutoffs: Cutoffs,
    /// Ground-truth segment label per customer id, for the segment agreement (ARI).
    pub truth: Option<HashMap<String, String>>,
    /// A directory to write each cutoff's vectors to, so that other models can be tried on
    /// exactly the data the report scores (see [`EvaluateOptions::vectors`]).
    pub vectors: Option<PathBuf>,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        EvaluateOptions {
            cutoffs: Cutoffs::Spread(3),
            truth: None,
            vectors: None,
        }
    }
}

impl EvaluateOptions {
    /// Sets [`EvaluateOptions::cutoffs`].
    pub fn cutoffs(mut self, cutoffs: Cutoffs) -> Self {
        self.cutoffs = cutoffs;
        self
    }

    /// Sets [`EvaluateOptions::truth`].
    pub fn truth(mut self, truth: HashMap<String, String>) -> Self {
        self.truth = Some(truth);
        self
    }

    /// Writes, for each cutoff `C` (unix ms), two CSV files with a header into `dir` (which
    /// must exist): `train-C.csv` (`customer_id,label,<features>`: the batch LR's training set,
    /// raw vectors as of `C − horizon`, labelled by `(C − horizon, C]`) and `score-C.csv`
    /// (`customer_id,label,persona,<features>`: the scored customers' raw vectors as of `C`, their
    /// label from `(C, C + horizon]` and Persona's propensity). Labels are 0 or 1.
    pub fn vectors(mut self, dir: impl Into<PathBuf>) -> Self {
        self.vectors = Some(dir.into());
        self
    }
}

/// The result of a backtest. Serialises to the JSON document `persona evaluate --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EvaluationReport {
    /// Events in the log.
    pub events: u64,
    /// Events not applied: invalid ones and those the write path rejected during the replay.
    pub rejected: u64,
    /// Distinct customers in the log.
    pub customers: u64,
    /// Time of the first event, unix ms.
    pub first_event_ms: i64,
    /// Time of the last event, unix ms.
    pub last_event_ms: i64,
    /// The label horizon, days.
    pub horizon_days: f64,
    /// The event kind that makes a customer positive.
    pub target_kind: String,
    /// One entry per cutoff, in time order.
    pub cutoffs: Vec<CutoffReport>,
}

/// The backtest at one cutoff.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CutoffReport {
    /// The cutoff, unix ms.
    pub cutoff_ms: i64,
    /// Whether the log reaches `cutoff + horizon` (if not, late positives are missing).
    pub horizon_complete: bool,
    /// Events replayed (those at or before the cutoff).
    pub events_replayed: u64,
    /// Customers scored: those with an event at or before the cutoff.
    pub customers_scored: u64,
    /// Scored customers with a target event in `(cutoff, cutoff + horizon]`.
    pub positives: u64,
    /// `positives / customers_scored` (None without customers).
    pub positive_rate: Option<f64>,
    /// Labelled examples the online propensity model had learned from by the cutoff.
    pub model_examples: u64,
    /// The metrics of each scorer.
    pub scores: Scores,
    /// Persona against the best baseline, with how sure the difference is (None without both
    /// classes among the scored customers).
    pub comparison: Option<Comparison>,
    /// The batch logistic regression's training set.
    pub batch_lr_training: TrainingSet,
    /// Segment agreement with the ground truth (only with [`EvaluateOptions::truth`]).
    pub segments: Option<SegmentAgreement>,
    /// The recommendation backtest (only when events of the log name items).
    pub recommendations: Option<RecommendationReport>,
}

/// The metrics of every scorer at one cutoff.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Scores {
    /// Persona's online propensity, as of the cutoff.
    pub persona: ScorerMetrics,
    /// Minus the days since the last event.
    pub neg_recency: ScorerMetrics,
    /// Lifetime count of target events.
    pub frequency: ScorerMetrics,
    /// Lifetime purchase amount.
    pub monetary: ScorerMetrics,
    /// The batch logistic regression fitted on the previous period.
    pub batch_lr: ScorerMetrics,
}

impl Scores {
    /// `(name, metrics)` of every scorer, in report order.
    pub fn rows(&self) -> [(&'static str, &ScorerMetrics); 5] {
        [
            ("persona", &self.persona),
            ("neg_recency", &self.neg_recency),
            ("frequency", &self.frequency),
            ("monetary", &self.monetary),
            ("batch_lr", &self.batch_lr),
        ]
    }
}

/// One scorer's metrics; each is None where undefined (a score that is not a probability has no
/// log loss, Brier score or calibration; AUC needs both classes; lift needs a positive).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[non_exhaustive]
pub struct ScorerMetrics {
    /// ROC AUC ([`metrics::auc`]).
    pub auc: Option<f64>,
    /// Mean log loss ([`metrics::log_loss`]).
    pub log_loss: Option<f64>,
    /// Brier score ([`metrics::brier`]).
    pub brier: Option<f64>,
    /// Top-decile lift ([`metrics::top_decile_lift`]).
    pub top_decile_lift: Option<f64>,
    /// Calibration table ([`metrics::calibration`]).
    pub calibration: Option<Vec<CalibrationBin>>,
}

impl ScorerMetrics {
    /// Metrics of a ranking score (not a probability): AUC and lift.
    fn ranking(scores: &[f64], labels: &[bool]) -> ScorerMetrics {
        ScorerMetrics {
            auc: metrics::auc(scores, labels),
            top_decile_lift: metrics::top_decile_lift(scores, labels),
            ..ScorerMetrics::default()
        }
    }

    /// Metrics of a probability: all of them.
    fn probability(probs: &[f64], labels: &[bool]) -> ScorerMetrics {
        ScorerMetrics {
            log_loss: metrics::log_loss(probs, labels),
            brier: metrics::brier(probs, labels),
            calibration: (!probs.is_empty()).then(|| metrics::calibration(probs, labels)),
            ..ScorerMetrics::ranking(probs, labels)
        }
    }
}

/// Persona's propensity against the same-run baselines at one cutoff, as paired differences
/// with 95% intervals ([`compare`]): a difference whose interval holds zero is within what
/// another sample of customers could turn around.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Comparison {
    /// The baseline with the highest AUC (`neg_recency`, `frequency`, `monetary` or
    /// `batch_lr`; the first of equals).
    pub best_baseline: String,
    /// Persona's AUC minus the best baseline's (DeLong's standard error).
    pub auc_difference: compare::Difference,
    /// `better`, `worse` or `tie`: whether the AUC difference's interval lies above zero,
    /// below it, or holds it.
    pub auc_verdict: Verdict,
    /// Persona's Brier score minus the batch logistic regression's (negative is better; None
    /// when the regression could not be fitted).
    pub brier_difference_to_batch_lr: Option<compare::Difference>,
}

/// Which way a paired difference goes, at 95%.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Persona is ahead by more than chance explains.
    Better,
    /// Persona is behind by more than chance explains.
    Worse,
    /// The interval holds zero.
    Tie,
}

impl Verdict {
    /// The verdict on a difference where larger is better for persona.
    fn of(d: &compare::Difference) -> Verdict {
        if d.above_zero() {
            Verdict::Better
        } else if d.below_zero() {
            Verdict::Worse
        } else {
            Verdict::Tie
        }
    }
}

/// The batch logistic regression's training set at one cutoff.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TrainingSet {
    /// The time its vectors are taken at (`cutoff − horizon`), unix ms.
    pub as_of_ms: i64,
    /// Customers seen by then.
    pub customers: u64,
    /// Those with a target event in `(as_of, cutoff]`.
    pub positives: u64,
    /// Whether a model was fitted (it needs both classes).
    pub fitted: bool,
}

/// Agreement of segmentations with the ground truth at one cutoff.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SegmentAgreement {
    /// Scored customers with a ground-truth label (the customers compared).
    pub labelled: u64,
    /// ARI of the online segments (None before they are seeded).
    pub online_ari: Option<f64>,
    /// ARI of a batch k-means on the same standardised vectors.
    pub batch_kmeans_ari: Option<f64>,
    /// The batch k-means's ARI over [`KMEANS_SEEDS`] seeds (the run's seed and the next
    /// ones): how much of a difference to it one draw of k-means++ makes.
    pub batch_kmeans_ari_over_seeds: Option<Spread>,
}

/// Seeds of the batch k-means in [`SegmentAgreement::batch_kmeans_ari_over_seeds`].
pub const KMEANS_SEEDS: u64 = 10;

/// The smallest, median and largest of a few values.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Spread {
    /// How many values.
    pub runs: u64,
    /// The smallest.
    pub min: f64,
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; None for none.
    ///
    /// # Examples
    /// ```
    /// use persona::testing::evaluate::Spread;
    /// let s = Spread::of(vec![0.3, 0.1, 0.4, 0.2]).unwrap();
    /// assert_eq!((s.runs, s.min, s.max), (4, 0.1, 0.4));
    /// assert!((s.median - 0.25).abs() < 1e-12);
    /// assert!(Spread::of(Vec::new()).is_none());
    /// ```
    pub fn of(mut values: Vec<f64>) -> Option<Spread> {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => values[n / 2],
            _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        };
        Some(Spread {
            runs: n as u64,
            min: values[0],
            median,
            max: values[n - 1],
        })
    }
}

/// `n` cutoffs spread over the part of `[first, last]` that leaves one horizon of history before
/// and one full horizon after each: cutoff `i` (from 0) sits at `(n + i) / 2n` of
/// `[first + horizon, last − horizon]` (50%, 67% and 83% for 3).
///
/// # Errors
/// [`Error::InvalidArgument`] if `n` is 0 or the span is shorter than two horizons.
///
/// # Examples
/// ```
/// use persona::testing::evaluate::default_cutoffs;
/// let day = 86_400_000;
/// assert_eq!(default_cutoffs(0, 160 * day, 30 * day, 2)?, vec![80 * day, 105 * day]);
/// # Ok::<(), persona::Error>(())
/// ```
pub fn default_cutoffs(first_ms: i64, last_ms: i64, horizon_ms: i64, n: usize) -> Result<Vec<i64>> {
    if n == 0 {
        return Err(Error::invalid_argument("cutoffs", "0; need at least 1"));
    }
    let (lo, hi) = (first_ms + horizon_ms, last_ms - horizon_ms);
    if hi <= lo {
        return Err(Error::invalid_argument(
            "cutoffs",
            format!(
                "the log spans {:.1} days, which leaves no room for a cutoff with a horizon of \
                 {:.1} days of history before it and one after; pass a shorter --horizon-days \
                 or explicit --cutoff times",
                (last_ms - first_ms) as f64 / DAY_MS,
                horizon_ms as f64 / DAY_MS
            ),
        ));
    }
    let span = (hi - lo) as f64;
    Ok((0..n)
        .map(|i| lo + (span * (n + i) as f64 / (2 * n) as f64).round() as i64)
        .collect())
}

/// Where the replay stops and what it does there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    /// Snapshot the vectors that train cutoff `i`'s batch LR.
    Train(usize),
    /// Score everyone for cutoff `i`.
    Score(usize),
}

/// One scored customer at a cutoff.
struct Scored {
    id: String,
    features: Vec<f64>,
    propensity: f64,
    segment: Option<u16>,
    recency_days: f64,
    frequency: f64,
    monetary: f64,
}

/// Replays `events` into a scratch store opened with `config` and backtests the propensity model
/// and the segments at each cutoff (see the module documentation). `progress(done, total)` is
/// called after each chunk of replayed events.
///
/// `config.path` must name a directory that does not exist or is empty: the scratch store is
/// created there (with durability [`Durability::None`]: nothing of it needs to survive a crash)
/// and left for the caller to remove.
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty log, unusable cutoffs or a scratch directory that is
/// not empty; any error of opening or writing the scratch store.
///
/// # Examples
/// ```
/// # let dir = tempfile::tempdir()?;
/// use persona::testing::evaluate::{evaluate, Cutoffs, EvaluateOptions};
/// use persona::{Config, Event, EventKind};
/// let (t0, day) = (1_767_225_600_000, 86_400_000); // 2026-01-01, one day in ms
/// let mut events = Vec::new();
/// for c in 0..20 {
///     for d in (0..90).step_by(3 + c % 7) {
///         let t = t0 + d as i64 * day;
///         events.push(Event::new(format!("c{c}"), t, EventKind::Purchase).with_value(5.0));
///     }
/// }
/// let options = EvaluateOptions::default().cutoffs(Cutoffs::At(vec![t0 + 60 * day]));
/// let report = evaluate(Config::new(dir.path().join("scratch")), events, &options, &mut |_, _| {})?;
/// assert_eq!(report.cutoffs[0].customers_scored, 20);
/// # Ok::<(), persona::Error>(())
/// ```
pub fn evaluate(
    config: Config,
    events: Vec<Event>,
    options: &EvaluateOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<EvaluationReport> {
    let given = events.len();
    // Invalid events would be rejected by the write path; they must not make labels either.
    let mut events: Vec<Event> = events
        .into_iter()
        .filter(|e| e.validate().is_ok())
        .collect();
    let invalid = (given - events.len()) as u64;
    if events.is_empty() {
        return Err(Error::invalid_argument(
            "events",
            "the log has no valid events; nothing to evaluate",
        ));
    }
    if std::fs::read_dir(&config.path).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::invalid_argument(
            "scratch directory",
            format!(
                "{} is not empty; the backtest needs a new or empty directory",
                config.path.display()
            ),
        ));
    }
    if let Some(dir) = &options.vectors {
        if !dir.is_dir() {
            return Err(Error::invalid_argument(
                "vectors",
                format!("{} is not a directory", dir.display()),
            ));
        }
    }
    events.sort_by_key(|e| e.timestamp_ms);
    let first_ms = events[0].timestamp_ms;
    let last_ms = events[events.len() - 1].timestamp_ms;
    let horizon_ms = config.horizon_ms();
    let target = config.target_kind;
    let mut cutoffs = match &options.cutoffs {
        Cutoffs::Spread(n) => default_cutoffs(first_ms, last_ms, horizon_ms, *n)?,
        Cutoffs::At(list) if list.is_empty() => {
            return Err(Error::invalid_argument("cutoffs", "an empty list"))
        }
        Cutoffs::At(list) => list.clone(),
    };
    cutoffs.sort_unstable();
    cutoffs.dedup();

    // Labels: who has a target event in (c, c + h] (scoring) and in (c − h, c] (training).
    let mut positives: Vec<HashSet<String>> = vec![HashSet::new(); cutoffs.len()];
    let mut train_positives: Vec<HashSet<String>> = vec![HashSet::new(); cutoffs.len()];
    let mut customers: HashSet<&str> = HashSet::new();
    for e in &events {
        customers.insert(&e.customer_id);
        if e.kind != target {
            continue;
        }
        for (i, c) in cutoffs.iter().enumerate() {
            if e.timestamp_ms > *c && e.timestamp_ms <= c + horizon_ms {
                positives[i].insert(e.customer_id.clone());
            } else if e.timestamp_ms > c - horizon_ms && e.timestamp_ms <= *c {
                train_positives[i].insert(e.customer_id.clone());
            }
        }
    }
    let customer_count = customers.len() as u64;
    drop(customers);
    // Items bought in (c, c + h], per customer, for the recommendation backtest.
    let mut tracker = ItemTracker::applies(&events).then(ItemTracker::default);
    let mut bought_after: Vec<HashMap<String, HashSet<String>>> =
        vec![HashMap::new(); cutoffs.len()];
    if tracker.is_some() {
        for e in &events {
            let (EventKind::Purchase, Some(item)) = (e.kind, &e.item) else {
                continue;
            };
            for (i, c) in cutoffs.iter().enumerate() {
                if e.timestamp_ms > *c && e.timestamp_ms <= c + horizon_ms {
                    bought_after[i]
                        .entry(e.customer_id.clone())
                        .or_default()
                        .insert(item.clone());
                }
            }
        }
    }

    let mut stops: Vec<(i64, Stop)> = cutoffs
        .iter()
        .enumerate()
        .flat_map(|(i, c)| [(c - horizon_ms, Stop::Train(i)), (*c, Stop::Score(i))])
        .collect();
    stops.sort();

    let total = events.len() as u64;
    let segments_k = config.model.segments;
    let seed = config.model.seed;
    // A scratch store, removed afterwards: plain, so that its scans (and with them the bulk
    // refit's sample) go in id order and a backtest gives the same numbers on every run
    // (an encrypted store orders customers by a keyed hash of their id).
    let db = config
        .durability(Durability::None)
        .encryption(crate::config::Encryption::Off)
        .open()?;
    let mut report = EvaluationReport {
        events: given as u64,
        rejected: invalid,
        customers: customer_count,
        first_event_ms: first_ms,
        last_event_ms: last_ms,
        horizon_days: horizon_ms as f64 / DAY_MS,
        target_kind: target.as_str().to_string(),
        cutoffs: Vec::with_capacity(cutoffs.len()),
    };
    let mut training: Vec<Vec<(String, Vec<f64>)>> = vec![Vec::new(); cutoffs.len()];
    let mut replayed = 0u64;
    let mut pending = events.into_iter().peekable();
    for (at, stop) in stops {
        while pending.peek().is_some_and(|e| e.timestamp_ms <= at) {
            let mut chunk = Vec::with_capacity(CHUNK);
            while chunk.len() < CHUNK {
                match pending.next_if(|e| e.timestamp_ms <= at) {
                    Some(e) => chunk.push(e),
                    None => break,
                }
            }
            replayed += chunk.len() as u64;
            if let Some(t) = tracker.as_mut() {
                chunk.iter().for_each(|e| t.observe(e));
            }
            for r in db.ingest_batch(chunk)? {
                match r {
                    Ok(_) => {}
                    Err(e) if e.is_bad_input() => report.rejected += 1,
                    Err(e) => return Err(e),
                }
            }
            progress(replayed, total);
        }
        match stop {
            Stop::Train(i) => training[i] = vectors_as_of(&db, at)?,
            Stop::Score(i) => {
                // Every event up to the cutoff is in: the store's day ends there, and its
                // daily refit runs, as a live store's does with the next day's first event.
                db.advance_watermark(at)?;
                let scored = score_as_of(&db, at, target)?;
                let train = std::mem::take(&mut training[i]);
                if let Some(dir) = &options.vectors {
                    let names = db.layout().names();
                    write_vectors(
                        dir,
                        at,
                        &names,
                        &train,
                        &train_positives[i],
                        &scored,
                        &positives[i],
                    )?;
                }
                let recommendations = match tracker.as_mut() {
                    Some(t) => {
                        let mut persona = |id: &str, discovery: bool| {
                            let mut options = crate::RecommendOptions::default();
                            if discovery {
                                options = options.exclude_purchased();
                            }
                            let list = db.recommend(id, 2 * recommend::K, options)?;
                            Ok(list.into_iter().map(|s| s.name).collect())
                        };
                        let profiles = db
                            .profiles()
                            .filter(|p| p.as_ref().map_or(true, |p| p.event_count > 0))
                            .collect::<Result<Vec<Profile>>>()?;
                        Some(t.report(at, &profiles, &bought_after[i], &mut persona)?)
                    }
                    None => None,
                };
                let mut cutoff = cutoff_report(
                    at,
                    last_ms,
                    horizon_ms,
                    replayed,
                    db.model_info().examples,
                    &scored,
                    &positives[i],
                    &train,
                    &train_positives[i],
                    options.truth.as_ref(),
                    segments_k,
                    seed,
                );
                cutoff.recommendations = recommendations;
                report.cutoffs.push(cutoff);
            }
        }
    }
    progress(total, total);
    db.close()?;
    Ok(report)
}

/// Every profile with events, evaluated as of `at` with the current model. During the replay
/// every stored event is at or before `at`, so each record's current version is its state at `at`.
fn profiles_as_of(db: &Db, at: i64, mut each: impl FnMut(Profile)) -> Result<()> {
    let model = db.model();
    let store = db.store();
    for item in store.scan_profiles() {
        let (id, bytes) = item?;
        let rec = store.decode_profile_current(&id, &bytes)?;
        if rec.state.event_count == 0 {
            continue;
        }
        let consent =
            crate::features::consent::Consent::of(&rec.state, db.config().consent_defaults);
        let p = Profile::of_state(
            &id,
            rec.version,
            rec.state,
            &model,
            db.layout(),
            Some(at),
            consent,
        );
        // A customer without consent to profiling is not scored (nothing to compare).
        if p.consent.profiling {
            each(p);
        }
    }
    Ok(())
}

/// The raw feature vector as of `at` of every customer with events.
fn vectors_as_of(db: &Db, at: i64) -> Result<Vec<(String, Vec<f64>)>> {
    let mut out = Vec::new();
    profiles_as_of(db, at, |p| out.push((p.customer_id, p.features)))?;
    Ok(out)
}

/// Writes one cutoff's training and scoring vectors (see [`EvaluateOptions::vectors`]).
fn write_vectors(
    dir: &Path,
    cutoff_ms: i64,
    names: &[String],
    train: &[(String, Vec<f64>)],
    train_positives: &HashSet<String>,
    scored: &[Scored],
    positives: &HashSet<String>,
) -> Result<()> {
    let label = |set: &HashSet<String>, id: &str| if set.contains(id) { "1" } else { "0" };
    let train_rows = train.iter().map(|(id, x)| {
        let lead = [id.clone(), label(train_positives, id).to_string()];
        (lead.to_vec(), x.as_slice())
    });
    write_table(
        &dir.join(format!("train-{cutoff_ms}.csv")),
        &["customer_id", "label"],
        names,
        train_rows,
    )?;
    let score_rows = scored.iter().map(|s| {
        let lead = [
            s.id.clone(),
            label(positives, &s.id).to_string(),
            s.propensity.to_string(),
        ];
        (lead.to_vec(), s.features.as_slice())
    });
    write_table(
        &dir.join(format!("score-{cutoff_ms}.csv")),
        &["customer_id", "label", "persona"],
        names,
        score_rows,
    )
}

/// Writes a CSV file: a header of `lead` then `names`, and per row its leading cells then its
/// feature values.
fn write_table<'a>(
    file: &Path,
    lead: &[&str],
    names: &[String],
    rows: impl Iterator<Item = (Vec<String>, &'a [f64])>,
) -> Result<()> {
    let csv_error =
        |e: csv::Error| Error::Io(std::io::Error::other(format!("{}: {e}", file.display())));
    let mut out = csv::Writer::from_path(file).map_err(csv_error)?;
    let header = lead.iter().copied().chain(names.iter().map(String::as_str));
    out.write_record(header).map_err(csv_error)?;
    for (cells, values) in rows {
        let row = cells.into_iter().chain(values.iter().map(f64::to_string));
        out.write_record(row).map_err(csv_error)?;
    }
    out.flush()?;
    Ok(())
}

/// Every customer with events, scored as of `at`.
fn score_as_of(db: &Db, at: i64, target: EventKind) -> Result<Vec<Scored>> {
    let mut out = Vec::new();
    profiles_as_of(db, at, |p| {
        let s = &p.state;
        out.push(Scored {
            recency_days: s
                .last_seen_ms
                .map_or(f64::INFINITY, |t| (at - t) as f64 / DAY_MS),
            frequency: s.kind_counts[target.index()] as f64,
            monetary: s.spend,
            id: p.customer_id,
            features: p.features,
            propensity: p.propensity,
            segment: p.segment,
        })
    })?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the arguments
fn cutoff_report(
    cutoff_ms: i64,
    last_ms: i64,
    horizon_ms: i64,
    replayed: u64,
    model_examples: u64,
    scored: &[Scored],
    positives: &HashSet<String>,
    train: &[(String, Vec<f64>)],
    train_positives: &HashSet<String>,
    truth: Option<&HashMap<String, String>>,
    segments_k: usize,
    seed: u64,
) -> CutoffReport {
    let labels: Vec<bool> = scored.iter().map(|s| positives.contains(&s.id)).collect();
    let n_pos = labels.iter().filter(|l| **l).count() as u64;
    let column = |f: fn(&Scored) -> f64| scored.iter().map(f).collect::<Vec<f64>>();

    let train_x: Vec<Vec<f64>> = train.iter().map(|(_, x)| x.clone()).collect();
    let train_y: Vec<bool> = train
        .iter()
        .map(|(id, _)| train_positives.contains(id))
        .collect();
    let lr = baselines::BatchLogistic::fit(&train_x, &train_y);
    let lr_probs: Option<Vec<f64>> = lr
        .as_ref()
        .map(|m| scored.iter().map(|s| m.predict(&s.features)).collect());
    let batch_lr = match &lr_probs {
        Some(p) => ScorerMetrics::probability(p, &labels),
        None => ScorerMetrics::default(),
    };
    let persona = column(|s| s.propensity);
    let neg_recency = column(|s| -s.recency_days);
    let frequency = column(|s| s.frequency);
    let monetary = column(|s| s.monetary);
    let scores = Scores {
        persona: ScorerMetrics::probability(&persona, &labels),
        neg_recency: ScorerMetrics::ranking(&neg_recency, &labels),
        frequency: ScorerMetrics::ranking(&frequency, &labels),
        monetary: ScorerMetrics::ranking(&monetary, &labels),
        batch_lr,
    };
    // Each baseline's name, scores and AUC (computed once, above).
    let mut baselines: Vec<(&str, &[f64], Option<f64>)> = vec![
        ("neg_recency", &neg_recency, scores.neg_recency.auc),
        ("frequency", &frequency, scores.frequency.auc),
        ("monetary", &monetary, scores.monetary.auc),
    ];
    if let Some(p) = &lr_probs {
        baselines.push(("batch_lr", p, scores.batch_lr.auc));
    }
    let comparison = compare_to_best(&persona, &baselines, lr_probs.as_deref(), &labels);

    CutoffReport {
        cutoff_ms,
        horizon_complete: cutoff_ms + horizon_ms <= last_ms,
        events_replayed: replayed,
        customers_scored: scored.len() as u64,
        positives: n_pos,
        positive_rate: (!scored.is_empty()).then(|| n_pos as f64 / scored.len() as f64),
        model_examples,
        scores,
        comparison,
        batch_lr_training: TrainingSet {
            as_of_ms: cutoff_ms - horizon_ms,
            customers: train.len() as u64,
            positives: train_y.iter().filter(|l| **l).count() as u64,
            fitted: lr.is_some(),
        },
        segments: truth.map(|t| segment_agreement(scored, t, segments_k, seed)),
        recommendations: None,
    }
}

/// Persona against the baseline of highest AUC among `baselines` (name, scores, AUC), and its
/// Brier score against the batch LR's probabilities `lr`.
fn compare_to_best(
    persona: &[f64],
    baselines: &[(&str, &[f64], Option<f64>)],
    lr: Option<&[f64]>,
    labels: &[bool],
) -> Option<Comparison> {
    let mut best: Option<(&str, &[f64], f64)> = None;
    for &(name, scores, auc) in baselines {
        let Some(a) = auc else {
            continue;
        };
        if best.is_none_or(|(_, _, b)| a > b) {
            best = Some((name, scores, a));
        }
    }
    let (name, scores, _) = best?;
    let auc_difference = compare::auc_difference(persona, scores, labels)?;
    Some(Comparison {
        best_baseline: name.to_string(),
        auc_verdict: Verdict::of(&auc_difference),
        auc_difference,
        brier_difference_to_batch_lr: lr
            .and_then(|p| compare::brier_difference(persona, p, labels)),
    })
}

/// ARI of the online segments and of a batch k-means against `truth`, over the scored customers
/// that have a label. The batch k-means clusters every scored customer's vector, standardised by
/// its own mean and standard deviation.
fn segment_agreement(
    scored: &[Scored],
    truth: &HashMap<String, String>,
    k: usize,
    seed: u64,
) -> SegmentAgreement {
    let dim = scored.first().map_or(0, |s| s.features.len());
    let mut scaler = crate::model::Scaler::new(dim);
    for s in scored {
        scaler.update(&s.features);
    }
    let z: Vec<Vec<f64>> = scored
        .iter()
        .map(|s| scaler.transform_vec(&s.features))
        .collect();
    let mut truth_labels: Vec<&str> = Vec::new();
    let mut online: Vec<Option<u16>> = Vec::new();
    let mut labelled: Vec<usize> = Vec::new();
    for (i, s) in scored.iter().enumerate() {
        if let Some(t) = truth.get(&s.id) {
            truth_labels.push(t);
            online.push(s.segment);
            labelled.push(i);
        }
    }
    let batch_ari = |seed: u64| {
        let batch = baselines::kmeans(&z, k, seed);
        let labels: Vec<usize> = labelled
            .iter()
            .map(|&i| batch.get(i).copied().unwrap_or(0))
            .collect();
        metrics::adjusted_rand_index(&labels, &truth_labels)
    };
    // The run's seed first: its ARI is also the one `batch_kmeans_ari` reports.
    let over_seeds: Vec<Option<f64>> = (0..KMEANS_SEEDS)
        .map(|i| batch_ari(seed.wrapping_add(i)))
        .collect();
    let seeded = online.iter().all(Option::is_some);
    SegmentAgreement {
        labelled: truth_labels.len() as u64,
        online_ari: if seeded {
            metrics::adjusted_rand_index(&online, &truth_labels)
        } else {
            None
        },
        batch_kmeans_ari: over_seeds.first().copied().flatten(),
        batch_kmeans_ari_over_seeds: Spread::of(over_seeds.into_iter().flatten().collect()),
    }
}

#[cfg(test)]
mod tests;
