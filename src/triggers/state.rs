//! What the writer keeps about triggers: the definitions, the outbox's id range, and per
//! customer the last firing of each trigger and the firings of the day (for the cooldowns and
//! the daily cap), rebuilt at open from the firings the outbox still holds.

use super::silence::Silence;
pub(crate) use super::silence::SilenceUndo;
use super::{Condition, Fired, Trigger};
use crate::event::utc_day;
use crate::model::strategy::Strategy;
use std::collections::{HashMap, VecDeque};

const DAY_MS: i64 = 86_400_000;

/// How late (in days of event time behind the watermark) an event may come and still have its
/// firings checked against the cooldowns and the daily cap: the state remembers each
/// customer's firings that long. A crossing by an event older than that is suppressed, since
/// whether it would exceed a cooldown or the cap can no longer be told.
pub(crate) const LATE_DAYS: i64 = 7;

/// A customer's profile as a trigger sees it, before or after an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Observed {
    /// Segment.
    pub(crate) segment: Option<u16>,
    /// Purchase propensity.
    pub(crate) propensity: f64,
    /// Lifetime spend.
    pub(crate) spend: f64,
    /// Purchases.
    pub(crate) purchases: u64,
}

/// A firing decided by the writer, before the commit gives it its id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Firing {
    /// The firing, its `id` 0 until written.
    pub(crate) fired: Fired,
}

/// The writer's trigger state (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct TriggerState {
    /// Defined in the config file (cannot be deleted at run time).
    pub(crate) from_config: Vec<Trigger>,
    /// Defined at run time (stored under `Mtriggers`).
    pub(crate) from_runtime: Vec<Trigger>,
    /// Firings allowed per customer per day (event-time UTC day); 0: no cap.
    pub(crate) daily_cap: u32,
    /// Firings the outbox keeps at most (older ones are removed as new ones are written).
    pub(crate) retention: u64,
    /// Age past which a firing is removed (event time, against the watermark); 0: no limit.
    pub(crate) retention_ms: i64,
    /// The id the next firing gets.
    pub(crate) next_id: u64,
    /// The outbox's keys, oldest first.
    chunks: VecDeque<Chunk>,
    /// Firings the outbox holds.
    held: u64,
    /// (trigger, customer) → time of the last firing.
    last: HashMap<(String, String), i64>,
    /// customer → firings per day, for the days within [`LATE_DAYS`] of the watermark's
    /// (an event may come late): (day, firings), the older first.
    today: HashMap<String, Vec<(i64, u32)>>,
    /// Per trigger: firings written and suppressed since the store was opened.
    pub(crate) counts: HashMap<String, (u64, u64)>,
    /// Per `INACTIVE_DAYS` trigger, by name: when each customer falls silent.
    inactive: HashMap<String, Silence>,
    /// The watermark's day when `last` and `today` were last pruned (`i64::MIN`: never).
    pruned_day: i64,
}

/// One key of the outbox as the retention sees it.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    /// The key's id (its first firing's).
    key: u64,
    /// Firings it holds.
    held: u64,
    /// Its newest firing's time.
    newest_ms: i64,
    /// Until when a cooldown or the daily cap still needs one of its firings: the outbox
    /// keeps it until the watermark passes this, so that a store reopened after the key is
    /// gone suppresses what the running one would (the state is rebuilt from the outbox).
    needed_until_ms: i64,
}

impl TriggerState {
    /// A state with these definitions and limits, and an empty outbox.
    pub(crate) fn new(from_config: Vec<Trigger>, daily_cap: u32, retention: u64) -> TriggerState {
        TriggerState {
            from_config,
            daily_cap,
            retention,
            next_id: 1,
            pruned_day: i64::MIN,
            ..TriggerState::default()
        }
    }

