//! The write side of `persona bench`: one feeder thread runs the generator and hands chunks of
//! events to worker threads, partitioned by customer so each customer's events stay in order.
//! The same feeder drives Persona (`Db::ingest_batch` per chunk) and the raw-sled baseline (one
//! `insert` per event of a record of the average profile size, then flush [+ fdatasync] per
//! chunk), so the two differ only in what a worker does with a chunk.

use super::{Latencies, Progress};
use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::generator::{Generator, GeneratorConfig};
use crate::storage::{keys, sled_config, LOG_FILE};
use crate::{Db, Event};
use parking_lot::Mutex;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Chunks queued per worker before the feeder waits.
const QUEUE_PER_WORKER: usize = 4;

/// What one feed run measured.
#[derive(Debug, Clone)]
pub(crate) struct FeedOutcome {
    /// Events handed to workers.
    pub(crate) events: u64,
    /// Wall-clock time from the first event to the last acknowledgement.
    pub(crate) elapsed: Duration,
    /// Latency of each worker call (one chunk).
    pub(crate) latencies: Latencies,
    /// Events per second over the first `window` events.
    pub(crate) first_window_rate: f64,
    /// Events per second over the last `window` events.
    pub(crate) last_window_rate: f64,
    /// Events in each window.
    pub(crate) window: u64,
}

impl FeedOutcome {
    /// Events per second over the whole run.
    pub(crate) fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Progress over time: after every chunk, (when, events done so far).
struct Timeline {
    start: Instant,
    done: AtomicU64,
    points: Mutex<Vec<(Instant, u64)>>,
}

impl Timeline {
    fn add(&self, n: u64) {
        let mut points = self.points.lock();
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        points.push((Instant::now(), done));
    }

    /// Events per second over the first `window` events (up to the first chunk that reached
    /// it) and over the last `window` (from the last chunk that ended before them).
    fn window_rates(&self, window: u64, end: Instant) -> (f64, f64) {
        let points = self.points.lock();
        let total = self.done.load(Ordering::Relaxed);
        let rate =
            |n: u64, from: Instant, to: Instant| n as f64 / (to - from).as_secs_f64().max(1e-9);
        let first = points
            .iter()
            .find(|(_, d)| *d >= window)
            .map(|(t, d)| rate(*d, self.start, *t))
            .unwrap_or(0.0);
        let (t, d) = points
            .iter()
            .rev()
            .find(|(_, d)| *d <= total.saturating_sub(window))
            .copied()
            .unwrap_or((self.start, 0));
        (first, rate(total - d, t, end))
    }
}

/// Runs the generator and feeds chunks of `chunk` events to `threads` workers calling `work`.
pub(crate) fn feed<W>(
    gen_cfg: &GeneratorConfig,
    threads: usize,
    chunk: usize,
    progress: &dyn Progress,
    work: W,
) -> Result<FeedOutcome>
where
    W: Fn(Vec<Event>) -> Result<()> + Sync,
{
    let generator = Generator::new(gen_cfg.clone())
        .map_err(|e| Error::invalid_argument("workload", e.to_string()))?;
    let total = gen_cfg.events;
    let window = (total / 10).clamp(1, 1_000_000);
    let windows = Timeline {
        start: Instant::now(),
        done: AtomicU64::new(0),
        points: Mutex::new(Vec::with_capacity(
            (total / chunk.max(1) as u64) as usize + threads,
        )),
    };
    let result = std::thread::scope(|scope| -> Result<Latencies> {
        let mut senders = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (tx, rx) = crossbeam_channel::bounded::<Vec<Event>>(QUEUE_PER_WORKER);
            senders.push(tx);
            let work = &work;
            let windows = &windows;
            handles.push(scope.spawn(move || -> Result<Vec<u64>> {
                let mut lat = Vec::new();
                for events in rx {
                    let n = events.len() as u64;
                    let t = Instant::now();
                    work(events)?;
                    lat.push(nanos(t.elapsed()));
                    windows.add(n);
                    progress.inc(n);
                }
                Ok(lat)
            }));
        }
        let mut buffers: Vec<Vec<Event>> =
            (0..threads).map(|_| Vec::with_capacity(chunk)).collect();
        let mut fed = Ok(());
        for event in generator {
            let w = (xxhash_rust::xxh3::xxh3_64(event.customer_id.as_bytes()) % threads as u64)
                as usize;
            buffers[w].push(event);
            if buffers[w].len() >= chunk {
                let full = std::mem::replace(&mut buffers[w], Vec::with_capacity(chunk));
                if senders[w].send(full).is_err() {
                    // The worker stopped on an error; its join below reports it.
                    fed = Err(Error::Closed);
                    break;
                }
            }
        }
        for (w, rest) in buffers.into_iter().enumerate() {
            if !rest.is_empty() && fed.is_ok() && senders[w].send(rest).is_err() {
                fed = Err(Error::Closed);
            }
        }
        drop(senders);
        let mut all = Vec::new();
        for h in handles {
            let lat = h
                .join()
                .map_err(|_| Error::Io(std::io::Error::other("a benchmark worker panicked")))??;
            all.extend(lat);
        }
        fed?;
        Ok(Latencies::new(all))
    })?;
    let end = Instant::now();
    let elapsed = end - windows.start;
    let (first_window_rate, last_window_rate) = windows.window_rates(window, end);
    Ok(FeedOutcome {
        events: windows.done.load(Ordering::Relaxed),
        elapsed,
        latencies: result,
        first_window_rate,
        last_window_rate,
        window,
    })
}

