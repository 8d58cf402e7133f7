//! A deterministic synthetic workload with planted customer personas.
//!
//! Every customer is assigned one [`Persona`] (equal shares: each block of six consecutive
//! customers holds a seed-dependent permutation of the six personas). The persona fixes how the
//! customer behaves, so that features derived from events separate them:
//!
//! - `big_spender`: moderate activity, a high purchase share, large amounts (median ~250),
//!   electronics and fashion.
//! - `bargain_hunter`: many searches and cart adds, frequent small purchases (median ~15), some
//!   refunds, grocery and home.
//! - `window_shopper`: mostly long views and clicks, purchases well under 2 % of events, fashion
//!   and beauty.
//! - `social_fan`: likes, comments, shares and ratings, occasional small purchases, music, books
//!   and toys.
//! - `churning`: behaves like a regular customer (with more complaints and poor ratings) during
//!   the first 25–40 % of the period, then is silent for good.
//! - `loyal_regular`: steady activity through the whole period, regular mid-size purchases (median
//!   ~60), books, home and sports, good ratings.
//!
//! Within a persona, each customer's activity rate has a lognormal multiplier. Customers alternate
//! between *engaged* and *idle* phases (exponential durations, means 15 and 20 days); sessions are
//! rarer and purchases and cart adds much less likely when idle, so purchases cluster in time and
//! recency and frequency predict the next 30 days.
//!
//! **Planted drift.** With [`GeneratorConfig::drift_at_ms`] set, behaviour changes abruptly at
//! that time: from then on each persona buys (purchase and cart-add weights) like its partner
//! ([`Persona::after_drift`]: big spenders ↔ window shoppers, bargain hunters ↔ social fans, loyal
//! regulars ↔ churning), so the customers who bought stop and those who browsed start. Everything
//! else (activity, sessions, categories, amounts, ratings) is unchanged, and so are the events
//! before the drift (after it, the kinds drawn differ, and with them which of the candidate
//! events the selection sampling keeps); the truth file still names each customer's original
//! persona.
//!
//! **Items.** With [`GeneratorConfig::items`] > 0, every event of a kind that engages with a
//! product (`kind_weight` > 0: not search, refund or complaint) names an item of its category,
//! `<category>-<j>`, from a catalogue of `items` split evenly over the categories. Half of them
//! are *staples*, drawn from three per category that belong to the customer or, as often, to
//! their persona (so customers of one persona buy the same things: co-occurrence); the other
//! half come from the whole category, skewed to its first items (the bestsellers: index
//! `⌊u³·n⌋`). Items use a random stream of their own: the other fields of every event are the
//! same with or without them.
//!
//! Guarantees of [`Generator`]: exactly `events` events, timestamps non-decreasing and inside
//! `[start_ms, start_ms + days·86 400 000)`, every event passes [`Event::validate`], unique ids
//! `e0`, `e1`, …, customer ids `c000000`, `c000001`, …, the same sequence for the same config, and
//! memory proportional to `customers`, not `events`. To hit the count exactly, the per-customer
//! processes (each with its own random stream) are first simulated once just to count candidate
//! events at a rate scaled a little above target, then replayed through a time-ordered heap while
//! selection sampling keeps exactly `events` of them, uniformly at random.

