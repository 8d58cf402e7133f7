//! Unit tests of the writer's trigger state.

use super::*;
use crate::triggers::DEFAULT_COOLDOWN_DAYS;

fn obs(segment: u16, propensity: f64, spend: f64, purchases: u64) -> Observed {
    Observed {
        segment: Some(segment),
        propensity,
        spend,
        purchases,
    }
}

fn state(defs: &[&str], cap: u32) -> TriggerState {
    let actions = vec!["vip_offer".to_string()];
    let defs = defs
        .iter()
        .map(|d| {
            let w: Vec<&str> = d.split_whitespace().collect();
            Trigger::parse(w[0], &w[1..], 8, &actions).unwrap()
        })
        .collect();
    TriggerState::new(defs, cap, 100)
}

/// A strategy with no outcome recorded.
fn none() -> Strategy {
    Strategy::new(8, vec!["vip_offer".to_string()])
}

/// One success in four for `vip_offer` in segment 1.
fn quarter() -> Strategy {
    let mut s = none();
    for converted in [true, false, false, false] {
        s.record(1, 0, converted);
    }
    s
}

#[test]
fn crossings_fire_levels_do_not() {
    let s = state(
        &[
            "up PROPENSITY_ABOVE 0.5 ACTION vip_offer",
            "down PROPENSITY_BELOW 0.2",
            "enter SEGMENT_ENTER 3",
            "leave SEGMENT_LEAVE 3",
            "first FIRST_PURCHASE",
            "big SPEND_ABOVE 100",
        ],
        0,
    );
    let names = |before, after| -> Vec<String> {
        let (f, _) = s.evaluate("c", 0, (before, after), &[], &quarter());
        f.into_iter().map(|f| f.fired.trigger).collect()
    };
    assert_eq!(
        names(obs(1, 0.3, 0.0, 0), obs(3, 0.6, 120.0, 1)),
        ["up", "enter", "first", "big"]
    );
    assert_eq!(
        names(obs(3, 0.6, 120.0, 1), obs(1, 0.1, 130.0, 2)),
        ["down", "leave"]
    );
    // Staying above, in, or past: nothing.
    assert!(names(obs(3, 0.6, 120.0, 1), obs(3, 0.7, 130.0, 2)).is_empty());
    let (f, _) = s.evaluate(
        "c",
        5,
        (obs(1, 0.3, 0.0, 0), obs(1, 0.6, 0.0, 0)),
        &[],
        &quarter(),
    );
    assert_eq!(f[0].fired.reason, "propensity 0.30 → 0.60");
    assert_eq!(f[0].fired.action.as_deref(), Some("vip_offer"));
    assert_eq!(f[0].fired.expected_conversion, Some(0.25));
    assert_eq!(f[0].fired.time_ms, 5);
}

#[test]
fn cooldowns_and_the_daily_cap_suppress_and_count() {
    let mut s = state(
        &[
            "first FIRST_PURCHASE COOLDOWN 2",
            "big SPEND_ABOVE 10 COOLDOWN 0",
        ],
        1,
    );
    let cross = (obs(0, 0.1, 0.0, 0), obs(0, 0.1, 20.0, 1));
    let (f, sup) = s.evaluate("c", 0, cross, &[], &none());
    assert_eq!(f.len(), 1, "the cap allows one a day");
    assert_eq!(sup, ["big"]);
    s.committed(&f, &sup, 0, &[]);
    assert_eq!(s.next_id, 2);
    assert_eq!(s.counts["big"], (0, 1));
    // Next day: the cap is new, `first` is still cooling down.
    let (f, sup) = s.evaluate("c", DAY_MS + 1, cross, &[], &none());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].fired.trigger, "big");
    assert_eq!(sup, ["first"]);
    // Another customer is not affected; firings pending in the batch count.
    let (f, _) = s.evaluate("d", 0, cross, &[], &none());
    assert_eq!(f.len(), 1);
    let (again, sup) = s.evaluate("d", 1, cross, &f, &none());
    assert!(again.is_empty());
    assert_eq!(sup.len(), 2);
    // Three days on, `first` may fire again.
    let (f, _) = s.evaluate("c", 3 * DAY_MS, cross, &[], &none());
    assert_eq!(f[0].fired.trigger, "first");
}

