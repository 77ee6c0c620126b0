use crate::instruction::InstructionRef;

/// Maximum length of one element, in Unicode code points (guacd's `GUAC_INSTRUCTION_MAX_LENGTH`).
pub const MAX_ELEMENT_CODEPOINTS: usize = 8192;
/// Maximum number of elements in one instruction, opcode included (`GUAC_INSTRUCTION_MAX_ELEMENTS`).
pub const MAX_ELEMENTS: usize = 128;
/// Maximum size of one instruction in bytes (guacd's parser buffer).
pub const MAX_INSTRUCTION_BYTES: usize = 32768;

/// Why a byte stream is not a valid Guacamole instruction stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid byte {byte:#04x} in element length")]
    InvalidLength { byte: u8 },
    #[error("element longer than {MAX_ELEMENT_CODEPOINTS} code points")]
    ElementTooLong,
    #[error("instruction has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("invalid byte {byte:#04x} after element (expected ',' or ';')")]
    InvalidTerminator { byte: u8 },
    #[error("instruction is not valid UTF-8")]
    InvalidUtf8,
    #[error("instruction longer than {limit} bytes")]
    InstructionTooLong { limit: usize },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading the decimal length of the next element.
    Length { len: usize, digits: usize },
    /// Reading an element value: `remaining` code points still to start.
    Value { remaining: usize },
}

/// A resumable streaming parser.
///
/// Feed it the bytes received so far (starting at the first byte of the
/// instruction being parsed); it remembers how far it got, so growing the
/// buffer and calling [`Parser::parse`] again costs only the new bytes.
/// After a complete instruction, consume `consumed` bytes from the front of
/// the buffer before the next call.
#[derive(Debug, Clone)]
pub struct Parser {
    state: State,
    pos: usize,
    elements: Vec<(u32, u32)>,
    max_instruction_bytes: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    pub fn new() -> Self {
        Self::with_limit(MAX_INSTRUCTION_BYTES)
    }

    /// A parser that accepts instructions of up to `max_instruction_bytes` bytes.
    pub fn with_limit(max_instruction_bytes: usize) -> Self {
        Parser {
            state: State::Length { len: 0, digits: 0 },
            pos: 0,
            elements: Vec::with_capacity(16),
            max_instruction_bytes,
        }
    }

    /// Forgets any partially parsed instruction.
    pub fn reset(&mut self) {
        self.state = State::Length { len: 0, digits: 0 };
        self.pos = 0;
        self.elements.clear();
    }

    /// Parses the instruction at the start of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed, or the instruction and the
    /// number of bytes it occupies. After an error the parser must be [`reset`](Self::reset)
    /// (and the stream is usually unusable: guacd closes the connection).
    pub fn parse<'b>(
        &'b mut self,
        buf: &'b [u8],
    ) -> Result<Option<(InstructionRef<'b>, usize)>, ParseError> {
        if self.pos == 0 {
            // A fresh instruction: any partial progress would have moved `pos`.
            self.elements.clear();
            self.state = State::Length { len: 0, digits: 0 };
        }
        let end = buf.len().min(self.max_instruction_bytes.saturating_add(1));
        let mut pos = self.pos;
        let mut state = self.state;
        let result = loop {
            if pos >= end {
                if end < buf.len() || pos > self.max_instruction_bytes {
                    break Err(ParseError::InstructionTooLong {
                        limit: self.max_instruction_bytes,
                    });
                }
                break Ok(false);
            }
            match state {
                State::Length { len, digits } => {
                    let byte = buf[pos];
                    match byte {
                        b'0'..=b'9' => {
                            let len = len * 10 + usize::from(byte - b'0');
                            if len > MAX_ELEMENT_CODEPOINTS {
                                break Err(ParseError::ElementTooLong);
                            }
                            state = State::Length {
                                len,
                                digits: digits + 1,
                            };
                        }
                        b'.' => {
                            if self.elements.len() >= MAX_ELEMENTS {
                                break Err(ParseError::TooManyElements);
                            }
                            // Start offset recorded now; end filled in at the terminator.
                            let start = (pos + 1) as u32;
                            self.elements.push((start, start));
                            state = State::Value { remaining: len };
                        }
                        _ => break Err(ParseError::InvalidLength { byte }),
                    }
                    pos += 1;
                }
                State::Value { remaining } if remaining > 0 => {
                    // At most `remaining` bytes can hold `remaining` code-point starts.
                    let stop = end.min(pos.saturating_add(remaining));
                    let chunk = &buf[pos..stop];
                    let starts = if chunk.is_ascii() {
                        chunk.len()
                    } else {
                        chunk.iter().filter(|&&b| !is_continuation(b)).count()
                    };
                    pos = stop;
                    state = State::Value {
                        remaining: remaining - starts,
                    };
                }
                State::Value { .. } => {
                    let byte = buf[pos];
                    if is_continuation(byte) {
                        pos += 1;
                        continue;
                    }
                    if let Some(last) = self.elements.last_mut() {
                        last.1 = pos as u32;
                    }
                    pos += 1;
                    match byte {
                        b',' => state = State::Length { len: 0, digits: 0 },
                        b';' => break Ok(true),
                        _ => break Err(ParseError::InvalidTerminator { byte }),
                    }
                }
            }
        };
        match result {
            Ok(false) => {
                self.pos = pos;
                self.state = state;
                Ok(None)
            }
            Ok(true) => {
                self.pos = 0;
                self.state = State::Length { len: 0, digits: 0 };
                let text = std::str::from_utf8(&buf[..pos]).map_err(|_| {
                    self.elements.clear();
                    ParseError::InvalidUtf8
                })?;
                if pos > self.max_instruction_bytes {
                    return Err(ParseError::InstructionTooLong {
                        limit: self.max_instruction_bytes,
                    });
                }
                // Elements are cleared on the next call (see the check at the top).
                Ok(Some((InstructionRef::new(text, &self.elements), pos)))
            }
            Err(e) => {
                self.pos = pos;
                self.state = state;
                Err(e)
            }
        }
    }
}

