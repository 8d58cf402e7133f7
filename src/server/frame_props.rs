//! Property tests of [`super::frame`]: no input panics, and what is encoded parses back.

use super::frame::{parse_frame, parse_request, Frame, Limits, Proto, SharedKeys};
use super::frame_tests::{decode_chunked, enc, parse_all, req};
use proptest::prelude::*;

fn frame_strategy() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        "[^\r\n]{0,12}".prop_map(Frame::Simple),
        "[^\r\n]{0,12}".prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Frame::Bulk),
        Just(Frame::Null),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |d| !d.is_nan())
            .prop_map(Frame::Double),
        any::<bool>().prop_map(Frame::Boolean),
        (
            any::<[u8; 3]>(),
            proptest::collection::vec(any::<u8>(), 0..24)
        )
            .prop_map(|(format, text)| Frame::Verbatim { format, text }),
        "[-+]?[0-9]{1,40}".prop_map(Frame::BigNumber),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let items = proptest::collection::vec(inner.clone(), 0..6);
        prop_oneof![
            items.clone().prop_map(Frame::Array),
            items.clone().prop_map(Frame::Set),
            items.prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

/// Bytes that look like RESP often enough to reach deep into the parsers.
fn resp_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let tokens = [
        "*",
        "$",
        "\r\n",
        "\r",
        "\n",
        "0",
        "1",
        "2",
        "3",
        "-1",
        "-",
        "a",
        "\"",
        "'",
        "\\",
        "x",
        "4f",
        ":",
        "%",
        "~",
        ">",
        "|",
        "_",
        ",",
        "#",
        "(",
        "=",
        "!",
        " ",
        "\t",
        "t",
        "txt:",
        "\0",
        "+",
        "inf",
        ".5",
        "e9",
        "99999999999999999999",
    ];
    let token = proptest::sample::select(tokens.to_vec());
    prop_oneof![
        proptest::collection::vec(token, 0..48).prop_map(|t| t.concat().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

fn small_limits() -> Limits {
    Limits {
        max_bulk_len: 16,
        max_array_len: 4,
        max_inline_len: 12,
        max_nesting: 3,
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in resp_ish_bytes()) {
        for limits in [Limits::default(), small_limits()] {
            if let Ok(Some((_, n))) = parse_request(&bytes, &limits) {
                prop_assert!(n > 0 && n <= bytes.len());
            }
            if let Ok(Some((_, n))) = parse_frame(&bytes, &limits) {
                prop_assert!(n > 0 && n <= bytes.len());
            }
        }
    }

    #[test]
    fn decoder_in_pieces_agrees_with_whole_buffer_parsing(
        bytes in resp_ish_bytes(),
        chunks in proptest::collection::vec(1usize..9, 0..64),
    ) {
        for limits in [Limits::default(), small_limits()] {
            prop_assert_eq!(decode_chunked(&bytes, &chunks, &limits), parse_all(&bytes, &limits));
        }
    }

    #[test]
    fn command_args_round_trip_as_an_array_of_bulks(
        list in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut wire = enc(&Frame::Array(list.iter().map(Frame::bulk).collect()), Proto::Resp2);
        let len = wire.len();
        wire.extend_from_slice(&tail);
        prop_assert_eq!(req(&wire), Ok(Some((list.clone(), len))));
        for cut in 0..len {
            prop_assert_eq!(req(&wire[..cut]), Ok(None));
        }
    }

    #[test]
    fn quoted_inline_args_round_trip(
        list in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 1..8),
    ) {
        let mut line = Vec::new();
        for arg in &list {
            line.extend_from_slice(b" \"");
            for &b in arg {
                if b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ' {
                    line.push(b);
                } else {
                    line.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                }
            }
            line.push(b'"');
        }
        line.extend_from_slice(b"\r\n");
        prop_assert_eq!(req(&line), Ok(Some((list, line.len()))));
    }

    #[test]
    fn any_frame_round_trips_through_resp3(frame in frame_strategy()) {
        let wire = enc(&frame, Proto::Resp3);
        prop_assert_eq!(parse_frame(&wire, &Limits::default()), Ok(Some((frame.clone(), wire.len()))));
        for cut in 0..wire.len() {
            prop_assert_eq!(parse_frame(&wire[..cut], &Limits::default()), Ok(None));
        }
        let resp2 = enc(&frame, Proto::Resp2);
        let parsed = parse_frame(&resp2, &Limits::default());
        prop_assert!(matches!(parsed, Ok(Some((_, n))) if n == resp2.len()));
    }

    #[test]
    fn double_map_is_written_as_the_map_it_stands_for(
        keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..8),
        values in proptest::collection::vec(any::<f64>(), 0..8),
    ) {
        let shared = SharedKeys::new(&keys);
        prop_assert_eq!(shared.len(), keys.len());
        for (i, key) in keys.iter().enumerate() {
            prop_assert_eq!(shared.key(i), Some(key.as_slice()));
        }
        let map = Frame::Map(
            keys.iter()
                .zip(&values)
                .map(|(k, v)| (Frame::Bulk(k.clone()), Frame::Double(*v)))
                .collect(),
        );
        let double_map = Frame::DoubleMap(shared, values);
        for proto in [Proto::Resp2, Proto::Resp3] {
            prop_assert_eq!(enc(&double_map, proto), enc(&map, proto));
        }
    }
}
