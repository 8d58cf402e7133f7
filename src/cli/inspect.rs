//! `persona profile`, `persona segments`, `persona model`: read-only views of the store.

use super::{format_ms, print_json};
use crate::Db;
use anyhow::{bail, Result};

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
    crate::event::parse::parse_timestamp(s).map_err(|e| e.reason)
}

pub fn profile(db: &Db, args: &ProfileArgs) -> Result<()> {
    let p = match (args.version, &args.at) {
        (Some(v), _) => db.profile_at_version(&args.id, v)?,
        (None, Some(at)) => db.profile_as_of(&args.id, *at)?,
        (None, None) => db.profile(&args.id)?,
    };
    let Some(p) = p else {
        bail!("no profile for customer {:?}", args.id);
    };
    if args.json {
        return print_json(&p.to_json(db.layout().name_list()));
    }
    print_profile(&p, db);
    Ok(())
}

/// Prints a profile for people.
pub fn print_profile(p: &crate::Profile, db: &Db) {
    let layout = db.layout();
    let names = layout.name_list();
    let model = db.model();
    let categories = layout.category_start()..layout.event_dims();
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
    if p.consent.profiling {
        println!("propensity {:.3}", p.propensity);
    } else {
        println!("propensity - (no consent to profiling: not scored)");
    }
    if !p.attributes.is_empty() {
        let attrs: Vec<String> = p
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("attributes {}", attrs.join(", "));
    }
    for (label, list) in [
        ("top items", &p.top_items),
        ("top categories", &p.top_categories),
    ] {
        if list.is_empty() {
            continue;
        }
        let shown: Vec<String> = list
            .iter()
            .take(10)
            .map(|e| match e.purchases {
                0 => format!("{} {:.2}", e.name, e.weight),
                n => format!("{} {:.2} (bought {n}×)", e.name, e.weight),
            })
            .collect();
        let more = list.len().saturating_sub(10);
        let more = if more > 0 {
            format!(", … {more} more")
        } else {
            String::new()
        };
        println!("{label:<10} {}{more}", shown.join(", "));
    }
    println!(
        "features as of {} (value, and in brackets what the model sees):",
        format_ms(p.as_of_ms)
    );
    for (i, (n, v)) in names.iter().zip(&p.features).enumerate() {
        let value = match p.raw_features.get(i) {
            // Days since an event that never happened: said so, not the model's stand-in.
            Some(None) if i <= 2 => "never".to_string(),
            Some(Some(raw)) if *raw != 0.0 => layout.unit(i).format(Some(*raw), "-"),
            Some(_) => continue,
            None if *v != 0.0 => "(attribute slot)".to_string(),
            None => continue,
        };
        // A category bucket is named with every category that shares it.
        let name = match model.categories.label(i.wrapping_sub(categories.start)) {
            Some(label) if categories.contains(&i) => format!("{n} ({label})"),
            _ => n.clone(),
        };
        println!("  {name:<38} {value:>12}  ({v:.4})");
    }
}

pub fn segments(db: &Db, args: &JsonArgs) -> Result<()> {
    let segs = db.segments()?;
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
    print_segments(&segs, db.model().watermark_ms);
    Ok(())
}

/// Prints the segments table: the members' statistics as of `as_of_ms` (medians of days and
/// spend, means of the rest), then the rule's and the best action and the label.
pub fn print_segments(segs: &[crate::SegmentInfo], as_of_ms: i64) {
    let size: u64 = segs.iter().map(|s| s.size).sum();
    let evaluated: u64 = segs.iter().map(|s| s.evaluated).sum();
    let how = if evaluated >= size {
        "every member".to_string()
    } else {
        format!("a uniform sample of {evaluated} of {size} members")
    };
    println!(
        "members as of {} (statistics over {how}; recency and spend are medians, the rest means)",
        format_ms(as_of_ms)
    );
    println!(
        "{:>3} {:>7} {:>9} {:>6} {:>9} {:>9} {:>10} {:>10}  {:<15} {:<15} label",
        "seg",
        "size",
        "recency_d",
        "buyers",
        "purchases",
        "spend",
        "mean_spend",
        "propensity",
        "rule",
        "best action"
    );
    for s in segs {
        let recency = s
            .recency_days
            .map_or("-".to_string(), |d| format!("{d:.1}"));
        println!(
            "{:>3} {:>7} {:>9} {:>5.0}% {:>9.1} {:>9.2} {:>10.2} {:>10.3}  {:<15} {:<15} {}",
            s.id,
            s.size,
            recency,
            s.buyers * 100.0,
            s.purchases,
            s.spend,
            s.mean_spend,
            s.mean_propensity,
            s.rule_action,
            s.best_action,
            s.label
        );
    }
}

/// Prints model metrics.
pub fn print_model(m: &crate::ModelInfo) {
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
    if m.segments_seeded {
        println!(
            "segments           {} (fitted {} times to a sample of the customers as of then; \
             {} events)",
            m.segments.len(),
            m.segment_fits,
            m.events
        );
    } else {
        println!("segments           {} (not seeded yet)", m.segments.len());
    }
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
