//! Reading client commands: RESP arrays of bulk strings, and inline command lines.
//!
//! Re-exported from [`super::frame`]; see [`parse_request`] and [`RequestDecoder`].

use super::frame::{parse_len, prealloc, scan_line, Limits, LineScan, ProtocolError, HEADER_MAX};

/// What one decoding step produced: a command with the number of bytes it took, or nothing yet.
type Decoded = Result<Option<(Vec<Vec<u8>>, usize)>, ProtocolError>;

/// Parses one client command from the front of `buf`, as Redis reads its query buffer.
///
/// A buffer starting with `*` holds a RESP array of bulk strings; anything else is an inline
/// command: one line, ended by LF or CRLF, split into arguments like Redis's `sdssplitargs`
/// (blanks separate arguments; `"..."` understands `\"` `\\` `\n` `\r` `\t` `\b` `\a` and `\xHH`;
/// `'...'` understands `\'`; a NUL byte ends the line early).
///
/// Returns `Ok(None)` when `buf` holds only part of a command (it may be cut anywhere, even
/// between CR and LF), and `Ok(Some((args, consumed)))` otherwise: drop `consumed` bytes from the
/// front of the buffer before the next call. `args` is empty for an empty line, `*0` or `*-1`;
/// Redis ignores such commands and so should the caller.
///
/// Every call starts over from the front of `buf`. A connection that reads a command in many
/// pieces should keep a [`RequestDecoder`] instead, which resumes where the last call stopped.
///
/// # Format
///
/// ```text
/// *2\r\n$3\r\nGET\r\n$4\r\nuser\r\n   ->  [b"GET", b"user"]
/// SET k "a b\x21"\r\n                  ->  [b"SET", b"k", b"a b!"]
/// ```
///
/// # Errors
///
/// A [`ProtocolError`] with Redis's message when no continuation of `buf` can be a valid command:
/// a bad or over-limit `*` count (other than `*0` and `*-1`), an element that is not `$`, a bad or
/// over-limit `$` length, bulk data not followed by CRLF, an inline line over
/// [`Limits::max_inline_len`], or unbalanced quotes.
#[cfg(any(test, feature = "testing"))]
pub fn parse_request(buf: &[u8], limits: &Limits) -> Decoded {
    RequestDecoder::new(*limits).decode(buf)
}

/// [`parse_request`] that remembers its progress, so a command arriving in many pieces is scanned
/// and copied once: the total work over a connection is linear in the bytes received.
///
/// Call [`decode`](RequestDecoder::decode) with the connection's unconsumed bytes whenever more
/// arrive. After `Ok(None)` the next call must pass the same bytes with more appended; after
/// `Ok(Some((_, consumed)))` it must pass what follows those `consumed` bytes. A buffer shorter
/// than the last one makes the decoder start over; a buffer changed in any other way breaks the
/// contract and gives an unspecified (but never panicking) result. Call
/// [`reset`](RequestDecoder::reset) to start over explicitly.
///
/// # Format
///
/// ```text
/// decode(b"*1\r\n$4\r\nPI")        -> Ok(None)
/// decode(b"*1\r\n$4\r\nPING\r\n")  -> Ok(Some(([b"PING"], 14)))
/// ```
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    limits: Limits,
    state: State,
    /// Length of the buffer at the last call.
    seen: usize,
}

/// How far the decoder got with the command at the front of the buffer.
#[derive(Debug, Clone, Default)]
enum State {
    /// Nothing read yet.
    #[default]
    Start,
    /// An inline line whose first `scanned` bytes hold no LF.
    Inline { scanned: usize },
    /// An array still waiting for `remaining` bulk strings, the next at `pos`.
    Multibulk {
        remaining: usize,
        args: Vec<Vec<u8>>,
        pos: usize,
    },
}

impl RequestDecoder {
    /// A decoder enforcing `limits`, expecting the start of a command.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            state: State::Start,
            seen: 0,
        }
    }

    /// The limits this decoder enforces.
    #[cfg(any(test, feature = "testing"))]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets any partly read command: the next call starts from the front of its buffer.
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.seen = 0;
    }

    /// Parses one command from the front of `buf`, resuming the previous call's work; returns and
    /// fails exactly as [`parse_request`] does on the same bytes. After a result other than
    /// `Ok(None)` the decoder expects the start of a new command.
    ///
    /// # Format
    ///
    /// ```text
    /// PING\r\n*1\r\n$4\r\nPING\r\n   -> Ok(Some(([b"PING"], 6)))   (then the array, 14 bytes)
    /// ```
    ///
    /// # Errors
    ///
    /// As [`parse_request`].
    pub fn decode(&mut self, buf: &[u8]) -> Decoded {
        if buf.len() < self.seen {
            self.state = State::Start;
        }
        self.seen = buf.len();
        let result = self.step(buf);
        if !matches!(result, Ok(None)) {
            self.reset();
        }
        result
    }

    fn step(&mut self, buf: &[u8]) -> Decoded {
        if let State::Start = self.state {
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => match scan_line(buf, 1, HEADER_MAX) {
                    LineScan::Incomplete => return Ok(None),
                    LineScan::Invalid => return Err(ProtocolError::InvalidMultibulkLength),
                    LineScan::Found { end, next } => {
                        let count = buf.get(1..end).and_then(parse_len);
                        match count {
                            Some(0 | -1) => return Ok(Some((Vec::new(), next))),
                            Some(n) if n > 0 && n <= i64::from(i32::MAX) => {
                                let n = usize::try_from(n)
                                    .ok()
                                    .filter(|&n| n <= self.limits.max_array_len)
                                    .ok_or(ProtocolError::InvalidMultibulkLength)?;
                                let remaining = buf.len().saturating_sub(next);
                                self.state = State::Multibulk {
                                    remaining: n,
                                    args: Vec::with_capacity(prealloc(n, remaining, 6)),
                                    pos: next,
                                };
                            }
                            _ => return Err(ProtocolError::InvalidMultibulkLength),
                        }
                    }
                },
                Some(_) => self.state = State::Inline { scanned: 0 },
            }
        }
        match &mut self.state {
            State::Start => Ok(None),
            State::Inline { scanned } => inline(buf, scanned, self.limits.max_inline_len),
            State::Multibulk {
                remaining,
                args,
                pos,
            } => {
                while *remaining > 0 {
                    match bulk(buf, *pos, self.limits.max_bulk_len)? {
                        None => return Ok(None),
                        Some((arg, next)) => {
                            args.push(arg);
                            *pos = next;
                            *remaining -= 1;
                        }
                    }
                }
                Ok(Some((std::mem::take(args), *pos)))
            }
        }
    }
}

