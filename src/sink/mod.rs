//! Where results go. Each sink takes plain data and knows nothing of the consumer feeding it.

pub mod capture;
pub mod extract;
#[cfg(feature = "live")]
pub mod interface;
pub mod table;
