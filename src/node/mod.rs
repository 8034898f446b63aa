//! The Lightning node: LDK assembled with our store, wallet and chain source.

pub mod keys;
pub mod store;
pub mod wallet;

/// Builds a [`Node`] from a [`crate::config::Config`].
pub struct Builder {}

/// A running Lightning node.
pub struct Node {}
