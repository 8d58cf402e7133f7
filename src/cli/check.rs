//! `persona check`: verify a store offline (see [`crate::check_store`]). Prints what was
//! checked and every problem with its key; exits 0 when the store is clean and 1 when problems
//! were found (or the store cannot be opened, e.g. while a `persona` process holds it).

use anyhow::{bail, Context, Result};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON (the problems are in `problems`, each with `key`, `kind`,
    /// `detail`).
    #[arg(long)]
    json: bool,
}

pub fn run(config: &crate::Config, args: &Args) -> Result<()> {
    let data: &Path = config.path();
    let report = match crate::check_store_with(config) {
        Ok(r) => r,
        Err(crate::Error::Locked { .. }) => {
            bail!(
                "cannot check the store at {}: another process has it open (stop it first)",
                data.display()
            )
        }
        Err(e @ crate::Error::NoStore { .. }) => return Err(e.into()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot check the store at {}", data.display()))
        }
    };
    if args.json {
        super::print_json(&serde_json::to_value(&report)?)?;
    } else {
        let model = report
            .model_version
            .map_or("no model state".to_string(), |v| {
                format!("model version {v}")
            });
        println!(
            "checked {}: {} keys ({} profiles, {} snapshots, {model})",
            report.path.display(),
            report.keys,
            report.profiles,
            report.snapshots
        );
        if report.legacy_members > 0 {
            println!(
                "store format 1: {} segment-membership entries, dropped when the store is next \
                 opened (format 2 reads segments from the profile records)",
                report.legacy_members
            );
        }
        for p in &report.problems {
            println!("problem: {p}");
        }
        let hidden = report.problems_total - report.problems.len() as u64;
        if hidden > 0 {
            println!("… and {hidden} more problems");
        }
        if report.is_clean() {
            println!("no problems found");
        }
    }
    if !report.is_clean() {
        bail!(
            "found {} problem{} in the store at {}",
            report.problems_total,
            if report.problems_total == 1 { "" } else { "s" },
            data.display()
        );
    }
    Ok(())
}
