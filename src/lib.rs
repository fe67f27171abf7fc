//! gophercap: an offline-first pcap toolkit. Data flows one way — source → packet → decode →
//! flow table → reassembly → consumer → sink — and every subcommand is a thin wiring of these
//! modules (see `cmd`).

pub mod analysis;
pub mod catalog;
pub mod cmd;
pub mod decode;
pub mod flow;
pub mod k8s;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod proto;
pub mod reassembly;
pub mod schedule;
pub mod server;
pub mod shard;
pub mod sink;
pub mod source;
pub mod sys;
#[cfg(test)]
mod testing;
pub mod time;
