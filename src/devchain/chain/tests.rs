//! Unit tests of the chain core: headers, merkle roots, validation, reorgs and indexes.

use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Target, Transaction, TxIn, TxOut, WPubkeyHash, Witness,
};

use super::*;
use crate::devchain::merkle::{merkle_block, merkle_branch, root_from_branch};

const NOW: u32 = 1_700_000_000;

fn script(name: &str) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::hash(name.as_bytes()))
}

/// An unsigned spend (scripts are not validated) of `inputs` to `outputs`.
fn spend(inputs: &[OutPoint], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: inputs
            .iter()
            .map(|outpoint| TxIn {
                previous_output: *outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_LOCKTIME_NO_RBF,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    }
}

fn pay(name: &str, sats: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: script(name),
    }
}

/// Funds `name` with `sats` and returns the outpoint paying it (mempool).
fn funded(chain: &mut ChainState, name: &str, sats: u64) -> OutPoint {
    let txid = chain
        .fund(script(name), Amount::from_sat(sats))
        .expect("faucet pays");
    let (tx, _) = chain.transaction(&txid).unwrap();
    let vout = tx
        .output
        .iter()
        .position(|o| o.script_pubkey == script(name))
        .unwrap();
    OutPoint {
        txid,
        vout: vout as u32,
    }
}

#[test]
fn header_chain_pow_merkle_roots_and_times_verify() {
    let mut chain = ChainState::new(NOW);
    funded(&mut chain, "alice", 100_000);
    chain.mine(3, NOW);
    let (tip_height, _) = chain.tip();
    assert_eq!(tip_height, PREMINE_BLOCKS + 3);

    let genesis = genesis_block(Network::Regtest);
    assert_eq!(chain.block_hash_at(0), Some(genesis.block_hash()));
    let mut previous: Option<&BlockEntry> = None;
    for height in 0..=tip_height {
        let entry = chain.block(&chain.block_hash_at(height).unwrap()).unwrap();
        let block = &entry.block;
        assert_eq!(entry.height, height);
        assert!(block.check_merkle_root(), "merkle root of block {height}");
        assert!(
            block.check_witness_commitment(),
            "witness commitment of block {height}"
        );
        let target = Target::from_compact(block.header.bits);
        assert_eq!(
            block.header.validate_pow(target).unwrap(),
            block.block_hash()
        );
        if let Some(previous) = previous {
            assert_eq!(block.header.prev_blockhash, previous.block.block_hash());
            assert!(
                block.header.time > previous.block.header.time,
                "time increases at {height}"
            );
            assert!(block.header.time > previous.median_time_past);
            assert!(block.txdata[0].is_coinbase());
            if height > 16 {
                assert_eq!(block.bip34_block_height().unwrap(), u64::from(height));
            }
        }
        previous = Some(entry);
    }
    // The block that confirmed the faucet payment carries SegWit data and its commitment.
    let funding_block = &chain
        .block(&chain.block_hash_at(PREMINE_BLOCKS + 1).unwrap())
        .unwrap()
        .block;
    assert_eq!(funding_block.txdata.len(), 2);
    assert!(!funding_block.txdata[1].input[0].witness.is_empty());
    assert_eq!(
        funding_block.txdata[0].output.len(),
        2,
        "coinbase carries the commitment"
    );
}

#[test]
fn merkle_proofs_of_a_block_verify() {
    let mut chain = ChainState::new(NOW);
    let txids: Vec<Txid> = (0..5)
        .map(|i| funded(&mut chain, &format!("user{i}"), 10_000).txid)
        .collect();
    let hash = chain.mine(1, NOW)[0];
    let entry = chain.block(&hash).unwrap();
    for txid in &txids {
        let Some((_, TxPosition::Confirmed { pos, .. })) = chain.transaction(txid) else {
            panic!("confirmed");
        };
        let branch = merkle_branch(&entry.txids, pos);
        assert_eq!(
            root_from_branch(*txid, pos, &branch),
            entry.block.header.merkle_root.to_raw_hash()
        );
        let proof = merkle_block(&entry.block, txid);
        let (mut matches, mut indexes) = (Vec::new(), Vec::new());
        let root = proof
            .txn
            .extract_matches(&mut matches, &mut indexes)
            .unwrap();
        assert_eq!(root, entry.block.header.merkle_root);
        assert_eq!((matches, indexes), (vec![*txid], vec![pos as u32]));
    }
}

