//! `persona erase ID`, `persona export-customer ID [--out FILE]` and `persona purge`: the
//! data-subject requests (erasure, access) and the retention policy.

use super::print_json;
use crate::Db;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    /// Customer id.
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Then refit the segment centroids from fresh starts on a sample without them and
    /// re-assign every profile (`Db::erase_and_retrain`; as long as a `resegment`).
    #[arg(long)]
    retrain: bool,
}

/// Erases a customer and reports what went with them and what of their influence stays in the
/// models (`Db::erase_report`). An unknown customer is not an error (there is nothing left to
/// erase): it exits 0 and says so (`"erased": false` with `--json`).
pub fn erase(db: &Db, a: &EraseArgs) -> Result<()> {
    let r = match a.retrain {
        true => db.erase_and_retrain(&a.id)?,
        false => db.erase_report(&a.id)?,
    };
    if a.json {
        return print_json(&serde_json::to_value(&r)?);
    }
    if !r.erased {
        println!("no profile for customer {:?}; nothing to erase", a.id);
        return Ok(());
    }
    println!("erased customer {:?}", a.id);
    let segment = r.segment.map_or("none".to_string(), |s| s.to_string());
    println!("  events:                 {}", r.events);
    println!("  segment left:           {segment} (its size and sums no longer count them)");
    println!(
        "  training examples:      {} dropped before any model learned them",
        r.training_examples_dropped
    );
    println!(
        "  trigger firings:        {} removed",
        r.trigger_firings_removed
    );
    println!(
        "  strategy outcomes:      {} subtracted from the per-segment action counts",
        r.feedback_outcomes_subtracted
    );
    println!(
        "  catalogue names:        {} that only they had named, dropped from the models",
        r.catalogue_names_dropped
    );
    for retrained in &r.retrained {
        println!("  retrained without them: {retrained}");
    }
    for kept in &r.kept_in_models {
        println!("  stays in the models:    {kept}");
    }
    if let Some(why) = &r.unreadable {
        println!("  not counted:            {why}");
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Customer id.
    id: String,
    /// Write the JSON document to this file (created owner-readable only) instead of standard
    /// output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Prints (or writes) everything held about one customer as a JSON document.
pub fn export_customer(db: &Db, a: &ExportArgs) -> Result<()> {
    let Some(export) = db.export_customer(&a.id)? else {
        bail!("no profile for customer {:?}", a.id);
    };
    let doc = export.to_json();
    let Some(path) = &a.out else {
        return print_json(&doc);
    };
    let mut file =
        create_private(path).with_context(|| format!("cannot create {}", path.display()))?;
    serde_json::to_writer_pretty(&mut file, &doc)?;
    writeln!(file)?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("exported customer {:?} to {}", a.id, path.display());
    Ok(())
}

/// Creates (or truncates) a file readable by its owner only (0600 on Unix): it holds one
/// customer's personal data.
fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// Retention period in days; default: `profile_ttl_days` from the configuration file.
    #[arg(long, value_name = "DAYS", value_parser = ttl_days)]
    ttl_days: Option<f64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Parses `--ttl-days`: a number of days > 0 (clap reports a refusal as bad usage, exit 2).
fn ttl_days(text: &str) -> std::result::Result<f64, String> {
    let max = crate::config::MAX_TTL_DAYS;
    match text.parse::<f64>() {
        Ok(d) if d.is_finite() && d > 0.0 && d <= max => Ok(d),
        _ => Err(format!("must be a number of days > 0 and <= {max}")),
    }
}

/// Erases every profile inactive for longer than the retention period.
pub fn purge(db: &Db, a: &PurgeArgs) -> Result<()> {
    let report = match a.ttl_days {
        Some(days) => db.purge_older_than(days)?,
        None => db.purge()?,
    };
    if a.json {
        return print_json(&serde_json::to_value(&report)?);
    }
    println!(
        "purged {} of {} profiles with no event since {} ({} days before the watermark {})",
        report.erased,
        report.scanned,
        super::format_ms(report.cutoff_ms),
        report.ttl_days,
        super::format_ms(report.watermark_ms)
    );
    Ok(())
}
