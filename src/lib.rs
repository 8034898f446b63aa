//! lsp-node: a Lightning Service Provider in one binary.
//!
//! The crate runs its own Lightning node assembled from LDK crates and sells inbound channels
//! to other nodes through LSPS1 (bLIP-51), over Lightning peer messages and over an HTTP mirror.
//!
//! Rooms, one concern each:
//! - [`config`]: TOML + environment + CLI flags, validated once at start.
//! - [`api`]: the operator contract (JSON types, the `OperatorApi` trait) and its API key.
//! - [`node`]: the LDK node: keys, store, chain sync, wallet, peers, events; services plug in
//!   through its traits (`ServiceHook`, `LspsGate`).
//! - [`lsps1`]: the LSPS1 order service: pricing, order book, coupons, protocol guard.
//! - [`http`]: HTTP surfaces: the operator API router and the public LSPS1 mirror.
//! - [`app`]: the composition root: wires all of the above, starts and stops them.
//! - [`devchain`]: a regtest chain speaking the Esplora HTTP API, for tests and sandboxes;
//!   started only by [`app`] (`chain.source = "dev"`) and the binary.
//! - [`cli`]: the operator command line, a client of the operator API.
//! - [`fault_points`]: named crash points, live only in test builds.
//!
//! Layers, lowest first: `config` < `api` < `node` < `lsps1` < `http` < `app`; a room imports
//! only rooms below it. Embedders use [`Builder`] to run the same program inside their own
//! tokio program (`examples/embed.rs`).

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod devchain;
pub mod fault_points;
pub mod http;
pub mod lsps1;
pub mod node;

pub use app::{App, AppError, Builder};
