use std::fmt;

use crate::encoder::InstructionWriter;

/// A borrowed, zero-copy view of one parsed instruction.
#[derive(Clone, Copy)]
pub struct InstructionRef<'b> {
    text: &'b str,
    elements: &'b [(u32, u32)],
}

impl<'b> InstructionRef<'b> {
    pub(crate) fn new(text: &'b str, elements: &'b [(u32, u32)]) -> Self {
        InstructionRef { text, elements }
    }

    fn element(&self, i: usize) -> Option<&'b str> {
        let &(s, e) = self.elements.get(i)?;
        // Boundaries sit next to ASCII delimiters, so they are char boundaries.
        self.text.get(s as usize..e as usize)
    }

    /// The opcode (first element). Internal tunnel instructions have an empty opcode.
    pub fn opcode(&self) -> &'b str {
        self.element(0).unwrap_or("")
    }

    /// Argument `i` (0-based, opcode excluded).
    pub fn arg(&self, i: usize) -> Option<&'b str> {
        self.element(i + 1)
    }

    /// Number of arguments (opcode excluded).
    pub fn arg_count(&self) -> usize {
        self.elements.len().saturating_sub(1)
    }

    pub fn args(&self) -> impl ExactSizeIterator<Item = &'b str> + 'b {
        let text = self.text;
        self.elements
            .iter()
            .skip(1)
            .map(move |&(s, e)| text.get(s as usize..e as usize).unwrap_or(""))
    }

    /// All elements, opcode first.
    pub fn elements(&self) -> impl ExactSizeIterator<Item = &'b str> + 'b {
        let text = self.text;
        self.elements
            .iter()
            .map(move |&(s, e)| text.get(s as usize..e as usize).unwrap_or(""))
    }

    /// The instruction exactly as received, terminator included.
    pub fn raw(&self) -> &'b str {
        self.text
    }

    pub fn to_owned(&self) -> Instruction {
        Instruction {
            opcode: self.opcode().to_owned(),
            args: self.args().map(str::to_owned).collect(),
        }
    }
}

impl fmt::Debug for InstructionRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.elements()).finish()
    }
}

/// An owned instruction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Instruction {
    pub opcode: String,
    pub args: Vec<String>,
}

impl Instruction {
    pub fn new<S: Into<String>>(
        opcode: impl Into<String>,
        args: impl IntoIterator<Item = S>,
    ) -> Self {
        Instruction {
            opcode: opcode.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = InstructionWriter::new(out, &self.opcode);
        for a in &self.args {
            w = w.arg(a.as_str());
        }
        w.finish();
    }

    pub fn to_wire(&self) -> String {
        let mut v = Vec::new();
        self.encode(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire())
    }
}