use crate::event::{Event, EventKind, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use crate::features::affinity::kind_weight;
use rand::{Rng, SeedableRng};
use rand_distr::{Exp1, StandardNormal};
use rand_pcg::{Pcg32, Pcg64};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::{self, Write as _};
use std::io::{self, Write};

/// 2026-01-01T00:00:00Z in unix milliseconds, the default [`GeneratorConfig::start_ms`].
pub const DEFAULT_START_MS: i64 = 1_767_225_600_000;
/// The product categories used by the generator.
#[rustfmt::skip]
pub const CATEGORIES: [&str; 10] =
    ["books", "electronics", "fashion", "home", "beauty", "sports", "toys", "grocery", "garden", "music"];

const DAY_MS: f64 = 86_400_000.0;
/// With items: the share of events naming one of the customer's or their persona's staples.
const STAPLE_SHARE: f64 = 0.5;
/// Staples per customer (and per persona) and category.
const STAPLES: u32 = 3;
const ENGAGED_DAYS: f64 = 15.0;
const IDLE_DAYS: f64 = 20.0;
const P_ENGAGED: f64 = ENGAGED_DAYS / (ENGAGED_DAYS + IDLE_DAYS);
/// Multipliers of the purchase and cart-add weights in engaged and idle phases.
const BUY_BOOST: [f64; 2] = [0.15, 2.0];
const ACTIVITY_SIGMA: f64 = 0.55;
const FAVORITE_SHARE: f64 = 0.8;

/// A planted customer behaviour; see the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Persona {
    /// Few but large purchases; electronics and fashion.
    BigSpender,
    /// Searches, cart adds, frequent small purchases and refunds; grocery and home.
    BargainHunter,
    /// Long views and clicks, (almost) no purchases; fashion and beauty.
    WindowShopper,
    /// Likes, comments, shares and ratings; music, books and toys.
    SocialFan,
    /// Active in the first ~third of the period only; complaints and poor ratings.
    Churning,
    /// Steady activity and mid-size purchases all period; books, home and sports.
    LoyalRegular,
}

impl Persona {
    /// Every persona, in declaration order.
    #[rustfmt::skip]
    pub const ALL: [Persona; 6] = [Persona::BigSpender, Persona::BargainHunter,
        Persona::WindowShopper, Persona::SocialFan, Persona::Churning, Persona::LoyalRegular];

