//! sled's file lock on a store: sled takes an exclusive `flock` on its `db` file, so one process
//! at a time opens a store. These helpers tell a lock held by another process (reported at once
//! as [`Error::Locked`]) from one a closed handle of this process still holds for a moment (sled
//! releases it from a background thread), which is waited for.

#[cfg(any(feature = "cli", feature = "testing"))]
use crate::error::{Error, Result};
use std::path::Path;

/// Waits (up to about five seconds) until no handle holds sled's file lock on the store in
/// `dir` (sled takes an exclusive `flock` on its `db` file), without opening it: sled releases
/// the lock from background threads a moment after a handle is closed and dropped.
///
/// # Errors
/// [`Error::Io`] if the lock file cannot be opened or is still locked after the wait.
#[cfg(target_os = "linux")]
#[cfg(any(feature = "cli", feature = "testing"))]
pub fn wait_unlocked(dir: &Path) -> Result<()> {
    use nix::fcntl::{Flock, FlockArg};
    let path = dir.join("db");
    for _ in 0..250 {
        let file = std::fs::File::open(&path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                drop(lock);
                return Ok(());
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err((_, e)) => return Err(Error::Io(std::io::Error::from(e))),
        }
    }
    Err(Error::Io(std::io::Error::other(format!(
        "the store at {} is still locked",
        dir.display()
    ))))
}

/// Elsewhere: returns at once (callers fall back to the lock wait of [`Store::open`](super::Store::open)).
#[cfg(not(target_os = "linux"))]
#[cfg(any(feature = "cli", feature = "testing"))]
pub fn wait_unlocked(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Whether sled failed to open because another handle holds the store's file lock. sled reports
/// that only as an `io::Error` of kind `Other` with this text, so this is the one place that
/// reads it; callers see [`Error::Locked`].
pub fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Who holds the `flock` on a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    /// Another process.
    Other,
    /// This process, or nobody any more, or it cannot be told.
    HereOrUnknown,
}

/// Who holds the `flock` on `file`, from the kernel's lock table (`/proc/locks` lists each lock
/// with the holder's pid and the file's inode).
#[cfg(target_os = "linux")]
pub(super) fn lock_holder(file: &Path) -> Holder {
    use std::os::unix::fs::MetadataExt;
    let (Ok(meta), Ok(table)) = (
        std::fs::metadata(file),
        std::fs::read_to_string("/proc/locks"),
    ) else {
        return Holder::HereOrUnknown;
    };
    let inode = meta.ino().to_string();
    let me = std::process::id().to_string();
    // `1: FLOCK  ADVISORY  WRITE 24660 fe:00:5457006 0 EOF`
    let holders: Vec<&str> = table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (kind, pid, id) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
            (*kind == "FLOCK" && id.rsplit(':').next() == Some(inode.as_str())).then_some(*pid)
        })
        .collect();
    if !holders.is_empty() && holders.iter().all(|pid| *pid != me) {
        Holder::Other
    } else {
        Holder::HereOrUnknown
    }
}

/// Who holds the `flock` on `file`: not known on this platform.
#[cfg(not(target_os = "linux"))]
pub(super) fn lock_holder(_file: &Path) -> Holder {
    Holder::HereOrUnknown
}
