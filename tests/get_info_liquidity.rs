//! `get_info` offers what the wallet can fund now, in every dialect, and is never stale: an
//! order's reservation lowers the offer in the very next answer, and new funds raise it as soon
//! as the wallet shows them (the answers are kept between requests, so this is what proves the
//! kept answer is dropped on every change).

mod common;

use common::*;
use lsp_node::lsps1::order::OrderId;
use lsp_node::Builder;
use serde_json::Value;

/// The most inbound liquidity offered, as each dialect spells it: Olympus, Kaleidoswap, the
/// open LSP API.
async fn offered(http: &reqwest::Client, public_api: &str) -> [u64; 3] {
    let get = |path: &'static str| async move {
        let answer = http
            .get(format!("{public_api}{path}"))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json::<Value>().await.unwrap()
    };
    let olympus = get("/api/v1/get_info").await;
    let kaleidoswap = get("/api/v1/lsps1/get_info").await;
    let open_lsp = get("/node/info").await;
    [
        olympus["max_initial_lsp_balance_sat"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("olympus: {olympus}")),
        kaleidoswap["options"]["max_initial_lsp_balance_sat"]
            .as_u64()
            .unwrap_or_else(|| panic!("kaleidoswap: {kaleidoswap}")),
        open_lsp["max_remote_balance"]
            .as_u64()
            .unwrap_or_else(|| panic!("open LSP: {open_lsp}")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_info_follows_every_reservation_and_every_wallet_change_at_once() {
    init_logging();
    let devchain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path(), &devchain.base_url());
    config.http.listen = Some("127.0.0.1:0".parse().unwrap());
    let lsp = Builder::new(config).start().await.expect("node starts");
    let operator = Operator::for_node(&lsp);
    // Less than the configured maximum: the wallet is what bounds the offer.
    fund(&devchain, &operator, 1_000_000).await;
    let public_api = format!("http://{}", lsp.http_listen_addr().unwrap());
    let http = reqwest::Client::new();

    let before = offered(&http, &public_api).await;
    assert!(before[0] < 1_000_000, "bounded by the wallet: {before:?}");
    assert_eq!(before, [before[0]; 3], "one offer in every dialect");
    assert_eq!(offered(&http, &public_api).await, before, "asked again");

    let client = bitcoin::secp256k1::SecretKey::from_slice(&[9; 32])
        .unwrap()
        .public_key(&bitcoin::secp256k1::Secp256k1::new());
    let order = create_olympus_order(
        &public_api,
        &olympus_order(&client.to_string(), false, None),
    )
    .await;
    let id = OrderId::parse(order["order_id"].as_str().unwrap()).unwrap();
    let reserved = lsp
        .order_service()
        .unwrap()
        .order_book()
        .reservation(&id)
        .unwrap()
        .expect("the order reserves liquidity")
        .amount_sat;
    let after_order = offered(&http, &public_api).await;
    assert_eq!(
        after_order,
        [before[0] - reserved; 3],
        "the next answer leaves out the {reserved} sat the order holds"
    );

    fund(&devchain, &operator, 500_000).await;
    assert_eq!(
        offered(&http, &public_api).await,
        [after_order[0] + 500_000; 3],
        "new funds are offered once the wallet shows them"
    );
    lsp.stop().await.unwrap();
}
