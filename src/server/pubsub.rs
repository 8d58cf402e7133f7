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
                .filter(|p| glob(p.as_bytes(), channel.as_bytes()))
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
            let fired = match state.db.read_triggers(since, 1000) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("trigger publisher: {e}");
                    break;
                }
            };
            let Some(last) = fired.last().map(|f| f.id) else {
                break;
            };
            for f in &fired {
                match serde_json::to_string(f) {
                    Ok(payload) => {
                        let channel = format!("{CHANNEL_PREFIX}{}", f.trigger);
                        state.pubsub.publish(&channel, &payload);
                    }
                    Err(e) => tracing::warn!("trigger publisher: firing {}: {e}", f.id),
                }
            }
            since = last;
        }
    }
}

/// Redis's glob-style pattern match (`*`, `?`, `[abc]`, `[a-z]`, `[^a]`, `\` escapes).
pub(crate) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some((&c, text_rest)) = text.split_first() else {
                return false;
            };
            let (negate, mut p) = match rest.split_first() {
                Some((b'^', r)) => (true, r),
                _ => (false, rest),
            };
            let mut matched = false;
            loop {
                match p {
                    [] => return false, // unclosed: Redis treats it as a mismatch
                    [b']', r @ ..] => {
                        p = r;
                        break;
                    }
                    [b'\\', x, r @ ..] => {
                        matched |= *x == c;
                        p = r;
                    }
                    [lo, b'-', hi, r @ ..] if *hi != b']' => {
                        let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                        matched |= (lo..=hi).contains(&c);
                        p = r;
                    }
                    [x, r @ ..] => {
                        matched |= *x == c;
                        p = r;
                    }
                }
            }
            matched != negate && glob(p, text_rest)
        }
        Some((b'\\', [x, rest @ ..])) => text.first() == Some(x) && glob(rest, &text[1..]),
        Some((x, rest)) => text.first() == Some(x) && glob(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_as_redis_does() {
        let m = |p: &str, t: &str| glob(p.as_bytes(), t.as_bytes());
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
