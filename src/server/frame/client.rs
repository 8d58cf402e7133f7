//! Parsing any RESP2 or RESP3 frame, as a client reads replies: the benchmark harness, the tests
//! and the fuzz targets use it; the server itself only reads commands ([`super::RequestDecoder`]).

use super::*;

/// Hard ceiling on [`Limits::max_nesting`]: parsing recurses once per level.
const NESTING_CAP: usize = 64;

/// Parses one RESP2 or RESP3 frame, of any type, from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame (it may be cut anywhere), and
/// `Ok(Some((frame, consumed)))` otherwise. RESP3 attributes (`|`) are read and dropped: the frame
/// returned is the one they annotate, and `consumed` covers both. A blob error (`!`) becomes
/// [`Frame::Error`]. Invalid UTF-8 in simple strings and errors is replaced with U+FFFD. `*-1`
/// gives [`Frame::NullArray`]; `$-1` and `_` give [`Frame::Null`].
///
/// Each call parses from the start of `buf`; the work is bounded by `limits`.
///
/// # Format
///
/// ```text
/// %1\r\n+key\r\n*2\r\n:1\r\n,2.5\r\n   Map([(Simple("key"), Array([Integer(1), Double(2.5)]))])
/// ```
///
/// # Errors
///
/// A [`ProtocolError`] for bytes that no continuation can make valid.
pub fn parse_frame(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let mut cursor = Cursor {
        buf,
        pos: 0,
        limits,
    };
    match cursor.frame(1) {
        Ok(frame) => Ok(Some((frame, cursor.pos))),
        Err(Fail::Incomplete) => Ok(None),
        Err(Fail::Protocol(err)) => Err(err),
    }
}

/// Why a parse stopped.
enum Fail {
    Incomplete,
    Protocol(ProtocolError),
}

impl From<ProtocolError> for Fail {
    fn from(err: ProtocolError) -> Self {
        Fail::Protocol(err)
    }
}

