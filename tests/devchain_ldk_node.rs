//! Interop with a Lightning implementation nobody here wrote: ldk-node 0.7.1 nodes use the
//! devchain as their Esplora chain source (BDK wallet sync, LDK transaction sync, fee
//! estimates, broadcasts), fund themselves from the faucet, pay on-chain, and run a channel's
//! whole life over real TCP on 127.0.0.1.
//!
//! Both tests are end-to-end scenarios (`e2e_` prefix) and can be run alone with
//! `cargo test --test devchain_ldk_node`.

mod common;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bitcoin::{Address, OutPoint, Txid};
use ldk_node::lightning_invoice::{Bolt11InvoiceDescription, Description};
use ldk_node::{Event, Node};
use lsp_node::devchain::Devchain;

use common::{start_devchain, start_ldk_node, DEADLINE};

fn start_ldk_node_on(devchain: &Devchain, storage: &Path) -> Node {
    start_ldk_node(devchain, storage, |_| {})
}

/// Runs `future` or fails the test after [`DEADLINE`].
async fn within_deadline<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Handles events until one matches `extract`, returning what it extracted.
async fn wait_for_event<T>(node: &Node, what: &str, extract: impl Fn(&Event) -> Option<T>) -> T {
    within_deadline(what, async {
        loop {
            let event = node.next_event_async().await;
            let found = extract(&event);
            node.event_handled().expect("event handled");
            match found {
                Some(value) => return value,
                None => eprintln!(
                    "{}: skipping {event:?} while waiting for {what}",
                    node.node_id()
                ),
            }
        }
    })
    .await
}