    /// Every definition: the config file's, then the run time's.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Trigger> {
        self.from_config.iter().chain(&self.from_runtime)
    }

    /// Takes a key of the outbox into account (at open, in key order): its id, the id after
    /// its batch, and its firings.
    pub(crate) fn recover(&mut self, key_id: u64, next_id: u64, firings: &[Fired]) {
        self.next_id = self.next_id.max(next_id);
        for f in firings {
            self.next_id = self.next_id.max(f.id.saturating_add(1));
            self.note(f);
        }
        let chunk = self.chunk(key_id, firings.iter());
        self.chunks.push_back(chunk);
        self.held += firings.len() as u64;
    }

    /// The retention's view of a key holding `firings`.
    fn chunk<'a>(&self, key: u64, firings: impl Iterator<Item = &'a Fired>) -> Chunk {
        let mut c = Chunk {
            key,
            held: 0,
            newest_ms: i64::MIN,
            needed_until_ms: i64::MIN,
        };
        for f in firings {
            c.held += 1;
            c.newest_ms = c.newest_ms.max(f.time_ms);
            // As `prune` forgets: a cooldown's firing once its time plus the cooldown is before
            // the oldest day a late event may still come on (`LATE_DAYS` before the
            // watermark's), a day's count `LATE_DAYS` after the day.
            let cooldown = self.cooldown_ms(&f.trigger).unwrap_or(0);
            let ends = f.time_ms.saturating_add(cooldown);
            let first_day_after = ends.saturating_add(DAY_MS - 1).div_euclid(DAY_MS);
            let mut needed = first_day_after
                .saturating_add(LATE_DAYS)
                .saturating_mul(DAY_MS);
            if self.daily_cap > 0 {
                let day = f.time_ms.div_euclid(DAY_MS);
                needed = needed.max(day.saturating_add(LATE_DAYS + 1).saturating_mul(DAY_MS));
            }
            c.needed_until_ms = c.needed_until_ms.max(needed);
        }
        c
    }

    /// The cooldown of the trigger `name`, if it is defined.
    fn cooldown_ms(&self, name: &str) -> Option<i64> {
        self.all()
            .find(|t| t.name == name)
            .map(Trigger::cooldown_ms)
    }

    /// Whether the outbox is empty.
    pub(crate) fn outbox_is_empty(&self) -> bool {
        self.held == 0
    }

    fn note(&mut self, f: &Fired) {
        // A late firing does not shorten the cooldown of a newer one.
        let last = (self.last)
            .entry((f.trigger.clone(), f.customer.clone()))
            .or_insert(f.time_ms);
        *last = (*last).max(f.time_ms);
        let day = f.time_ms.div_euclid(DAY_MS);
        let days = self.today.entry(f.customer.clone()).or_default();
        match days.binary_search_by_key(&day, |(d, _)| *d) {
            Ok(i) => days[i].1 += 1,
            Err(i) => days.insert(i, (day, 1)),
        }
    }

    /// Whether an event at `t_ms` is older than what the state remembers (see [`LATE_DAYS`]).
    /// Only events' crossings are held to it: a silence falls due at its own time, however far
    /// the watermark has moved past it, and is checked against what is remembered.
    fn too_late(&self, t_ms: i64) -> bool {
        self.pruned_day != i64::MIN
            && t_ms.div_euclid(DAY_MS) < self.pruned_day.saturating_sub(LATE_DAYS)
    }

    /// Firings of `customer` committed on `day` (0 for a day older than those kept).
    fn fired_on(&self, customer: &str, day: i64) -> u32 {
        self.today
            .get(customer)
            .and_then(|days| days.iter().find(|(d, _)| *d == day))
            .map_or(0, |(_, n)| *n)
    }

    /// The firings of an event of `customer` at `t_ms` that took their profile from `before`
    /// to `after`; `pending` are the batch's firings not committed yet (they count for the
    /// cooldowns and the cap). `strategy` gives an action's `expected_conversion`.
    /// Returns the firings, and the names of the triggers suppressed.
    pub(crate) fn evaluate(
        &self,
        customer: &str,
        t_ms: i64,
        (before, after): (Observed, Observed),
        pending: &[Firing],
        strategy: &Strategy,
    ) -> (Vec<Firing>, Vec<String>) {
        let mut out: Vec<Firing> = Vec::new();
        let mut suppressed = Vec::new();
        for t in self.all() {
            let Some(reason) = crossed(&t.when, before, after) else {
                continue;
            };
            if self.too_late(t_ms) {
                suppressed.push(t.name.clone());
                continue;
            }
            let fired = Fired {
                id: 0,
                trigger: t.name.clone(),
                customer: customer.to_string(),
                time_ms: t_ms,
                reason,
                action: t.action.clone(),
                expected_conversion: t
                    .action
                    .as_deref()
                    .and_then(|a| observed_rate(strategy, after.segment, a)),
                segment: after.segment,
                propensity: Some(after.propensity),
            };
            self.decide(t, fired, pending, &mut out, &mut suppressed);
        }
        (out, suppressed)
    }

    /// Adds `fired` (a crossing of `t`) to `out`, or its trigger's name to `suppressed` if the
    /// trigger is cooling down for the customer or the customer's daily cap is reached
    /// (counting the firings committed, `pending` in the batch and `out`).
    fn decide(
        &self,
        t: &Trigger,
        fired: Fired,
        pending: &[Firing],
        out: &mut Vec<Firing>,
        suppressed: &mut Vec<String>,
    ) {
        let (customer, t_ms) = (fired.customer.as_str(), fired.time_ms);
        let day = t_ms.div_euclid(DAY_MS);
        let mine = pending
            .iter()
            .chain(out.iter())
            .filter(|p| p.fired.customer == customer);
        let last_pending = mine
            .clone()
            .filter(|p| p.fired.trigger == t.name)
            .map(|p| p.fired.time_ms)
            .max();
        let last = self
            .last
            .get(&(t.name.clone(), customer.to_string()))
            .copied()
            .into_iter()
            .chain(last_pending)
            .max();
        let cooling =
            t.cooldown_days > 0.0 && last.is_some_and(|l| t_ms.saturating_sub(l) < t.cooldown_ms());
        let today = self.fired_on(customer, day)
            + mine
                .filter(|p| p.fired.time_ms.div_euclid(DAY_MS) == day)
                .count() as u32;
        if cooling || (self.daily_cap > 0 && today >= self.daily_cap) {
            suppressed.push(t.name.clone());
        } else {
            out.push(Firing { fired });
        }
    }

    /// The firings of `DRIFT` triggers for a detection at `t_ms` (see [`Self::evaluate`]).
    pub(crate) fn drift(
        &self,
        t_ms: i64,
        reason: &str,
        pending: &[Firing],
    ) -> (Vec<Firing>, Vec<String>) {
        let mut out = Vec::new();
        let mut suppressed = Vec::new();
        for t in self.all().filter(|t| t.when == Condition::Drift) {
            let fired = Fired {
                id: 0,
                trigger: t.name.clone(),
                customer: String::new(),
                time_ms: t_ms,
                reason: reason.to_string(),
                action: t.action.clone(),
                expected_conversion: None,
                segment: None,
                propensity: None,
            };
            self.decide(t, fired, pending, &mut out, &mut suppressed);
        }
        (out, suppressed)
    }

    /// Whether any trigger watches for silence.
    pub(crate) fn watches_silence(&self) -> bool {
        !self.inactive.is_empty()
    }

    /// The `INACTIVE_DAYS` triggers without a silence index: (name, days in ms).
    pub(crate) fn silences_missing(&self) -> Vec<(String, i64)> {
        self.all()
            .filter_map(|t| match t.when {
                Condition::InactiveDays(n) if !self.inactive.contains_key(&t.name) => {
                    Some((t.name.clone(), (n * DAY_MS as f64) as i64))
                }
                _ => None,
            })
            .collect()
    }

    /// Builds the silence index of the `INACTIVE_DAYS` trigger `name` (`after_ms`: its days)
    /// from `last_seen` (each customer's last event time), keeping what falls after
    /// `watermark_ms`: a customer silent for longer already fell silent before the trigger was
    /// defined, or fired then.
    pub(crate) fn index_silence(
        &mut self,
        (name, after_ms): (String, i64),
        last_seen: &mut dyn Iterator<Item = (String, i64)>,
        watermark_ms: i64,
    ) {
        let mut s = Silence::new(&name, after_ms);
        for (customer, last) in last_seen {
            let due = last.saturating_add(after_ms);
            if due > watermark_ms {
                s.set(&customer, due);
            }
        }
        self.inactive.insert(name, s);
    }

    /// A customer's last event is now `last_ms`, the watermark `watermark_ms`: a silence that
    /// fell due already (a late event older than their last) is not armed again.
    /// What it changes goes to `undo`.
    pub(crate) fn seen(
        &mut self,
        customer: &str,
        last_ms: i64,
        watermark_ms: i64,
        undo: &mut Vec<SilenceUndo>,
    ) {
        for s in self.inactive.values_mut() {
            let due = last_ms.saturating_add(s.after_ms);
            let (old, changed) = if due > watermark_ms {
                let old = s.set(customer, due);
                (old, old.map(|e| e.0) != Some(due))
            } else {
                let old = s.remove(customer);
                (old, old.is_some())
            };
            if changed {
                undo.push((s.name.clone(), customer.into(), old));
            }
        }
    }

    /// Undoes a change to a silence index (its batch's commit failed).
    pub(crate) fn restore_silence(&mut self, (name, customer, entry): SilenceUndo) {
        if let Some(s) = self.inactive.get_mut(&*name) {
            s.restore(&customer, entry);
        }
    }

    /// Takes the silences due by `watermark_ms`: (trigger, customer, when they fell silent,
    /// the trigger's days), in time order per trigger; what it takes goes to `undo`.
    pub(crate) fn silences_due(
        &mut self,
        watermark_ms: i64,
        undo: &mut Vec<SilenceUndo>,
    ) -> Vec<(String, String, i64, i64)> {
        let mut out = Vec::new();
        for (name, s) in &mut self.inactive {
            while let Some((at, customer)) = s.scheduled.first().cloned() {
                if at > watermark_ms {
                    break;
                }
                s.scheduled.pop_first();
                let Some(&entry) = s.by_customer.get(&customer) else {
                    continue;
                };
                undo.push((s.name.clone(), customer.clone(), Some(entry)));
                let due = entry.0;
                if due <= watermark_ms {
                    s.by_customer.remove(&customer);
                    out.push((name.clone(), customer.to_string(), due, s.after_ms));
                } else {
                    // Seen since it was scheduled: scheduled again at the time it falls due.
                    s.scheduled.insert((due, customer.clone()));
                    s.by_customer.insert(customer, (due, due));
                }
            }
        }
        out.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// The firing of the `INACTIVE_DAYS` trigger `name` for `customer`, silent since
    /// `due_ms - after_ms`, with their segment and last propensity (see [`Self::evaluate`]).
    pub(crate) fn silence(
        &self,
        (name, customer, due_ms, after_ms): (&str, &str, i64, i64),
        (segment, propensity): (Option<u16>, f64),
        pending: &[Firing],
        strategy: &Strategy,
    ) -> (Vec<Firing>, Vec<String>) {
        let mut out = Vec::new();
        let mut suppressed = Vec::new();
        if let Some(t) = self.all().find(|t| t.name == name) {
            let days = after_ms as f64 / DAY_MS as f64;
            let fired = Fired {
                id: 0,
                trigger: t.name.clone(),
                customer: customer.to_string(),
                time_ms: due_ms,
                reason: format!(
                    "no event for {days} days (last on {})",
                    utc_day(due_ms - after_ms)
                ),
                action: t.action.clone(),
                expected_conversion: t
                    .action
                    .as_deref()
                    .and_then(|a| observed_rate(strategy, segment, a)),
                segment,
                propensity: Some(propensity),
            };
            self.decide(t, fired, pending, &mut out, &mut suppressed);
        }
        (out, suppressed)
    }

    /// A batch committed with these firings (ids assigned from `next_id`, in order, one key)
    /// and these suppressed triggers; it removed the `trimmed` oldest keys and rewrote
    /// `rewritten` ones (key id, firings left; a key left empty is removed, but the newest,
    /// which keeps the next id).
    pub(crate) fn committed(
        &mut self,
        fired: &[Firing],
        suppressed: &[String],
        trimmed: usize,
        rewritten: &[(u64, usize)],
    ) {
        for f in fired {
            self.note(&f.fired);
            self.counts.entry(f.fired.trigger.clone()).or_default().0 += 1;
        }
        for s in suppressed {
            self.counts.entry(s.clone()).or_default().1 += 1;
        }
        for _ in 0..trimmed {
            if let Some(c) = self.chunks.pop_front() {
                self.held -= c.held;
            }
        }
        for &(key, left) in rewritten {
            if let Some(i) = self.chunks.iter().position(|c| c.key == key) {
                self.held = self.held - self.chunks[i].held + left as u64;
                if left == 0 && i + 1 < self.chunks.len() {
                    self.chunks.remove(i);
                } else {
                    // Its times stay as they were: the retention keeps it no shorter.
                    self.chunks[i].held = left as u64;
                }
            }
        }
        if let Some(first) = fired.first() {
            let chunk = self.chunk(first.fired.id, fired.iter().map(|f| &f.fired));
            self.chunks.push_back(chunk);
            self.held += fired.len() as u64;
        }
        self.next_id = self.next_id.saturating_add(fired.len() as u64);
    }

    /// The oldest keys of the outbox that a batch writing `new` firings, with the watermark at
    /// `watermark_ms`, removes: while the outbox holds more than `retention` firings or the
    /// oldest key's firings are all older than `retention_ms`, and no cooldown or daily cap
    /// still needs them (then the outbox keeps more than `retention` for a while). Whole keys,
    /// oldest first, so the ids held stay one range; never the newest key unless the batch
    /// writes a newer one (it carries the next id over a reopen).
    pub(crate) fn to_trim(&self, new: u64, watermark_ms: i64) -> Vec<u64> {
        let mut held = self.held + new;
        let mut out = Vec::new();
        let keep_last = usize::from(new == 0);
        let candidates = self.chunks.len().saturating_sub(keep_last);
        for c in self.chunks.iter().take(candidates) {
            let over_count = held > self.retention;
            let too_old = self.retention_ms > 0
                && c.newest_ms < watermark_ms.saturating_sub(self.retention_ms);
            if !(over_count || too_old) || c.needed_until_ms > watermark_ms {
                break;
            }
            out.push(c.key);
            held -= c.held;
        }
        out
    }

    /// The definitions with their counts, as readers see them.
    pub(crate) fn view(&self) -> Vec<super::TriggerInfo> {
        let info = |t: &Trigger, from_config: bool| {
            let (fired, suppressed) = self.counts.get(&t.name).copied().unwrap_or_default();
            super::TriggerInfo {
                trigger: t.clone(),
                from_config,
                fired,
                suppressed,
            }
        };
        let config = self.from_config.iter().map(|t| info(t, true));
        config
            .chain(self.from_runtime.iter().map(|t| info(t, false)))
            .collect()
    }

    /// Once per day of the watermark `now_ms`: forgets the firings that no longer matter, those
    /// older than their trigger's cooldown and the daily counts of days, both beyond the
    /// [`LATE_DAYS`] an event may come late, so that the maps hold the customers who fired
    /// lately, not everyone who ever did.
    pub(crate) fn prune(&mut self, now_ms: i64) {
        let day = now_ms.div_euclid(DAY_MS);
        if day == self.pruned_day {
            return;
        }
        self.pruned_day = day;
        let cooldowns: HashMap<&str, i64> = self
            .from_config
            .iter()
            .chain(&self.from_runtime)
            .map(|t| (t.name.as_str(), t.cooldown_ms()))
            .collect();
        // The oldest day an event may come on and still be checked (see `too_late`).
        let oldest = day.saturating_sub(LATE_DAYS);
        let from_ms = oldest.saturating_mul(DAY_MS);
        self.last.retain(|(trigger, _), t| {
            cooldowns
                .get(trigger.as_str())
                .is_some_and(|c| t.saturating_add(*c) > from_ms)
        });
        self.today.retain(|_, days| {
            days.retain(|(d, _)| *d >= oldest);
            !days.is_empty()
        });
    }

    /// Forgets an erased customer.
    pub(crate) fn forget(&mut self, customer: &str) {
        self.last.retain(|(_, c), _| c != customer);
        self.today.remove(customer);
        for s in self.inactive.values_mut() {
            s.remove(customer);
        }
    }

    /// Drops the silence index of a deleted trigger.
    pub(crate) fn deleted(&mut self, name: &str) {
        self.inactive.remove(name);
    }
}

