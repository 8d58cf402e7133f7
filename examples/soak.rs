//! Soak test for `persona serve`: N clients mix `EVENT.ADD`, `PROFILE.GET`, `SCORE` and
//! `SEGMENT.NEAREST` for a bounded time; the server's resident memory is sampled as it goes.
//!
//! ```sh
//! cargo build --release --bin persona --example soak
//! target/release/examples/soak --secs 60 --clients 8
//! target/release/examples/soak --addr 127.0.0.1:6479 --pid "$(pidof persona)"   # a running server
//! ```
//!
//! Without `--addr` it starts `persona serve` (the binary next to this example's directory, or
//! `--bin`) on a fresh store (or `--data`), stops it with `SHUTDOWN` at the end and runs
//! `persona check` on the store. Prints a table of RSS samples, throughput, errors and latency
//! percentiles per command. Exit status: 0 when every command succeeded (and the check passed),
//! 1 otherwise. RSS growth over the second half of the run is flagged, not failed: memory that
//! keeps growing under a steady load deserves a look, but caches legitimately warm up.

use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Soak test for persona serve")]
struct Args {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Client connections, one thread each.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Distinct customers the events spread over.
    #[arg(long, default_value_t = 20_000)]
    customers: u64,
    /// Seconds between RSS samples.
    #[arg(long, default_value_t = 5)]
    sample_secs: u64,
    /// Connect to this running server instead of starting one.
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    /// Process id of the server given with --addr, for its RSS.
    #[arg(long, requires = "addr")]
    pid: Option<u32>,
    /// The persona binary to start [default: ../persona next to this example].
    #[arg(long, conflicts_with = "addr")]
    bin: Option<PathBuf>,
    /// Store directory of the started server [default: a temporary directory].
    #[arg(long, conflicts_with = "addr")]
    data: Option<PathBuf>,
    /// Random seed of the workload.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const COMMANDS: [&str; 4] = ["EVENT.ADD", "PROFILE.GET", "SCORE", "SEGMENT.NEAREST"];

/// Latencies (µs) and errors of one client, per command.
#[derive(Default)]
struct ClientStats {
    latencies: [Vec<u32>; 4],
    errors: [u64; 4],
    first_errors: Vec<String>,
}

fn main() {
    match run(Args::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(1);
        }
    }
}

/// A server this tool started.
struct Started {
    child: Child,
    bin: PathBuf,
    data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn start_server(args: &Args) -> BoxResult<(Started, String)> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => {
            let exe = std::env::current_exe()?;
            let dir = exe
                .parent()
                .and_then(|examples| examples.parent())
                .ok_or("cannot locate the persona binary; pass --bin")?;
            dir.join("persona")
        }
    };
    let (data, tmp) = match &args.data {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::tempdir()?;
            (t.path().join("store"), Some(t))
        }
    };
    let mut child = Command::new(&bin)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut stderr = std::io::BufReader::new(child.stderr.take().ok_or("no stderr")?);
    let mut line = String::new();
    stderr.read_line(&mut line)?;
    let addr = persona::testing::server::parse_ready_line(&line)
        .ok_or_else(|| format!("persona serve did not start: {line:?}"))?
        .to_string();
    // Keep draining the server's stderr so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::stderr()));
    Ok((
        Started {
            child,
            bin,
            data,
            _tmp: tmp,
        },
        addr,
    ))
}

