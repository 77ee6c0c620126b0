//! Property tests for the codec: encode/parse round trips, resumable parsing,
//! a differential check against a tiny reference parser on arbitrary bytes,
//! typed instruction round trips, and handshake robustness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use guacr_protocol::handshake::{Event, ServerHandshake};
use guacr_protocol::{
    ClientInstruction, Instruction, MAX_ELEMENT_CODEPOINTS, MAX_ELEMENTS, MAX_INSTRUCTION_BYTES,
    ParseError, Parser, ServerInstruction,
};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------
// Strategies for untyped instructions.
// ---------------------------------------------------------------------------

/// Characters, biased towards the protocol's own delimiters, digits and
/// multi-byte code points (2, 3 and 4 bytes in UTF-8).
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => select(vec![',', ';', '.', '0', '1', '9', '-', '$', '\0', '\u{e1}', '\u{72ac}', '\u{10b00}', '\u{10ffff}']),
        3 => proptest::char::range('a', 'z'),
    ]
}

fn string_of(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any_char(), 0..=max_chars).prop_map(|v| v.into_iter().collect())
}

/// An element value: mostly short, sometimes long, occasionally the maximum
/// of 8192 code points.
fn element() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => string_of(12),
        3 => string_of(300),
        1 => string_of(MAX_ELEMENT_CODEPOINTS),
        1 => (0..=MAX_ELEMENT_CODEPOINTS, any_char())
            .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
        1 => Just("A".repeat(MAX_ELEMENT_CODEPOINTS)),
    ]
}

fn opcode() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec!["sync", "blob", "select", "connect", "mouse", "key", "size", "nop", "copy", ""])
            .prop_map(str::to_owned),
        2 => "[a-z]{1,12}",
        2 => string_of(24),
    ]
}

/// Bytes taken by the encoding of one element (length prefix, value, delimiter).
fn element_wire_len(s: &str) -> usize {
    s.chars().count().to_string().len() + 1 + s.len() + 1
}

/// An instruction with up to 127 arguments whose encoding fits guacd's
/// 32768-byte limit (arguments past the limit are dropped).
fn instruction() -> impl Strategy<Value = Instruction> {
    let light = prop_oneof![
        20 => string_of(12),
        2 => string_of(300),
        1 => Just("z".repeat(MAX_ELEMENT_CODEPOINTS)),
    ];
    let args = prop_oneof![
        6 => proptest::collection::vec(element(), 0..8),
        2 => proptest::collection::vec(light, 0..=MAX_ELEMENTS - 1),
        1 => proptest::collection::vec(string_of(2), MAX_ELEMENTS - 1),
    ];
    (opcode(), args).prop_map(|(opcode, mut args)| {
        let mut total = element_wire_len(&opcode);
        let fits = args
            .iter()
            .take_while(|a| {
                total += element_wire_len(a);
                total <= MAX_INSTRUCTION_BYTES
            })
            .count();
        args.truncate(fits);
        Instruction { opcode, args }
    })
}

/// A small instruction (cheap to generate in bulk).
fn small_instruction() -> impl Strategy<Value = Instruction> {
    (opcode(), proptest::collection::vec(string_of(12), 0..8))
        .prop_map(|(opcode, args)| Instruction { opcode, args })
}

/// Streams: mostly small instructions, some up to the limits.
fn stream_instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![6 => small_instruction(), 1 => instruction()]
}

fn encode_all(list: &[Instruction]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in list {
        i.encode(&mut out);
    }
    out
}

// ---------------------------------------------------------------------------
// A reference parser: byte at a time, non-resumable, written from the spec
// (length in code points, `,` / `;` terminators, guacd's limits).
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum RefOutcome {
    NeedMore,
    Error(ParseError),
    Complete {
        elements: Vec<String>,
        used: usize,
        /// Every length prefix is non-empty and has no leading zero.
        canonical: bool,
    },
}