    /// The snake_case name, as written in truth files.
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::BigSpender => "big_spender",
            Persona::BargainHunter => "bargain_hunter",
            Persona::WindowShopper => "window_shopper",
            Persona::SocialFan => "social_fan",
            Persona::Churning => "churning",
            Persona::LoyalRegular => "loyal_regular",
        }
    }

    /// Parses a snake_case name as produced by [`Persona::as_str`].
    pub fn parse(s: &str) -> Option<Persona> {
        Persona::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The persona whose purchase behaviour this one takes after a planted drift
    /// ([`GeneratorConfig::drift_at_ms`]); the pairs swap, so applying it twice is the identity.
    pub fn after_drift(self) -> Persona {
        match self {
            Persona::BigSpender => Persona::WindowShopper,
            Persona::WindowShopper => Persona::BigSpender,
            Persona::BargainHunter => Persona::SocialFan,
            Persona::SocialFan => Persona::BargainHunter,
            Persona::LoyalRegular => Persona::Churning,
            Persona::Churning => Persona::LoyalRegular,
        }
    }

    fn profile(self) -> &'static Profile {
        &PROFILES[self as usize]
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Behaviour parameters of one persona: sessions per engaged day (before per-customer and global
/// scaling), mean events per session, session-rate multiplier when idle, active fraction of the
/// period (uniform in a range), kind weights in [`EventKind::ALL`] order, favourite [`CATEGORIES`]
/// indices, lognormal purchase amounts, median view seconds and star weights.
struct Profile {
    sessions_per_day: f64,
    session_len: f64,
    idle_factor: f64,
    active: (f64, f64),
    kinds: [f64; EventKind::COUNT],
    favorites: &'static [usize],
    amount_median: f64,
    amount_sigma: f64,
    view_median: f64,
    stars: [f64; 5],
}

#[rustfmt::skip]
static PROFILES: [Profile; 6] = [
    // view, click, search, cart_add, purchase, refund, like, comment, share, rating, complaint
    Profile { sessions_per_day: 0.8, session_len: 3.0, idle_factor: 0.3, active: (1.0, 1.0),
        kinds: [30.0, 10.0, 8.0, 14.0, 32.0, 2.0, 3.0, 1.0, 1.0, 5.0, 1.0],
        favorites: &[1, 2], amount_median: 250.0, amount_sigma: 0.5, view_median: 40.0,
        stars: [1.0, 1.0, 2.0, 4.0, 4.0] },
    Profile { sessions_per_day: 0.8, session_len: 4.0, idle_factor: 0.3, active: (1.0, 1.0),
        kinds: [18.0, 8.0, 28.0, 22.0, 22.0, 5.0, 1.0, 0.5, 0.5, 1.5, 0.5],
        favorites: &[7, 3], amount_median: 15.0, amount_sigma: 0.4, view_median: 25.0,
        stars: [1.0, 2.0, 3.0, 3.0, 2.0] },
    Profile { sessions_per_day: 0.5, session_len: 4.0, idle_factor: 0.5, active: (1.0, 1.0),
        kinds: [62.0, 30.0, 5.0, 1.5, 0.3, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0],
        favorites: &[2, 4], amount_median: 40.0, amount_sigma: 0.5, view_median: 200.0,
        stars: [1.0, 1.0, 2.0, 2.0, 1.0] },
    Profile { sessions_per_day: 0.5, session_len: 3.5, idle_factor: 0.5, active: (1.0, 1.0),
        kinds: [15.0, 8.0, 3.0, 2.0, 2.0, 0.2, 30.0, 15.0, 14.0, 10.0, 0.3],
        favorites: &[9, 0, 6], amount_median: 20.0, amount_sigma: 0.5, view_median: 30.0,
        stars: [1.0, 1.0, 2.0, 4.0, 4.0] },
    Profile { sessions_per_day: 1.0, session_len: 3.5, idle_factor: 0.4, active: (0.25, 0.4),
        kinds: [35.0, 12.0, 8.0, 8.0, 12.0, 3.0, 3.0, 3.0, 1.0, 5.0, 8.0],
        favorites: &[8, 5], amount_median: 60.0, amount_sigma: 0.4, view_median: 35.0,
        stars: [5.0, 4.0, 2.0, 1.0, 0.5] },
    Profile { sessions_per_day: 0.7, session_len: 3.0, idle_factor: 0.5, active: (1.0, 1.0),
        kinds: [32.0, 12.0, 8.0, 10.0, 24.0, 1.0, 5.0, 3.0, 2.0, 10.0, 0.3],
        favorites: &[0, 3, 5], amount_median: 60.0, amount_sigma: 0.35, view_median: 45.0,
        stars: [0.2, 0.3, 1.0, 4.0, 6.0] },
];

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Number of customers (ids `c000000` …), at least 1.
    pub customers: u64,
    /// Exact number of events to yield, at least 1.
    pub events: u64,
    /// Random seed; the same config always yields the same events.
    pub seed: u64,
    /// Start of the period, unix milliseconds (default 2026-01-01T00:00:00Z).
    pub start_ms: i64,
    /// Length of the period in days, at least 1 (default 120).
    pub days: u32,
    /// Planted abrupt drift: from this time (unix ms) on, each persona buys like
    /// [`Persona::after_drift`] (see the [module documentation](self)). `None` (the default):
    /// stationary behaviour. A time outside the period changes nothing (after it) or everything
    /// (before it).
    pub drift_at_ms: Option<i64>,
    /// Size of the product catalogue events name items from (`0`, the default: events name no
    /// item). See the [module documentation](self), "Items".
    pub items: u32,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            customers: 1000,
            events: 20_000,
            seed: 42,
            start_ms: DEFAULT_START_MS,
            days: 120,
            drift_at_ms: None,
            items: 0,
        }
    }
}

/// A rejected [`GeneratorConfig`]: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct GeneratorError {
    /// The offending config field (`customers`, `events`, `days` or `start_ms`).
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

fn config_error(field: &'static str, reason: impl Into<String>) -> GeneratorError {
    GeneratorError {
        field,
        reason: reason.into(),
    }
}

