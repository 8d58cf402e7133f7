//! Unit tests of `generator`.

use super::*;
use std::collections::{HashMap, HashSet};
use EventKind::*;
use Persona::*;

fn cfg(customers: u64, events: u64, seed: u64) -> GeneratorConfig {
    let d = GeneratorConfig::default();
    GeneratorConfig {
        customers,
        events,
        seed,
        ..d
    }
}

fn generate(c: &GeneratorConfig) -> Vec<Event> {
    Generator::new(c.clone()).unwrap().collect()
}

fn cents(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn index(e: &Event) -> usize {
    e.customer_id[1..].parse().unwrap()
}

#[test]
fn yields_exactly_the_requested_count() {
    for (customers, events) in [(1000, 20_000), (50, 7), (1, 1000), (1000, 10), (3, 1)] {
        let g = Generator::new(cfg(customers, events, 7)).unwrap();
        assert_eq!(g.size_hint(), (events as usize, Some(events as usize)));
        assert_eq!(g.count() as u64, events, "{customers} customers");
    }
}

#[test]
fn events_are_ordered_valid_and_uniquely_identified() {
    let c = GeneratorConfig::default();
    let end = c.start_ms + i64::from(c.days) * 86_400_000;
    let events = generate(&c);
    assert!(events
        .windows(2)
        .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
    let mut ids = HashSet::new();
    for e in &events {
        e.validate().unwrap();
        assert!((c.start_ms..end).contains(&e.timestamp_ms));
        assert!(ids.insert(e.event_id.clone().unwrap()));
        assert!(index(e) < 1000 && e.customer_id.len() == 7);
        let v = e.value;
        match e.kind {
            View => assert!((5.0..=600.0).contains(&v.unwrap())),
            Purchase | Refund => assert!(v > Some(0.0) && v == v.map(cents)),
            Rating => assert_eq!(v.unwrap().fract(), 0.0),
            _ => assert!(v.is_none()),
        }
    }
    assert_eq!(events[0].event_id.as_deref(), Some("e0"));
    assert!(events.iter().filter(|e| e.category.is_some()).count() > 18_000);
}

#[test]
fn same_seed_same_events_other_seed_other_events() {
    let a = generate(&cfg(200, 3000, 1));
    assert_eq!(a, generate(&cfg(200, 3000, 1)));
    assert_ne!(a, generate(&cfg(200, 3000, 2)));
    let t = |seed| truth(&cfg(60, 1, seed)).collect::<Vec<_>>();
    assert_eq!(t(1), t(1));
    assert_ne!(t(1), t(2));
}

#[test]
fn truth_covers_every_customer_with_equal_shares() {
    let c = cfg(600, 1, 42);
    let rows: Vec<_> = truth(&c).collect();
    assert_eq!((rows.len(), rows[0].0.as_str()), (600, "c000000"));
    let g = Generator::new(c).unwrap();
    let mut counts = HashMap::new();
    for (i, (_, p)) in rows.iter().enumerate() {
        *counts.entry(*p).or_insert(0) += 1;
        assert_eq!(g.persona_of(i as u64), *p);
    }
    assert_eq!(counts.len(), 6);
    assert!(counts.values().all(|&n| n == 100));
    for p in Persona::ALL {
        assert_eq!(Persona::parse(&p.to_string()), Some(p));
    }
}

#[test]
fn personas_behave_as_designed() {
    let c = cfg(600, 60_000, 42);
    let personas: Vec<Persona> = truth(&c).map(|(_, p)| p).collect();
    let half = c.start_ms + i64::from(c.days) * 43_200_000;
    // Per persona: kind counts, then sums and counts of amounts, stars and late events.
    let mut kinds = HashMap::<Persona, [f64; EventKind::COUNT]>::new();
    let mut sums = HashMap::<(Persona, &str), (f64, f64)>::new();
    for e in Generator::new(c.clone()).unwrap() {
        let p = personas[index(&e)];
        kinds.entry(p).or_default()[e.kind.index()] += 1.0;
        let key = match e.kind {
            Purchase => "amount",
            Rating => "stars",
            _ => "late",
        };
        let s = sums.entry((p, key)).or_default();
        *s = (s.0 + e.value.unwrap_or(1.0), s.1 + 1.0);
        let late = sums.entry((p, "all_late")).or_default();
        late.0 += f64::from(u8::from(e.timestamp_ms >= half));
        late.1 += 1.0;
    }
    let share = |p: Persona, ks: &[EventKind]| {
        let k = &kinds[&p];
        ks.iter().map(|x| k[x.index()]).sum::<f64>() / k.iter().sum::<f64>()
    };
    let mean = |p: Persona, key: &str| sums[&(p, key)].0 / sums[&(p, key)].1;
    assert!(share(WindowShopper, &[Purchase]) < 0.02);
    assert!(share(WindowShopper, &[View, Click]) > 0.8);
    assert!(share(BigSpender, &[Purchase]) > 0.15);
    assert!(mean(BigSpender, "amount") > 3.0 * mean(BargainHunter, "amount"));
    assert!(mean(LoyalRegular, "amount") > 2.0 * mean(BargainHunter, "amount"));
    assert!(share(BargainHunter, &[Search, CartAdd]) > 0.4);
    assert!(share(BargainHunter, &[Refund]) > 0.02);
    assert!(share(SocialFan, &[Like, Comment, Share, Rating]) > 0.5);
    assert!(share(Churning, &[Complaint]) > 0.04);
    assert!(mean(LoyalRegular, "stars") > mean(Churning, "stars") + 1.5);
    assert_eq!(mean(Churning, "all_late"), 0.0);
    assert!(mean(LoyalRegular, "all_late") > 0.35);
}

#[test]
fn a_planted_drift_swaps_who_buys_and_nothing_else() {
    let c = cfg(600, 60_000, 42);
    let drift_at = c.start_ms + 60 * 86_400_000;
    let drifted = GeneratorConfig {
        drift_at_ms: Some(drift_at),
        ..c.clone()
    };
    let (before, after) = (generate(&c), generate(&drifted));
    // As many events; identical ones before the drift.
    assert_eq!(before.len(), after.len());
    let early = before
        .iter()
        .take_while(|e| e.timestamp_ms < drift_at)
        .count();
    assert!(early > 20_000);
    assert_eq!(before[..early], after[..early]);
    assert!(after[early..].iter().all(|e| e.timestamp_ms >= drift_at));
    let personas: Vec<Persona> = truth(&c).map(|(_, p)| p).collect();
    let purchase_share = |events: &[Event], p: Persona| {
        let late = events
            .iter()
            .filter(|e| e.timestamp_ms >= drift_at && personas[index(e)] == p);
        let (mut buys, mut all) = (0.0, 0.0);
        for e in late {
            all += 1.0;
            buys += f64::from(u8::from(e.kind == Purchase));
        }
        buys / all
    };
    assert!(purchase_share(&before, BigSpender) > 0.15);
    assert!(purchase_share(&after, BigSpender) < 0.02);
    assert!(purchase_share(&before, WindowShopper) < 0.02);
    assert!(purchase_share(&after, WindowShopper) > 0.1);
    assert!(purchase_share(&after, SocialFan) > 3.0 * purchase_share(&before, SocialFan));
    for p in Persona::ALL {
        assert_eq!(p.after_drift().after_drift(), p);
    }
    // A drift after the period changes nothing.
    let late = GeneratorConfig {
        drift_at_ms: Some(c.start_ms + 121 * 86_400_000),
        ..c.clone()
    };
    assert_eq!(generate(&late), before);
}

#[test]
fn csv_output_reparses() {
    let c = cfg(20, 300, 3);
    let mut buf = Vec::new();
    assert_eq!(
        write_csv(Generator::new(c.clone()).unwrap(), &mut buf).unwrap(),
        300
    );
    let mut r = csv::Reader::from_reader(buf.as_slice());
    let header = r.headers().unwrap().iter().collect::<Vec<_>>().join(",");
    assert_eq!(header, "event_id,customer_id,timestamp,kind,value,category");
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 300);
    for (row, e) in rows.iter().zip(generate(&c)) {
        assert_eq!(
            (&row[0], &row[1]),
            (e.event_id.as_deref().unwrap(), &*e.customer_id)
        );
        assert_eq!(row[2].parse::<i64>().unwrap(), e.timestamp_ms);
        assert_eq!(EventKind::parse(&row[3]).unwrap(), e.kind);
        assert_eq!(
            (!row[4].is_empty()).then(|| row[4].parse().unwrap()),
            e.value
        );
        assert_eq!((!row[5].is_empty()).then(|| row[5].to_string()), e.category);
    }
}

#[test]
fn jsonl_and_truth_outputs_reparse() {
    let c = cfg(12, 100, 5);
    let mut buf = Vec::new();
    assert_eq!(write_jsonl(generate(&c), &mut buf).unwrap(), 100);
    for (line, e) in String::from_utf8(buf).unwrap().lines().zip(generate(&c)) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["customer_id"], e.customer_id.as_str());
        assert_eq!(
            (v["timestamp"].as_i64(), v["kind"].as_str()),
            (Some(e.timestamp_ms), Some(e.kind.as_str()))
        );
        assert_eq!(v["value"].as_f64(), e.value);
    }
    let mut buf = Vec::new();
    assert_eq!(write_truth_csv(&c, &mut buf).unwrap(), 12);
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with("customer_id,persona\nc000000,"));
    assert_eq!(text.lines().count(), 13);
}

#[test]
fn bad_configs_are_rejected_with_the_field_named() {
    let err = |c: GeneratorConfig| Generator::new(c).err().unwrap().to_string();
    assert_eq!(err(cfg(0, 10, 1)), "customers must be at least 1 (got 0)");
    assert_eq!(err(cfg(10, 0, 1)), "events must be at least 1 (got 0)");
    let days = GeneratorConfig {
        days: 0,
        ..cfg(10, 10, 1)
    };
    assert_eq!(err(days), "days must be at least 1 (got 0)");
    let early = GeneratorConfig {
        start_ms: -1,
        ..cfg(10, 10, 1)
    };
    assert!(err(early).starts_with("start_ms must keep the whole period"));
}

#[test]
#[ignore = "throughput check; run with cargo test --release -- --ignored"]
fn streams_two_million_events() {
    let started = std::time::Instant::now();
    let g = Generator::new(cfg(200_000, 2_000_000, 42)).unwrap();
    let setup = started.elapsed();
    let n = g.count();
    println!(
        "{n} events, 200k customers: setup {setup:?}, total {:?}",
        started.elapsed()
    );
    assert_eq!(n, 2_000_000);
}
