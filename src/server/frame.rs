//! RESP2/RESP3 frames: the values exchanged with Redis-protocol clients.
//!
//! A [`Frame`] is one protocol value. Client commands are read with [`parse_request`] (or the
//! incremental [`RequestDecoder`]), which accepts exactly what Redis accepts from a client: an
//! array of bulk strings, or an inline command line. Any frame, reply types included, is read with
//! [`parse_frame`]. Replies are written with [`Frame::encode`] in the dialect ([`Proto`]) the
//! connection negotiated.
//!
//! Nothing here trusts a length read from the wire: a declared length is checked against
//! [`Limits`] before anything else, and no buffer is sized from it before the bytes it announces
//! have arrived. No input makes these functions panic.

use std::fmt;
use std::sync::Arc;

#[cfg(any(test, feature = "testing"))]
pub use super::request::parse_request;
pub use super::request::RequestDecoder;
#[cfg(any(feature = "cli", feature = "testing"))]
mod client;
#[cfg(any(feature = "cli", feature = "testing"))]
pub use client::parse_frame;

/// Longest accepted content of a length or count line (`*N`, `$N`, `:N`), in bytes.
pub(super) const HEADER_MAX: usize = 32;
/// Most elements reserved up front for an aggregate, whatever its declared length.
pub(super) const PREALLOC_CAP: usize = 1024;

/// One RESP value.
///
/// Each variant's documentation shows its RESP3 wire bytes; [`Frame::encode`] says how RESP2
/// spells the RESP3-only types.
///
/// # Format
///
/// ```text
/// +OK\r\n                      Simple("OK")
/// -ERR unknown command\r\n     Error("ERR unknown command")
/// :42\r\n                      Integer(42)
/// $5\r\nhello\r\n              Bulk(b"hello")
/// *2\r\n$3\r\nGET\r\n$1\r\nk\r\n  Array([Bulk(b"GET"), Bulk(b"k")])
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A short status line without CR or LF: `+OK\r\n`.
    Simple(String),
    /// An error line, conventionally starting with an upper-case code: `-ERR no such key\r\n`.
    Error(String),
    /// A signed 64-bit integer: `:-7\r\n`.
    Integer(i64),
    /// A binary-safe string: `$5\r\nhello\r\n`.
    Bulk(Vec<u8>),
    /// The absent value: `_\r\n` in RESP3, `$-1\r\n` in RESP2.
    Null,
    /// An ordered sequence: `*2\r\n:1\r\n:2\r\n`.
    Array(Vec<Frame>),
    /// The RESP2 null array `*-1\r\n` (RESP3 has a single null, `_\r\n`).
    // Only a client's parser (`parse_frame`) makes this and the other reply-only types.
    #[cfg_attr(not(any(feature = "cli", feature = "testing")), allow(dead_code))]
    NullArray,
    /// Key/value pairs in order: `%1\r\n+name\r\n+Ada\r\n`.
    Map(Vec<(Frame, Frame)>),
    /// An unordered collection: `~2\r\n+a\r\n+b\r\n`.
    Set(Vec<Frame>),
    /// A floating-point number: `,3.25\r\n`, `,inf\r\n`, `,-inf\r\n`, `,nan\r\n`.
    Double(f64),
    /// `#t\r\n` or `#f\r\n`.
    Boolean(bool),
    /// Text with a three-byte format tag such as `txt` or `mkd`: `=9\r\ntxt:hello\r\n`
    /// (the length counts the tag and the colon).
    Verbatim {
        /// The format tag, e.g. `*b"txt"`.
        format: [u8; 3],
        /// The text itself.
        text: Vec<u8>,
    },
    /// An integer of any size, as decimal digits with an optional sign: `(3492890328409238509324850943850943825024385\r\n`.
    #[cfg_attr(not(any(feature = "cli", feature = "testing")), allow(dead_code))]
    BigNumber(String),
    /// Out-of-band data pushed by the server (e.g. pub/sub): `>2\r\n+message\r\n+hi\r\n`.
    #[cfg_attr(not(any(feature = "cli", feature = "testing")), allow(dead_code))]
    Push(Vec<Frame>),
    /// A map from bulk-string keys to doubles whose keys are encoded once and shared by many
    /// replies (the feature names of `PROFILE.GET`): written exactly as the [`Frame::Map`] of
    /// [`Frame::Bulk`] keys and [`Frame::Double`] values it stands for, without building or
    /// copying a frame per key. Pairs the first `min(keys, values)` of each. Only ever sent:
    /// [`parse_frame`] reads it back as that [`Frame::Map`].
    DoubleMap(Arc<SharedKeys>, Vec<f64>),
}