fn reference_parse(buf: &[u8], limit: usize) -> RefOutcome {
    let mut elements: Vec<(usize, usize)> = Vec::new();
    let mut canonical = true;
    let mut i = 0;
    // Any byte past the limit (index `limit` is the last one looked at).
    let too_long = RefOutcome::Error(ParseError::InstructionTooLong { limit });
    let at = |i: usize| -> Option<u8> { if i > limit { None } else { buf.get(i).copied() } };
    let out_of_input = |i: usize| {
        if i > limit && buf.len() > limit {
            too_long.clone_outcome()
        } else {
            RefOutcome::NeedMore
        }
    };
    loop {
        // Length.
        let mut len = 0usize;
        let mut digits = 0;
        let first_digit = i;
        loop {
            let Some(b) = at(i) else {
                return out_of_input(i);
            };
            match b {
                b'0'..=b'9' => {
                    len = len * 10 + usize::from(b - b'0');
                    if len > MAX_ELEMENT_CODEPOINTS {
                        return RefOutcome::Error(ParseError::ElementTooLong);
                    }
                    digits += 1;
                }
                b'.' => break,
                _ => return RefOutcome::Error(ParseError::InvalidLength { byte: b }),
            }
            i += 1;
        }
        if digits == 0 || (digits > 1 && buf[first_digit] == b'0') {
            canonical = false;
        }
        if elements.len() >= MAX_ELEMENTS {
            return RefOutcome::Error(ParseError::TooManyElements);
        }
        i += 1;
        let start = i;
        // Value: `len` code points, each a non-continuation byte followed by
        // any continuation bytes.
        let mut left = len;
        loop {
            let Some(b) = at(i) else {
                return out_of_input(i);
            };
            let continuation = b & 0xC0 == 0x80;
            if !continuation {
                if left == 0 {
                    break;
                }
                left -= 1;
            }
            i += 1;
        }
        elements.push((start, i));
        let b = buf[i];
        i += 1;
        match b {
            b',' => continue,
            b';' => {
                let Ok(text) = std::str::from_utf8(&buf[..i]) else {
                    return RefOutcome::Error(ParseError::InvalidUtf8);
                };
                if i > limit {
                    return too_long.clone_outcome();
                }
                return RefOutcome::Complete {
                    elements: elements
                        .iter()
                        .map(|&(s, e)| text[s..e].to_owned())
                        .collect(),
                    used: i,
                    canonical,
                };
            }
            _ => return RefOutcome::Error(ParseError::InvalidTerminator { byte: b }),
        }
    }
}

trait CloneOutcome {
    fn clone_outcome(&self) -> RefOutcome;
}
impl CloneOutcome for RefOutcome {
    fn clone_outcome(&self) -> RefOutcome {
        match self {
            RefOutcome::NeedMore => RefOutcome::NeedMore,
            RefOutcome::Error(e) => RefOutcome::Error(e.clone()),
            RefOutcome::Complete {
                elements,
                used,
                canonical,
            } => RefOutcome::Complete {
                elements: elements.clone(),
                used: *used,
                canonical: *canonical,
            },
        }
    }
}

/// The parser's answer in the reference's terms; also checks `raw()` and
/// the re-encoding of the instruction.
fn parser_outcome(parser: &mut Parser, buf: &[u8]) -> RefOutcome {
    match parser.parse(buf) {
        Ok(None) => RefOutcome::NeedMore,
        Err(e) => RefOutcome::Error(e),
        Ok(Some((ins, used))) => {
            assert_eq!(ins.raw().as_bytes(), &buf[..used]);
            assert_eq!(ins.arg_count() + 1, ins.elements().len());
            let elements: Vec<String> = ins.elements().map(str::to_owned).collect();
            let owned = ins.to_owned();
            let mut wire = Vec::new();
            owned.encode(&mut wire);
            let canonical = wire == buf[..used];
            // Whatever the prefixes looked like, the re-encoding parses back.
            let (again, n) = Parser::with_limit(usize::MAX / 2)
                .parse(&wire)
                .map(|r| r.map(|(i, n)| (i.to_owned(), n)))
                .expect("re-encoding parses")
                .expect("re-encoding is complete");
            assert_eq!((again, n), (owned, wire.len()));
            RefOutcome::Complete {
                elements,
                used,
                canonical,
            }
        }
    }
}

