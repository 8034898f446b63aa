//! HTTP surfaces of the node: the operator (admin) API, private and behind an API key, and
//! the public LSPS1 mirror (`public`).

pub mod admin;
pub mod metrics;
pub mod public;
