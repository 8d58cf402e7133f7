//! `persona triggers list | add | del | tail | ack`: define triggers at run time, list them,
//! read the firings the writer put in the store's outbox (`src/triggers/`), and keep a
//! consumer's position in it.
//!
//! The CLI opens the store for one command and closes it, so two numbers differ from
//! `TRIGGER.LIST` on a running server: `list`'s `fired` counts the firings the outbox holds
//! under each trigger's name (not those since the store was opened, which in this process are
//! none), and `suppressed` is unknown (suppressions are counted in memory by the process that
//! writes, never stored). For the same reason there is no `tail --follow`: while this process
//! holds the store no other can write to it, so nothing new would arrive; a consumer polls a
//! running server (`TRIGGER.READ SINCE id`) or calls `Db::read_triggers` in-process.

use super::{count_parser, format_ms, load_config, open_db, print_json, Open, Usage};
use crate::storage::triggers::MAX_READ;
use crate::{Db, Error, Fired, Trigger, TriggerInfo};
use anyhow::Result;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// `persona triggers …`: one of the subcommands below.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

/// The `triggers` subcommands.
#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// List the triggers (the config file's, given with --config, then those added at run
    /// time) with their definitions and how often each fired.
    List(ListArgs),
    /// Define a trigger, stored with the store: NAME WHEN CONDITION [ACTION a] [COOLDOWN days].
    ///
    /// Conditions (each fires when the customer's profile crosses into it with an event):
    /// SEGMENT_ENTER id, SEGMENT_LEAVE id, PROPENSITY_ABOVE x, PROPENSITY_BELOW x (0 < x < 1),
    /// FIRST_PURCHASE, SPEND_ABOVE amount (> 0). ACTION names one of the store's strategy
    /// actions; COOLDOWN is the days (0 to 3650, default 1) before it fires again for the same
    /// customer. Example: persona triggers add likely WHEN PROPENSITY_ABOVE 0.7 ACTION vip_offer
    /// COOLDOWN 7
    Add(AddArgs),
    /// Delete a trigger defined at run time (one from the config file is removed there); its
    /// firings stay in the outbox.
    Del(DelArgs),
    /// Print the firings with ids above --since (or after a consumer's position), oldest
    /// first.
    ///
    /// A job run from cron reads what is new each time with `--consumer NAME --ack`: it prints
    /// the firings after NAME's position, then moves the position past them. There is no
    /// --follow: while this command holds the store no other process can write to it, so
    /// nothing new would arrive. To follow firings as they are committed, poll a running
    /// server (`TRIGGER.READ CONSUMER name BLOCK ms`, see docs/protocol.md) or call
    /// `Db::follow_triggers` in the process that writes.
    Tail(TailArgs),
    /// Acknowledge a consumer's firings up to ID: its position moves there (never back), and
    /// `tail --consumer NAME` and `TRIGGER.READ CONSUMER NAME` resume after it.
    Ack(AckArgs),
}

/// `persona triggers ack CONSUMER ID`.
#[derive(Debug, clap::Args)]
pub struct AckArgs {
    /// The consumer's name: 1 to 64 ASCII letters, digits, '_', '-' or '.'.
    consumer: String,
    /// The id of the last firing it processed.
    id: u64,
}

/// `persona triggers list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON: an array of {name, definition, source, fired, suppressed}.
    #[arg(long)]
    json: bool,
}

/// `persona triggers add NAME WHEN …`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The trigger's name: 1 to 64 ASCII letters, digits, '_', '-' or '.'.
    name: String,
    /// The definition: WHEN (in any case), the condition's words, then optionally ACTION a and
    /// COOLDOWN days.
    #[arg(
        required = true,
        value_name = "WHEN CONDITION",
        allow_negative_numbers = true
    )]
    definition: Vec<String>,
}

/// `persona triggers del NAME`.
#[derive(Debug, clap::Args)]
pub struct DelArgs {
    /// The trigger's name.
    name: String,
}

