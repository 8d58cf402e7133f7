//! `persona evaluate FILE`: backtest the propensity model and the segments on an event log,
//! against baselines computed in the same run (see [`crate::evaluate`]).
//!
//! The log is read into memory, replayed into a scratch store under the system's temporary
//! directory (removed afterwards) and scored at each cutoff. Nothing touches `--data`.

use crate::evaluate::{
    evaluate, CutoffReport, Cutoffs, EvaluateOptions, EvaluationReport, ScorerMetrics, Verdict,
};
use crate::event::parse::{EventReader, Format};
use crate::{Error, Event};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The keys of the `--json` document, shown by `--help` (README's command table repeats them).
const JSON_KEYS: &str = "\
JSON (--json) keys, stable: file, unparsed_rows, events, rejected, customers, first_event_ms,
last_event_ms, horizon_days, target_kind, cutoffs[]: {cutoff_ms, horizon_complete,
events_replayed, customers_scored, positives, positive_rate, model_examples,
scores.{persona,neg_recency,frequency,monetary,batch_lr}: {auc, log_loss, brier,
top_decile_lift, calibration: null | [{lower, upper, count, mean_predicted, observed_rate}] x 10},
comparison: null | {best_baseline, auc_difference, auc_verdict: better | worse | tie,
brier_difference_to_batch_lr: null | difference}, each difference {estimate, std_error, ci95:
[low, high]} (persona minus the baseline; DeLong for AUC, paired for Brier),
batch_lr_training: {as_of_ms, customers, positives, fitted},
segments: null | {labelled, online_ari, batch_kmeans_ari, batch_kmeans_ari_over_seeds: null |
{runs, min, median, max}},
recommendations: null | {customers, scorers[], discovery_customers, discovery[]}: scorers and
discovery are [{name, recall, ndcg, hit_rate}] at 10 (names persona, popular_90d,
segment_popular_90d, own_purchases; discovery without own_purchases); null when no event of the
log names an item}. Undefined metrics are null (log_loss, brier and calibration for the
non-probability baselines).";

#[derive(Debug, clap::Args)]
#[command(after_long_help = JSON_KEYS)]
pub struct Args {
    /// The events file (CSV or JSON Lines).
    file: PathBuf,
    /// Input format; guessed from the file extension when omitted.
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
    /// Number of cutoffs spread over the log's span [default: 3].
    #[arg(long, value_name = "N", conflicts_with = "cutoff")]
    cutoffs: Option<usize>,
    /// A cutoff time (RFC 3339 or unix ms); may be repeated.
    #[arg(long, value_name = "TIME", value_parser = super::time_arg)]
    cutoff: Vec<i64>,
    /// Label horizon in days (also the model's horizon) [default: the config's, 30].
    #[arg(long, value_name = "D")]
    horizon_days: Option<f64>,
    /// Ground-truth segments: a CSV with a header and `customer_id,label` columns.
    #[arg(long, value_name = "FILE")]
    truth: Option<PathBuf>,
    /// Print the report as JSON (keys listed in --help).
    #[arg(long)]
    json: bool,
    /// Also write each cutoff's vectors to DIR (created if missing): `train-C.csv` (the batch
    /// LR's training set: customer_id, label, raw features as of C − horizon) and `score-C.csv`
    /// (customer_id, label, persona, raw features as of C), C the cutoff in unix ms; for
    /// trying other models on exactly the data the report scores.
    #[arg(long, value_name = "DIR")]
    vectors: Option<PathBuf>,
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: &Args, config_file: Option<&PathBuf>) -> Result<()> {
    let format = match &args.format {
        Some(f) => Format::parse(f)?,
        None => Format::from_path(&args.file).with_context(|| {
            format!(
                "cannot tell the format of {} from its extension; pass --format csv or --format jsonl",
                args.file.display()
            )
        })?,
    };
    let truth = args.truth.as_deref().map(read_truth).transpose()?;
    let (events, unparsed) = read_events(&args.file, format)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let scratch = Scratch(
        std::env::temp_dir().join(format!("persona-evaluate-{}-{nanos}", std::process::id())),
    );
    let mut config = super::load_config(&scratch.0, config_file)?;
    if let Some(d) = args.horizon_days {
        config = config.horizon_days(d);
    }
    config.validate()?;
    let cutoffs = if args.cutoff.is_empty() {
        Cutoffs::Spread(args.cutoffs.unwrap_or(3))
    } else {
        Cutoffs::At(args.cutoff.clone())
    };
    let mut options = EvaluateOptions::default().cutoffs(cutoffs);
    if let Some(t) = truth {
        options = options.truth(t);
    }
    if let Some(dir) = &args.vectors {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the --vectors directory {}", dir.display()))?;
        options = options.vectors(dir);
    }
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(events.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] replaying {wide_bar} {pos}/{len} events ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let report = evaluate(config, events, &options, &mut |done, _| {
        bar.set_position(done)
    })
    .context("the backtest failed")?;
    bar.finish_and_clear();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("file".into(), args.file.display().to_string().into());
            o.insert("unparsed_rows".into(), unparsed.into());
        }
        super::print_json(&v)?;
    } else {
        print_report(&args.file, unparsed, &report);
    }
    Ok(())
}

