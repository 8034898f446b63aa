//! Lease extension over p2p (LSPS7, bLIP-57 draft). ldk-node 0.7 speaks no LSPS7, so while
//! the client is offline a bare peer with the client's own node key speaks it: it lists the
//! client's extendable channels, meets the draft's errors, and orders an extension; the LSP
//! restarts; the client comes back and pays the extension over Lightning. The lease's end
//! moves only then, the old end passes with the lease still active, and the channel is closed
//! at the new end. The HTTP mirror sells extensions paid on chain (refunded when the lease is
//! closing by then); and the real binary, killed between recording an extension and claiming
//! its HTLC, claims it once started again.

mod common;

use std::sync::Arc;

use common::client_scene::{client_node_key_seed, ClientScene, PUSH_MSAT};
use common::lsps0_peer::Lsps0Peer;
use common::process::{regtest_config, NodeProcess};
use common::*;
use lsp_node::api::*;
use lsp_node::fault_points::CRASH_AT_VAR;
use serde_json::{json, Value};

/// Blocks the lease is bought for.
const LEASE_BLOCKS: u32 = 10;
/// Blocks the extension adds.
const EXTENSION_BLOCKS: u32 = 6;

fn request(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": format!("{method}-{}", rand::random::<u32>()),
            "method": method, "params": params })
}

fn extend(short_channel_id: &str, blocks: u64) -> Value {
    request(
        "lsps7.create_order",
        json!({ "short_channel_id": short_channel_id, "channel_extension_expiry_blocks": blocks }),
    )
}

/// The error code and `data.property` of an answer.
fn refusal(answer: &Value) -> (i64, &str) {
    let error = &answer["error"];
    assert!(answer.get("result").is_none(), "refused: {answer}");
    (
        error["code"].as_i64().unwrap(),
        error["data"]["property"].as_str().unwrap_or(""),
    )
}

async fn lease_of(operator: &Operator, id: &str) -> LeaseInfo {
    operator.order(id).await.lease.expect("the order's lease")
}

/// Buys a lease of [`LEASE_BLOCKS`] for `client` over Lightning and waits until the client
/// takes its channel as usable (six confirmations); returns the order id, the funding and the
/// lease then.
async fn buy_running_lease(
    devchain: &lsp_node::devchain::Devchain,
    operator: &Operator,
    public_api: &str,
    client: &Arc<ldk_node::Node>,
) -> (String, bitcoin::Txid, LeaseInfo) {
    let mut body = olympus_order(&client.node_id().to_string(), false, None);
    body["channel_expiry_blocks"] = LEASE_BLOCKS.into();
    let order = create_olympus_order(public_api, &body).await;
    pay_order_over_lightning(client, &order).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    let (_, funding) = wait_order_funded(operator, &id).await;
    wait_for_tx_in_mempool(devchain, &funding, "the funding transaction").await;
    devchain.mine(1);
    let lease = wait_for("the lease to start", DEADLINE, || async {
        Some(lease_of(operator, &id).await).filter(|l| l.state == "ACTIVE")
    })
    .await;
    // The client (ldk-node) takes the channel as ready at six confirmations.
    devchain.mine(5);
    wait_sold_channel_usable(client, funding).await;
    (id, funding, lease)
}

/// Stops `client` (its storage in `client_dir`) and connects a bare peer with its node key to
/// the LSP at `lsp`, once the LSP has seen the client go.
async fn speak_as_client(
    operator: &Operator,
    lsp: (bitcoin::secp256k1::PublicKey, std::net::SocketAddr),
    client: &ldk_node::Node,
    client_dir: &std::path::Path,
) -> Lsps0Peer {
    let client_id = client.node_id();
    client.stop().unwrap();
    wait_for("the LSP to see the client gone", DEADLINE, || async {
        let peers: Vec<PeerInfo> = operator.get("/v1/peers").await.expect("peers");
        (!peers
            .iter()
            .any(|p| p.node_id == client_id.to_string() && p.connected))
        .then_some(())
    })
    .await;
    let seed = client_node_key_seed(client_dir);
    let peer = Lsps0Peer::connect_with_seed(lsp.0, lsp.1, seed, DEADLINE).await;
    assert_eq!(
        peer.node_id, client_id,
        "the bare peer has the client's key"
    );
    peer
}

