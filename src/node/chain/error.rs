//! What goes wrong talking to the chain source, and how long one request may take.

use std::time::Duration;

use bitcoin::{BlockHash, Network};

/// How long one Esplora HTTP request may take before it counts as failed.
pub(crate) const ESPLORA_TIMEOUT: Duration = Duration::from_secs(15);

/// Why talking to the chain source failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("the chain source at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the chain source at {url} answered something unexpected: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("syncing the on-chain wallet failed: {0}")]
    Wallet(String),
    #[error("syncing the Lightning state with the chain failed: {0}")]
    Lightning(String),
    #[error(
        "the chain source at {url} serves another chain: its genesis block is {found}, but {network} starts at {expected}; point chain.esplora_url at a {network} server"
    )]
    WrongChain {
        url: String,
        network: Network,
        expected: BlockHash,
        found: BlockHash,
    },
    #[error(
        "the chain source at {url} no longer holds this node's blocks: its chain leaves the node's best block (height {height}, {hash}) more than {max_depth} blocks deep, so it serves another chain; point the node at the chain it has been following, or start it with a new data directory"
    )]
    ForeignChain {
        url: String,
        height: u32,
        hash: BlockHash,
        max_depth: u32,
    },
}

impl ChainError {
    /// True when retrying cannot help: the configuration names the wrong chain.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            ChainError::WrongChain { .. } | ChainError::ForeignChain { .. }
        )
    }
}
