//! The devchain's Esplora API as seen by real clients: esplora-client 0.12 (used by bdk_esplora
//! and ldk-node) and 0.13 (used by lightning-transaction-sync 0.3), plus plain HTTP for the
//! control routes and error paths.

mod common;

use std::str::FromStr;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{Network, OutPoint, Txid};
use common::start_devchain as start;
use common::txs::{address, outpoint_paying, spend};
use esplora_client::AsyncClient;
use lsp_node::devchain::{Devchain, DevchainOptions, PREMINE_BLOCKS};
use serde_json::Value;

fn client(devchain: &Devchain) -> AsyncClient {
    esplora_client::Builder::new(&devchain.base_url())
        .max_retries(0)
        .build_async()
        .unwrap()
}

fn client_013(devchain: &Devchain) -> esplora_client_013::AsyncClient {
    esplora_client_013::Builder::new(&devchain.base_url())
        .max_retries(0)
        .build_async()
        .unwrap()
}

#[tokio::test]
async fn tip_blocks_and_headers_have_esplora_shapes() {
    let devchain = start().await;
    let esplora = client(&devchain);
    let (height, hash) = devchain.tip();
    assert_eq!(height, PREMINE_BLOCKS);
    assert_eq!(esplora.get_height().await.unwrap(), height);
    assert_eq!(esplora.get_tip_hash().await.unwrap(), hash);
    assert_eq!(esplora.get_block_hash(height).await.unwrap(), hash);
    let genesis = bitcoin::blockdata::constants::genesis_block(Network::Regtest);
    assert_eq!(
        esplora.get_block_hash(0).await.unwrap(),
        genesis.block_hash()
    );

    let header = esplora.get_header_by_hash(&hash).await.unwrap();
    assert_eq!(header.block_hash(), hash);
    let block = esplora
        .get_block_by_hash(&hash)
        .await
        .unwrap()
        .expect("block");
    assert!(block.check_merkle_root());
    assert_eq!(
        esplora.get_block_txids(&hash).await.unwrap(),
        vec![block.txdata[0].compute_txid()]
    );
    assert_eq!(
        esplora.get_txid_at_block_index(&hash, 0).await.unwrap(),
        Some(block.txdata[0].compute_txid())
    );
    assert_eq!(
        esplora.get_txid_at_block_index(&hash, 1).await.unwrap(),
        None
    );
    let block_txs = esplora.get_block_txs(&hash, None).await.unwrap();
    assert!(block_txs[0].vin[0].is_coinbase && block_txs[0].vin[0].prevout.is_none());

    let status = esplora.get_block_status(&hash).await.unwrap();
    assert!(status.in_best_chain);
    assert_eq!((status.height, status.next_best), (Some(height), None));
    let parent_status = esplora
        .get_block_status(&header.prev_blockhash)
        .await
        .unwrap();
    assert_eq!(parent_status.next_best, Some(hash));

    let infos = esplora.get_block_infos(None).await.unwrap();
    assert_eq!(infos.len(), 10);
    assert_eq!((infos[0].id, infos[0].height), (hash, height));
    assert_eq!(infos[0].previousblockhash, Some(header.prev_blockhash));
    assert_eq!(infos[0].bits, header.bits);
    assert_eq!(infos[0].merkle_root, header.merkle_root);
    assert!(infos[0].mediantime <= infos[0].timestamp);
    let from_five = esplora.get_block_infos(Some(5)).await.unwrap();
    assert_eq!(
        from_five.iter().map(|b| b.height).collect::<Vec<_>>(),
        vec![5, 4, 3, 2, 1, 0]
    );
    assert_eq!(from_five.last().unwrap().previousblockhash, None);
    let info = esplora.get_block_info(&hash).await.unwrap();
    assert_eq!(info, infos[0]);

    let missing = esplora.get_block_hash(height + 1).await.unwrap_err();
    assert!(matches!(
        missing,
        esplora_client::Error::HttpResponse { status: 404, .. }
    ));
    devchain.shutdown().await;
}

