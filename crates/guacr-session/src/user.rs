//! Per-user input handling: liveness bookkeeping, stream reassembly, read-only filtering.

use std::collections::HashMap;
use std::sync::Arc;

use guacr_protocol::{ClientInstruction, InstructionRef, InstructionWriter, Status, base64};

use crate::{Input, Session, UserInfo};

/// Limit on one reassembled clipboard or argv stream (guacd: 256 KiB).
pub const MAX_STREAM_BYTES: usize = 262_144;
/// Stream indices a user may use (guacd: 64 per user).
pub const MAX_STREAMS: i32 = 64;

#[derive(Debug)]
enum InboundStream {
    Clipboard { mimetype: String, data: Vec<u8> },
    Argv { name: String, data: Vec<u8> },
}

/// What the connection should do after an instruction.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// The user sent `disconnect`.
    Disconnect,
}

/// Input state of one user of a session.
pub struct UserInput {
    user: Arc<UserInfo>,
    session: Arc<Session>,
    streams: HashMap<i32, InboundStream>,
    /// Parameter names that may be changed at runtime through `argv`.
    mutable_params: &'static [&'static str],
    disable_paste: bool,
    max_stream_bytes: usize,
}

impl UserInput {
    pub fn new(
        user: Arc<UserInfo>,
        session: Arc<Session>,
        mutable_params: &'static [&'static str],
        disable_paste: bool,
    ) -> Self {
        UserInput {
            user,
            session,
            streams: HashMap::new(),
            mutable_params,
            disable_paste,
            max_stream_bytes: MAX_STREAM_BYTES,
        }
    }

    /// Overrides the largest clipboard/argv stream accepted (default 256 KiB).
    pub fn with_max_stream_bytes(mut self, max: usize) -> Self {
        self.max_stream_bytes = max;
        self
    }

    fn reply(&self, buf: &[u8]) {
        self.session.send_to(&self.user.id, buf);
    }

    fn ack(&self, stream: i32, message: &str, status: Status) {
        let mut buf = Vec::new();
        InstructionWriter::new(&mut buf, "ack")
            .arg(&stream)
            .arg(message)
            .arg(&status.code())
            .finish();
        self.reply(&buf);
    }

    /// Handles one instruction received after the handshake.
    pub fn handle(&mut self, ins: &InstructionRef<'_>) -> Outcome {
        let typed = match ClientInstruction::parse(ins) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(user = %self.user.id, "ignoring malformed instruction: {e}");
                return Outcome::Continue;
            }
        };
        let writable = !self.user.read_only;
        match typed {
            ClientInstruction::Sync { timestamp } => {
                if !self.session.ack(&self.user.id, timestamp) {
                    tracing::debug!(user = %self.user.id, timestamp, "sync echo newer than any frame sent");
                }
            }
            ClientInstruction::Disconnect {} => return Outcome::Disconnect,
            ClientInstruction::Nop {} => {}
            ClientInstruction::Key { keysym, pressed } if writable => {
                self.session
                    .input(&self.user, Input::Key { keysym, pressed });
            }
            ClientInstruction::Mouse { x, y, mask } if writable => {
                self.session.input(&self.user, Input::Mouse { x, y, mask });
            }
            ClientInstruction::Size { width, height } if writable => {
                if width > 0 && height > 0 {
                    self.session.input(
                        &self.user,
                        Input::Size {
                            width: width as u32,
                            height: height as u32,
                        },
                    );
                }
            }
            ClientInstruction::Clipboard { stream, mimetype } => {
                if !writable || self.disable_paste {
                    self.ack(stream, "Clipboard is read-only.", Status::ClientForbidden);
                } else if self.open(stream) {
                    self.streams.insert(
                        stream,
                        InboundStream::Clipboard {
                            mimetype: mimetype.to_owned(),
                            data: Vec::new(),
                        },
                    );
                    self.ack(stream, "OK", Status::Success);
                }
            }
            ClientInstruction::Argv {
                stream,
                mimetype: _,
                name,
            } => {
                if !writable || !self.mutable_params.contains(&name) {
                    self.ack(
                        stream,
                        "Parameter cannot be changed.",
                        Status::ClientForbidden,
                    );
                } else if self.open(stream) {
                    self.streams.insert(
                        stream,
                        InboundStream::Argv {
                            name: name.to_owned(),
                            data: Vec::new(),
                        },
                    );
                    self.ack(stream, "OK", Status::Success);
                }
            }
            ClientInstruction::File { stream, .. }
            | ClientInstruction::Pipe { stream, .. }
            | ClientInstruction::Audio { stream, .. } => {
                self.ack(stream, "Stream type not supported.", Status::Unsupported);
            }
            ClientInstruction::Blob { stream, data } => {
                let Some(s) = self.streams.get_mut(&stream) else {
                    self.ack(stream, "Invalid stream index.", Status::ClientBadRequest);
                    return Outcome::Continue;
                };
                let buf = match s {
                    InboundStream::Clipboard { data, .. } | InboundStream::Argv { data, .. } => {
                        data
                    }
                };
                let decoded = base64::decode_lenient(data.as_bytes());
                if buf.len() + decoded.len() > self.max_stream_bytes {
                    self.streams.remove(&stream);
                    self.ack(stream, "Stream too large.", Status::ClientOverrun);
                    return Outcome::Continue;
                }
                buf.extend_from_slice(&decoded);
                self.ack(stream, "OK", Status::Success);
            }
            ClientInstruction::End { stream } => match self.streams.remove(&stream) {
                Some(InboundStream::Clipboard { mimetype, data }) => {
                    self.session
                        .input(&self.user, Input::Clipboard { mimetype, data });
                }
                Some(InboundStream::Argv { name, data }) => {
                    let value = String::from_utf8_lossy(&data).into_owned();
                    self.session.input(&self.user, Input::Argv { name, value });
                }
                None => {}
            },
            ClientInstruction::Unknown { opcode, .. } => {
                tracing::debug!(user = %self.user.id, opcode, "ignoring unknown instruction");
            }
            // Read-only users' input, handshake leftovers and internal opcodes are ignored.
            ClientInstruction::Key { .. }
            | ClientInstruction::Mouse { .. }
            | ClientInstruction::Size { .. }
            | ClientInstruction::Select { .. }
            | ClientInstruction::Connect { .. }
            | ClientInstruction::Image { .. }
            | ClientInstruction::Video { .. }
            | ClientInstruction::Timezone { .. }
            | ClientInstruction::Name { .. }
            | ClientInstruction::Internal { .. } => {}
            other @ (ClientInstruction::Touch { .. }
            | ClientInstruction::Ack { .. }
            | ClientInstruction::Get { .. }
            | ClientInstruction::Put { .. }) => {
                if writable {
                    let owned = guacr_protocol::Instruction::new(
                        other.opcode(),
                        ins.args().map(str::to_owned).collect::<Vec<_>>(),
                    );
                    self.session.input(&self.user, Input::Other(owned));
                }
            }
        }
        Outcome::Continue
    }

    fn open(&mut self, stream: i32) -> bool {
        if !(0..MAX_STREAMS).contains(&stream) {
            self.ack(stream, "Invalid stream index.", Status::ClientBadRequest);
            return false;
        }
        true
    }
}
