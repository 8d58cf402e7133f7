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
mod write;

use lookalike::IndexBuilder;
pub use maintain::ResegmentReport;
pub use privacy::PurgeReport;
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
    /// Randomness for Thompson sampling: seeded, so recommendations are reproducible.
    rng: Mutex<rand_pcg::Pcg64>,
    /// Dropping this stops the background re-segmentation thread, if any.
    stop_background: Mutex<Option<Sender<()>>>,
    /// The last segment descriptions, for the strategy's rules and labels.
    segment_cache: segments::SegmentCache,
}

#[doc(hidden)]
pub use crate::query::lookalike_index::LookalikeRow;

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