/// Feeds `buf` to a fresh parser in the given chunk sizes (growing prefixes,
/// dropping consumed bytes): all instructions, then the final outcome
/// (with the number of unconsumed bytes when it is need-more).
fn feed_chunked(
    limit: usize,
    buf: &[u8],
    cuts: &[usize],
) -> (Vec<Instruction>, Result<(), ParseError>, usize) {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (buf.len() + 1)).collect();
    cuts.push(buf.len());
    cuts.sort_unstable();
    let mut parser = Parser::with_limit(limit);
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut out = Vec::new();
    for cut in cuts {
        pending.extend_from_slice(&buf[fed..cut]);
        fed = cut;
        loop {
            match parser.parse(&pending) {
                Ok(Some((ins, used))) => {
                    out.push(ins.to_owned());
                    pending.drain(..used);
                }
                Ok(None) => break,
                Err(e) => return (out, Err(e), 0),
            }
        }
    }
    (out, Ok(()), pending.len())
}

/// Bytes that look like protocol data: encoded instructions, then mutated.
fn mutated_stream() -> impl Strategy<Value = Vec<u8>> {
    let mutation = (0usize..4, any::<usize>(), any::<u8>());
    (
        proptest::collection::vec(instruction(), 1..4),
        proptest::collection::vec(mutation, 0..4),
    )
        .prop_map(|(list, mutations)| {
            let mut bytes = encode_all(&list);
            for (kind, at, byte) in mutations {
                let at = at % (bytes.len() + 1);
                match kind {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            bytes
        })
}

/// Bytes drawn from the protocol's alphabet, so that short inputs reach
/// deep parser states.
fn protocol_alphabet_bytes() -> impl Strategy<Value = Vec<u8>> {
    let bytes: Vec<u8> = b"0123.,;az"
        .iter()
        .copied()
        .chain([0x80, 0xC3, 0xA1, 0xF0, 0xFF])
        .collect();
    proptest::collection::vec(select(bytes), 0..96)
}

fn arbitrary_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        protocol_alphabet_bytes(),
        mutated_stream(),
    ]
}

