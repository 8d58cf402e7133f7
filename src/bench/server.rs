//! `persona bench --server`: `redis-benchmark` against `persona serve` and, in the same run,
//! against a `redis-server` with `--appendonly yes --appendfsync everysec`, both started here on
//! free loopback ports and stopped by pid when the run ends (on error paths too: the guards kill
//! them on drop).
//!
//! Pairs compared (each with `-c clients`, at `-P 1` and `-P 16`):
//! - `EVENT.ADD cust:__rand_int__ purchase 10` (a durable, fsynced write through the whole
//!   pipeline) against `HINCRBYFLOAT cust:__rand_int__ spend 10` (an in-memory update, made
//!   durable by an fsync every second);
//! - `PROFILE.GET cust:__rand_int__` against `GET str:__rand_int__` (keys filled beforehand
//!   with 128-byte values): the target's comparison;
//! - the same `PROFILE.GET` figures against `GET big:__rand_int__` with values as long as a
//!   `PROFILE.GET` reply (measured in the run), to show how much of the gap is the reply's size;
//! - and against `HGETALL hash:__rand_int__` of hashes whose reply has the shape of a
//!   `PROFILE.GET` reply (as many elements, about as many bytes): `redis-benchmark` parses every
//!   element of a reply, and at `-P 16` that parsing, on one core, is what bounds both servers.
//!
//! Throughput is read from `redis-benchmark --csv`.

use super::ceiling::{self, ServedWrites, StorageCeiling};
use super::probe::{connect, request, served_writes};
use super::Progress;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::server::frame::Frame;
use serde::Serialize;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Keys drawn by `__rand_int__` (`-r`).
const KEYSPACE: u64 = 100_000;
/// Pipeline depths (`-P`) every comparison runs at.
const PIPELINES: [u32; 2] = [1, 16];
/// The deepest of [`PIPELINES`], the one the targets are set at.
const DEEPEST: u32 = PIPELINES[PIPELINES.len() - 1];
/// Longest a single redis-benchmark run may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest a server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct ServerBenchConfig {
    /// The `persona` executable to start with `serve`.
    pub persona_exe: PathBuf,
    /// A new or empty working directory for both servers' data.
    pub dir: PathBuf,
    /// Requests per redis-benchmark run (`-n`).
    pub requests: u64,
    /// Parallel clients (`-c`).
    pub clients: u64,
    /// Keep the servers' data afterwards.
    pub keep: bool,
    /// A TOML configuration file for `persona serve`: its settings are used, but for its
    /// durability, which `durability` replaces.
    pub config_file: Option<PathBuf>,
    /// Durability of the Persona store (redis-server always runs `--appendfsync everysec`).
    pub durability: crate::config::Durability,
    /// Rounds of the main comparisons (at least 1). Each round runs every command on both
    /// servers back to back, the two servers taking turns at going first; a row reports the
    /// medians, so one slow moment of a noisy machine moves one round, not the result.
    pub rounds: u32,
}

/// One command at one pipeline depth, on both servers.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRow {
    /// The Persona command.
    pub command: String,
    /// Pipeline depth (`-P`).
    pub pipeline: u32,
    /// Persona's requests per second.
    pub persona_rps: f64,
    /// The redis command it is compared with.
    pub redis_command: String,
    /// redis-server's requests per second (None without redis-server).
    pub redis_rps: Option<f64>,
    /// `persona_rps / redis_rps` of each round, median over the rounds.
    pub ratio: Option<f64>,
    /// Persona's requests per second in each round (`persona_rps` is their median).
    pub persona_runs: Vec<f64>,
    /// redis-server's requests per second in each round (`redis_rps` is their median).
    pub redis_runs: Vec<f64>,
    /// The ratio of each round (`ratio` is their median).
    pub ratio_runs: Vec<f64>,
}

impl ServerRow {
    /// A row from the requests per second of each round (`redis_runs` empty without
    /// redis-server).
    pub fn from_runs(
        command: &str,
        pipeline: u32,
        redis_command: &str,
        persona_runs: Vec<f64>,
        redis_runs: Vec<f64>,
    ) -> ServerRow {
        let ratio_runs: Vec<f64> = persona_runs
            .iter()
            .zip(&redis_runs)
            .filter(|(_, r)| **r > 0.0)
            .map(|(p, r)| p / r)
            .collect();
        ServerRow {
            command: command.to_string(),
            pipeline,
            persona_rps: median(&persona_runs).unwrap_or(0.0),
            redis_command: redis_command.to_string(),
            redis_rps: median(&redis_runs),
            ratio: median(&ratio_runs),
            persona_runs,
            redis_runs,
            ratio_runs,
        }
    }
}

