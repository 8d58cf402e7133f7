//! Segment statistics, labels and rules make sense on planted personas.
//!
//! A generated stream (600 customers, 15 000 events over 120 days, six planted personas) is
//! ingested and re-segmented with a refit, as `persona import` does. For each persona, the
//! segment holding most of its customers must be described and ruled as a marketer would:
//! big spenders "high spend" with `vip_offer`, churning customers "lapsing" with
//! `win_back_coupon`, and so on (one test per persona). Another test checks that the
//! statistics are those of the current members evaluated as of now, recomputed by hand from
//! the profiles.

use persona::generator::{self, Generator, GeneratorConfig, Persona};
use persona::testing::DbInternals;
use persona::testing::ProfileInternals;
use persona::{Config, Db, Durability, Result, SegmentInfo};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The store, its segments, and each persona's segment (the one holding most of its customers).
struct Loaded {
    _dir: tempfile::TempDir,
    db: Db,
    segments: Vec<SegmentInfo>,
    home: HashMap<Persona, u16>,
}

fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| load().expect("the planted store loads"))
}

fn load() -> Result<Loaded> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .durability(Durability::None)
        .open()?;
    let cfg = GeneratorConfig {
        customers: 600,
        events: 15_000,
        seed: 42,
        ..GeneratorConfig::default()
    };
    let events: Vec<_> = Generator::new(cfg.clone())
        .expect("the workload config is valid")
        .collect();
    for chunk in events.chunks(2048) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    db.resegment(256, persona::Centroids::Refit)?;
    let mut counts: HashMap<Persona, HashMap<u16, u64>> = HashMap::new();
    for (id, persona) in generator::truth(&cfg) {
        let Some(p) = db.profile(&id)? else { continue };
        if let Some(seg) = p.assigned_segment {
            *counts.entry(persona).or_default().entry(seg).or_default() += 1;
        }
    }
    let home = counts
        .into_iter()
        .map(|(p, segs)| {
            let seg = segs
                .into_iter()
                .max_by_key(|&(s, n)| (n, std::cmp::Reverse(s)))
                .map(|(s, _)| s)
                .expect("every persona has customers");
            (p, seg)
        })
        .collect();
    let segments = db.segments()?;
    Ok(Loaded {
        _dir: dir,
        db,
        segments,
        home,
    })
}

/// The segment holding most of `persona`'s customers.
fn home(persona: Persona) -> &'static SegmentInfo {
    let l = loaded();
    let seg = l.home[&persona];
    let info = &l.segments[seg as usize];
    eprintln!("{persona}: segment {seg}: {info:?}");
    info
}

#[test]
fn big_spenders_are_high_spend_and_get_the_vip_offer() {
    let s = home(Persona::BigSpender);
    assert!(s.label.contains("high spend"), "{}", s.label);
    assert_eq!(s.rule_action, "vip_offer");
}

#[test]
fn churning_customers_are_lapsing_and_get_the_win_back_coupon() {
    let s = home(Persona::Churning);
    assert!(s.label.contains("lapsing"), "{}", s.label);
    assert_eq!(s.rule_action, "win_back_coupon");
    assert!(s.mean_propensity < 0.2, "{}", s.mean_propensity);
}

#[test]
fn loyal_regulars_are_not_lapsing_and_get_no_coupon() {
    let s = home(Persona::LoyalRegular);
    assert!(!s.label.contains("lapsing"), "{}", s.label);
    assert!(
        ["vip_offer", "none"].contains(&s.rule_action.as_str()),
        "{}",
        s.rule_action
    );
}

#[test]
fn bargain_hunters_are_not_vips_and_get_no_coupon() {
    let s = home(Persona::BargainHunter);
    assert!(!s.label.contains("high spend"), "{}", s.label);
    assert!(!s.label.contains("lapsing"), "{}", s.label);
    assert!(
        ["none", "cart_reminder"].contains(&s.rule_action.as_str()),
        "{}",
        s.rule_action
    );
}

#[test]
fn window_shoppers_mostly_view_and_are_shown_products() {
    let s = home(Persona::WindowShopper);
    assert!(s.label.contains("mostly view"), "{}", s.label);
    assert!(s.buyers < 0.5, "{}", s.buyers);
    assert!(
        ["new_product", "cart_reminder"].contains(&s.rule_action.as_str()),
        "{}",
        s.rule_action
    );
}

#[test]
fn social_fans_mostly_like_and_are_shown_new_products() {
    let s = home(Persona::SocialFan);
    assert!(s.label.contains("mostly like"), "{}", s.label);
    assert_eq!(s.rule_action, "new_product");
}

/// No more than a third of the segments get one rule (the bug: six of eight won the coupon).
#[test]
fn rules_differ_between_segments() {
    let mut by_rule: HashMap<&str, usize> = HashMap::new();
    for s in &loaded().segments {
        *by_rule.entry(s.rule_action.as_str()).or_default() += 1;
    }
    assert!(by_rule.len() >= 3, "{by_rule:?}");
    assert!(
        by_rule.get("win_back_coupon").copied().unwrap_or(0) <= 3,
        "{by_rule:?}"
    );
}

/// The statistics are those of the members as of now: recomputed here from every member's
/// profile (evaluated as of the watermark), they agree.
#[test]
fn statistics_are_the_current_members_as_of_now() -> Result<()> {
    let l = loaded();
    let model = l.db.model();
    let mut members: Vec<Vec<persona::Profile>> = vec![Vec::new(); l.segments.len()];
    for p in l.db.profiles() {
        let p = p?;
        if let Some(s) = p.assigned_segment {
            members[s as usize].push(p);
        }
    }
    for (s, ms) in l.segments.iter().zip(&members) {
        assert_eq!(s.size, ms.len() as u64, "segment {}", s.id);
        assert_eq!(s.evaluated, s.size, "a small store is evaluated whole");
        let n = ms.len() as f64;
        let mean = |f: &dyn Fn(&persona::Profile) -> f64| ms.iter().map(f).sum::<f64>() / n;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
        assert!(close(s.mean_propensity, mean(&|p| p.propensity)));
        assert!(close(s.mean_spend, mean(&|p| p.state().spend)));
        let buyers = mean(&|p| f64::from(u8::from(p.state().purchases() > 0)));
        assert!(close(s.buyers, buyers));
        let mut days: Vec<f64> = ms
            .iter()
            .filter_map(|p| p.last_seen_ms)
            .map(|t| (model.watermark_ms - t) as f64 / 86_400_000.0)
            .collect();
        days.sort_by(f64::total_cmp);
        let median = if days.len() % 2 == 1 {
            days[days.len() / 2]
        } else {
            (days[days.len() / 2 - 1] + days[days.len() / 2]) / 2.0
        };
        assert!(close(s.recency_days.expect("members have events"), median));
    }
    Ok(())
}