#[test]
fn a_late_firing_keeps_the_newer_day_s_count_and_cooldown() {
    let mut s = state(&["big SPEND_ABOVE 10 COOLDOWN 2"], 1);
    let cross = (obs(0, 0.1, 0.0, 0), obs(0, 0.1, 20.0, 1));
    let (f, _) = s.evaluate("c", 5 * DAY_MS, cross, &[], &none());
    s.committed(&f, &[], 0, &[]);
    // A day-late event fires for its own day (another trigger: the cap is per day).
    let mut late = state(
        &[
            "big SPEND_ABOVE 10 COOLDOWN 2",
            "x SPEND_ABOVE 5 COOLDOWN 0",
        ],
        1,
    );
    std::mem::swap(&mut late.last, &mut s.last);
    std::mem::swap(&mut late.today, &mut s.today);
    late.next_id = s.next_id;
    let (f, sup) = late.evaluate("c", 4 * DAY_MS, cross, &[], &none());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].fired.trigger, "x");
    assert_eq!(sup, ["big"], "big cooled down from the newer firing");
    late.committed(&f, &[], 0, &[]);
    // Day 5's count survived the late firing of day 4: the cap still holds on day 5.
    let (f, _) = late.evaluate("c", 5 * DAY_MS + 1, cross, &[], &none());
    assert!(f.is_empty(), "day 5 has had its one firing");
    assert_eq!(late.last[&("big".to_string(), "c".to_string())], 5 * DAY_MS);
}

#[test]
fn retention_removes_whole_oldest_keys_and_recovery_restores_the_outbox() {
    let mut r = state(&["first FIRST_PURCHASE"], 0);
    r.retention = 3;
    let cross = (obs(0, 0.1, 0.0, 0), obs(0, 0.1, 1.0, 1));
    // Firings at time 0; the batch's watermark `wm`.
    let batch = |r: &mut TriggerState, who: &[&str], wm: i64| {
        let mut fired: Vec<Firing> = Vec::new();
        for c in who {
            let (f, _) = r.evaluate(c, 0, cross, &fired, &none());
            fired.extend(f);
        }
        for (i, f) in fired.iter_mut().enumerate() {
            f.fired.id = r.next_id + i as u64;
        }
        let trim = r.to_trim(fired.len() as u64, wm);
        r.committed(&fired, &[], trim.len(), &[]);
        (fired, trim)
    };
    let (first, trim) = batch(&mut r, &["a", "b"], 0);
    assert!(trim.is_empty());
    let (_, trim) = batch(&mut r, &["c", "d"], 0);
    assert!(trim.is_empty(), "the cooldowns still need the firings");
    assert_eq!(r.held, 4);
    // A late event may still need them for `LATE_DAYS` after the cooldown.
    let cooled = (DEFAULT_COOLDOWN_DAYS * DAY_MS as f64) as i64 + LATE_DAYS * DAY_MS;
    assert_eq!(r.to_trim(0, cooled - 1), Vec::<u64>::new());
    let trim = r.to_trim(0, cooled);
    assert_eq!(
        trim,
        [1],
        "the oldest key goes as a whole, the newest stays"
    );
    r.committed(&[], &[], trim.len(), &[]);
    assert_eq!((r.held, r.next_id), (2, 5));
    // Recovery: keys as stored; the cooldowns of recovered firings hold.
    let mut q = state(&["first FIRST_PURCHASE"], 0);
    q.recover(
        1,
        3,
        &first.iter().map(|f| f.fired.clone()).collect::<Vec<_>>(),
    );
    assert_eq!((q.held, q.next_id), (2, 3));
    let (f, sup) = q.evaluate("a", 1, cross, &[], &none());
    assert!(f.is_empty(), "the recovered firing's cooldown holds");
    assert_eq!(sup, ["first"]);
    q.forget("a");
    let (f, _) = q.evaluate("a", 1, cross, &[], &none());
    assert_eq!(f.len(), 1);
    // An erasure rewrites a key: one left of two.
    q.committed(&[], &[], 0, &[(1, 1)]);
    assert_eq!(q.held, 1);
    q.committed(&[], &[], 0, &[(1, 0)]);
    assert!(q.outbox_is_empty());
}