/// SplitMix64 finaliser over two words: a cheap, well-mixed hash.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The persona of customer `index` under `seed`: each block of six consecutive customers gets a
/// seed-dependent permutation of [`Persona::ALL`].
pub fn persona_for(seed: u64, index: u64) -> Persona {
    let mut h = mix(seed ^ 0x5045_5253_4f4e_4131, index / 6);
    let mut order = Persona::ALL;
    for i in (1..order.len()).rev() {
        let n = i as u64 + 1;
        order.swap(i, (h % n) as usize);
        h /= n;
    }
    order[(index % 6) as usize]
}

/// The ground truth for `cfg`: `(customer_id, persona)` for every customer, in index order.
pub fn truth(cfg: &GeneratorConfig) -> impl Iterator<Item = (String, Persona)> {
    let seed = cfg.seed;
    (0..cfg.customers).map(move |i| (customer_id(i), persona_for(seed, i)))
}

fn customer_id(index: u64) -> String {
    format!("c{index:06}")
}

/// One customer's event process; its own random stream fixes all of its timestamps.
struct Customer {
    rng: Pcg32,
    /// Time of the pending event, ms since the start of the period.
    t: i64,
    phase_end: i64,
    active_end: i64,
    /// Sessions per millisecond in engaged phases.
    rate: f64,
    /// Events left in the current session after the pending one.
    left: u16,
    engaged: bool,
    persona: Persona,
}

impl Customer {
    fn new(cfg: &GeneratorConfig, index: u64, scale: f64, span_ms: i64) -> Customer {
        let persona = persona_for(cfg.seed, index);
        let p = persona.profile();
        let mut rng = Pcg32::seed_from_u64(mix(cfg.seed ^ 0x4355_5354, index));
        let z: f64 = rng.sample(StandardNormal);
        let activity = (ACTIVITY_SIGMA * z - ACTIVITY_SIGMA * ACTIVITY_SIGMA / 2.0).exp();
        let share = p.active.0 + (p.active.1 - p.active.0) * rng.gen::<f64>();
        let active_end = ((span_ms as f64 * share).ceil() as i64).clamp(1, span_ms);
        let engaged = rng.gen::<f64>() < P_ENGAGED;
        let mut c = Customer {
            rng,
            t: 0,
            phase_end: 0,
            active_end,
            rate: p.sessions_per_day * activity * scale / DAY_MS,
            left: 0,
            engaged,
            persona,
        };
        c.phase_end = c.draw_phase_end();
        c
    }

    fn draw_phase_end(&mut self) -> i64 {
        let mean = [IDLE_DAYS, ENGAGED_DAYS][usize::from(self.engaged)];
        let end = self.t as f64 + self.rng.sample::<f64, _>(Exp1) * mean * DAY_MS;
        end.min(self.active_end as f64) as i64
    }

    /// Moves to the next event; false when the customer has no more events.
    fn advance(&mut self) -> bool {
        if self.left > 0 {
            self.left -= 1;
            self.t += self.rng.gen_range(5_000..300_000);
        } else {
            let p = self.persona.profile();
            loop {
                if self.t >= self.phase_end {
                    if self.t >= self.active_end {
                        return false;
                    }
                    self.engaged = !self.engaged;
                    self.phase_end = self.draw_phase_end();
                    continue;
                }
                let rate = self.rate * if self.engaged { 1.0 } else { p.idle_factor };
                let next = self.t as f64 + self.rng.sample::<f64, _>(Exp1) / rate;
                if next < self.phase_end as f64 {
                    self.t = next as i64;
                    break;
                }
                self.t = self.phase_end;
            }
            let more = (p.session_len - 1.0) / p.session_len;
            while self.left < 60 && self.rng.gen::<f64>() < more {
                self.left += 1;
            }
        }
        self.t < self.active_end
    }
}

/// A deterministic stream of exactly [`GeneratorConfig::events`] events in non-decreasing
/// timestamp order; see the [module documentation](self) for the guarantees.
pub struct Generator {
    cfg: GeneratorConfig,
    customers: Vec<Customer>,
    /// Pending event of every customer that has one: `(time, customer index)`, earliest first.
    heap: BinaryHeap<Reverse<(i64, u32)>>,
    attr_rng: Pcg64,
    /// Draws the items (a stream of its own: with or without items, the other fields are the
    /// same).
    item_rng: Pcg64,
    candidates_left: u64,
    wanted_left: u64,
    emitted: u64,
}

