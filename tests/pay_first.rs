//! Pay first, name the node later: a pay-first order is paid by one node and claimed, with its
//! bearer token, for another (after a restart of the LSP in between), whose channel then opens; an order no one claims in time is given
//! up and its payment goes back (a held HTLC to its payer, on-chain funds to the refund address).

mod common;

use std::sync::Arc;

use common::client_scene::ClientScene;
use common::*;
use lsp_node::lsps1::claims::{ClaimRefused, ClaimToken};
use lsp_node::lsps1::order::{Interface, Order, OrderParams, PaymentState};
use lsp_node::lsps1::service::{NewOrder, OrderService};

fn pay_first_order(
    service: &OrderService,
    refund: Option<bitcoin::Address>,
) -> (Order, ClaimToken) {
    service
        .create_pay_first_order(NewOrder {
            client_node_id: None,
            params: OrderParams {
                lsp_balance_sat: 100_000,
                client_balance_sat: 0,
                required_channel_confirmations: 1,
                funding_confirms_within_blocks: 6,
                channel_expiry_blocks: 1_000,
                token: None,
                announce_channel: false,
            },
            refund_address: refund,
            source: Interface::Http,
            email: None,
        })
        .expect("a pay-first order")
}

fn rendered(service: &OrderService, order: &Order) -> serde_json::Value {
    service.render_http(order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_third_node_pays_and_the_claim_names_the_node_whose_channel_opens() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        config,
        operator,
        client: payer,
        ..
    } = ClientScene::start(2_000_000).await;
    let service = lsp.order_service().expect("the LSP sells channels");
    let receiver_dir = tempfile::tempdir().unwrap();
    let receiver = Arc::new(start_ldk_node(&devchain, receiver_dir.path(), |_| {}));
    receiver
        .connect(
            lsp.node_id(),
            lsp.p2p_listen_addr().to_string().parse().unwrap(),
            true,
        )
        .expect("the receiver connects to the LSP");

    let (order, token) = pay_first_order(&service, None);
    assert_eq!(order.client_node_id, None);
    assert_eq!(token.reveal().len(), 64, "a 256-bit bearer token");
    assert_ne!(
        token.reveal(),
        order.id.as_str(),
        "the order id claims nothing"
    );
    let id = order.id.to_string();
    let payment = pay_order_over_lightning(&payer, &rendered(&service, &order)).await;
    wait_for("the payment to be held", DEADLINE, || async {
        let detail = operator.order(&id).await;
        (detail.summary.bolt11_state.as_deref() == Some("HOLD")).then_some(())
    })
    .await;
    // Paid and unclaimed: nothing opens.
    operator.sync().await;
    assert_eq!(operator.order(&id).await.summary.state, "CREATED");
    assert_eq!(operator.order(&id).await.summary.client_node_id, None);

    let stranger = ClaimToken::from_client(&"ab".repeat(32));
    assert!(matches!(
        service.claim_order(&stranger, receiver.node_id()),
        Err(ClaimRefused::Unknown)
    ));
    let by_id = ClaimToken::from_client(order.id.as_str());
    assert!(
        matches!(
            service.claim_order(&by_id, receiver.node_id()),
            Err(ClaimRefused::Unknown)
        ),
        "the order id is no claim token"
    );

    // The LSP restarts between the payment and the claim.
    drop(service);
    lsp.stop().await.unwrap();
    let lsp = lsp_node::Builder::new(config)
        .start()
        .await
        .expect("the LSP starts again");
    let operator = Operator::for_node(&lsp);
    let service = lsp.order_service().expect("the LSP sells channels");
    receiver
        .connect(
            lsp.node_id(),
            lsp.p2p_listen_addr().to_string().parse().unwrap(),
            true,
        )
        .expect("the receiver connects to the LSP again");
    assert_eq!(
        operator.order(&id).await.summary.bolt11_state.as_deref(),
        Some("HOLD")
    );

    let claimed = service
        .claim_order(&token, receiver.node_id())
        .expect("the holder of the token claims the order");
    assert_eq!(claimed.client_node_id, Some(receiver.node_id()));
    assert!(matches!(
        service.claim_order(&token, payer.node_id()),
        Err(ClaimRefused::AlreadyClaimed)
    ));

    let (detail, funding) = wait_order_funded(&operator, &id).await;
    assert_eq!(
        detail.summary.client_node_id,
        Some(receiver.node_id().to_string())
    );
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    devchain.mine(6);
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the payer's HTLC to be claimed once the channel is funded",
    )
    .await;
    wait_sold_channel_usable(&receiver, funding).await;
    let events: Vec<String> = operator
        .order(&id)
        .await
        .events
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"claimed".to_string()), "{events:?}");
    receiver.stop().unwrap();
    payer.stop().unwrap();
    lsp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_paid_orders_no_one_claims_are_given_up_and_their_payments_go_back() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        client: payer,
        ..
    } = ClientScene::start_with(2_000_000, |config| {
        config.lsps1.claim_timeout_secs = 3;
    })
    .await;
    let service = lsp.order_service().expect("the LSP sells channels");

    // Over Lightning: the held HTLC goes back to its payer.
    let (order, token) = pay_first_order(&service, None);
    let payment = pay_order_over_lightning(&payer, &rendered(&service, &order)).await;
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Failed,
        "the unclaimed order's HTLC to go back",
    )
    .await;
    let failed = service.order_book().order(&order.id).unwrap().unwrap();
    assert_eq!(failed.bolt11.unwrap().state, PaymentState::Refunded);
    assert!(
        matches!(
            service.claim_order(&token, payer.node_id()),
            Err(ClaimRefused::Ended("FAILED"))
        ),
        "a failed order can no longer be claimed"
    );

    // On chain: the funds go back to the refund address.
    let refund = payer.onchain_payment().new_address().unwrap();
    let (order, _token) = pay_first_order(&service, Some(refund.clone()));
    let (address, total) = onchain_payment_of(&rendered(&service, &order));
    devchain.fund(&address, total).unwrap();
    devchain.mine(1);
    let id = order.id.to_string();
    let detail = wait_for(
        "the unclaimed on-chain order to be refunded",
        DEADLINE,
        || async {
            operator.sync().await;
            let detail = operator.order(&id).await;
            let refunded = detail.summary.onchain_state.as_deref() == Some("REFUNDED");
            if !refunded && !detail.refunds.is_empty() {
                devchain.mine(1);
            }
            refunded.then_some(detail)
        },
    )
    .await;
    assert_eq!(detail.summary.state, "FAILED");
    assert_eq!(detail.refunds[0].address, refund.to_string());
    payer.stop().unwrap();
    lsp.stop().await.unwrap();
}
