//! The lookalike index: a compact in-memory copy of every profile's feature vector, scanned by
//! indexed [`crate::Db::similar`] instead of decoding records from sled.
//!
//! **What a row holds.** Per profile, the raw feature vector as of the profile's last event
//! (`last_seen_ms`), each dimension quantised to 8 bits over its
//! [`FeatureLayout::typical_range`], plus that time as `f32` days. A row is a function of the
//! profile's state alone — not of the scaler, the centroids or the time it was written — so the
//! writer's updates and a rebuild from the records give identical rows, and a model change
//! (refit, rollback, scaler drift) never makes the index stale.
//!
//! **Distance as of now.** A query weighs each dimension by the current scaler (distance in
//! standardised units, like the exact search) and brings each row forward to the watermark: the
//! 16 time-dependent dimensions ([`FeatureLayout::time_dependence`]) are looked up in tables
//! indexed by (time since the row's last event, bucketed; the 8-bit code), built once per index.
//! The rest of the error is quantisation (1/16 on the log scale) and the age bucketing, so the
//! index only *shortlists*; [`crate::Db::similar`] re-ranks the shortlist exactly from the
//! records.
//!
//! **Layout.** Rows are partitioned in two levels. First by segment (the record's `segment`,
//! as `Db::segment_members` lists them; one more group for profiles without a segment); then
//! each group into up to 64 **sub-lists** by k-means over the rows' time-independent codes
//! ([`sublists`]), about 1,000–2,000 rows each. A row's sub-list is the sub-centroid nearest to its codes, so
//! it is a function of the row and the group's centroids alone; the writer moves a row when its
//! segment or its codes change. A query takes the sub-lists of the probed segments, ranks them
//! by the distance from the query to their centroids (current scaler), and scans whole
//! sub-lists nearest first until it has seen [`SCAN_ROWS`] rows — a fixed cost, whatever the
//! size of the store. Within a row the dimensions are reordered so the time-independent ones
//! come first: their part of the distance is a lower bound of the whole and is computed first,
//! vectorised, and the time-dependent part only for rows that could still enter the shortlist.
//! Customer ids live in one byte arena; a hash table of slot numbers finds a customer's row for
//! updates. About 61 + 4 + 4 bytes per row, 12 per slot, ~10 for the hash table and the id's
//! own bytes; the centroids are ~12 KB per segment.
//!
//! **Consistency.** The writer applies a batch's changes (every written profile's new row and
//! segment, every erased customer) only after the batch committed; a failed commit leaves the
//! index as it was. The first time the index is needed after open (`Db::similar`, or
//! `Db::prepare_lookalikes`) it is rebuilt by a background scan of the records (damaged
//! records are skipped with a warning), and then each group's sub-centroids are trained from a
//! sample of its rows and its rows redistributed (one group at a time under the write lock);
//! until it is [ready](LookalikeIndex::is_ready) queries use the old path. Centroids are
//! re-trained only after a re-segmentation ([`LookalikeIndex::retrain`]) and at the next
//! build: rows written in between go to the nearest existing one. While
//! it builds, the writer's updates win: the scan inserts a customer only if the writer has
//! neither written nor erased them since the scan started.

mod sublists;

use crate::features::consent::Consent;
use crate::features::vector::{FeatureLayout, TimeDependence, LOG_RANGE};
use crate::features::{ProfileState, DAY_MS};
use crate::storage::Store;
use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use sublists::{SubLists, MAX_SUBLISTS, SAMPLE_PER_LIST};

/// Age buckets of the time tables: bucket `b` covers ages (b/4)² ≤ days < ((b+1)/4)², so
/// hours apart near now and ~30 days apart after ten years; the last one takes everything older.
const AGE_BUCKETS: usize = 256;
/// Buckets per √day.
const BUCKETS_PER_SQRT_DAY: f32 = 4.0;
/// Rows scanned by the builder between two locks of the index.
const BUILD_CHUNK: usize = 1024;
/// Rows a query scans at least (whole sub-lists, nearest first, until this many are seen).
/// Fixed, so the cost of the scan does not grow with the store (~1.4 ms; at 1M customers it
/// is 6–9% of the rows; half of it cost recall at 10M events: docs/bench-history.md).
const SCAN_ROWS: usize = 49_152;
/// A slot that holds no customer (its number is on the free list).
const FREE: u16 = u16::MAX;

