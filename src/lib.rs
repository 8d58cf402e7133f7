//! # Persona
//!
//! An embedded customer-profile database. For every customer Persona keeps a **profile**:
//! attributes you set (age, region, …) plus features derived from their events (recency,
//! frequency, spend, time-decayed activity per kind, category affinities). Every event updates
//! that profile **and trains the global models in the same atomic write**: a propensity model
//! ("will this customer buy within 30 days?"), k-means segments and a per-segment action bandit.
//!
//! Persona is not a general database, an analytics warehouse or a stream processor: it is the
//! small, durable, always-current customer model a product needs to act on customers in real
//! time, in one process, on one disk (sled).
//!
//! ## Module map
//! The write path reads top to bottom: event → features → models → one atomic commit → ack.
//!
//! | module | role |
//! |---|---|
//! | [`event`] | [`Event`], validation, CSV / JSON Lines parsing |
//! | [`features`] | profile accumulators and the feature-vector layout |
//! | [`model`] | online scaler, propensity (logistic regression), k-means, metrics |
//! | [`storage`] | sled key layout, versioned record codec, profile records |
//! | `pipeline` (internal) | the single writer and its apply and durability stages: batching, apply, commit, durability, acks |
//! | `index` (internal) | the lookalike index: kept by the writer after each commit, scanned by `Db::similar` |
//! | [`query`] | profiles as of now, model info, segment descriptions |
//! | `db` (internal) | [`Db`], the embedded facade, and its argument types (re-exported here) |
//! | [`server`] | the Redis-protocol (RESP) server behind `persona serve` |
//! | [`evaluate`] | `persona evaluate`: backtest of the propensity model and segments against baselines |
//! | `generator` | (feature `generator`) a synthetic workload with planted personas |
//! | `bench` | (feature `bench`) `persona bench`: ingest against a raw-sled baseline, query latencies, RESP runs |
//!
//! ## Cargo features
//! - `cli` (default): the `persona` binary, with the `bench` and `generator` modules and the
//!   command line's dependencies (clap, indicatif, mimalloc, signal-hook, tracing-subscriber).
//! - `bench`: the benchmark harness, `persona::bench` (implies `generator`).
//! - `generator`: the workload generator, `persona::generator`.
//!
//! An application that embeds the engine depends on `persona = { …, default-features = false }`
//! and compiles none of them; `examples/embed.rs` is such a program.
//!
//! ## Example
//! ```
//! # let dir = tempfile::tempdir()?;
//! use persona::{Config, Event, EventKind};
//!
//! let db = Config::new(dir.path()).segments(4).open()?;
//! let t0 = 1_767_225_600_000; // 2026-01-01, unix ms
//! db.ingest(Event::new("alice", t0, EventKind::View).with_value(42.0).with_category("books"))?;
//! let ack = db.ingest(Event::new("alice", t0 + 60_000, EventKind::Purchase).with_value(19.9))?;
//! assert_eq!(ack.version, 2);
//!
//! let alice = db.profile("alice")?.expect("alice exists");
//! assert_eq!(alice.event_count, 2);
//! println!("propensity {:.2}, segment {:?}", alice.propensity, alice.segment);
//! println!("{:?}", db.model_info());
//! db.close()?;
//! # Ok::<(), persona::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
mod db;
pub mod error;
pub mod evaluate;
pub mod event;
pub mod features;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "generator")]
pub mod generator;
mod index;
pub mod model;
pub(crate) mod pipeline;
pub mod query;
pub mod server;
pub mod storage;

pub use config::{Config, DriftReaction, Durability};
pub use db::{
    Centroids, Choice, Db, Feedback, PendingWrite, PurgeReport, ResegmentReport, Search, Target,
};
pub use error::{Error, Result};
pub use event::{Event, EventKind, InvalidEvent};
pub use features::AttrValue;
pub use pipeline::{Ack, MaintenanceOutcome, WriteStats};
pub use query::{
    CustomerExport, HistoryItem, ModelInfo, Profile, Recommendation, Score, SegmentDistance,
    SegmentInfo, SimilarCustomer,
};
pub use storage::check::{check_store, CheckReport, Problem, ProblemKind};
