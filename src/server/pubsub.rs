//! Live delivery of trigger firings, Redis-style: `SUBSCRIBE` / `PSUBSCRIBE` on the channels
//! `persona:trigger:<name>`, each message the firing as a JSON document (`Db::read_triggers`'s
//! [`crate::Fired`], keys `id`, `trigger`, `customer`, `time_ms`, `reason`, `action`,
//! `expected_conversion`, `segment`, `propensity`).
//!
//! The [`PubSub`] registry holds, per subscribed connection, its channels and patterns and a
//! mailbox. One publisher thread ([`run_publisher`]) follows the outbox: every
//! [`POLL`] it reads the firings committed since the last it published and puts each in the
//! mailbox of every connection subscribed to its channel (or a matching pattern), then tells
//! that connection's event loop; the connection writes its mailbox out when it next advances.
//!
//! As in Redis, pub/sub is live only: a subscriber gets the firings committed while it is
//! subscribed, at most once, and none while it is disconnected. A consumer that must not miss
//! any reads the outbox with `TRIGGER.READ SINCE <last id>` (the `id` of each message) after
//! reconnecting. A subscriber that lets more than [`MAX_MAILBOX`] messages pile up is
//! disconnected with an error saying so (like Redis's pub/sub output-buffer limit).

use super::frame::Frame;
use super::listener::ServerState;
use crate::pipeline::Notify;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the publisher looks for new firings.
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// Messages a subscriber may have waiting before it is disconnected.
pub(crate) const MAX_MAILBOX: usize = 100_000;
/// The prefix of every trigger channel.
pub(crate) const CHANNEL_PREFIX: &str = "persona:trigger:";

/// Messages waiting for one connection.
#[derive(Default)]
pub(crate) struct Mailbox {
    frames: Mutex<VecDeque<Frame>>,
    overflowed: AtomicBool,
}

impl Mailbox {
    /// Takes every waiting message.
    pub(crate) fn take(&self) -> VecDeque<Frame> {
        std::mem::take(&mut *self.frames.lock())
    }

    /// Whether messages were lost because the connection did not keep up.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    fn push(&self, frame: Frame) {
        let mut frames = self.frames.lock();
        if frames.len() >= MAX_MAILBOX {
            self.overflowed.store(true, Ordering::Release);
        } else {
            frames.push_back(frame);
        }
    }
}

/// One subscribed connection.
struct Subscriber {
    channels: BTreeSet<String>,
    patterns: BTreeSet<String>,
    mailbox: Arc<Mailbox>,
    notify: (Arc<dyn Notify>, usize),
}

/// The subscribed connections, by client id (see the module docs).
#[derive(Default)]
pub(crate) struct PubSub {
    clients: Mutex<HashMap<u64, Subscriber>>,
}

impl PubSub {
    /// Sets what client `id` is subscribed to (removing it when nothing).
    pub(crate) fn set(
        &self,
        id: u64,
        channels: &BTreeSet<String>,
        patterns: &BTreeSet<String>,
        mailbox: &Arc<Mailbox>,
        notify: &(Arc<dyn Notify>, usize),
    ) {
        let mut clients = self.clients.lock();
        if channels.is_empty() && patterns.is_empty() {
            clients.remove(&id);
            return;
        }
        clients.insert(
            id,
            Subscriber {
                channels: channels.clone(),
                patterns: patterns.clone(),
                mailbox: mailbox.clone(),
                notify: notify.clone(),
            },
        );
    }

    /// Forgets client `id` (its connection closed).
    pub(crate) fn remove(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Connections subscribed now.
    pub(crate) fn subscribers(&self) -> usize {
        self.clients.lock().len()
    }

    /// Whether nobody is subscribed.
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.lock().is_empty()
    }

    /// Puts `payload` on `channel`: in the mailbox of every client subscribed to it (a
    /// `message`) or to a pattern matching it (a `pmessage` per pattern), and tells their loops.
    /// Returns the messages queued.
    pub(crate) fn publish(&self, channel: &str, payload: &str) -> usize {
        let clients = self.clients.lock();
        let mut sent = 0;
        for s in clients.values() {
            let mut told = false;
            if s.channels.contains(channel) {
                s.mailbox.push(Frame::Push(vec![
                    Frame::bulk("message"),
                    Frame::bulk(channel),
                    Frame::bulk(payload),
                ]));
                told = true;
                sent += 1;
            }
            for p in s
                .patterns
                .iter()
                .filter(|p| glob(p.as_bytes(), channel.as_bytes(), false))
            {
                s.mailbox.push(Frame::Push(vec![
                    Frame::bulk("pmessage"),
                    Frame::bulk(p),
                    Frame::bulk(channel),
                    Frame::bulk(payload),
                ]));
                told = true;
                sent += 1;
            }
            if told {
                s.notify.0.notify(s.notify.1);
            }
        }
        sent
    }
}