#[inline]
fn is_continuation(b: u8) -> bool {
    (b & 0xC0) == 0x80
}

/// Parses every complete instruction in `buf` into owned instructions.
/// Returns them and the number of bytes they occupy (trailing partial data is left).
pub fn parse_all(buf: &[u8]) -> Result<(Vec<crate::Instruction>, usize), ParseError> {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        match parser.parse(&buf[offset..])? {
            Some((ins, used)) => {
                out.push(ins.to_owned());
                offset += used;
            }
            None => return Ok((out, offset)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "\u{72ac}\u{10b00}z\u{e1}";

    fn elements(buf: &[u8]) -> Result<Option<(Vec<String>, usize)>, ParseError> {
        let mut p = Parser::new();
        Ok(p.parse(buf)?
            .map(|(ins, used)| (ins.elements().map(str::to_owned).collect(), used)))
    }

    #[test]
    fn guacd_vector_simple_with_trailing_bytes() {
        let buf = b"4.test,8.testdata,5.zxcvb,13.guacamoletest;XXXXXXXXXXXXXXXXXX";
        let (els, used) = elements(buf).unwrap().unwrap();
        assert_eq!(els, ["test", "testdata", "zxcvb", "guacamoletest"]);
        assert_eq!(&buf[used..], b"XXXXXXXXXXXXXXXXXX");
    }

    #[test]
    fn guacd_vector_unicode_two_instructions() {
        assert_eq!(U.chars().count(), 4);
        assert_eq!(U.len(), 10);
        let s =
            format!("4.test,6.a{U}b,5.12345,10.a{U}{U}c;5.test2,10.hellohello,15.worldworldworld;");
        let mut p = Parser::new();
        let (ins, used) = p.parse(s.as_bytes()).unwrap().unwrap();
        assert_eq!(ins.opcode(), "test");
        let args: Vec<&str> = ins.args().collect();
        assert_eq!(
            args,
            [format!("a{U}b"), "12345".into(), format!("a{U}{U}c")]
        );
        let rest = &s.as_bytes()[used..];
        let (ins, used2) = p.parse(rest).unwrap().unwrap();
        assert_eq!(ins.opcode(), "test2");
        assert_eq!(
            ins.args().collect::<Vec<_>>(),
            ["hellohello", "worldworldworld"]
        );
        assert_eq!(used + used2, s.len());
    }

    #[test]
    fn byte_by_byte_feeding_is_resumable() {
        let s = format!("4.test,6.a{U}b,5.12345,10.a{U}{U}c;");
        let bytes = s.as_bytes();
        let mut p = Parser::new();
        for n in 0..bytes.len() {
            assert!(
                p.parse(&bytes[..n]).unwrap().is_none(),
                "complete early at {n}"
            );
        }
        let (ins, used) = p.parse(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(ins.arg(1), Some("12345"));
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            elements(b"4.test,x.y;"),
            Err(ParseError::InvalidLength { byte: b'x' })
        );
        assert_eq!(
            elements(b"4.test:"),
            Err(ParseError::InvalidTerminator { byte: b':' })
        );
        assert_eq!(elements(b"8193.a"), Err(ParseError::ElementTooLong));
        assert_eq!(elements(b"1.\xff;"), Err(ParseError::InvalidUtf8));
        let many = "1.a,".repeat(128) + "1.a;";
        assert_eq!(elements(many.as_bytes()), Err(ParseError::TooManyElements));
        let ok = "1.a,".repeat(127) + "1.a;";
        assert_eq!(elements(ok.as_bytes()).unwrap().unwrap().0.len(), 128);
    }

    #[test]
    fn element_of_exactly_8192_code_points_is_accepted() {
        let s = format!("4.blob,8192.{};", "\u{e1}".repeat(8192));
        let mut p = Parser::with_limit(1 << 20);
        let (ins, _) = p.parse(s.as_bytes()).unwrap().unwrap();
        assert_eq!(ins.arg(0).map(|a| a.chars().count()), Some(8192));
    }

    #[test]
    fn instruction_byte_limit() {
        let s = format!("4.blob,8192.{};", "\u{10b00}".repeat(8192));
        let mut p = Parser::new();
        assert_eq!(
            p.parse(&s.as_bytes()[..s.len() - 1]).err(),
            Some(ParseError::InstructionTooLong {
                limit: MAX_INSTRUCTION_BYTES
            })
        );
    }

    #[test]
    fn empty_length_is_an_empty_element_like_guacd() {
        let (els, _) = elements(b"3.nop,.;").unwrap().unwrap();
        assert_eq!(els, ["nop", ""]);
        let (els, _) = elements(b"0.,4.ping;").unwrap().unwrap();
        assert_eq!(els, ["", "ping"]);
    }

    #[test]
    fn parse_all_leaves_partial_tail() {
        let (all, used) = parse_all(b"3.nop;4.sync,3.123;4.syn").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(used, 19);
        assert_eq!(all[1].args, ["123"]);
    }
}
