//! The storage engine's ceiling for `persona bench --server`: how fast sled alone commits what
//! the RESP server's writer committed, measured at the end of the same run on the same machine.
//!
//! `EVENT.ADD` ends in one sled `apply_batch` per group commit and one sync of it. The server
//! reports (`INFO stats`) how many requests its commits held and how many bytes they inserted;
//! this module then opens a raw sled database next to the served store (same sled settings,
//! same durability, same disk). One thread applies batches of as many records as a commit held
//! requests, each record as large as a commit's bytes per request (so a batch carries a
//! commit's bytes, its model and queue keys included), under random `cust:…` profile keys (the
//! keys `redis-benchmark -r` draws). A second thread makes them durable as the durability stage
//! makes group commits. No client and no server run meanwhile. That rate is what the write side
//! of the server could reach if everything Persona does per request — RESP, decoding,
//! features, the three models, encoding, the lookalike index — were free: an upper bound, not
//! a baseline under the same load.

use super::ingest::RawSled;
use crate::config::Config;
use crate::error::{Error, Result};
use serde::Serialize;
use std::time::Instant;

/// Largest value the ceiling writes: the server's bytes per request beyond this are not a
/// profile record (or the counters were garbled), and the benchmark says so instead of
/// allocating them.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Batches the applier may run ahead of the syncs, as the durability stage's queue lets the
/// server's apply stage run ahead of it.
const AHEAD: usize = 4;

/// What the server's write pipeline committed, from the `persona_*` lines of `INFO stats`.
///
/// # Examples
/// ```
/// use persona::testing::bench::ceiling::ServedWrites;
/// let info = |commits, items, keys, bytes| {
///     format!(
///         "# Stats\r\npersona_commits:{commits}\r\npersona_items_committed:{items}\r\n\
///          persona_key_writes:{keys}\r\npersona_bytes_written:{bytes}\r\n"
///     )
/// };
/// let before = ServedWrites::from_info(&info(1, 100, 102, 50_000)).unwrap();
/// let after = ServedWrites::from_info(&info(3, 400, 406, 200_000)).unwrap();
/// // Two commits of 150 requests, 500 bytes each, between the two readings.
/// let run = after.since(before);
/// assert_eq!((run.group_size(), run.bytes_per_item()), (150, 500));
/// assert_eq!(run.plus(before), after);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServedWrites {
    /// Committed sled batches.
    pub commits: u64,
    /// Requests (events, attribute updates, feedback) in them.
    pub items: u64,
    /// Keys they inserted or removed.
    pub key_writes: u64,
    /// Bytes of keys and values they inserted.
    pub bytes_written: u64,
}

impl ServedWrites {
    /// Reads the four `persona_*` counters from the text of an `INFO` reply; None if one is
    /// missing or not a number.
    pub fn from_info(info: &str) -> Option<ServedWrites> {
        let field = |name: &str| -> Option<u64> {
            info.lines().find_map(|line| {
                let (key, value) = line.trim_end().split_once(':')?;
                (key == name).then(|| value.parse().ok())?
            })
        };
        Some(ServedWrites {
            commits: field("persona_commits")?,
            items: field("persona_items_committed")?,
            key_writes: field("persona_key_writes")?,
            bytes_written: field("persona_bytes_written")?,
        })
    }

    /// What was committed between `earlier` and these counters (a counter that went backwards,
    /// as a restarted server's would, counts as nothing).
    pub fn since(&self, earlier: ServedWrites) -> ServedWrites {
        ServedWrites {
            commits: self.commits.saturating_sub(earlier.commits),
            items: self.items.saturating_sub(earlier.items),
            key_writes: self.key_writes.saturating_sub(earlier.key_writes),
            bytes_written: self.bytes_written.saturating_sub(earlier.bytes_written),
        }
    }

