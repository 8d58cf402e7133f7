//! Embedding Persona in an application: open a store, ingest events, read a profile, find the
//! nearest segment and lookalikes, ask for the next action, record its outcome, close.
//!
//! ```sh
//! cargo run --example embed                       # a store in a temporary directory
//! cargo run --example embed -- /path/to/store     # or in a directory of your own
//! ```
//!
//! Only the engine is needed: this builds with `default-features = false` too
//! (`cargo run --example embed --no-default-features`).

use persona::{Choice, Config, Db, Event, EventKind, Feedback, Search, Target};

/// 1 January 2026, unix ms.
const T0: i64 = 1_767_225_600_000;
const DAY: i64 = 86_400_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let path = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| scratch.path().join("store"));

    // Open (or create) the store. Every setting has a default; `Config` holds them.
    let db = Db::open_with(Config::new(&path).segments(4))?;

    // Ingest: 300 customers over 60 days, in three styles of buying. Each call is one atomic,
    // durable write that updates the profile and trains the models; a batch shares one commit.
    let mut events = Vec::new();
    for c in 0..300i64 {
        let id = format!("c{c:03}");
        let (every, amount, category) = match c % 3 {
            0 => (3, 120.0, "electronics"), // frequent big spenders
            1 => (10, 25.0, "books"),       // occasional small baskets
            _ => (20, 8.0, "garden"),       // rare visitors
        };
        for day in (c % every..60).step_by(every as usize) {
            let at = T0 + day * DAY + c * 1000;
            events.push(Event::new(&id, at, EventKind::View).with_category(category));
            events.push(
                Event::new(&id, at + 60_000, EventKind::Purchase)
                    .with_value(amount)
                    .with_category(category),
            );
        }
    }
    for chunk in events.chunks(1000) {
        for ack in db.ingest_batch(chunk.to_vec())? {
            ack?; // each event is applied, or reported as a duplicate or a reject with its reason
        }
    }
    println!("ingested {} events", events.len());

    // A profile: features as of now, the segment and the purchase propensity.
    let profile = db.profile("c000")?.expect("c000 was ingested");
    println!(
        "c000: {} events, segment {:?}, propensity {:.2}",
        profile.event_count, profile.segment, profile.propensity
    );

    // The nearest segments of a customer, and their closest lookalikes.
    for s in db.nearest_segments(Target::Customer("c000"), 2)? {
        println!("  segment {} at distance {:.2}", s.segment, s.distance);
    }
    let similar = db.similar("c000", 3, Search::Probe)?.expect("c000 exists");
    for s in &similar {
        println!("  like {} (distance {:.2})", s.customer_id, s.distance);
    }

    // The next best action for a customer, then its outcome: the per-segment bandit learns it.
    let rec = db.strategy("c001", Choice::Sample)?.expect("c001 exists");
    println!(
        "c001: {} (expected conversion {:.2}; {})",
        rec.action, rec.expected_conversion, rec.reason
    );
    let ack = db.feedback(Feedback::new("c001", &rec.action, true).with_id("campaign-1/c001"))?;
    println!("feedback recorded at profile version {}", ack.version);

    // Close: waits for every write to be durable and stops the writer.
    db.close()?;
    Ok(())
}
