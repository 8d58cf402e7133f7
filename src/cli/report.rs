//! `persona report --out segments.svg`: a picture of the segments (sizes and a PCA map of
//! customers and centroids), plus the table on stdout.

use crate::query::report::{render_svg, text_table};
use crate::Db;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the SVG.
    #[arg(long, default_value = "segments.svg")]
    out: PathBuf,
    /// Customers sampled for the map.
    #[arg(long, default_value_t = 3000)]
    sample: usize,
}

pub fn run(db: &Db, a: &Args) -> Result<()> {
    let input = db.report_input(a.sample)?;
    let svg = render_svg(&input);
    std::fs::write(&a.out, svg).with_context(|| format!("cannot write {}", a.out.display()))?;
    print!("{}", text_table(&input));
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
