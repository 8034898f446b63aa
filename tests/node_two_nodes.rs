//! Two lsp-node instances on one devchain, driven through the operator API over HTTP: fund,
//! open a channel, pay both ways, restart the opener, pay again, close cooperatively, and
//! find the funds back in both wallets.

mod common;

use common::*;
use lsp_node::api::*;

const FUNDING_SAT: u64 = 1_000_000;
const CAPACITY_SAT: u64 = 400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_two_nodes_open_pay_restart_close() {
    init_logging();
    let devchain = start_devchain().await;
    let url = devchain.base_url();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let node_a = start_node(dir_a.path(), &url).await;
    let node_b = start_node(dir_b.path(), &url).await;
    let a = Operator::for_node(&node_a);
    let b = Operator::for_node(&node_b);

    fund(&devchain, &a, FUNDING_SAT).await;
    fund(&devchain, &b, FUNDING_SAT).await;

    // Open A -> B through the operator API.
    let request = OpenChannel {
        node_id: node_b.node_id().to_string(),
        address: Some(node_b.p2p_listen_addr().to_string()),
        capacity_sat: CAPACITY_SAT,
        push_msat: 0,
        announce: false,
    };
    let opened: OpenedChannel = a
        .post("/v1/channels", &request)
        .await
        .expect("open channel");
    let opened_id = opened
        .channel_id
        .clone()
        .expect("a peer online answers within the wait");
    wait_for_mempool(&devchain, "the funding transaction").await;
    mine_and_sync(&devchain, 6, &[&a, &b]).await;
    for operator in [&a, &b] {
        wait_for("the channel to be usable", DEADLINE, || async {
            operator.sync().await;
            let channels = operator.channels().await;
            (channels.len() == 1 && channels[0].is_usable).then_some(())
        })
        .await;
    }
    let channel = a.channels().await.remove(0);
    // The answer named the channel by the id every later call uses.
    assert_eq!(channel.channel_id, opened_id);
    assert_eq!(channel.user_channel_id, opened.user_channel_id);
    assert_eq!(channel.capacity_sat, CAPACITY_SAT);
    assert_eq!(channel.counterparty_node_id, node_b.node_id().to_string());
    assert!(channel.is_outbound);

    // Pay both ways.
    let to_b = b.invoice(50_000_000).await;
    let paid = a.pay(&to_b.invoice).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded, "A pays B: {paid:?}");
    assert_eq!(paid.payment_hash, to_b.payment_hash);
    let to_a = a.invoice(20_000_000).await;
    let paid = b.pay(&to_a.invoice).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded, "B pays A: {paid:?}");
    wait_for("B to record the received payment", DEADLINE, || async {
        b.payments()
            .await
            .into_iter()
            .find(|p| p.payment_hash == to_b.payment_hash)
            .filter(|p| {
                p.status == PaymentStatus::Succeeded && p.direction == PaymentDirection::Inbound
            })
    })
    .await;
    // Paying the same invoice twice is refused and changes nothing.
    let again: Result<PaymentInfo, CallError> = a
        .post(
            "/v1/pay",
            &PayInvoice {
                invoice: to_b.invoice.clone(),
                amount_msat: None,
                wait_secs: None,
            },
        )
        .await;
    assert_eq!(again.unwrap_err().status, 409);

    // Restart A mid-way: the channel and balances survive. A payment reports success before
    // the commitment dance that removes its HTLC ends, and A's balance still moves by that
    // HTLC output's fee until then; B's side empties only after A holds its final commitment.
    wait_for(
        "both commitments to settle every HTLC",
        DEADLINE,
        || async {
            let a_channels = a.channels().await;
            let b_channels = b.channels().await;
            (a_channels
                .iter()
                .chain(&b_channels)
                .all(|c| c.pending_htlcs == 0))
            .then_some(())
        },
    )
    .await;
    let balance_before = a.balance().await;
    let channel_before = a.channels().await.remove(0);
    node_a.stop().await.expect("A stops cleanly");
    let node_a = start_node(dir_a.path(), &url).await;
    let a = Operator::for_node(&node_a);
    let channels = a.channels().await;
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].channel_id, channel_before.channel_id);
    assert_eq!(channels[0].outbound_msat, channel_before.outbound_msat);
    let balance_after = a.balance().await;
    assert_eq!(
        balance_after.onchain_confirmed_sat,
        balance_before.onchain_confirmed_sat
    );
    assert_eq!(balance_after.lightning_sat, balance_before.lightning_sat);
    wait_for(
        "A to reconnect to B and the channel to be usable",
        DEADLINE,
        || async {
            let channels = a.channels().await;
            channels.first().filter(|c| c.is_usable).map(|_| ())
        },
    )
    .await;
    let to_b = b.invoice(10_000_000).await;
    let paid = a.pay(&to_b.invoice).await;
    assert_eq!(
        paid.status,
        PaymentStatus::Succeeded,
        "A pays B after restart: {paid:?}"
    );

    // Cooperative close; B's side comes back to its wallet exactly, A's minus fees.
    let b_received_sat = 50_000 - 20_000 + 10_000;
    let close = CloseChannel {
        channel_id: channel_before.channel_id.clone(),
        counterparty_node_id: node_b.node_id().to_string(),
        force: false,
        override_lease: false,
    };
    let _: Empty = a.post("/v1/channels/close", &close).await.expect("close");
    wait_for_mempool(&devchain, "the closing transaction").await;
    // Six blocks: LDK keeps reporting closing balances until they are reorg-safe.
    mine_and_sync(&devchain, 6, &[&a, &b]).await;
    wait_for("both channel lists to empty", DEADLINE, || async {
        (a.channels().await.is_empty() && b.channels().await.is_empty()).then_some(())
    })
    .await;
    wait_for("B's channel balance in its wallet", DEADLINE, || async {
        b.sync().await;
        let balance = b.balance().await;
        (balance.onchain_confirmed_sat == FUNDING_SAT + b_received_sat).then_some(())
    })
    .await;
    wait_for("A's channel balance in its wallet", DEADLINE, || async {
        a.sync().await;
        let balance = a.balance().await;
        let expected_at_least = FUNDING_SAT - b_received_sat - 10_000;
        (balance.onchain_confirmed_sat >= expected_at_least
            && balance.onchain_confirmed_sat < FUNDING_SAT - b_received_sat
            && balance.lightning_sat == 0)
            .then_some(())
    })
    .await;

    node_a.stop().await.unwrap();
    node_b.stop().await.unwrap();
    devchain.shutdown().await;
}