/// The median of `xs` (the mean of the middle two for an even count); None if empty.
fn median(xs: &[f64]) -> Option<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The results of a server benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    /// Requests per run.
    pub requests: u64,
    /// Parallel clients per run.
    pub clients: u64,
    /// One row per command and pipeline depth.
    pub rows: Vec<ServerRow>,
    /// Raw sled alone committing what the server committed during its `EVENT.ADD -P 16` runs,
    /// measured after both servers stopped (None, with a note saying why, when the server's
    /// counters could not be read or the measurement failed).
    pub storage_ceiling: Option<StorageCeiling>,
    /// `EVENT.ADD -P 16`'s requests per second over the ceiling's inserts per second.
    pub event_add_to_ceiling: Option<f64>,
    /// The rate the target asks of `EVENT.ADD -P 16` ([`EVENT_ADD_TARGET`] × redis's
    /// `HINCRBYFLOAT`) over the ceiling's inserts per second: near or above 1, sled alone, with
    /// the machine to itself, barely reaches it.
    pub target_to_ceiling: Option<f64>,
    /// What was skipped and why.
    pub notes: Vec<String>,
}

/// Issue #5's target for `EVENT.ADD -P 16`: this fraction of redis-server's `HINCRBYFLOAT`.
pub const EVENT_ADD_TARGET: f64 = 0.25;

/// A server process that is killed (by pid) and reaped when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `tool --version` runs.
fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the benchmark.
///
/// # Errors
/// [`Error::InvalidArgument`] for a non-empty `dir`; [`Error::Io`] if a server does not start
/// or redis-benchmark fails.
pub fn run(cfg: &ServerBenchConfig, progress: &dyn Progress) -> Result<ServerReport> {
    super::prepare_dir(&cfg.dir)?;
    let result = run_in(cfg, progress);
    if !cfg.keep {
        let _ = std::fs::remove_dir_all(&cfg.dir);
    }
    result
}