/// Polls the devchain until `condition` holds (ldk-node broadcasts from a background task).
async fn wait_for_chain(what: &str, condition: impl Fn() -> bool) {
    within_deadline(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// The devchain's Esplora view of `address`: confirmed sats received.
async fn confirmed_received_sats(devchain: &Devchain, address: &Address) -> u64 {
    let esplora = esplora_client::Builder::new(&devchain.base_url())
        .build_async()
        .unwrap();
    esplora
        .get_address_stats(address)
        .await
        .unwrap()
        .chain_stats
        .funded_txo_sum
}

fn sync(node: &Node) {
    node.sync_wallets()
        .expect("ldk-node syncs against the devchain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_ldk_node_receives_faucet_coins_and_pays_on_chain() {
    let devchain = start_devchain().await;
    let storage = tempfile::tempdir().unwrap();
    let node = start_ldk_node_on(&devchain, storage.path());
    sync(&node);
    assert_eq!(node.list_balances().total_onchain_balance_sats, 0);

    let address = node.onchain_payment().new_address().unwrap();
    let funding = devchain.fund(&address, 500_000).unwrap();
    sync(&node);
    let balances = node.list_balances();
    assert_eq!(
        balances.total_onchain_balance_sats, 500_000,
        "unconfirmed coins are seen"
    );

    devchain.mine(1);
    sync(&node);
    assert_eq!(devchain.confirmations(&funding), Some(1));
    assert_eq!(
        node.list_balances().spendable_onchain_balance_sats,
        500_000,
        "confirmed coins spendable"
    );

    let recipient_storage = tempfile::tempdir().unwrap();
    let recipient = start_ldk_node_on(&devchain, recipient_storage.path());
    let recipient_address = recipient.onchain_payment().new_address().unwrap();
    let payment = node
        .onchain_payment()
        .send_to_address(&recipient_address, 120_000, None)
        .unwrap();
    wait_for_chain("the on-chain payment broadcast", || {
        devchain.confirmations(&payment) == Some(0)
    })
    .await;
    let fee = devchain
        .fee_of(&payment)
        .expect("payment fee is computable");
    assert!(fee > 0);
    devchain.mine(1);
    assert_eq!(devchain.confirmations(&payment), Some(1));
    assert_eq!(
        confirmed_received_sats(&devchain, &recipient_address).await,
        120_000
    );

    sync(&node);
    sync(&recipient);
    assert_eq!(
        node.list_balances().total_onchain_balance_sats,
        500_000 - 120_000 - fee
    );
    assert_eq!(
        recipient.list_balances().spendable_onchain_balance_sats,
        120_000
    );

    node.stop().unwrap();
    recipient.stop().unwrap();
    devchain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_two_ldk_nodes_open_pay_and_close_a_channel() {
    let devchain = start_devchain().await;
    let (storage_a, storage_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node_a = start_ldk_node_on(&devchain, storage_a.path());
    let node_b = start_ldk_node_on(&devchain, storage_b.path());

    // Both keep the anchor-channel on-chain reserve ldk-node requires by default.
    devchain
        .fund(&node_a.onchain_payment().new_address().unwrap(), 1_000_000)
        .unwrap();
    devchain
        .fund(&node_b.onchain_payment().new_address().unwrap(), 100_000)
        .unwrap();
    devchain.mine(1);
    sync(&node_a);
    sync(&node_b);
    assert_eq!(node_a.list_balances().total_onchain_balance_sats, 1_000_000);
    assert_eq!(node_b.list_balances().total_onchain_balance_sats, 100_000);

    let b_address = node_b.listening_addresses().unwrap()[0].clone();
    node_a
        .open_channel(node_b.node_id(), b_address, 500_000, None, None)
        .unwrap();
    let funding_a = wait_for_event(&node_a, "ChannelPending at A", |event| match event {
        Event::ChannelPending { funding_txo, .. } => Some(*funding_txo),
        _ => None,
    })
    .await;
    let funding_b = wait_for_event(&node_b, "ChannelPending at B", |event| match event {
        Event::ChannelPending { funding_txo, .. } => Some(*funding_txo),
        _ => None,
    })
    .await;
    assert_eq!(funding_a, funding_b);
    let funding_txid: Txid = funding_a.txid;
    wait_for_chain("the funding broadcast", || {
        devchain.confirmations(&funding_txid) == Some(0)
    })
    .await;

    devchain.mine(6);
    sync(&node_a);
    sync(&node_b);
    let channel_a = wait_for_event(&node_a, "ChannelReady at A", |event| match event {
        Event::ChannelReady {
            user_channel_id, ..
        } => Some(*user_channel_id),
        _ => None,
    })
    .await;
    wait_for_event(&node_b, "ChannelReady at B", |event| {
        matches!(event, Event::ChannelReady { .. }).then_some(())
    })
    .await;

    let description =
        Bolt11InvoiceDescription::Direct(Description::new("devchain".to_string()).unwrap());
    let invoice = node_b
        .bolt11_payment()
        .receive(50_000_000, &description, 3600)
        .unwrap();
    node_a.bolt11_payment().send(&invoice, None).unwrap();
    wait_for_event(&node_a, "PaymentSuccessful at A", |event| {
        matches!(event, Event::PaymentSuccessful { .. }).then_some(())
    })
    .await;
    let received_msat = wait_for_event(&node_b, "PaymentReceived at B", |event| match event {
        Event::PaymentReceived { amount_msat, .. } => Some(*amount_msat),
        _ => None,
    })
    .await;
    assert_eq!(received_msat, 50_000_000);

    node_a.close_channel(&channel_a, node_b.node_id()).unwrap();
    wait_for_event(&node_a, "ChannelClosed at A", |event| {
        matches!(event, Event::ChannelClosed { .. }).then_some(())
    })
    .await;
    wait_for_event(&node_b, "ChannelClosed at B", |event| {
        matches!(event, Event::ChannelClosed { .. }).then_some(())
    })
    .await;
    let funding_outpoint = OutPoint {
        txid: funding_txid,
        vout: funding_a.vout,
    };
    wait_for_chain("the closing broadcast", || {
        devchain.mempool_txids().iter().any(|txid| {
            devchain.get_transaction(txid).is_some_and(|tx| {
                tx.input
                    .iter()
                    .any(|i| i.previous_output == funding_outpoint)
            })
        })
    })
    .await;
    devchain.mine(1);
    sync(&node_a);
    sync(&node_b);

    let balance_b = node_b.list_balances().total_onchain_balance_sats;
    assert_eq!(
        balance_b,
        100_000 + 50_000,
        "B's channel balance is back on-chain"
    );
    let balance_a = node_a.list_balances().total_onchain_balance_sats;
    assert!(
        (900_000..950_000).contains(&balance_a),
        "A holds its funds minus the payment and fees: {balance_a}"
    );
    assert!(node_a.list_channels().is_empty() && node_b.list_channels().is_empty());

    node_a.stop().unwrap();
    node_b.stop().unwrap();
    devchain.shutdown().await;
}