/// Bulk-string keys encoded once (`$<len>\r\n<key>\r\n` each), for [`Frame::DoubleMap`].
///
/// # Examples
/// ```
/// use persona::testing::server::frame::{Frame, Proto, SharedKeys};
/// let keys = SharedKeys::new(["a", "bc"]);
/// assert_eq!(keys.len(), 2);
/// assert_eq!(keys.key(1), Some(&b"bc"[..]));
/// let mut out = Vec::new();
/// Frame::DoubleMap(keys, vec![0.5, 2.0]).encode(Proto::Resp3, &mut out);
/// assert_eq!(out, b"%2\r\n$1\r\na\r\n,0.5\r\n$2\r\nbc\r\n,2\r\n");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKeys {
    /// Every key's wire form, back to back.
    encoded: Vec<u8>,
    /// Per key: where its wire form starts in `encoded`, and where the key itself starts.
    spans: Vec<KeySpan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeySpan {
    start: usize,
    key_start: usize,
    end: usize,
}

impl SharedKeys {
    /// Encodes `keys`, in order.
    pub fn new<I>(keys: I) -> Arc<SharedKeys>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut encoded = Vec::new();
        let mut spans = Vec::new();
        for key in keys {
            let key = key.as_ref();
            let start = encoded.len();
            encoded.push(b'$');
            encoded.extend_from_slice(key.len().to_string().as_bytes());
            encoded.extend_from_slice(b"\r\n");
            let key_start = encoded.len();
            encoded.extend_from_slice(key);
            encoded.extend_from_slice(b"\r\n");
            spans.push(KeySpan {
                start,
                key_start,
                end: encoded.len(),
            });
        }
        Arc::new(SharedKeys { encoded, spans })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no keys.
    #[cfg(any(test, feature = "testing"))]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Key `i` itself (not its wire form), if there is one.
    #[cfg(any(test, feature = "testing"))]
    pub fn key(&self, i: usize) -> Option<&[u8]> {
        let span = self.spans.get(i)?;
        self.encoded.get(span.key_start..span.end.saturating_sub(2))
    }

    /// Key `i`'s wire form, `$<len>\r\n<key>\r\n` (empty past the last key).
    pub(super) fn wire(&self, i: usize) -> &[u8] {
        self.spans
            .get(i)
            .and_then(|span| self.encoded.get(span.start..span.end))
            .unwrap_or(&[])
    }
}

impl Frame {
    /// The `OK` status.
    ///
    /// # Format
    ///
    /// ```text
    /// +OK\r\n
    /// ```
    pub fn ok() -> Frame {
        Frame::Simple("OK".to_owned())
    }

    /// A bulk string holding a copy of `bytes`.
    ///
    /// # Format
    ///
    /// ```text
    /// $<length>\r\n<bytes>\r\n
    /// ```
    pub fn bulk(bytes: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(bytes.as_ref().to_vec())
    }

    /// An error reply with `msg` exactly as given: include the code yourself
    /// (`Frame::error("ERR syntax error")`). CR and LF become spaces when encoded.
    ///
    /// # Format
    ///
    /// ```text
    /// -<msg>\r\n
    /// ```
    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }

    /// A map whose keys are bulk strings, in the order given (RESP2 clients see a flat array).
    ///
    /// # Format
    ///
    /// ```text
    /// %<pairs>\r\n$<len>\r\n<key>\r\n<value>...      (RESP3)
    /// *<2*pairs>\r\n$<len>\r\n<key>\r\n<value>...    (RESP2)
    /// ```
    pub fn map_from<'a, I>(pairs: I) -> Frame
    where
        I: IntoIterator<Item = (&'a str, Frame)>,
    {
        Frame::Map(
            pairs
                .into_iter()
                .map(|(key, value)| (Frame::bulk(key), value))
                .collect(),
        )
    }
}

/// The dialect of a connection: RESP2 until a client switches with `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    /// RESP2: the RESP3-only types are written as their closest RESP2 equivalent.
    #[default]
    Resp2,
    /// RESP3: every type is written with its own type byte.
    Resp3,
}

