//! The operator command line: subcommands that call the operator API and print the answers.
//!
//! - [`target`]: where the API is and which key to send (from `--config` / `--data-dir`, or
//!   `--admin-url` and `LSP_NODE_API_KEY`).
//! - [`client`]: one HTTP call per contract route.
//! - [`commands`]: the subcommands and their arguments; `render.rs` their readable output
//!   (`--json` prints the answer as it came).
//!
//! The binary (`src/main.rs`) only parses arguments and calls [`commands::run`].

pub mod client;
pub mod commands;
mod customers;
pub mod output;
mod render;
pub mod target;

pub use commands::OperatorCommand;
pub use target::{ApiTarget, TargetArgs};

use crate::api::keys::AdminError;
use crate::config::ConfigError;

/// Why an operator command failed; printed as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "cannot reach the node's operator API at {url}: is `lsp-node run` running, with its \
         operator API on that address? ({detail})"
    )]
    Unreachable { url: String, detail: String },
    /// The node answered with an error; `message` is its sentence.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error(
        "the server at {url} does not answer like lsp-node's operator API ({detail}); check \
         --admin-url or admin.listen"
    )]
    BadResponse { url: String, detail: String },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Key(#[from] AdminError),
    /// The command line itself is wrong or incomplete.
    #[error("{0}")]
    Usage(String),
    /// The call succeeded but reports a failure (e.g. a payment that failed).
    #[error("{0}")]
    Outcome(String),
}

impl CliError {
    /// Exit code: 2 for a wrong command line or configuration, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}
