//! The server side of the Guacamole handshake as a sans-IO state machine.
//!
//! ```text
//! C: select,<protocol | $connection-id>
//! S: args,VERSION_1_5_0,<name1>,…          (driver calls `send_args`)
//! C: size / audio / video / image / timezone / name   (any order, repeatable)
//! C: connect,<version>,<v1>,…,<vN>
//! S: ready,<$connection-id>                (driver sends it once the connection exists)
//! ```

use crate::encoder::InstructionWriter;
use crate::instruction::InstructionRef;
use crate::status::Status;
use crate::version::ProtocolVersion;

/// What the client asked for with `select`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// A new connection using this protocol (e.g. `ssh`).
    Protocol(String),
    /// Join the existing connection with this id (starts with `$`).
    Join(String),
}

/// Client capabilities gathered during the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub width: u32,
    pub height: u32,
    pub dpi: u32,
    pub audio_mimetypes: Vec<String>,
    pub video_mimetypes: Vec<String>,
    pub image_mimetypes: Vec<String>,
    pub timezone: Option<String>,
    pub name: Option<String>,
}

impl Default for ClientInfo {
    fn default() -> Self {
        // guacd's defaults (user.c): 1024x768 at 96 DPI.
        ClientInfo {
            width: 1024,
            height: 768,
            dpi: 96,
            audio_mimetypes: Vec::new(),
            video_mimetypes: Vec::new(),
            image_mimetypes: Vec::new(),
            timezone: None,
            name: None,
        }
    }
}

/// The outcome of a complete handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub selection: Selection,
    pub version: ProtocolVersion,
    pub client: ClientInfo,
    /// Argument names, as announced in `args` (version excluded).
    pub names: Vec<String>,
    /// Values from `connect`, by position of `names`.
    pub values: Vec<String>,
}

