//! Merkle inclusion proofs in the two forms Esplora serves.
//!
//! - [`merkle_branch`]: Electrum-style branch (`/tx/:txid/merkle-proof`): the sibling hashes from
//!   the leaf level up to just below the root, "deepest pairing first".
//! - [`merkle_block`]: a BIP37 partial merkle tree (`/tx/:txid/merkleblock-proof`), built by the
//!   `bitcoin` crate's own [`MerkleBlock`] so its encoding is Core's.

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Block, MerkleBlock, Txid};

/// Sibling hashes proving that the transaction at `pos` is part of `txids`' merkle root.
///
/// Bitcoin duplicates the last hash of a level with an odd count; the sibling of such a last
/// node is the node itself, exactly as Core and electrs compute it.
pub fn merkle_branch(txids: &[Txid], mut pos: usize) -> Vec<Txid> {
    let mut level: Vec<sha256d::Hash> = txids.iter().map(|txid| txid.to_raw_hash()).collect();
    let mut branch = Vec::new();
    while level.len() > 1 {
        let sibling = if pos % 2 == 0 {
            level.get(pos + 1).unwrap_or(&level[pos])
        } else {
            &level[pos - 1]
        };
        branch.push(Txid::from_raw_hash(*sibling));
        level = level
            .chunks(2)
            .map(|pair| {
                let left = pair[0];
                let right = pair.get(1).copied().unwrap_or(left);
                let mut engine = sha256d::Hash::engine();
                bitcoin::hashes::HashEngine::input(&mut engine, left.as_byte_array());
                bitcoin::hashes::HashEngine::input(&mut engine, right.as_byte_array());
                sha256d::Hash::from_engine(engine)
            })
            .collect();
        pos /= 2;
    }
    branch
}

/// Recomputes the merkle root from a leaf, its position and its branch (the verifier's side).
#[cfg(test)]
pub fn root_from_branch(txid: Txid, mut pos: usize, branch: &[Txid]) -> sha256d::Hash {
    let mut current = txid.to_raw_hash();
    for sibling in branch {
        let sibling = sibling.to_raw_hash();
        let (left, right) = if pos % 2 == 0 {
            (current, sibling)
        } else {
            (sibling, current)
        };
        let mut engine = sha256d::Hash::engine();
        bitcoin::hashes::HashEngine::input(&mut engine, left.as_byte_array());
        bitcoin::hashes::HashEngine::input(&mut engine, right.as_byte_array());
        current = sha256d::Hash::from_engine(engine);
        pos /= 2;
    }
    current
}

/// A BIP37 merkle block matching exactly one transaction of `block`.
pub fn merkle_block(block: &Block, txid: &Txid) -> MerkleBlock {
    MerkleBlock::from_block_with_predicate(block, |candidate| candidate == txid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txids(count: u8) -> Vec<Txid> {
        (0..count).map(|i| Txid::hash(&[i])).collect()
    }

    #[test]
    fn branch_reproduces_the_root_for_every_position_and_size() {
        for count in 1..=9u8 {
            let ids = txids(count);
            let root = bitcoin::merkle_tree::calculate_root(ids.iter().map(|t| t.to_raw_hash()))
                .expect("non-empty");
            for pos in 0..ids.len() {
                let branch = merkle_branch(&ids, pos);
                assert_eq!(
                    root_from_branch(ids[pos], pos, &branch),
                    root,
                    "count {count} pos {pos}"
                );
            }
        }
    }

    #[test]
    fn single_transaction_has_empty_branch() {
        assert!(merkle_branch(&txids(1), 0).is_empty());
    }
}