#[test]
fn double_spend_against_mempool_and_chain_is_rejected() {
    let mut chain = ChainState::new(NOW);
    let coin = funded(&mut chain, "alice", 100_000);
    let first = spend(&[coin], vec![pay("bob", 90_000)]);
    // Pays less than the transaction it conflicts with: not a valid replacement.
    let second = spend(&[coin], vec![pay("carol", 95_000)]);
    assert!(
        matches!(chain.accept(first.clone()), Ok(Accepted::New { fee }) if fee.to_sat() == 10_000)
    );
    let refused = chain.accept(second.clone()).unwrap_err();
    assert!(refused.reason.starts_with("insufficient fee"), "{refused}");
    assert!(chain.mempool_txids().contains(&first.compute_txid()));
    assert!(!chain.mempool_txids().contains(&second.compute_txid()));

    chain.mine(1, NOW);
    assert_eq!(chain.confirmations(&first.compute_txid()), Some(1));
    assert_eq!(chain.accept(second), Err(Rejection::missing_or_spent()));
    assert_eq!(chain.accept(first), Err(Rejection::already_in_chain()));
}

#[test]
fn a_replacement_paying_more_evicts_the_original_and_its_descendants() {
    let mut chain = ChainState::new(NOW);
    let coin = funded(&mut chain, "alice", 100_000);
    let original = spend(&[coin], vec![pay("bob", 99_000)]);
    let child = spend(
        &[OutPoint::new(original.compute_txid(), 0)],
        vec![pay("carol", 98_000)],
    );
    chain.accept(original.clone()).unwrap();
    chain.accept(child.clone()).unwrap();

    // Higher fee rate and more than original + child (2 000) + its own size at 1 sat/vB.
    let replacement = spend(&[coin], vec![pay("bob", 97_000)]);
    assert!(matches!(
        chain.accept(replacement.clone()),
        Ok(Accepted::New { fee }) if fee.to_sat() == 3_000
    ));
    let mempool = chain.mempool_txids();
    assert!(mempool.contains(&replacement.compute_txid()));
    assert!(
        !mempool.contains(&original.compute_txid()) && !mempool.contains(&child.compute_txid())
    );
    assert!(chain.transaction(&original.compute_txid()).is_none());
    assert!(chain.transaction(&child.compute_txid()).is_none());
    assert_eq!(
        chain.spender(&coin).map(|s| s.txid),
        Some(replacement.compute_txid())
    );
    assert!(chain
        .spender(&OutPoint::new(original.compute_txid(), 0))
        .is_none());

    chain.mine(1, NOW);
    assert_eq!(chain.confirmations(&replacement.compute_txid()), Some(1));
    assert_eq!(chain.confirmations(&original.compute_txid()), None);
    assert!(chain.mempool_txids().is_empty());
}

#[test]
fn replacements_breaking_bip125_rules_are_refused_and_change_nothing() {
    let mut chain = ChainState::new(NOW);
    let coin = funded(&mut chain, "alice", 100_000);
    let other = funded(&mut chain, "dave", 50_000);
    let original = spend(&[coin], vec![pay("bob", 90_000)]);
    chain.accept(original.clone()).unwrap();
    let unrelated = spend(&[other], vec![pay("erin", 49_000)]);
    chain.accept(unrelated.clone()).unwrap();
    let before = chain.mempool_txids();

    // Same fee rate (same size, same fee): refused.
    let same_rate = spend(&[coin], vec![pay("carol", 90_000)]);
    let refused = chain.accept(same_rate).unwrap_err();
    assert!(refused.reason.contains("new feerate"), "{refused}");
    // Adds an unconfirmed input the original did not spend from.
    let adds_unconfirmed = spend(
        &[coin, OutPoint::new(unrelated.compute_txid(), 0)],
        vec![pay("bob", 100_000)],
    );
    let refused = chain.accept(adds_unconfirmed).unwrap_err();
    assert!(
        refused.reason.starts_with("replacement-adds-unconfirmed"),
        "{refused}"
    );
    // Not enough on top of the evicted fee to pay its own relay.
    let barely_more = spend(&[coin], vec![pay("bob", 89_990)]);
    let refused = chain.accept(barely_more).unwrap_err();
    assert!(
        refused.reason.contains("not enough additional fees"),
        "{refused}"
    );
    assert_eq!(chain.mempool_txids(), before, "nothing evicted");
    assert_eq!(
        chain.spender(&coin).map(|s| s.txid),
        Some(original.compute_txid())
    );

    // A higher fee rate but a lower absolute fee: a large original (three outputs) replaced
    // by a small transaction paying 10 sat less.
    let third = funded(&mut chain, "frank", 100_000);
    let large = spend(
        &[third],
        vec![pay("bob", 30_000), pay("bob", 30_000), pay("bob", 30_000)],
    );
    chain.accept(large.clone()).unwrap();
    let small = spend(&[third], vec![pay("bob", 90_010)]);
    assert!(small.vsize() < large.vsize());
    let refused = chain.accept(small).unwrap_err();
    assert!(
        refused.reason.contains("less fees than conflicting txs"),
        "{refused}"
    );
    assert!(chain.mempool_txids().contains(&large.compute_txid()));
}

