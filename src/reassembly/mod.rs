//! The one TCP reassembler: per-direction ordered byte streams (see `stream`) that consumers
//! such as http-trace and tap read through the `StreamSink` trait.

pub mod stream;

pub use stream::{OverlapPolicy, Stream, StreamConfig, StreamSink, StreamStats};
