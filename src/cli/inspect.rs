//! `persona profile`, `persona segments`, `persona model`: read-only views of the store.

use super::{format_ms, print_json};
use anyhow::{bail, Result};
use persona::Db;

#[derive(Debug, clap::Args)]
pub struct JsonArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    /// Customer id.
    id: String,
    /// Show this past version instead of the current one.
    #[arg(long, conflicts_with = "at")]
    version: Option<u64>,
    /// Show the profile as it was at this event time (unix ms or RFC 3339).
    #[arg(long, value_parser = parse_at)]
    at: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Parses `--at` while the arguments are parsed, so that a bad time is a usage error (exit 2).
fn parse_at(s: &str) -> Result<i64, String> {
    persona::event::parse::parse_timestamp(s).map_err(|e| e.reason)
}

pub fn profile(db: &Db, args: &ProfileArgs) -> Result<()> {
    let p = match (args.version, &args.at) {
        (Some(v), _) => db.profile_at(&args.id, v)?,
        (None, Some(at)) => db.profile_as_of(&args.id, *at)?,
        (None, None) => db.profile(&args.id)?,
    };
    let Some(p) = p else {
        bail!("no profile for customer {:?}", args.id);
    };
    let names = db.feature_names();
    if args.json {
        return print_json(&p.to_json(&names));
    }
    print_profile(&p, &names);
    Ok(())
}

/// Prints a profile for people.
pub fn print_profile(p: &persona::Profile, names: &[String]) {
    println!("customer   {}", p.customer_id);
    println!("version    {}", p.version);
    println!("events     {}", p.event_count);
    if let (Some(f), Some(l)) = (p.first_seen_ms, p.last_seen_ms) {
        println!("first seen {}", format_ms(f));
        println!("last seen  {}", format_ms(l));
    }
    match (p.segment, p.segment_distance) {
        (Some(s), Some(d)) => println!("segment    {s} (distance {d:.2})"),
        _ => println!("segment    - (segments not seeded yet)"),
    }
    println!("propensity {:.3}", p.propensity);
    if !p.attributes.is_empty() {
        let attrs: Vec<String> = p
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("attributes {}", attrs.join(", "));
    }
    println!("features as of {}:", format_ms(p.as_of_ms));
    for (n, v) in names.iter().zip(&p.features) {
        if *v != 0.0 {
            println!("  {n:<22} {v:>10.4}");
        }
    }
}

pub fn segments(db: &Db, args: &JsonArgs) -> Result<()> {
    let segs = db.segments();
    if args.json {
        return print_json(&serde_json::to_value(&segs)?);
    }
    if segs.is_empty() {
        println!(
            "segments are not seeded yet (they seed after the first {} events)",
            db.config().model.reservoir_size
        );
        return Ok(());
    }
    print_segments(&segs);
    Ok(())
}

/// Prints the segments table.
pub fn print_segments(segs: &[persona::SegmentInfo]) {
    println!(
        "{:>3} {:>8} {:>9} {:>9} {:>10} {:>10}  label",
        "seg", "size", "recency_d", "purchases", "spend", "propensity"
    );
    for s in segs {
        println!(
            "{:>3} {:>8} {:>9.1} {:>9.1} {:>10.2} {:>10.3}  {}",
            s.id, s.size, s.recency_days, s.purchases, s.spend, s.propensity, s.label
        );
    }
}

/// Prints model metrics.
pub fn print_model(m: &persona::ModelInfo) {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!("model version      {}", m.version);
    println!("watermark          {}", format_ms(m.watermark_ms));
    println!(
        "examples           {} ({} positive, {} pending)",
        m.examples, m.positives, m.pending_examples
    );
    println!("rolling AUC        {}", opt(m.rolling_auc));
    println!("log loss           {}", opt(m.log_loss));
    println!("rolling log loss   {}", opt(m.rolling_log_loss));
    println!(
        "segments           {} ({})",
        m.segments.len(),
        if m.segments_seeded {
            "seeded"
        } else {
            "not seeded yet"
        }
    );
    println!("segment sizes      {:?}", m.segments);
    if !m.snapshots.is_empty() {
        println!("snapshots          {:?}", m.snapshots);
    }
    for d in &m.drift {
        println!(
            "drift detected     at {} (model version {}, statistic {:.1})",
            format_ms(d.watermark_ms),
            d.model_version,
            d.statistic
        );
    }
}
