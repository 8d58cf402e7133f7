//! A minimal RESP client for the server benchmark's own questions to `persona serve` (the
//! shape of a reply, the writer's counters): one command, one reply, over a connection with a
//! read timeout. redis-benchmark does the load; this only asks.

use super::ceiling::ServedWrites;
use crate::error::{Error, Result};
use crate::server::frame::{parse_frame, Frame, Proto};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest a connection or a reply may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to a server the benchmark started, with a read timeout.
pub(crate) fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    Ok(s)
}

/// Sends one command as RESP2 and reads its reply: the frame and its length in bytes. An
/// error reply, a frame that does not parse, or a closed connection is an error.
pub(crate) fn request(s: &mut TcpStream, args: &[&str]) -> Result<(Frame, usize)> {
    let mut buf = Vec::new();
    Frame::Array(args.iter().map(Frame::bulk).collect()).encode(Proto::Resp2, &mut buf);
    s.write_all(&buf)?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        match parse_frame(&buf, &Default::default()) {
            Ok(Some((Frame::Error(e), _))) => {
                return Err(Error::Io(std::io::Error::other(format!(
                    "persona serve answered {} with -{e}",
                    args.first().copied().unwrap_or_default()
                ))))
            }
            Ok(Some(reply)) => return Ok(reply),
            Ok(None) => {}
            Err(e) => return Err(Error::Io(std::io::Error::other(e.to_string()))),
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(Error::Io(std::io::Error::other(
                "persona serve closed the connection",
            )));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
}

/// The writer's counters as `INFO stats` reports them now; None if they cannot be read (the
/// benchmark then goes on without a storage ceiling).
pub(crate) fn served_writes(addr: SocketAddr) -> Option<ServedWrites> {
    let mut s = connect(addr).ok()?;
    match request(&mut s, &["INFO", "stats"]).ok()?.0 {
        Frame::Bulk(text) | Frame::Verbatim { text, .. } => {
            ServedWrites::from_info(&String::from_utf8_lossy(&text))
        }
        _ => None,
    }
}
