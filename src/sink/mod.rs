//! Where results go. Each sink takes plain data and knows nothing of the consumer feeding it.

pub mod capture;
pub mod control;
pub mod extract;
pub mod file;
pub mod forward;
#[cfg(feature = "live")]
pub mod interface;
#[cfg(all(feature = "live", target_os = "linux"))]
pub mod packet_socket;
pub mod post;
pub mod recorder;