fn run_in(cfg: &ServerBenchConfig, progress: &dyn Progress) -> Result<ServerReport> {
    let mut report = ServerReport {
        requests: cfg.requests,
        clients: cfg.clients,
        rows: Vec::new(),
        storage_ceiling: None,
        event_add_to_ceiling: None,
        target_to_ceiling: None,
        notes: Vec::new(),
    };
    if !installed("redis-benchmark") {
        report
            .notes
            .push("redis-benchmark is not installed (Debian: redis-tools); nothing run".into());
        return Ok(report);
    }
    let serve_config = serve_config(cfg)?;
    let (persona, persona_addr) = start_persona(
        &cfg.persona_exe,
        &cfg.dir.join("persona"),
        Some(&serve_config),
    )?;
    let redis = if installed("redis-server") {
        Some(start_redis(&cfg.dir.join("redis"))?)
    } else {
        report
            .notes
            .push("redis-server is not installed: no ratios".into());
        None
    };
    let pairs: [(&[&str], &[&str]); 2] = [
        (
            &["EVENT.ADD", "cust:__rand_int__", "purchase", "10"],
            &["HINCRBYFLOAT", "cust:__rand_int__", "spend", "10"],
        ),
        (
            &["PROFILE.GET", "cust:__rand_int__"],
            &["GET", "str:__rand_int__"],
        ),
    ];
    let rounds = cfg.rounds.max(1);
    let with_redis = u64::from(redis.is_some());
    let comparisons = (pairs.len() * PIPELINES.len()) as u64;
    // redis-benchmark runs, then the storage ceiling.
    let runs = u64::from(rounds) * comparisons * (1 + with_redis) + 7 * with_redis + 1;
    progress.start("server runs", runs);
    if let Some((_, addr)) = &redis {
        // Values for GET: a short string, what the target compares with.
        let value = "x".repeat(128);
        redis_benchmark(
            *addr,
            cfg,
            KEYSPACE,
            16,
            &["SET", "str:__rand_int__", &value],
        )?;
        progress.inc(1);
    }
    // Per (pair, pipeline): Persona's and redis's requests per second, one entry per round.
    let mut measured: Vec<(Vec<f64>, Vec<f64>)> =
        vec![Default::default(); pairs.len() * PIPELINES.len()];
    // The writer's counters over the EVENT.ADD runs at the deepest pipeline, summed.
    let mut ceiling_shape = ServedWrites::default();
    for round in 0..rounds {
        for (p, (ours, theirs)) in pairs.iter().enumerate() {
            for (d, pipeline) in PIPELINES.into_iter().enumerate() {
                let (persona_runs, redis_runs) = &mut measured[p * PIPELINES.len() + d];
                // The servers take turns at going first, so a drift of the machine's speed
                // during a round weighs on both alike.
                let redis_first = round % 2 == 1;
                let run_redis = |redis_runs: &mut Vec<f64>| -> Result<()> {
                    if let Some((_, addr)) = &redis {
                        redis_runs.push(redis_benchmark(
                            *addr,
                            cfg,
                            cfg.requests,
                            pipeline,
                            theirs,
                        )?);
                        progress.inc(1);
                    }
                    Ok(())
                };
                if redis_first {
                    run_redis(redis_runs)?;
                }
                // What the writer commits under the deepest EVENT.ADD pipeline shapes the
                // storage ceiling measured at the end.
                let shapes_ceiling = ours[0] == "EVENT.ADD" && pipeline == DEEPEST;
                let before = if shapes_ceiling {
                    served_writes(persona_addr)
                } else {
                    None
                };
                persona_runs.push(redis_benchmark(
                    persona_addr,
                    cfg,
                    cfg.requests,
                    pipeline,
                    ours,
                )?);
                let after = before.and_then(|_| served_writes(persona_addr));
                if let (Some(before), Some(after)) = (before, after) {
                    ceiling_shape = ceiling_shape.plus(after.since(before));
                }
                progress.inc(1);
                if !redis_first {
                    run_redis(redis_runs)?;
                }
            }
        }
    }
    for (p, (ours, theirs)) in pairs.iter().enumerate() {
        for (d, pipeline) in PIPELINES.into_iter().enumerate() {
            let (persona_runs, redis_runs) = std::mem::take(&mut measured[p * PIPELINES.len() + d]);
            report.rows.push(ServerRow::from_runs(
                ours[0],
                pipeline,
                theirs[0],
                persona_runs,
                redis_runs,
            ));
        }
    }
    if let Some((_, addr)) = &redis {
        // GET of values as long as a PROFILE.GET reply, against the PROFILE.GET figures above.
        let shape = profile_reply_shape(persona_addr)?;
        let reply_len = shape.bytes;
        let value = "x".repeat(reply_len);
        redis_benchmark(
            *addr,
            cfg,
            KEYSPACE,
            16,
            &["SET", "big:__rand_int__", &value],
        )?;
        progress.inc(1);
        against_profile_get(
            &mut report,
            *addr,
            cfg,
            progress,
            &["GET", "big:__rand_int__"],
            &format!("GET {reply_len} B"),
        )?;
        // HGETALL of hashes shaped like the reply. Filled with as many random keys as the two
        // EVENT.ADD runs wrote to Persona, so about as many reads find a key on both sides.
        let hset = hset_like(&shape);
        let mut fill: Vec<&str> = vec!["HSET", "hash:__rand_int__"];
        fill.extend(hset.iter().map(String::as_str));
        redis_benchmark(*addr, cfg, 2 * cfg.requests, 16, &fill)?;
        progress.inc(1);
        let label = format!("HGETALL {} fields", hset.len() / 2);
        against_profile_get(
            &mut report,
            *addr,
            cfg,
            progress,
            &["HGETALL", "hash:__rand_int__"],
            &label,
        )?;
    }
    drop(persona);
    drop(redis);
    if ceiling_shape.commits > 0 && ceiling_shape.items > 0 {
        let measured = Config::from_toml_file(cfg.dir.join("raw-sled"), &serve_config)
            .and_then(|config| ceiling::measure(&config, ceiling_shape, KEYSPACE, cfg.requests));
        match measured {
            Ok(ceiling) => {
                let event_add = report
                    .row("EVENT.ADD", DEEPEST)
                    .map(|row| (row.persona_rps, row.redis_rps));
                if let Some((persona_rps, redis_rps)) = event_add {
                    report.event_add_to_ceiling = Some(persona_rps / ceiling.inserts_per_sec);
                    report.target_to_ceiling =
                        redis_rps.map(|redis| EVENT_ADD_TARGET * redis / ceiling.inserts_per_sec);
                }
                report.storage_ceiling = Some(ceiling);
            }
            // The redis-benchmark figures stand on their own: report them without it.
            Err(e) => report
                .notes
                .push(format!("the storage ceiling could not be measured: {e}")),
        }
    } else {
        report.notes.push(
            "the server's write counters (INFO stats) could not be read, or showed no commit \
             during EVENT.ADD -P 16: no storage ceiling"
                .into(),
        );
    }
    progress.inc(1);
    progress.finish();
    Ok(report)
}

