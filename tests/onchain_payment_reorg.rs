//! An on-chain payment that a reorg takes away after the order counted it PAID, before the
//! channel is funded: the order goes back to waiting for payment (it never buys a channel with
//! a payment that is gone), counts a new payment, and refunds only what exists.

mod common;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use common::*;
use lsp_node::api::*;
use lsp_node::Builder;
use serde_json::{json, Value};

async fn order_detail(operator: &Operator, id: &str) -> OrderDetail {
    operator
        .get(&format!("/v1/orders/{id}"))
        .await
        .expect("the order is known")
}

async fn wait_onchain_state(operator: &Operator, id: &str, state: &str, what: &str) -> OrderDetail {
    wait_for(what, DEADLINE, || async {
        let detail = order_detail(operator, id).await;
        (detail.order["payment"]["onchain"]["state"] == state).then_some(detail)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_payment_taken_back_by_the_chain_puts_the_order_back_to_waiting() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let lsp = Builder::new(config_for(dir.path(), &devchain.base_url()))
        .start()
        .await
        .expect("LSP starts");
    let operator = Operator::for_node(&lsp);
    fund(&devchain, &operator, 1_000_000).await;

    // The client is a key only, never online: the paid order waits for it to connect while
    // the chain moves under the payment.
    let secp = Secp256k1::new();
    let client = SecretKey::from_slice(&[7; 32]).unwrap().public_key(&secp);
    let refund = bitcoin::Address::p2wpkh(
        &bitcoin::CompressedPublicKey(SecretKey::from_slice(&[8; 32]).unwrap().public_key(&secp)),
        bitcoin::Network::Regtest,
    );
    let order: Value = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/create_order",
            lsp.http_listen_addr().unwrap()
        ))
        .json(&json!({
            "lsp_balance_sat": "100000",
            "client_balance_sat": "0",
            "required_channel_confirmations": 1,
            "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 1000,
            "announce_channel": false,
            "public_key": client.to_string(),
            "refund_onchain_address": refund.to_string(),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = order["order_id"].as_str().expect("an order").to_string();
    let pay_to: bitcoin::Address = order["payment"]["onchain"]["address"]
        .as_str()
        .unwrap()
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .unwrap()
        .assume_checked();
    let total: u64 = order["payment"]["onchain"]["order_total_sat"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let payment = devchain
        .fund(&pay_to, total)
        .expect("faucet pays the order");
    devchain.mine(1);
    wait_onchain_state(&operator, &id, "PAID", "the payment to count").await;

    // A reorg replaces the payment's block with a chain that leaves the payment out (a double
    // spend of it confirmed instead, as far as the order can tell).
    let outcome = devchain.reorg(1, &[payment]).expect("reorg");
    assert!(outcome.dropped.contains(&payment), "{outcome:?}");
    let waiting = wait_onchain_state(
        &operator,
        &id,
        "EXPECT_PAYMENT",
        "the order to wait for payment again",
    )
    .await;
    assert_eq!(waiting.summary.state, "CREATED");
    assert!(
        waiting
            .events
            .iter()
            .any(|e| e.event == "onchain_payment_lost"),
        "{:?}",
        waiting.events
    );

    // Paid again, it counts again.
    // (A different amount: the faucet's coin is unspent again, and the same payment would be
    // the same transaction.)
    let second = devchain
        .fund(&pay_to, total + 1_000)
        .expect("faucet pays again");
    assert_ne!(second, payment);
    devchain.mine(1);
    wait_onchain_state(&operator, &id, "PAID", "the second payment to count").await;

    // Cancelled now, only the payment that exists is refunded.
    let cancelled: OrderDetail = operator
        .post(
            "/v1/orders/cancel",
            &CancelOrder {
                order_id: id.clone(),
                reason: Some("the client went away".into()),
            },
        )
        .await
        .expect("the operator cancels");
    assert_eq!(cancelled.summary.state, "FAILED");
    let sent = wait_for("the refund", DEADLINE, || async {
        order_detail(&operator, &id).await.refunds.first().cloned()
    })
    .await;
    assert_eq!(
        sent.amount_sat + sent.fee_sat,
        total + 1_000,
        "the payment that exists comes back, and nothing of the vanished one"
    );
    let sent_txid: bitcoin::Txid = sent.txid.parse().unwrap();
    let refund_tx = wait_for("the refund on the devchain", DEADLINE, || async {
        devchain.get_transaction(&sent_txid)
    })
    .await;
    let spent: Vec<bitcoin::Txid> = refund_tx
        .input
        .iter()
        .map(|i| i.previous_output.txid)
        .collect();
    assert!(
        !spent.contains(&payment),
        "the vanished payment is not spent"
    );
    assert!(
        spent.contains(&second),
        "the refund returns the payment that exists"
    );
    let to_client: u64 = refund_tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == refund.script_pubkey())
        .map(|o| o.value.to_sat())
        .sum();
    assert_eq!(to_client, sent.amount_sat);
    lsp.stop().await.unwrap();
}
