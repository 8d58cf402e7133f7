//! `Db::recommend`: reasons that match the evidence, the options, the co-occurrence tier
//! ("bought together") recovering a planted pair, surviving a reopen, and erase leaving no
//! per-customer trace.

mod common;

use common::T0;
use persona::{Config, Db, Durability, Event, EventKind, RecommendOptions, Result};
use std::path::Path;

fn open(dir: &Path) -> Result<Db> {
    Config::new(dir)
        .segments(2)
        .reservoir_size(8)
        .durability(Durability::None)
        .open()
}

/// `recommend`: the customer's own items first (what they bought, with how often), then their
/// segment's and everyone's popular items with the reason; `exclude_purchased` leaves out what
/// they bought; an unknown customer gets the popular items; categories work the same way.
#[test]
fn recommendations_come_with_reasons_and_respect_the_options() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path())
        .segments(2)
        .reservoir_size(8)
        .durability(Durability::None)
        .open()?;
    // Twenty customers buy the bestseller; each also views an item of their own.
    for c in 0..20 {
        let id = format!("c{c}");
        let t = T0 + c * 60_000;
        db.ingest(
            Event::new(id.as_str(), t, EventKind::Purchase)
                .with_value(5.0)
                .with_item("bestseller")
                .with_category("kitchen"),
        )?;
        db.ingest(
            Event::new(id.as_str(), t + 1, EventKind::View)
                .with_item(format!("own-{c}"))
                .with_category("garden"),
        )?;
    }
    let opts = persona::RecommendOptions::default();
    let mine = db.recommend("c3", 5, opts)?;
    let names: Vec<&str> = mine.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names[..2], ["bestseller", "own-3"], "{mine:?}");
    assert_eq!(mine[0].reason, "bought it before, on 2026-01-01");
    assert!(mine[1].reason.starts_with("engaged with it before"));
    assert!(mine.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(mine.len() <= 5);

    // Without what they bought: their own view first, then popular items they do not own.
    let new = db.recommend("c3", 5, opts.exclude_purchased())?;
    assert!(new.iter().all(|s| s.name != "bestseller"), "{new:?}");
    assert_eq!(new[0].name, "own-3");

    // An unknown customer gets everyone's favourites, with the reason.
    let cold = db.recommend("stranger", 3, opts)?;
    assert_eq!(cold[0].name, "bestseller", "{cold:?}");
    assert!(cold[0].reason.starts_with("popular"), "{cold:?}");

    // Categories, by name.
    let cats = db.recommend("c3", 2, opts.categories())?;
    let names: Vec<&str> = cats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["kitchen", "garden"]);

    // The strategy carries up to three suggestions with its action.
    let r = db
        .strategy("c3", persona::Choice::Greedy)?
        .expect("c3 exists");
    if r.action == "none" {
        assert!(r.suggestions.is_empty());
    } else {
        assert!((1..=3).contains(&r.suggestions.len()), "{r:?}");
    }
    if r.action == "new_product" {
        assert!(r.suggestions.iter().all(|s| s.name != "bestseller"));
    }

    // Bad arguments are refused with the field named.
    let err = db.recommend("c3", 0, opts).unwrap_err().to_string();
    assert!(err.contains("count"), "{err}");
    assert!(db.recommend("", 3, opts).is_err());

    // Erased, the customer's own items are gone: only popular ones remain (the popularity
    // counts are aggregates, which may still include them until the next description).
    assert!(db.erase("c3")?);
    let after = db.recommend("c3", 5, opts)?;
    assert!(
        after.iter().all(|s| s.reason.starts_with("popular")),
        "{after:?}"
    );
    Ok(())
}