/// One profile's compact entry, computed from its state alone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// 8-bit codes of the dimensions, in the quantiser's order (time-independent first).
    codes: Vec<u8>,
    /// The time the row is evaluated at (the last event), in days since the epoch; +∞ for a
    /// profile without events (nothing of it changes with time).
    days: f32,
}

/// How vectors become rows, and the time tables that bring a row forward.
struct Quantiser {
    layout: FeatureLayout,
    /// Row position → layout dimension.
    order: Vec<usize>,
    /// Per row position: the lower end and the step of the quantisation.
    lo: Vec<f32>,
    step: Vec<f32>,
    /// Positions `n_static..` are time-dependent.
    n_static: usize,
    /// Per time-dependent position: its kind.
    kinds: Vec<TimeDependence>,
    /// `[bucket][code]` → the value as of `age(bucket)` after the row's time.
    days_table: Vec<f32>,
    decay_table: Vec<f32>,
}

impl Quantiser {
    fn new(layout: FeatureLayout) -> Quantiser {
        let dim = layout.dim();
        let (mut order, mut timed): (Vec<usize>, Vec<usize>) =
            (0..dim).partition(|&i| layout.time_dependence(i).is_none());
        let n_static = order.len();
        let kinds = timed
            .iter()
            .filter_map(|&i| layout.time_dependence(i))
            .collect();
        order.append(&mut timed);
        let (mut lo, mut step) = (Vec::with_capacity(dim), Vec::with_capacity(dim));
        for &i in &order {
            let (l, h) = layout.typical_range(i);
            lo.push(l as f32);
            step.push(((h - l) / 255.0) as f32);
        }
        // Every time-dependent dimension is log-scaled over (0, LOG_RANGE): code c means c/16.
        let log_step = LOG_RANGE / 255.0;
        let half_life_days = layout.params().half_life_ms / DAY_MS;
        let mut days_table = Vec::with_capacity(AGE_BUCKETS * 256);
        let mut decay_table = Vec::with_capacity(AGE_BUCKETS * 256);
        for b in 0..AGE_BUCKETS {
            let age = ((b as f64 + 0.5) / f64::from(BUCKETS_PER_SQRT_DAY)).powi(2);
            let decay = (-std::f64::consts::LN_2 * age / half_life_days).exp();
            for c in 0..256 {
                let v = c as f64 * log_step;
                // ln(1 + d) at the row's time → ln(1 + d + age) now.
                days_table.push((v.exp() + age).ln() as f32);
                // ln(1 + x) at the row's time → ln(1 + x · decay) now.
                decay_table.push((v.exp_m1() * decay).ln_1p() as f32);
            }
        }
        Quantiser {
            layout,
            order,
            lo,
            step,
            n_static,
            kinds,
            days_table,
            decay_table,
        }
    }

    fn width(&self) -> usize {
        self.order.len()
    }

    /// The row of a profile: its vector as of its last event, quantised.
    fn row(&self, state: &ProfileState) -> Row {
        let at = state.last_seen_ms.unwrap_or(0);
        let x = self.layout.vector(state, at);
        let codes = self
            .order
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let c = ((x[i] as f32 - self.lo[j]) / self.step[j]).round();
                // NaN cannot occur (vectors are finite); clamp covers the rest.
                c.clamp(0.0, 255.0) as u8
            })
            .collect();
        let days = match state.last_seen_ms {
            Some(t) => (t as f64 / DAY_MS) as f32,
            None => f32::INFINITY,
        };
        Row { codes, days }
    }
}

/// A query prepared for scanning rows: per position, the weights that turn code differences
/// into standardised units.
pub(crate) struct Query {
    /// Static positions: distance term = (a − b · code)².
    a: Vec<f32>,
    b: Vec<f32>,
    /// Time-dependent positions: term = (w · (q − table\[code\]))².
    w: Vec<f32>,
    q: Vec<f32>,
    now_days: f32,
}

/// A customer's place: which sub-list (group × [`MAX_SUBLISTS`] + sub-list) and row, and where
/// its id is in the arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    bucket: u16,
    row: u32,
    name_at: u32,
    name_len: u16,
}

/// The rows of one sub-list.
#[derive(Default)]
struct Bucket {
    codes: Vec<u8>,
    days: Vec<f32>,
    slots: Vec<u32>,
}

