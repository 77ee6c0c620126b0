//! The session core shared by every listener (TCP 4822 today, WebSocket later)
//! and every protocol handler.
//!
//! * [`Session`] — one live connection to a remote desktop or shell: its users
//!   (owner first, then joiners), the broadcast of drawing output to all of
//!   them, per-user output, frame boundaries (`sync`) and lag tracking.
//! * [`Protocol`] — what every handler (SSH, Telnet, …) implements.
//! * [`Registry`] — live sessions by connection id, for `select,$id` joins.
//! * [`user`] — per-user input: stream reassembly (clipboard, argv), read-only
//!   filtering, typed [`Input`] events for the handler.

mod params;
mod registry;
pub mod schema;
mod session;
pub mod user;
pub mod video;

pub use params::{ParamError, Params};
pub use registry::Registry;
pub use schema::{ParamKind, ParamSpec};
pub use session::{
    FrameTiming, HandlerEvent, Input, Protocol, ProtocolFuture, Session, SessionContext,
    SessionError, SessionEvents, SessionTap, UserInfo, UserOutput, now_millis,
};
pub use video::{VideoFeed, VideoFrame};
