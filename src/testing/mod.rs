//! Internals the crate's own integration tests, benchmarks, examples and fuzz targets inspect:
//! the storage layout, the model state, the feature accumulators, the RESP parser. Compiled only
//! with the `testing` feature (the crate's dev-dependency on itself turns it on; so does the fuzz
//! crate's). **Not a stable API**: it changes with the storage format and the models.
//!
//! Each private module has a mirror here: `persona::testing::storage::keys` is the crate's
//! `storage::keys`. [`DbInternals`] adds the [`Db`] methods tests need and users do not.

pub mod fuzzing;

/// The crate's `config`.
pub mod config {
    pub use crate::config::*;
}
/// The crate's `evaluate` (the backtest).
pub mod evaluate {
    pub use crate::evaluate::*;
}
/// The crate's `event`.
pub mod event {
    pub use crate::event::*;
}
/// The crate's `features`.
pub mod features {
    pub use crate::features::*;
}
/// The crate's `model`.
pub mod model {
    pub use crate::model::*;
}
/// The crate's `query`.
pub mod query {
    pub use crate::query::*;
}
/// The crate's `server`.
pub mod server {
    pub use crate::server::*;
}
/// The crate's `storage`.
pub mod storage {
    pub use crate::storage::*;
}
/// The crate's `bench` (the benchmark harness; with the `cli` feature).
#[cfg(feature = "cli")]
pub mod bench {
    pub use crate::bench::*;
}

pub use crate::index::LookalikeRow;

use crate::error::Result;
use crate::features::vector::FeatureLayout;
use crate::features::ProfileState;
use crate::model::ModelState;
use crate::query::report::ReportInput;
use crate::query::{CustomerExport, Profile};
use crate::storage::Store;
use crate::Db;
use std::sync::Arc;

/// What tests see of a [`Db`] beyond its API: the model state, the storage layer, the lookalike
/// index. `use persona::testing::DbInternals;` and call them as methods.
pub trait DbInternals {
    /// The model as of the last committed batch.
    fn model(&self) -> Arc<ModelState>;
    /// The model snapshot taken at `version`, if kept.
    ///
    /// # Errors
    /// [`crate::Error::Corruption`] if it does not decode.
    fn read_model_snapshot(&self, version: u64) -> Result<Option<ModelState>>;
    /// The storage layer (and through it, sled).
    fn store(&self) -> &Store;
    /// The feature layout.
    fn layout(&self) -> &FeatureLayout;
    /// What `persona report` draws, with a sample of at most `sample` customers.
    ///
    /// # Errors
    /// As `persona report`.
    fn report_input(&self, sample: usize) -> Result<ReportInput>;
    /// Every row of the lookalike index, in id order; `None` until it is built.
    fn lookalike_index_rows(&self) -> Option<Vec<LookalikeRow>>;
    /// Customers in the lookalike index.
    fn lookalike_index_len(&self) -> usize;
}

impl DbInternals for Db {
    fn model(&self) -> Arc<ModelState> {
        Db::model(self)
    }
    fn read_model_snapshot(&self, version: u64) -> Result<Option<ModelState>> {
        Db::read_model_snapshot(self, version)
    }
    fn store(&self) -> &Store {
        Db::store(self)
    }
    fn layout(&self) -> &FeatureLayout {
        Db::layout(self)
    }
    fn report_input(&self, sample: usize) -> Result<ReportInput> {
        Db::report_input(self, sample)
    }
    fn lookalike_index_rows(&self) -> Option<Vec<LookalikeRow>> {
        Db::lookalike_index_rows(self)
    }
    fn lookalike_index_len(&self) -> usize {
        Db::lookalike_index_len(self)
    }
}

/// The raw accumulators behind a [`Profile`] or a [`CustomerExport`] (the `state` field users do
/// not see: `raw_features` shows them in their units).
pub trait ProfileInternals {
    /// The accumulated state the features derive from.
    fn state(&self) -> &ProfileState;
}

impl ProfileInternals for Profile {
    fn state(&self) -> &ProfileState {
        &self.state
    }
}

impl ProfileInternals for CustomerExport {
    fn state(&self) -> &ProfileState {
        &self.state
    }
}
