//! HTTP surfaces of the node: the operator (admin) API, private and behind an API key.
//! The public LSPS1 mirror will live here too.

pub mod admin;
pub mod operator;