impl ServerReport {
    /// The row of `command` at pipeline depth `pipeline`, if it ran.
    ///
    /// # Examples
    /// ```
    /// use persona::testing::bench::server::{ServerReport, ServerRow};
    /// let row = ServerRow::from_runs("EVENT.ADD", 16, "HINCRBYFLOAT", vec![60e3], vec![300e3]);
    /// let report = ServerReport {
    ///     requests: 100_000,
    ///     clients: 50,
    ///     rows: vec![row],
    ///     storage_ceiling: None,
    ///     event_add_to_ceiling: None,
    ///     target_to_ceiling: None,
    ///     notes: Vec::new(),
    /// };
    /// assert_eq!(report.row("EVENT.ADD", 16).and_then(|r| r.ratio), Some(0.2));
    /// assert!(report.row("EVENT.ADD", 1).is_none());
    /// ```
    pub fn row(&self, command: &str, pipeline: u32) -> Option<&ServerRow> {
        self.rows
            .iter()
            .find(|r| r.command == command && r.pipeline == pipeline)
    }
}

/// Runs `command` against redis at `-P 1` and `-P 16` and adds a row comparing it with the
/// `PROFILE.GET` figures already in `report`, labelled `label`.
fn against_profile_get(
    report: &mut ServerReport,
    addr: SocketAddr,
    cfg: &ServerBenchConfig,
    progress: &dyn Progress,
    command: &[&str],
    label: &str,
) -> Result<()> {
    for pipeline in PIPELINES {
        let redis_rps = redis_benchmark(addr, cfg, cfg.requests, pipeline, command)?;
        progress.inc(1);
        let persona_rps = report
            .rows
            .iter()
            .find(|r| r.command == "PROFILE.GET" && r.pipeline == pipeline)
            .map_or(0.0, |r| r.persona_rps);
        report.rows.push(ServerRow::from_runs(
            "PROFILE.GET",
            pipeline,
            label,
            vec![persona_rps],
            vec![redis_rps],
        ));
    }
    Ok(())
}

/// The size of a `PROFILE.GET` reply (RESP2).
#[derive(Debug, Clone, Copy, PartialEq)]
struct ReplyShape {
    /// Bytes on the wire.
    bytes: usize,
    /// Elements that are not arrays (what a client parses one by one).
    leaves: usize,
}

/// Field-value arguments of an `HSET` whose `HGETALL` reply has about the shape of `shape`: as
/// many elements (half names, half values) and about as many bytes.
fn hset_like(shape: &ReplyShape) -> Vec<String> {
    let fields = (shape.leaves / 2).max(1);
    // Each element costs `$<len>\r\n<text>\r\n`: about 6 bytes besides its text, and the
    // array header a few more.
    let text = (shape.bytes / (2 * fields)).saturating_sub(6).max(1);
    (0..fields)
        .flat_map(|i| {
            let name = format!("{:0>width$}", format!("f{i}"), width = text);
            [name, "7".repeat(text)]
        })
        .collect()
}

/// Elements of `frame` that are not aggregates.
fn leaves(frame: &Frame) -> usize {
    match frame {
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            items.iter().map(leaves).sum()
        }
        Frame::Map(pairs) => pairs.iter().map(|(k, v)| leaves(k) + leaves(v)).sum(),
        Frame::DoubleMap(_, values) => 2 * values.len(),
        _ => 1,
    }
}

/// The shape of a `PROFILE.GET` reply (RESP2) of a customer with one event, written here for
/// the purpose.
fn profile_reply_shape(addr: SocketAddr) -> Result<ReplyShape> {
    let mut s = connect(addr)?;
    let key = "cust:reply-size-probe";
    request(&mut s, &["EVENT.ADD", key, "purchase", "10"])?;
    let (frame, bytes) = request(&mut s, &["PROFILE.GET", key])?;
    Ok(ReplyShape {
        bytes,
        leaves: leaves(&frame),
    })
}