impl Generator {
    /// Prepares a generator (simulating every customer once to calibrate the exact count).
    ///
    /// # Errors
    /// A [`GeneratorError`] when `customers`, `events` or `days` is 0, `customers` exceeds
    /// `u32::MAX`, or `start_ms`/`days` put timestamps outside 1970-01-01..2200-01-01.
    pub fn new(cfg: GeneratorConfig) -> Result<Generator, GeneratorError> {
        let days = u64::from(cfg.days);
        for (field, value) in [
            ("customers", cfg.customers),
            ("events", cfg.events),
            ("days", days),
        ] {
            if value == 0 {
                return Err(config_error(field, "must be at least 1 (got 0)"));
            }
        }
        if cfg.customers > u64::from(u32::MAX) {
            let msg = format!("must be at most {} (got {})", u32::MAX, cfg.customers);
            return Err(config_error("customers", msg));
        }
        let span_ms = i64::from(cfg.days) * DAY_MS as i64;
        if cfg.start_ms < MIN_TIMESTAMP_MS || cfg.start_ms > MAX_TIMESTAMP_MS - span_ms {
            let msg = format!(
                "must keep the whole period between 1970-01-01 and 2200-01-01 \
                 ({MIN_TIMESTAMP_MS}..={}) for {} days (got {})",
                MAX_TIMESTAMP_MS - span_ms,
                cfg.days,
                cfg.start_ms
            );
            return Err(config_error("start_ms", msg));
        }
        // Calibrate the global rate scale so that the candidate count just exceeds the target.
        let expected: f64 = (0..cfg.customers)
            .map(|i| {
                let p = persona_for(cfg.seed, i).profile();
                let phases = P_ENGAGED + (1.0 - P_ENGAGED) * p.idle_factor;
                let active = (p.active.0 + p.active.1) / 2.0 * f64::from(cfg.days);
                p.sessions_per_day * phases * active * p.session_len
            })
            .sum();
        let target = cfg.events as f64;
        let mut scale = target / expected * 1.03 + 1e-9;
        let mut candidates = count_candidates(&cfg, scale, span_ms);
        while candidates < cfg.events {
            scale *= (target / candidates.max(1) as f64).clamp(1.05, 10.0) * 1.03;
            candidates = count_candidates(&cfg, scale, span_ms);
        }
        let mut customers = Vec::with_capacity(cfg.customers as usize);
        let mut heap = BinaryHeap::with_capacity(cfg.customers as usize);
        for i in 0..cfg.customers {
            let mut c = Customer::new(&cfg, i, scale, span_ms);
            if c.advance() {
                heap.push(Reverse((c.t, i as u32)));
            }
            customers.push(c);
        }
        Ok(Generator {
            attr_rng: Pcg64::seed_from_u64(mix(cfg.seed, 0x4154_5452)),
            item_rng: Pcg64::seed_from_u64(mix(cfg.seed, 0x4954_454d)),
            wanted_left: cfg.events,
            cfg,
            customers,
            heap,
            candidates_left: candidates,
            emitted: 0,
        })
    }

    /// The configuration this generator was built from.
    pub fn config(&self) -> &GeneratorConfig {
        &self.cfg
    }

    /// The persona planted in customer `customer_index` (the `n` of id `c{n:06}`).
    pub fn persona_of(&self, customer_index: u64) -> Persona {
        persona_for(self.cfg.seed, customer_index)
    }