#[test]
fn rebroadcast_of_a_mempool_transaction_changes_nothing() {
    let mut chain = ChainState::new(NOW);
    let coin = funded(&mut chain, "alice", 100_000);
    let tx = spend(&[coin], vec![pay("bob", 90_000)]);
    chain.accept(tx.clone()).unwrap();
    let before = chain.mempool_txids();
    assert_eq!(chain.accept(tx), Ok(Accepted::AlreadyInMempool));
    assert_eq!(chain.mempool_txids(), before);
}

#[test]
fn invalid_transactions_are_rejected_and_change_nothing() {
    let mut chain = ChainState::new(NOW);
    let coin = funded(&mut chain, "alice", 100_000);
    let mempool_before = chain.mempool_txids();

    let overspend = spend(&[coin], vec![pay("bob", 100_001)]);
    let err = chain.accept(overspend).unwrap_err();
    assert!(err.reason.starts_with("bad-txns-in-belowout"), "{err}");

    let unknown = OutPoint {
        txid: Txid::hash(b"nothing"),
        vout: 0,
    };
    assert_eq!(
        chain.accept(spend(&[unknown], vec![pay("bob", 1)])),
        Err(Rejection::missing_or_spent())
    );
    let missing_vout = OutPoint { vout: 7, ..coin };
    assert_eq!(
        chain.accept(spend(&[missing_vout], vec![pay("bob", 1)])),
        Err(Rejection::missing_or_spent())
    );
    assert_eq!(
        chain.accept(spend(&[coin, coin], vec![pay("bob", 1)])),
        Err(Rejection::duplicate_inputs())
    );
    assert_eq!(
        chain.accept(spend(&[], vec![pay("bob", 1)])),
        Err(Rejection::no_inputs())
    );
    assert_eq!(
        chain.accept(spend(&[coin], vec![])),
        Err(Rejection::no_outputs())
    );

    let mut future_locktime = spend(&[coin], vec![pay("bob", 1)]);
    // As in Core, the locktime must be below the height of the block that would include it.
    future_locktime.lock_time = absolute::LockTime::from_height(chain.tip().0 + 1).unwrap();
    assert_eq!(
        chain.accept(future_locktime.clone()),
        Err(Rejection::non_final())
    );
    // The tip height (what wallets set against fee sniping) is final for the next block.
    future_locktime.lock_time = absolute::LockTime::from_height(chain.tip().0).unwrap();
    assert!(chain.accept(future_locktime.clone()).is_ok());
    assert_eq!(chain.mempool_txids().len(), mempool_before.len() + 1);
}

#[test]
fn relative_locktimes_follow_bip68() {
    let mut chain = ChainState::new(NOW);
    let coin = funded(&mut chain, "alice", 100_000);
    chain.mine(1, NOW);
    let mut tx = spend(&[coin], vec![pay("bob", 90_000)]);
    tx.input[0].sequence = Sequence::from_height(3);
    // The coin sits in block h; a 3-block relative lock allows inclusion from block h + 3.
    assert_eq!(chain.accept(tx.clone()), Err(Rejection::non_bip68_final()));
    chain.mine(1, NOW);
    assert_eq!(chain.accept(tx.clone()), Err(Rejection::non_bip68_final()));
    chain.mine(1, NOW);
    assert!(chain.accept(tx).is_ok(), "the next block is h + 3");
}