/// Mostly guacd's limit, sometimes a tiny one to reach the overflow paths.
fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(MAX_INSTRUCTION_BYTES), 1 => 0usize..64]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// encode ∘ parse is the identity on instructions within guacd's limits.
    #[test]
    fn encode_then_parse_is_identity(ins in instruction()) {
        let mut wire = Vec::new();
        ins.encode(&mut wire);
        prop_assert!(wire.len() <= MAX_INSTRUCTION_BYTES);
        let text = ins.to_wire();
        prop_assert_eq!(wire.as_slice(), text.as_bytes());
        let mut parser = Parser::new();
        let (parsed, used) = parser.parse(&wire).unwrap().unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(parsed.raw().as_bytes(), wire.as_slice());
        prop_assert_eq!(parsed.opcode(), ins.opcode.as_str());
        prop_assert_eq!(parsed.arg_count(), ins.args.len());
        prop_assert_eq!(parsed.to_owned(), ins.clone());
        // Trailing bytes are left alone.
        wire.extend_from_slice(b"4.sync");
        let (again, used2) = parser.parse(&wire).unwrap().unwrap();
        prop_assert_eq!(used2, used);
        prop_assert_eq!(again.to_owned(), ins);
    }

    /// A stream of instructions fed in arbitrary chunks parses to the same sequence.
    #[test]
    fn split_streams_parse_to_the_same_sequence(
        list in proptest::collection::vec(stream_instruction(), 1..24),
        cuts in proptest::collection::vec(any::<usize>(), 0..48),
    ) {
        let wire = encode_all(&list);
        let (parsed, end, left) = feed_chunked(MAX_INSTRUCTION_BYTES, &wire, &cuts);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(left, 0);
        prop_assert_eq!(parsed, list);
    }

    /// Byte-at-a-time feeding: never complete early, same result at the end.
    #[test]
    fn byte_at_a_time(list in proptest::collection::vec(small_instruction(), 1..4)) {
        let wire = encode_all(&list);
        let cuts: Vec<usize> = (0..wire.len()).collect();
        let (parsed, end, left) = feed_chunked(MAX_INSTRUCTION_BYTES, &wire, &cuts);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(left, 0);
        prop_assert_eq!(parsed, list);
    }

    /// Arbitrary bytes: never panics, agrees with the reference parser
    /// (need-more, the same error, or the same instruction and length), and
    /// a complete instruction re-encodes to the consumed bytes exactly when
    /// its length prefixes are canonical.
    #[test]
    fn arbitrary_bytes_agree_with_reference(bytes in arbitrary_input(), limit in limit()) {
        let mut parser = Parser::with_limit(limit);
        let got = parser_outcome(&mut parser, &bytes);
        let want = reference_parse(&bytes, limit);
        prop_assert_eq!(&got, &want, "input {:?}", String::from_utf8_lossy(&bytes));
    }

    /// Arbitrary bytes fed in chunks give the same instructions and the same
    /// final outcome as one buffer.
    #[test]
    fn arbitrary_bytes_chunked_equals_whole(
        bytes in arbitrary_input(),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
        limit in limit(),
    ) {
        let whole = feed_chunked(limit, &bytes, &[]);
        let chunked = feed_chunked(limit, &bytes, &cuts);
        prop_assert_eq!(whole, chunked);
    }

    /// Typed parsing of arbitrary instructions never panics, and whatever
    /// parses re-encodes to a stable wire form.
    #[test]
    fn typed_parse_of_arbitrary_instructions_is_stable(ins in typed_looking_instruction()) {
        let mut wire = Vec::new();
        ins.encode(&mut wire);
        let mut parser = Parser::new();
        let (r, _) = parser.parse(&wire).unwrap().unwrap();
        if let Ok(t) = ServerInstruction::parse(&r) {
            prop_assert_eq!(t.opcode(), r.opcode());
            let mut w1 = Vec::new();
            t.encode(&mut w1);
            let mut p2 = Parser::with_limit(usize::MAX / 2);
            let (r2, _) = p2.parse(&w1).unwrap().unwrap();
            let mut w2 = Vec::new();
            ServerInstruction::parse(&r2).unwrap().encode(&mut w2);
            prop_assert_eq!(w1, w2);
        }
        if let Ok(t) = ClientInstruction::parse(&r) {
            prop_assert_eq!(t.opcode(), r.opcode());
            let mut w1 = Vec::new();
            t.encode(&mut w1);
            let mut p2 = Parser::with_limit(usize::MAX / 2);
            let (r2, _) = p2.parse(&w1).unwrap().unwrap();
            let mut w2 = Vec::new();
            ClientInstruction::parse(&r2).unwrap().encode(&mut w2);
            prop_assert_eq!(w1, w2);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The byte limit is exact: an instruction of `len` bytes parses under a
    /// limit of `len` and fails under `len - 1`, whole or fed in chunks.
    #[test]
    fn byte_limit_is_exact(ins in stream_instruction(), delta in -2isize..=2) {
        let mut wire = Vec::new();
        ins.encode(&mut wire);
        let limit = wire.len().saturating_add_signed(delta);
        let got = parser_outcome(&mut Parser::with_limit(limit), &wire);
        prop_assert_eq!(&got, &reference_parse(&wire, limit));
        if wire.len() <= limit {
            let complete = matches!(got, RefOutcome::Complete { used, .. } if used == wire.len());
            prop_assert!(complete, "{:?}", got);
        } else {
            prop_assert_eq!(got, RefOutcome::Error(ParseError::InstructionTooLong { limit }));
        }
        let cuts: Vec<usize> = (0..wire.len()).step_by(7).collect();
        let (list, end, _) = feed_chunked(limit, &wire, &cuts);
        prop_assert_eq!(end.is_ok(), wire.len() <= limit);
        prop_assert_eq!(list.len(), usize::from(wire.len() <= limit));
    }

    /// At most 128 elements (opcode included), whatever their content.
    #[test]
    fn element_count_limit(
        n in (MAX_ELEMENTS - 3)..(MAX_ELEMENTS + 3),
        arg in string_of(3),
        tail in proptest::collection::vec(any::<u8>(), 0..4),
    ) {
        let ins = Instruction { opcode: "x".into(), args: vec![arg; n - 1] };
        let mut wire = Vec::new();
        ins.encode(&mut wire);
        wire.extend_from_slice(&tail);
        let got = parser_outcome(&mut Parser::new(), &wire);
        prop_assert_eq!(&got, &reference_parse(&wire, MAX_INSTRUCTION_BYTES));
        if n <= MAX_ELEMENTS {
            let complete = matches!(got, RefOutcome::Complete { ref elements, .. } if elements.len() == n);
            prop_assert!(complete, "{:?}", got);
        } else {
            prop_assert_eq!(got, RefOutcome::Error(ParseError::TooManyElements));
        }
    }
}

// ---------------------------------------------------------------------------
// Typed instructions.
// ---------------------------------------------------------------------------

/// Instructions with known opcodes and number-like arguments.
fn typed_looking_instruction() -> impl Strategy<Value = Instruction> {
    let mut ops: Vec<&'static str> = ServerInstruction::OPCODES.to_vec();
    ops.extend_from_slice(ClientInstruction::OPCODES);
    let arg = prop_oneof![
        any::<i32>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        select(vec![
            "", "+1", "-0", "01", "nan", "inf", "-inf", "1e3", "0x10", " 1", "true"
        ])
        .prop_map(str::to_owned),
        string_of(8),
    ];
    (select(ops), proptest::collection::vec(arg, 0..12)).prop_map(|(op, args)| Instruction {
        opcode: op.to_owned(),
        args,
    })
}

/// Owned material from which every typed variant is built.
#[derive(Debug, Clone)]
struct Pool {
    ints: [i32; 9],
    uints: [u32; 2],
    longs: [i64; 2],
    ulong: Option<u64>,
    opt_long: Option<i64>,
    floats: [f64; 6],
    flag: bool,
    strs: [String; 4],
    rest: Vec<String>,
}

fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64 as f;
    prop_oneof![
        (f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO),
        select(vec![
            0.0,
            -0.0,
            0.5,
            0.1,
            1e300,
            -1e-300,
            f64::MAX,
            f64::MIN_POSITIVE
        ]),
    ]
}