/// A read position in a buffer, for [`parse_frame`].
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, Fail> {
        let b = *self.buf.get(self.pos).ok_or(Fail::Incomplete)?;
        self.pos += 1;
        Ok(b)
    }

    /// The content of the next line, of at most `max` bytes; `err` when it is longer.
    fn line(&mut self, max: usize, err: ProtocolError) -> Result<&'a [u8], Fail> {
        match scan_line(self.buf, self.pos, max) {
            LineScan::Found { end, next } => {
                let content = self.buf.get(self.pos..end).ok_or(Fail::Incomplete)?;
                self.pos = next;
                Ok(content)
            }
            LineScan::Incomplete => Err(Fail::Incomplete),
            LineScan::Invalid => Err(err.into()),
        }
    }

    /// `len` bytes of data followed by CRLF.
    fn data(&mut self, len: usize) -> Result<&'a [u8], Fail> {
        let end = self.pos.checked_add(len).ok_or(Fail::Incomplete)?;
        let next = end.checked_add(2).ok_or(Fail::Incomplete)?;
        match self.buf.get(end..next) {
            None => Err(Fail::Incomplete),
            Some(b"\r\n") => {
                let data = self.buf.get(self.pos..end).ok_or(Fail::Incomplete)?;
                self.pos = next;
                Ok(data)
            }
            Some(_) => Err(ProtocolError::MissingCrlf.into()),
        }
    }

    /// A `$`, `=` or `!` length line: `None` for `-1` when `allow_null`.
    fn bulk_len(&mut self, allow_null: bool) -> Result<Option<usize>, Fail> {
        let err = ProtocolError::InvalidBulkLength;
        let line = self.line(HEADER_MAX, err.clone())?;
        match parse_len(line) {
            Some(-1) if allow_null => Ok(None),
            Some(n) => match usize::try_from(n) {
                Ok(n) if n <= self.limits.max_bulk_len => Ok(Some(n)),
                _ => Err(err.into()),
            },
            None => Err(err.into()),
        }
    }

    /// An aggregate count line at `depth`: `None` for `-1` when `allow_null`.
    fn count(&mut self, depth: usize, allow_null: bool) -> Result<Option<usize>, Fail> {
        if depth > self.limits.max_nesting.min(NESTING_CAP) {
            return Err(ProtocolError::NestingTooDeep.into());
        }
        let err = ProtocolError::InvalidMultibulkLength;
        let line = self.line(HEADER_MAX, err.clone())?;
        match parse_len(line) {
            Some(-1) if allow_null => Ok(None),
            Some(n) => match usize::try_from(n) {
                Ok(n) if n <= self.limits.max_array_len => Ok(Some(n)),
                _ => Err(err.into()),
            },
            None => Err(err.into()),
        }
    }

    fn items(&mut self, n: usize, depth: usize) -> Result<Vec<Frame>, Fail> {
        let remaining = self.buf.len().saturating_sub(self.pos);
        let mut items = Vec::with_capacity(prealloc(n, remaining, 3));
        for _ in 0..n {
            items.push(self.frame(depth + 1)?);
        }
        Ok(items)
    }

    fn pairs(&mut self, n: usize, depth: usize) -> Result<Vec<(Frame, Frame)>, Fail> {
        let remaining = self.buf.len().saturating_sub(self.pos);
        let mut pairs = Vec::with_capacity(prealloc(n, remaining, 6));
        for _ in 0..n {
            let key = self.frame(depth + 1)?;
            let value = self.frame(depth + 1)?;
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    /// One frame whose aggregates, if any, sit at nesting `depth`.
    fn frame(&mut self, depth: usize) -> Result<Frame, Fail> {
        let max_line = self.limits.max_bulk_len;
        loop {
            let frame = match self.byte()? {
                b'+' => Frame::Simple(lossy(self.line(max_line, invalid("simple string"))?)),
                b'-' => Frame::Error(lossy(self.line(max_line, invalid("error string"))?)),
                b':' => {
                    let line = self.line(HEADER_MAX, invalid("integer"))?;
                    Frame::Integer(parse_number(line).ok_or(invalid("integer"))?)
                }
                b'$' => match self.bulk_len(true)? {
                    None => Frame::Null,
                    Some(len) => Frame::Bulk(self.data(len)?.to_vec()),
                },
                b'!' => match self.bulk_len(false)? {
                    None => return Err(ProtocolError::InvalidBulkLength.into()),
                    Some(len) => Frame::Error(lossy(self.data(len)?)),
                },
                b'=' => match self.bulk_len(false)? {
                    Some(len) if len >= 4 => match self.data(len)? {
                        [a, b, c, b':', text @ ..] => Frame::Verbatim {
                            format: [*a, *b, *c],
                            text: text.to_vec(),
                        },
                        _ => return Err(invalid("verbatim string").into()),
                    },
                    _ => return Err(invalid("verbatim string").into()),
                },
                b'*' => match self.count(depth, true)? {
                    None => Frame::NullArray,
                    Some(n) => Frame::Array(self.items(n, depth)?),
                },
                b'~' => {
                    let n = self.count(depth, false)?.unwrap_or(0);
                    Frame::Set(self.items(n, depth)?)
                }
                b'>' => {
                    let n = self.count(depth, false)?.unwrap_or(0);
                    Frame::Push(self.items(n, depth)?)
                }
                b'%' => {
                    let n = self.count(depth, false)?.unwrap_or(0);
                    Frame::Map(self.pairs(n, depth)?)
                }
                b'|' => {
                    // An attribute annotates the frame after it; it is read and dropped.
                    let n = self.count(depth, false)?.unwrap_or(0);
                    for _ in 0..n {
                        self.frame(depth + 1)?;
                        self.frame(depth + 1)?;
                    }
                    continue;
                }
                b'_' => {
                    // At most zero content bytes: anything else is `Invalid`.
                    self.line(0, invalid("null"))?;
                    Frame::Null
                }
                b'#' => match self.line(1, invalid("boolean"))? {
                    b"t" => Frame::Boolean(true),
                    b"f" => Frame::Boolean(false),
                    _ => return Err(invalid("boolean").into()),
                },
                b',' => {
                    let line = self.line(max_line, invalid("double"))?;
                    Frame::Double(parse_double(line).ok_or(invalid("double"))?)
                }
                b'(' => {
                    let line = self.line(max_line, invalid("big number"))?;
                    Frame::BigNumber(parse_big_number(line).ok_or(invalid("big number"))?)
                }
                other => return Err(ProtocolError::InvalidFrameType(other).into()),
            };
            return Ok(frame);
        }
    }
}

fn invalid(what: &'static str) -> ProtocolError {
    ProtocolError::Invalid(what)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An integer reply: optional sign, then digits (leading zeros allowed).
fn parse_number(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// A double reply: a decimal or exponent literal, `inf`, `-inf` or `nan`.
fn parse_double(line: &[u8]) -> Option<f64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// A big number: optional sign, then at least one digit.
fn parse_big_number(line: &[u8]) -> Option<String> {
    let digits = match line.split_first() {
        Some((b'-' | b'+', rest)) => rest,
        _ => line,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(line).ok().map(str::to_owned)
}