/// Writes the configuration `persona serve` runs with into the working directory: the
/// `--config` file's settings, with `durability` set to the benchmark's.
fn serve_config(cfg: &ServerBenchConfig) -> Result<PathBuf> {
    let mut table = match &cfg.config_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::Config(format!("cannot read {}: {e}", file.display())))?;
            text.parse::<toml::Table>().map_err(|e| {
                Error::Config(format!(
                    "{}: {}",
                    file.display(),
                    crate::config::toml_message(&text, &e)
                ))
            })?
        }
        None => toml::Table::new(),
    };
    table.insert(
        "durability".into(),
        toml::Value::String(cfg.durability.as_str().into()),
    );
    let path = cfg.dir.join("serve.toml");
    std::fs::write(&path, table.to_string())?;
    Ok(path)
}

/// Starts `persona serve` on a free loopback port and reads the address it prints.
fn start_persona(exe: &Path, data: &Path, config: Option<&Path>) -> Result<(Guard, SocketAddr)> {
    let mut command = Command::new(exe);
    if let Some(file) = config {
        command.arg("--config").arg(file);
    }
    let mut child = command
        .arg("--data")
        .arg(data)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io_context(e, format!("cannot start {} serve", exe.display())))?;
    let stderr = child.stderr.take();
    let guard = Guard(child);
    let Some(stderr) = stderr else {
        return Err(Error::Io(std::io::Error::other(
            "no stderr from persona serve",
        )));
    };
    let mut stderr = BufReader::new(stderr);
    let mut line = String::new();
    stderr.read_line(&mut line)?;
    // Keep draining what it prints later so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr = crate::server::parse_ready_line(&line).ok_or_else(|| {
        Error::Io(std::io::Error::other(format!(
            "persona serve did not print its address: {:?}",
            line.trim_end()
        )))
    })?;
    wait_for_pong(addr)?;
    Ok((guard, addr))
}

/// Starts redis-server on a free loopback port with an fsync-every-second append-only file.
fn start_redis(dir: &Path) -> Result<(Guard, SocketAddr)> {
    std::fs::create_dir_all(dir)?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io_context(e, "cannot start redis-server".into()))?;
    let guard = Guard(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_pong(addr)?;
    Ok((guard, addr))
}

/// Waits until `addr` answers PING.
fn wait_for_pong(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let ok = (|| -> std::io::Result<bool> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"*1\r\n$4\r\nPING\r\n")?;
            let mut buf = [0u8; 7];
            s.read_exact(&mut buf)?;
            Ok(&buf == b"+PONG\r\n")
        })();
        if let Ok(true) = ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Io(std::io::Error::other(format!(
                "no server answered PING on {addr} within {} s",
                START_TIMEOUT.as_secs()
            ))));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs redis-benchmark once and returns its requests per second.
fn redis_benchmark(
    addr: SocketAddr,
    cfg: &ServerBenchConfig,
    requests: u64,
    pipeline: u32,
    command: &[&str],
) -> Result<f64> {
    let child = Command::new("redis-benchmark")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-c", &cfg.clients.to_string(), "-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string(), "-r", &KEYSPACE.to_string()])
        .arg("--csv")
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io_context(e, "cannot start redis-benchmark".into()))?;
    let mut guard = Guard(child);
    let mut stdout = guard.0.stdout.take();
    let mut stderr = guard.0.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = guard.0.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(guard); // kills it if it is still running, so the readers below finish
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let what = command.join(" ");
    match status {
        None => Err(Error::Io(std::io::Error::other(format!(
            "redis-benchmark {what} -P {pipeline} did not finish within {} s",
            RUN_TIMEOUT.as_secs()
        )))),
        Some(s) if !s.success() => Err(Error::Io(std::io::Error::other(format!(
            "redis-benchmark {what} -P {pipeline} failed ({s}): {}",
            stderr.trim()
        )))),
        Some(_) => parse_csv_rps(&stdout).ok_or_else(|| {
            Error::Io(std::io::Error::other(format!(
                "no requests-per-second figure in redis-benchmark's output for {what}: {:?}",
                stdout.trim()
            )))
        }),
    }
}

/// The `rps` of the last result row of `redis-benchmark --csv` output (redis 6 prints
/// `"test","rps"` rows without a header; redis 7 adds a header row and latency columns).
pub fn parse_csv_rps(output: &str) -> Option<f64> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(output.as_bytes());
    let mut rps = None;
    for record in reader.records() {
        let Ok(record) = record else { continue };
        if let Some(v) = record.get(1).and_then(|f| f.trim().parse::<f64>().ok()) {
            rps = Some(v);
        }
    }
    rps
}

fn io_context(e: std::io::Error, what: String) -> Error {
    Error::Io(std::io::Error::new(e.kind(), format!("{what}: {e}")))
}

#[cfg(test)]
mod tests;