#[test]
fn coinbase_spends_need_maturity() {
    let mut chain = ChainState::new(NOW);
    let (tip_height, tip_hash) = chain.tip();
    let coinbase = chain.block(&tip_hash).unwrap().txids[0];
    let tx = spend(
        &[OutPoint {
            txid: coinbase,
            vout: 0,
        }],
        vec![pay("bob", 1_000)],
    );
    assert_eq!(
        chain.accept(tx.clone()),
        Err(Rejection::premature_coinbase_spend(1))
    );
    chain.mine(COINBASE_MATURITY - 2, NOW);
    assert_eq!(chain.tip().0, tip_height + COINBASE_MATURITY - 2);
    assert_eq!(
        chain.accept(tx.clone()),
        Err(Rejection::premature_coinbase_spend(COINBASE_MATURITY - 1))
    );
    chain.mine(1, NOW);
    assert!(chain.accept(tx).is_ok());
}

#[test]
fn reorg_returns_transactions_to_the_mempool() {
    let mut chain = ChainState::new(NOW);
    let coin = funded(&mut chain, "alice", 100_000);
    let child = spend(&[coin], vec![pay("bob", 90_000)]);
    chain.accept(child.clone()).unwrap();
    let stale_hash = chain.mine(1, NOW)[0];
    chain.mine(1, NOW);
    assert_eq!(chain.confirmations(&coin.txid), Some(2));
    assert!(chain.mempool_txids().is_empty());

    let dropped = chain.invalidate(2).unwrap();
    assert!(dropped.is_empty());
    assert_eq!(chain.tip().0, PREMINE_BLOCKS);
    assert_eq!(
        chain.mempool_txids(),
        vec![coin.txid, child.compute_txid()],
        "parents before children"
    );
    assert_eq!(chain.confirmations(&child.compute_txid()), Some(0));
    let stale = chain.block(&stale_hash).unwrap();
    assert!(!stale.in_best_chain);
    assert_eq!(chain.next_best(stale), None);
    assert_eq!(
        chain.spender(&coin).map(|s| s.txid),
        Some(child.compute_txid())
    );

    let new_hash = chain.mine(1, NOW)[0];
    assert_ne!(new_hash, stale_hash, "the replacement block differs");
    assert_eq!(chain.confirmations(&child.compute_txid()), Some(1));
    let Some((_, TxPosition::Confirmed { block_hash, .. })) =
        chain.transaction(&child.compute_txid())
    else {
        panic!("confirmed again");
    };
    assert_eq!(block_hash, new_hash);
}

#[test]
fn reorg_drops_spends_of_vanished_coinbases() {
    let mut chain = ChainState::new(NOW);
    let coinbase_block = chain.mine(1, NOW)[0];
    let coinbase = chain.block(&coinbase_block).unwrap().txids[0];
    chain.mine(COINBASE_MATURITY, NOW);
    let spend_coinbase = spend(
        &[OutPoint {
            txid: coinbase,
            vout: 0,
        }],
        vec![pay("bob", 1_000)],
    );
    chain.accept(spend_coinbase.clone()).unwrap();
    chain.mine(1, NOW);

    let dropped = chain.invalidate(COINBASE_MATURITY + 2).unwrap();
    assert_eq!(dropped, vec![spend_coinbase.compute_txid()]);
    assert_eq!(chain.confirmations(&spend_coinbase.compute_txid()), None);
    assert_eq!(chain.confirmations(&coinbase), None);
}

#[test]
fn invalidate_cannot_remove_genesis() {
    let mut chain = ChainState::new(NOW);
    let height = chain.tip().0;
    assert!(matches!(
        chain.invalidate(height + 1),
        Err(DevchainError::InvalidateTooDeep { requested, height: h }) if requested == height + 1 && h == height
    ));
    assert_eq!(chain.tip().0, height, "nothing changed");
}