/// Starts the client in `client_dir` again, connected to the LSP at `lsp`, and waits until it
/// can pay `total_sat` over its channels.
async fn bring_back_client(
    devchain: &lsp_node::devchain::Devchain,
    client_dir: &std::path::Path,
    lsp: (bitcoin::secp256k1::PublicKey, std::net::SocketAddr),
    total_sat: u64,
) -> Arc<ldk_node::Node> {
    let client = Arc::new(start_ldk_node(devchain, client_dir, |_| {}));
    client
        .connect(lsp.0, lsp.1.to_string().parse().unwrap(), true)
        .expect("the client connects to the LSP");
    wait_for("the client's channel to pay from", DEADLINE, || async {
        let sync = Arc::clone(&client);
        blocking(move || sync.sync_wallets().expect("client syncs")).await;
        client
            .list_channels()
            .iter()
            .any(|c| c.is_usable && c.outbound_capacity_msat > total_sat * 1_000)
            .then_some(())
    })
    .await;
    client
}

/// The bolt11 `order_total_sat` of an order.
fn bolt11_total(order: &Value) -> u64 {
    order["payment"]["bolt11"]["order_total_sat"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_an_extension_bought_over_p2p_moves_the_lease_end_and_the_close_comes_at_the_new_end() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        config,
        operator,
        public_api,
        client,
    } = ClientScene::start(2_000_000).await;
    let (id, funding, lease) = buy_running_lease(&devchain, &operator, &public_api, &client).await;
    let end = lease.end_height.unwrap();
    let revenue_before = lease.revenue_sat;

    // The client goes offline; a bare peer speaks with its node key.
    let (node, p2p) = (lsp.node_id(), lsp.p2p_listen_addr());
    let peer = speak_as_client(&operator, (node, p2p), &client, _dirs.1.path()).await;

    let protocols = peer
        .call(&request("lsps0.list_protocols", json!({})), DEADLINE)
        .await;
    assert_eq!(protocols["result"]["protocols"], json!([1, 7]));
    let listed = peer
        .call(
            &request("lsps7.get_extendable_channels", json!({})),
            DEADLINE,
        )
        .await;
    let result = &listed["result"];
    assert_eq!(
        result["extendable_orders"], result["extendable_channels"],
        "ZEUS's spelling carries the same list"
    );
    let channels = result["extendable_channels"].as_array().unwrap();
    assert_eq!(channels.len(), 1, "one lease: {listed}");
    let channel = &channels[0];
    let scid = channel["short_channel_id"].as_str().unwrap().to_string();
    let leases = &config.lsps1.leases;
    let max = leases
        .max_extension_blocks
        .min(leases.max_total_lease_blocks - LEASE_BLOCKS);
    assert_eq!(
        channel,
        &json!({
            "original_order": { "id": id, "service": "LSPS1" },
            "extension_order_ids": [],
            "short_channel_id": scid,
            "max_channel_extension_expiry_blocks": max,
            "expiration_block": end,
        })
    );

    // Bad input gets the draft's errors and creates nothing.
    let unknown = peer.call(&extend("1x1x1", 6), DEADLINE).await;
    assert_eq!(refusal(&unknown), (100, "short_channel_id"));
    let too_many = peer
        .call(&extend(&scid, u64::from(max) + 1), DEADLINE)
        .await;
    assert_eq!(
        refusal(&too_many),
        (100, "max_channel_extension_expiry_blocks")
    );
    let malformed = peer.call(&extend("the big one", 6), DEADLINE).await;
    assert_eq!(refusal(&malformed), (-32602, "short_channel_id"));
    let stranger = Lsps0Peer::connect(node, p2p, DEADLINE).await;
    let not_theirs = stranger.call(&extend(&scid, 6), DEADLINE).await;
    assert_eq!(
        not_theirs["error"], unknown["error"],
        "another node's lease is refused as an unknown channel"
    );
    let theirs = stranger
        .call(
            &request("lsps7.get_extendable_channels", json!({})),
            DEADLINE,
        )
        .await;
    assert_eq!(theirs["result"]["extendable_channels"], json!([]));
    let lsps1_order = peer
        .call(
            &request("lsps7.get_order", json!({ "order_id": id })),
            DEADLINE,
        )
        .await;
    assert_eq!(
        refusal(&lsps1_order).0,
        101,
        "an LSPS1 order is no extension"
    );
    let orders_before = operator
        .get::<Vec<OrderSummary>>("/v1/orders")
        .await
        .unwrap();

    // The extension order: nothing moves until it is paid.
    let created = peer
        .call(&extend(&scid, u64::from(EXTENSION_BLOCKS)), DEADLINE)
        .await;
    let created = created["result"].clone();
    let ext_id = created["order_id"].as_str().expect("an order").to_string();
    assert_eq!(created["order_state"], "CREATED");
    assert_eq!(created["short_channel_id"], scid);
    assert_eq!(created["channel_extension_expiry_blocks"], EXTENSION_BLOCKS);
    assert_eq!(created["new_channel_expiry_block"], end + EXTENSION_BLOCKS);
    assert_eq!(created["new_channel_expiry_blocks"], end + EXTENSION_BLOCKS);
    assert_eq!(created["token"], "");
    assert_eq!(created["payment"]["bolt11"]["state"], "EXPECT_PAYMENT");
    assert!(
        created["payment"].get("onchain").is_none(),
        "no refund address, no on-chain option"
    );
    assert_eq!(created["channel"]["original_order"]["id"], id);
    let fee: u64 = created["payment"]["bolt11"]["fee_total_sat"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let orders_after = operator
        .get::<Vec<OrderSummary>>("/v1/orders")
        .await
        .unwrap();
    assert_eq!(
        orders_after.len(),
        orders_before.len() + 1,
        "the refused requests made no order"
    );
    let peeked = stranger
        .call(
            &request("lsps7.get_order", json!({ "order_id": ext_id })),
            DEADLINE,
        )
        .await;
    assert_eq!(
        refusal(&peeked).0,
        101,
        "another node cannot read the order"
    );
    let as_lsps1 = peer
        .call(
            &request("lsps1.get_order", json!({ "order_id": ext_id })),
            DEADLINE,
        )
        .await;
    assert_eq!(refusal(&as_lsps1).0, 101, "an extension is no LSPS1 order");
    assert_eq!(lease_of(&operator, &id).await.end_height, Some(end));
    stranger.disconnect();
    peer.disconnect();

    // The LSP restarts between the order and its payment.
    lsp.stop().await.unwrap();
    let lsp = lsp_node::Builder::new(config.clone())
        .start()
        .await
        .expect("the LSP starts again");
    let operator = Operator::for_node(&lsp);
    let detail = operator.order(&ext_id).await;
    assert_eq!(detail.order["order_state"], "CREATED");
    assert_eq!(
        detail.lease.unwrap().order_id,
        id,
        "the extension shows its lease"
    );

    // The client comes back and pays the extension over Lightning: the HTLC is held, the
    // blocks are added, then it is claimed.
    let lsp_at = (lsp.node_id(), lsp.p2p_listen_addr());
    let client = bring_back_client(&devchain, _dirs.1.path(), lsp_at, bolt11_total(&created)).await;
    let payment = pay_order_over_lightning(&client, &created).await;
    wait_payment_status(
        &client,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the extension payment to be claimed",
    )
    .await;
    let extended = lease_of(&operator, &id).await;
    assert_eq!(extended.end_height, Some(end + EXTENSION_BLOCKS));
    assert_eq!(extended.lease_blocks, LEASE_BLOCKS + EXTENSION_BLOCKS);
    assert_eq!(extended.revenue_sat, revenue_before + fee);
    let detail = operator.order(&ext_id).await;
    assert_eq!(detail.order["order_state"], "COMPLETED");
    assert_eq!(detail.order["payment"]["bolt11"]["state"], "PAID");
    assert_eq!(
        detail.order["new_channel_expiry_block"],
        end + EXTENSION_BLOCKS
    );
    assert_eq!(
        detail.order["channel"]["extension_order_ids"],
        json!([ext_id])
    );
    let history: Vec<String> = operator
        .order(&id)
        .await
        .events
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e.starts_with("lease_"))
        .collect();
    assert_eq!(history, ["lease_pending", "lease_active", "lease_extended"]);

    // The old end passes with the lease still running; at the new end it is closed.
    devchain.mine(end - devchain.tip().0);
    operator.sync().await;
    assert_eq!(lease_of(&operator, &id).await.state, "ACTIVE");
    devchain.mine(EXTENSION_BLOCKS);
    let closing = wait_for(
        "the LSP to close the lease at its new end",
        DEADLINE,
        || async {
            let sync = Arc::clone(&client);
            blocking(move || sync.sync_wallets().expect("client syncs")).await;
            let lease = lease_of(&operator, &id).await;
            matches!(lease.state.as_str(), "CLOSING" | "CLOSED").then_some(lease)
        },
    )
    .await;
    assert_eq!(closing.end_height, Some(end + EXTENSION_BLOCKS));
    wait_mempool_spender(&devchain, &funding, "the closing transaction").await;
    devchain.mine(1);
    let closed = wait_for("the lease to be closed", DEADLINE, || async {
        Some(lease_of(&operator, &id).await).filter(|l| l.state == "CLOSED")
    })
    .await;
    assert_eq!(
        (closed.closed_by.as_deref(), closed.close_kind.as_deref()),
        (Some("lsp"), Some("cooperative"))
    );
    client.stop().unwrap();
    lsp.stop().await.unwrap();
}

