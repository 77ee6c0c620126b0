//! Typed instructions for every opcode of the protocol, in both directions.

use crate::encoder::InstructionWriter;
use crate::instruction::InstructionRef;

/// Why an instruction's arguments do not fit its opcode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("`{opcode}` is missing argument `{field}`")]
    Missing {
        opcode: &'static str,
        field: &'static str,
    },
    #[error("`{opcode}` argument `{field}` is not valid: {value:?}")]
    Invalid {
        opcode: &'static str,
        field: &'static str,
        value: String,
    },
}

/// A typed field of an instruction.
pub trait Field<'a>: Sized {
    /// Parses the field from the argument at its position (`None` if absent).
    fn from_arg(arg: Option<&'a str>) -> Result<Self, Option<&'a str>>;
    fn write<'w>(&self, w: InstructionWriter<'w>) -> InstructionWriter<'w>;
}

impl<'a> Field<'a> for &'a str {
    fn from_arg(arg: Option<&'a str>) -> Result<Self, Option<&'a str>> {
        arg.ok_or(None)
    }
    #[inline]
    fn write<'w>(&self, w: InstructionWriter<'w>) -> InstructionWriter<'w> {
        w.arg(*self)
    }
}

macro_rules! numeric_field {
    ($($t:ty),*) => {$(
        impl<'a> Field<'a> for $t {
            fn from_arg(arg: Option<&'a str>) -> Result<Self, Option<&'a str>> {
                let s = arg.ok_or(None)?;
                s.parse().map_err(|_| Some(s))
            }
            #[inline]
    fn write<'w>(&self, w: InstructionWriter<'w>) -> InstructionWriter<'w> {
                w.arg(self)
            }
        }
    )*};
}
numeric_field!(i32, i64, u32, u64, f64);

impl<'a> Field<'a> for bool {
    /// `1`/`0` on the wire (guacd also accepts any non-zero integer as true).
    fn from_arg(arg: Option<&'a str>) -> Result<Self, Option<&'a str>> {
        let s = arg.ok_or(None)?;
        s.parse::<i64>().map(|v| v != 0).map_err(|_| Some(s))
    }
    #[inline]
    fn write<'w>(&self, w: InstructionWriter<'w>) -> InstructionWriter<'w> {
        w.arg(self)
    }
}

impl<'a, T: Field<'a>> Field<'a> for Option<T> {
    fn from_arg(arg: Option<&'a str>) -> Result<Self, Option<&'a str>> {
        match arg {
            None => Ok(None),
            Some(_) => T::from_arg(arg).map(Some),
        }
    }
    #[inline]
    fn write<'w>(&self, w: InstructionWriter<'w>) -> InstructionWriter<'w> {
        match self {
            Some(v) => v.write(w),
            None => w,
        }
    }
}

macro_rules! instructions {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $op:literal { $($field:ident : $ty:ty),* $(; ..$rest:ident)? }
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name<'a> {
            $(
                $(#[$vmeta])*
                $variant { $($field: $ty,)* $($rest: Vec<&'a str>,)? },
            )*
            /// An opcode this enum does not know; guacd logs and ignores these.
            Unknown { opcode: &'a str, args: Vec<&'a str> },
        }

        impl<'a> $name<'a> {
            /// Every opcode this enum knows.
            pub const OPCODES: &'static [&'static str] = &[$($op),*];

            /// Interprets a parsed instruction. Extra trailing arguments are ignored.
            pub fn parse(ins: &InstructionRef<'a>) -> Result<Self, FieldError> {
                #[allow(unused_mut, unused_variables)]
                let mut it = ins.args();
                match ins.opcode() {
                    $(
                        $op => {
                            $(
                                let $field = <$ty as Field<'a>>::from_arg(it.next()).map_err(|bad| match bad {
                                    None => FieldError::Missing { opcode: $op, field: stringify!($field) },
                                    Some(v) => FieldError::Invalid { opcode: $op, field: stringify!($field), value: v.to_owned() },
                                })?;
                            )*
                            $(let $rest: Vec<&'a str> = it.collect();)?
                            Ok($name::$variant { $($field,)* $($rest,)? })
                        }
                    )*
                    opcode => Ok($name::Unknown { opcode, args: it.collect() }),
                }
            }

            /// The opcode of this instruction.
            pub fn opcode(&self) -> &'a str {
                match self {
                    $($name::$variant { .. } => $op,)*
                    $name::Unknown { opcode, .. } => opcode,
                }
            }

            /// Appends the wire form to `out`.
            pub fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $(
                        #[allow(unused_mut)]
                        $name::$variant { $($field,)* $($rest,)? } => {
                            let mut w = InstructionWriter::new(out, $op);
                            $( w = Field::write($field, w); )*
                            $( for r in $rest { w = w.arg(*r); } )?
                            w.finish();
                        }
                    )*
                    $name::Unknown { opcode, args } => {
                        let mut w = InstructionWriter::new(out, opcode);
                        for a in args { w = w.arg(*a); }
                        w.finish();
                    }
                }
            }
        }
    };
}