#[tokio::test]
async fn funded_transactions_have_status_proofs_outspends_and_fees() {
    let devchain = start().await;
    let esplora = client(&devchain);
    let alice = address(1);
    let bob = address(2);
    let funding = devchain.fund(&alice, 200_000).unwrap();

    let info = esplora
        .get_tx_info(&funding)
        .await
        .unwrap()
        .expect("mempool tx");
    assert!(!info.status.confirmed && info.status.block_height.is_none());
    assert_eq!(info.to_tx(), devchain.get_transaction(&funding).unwrap());
    assert_eq!(info.fee, devchain.fee_of(&funding).unwrap());
    assert!(
        info.fee >= info.weight.div_ceil(4) * 2,
        "faucet pays at least 2 sat/vB"
    );
    assert!(info
        .vin
        .iter()
        .all(|vin| vin.prevout.is_some() && vin.witness.len() == 2));
    assert_eq!(esplora.get_merkle_proof(&funding).await.unwrap(), None);
    assert!(esplora.get_merkle_block(&funding).await.unwrap().is_none());
    assert_eq!(esplora.get_mempool_txids().await.unwrap(), vec![funding]);

    let block_hash = devchain.mine(1)[0];
    let status = esplora.get_tx_status(&funding).await.unwrap();
    assert!(status.confirmed);
    assert_eq!(status.block_hash, Some(block_hash));
    assert_eq!(status.block_height, Some(PREMINE_BLOCKS + 1));
    assert!(status.block_time.is_some());
    assert_eq!(
        esplora.get_tx(&funding).await.unwrap(),
        devchain.get_transaction(&funding)
    );

    let proof = esplora
        .get_merkle_proof(&funding)
        .await
        .unwrap()
        .expect("confirmed");
    assert_eq!((proof.block_height, proof.pos), (PREMINE_BLOCKS + 1, 1));
    assert_eq!(proof.merkle.len(), 1, "two transactions: one sibling");
    let merkle_block = esplora
        .get_merkle_block(&funding)
        .await
        .unwrap()
        .expect("confirmed");
    let (mut matches, mut indexes) = (Vec::new(), Vec::new());
    let root = merkle_block
        .txn
        .extract_matches(&mut matches, &mut indexes)
        .unwrap();
    assert_eq!(root, merkle_block.header.merkle_root);
    assert_eq!(merkle_block.header.block_hash(), block_hash);
    assert_eq!(matches, vec![funding]);

    let coin = outpoint_paying(&devchain, funding, &alice);
    let unspent = esplora
        .get_output_status(&funding, coin.vout as u64)
        .await
        .unwrap()
        .unwrap();
    assert!(!unspent.spent && unspent.txid.is_none());
    let payment = spend(coin, &bob, 150_000);
    esplora.broadcast(&payment).await.unwrap();
    let spent = esplora
        .get_output_status(&funding, coin.vout as u64)
        .await
        .unwrap()
        .unwrap();
    assert!(spent.spent);
    assert_eq!(
        (spent.txid, spent.vin),
        (Some(payment.compute_txid()), Some(0))
    );
    assert!(!spent.status.unwrap().confirmed);
    let outspends = esplora.get_tx_outspends(&funding).await.unwrap();
    assert_eq!(outspends.len(), 2);
    assert!(outspends[coin.vout as usize].spent && !outspends[1 - coin.vout as usize].spent);
    let payment_info = esplora
        .get_tx_info(&payment.compute_txid())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payment_info.fee, 50_000);

    // lightning-transaction-sync reads Esplora through esplora-client 0.13.
    let esplora_013 = client_013(&devchain);
    let tx_013 = esplora_013.get_tx_info(&funding).await.unwrap().unwrap();
    assert_eq!(tx_013.to_tx(), devchain.get_transaction(&funding).unwrap());
    let merkle_013 = esplora_013
        .get_merkle_block(&funding)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merkle_013.header.block_hash(), block_hash);
    let status_013 = esplora_013.get_block_status(&block_hash).await.unwrap();
    assert_eq!(status_013.height, Some(PREMINE_BLOCKS + 1));
    let spent_013 = esplora_013
        .get_output_status(&funding, coin.vout as u64)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spent_013.txid, Some(payment.compute_txid()));
    let second = devchain.fund(&alice, 10_000).unwrap();
    let second_tx = devchain.get_transaction(&second).unwrap();
    assert_eq!(
        esplora_013.broadcast(&second_tx).await.unwrap(),
        second,
        "re-broadcast is accepted"
    );
    devchain.shutdown().await;
}

