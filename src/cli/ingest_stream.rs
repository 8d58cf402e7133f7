//! `persona ingest-stream` (hidden; a test and operations tool): reads JSON Lines events on
//! standard input, keeps up to `--in-flight` of them queued at the writer (so they share group
//! commits), and prints one line per event on standard output **once the event is
//! acknowledged**, i.e. committed and as durable as the store's `durability` promises:
//!
//! ```text
//! ok <event id> <version>     applied
//! dup <event id> <version>    already applied earlier: nothing changed
//! err <event id> <message>    refused or failed: nothing changed
//! bad <line> <message>        the input line is not a valid event
//! ```
//!
//! Each line is flushed as it is written, so a reader that sees `ok e17` knows `e17` survives
//! a crash of this process from then on (tests/crash.rs relies on that). Lines come out in
//! input order.

use crate::event::parse::{EventReader, Format};
use crate::{Db, Error, PendingWrite};
use anyhow::{Context, Result};
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events queued at the writer at once (more share one commit).
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    in_flight: u32,
}

/// What the printing thread waits for, in input order.
enum Outcome {
    Pending(String, PendingWrite),
    Done(String),
}

pub fn run(db: &Db, args: &Args) -> Result<()> {
    let (tx, rx) = crossbeam_channel::bounded::<Outcome>(args.in_flight as usize);
    let printer = std::thread::Builder::new()
        .name("persona-acks".into())
        .spawn(move || -> std::io::Result<()> {
            let mut out = std::io::stdout().lock();
            for outcome in rx {
                let line = match outcome {
                    Outcome::Pending(id, write) => match write.wait() {
                        Ok(ack) if ack.duplicate => format!("dup {id} {}", ack.version),
                        Ok(ack) => format!("ok {id} {}", ack.version),
                        Err(e) => format!("err {id} {e}"),
                    },
                    Outcome::Done(line) => line,
                };
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            Ok(())
        })
        .context("cannot start the acknowledgement thread")?;
    let reader = EventReader::new(std::io::stdin().lock(), Format::Jsonl)?;
    for (n, item) in reader.enumerate() {
        let outcome = match item {
            Ok(event) => {
                // The reader gave every row an id (its own or the row's hash).
                let id = event.event_id.clone().unwrap_or_else(|| event.row_id());
                match db.ingest_async(event) {
                    Ok(write) => Outcome::Pending(id, write),
                    Err(e) => Outcome::Done(format!("err {id} {e}")),
                }
            }
            Err(Error::InvalidEvent(e)) => Outcome::Done(format!("bad {} {e}", n + 1)),
            Err(e) => return Err(e).context("cannot read standard input"),
        };
        if tx.send(outcome).is_err() {
            break; // the printer stopped: stdout is gone
        }
    }
    drop(tx);
    match printer.join() {
        Ok(result) => result.context("cannot write acknowledgements to standard output")?,
        Err(_) => anyhow::bail!("the acknowledgement thread panicked"),
    }
    db.close()?;
    Ok(())
}
