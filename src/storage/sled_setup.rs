//! Opening sled for a store: the sled configuration (cache, segment size, compression, as the
//! raw-sled baseline of `persona bench` uses it too), the compression a store was created with,
//! the wait for a lock a closed handle still holds, and the private data directory.

use super::lock::{is_lock_error, lock_holder, Holder};
use super::{FALLBACK_COMPRESSION_LEVEL, LOG_FILE};
#[cfg(feature = "cli")]
use crate::config::Config;
use crate::error::{Error, Result};
use std::path::Path;

/// sled segment size. Values larger than a quarter of a segment become separate "blob" files,
/// which sled 0.34 does not fsync; 8 MiB segments keep every record we write inline in the log.
pub(super) const SEGMENT_SIZE: usize = 8 * 1024 * 1024;

/// The sled configuration a store is opened with (cache, segment size, background flush,
/// compression), so a raw-sled baseline (`persona bench`) runs under the same settings.
/// sled refuses to reopen a store with a different segment size or compression; a store that
/// exists is opened with the compression it was created with (see [`Config::compression_level`]).
#[cfg(feature = "cli")]
pub fn sled_config(config: &Config) -> sled::Config {
    sled_config_at(
        &config.path,
        config.cache_capacity_mb,
        effective_compression(&config.path, Some(config.compression_level)),
    )
}

/// [`sled_config`] for a directory, cache size and zstd level (0: none), the level as
/// [`effective_compression`] worked it out for that directory.
pub(super) fn sled_config_at(path: &Path, cache_capacity_mb: u64, level: u8) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity_mb * 1024 * 1024)
        .segment_size(SEGMENT_SIZE)
        .flush_every_ms(Some(500))
        .use_compression(level > 0)
        .compression_factor(i32::from(level.max(1)))
}

/// Whether the sled database in `dir` was created compressed, as its `conf` file records; None
/// when there is no readable `conf` (no store yet, or one sled itself will report on).
pub fn stored_compression(dir: &Path) -> Option<bool> {
    let bytes = std::fs::read(dir.join("conf")).ok()?;
    // The parameters as `key: value` lines, then a CRC32 of them (4 bytes).
    let text = bytes.get(..bytes.len().checked_sub(4)?)?;
    String::from_utf8_lossy(text)
        .lines()
        .find_map(|line| line.strip_prefix("use_compression: "))
        .and_then(|value| value.trim().parse().ok())
}

/// The zstd level (0: none) to open the store at `path` with: `requested` for a new store, else
/// whether it was created compressed (sled cannot change that), with the requested level for
/// new writes when there is one. A request the store cannot honour is logged (once per call:
/// callers work the level out once per open). `None` asks for the store as it is, silently
/// (tools that open a store without its configuration; a new store is then uncompressed).
pub(super) fn effective_compression(path: &Path, requested: Option<u8>) -> u8 {
    let Some(requested) = requested else {
        return match stored_compression(path) {
            Some(true) => FALLBACK_COMPRESSION_LEVEL,
            _ => 0,
        };
    };
    match stored_compression(path) {
        None => requested,
        // 0 is the default, not a choice the user made: a compressed store (made by another
        // configuration or by `persona compact --compression-level`) stays compressed silently.
        Some(true) if requested == 0 => FALLBACK_COMPRESSION_LEVEL,
        Some(true) => requested,
        Some(false) => {
            if requested > 0 {
                tracing::warn!(
                    "the store at {} was created without compression: compression_level = \
                     {requested} applies to new stores only (`persona compact \
                     --compression-level {requested}` converts this one)",
                    path.display()
                );
            }
            0
        }
    }
}

/// Opens sled. A store this process closed a moment ago may still be locked by the closed
/// handle's background I/O (sled releases its lock only when its last task ends), so a reopen
/// (a test, `persona check` then `Db::open`) waits up to about three seconds for the lock. A lock
/// held by another process is reported at once as [`Error::Locked`] (where the holder can be
/// told, see [`lock_holder`]; elsewhere after the wait). `compression_level` as
/// [`effective_compression`] takes it.
pub(super) fn open_sled(
    path: &Path,
    cache_capacity_mb: u64,
    compression_level: Option<u8>,
) -> Result<sled::Db> {
    const ATTEMPTS: u32 = 150;
    // Worked out (and any mismatch logged) once, not at every attempt below.
    let level = effective_compression(path, compression_level);
    let mut attempt = 1;
    loop {
        match sled_config_at(path, cache_capacity_mb, level).open() {
            Err(e) if is_lock_error(&e) => {
                if attempt == ATTEMPTS || lock_holder(&path.join(LOG_FILE)) == Holder::Other {
                    return Err(Error::Locked {
                        path: path.display().to_string(),
                    });
                }
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Checks that `path` holds a store (sled's `conf` file), without creating anything: read-only
/// tools refuse a directory that has none instead of creating an empty store in it.
///
/// # Errors
/// [`Error::NoStore`] naming the path when there is no store there.
pub fn require_store(path: &Path) -> Result<()> {
    if path.join("conf").is_file() {
        return Ok(());
    }
    Err(Error::NoStore {
        path: path.display().to_string(),
    })
}

/// Creates the data directory with owner-only permissions (0700 on Unix) if it does not exist.
pub(super) fn create_private_dir(path: &Path) -> Result<()> {
    if path.exists() {
        if !path.is_dir() {
            return Err(Error::Config(format!(
                "data path {} exists and is not a directory",
                path.display()
            )));
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)?;
    Ok(())
}
