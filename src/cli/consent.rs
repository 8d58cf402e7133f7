//! `persona consent`: show or set one customer's consent per purpose, or set many from a CSV
//! file (`customer_id,profiling,marketing`, as a consent-management tool exports it). See
//! `features/consent.rs` for what each purpose governs.

use super::{format_ms, print_json, Usage};
use crate::features::consent;
use crate::{AttrValue, Db};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Rows submitted to the writer at once from a file.
const CHUNK: usize = 1024;

/// `persona consent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The customer (not with --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    id: Option<String>,
    /// Give (yes) or withdraw (no) consent to profiling: training the shared models, being
    /// segmented, scored and found as a lookalike.
    #[arg(long, value_name = "yes|no", value_parser = yes_no)]
    profiling: Option<bool>,
    /// Give (yes) or withdraw (no) consent to marketing: strategy, recommendations, triggers.
    #[arg(long, value_name = "yes|no", value_parser = yes_no)]
    marketing: Option<bool>,
    /// Set the consent of every customer in a CSV file with a header naming `customer_id` and
    /// `profiling` and/or `marketing` (values yes/no, true/false, 1/0; an empty cell leaves
    /// that purpose as it is). Rows that are wrong are reported with their line and reason.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["profiling", "marketing"])]
    file: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn yes_no(s: &str) -> std::result::Result<bool, String> {
    consent::parse(&AttrValue::Text(s.to_string()))
        .ok_or_else(|| format!("{s:?} is not a consent; allowed yes, no, true, false, 1 or 0"))
}

/// Runs `persona consent` on the store `db` opens (created if missing only when setting).
///
/// # Errors
/// Exit 2 for a customer that does not exist when showing, or a file without the columns;
/// exit 1 for what the store reports.
pub fn run(open: &dyn Fn() -> Result<Db>, read: &dyn Fn() -> Result<Db>, a: &Args) -> Result<()> {
    if let Some(path) = &a.file {
        return from_file(&open()?, path, a.json);
    }
    let id = a.id.as_deref().unwrap_or_default();
    let mut attrs = Vec::new();
    for (name, v) in [
        (consent::PROFILING, a.profiling),
        (consent::MARKETING, a.marketing),
    ] {
        if let Some(v) = v {
            let word = if v { "true" } else { "false" };
            attrs.push((name.to_string(), AttrValue::Text(word.into())));
        }
    }
    let db = if attrs.is_empty() { read()? } else { open()? };
    if !attrs.is_empty() {
        db.set_attributes(id, attrs)?;
    }
    let Some(export) = db.export_customer(id)? else {
        return Err(Usage(format!("no profile for customer {id:?}")).into());
    };
    let c = &export.consent;
    if a.json {
        return print_json(&serde_json::json!({
            "customer_id": id,
            "profiling": c.profiling,
            "marketing": c.marketing,
            "changes": c.changes,
        }));
    }
    let word = |b: bool| if b { "given" } else { "withdrawn" };
    println!("customer {id:?}");
    for (purpose, now) in [("profiling", c.profiling), ("marketing", c.marketing)] {
        let last = c.changes.iter().rev().find(|ch| ch.purpose == purpose);
        let since = match last {
            Some(ch) => match ch.at_ms {
                Some(ms) => format!("since {} (version {})", format_ms(ms), ch.version),
                None => format!("since version {}", ch.version),
            },
            None => "the store's default".to_string(),
        };
        println!("  {purpose:<10} {:<9} {since}", word(now));
    }
    Ok(())
}

/// One row of a consent file, as read.
struct Row {
    line: u64,
    customer: String,
    attrs: Vec<(String, AttrValue)>,
}

/// Sets consent from a CSV file: every valid row applied, every wrong one reported.
fn from_file(db: &Db, path: &Path, json: bool) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("cannot read the header of {}", path.display()))?
        .clone();
    let column = |name: &str| header.iter().position(|h| h.trim() == name);
    let id_col = column("customer_id").ok_or_else(|| {
        Usage(format!(
            "{}: the header has no customer_id column (expected customer_id,profiling,marketing)",
            path.display()
        ))
    })?;
    let purposes: Vec<(usize, &str)> = [
        (column("profiling"), consent::PROFILING),
        (column("marketing"), consent::MARKETING),
    ]
    .into_iter()
    .filter_map(|(c, name)| c.map(|c| (c, name)))
    .collect();
    if purposes.is_empty() {
        return Err(Usage(format!(
            "{}: the header has neither a profiling nor a marketing column",
            path.display()
        ))
        .into());
    }
    let (mut applied, mut unchanged) = (0u64, 0u64);
    let mut rejected: Vec<serde_json::Value> = Vec::new();
    let mut reject = |line: u64, customer: &str, reason: String| {
        rejected
            .push(serde_json::json!({ "line": line, "customer_id": customer, "reason": reason }));
    };
    let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK);
    let flush = |chunk: &mut Vec<Row>, reject: &mut dyn FnMut(u64, &str, String)| -> Result<u64> {
        let rows: Vec<(String, Vec<(String, AttrValue)>)> = chunk
            .iter()
            .map(|r| (r.customer.clone(), r.attrs.clone()))
            .collect();
        let mut n = 0;
        for (row, result) in chunk.iter().zip(db.set_attributes_batch(rows)?) {
            match result {
                Ok(_) => n += 1,
                Err(e) => reject(row.line, &row.customer, e.to_string()),
            }
        }
        chunk.clear();
        Ok(n)
    };
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                reject(line, "", format!("unreadable row: {e}"));
                continue;
            }
        };
        let customer = record.get(id_col).unwrap_or("").trim().to_string();
        let mut attrs = Vec::new();
        let mut bad = None;
        for &(col, name) in &purposes {
            let cell = record.get(col).unwrap_or("").trim();
            if cell.is_empty() {
                continue;
            }
            match yes_no(cell) {
                Ok(v) => {
                    let word = if v { "true" } else { "false" };
                    attrs.push((name.to_string(), AttrValue::Text(word.into())));
                }
                Err(why) => bad = Some(format!("{name}: {why}")),
            }
        }
        if let Some(why) = bad {
            reject(line, &customer, why);
            continue;
        }
        if attrs.is_empty() {
            unchanged += 1;
            continue;
        }
        chunk.push(Row {
            line,
            customer,
            attrs,
        });
        if chunk.len() >= CHUNK {
            applied += flush(&mut chunk, &mut reject)?;
        }
    }
    applied += flush(&mut chunk, &mut reject)?;
    // Rows refused while reading and by the writer, in file order.
    rejected.sort_by_key(|r| r["line"].as_u64());
    if json {
        return print_json(&serde_json::json!({
            "file": path.display().to_string(),
            "applied": applied,
            "unchanged": unchanged,
            "rejected": rejected,
        }));
    }
    println!(
        "{}: {applied} customers' consent set, {unchanged} rows with nothing to set, {} rejected",
        path.display(),
        rejected.len()
    );
    for r in &rejected {
        println!(
            "  line {}: {} ({})",
            r["line"],
            r["reason"].as_str().unwrap_or(""),
            r["customer_id"]
        );
    }
    Ok(())
}