#[derive(Default)]
struct Data {
    /// Sub-list `g * MAX_SUBLISTS + s` is sub-list `s` of group `g` (segment `g`, or the
    /// profiles without a segment for `g = k`).
    buckets: Vec<Bucket>,
    /// Per group: its sub-centroids.
    routing: Vec<SubLists>,
    /// Time-independent positions (the codes sub-lists are chosen by).
    n_static: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    names: Vec<u8>,
    /// Bytes of `names` no slot points to any more.
    garbage: usize,
    table: HashTable<u32>,
    /// While the background build runs: customers the writer erased since it started.
    erased_while_building: HashSet<String>,
    building: bool,
}

fn hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

fn name_of<'a>(slots: &[Slot], names: &'a [u8], slot: u32) -> &'a [u8] {
    let s = slots[slot as usize];
    &names[s.name_at as usize..s.name_at as usize + s.name_len as usize]
}

impl Data {
    fn find(&self, id: &str) -> Option<u32> {
        let (slots, names) = (&self.slots, &self.names);
        self.table
            .find(hash(id), |&s| name_of(slots, names, s) == id.as_bytes())
            .copied()
    }

    fn push_row(&mut self, bucket: u16, slot: u32, row: &Row) -> u32 {
        let b = &mut self.buckets[bucket as usize];
        b.codes.extend_from_slice(&row.codes);
        b.days.push(row.days);
        b.slots.push(slot);
        (b.slots.len() - 1) as u32
    }

    /// Removes a row by swapping the last row of its array into its place.
    fn take_row(&mut self, bucket: u16, row: u32, width: usize) {
        let b = &mut self.buckets[bucket as usize];
        let (r, last) = (row as usize, b.slots.len() - 1);
        if r != last {
            b.codes
                .copy_within(last * width..(last + 1) * width, r * width);
            b.days[r] = b.days[last];
            b.slots[r] = b.slots[last];
            self.slots[b.slots[r] as usize].row = row;
        }
        b.codes.truncate(last * width);
        b.days.truncate(last);
        b.slots.truncate(last);
    }

    /// The sub-list a row of `group` belongs in.
    fn list_of(&self, group: u16, row: &Row) -> u16 {
        let sub = self.routing[group as usize].nearest(&row.codes[..self.n_static]);
        (group as usize * MAX_SUBLISTS + sub) as u16
    }

    fn upsert(&mut self, id: &str, group: u16, row: &Row, width: usize) {
        let bucket = self.list_of(group, row);
        if let Some(slot) = self.find(id) {
            let s = self.slots[slot as usize];
            if s.bucket == bucket {
                let b = &mut self.buckets[bucket as usize];
                let r = s.row as usize;
                b.codes[r * width..(r + 1) * width].copy_from_slice(&row.codes);
                b.days[r] = row.days;
            } else {
                self.take_row(s.bucket, s.row, width);
                let r = self.push_row(bucket, slot, row);
                let s = &mut self.slots[slot as usize];
                s.bucket = bucket;
                s.row = r;
            }
            return;
        }
        let name_at = self.names.len() as u32;
        self.names.extend_from_slice(id.as_bytes());
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    bucket: FREE,
                    row: 0,
                    name_at: 0,
                    name_len: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let r = self.push_row(bucket, slot, row);
        self.slots[slot as usize] = Slot {
            bucket,
            row: r,
            name_at,
            // Customer ids are at most 128 bytes (validated before anything is stored).
            name_len: id.len().min(u16::MAX as usize) as u16,
        };
        let (slots, names) = (&self.slots, &self.names);
        self.table.insert_unique(hash(id), slot, |&s| {
            xxhash_rust::xxh3::xxh3_64(name_of(slots, names, s))
        });
    }

    fn remove(&mut self, id: &str, width: usize) {
        if self.building {
            self.erased_while_building.insert(id.to_string());
        }
        let Some(slot) = self.find(id) else { return };
        let (slots, names) = (&self.slots, &self.names);
        if let Ok(entry) = self
            .table
            .find_entry(hash(id), |&s| name_of(slots, names, s) == id.as_bytes())
        {
            entry.remove();
        }
        let s = self.slots[slot as usize];
        self.take_row(s.bucket, s.row, width);
        self.slots[slot as usize].bucket = FREE;
        self.free.push(slot);
        self.garbage += s.name_len as usize;
        if self.garbage > 1 << 20 && self.garbage * 2 > self.names.len() {
            self.compact_names();
        }
    }

