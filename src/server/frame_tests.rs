//! Tests of [`super::frame`]: parsing, encoding, limits and errors.

use super::encode::format_double;
use super::frame::{
    parse_frame, parse_request, Frame, Limits, Proto, ProtocolError, RequestDecoder,
};
use super::request::split_args;

pub(super) type Commands = Vec<Vec<Vec<u8>>>;
pub(super) type Parsed = Result<Option<(Vec<Vec<u8>>, usize)>, ProtocolError>;

pub(super) fn enc(frame: &Frame, proto: Proto) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(proto, &mut out);
    out
}

fn args(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|a| a.as_bytes().to_vec()).collect()
}

fn command(list: &[&[u8]]) -> Vec<u8> {
    enc(
        &Frame::Array(list.iter().map(Frame::bulk).collect()),
        Proto::Resp2,
    )
}

pub(super) fn req(buf: &[u8]) -> Parsed {
    parse_request(buf, &Limits::default())
}

fn req_err(buf: &[u8]) -> String {
    match req(buf) {
        Err(err) => err.to_string(),
        other => panic!("expected an error for {buf:?}, got {other:?}"),
    }
}

fn inline(line: &str) -> Vec<Vec<u8>> {
    match req(line.as_bytes()) {
        Ok(Some((args, consumed))) => {
            assert_eq!(consumed, line.len(), "{line:?}");
            args
        }
        other => panic!("{line:?}: {other:?}"),
    }
}

/// Every command at the front of `buf`, one `parse_request` call each, and how it ended.
pub(super) fn parse_all(buf: &[u8], limits: &Limits) -> (Commands, Result<usize, ProtocolError>) {
    let mut pos = 0;
    let mut commands = Vec::new();
    loop {
        match parse_request(&buf[pos..], limits) {
            Ok(Some((args, consumed))) => {
                assert!(consumed > 0 && pos + consumed <= buf.len());
                commands.push(args);
                pos += consumed;
            }
            Ok(None) => return (commands, Ok(pos)),
            Err(err) => return (commands, Err(err)),
        }
    }
}

/// The same, with `buf` arriving in pieces of the given sizes and one decoder for the connection.
pub(super) fn decode_chunked(
    buf: &[u8],
    chunks: &[usize],
    limits: &Limits,
) -> (Commands, Result<usize, ProtocolError>) {
    let mut decoder = RequestDecoder::new(*limits);
    let (mut pending, mut consumed, mut arrived) = (Vec::new(), 0, 0);
    let mut commands = Vec::new();
    let mut sizes = chunks.iter().copied().chain(std::iter::repeat(7));
    while arrived < buf.len() {
        let size = sizes.next().unwrap_or(1).max(1);
        let end = (arrived + size).min(buf.len());
        pending.extend_from_slice(&buf[arrived..end]);
        arrived = end;
        loop {
            match decoder.decode(&pending) {
                Ok(Some((args, n))) => {
                    commands.push(args);
                    pending.drain(..n);
                    consumed += n;
                }
                Ok(None) => break,
                Err(err) => return (commands, Err(err)),
            }
        }
    }
    (commands, Ok(consumed))
}

fn samples() -> Vec<Frame> {
    vec![
        Frame::ok(),
        Frame::error("ERR unknown command 'FOO'"),
        Frame::Integer(0),
        Frame::Integer(i64::MIN),
        Frame::Integer(i64::MAX),
        Frame::bulk(""),
        Frame::bulk(b"bin\r\n\0\xff"),
        Frame::Null,
        Frame::Array(vec![]),
        Frame::Array(vec![Frame::Integer(1), Frame::Null, Frame::bulk("x")]),
        Frame::map_from([("name", Frame::bulk("Ada")), ("age", Frame::Integer(36))]),
        Frame::Set(vec![Frame::Simple("a".into()), Frame::Boolean(false)]),
        Frame::Double(3.25),
        Frame::Double(-0.0),
        Frame::Double(1e300),
        Frame::Double(-2.5e-300),
        Frame::Double(f64::INFINITY),
        Frame::Double(f64::NEG_INFINITY),
        Frame::Boolean(true),
        Frame::Verbatim {
            format: *b"txt",
            text: b"hello\r\nworld".to_vec(),
        },
        Frame::BigNumber("-3492890328409238509324850943850943825024385".into()),
        Frame::Push(vec![
            Frame::bulk("message"),
            Frame::bulk("chan"),
            Frame::bulk("hi"),
        ]),
        Frame::Array(vec![Frame::Map(vec![(
            Frame::Integer(1),
            Frame::Set(vec![Frame::Array(vec![Frame::Null])]),
        )])]),
    ]
}

