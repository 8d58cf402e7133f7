//! Fault injection for tests of the failure paths: commits and syncs that fail on purpose, an
//! apply stage that lags. Compiled in only with the `testing` cargo feature (the crate's own
//! tests turn it on); without it [`Faults`] is empty and every check is a constant `false`.

#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The faults a test asked for.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Number of upcoming commits to fail.
    #[cfg(feature = "testing")]
    pub(crate) fail_commits: AtomicU32,
    /// Number of upcoming syncs of the durability stage to fail.
    #[cfg(feature = "testing")]
    pub(crate) fail_syncs: AtomicU32,
    /// Microseconds the apply stage waits before each batch.
    #[cfg(feature = "testing")]
    pub(crate) apply_delay_us: AtomicU64,
}

impl Faults {
    /// Whether this commit must fail (and one fewer is left to fail).
    pub(crate) fn take_commit_failure(&self) -> bool {
        #[cfg(feature = "testing")]
        let fail = take_one(&self.fail_commits);
        #[cfg(not(feature = "testing"))]
        let fail = false;
        fail
    }

    /// Whether this sync must fail (and one fewer is left to fail).
    pub(crate) fn take_sync_failure(&self) -> bool {
        #[cfg(feature = "testing")]
        let fail = take_one(&self.fail_syncs);
        #[cfg(not(feature = "testing"))]
        let fail = false;
        fail
    }

    /// How long the apply stage waits before handing a batch to sled.
    pub(crate) fn apply_delay(&self) -> Option<std::time::Duration> {
        #[cfg(feature = "testing")]
        let us = self.apply_delay_us.load(Ordering::Relaxed);
        #[cfg(not(feature = "testing"))]
        let us = 0;
        (us > 0).then(|| std::time::Duration::from_micros(us))
    }
}

#[cfg(feature = "testing")]
fn take_one(failures: &AtomicU32) -> bool {
    failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}