    fn make_event(&mut self, t: i64, index: u32, persona: Persona, engaged: bool) -> Event {
        let p = persona.profile();
        let drifted = self
            .cfg
            .drift_at_ms
            .is_some_and(|d| self.cfg.start_ms + t >= d);
        let buyer = if drifted {
            persona.after_drift().profile()
        } else {
            p
        };
        let rng = &mut self.attr_rng;
        let boost = BUY_BOOST[usize::from(engaged)];
        let weight = |k: EventKind| match k {
            EventKind::Purchase | EventKind::CartAdd => buyer.kinds[k.index()] * boost,
            _ => p.kinds[k.index()],
        };
        let mut u = rng.gen::<f64>() * EventKind::ALL.map(weight).iter().sum::<f64>();
        let kind = EventKind::ALL.into_iter().find(|&k| {
            u -= weight(k);
            u < 0.0
        });
        let kind = kind.unwrap_or(EventKind::View);
        let lognormal = |rng: &mut Pcg64, median: f64, sigma: f64| {
            median * (sigma * rng.sample::<f64, _>(StandardNormal)).exp()
        };
        let cents = |x: f64| (x * 100.0).round().max(1.0) / 100.0;
        let value = match kind {
            EventKind::View => Some(lognormal(rng, p.view_median, 0.6).clamp(5.0, 600.0).round()),
            EventKind::Purchase => Some(cents(lognormal(rng, p.amount_median, p.amount_sigma))),
            EventKind::Refund => {
                let share = rng.gen_range(0.3..1.0);
                Some(cents(
                    lognormal(rng, p.amount_median, p.amount_sigma) * share,
                ))
            }
            EventKind::Rating => {
                let u = rng.gen::<f64>() * p.stars.iter().sum::<f64>();
                let mut acc = 0.0;
                let i = p.stars.iter().position(|w| {
                    acc += w;
                    u < acc
                });
                Some(i.map_or(5.0, |i| i as f64 + 1.0))
            }
            _ => None,
        };
        let uncategorised = match kind {
            EventKind::Search => 0.5,
            EventKind::Complaint => 0.6,
            _ => 0.0,
        };
        let category = if rng.gen::<f64>() < uncategorised {
            None
        } else if rng.gen::<f64>() < FAVORITE_SHARE {
            Some(CATEGORIES[p.favorites[rng.gen_range(0..p.favorites.len())]])
        } else {
            Some(CATEGORIES[rng.gen_range(0..CATEGORIES.len())])
        };
        let item = match category {
            Some(c) if self.cfg.items > 0 && kind_weight(kind) > 0.0 => {
                Some(self.item(index, persona, c))
            }
            _ => None,
        };
        Event {
            event_id: Some(format!("e{}", self.emitted)),
            customer_id: customer_id(u64::from(index)),
            timestamp_ms: self.cfg.start_ms + t,
            kind,
            value,
            category: category.map(str::to_string),
            item,
        }
    }

    /// An item of `category` for customer `index` (see the module docs, "Items").
    fn item(&mut self, index: u32, persona: Persona, category: &str) -> String {
        let per_category = (self.cfg.items as usize / CATEGORIES.len()).max(1) as u64;
        let c = CATEGORIES.iter().position(|&x| x == category).unwrap_or(0) as u64;
        let rng = &mut self.item_rng;
        let u = rng.gen::<f64>();
        let j = if u < STAPLE_SHARE {
            // One of the customer's own staples, or one of their persona's.
            let r = rng.gen_range(0..STAPLES) as u64;
            let owner = if rng.gen::<bool>() {
                u64::from(index)
            } else {
                1 << 40 | persona as u64
            };
            mix(self.cfg.seed ^ owner, c * 64 + r) % per_category
        } else {
            // The catalogue's long tail: a few bestsellers, many rarely bought items.
            let v = rng.gen::<f64>();
            ((v * v * v * per_category as f64) as u64).min(per_category - 1)
        };
        format!("{category}-{j}")
    }
}