#[test]
fn every_frame_type_round_trips_through_resp3() {
    for frame in samples() {
        let bytes = enc(&frame, Proto::Resp3);
        let parsed = parse_frame(&bytes, &Limits::default()).unwrap();
        assert_eq!(parsed, Some((frame.clone(), bytes.len())), "{frame:?}");
    }
    // RESP3 has a single null, so a null array reads back as Null; RESP2 keeps it apart.
    assert_eq!(enc(&Frame::NullArray, Proto::Resp3), b"_\r\n");
    let resp2 = enc(&Frame::NullArray, Proto::Resp2);
    assert_eq!(
        parse_frame(&resp2, &Limits::default()),
        Ok(Some((Frame::NullArray, 5)))
    );
    let nan = parse_frame(
        &enc(&Frame::Double(f64::NAN), Proto::Resp3),
        &Limits::default(),
    );
    assert!(matches!(nan, Ok(Some((Frame::Double(d), 6))) if d.is_nan()));
}

#[test]
fn resp3_wire_bytes() {
    let cases: &[(Frame, &[u8])] = &[
        (Frame::ok(), b"+OK\r\n"),
        (Frame::error("ERR x"), b"-ERR x\r\n"),
        (Frame::Integer(-42), b":-42\r\n"),
        (Frame::bulk("hi"), b"$2\r\nhi\r\n"),
        (Frame::Null, b"_\r\n"),
        (Frame::Double(2.5), b",2.5\r\n"),
        (Frame::Double(1.0), b",1\r\n"),
        (Frame::Double(f64::NAN), b",nan\r\n"),
        (Frame::Boolean(false), b"#f\r\n"),
        (
            Frame::map_from([("a", Frame::Integer(1))]),
            b"%1\r\n$1\r\na\r\n:1\r\n",
        ),
        (Frame::Set(vec![Frame::Integer(1)]), b"~1\r\n:1\r\n"),
        (Frame::Push(vec![Frame::Integer(1)]), b">1\r\n:1\r\n"),
        (
            Frame::Verbatim {
                format: *b"txt",
                text: b"hi".to_vec(),
            },
            b"=6\r\ntxt:hi\r\n",
        ),
        (Frame::BigNumber("12".into()), b"(12\r\n"),
    ];
    for (frame, wire) in cases {
        assert_eq!(enc(frame, Proto::Resp3), *wire, "{frame:?}");
    }
}

#[test]
fn resp2_mappings_are_byte_exact() {
    let cases: &[(Frame, &[u8])] = &[
        (Frame::Null, b"$-1\r\n"),
        (Frame::NullArray, b"*-1\r\n"),
        (Frame::Double(2.5), b"$3\r\n2.5\r\n"),
        (Frame::Double(f64::INFINITY), b"$3\r\ninf\r\n"),
        (Frame::Double(f64::NEG_INFINITY), b"$4\r\n-inf\r\n"),
        (Frame::Double(f64::NAN), b"$3\r\nnan\r\n"),
        (Frame::Boolean(true), b":1\r\n"),
        (Frame::Boolean(false), b":0\r\n"),
        (
            Frame::map_from([("a", Frame::Integer(1)), ("b", Frame::Null)]),
            b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$-1\r\n",
        ),
        (
            Frame::Set(vec![Frame::Integer(1), Frame::Boolean(true)]),
            b"*2\r\n:1\r\n:1\r\n",
        ),
        (Frame::Push(vec![Frame::bulk("m")]), b"*1\r\n$1\r\nm\r\n"),
        (
            Frame::Verbatim {
                format: *b"txt",
                text: b"hi".to_vec(),
            },
            b"$2\r\nhi\r\n",
        ),
        (Frame::BigNumber("-12".into()), b"$3\r\n-12\r\n"),
        (
            Frame::Array(vec![Frame::Double(0.5)]),
            b"*1\r\n$3\r\n0.5\r\n",
        ),
    ];
    for (frame, wire) in cases {
        assert_eq!(enc(frame, Proto::Resp2), *wire, "{frame:?}");
    }
}

