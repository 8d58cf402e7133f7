//! `persona import FILE`: stream a CSV / JSON Lines file (optionally gzip-compressed) into the
//! store.
//!
//! Parsing runs on its own thread and hands chunks of events to the store, so parsing overlaps
//! committing. Rejected rows do not stop the import: they are counted, the first few are printed,
//! and all of them are written to a rejects file with their line and reason (rows the parser
//! refuses and events the store refuses, such as possible replays older than a customer's
//! de-duplication window). Rows already applied (the same `event_id`, or for a row without one
//! the same content) are duplicates: counted and listed with their line in a duplicates file,
//! never applied twice. With `--strict` the whole input is validated before anything is applied.

use crate::event::parse::{decompressed, EventReader, Format};
use crate::{Db, Error, Event};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Events handed to the store per call.
const CHUNK: usize = 4096;
/// Rejects (and duplicates) printed in the summary.
const SHOWN_REJECTS: usize = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The events file (`-` for standard input); gzip-compressed input (`.gz`) is read directly.
    file: PathBuf,
    /// Input format; guessed from the file extension (before any `.gz`) when omitted.
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Where to write every rejected row with its line and reason [default: DATA/rejects.txt].
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,
    /// Where to write every duplicate row (already applied) with its line
    /// [default: DATA/duplicates.txt].
    #[arg(long, value_name = "FILE")]
    duplicates: Option<PathBuf>,
    /// Validate the whole input first and apply nothing if any row is rejected (exit 1, the
    /// rejects listed).
    #[arg(long)]
    strict: bool,
    /// Skip the refit + re-segmentation that follows an import that applied events.
    #[arg(long)]
    no_resegment: bool,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Events applied.
    pub applied: u64,
    /// Events recognised as already applied (not applied again).
    pub duplicates: u64,
    /// Rows rejected: invalid, or refused by the store.
    pub rejected: u64,
    /// Events whose commit failed (storage errors).
    pub failed: u64,
    /// The first rejects, with line and reason.
    pub first_rejects: Vec<String>,
    /// The file with all rejects (when there were any).
    pub rejects_file: Option<PathBuf>,
    /// The first duplicates, with line.
    pub first_duplicates: Vec<String>,
    /// The file with all duplicates (when there were any).
    pub duplicates_file: Option<PathBuf>,
    /// Columns or fields of the input that are not event fields and were ignored.
    pub ignored_fields: Vec<String>,
    /// Whether the rows were only validated (`--strict` found rejects, so nothing was applied).
    pub validated_only: bool,
    /// Valid rows of an input that was only validated (not applied); 0 otherwise.
    pub valid: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Events processed per second.
    pub events_per_sec: f64,
    /// Profiles whose segment changed in the refit + re-segmentation after the import.
    pub resegmented: Option<usize>,
}

impl Summary {
    /// Rows read from the input (blank lines and a CSV header are not rows).
    pub fn rows(&self) -> u64 {
        self.applied + self.duplicates + self.rejected + self.failed + self.valid
    }
}

/// Where the listings of an import go.
pub struct Listings<'a> {
    /// Every rejected row.
    pub rejects: &'a Path,
    /// Every duplicate row.
    pub duplicates: &'a Path,
}

/// An event file (or standard input) to read.
pub struct Input {
    /// The bytes as stored (gzip is detected from them and decompressed while reading).
    pub reader: Box<dyn Read + Send>,
    /// Stored size in bytes, 0 when unknown (for the progress bar).
    pub len: u64,
    /// Its format.
    pub format: Format,
}

impl Input {
    /// Opens `path` (`-`: standard input) in `format`, or the format its name says.
    pub fn open(path: &Path, format: Option<Format>) -> Result<Input> {
        let format = match format {
            Some(f) => f,
            None => Format::from_path(path).with_context(|| {
                format!(
                    "cannot tell the format of {} from its extension; pass --format csv or \
                     --format jsonl",
                    path.display()
                )
            })?,
        };
        if path.as_os_str() == "-" {
            return Ok(Input {
                reader: Box::new(std::io::stdin()),
                len: 0,
                format,
            });
        }
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let meta = f
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            bail!("cannot import {}: it is a directory", path.display());
        }
        Ok(Input {
            reader: Box::new(f),
            len: meta.len(),
            format,
        })
    }
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
    Ok(Some(db.resegment(1000, crate::Centroids::Refit)?.changed))
}