/// One HTTP call to the LSPS7 mirror; the answer is checked against the OpenAPI document.
async fn mirror(public_api: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{public_api}{path}");
    let request = match body {
        Some(body) => http.post(url).json(body),
        None => http.get(url),
    };
    let response = request.send().await.expect("the mirror answers");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("a JSON answer");
    let document = lsp_node::http::public::openapi::document();
    if let Err(drift) =
        common::openapi_conformance::check_answer(&document, method, path, status, &answer)
    {
        panic!("the answer is not what docs/openapi.json promises: {drift}\n{answer}");
    }
    (status, answer)
}

/// The mirror sells an extension paid on-chain, which moves the end once confirmed; an
/// extension paid after the operator started closing the lease fails and is refunded on
/// chain, and the end stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_an_extension_over_http_paid_on_chain_moves_the_end_and_one_paid_for_a_closing_lease_is_refunded(
) {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client,
        ..
    } = ClientScene::start(2_000_000).await;
    let (id, _, lease) = buy_running_lease(&devchain, &operator, &public_api, &client).await;
    let end = lease.end_height.unwrap();

    let lists = "/api/v1/lsps7/get_extendable_channels";
    let (status, listed) =
        mirror(&public_api, "GET", &format!("{lists}?order_id={id}"), None).await;
    assert_eq!(status, 200, "{listed}");
    let scid = listed["extendable_channels"][0]["short_channel_id"]
        .as_str()
        .expect("the order's channel is extendable")
        .to_string();
    let (status, unknown) =
        mirror(&public_api, "GET", &format!("{lists}?order_id=00ff"), None).await;
    assert_eq!((status, &unknown["code"]), (404, &json!(101)));

    let refund = client.onchain_payment().new_address().unwrap().to_string();
    let request = |key: String, blocks: u32| {
        json!({ "public_key": key, "short_channel_id": scid,
                "channel_extension_expiry_blocks": blocks, "refund_onchain_address": refund })
    };
    let creates = "/api/v1/lsps7/create_order";
    let stranger = bitcoin::secp256k1::PublicKey::from_secret_key(
        &bitcoin::secp256k1::Secp256k1::new(),
        &bitcoin::secp256k1::SecretKey::from_slice(&[7; 32]).unwrap(),
    );
    let (status, refused) = mirror(
        &public_api,
        "POST",
        creates,
        Some(&request(stranger.to_string(), 4)),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["data"]["property"], "short_channel_id");

    // Paid on-chain: the end moves once the payment confirms.
    let client_key = client.node_id().to_string();
    let (status, first) = mirror(
        &public_api,
        "POST",
        creates,
        Some(&request(client_key.clone(), 4)),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let first_id = first["order_id"].as_str().unwrap().to_string();
    let (address, total) = onchain_payment_of(&first);
    devchain.fund(&address, total).unwrap();
    devchain.mine(1);
    let extended = wait_for("the first extension to be recorded", DEADLINE, || async {
        operator.sync().await;
        Some(lease_of(&operator, &first_id).await).filter(|l| l.end_height == Some(end + 4))
    })
    .await;
    assert_eq!(extended.order_id, id);
    let gets = format!("/api/v1/lsps7/get_order?order_id={first_id}");
    let (status, read) = mirror(&public_api, "GET", &gets, None).await;
    assert_eq!(status, 200);
    assert_eq!(read["order_state"], "COMPLETED");
    assert_eq!(read["payment"]["onchain"]["state"], "PAID");
    assert_eq!(read["channel"]["expiration_block"], end + 4);

    // Ordered while the lease runs, paid once the operator is closing it: refunded.
    let (status, second) =
        mirror(&public_api, "POST", creates, Some(&request(client_key, 3))).await;
    assert_eq!(status, 200, "{second}");
    let second_id = second["order_id"].as_str().unwrap().to_string();
    let closing: LeaseInfo = operator
        .post(
            "/v1/leases/close",
            &CloseLease {
                order_id: id.clone(),
                force: false,
            },
        )
        .await
        .expect("the operator closes the lease");
    assert!(matches!(closing.state.as_str(), "CLOSING" | "CLOSED"));
    let (address, total) = onchain_payment_of(&second);
    devchain.fund(&address, total).unwrap();
    devchain.mine(1);
    let failed = wait_for("the late extension to be refunded", DEADLINE, || async {
        operator.sync().await;
        let detail = operator.order(&second_id).await;
        let refunded = detail.order["payment"]["onchain"]["state"] == "REFUNDED";
        if !refunded && !detail.refunds.is_empty() {
            devchain.mine(1); // The refund confirms.
        }
        refunded.then_some(detail)
    })
    .await;
    assert_eq!(failed.order["order_state"], "FAILED");
    assert_eq!(failed.refunds.len(), 1);
    assert_eq!(failed.refunds[0].address, refund);
    assert_eq!(
        lease_of(&operator, &id).await.end_height,
        Some(end + 4),
        "the refunded extension moved nothing"
    );
    client.stop().unwrap();
    lsp.stop().await.unwrap();
}

