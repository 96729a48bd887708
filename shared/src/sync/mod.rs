//! The sync protocol core, sans-IO: frames, set summaries, scopes and the session state machines.
//!
//! Drivers (the node's QUIC client, the hub's QUIC server, the simulator) move frames and call into
//! [`session`]; storage is reached through the [`session::Replica`] trait. Nothing here reads a socket, a
//! clock or a random source.

pub mod frame;
pub mod memory;
pub mod scope;
pub mod session;
pub mod summary;

pub use frame::{FrameDecoder, FrameError, Msg};
pub use session::{
    ClientSession, Outgoing, Replica, ServerSession, SessionError, SessionStats, MAX_OUTGOING_HINTS,
};