pub fn run(open: &dyn Fn() -> Result<Db>, args: &Args, data: &Path) -> Result<()> {
    let format = args.format.as_deref().map(Format::parse).transpose()?;
    let rejects = args
        .rejects
        .clone()
        .unwrap_or_else(|| data.join(crate::storage::reports::REJECTS));
    let duplicates = args
        .duplicates
        .clone()
        .unwrap_or_else(|| data.join(crate::storage::reports::DUPLICATES));
    let listings = Listings {
        rejects: &rejects,
        duplicates: &duplicates,
    };
    // The input is opened before the store, so that a wrong path creates nothing.
    let mut input = Input::open(&args.file, format)?;
    let progress = !args.json;
    if args.strict {
        // Standard input can be read once: keep it to read it a second time.
        let stdin_copy = if args.file.as_os_str() == "-" {
            let mut bytes = Vec::new();
            input
                .reader
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            let bytes: Arc<[u8]> = bytes.into();
            input.reader = Box::new(std::io::Cursor::new(Arc::clone(&bytes)));
            Some(bytes)
        } else {
            None
        };
        let checked = import(None, input, &listings, progress)?;
        if checked.rejected > 0 {
            warn_ignored(&checked, &args.file);
            finish(&checked, args.json)?;
            bail!(
                "--strict: {} of {} rows rejected (listed in {}); nothing was applied",
                checked.rejected,
                checked.rows(),
                rejects.display()
            );
        }
        input = match stdin_copy {
            Some(bytes) => Input {
                reader: Box::new(std::io::Cursor::new(bytes)),
                len: 0,
                format: checked_format(format, &args.file)?,
            },
            None => Input::open(&args.file, format)?,
        };
    }
    let db = open()?;
    let mut summary = import(Some(&db), input, &listings, progress)?;
    if !args.no_resegment {
        summary.resegmented = resegment_after(&db, &summary, progress)?;
    }
    warn_ignored(&summary, &args.file);
    finish(&summary, args.json)?;
    if summary.rows() > 0 && summary.applied == 0 && summary.duplicates == 0 {
        bail!(
            "nothing was imported: every one of the {} rows was rejected (listed in {})",
            summary.rows(),
            rejects.display()
        );
    }
    Ok(())
}

/// Names the columns or fields of the input that were ignored, once per import.
fn warn_ignored(summary: &Summary, file: &Path) {
    if summary.ignored_fields.is_empty() {
        return;
    }
    let names: Vec<String> = summary
        .ignored_fields
        .iter()
        .map(|n| format!("{n:?}"))
        .collect();
    tracing::warn!(
        "ignoring the columns or fields {} of {}: not event fields (event fields: event_id, \
         customer_id, timestamp, kind, value, category)",
        names.join(", "),
        file.display()
    );
}

fn checked_format(format: Option<Format>, path: &Path) -> Result<Format> {
    match format {
        Some(f) => Ok(f),
        None => Format::from_path(path).context("the format was checked when the input opened"),
    }
}

fn finish(summary: &Summary, json: bool) -> Result<()> {
    if json {
        super::print_json(&serde_json::to_value(summary)?)
    } else {
        print_summary(summary);
        Ok(())
    }
}

/// Rows of one kind (rejects or duplicates), written to a file created at the first one.
struct Listing<'a> {
    path: &'a Path,
    what: &'static str,
    file: Option<BufWriter<std::fs::File>>,
    count: u64,
    first: Vec<String>,
}

impl<'a> Listing<'a> {
    fn new(path: &'a Path, what: &'static str) -> Listing<'a> {
        Listing {
            path,
            what,
            file: None,
            count: 0,
            first: Vec::new(),
        }
    }

    fn add(&mut self, line: String) -> Result<()> {
        self.count += 1;
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // The default place is the data directory, which `--strict` may list rejects
                // into before any store exists: create it as the store would (owner-only).
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder
                    .create(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let f = std::fs::File::create(self.path).with_context(|| {
                format!("cannot create {} file {}", self.what, self.path.display())
            })?;
            self.file = Some(BufWriter::new(f));
        }
        if let Some(w) = self.file.as_mut() {
            writeln!(w, "{line}")
                .with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        if self.first.len() < SHOWN_REJECTS {
            self.first.push(line);
        }
        Ok(())
    }

    /// Flushes the file; returns (count, first rows, the file if one was written).
    fn finish(self) -> Result<(u64, Vec<String>, Option<PathBuf>)> {
        let written = match self.file {
            Some(mut w) => {
                w.flush()
                    .with_context(|| format!("cannot write {}", self.path.display()))?;
                Some(self.path.to_path_buf())
            }
            None => None,
        };
        Ok((self.count, self.first, written))
    }
}

/// Why a row was a duplicate.
fn duplicate_reason(line: u64, e: &Event) -> String {
    // The reader gives a row without an event_id its content hash (`Event::row_id`) as its id.
    let given = e.event_id.as_deref().filter(|id| *id != e.row_id());
    match given {
        Some(id) => format!(
            "line {line}: duplicate: event_id {id:?} of customer {:?} was already applied",
            e.customer_id
        ),
        None => format!(
            "line {line}: duplicate: an identical row of customer {:?} was already applied \
             (a row without an event_id is identified by its content)",
            e.customer_id
        ),
    }
}

