//! Argument parsing and dispatch; one file per subcommand.

mod bench;
mod check;
mod cluster;
mod compact;
mod consent;
mod evaluate;
mod export;
mod generate;
mod import;
mod ingest_stream;
mod inspect;
mod key;
mod maintain;
mod privacy;
mod query;
mod quickstart;
mod report;
mod serve;
mod triggers;

use crate::{Config, Db};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Persona: an embedded customer-profile database with online models.
#[derive(Debug, Parser)]
#[command(name = "persona", version, about, long_about = None)]
pub struct Cli {
    /// Data directory of the store.
    #[arg(
        long,
        global = true,
        default_value = "./persona-data",
        value_name = "DIR"
    )]
    data: PathBuf,
    /// TOML configuration file (see README for the keys).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a synthetic event file with planted customer personas.
    Generate(generate::Args),
    /// Import events from a CSV or JSON Lines file.
    Import(import::Args),
    /// Backtest the propensity model and segments on an event log against baselines
    /// (replays it into a scratch store; --data is not used).
    Evaluate(evaluate::Args),
    /// Show one customer's profile.
    Profile(inspect::ProfileArgs),
    /// Show every segment with its size and description.
    Segments(inspect::JsonArgs),
    /// Show model metrics, list snapshots, snapshot or roll back the model.
    Model(maintain::ModelArgs),
    /// Find the customers most similar to one (lookalikes).
    Similar(query::SimilarArgs),
    /// Show a customer's propensity and the features behind it.
    Score(query::IdArgs),
    /// Recommend a marketing action for a customer.
    Strategy(query::StrategyArgs),
    /// What to offer a customer next: items (or categories) with a reason each.
    Recommend(query::RecommendArgs),
    /// Record whether an action converted.
    Feedback(query::FeedbackArgs),
    /// Show a customer's recent profile versions.
    History(query::HistoryArgs),
    /// Re-assign every profile to its nearest segment as of now.
    Resegment(maintain::ResegmentArgs),
    /// Export profiles or segments as CSV or JSON Lines.
    Export(export::Args),
    /// Draw the segments (sizes and a PCA map of customers) as an SVG, with the table on stdout.
    Report(report::Args),
    /// Generate a demo data set, import it, and show segments, metrics and example customers.
    Quickstart(quickstart::Args),
    /// Erase every trace of a customer (profile, history, dedupe ids, segment membership).
    Erase(privacy::EraseArgs),
    /// Show or set a customer's consent to profiling and to marketing, or set many from a CSV
    /// file.
    Consent(consent::Args),
    /// Print everything held about one customer as a JSON document.
    ExportCustomer(privacy::ExportArgs),
    /// Erase every profile with no event for longer than the retention period.
    Purge(privacy::PurgeArgs),
    /// Serve the store over the Redis protocol (RESP2/RESP3); see docs/protocol.md.
    Serve(serve::Args),
    /// Verify a store offline without changing it; exit 1 if problems are found.
    Check(check::Args),
    /// A cluster's state: members, partitions, the map's epoch (feature `cluster`).
    Cluster(cluster::Args),
    /// Define triggers, list them, and read their firings from the store's outbox.
    Triggers(triggers::Args),
    /// Manage an encrypted store's key: `persona key rotate`.
    Key(key::Args),
    /// Rewrite a closed store with one copy of every live key (reclaims the disk space sled's
    /// log keeps for superseded record versions); the old files are swapped out atomically.
    Compact(compact::Args),
    /// Ingest JSON Lines from stdin, printing each event once acknowledged (docs/testing.md).
    #[command(hide = true)]
    IngestStream(ingest_stream::Args),
    /// Benchmark ingest against raw sled and queries (or, with --server, the RESP server
    /// against redis-server) in one run; see docs/benchmarks.md.
    Bench(bench::Args),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let open = || open_db(&cli.data, cli.config.as_ref(), Open::OrCreate);
    // Commands that only read never create a store: a mistyped --data is reported instead.
    let read = || open_db(&cli.data, cli.config.as_ref(), Open::Existing);
    match &cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Import(a) => import::run(&open, a, &cli.data),
        Command::Evaluate(a) => evaluate::run(a, cli.config.as_ref()),
        Command::Profile(a) => inspect::profile(&read()?, a),
        Command::Segments(a) => inspect::segments(&read()?, a),
        Command::Model(a) => maintain::model(&read()?, a),
        Command::Similar(a) => query::similar(&read()?, a),
        Command::Score(a) => query::score(&read()?, a),
        Command::Strategy(a) => query::strategy(&read()?, a),
        Command::Recommend(a) => query::recommend(&read()?, a),
        Command::Feedback(a) => query::feedback(&open()?, a),
        Command::History(a) => query::history(&read()?, a),
        Command::Resegment(a) => maintain::resegment(&open()?, a),
        Command::Export(a) => export::run(&read()?, a),
        Command::Report(a) => report::run(&read()?, a),
        Command::Quickstart(a) => quickstart::run(&open()?, a, &cli.data),
        Command::Erase(a) => privacy::erase(&open()?, a),
        Command::Consent(a) => consent::run(&open, &read, a),
        Command::ExportCustomer(a) => privacy::export_customer(&read()?, a),
        Command::Purge(a) => privacy::purge(&open()?, a),
        Command::Serve(a) => {
            let mut config = serve::server_config(a, cli.config.as_ref())?;
            // Joined first, so that a cluster that refuses this node leaves no store behind.
            // `node` lives until the server stops; dropping it leaves the cluster (its
            // partitions move at once).
            let node = serve::join_cluster(&a.cluster, &cli.data, &mut config)?;
            let db = open()?;
            serve::attach(node.as_ref(), &db)?;
            serve::run(db, config)
        }
        Command::Cluster(a) => cluster::run(a),
        Command::Triggers(a) => triggers::run(a, &cli.data, cli.config.as_ref()),
        Command::Check(a) => check::run(&load_config(&cli.data, cli.config.as_ref())?, a),
        Command::Key(a) => key::run(&load_config(&cli.data, cli.config.as_ref())?, a),
        Command::Compact(a) => {
            compact::run(&cli.data, &load_config(&cli.data, cli.config.as_ref())?, a)
        }
        Command::IngestStream(a) => ingest_stream::run(&open()?, a),
        Command::Bench(a) => bench::run(a, cli.config.as_ref()),
    }
}