/// Follows the outbox and publishes each new firing, until the server shuts down. Starts after
/// the firings committed before it (pub/sub is live only).
pub(crate) fn run_publisher(state: Arc<ServerState>) {
    let mut since = match state.db.last_trigger_id() {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(
                "trigger publisher: cannot read the outbox ({e}); SUBSCRIBE delivers nothing"
            );
            return;
        }
    };
    while !state.shutdown.is_shutdown() {
        std::thread::sleep(POLL);
        if state.pubsub.is_empty() {
            // Nobody listens: skip what was committed meanwhile.
            if let Ok(id) = state.db.last_trigger_id() {
                since = since.max(id);
            }
            continue;
        }
        loop {
            let (fired, through) = match state.db.read_trigger_page(since, 1000) {
                Ok(page) => (page.fired, page.through),
                Err(e) => {
                    tracing::warn!("trigger publisher: {e}");
                    break;
                }
            };
            since = through;
            if fired.is_empty() {
                break;
            }
            for f in &fired {
                match serde_json::to_string(f) {
                    Ok(payload) => {
                        let channel = format!("{CHANNEL_PREFIX}{}", f.trigger);
                        state.pubsub.publish(&channel, &payload);
                    }
                    Err(e) => tracing::warn!("trigger publisher: firing {}: {e}", f.id),
                }
            }
        }
    }
}

/// Redis's glob-style pattern match (`*`, `?`, `[abc]`, `[a-z]`, `[^a]`, `\` escapes),
/// ignoring ASCII case when `nocase` (as `CONFIG GET` does). Iterative: a `*` that fails is
/// retried one byte further, so a pattern with many stars costs O(pattern × text), never an
/// exponential search.
pub(crate) fn glob(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        if pattern.get(p) == Some(&b'*') {
            star = Some((p, t));
            p += 1;
            continue;
        }
        if let Some(len) = one(&pattern[p.min(pattern.len())..], c, nocase) {
            p += len;
            t += 1;
            continue;
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// If the pattern element at the start of `pattern` (not a `*`) matches the byte `c`: how many
/// pattern bytes it takes. An unclosed `[` matches nothing (as Redis treats it).
fn one(pattern: &[u8], c: u8, nocase: bool) -> Option<usize> {
    let eq = |x: u8| x == c || (nocase && x.eq_ignore_ascii_case(&c));
    match pattern {
        [] => None,
        [b'?', ..] => Some(1),
        [b'\\', x, ..] => eq(*x).then_some(2),
        [b'[', rest @ ..] => {
            let (negate, start) = match rest.first() {
                Some(b'^') => (true, 1),
                _ => (false, 0),
            };
            let mut i = start;
            let mut matched = false;
            loop {
                match &rest[i..] {
                    [] => return None,
                    [b']', ..] => break,
                    [b'\\', x, ..] => {
                        matched |= eq(*x);
                        i += 2;
                    }
                    [lo, b'-', hi, ..] if *hi != b']' => {
                        let fold = |x: u8| if nocase { x.to_ascii_lowercase() } else { x };
                        let (lo, hi) = (fold(*lo), fold(*hi));
                        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                        matched |= (lo..=hi).contains(&fold(c));
                        i += 3;
                    }
                    [x, ..] => {
                        matched |= eq(*x);
                        i += 1;
                    }
                }
            }
            (matched != negate).then_some(i + 2)
        }
        [x, ..] => eq(*x).then_some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_as_redis_does() {
        let m = |p: &str, t: &str| glob(p.as_bytes(), t.as_bytes(), false);
        assert!(m("persona:trigger:*", "persona:trigger:likely"));
        assert!(!m("persona:trigger:*", "other:likely"));
        assert!(m("persona:trigger:l?kely", "persona:trigger:likely"));
        assert!(m("persona:trigger:[kl]ikely", "persona:trigger:likely"));
        assert!(!m("persona:trigger:[^l]ikely", "persona:trigger:likely"));
        assert!(m("persona:trigger:[a-m]ikely", "persona:trigger:likely"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*", ""));
        assert!(!m("[abc", "a"));
        assert!(!m("Persona:*", "persona:x"), "case matters for channels");
        assert!(glob(b"Persona:[P]*", b"persona:px", true));
        // Many stars against a long text that fails at its end: answered, not searched
        // exponentially.
        let stars = "*a".repeat(30) + "b";
        assert!(!m(&stars, &"a".repeat(100)));
    }

    struct Count(std::sync::atomic::AtomicUsize);
    impl Notify for Count {
        fn notify(&self, _: usize) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn messages_reach_channel_and_pattern_subscribers_and_a_full_mailbox_overflows() {
        let ps = PubSub::default();
        let count = Arc::new(Count(Default::default()));
        let notify: (Arc<dyn Notify>, usize) = (count.clone(), 7);
        let mailbox = Arc::new(Mailbox::default());
        let channels: BTreeSet<String> = ["persona:trigger:a".to_string()].into();
        let patterns: BTreeSet<String> = ["persona:trigger:*".to_string()].into();
        ps.set(1, &channels, &patterns, &mailbox, &notify);
        assert_eq!(ps.publish("persona:trigger:a", "{}"), 2);
        assert_eq!(ps.publish("persona:trigger:b", "{}"), 1);
        assert_eq!(ps.publish("elsewhere", "{}"), 0);
        assert_eq!(mailbox.take().len(), 3);
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        for _ in 0..=MAX_MAILBOX {
            ps.publish("persona:trigger:b", "{}");
        }
        assert!(mailbox.overflowed());
        ps.set(1, &BTreeSet::new(), &BTreeSet::new(), &mailbox, &notify);
        assert!(ps.is_empty());
    }
}