    /// Installs `routing` as group `group`'s sub-centroids and moves the group's rows into the
    /// sub-lists they now belong in.
    fn redistribute(&mut self, group: usize, routing: SubLists, width: usize) {
        self.routing[group] = routing;
        let lists = group * MAX_SUBLISTS..(group + 1) * MAX_SUBLISTS;
        let old: Vec<Bucket> = self.buckets[lists.clone()]
            .iter_mut()
            .map(std::mem::take)
            .collect();
        let ns = self.n_static;
        let target: Vec<Vec<usize>> = old
            .iter()
            .map(|b| {
                b.codes
                    .chunks_exact(width)
                    .map(|c| self.routing[group].nearest(&c[..ns]))
                    .collect()
            })
            .collect();
        let mut counts = [0usize; MAX_SUBLISTS];
        target.iter().flatten().for_each(|&s| counts[s] += 1);
        for (b, &n) in self.buckets[lists.clone()].iter_mut().zip(&counts) {
            let n = n + n / 8;
            b.codes.reserve_exact(n * width);
            b.days.reserve_exact(n);
            b.slots.reserve_exact(n);
        }
        for (b, subs) in old.iter().zip(&target) {
            for ((codes, &days), (&slot, &s)) in b
                .codes
                .chunks_exact(width)
                .zip(&b.days)
                .zip(b.slots.iter().zip(subs))
            {
                let list = lists.start + s;
                let to = &mut self.buckets[list];
                to.codes.extend_from_slice(codes);
                to.days.push(days);
                to.slots.push(slot);
                let at = (to.slots.len() - 1) as u32;
                let sl = &mut self.slots[slot as usize];
                sl.bucket = list as u16;
                sl.row = at;
            }
        }
    }

    /// Rewrites the id arena without the ids of erased customers.
    fn compact_names(&mut self) {
        let mut names = Vec::with_capacity(self.names.len() - self.garbage);
        for s in self.slots.iter_mut().filter(|s| s.bucket != FREE) {
            let at = names.len() as u32;
            names.extend_from_slice(&self.names[s.name_at as usize..][..s.name_len as usize]);
            s.name_at = at;
        }
        self.names = names;
        self.garbage = 0;
    }
}

/// Heap entry of the shortlist: (approximate squared distance, bucket, row); max-heap.
#[derive(PartialEq)]
struct Near(f32, u16, u32);
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .total_cmp(&other.0)
            .then((self.1, self.2).cmp(&(other.1, other.2)))
    }
}

/// What the background build reached.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BuildState {
    /// Scanning the records.
    Building,
    /// Every profile is indexed.
    Ready,
    /// The scan failed (the message says why) or was stopped; queries keep the old path.
    Failed(String),
}

/// One entry of the lookalike index as [`crate::Db::lookalike_index_rows`] shows it: customer
/// id, segment, 8-bit codes, the time they are as of (days since the epoch). For tests.
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub type LookalikeRow = (String, Option<u16>, Vec<u8>, f32);

/// The index (see the module documentation).
pub(crate) struct LookalikeIndex {
    quantiser: Quantiser,
    /// Segments; bucket `k` holds profiles without a segment.
    k: usize,
    data: RwLock<Data>,
    ready: AtomicBool,
    state: Mutex<BuildState>,
    done: parking_lot::Condvar,
    stop: AtomicBool,
    /// The consent of a customer who set none: those without consent to profiling are not
    /// indexed (`features/consent.rs`).
    consent: Consent,
}

impl LookalikeIndex {
    /// An empty index for `k` segments, waiting for its build.
    pub(crate) fn new(layout: FeatureLayout, k: usize) -> LookalikeIndex {
        let quantiser = Quantiser::new(layout);
        let data = Data {
            buckets: (0..(k + 1) * MAX_SUBLISTS)
                .map(|_| Bucket::default())
                .collect(),
            routing: vec![SubLists::default(); k + 1],
            n_static: quantiser.n_static,
            building: true,
            ..Data::default()
        };
        LookalikeIndex {
            quantiser,
            k,
            data: RwLock::new(data),
            ready: AtomicBool::new(false),
            state: Mutex::new(BuildState::Building),
            done: parking_lot::Condvar::new(),
            stop: AtomicBool::new(false),
            consent: Consent::default(),
        }
    }

