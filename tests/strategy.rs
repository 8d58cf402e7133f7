//! The marketing loop: recommend → act → feed back → the recommendation improves.

use persona::generator::{Generator, GeneratorConfig};
use persona::{Config, Db, Durability, Error, Result};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

fn seeded_store(dir: &std::path::Path) -> Result<Db> {
    let db = Config::new(dir)
        .segments(6)
        .durability(Durability::None)
        .open()?;
    let gen = Generator::new(GeneratorConfig {
        customers: 600,
        events: 12_000,
        seed: 11,
        ..GeneratorConfig::default()
    })
    .map_err(|e| Error::invalid_argument("generator", e.to_string()))?;
    let events: Vec<_> = gen.collect();
    for chunk in events.chunks(2048) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    db.resegment(500, persona::Centroids::Keep)?;
    Ok(db)
}

#[test]
fn thompson_sampling_converges_to_the_truly_best_action_per_segment() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = seeded_store(dir.path())?;
    let actions = db.config().action_names().to_vec();
    let k = db.config().segment_count();
    let mut rng = Pcg64::seed_from_u64(99);
    // The simulated market: in each segment one action truly converts best.
    let truth: Vec<Vec<f64>> = (0..k)
        .map(|_| {
            let best = rng.gen_range(0..actions.len());
            (0..actions.len())
                .map(|a| {
                    if a == best {
                        0.30
                    } else {
                        rng.gen_range(0.02..0.12)
                    }
                })
                .collect()
        })
        .collect();
    let members: Vec<Vec<String>> = (0..k as u16)
        .map(|s| db.segment_members(s, None, usize::MAX))
        .collect::<Result<_>>()?;
    assert!(
        members.iter().all(|m| !m.is_empty()),
        "every segment has members"
    );
    let mut fed_back = vec![0usize; k];
    for round in 0..4800 {
        let seg = round % k;
        let customer = &members[seg][rng.gen_range(0..members[seg].len())];
        let rec = db
            .strategy(customer, persona::Choice::Sample)?
            .expect("customer exists");
        let s = rec.segment as usize;
        let a = actions
            .iter()
            .position(|x| *x == rec.action)
            .expect("known action");
        let converted = rng.gen::<f64>() < truth[s][a];
        let ack = db.feedback(
            persona::Feedback::new(customer, &rec.action, converted).with_segment(rec.segment),
        )?;
        assert_eq!(ack.segment, Some(rec.segment));
        fed_back[s] += 1;
    }
    let segments = db.segments()?;
    let mut right = 0;
    for seg in &segments {
        let i = seg.id as usize;
        let best = truth[i]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(a, _)| actions[a].clone())
            .expect("actions");
        let greedy_ok = seg.best_action == best;
        eprintln!(
            "segment {i}: {} feedbacks, truly best {best}, learned {}",
            fed_back[i], seg.best_action
        );
        if greedy_ok {
            right += 1;
        }
    }
    assert!(
        right * 10 >= segments.len() * 9,
        "{right}/{} segments learned their best action",
        segments.len()
    );
    // The greedy recommendation for a customer agrees with its segment's best action.
    let c = &members[0][0];
    let rec = db.strategy(c, persona::Choice::Greedy)?.expect("exists");
    let seg = &segments[rec.segment as usize];
    assert_eq!(rec.action, seg.best_action);
    assert!(rec.reason.contains("converted"), "reason: {}", rec.reason);
    Ok(())
}

#[test]
fn cold_start_gives_the_rule_action_and_feedback_is_validated() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = seeded_store(dir.path())?;
    let first = db.profiles().next().expect("store has profiles")?;
    let c = first.customer_id.as_str();
    let rec = db.strategy(c, persona::Choice::Greedy)?.expect("exists");
    assert_eq!(rec.action, rec.rule_action, "cold start follows the rule");
    assert!(rec.reason.starts_with("no feedback yet"), "{}", rec.reason);
    let e = db
        .feedback(persona::Feedback::new(c, "free_pony", true))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid argument action: \"free_pony\" is not one of: vip_offer, new_product, \
         win_back_coupon, cart_reminder, none"
    );
    let e = db
        .feedback(persona::Feedback::new("nobody", "none", true))
        .unwrap_err();
    assert!(e.to_string().contains("no profile for \"nobody\""), "{e}");
    let e = db
        .feedback(persona::Feedback::new(c, "none", true).with_segment(Some(99)))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("99 is out of range; segments are 0..6"),
        "{e}"
    );
    // Idempotent with a feedback id.
    let before = db.segments()?[rec.segment as usize].actions.clone();
    let first = db.feedback(
        persona::Feedback::new(c, "none", true)
            .with_id("fb-1")
            .with_segment(rec.segment),
    )?;
    let again = db.feedback(
        persona::Feedback::new(c, "none", true)
            .with_id("fb-1")
            .with_segment(rec.segment),
    )?;
    assert!(!first.duplicate && again.duplicate);
    let after = db.segments()?[rec.segment as usize].actions.clone();
    let none = |v: &Vec<persona::ActionSummary>| {
        v.iter().find(|a| a.action == "none").map(|a| a.successes)
    };
    assert_eq!(none(&after), none(&before).map(|s| s + 1));
    // Feedback survives a reopen (it went through the writer and is durable).
    db.close()?;
    drop(db);
    let db = Config::new(dir.path()).segments(6).open()?;
    let reopened = db.segments()?[rec.segment as usize].actions.clone();
    assert_eq!(none(&reopened), none(&after));
    Ok(())
}
