//! Which chain the chain source serves, checked before the node follows it.
//!
//! - [`check_genesis`]: the source's genesis block must be our network's, at start and before
//!   every sync (a URL can be repointed while the node runs).
//! - [`check_continuity`]: the source's chain must still hold the node's best block, or fork
//!   from the node's blocks at most [`MAX_REORG_DEPTH`] blocks below it (a reorg, which the
//!   sync then follows). A chain that shares less with ours is another chain (a test chain
//!   that was reset, a misconfigured server): following it would unconfirm every payment and
//!   channel the node knows of, so the sync stops instead.
//! - [`fetch_tip`]: where a fresh node starts its Lightning state.

use bitcoin::{BlockHash, Network};

use super::error::{ChainError, ESPLORA_TIMEOUT};
use crate::api::error_chain;

/// The deepest reorg the node follows. Deeper divergence means the source serves another chain.
pub const MAX_REORG_DEPTH: u32 = 100;

/// Checks that the chain source at `base_url` serves `network`'s chain (its genesis block).
pub async fn check_genesis(
    http: &reqwest::Client,
    base_url: &str,
    network: Network,
) -> Result<(), ChainError> {
    let found = fetch_block_hash(http, base_url, 0)
        .await?
        .ok_or_else(|| bad_answer(base_url, "it has no genesis block".to_string()))?;
    let expected = bitcoin::constants::genesis_block(network).block_hash();
    if found == expected {
        Ok(())
    } else {
        Err(ChainError::WrongChain {
            url: base_url.to_string(),
            network,
            expected,
            found,
        })
    }
}

/// Where the node's known chain and the source's agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// The source's chain holds the node's best block.
    Extends,
    /// The source replaced the node's blocks above `fork_height` (a reorg of `depth` blocks).
    Reorg { fork_height: u32, depth: u32 },
}

/// Checks the source's chain against `known`: blocks the node has seen, `(height, hash)`,
/// highest first, the node's best block leading. The highest one the source still has at its
/// height is where the chains agree; it must be within [`MAX_REORG_DEPTH`] of the best block.
pub async fn check_continuity(
    http: &reqwest::Client,
    base_url: &str,
    known: &[(u32, BlockHash)],
) -> Result<Continuity, ChainError> {
    let Some(&(best_height, best_hash)) = known.first() else {
        return Ok(Continuity::Extends);
    };
    for &(height, hash) in known {
        let depth = best_height - height;
        if depth > MAX_REORG_DEPTH {
            break;
        }
        // A source behind us (a lagging server) lacks our top heights: look further down.
        if fetch_block_hash(http, base_url, height).await? == Some(hash) {
            return Ok(if depth == 0 {
                Continuity::Extends
            } else {
                Continuity::Reorg {
                    fork_height: height,
                    depth,
                }
            });
        }
    }
    Err(ChainError::ForeignChain {
        url: base_url.to_string(),
        height: best_height,
        hash: best_hash,
        max_depth: MAX_REORG_DEPTH,
    })
}

/// The chain tip as Esplora reports it; a fresh node starts its Lightning state there.
pub async fn fetch_tip(
    http: &reqwest::Client,
    base_url: &str,
) -> Result<(u32, BlockHash), ChainError> {
    let height: u32 = fetch_text(http, base_url, "blocks/tip/height")
        .await?
        .ok_or_else(|| bad_answer(base_url, "it has no tip".to_string()))?
        .parse()
        .map_err(|e: std::num::ParseIntError| bad_answer(base_url, format!("tip height: {e}")))?;
    let hash = fetch_block_hash(http, base_url, height)
        .await?
        .ok_or_else(|| bad_answer(base_url, format!("it has no block at its tip {height}")))?;
    Ok((height, hash))
}

/// The hash of the source's best-chain block at `height`, or None if its chain is shorter.
async fn fetch_block_hash(
    http: &reqwest::Client,
    base_url: &str,
    height: u32,
) -> Result<Option<BlockHash>, ChainError> {
    fetch_text(http, base_url, &format!("block-height/{height}"))
        .await?
        .map(|text| {
            text.parse()
                .map_err(|e| bad_answer(base_url, format!("block hash at height {height}: {e}")))
        })
        .transpose()
}

/// `GET {base_url}/{path}` as trimmed text; None for 404.
/// GET `path` of the source as trimmed text; `None` when it answers 404.
pub(crate) async fn fetch_text(
    http: &reqwest::Client,
    base_url: &str,
    path: &str,
) -> Result<Option<String>, ChainError> {
    let response = http
        .get(format!("{base_url}/{path}"))
        .timeout(ESPLORA_TIMEOUT)
        .send()
        .await
        .map_err(|e| ChainError::Unreachable {
            url: base_url.to_string(),
            reason: error_chain(&e),
        })?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let text = response
        .error_for_status()
        .map_err(|e| bad_answer(base_url, e.to_string()))?
        .text()
        .await
        .map_err(|e| bad_answer(base_url, e.to_string()))?;
    Ok(Some(text.trim().to_string()))
}

fn bad_answer(base_url: &str, reason: String) -> ChainError {
    ChainError::BadAnswer {
        url: base_url.to_string(),
        reason,
    }
}
