//! Query layer on generated data: lookalike recall of the indexed search against the exact scan.

use persona::generator::{Generator, GeneratorConfig};
use persona::{Config, Db, Durability, Result};

fn load(dir: &std::path::Path, customers: u64, events: u64) -> Result<Db> {
    let db = Config::new(dir).durability(Durability::None).open()?;
    let gen = Generator::new(GeneratorConfig {
        customers,
        events,
        seed: 7,
        ..GeneratorConfig::default()
    })
    .map_err(|e| persona::Error::invalid_argument("generator", e.to_string()))?;
    let events: Vec<_> = gen.collect();
    for chunk in events.chunks(4096) {
        for r in db.ingest_batch(chunk.to_vec())? {
            r?;
        }
    }
    Ok(db)
}

fn recall(db: &Db, customers: u64, probes: u64) -> Result<f64> {
    let (mut hit, mut total) = (0usize, 0usize);
    for i in (0..customers).step_by((customers / probes) as usize) {
        let id = format!("c{i:06}");
        let exact = db
            .similar(&id, 10, persona::Search::Exact)?
            .unwrap_or_default();
        let fast = db
            .similar(&id, 10, persona::Search::Probe)?
            .unwrap_or_default();
        total += exact.len();
        hit += exact
            .iter()
            .filter(|e| fast.iter().any(|f| f.customer_id == e.customer_id))
            .count();
    }
    Ok(hit as f64 / total.max(1) as f64)
}

#[test]
fn indexed_similar_has_recall_at_10_of_at_least_0_9() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = load(dir.path(), 1500, 30_000)?;
    let r = recall(&db, 1500, 60)?;
    eprintln!("recall@10 indexed vs exact: {r:.3}");
    assert!(r >= 0.9, "recall@10 = {r:.3}");
    Ok(())
}