/// `exclude_purchased` leaves out an item bought long ago that has left the customer's
/// engagement list (the record's bought set remembers it), and it survives a reopen.
#[test]
fn an_item_bought_long_ago_is_not_suggested_as_new_after_it_left_the_list() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let open = || {
        Config::new(dir.path())
            .segments(2)
            .reservoir_size(8)
            .top_items(2)
            .durability(Durability::None)
            .open()
    };
    let db = open()?;
    let day = 86_400_000;
    // Everyone buys "classic", 300 days ago.
    for c in 0..10 {
        let id = format!("c{c}");
        db.ingest(
            Event::new(id.as_str(), T0 - 300 * day + c, EventKind::Purchase)
                .with_value(5.0)
                .with_item("classic"),
        )?;
    }
    // Now c0 buys three other items: "classic" leaves their list of two.
    for (k, item) in ["a", "b", "c"].iter().enumerate() {
        db.ingest(
            Event::new("c0", T0 + k as i64, EventKind::Purchase)
                .with_value(5.0)
                .with_item(*item),
        )?;
    }
    let p = db.profile("c0")?.expect("c0 exists");
    assert!(p.top_items.iter().all(|e| e.name != "classic"), "{p:?}");
    let all = db.recommend("c0", 10, RecommendOptions::default())?;
    assert!(all.iter().any(|s| s.name == "classic"), "popular: {all:?}");
    let new = db.recommend("c0", 10, RecommendOptions::default().exclude_purchased())?;
    assert!(new.iter().all(|s| s.name != "classic"), "{new:?}");
    // Someone who never bought it still gets it as new.
    let other = db.recommend("c1", 10, RecommendOptions::default().exclude_purchased())?;
    assert!(
        other.iter().all(|s| s.name != "classic"),
        "c1 bought it too: {other:?}"
    );
    let stranger = db.recommend("z", 10, RecommendOptions::default().exclude_purchased())?;
    assert!(stranger.iter().any(|s| s.name == "classic"), "{stranger:?}");
    db.close()?;
    drop(db);
    let db = open()?;
    let new = db.recommend("c0", 10, RecommendOptions::default().exclude_purchased())?;
    assert!(
        new.iter().all(|s| s.name != "classic"),
        "after a reopen: {new:?}"
    );
    Ok(())
}

/// Deterministic noise: item `k` of customer `c`, one of `n`.
fn noise(c: i64, k: i64, n: u64) -> u64 {
    let mut x = (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (k as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    x ^= x >> 32;
    x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x ^ (x >> 29)) % n
}

/// Two hundred customers buy three of 300 items at random; sixty of them also buy a tent and
/// stakes together. A customer who bought only the tent is offered the stakes first (and the
/// other way round), with the reason naming their item; after a reopen (the table rebuilt
/// from the records) the same; erased, they get no trace of their items.
#[test]
fn a_planted_bought_together_pair_is_recovered_with_its_reason() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let buy = |id: &str, t: i64, item: &str| {
        db.ingest(
            Event::new(id, t, EventKind::Purchase)
                .with_value(10.0)
                .with_item(item),
        )
    };
    for c in 0..200i64 {
        let id = format!("c{c}");
        let t = T0 + c * 600_000;
        for k in 0..3 {
            buy(&id, t + k, &format!("item-{}", noise(c, k, 300)))?;
        }
        if c % 10 < 3 {
            buy(&id, t + 10, "tent")?;
            buy(&id, t + 11, "stakes")?;
        }
    }
    buy("camper", T0 + 200 * 600_000, "tent")?;
    buy("pitcher", T0 + 200 * 600_000, "stakes")?;
    let discovery = RecommendOptions::default().exclude_purchased();
    let check = |db: &Db| -> Result<()> {
        for (who, has, offered) in [("camper", "tent", "stakes"), ("pitcher", "stakes", "tent")] {
            let next = db.recommend(who, 5, discovery)?;
            assert_eq!(next[0].name, offered, "{who}: {next:?}");
            assert_eq!(
                next[0].reason,
                format!("customers who bought {has} often take it too"),
                "{next:?}"
            );
            assert!(next.iter().all(|s| s.name != has), "{next:?}");
        }
        Ok(())
    };
    check(&db)?;
    drop(db);
    let db = open(dir.path())?;
    check(&db)?;

    assert!(db.erase("camper")?);
    let after = db.recommend("camper", 5, RecommendOptions::default())?;
    assert!(
        after.iter().all(|s| s.reason.starts_with("popular")),
        "{after:?}"
    );
    Ok(())
}