/// Persona's side: one `ingest_batch` per chunk. Rejected events are counted in `rejected`;
/// any other per-event error stops the run.
pub(crate) fn ingest_chunk(db: &Db, events: Vec<Event>, rejected: &AtomicU64) -> Result<()> {
    for r in db.ingest_batch(events)? {
        match r {
            Ok(_) => {}
            Err(e) if e.is_bad_input() => {
                rejected.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The raw-sled baseline: a sled database opened with the store's own settings, written with
/// one `insert` per event of `record_bytes` bytes under the customer's profile key, then made
/// durable per chunk the way the writer makes each group commit durable.
///
/// Every value written differs from every other (its first 8 bytes are a write number), as
/// every write of a profile record does: sled 0.34 skips a set whose value equals the stored
/// one (`Tree::insert_inner` returns before writing anything), so a baseline that rewrote one
/// constant value would mostly time comparisons, not writes.
pub(crate) struct RawSled {
    db: sled::Db,
    log: Option<File>,
    durability: Durability,
    value: Vec<u8>,
    /// Write numbers handed out so far.
    writes: AtomicU64,
}

impl RawSled {
    /// Opens a fresh raw sled database at `config.path`.
    pub(crate) fn open(config: &Config, record_bytes: usize) -> Result<RawSled> {
        let db = sled_config(config).open()?;
        let log = File::open(config.path.join(LOG_FILE)).ok();
        // Not all zeros or one byte repeated, so nothing on the way can shortcut it.
        let value: Vec<u8> = (0..record_bytes).map(|i| (i * 131 % 251) as u8).collect();
        Ok(RawSled {
            db,
            log,
            durability: config.durability,
            value,
            writes: AtomicU64::new(0),
        })
    }

    /// Inserts one record per event, then syncs as the durability policy says.
    pub(crate) fn write_chunk(&self, events: Vec<Event>) -> Result<()> {
        let first = self
            .writes
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        for (n, e) in (first..).zip(&events) {
            self.db
                .insert(keys::profile(&e.customer_id), self.value_of(n))?;
        }
        self.sync()
    }

    /// Writes one record per customer in `customers` as a single `apply_batch` (the way the
    /// writer commits a group of requests; a customer named twice keeps the later record),
    /// without syncing: [`RawSled::sync`] does, as the durability stage does after the apply
    /// stage.
    pub(crate) fn apply_batch(&self, customers: &[String]) -> Result<()> {
        let first = self
            .writes
            .fetch_add(customers.len() as u64, Ordering::Relaxed);
        let mut batch = sled::Batch::default();
        for (n, c) in (first..).zip(customers) {
            batch.insert(keys::profile(c), self.value_of(n));
        }
        Ok(self.db.apply_batch(batch)?)
    }

    /// Makes the writes so far durable as the policy says: nothing, a sled flush, or a flush
    /// and an `fdatasync` of sled's log (what the writer does after each group commit).
    pub(crate) fn sync(&self) -> Result<()> {
        match self.durability {
            Durability::None => {}
            Durability::Flush => {
                self.db.flush()?;
            }
            Durability::Fsync => {
                self.db.flush()?;
                if let Some(f) = &self.log {
                    f.sync_data()?;
                }
            }
        }
        Ok(())
    }

    /// The value of write number `n`: the record-sized template with `n` in its first bytes.
    fn value_of(&self, n: u64) -> Vec<u8> {
        let mut value = self.value.clone();
        for (slot, byte) in value.iter_mut().zip(n.to_le_bytes()) {
            *slot = byte;
        }
        value
    }

    /// Bytes on disk.
    pub(crate) fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }
}

/// A duration in nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventKind;

    #[test]
    fn every_baseline_write_is_a_real_write_of_the_record_size() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut config = Config::new(dir.path());
        config.durability = Durability::None;
        let raw = RawSled::open(&config, 100)?;
        let key = keys::profile("c1");
        let mut seen = Vec::new();
        for t in 0..3 {
            let event = Event::new("c1", 1_767_225_600_000 + t, EventKind::Click);
            raw.write_chunk(vec![event])?;
            let stored = raw.db.get(&key)?.ok_or(Error::Closed)?.to_vec();
            assert_eq!(stored.len(), 100);
            // A value equal to the stored one would be skipped by sled, not written.
            assert!(!seen.contains(&stored), "write {t} repeated a value");
            seen.push(stored);
        }
        Ok(())
    }

    #[test]
    fn a_batch_writes_every_customer_once_with_a_new_value_of_the_record_size() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = Config::new(dir.path()).durability(Durability::Fsync);
        let raw = RawSled::open(&config, 64)?;
        let customers: Vec<String> = ["a", "b", "a", "c"].map(String::from).to_vec();
        raw.apply_batch(&customers)?;
        raw.sync()?;
        assert_eq!(raw.db.len(), 3);
        let first_a = raw.db.get(keys::profile("a"))?.ok_or(Error::Closed)?;
        assert_eq!(first_a.len(), 64);
        // A customer named twice keeps the later of its two (different) records.
        assert_eq!(first_a, raw.value_of(2));
        raw.apply_batch(&customers[..1])?;
        let second_a = raw.db.get(keys::profile("a"))?.ok_or(Error::Closed)?;
        assert_ne!(first_a, second_a);
        assert_eq!(second_a, raw.value_of(4));
        Ok(())
    }
}