/// Reads every valid event of `path`; returns them and the number of rows rejected.
fn read_events(path: &Path, format: Format) -> Result<(Vec<Event>, u64)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let input = crate::event::parse::decompressed(f)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let reader = EventReader::new(input, format)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut events = Vec::new();
    let mut unparsed = 0u64;
    for item in reader {
        match item {
            Ok(e) => events.push(e),
            Err(Error::InvalidEvent(e)) => {
                if unparsed == 0 {
                    eprintln!("warning: skipping invalid rows of {}: {e}", path.display());
                }
                unparsed += 1;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("reading the input failed")),
        }
    }
    Ok((events, unparsed))
}

/// Reads `customer_id,label` rows (after a header) into a map.
fn read_truth(path: &Path) -> Result<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("cannot open truth file {}", path.display()))?;
    let mut out = HashMap::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("cannot read truth file {}", path.display()))?;
        match (row.get(0), row.get(1)) {
            (Some(id), Some(label)) => {
                out.insert(id.to_string(), label.to_string());
            }
            _ => bail!(
                "truth file {} line {}: expected two columns, customer_id,label",
                path.display(),
                i + 2
            ),
        }
    }
    Ok(out)
}

fn print_report(file: &Path, unparsed: u64, r: &EvaluationReport) {
    println!(
        "{}: {} events ({} unreadable rows skipped, {} rejected by the write path), {} customers, \
         {} .. {}",
        file.display(),
        r.events,
        unparsed,
        r.rejected,
        r.customers,
        super::format_ms(r.first_event_ms),
        super::format_ms(r.last_event_ms)
    );
    println!(
        "positive = a {} event within {} days of the cutoff; only customers seen by the cutoff \
         are scored",
        r.target_kind, r.horizon_days
    );
    for c in &r.cutoffs {
        print_cutoff(c);
    }
}