/// A mistake in the command line or the configuration, found after clap parsed the arguments
/// (clap exits 2 for the ones it finds): exit 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// How the process exits after `e`: `None` when the error is a closed output pipe (a reader such
/// as `head` stopped reading, which is how pipelines end: exit 0 quietly), 2 for usage and
/// configuration errors, 1 for everything else.
pub fn exit_code(e: &anyhow::Error) -> Option<i32> {
    for cause in e.chain() {
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            match cause.downcast_ref::<crate::Error>() {
                Some(crate::Error::Io(io)) => Some(io),
                _ => None,
            }
        });
        if io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
            return None;
        }
        if let Some(csv::ErrorKind::Io(io)) = cause.downcast_ref::<csv::Error>().map(|e| e.kind()) {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return None;
            }
        }
        if cause.is::<Usage>()
            || matches!(
                cause.downcast_ref::<crate::Error>(),
                Some(
                    crate::Error::Config(_)
                        | crate::Error::Key(_)
                        | crate::Error::ConfigMismatch { .. }
                        | crate::Error::NoStore { .. }
                )
            )
        {
            return Some(2);
        }
    }
    Some(1)
}

fn load_config(data: &PathBuf, config: Option<&PathBuf>) -> Result<Config> {
    Ok(match config {
        Some(file) => Config::from_toml_file(data, file)?,
        None => Config::new(data),
    })
}

/// Whether a command may create the store it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Create the store if there is none (commands that write).
    OrCreate,
    /// Refuse a directory without a store (commands that only read).
    Existing,
}

fn open_db(data: &PathBuf, config: Option<&PathBuf>, open: Open) -> Result<Db> {
    let cfg = load_config(data, config)?;
    if open == Open::Existing {
        crate::storage::require_store(data)?;
    }
    match Db::open_with(cfg) {
        Ok(db) => Ok(db),
        Err(crate::Error::Locked { path }) => Err(anyhow::anyhow!(
            "the store at {path} is open in another process (a running `persona serve`?); \
             query the running server instead: redis-cli -p PORT PROFILE.GET id"
        )),
        // These name the store already.
        Err(e @ (crate::Error::Config(_) | crate::Error::ConfigMismatch { .. })) => Err(e.into()),
        Err(e) => Err(e).with_context(|| format!("cannot open store at {}", data.display())),
    }
}

/// A clap parser for a count from 1 to `max`: 0 is refused as the server refuses `COUNT 0`.
fn count_parser(max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=max)
}

/// A clap parser for a size that must be at least 1 (customers, events).
fn at_least_one(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("must be a whole number of at least 1 ({e})")),
    }
}

/// A clap parser for a time: unix milliseconds or an RFC 3339 date-time, as in event files.
fn time_arg(s: &str) -> Result<i64, String> {
    crate::event::parse::parse_timestamp(s).map_err(|e| e.to_string())
}

/// Formats unix milliseconds as an RFC 3339 date-time (UTC).
fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Prints a JSON value on stdout.
fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