    /// The index, with `defaults` the consent of a customer who set none.
    pub(crate) fn with_consent(mut self, defaults: Consent) -> LookalikeIndex {
        self.consent = defaults;
        self
    }

    /// Whether a profile in `state` may be indexed (its customer consents to profiling).
    fn indexable(&self, state: &ProfileState) -> bool {
        Consent::of(state, self.consent).profiling
    }

    /// Whether every profile is indexed (queries may use it).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(AtomicOrdering::Acquire)
    }

    /// Blocks until the build finished; returns how.
    pub(crate) fn wait_built(&self) -> BuildState {
        let mut state = self.state.lock();
        while *state == BuildState::Building {
            self.done.wait(&mut state);
        }
        state.clone()
    }

    /// Asks a running build to stop (the store is closing).
    pub(crate) fn stop_build(&self) {
        self.stop.store(true, AtomicOrdering::Release);
    }

    fn bucket_of(&self, segment: Option<u16>) -> u16 {
        match segment {
            Some(s) if (s as usize) < self.k => s,
            _ => self.k as u16,
        }
    }

    /// Applies a committed batch: erased customers leave, written profiles get their new rows
    /// (and move to another sub-list when their segment or their codes changed); a written
    /// profile without consent to profiling leaves.
    pub(crate) fn commit<'a>(
        &self,
        written: impl Iterator<Item = (&'a str, Option<u16>, &'a ProfileState)>,
        erased: impl Iterator<Item = &'a str>,
    ) {
        // Rows are computed before taking the lock, so readers wait only for the copying.
        let mut private: Vec<&str> = Vec::new();
        let rows: Vec<(&str, u16, Row)> = written
            .filter(|(id, _, state)| {
                let ok = self.indexable(state);
                if !ok {
                    private.push(id);
                }
                ok
            })
            .map(|(id, seg, state)| (id, self.bucket_of(seg), self.quantiser.row(state)))
            .collect();
        let width = self.quantiser.width();
        let mut data = self.data.write();
        for id in erased.chain(private) {
            data.remove(id, width);
        }
        for (id, bucket, row) in &rows {
            data.upsert(id, *bucket, row, width);
        }
    }

    /// Rebuilds the index from the records (run on a thread of its own when the index is first
    /// needed). Damaged
    /// records are skipped with a warning.
    pub(crate) fn build(&self, store: &Store) {
        let outcome = self.scan(store);
        let mut state = self.state.lock();
        *state = match outcome {
            Ok(()) => {
                self.split_groups();
                let mut data = self.data.write();
                data.building = false;
                data.erased_while_building = HashSet::new();
                // Give back the growth slack of the scan, keeping 1/8 headroom for writes.
                let width = self.quantiser.width();
                for b in &mut data.buckets {
                    let rows = b.slots.len() + b.slots.len() / 8;
                    b.codes.shrink_to(rows * width);
                    b.days.shrink_to(rows);
                    b.slots.shrink_to(rows);
                }
                let n = data.slots.len();
                data.slots.shrink_to(n + n / 8);
                self.ready.store(true, AtomicOrdering::Release);
                BuildState::Ready
            }
            Err(why) if self.stop.load(AtomicOrdering::Acquire) => {
                // Closing a store before its index was built is normal (a short CLI command).
                tracing::debug!("lookalike index build stopped: {why}");
                BuildState::Failed(why)
            }
            Err(why) => {
                tracing::warn!("lookalike index not built ({why}); similar scans the records");
                BuildState::Failed(why)
            }
        };
        self.done.notify_all();
    }

    /// Re-trains the sub-lists of every group from the rows it holds now (after a
    /// re-segmentation moved rows between groups); nothing while the index is still building
    /// (the build trains them when its scan is done).
    pub(crate) fn retrain(&self) {
        if self.is_ready() {
            self.split_groups();
        }
    }

    /// Trains every group's sub-centroids from a sample of its rows and moves its rows into
    /// their sub-lists, one group per lock of the index (the writer waits for one group's
    /// redistribution at most).
    fn split_groups(&self) {
        let (width, ns) = (self.quantiser.width(), self.quantiser.n_static);
        for g in 0..=self.k {
            if self.stop.load(AtomicOrdering::Acquire) {
                return; // closing: groups not split yet keep one list each, still correct
            }
            let lists = g * MAX_SUBLISTS..(g + 1) * MAX_SUBLISTS;
            // The sample is copied under a read lock; training needs no lock.
            let (sample, n) = {
                let data = self.data.read();
                let rows: usize = data.buckets[lists.clone()]
                    .iter()
                    .map(|b| b.slots.len())
                    .sum();
                let n = SubLists::lists_for(rows);
                let every = (rows / (n * SAMPLE_PER_LIST)).max(1);
                let sample: Vec<u8> = data.buckets[lists]
                    .iter()
                    .flat_map(|b| b.codes.chunks_exact(width))
                    .step_by(every)
                    .flat_map(|c| c[..ns].iter().copied())
                    .collect();
                (sample, n)
            };
            let routing = SubLists::train(&sample, ns, n);
            self.data.write().redistribute(g, routing, width);
        }
    }

    fn scan(&self, store: &Store) -> Result<(), String> {
        let mut pending: Vec<(String, u16, Row)> = Vec::with_capacity(BUILD_CHUNK);
        let width = self.quantiser.width();
        let flush = |pending: &mut Vec<(String, u16, Row)>| {
            let mut data = self.data.write();
            for (id, bucket, row) in pending.drain(..) {
                // The writer's view is newer than the scan's: keep it.
                if data.erased_while_building.contains(&id) || data.find(&id).is_some() {
                    continue;
                }
                data.upsert(&id, bucket, &row, width);
            }
        };
        for item in store.scan_profiles() {
            if self.stop.load(AtomicOrdering::Acquire) {
                return Err("stopped: the store is closing".into());
            }
            let (id, bytes) = item.map_err(|e| e.to_string())?;
            match store.decode_profile_current(&id, &bytes) {
                Ok(rec) if !self.indexable(&rec.state) => {}
                Ok(rec) => {
                    let row = self.quantiser.row(&rec.state);
                    pending.push((id, self.bucket_of(rec.segment), row));
                }
                Err(e) => tracing::warn!("lookalike index: skipping a profile: {e}"),
            }
            if pending.len() >= BUILD_CHUNK {
                flush(&mut pending);
            }
        }
        flush(&mut pending);
        Ok(())
    }

    /// Prepares a query: `x` is the query's raw vector as of `now_ms`, `inv_divisor` the
    /// scaler's 1 / divisor per dimension (distances in standardised units).
    pub(crate) fn query(&self, x: &[f64], inv_divisor: &[f64], now_ms: i64) -> Query {
        let q = &self.quantiser;
        let n = q.n_static;
        let mut query = Query {
            a: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
            w: Vec::with_capacity(q.width() - n),
            q: Vec::with_capacity(q.width() - n),
            now_days: (now_ms as f64 / DAY_MS) as f32,
        };
        for (j, &i) in q.order.iter().enumerate() {
            let w = inv_divisor[i] as f32;
            if j < n {
                query.a.push(w * (x[i] as f32 - q.lo[j]));
                query.b.push(w * q.step[j]);
            } else {
                query.w.push(w);
                query.q.push(x[i] as f32);
            }
        }
        query
    }

    /// The ids of (at most) the `n` rows nearest to `query` by approximate distance as of
    /// now, among the rows of the sub-lists of `segments` (and of the profiles without a
    /// segment) whose centroids are nearest to the query — whole sub-lists, nearest first,
    /// until [`SCAN_ROWS`] rows were seen — nearest first.
    pub(crate) fn shortlist(&self, query: &Query, segments: &[u16], n: usize) -> Vec<String> {
        if n == 0 {
            return Vec::new();
        }
        let qz = &self.quantiser;
        let (width, ns) = (qz.width(), qz.n_static);
        let data = self.data.read();
        let mut heap: BinaryHeap<Near> = BinaryHeap::with_capacity(n + 1);
        let mut groups: Vec<usize> = segments
            .iter()
            .map(|&s| s as usize)
            .filter(|&s| s < self.k)
            .collect();
        groups.push(self.k);
        groups.sort_unstable();
        groups.dedup();
        let mut lists: Vec<(f32, u16)> = Vec::new();
        for g in groups {
            let routing = &data.routing[g];
            for s in 0..routing.len() {
                let list = g * MAX_SUBLISTS + s;
                if !data.buckets[list].slots.is_empty() {
                    let d = routing.query_distance(s, &query.a, &query.b);
                    lists.push((d, list as u16));
                }
            }
        }
        lists.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut seen = 0;
        for &(_, bi) in &lists {
            if seen >= SCAN_ROWS {
                break;
            }
            let bucket = &data.buckets[bi as usize];
            seen += bucket.slots.len();
            for (r, (codes, &days)) in bucket
                .codes
                .chunks_exact(width)
                .zip(&bucket.days)
                .enumerate()
            {
                let bound = heap.peek().filter(|_| heap.len() == n).map(|w| w.0);
                let mut d = static_part(&codes[..ns], &query.a, &query.b);
                if bound.is_some_and(|w| d >= w) {
                    continue; // the rest only adds: it cannot enter the shortlist
                }
                let age = (query.now_days - days).max(0.0);
                let b = ((age.sqrt() * BUCKETS_PER_SQRT_DAY) as usize).min(AGE_BUCKETS - 1) * 256;
                for (t, &c) in codes[ns..].iter().enumerate() {
                    let table = match qz.kinds[t] {
                        TimeDependence::DaysSince => &qz.days_table,
                        TimeDependence::Decayed => &qz.decay_table,
                    };
                    let diff = query.w[t] * (query.q[t] - table[b + c as usize]);
                    d += diff * diff;
                }
                if heap.len() < n {
                    heap.push(Near(d, bi, r as u32));
                } else if bound.is_some_and(|w| d < w) {
                    heap.pop();
                    heap.push(Near(d, bi, r as u32));
                }
            }
        }
        let mut near = heap.into_vec();
        near.sort();
        near.into_iter()
            .map(|Near(_, bi, r)| {
                let slot = data.buckets[bi as usize].slots[r as usize];
                String::from_utf8_lossy(name_of(&data.slots, &data.names, slot)).into_owned()
            })
            .collect()
    }

    /// Every indexed customer with its segment and row, in id order (tests compare the index
    /// the writer maintained with one rebuilt from the records).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn rows(&self) -> Vec<LookalikeRow> {
        let width = self.quantiser.width();
        let data = self.data.read();
        let mut out: Vec<LookalikeRow> = data
            .slots
            .iter()
            .filter(|s| s.bucket != FREE)
            .map(|s| {
                let b = &data.buckets[s.bucket as usize];
                let r = s.row as usize;
                let name = &data.names[s.name_at as usize..][..s.name_len as usize];
                let group = s.bucket as usize / MAX_SUBLISTS;
                (
                    String::from_utf8_lossy(name).into_owned(),
                    (group != self.k).then_some(group as u16),
                    b.codes[r * width..(r + 1) * width].to_vec(),
                    b.days[r],
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Customers indexed.
    #[cfg(any(feature = "cli", feature = "testing"))]
    pub(crate) fn len(&self) -> usize {
        let data = self.data.read();
        data.slots.len() - data.free.len()
    }

    /// Approximate heap bytes held (rows, slots, ids, hash table).
    #[cfg(feature = "cli")]
    pub(crate) fn heap_bytes(&self) -> usize {
        let data = self.data.read();
        let rows: usize = data
            .buckets
            .iter()
            .map(|b| b.codes.capacity() + 4 * b.days.capacity() + 4 * b.slots.capacity())
            .sum();
        let lists: usize = std::mem::size_of::<Bucket>() * data.buckets.capacity()
            + data.routing.iter().map(SubLists::heap_bytes).sum::<usize>();
        rows + lists
            + std::mem::size_of::<Slot>() * data.slots.capacity()
            + 4 * data.free.capacity()
            + data.names.capacity()
            + 5 * data.table.capacity()
    }
}

/// Σ (a − b · code)² over the time-independent positions, in eight lanes so it vectorises.
fn static_part(codes: &[u8], a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = codes.len() / 8 * 8;
    for ((c, a), b) in codes[..chunks]
        .chunks_exact(8)
        .zip(a.chunks_exact(8))
        .zip(b.chunks_exact(8))
    {
        for (((lane, &c), &a), &b) in lanes.iter_mut().zip(c).zip(a).zip(b) {
            let d = a - b * f32::from(c);
            *lane += d * d;
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for j in chunks..codes.len() {
        let d = a[j] - b[j] * f32::from(codes[j]);
        sum += d * d;
    }
    sum
}

#[cfg(test)]
mod tests;
