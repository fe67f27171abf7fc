//! Application parsers over reassembled TCP streams. They implement the reassembler's
//! `StreamHandler` and know nothing about packets; subcommands turn their typed events into
//! output.

pub mod http;
