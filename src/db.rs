//! [`Db`]: the embedded facade. Open a store, ingest events, set attributes, read profiles and
//! model information, close.
//!
//! A `Db` is a cheap handle (`Clone`, `Send + Sync`): clones share one store and one writer
//! thread. Writes go through the single writer (see [`crate::pipeline`]) and return only once
//! committed and as durable as configured; reads go straight to committed records and the
//! latest published model, so a read after a returned write sees it.
//!
//! `Db`'s methods are split by concern: `db/open.rs` (open, recovery, background jobs, close),
//! `db/write.rs`, `db/read.rs`, `db/lookalike.rs` (similar and the lookalike index),
//! `db/maintain.rs` (snapshots, rollback, re-segmentation, fault injection) and
//! `db/privacy.rs` (erase, export, retention).

use crate::config::Config;
use crate::features::vector::FeatureLayout;
use crate::pipeline::{Request, Shared};
use crate::query::segments;
use crate::storage::Store;
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use std::sync::Arc;
use std::thread::JoinHandle;

mod lookalike;
mod maintain;
mod open;
mod privacy;
mod read;
mod triggers;
mod write;

use lookalike::IndexBuilder;
pub use maintain::ResegmentReport;
pub use privacy::{EraseReport, PurgeReport};
pub use triggers::{TriggerFollower, TriggerPage};
pub(crate) use write::write_channel;
pub use write::PendingWrite;

/// An open Persona store.
///
/// # Examples
/// ```
/// # let dir = tempfile::tempdir()?;
/// use persona::{Db, Event, EventKind};
/// let db = Db::open(dir.path())?;
/// let ack = db.ingest(
///     Event::new("c42", 1_767_225_600_000, EventKind::Purchase)
///         .with_value(25.0)
///         .with_category("books"),
/// )?;
/// assert_eq!(ack.version, 1);
/// let profile = db.profile("c42")?.expect("just written");
/// assert_eq!(profile.event_count, 1);
/// db.close()?;
/// # Ok::<(), persona::Error>(())
/// ```
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    tx: Sender<Request>,
    shared: Arc<Shared>,
    layout: FeatureLayout,
    config: Config,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The background build of the lookalike index, started by the first query that needs it
    /// (joined on close: it holds the store).
    index_builder: Mutex<IndexBuilder>,
    /// The rebuild of the co-occurrence table, started at open when the store saw items
    /// (joined on close: it holds the store).
    together_builder: Mutex<Option<JoinHandle<()>>>,
    /// Randomness for Thompson sampling: seeded, so recommendations are reproducible.
    rng: Mutex<rand_pcg::Pcg64>,
    /// Dropping this stops the background re-segmentation thread, if any.
    stop_background: Mutex<Option<Sender<()>>>,
    /// Raised when [`Db::close`] starts: a write still waiting then gives up (see
    /// `PendingWrite::wait_open`).
    closing: std::sync::atomic::AtomicBool,
    /// The last segment descriptions, for the strategy's rules and labels.
    segment_cache: segments::SegmentCache,
}

#[doc(hidden)]
#[cfg(feature = "testing")]
pub(crate) use crate::index::LookalikeRow;

/// How [`Db::similar`] searches for lookalikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// Scan every profile: the true nearest customers, slower in a large store.
    Exact,
    /// Scan only the members of the `nprobe` segments nearest to the customer (through the
    /// lookalike index when it is built): fast, may miss a neighbour in another segment.
    Probe,
}

/// How [`Db::strategy`] picks an action from the per-segment statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Thompson sampling: draws from each action's posterior, so actions with little feedback
    /// are still tried (what a campaign should call).
    Sample,
    /// The action with the best posterior mean (what a report should show).
    Greedy,
}

/// Whether [`Db::resegment`] refits the centroids before re-assigning the profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Centroids {
    /// Re-assign every profile to the nearest of the current centroids.
    Keep,
    /// Refit the centroids first (k-means on a sample of the profiles as of now).
    Refit,
    /// Refit the centroids first from fresh k-means++ starts only, drawn by a generator seeded
    /// with the configuration's seed: the centroids then depend on the sample alone, not on
    /// the ones before (which only decide the segments' numbering). What `persona erase
    /// --retrain` runs after the erase ([`Db::erase_and_retrain`]).
    Fresh,
}

/// The outcome of a marketing action, for [`Db::feedback`].
///
/// # Examples
/// ```
/// use persona::Feedback;
/// let f = Feedback::new("alice", "vip_offer", true).with_id("campaign-7/alice");
/// assert_eq!((f.customer_id, f.id, f.segment), ("alice", Some("campaign-7/alice"), None));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Feedback<'a> {
    /// The customer the action was taken for.
    pub customer_id: &'a str,
    /// The action, one of the configured catalogue ([`Config::actions`]).
    pub action: &'a str,
    /// Whether the customer converted.
    pub converted: bool,
    /// An id that makes the feedback idempotent: a repeat is acknowledged as a duplicate and
    /// changes nothing. None: every call counts.
    pub id: Option<&'a str>,
    /// The segment to credit. None: the customer's segment now (the one [`Db::strategy`] used,
    /// unless their profile changed since).
    pub segment: Option<u16>,
}

impl<'a> Feedback<'a> {
    /// Feedback for `action` taken for `customer_id`, without an id, credited to the customer's
    /// current segment.
    pub fn new(customer_id: &'a str, action: &'a str, converted: bool) -> Feedback<'a> {
        Feedback {
            customer_id,
            action,
            converted,
            id: None,
            segment: None,
        }
    }

    /// Sets [`Feedback::id`] (`Some` or a `&str`; `None` leaves it unset).
    pub fn with_id(mut self, id: impl Into<Option<&'a str>>) -> Feedback<'a> {
        self.id = id.into();
        self
    }

    /// Sets [`Feedback::segment`] (`Some` or a `u16`; `None` leaves it unset).
    pub fn with_segment(mut self, segment: impl Into<Option<u16>>) -> Feedback<'a> {
        self.segment = segment.into();
        self
    }
}

/// What [`Db::nearest_segments`] measures from.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A customer, evaluated as of the watermark.
    Customer(&'a str),
    /// A raw feature vector in the profile-feature layout.
    Vector(&'a [f64]),
}

impl Db {
    /// The configuration the store was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}
