//! Unit tests of `server`.

use super::*;

#[test]
fn a_row_reports_the_medians_of_its_rounds() {
    let row = ServerRow::from_runs(
        "EVENT.ADD",
        16,
        "HINCRBYFLOAT",
        vec![90.0, 50.0, 80.0],
        vec![300.0, 400.0, 200.0],
    );
    assert_eq!(row.persona_rps, 80.0);
    assert_eq!(row.redis_rps, Some(300.0));
    // Per-round ratios 0.3, 0.125, 0.4: the median is the round's, not 80 / 300.
    assert_eq!(row.ratio_runs, vec![0.3, 0.125, 0.4]);
    assert_eq!(row.ratio, Some(0.3));
    let alone = ServerRow::from_runs("EVENT.ADD", 1, "HINCRBYFLOAT", vec![10.0, 20.0], vec![]);
    assert_eq!(alone.persona_rps, 15.0);
    assert_eq!((alone.redis_rps, alone.ratio), (None, None));
    assert_eq!(median(&[]), None);
}

#[test]
fn parses_redis_7_csv() {
    let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\"\n\
               \"EVENT.ADD cust:__rand_int__ purchase 10\",\"12345.68\",\"3.1\",\"0.2\"\n";
    assert_eq!(parse_csv_rps(out), Some(12345.68));
}

#[test]
fn the_served_store_keeps_the_config_file_but_takes_the_benchmark_durability() -> crate::Result<()>
{
    let dir = tempfile::tempdir()?;
    let user = dir.path().join("user.toml");
    std::fs::write(
        &user,
        "durability = \"fsync\"\ncache_capacity_mb = 384\n[server]\nmax_clients = 64\n",
    )?;
    let mut cfg = ServerBenchConfig {
        persona_exe: PathBuf::from("persona"),
        dir: dir.path().to_path_buf(),
        requests: 1,
        clients: 1,
        keep: false,
        config_file: Some(user),
        durability: crate::config::Durability::Flush,
        rounds: 1,
    };
    let written = std::fs::read_to_string(serve_config(&cfg)?)?;
    let table: toml::Table = written
        .parse()
        .map_err(|e| crate::Error::Config(format!("{e}")))?;
    assert_eq!(table["durability"].as_str(), Some("flush"));
    assert_eq!(table["cache_capacity_mb"].as_integer(), Some(384));
    assert_eq!(table["server"]["max_clients"].as_integer(), Some(64));
    let store = crate::Config::from_toml_str(dir.path(), &written)?;
    assert_eq!(store.durability, crate::config::Durability::Flush);

    cfg.config_file = None;
    cfg.durability = crate::config::Durability::None;
    let written = std::fs::read_to_string(serve_config(&cfg)?)?;
    assert_eq!(written.trim(), "durability = \"none\"");
    Ok(())
}

#[test]
fn the_reply_shape_is_that_of_a_whole_profile_reply() -> crate::Result<()> {
    use crate::server::{Server, ServerConfig, ShutdownHandle};
    let dir = tempfile::tempdir()?;
    let db = crate::Db::open(dir.path())?;
    let names = db.layout().name_list().to_vec();
    let config = ServerConfig {
        bind: "127.0.0.1:0".into(),
        ..ServerConfig::default()
    };
    let shutdown = ShutdownHandle::new();
    let server = Server::bind(db, config, shutdown.clone())?;
    let addr = server.local_addr();
    let running = std::thread::spawn(move || server.run());
    let shape = profile_reply_shape(addr)?;
    let len = shape.bytes;
    shutdown.shutdown();
    running
        .join()
        .map_err(|_| crate::Error::Config("the server thread panicked".into()))??;
    // Every feature name and a value for each, at the least.
    let names_len: usize = names.iter().map(|n| n.len() + 8).sum();
    assert!(len > names_len + names.len() * 4, "{len} vs {names_len}");
    assert!(len < 64 * 1024, "{len}");
    // Every feature is a name and a value, and a dozen more fields surround them.
    assert!(shape.leaves >= 2 * names.len() + 20, "{shape:?}");
    // A hash shaped like it: as many elements, about as many bytes.
    let args = hset_like(&shape);
    assert_eq!(args.len(), shape.leaves / 2 * 2);
    let encoded: usize = args
        .iter()
        .map(|a| a.len() + 4 + a.len().to_string().len())
        .sum();
    assert!(
        encoded.abs_diff(len) * 5 < len,
        "HGETALL reply of ~{encoded} B against {len} B"
    );
    Ok(())
}

#[test]
fn parses_redis_6_csv_and_rejects_garbage() {
    assert_eq!(parse_csv_rps("\"GET\",\"99.50\"\n"), Some(99.5));
    assert_eq!(parse_csv_rps("\"test\",\"rps\"\n"), None);
    assert_eq!(parse_csv_rps(""), None);
}
