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
                double(
                    out,
                    *value,
                    resp3,
                    &mut ryu::Buffer::new(),
                    &mut DoubleText::empty(),
                );
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
            Frame::DoubleMap(keys, values) => {
                let pairs = keys.len().min(values.len());
                if resp3 {
                    header(out, b'%', pairs);
                } else {
                    header(out, b'*', pairs.saturating_mul(2));
                }
                let mut fast = ryu::Buffer::new();
                let mut slow = DoubleText::empty();
                for (i, value) in values.iter().take(pairs).enumerate() {
                    out.extend_from_slice(keys.wire(i));
                    double(out, *value, resp3, &mut fast, &mut slow);
                }
            }
        }
    }
}

/// A double: `,<text>\r\n` in RESP3, a bulk string of the text in RESP2.
fn double(
    out: &mut Vec<u8>,
    value: f64,
    resp3: bool,
    fast: &mut ryu::Buffer,
    slow: &mut DoubleText,
) {
    let text = double_text(value, fast, slow);
    // The text never holds CR or LF, so it needs no `line` filtering.
    if resp3 {
        out.push(b',');
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(out, b'$', &[text]);
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
fn push_u64(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(u64_digits(n, &mut digits));
}

/// Decimal digits of `n`, written at the end of `digits` (20 bytes hold any u64).
fn u64_digits(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
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
    digits.get(start..).unwrap_or(&[])
}

/// The shortest text that reads back as `value`; plain decimal for ordinary magnitudes,
/// exponent form for very large or very small ones.
#[cfg(test)]
pub(super) fn format_double(value: f64) -> String {
    let mut fast = ryu::Buffer::new();
    let mut slow = DoubleText::empty();
    String::from_utf8_lossy(double_text(value, &mut fast, &mut slow)).into_owned()
}

/// The text of `value` (see [`DoubleText`]), written into one of the two buffers. The common
/// case is `ryu`'s own text: when it has no exponent it is already Rust's `{}` text but for a
/// trailing `.0` (`ryu` writes no exponent exactly for `1e-5 <= |v| < 1e16`, inside the range
/// where Rust's is written without one).
fn double_text<'a>(value: f64, fast: &'a mut ryu::Buffer, slow: &'a mut DoubleText) -> &'a [u8] {
    if value.is_finite() {
        let text = fast.format_finite(value).as_bytes();
        if !text.contains(&b'e') {
            let text = text.strip_suffix(b".0").unwrap_or(text);
            // Counting the digits only for the rare values whose exact decimal ends in 5.
            match exact_digits_ending_in_5(value) {
                Some(exact) if exact == significant_digits(text) + 1 => {}
                _ => return text,
            }
        }
    }
    *slow = DoubleText::new(value);
    slow.as_bytes()
}

/// The text of a double, built on the stack: the shortest digits that read back as the value
/// (from `ryu`), laid out as Rust's `{}` does for `1e-5 <= |v| < 1e17` and zero (`0.001`,
/// `123456789`, `-0`) and as `{:e}` otherwise (`1e300`, `1.5e-7`); `inf`, `-inf`, `nan`.
/// Byte-identical to formatting with `format!` (see the tests), without its allocation.
struct DoubleText {
    buf: [u8; 40],
    len: usize,
}

impl DoubleText {
    fn empty() -> DoubleText {
        DoubleText {
            buf: [0; 40],
            len: 0,
        }
    }

    fn new(value: f64) -> DoubleText {
        let mut t = DoubleText {
            buf: [0; 40],
            len: 0,
        };
        if value.is_nan() {
            t.push_all(b"nan");
            return t;
        }
        if value.is_infinite() {
            t.push_all(if value > 0.0 { b"inf" } else { b"-inf" });
            return t;
        }
        let mut ryu_buf = ryu::Buffer::new();
        let sci = Scientific::parse(ryu_buf.format_finite(value).as_bytes());
        if is_tie(value, sci.digits().len()) {
            // Two shortest texts are equally close; `ryu` rounds the tie to even, Rust's
            // formatter up. Keep Rust's text (the one written before `ryu` was used).
            t.std_format(value);
            return t;
        }
        if sci.negative {
            t.push(b'-');
        }
        let digits = sci.digits();
        let point = sci.point;
        if digits.is_empty() {
            t.push(b'0');
        } else if (1e-5..1e17).contains(&value.abs()) {
            if point <= 0 {
                t.push_all(b"0.");
                for _ in point..0 {
                    t.push(b'0');
                }
                t.push_all(digits);
            } else {
                let point = point.unsigned_abs() as usize;
                let (int, frac) = digits.split_at(point.min(digits.len()));
                t.push_all(int);
                for _ in int.len()..point {
                    t.push(b'0');
                }
                if !frac.is_empty() {
                    t.push(b'.');
                    t.push_all(frac);
                }
            }
        } else {
            let (first, rest) = digits.split_at(1);
            t.push_all(first);
            if !rest.is_empty() {
                t.push(b'.');
                t.push_all(rest);
            }
            t.push(b'e');
            let exp = point - 1;
            if exp < 0 {
                t.push(b'-');
            }
            let mut text = [0u8; 20];
            t.push_all(u64_digits(u64::from(exp.unsigned_abs()), &mut text));
        }
        t
    }

    /// Rust's own formatting, into the same buffer (rare: only for ties, see [`is_tie`]).
    fn std_format(&mut self, value: f64) {
        use std::fmt::Write as _;
        // Writing into a `DoubleText` cannot fail (see `write_str`).
        let _ = if value == 0.0 || (1e-5..1e17).contains(&value.abs()) {
            write!(self, "{value}")
        } else {
            write!(self, "{value:e}")
        };
    }

    fn push(&mut self, b: u8) {
        // 40 bytes hold any double's text (at most 17 digits, a sign, "0.0000", "e-324").
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl std::fmt::Write for DoubleText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push_all(s.as_bytes());
        Ok(())
    }
}

/// Digits of a plain decimal text without its leading and trailing zeros (`-0.0120` → 2).
fn significant_digits(text: &[u8]) -> usize {
    let digits = || text.iter().filter(|b| b.is_ascii_digit());
    let total = digits().count();
    let leading = digits().take_while(|&&b| b == b'0').count();
    let trailing = digits().rev().take_while(|&&b| b == b'0').count();
    total.saturating_sub(leading + trailing)
}

/// Whether the exact decimal value of finite `value` has `shortest + 1` significant digits, the
/// last a 5: then two `shortest`-digit texts are equally close to it and formatters may differ
/// in which they pick.
fn is_tie(value: f64, shortest: usize) -> bool {
    exact_digits_ending_in_5(value) == Some(shortest + 1)
}

/// The number of significant digits of the exact decimal value of finite `value` when the last
/// of them is a 5 and they are few enough to be a tie (see [`is_tie`]); None otherwise, which is
/// the answer for nearly every value, found without counting digits.
///
/// The exact value is S × 10^q with S an integer without trailing zeros; S ends in 5 only if it
/// is odd. value = m × 2^e with m odd: for e < 0, S = m × 5^−e, which has more than 18 digits
/// (more than any tie, as `shortest` <= 17) once −e > 27; for e >= 0, S is odd only if the 2^e
/// is cancelled by factors of 5 of m, so e <= 22 (5^23 > 2^53). Both cases fit a u128.
fn exact_digits_ending_in_5(value: f64) -> Option<usize> {
    let bits = value.abs().to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mut m, mut e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    if m == 0 {
        return None;
    }
    let zeros = m.trailing_zeros();
    m >>= zeros;
    e += zeros as i32;
    let mut s = u128::from(m);
    if e >= 0 {
        if e > 22 {
            return None;
        }
        s <<= e;
        while s % 10 == 0 {
            s /= 10;
        }
    } else {
        if -e > 27 {
            return None;
        }
        s *= 5u128.pow(e.unsigned_abs());
    }
    if s % 10 != 5 {
        return None;
    }
    let mut digits = 0;
    while s > 0 {
        s /= 10;
        digits += 1;
    }
    Some(digits)
}

/// A finite number as written by `ryu` (`-1.25`, `100.0`, `0.001`, `1e30`, `1.5e-7`), taken
/// apart: value = (−1 if `negative`) × 0.DIGITS × 10^`point`, DIGITS without leading or
/// trailing zeros (empty for zero).
struct Scientific {
    negative: bool,
    buf: [u8; 32],
    start: usize,
    end: usize,
    point: i32,
}

impl Scientific {
    fn parse(text: &[u8]) -> Scientific {
        let mut s = Scientific {
            negative: false,
            buf: [0; 32],
            start: 0,
            end: 0,
            point: 0,
        };
        let (mut in_exp, mut seen_point, mut exp_negative, mut exp) = (false, false, false, 0i32);
        for &b in text {
            match b {
                b'-' if in_exp => exp_negative = true,
                b'-' => s.negative = true,
                b'.' => seen_point = true,
                b'e' | b'E' => in_exp = true,
                b'0'..=b'9' if in_exp => {
                    exp = exp.saturating_mul(10).saturating_add(i32::from(b - b'0'));
                }
                b'0'..=b'9' => {
                    if let Some(slot) = s.buf.get_mut(s.end) {
                        *slot = b;
                        s.end += 1;
                    }
                    if !seen_point {
                        s.point += 1;
                    }
                }
                _ => {}
            }
        }
        s.point = s
            .point
            .saturating_add(if exp_negative { -exp } else { exp });
        while s.start < s.end && s.buf.get(s.start) == Some(&b'0') {
            s.start += 1;
            s.point -= 1;
        }
        while s.end > s.start && s.buf.get(s.end - 1) == Some(&b'0') {
            s.end -= 1;
        }
        s
    }

    fn digits(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }
}