/// `persona triggers tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Print the firings after this id (the last one a consumer processed; 0: from the oldest
    /// the outbox holds).
    #[arg(
        long,
        default_value_t = 0,
        value_name = "ID",
        conflicts_with = "consumer"
    )]
    since: u64,
    /// Print the firings after this consumer's position (from the oldest if it never
    /// acknowledged any).
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,
    /// Once the firings are printed, move the consumer's position past them.
    #[arg(long, requires = "consumer")]
    ack: bool,
    /// How many firings at most (1 to 10000, as the server's `TRIGGER.READ … COUNT`).
    #[arg(long, default_value_t = 100, value_parser = count_parser(MAX_READ as u64))]
    count: usize,
    /// Print JSON Lines: one firing per line with id, trigger, customer, time_ms, reason,
    /// action, expected_conversion, segment and propensity (null where unknown).
    #[arg(long)]
    json: bool,
}

/// Runs a `triggers` subcommand on the store at `data` (with the configuration file `config`,
/// where `[[triggers]]` are defined).
///
/// # Errors
/// Exit 2 (a [`Usage`] error) for a definition that does not parse, a missing `WHEN`, or no
/// store at `data` (every subcommand but `add`, which creates one); exit 1 for a name that is
/// taken or not a run-time trigger, and for what the store reports.
pub fn run(a: &Args, data: &PathBuf, config: Option<&PathBuf>) -> Result<()> {
    let existing = || open_db(data, config, Open::Existing);
    match &a.command {
        Sub::List(a) => list(&existing()?, a),
        Sub::Add(a) => {
            // Checked before the store is opened, so that a bad definition creates nothing.
            let cfg = load_config(data, config)?;
            let words = condition_words(a)?;
            Trigger::parse(&a.name, &words, cfg.model.segments, &cfg.actions).map_err(Usage)?;
            add(&open_db(data, config, Open::OrCreate)?, &a.name, &words)
        }
        Sub::Del(a) => {
            crate::triggers::check_name(&a.name).map_err(Usage)?;
            del(&existing()?, &a.name)
        }
        Sub::Tail(a) => {
            if let Some(c) = &a.consumer {
                crate::triggers::check_consumer(c).map_err(Usage)?;
            }
            tail(&existing()?, a)
        }
        Sub::Ack(a) => {
            crate::triggers::check_consumer(&a.consumer).map_err(Usage)?;
            let at = existing()?.trigger_ack(&a.consumer, a.id)?;
            eprintln!("consumer {} is at firing {at}", a.consumer);
            Ok(())
        }
    }
}

/// The definition's words after the `WHEN` keyword, which is required as on the wire.
fn condition_words(a: &AddArgs) -> Result<Vec<&str>, Usage> {
    let (first, rest) = a.definition.split_first().ok_or_else(|| {
        Usage(format!(
            "trigger {}: WHEN and a condition are missing",
            a.name
        ))
    })?;
    if !first.eq_ignore_ascii_case("WHEN") {
        return Err(Usage(format!(
            "trigger {}: expected WHEN after the name, got {first:?} \
             (persona triggers add NAME WHEN CONDITION [ACTION a] [COOLDOWN days])",
            a.name
        )));
    }
    Ok(rest.iter().map(String::as_str).collect())
}

/// What a refused request says, without the library's `invalid argument name:` prefix (the
/// reason names the trigger already).
fn refused(e: Error) -> anyhow::Error {
    match e {
        Error::InvalidArgument { reason, .. } => anyhow::anyhow!(reason),
        e => e.into(),
    }
}

/// Defines the trigger and prints its stored definition.
fn add(db: &Db, name: &str, words: &[&str]) -> Result<()> {
    let t = db.trigger_add(name, words).map_err(refused)?;
    println!("{}", t.describe());
    Ok(())
}

/// Deletes a run-time trigger.
fn del(db: &Db, name: &str) -> Result<()> {
    db.trigger_del(name).map_err(refused)?;
    println!("deleted trigger {name}");
    Ok(())
}

/// The definition without the leading name: `WHEN … COOLDOWN d`.
fn definition_words(t: &Trigger) -> String {
    let full = t.describe();
    full.strip_prefix(&t.name)
        .map_or(full.clone(), |s| s.trim_start().to_string())
}

