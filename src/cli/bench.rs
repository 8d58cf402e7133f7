//! `persona bench`: ingest a generated workload end to end and, in the same run, the raw-sled
//! baseline that bounds it; then query latencies. With `--server`, redis-benchmark against
//! `persona serve` and redis-server instead. The engines live in `crate::bench`.

use super::print_json;
use crate::bench::server::{ServerBenchConfig, ServerReport, EVENT_ADD_TARGET};
use crate::bench::{BenchConfig, BenchReport, Progress, Quantiles};
use crate::Durability;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Customers in the generated workload.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    customers: u64,
    /// Events in the generated workload.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Durability of the store and of the raw-sled baseline: fsync, flush or none (with
    /// --server: of the served store; it replaces the --config file's).
    #[arg(long, default_value = "fsync", value_parser = ["fsync", "flush", "none"])]
    durability: String,
    /// Ingesting threads (each owns the customers hashed to it, one chunk in flight each); the
    /// baseline uses as many. The default keeps about four writer rounds in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: u64,
    /// Events per ingest_batch call (and per durable chunk of the baseline).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    chunk: u64,
    /// Point queries timed per kind.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    queries: u64,
    /// similar (k = 10) queries timed; the first --recall-queries also run the exact scan.
    #[arg(long, default_value_t = 50)]
    similar_queries: u64,
    /// Events name items from a catalogue of N products (as `persona generate --items`; 0:
    /// no items).
    #[arg(long, value_name = "N", default_value_t = 0)]
    items: u32,
    /// similar queries compared with the exact scan for recall@10.
    #[arg(long, default_value_t = 10)]
    recall_queries: u64,
    /// Skip the refit + re-segmentation after the ingest.
    #[arg(long)]
    no_resegment: bool,
    /// Skip the compaction of the store at the end of the run (reported: its size on disk
    /// afterwards and how long it took).
    #[arg(long)]
    no_compact: bool,
    /// Seed of the workload and of the query sample.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Working directory (must be new or empty) [default: ./persona-bench.PID].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the store and the baseline in the working directory afterwards.
    #[arg(long)]
    keep: bool,
    /// Only reopen the store a --keep run left in --dir and time the queries (no ingest, no
    /// re-segmentation, no baseline) and print JSON; --customers must match that run.
    #[arg(long, requires = "dir", conflicts_with = "server")]
    queries_only: bool,
    /// Benchmark the RESP server with redis-benchmark (against redis-server when installed).
    #[arg(long)]
    server: bool,
    /// With --server: requests per redis-benchmark run.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// With --server: parallel clients of redis-benchmark.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    clients: u64,
    /// With --server: rounds of the main comparisons, the two servers taking turns at going
    /// first; rows report medians (the rounds are in the JSON).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// An indicatif bar per phase (hidden with --json so stdout stays parseable; it draws on stderr).
struct Bar {
    bar: Mutex<ProgressBar>,
    hidden: bool,
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        let bar = if self.hidden {
            ProgressBar::hidden()
        } else if total == 0 {
            let b = ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg:<28} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(phase.to_string());
        *self.bar.lock() = bar;
    }
    fn inc(&self, n: u64) {
        self.bar.lock().inc(n);
    }
    fn finish(&self) {
        self.bar.lock().finish_and_clear();
    }
}

