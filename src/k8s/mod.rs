//! gophercap in Kubernetes: the sidecar injector's decisions (which pods, what container, what
//! patch) and its answers to the API server's admission reviews. The HTTPS server is
//! `server`'s; the subcommand only wires them.

pub mod admission;
pub mod annotations;
pub mod certs;
pub mod inject;
pub mod sizing;

#[cfg(test)]
mod tests;
