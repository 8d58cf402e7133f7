//! The RESP server driven by the real `redis-cli` and `redis-benchmark` (Debian package
//! `redis-tools`; `.ci/run` installs it), and the `persona serve` binary itself. Without those
//! tools the tests that need them say so and pass (and fail when `PERSONA_TEST_REQUIRE_TOOLS`
//! is set, as in CI).

use crate::common::resp::{TestResult, TestServer};
use std::process::{Command, Output};

/// Whether `tool` runs here; prints why the test is skipped otherwise.
fn available(tool: &str) -> bool {
    let found = crate::common::resp::installed(tool);
    crate::common::resp::runs_with(found, tool, "apt-get install redis-tools")
}

fn redis_cli(server: &TestServer, args: &[&str]) -> std::io::Result<Output> {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args(args)
        .output()
}

/// `redis-cli` output as text, failing on a non-zero exit. (Without a terminal it prints values
/// one a line, and an error reply followed by an empty line.)
fn cli(server: &TestServer, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = redis_cli(server, args)?;
    if !out.status.success() {
        return Err(format!(
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn redis_cli_runs_persona_commands() -> TestResult {
    if !available("redis-cli") {
        return Ok(());
    }
    let server = TestServer::start(|_| {})?;
    assert_eq!(cli(&server, &["PING"])?, "PONG\n");
    assert_eq!(
        cli(
            &server,
            &["EVENT.ADD", "c1", "purchase", "19.5", "TS", "1767225600000"]
        )?,
        "version\n1\nsegment\n\npropensity\n0.5\nduplicate\n0\n"
    );
    assert_eq!(
        cli(&server, &["EVENT.ADD", "c1", "purchase", "-3.5"])?,
        "ERR invalid event: field value: -3.5 for kind purchase must be >= 0\n\n"
    );
    assert_eq!(
        cli(&server, &["PROFILE.SET", "c1", "region", "north"])?,
        "2\n"
    );
    let profile = cli(&server, &["PROFILE.GET", "c1"])?;
    assert!(
        profile.starts_with("customer_id\nc1\nversion\n2\nevent_count\n1\n"),
        "{profile}"
    );
    assert!(profile.contains("attributes\nregion\nnorth\n"), "{profile}");
    assert_eq!(cli(&server, &["DBSIZE"])?, "1\n");
    // RESP3 through redis-cli's own HELLO.
    let resp3 = cli(&server, &["-3", "MODEL.INFO"])?;
    assert!(
        resp3.starts_with("version 2\nwatermark_ms 1767225600000\n"),
        "{resp3}"
    );
    // Piped commands: redis-cli first reads COMMAND DOCS to build its help, then runs them.
    let mut child = Command::new("redis-cli")
        .args(["-p", &server.addr.port().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, b"ECHO hello\nHELP EVENT.ADD\nCOMMAND COUNT\n")?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(out.status.success());
    assert!(text.starts_with("hello\n"), "{text}");
    assert!(
        text.contains(
            "customer kind [value] [CATEGORY category] [ITEM item] [TS time] [ID event_id]"
        ) && text.contains("Records an event of a customer"),
        "{text}"
    );
    assert!(text.ends_with("47\n"), "{text}");
    // SHUTDOWN: redis-cli expects the connection to close, and the server stops.
    let out = redis_cli(&server, &["SHUTDOWN"])?;
    assert!(out.status.success(), "{out:?}");
    let (_dir, result) = server.wait()?;
    result?;
    Ok(())
}

#[test]
fn redis_cli_authenticates_with_a_password() -> TestResult {
    if !available("redis-cli") {
        return Ok(());
    }
    let server = TestServer::start(|c| c.requirepass = Some("s3cret".into()))?;
    assert_eq!(
        cli(&server, &["PING"])?,
        "NOAUTH Authentication required.\n\n"
    );
    assert_eq!(
        cli(&server, &["--no-auth-warning", "-a", "s3cret", "PING"])?,
        "PONG\n"
    );
    Ok(())
}

#[test]
fn redis_benchmark_pipelines_events_from_many_clients() -> TestResult {
    if !available("redis-benchmark") {
        return Ok(());
    }
    let server = TestServer::start(|_| {})?;
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args(["-n", "2000", "-c", "10", "-P", "16", "-r", "1000", "-q"])
        .args(["EVENT.ADD", "c__rand_int__", "click"])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("requests per second"), "{stdout}");
    // It asks CONFIG GET save / appendonly first; an unanswered question would warn here.
    assert!(
        !stderr.contains("Could not fetch server CONFIG"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("ERR") && !stderr.contains("ERR"),
        "{stdout}\n{stderr}"
    );
    let mut raw = server.raw()?;
    let size = raw.call(&["DBSIZE"])?;
    let count: u64 = size.trim_start_matches(':').trim_end().parse()?;
    assert!(count > 0 && count <= 1000, "{size}");
    Ok(())
}

/// Starts `persona serve` on a free port and returns it with the address it printed.
fn spawn_persona(
    data: &std::path::Path,
    extra: &[&str],
) -> Result<(std::process::Child, String), Box<dyn std::error::Error>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(data)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let addr = crate::common::resp::serve_address(&mut child)?;
    Ok((child, addr))
}

#[test]
fn persona_serve_exits_0_on_sigterm_with_every_write_durable() -> TestResult {
    if !available("kill") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let (mut child, addr) = spawn_persona(dir.path(), &[])?;
    let mut raw = crate::common::resp::Raw::connect(addr.parse()?)?;
    assert_eq!(raw.call(&["PING"])?, "+PONG\r\n");
    for i in 0..20 {
        let ts = (crate::common::T0 + i).to_string();
        raw.command(&["EVENT.ADD", "c1", "click", "TS", &ts])?;
    }
    for _ in 0..20 {
        raw.reply()?;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(killed.success());
    let status = child.wait()?;
    assert_eq!(status.code(), Some(0));
    raw.assert_closed()?;
    let db = persona::Db::open(dir.path())?;
    assert_eq!(db.profile("c1")?.ok_or("lost")?.event_count, 20);
    db.close()?;
    Ok(())
}

#[test]
fn persona_serve_refuses_an_exposed_address_without_a_password() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(dir.path())
        .args(["serve", "--bind", "0.0.0.0:0"])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr)?;
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a password"),
        "{stderr}"
    );
    assert!(stderr.contains("--unsafe-allow-no-password"), "{stderr}");
    Ok(())
}

#[test]
fn persona_serve_still_stops_on_sigterm_when_its_stderr_is_gone() -> TestResult {
    if !available("kill") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stderr = std::io::BufReader::new(child.stderr.take().ok_or("no stderr")?);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line)?;
    assert!(line.starts_with("persona: serving"), "{line}");
    drop(stderr); // the terminal went away: later status lines cannot be written
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(killed.success());
    assert_eq!(child.wait()?.code(), Some(0));
    Ok(())
}

#[test]
fn persona_serve_reads_its_options_from_the_config_file_server_table() -> TestResult {
    if !available("kill") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("persona.toml");
    std::fs::write(
        &config,
        "segments = 4\n[server]\nrequirepass = \"from-the-file\"\nmax_clients = 4\n",
    )?;
    let data = dir.path().join("data");
    let config_arg = config.to_string_lossy().into_owned();
    let (mut child, addr) = spawn_persona(&data, &["--config", &config_arg])?;
    let mut raw = crate::common::resp::Raw::connect(addr.parse()?)?;
    assert_eq!(raw.call(&["PING"])?, "-NOAUTH Authentication required.\r\n");
    assert_eq!(raw.call(&["AUTH", "from-the-file"])?, "+OK\r\n");
    assert_eq!(
        raw.call(&["CONFIG", "GET", "maxclients"])?,
        "*2\r\n$10\r\nmaxclients\r\n$1\r\n4\r\n"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(killed.success());
    assert_eq!(child.wait()?.code(), Some(0));

    // A bad [server] table is bad usage: exit 2, the key named, the store never opened.
    std::fs::write(&config, "[server]\nmax_clients = 0\n")?;
    let fresh = dir.path().join("never-created");
    let out = Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("--data")
        .arg(&fresh)
        .args(["--config", &config_arg, "serve"])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr)?;
    assert!(
        stderr.contains("[server] max_clients: must be at least 1"),
        "{stderr}"
    );
    assert!(!fresh.exists());
    Ok(())
}
