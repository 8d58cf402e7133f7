//! `persona export profiles|segments [--format csv|jsonl] [--out FILE]`: streams with a progress
//! bar (on a terminal, when writing to a file).

use crate::Db;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum What {
    /// Every profile: id, version, events, segment, propensity and the feature vector.
    Profiles,
    /// Every segment: size, means, actions, label.
    Segments,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to export.
    what: What,
    /// Output format; guessed from the extension of --out when omitted (default csv).
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(db: &Db, a: &Args) -> Result<()> {
    let (sink, to_file): (Box<dyn Write>, bool) = match &a.out {
        Some(p) => (
            Box::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            ),
            true,
        ),
        None => (Box::new(std::io::stdout().lock()), false),
    };
    let mut w = BufWriter::new(sink);
    let jsonl = match a.format.as_deref() {
        Some(f) => f == "jsonl",
        None => {
            a.out
                .as_deref()
                .and_then(crate::event::parse::Format::from_path)
                == Some(crate::event::parse::Format::Jsonl)
        }
    };
    let n = match a.what {
        What::Profiles => profiles(db, &mut w, jsonl, to_file)?,
        What::Segments => segments(db, &mut w, jsonl)?,
    };
    w.flush()?;
    if let Some(p) = &a.out {
        eprintln!("exported {n} rows to {}", p.display());
    }
    Ok(())
}

fn profiles(db: &Db, w: &mut impl Write, jsonl: bool, progress: bool) -> Result<u64> {
    let names = db.feature_names();
    let bar = if progress {
        let total = db.profile_count() as u64;
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_bar} {pos}/{len} profiles ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut n = 0;
    if jsonl {
        for p in db.profiles() {
            writeln!(w, "{}", serde_json::to_string(&p?.to_json(&names))?)?;
            n += 1;
            bar.inc(1);
        }
    } else {
        let mut csv = csv::Writer::from_writer(&mut *w);
        let mut header = vec![
            "customer_id".to_string(),
            "version".into(),
            "event_count".into(),
            "segment".into(),
            "propensity".into(),
        ];
        header.extend(names.iter().cloned());
        csv.write_record(&header)?;
        for p in db.profiles() {
            let p = p?;
            let mut row = vec![
                p.customer_id.clone(),
                p.version.to_string(),
                p.event_count.to_string(),
                p.segment.map(|s| s.to_string()).unwrap_or_default(),
                // Empty, as a missing segment is, for a customer who is not scored.
                Some(p.propensity)
                    .filter(|v| !v.is_nan())
                    .map(|v| format!("{v:.6}"))
                    .unwrap_or_default(),
            ];
            row.extend(p.features.iter().map(|f| format!("{f:.6}")));
            csv.write_record(&row)?;
            n += 1;
            bar.inc(1);
        }
        csv.flush()?;
    }
    bar.finish_and_clear();
    Ok(n)
}

fn segments(db: &Db, w: &mut impl Write, jsonl: bool) -> Result<u64> {
    let segs = db.segments()?;
    if jsonl {
        for s in &segs {
            writeln!(w, "{}", serde_json::to_string(s)?)?;
        }
    } else {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "id",
            "size",
            "evaluated",
            "recency_days",
            "tenure_days",
            "days_since_purchase",
            "buyers",
            "purchases",
            "spend",
            "mean_spend",
            "cart_adds",
            "recent_events",
            "mean_propensity",
            "top_kind",
            "top_categories",
            "rule_action",
            "best_action",
            "label",
        ])?;
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.2}"));
        for s in &segs {
            let categories: Vec<String> = s
                .top_categories
                .iter()
                .map(|c| format!("{} {:.2}", c.name, c.share))
                .collect();
            csv.write_record([
                s.id.to_string(),
                s.size.to_string(),
                s.evaluated.to_string(),
                opt(s.recency_days),
                opt(s.tenure_days),
                opt(s.days_since_purchase),
                format!("{:.4}", s.buyers),
                format!("{:.2}", s.purchases),
                format!("{:.2}", s.spend),
                format!("{:.2}", s.mean_spend),
                format!("{:.2}", s.cart_adds),
                format!("{:.2}", s.recent_events),
                format!("{:.4}", s.mean_propensity),
                s.top_kind.clone().unwrap_or_default(),
                categories.join("; "),
                s.rule_action.clone(),
                s.best_action.clone(),
                s.label.clone(),
            ])?;
        }
        csv.flush()?;
    }
    Ok(segs.len() as u64)
}
