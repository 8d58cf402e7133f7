//! `persona generate`: write a synthetic event file (and optionally the planted truth).

use crate::generator::{self, Generator, GeneratorConfig};
use anyhow::{Context, Result};
use std::io::BufWriter;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of customers.
    #[arg(long, default_value_t = 1000, value_parser = super::at_least_one)]
    customers: u64,
    /// Number of events.
    #[arg(long, default_value_t = 20000, value_parser = super::at_least_one)]
    events: u64,
    /// Random seed: the same seed gives the same file.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Length of the period in days, from 2026-01-01.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    /// Output file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Output format; guessed from the extension of --out when omitted (default csv).
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
    /// Also write `customer_id,persona` for every customer to this file.
    #[arg(long, value_name = "FILE")]
    truth: Option<PathBuf>,
    /// Plant an abrupt drift at TIME (RFC 3339 or unix ms): from then on each persona buys like
    /// another (big spenders <-> window shoppers, bargain hunters <-> social fans, loyal regulars
    /// <-> churning), so who buys changes while activity, categories and amounts do not. The
    /// truth file keeps the original personas.
    #[arg(long, value_name = "TIME", value_parser = super::time_arg)]
    drift_at: Option<i64>,
    /// Name items from a catalogue of N products (0: no item column). Half the engagements are
    /// staples of the customer or of their persona, the rest skewed to each category's
    /// bestsellers.
    #[arg(long, value_name = "N", default_value_t = 0)]
    items: u32,
}

pub fn run(args: &Args) -> Result<()> {
    let cfg = GeneratorConfig {
        customers: args.customers,
        events: args.events,
        seed: args.seed,
        days: args.days,
        drift_at_ms: args.drift_at,
        items: args.items,
        ..GeneratorConfig::default()
    };
    let jsonl = match args.format.as_deref() {
        Some(f) => f == "jsonl",
        None => matches!(
            crate::event::parse::Format::from_path(&args.out),
            Some(crate::event::parse::Format::Jsonl)
        ),
    };
    let n = write_events(&cfg, &args.out, jsonl)?;
    if let Some(truth) = &args.truth {
        let f = std::fs::File::create(truth)
            .with_context(|| format!("cannot create {}", truth.display()))?;
        generator::write_truth_csv(&cfg, BufWriter::new(f))?;
    }
    eprintln!(
        "wrote {n} events for {} customers to {}",
        args.customers,
        args.out.display()
    );
    Ok(())
}

/// Writes the generated events to `out` (gzip-compressed when its name ends in `.gz`, as
/// `import` reads it); returns how many.
pub fn write_events(cfg: &GeneratorConfig, out: &PathBuf, jsonl: bool) -> Result<u64> {
    let gen = Generator::new(cfg.clone())?;
    let items = cfg.items > 0;
    let f =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let write = |w: &mut dyn std::io::Write| -> std::io::Result<u64> {
        if jsonl {
            generator::write_jsonl(gen, w)
        } else {
            generator::write_csv_with(gen, w, items)
        }
    };
    let gzip = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let written = || -> std::io::Result<u64> {
        if gzip {
            let mut w =
                flate2::write::GzEncoder::new(BufWriter::new(f), flate2::Compression::default());
            let n = write(&mut w)?;
            w.finish()?.into_inner().map_err(|e| e.into_error())?;
            Ok(n)
        } else {
            write(&mut BufWriter::new(f))
        }
    };
    let n = written().with_context(|| format!("cannot write {}", out.display()))?;
    Ok(n)
}