impl Handshake {
    /// The value of parameter `name`; `None` if not announced or empty.
    pub fn param(&self, name: &str) -> Option<&str> {
        let i = self.names.iter().position(|n| n == name)?;
        self.values
            .get(i)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Parameters as (name, value) pairs, empty values included.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.names
            .iter()
            .zip(self.values.iter())
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// A handshake violation, with the status code guacd-compatible clients expect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("expected \"select\" as the first instruction, got \"{0}\"")]
    ExpectedSelect(String),
    #[error("\"select\" takes exactly one argument, got {0}")]
    BadSelect(usize),
    #[error("\"{opcode}\": {reason}")]
    BadInstruction { opcode: String, reason: String },
    #[error("incorrect number of connection parameters provided: expected {expected}, got {got}")]
    WrongParameterCount { expected: usize, got: usize },
    #[error("instruction \"{0}\" received in the wrong handshake phase")]
    OutOfOrder(String),
}

impl HandshakeError {
    pub fn status(&self) -> Status {
        Status::ClientBadRequest
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    AwaitSelect,
    /// `select` received; the driver must call `send_args`.
    Selected,
    AwaitConnect,
    Done,
}

/// What the driver should do after feeding an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `select` was received: look up the protocol (or connection) and call
    /// [`ServerHandshake::send_args`] with its argument names, or fail.
    Selected(Selection),
    /// Nothing to do yet.
    Continue,
    /// An unknown opcode: guacd logs and ignores it.
    Ignored(String),
    /// `connect` received: the handshake is complete.
    Complete(Box<Handshake>),
}

/// The handshake state machine.
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    phase: Phase,
    selection: Option<Selection>,
    names: Vec<String>,
    client: ClientInfo,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

fn parse_u32(opcode: &str, what: &str, s: Option<&str>) -> Result<u32, HandshakeError> {
    let s = s.ok_or_else(|| HandshakeError::BadInstruction {
        opcode: opcode.into(),
        reason: format!("missing {what}"),
    })?;
    s.parse().map_err(|_| HandshakeError::BadInstruction {
        opcode: opcode.into(),
        reason: format!("invalid {what} {s:?}"),
    })
}

impl ServerHandshake {
    pub fn new() -> Self {
        ServerHandshake {
            phase: Phase::AwaitSelect,
            selection: None,
            names: Vec::new(),
            client: ClientInfo::default(),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Feeds one client instruction.
    pub fn receive(&mut self, ins: &InstructionRef<'_>) -> Result<Event, HandshakeError> {
        let opcode = ins.opcode();
        match self.phase {
            Phase::AwaitSelect => {
                if opcode != "select" {
                    return Err(HandshakeError::ExpectedSelect(opcode.to_owned()));
                }
                if ins.arg_count() != 1 {
                    return Err(HandshakeError::BadSelect(ins.arg_count()));
                }
                let id = ins.arg(0).unwrap_or_default();
                let sel = if id.starts_with('$') {
                    Selection::Join(id.to_owned())
                } else {
                    Selection::Protocol(id.to_owned())
                };
                self.selection = Some(sel.clone());
                self.phase = Phase::Selected;
                Ok(Event::Selected(sel))
            }
            Phase::Selected | Phase::Done => Err(HandshakeError::OutOfOrder(opcode.to_owned())),
            Phase::AwaitConnect => self.receive_capability(ins),
        }
    }

    fn receive_capability(&mut self, ins: &InstructionRef<'_>) -> Result<Event, HandshakeError> {
        let opcode = ins.opcode();
        let list = || ins.args().map(str::to_owned).collect::<Vec<_>>();
        match opcode {
            "size" => {
                self.client.width = parse_u32(opcode, "width", ins.arg(0))?;
                self.client.height = parse_u32(opcode, "height", ins.arg(1))?;
                if let Some(dpi) = ins.arg(2) {
                    self.client.dpi = parse_u32(opcode, "dpi", Some(dpi))?;
                }
            }
            "audio" => self.client.audio_mimetypes = list(),
            "video" => self.client.video_mimetypes = list(),
            "image" => self.client.image_mimetypes = list(),
            "timezone" => self.client.timezone = ins.arg(0).map(str::to_owned),
            "name" => self.client.name = ins.arg(0).map(str::to_owned),
            "connect" => {
                let mut args = ins.args();
                let version = ProtocolVersion::from_wire(args.next().unwrap_or(""));
                let values: Vec<String> = args.map(str::to_owned).collect();
                if values.len() != self.names.len() {
                    return Err(HandshakeError::WrongParameterCount {
                        expected: self.names.len(),
                        got: values.len(),
                    });
                }
                self.phase = Phase::Done;
                let selection = self
                    .selection
                    .clone()
                    .ok_or_else(|| HandshakeError::OutOfOrder("connect".into()))?;
                return Ok(Event::Complete(Box::new(Handshake {
                    selection,
                    version,
                    client: std::mem::take(&mut self.client),
                    names: std::mem::take(&mut self.names),
                    values,
                })));
            }
            "select" => return Err(HandshakeError::OutOfOrder(opcode.to_owned())),
            other => return Ok(Event::Ignored(other.to_owned())),
        }
        Ok(Event::Continue)
    }

    /// Writes `args,VERSION_1_5_0,<names…>` and moves on to await `connect`.
    pub fn send_args<S: AsRef<str>>(&mut self, names: &[S], out: &mut Vec<u8>) {
        let mut w = InstructionWriter::new(out, "args").arg(ProtocolVersion::LATEST.as_str());
        for n in names {
            w = w.arg(n.as_ref());
        }
        w.finish();
        self.names = names.iter().map(|n| n.as_ref().to_owned()).collect();
        self.phase = Phase::AwaitConnect;
    }
}

/// Writes `ready,<id>`.
pub fn write_ready(out: &mut Vec<u8>, connection_id: &str) {
    InstructionWriter::new(out, "ready")
        .arg(connection_id)
        .finish();
}

/// Writes `error,<message>,<status>`.
pub fn write_error(out: &mut Vec<u8>, message: &str, status: Status) {
    InstructionWriter::new(out, "error")
        .arg(message)
        .arg(&status.code())
        .finish();
}

/// The client side of the handshake (used by test clients and load tools).
pub mod client {
    use super::*;

    /// Writes the client's `select`.
    pub fn write_select(out: &mut Vec<u8>, protocol_or_id: &str) {
        InstructionWriter::new(out, "select")
            .arg(protocol_or_id)
            .finish();
    }

    /// Writes `size`, `audio`, `video`, `image`, `timezone`, `name` and `connect`
    /// answering an `args` instruction, filling values by name from `params`.
    pub fn write_connect(
        out: &mut Vec<u8>,
        args: &InstructionRef<'_>,
        info: &ClientInfo,
        params: &[(&str, &str)],
    ) {
        InstructionWriter::new(out, "size")
            .arg(&info.width)
            .arg(&info.height)
            .arg(&info.dpi)
            .finish();
        for (op, list) in [
            ("audio", &info.audio_mimetypes),
            ("video", &info.video_mimetypes),
            ("image", &info.image_mimetypes),
        ] {
            let mut w = InstructionWriter::new(out, op);
            for m in list {
                w = w.arg(m.as_str());
            }
            w.finish();
        }
        if let Some(tz) = &info.timezone {
            InstructionWriter::new(out, "timezone")
                .arg(tz.as_str())
                .finish();
        }
        if let Some(name) = &info.name {
            InstructionWriter::new(out, "name")
                .arg(name.as_str())
                .finish();
        }
        let mut w = InstructionWriter::new(out, "connect").arg(ProtocolVersion::LATEST.as_str());
        for name in args.args().skip(1) {
            let v = params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .unwrap_or("");
            w = w.arg(v);
        }
        w.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Parser;

    fn feed(hs: &mut ServerHandshake, wire: &str) -> Result<Event, HandshakeError> {
        let mut p = Parser::new();
        let (ins, _) = p.parse(wire.as_bytes()).unwrap().unwrap();
        hs.receive(&ins)
    }

    #[test]
    fn full_handshake_any_order() {
        let mut hs = ServerHandshake::new();
        assert_eq!(
            feed(&mut hs, "6.select,3.ssh;").unwrap(),
            Event::Selected(Selection::Protocol("ssh".into()))
        );
        let mut out = Vec::new();
        hs.send_args(&["hostname", "port"], &mut out);
        assert_eq!(out, b"4.args,13.VERSION_1_5_0,8.hostname,4.port;");
        for w in [
            "8.timezone,13.Europe/Berlin;",
            "5.image,9.image/png,10.image/jpeg;",
            "4.size,4.1920,4.1080,3.120;",
            "5.audio;",
            "4.name,5.alice;",
            "7.unknown,1.x;",
        ] {
            assert!(matches!(
                feed(&mut hs, w).unwrap(),
                Event::Continue | Event::Ignored(_)
            ));
        }
        let Event::Complete(h) =
            feed(&mut hs, "7.connect,13.VERSION_1_3_0,9.localhost,0.;").unwrap()
        else {
            panic!("not complete")
        };
        assert_eq!(h.version, ProtocolVersion::V1_3_0);
        assert_eq!(h.param("hostname"), Some("localhost"));
        assert_eq!(h.param("port"), None);
        assert_eq!(
            (h.client.width, h.client.height, h.client.dpi),
            (1920, 1080, 120)
        );
        assert_eq!(h.client.image_mimetypes, ["image/png", "image/jpeg"]);
        assert_eq!(h.client.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(h.client.name.as_deref(), Some("alice"));
    }

    #[test]
    fn join_and_errors() {
        let mut hs = ServerHandshake::new();
        assert_eq!(
            feed(&mut hs, "4.size,3.800,3.600;"),
            Err(HandshakeError::ExpectedSelect("size".into()))
        );
        let mut hs = ServerHandshake::new();
        assert_eq!(
            feed(&mut hs, "6.select;"),
            Err(HandshakeError::BadSelect(0))
        );
        let mut hs = ServerHandshake::new();
        assert_eq!(
            feed(&mut hs, "6.select,5.$abcd;").unwrap(),
            Event::Selected(Selection::Join("$abcd".into()))
        );
        hs.send_args(&["read-only"], &mut Vec::new());
        assert_eq!(
            feed(&mut hs, "7.connect,13.VERSION_1_5_0;"),
            Err(HandshakeError::WrongParameterCount {
                expected: 1,
                got: 0
            })
        );
        let mut hs = ServerHandshake::new();
        feed(&mut hs, "6.select,3.ssh;").unwrap();
        hs.send_args(&["a"], &mut Vec::new());
        assert!(matches!(
            feed(&mut hs, "4.size,1.x,3.600;"),
            Err(HandshakeError::BadInstruction { .. })
        ));
        // Empty version (pyguacamole) is 1.0.0.
        let Ok(Event::Complete(h)) = feed(&mut hs, "7.connect,0.,1.v;") else {
            panic!()
        };
        assert_eq!(h.version, ProtocolVersion::V1_0_0);
    }

    #[test]
    fn client_side_fills_by_name() {
        let mut p = Parser::new();
        let (args, _) = p
            .parse(b"4.args,13.VERSION_1_5_0,8.hostname,4.port,8.password;")
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        client::write_connect(
            &mut out,
            &args,
            &ClientInfo {
                image_mimetypes: vec!["image/png".into()],
                ..Default::default()
            },
            &[("port", "22"), ("hostname", "h")],
        );
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.ends_with("7.connect,13.VERSION_1_5_0,1.h,2.22,0.;"),
            "{s}"
        );
        assert!(s.starts_with("4.size,4.1024,3.768,2.96;"));
    }
}
