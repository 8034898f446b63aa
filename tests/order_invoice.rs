//! Order invoices are made by the node itself (`lsp_node::node::invoice`), not by LDK's
//! `create_bolt11_invoice`: checked here against LDK's invoice for the same amount on the same
//! node and channels (the operator's `/v1/invoices` is LDK's), then paid.

mod common;

use std::str::FromStr;

use common::client_scene::ClientScene;
use common::*;
use lightning_invoice::Bolt11Invoice;

fn bolt11_of(order: &serde_json::Value) -> Bolt11Invoice {
    let text = order["payment"]["bolt11"]["invoice"].as_str().unwrap();
    // `from_str` checks the signature against the payee key the invoice names.
    Bolt11Invoice::from_str(text).expect("a valid, correctly signed invoice")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_an_order_invoice_hints_what_ldks_invoice_hints_and_is_paid() {
    let ClientScene {
        _dirs,
        devchain: _devchain,
        lsp,
        config,
        operator,
        public_api,
        client,
        ..
    } = ClientScene::start(2_000_000).await;
    // The client's channel is private: LDK hints it once the client's channel_update came.
    wait_for(
        "LDK's invoice to hint the client's channel",
        DEADLINE,
        || async {
            let invoice =
                Bolt11Invoice::from_str(&operator.invoice(10_000_000).await.invoice).unwrap();
            (!invoice.route_hints().is_empty()).then_some(())
        },
    )
    .await;

    // Within the channel's inbound capacity, then above it (LDK's choice differs by amount).
    for client_balance_sat in ["0", "200000"] {
        let mut body = olympus_order(&client.node_id().to_string(), false, None);
        body["client_balance_sat"] = client_balance_sat.into();
        let order = create_olympus_order(&public_api, &body).await;
        let ours = bolt11_of(&order);
        let amount_msat = ours.amount_milli_satoshis().expect("an amount");
        let ldks = Bolt11Invoice::from_str(&operator.invoice(amount_msat).await.invoice).unwrap();

        assert_eq!(
            ours.route_hints(),
            ldks.route_hints(),
            "at {amount_msat} msat"
        );
        assert_eq!(ours.route_hints().len(), 1);
        assert_eq!(ours.route_hints()[0].0[0].src_node_id, client.node_id());
        assert_eq!(ours.get_payee_pub_key(), lsp.node_id());
        assert_eq!(ours.get_payee_pub_key(), ldks.get_payee_pub_key());
        assert_eq!(ours.currency(), ldks.currency());
        assert_eq!(ours.features(), ldks.features());
        assert_eq!(
            ours.min_final_cltv_expiry_delta(),
            u64::from(config.lsps1.invoice_min_final_cltv_expiry_delta) + 3
        );
        assert_eq!(
            ours.expiry_time().as_secs(),
            config.lsps1.options.invoice_expiry_secs
        );
        assert_ne!(ours.payment_hash(), ldks.payment_hash());
    }

    // LDK recognises the payment of an invoice it did not make: the order's payment is held
    // (and, the channel opened at once, may already be claimed when it is looked at).
    let order = create_olympus_order(
        &public_api,
        &olympus_order(&client.node_id().to_string(), false, None),
    )
    .await;
    let id = order["order_id"].as_str().unwrap().to_string();
    pay_order_over_lightning(&client, &order).await;
    wait_for("the order's payment to be held", DEADLINE, || async {
        let detail = operator.order(&id).await;
        matches!(
            detail.summary.bolt11_state.as_deref(),
            Some("HOLD" | "PAID")
        )
        .then_some(())
    })
    .await;
    lsp.stop().await.unwrap();
}
