//! Buffered reading of commands and writing of replies over one non-blocking `TcpStream`.
//!
//! Input is read in chunks into one buffer and handed to a [`RequestDecoder`], which resumes
//! where it stopped, so a command split over many reads is parsed once. Replies are encoded into
//! an output buffer and written only on [`Connection::flush`]: a pipelined batch is answered with
//! one write. Neither reading nor writing ever blocks: what the socket cannot take now stays
//! buffered for the next [`Connection::flush`]. The unparsed part of the input (at most one incomplete command plus one chunk) is
//! bounded by [`ServerConfig::max_request_len`](super::ServerConfig::max_request_len).

use super::frame::{Frame, Limits, Proto, ProtocolError, RequestDecoder};
use mio::net::TcpStream;
use std::io::{self, ErrorKind, Read, Write};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// An input buffer that grew past this is given back to the allocator once emptied.
const KEEP_CAPACITY: usize = 256 * 1024;

/// Why the input cannot be read as commands. The connection is answered `-ERR <Display>` and
/// closed: it cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FramingError {
    /// Bytes that are not RESP.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// One command larger than the configured limit.
    #[error("Protocol error: request is larger than {0} bytes")]
    TooLarge(usize),
}

/// One client connection: a socket with an input buffer, a decoder and an output buffer.
pub(crate) struct Connection {
    stream: TcpStream,
    decoder: RequestDecoder,
    /// Read buffer: received bytes are `input[..filled]`; the rest is initialised room for the
    /// next read (kept, so a read does not zero its chunk again).
    input: Vec<u8>,
    /// Bytes of `input` received.
    filled: usize,
    /// Bytes at the front of `input` already parsed into commands.
    consumed: usize,
    output: Vec<u8>,
    /// Bytes at the front of `output` already written to the socket.
    written: usize,
    /// The last read drained the socket (it returned less than it was offered): nothing more
    /// to read until the event loop reports the socket readable again.
    drained: bool,
    /// The loop reported the peer's end of input (or an error): reads go on until they see it,
    /// short or not (a close that came with the last bytes raises no further event).
    hung_up: bool,
    /// The last write found the socket full: nothing more is written until the loop reports
    /// it writable again.
    write_blocked: bool,
    max_request_len: usize,
}

/// What [`Connection::fill`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filled {
    /// More bytes arrived.
    Data,
    /// The peer closed its side, or the server is shutting the connection down.
    Closed,
    /// Nothing more has arrived for now.
    Empty,
}

impl Connection {
    /// Wraps an accepted socket.
    pub(crate) fn new(stream: TcpStream, limits: Limits, max_request_len: usize) -> Connection {
        Connection {
            stream,
            decoder: RequestDecoder::new(limits),
            input: Vec::new(),
            filled: 0,
            consumed: 0,
            output: Vec::new(),
            written: 0,
            drained: false,
            hung_up: false,
            write_blocked: false,
            max_request_len,
        }
    }

    /// The next complete command already received, without reading the socket: `Ok(None)` when
    /// the buffered input holds no complete command. An empty command (empty line, `*0`) is
    /// returned as an empty vector.
    ///
    /// # Errors
    /// A [`FramingError`] when the input cannot become a valid command.
    pub(crate) fn next_command(&mut self) -> Result<Option<Vec<Vec<u8>>>, FramingError> {
        let pending = self.input.get(self.consumed..self.filled).unwrap_or(&[]);
        match self.decoder.decode(pending)? {
            Some((args, used)) => {
                self.consumed = self.consumed.saturating_add(used).min(self.filled);
                Ok(Some(args))
            }
            None if pending.len() > self.max_request_len => {
                Err(FramingError::TooLarge(self.max_request_len))
            }
            None => Ok(None),
        }
    }

    /// What the event loop reports of the socket: readable (`hung_up`: the peer's end of input
    /// or an error came with it), writable.
    pub(crate) fn ready(&mut self, readable: bool, hung_up: bool, writable: bool) {
        if readable || hung_up {
            self.drained = false;
        }
        self.hung_up |= hung_up;
        if writable {
            self.write_blocked = false;
        }
    }

    /// Reads more input from the socket, if some has arrived. A read that returns less than it
    /// was offered drained the socket (on Linux, as far as TCP goes, the next byte to arrive
    /// makes the socket readable again), so after it the socket is not asked again until the
    /// loop reports it readable: no `recv` that is sure to fail.
    ///
    /// # Errors
    /// I/O errors other than end of input.
    pub(crate) fn fill(&mut self) -> io::Result<Filled> {
        if self.drained {
            return Ok(Filled::Empty);
        }
        if self.consumed >= self.filled {
            self.filled = 0;
            if self.input.len() > KEEP_CAPACITY {
                self.input.truncate(READ_CHUNK);
                self.input.shrink_to(READ_CHUNK);
            }
        } else if self.consumed > 0 {
            // Only the unparsed tail moves; the decoder sees the same bytes as before.
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
        }
        self.consumed = 0;
        let start = self.filled;
        if self.input.len() < start + READ_CHUNK {
            self.input.resize(start + READ_CHUNK, 0);
        }
        let result = loop {
            match self
                .stream
                .read(self.input.get_mut(start..).unwrap_or(&mut []))
            {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match result {
            Ok(0) => Ok(Filled::Closed),
            Ok(n) => {
                self.drained = start + n < self.input.len() && !self.hung_up;
                self.filled = (start + n).min(self.input.len());
                Ok(Filled::Data)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.drained = true;
                Ok(Filled::Empty)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the loop reported the peer's end of input (or an error) on the socket.
    pub(crate) fn hung_up(&self) -> bool {
        self.hung_up
    }

    /// Appends a reply to the output buffer, encoded in `proto`.
    pub(crate) fn push(&mut self, frame: &Frame, proto: Proto) {
        frame.encode(proto, &mut self.output);
    }

    /// Bytes waiting in the output buffer.
    pub(crate) fn buffered(&self) -> usize {
        self.output.len() - self.written
    }

    /// Writes as much of the output buffer as the socket takes now: true when all of it is
    /// written, false when the rest waits for the socket to become writable.
    ///
    /// # Errors
    /// I/O errors of the socket (the peer went away).
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        if self.write_blocked {
            return Ok(self.written >= self.output.len());
        }
        while self.written < self.output.len() {
            match self
                .stream
                .write(self.output.get(self.written..).unwrap_or(&[]))
            {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        self.output.clear();
        self.written = 0;
        if self.output.capacity() > KEEP_CAPACITY {
            self.output.shrink_to(READ_CHUNK);
        }
        Ok(true)
    }

    /// The socket, to register with the event loop.
    pub(crate) fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}