/// Bounds on what a parser accepts, so a client cannot make the server buffer or recurse without
/// limit. A declared length over a bound is a protocol error, reported as soon as it is read.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (also simple-string line and verbatim text), in bytes. Default 1 MiB.
    pub max_bulk_len: usize,
    /// Most elements in one array, set or push, or pairs in one map. Default 2^20.
    pub max_array_len: usize,
    /// Longest inline command line, without its line ending, in bytes. Default 64 KiB.
    pub max_inline_len: usize,
    /// Deepest nesting of aggregates in a reply a client parses (the server reads flat
    /// commands); a top-level array is depth 1. Default 8. Values above 64 are treated as 64.
    pub max_nesting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 1 << 20,
            max_array_len: 1 << 20,
            max_inline_len: 64 << 10,
            max_nesting: 8,
        }
    }
}

/// Why bytes from a peer are not valid RESP. The connection cannot be resynchronised after one:
/// the server replies `-ERR <Display>` and closes it. Where Redis has a message for the same fault,
/// the Display text is Redis's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A `*` count that is not a number, is negative (other than `*-1`), or is over the limit.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$` length that is not a number, is negative, or is over the limit.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An element of a command array that is not a bulk string; holds the byte found instead.
    #[error("Protocol error: expected '$', got '{}'", ShowByte(*.0))]
    ExpectedBulk(u8),
    /// An inline command line longer than [`Limits::max_inline_len`].
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// An inline command with an unclosed quote, or a closing quote followed by something other
    /// than a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Bulk data not followed by CRLF: the declared length was wrong.
    #[error("Protocol error: expected '\\r\\n' after bulk data")]
    MissingCrlf,
    /// A frame starting with a byte that is no RESP type; holds that byte.
    #[error("Protocol error: invalid frame type byte '{}'", ShowByte(*.0))]
    #[cfg_attr(not(any(feature = "cli", feature = "testing")), allow(dead_code))]
    InvalidFrameType(u8),
    /// Aggregates nested deeper than [`Limits::max_nesting`].
    #[error("Protocol error: nesting too deep")]
    #[cfg_attr(not(any(feature = "cli", feature = "testing")), allow(dead_code))]
    NestingTooDeep,
    /// A malformed value of the named kind (`integer`, `double`, `boolean`, ...).
    #[error("Protocol error: invalid {0}")]
    #[cfg_attr(not(any(feature = "cli", feature = "testing")), allow(dead_code))]
    Invalid(&'static str),
}

/// Shows a byte as Redis's `%c` would for printable ASCII, and as `\xHH` otherwise.
struct ShowByte(u8);

impl fmt::Display for ShowByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() || self.0 == b' ' {
            write!(f, "{}", char::from(self.0))
        } else {
            write!(f, "\\x{:02x}", self.0)
        }
    }
}

/// Outcome of looking for a CRLF-terminated line.
pub(super) enum LineScan {
    /// The content is `buf[from..end]`; the next line starts at `next`.
    Found { end: usize, next: usize },
    /// No terminator yet, and the content so far is within bounds.
    Incomplete,
    /// Content over `max` bytes, or a CR not followed by LF.
    Invalid,
}

/// Looks for a line of at most `max` content bytes starting at `buf[from]`. Scans at most
/// `max + 2` bytes, so repeated calls on a growing buffer cost O(max) each.
pub(super) fn scan_line(buf: &[u8], from: usize, max: usize) -> LineScan {
    let window_end = from.saturating_add(max).saturating_add(1).min(buf.len());
    let window = buf.get(from..window_end).unwrap_or(&[]);
    match window.iter().position(|&b| b == b'\r') {
        Some(i) => {
            let end = from + i;
            match buf.get(end + 1) {
                None => LineScan::Incomplete,
                Some(b'\n') => LineScan::Found { end, next: end + 2 },
                Some(_) => LineScan::Invalid,
            }
        }
        None if buf.len().saturating_sub(from) > max => LineScan::Invalid,
        None => LineScan::Incomplete,
    }
}

/// Parses a length the way Redis's `string2ll` does: an optional `-`, then `0` or digits not
/// starting with `0`, fitting an `i64`. Nothing else (no `+`, no spaces, no `-0`).
pub(super) fn parse_len(digits: &[u8]) -> Option<i64> {
    let (negative, rest) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    match rest {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut value: i64 = 0;
    for &b in rest {
        if !b.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(b - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// How many elements of at least `min_size` bytes each can follow in `remaining` bytes, capped:
/// the capacity reserved for an aggregate of `declared` elements.
pub(super) fn prealloc(declared: usize, remaining: usize, min_size: usize) -> usize {
    declared.min(remaining / min_size.max(1)).min(PREALLOC_CAP)
}