/// The observed conversion rate of `action` in `segment` (the strategy's recorded outcomes),
/// if any were recorded: a firing's `expected_conversion`.
fn observed_rate(strategy: &Strategy, segment: Option<u16>, action: &str) -> Option<f64> {
    let a = strategy.index_of(action)?;
    let s = strategy.stats(usize::from(segment?), a);
    let n = s.successes + s.failures;
    (n > 0).then(|| s.successes as f64 / n as f64)
}

/// The reason, in words, if the profile crossed into `c` from `before` to `after`.
fn crossed(c: &Condition, before: Observed, after: Observed) -> Option<String> {
    let p = |o: Observed| format!("{:.2}", o.propensity);
    let seg = |s: Option<u16>| s.map_or("none".to_string(), |s| s.to_string());
    match *c {
        Condition::SegmentEnter(s) if before.segment != Some(s) && after.segment == Some(s) => {
            Some(format!("segment {} → {}", seg(before.segment), s))
        }
        Condition::SegmentLeave(s) if before.segment == Some(s) && after.segment != Some(s) => {
            Some(format!("segment {} → {}", s, seg(after.segment)))
        }
        Condition::PropensityAbove(x) if before.propensity < x && after.propensity >= x => {
            Some(format!("propensity {} → {}", p(before), p(after)))
        }
        Condition::PropensityBelow(x) if before.propensity >= x && after.propensity < x => {
            Some(format!("propensity {} → {}", p(before), p(after)))
        }
        Condition::FirstPurchase if before.purchases == 0 && after.purchases > 0 => {
            Some("first purchase".to_string())
        }
        Condition::SpendAbove(x) if before.spend < x && after.spend >= x => {
            Some(format!("spend {:.2} → {:.2}", before.spend, after.spend))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