fn pool() -> impl Strategy<Value = Pool> {
    (
        proptest::array::uniform9(any::<i32>()),
        proptest::array::uniform2(any::<u32>()),
        proptest::array::uniform2(any::<i64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<i64>()),
        proptest::array::uniform6(finite_f64()),
        any::<bool>(),
        proptest::array::uniform4(string_of(40)),
        proptest::collection::vec(string_of(20), 0..6),
    )
        .prop_map(
            |(ints, uints, longs, ulong, opt_long, floats, flag, strs, rest)| Pool {
                ints,
                uints,
                longs,
                ulong,
                opt_long,
                floats,
                flag,
                strs,
                rest,
            },
        )
}

/// The `i`-th server variant (in `ServerInstruction::OPCODES` order) built from `p`.
fn server_variant(i: usize, p: &Pool) -> ServerInstruction<'_> {
    use ServerInstruction as S;
    let [a, b, c, d, e, f, g, h, k] = p.ints;
    let [s0, s1, s2, s3] = [&*p.strs[0], &*p.strs[1], &*p.strs[2], &*p.strs[3]];
    let rest: Vec<&str> = p.rest.iter().map(String::as_str).collect();
    let [fa, fb, fc, fd, fe, ff] = p.floats;
    match i {
        0 => S::Args {
            version: s0,
            names: rest,
        },
        1 => S::Ready { connection_id: s0 },
        2 => S::Error {
            message: s0,
            status: p.uints[0],
        },
        3 => S::Disconnect {},
        4 => S::Nop {},
        5 => S::Sync {
            timestamp: p.longs[0],
            frames: p.ulong,
        },
        6 => S::Log { message: s0 },
        7 => S::Msg {
            code: p.uints[1],
            args: rest,
        },
        8 => S::Name { name: s0 },
        9 => S::Required { names: rest },
        10 => S::Nest { index: a, data: s0 },
        11 => S::Size {
            layer: a,
            width: b,
            height: c,
        },
        12 => S::Move {
            layer: a,
            parent: b,
            x: c,
            y: d,
            z: e,
        },
        13 => S::Shade { layer: a, alpha: b },
        14 => S::Dispose { layer: a },
        15 => S::Set {
            layer: a,
            property: s0,
            value: s1,
        },
        16 => S::Rect {
            layer: a,
            x: b,
            y: c,
            width: d,
            height: e,
        },
        17 => S::Cfill {
            mask: a,
            layer: b,
            r: c,
            g: d,
            b: e,
            a: f,
        },
        18 => S::Copy {
            src_layer: a,
            src_x: b,
            src_y: c,
            width: d,
            height: e,
            mask: f,
            dst_layer: g,
            dst_x: h,
            dst_y: k,
        },
        19 => S::Transfer {
            src_layer: a,
            src_x: b,
            src_y: c,
            width: d,
            height: e,
            function: f,
            dst_layer: g,
            dst_x: h,
            dst_y: k,
        },
        20 => S::Cursor {
            x: a,
            y: b,
            src_layer: c,
            src_x: d,
            src_y: e,
            width: f,
            height: g,
        },
        21 => S::Mouse {
            x: a,
            y: b,
            mask: c,
            timestamp: p.opt_long,
        },
        22 => S::Arc {
            layer: a,
            x: b,
            y: c,
            radius: d,
            start: fa,
            end: fb,
            negative: p.flag,
        },
        23 => S::Curve {
            layer: a,
            cp1x: b,
            cp1y: c,
            cp2x: d,
            cp2y: e,
            x: f,
            y: g,
        },
        24 => S::Line {
            layer: a,
            x: b,
            y: c,
        },
        25 => S::Start {
            layer: a,
            x: b,
            y: c,
        },
        26 => S::Close { layer: a },
        27 => S::Clip { layer: a },
        28 => S::Cstroke {
            mask: a,
            layer: b,
            cap: c,
            join: d,
            thickness: e,
            r: f,
            g,
            b: h,
            a: k,
        },
        29 => S::Lstroke {
            mask: a,
            layer: b,
            cap: c,
            join: d,
            thickness: e,
            src_layer: f,
        },
        30 => S::Lfill {
            mask: a,
            layer: b,
            src_layer: c,
        },
        31 => S::Identity { layer: a },
        32 => S::Transform {
            layer: a,
            a: fa,
            b: fb,
            c: fc,
            d: fd,
            e: fe,
            f: ff,
        },
        33 => S::Distort {
            layer: a,
            a: fa,
            b: fb,
            c: fc,
            d: fd,
            e: fe,
            f: ff,
        },
        34 => S::Push { layer: a },
        35 => S::Pop { layer: a },
        36 => S::Reset { layer: a },
        37 => S::Img {
            stream: a,
            mask: b,
            layer: c,
            mimetype: s0,
            x: d,
            y: e,
        },
        38 => S::Video {
            stream: a,
            layer: b,
            mimetype: s0,
        },
        39 => S::Audio {
            stream: a,
            mimetype: s0,
        },
        40 => S::Clipboard {
            stream: a,
            mimetype: s0,
        },
        41 => S::File {
            stream: a,
            mimetype: s0,
            filename: s1,
        },
        42 => S::Pipe {
            stream: a,
            mimetype: s0,
            name: s1,
        },
        43 => S::Argv {
            stream: a,
            mimetype: s0,
            name: s1,
        },
        44 => S::Blob {
            stream: a,
            data: s0,
        },
        45 => S::End { stream: a },
        46 => S::Ack {
            stream: a,
            message: s0,
            status: p.uints[0],
        },
        47 => S::Filesystem {
            object: a,
            name: s0,
        },
        48 => S::Body {
            object: a,
            stream: b,
            mimetype: s2,
            name: s3,
        },
        49 => S::Undefine { object: a },
        _ => S::Unknown {
            opcode: "x-unknown",
            args: rest,
        },
    }
}

