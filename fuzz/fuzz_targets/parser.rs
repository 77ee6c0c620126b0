//! The streaming parser over arbitrary bytes.
//!
//! Input layout: byte 0 picks the parser's byte limit, byte 1 seeds the
//! split points for resumable feeding, the rest is the stream.
//!
//! Checks, for every input:
//! * parsing never panics;
//! * feeding the stream in random chunks (growing the buffer, dropping the
//!   consumed bytes after each instruction) yields exactly the same
//!   instructions and the same final outcome (error or need-more) as parsing
//!   it in one buffer;
//! * `raw()` is the consumed bytes; re-encoding a parsed instruction parses
//!   back to the same instruction, and equals the consumed bytes when their
//!   length prefixes are canonical;
//! * typed parsing (`ServerInstruction`, `ClientInstruction`) never panics and
//!   a typed value re-encodes to a stable wire form;
//! * the server handshake state machine never panics on the instructions.
#![no_main]

use guacr_protocol::handshake::{Event, ServerHandshake};
use guacr_protocol::{
    ClientInstruction, Instruction, InstructionRef, ParseError, Parser, ServerInstruction,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum End {
    NeedMore,
    Error(ParseError),
}

/// One-shot parsing: every complete instruction (with its consumed bytes) and how it ended.
fn parse_whole(limit: usize, data: &[u8]) -> (Vec<(Instruction, usize)>, End) {
    let mut parser = Parser::with_limit(limit);
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        match parser.parse(&data[offset..]) {
            Ok(Some((ins, used))) => {
                assert!(used > 0 && offset + used <= data.len());
                assert_eq!(ins.raw().as_bytes(), &data[offset..offset + used]);
                check_instruction(&ins);
                out.push((ins.to_owned(), used));
                offset += used;
            }
            Ok(None) => return (out, End::NeedMore),
            Err(e) => return (out, End::Error(e)),
        }
    }
}

/// Resumable parsing: the buffer grows by pseudo-random chunks.
fn parse_chunked(limit: usize, data: &[u8], mut seed: u32) -> (Vec<(Instruction, usize)>, End) {
    let mut parser = Parser::with_limit(limit);
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    loop {
        // xorshift32; seed is never zero.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let chunk = match seed % 4 {
            0 => 1,
            1 => (seed >> 8) as usize % 8,
            2 => (seed >> 8) as usize % 64,
            _ => (seed >> 8) as usize % 1024,
        };
        let take = chunk.min(data.len() - fed);
        buf.extend_from_slice(&data[fed..fed + take]);
        fed += take;
        loop {
            match parser.parse(&buf) {
                Ok(Some((ins, used))) => {
                    out.push((ins.to_owned(), used));
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(e) => return (out, End::Error(e)),
            }
        }
        if fed == data.len() {
            return (out, End::NeedMore);
        }
    }
}

/// Whether every length prefix of a parsed instruction is canonical
/// (non-empty, no leading zero), i.e. the encoder would produce these bytes.
fn canonical(raw: &[u8], ins: &InstructionRef<'_>) -> bool {
    let mut p = 0;
    for el in ins.elements() {
        let digits = raw[p..].iter().position(|&b| b == b'.').unwrap_or(0);
        if digits == 0 || (digits > 1 && raw[p] == b'0') {
            return false;
        }
        p += digits + 1 + el.len() + 1;
    }
    p == raw.len()
}

fn check_instruction(ins: &InstructionRef<'_>) {
    assert_eq!(ins.arg_count() + 1, ins.elements().len());
    let owned = ins.to_owned();
    let mut wire = Vec::new();
    owned.encode(&mut wire);
    if canonical(ins.raw().as_bytes(), ins) {
        assert_eq!(wire, ins.raw().as_bytes());
    }
    let mut p = Parser::with_limit(usize::MAX / 2);
    let (again, used) = p
        .parse(&wire)
        .expect("re-encoding parses")
        .expect("complete");
    assert_eq!(used, wire.len());
    assert_eq!(again.to_owned(), owned);

    if let Ok(typed) = ServerInstruction::parse(ins) {
        assert_eq!(typed.opcode(), ins.opcode());
        stable_server(&typed);
    }
    if let Ok(typed) = ClientInstruction::parse(ins) {
        assert_eq!(typed.opcode(), ins.opcode());
        stable_client(&typed);
    }
}

/// encode(t) parses back to a typed value that encodes identically.
fn stable_server(t: &ServerInstruction<'_>) {
    let mut w1 = Vec::new();
    t.encode(&mut w1);
    let mut p = Parser::with_limit(usize::MAX / 2);
    let (ins, _) = p
        .parse(&w1)
        .expect("typed encoding parses")
        .expect("complete");
    let t2 = ServerInstruction::parse(&ins).expect("typed encoding re-parses");
    let mut w2 = Vec::new();
    t2.encode(&mut w2);
    assert_eq!(w1, w2);
}

fn stable_client(t: &ClientInstruction<'_>) {
    let mut w1 = Vec::new();
    t.encode(&mut w1);
    let mut p = Parser::with_limit(usize::MAX / 2);
    let (ins, _) = p
        .parse(&w1)
        .expect("typed encoding parses")
        .expect("complete");
    let t2 = ClientInstruction::parse(&ins).expect("typed encoding re-parses");
    let mut w2 = Vec::new();
    t2.encode(&mut w2);
    assert_eq!(w1, w2);
}

fn handshake(instructions: &[(Instruction, usize)], names_from: u8) {
    let mut hs = ServerHandshake::new();
    let mut p = Parser::new();
    let mut wire = Vec::new();
    for (ins, _) in instructions {
        wire.clear();
        ins.encode(&mut wire);
        let Ok(Some((r, _))) = p.parse(&wire) else {
            p.reset();
            continue;
        };
        match hs.receive(&r) {
            Ok(Event::Selected(_)) => {
                // Announce some names, their count taken from the input.
                let names: Vec<String> = (0..names_from % 5).map(|i| format!("param{i}")).collect();
                let mut out = Vec::new();
                hs.send_args(&names, &mut out);
                assert!(out.starts_with(b"4.args,"));
            }
            Ok(Event::Complete(h)) => {
                assert!(hs.is_complete());
                assert_eq!(h.values.len(), h.names.len());
                let _ = h.params().count();
            }
            Ok(Event::Continue | Event::Ignored(_)) | Err(_) => {}
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let (ctrl, data) = match input {
        [a, b, rest @ ..] => ((*a, *b), rest),
        _ => return,
    };
    // Mostly guacd's limit, sometimes tiny limits to exercise the overflow path.
    let limit = if ctrl.0 & 1 == 0 {
        guacr_protocol::MAX_INSTRUCTION_BYTES
    } else {
        usize::from(ctrl.0 >> 1)
    };
    let whole = parse_whole(limit, data);
    let chunked = parse_chunked(limit, data, u32::from(ctrl.1) | 0x100);
    assert_eq!(whole, chunked);
    if let (_, End::Error(e)) = &whole {
        let _ = e.to_string();
    }
    handshake(&whole.0, ctrl.1);
});