#[tokio::test]
async fn broadcast_errors_are_400_with_core_reasons() {
    let devchain = start().await;
    let esplora = client(&devchain);
    let alice = address(1);
    let bob = address(2);
    let funding = devchain.fund(&alice, 100_000).unwrap();
    let coin = outpoint_paying(&devchain, funding, &alice);
    let original = spend(coin, &bob, 90_000);
    esplora.broadcast(&original).await.unwrap();

    let expect_400 = |result: Result<(), esplora_client::Error>, reason: &str| match result {
        Err(esplora_client::Error::HttpResponse {
            status: 400,
            message,
        }) => {
            assert!(
                message.starts_with("sendrawtransaction RPC error: {"),
                "{message}"
            );
            assert!(message.contains(reason), "{message} lacks {reason}");
        }
        other => panic!("expected HTTP 400 ({reason}), got {other:?}"),
    };
    // A conflicting spend paying less is not a valid replacement.
    expect_400(
        esplora.broadcast(&spend(coin, &alice, 95_000)).await,
        "insufficient fee",
    );
    // One paying more replaces the original.
    let replacement = spend(coin, &alice, 80_000);
    esplora.broadcast(&replacement).await.unwrap();
    let mempool = devchain.mempool_txids();
    assert!(mempool.contains(&replacement.compute_txid()));
    assert!(!mempool.contains(&original.compute_txid()));
    assert!(matches!(
        esplora.get_tx(&original.compute_txid()).await,
        Ok(None)
    ));
    let unknown = OutPoint {
        txid: Txid::all_zeros(),
        vout: 3,
    };
    expect_400(
        esplora.broadcast(&spend(unknown, &bob, 1)).await,
        "bad-txns-inputs-missingorspent",
    );
    let change = OutPoint {
        vout: 1 - coin.vout,
        ..coin
    };
    expect_400(
        esplora
            .broadcast(&spend(change, &bob, 10_000_000_000_000))
            .await,
        "bad-txns-in-belowout",
    );
    devchain.mine(1);
    expect_400(
        esplora.broadcast(&spend(coin, &alice, 70_000)).await,
        "bad-txns-inputs-missingorspent",
    );
    expect_400(
        esplora.broadcast(&replacement).await,
        "Transaction outputs already in utxo set",
    );

    let http = reqwest::Client::new();
    let garbage = http
        .post(format!("{}/tx", devchain.base_url()))
        .body("zz")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    assert!(garbage.text().await.unwrap().contains("TX decode failed"));
    devchain.shutdown().await;
}

#[tokio::test]
async fn script_history_pages_like_esplora() {
    let devchain = start().await;
    let esplora = client(&devchain);
    let alice = address(1);
    let script = alice.script_pubkey();
    let confirmed: Vec<Txid> = (0..30)
        .map(|_| devchain.fund(&alice, 10_000).unwrap())
        .collect();
    devchain.mine(1);
    let pending: Vec<Txid> = (0..3)
        .map(|_| devchain.fund(&alice, 20_000).unwrap())
        .collect();

    let first = esplora.scripthash_txs(&script, None).await.unwrap();
    assert_eq!(first.len(), 3 + 25);
    let first_ids: Vec<Txid> = first.iter().map(|tx| tx.txid).collect();
    let newest_pending: Vec<Txid> = pending.iter().rev().copied().collect();
    assert_eq!(first_ids[..3], newest_pending[..]);
    let newest_confirmed: Vec<Txid> = confirmed.iter().rev().copied().collect();
    assert_eq!(first_ids[3..], newest_confirmed[..25]);
    let second = esplora
        .scripthash_txs(&script, first.last().map(|tx| tx.txid))
        .await
        .unwrap();
    let second_ids: Vec<Txid> = second.iter().map(|tx| tx.txid).collect();
    assert_eq!(second_ids, newest_confirmed[25..]);

    let mempool = esplora.get_mempool_scripthash_txs(&script).await.unwrap();
    assert_eq!(
        mempool.iter().map(|tx| tx.txid).collect::<Vec<_>>(),
        newest_pending
    );
    assert_eq!(
        esplora.get_address_txs(&alice, None).await.unwrap().len(),
        28
    );

    let utxos = esplora.get_scripthash_utxos(&script).await.unwrap();
    assert_eq!(utxos.len(), 33);
    assert_eq!(utxos.iter().filter(|u| u.status.confirmed).count(), 30);
    assert_eq!(esplora.get_address_utxos(&alice).await.unwrap().len(), 33);

    let stats = esplora.get_scripthash_stats(&script).await.unwrap();
    assert_eq!(
        (stats.chain_stats.tx_count, stats.chain_stats.funded_txo_sum),
        (30, 300_000)
    );
    assert_eq!(
        (
            stats.mempool_stats.tx_count,
            stats.mempool_stats.funded_txo_sum
        ),
        (3, 60_000)
    );
    let address_stats = esplora.get_address_stats(&alice).await.unwrap();
    assert_eq!(address_stats.address, alice.to_string());
    assert_eq!(address_stats.chain_stats, stats.chain_stats);
    devchain.shutdown().await;
}

