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
//! ## The API
//! - Open a store: [`Config`] (a builder) or [`Db::open`]; close it with [`Db::close`].
//! - Write: [`Db::ingest`] an [`Event`] (or [`Db::ingest_batch`], [`Db::ingest_async`]),
//!   [`Db::set_attributes`], [`Db::feedback`]; each returns an [`Ack`] once durable.
//! - Read: [`Db::profile`] ([`Profile`]), [`Db::score`], [`Db::nearest_segments`],
//!   [`Db::similar`], [`Db::strategy`], [`Db::history`], [`Db::segments`], [`Db::model_info`].
//! - Maintain: [`Db::resegment`], [`Db::rollback_model`], [`Db::erase`], [`Db::purge`],
//!   [`check_store`], [`rotate_key`] (a store is encrypted unless [`Config::encryption`] says
//!   otherwise).
//! - Serve it over the Redis protocol: [`serve`] or [`Server`] with a [`ServerConfig`].
//! - Every failure is an [`Error`]; a rejected event says why in an [`InvalidEvent`].
//!
//! ## Source map
//! The write path reads top to bottom: event → features → models → one atomic commit → ack.
//! All modules but `generator` are private; the items above are re-exported here.
//!
//! | module | role |
//! |---|---|
//! | `event` | [`Event`], validation; `event::parse` reads CSV / JSON Lines files (feature `cli`) |
//! | `features` | profile accumulators and the feature-vector layout |
//! | `model` | online scaler, propensity (logistic regression), k-means, drift monitor, bandit |
//! | `storage` | sled key layout, versioned record codec, profile records, `check`, `compact` |
//! | `pipeline` | the single writer and its apply and durability stages: batching, apply, commit, durability, acks |
//! | `index` | the lookalike index: kept by the writer after each commit, scanned by [`Db::similar`] |
//! | `query` | profiles as of now, scores, segment descriptions, the report (feature `cli`) |
//! | `db` | [`Db`], the embedded facade: open, write, read, maintain, privacy |
//! | `server` | the Redis-protocol (RESP) server behind `persona serve` |
//! | `cluster` | scale-out (in progress): slots, the partition → owner map a cluster node routes by; with feature `cluster`, the node's agent on NATS JetStream ([`ClusterView`], `Node`) |
//! | `evaluate` | (feature `cli`) `persona evaluate`: backtest of the propensity model and segments against baselines |
//! | [`generator`] | (feature `generator`) a synthetic workload with planted personas |
//! | `bench`, `cli` | (feature `cli`) `persona bench` and the command line |
//!
//! `docs/architecture.md` draws the same map.
//!
//! ## Cargo features
//! - `cli` (default): the `persona` binary and what it runs (the benchmark harness, the backtest,
//!   the report, compaction, the event-file reader) with the command line's dependencies (clap,
//!   indicatif, mimalloc, signal-hook, tracing-subscriber). Implies `generator`.
//! - `generator`: the workload generator with planted personas, [`generator`].
//! - `testing`: internals for the crate's own tests, benchmarks and fuzz targets
//!   (`persona::testing`, hidden; not a stable API) and fault injection.
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

#[cfg(feature = "cli")]
mod bench;
/// The `persona` command line (`src/main.rs` is its entry point). Not a stable API: the binary's
/// arguments and output are the interface.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
mod cluster;
mod config;
mod db;
mod error;
#[cfg(any(feature = "cli", feature = "testing"))]
mod evaluate;
mod event;
mod features;
#[cfg(feature = "generator")]
pub mod generator;
mod index;
mod model;
mod pipeline;
mod query;
mod server;
mod storage;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
mod together;
mod triggers;

#[cfg(feature = "cluster")]
pub use cluster::{cluster_status, ClusterStatus, ModelBeat, Node, NodeConfig};
pub use cluster::{key_slot, ClusterMap, ClusterView, Member, Route};
pub use config::{Config, DriftReaction, Durability, Encryption};
pub use db::{
    Centroids, Choice, Db, EraseReport, Feedback, PendingWrite, PurgeReport, ResegmentReport,
    Search, Target, TriggerFollower, TriggerPage,
};
pub use error::{Error, Result, StorageError};
pub use event::{parse_timestamp, Event, EventKind, InvalidEvent};
pub use features::consent::Consent;
pub use features::AttrValue;
pub use model::{drift::Detection, ModelConfig, ModelError};
pub use pipeline::{Ack, MaintenanceOutcome, WriteStats};
pub use query::recommend::{Catalogue, RecommendOptions, Suggestion};
pub use query::Popular;
pub use query::{
    ActionSummary, ConsentChange, Contribution, CustomerExport, Engagement, ExportedConsent,
    HistoryItem, ModelInfo, Profile, Recommendation, Score, SegmentDistance, SegmentInfo,
    SimilarCustomer,
};
pub use server::{serve, Limits, Server, ServerConfig, ShutdownHandle};
pub use storage::check::{check_store, check_store_with, CheckReport, Problem, ProblemKind};
pub use storage::encryption::{rotate_key, Rotation, KEY_ENV};
pub use storage::feedback::FeedbackOutcome;
pub use triggers::{Condition, Fired, Trigger, TriggerInfo};
