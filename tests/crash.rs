//! Crash safety: a `persona` process ingesting in `fsync` durability is killed with SIGKILL at
//! random points, again and again on the same store, each run continuing the stream and
//! re-sending events it had already sent. Then the store must hold exactly what was committed:
//!
//! - `persona check` finds nothing (every record decodes, the index equals the profiles, the
//!   model state is consistent with them);
//! - every **acknowledged** event is applied, every applied event was sent, none twice
//!   (acked ⊆ applied ⊆ sent, read from each customer's de-duplication window, which is larger
//!   than any customer's event count here);
//! - each customer's counters (events per kind, spend, first/last seen, version) equal a
//!   reference recomputed from exactly the applied events;
//! - the model state is the one committed with those profiles: its scaler has seen exactly one
//!   vector per applied event (the horizon is long enough that no label expires, the only other
//!   source of vectors) and its watermark is the latest applied event time;
//! - the trigger outbox holds exactly the firings of the applied events, each once, under
//!   strictly increasing ids: one `FIRST_PURCHASE` per customer with an applied purchase, dated
//!   by one of them, and one `SPEND_ABOVE 500` per customer whose applied spend reaches 500.
//!
//! Two front ends are killed: `persona ingest-stream` (events on stdin, one acknowledgement
//! line per event on stdout) and `persona serve` fed by RESP clients that log each `EVENT.ADD`
//! reply. `scripts/crash-loop.sh` runs the same with many more kills (docs/testing.md).

mod common;

use common::check_store;
use common::T0;
use persona::testing::DbInternals;
use persona::{Config, Db};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Events per customer stay far below the de-duplication window (512), so each record's window
/// lists every event ever applied to it.
const EVENTS_PER_CUSTOMER: usize = 150;

