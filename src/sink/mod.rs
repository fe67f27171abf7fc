//! Where results go. Each sink takes plain data and knows nothing of the consumer feeding it.

pub mod capture;
pub mod extract;
pub mod table;