/// Counts the events all customers would produce at `scale` (same streams as the replay).
fn count_candidates(cfg: &GeneratorConfig, scale: f64, span_ms: i64) -> u64 {
    (0..cfg.customers)
        .map(|i| {
            let mut c = Customer::new(cfg, i, scale, span_ms);
            let mut n = 0;
            while c.advance() {
                n += 1;
            }
            n
        })
        .sum()
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        while self.wanted_left > 0 {
            let Reverse((t, index)) = *self.heap.peek()?;
            let c = &mut self.customers[index as usize];
            let (persona, engaged) = (c.persona, c.engaged);
            if c.advance() {
                if let Some(mut top) = self.heap.peek_mut() {
                    *top = Reverse((c.t, index));
                }
            } else {
                self.heap.pop();
            }
            // Selection sampling: keeps exactly `wanted_left` of the `candidates_left` remaining.
            let keep = self.attr_rng.gen::<f64>() * (self.candidates_left as f64)
                < self.wanted_left as f64;
            self.candidates_left = self.candidates_left.saturating_sub(1);
            if keep {
                let event = self.make_event(t, index, persona, engaged);
                self.wanted_left -= 1;
                self.emitted += 1;
                return Some(event);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.wanted_left).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl std::iter::FusedIterator for Generator {}

/// Writes events as CSV with header `event_id,customer_id,timestamp,kind,value,category`
/// (timestamp in unix ms, empty cells for absent values). Returns the number of rows written.
///
/// # Errors
/// Any I/O error of `w`.
pub fn write_csv<W: Write>(events: impl IntoIterator<Item = Event>, w: W) -> io::Result<u64> {
    write_csv_with(events, w, false)
}

/// [`write_csv`], with an `item` column after `category` when `items` (empty for events
/// without one).
///
/// # Errors
/// Any I/O error of `w`.
pub fn write_csv_with<W: Write>(
    events: impl IntoIterator<Item = Event>,
    w: W,
    items: bool,
) -> io::Result<u64> {
    let mut out = csv::Writer::from_writer(w);
    let header = "event_id,customer_id,timestamp,kind,value,category,item";
    let columns = if items { 7 } else { 6 };
    out.write_record(header.split(',').take(columns))?;
    let (mut ts, mut value, mut n) = (String::new(), String::new(), 0u64);
    for e in events {
        ts.clear();
        value.clear();
        let _ = write!(ts, "{}", e.timestamp_ms);
        if let Some(v) = e.value {
            let _ = write!(value, "{v}");
        }
        let row = [
            e.event_id.as_deref().unwrap_or(""),
            &e.customer_id,
            &ts,
            e.kind.as_str(),
            &value,
            e.category.as_deref().unwrap_or(""),
            e.item.as_deref().unwrap_or(""),
        ];
        out.write_record(&row[..columns])?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    customer_id: &'a str,
    timestamp: i64,
    kind: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<&'a str>,
}

/// Writes events as JSON Lines: one object per line with fields `event_id`, `customer_id`,
/// `timestamp` (unix ms), `kind`, `value`, `category`; absent fields are omitted. Returns the
/// number of lines written.
///
/// # Errors
/// Any I/O error of `w`.
pub fn write_jsonl<W: Write>(events: impl IntoIterator<Item = Event>, w: W) -> io::Result<u64> {
    let mut out = io::BufWriter::new(w);
    let mut n = 0u64;
    for e in events {
        let row = JsonRow {
            event_id: e.event_id.as_deref(),
            customer_id: &e.customer_id,
            timestamp: e.timestamp_ms,
            kind: e.kind,
            value: e.value,
            category: e.category.as_deref(),
            item: e.item.as_deref(),
        };
        serde_json::to_writer(&mut out, &row)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// Writes the ground truth of `cfg` as CSV with header `customer_id,persona`. Returns the number
/// of rows written.
///
/// # Errors
/// Any I/O error of `w`.
pub fn write_truth_csv<W: Write>(cfg: &GeneratorConfig, w: W) -> io::Result<u64> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(["customer_id", "persona"])?;
    let mut n = 0u64;
    for (id, persona) in truth(cfg) {
        out.write_record([id.as_str(), persona.as_str()])?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests;
