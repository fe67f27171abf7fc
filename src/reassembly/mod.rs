//! The one TCP reassembler: per-direction ordered byte streams (`stream`) joined into
//! connections (`connection`) that consumers such as http-trace and tap read through the
//! `StreamHandler` trait.

pub mod connection;
pub mod stream;

pub use connection::{CloseReason, Connection, ConnectionInfo, StreamHandler};
pub use stream::{OverlapPolicy, Stream, StreamConfig, StreamSink, StreamStats};