/// Imports `input` into `db`, or with no `db` only validates it (parses every row, listing the
/// rejects). Shows a progress bar on a terminal when `progress` is set.
pub fn import(
    db: Option<&Db>,
    input: Input,
    listings: &Listings<'_>,
    progress: bool,
) -> Result<Summary> {
    let bar = if progress && input.len > 0 {
        let bar = ProgressBar::new(input.len);
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
    // The bar counts the bytes as stored; gzip is recognised by its magic number.
    let decoded = decompressed(bar.wrap_read(input.reader)).context("cannot read the input")?;
    let format = input.format;
    let start = Instant::now();
    let mut summary = Summary {
        validated_only: db.is_none(),
        ..Summary::default()
    };
    let mut rejects = Listing::new(listings.rejects, "rejects");
    let mut duplicates = Listing::new(listings.duplicates, "duplicates");

    // Parse on a helper thread; commit chunks here.
    type Row = (u64, crate::Result<Event>);
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Row>>(4);
    let parser = std::thread::spawn(move || -> crate::Result<Vec<String>> {
        let mut reader = EventReader::new(decoded, format)?;
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some(item) = reader.next() {
            let io_error = matches!(item, Err(Error::Io(_)));
            chunk.push((reader.line(), item));
            if io_error {
                break;
            }
            if chunk.len() == CHUNK && tx.send(std::mem::take(&mut chunk)).is_err() {
                break;
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(chunk);
        }
        Ok(reader.ignored_fields().to_vec())
    });

    for chunk in rx {
        let mut events = Vec::with_capacity(chunk.len());
        for (line, item) in chunk {
            match item {
                Ok(e) => events.push((line, e)),
                Err(Error::InvalidEvent(e)) => rejects.add(e.to_string())?,
                Err(e) => return Err(anyhow::Error::new(e).context("cannot read the input")),
            }
        }
        let Some(db) = db else {
            summary.valid += events.len() as u64;
            continue;
        };
        if events.is_empty() {
            continue;
        }
        let results = db.ingest_batch(events.iter().map(|(_, e)| e.clone()).collect())?;
        for ((line, e), r) in events.iter().zip(results) {
            match r {
                Ok(ack) if ack.duplicate => duplicates.add(duplicate_reason(*line, e))?,
                Ok(_) => summary.applied += 1,
                // Refused by the store, e.g. a possible replay older than the customer's
                // de-duplication window.
                // Named by customer, as a duplicate is: an erase finds the line
                // (`storage/reports.rs`).
                Err(err) if err.is_bad_input() => {
                    rejects.add(format!("line {line}: customer {:?}: {err}", e.customer_id))?
                }
                Err(err) => {
                    summary.failed += 1;
                    if summary.failed == 1 {
                        tracing::error!("commit of line {line} failed: {err}");
                    }
                }
            }
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let done = summary.applied + duplicates.count;
        bar.set_message(format!("{done} events, {:.0}/s", done as f64 / secs));
    }
    summary.ignored_fields = parser
        .join()
        .map_err(|_| anyhow::anyhow!("the parser thread panicked"))?
        .context("cannot read the input")?;
    (
        summary.rejected,
        summary.first_rejects,
        summary.rejects_file,
    ) = rejects.finish()?;
    (
        summary.duplicates,
        summary.first_duplicates,
        summary.duplicates_file,
    ) = duplicates.finish()?;
    bar.finish_and_clear();
    summary.seconds = start.elapsed().as_secs_f64();
    summary.events_per_sec = summary.rows() as f64 / summary.seconds.max(1e-9);
    if summary.failed > 0 {
        bail!(
            "{} events could not be committed (see the log above); {} were applied",
            summary.failed,
            summary.applied
        );
    }
    Ok(summary)
}

pub fn print_summary(s: &Summary) {
    if s.validated_only {
        println!(
            "validated {} rows ({} rejected) in {:.2}s; nothing was applied",
            s.rows(),
            s.rejected,
            s.seconds
        );
    } else {
        println!(
            "imported {} events ({} duplicates, {} rejected) in {:.2}s, {:.0} events/s",
            s.applied, s.duplicates, s.rejected, s.seconds, s.events_per_sec
        );
    }
    if let Some(n) = s.resegmented {
        println!("segments refitted on the imported profiles; {n} profiles changed segment");
    }
    for (title, first, file, n) in [
        ("rejects", &s.first_rejects, &s.rejects_file, s.rejected),
        (
            "duplicates (already applied, not applied again)",
            &s.first_duplicates,
            &s.duplicates_file,
            s.duplicates,
        ),
    ] {
        if n == 0 {
            continue;
        }
        println!("first {title}:");
        for r in first {
            println!("  {r}");
        }
        if let Some(f) = file {
            println!("all {n} are listed in {}", f.display());
        }
    }
}
