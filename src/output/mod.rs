//! Record encoders, independent of where the bytes go: each subcommand defines its records
//! once (serde structs) and writes them through one of these — JSON lines, a JSON array
//! streamed element by element (pretty, as NetScope wrote its export), CSV with the header
//! derived from the record, aligned text tables for people, and Zeek's logs (TSV or JSON). No subcommand formats JSON or
//! CSV by hand.

/// Serializer methods that refuse what a writer cannot take: each returns `Err($error)`.
/// Shared by the writers that accept only some shapes of value (CSV's header, Zeek's fields).
macro_rules! refuse {
    ($error_type:ty, $error:expr; $($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, $error_type> {
            Err($error)
        })*
    };
}

pub mod csv;
mod escape;
mod field_names;
pub mod json;
pub mod records;
pub mod table;
pub mod zeek;

pub use records::{Flush, JsonArray, JsonLines};