/// The `i`-th client variant (in `ClientInstruction::OPCODES` order) built from `p`.
fn client_variant(i: usize, p: &Pool) -> ClientInstruction<'_> {
    use ClientInstruction as C;
    let [a, b, c, d, e, ..] = p.ints;
    let [s0, s1, s2, s3] = [&*p.strs[0], &*p.strs[1], &*p.strs[2], &*p.strs[3]];
    let rest: Vec<&str> = p.rest.iter().map(String::as_str).collect();
    match i {
        0 => C::Sync {
            timestamp: p.longs[1],
        },
        1 => C::Nop {},
        2 => C::Disconnect {},
        3 => C::Mouse {
            x: a,
            y: b,
            mask: c,
        },
        4 => C::Key {
            keysym: p.uints[0],
            pressed: p.flag,
        },
        5 => C::Touch {
            id: a,
            x: b,
            y: c,
            x_radius: d,
            y_radius: e,
            angle: p.floats[0],
            force: p.floats[1],
        },
        6 => C::Size {
            width: a,
            height: b,
        },
        7 => C::Clipboard {
            stream: a,
            mimetype: s0,
        },
        8 => C::File {
            stream: a,
            mimetype: s0,
            filename: s1,
        },
        9 => C::Pipe {
            stream: a,
            mimetype: s0,
            name: s1,
        },
        10 => C::Argv {
            stream: a,
            mimetype: s0,
            name: s1,
        },
        11 => C::Audio {
            stream: a,
            mimetype: s0,
        },
        12 => C::Blob {
            stream: a,
            data: s0,
        },
        13 => C::End { stream: a },
        14 => C::Ack {
            stream: a,
            message: s0,
            status: p.uints[1],
        },
        15 => C::Get {
            object: a,
            name: s0,
        },
        16 => C::Put {
            object: a,
            stream: b,
            mimetype: s2,
            name: s3,
        },
        17 => C::Select { id: s0 },
        18 => C::Connect { values: rest },
        19 => C::Image { mimetypes: rest },
        20 => C::Video { mimetypes: rest },
        21 => C::Timezone { timezone: s0 },
        22 => C::Name { name: s0 },
        23 => C::Internal { args: rest },
        _ => C::Unknown {
            opcode: "x-unknown",
            args: rest,
        },
    }
}