    /// The counters of two stretches together.
    pub fn plus(&self, other: ServedWrites) -> ServedWrites {
        ServedWrites {
            commits: self.commits.saturating_add(other.commits),
            items: self.items.saturating_add(other.items),
            key_writes: self.key_writes.saturating_add(other.key_writes),
            bytes_written: self.bytes_written.saturating_add(other.bytes_written),
        }
    }

    /// Requests per commit, rounded, at least 1.
    pub fn group_size(&self) -> usize {
        usize::try_from(rounded_div(self.items, self.commits))
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// Bytes inserted per request, rounded: with [`ServedWrites::group_size`] records of this
    /// size (key included), a batch carries the bytes of a commit, model and queue included.
    pub fn bytes_per_item(&self) -> usize {
        usize::try_from(rounded_div(self.bytes_written, self.items)).unwrap_or(usize::MAX)
    }
}

/// `a / b` rounded to the nearest, 0 when `b` is 0, without overflow.
fn rounded_div(a: u64, b: u64) -> u64 {
    if b == 0 {
        return 0;
    }
    let q = (u128::from(a) + u128::from(b) / 2) / u128::from(b);
    u64::try_from(q).unwrap_or(u64::MAX)
}

/// The ceiling measured: raw sled committing the server's batches alone on the machine.
#[derive(Debug, Clone, Serialize)]
pub struct StorageCeiling {
    /// The server's counters the batches were shaped by.
    pub served: ServedWrites,
    /// Records per batch (the server's requests per commit).
    pub batch: usize,
    /// Bytes of each value: the server's bytes per request less the key's length, at least 8
    /// (each value starts with its write number, so that no write repeats a stored value).
    pub value_bytes: usize,
    /// Inserts timed (after as many untimed ones).
    pub inserts: u64,
    /// Inserts per second, until the last one was durable.
    pub inserts_per_sec: f64,
}

/// The id `redis-benchmark` makes of `cust:__rand_int__` for the number `n` (12 digits).
fn customer(n: u64) -> String {
    format!("cust:{n:012}")
}

/// Measures the ceiling: opens a raw sled database in `config.path` (absent or empty),
/// commits `inserts` untimed records, then times `inserts` more, in batches shaped by `served`,
/// keys drawn uniformly from `keyspace` customers with a fixed seed.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] for a directory that holds anything, or a shape whose
/// values would exceed [`MAX_VALUE_BYTES`]; [`crate::Error::Storage`] / [`crate::Error::Io`]
/// from sled or a sync.
pub(crate) fn measure(
    config: &Config,
    served: ServedWrites,
    keyspace: u64,
    inserts: u64,
) -> Result<StorageCeiling> {
    if std::fs::read_dir(&config.path).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::invalid_argument(
            "storage ceiling directory",
            format!(
                "{} holds files; it must be absent or empty",
                config.path.display()
            ),
        ));
    }
    let batch = served.group_size();
    let key_bytes = crate::storage::keys::profile(&customer(0)).len();
    let value_bytes = served.bytes_per_item().saturating_sub(key_bytes).max(8);
    if value_bytes > MAX_VALUE_BYTES {
        return Err(Error::invalid_argument(
            "persona_bytes_written",
            format!(
                "{} bytes per request; the storage ceiling writes records of at most \
                 {MAX_VALUE_BYTES} bytes",
                served.bytes_per_item()
            ),
        ));
    }
    let raw = RawSled::open(config, value_bytes)?;
    // xorshift64*: cheap, fixed, and far from the time being measured.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D) % keyspace.max(1)
    };
    let mut apply = |n: usize| -> Result<()> {
        let customers: Vec<String> = (0..n).map(|_| customer(next())).collect();
        raw.apply_batch(&customers)
    };
    pipelined(inserts, batch, &mut apply, || raw.sync())?;
    let start = Instant::now();
    pipelined(inserts, batch, &mut apply, || raw.sync())?;
    let secs = start.elapsed().as_secs_f64();
    Ok(StorageCeiling {
        served,
        batch,
        value_bytes,
        inserts,
        inserts_per_sec: if secs > 0.0 {
            inserts as f64 / secs
        } else {
            0.0
        },
    })
}