/// Resident memory of a process in KiB (Linux), from /proc/PID/status.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn client(
    url: String,
    seed: u64,
    customers: u64,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
) -> BoxResult<ClientStats> {
    let mut con = redis::Client::open(url)?.get_connection()?;
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut stats = ClientStats::default();
    let t0: i64 = 1_767_225_600_000;
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let customer = format!("c{}", rng.gen_range(0..customers));
        let which = match rng.gen_range(0..100) {
            0..50 => 0,
            50..70 => 1,
            70..85 => 2,
            _ => 3,
        };
        let mut cmd = redis::cmd(COMMANDS[which]);
        cmd.arg(&customer);
        if which == 0 {
            let kind = ["view", "click", "purchase", "cart_add"][rng.gen_range(0..4)];
            cmd.arg(kind);
            if kind == "view" || kind == "purchase" {
                cmd.arg(rng.gen_range(1..300));
            }
            // Event time moves forward ~1 minute per event per client; ids are unique.
            n += 1;
            cmd.arg("TS")
                .arg(t0 + (n * 60_000 + rng.gen_range(0..60_000)) as i64)
                .arg("ID")
                .arg(format!("s{seed}-{n}"));
        } else if which == 3 {
            cmd.arg("COUNT").arg(3);
        }
        let started = Instant::now();
        let reply: redis::RedisResult<redis::Value> = cmd.query(&mut con);
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        stats.latencies[which].push(micros);
        ops.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = reply {
            stats.errors[which] += 1;
            if stats.first_errors.len() < 5 {
                stats.first_errors.push(format!("{}: {e}", COMMANDS[which]));
            }
            if e.is_io_error() || e.is_connection_dropped() {
                return Err(format!("connection lost: {e}").into());
            }
        }
    }
    Ok(stats)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn run(args: Args) -> BoxResult<bool> {
    let (started, addr) = match &args.addr {
        Some(a) => (None, a.clone()),
        None => {
            let (s, a) = start_server(&args)?;
            (Some(s), a)
        }
    };
    let pid = started.as_ref().map(|s| s.child.id()).or(args.pid);
    println!(
        "soak: {} clients for {} s against {addr} (server pid {})",
        args.clients,
        args.secs,
        pid.map_or("unknown".into(), |p| p.to_string())
    );
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..args.clients)
        .map(|i| {
            let (stop, ops) = (stop.clone(), ops.clone());
            let url = format!("redis://{addr}/");
            let seed = args.seed * 1000 + i as u64;
            let customers = args.customers;
            std::thread::spawn(move || {
                client(url, seed, customers, stop, ops).map_err(|e| e.to_string())
            })
        })
        .collect();

    let begin = Instant::now();
    let deadline = begin + Duration::from_secs(args.secs);
    let mut samples: Vec<(f64, Option<u64>)> = Vec::new();
    println!(
        "{:>8} {:>12} {:>10} {:>10}",
        "t (s)", "ops", "ops/s", "RSS (MiB)"
    );
    let mut last_ops = 0;
    let mut last_t = 0.0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let next = now + Duration::from_secs(args.sample_secs.max(1));
        std::thread::sleep(next.min(deadline) - now);
        let t = begin.elapsed().as_secs_f64();
        let total = ops.load(Ordering::Relaxed);
        let rss = pid.and_then(rss_kib);
        let rate = (total - last_ops) as f64 / (t - last_t).max(1e-9);
        println!(
            "{t:>8.1} {total:>12} {rate:>10.0} {:>10}",
            rss.map_or("-".into(), |r| format!("{:.1}", r as f64 / 1024.0))
        );
        samples.push((t, rss));
        (last_ops, last_t) = (total, t);
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = begin.elapsed().as_secs_f64();

    let mut merged = ClientStats::default();
    let mut lost = Vec::new();
    for t in threads {
        match t.join().map_err(|_| "client thread panicked")? {
            Ok(s) => {
                for c in 0..4 {
                    merged.latencies[c].extend(&s.latencies[c]);
                    merged.errors[c] += s.errors[c];
                }
                merged.first_errors.extend(s.first_errors);
            }
            Err(e) => lost.push(e),
        }
    }
    let total: usize = merged.latencies.iter().map(Vec::len).sum();
    let errors: u64 = merged.errors.iter().sum();
    println!();
    println!(
        "{total} ops in {elapsed:.1} s ({:.0} ops/s), {errors} errors, {} connections lost",
        total as f64 / elapsed,
        lost.len()
    );
    println!(
        "{:<16} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "command", "count", "errors", "p50 ms", "p99 ms", "max ms"
    );
    let mut all: Vec<u32> = Vec::with_capacity(total);
    for (c, name) in COMMANDS.iter().enumerate() {
        let l = &mut merged.latencies[c];
        l.sort_unstable();
        all.extend(l.iter());
        println!(
            "{name:<16} {:>10} {:>8} {:>9.2} {:>9.2} {:>9.2}",
            l.len(),
            merged.errors[c],
            percentile(l, 0.5),
            percentile(l, 0.99),
            percentile(l, 1.0)
        );
    }
    all.sort_unstable();
    println!(
        "{:<16} {:>10} {:>8} {:>9.2} {:>9.2} {:>9.2}",
        "all",
        all.len(),
        errors,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 1.0)
    );
    for e in merged.first_errors.iter().chain(&lost) {
        println!("error: {e}");
    }

    // RSS growth over the second half of the run (the first half warms the caches up).
    let with_rss: Vec<(f64, u64)> = samples
        .iter()
        .filter_map(|(t, r)| r.map(|r| (*t, r)))
        .collect();
    if let (Some(mid), Some(last)) = (with_rss.get(with_rss.len() / 2), with_rss.last()) {
        let growth = (last.1 as f64 / mid.1 as f64 - 1.0) * 100.0;
        let flag = if growth > 10.0 {
            "  <-- FLAG: resident memory still growing"
        } else {
            ""
        };
        println!(
            "RSS {:.1} MiB at {:.0} s -> {:.1} MiB at {:.0} s ({growth:+.1}%){flag}",
            mid.1 as f64 / 1024.0,
            mid.0,
            last.1 as f64 / 1024.0,
            last.0
        );
    }

    let mut ok = errors == 0 && lost.is_empty();
    if let Some(mut s) = started {
        let mut con = redis::Client::open(format!("redis://{addr}/"))?.get_connection()?;
        // The connection closes as the server stops: an error reply here is expected.
        let _: redis::RedisResult<redis::Value> = redis::cmd("SHUTDOWN").query(&mut con);
        let status = s.child.wait()?;
        if !status.success() {
            println!("server exited with {status}");
            ok = false;
        }
        let check = Command::new(&s.bin)
            .arg("--data")
            .arg(&s.data)
            .arg("check")
            .output()?;
        print!("{}", String::from_utf8_lossy(&check.stdout));
        ok &= check.status.success();
    }
    println!("soak: {}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}