fn wire_server(t: &ServerInstruction<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    t.encode(&mut v);
    v
}

fn wire_client(t: &ClientInstruction<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    t.encode(&mut v);
    v
}

#[test]
fn typed_strategies_cover_every_opcode() {
    let p = Pool {
        ints: [0; 9],
        uints: [0; 2],
        longs: [0; 2],
        ulong: None,
        opt_long: None,
        floats: [0.0; 6],
        flag: false,
        strs: Default::default(),
        rest: Vec::new(),
    };
    let server: Vec<&str> = (0..ServerInstruction::OPCODES.len())
        .map(|i| server_variant(i, &p).opcode())
        .collect();
    assert_eq!(server, ServerInstruction::OPCODES);
    let client: Vec<&str> = (0..ClientInstruction::OPCODES.len())
        .map(|i| client_variant(i, &p).opcode())
        .collect();
    assert_eq!(client, ClientInstruction::OPCODES);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every `ServerInstruction` variant (and `Unknown`) round-trips through encode/parse.
    #[test]
    fn server_instructions_round_trip(p in pool()) {
        for i in 0..=ServerInstruction::OPCODES.len() {
            let typed = server_variant(i, &p);
            let wire = wire_server(&typed);
            let mut parser = Parser::new();
            let (ins, used) = parser.parse(&wire).unwrap().unwrap();
            prop_assert_eq!(used, wire.len());
            let back = ServerInstruction::parse(&ins).unwrap();
            prop_assert_eq!(&back, &typed);
            prop_assert_eq!(wire_server(&back), wire);
        }
    }

    /// Every `ClientInstruction` variant (and `Unknown`) round-trips through encode/parse.
    #[test]
    fn client_instructions_round_trip(p in pool()) {
        for i in 0..=ClientInstruction::OPCODES.len() {
            let typed = client_variant(i, &p);
            let wire = wire_client(&typed);
            let mut parser = Parser::new();
            let (ins, used) = parser.parse(&wire).unwrap().unwrap();
            prop_assert_eq!(used, wire.len());
            let back = ClientInstruction::parse(&ins).unwrap();
            prop_assert_eq!(&back, &typed);
            prop_assert_eq!(wire_client(&back), wire);
        }
    }
}