/// The real binary aborts (as SIGKILL would) after an extension is recorded and before its
/// HTLC is claimed: started again, it claims the HTLC, and the lease is extended once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_crash_between_the_extension_and_its_claim_claims_once_and_extends_once() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let config = regtest_config(&dir.path().join("data"), &devchain.base_url(), 1);
    let crash_at = [(CRASH_AT_VAR, "extension_recorded.before_htlc_claimed")];
    let mut lsp = NodeProcess::spawn(dir.path(), &config, &crash_at);
    let operator = lsp.wait_running(DEADLINE).await;
    let info = operator.info().await;
    let lsp_at = (
        info.node_id.parse().unwrap(),
        info.listening_addresses[0].parse().unwrap(),
    );
    fund(&devchain, &operator, 2_000_000).await;
    let client_dir = tempfile::tempdir().unwrap();
    let client = Arc::new(start_ldk_node(&devchain, client_dir.path(), |_| {}));
    open_channel_to_ldk(&devchain, &operator, &client, 400_000, PUSH_MSAT).await;
    let public_api = lsp.public_api_url();
    let (id, _, lease) = buy_running_lease(&devchain, &operator, &public_api, &client).await;
    let end = lease.end_height.unwrap();

    let peer = speak_as_client(&operator, lsp_at, &client, client_dir.path()).await;
    let listed = peer
        .call(
            &request("lsps7.get_extendable_channels", json!({})),
            DEADLINE,
        )
        .await;
    let scid = listed["result"]["extendable_channels"][0]["short_channel_id"]
        .as_str()
        .expect("the lease is extendable")
        .to_string();
    let created = peer
        .call(&extend(&scid, u64::from(EXTENSION_BLOCKS)), DEADLINE)
        .await["result"]
        .clone();
    let ext_id = created["order_id"].as_str().unwrap().to_string();
    peer.disconnect();
    let client =
        bring_back_client(&devchain, client_dir.path(), lsp_at, bolt11_total(&created)).await;
    let payment = pay_order_over_lightning(&client, &created).await;
    let status = lsp.wait_exit(DEADLINE).await;
    assert!(!status.success(), "aborted at the crash point: {status:?}");
    assert_eq!(
        client.payment(&payment).unwrap().status,
        ldk_node::payment::PaymentStatus::Pending,
        "the HTLC is still held by the dead node"
    );

    let mut lsp = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = lsp.wait_running(DEADLINE).await;
    let detail = operator.order(&ext_id).await;
    assert_eq!(
        detail.order["order_state"], "COMPLETED",
        "recorded before the crash"
    );
    let address = operator.info().await.listening_addresses[0]
        .parse()
        .unwrap();
    client
        .connect(lsp_at.0, address, true)
        .expect("the client connects to the LSP again");
    wait_payment_status(
        &client,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the extension's HTLC to be claimed after the restart",
    )
    .await;
    let extended = lease_of(&operator, &id).await;
    assert_eq!(extended.end_height, Some(end + EXTENSION_BLOCKS));
    assert_eq!(extended.lease_blocks, LEASE_BLOCKS + EXTENSION_BLOCKS);
    let extensions = operator
        .order(&id)
        .await
        .events
        .iter()
        .filter(|e| e.event == "lease_extended")
        .count();
    assert_eq!(extensions, 1);
    lsp.terminate(DEADLINE).await;
    client.stop().unwrap();
}
