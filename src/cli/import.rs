//! `persona import FILE`: stream a CSV / JSON Lines file into the store.
//!
//! Parsing runs on its own thread and hands chunks of events to the store, so parsing overlaps
//! committing. Rejected rows do not stop the import: they are counted, the first few are printed,
//! and all of them are written to a rejects file.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use persona::event::parse::{EventReader, Format};
use persona::{Db, Error, Event};
use serde::Serialize;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Events handed to the store per call.
const CHUNK: usize = 4096;
/// Rejects printed in the summary.
const SHOWN_REJECTS: usize = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The events file (`-` for standard input).
    file: PathBuf,
    /// Input format; guessed from the file extension when omitted.
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Where to write every rejected row with its reason [default: DATA/rejects.txt].
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,
    /// Skip the refit + re-segmentation that follows an import that applied events.
    #[arg(long)]
    no_resegment: bool,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Events applied.
    pub applied: u64,
    /// Events recognised as already applied.
    pub duplicates: u64,
    /// Rows rejected as invalid.
    pub rejected: u64,
    /// Events whose commit failed (storage errors).
    pub failed: u64,
    /// The first rejects, with line and reason.
    pub first_rejects: Vec<String>,
    /// The file with all rejects (when there were any).
    pub rejects_file: Option<PathBuf>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Events processed per second.
    pub events_per_sec: f64,
    /// Profiles whose segment changed in the refit + re-segmentation after the import.
    pub resegmented: Option<usize>,
}

/// After a bulk load, refits the centroids on the profiles as they are now and re-assigns every
/// profile (online k-means follows the stream; this re-centres it on today's population).
/// Skipped when nothing was applied or the segments are not seeded yet.
pub fn resegment_after(db: &Db, s: &Summary, progress: bool) -> Result<Option<usize>> {
    if s.applied == 0 || !db.model_info().segments_seeded {
        return Ok(None);
    }
    if progress {
        eprintln!("refitting segments on {} profiles…", db.profile_count());
    }
    Ok(Some(db.resegment(1000, true)?.changed))
}

pub fn run(db: &Db, args: &Args, data: &Path) -> Result<()> {
    let format = match &args.format {
        Some(f) => Format::parse(f)?,
        None => Format::from_path(&args.file).with_context(|| {
            format!(
                "cannot tell the format of {} from its extension; pass --format csv or --format jsonl",
                args.file.display()
            )
        })?,
    };
    let rejects = args
        .rejects
        .clone()
        .unwrap_or_else(|| data.join("rejects.txt"));
    let (input, len): (Box<dyn Read + Send>, u64) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), 0)
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), len)
    };
    let mut summary = import(db, input, len, format, &rejects, !args.json)?;
    if !args.no_resegment {
        summary.resegmented = resegment_after(db, &summary, !args.json)?;
    }
    if args.json {
        super::print_json(&serde_json::to_value(&summary)?)?;
    } else {
        print_summary(&summary);
    }
    Ok(())
}

/// Imports `input`; shows a progress bar on a terminal when `progress` is set.
pub fn import(
    db: &Db,
    input: Box<dyn Read + Send>,
    len: u64,
    format: Format,
    rejects_path: &Path,
    progress: bool,
) -> Result<Summary> {
    let bar = if progress && len > 0 {
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta} left) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let reader = EventReader::new(bar.wrap_read(input), format)?;
    let start = Instant::now();
    let mut summary = Summary::default();
    let mut rejects: Option<BufWriter<std::fs::File>> = None;

    // Parse on a helper thread; commit chunks here.
    let (tx, rx) = crossbeam_channel::bounded::<Vec<persona::Result<Event>>>(4);
    let parser = std::thread::spawn(move || -> persona::Result<()> {
        let mut chunk = Vec::with_capacity(CHUNK);
        for item in reader {
            let io_error = matches!(item, Err(Error::Io(_)));
            chunk.push(item);
            if io_error {
                break;
            }
            if chunk.len() == CHUNK && tx.send(std::mem::take(&mut chunk)).is_err() {
                return Ok(());
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(chunk);
        }
        Ok(())
    });

    for chunk in rx {
        let mut events = Vec::with_capacity(chunk.len());
        for item in chunk {
            match item {
                Ok(e) => events.push(e),
                Err(Error::InvalidEvent(e)) => {
                    summary.rejected += 1;
                    let line = e.to_string();
                    if summary.first_rejects.len() < SHOWN_REJECTS {
                        summary.first_rejects.push(line.clone());
                    }
                    if rejects.is_none() {
                        let f = std::fs::File::create(rejects_path).with_context(|| {
                            format!("cannot create rejects file {}", rejects_path.display())
                        })?;
                        rejects = Some(BufWriter::new(f));
                        summary.rejects_file = Some(rejects_path.to_path_buf());
                    }
                    if let Some(w) = rejects.as_mut() {
                        writeln!(w, "{line}")?;
                    }
                }
                Err(e) => return Err(anyhow::Error::new(e).context("reading the input failed")),
            }
        }
        if events.is_empty() {
            continue;
        }
        for r in db.ingest_batch(events)? {
            match r {
                Ok(ack) if ack.duplicate => summary.duplicates += 1,
                Ok(_) => summary.applied += 1,
                Err(e) if e.is_bad_input() => summary.rejected += 1,
                Err(e) => {
                    summary.failed += 1;
                    if summary.failed == 1 {
                        tracing::error!("commit failed: {e}");
                    }
                }
            }
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{} events, {:.0}/s",
            summary.applied + summary.duplicates,
            (summary.applied + summary.duplicates) as f64 / secs
        ));
    }
    parser
        .join()
        .map_err(|_| anyhow::anyhow!("the parser thread panicked"))??;
    if let Some(mut w) = rejects {
        w.flush()?;
    }
    bar.finish_and_clear();
    summary.seconds = start.elapsed().as_secs_f64();
    summary.events_per_sec = (summary.applied + summary.duplicates + summary.rejected) as f64
        / summary.seconds.max(1e-9);
    if summary.failed > 0 {
        anyhow::bail!(
            "{} events could not be committed (see the log above); {} were applied",
            summary.failed,
            summary.applied
        );
    }
    Ok(summary)
}

pub fn print_summary(s: &Summary) {
    println!(
        "imported {} events ({} duplicates, {} rejected) in {:.2}s, {:.0} events/s",
        s.applied, s.duplicates, s.rejected, s.seconds, s.events_per_sec
    );
    if let Some(n) = s.resegmented {
        println!("segments refitted on the imported profiles; {n} profiles changed segment");
    }
    if s.rejected > 0 {
        println!("first rejects:");
        for r in &s.first_rejects {
            println!("  {r}");
        }
        if let Some(f) = &s.rejects_file {
            println!("all rejects were written to {}", f.display());
        }
    }
}