/// Firings per trigger name in the outbox, read in pages from the oldest.
fn outbox_counts(db: &Db) -> Result<HashMap<String, u64>> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut since = 0;
    loop {
        let page = db.outbox(since, MAX_READ)?;
        for f in &page {
            *counts.entry(f.trigger.clone()).or_default() += 1;
        }
        match page.last() {
            Some(last) if page.len() == MAX_READ => since = last.id,
            _ => return Ok(counts),
        }
    }
}

/// Prints every trigger with its source and its firings in the outbox.
fn list(db: &Db, a: &ListArgs) -> Result<()> {
    let triggers = db.triggers();
    let counts = outbox_counts(db)?;
    let fired = |t: &TriggerInfo| counts.get(&t.trigger.name).copied().unwrap_or(0);
    let source = |t: &TriggerInfo| if t.from_config { "config" } else { "runtime" };
    if a.json {
        let rows: Vec<serde_json::Value> = triggers
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.trigger.name,
                    "definition": t.trigger.describe(),
                    "source": source(t),
                    "fired": fired(t),
                    // Counted only by the process that writes (a running server's TRIGGER.LIST).
                    "suppressed": null,
                })
            })
            .collect();
        return print_json(&serde_json::Value::Array(rows));
    }
    if triggers.is_empty() {
        println!(
            "no triggers: add one with `persona triggers add NAME WHEN CONDITION`, or define \
             [[triggers]] in the file given with --config"
        );
        return Ok(());
    }
    let defs: Vec<String> = triggers
        .iter()
        .map(|t| definition_words(&t.trigger))
        .collect();
    let name_w = triggers
        .iter()
        .map(|t| t.trigger.name.len())
        .chain([4])
        .max()
        .unwrap_or(4);
    let def_w = defs.iter().map(String::len).chain([10]).max().unwrap_or(10);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<name_w$}  {:<def_w$}  {:<7}  {:>8}  {:>10}",
        "name", "definition", "source", "fired", "suppressed"
    )?;
    for (t, def) in triggers.iter().zip(&defs) {
        writeln!(
            out,
            "{:<name_w$}  {:<def_w$}  {:<7}  {:>8}  {:>10}",
            t.trigger.name,
            def,
            source(t),
            fired(t),
            "-"
        )?;
    }
    writeln!(
        out,
        "fired: firings in the outbox; suppressed: counted by a running server (TRIGGER.LIST)"
    )?;
    for (name, at) in db.trigger_consumers()? {
        writeln!(out, "consumer {name}: acknowledged up to firing {at}")?;
    }
    Ok(())
}

/// One firing as a line: id, time, trigger, customer, reason, action, tab-separated.
fn line(f: &Fired) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        f.id,
        format_ms(f.time_ms),
        f.trigger,
        f.customer,
        f.reason,
        f.action.as_deref().unwrap_or("-")
    )
}

/// Prints up to `--count` firings after `--since` or the consumer's position, oldest first;
/// with `--ack`, then moves the position past them.
fn tail(db: &Db, a: &TailArgs) -> Result<()> {
    let since = match &a.consumer {
        Some(c) => db.trigger_position(c)?.unwrap_or(0),
        None => a.since,
    };
    let page = db.read_trigger_page(since, a.count)?;
    let fired = page.fired;
    let mut out = std::io::stdout().lock();
    for f in &fired {
        if a.json {
            writeln!(out, "{}", serde_json::to_string(f)?)?;
        } else {
            writeln!(out, "{}", line(f))?;
        }
    }
    out.flush()?;
    drop(out);
    // Past what was printed, and past firings no one may act on (consent withdrawn since).
    if let (Some(c), true) = (&a.consumer, a.ack) {
        if page.through > since {
            db.trigger_ack(c, page.through)?;
        }
    }
    if !a.json {
        let again = match (&a.consumer, a.ack) {
            (Some(c), true) => format!("--consumer {c} --ack"),
            _ => format!("--since {}", page.through),
        };
        match fired.last() {
            None => eprintln!("no firings after id {since}"),
            Some(_) if fired.len() == a.count => {
                eprintln!("more may follow: persona triggers tail {again}")
            }
            Some(_) => {}
        }
    }
    Ok(())
}