/// Kills per front end: `PERSONA_CRASH_KILLS` (scripts/crash-loop.sh), else `default`.
fn kills(default: usize) -> usize {
    std::env::var("PERSONA_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Enough events that `kills` runs (each acknowledging at most 500) do not finish the stream.
fn events_for(kills: usize) -> usize {
    (kills * 600).max(6000)
}
const KIND_INDEX: [(&str, usize); 3] = [("click", 1), ("view", 0), ("purchase", 4)];

/// One generated event. Values are whole numbers, so sums are exact in any order.
#[derive(Debug, Clone)]
struct Ev {
    id: String,
    customer: String,
    ts: i64,
    kind: &'static str,
    value: Option<u32>,
}

fn stream(n: usize, seed: u64) -> Vec<Ev> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let customers = n.div_ceil(EVENTS_PER_CUSTOMER);
    (0..n)
        .map(|i| {
            let kind = KIND_INDEX[rng.gen_range(0..3)].0;
            Ev {
                id: format!("e{i}"),
                customer: format!("c{}", rng.gen_range(0..customers)),
                ts: T0 + i as i64 * 60_000,
                kind,
                value: (kind != "click").then(|| rng.gen_range(1..200)),
            }
        })
        .collect()
}

fn jsonl(e: &Ev) -> String {
    let value = e.value.map_or(String::new(), |v| format!(",\"value\":{v}"));
    format!(
        "{{\"event_id\":\"{}\",\"customer_id\":\"{}\",\"timestamp\":{},\"kind\":\"{}\"{value}}}\n",
        e.id, e.customer, e.ts, e.kind
    )
}

/// Index of an event id `e<i>`.
fn index_of(id: &str) -> TestResult<usize> {
    Ok(id.strip_prefix('e').ok_or("event id")?.parse()?)
}

/// A store directory and its configuration file (fsync durability, the default).
struct Store {
    _dir: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
}

impl Store {
    fn new() -> TestResult<Store> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("persona.toml");
        std::fs::write(
            &config,
            "segments = 4\nreservoir_size = 64\nhorizon_days = 3650\nsnapshot_every = 7\n\
             durability = \"fsync\"\ntrigger_daily_cap = 0\n\
             [[triggers]]\nname = \"first\"\nwhen = \"FIRST_PURCHASE\"\ncooldown_days = 0\n\
             [[triggers]]\nname = \"spender\"\nwhen = \"SPEND_ABOVE 500\"\ncooldown_days = 0\n",
        )?;
        Ok(Store {
            data: dir.path().join("store"),
            config,
            _dir: dir,
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_persona"));
        c.arg("--data")
            .arg(&self.data)
            .arg("--config")
            .arg(&self.config);
        c
    }
}

/// What the runs acknowledged.
#[derive(Default)]
struct Acked {
    set: HashSet<usize>,
    duplicates: usize,
    kills: usize,
}

impl Acked {
    /// Where the next run starts: a little before the first event not acknowledged yet, so it
    /// re-sends some acknowledged events (duplicates) and everything in flight at the kill.
    fn next_start(&self, n: usize, rng: &mut Pcg64) -> usize {
        let first_missing = (0..n).find(|i| !self.set.contains(i)).unwrap_or(n);
        first_missing.saturating_sub(rng.gen_range(0..150))
    }
}

/// Kills the child (SIGKILL on unix) if it is still running; true if it was.
fn kill(child: &mut Child) -> TestResult<bool> {
    let running = child.try_wait()?.is_none();
    if running {
        child.kill()?;
    }
    child.wait()?;
    Ok(running)
}

/// One `persona ingest-stream` run from `start`, killed after `kill_after` acknowledgements
/// (or left to finish with `None`).
fn stream_run(
    store: &Store,
    events: &[Ev],
    start: usize,
    kill_after: Option<usize>,
    rng: &mut Pcg64,
    acked: &mut Acked,
) -> TestResult {
    let mut child = store
        .command()
        .args(["ingest-stream", "--in-flight", "32"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("stdin")?;
    let input: String = events[start..].iter().map(jsonl).collect();
    // A killed child closes the pipe: the write then fails, which is expected.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let stderr = child.stderr.take().ok_or("stderr")?;
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr));
    let stdout = BufReader::new(child.stdout.take().ok_or("stdout")?);
    let mut seen = 0;
    let mut killed = false;
    for line in stdout.lines() {
        let line = line?;
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next()) {
            (Some("ok"), Some(id)) => {
                acked.set.insert(index_of(id)?);
            }
            (Some("dup"), Some(id)) => {
                acked.set.insert(index_of(id)?);
                acked.duplicates += 1;
            }
            _ => return Err(format!("unexpected line from ingest-stream: {line}").into()),
        }
        seen += 1;
        if Some(seen) == kill_after {
            // A little later than the ack, at a random point of the following commits.
            std::thread::sleep(std::time::Duration::from_micros(rng.gen_range(0..3000)));
            killed = kill(&mut child)?;
        }
    }
    let _ = writer.join();
    let status = child.wait()?;
    let errors = errors.join().map_err(|_| "stderr thread")??;
    if killed {
        acked.kills += 1;
    } else {
        assert!(status.success(), "ingest-stream failed: {status}\n{errors}");
    }
    Ok(())
}

/// One `persona serve` run from `start` with four RESP clients; killed once `kill_after`
/// events are acknowledged (with `None`, once every event is).
fn serve_run(
    store: &Store,
    events: &Arc<Vec<Ev>>,
    start: usize,
    kill_after: Option<usize>,
    acked: &mut Acked,
) -> TestResult {
    let mut child = store
        .command()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()?;
    let addr = common::resp::serve_address(&mut child)?;

    let next = Arc::new(AtomicUsize::new(start));
    let done = Arc::new(AtomicUsize::new(0));
    let killing = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<(usize, bool)>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (events, next, done, killing, log, failures) = (
                events.clone(),
                next.clone(),
                done.clone(),
                killing.clone(),
                log.clone(),
                failures.clone(),
            );
            let url = format!("redis://{addr}/");
            std::thread::spawn(move || {
                let result = (|| -> redis::RedisResult<()> {
                    let mut con = redis::Client::open(url)?.get_connection()?;
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(e) = events.get(i) else { break };
                        let mut cmd = redis::cmd("EVENT.ADD");
                        cmd.arg(&e.customer).arg(e.kind);
                        if let Some(v) = e.value {
                            cmd.arg(v);
                        }
                        cmd.arg("TS").arg(e.ts).arg("ID").arg(&e.id);
                        let reply: HashMap<String, redis::Value> = cmd.query(&mut con)?;
                        let duplicate = reply.get("duplicate") == Some(&redis::Value::Int(1));
                        log.lock().expect("log lock").push((i, duplicate));
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    if !killing.load(Ordering::SeqCst) {
                        failures.lock().expect("failures lock").push(e.to_string());
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let target = kill_after.unwrap_or(events.len() - start);
    while log.lock().expect("log lock").len() < target && done.load(Ordering::SeqCst) < 4 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    killing.store(true, Ordering::SeqCst);
    // Even the final run is killed (after every reply): acknowledged means durable.
    let killed = kill(&mut child)?;
    for c in clients {
        c.join().map_err(|_| "client thread panicked")?;
    }
    let failures = failures.lock().expect("failures lock");
    assert!(
        failures.is_empty(),
        "client errors before the kill: {failures:?}"
    );
    for &(i, duplicate) in log.lock().expect("log lock").iter() {
        acked.set.insert(i);
        acked.duplicates += usize::from(duplicate);
    }
    acked.kills += usize::from(killed);
    Ok(())
}

/// Reference counters of one customer over a set of events.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    events: u64,
    kinds: [u64; 3],
    spend: f64,
    view_seconds: f64,
    first: Option<i64>,
    last: Option<i64>,
}

impl Expected {
    fn add(&mut self, e: &Ev) {
        self.events += 1;
        let k = KIND_INDEX
            .iter()
            .position(|(n, _)| *n == e.kind)
            .unwrap_or(0);
        self.kinds[k] += 1;
        let v = f64::from(e.value.unwrap_or(0));
        match e.kind {
            "purchase" => self.spend += v,
            "view" => self.view_seconds += v,
            _ => {}
        }
        self.first = Some(self.first.map_or(e.ts, |f| f.min(e.ts)));
        self.last = Some(self.last.map_or(e.ts, |l| l.max(e.ts)));
    }
}

/// Verifies the store against the acknowledged events; returns how many events are applied.
fn verify(store: &Store, events: &[Ev], acked: &Acked) -> TestResult<usize> {
    let report = check_store(&store.data).map_err(|e| format!("check_store: {e}"))?;
    assert!(report.is_clean(), "check: {:#?}", report.problems);
    let db = Db::open_with(Config::from_toml_file(&store.data, &store.config)?)
        .map_err(|e| format!("Db::open: {e}"))?;
    let by_hash: HashMap<u64, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (xxhash_rust::xxh3::xxh3_64(e.id.as_bytes()), i))
        .collect();
    let mut customers: Vec<&str> = events.iter().map(|e| e.customer.as_str()).collect();
    customers.sort_unstable();
    customers.dedup();
    let mut applied_total = 0;
    let mut latest = None;
    // The trigger outbox: ids strictly increasing, and per (trigger, customer) the firings.
    let mut firings: HashMap<(String, String), Vec<i64>> = HashMap::new();
    let mut last_id = 0;
    loop {
        let page = db.read_triggers(last_id, 10_000)?;
        let Some(last) = page.last().map(|f| f.id) else {
            break;
        };
        for f in page {
            assert!(f.id > last_id, "firing ids not increasing at {}", f.id);
            last_id = f.id;
            debug_assert!(last_id <= last);
            firings
                .entry((f.trigger, f.customer))
                .or_default()
                .push(f.time_ms);
        }
        last_id = last;
    }
    let mut expected_firings = 0;
    for c in customers {
        let Some(rec) = db.store().profile(c)? else {
            assert!(
                !acked.set.iter().any(|&i| events[i].customer == c),
                "{c}: acknowledged events but no profile"
            );
            continue;
        };
        let mut applied = HashSet::new();
        let mut expected = Expected::default();
        for (hash, _) in &rec.recent_ids {
            let i = *by_hash
                .get(hash)
                .ok_or_else(|| format!("{c}: an applied event that was never sent"))?;
            assert_eq!(
                events[i].customer, c,
                "event {i} applied to the wrong customer"
            );
            assert!(applied.insert(i), "{c}: event {i} applied twice");
            expected.add(&events[i]);
        }
        for &i in &acked.set {
            if events[i].customer == c {
                assert!(applied.contains(&i), "{c}: acknowledged event {i} was lost");
            }
        }
        let s = &rec.state;
        let got = Expected {
            events: s.event_count,
            kinds: KIND_INDEX.map(|(_, k)| s.kind_counts[k]),
            spend: s.spend,
            view_seconds: s.view_seconds,
            first: s.first_seen_ms,
            last: s.last_seen_ms,
        };
        assert_eq!(
            got, expected,
            "{c}: counters differ from the applied events"
        );
        assert_eq!(rec.version, s.event_count, "{c}: one version per event");
        // Every applied event's firings, once: the first purchase, and spend crossing 500.
        let purchases: HashSet<i64> = applied
            .iter()
            .filter(|&&i| events[i].kind == "purchase")
            .map(|&i| events[i].ts)
            .collect();
        let first = firings.get(&("first".to_string(), c.to_string()));
        match first.map(Vec::as_slice) {
            None => assert!(
                purchases.is_empty(),
                "{c}: purchases but no first-purchase firing"
            ),
            Some([t]) => assert!(purchases.contains(t), "{c}: first purchase fired at {t}"),
            Some(more) => panic!("{c}: the first purchase fired {} times", more.len()),
        }
        let spender = firings.get(&("spender".to_string(), c.to_string()));
        assert_eq!(
            spender.map_or(0, Vec::len),
            usize::from(expected.spend >= 500.0),
            "{c}: spend {} and its firings {spender:?}",
            expected.spend
        );
        expected_firings +=
            usize::from(!purchases.is_empty()) + usize::from(expected.spend >= 500.0);
        applied_total += applied.len();
        latest = latest.max(expected.last);
    }
    assert_eq!(
        firings.values().map(Vec::len).sum::<usize>(),
        expected_firings,
        "firings of customers without a profile, or of no applied event"
    );
    assert!(expected_firings > 0, "the stream fired no trigger");
    let model = db.model();
    assert_eq!(
        model.segments.events(),
        applied_total as u64,
        "the model state saw a different set of events than the profiles"
    );
    assert_eq!(Some(model.watermark_ms), latest, "watermark");
    db.close()?;
    Ok(applied_total)
}

/// One line per run, shown with `--nocapture` (and on failure).
fn summary(front: &str, run: usize, start: usize, applied: usize, acked: &Acked) {
    eprintln!(
        "{front} run {run}: started at event {start}; {} acknowledged in all, {applied} applied, \
         {} duplicates recognised, {} kills",
        acked.set.len(),
        acked.duplicates,
        acked.kills
    );
}

#[test]
fn sigkilled_ingest_stream_loses_no_acknowledged_event_and_applies_none_twice() -> TestResult {
    let store = Store::new()?;
    let runs = kills(8);
    let events = stream(events_for(runs), 1);
    let mut rng = Pcg64::seed_from_u64(2);
    let mut acked = Acked::default();
    for run in 0..runs {
        let start = acked.next_start(events.len(), &mut rng);
        let kill_after = rng.gen_range(20..500);
        stream_run(
            &store,
            &events,
            start,
            Some(kill_after),
            &mut rng,
            &mut acked,
        )?;
        let applied = verify(&store, &events, &acked)?;
        summary("ingest-stream", run, start, applied, &acked);
    }
    assert!(acked.kills >= runs, "only {} runs were killed", acked.kills);
    assert!(acked.duplicates > 0, "re-sent events were not recognised");
    // Finish the stream from the start: every event ends up applied exactly once.
    stream_run(&store, &events, 0, None, &mut rng, &mut acked)?;
    assert_eq!(acked.set.len(), events.len());
    assert_eq!(verify(&store, &events, &acked)?, events.len());
    Ok(())
}

#[test]
fn sigkilled_server_loses_no_acknowledged_event_and_applies_none_twice() -> TestResult {
    let store = Store::new()?;
    let runs = kills(4);
    let events = Arc::new(stream(events_for(runs), 3));
    let mut rng = Pcg64::seed_from_u64(4);
    let mut acked = Acked::default();
    for run in 0..runs {
        let start = acked.next_start(events.len(), &mut rng);
        let kill_after = rng.gen_range(20..400);
        serve_run(&store, &events, start, Some(kill_after), &mut acked)?;
        let applied = verify(&store, &events, &acked)?;
        summary("serve", run, start, applied, &acked);
    }
    assert!(acked.duplicates > 0, "re-sent events were not recognised");
    // The last run sends everything and is killed only once every reply is in.
    let start = acked.next_start(events.len(), &mut rng);
    serve_run(&store, &events, start, None, &mut acked)?;
    assert!(acked.kills > runs, "only {} runs were killed", acked.kills);
    assert_eq!(acked.set.len(), events.len());
    assert_eq!(verify(&store, &events, &acked)?, events.len());
    Ok(())
}
