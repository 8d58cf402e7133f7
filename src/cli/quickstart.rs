//! `persona quickstart`: the README's main job. Generates a demo data set with planted personas,
//! imports it with progress, and shows segments, model metrics and three example customers.

use super::import;
use crate::event::parse::Format;
use crate::generator::{Generator, GeneratorConfig};
use crate::Db;
use anyhow::Result;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Customers in the demo data set.
    #[arg(long, default_value_t = 5000, value_parser = super::at_least_one)]
    customers: u64,
    /// Events in the demo data set.
    #[arg(long, default_value_t = 100_000, value_parser = super::at_least_one)]
    events: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn run(db: &Db, args: &Args, data: &Path) -> Result<()> {
    let cfg = GeneratorConfig {
        customers: args.customers,
        events: args.events,
        seed: args.seed,
        ..GeneratorConfig::default()
    };
    if db.profile_count() > 0 {
        println!(
            "== {} already holds a store; showing it (use another --data directory, or delete \
             this one, to start over)",
            data.display()
        );
        return show(db, &cfg, args.customers);
    }
    let file = data.join("quickstart-events.csv");
    println!(
        "== generating {} events for {} customers (seed {}) into {}",
        args.events,
        args.customers,
        args.seed,
        file.display()
    );
    super::generate::write_events(&cfg, &file, false)?;
    println!("== importing into {}", data.display());
    let input = import::Input::open(&file, Some(Format::Csv))?;
    let listings = import::Listings {
        rejects: &data.join(crate::storage::reports::REJECTS),
        duplicates: &data.join(crate::storage::reports::DUPLICATES),
    };
    let summary = import::import(Some(db), input, &listings, true)?;
    let mut summary = summary;
    summary.resegmented = import::resegment_after(db, &summary, true)?;
    import::print_summary(&summary);
    println!();
    show(db, &cfg, args.customers)
}

/// Prints segments, model metrics and three example customers of different planted personas.
fn show(db: &Db, cfg: &GeneratorConfig, customers: u64) -> Result<()> {
    println!("== segments");
    super::inspect::print_segments(&db.segments()?, db.model().watermark_ms);
    println!();
    println!("== model");
    super::inspect::print_model(&db.model_info());
    println!();
    println!("== three example customers");
    let gen = Generator::new(cfg.clone())?;
    let mut shown = Vec::new();
    for i in 0..customers {
        let persona = gen.persona_of(i);
        if shown.iter().any(|(p, _)| *p == persona) {
            continue;
        }
        let id = format!("c{i:06}");
        if let Some(p) = db.profile(&id)? {
            shown.push((persona, p));
        }
        if shown.len() == 3 {
            break;
        }
    }
    for (persona, p) in shown {
        println!("-- {} (planted persona: {persona})", p.customer_id);
        super::inspect::print_profile(&p, db);
        println!();
    }
    println!("try: cargo run --release -- profile c000001 --json");
    Ok(())
}