#[tokio::test]
async fn mempool_fee_estimates_and_packages_have_esplora_shapes() {
    let devchain = start().await;
    let esplora = client(&devchain);
    let alice = address(1);
    let funding = devchain.fund(&alice, 100_000).unwrap();

    let stats = esplora.get_mempool_stats().await.unwrap();
    assert_eq!(stats.count, 1);
    assert_eq!(stats.total_fee, devchain.fee_of(&funding).unwrap());
    assert!(stats.fee_histogram[0].0 >= 2.0);
    let recent = esplora.get_mempool_recent_txs().await.unwrap();
    assert_eq!(recent[0].txid, funding);

    let estimates = esplora.get_fee_estimates().await.unwrap();
    for target in [1u16, 6, 12, 25, 144, 504, 1008] {
        assert!(estimates[&target] >= 1.0, "target {target}");
    }
    assert!(estimates[&1] >= estimates[&1008]);
    assert_eq!(esplora_client::convert_fee_rate(6, estimates).unwrap(), 2.0);

    let coin = outpoint_paying(&devchain, funding, &alice);
    let parent = spend(coin, &address(2), 99_000);
    let child = spend(
        OutPoint {
            txid: parent.compute_txid(),
            vout: 0,
        },
        &address(3),
        98_000,
    );
    let result = esplora
        .submit_package(&[parent.clone(), child.clone()], None, None)
        .await
        .unwrap();
    assert_eq!(result.package_msg, "success");
    assert_eq!(result.tx_results.len(), 2);
    assert!(result.tx_results.values().all(|r| r.error.is_none()));
    assert_eq!(
        devchain.mempool_txids(),
        vec![funding, parent.compute_txid(), child.compute_txid()]
    );
    devchain.shutdown().await;
}

#[tokio::test]
async fn control_routes_mine_fund_and_invalidate() {
    let devchain = start().await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", devchain.base_url());

    let mined: Value = http
        .post(url("/dev/mine"))
        .body(r#"{"blocks": 3}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hashes = mined["hashes"].as_array().unwrap();
    assert_eq!(hashes.len(), 3);
    assert_eq!(hashes[2].as_str().unwrap(), devchain.tip().1.to_string());

    let alice = address(1);
    let funded = http
        .post(url("/dev/fund"))
        .json(&serde_json::json!({ "address": alice.to_string(), "sats": 123_456 }))
        .send()
        .await
        .unwrap();
    assert_eq!(funded.status(), 200);
    let funded: Value = funded.json().await.unwrap();
    let txid = Txid::from_str(funded["txid"].as_str().unwrap()).unwrap();
    assert_eq!(devchain.confirmations(&txid), Some(0));
    assert_eq!(
        devchain.get_transaction(&txid).unwrap().output[0]
            .value
            .to_sat(),
        123_456
    );

    devchain.mine(1);
    let reorg: Value = http
        .post(url("/dev/invalidate"))
        .body(r#"{"blocks": 1}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reorg["height"].as_u64().unwrap(),
        u64::from(PREMINE_BLOCKS + 3)
    );
    assert_eq!(
        devchain.confirmations(&txid),
        Some(0),
        "back in the mempool"
    );

    let faucet: Value = http
        .get(url("/dev/faucet"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(faucet["address"].as_str().unwrap().starts_with("bcrt1"));

    // Bad input: 400 with one sentence, nothing changes.
    let tip = devchain.tip();
    for (path, body) in [
        ("/dev/mine", r#"{"blocks": 0}"#),
        ("/dev/mine", "three"),
        (
            "/dev/fund",
            r#"{"address": "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "sats": 1000}"#,
        ),
        ("/dev/fund", r#"{"address": "nonsense", "sats": 1000}"#),
        (
            "/dev/fund",
            &format!(r#"{{"address": "{alice}", "sats": 1}}"#),
        ),
        ("/dev/invalidate", r#"{"blocks": 100000}"#),
    ] {
        let response = http
            .post(url(path))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path} {body}");
        let message = response.text().await.unwrap();
        assert!(!message.is_empty() && !message.contains('\n'), "{message}");
    }
    assert_eq!(devchain.tip(), tip);
    assert_eq!(devchain.mempool_txids(), vec![txid]);

    let unknown = http.get(url("/no/such/route")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let bad_txid = http.get(url("/tx/xyz")).send().await.unwrap();
    assert_eq!(bad_txid.status(), 400);
    devchain.shutdown().await;
}

#[tokio::test]
async fn stale_blocks_report_not_in_best_chain_after_invalidate() {
    let devchain = start().await;
    let esplora = client(&devchain);
    let stale = devchain.mine(1)[0];
    devchain.invalidate(1).unwrap();
    let status = esplora.get_block_status(&stale).await.unwrap();
    assert!(!status.in_best_chain);
    assert_eq!((status.height, status.next_best), (None, None));
    let replacement = devchain.mine(1)[0];
    assert_ne!(replacement, stale);
    assert_eq!(esplora.get_tip_hash().await.unwrap(), replacement);
    devchain.shutdown().await;
}

#[tokio::test]
async fn interval_mining_advances_the_tip() {
    let devchain = Devchain::start(DevchainOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        block_interval: Some(Duration::from_millis(50)),
        data_dir: None,
    })
    .await
    .unwrap();
    let start_height = devchain.tip().0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while devchain.tip().0 < start_height + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no block mined on the interval"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    devchain.shutdown().await;
}