/// One `$len\r\n<data>\r\n` element at `buf[pos]`: the data and where the next element starts.
fn bulk(buf: &[u8], pos: usize, max_len: usize) -> Result<Option<(Vec<u8>, usize)>, ProtocolError> {
    match buf.get(pos) {
        None => return Ok(None),
        Some(b'$') => {}
        Some(&other) => return Err(ProtocolError::ExpectedBulk(other)),
    }
    let (end, data_start) = match scan_line(buf, pos + 1, HEADER_MAX) {
        LineScan::Incomplete => return Ok(None),
        LineScan::Invalid => return Err(ProtocolError::InvalidBulkLength),
        LineScan::Found { end, next } => (end, next),
    };
    let len = buf
        .get(pos + 1..end)
        .and_then(parse_len)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= max_len)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    let data_end = data_start
        .checked_add(len)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    let next = data_end
        .checked_add(2)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    match (buf.get(data_start..data_end), buf.get(data_end..next)) {
        (Some(data), Some(b"\r\n")) => Ok(Some((data.to_vec(), next))),
        (Some(_), Some(_)) => Err(ProtocolError::MissingCrlf),
        _ => Ok(None),
    }
}

/// An inline command: the line up to the first LF, whose first `scanned` bytes are known to hold
/// none. Scans each byte once across calls, and never more than `max_len + 2` bytes.
fn inline(buf: &[u8], scanned: &mut usize, max_len: usize) -> Decoded {
    let window_end = buf.len().min(max_len.saturating_add(2));
    let start = (*scanned).min(window_end);
    let found = buf
        .get(start..window_end)
        .and_then(|window| window.iter().position(|&b| b == b'\n'));
    let Some(offset) = found else {
        if buf.len() >= max_len.saturating_add(2) {
            return Err(ProtocolError::TooBigInlineRequest);
        }
        *scanned = buf.len();
        return Ok(None);
    };
    let newline = start + offset;
    let mut line = buf.get(..newline).unwrap_or(&[]);
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    if line.len() > max_len {
        return Err(ProtocolError::TooBigInlineRequest);
    }
    // Redis splits a C string: a NUL byte ends it.
    let line = line.split(|&b| b == 0).next().unwrap_or(&[]);
    Ok(Some((split_args(line)?, newline + 1)))
}

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: Option<u8>) -> Option<u8> {
    char::from(b?)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Splits an inline command line into arguments exactly as Redis's `sdssplitargs` does.
pub(super) fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let at = |i: usize| line.get(i).copied();
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while at(i).is_some_and(is_space) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        let mut quote: Option<u8> = None;
        loop {
            let c = at(i);
            match (quote, c) {
                (Some(_), None) => return Err(ProtocolError::UnbalancedQuotes),
                (Some(b'"'), Some(b'\\')) if at(i + 1) == Some(b'x') => {
                    match (hex_value(at(i + 2)), hex_value(at(i + 3))) {
                        (Some(hi), Some(lo)) => {
                            arg.push(hi * 16 + lo);
                            i += 4;
                        }
                        _ => {
                            arg.push(b'x');
                            i += 2;
                        }
                    }
                }
                (Some(b'"'), Some(b'\\')) if at(i + 1).is_some() => {
                    let escaped = at(i + 1).unwrap_or(b'\\');
                    arg.push(match escaped {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 2;
                }
                (Some(b'\''), Some(b'\\')) if at(i + 1) == Some(b'\'') => {
                    arg.push(b'\'');
                    i += 2;
                }
                (Some(q), Some(c)) if q == c => {
                    // A closing quote must be followed by a blank or the end of the line.
                    if at(i + 1).is_some_and(|next| !is_space(next)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                }
                (Some(_), Some(c)) => {
                    arg.push(c);
                    i += 1;
                }
                (None, None) => break,
                (None, Some(b' ' | b'\n' | b'\r' | b'\t')) => {
                    i += 1;
                    break;
                }
                (None, Some(q @ (b'"' | b'\''))) => {
                    quote = Some(q);
                    i += 1;
                }
                (None, Some(c)) => {
                    arg.push(c);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
}
