//! The storage engine's ceiling for `persona bench --server`: how fast sled alone commits what
//! the RESP server's writer committed, measured at the end of the same run on the same machine.
//!
//! `EVENT.ADD` ends in one sled `apply_batch` per group commit and one sync of it. The server
//! reports (`INFO stats`) how many requests its commits held and how many bytes each key write
//! carried; this module then opens a raw sled database next to the served store (same sled
//! settings, same durability, same disk) and has one thread commit records of that size under
//! random `cust:…` profile keys (the keys `redis-benchmark -r` draws), in batches of that size,
//! while a second thread makes them durable like the durability stage makes group commits, with
//! no client and no server running. That rate is
//! what the write side of the server could reach if everything Persona does per request — RESP,
//! decoding, features, the three models, encoding, the lookalike index — were free.

use super::ingest::RawSled;
use crate::config::Config;
use crate::error::Result;
use serde::Serialize;
use std::time::Instant;

/// What the server's write pipeline committed, from the `persona_*` lines of `INFO stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    ///
    /// # Examples
    /// ```
    /// use persona::bench::ceiling::ServedWrites;
    /// let info = "# Stats\r\npersona_commits:2\r\npersona_items_committed:300\r\n\
    ///             persona_key_writes:306\r\npersona_bytes_written:150000\r\n";
    /// let w = ServedWrites::from_info(info).unwrap();
    /// assert_eq!((w.group_size(), w.bytes_per_key_write()), (150, 490));
    /// ```
    pub fn from_info(info: &str) -> Option<ServedWrites> {
        let field = |name: &str| -> Option<u64> {
            info.lines().find_map(|line| {
                let (key, value) = line.trim_end().split_once(':')?;
                (key == name).then(|| value.parse().ok())?
            })
        };
        let writes = ServedWrites {
            commits: field("persona_commits")?,
            items: field("persona_items_committed")?,
            key_writes: field("persona_key_writes")?,
            bytes_written: field("persona_bytes_written")?,
        };
        Some(writes)
    }

    /// What was committed between `earlier` and these counters.
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
        usize::try_from((self.items + self.commits / 2) / self.commits.max(1))
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// Bytes (key and value) per key write, rounded.
    pub fn bytes_per_key_write(&self) -> usize {
        usize::try_from((self.bytes_written + self.key_writes / 2) / self.key_writes.max(1))
            .unwrap_or(usize::MAX)
    }
}

/// The ceiling measured: raw sled committing the server's batches alone on the machine.
#[derive(Debug, Clone, Serialize)]
pub struct StorageCeiling {
    /// The server's counters the batches were shaped by.
    pub served: ServedWrites,
    /// Records per batch (the server's requests per commit).
    pub batch: usize,
    /// Bytes of each value: the server's bytes per key write less the key's length, at least 8
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

/// Measures the ceiling: opens a raw sled database at `config.path` (which must not hold one),
/// commits `inserts` untimed records, then times `inserts` more, in batches shaped by `served`,
/// keys drawn uniformly from `keyspace` customers with a fixed seed.
///
/// # Errors
/// [`crate::Error::Storage`] / [`crate::Error::Io`] from sled or the sync.
pub fn measure(
    config: &Config,
    served: ServedWrites,
    keyspace: u64,
    inserts: u64,
) -> Result<StorageCeiling> {
    let batch = served.group_size();
    let key_bytes = crate::storage::keys::profile(&customer(0)).len();
    let value_bytes = served
        .bytes_per_key_write()
        .saturating_sub(key_bytes)
        .max(8);
    let raw = RawSled::open(config, value_bytes)?;
    // xorshift64*: cheap, fixed, and far from the time being measured.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D) % keyspace.max(1)
    };
    // One thread applies batches while another makes them durable, as the server's apply and
    // durability stages do: a sync covers every batch applied before it started, and the
    // applier runs at most two batches ahead of the syncs.
    let mut run = |count: u64| -> Result<()> {
        let (applied, to_sync) = crossbeam_channel::bounded::<()>(2);
        std::thread::scope(|scope| {
            let syncer = scope.spawn(|| -> Result<()> {
                while to_sync.recv().is_ok() {
                    while to_sync.try_recv().is_ok() {}
                    raw.sync()?;
                }
                Ok(())
            });
            let mut applying = || -> Result<()> {
                let mut done = 0;
                while done < count {
                    let n = usize::try_from(count - done).unwrap_or(batch).min(batch);
                    let customers: Vec<String> = (0..n).map(|_| customer(next())).collect();
                    raw.apply_batch(&customers)?;
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
                Err(crate::Error::Io(std::io::Error::other(
                    "the storage ceiling's sync thread panicked",
                )))
            });
            applied_all.and(synced_all)
        })
    };
    run(inserts)?;
    let start = Instant::now();
    run(inserts)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;

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
        assert_eq!(w.bytes_per_key_write(), 440);
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
    }

    #[test]
    fn shapes_round_and_never_reach_zero() {
        assert_eq!(served(3, 2, 1, 0).group_size(), 1);
        assert_eq!(served(0, 0, 0, 0).group_size(), 1);
        assert_eq!(served(0, 0, 0, 0).bytes_per_key_write(), 0);
        assert_eq!(served(2, 3, 2, 5).group_size(), 2);
        assert_eq!(served(2, 3, 2, 5).bytes_per_key_write(), 3);
    }

    #[test]
    fn commits_the_server_shaped_batches_into_a_raw_sled_database() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = Config::new(dir.path().join("raw")).durability(Durability::Fsync);
        let w = served(4, 40, 40, 40 * 300);
        let c = measure(&config, w, 50, 25)?;
        assert_eq!(c.batch, 10);
        assert_eq!(
            c.value_bytes,
            300 - crate::storage::keys::profile("cust:000000000000").len()
        );
        assert_eq!(c.inserts, 25);
        assert!(c.inserts_per_sec > 0.0);
        // That the batches are real writes of that size: `RawSled::write_batch`'s test.
        Ok(())
    }
}
