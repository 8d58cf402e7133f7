//! Shared by the RESP server tests: an in-process server on an ephemeral port over a tempdir
//! store, and a raw-bytes client.

use persona::testing::server::frame::{parse_frame, Limits};
use persona::{Config, Db};
use persona::{Server, ServerConfig, ShutdownHandle};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A safety net against a hung test, not a timing assertion: no reply in a correct run takes
/// anywhere near this long.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A server running in a thread of this test process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    thread: Option<JoinHandle<persona::Result<()>>>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// A default store and a server on 127.0.0.1:0 with `tweak` applied to its configuration.
    pub fn start(
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Result<TestServer, Box<dyn std::error::Error>> {
        TestServer::start_with(|c| c, tweak)
    }

    /// As [`TestServer::start`], with the store's configuration adjusted by `store`.
    pub fn start_with(
        store: impl FnOnce(Config) -> Config,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Result<TestServer, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = Db::open_with(store(Config::new(dir.path())))?;
        TestServer::serve(db, dir, tweak)
    }

    /// A server on 127.0.0.1:0 over `db`, an open store in `dir`.
    pub fn over(db: Db, dir: tempfile::TempDir) -> Result<TestServer, Box<dyn std::error::Error>> {
        TestServer::serve(db, dir, |_| {})
    }

    /// Serves `db` (an open store in `dir`) on 127.0.0.1:0, with `tweak` applied to the
    /// server's configuration.
    fn serve(
        db: Db,
        dir: tempfile::TempDir,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Result<TestServer, Box<dyn std::error::Error>> {
        let mut config = ServerConfig::default();
        config.bind = "127.0.0.1:0".into();
        tweak(&mut config);
        let shutdown = ShutdownHandle::new();
        let server = Server::bind(db, config, shutdown.clone())?;
        let addr = server.local_addr();
        let thread = std::thread::spawn(move || server.run());
        Ok(TestServer {
            addr,
            shutdown,
            thread: Some(thread),
            dir,
        })
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A raw-bytes connection.
    pub fn raw(&self) -> Result<Raw, Box<dyn std::error::Error>> {
        Raw::connect(self.addr)
    }

    /// A `redis` crate connection (RESP2).
    pub fn client(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url(""))?.get_connection()
    }

    /// `redis://127.0.0.1:<port>/<query>`.
    pub fn url(&self, query: &str) -> String {
        format!("redis://{}/{query}", self.addr)
    }

    /// Waits until the server thread ends (after `SHUTDOWN` or [`TestServer::stop`]) and returns
    /// the data directory, which then holds a closed store.
    pub fn wait(
        mut self,
    ) -> Result<(tempfile::TempDir, persona::Result<()>), Box<dyn std::error::Error>> {
        let result = match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| "the server thread panicked")?,
            None => Ok(()),
        };
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir()?);
        Ok((dir, result))
    }

    /// Requests shutdown and waits for it.
    pub fn stop(self) -> persona::Result<()> {
        self.shutdown.shutdown();
        match self.wait() {
            Ok((_, result)) => result,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A client speaking raw bytes, reading whole replies.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Result<Raw, Box<dyn std::error::Error>> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(HANG_GUARD))?;
        Ok(Raw {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a command as an array of bulk strings.
    pub fn command(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.send(&out)
    }

    /// The bytes of the next whole reply.
    pub fn reply(&mut self) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut limits = Limits::default();
        limits.max_nesting = 64;
        loop {
            if let Some((_, used)) = parse_frame(&self.buf, &limits)? {
                return Ok(self.buf.drain(..used).collect());
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(format!(
                    "connection closed with {:?} unparsed",
                    String::from_utf8_lossy(&self.buf)
                )
                .into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next reply as text, for readable assertions.
    pub fn reply_text(&mut self) -> Result<String, Box<dyn std::error::Error>> {
        Ok(String::from_utf8(self.reply()?)?)
    }

    /// Sends a command and returns its reply as text.
    pub fn call(&mut self, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
        self.command(args)?;
        self.reply_text()
    }

    /// Asserts the server closed the connection with nothing more to read.
    pub fn assert_closed(&mut self) -> TestResult {
        let mut rest = Vec::new();
        match self.stream.read_to_end(&mut rest) {
            Ok(_) => {}
            // A reset after the close is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => return Err(e.into()),
        }
        self.buf.extend_from_slice(&rest);
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        Ok(())
    }

    /// Closes our sending side, so the server sees end of input.
    pub fn close_write(&mut self) -> std::io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

/// Reads the first line a spawned `persona serve` prints on stderr ("persona: serving DIR on
/// ADDR (…)") and returns ADDR; then keeps draining its stderr in a thread so the child never
/// blocks on a full pipe. The child must have been spawned with `stderr(Stdio::piped())`.
pub fn serve_address(
    child: &mut std::process::Child,
) -> Result<String, Box<dyn std::error::Error>> {
    use std::io::BufRead;
    let stderr = child
        .stderr
        .take()
        .ok_or("the child's stderr is not piped")?;
    let mut stderr = std::io::BufReader::new(stderr);
    let mut line = String::new();
    stderr.read_line(&mut line)?;
    let addr = persona::testing::server::parse_ready_line(&line)
        .ok_or_else(|| format!("persona serve did not start: {line:?}"))?
        .to_string();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Ok(addr)
}

/// Whether `tool --version` runs on this machine (redis-cli, redis-benchmark, redis-server are
/// optional for the tests that drive them).
pub fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Whether a test that needs an outside tool runs: true when `found`; otherwise it says why it
/// is skipped (`install` tells how to get the tool) and returns false, or fails when the
/// environment variable `PERSONA_TEST_REQUIRE_TOOLS` is set (`.ci/run` sets it, so that CI
/// never passes by skipping).
pub fn runs_with(found: bool, tool: &str, install: &str) -> bool {
    if found {
        return true;
    }
    if std::env::var_os("PERSONA_TEST_REQUIRE_TOOLS").is_some() {
        panic!("{tool} is required here (PERSONA_TEST_REQUIRE_TOOLS is set): {install}");
    }
    eprintln!("skipping: {tool} is not installed ({install})");
    false
}

/// A Python 3 interpreter that imports redis-py (Debian's `python3-redis` goes with
/// `/usr/bin/python3`, which may not be the first `python3` on the path).
pub fn python_with_redis() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import redis"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}
