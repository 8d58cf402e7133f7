//! `persona model [--versions | --snapshot | --rollback V | --advance TIME]` and `persona resegment`.

use super::{format_ms, print_json};
use crate::Db;
use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// List the stored model snapshots.
    #[arg(long, conflicts_with_all = ["snapshot", "rollback"])]
    versions: bool,
    /// Snapshot the model now.
    #[arg(long, conflicts_with = "rollback")]
    snapshot: bool,
    /// Roll the learned parameters back to snapshot V (then run `persona resegment`).
    #[arg(long, value_name = "V")]
    rollback: Option<u64>,
    /// Say that every event up to TIME (unix ms or RFC 3339) is in: the watermark moves there
    /// as with an event at that time (the daily refit runs, INACTIVE_DAYS silences fire).
    #[arg(long, value_name = "TIME", value_parser = super::time_arg,
          conflicts_with_all = ["versions", "snapshot", "rollback"])]
    advance: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn model(db: &Db, a: &ModelArgs) -> Result<()> {
    if a.versions {
        let versions = db.model_versions()?;
        if a.json {
            return print_json(&serde_json::to_value(&versions)?);
        }
        println!(
            "{:>8}  {:<20} {:>9} {:>8}",
            "version", "watermark", "examples", "auc"
        );
        for v in versions {
            println!(
                "{:>8}  {:<20} {:>9} {:>8}",
                v.version,
                format_ms(v.watermark_ms),
                v.examples,
                v.rolling_auc.map_or("-".into(), |x| format!("{x:.4}"))
            );
        }
        return Ok(());
    }
    if a.snapshot {
        let v = db.take_model_snapshot()?;
        if a.json {
            return print_json(&serde_json::json!({ "snapshot": v }));
        }
        println!("snapshot taken at model version {v}");
        return Ok(());
    }
    if let Some(v) = a.rollback {
        let now = db.rollback_model(v)?;
        if a.json {
            return print_json(&serde_json::json!({ "rolled_back_to": v, "version": now }));
        }
        println!("learned parameters restored from snapshot {v}; model version is now {now}");
        println!(
            "run `persona resegment` so stored segment assignments follow the restored centroids"
        );
        return Ok(());
    }
    if let Some(to) = a.advance {
        let version = db.advance_watermark(to)?;
        let watermark = db.model_info().watermark_ms;
        if a.json {
            return print_json(
                &serde_json::json!({ "version": version, "watermark_ms": watermark }),
            );
        }
        println!(
            "watermark {}; model version {version}",
            format_ms(watermark)
        );
        return Ok(());
    }
    let info = db.model_info();
    if a.json {
        return print_json(&serde_json::to_value(&info)?);
    }
    super::inspect::print_model(&info);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ResegmentArgs {
    /// Profiles re-assigned per commit, at least 1 (ingestion interleaves between commits).
    #[arg(long, default_value_t = 1000, value_parser = super::count_parser(1_000_000))]
    batch: usize,
    /// Refit the centroids by k-means over a sample of profiles first.
    #[arg(long)]
    refit: bool,
    /// Refit them first from fresh starts only (seeded by the configuration's seed), so that
    /// they depend on the sample alone: finishes an interrupted `erase --retrain`.
    #[arg(long, conflicts_with = "refit")]
    fresh: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn resegment(db: &Db, a: &ResegmentArgs) -> Result<()> {
    let r = db.resegment(
        a.batch,
        match (a.refit, a.fresh) {
            (_, true) => crate::Centroids::Fresh,
            (true, false) => crate::Centroids::Refit,
            (false, false) => crate::Centroids::Keep,
        },
    )?;
    if a.json {
        return print_json(&serde_json::to_value(&r)?);
    }
    println!(
        "re-segmented {} profiles in {} commits: {} changed segment{}",
        r.scanned,
        r.batches,
        r.changed,
        if r.refitted {
            " (centroids refitted first)"
        } else {
            ""
        }
    );
    Ok(())
}
