//! Writing frames: [`Frame::encode`].

use super::frame::{Frame, Proto};

impl Frame {
    /// Appends the wire form of this frame to `out`, in the dialect `proto`.
    ///
    /// RESP3 gives every type its own type byte. RESP2 has no map, set, double, boolean,
    /// verbatim, big number, push or typed null, so they are written as Redis writes them to a
    /// RESP2 client: a map as a flat array of key, value, key, value, ...; a set and a push as an
    /// array; a double, a verbatim string (its text only) and a big number as a bulk string; a
    /// boolean as the integer 1 or 0; null as the null bulk string. [`Frame::NullArray`] is
    /// `*-1` in RESP2 and `_` in RESP3, whose single null stands for both.
    ///
    /// Simple strings, errors and big numbers are written on one line: any CR or LF in them is
    /// written as a space. A finite double is written in the shortest form that reads back to the
    /// same value (`3.25`, `-0`, `1e300`), otherwise as `inf`, `-inf` or `nan`.
    ///
    /// # Format
    ///
    /// ```text
    /// frame                              RESP3                       RESP2
    /// Null                               _\r\n                       $-1\r\n
    /// NullArray                          _\r\n                       *-1\r\n
    /// Double(2.5)                        ,2.5\r\n                    $3\r\n2.5\r\n
    /// Boolean(true)                      #t\r\n                      :1\r\n
    /// Map([(Bulk(b"a"), Integer(1))])    %1\r\n$1\r\na\r\n:1\r\n     *2\r\n$1\r\na\r\n:1\r\n
    /// Set([Integer(1)])                  ~1\r\n:1\r\n                *1\r\n:1\r\n
    /// Push([Integer(1)])                 >1\r\n:1\r\n                *1\r\n:1\r\n
    /// Verbatim{txt, b"hi"}               =6\r\ntxt:hi\r\n            $2\r\nhi\r\n
    /// BigNumber("12")                    (12\r\n                     $2\r\n12\r\n
    /// ```
    pub fn encode(&self, proto: Proto, out: &mut Vec<u8>) {
        let resp3 = proto == Proto::Resp3;
        match self {
            Frame::Simple(text) => line(out, b'+', text.as_bytes()),
            Frame::Error(text) => line(out, b'-', text.as_bytes()),
            Frame::Integer(n) => {
                out.push(b':');
                push_i64(out, *n);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Bulk(data) => bulk(out, b'$', &[data]),
            Frame::Null if resp3 => out.extend_from_slice(b"_\r\n"),
            Frame::Null => out.extend_from_slice(b"$-1\r\n"),
            Frame::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Frame::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Frame::Array(items) => aggregate(out, b'*', items, proto),
            Frame::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, proto),
            Frame::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, proto),
            Frame::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len().saturating_mul(2));
                }
                for (key, value) in pairs {
                    key.encode(proto, out);
                    value.encode(proto, out);
                }
            }
            Frame::Double(value) => {
                let text = format_double(*value);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, b'$', &[text.as_bytes()]);
                }
            }
            Frame::Boolean(value) => out.extend_from_slice(match (resp3, value) {
                (true, true) => b"#t\r\n",
                (true, false) => b"#f\r\n",
                (false, true) => b":1\r\n",
                (false, false) => b":0\r\n",
            }),
            Frame::Verbatim { format, text } => {
                if resp3 {
                    bulk(out, b'=', &[format, b":", text]);
                } else {
                    bulk(out, b'$', &[text]);
                }
            }
            Frame::BigNumber(digits) => {
                if resp3 {
                    line(out, b'(', digits.as_bytes());
                } else {
                    bulk(out, b'$', &[digits.as_bytes()]);
                }
            }
        }
    }
}

/// `<kind><text>\r\n`, with CR and LF in `text` written as spaces.
fn line(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
    out.push(kind);
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// `<kind><total length>\r\n<parts...>\r\n`.
fn bulk(out: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    header(out, kind, parts.iter().map(|part| part.len()).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

fn aggregate(out: &mut Vec<u8>, kind: u8, items: &[Frame], proto: Proto) {
    header(out, kind, items.len());
    for item in items {
        item.encode(proto, out);
    }
}

/// `<kind><len>\r\n`.
fn header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    push_u64(out, u64::try_from(len).unwrap_or(u64::MAX));
    out.extend_from_slice(b"\r\n");
}

fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Decimal digits of `n`, without allocating.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    for slot in digits.iter_mut().rev() {
        // `n % 10` is below 10, so the cast cannot truncate.
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or(&[]));
}

/// The shortest text that reads back as `value`; plain decimal for ordinary magnitudes,
/// exponent form for very large or very small ones.
pub(super) fn format_double(value: f64) -> String {
    if value.is_nan() {
        "nan".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else if value == 0.0 || (1e-5..1e17).contains(&value.abs()) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}
