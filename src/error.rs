//! The crate's error types: [`Error`], and the two it wraps that the modules below raise,
//! [`InvalidEvent`] (re-exported by `event`) and [`ModelError`] (by `model`). Kept here so that
//! this module depends on no other.
//!
//! Every failure a caller can see is one variant of [`Error`]; the variants separate *bad input*
//! (fix the request), *corruption* (a record on disk is damaged), *misuse* (e.g. a closed
//! database) and *I/O* (the disk or sled failed), so that a caller can react to each differently.

use std::fmt;

/// Result with Persona's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Persona.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event was rejected; nothing was changed.
    // The inner errors of this and the other wrapping variants are shown in the message and not
    // also returned as `source()`: a printer that walks the chain (anyhow's `{:#}`) would print
    // them twice.
    #[error("invalid event: {0}")]
    InvalidEvent(InvalidEvent),
    /// An argument other than an event was rejected (attribute, vector, option); nothing changed.
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument {
        /// Which argument.
        name: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A configuration value or file is wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The store key is missing, wrong, or not protected (see `docs/privacy.md`, "Encryption at
    /// rest"); nothing was opened or changed.
    #[error("store key: {0}")]
    Key(String),
    /// The store was created with settings this configuration contradicts.
    #[error("store at {path} was created with {key} = {stored}, but the configuration says {configured}; use the original value or a new data directory")]
    ConfigMismatch {
        /// Data directory.
        path: String,
        /// The setting that differs.
        key: String,
        /// Value recorded in the store.
        stored: String,
        /// Value in the configuration.
        configured: String,
    },
    /// A record on disk could not be decoded.
    #[error("corrupt record {key}: {detail}")]
    Corruption {
        /// The record's key, human-readable (e.g. `profile "c42"`).
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A record was written by a newer (or unknown) format version.
    #[error("record {key} has format version {found}; this build reads up to {supported}")]
    UnsupportedVersion {
        /// The record's key, human-readable.
        key: String,
        /// The version byte found.
        found: u8,
        /// The highest version this build reads.
        supported: u8,
    },
    /// The model state is inconsistent with this build or configuration.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The storage engine (sled) reported an error.
    #[error("storage error: {0}")]
    Storage(StorageError),
    /// A file system operation failed.
    #[error("i/o error: {0}")]
    Io(std::io::Error),
    /// A read-only operation was pointed at a directory that holds no store; nothing was created.
    #[error("no store at {path} (it has no sled `conf` file; is the data directory right?)")]
    NoStore {
        /// The directory given.
        path: String,
    },
    /// Another process (typically a running `persona serve`) holds the store open; sled allows
    /// one process at a time.
    #[error("the store at {path} is open in another process")]
    Locked {
        /// Data directory.
        path: String,
    },
    /// The database was closed (or its writer stopped) before the request was served.
    #[error("database is closed")]
    Closed,
    /// A commit failed in a way that may have left data not durable; the database refuses writes
    /// until it is reopened (like PostgreSQL after a failed fsync).
    #[error("database is poisoned after a failed commit ({0}); reopen it")]
    Poisoned(String),
    /// A cluster node could not join or follow its cluster (feature `cluster`, see
    /// `docs/cluster.md`): NATS unreachable, JetStream off, a partition count or cluster id
    /// that differs, an address another node advertises.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A cluster node cannot serve this customer now; the message is Redis Cluster's reply, as
    /// the RESP server sends it (`MOVED slot host:port`, `TRYAGAIN …`, `CLUSTERDOWN …`).
    #[error("{0}")]
    Redirect(String),
}

impl From<InvalidEvent> for Error {
    fn from(e: InvalidEvent) -> Error {
        Error::InvalidEvent(e)
    }
}

// Lets the crate use `?` on sled's results. Hidden: sled is no part of the API.
#[doc(hidden)]
impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Error {
        Error::Storage(StorageError(e))
    }
}

/// A failure of the storage engine, kept opaque so that the engine underneath (sled 0.34) is no
/// part of the API: its message says what failed (an I/O error, a corrupted log, an
/// unsupported operation).
#[derive(Debug, Clone)]
pub struct StorageError(sled::Error);

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StorageError {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid_argument(name: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Whether the error was caused by the request (bad input) rather than the store.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::InvalidEvent(_) | Error::InvalidArgument { .. })
    }
}