/// Applies `count` records in batches of at most `batch` on this thread while another thread
/// makes them durable, as the server's apply and durability stages do: each `sync` covers every
/// batch applied before it started, the applier runs at most [`AHEAD`] batches ahead, and the
/// last sync starts after the last batch is applied. Returns the first error of either side; a
/// failed sync stops the applier at its next batch.
fn pipelined(
    count: u64,
    batch: usize,
    apply: &mut dyn FnMut(usize) -> Result<()>,
    sync: impl Fn() -> Result<()> + Sync,
) -> Result<()> {
    let (applied, to_sync) = crossbeam_channel::bounded::<()>(AHEAD);
    std::thread::scope(|scope| {
        let sync = &sync;
        // The receiver moves into the syncer, so that when the syncer stops (a failed sync)
        // the applier's next send fails instead of waiting forever for room.
        let syncer = scope.spawn(move || -> Result<()> {
            while to_sync.recv().is_ok() {
                while to_sync.try_recv().is_ok() {}
                sync()?;
            }
            Ok(())
        });
        let mut applying = || -> Result<()> {
            let mut done = 0;
            while done < count {
                let n = usize::try_from(count - done)
                    .unwrap_or(batch)
                    .min(batch.max(1));
                apply(n)?;
                done += n as u64;
                if applied.send(()).is_err() {
                    break; // the syncer failed: its error is returned below
                }
            }
            Ok(())
        };
        let applied_all = applying();
        // The syncer's last sync covers the last batch; then it sees the channel closed.
        drop(applied);
        let synced_all = syncer.join().unwrap_or_else(|_| {
            Err(Error::Io(std::io::Error::other(
                "the storage ceiling's sync thread panicked",
            )))
        });
        applied_all.and(synced_all)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use parking_lot::Mutex;

    fn served(commits: u64, items: u64, key_writes: u64, bytes: u64) -> ServedWrites {
        ServedWrites {
            commits,
            items,
            key_writes,
            bytes_written: bytes,
        }
    }

    #[test]
    fn reads_the_counters_of_an_info_reply_and_refuses_partial_ones() {
        let info = "# Server\r\nredis_version:7.2.0\r\n\r\n# Stats\r\n\
                    persona_commits:10\r\npersona_items_committed:1830\r\n\
                    persona_key_writes:1867\r\npersona_bytes_written:821480\r\n";
        let w = ServedWrites::from_info(info).unwrap();
        assert_eq!(w, served(10, 1830, 1867, 821_480));
        assert_eq!(w.group_size(), 183);
        assert_eq!(w.bytes_per_item(), 449);
        // One counter missing or not a number: no figures.
        assert_eq!(
            ServedWrites::from_info(&info.replace("persona_commits:10\r\n", "")),
            None
        );
        assert_eq!(
            ServedWrites::from_info(&info.replace(":1867", ":many")),
            None
        );
        // A prefix of another counter's name is not that counter.
        assert_eq!(
            ServedWrites::from_info(&info.replace("persona_commits:10", "persona_commits_x:10")),
            None
        );
    }

    #[test]
    fn stretches_subtract_and_add() {
        let (a, b) = (served(2, 300, 310, 9_000), served(5, 900, 925, 30_000));
        assert_eq!(b.since(a), served(3, 600, 615, 21_000));
        assert_eq!(b.since(a).plus(a), b);
        // A counter that went backwards (a restarted server) counts as nothing committed.
        assert_eq!(a.since(b), served(0, 0, 0, 0));
        // Sums saturate instead of wrapping.
        let big = served(u64::MAX, u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(big.plus(a), big);
    }

    #[test]
    fn shapes_round_never_reach_zero_and_never_overflow() {
        assert_eq!(served(3, 2, 1, 0).group_size(), 1);
        assert_eq!(served(0, 0, 0, 0).group_size(), 1);
        assert_eq!(served(0, 0, 0, 0).bytes_per_item(), 0);
        assert_eq!(served(2, 3, 2, 5).group_size(), 2);
        assert_eq!(served(2, 3, 2, 5).bytes_per_item(), 2);
        let huge = served(1, u64::MAX, 1, u64::MAX);
        assert_eq!(huge.group_size(), usize::MAX);
        assert_eq!(huge.bytes_per_item(), 1);
    }

    #[test]
    fn commits_the_server_shaped_batches_into_a_raw_sled_database() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = Config::new(dir.path().join("raw")).durability(Durability::Fsync);
        let w = served(4, 40, 41, 40 * 300);
        let c = measure(&config, w, 50, 25)?;
        assert_eq!(c.batch, 10);
        assert_eq!(
            c.value_bytes,
            300 - crate::storage::keys::profile("cust:000000000000").len()
        );
        assert_eq!(c.inserts, 25);
        assert!(c.inserts_per_sec > 0.0);
        // That the batches are real writes of that size: `RawSled::apply_batch`'s test.
        Ok(())
    }

    #[test]
    fn refuses_a_used_directory_and_absurd_record_sizes() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("precious"), b"data")?;
        let config = Config::new(dir.path());
        let err = measure(&config, served(1, 10, 10, 5_000), 50, 10).unwrap_err();
        assert!(err.to_string().contains("must be absent or empty"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("precious"))?, b"data");

        let config = Config::new(dir.path().join("raw"));
        let garbled = served(1, 1, 1, u64::MAX);
        let err = measure(&config, garbled, 50, 10).unwrap_err();
        assert!(err.to_string().contains("persona_bytes_written"), "{err}");
        assert!(!dir.path().join("raw").exists());
        Ok(())
    }

    #[test]
    fn every_record_is_applied_in_order_and_the_last_sync_follows_the_last_batch() -> Result<()> {
        // (applied so far, applied when each sync started)
        let log = Mutex::new((0u64, Vec::new()));
        let mut sizes = Vec::new();
        let mut apply = |n: usize| -> Result<()> {
            sizes.push(n);
            log.lock().0 += n as u64;
            Ok(())
        };
        let sync = || -> Result<()> {
            let mut l = log.lock();
            let at = l.0;
            l.1.push(at);
            Ok(())
        };
        pipelined(25, 10, &mut apply, sync)?;
        assert_eq!(sizes, [10, 10, 5]);
        let (applied, syncs) = log.into_inner();
        assert_eq!(applied, 25);
        assert_eq!(syncs.last(), Some(&25), "{syncs:?}");
        assert!(syncs.windows(2).all(|w| w[0] <= w[1]), "{syncs:?}");
        Ok(())
    }

    #[test]
    fn a_failed_sync_stops_the_applier_and_is_returned_not_waited_on() {
        // More batches than the channel holds: an applier blocked on a full channel whose
        // syncer is gone would hang here.
        let mut batches = 0u64;
        let mut apply = |_n: usize| -> Result<()> {
            batches += 1;
            Ok(())
        };
        let fail = || -> Result<()> { Err(Error::Io(std::io::Error::other("disk on fire"))) };
        let err = pipelined(1_000_000, 1, &mut apply, fail).unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert!(
            batches < 1_000_000,
            "the applier went on after the sync failed"
        );
    }

    #[test]
    fn a_failed_apply_is_returned_after_the_syncs_of_what_was_applied() {
        let synced = std::sync::atomic::AtomicU64::new(0);
        let mut calls = 0;
        let mut apply = |_n: usize| -> Result<()> {
            calls += 1;
            if calls == 3 {
                return Err(Error::Io(std::io::Error::other("no space")));
            }
            Ok(())
        };
        let sync = || -> Result<()> {
            synced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        };
        let err = pipelined(100, 10, &mut apply, sync).unwrap_err();
        assert!(err.to_string().contains("no space"), "{err}");
        assert_eq!(calls, 3);
        assert!(synced.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    }
}
