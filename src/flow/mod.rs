//! Flows: the canonical bidirectional key and the table that keeps one entry per
//! conversation, with idle expiry on packet time and eviction under a cap. TCP connection
//! state and analysis, and the reassembler, build on this (see the flows issue).

pub mod community_id;
pub mod key;
pub mod table;
pub mod tcp;
pub mod uid;
pub mod zeek_conn;

pub use community_id::{CommunityId, CommunityIdHasher};
pub use key::{Endpoint, FlowKey, Side};
pub use table::{DirectionStats, EndReason, Flow, FlowTable, TableConfig};
pub use tcp::{Rtt, TcpDirection, TcpState, TcpTracker};
pub use uid::Uid;
pub use zeek_conn::{ConnSummary, ZeekConn};