/// Runs `persona bench` with the store settings of `config` (the global `--config` file).
pub fn run(args: &Args, config: Option<&PathBuf>) -> Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("persona-bench.{}", std::process::id())));
    let progress = Bar {
        bar: Mutex::new(ProgressBar::hidden()),
        hidden: args.json,
    };
    if args.server {
        let exe = std::env::current_exe().context("cannot find the persona executable")?;
        let cfg = ServerBenchConfig {
            persona_exe: exe,
            dir,
            requests: args.requests,
            clients: args.clients,
            keep: args.keep,
            config_file: config.cloned(),
            durability: Durability::parse(&args.durability)?,
            rounds: args.rounds,
        };
        let report = crate::bench::server::run(&cfg, &progress).context("server benchmark")?;
        return if args.json {
            print_json(&serde_json::to_value(&report)?)
        } else {
            print_server(&report);
            Ok(())
        };
    }
    let mut cfg = BenchConfig::new(dir, args.customers, args.events);
    cfg.durability = Durability::parse(&args.durability)?;
    cfg.threads = args.threads as usize;
    cfg.chunk = args.chunk as usize;
    cfg.queries = args.queries as usize;
    cfg.similar_queries = args.similar_queries as usize;
    cfg.items = args.items;
    cfg.recall_queries = args.recall_queries as usize;
    cfg.no_resegment = args.no_resegment;
    cfg.no_compact = args.no_compact;
    cfg.seed = args.seed;
    cfg.keep = args.keep;
    cfg.config_file = config.cloned();
    if args.queries_only {
        let report = crate::bench::run_queries(&cfg, &progress).context("benchmark")?;
        return print_json(&serde_json::to_value(&report)?);
    }
    let report = crate::bench::run(&cfg, &progress).context("benchmark")?;
    if args.json {
        print_json(&serde_json::to_value(&report)?)
    } else {
        print_report(&report);
        Ok(())
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn q(x: &Quantiles, unit: &str) -> String {
    format!("{:>10.2} {unit} {:>10.2} {unit}", x.p50, x.p99)
}

fn print_report(r: &BenchReport) {
    println!(
        "== ingest: {} events, {} customers, durability {}, {} threads, chunks of {}",
        r.events, r.customers, r.durability, r.threads, r.chunk
    );
    println!(
        "{:<36} {:>14}",
        "persona events/s",
        format!("{:.0}", r.events_per_sec)
    );
    println!(
        "{:<36} {:>14}",
        "raw sled inserts/s (baseline)",
        format!("{:.0}", r.raw_sled_inserts_per_sec)
    );
    println!("{:<36} {:>14.3}", "ratio to raw sled", r.ratio_to_raw_sled);
    println!(
        "{:<36} {:>14}",
        "baseline record size",
        format!("{} B", r.raw_record_bytes)
    );
    println!(
        "{:<36} {:>14.3}",
        "key writes per event", r.key_writes_per_event
    );
    println!("{:<36} {:>14.1}", "events per commit", r.events_per_commit);
    println!(
        "{:<36} {:>14}",
        "ack latency per chunk p50 / p99",
        format!(
            "{:.2} / {:.2} ms",
            r.ack_latency_ms.p50, r.ack_latency_ms.p99
        )
    );
    println!(
        "{:<36} {:>14}",
        format!("first / last {} events, events/s", r.window_events),
        format!(
            "{:.0} / {:.0}",
            r.first_window_events_per_sec, r.last_window_events_per_sec
        )
    );
    println!(
        "{:<36} {:>14}",
        "last / first window (raw sled)",
        format!(
            "{:.3} ({:.3})",
            r.last_to_first_window, r.raw_sled_last_to_first_window
        )
    );
    println!(
        "{:<36} {:>14}",
        "disk / logical bytes",
        format!("{} / {}", mib(r.disk_bytes), mib(r.logical_bytes))
    );
    println!("{:<36} {:>14.2}", "disk to logical", r.disk_to_logical);
    if let (Some(bytes), Some(to_logical), Some(secs)) = (
        r.compacted_disk_bytes,
        r.compacted_to_logical,
        r.compact_secs,
    ) {
        println!(
            "{:<36} {:>14}",
            "after compaction: disk (to logical)",
            format!("{} ({to_logical:.2})", mib(bytes))
        );
        println!("{:<36} {:>14.3}", "compaction seconds", secs);
    }
    println!(
        "{:<36} {:>14}",
        "peak RSS (VmHWM)",
        r.peak_rss_bytes.map(mib).unwrap_or_else(|| "n/a".into())
    );
    println!(
        "{:<36} {:>14.3}",
        "close seconds (until unlocked)", r.close_secs
    );
    println!("{:<36} {:>14.3}", "reopen seconds", r.reopen_secs);
    println!(
        "{:<36} {:>14.3}",
        "lookalike index ready (s after open)", r.lookalike_index_secs
    );
    println!(
        "{:<36} {:>14}",
        "lookalike index heap",
        mib(r.lookalike_index_bytes as u64)
    );
    println!(
        "{:<36} {:>14.3}",
        "co-occurrence ready (s after open)", r.co_occurrence_secs
    );
    println!(
        "{:<36} {:>14}",
        "co-occurrence table heap",
        mib(r.co_occurrence_bytes as u64)
    );
    if let Some(s) = r.resegment_secs {
        println!("{:<36} {:>14.3}", "refit + re-segment seconds", s);
    }
    let qr = &r.queries;
    println!();
    println!(
        "== queries ({} samples; {} segments, {} dims)",
        qr.samples, qr.segments, qr.dims
    );
    println!("{:<36} {:>13} {:>13}", "", "p50", "p99");
    println!(
        "{:<36} {}",
        "raw record get (baseline)",
        q(&qr.raw_record_get_us, "µs")
    );
    println!("{:<36} {}", "profile get", q(&qr.profile_get_us, "µs"));
    println!(
        "{:<36} {}",
        "nearest segment (vector)",
        q(&qr.nearest_segment_vector_us, "µs")
    );
    println!(
        "{:<36} {}",
        "nearest segment (customer)",
        q(&qr.nearest_segment_customer_us, "µs")
    );
    println!("{:<36} {}", "score", q(&qr.score_us, "µs"));
    println!(
        "{:<36} {}",
        "recommend (10 items)",
        q(&qr.recommend_us, "µs")
    );
    let ms = |x: &Quantiles| Quantiles {
        p50: x.p50 / 1e3,
        p99: x.p99 / 1e3,
    };
    println!(
        "{:<36} {}",
        format!("similar k={} (indexed)", qr.similar_k),
        q(&ms(&qr.similar_us), "ms")
    );
    println!(
        "{:<36} {}",
        format!("similar k={} (exact)", qr.similar_k),
        q(&ms(&qr.similar_exact_us), "ms")
    );
    println!(
        "{:<36} {:>14.3}",
        format!("recall@{} ({} queries)", qr.similar_k, qr.recall_samples),
        qr.recall_at_k
    );
}

fn print_server(r: &ServerReport) {
    println!(
        "== redis-benchmark: {} requests, {} clients per run; medians over the rounds",
        r.requests, r.clients
    );
    println!(
        "{:<14} {:>6} {:>16} {:>16} {:>8}  ratio per round",
        "command", "-P", "persona req/s", "redis req/s", "ratio"
    );
    for row in &r.rows {
        println!(
            "{:<14} {:>6} {:>16} {:>16} {:>8}  {}",
            row.command,
            row.pipeline,
            format!("{:.0}", row.persona_rps),
            row.redis_rps
                .map(|x| format!("{x:.0} ({})", row.redis_command))
                .unwrap_or_else(|| "n/a".into()),
            row.ratio
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "n/a".into()),
            if row.ratio_runs.len() > 1 {
                row.ratio_runs
                    .iter()
                    .map(|x| format!("{x:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                String::new()
            },
        );
    }
    if let Some(c) = &r.storage_ceiling {
        println!(
            "== storage ceiling: raw sled alone, one thread applying batches of {} records of {} B \
             (the server's EVENT.ADD -P 16 commits), one syncing them as configured, no client or server running",
            c.batch, c.value_bytes
        );
        println!("{:<36} {:>14.0}", "raw sled inserts/s", c.inserts_per_sec);
        let ratio = |x: Option<f64>| x.map_or_else(|| "n/a".into(), |x| format!("{x:.3}"));
        println!(
            "{:<36} {:>14}",
            "EVENT.ADD -P 16 / ceiling",
            ratio(r.event_add_to_ceiling)
        );
        println!(
            "{:<36} {:>14}",
            format!("target ({EVENT_ADD_TARGET} x redis) / ceiling"),
            ratio(r.target_to_ceiling)
        );
    }
    for note in &r.notes {
        println!("note: {note}");
    }
}