// ---------------------------------------------------------------------------
// Handshake.
// ---------------------------------------------------------------------------

fn handshake_instruction() -> impl Strategy<Value = Instruction> {
    let op = select(vec![
        "select", "size", "audio", "video", "image", "timezone", "name", "connect", "sync", "",
        "bogus",
    ]);
    let arg = prop_oneof![
        select(vec![
            "ssh",
            "$abc",
            "VERSION_1_5_0",
            "VERSION_1_0_0",
            "",
            "1024",
            "768",
            "96",
            "-1",
            "x",
            "4294967296"
        ])
        .prop_map(str::to_owned),
        any::<u32>().prop_map(|v| v.to_string()),
        string_of(6),
    ];
    (op, proptest::collection::vec(arg, 0..5)).prop_map(|(op, args)| Instruction {
        opcode: op.to_owned(),
        args,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// The handshake never panics, whatever arrives in whatever order, and
    /// its outcome is consistent.
    #[test]
    fn handshake_never_panics(
        seq in proptest::collection::vec(handshake_instruction(), 0..16),
        names in proptest::collection::vec("[a-z-]{1,8}", 0..4),
        answer_select in any::<bool>(),
    ) {
        let mut hs = ServerHandshake::new();
        let mut parser = Parser::new();
        let mut completed = false;
        for ins in &seq {
            let mut wire = Vec::new();
            ins.encode(&mut wire);
            let (r, _) = parser.parse(&wire).unwrap().unwrap();
            let result = hs.receive(&r);
            if completed {
                prop_assert!(result.is_err(), "accepted {:?} after completion", ins);
                continue;
            }
            match result {
                Ok(Event::Selected(_)) => {
                    prop_assert_eq!(ins.opcode.as_str(), "select");
                    if answer_select {
                        let mut out = Vec::new();
                        hs.send_args(&names, &mut out);
                        let mut p = Parser::new();
                        let (args, _) = p.parse(&out).unwrap().unwrap();
                        prop_assert_eq!(args.opcode(), "args");
                        prop_assert_eq!(args.arg_count(), names.len() + 1);
                    }
                }
                Ok(Event::Complete(h)) => {
                    prop_assert_eq!(ins.opcode.as_str(), "connect");
                    prop_assert!(hs.is_complete());
                    prop_assert_eq!(&h.names, &names);
                    prop_assert_eq!(h.values.len(), names.len());
                    prop_assert_eq!(h.params().count(), names.len());
                    completed = true;
                }
                Ok(Event::Continue | Event::Ignored(_)) => prop_assert!(!hs.is_complete()),
                Err(e) => {
                    prop_assert!(!hs.is_complete());
                    let _ = (e.to_string(), e.status());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Fixed regressions and edge cases found while writing the properties.
// ---------------------------------------------------------------------------

#[test]
fn reference_parser_agrees_on_edge_cases() {
    let cases: &[&[u8]] = &[
        b"",
        b"4.sync,13.1700000000000;",
        b"3.nop,.;",
        b"03.nop;",
        b"0.;",
        b"1.\xc3\xa1;",
        b"1.\xc3\xa1\xa1;",
        b"1.\xff;",
        b"2.a",
        b"8192.",
        b"8193.",
        b"4.sync,13.17000",
        b";",
        b".;",
        b"1.a,1.b;1.c;",
    ];
    for &c in cases {
        for limit in [0, 1, 2, 3, 5, 7, 8, 9, 10, MAX_INSTRUCTION_BYTES] {
            let got = parser_outcome(&mut Parser::with_limit(limit), c);
            assert_eq!(
                got,
                reference_parse(c, limit),
                "{:?} limit {limit}",
                String::from_utf8_lossy(c)
            );
        }
    }
}