#[test]
fn line_types_never_carry_cr_or_lf() {
    for proto in [Proto::Resp2, Proto::Resp3] {
        assert_eq!(enc(&Frame::Simple("a\r\nb".into()), proto), b"+a  b\r\n");
        assert_eq!(enc(&Frame::error("ERR a\nb\r"), proto), b"-ERR a b \r\n");
    }
    assert_eq!(
        enc(&Frame::BigNumber("1\r\n".into()), Proto::Resp3),
        b"(1  \r\n"
    );
}

#[test]
fn doubles_use_the_shortest_exact_text() {
    for (value, text) in [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (123456789.0, "123456789"),
        (1e300, "1e300"),
        (1.5e-7, "1.5e-7"),
        (f64::MAX, "1.7976931348623157e308"),
    ] {
        assert_eq!(format_double(value), text);
        assert_eq!(text.parse::<f64>().ok(), Some(value));
    }
}

/// The text `Frame::Double` had before it was built from `ryu`'s digits: Rust's own shortest
/// round-trip formatting. The two must agree byte for byte.
fn std_format_double(value: f64) -> String {
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

#[test]
fn doubles_match_std_formatting_byte_for_byte() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
    let mut values = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        1e-5,
        9.999999999999999e-6,
        1e16,
        1e17,
        99999999999999980.0,
        1.2345e16,
        123456789012345680.0,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        0.1 + 0.2,
        // A tie: 771.67510986328125 exactly; Rust writes ...813, ryu alone ...812.
        771.675_109_863_281_3,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for e in -330..=310 {
        values.push(10f64.powi(e));
        values.push(-1.5 * 10f64.powi(e));
        values.push(7.123456789 * 10f64.powi(e));
    }
    for _ in 0..200_000 {
        values.push(f64::from_bits(rng.gen()));
        values.push(rng.gen_range(-1e6..1e6));
        values.push(f64::from(rng.gen::<f32>()) * 1e3);
    }
    for value in values {
        assert_eq!(format_double(value), std_format_double(value), "{value:?}");
    }
}