#[test]
fn drift_fires_without_a_customer_and_cools_down() {
    let mut s = state(&["model DRIFT COOLDOWN 1", "first FIRST_PURCHASE"], 0);
    let (f, _) = s.drift(5, "drift on the propensity forecasts due 2026-01-01", &[]);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].fired.customer, "");
    assert_eq!(f[0].fired.propensity, None);
    s.committed(&f, &[], 0, &[]);
    let (f, sup) = s.drift(6, "again", &[]);
    assert!(f.is_empty());
    assert_eq!(sup, ["model"]);
}

#[test]
fn age_retention_waits_for_the_cooldowns_and_keeps_the_newest_key() {
    let mut r = state(&["big SPEND_ABOVE 10 COOLDOWN 1"], 0);
    r.retention_ms = 10 * DAY_MS;
    let cross = (obs(0, 0.1, 0.0, 0), obs(0, 0.1, 20.0, 1));
    for (id, (who, t)) in [("a", 0), ("b", 5 * DAY_MS)].into_iter().enumerate() {
        let (mut f, _) = r.evaluate(who, t, cross, &[], &none());
        f[0].fired.id = id as u64 + 1;
        assert!(r.to_trim(1, t).is_empty());
        r.committed(&f, &[], 0, &[]);
    }
    assert!(
        r.to_trim(0, 10 * DAY_MS).is_empty(),
        "not older than 10 days yet (and a late event still needs it for 1 + 7 days)"
    );
    assert_eq!(r.to_trim(0, 10 * DAY_MS + 1), [1]);
    assert_eq!(
        r.to_trim(0, 100 * DAY_MS),
        [1],
        "the newest key stays: it carries the next id"
    );
    assert_eq!(r.to_trim(1, 100 * DAY_MS), [1, 2]);
    // With a daily cap, a firing is needed until `LATE_DAYS` after its day.
    let mut c = state(&["big SPEND_ABOVE 10 COOLDOWN 0"], 3);
    c.retention = 1;
    let (mut f, _) = c.evaluate("a", DAY_MS / 2, cross, &[], &none());
    f[0].fired.id = 1;
    c.committed(&f, &[], 0, &[]);
    let end = (1 + LATE_DAYS) * DAY_MS;
    assert!(c.to_trim(1, end - 1).is_empty());
    assert_eq!(c.to_trim(1, end), [1]);
}

#[test]
fn a_customer_seen_again_is_rescheduled_not_fired() {
    let mut s = state(&["quiet INACTIVE_DAYS 2"], 0);
    s.index_silence(("quiet".into(), 2 * DAY_MS), &mut std::iter::empty(), 0);
    let mut u = Vec::new();
    s.seen("a", 0, 0, &mut u); // silent at day 2
    s.seen("a", DAY_MS, DAY_MS, &mut u); // at day 3: still scheduled at day 2
    assert_eq!(s.inactive["quiet"].scheduled.len(), 1);
    assert!(
        s.silences_due(2 * DAY_MS + 1, &mut u).is_empty(),
        "rescheduled"
    );
    let due = s.silences_due(3 * DAY_MS, &mut u);
    let got: Vec<(&str, i64)> = due.iter().map(|d| (d.1.as_str(), d.2)).collect();
    assert_eq!(got, [("a", 3 * DAY_MS)]);
    assert!(
        s.silences_due(100 * DAY_MS, &mut u).is_empty(),
        "once per silence"
    );
    assert!(s.inactive["quiet"].by_customer.is_empty());
}

#[test]
fn silence_changes_are_undone() {
    let mut s = state(&["quiet INACTIVE_DAYS 2"], 0);
    let seen = [("a".to_string(), 0)];
    s.index_silence(("quiet".into(), 2 * DAY_MS), &mut seen.into_iter(), 0);
    let mut undo = Vec::new();
    s.seen("a", DAY_MS, DAY_MS, &mut undo);
    s.seen("b", DAY_MS, DAY_MS, &mut undo);
    assert_eq!(undo.len(), 2);
    let due = s.silences_due(3 * DAY_MS, &mut undo);
    assert_eq!(due.len(), 2);
    for u in undo.into_iter().rev() {
        s.restore_silence(u);
    }
    let due = s.silences_due(10 * DAY_MS, &mut Vec::new());
    let who: Vec<(&str, i64)> = due.iter().map(|d| (d.1.as_str(), d.2)).collect();
    assert_eq!(who, [("a", 2 * DAY_MS)], "as before the batch");
}