fn print_cutoff(c: &CutoffReport) {
    println!();
    println!(
        "cutoff {}: {} customers scored, {} positive ({}), {} events replayed, online model \
         trained on {} examples{}",
        super::format_ms(c.cutoff_ms),
        c.customers_scored,
        c.positives,
        c.positive_rate
            .map_or("-".to_string(), |p| format!("{:.1}%", 100.0 * p)),
        c.events_replayed,
        c.model_examples,
        if c.horizon_complete {
            ""
        } else {
            " (the log ends before the horizon does: late positives are missing)"
        }
    );
    let t = &c.batch_lr_training;
    println!(
        "batch_lr: fitted on {} customers as of {} ({} positive){}",
        t.customers,
        super::format_ms(t.as_of_ms),
        t.positives,
        if t.fitted {
            ""
        } else {
            "; not fitted: needs both classes"
        }
    );
    println!(
        "{:<12} {:>7} {:>9} {:>7} {:>16}",
        "scorer", "auc", "log_loss", "brier", "top_decile_lift"
    );
    for (name, m) in c.scores.rows() {
        println!(
            "{:<12} {:>7} {:>9} {:>7} {:>16}",
            name,
            num(m.auc, 3),
            num(m.log_loss, 3),
            num(m.brier, 3),
            num(m.top_decile_lift, 2)
        );
    }
    if let Some(cmp) = &c.comparison {
        let d = &cmp.auc_difference;
        println!(
            "persona - {} (best baseline) AUC: {:+.4}, 95% interval [{:+.4}, {:+.4}]: {}",
            cmp.best_baseline,
            d.estimate,
            d.ci95[0],
            d.ci95[1],
            match cmp.auc_verdict {
                Verdict::Better => "better",
                Verdict::Worse => "worse",
                Verdict::Tie => "a tie (the interval holds 0)",
            }
        );
        if let Some(b) = &cmp.brier_difference_to_batch_lr {
            println!(
                "persona - batch_lr Brier: {:+.4}, 95% interval [{:+.4}, {:+.4}] (negative is better)",
                b.estimate, b.ci95[0], b.ci95[1]
            );
        }
    }
    print_calibration(&[
        ("persona", &c.scores.persona),
        ("batch_lr", &c.scores.batch_lr),
    ]);
    if let Some(s) = &c.segments {
        println!(
            "segments vs truth ({} labelled customers): ARI online {}, batch k-means {}{}",
            s.labelled,
            num(s.online_ari, 3),
            num(s.batch_kmeans_ari, 3),
            s.batch_kmeans_ari_over_seeds
                .as_ref()
                .map_or(String::new(), |r| format!(
                    " ({} seeds: {:.3} .. {:.3}, median {:.3})",
                    r.runs, r.min, r.max, r.median
                ))
        );
    }
    if let Some(r) = &c.recommendations {
        println!(
            "recommendations @10: {} customers buy a named item after the cutoff, {} one new to them",
            r.customers, r.discovery_customers
        );
        println!(
            "  {:<22} {:>7} {:>7} {:>8}   discovery: {:>7} {:>8}",
            "", "recall", "ndcg", "hit rate", "recall", "hit rate"
        );
        for m in &r.scorers {
            let d = r.discovery.iter().find(|d| d.name == m.name);
            let (dr, dh) = match d {
                Some(d) => (format!("{:.3}", d.recall), format!("{:.3}", d.hit_rate)),
                None => ("-".to_string(), "-".to_string()),
            };
            println!(
                "  {:<22} {:>7.3} {:>7.3} {:>8.3}              {dr:>7} {dh:>8}",
                m.name, m.recall, m.ndcg, m.hit_rate
            );
        }
    }
}

/// Calibration tables side by side: per bin, the mean prediction, the observed positive rate and
/// the count.
fn print_calibration(models: &[(&str, &ScorerMetrics)]) {
    let tables: Vec<_> = models
        .iter()
        .filter_map(|(n, m)| m.calibration.as_ref().map(|c| (*n, c)))
        .collect();
    if tables.is_empty() {
        return;
    }
    print!("calibration  ");
    for (name, _) in &tables {
        print!("{:<30}", format!("{name}: mean observed (n)"));
    }
    println!();
    let bins = tables.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    for b in 0..bins {
        let Some(first) = tables[0].1.get(b) else {
            continue;
        };
        print!("{:<13}", format!("{:.1}-{:.1}", first.lower, first.upper));
        for (_, table) in &tables {
            match table.get(b) {
                Some(bin) if bin.count > 0 => print!(
                    "{:<30}",
                    format!(
                        "{} {} ({})",
                        num(bin.mean_predicted, 3),
                        num(bin.observed_rate, 3),
                        bin.count
                    )
                ),
                _ => print!("{:<30}", "-"),
            }
        }
        println!();
    }
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.decimals$}"))
}