#[test]
fn multibulk_and_inline_commands() {
    assert_eq!(
        req(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nrest").unwrap(),
        Some((args(&["GET", "k"]), 20))
    );
    assert_eq!(req(b"*1\r\n$0\r\n\r\n").unwrap(), Some((vec![vec![]], 10)));
    assert_eq!(req(b"*0\r\n").unwrap(), Some((vec![], 4)));
    assert_eq!(req(b"*-1\r\n").unwrap(), Some((vec![], 5)));
    assert_eq!(req(b"\r\n").unwrap(), Some((vec![], 2)));
    assert_eq!(req(b"\n").unwrap(), Some((vec![], 1)));
    assert_eq!(req(b"").unwrap(), None);
    assert_eq!(inline("PING\n"), args(&["PING"]));
    assert_eq!(inline("  SET\tk   v \r\n"), args(&["SET", "k", "v"]));
}

#[test]
fn inline_quotes_and_escapes_follow_sdssplitargs() {
    assert_eq!(inline("SET k \"a b\"\r\n"), args(&["SET", "k", "a b"]));
    assert_eq!(inline("SET k 'a b'\r\n"), args(&["SET", "k", "a b"]));
    assert_eq!(
        inline(concat!(r#"x "q\"\\\n\r\t\b\a\z""#, "\r\n")),
        vec![b"x".to_vec(), b"q\"\\\n\r\t\x08\x07z".to_vec()]
    );
    assert_eq!(
        inline("x \"\\x41\\x6a\\xZZ\\xf\"\r\n"),
        vec![b"x".to_vec(), b"AjxZZxf".to_vec()]
    );
    assert_eq!(
        inline("x \"\\xff\\x00\"\r\n"),
        vec![b"x".to_vec(), vec![0xff, 0]]
    );
    assert_eq!(
        inline("x 'it\\'s' 'a\\b'\r\n"),
        args(&["x", "it's", "a\\b"])
    );
    assert_eq!(inline("x \"\" ''\r\n"), args(&["x", "", ""]));
    assert_eq!(
        inline("ab\"c d\" e\r\n"),
        vec![b"abc d".to_vec(), b"e".to_vec()],
        "opening quote mid-word"
    );
    assert_eq!(inline("x \"a\"\t'b'\r\n"), args(&["x", "a", "b"]));
    assert_eq!(inline("a\rb\r\n"), args(&["a", "b"]), "a lone CR separates");
    assert_eq!(
        inline("GET k\0ignored \"\r\n"),
        args(&["GET", "k"]),
        "NUL ends the line"
    );
    assert_eq!(
        split_args(b"a\x0bb \x0c c").unwrap(),
        vec![b"a\x0bb".to_vec(), b"c".to_vec()]
    );
    for bad in [
        "x \"abc\r\n",
        "x 'abc\r\n",
        "x \"a\"b\r\n",
        "ab\"c\"d\r\n",
        "x 'a'b\r\n",
        "x \"a\\\"\r\n",
    ] {
        assert_eq!(
            req_err(bad.as_bytes()),
            "Protocol error: unbalanced quotes in request",
            "{bad:?}"
        );
    }
}

#[test]
fn every_protocol_error_has_redis_wording() {
    let multibulk = "Protocol error: invalid multibulk length";
    let bulk = "Protocol error: invalid bulk length";
    for bad in [
        &b"*abc\r\n"[..],
        b"*-2\r\n",
        b"*01\r\n",
        b"*+1\r\n",
        b"*1 \r\n",
        b"*\r\n",
        b"*1\rx",
    ] {
        assert_eq!(req_err(bad), multibulk, "{bad:?}");
    }
    assert_eq!(
        req_err(&[b'*'; 40]),
        multibulk,
        "a count line that cannot end well"
    );
    for bad in [
        &b"*1\r\n$x\r\n"[..],
        b"*1\r\n$-1\r\n",
        b"*1\r\n$-0\r\n",
        b"*1\r\n$\r\n",
        b"*1\r\n$1\rx",
    ] {
        assert_eq!(req_err(bad), bulk, "{bad:?}");
    }
    assert_eq!(
        req_err(b"*1\r\n+OK\r\n"),
        "Protocol error: expected '$', got '+'"
    );
    assert_eq!(
        req_err(b"*2\r\n$1\r\na\r\n:1\r\n"),
        "Protocol error: expected '$', got ':'"
    );
    assert_eq!(
        req_err(b"*1\r\n\x01"),
        "Protocol error: expected '$', got '\\x01'"
    );
    assert_eq!(
        req_err(&[b'a'; 70_000]),
        "Protocol error: too big inline request"
    );
    let mut long_line = vec![b'a'; (64 << 10) + 1];
    long_line.extend_from_slice(b"\r\n");
    assert_eq!(
        req_err(&long_line),
        "Protocol error: too big inline request"
    );
    long_line.drain(..1);
    assert_eq!(
        req(&long_line).unwrap().map(|(a, n)| (a.len(), n)),
        Some((1, long_line.len()))
    );
    assert_eq!(
        req_err(b"SET \"a\r\n"),
        "Protocol error: unbalanced quotes in request"
    );
    assert_eq!(
        req_err(b"*1\r\n$3\r\nabcde"),
        "Protocol error: expected '\\r\\n' after bulk data"
    );
    let limits = Limits::default();
    let frame_err = |buf: &[u8]| parse_frame(buf, &limits).unwrap_err().to_string();
    assert_eq!(
        frame_err(b"?x\r\n"),
        "Protocol error: invalid frame type byte '?'"
    );
    assert_eq!(frame_err(b":1.5\r\n"), "Protocol error: invalid integer");
    assert_eq!(frame_err(b",abc\r\n"), "Protocol error: invalid double");
    assert_eq!(frame_err(b"#x\r\n"), "Protocol error: invalid boolean");
    assert_eq!(frame_err(b"(12a\r\n"), "Protocol error: invalid big number");
    assert_eq!(frame_err(b"_x\r\n"), "Protocol error: invalid null");
    assert_eq!(
        frame_err(b"=2\r\nab\r\n"),
        "Protocol error: invalid verbatim string"
    );
    assert_eq!(
        frame_err(b"=4\r\nabcd\r\n"),
        "Protocol error: invalid verbatim string"
    );
    assert_eq!(frame_err(b"~-1\r\n"), multibulk);
    assert_eq!(
        frame_err(&b"*1\r\n".repeat(9)),
        "Protocol error: nesting too deep"
    );
}

#[test]
fn huge_declared_lengths_are_errors_not_allocations() {
    let mb = ProtocolError::InvalidMultibulkLength;
    assert_eq!(req(b"*2147483647\r\n"), Err(mb.clone()));
    assert_eq!(req(b"*2147483648\r\n"), Err(mb.clone()));
    assert_eq!(req(b"*99999999999999999999999\r\n"), Err(mb.clone()));
    assert_eq!(
        req(b"*1\r\n$999999999999\r\n"),
        Err(ProtocolError::InvalidBulkLength)
    );
    assert_eq!(
        req(b"*1\r\n$1048577\r\n"),
        Err(ProtocolError::InvalidBulkLength)
    );
    let limits = Limits::default();
    assert_eq!(
        parse_frame(b"$999999999999\r\n", &limits),
        Err(ProtocolError::InvalidBulkLength)
    );
    assert_eq!(parse_frame(b"%2147483647\r\n", &limits), Err(mb.clone()));
    // With the limits lifted, a huge header only waits for its bytes; nothing is reserved for it.
    let open = Limits {
        max_bulk_len: usize::MAX,
        max_array_len: usize::MAX,
        max_inline_len: usize::MAX,
        max_nesting: usize::MAX,
    };
    assert_eq!(
        parse_request(b"*2147483647\r\n$1\r\na\r\n", &open),
        Ok(None)
    );
    assert_eq!(
        parse_request(b"*2147483648\r\n", &open),
        Err(mb.clone()),
        "Redis caps counts at INT_MAX"
    );
    assert_eq!(
        parse_request(b"*1\r\n$9223372036854775807\r\nab", &open),
        Ok(None)
    );
    assert_eq!(
        parse_frame(b"*9223372036854775807\r\n:1\r\n", &open),
        Ok(None)
    );
    assert_eq!(parse_frame(b"$9223372036854775807\r\nab", &open), Ok(None));
    assert_eq!(parse_frame(b"~9223372036854775807\r\n", &open), Ok(None));
    let deep = b"*1\r\n".repeat(100);
    assert_eq!(
        parse_frame(&deep, &open),
        Err(ProtocolError::NestingTooDeep),
        "hard cap of 64"
    );
}

#[test]
fn limits_are_enforced_exactly() {
    let limits = Limits {
        max_bulk_len: 3,
        max_array_len: 2,
        max_inline_len: 4,
        max_nesting: 2,
    };
    let ok = |buf: &[u8]| parse_request(buf, &limits).map(|r| r.map(|(a, _)| a.len()));
    assert_eq!(ok(b"*2\r\n$3\r\nabc\r\n$0\r\n\r\n"), Ok(Some(2)));
    assert_eq!(ok(b"*3\r\n"), Err(ProtocolError::InvalidMultibulkLength));
    assert_eq!(ok(b"*1\r\n$4\r\n"), Err(ProtocolError::InvalidBulkLength));
    assert_eq!(ok(b"ab c\r\n"), Ok(Some(2)));
    assert_eq!(ok(b"ab cd\r\n"), Err(ProtocolError::TooBigInlineRequest));
    assert_eq!(ok(b"ab c\r"), Ok(None));
    assert_eq!(ok(b"ab cd\r"), Err(ProtocolError::TooBigInlineRequest));
    assert_eq!(
        parse_frame(b"*1\r\n*1\r\n:1\r\n", &limits).map(|r| r.is_some()),
        Ok(true)
    );
    assert_eq!(
        parse_frame(b"*1\r\n*1\r\n*0\r\n", &limits),
        Err(ProtocolError::NestingTooDeep)
    );
    assert_eq!(
        parse_frame(b"+abcd\r\n", &limits),
        Err(ProtocolError::Invalid("simple string"))
    );
}

#[test]
fn attributes_are_skipped_and_blob_errors_read() {
    let limits = Limits::default();
    let buf = b"|1\r\n+ttl\r\n:3\r\n|0\r\n:7\r\n";
    assert_eq!(
        parse_frame(buf, &limits),
        Ok(Some((Frame::Integer(7), buf.len())))
    );
    assert_eq!(parse_frame(&buf[..buf.len() - 1], &limits), Ok(None));
    assert_eq!(
        parse_frame(b"!9\r\nERR\r\nfail\r\n", &limits),
        Ok(Some((Frame::Error("ERR\r\nfail".into()), 15)))
    );
    assert_eq!(
        parse_frame(b"*-1\r\n", &limits),
        Ok(Some((Frame::NullArray, 5)))
    );
    assert_eq!(parse_frame(b"$-1\r\n", &limits), Ok(Some((Frame::Null, 5))));
    assert_eq!(
        parse_frame(b":+5\r\n", &limits),
        Ok(Some((Frame::Integer(5), 5)))
    );
}

fn pipeline() -> (Vec<u8>, Commands) {
    let mut buf = Vec::new();
    let mut expected = Vec::new();
    for (wire, parsed) in [
        (
            command(&[b"SET", b"k\r\n", b"v"]),
            vec![&b"SET"[..], b"k\r\n", b"v"],
        ),
        (b"PING\r\n".to_vec(), vec![&b"PING"[..]]),
        (b"\r\n".to_vec(), vec![]),
        (command(&[b""]), vec![&b""[..]]),
        (
            b"ECHO \"a\\x00b\" 'c d'\n".to_vec(),
            vec![&b"ECHO"[..], b"a\0b", b"c d"],
        ),
        (b"*0\r\n".to_vec(), vec![]),
        (
            command(&[b"GET", &[0xff; 300]]),
            vec![&b"GET"[..], &[0xff; 300]],
        ),
    ] {
        buf.extend_from_slice(&wire);
        expected.push(parsed.into_iter().map(<[u8]>::to_vec).collect());
    }
    (buf, expected)
}

#[test]
fn every_prefix_of_a_pipeline_yields_a_prefix_of_its_commands() {
    let (buf, expected) = pipeline();
    let limits = Limits::default();
    for cut in 0..=buf.len() {
        let (commands, end) = parse_all(&buf[..cut], &limits);
        assert_eq!(commands[..], expected[..commands.len()], "cut at {cut}");
        let pos = end.unwrap_or_else(|err| panic!("cut at {cut}: {err}"));
        if cut == buf.len() {
            assert_eq!((commands.len(), pos), (expected.len(), buf.len()));
        }
    }
}

#[test]
fn decoder_resumes_across_pieces() {
    let (buf, expected) = pipeline();
    let limits = Limits::default();
    for size in [1, 2, 3, 5, 64, buf.len()] {
        assert_eq!(
            decode_chunked(&buf, &[size; 1000], &limits),
            (expected.clone(), Ok(buf.len()))
        );
    }
    // A shorter buffer than last time makes the decoder start over.
    let mut decoder = RequestDecoder::new(limits);
    assert_eq!(decoder.decode(b"*1\r\n$4\r\nPI"), Ok(None));
    assert_eq!(decoder.decode(b"PING\r\n"), Ok(Some((args(&["PING"]), 6))));
    assert_eq!(decoder.decode(b"*1\r\n$4\r\nPI"), Ok(None));
    decoder.reset();
    assert_eq!(
        decoder.decode(b"*1\r\n$4\r\nPING\r\nXX"),
        Ok(Some((args(&["PING"]), 14)))
    );
    assert_eq!(decoder.limits(), &limits);
}

#[test]
fn the_redis_crate_understands_us_and_we_understand_it() {
    use redis::{PushKind, Value, VerbatimFormat};
    let packed = redis::cmd("HSET")
        .arg("user:1")
        .arg(b"n\r\n")
        .arg(7)
        .get_packed_command();
    assert_eq!(
        req(&packed),
        Ok(Some((
            args(&["HSET", "user:1", "n\r\n", "7"]),
            packed.len()
        )))
    );
    let cases = [
        (Frame::ok(), Value::Okay, Value::Okay),
        (
            Frame::Simple("PONG".into()),
            Value::SimpleString("PONG".into()),
            Value::SimpleString("PONG".into()),
        ),
        (Frame::Integer(-3), Value::Int(-3), Value::Int(-3)),
        (Frame::Null, Value::Nil, Value::Nil),
        (Frame::NullArray, Value::Nil, Value::Nil),
        (
            Frame::Double(2.5),
            Value::Double(2.5),
            Value::BulkString(b"2.5".to_vec()),
        ),
        (Frame::Boolean(true), Value::Boolean(true), Value::Int(1)),
        (
            Frame::map_from([("a", Frame::Integer(1))]),
            Value::Map(vec![(Value::BulkString(b"a".to_vec()), Value::Int(1))]),
            Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::Int(1)]),
        ),
        (
            Frame::Set(vec![Frame::bulk("x")]),
            Value::Set(vec![Value::BulkString(b"x".to_vec())]),
            Value::Array(vec![Value::BulkString(b"x".to_vec())]),
        ),
        (
            Frame::Verbatim {
                format: *b"txt",
                text: b"hi".to_vec(),
            },
            Value::VerbatimString {
                format: VerbatimFormat::Text,
                text: "hi".into(),
            },
            Value::BulkString(b"hi".to_vec()),
        ),
        (
            Frame::Push(vec![
                Frame::bulk("invalidate"),
                Frame::Array(vec![Frame::bulk("k")]),
            ]),
            Value::Push {
                kind: PushKind::Invalidate,
                data: vec![Value::Array(vec![Value::BulkString(b"k".to_vec())])],
            },
            Value::Array(vec![
                Value::BulkString(b"invalidate".to_vec()),
                Value::Array(vec![Value::BulkString(b"k".to_vec())]),
            ]),
        ),
    ];
    for (frame, resp3, resp2) in cases {
        assert_eq!(
            redis::parse_redis_value(&enc(&frame, Proto::Resp3)).ok(),
            Some(resp3),
            "{frame:?}"
        );
        assert_eq!(
            redis::parse_redis_value(&enc(&frame, Proto::Resp2)).ok(),
            Some(resp2),
            "{frame:?}"
        );
    }
    let err = redis::parse_redis_value(&enc(&Frame::error("ERR bad thing"), Proto::Resp3));
    assert!(format!("{err:?}").contains("bad thing"), "{err:?}");
}
