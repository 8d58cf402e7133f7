//! `persona similar | score | strategy | feedback | history`: the questions a marketer asks.

use super::{count_parser, format_ms, print_json};
use crate::Db;
use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct SimilarArgs {
    /// Customer id.
    id: String,
    /// How many lookalikes (1 to 1000, as the server's `SIMILAR … COUNT`).
    #[arg(short, long, default_value_t = 10, value_parser = count_parser(1000))]
    k: usize,
    /// Scan every profile instead of the nearest segments' members.
    #[arg(long)]
    exact: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn similar(db: &Db, a: &SimilarArgs) -> Result<()> {
    let Some(list) = db.similar(
        &a.id,
        a.k,
        if a.exact {
            crate::Search::Exact
        } else {
            crate::Search::Probe
        },
    )?
    else {
        bail!("no profile for customer {:?}", a.id);
    };
    if a.json {
        return print_json(&serde_json::to_value(&list)?);
    }
    println!("{:>4}  {:<24} {:>9}", "rank", "customer", "distance");
    for (i, s) in list.iter().enumerate() {
        println!("{:>4}  {:<24} {:>9.3}", i + 1, s.customer_id, s.distance);
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// Customer id.
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn score(db: &Db, a: &IdArgs) -> Result<()> {
    let Some(s) = db.score(&a.id)? else {
        bail!("no profile for customer {:?}", a.id);
    };
    if a.json {
        return print_json(&serde_json::to_value(&s)?);
    }
    println!(
        "{}: propensity {:.3} as of {} (model version {})",
        s.customer_id,
        s.propensity,
        format_ms(s.as_of_ms),
        s.model_version
    );
    println!("why (contribution to the log-odds; bias {:+.3}):", s.bias);
    for c in &s.top {
        let layout = db.layout();
        let unit = layout.name_list().iter().position(|n| *n == c.feature);
        let missing = if c.unit == "days" { "never" } else { "-" };
        let raw = match unit {
            Some(i) => layout.unit(i).format(c.raw_value, missing),
            None => missing.to_string(),
        };
        println!(
            "  {:<22} {:+8.3}   value {:>16}  (model {:.3}, {:+.2} sd)",
            c.feature, c.contribution, raw, c.value, c.z
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct RecommendArgs {
    /// Customer id (an unknown one gets the popular items).
    id: String,
    /// How many suggestions (1 to 100).
    #[arg(short = 'n', long, default_value_t = 10)]
    count: usize,
    /// Leave out what the customer bought: only what is new to them.
    #[arg(long)]
    exclude_purchased: bool,
    /// Recommend categories instead of items.
    #[arg(long)]
    categories: bool,
    /// Print JSON: {"customer_id", "recommendations": [{"item" (or "category"), "score",
    /// "reason"}]}.
    #[arg(long)]
    json: bool,
}

pub fn recommend(db: &Db, a: &RecommendArgs) -> Result<()> {
    let mut options = crate::RecommendOptions::default();
    if a.exclude_purchased {
        options = options.exclude_purchased();
    }
    if a.categories {
        options = options.categories();
    }
    let list = db.recommend(&a.id, a.count, options)?;
    let key = if a.categories { "category" } else { "item" };
    if a.json {
        let recs: Vec<serde_json::Value> = list
            .iter()
            .map(|s| serde_json::json!({key: s.name, "score": s.score, "reason": s.reason}))
            .collect();
        return print_json(&serde_json::json!({"customer_id": a.id, "recommendations": recs}));
    }
    if list.is_empty() {
        println!("nothing to recommend yet: no event has named {key}s");
    }
    for (i, s) in list.iter().enumerate() {
        println!("{:>3}. {:<24} {:.3}  {}", i + 1, s.name, s.score, s.reason);
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct StrategyArgs {
    /// Customer id.
    id: String,
    /// The current best action, without exploration.
    #[arg(long)]
    greedy: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn strategy(db: &Db, a: &StrategyArgs) -> Result<()> {
    let Some(r) = db.strategy(
        &a.id,
        if a.greedy {
            crate::Choice::Greedy
        } else {
            crate::Choice::Sample
        },
    )?
    else {
        bail!("no profile for customer {:?}", a.id);
    };
    if a.json {
        return print_json(&serde_json::to_value(&r)?);
    }
    println!(
        "{}: {} (expected conversion {:.1}%)",
        r.customer_id,
        r.action,
        r.expected_conversion * 100.0
    );
    println!("segment {}: {}", r.segment, r.segment_label);
    println!("why: {}", r.reason);
    if !r.suggestions.is_empty() {
        let names: Vec<&str> = r.suggestions.iter().map(|s| s.name.as_str()).collect();
        println!("offer: {}", names.join(", "));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct FeedbackArgs {
    /// Customer id.
    id: String,
    /// The action that was taken.
    action: String,
    /// The customer converted.
    #[arg(
        long,
        conflicts_with = "not_converted",
        required_unless_present = "not_converted"
    )]
    converted: bool,
    /// The customer did not convert.
    #[arg(long)]
    not_converted: bool,
    /// Idempotency key: a repeated id is recorded once.
    #[arg(long)]
    feedback_id: Option<String>,
    /// Attribute the outcome to this segment (default: the customer's segment now).
    #[arg(long)]
    segment: Option<u16>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn feedback(db: &Db, a: &FeedbackArgs) -> Result<()> {
    let ack = db.feedback(
        crate::Feedback::new(&a.id, &a.action, a.converted)
            .with_id(a.feedback_id.as_deref())
            .with_segment(a.segment),
    )?;
    if a.json {
        return print_json(&serde_json::to_value(ack)?);
    }
    if ack.duplicate {
        println!("duplicate feedback id: nothing recorded");
    } else {
        println!(
            "recorded: {} {} for segment {}",
            a.action,
            if a.converted {
                "converted"
            } else {
                "did not convert"
            },
            ack.segment.map_or("-".into(), |s| s.to_string())
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Customer id.
    id: String,
    /// How many versions, newest first (1 to 10000, as the server's `PROFILE.HISTORY … COUNT`).
    #[arg(short, default_value_t = 10, value_parser = count_parser(10_000))]
    n: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn history(db: &Db, a: &HistoryArgs) -> Result<()> {
    let Some(items) = db.history(&a.id, a.n)? else {
        bail!("no profile for customer {:?}", a.id);
    };
    if a.json {
        return print_json(&serde_json::to_value(&items)?);
    }
    println!(
        "{:>7}  {:<10} {:<10} {:<20} {:>10} {:>4} {:>10}",
        "version", "change", "kind", "time", "value", "seg", "propensity"
    );
    for h in &items {
        println!(
            "{:>7}  {:<10} {:<10} {:<20} {:>10} {:>4} {:>10.3}",
            h.version,
            h.change,
            h.kind.clone().unwrap_or_else(|| h.attributes.join(",")),
            h.timestamp_ms.map(format_ms).unwrap_or_default(),
            h.value.map(|v| format!("{v:.2}")).unwrap_or_default(),
            h.segment.map_or("-".into(), |s| s.to_string()),
            h.propensity
        );
    }
    Ok(())
}