#[test]
fn outspends_and_script_history_are_tracked() {
    let mut chain = ChainState::new(NOW);
    let alice = script_key(&script("alice"));
    let coin = funded(&mut chain, "alice", 100_000);
    assert_eq!(chain.script_history(&alice), (vec![coin.txid], vec![]));
    assert_eq!(chain.spender(&coin), None);
    chain.mine(1, NOW);
    assert_eq!(chain.script_history(&alice), (vec![], vec![coin.txid]));

    let second = funded(&mut chain, "alice", 50_000);
    let spend_tx = spend(&[coin], vec![pay("bob", 99_000)]);
    let spend_txid = spend_tx.compute_txid();
    chain.accept(spend_tx).unwrap();
    assert_eq!(
        chain.spender(&coin),
        Some(Spender {
            txid: spend_txid,
            vin: 0
        })
    );
    assert_eq!(
        chain.script_history(&alice),
        (vec![spend_txid, second.txid], vec![coin.txid])
    );
    let utxos: Vec<OutPoint> = chain
        .script_utxos(&alice)
        .into_iter()
        .map(|(o, _, _)| o)
        .collect();
    assert_eq!(utxos, vec![second]);

    chain.mine(1, NOW);
    // Both confirmed in one block: newest first means the later position first.
    assert_eq!(
        chain.script_history(&alice),
        (vec![], vec![spend_txid, second.txid, coin.txid])
    );
    let bob = script_key(&script("bob"));
    assert_eq!(chain.script_history(&bob), (vec![], vec![spend_txid]));
    assert_eq!(
        chain.fee_of(&chain.transaction(&spend_txid).unwrap().0.clone()),
        Some(Amount::from_sat(1_000))
    );
}

#[test]
fn faucet_refuses_dust_and_more_than_it_has() {
    let mut chain = ChainState::new(NOW);
    assert!(matches!(
        chain.fund(script("alice"), Amount::from_sat(DUST_LIMIT_SAT - 1)),
        Err(DevchainError::BelowDust { .. })
    ));
    let balance = chain.faucet_balance();
    assert_eq!(
        balance,
        Amount::from_int_btc(100),
        "two mature 50 BTC coinbases after the premine"
    );
    assert!(matches!(
        chain.fund(script("alice"), balance),
        Err(DevchainError::FaucetTooPoor { .. })
    ));
    assert!(chain.mempool_txids().is_empty());
}

#[test]
fn under_congestion_blocks_take_packages_paying_enough_and_a_child_carries_its_parent() {
    let mut chain = ChainState::new(NOW);
    chain.set_block_min_fee_rate(5.0);
    // The faucet pays 2 sat/vB: below the congestion, it waits.
    let alice = funded(&mut chain, "alice", 100_000);
    let bob = funded(&mut chain, "bob", 100_000);
    chain.mine(1, NOW);
    assert_eq!(
        chain.confirmations(&alice.txid),
        Some(0),
        "a 2 sat/vB payment waits"
    );
    assert_eq!(chain.confirmations(&bob.txid), Some(0));

    // Alice spends her unconfirmed output paying enough for both: the package is mined.
    let parent_vsize = chain.mempool_tx(&alice.txid).unwrap().vsize() as u64;
    let parent_fee = chain.mempool_fee(&alice.txid).unwrap().to_sat();
    let probe = spend(&[alice], vec![pay("carol", 1)]);
    let child_fee = 5 * (parent_vsize + probe.vsize() as u64) - parent_fee + 1;
    let child = spend(&[alice], vec![pay("carol", 100_000 - child_fee)]);
    let child_txid = child.compute_txid();
    chain.accept(child).expect("child accepted");
    chain.mine(1, NOW);
    assert_eq!(
        chain.confirmations(&alice.txid),
        Some(1),
        "the child carried its parent"
    );
    assert_eq!(chain.confirmations(&child_txid), Some(1));
    if bob.txid != alice.txid {
        assert_eq!(
            chain.confirmations(&bob.txid),
            Some(0),
            "bob's payment still waits"
        );
    }

    // The congestion ends: the next block takes what waited.
    chain.set_block_min_fee_rate(0.0);
    chain.mine(1, NOW);
    assert_eq!(chain.confirmations(&bob.txid), Some(1));
    assert!(chain.mempool_txids().is_empty());
}