/// Errors cross thread boundaries inside the pipeline as shared values: one failed commit is
/// reported to every waiter of its batch.
impl Clone for Error {
    fn clone(&self) -> Error {
        match self {
            Error::InvalidEvent(e) => Error::InvalidEvent(e.clone()),
            Error::InvalidArgument { name, reason } => Error::InvalidArgument {
                name: name.clone(),
                reason: reason.clone(),
            },
            Error::Config(s) => Error::Config(s.clone()),
            Error::Key(s) => Error::Key(s.clone()),
            Error::ConfigMismatch {
                path,
                key,
                stored,
                configured,
            } => Error::ConfigMismatch {
                path: path.clone(),
                key: key.clone(),
                stored: stored.clone(),
                configured: configured.clone(),
            },
            Error::Corruption { key, detail } => Error::Corruption {
                key: key.clone(),
                detail: detail.clone(),
            },
            Error::UnsupportedVersion {
                key,
                found,
                supported,
            } => Error::UnsupportedVersion {
                key: key.clone(),
                found: *found,
                supported: *supported,
            },
            Error::Model(e) => Error::Model(e.clone()),
            Error::Storage(e) => Error::Storage(e.clone()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::NoStore { path } => Error::NoStore { path: path.clone() },
            Error::Closed => Error::Closed,
            Error::Poisoned(s) => Error::Poisoned(s.clone()),
            Error::Cluster(s) => Error::Cluster(s.clone()),
            Error::Redirect(s) => Error::Redirect(s.clone()),
        }
    }
}

/// Why an event was rejected: the field, the offending value, what is allowed, and (for files) the
/// line it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidEvent {
    /// 1-based line number in the input file, when the event came from a file.
    pub line: Option<u64>,
    /// The offending field (`customer_id`, `timestamp`, `kind`, `value`, `category`, `event_id`,
    /// or `line` for a row that could not be read at all).
    pub field: &'static str,
    /// The offending value as given (shortened when very long).
    pub value: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl InvalidEvent {
    /// A new rejection for `field` with `value`, explained by `reason`.
    pub fn new(
        field: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> InvalidEvent {
        InvalidEvent {
            line: None,
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The same rejection, located at a 1-based input line.
    pub fn at_line(mut self, line: u64) -> InvalidEvent {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.value.is_empty() {
            write!(f, "field {} {}", self.field, self.reason)
        } else {
            write!(f, "field {}: {} {}", self.field, self.value, self.reason)
        }
    }
}

/// What can go wrong with model input or persisted model state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The bytes are not an encoded model state (truncated, corrupted, trailing garbage, too big).
    #[error("model state decode failed: {0}")]
    Decode(String),
    /// The bytes decoded, but the dimensions inside disagree with each other.
    #[error("model state is inconsistent: {0}")]
    Inconsistent(String),
    /// A vector of the wrong length was offered to a model.
    #[error("vector has {got} dimensions; the model expects {expected}")]
    DimensionMismatch {
        /// Length of the offered vector.
        got: usize,
        /// Dimension of the model.
        expected: usize,
    },
    /// A vector component is NaN or infinite, which would poison the running statistics.
    #[error("vector component {index} is {value}; the model needs finite values")]
    NonFinite {
        /// Position of the first offending component.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A [`ModelConfig`](crate::ModelConfig) value is out of range.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    // postmortem: the wrapping variants showed their inner error and also returned it as
    // `source()`, so `persona: {e:#}` printed `Is a directory (os error 21): Is a directory (os
    // error 21)`.
    #[test]
    fn a_wrapped_error_is_shown_once_in_a_printed_chain() {
        let io = Error::from(std::io::Error::from_raw_os_error(21));
        let shown = format!("{:#}", anyhow::Error::new(io));
        assert_eq!(shown.matches("os error 21").count(), 1, "{shown}");
        let invalid = Error::from(InvalidEvent::new("customer_id", "", "must not be empty"));
        let shown = format!("{:#}", anyhow::Error::new(invalid));
        assert_eq!(shown, "invalid event: field customer_id must not be empty");
    }
}