#[test]
fn pruning_keeps_only_what_a_cooldown_or_the_cap_still_needs() {
    let mut s = state(
        &[
            "first FIRST_PURCHASE COOLDOWN 2",
            "big SPEND_ABOVE 10 COOLDOWN 0",
        ],
        0,
    );
    let cross = (obs(0, 0.1, 0.0, 0), obs(0, 0.1, 20.0, 1));
    let (f, _) = s.evaluate("c", 0, cross, &[], &none());
    s.committed(&f, &[], 0, &[]);
    assert_eq!(s.last.len(), 2);
    s.prune(DAY_MS);
    assert_eq!(s.last.len(), 2, "a late event may still need both");
    let (f, sup) = s.evaluate("c", DAY_MS + 1, cross, &[], &none());
    assert!(
        f.iter().all(|f| f.fired.trigger != "first"),
        "first still cools down"
    );
    assert_eq!(sup, ["first"]);
    s.prune(LATE_DAYS * DAY_MS);
    assert_eq!(
        s.last.len(),
        1,
        "big's cooldown of 0 needs nothing after LATE_DAYS"
    );
    s.prune((LATE_DAYS + 3) * DAY_MS);
    assert!(s.last.is_empty());
    assert!(s.today.is_empty());
    // An event older than the state remembers cannot be checked: suppressed, not fired.
    let (f, sup) = s.evaluate("c", 2 * DAY_MS, cross, &[], &none());
    assert!(f.is_empty());
    assert_eq!(sup, ["first", "big"]);
    let (f, _) = s.evaluate("c", 3 * DAY_MS, cross, &[], &none());
    assert_eq!(f.len(), 2, "3 days is within LATE_DAYS of day 10");
}

#[test]
fn a_late_event_meets_the_daily_cap_of_its_own_day() {
    let mut s = state(&["big SPEND_ABOVE 10 COOLDOWN 0"], 1);
    let cross = (obs(0, 0.1, 0.0, 0), obs(0, 0.1, 20.0, 1));
    let (f, _) = s.evaluate("c", DAY_MS / 2, cross, &[], &none());
    assert_eq!(f.len(), 1);
    s.committed(&f, &[], 0, &[]);
    for day in [2, 4] {
        let (f, _) = s.evaluate("c", day * DAY_MS, cross, &[], &none());
        assert_eq!(f.len(), 1);
        s.committed(&f, &[], 0, &[]);
    }
    s.prune(4 * DAY_MS);
    // Day 0's count is remembered four days and two later firing days on (only the two
    // latest days were, before).
    let (f, sup) = s.evaluate("c", DAY_MS / 2 + 1, cross, &[], &none());
    assert!(f.is_empty(), "day 0's cap of 1 is reached");
    assert_eq!(sup, ["big"]);
    let (f, _) = s.evaluate("c", 3 * DAY_MS, cross, &[], &none());
    assert_eq!(f.len(), 1, "day 3 had none");
}

#[test]
fn a_cooldown_holds_for_an_event_as_late_as_the_state_remembers() {
    let mut s = state(&["big SPEND_ABOVE 10 COOLDOWN 1"], 0);
    let cross = (obs(0, 0.1, 0.0, 0), obs(0, 0.1, 20.0, 1));
    let (f, _) = s.evaluate("c", DAY_MS / 2, cross, &[], &none());
    s.committed(&f, &[], 0, &[]);
    // The watermark's first move into day 8 is at 13:00, past the firing's time plus its
    // cooldown plus seven days; an event of day 1 is still within the seven days.
    s.prune(8 * DAY_MS + 13 * 3_600_000);
    let (f, sup) = s.evaluate("c", DAY_MS + 6 * 3_600_000, cross, &[], &none());
    assert!(f.is_empty(), "18 hours after the firing: cooling down");
    assert_eq!(sup, ["big"]);
    // Its outbox key is kept as long: a reopen rebuilds the same state.
    let mut r = state(&["big SPEND_ABOVE 10 COOLDOWN 1"], 0);
    let (mut f, _) = r.evaluate("c", DAY_MS / 2, cross, &[], &none());
    f[0].fired.id = 1;
    r.committed(&f, &[], 0, &[]);
    r.retention = 0;
    assert!(r.to_trim(1, 9 * DAY_MS - 1).is_empty());
    assert_eq!(r.to_trim(1, 9 * DAY_MS), [1]);
}