instructions! {
    /// Instructions sent by the server (guacd / guacr) to clients.
    pub enum ServerInstruction {
        // Control and handshake.
        Args = "args" { version: &'a str; ..names },
        Ready = "ready" { connection_id: &'a str },
        Error = "error" { message: &'a str, status: u32 },
        Disconnect = "disconnect" {},
        Nop = "nop" {},
        /// `frames` is the guacd 1.6 extension (frame count); absent in 1.5.
        Sync = "sync" { timestamp: i64, frames: Option<u64> },
        Log = "log" { message: &'a str },
        Msg = "msg" { code: u32; ..args },
        Name = "name" { name: &'a str },
        Required = "required" { ; ..names },
        Nest = "nest" { index: i32, data: &'a str },
        // Layers.
        Size = "size" { layer: i32, width: i32, height: i32 },
        Move = "move" { layer: i32, parent: i32, x: i32, y: i32, z: i32 },
        Shade = "shade" { layer: i32, alpha: i32 },
        Dispose = "dispose" { layer: i32 },
        Set = "set" { layer: i32, property: &'a str, value: &'a str },
        // Drawing.
        Rect = "rect" { layer: i32, x: i32, y: i32, width: i32, height: i32 },
        Cfill = "cfill" { mask: i32, layer: i32, r: i32, g: i32, b: i32, a: i32 },
        Copy = "copy" { src_layer: i32, src_x: i32, src_y: i32, width: i32, height: i32, mask: i32, dst_layer: i32, dst_x: i32, dst_y: i32 },
        Transfer = "transfer" { src_layer: i32, src_x: i32, src_y: i32, width: i32, height: i32, function: i32, dst_layer: i32, dst_x: i32, dst_y: i32 },
        Cursor = "cursor" { x: i32, y: i32, src_layer: i32, src_x: i32, src_y: i32, width: i32, height: i32 },
        Mouse = "mouse" { x: i32, y: i32, mask: i32, timestamp: Option<i64> },
        Arc = "arc" { layer: i32, x: i32, y: i32, radius: i32, start: f64, end: f64, negative: bool },
        Curve = "curve" { layer: i32, cp1x: i32, cp1y: i32, cp2x: i32, cp2y: i32, x: i32, y: i32 },
        Line = "line" { layer: i32, x: i32, y: i32 },
        Start = "start" { layer: i32, x: i32, y: i32 },
        Close = "close" { layer: i32 },
        Clip = "clip" { layer: i32 },
        Cstroke = "cstroke" { mask: i32, layer: i32, cap: i32, join: i32, thickness: i32, r: i32, g: i32, b: i32, a: i32 },
        Lstroke = "lstroke" { mask: i32, layer: i32, cap: i32, join: i32, thickness: i32, src_layer: i32 },
        Lfill = "lfill" { mask: i32, layer: i32, src_layer: i32 },
        Identity = "identity" { layer: i32 },
        Transform = "transform" { layer: i32, a: f64, b: f64, c: f64, d: f64, e: f64, f: f64 },
        Distort = "distort" { layer: i32, a: f64, b: f64, c: f64, d: f64, e: f64, f: f64 },
        Push = "push" { layer: i32 },
        Pop = "pop" { layer: i32 },
        Reset = "reset" { layer: i32 },
        // Streams and objects.
        Img = "img" { stream: i32, mask: i32, layer: i32, mimetype: &'a str, x: i32, y: i32 },
        Video = "video" { stream: i32, layer: i32, mimetype: &'a str },
        Audio = "audio" { stream: i32, mimetype: &'a str },
        Clipboard = "clipboard" { stream: i32, mimetype: &'a str },
        File = "file" { stream: i32, mimetype: &'a str, filename: &'a str },
        Pipe = "pipe" { stream: i32, mimetype: &'a str, name: &'a str },
        Argv = "argv" { stream: i32, mimetype: &'a str, name: &'a str },
        Blob = "blob" { stream: i32, data: &'a str },
        End = "end" { stream: i32 },
        Ack = "ack" { stream: i32, message: &'a str, status: u32 },
        Filesystem = "filesystem" { object: i32, name: &'a str },
        Body = "body" { object: i32, stream: i32, mimetype: &'a str, name: &'a str },
        Undefine = "undefine" { object: i32 },
    }
}

instructions! {
    /// Instructions sent by clients to the server, after the handshake
    /// (handshake instructions are handled by [`crate::handshake`]).
    pub enum ClientInstruction {
        Sync = "sync" { timestamp: i64 },
        Nop = "nop" {},
        Disconnect = "disconnect" {},
        Mouse = "mouse" { x: i32, y: i32, mask: i32 },
        Key = "key" { keysym: u32, pressed: bool },
        Touch = "touch" { id: i32, x: i32, y: i32, x_radius: i32, y_radius: i32, angle: f64, force: f64 },
        Size = "size" { width: i32, height: i32 },
        Clipboard = "clipboard" { stream: i32, mimetype: &'a str },
        File = "file" { stream: i32, mimetype: &'a str, filename: &'a str },
        Pipe = "pipe" { stream: i32, mimetype: &'a str, name: &'a str },
        Argv = "argv" { stream: i32, mimetype: &'a str, name: &'a str },
        Audio = "audio" { stream: i32, mimetype: &'a str },
        Blob = "blob" { stream: i32, data: &'a str },
        End = "end" { stream: i32 },
        Ack = "ack" { stream: i32, message: &'a str, status: u32 },
        Get = "get" { object: i32, name: &'a str },
        Put = "put" { object: i32, stream: i32, mimetype: &'a str, name: &'a str },
        // Handshake instructions, also valid (and ignored or applied) later.
        Select = "select" { id: &'a str },
        Connect = "connect" { ; ..values },
        Image = "image" { ; ..mimetypes },
        Video = "video" { ; ..mimetypes },
        Timezone = "timezone" { timezone: &'a str },
        Name = "name" { name: &'a str },
        /// Internal tunnel instruction (empty opcode), e.g. `0.,4.ping,13.1700000000000;`.
        Internal = "" { ; ..args },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Parser;

    fn roundtrip_server(wire: &str) {
        let mut p = Parser::new();
        let (ins, used) = p.parse(wire.as_bytes()).unwrap().unwrap();
        assert_eq!(used, wire.len());
        let typed = ServerInstruction::parse(&ins).unwrap();
        assert!(
            !matches!(typed, ServerInstruction::Unknown { .. }),
            "{wire}"
        );
        let mut out = Vec::new();
        typed.encode(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), wire);
    }

    #[test]
    fn server_instructions_roundtrip() {
        for w in [
            "4.args,13.VERSION_1_5_0,8.hostname,4.port;",
            "5.ready,37.$260d01da-779b-4ee9-afc1-c16bae885cc7;",
            "5.error,18.Permission denied.,3.769;",
            "10.disconnect;",
            "3.nop;",
            "4.sync,13.1700000000000;",
            "4.sync,4.1234,1.3;",
            "3.msg,1.1,5.@abcd,5.alice;",
            "8.required,8.password;",
            "4.copy,2.-1,2.70,1.0,1.7,2.15,2.12,1.0,3.700,3.105;",
            "5.cfill,2.14,1.0,3.255,1.0,1.0,3.255;",
            "3.img,1.1,2.14,1.0,9.image/png,2.10,2.20;",
            "4.blob,1.1,8.SEVMTE8=;",
            "3.arc,1.0,2.10,2.10,1.5,1.0,4.3.14,1.1;",
            "5.mouse,1.1,1.2,1.0,4.1234;",
        ] {
            roundtrip_server(w);
        }
    }

    #[test]
    fn client_instructions_parse() {
        let mut p = Parser::new();
        let (ins, _) = p.parse(b"3.key,5.65307,1.1;").unwrap().unwrap();
        assert_eq!(
            ClientInstruction::parse(&ins).unwrap(),
            ClientInstruction::Key {
                keysym: 65307,
                pressed: true
            }
        );
        let (ins, _) = p.parse(b"5.mouse,2.10,1.x,1.0;").unwrap().unwrap();
        assert_eq!(
            ClientInstruction::parse(&ins),
            Err(FieldError::Invalid {
                opcode: "mouse",
                field: "y",
                value: "x".into()
            })
        );
        let (ins, _) = p.parse(b"4.size,3.800;").unwrap().unwrap();
        assert_eq!(
            ClientInstruction::parse(&ins),
            Err(FieldError::Missing {
                opcode: "size",
                field: "height"
            })
        );
        let (ins, _) = p.parse(b"0.,4.ping,3.123;").unwrap().unwrap();
        assert_eq!(
            ClientInstruction::parse(&ins).unwrap(),
            ClientInstruction::Internal {
                args: vec!["ping", "123"]
            }
        );
        let (ins, _) = p.parse(b"5.bogus,1.a;").unwrap().unwrap();
        assert_eq!(ClientInstruction::parse(&ins).unwrap().opcode(), "bogus");
    }
}
