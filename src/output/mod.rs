//! Record encoders, independent of where the bytes go: each subcommand defines its records
//! once (serde structs) and writes them through one of these — JSON lines, a JSON array
//! streamed element by element (pretty, as NetScope wrote its export), CSV with the header
//! derived from the record, aligned text tables for people, and Zeek's logs (TSV or JSON). No subcommand formats JSON or
//! CSV by hand.

pub mod csv;
mod escape;
mod field_names;
pub mod json;
pub mod records;
pub mod table;
pub mod zeek;

pub use records::{Flush, JsonArray, JsonLines};
