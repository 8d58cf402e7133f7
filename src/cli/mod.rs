//! Argument parsing and dispatch; one file per subcommand.

mod bench;
mod check;
mod compact;
mod evaluate;
mod export;
mod generate;
mod import;
mod ingest_stream;
mod inspect;
mod maintain;
mod privacy;
mod query;
mod quickstart;
mod report;
mod serve;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use persona::{Config, Db};
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
    /// Print everything held about one customer as a JSON document.
    ExportCustomer(privacy::ExportArgs),
    /// Erase every profile with no event for longer than the retention period.
    Purge(privacy::PurgeArgs),
    /// Serve the store over the Redis protocol (RESP2/RESP3); see docs/protocol.md.
    Serve(serve::Args),
    /// Verify a store offline without changing it; exit 1 if problems are found.
    Check(check::Args),
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
    let open = || open_db(&cli.data, cli.config.as_ref());
    match &cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Import(a) => import::run(&open()?, a, &cli.data),
        Command::Evaluate(a) => evaluate::run(a, cli.config.as_ref()),
        Command::Profile(a) => inspect::profile(&open()?, a),
        Command::Segments(a) => inspect::segments(&open()?, a),
        Command::Model(a) => maintain::model(&open()?, a),
        Command::Similar(a) => query::similar(&open()?, a),
        Command::Score(a) => query::score(&open()?, a),
        Command::Strategy(a) => query::strategy(&open()?, a),
        Command::Feedback(a) => query::feedback(&open()?, a),
        Command::History(a) => query::history(&open()?, a),
        Command::Resegment(a) => maintain::resegment(&open()?, a),
        Command::Export(a) => export::run(&open()?, a),
        Command::Report(a) => report::run(&open()?, a),
        Command::Quickstart(a) => quickstart::run(&open()?, a, &cli.data),
        Command::Erase(a) => privacy::erase(&open()?, a),
        Command::ExportCustomer(a) => privacy::export_customer(&open()?, a),
        Command::Purge(a) => privacy::purge(&open()?, a),
        Command::Serve(a) => {
            let config = serve::server_config(a, cli.config.as_ref())?;
            serve::run(open()?, config)
        }
        Command::Check(a) => check::run(&cli.data, a),
        Command::Compact(a) => {
            compact::run(&cli.data, &load_config(&cli.data, cli.config.as_ref())?, a)
        }
        Command::IngestStream(a) => ingest_stream::run(&open()?, a),
        Command::Bench(a) => bench::run(a, cli.config.as_ref()),
    }
}

fn load_config(data: &PathBuf, config: Option<&PathBuf>) -> Result<Config> {
    Ok(match config {
        Some(file) => Config::from_toml_file(data, file)?,
        None => Config::new(data),
    })
}

fn open_db(data: &PathBuf, config: Option<&PathBuf>) -> Result<Db> {
    let cfg = load_config(data, config)?;
    Db::open_with(cfg).with_context(|| format!("cannot open store at {}", data.display()))
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
