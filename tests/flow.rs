//! The Flow API for customer accounts, over real HTTP against a running LSP on the devchain:
//! API keys (401 for a missing, wrong, disabled or rotated key), isolation between customers,
//! bad input that changes nothing, per-customer rate limits overriding the per-address ones,
//! credit coupons redeemed once, a concurrent double spend of one credit balance, and keys and
//! ledger surviving a restart; then the whole cycle with ldk-node nodes: quote, create, pay,
//! claim through the sidecar ticket's LNURL, filled; a cancel that keeps the payment as credit,
//! an order that uses it, a cancel that returns the payment, and an order wholly paid by
//! credit.

mod common;

use std::sync::Arc;

use common::client_scene::ClientScene;
use common::*;
use lsp_node::api::{
    AddCustomer, AdjustCredit, CustomerCredit, CustomerInfo, CustomerKey, CustomerRef,
    DisableCustomer, IssueCreditCoupon, OrderSummary, SetCustomerTerms,
};
use serde_json::{json, Value};

/// One customer's view of the Flow API.
struct FlowClient {
    base: String,
    key: Option<String>,
    header: &'static str,
}

impl FlowClient {
    fn new(base: &str, key: &CustomerKey) -> FlowClient {
        FlowClient {
            base: base.to_string(),
            key: Some(key.api_key.clone()),
            header: "X-VOLTAGE-AUTH",
        }
    }

    /// `GET` (no body) or `POST` `path`; the answer is checked against the OpenAPI document.
    async fn call(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, answer, _) = self.call_raw(path, body.map(|b| b.to_string())).await;
        (status, answer)
    }

    async fn call_raw(
        &self,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let http = reqwest::Client::new();
        let url = format!("{}{path}", self.base);
        let method = if body.is_some() { "POST" } else { "GET" };
        let mut request = match body {
            Some(body) => http
                .post(url)
                .header("content-type", "application/json")
                .body(body),
            None => http.get(url),
        };
        if let Some(key) = &self.key {
            request = request.header(self.header, key);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let answer: Value = response.json().await.expect("a JSON answer");
        let document = lsp_node::http::public::openapi::document();
        if let Err(drift) =
            common::openapi_conformance::check_answer(&document, method, path, status, &answer)
        {
            panic!("the answer is not what docs/openapi.json promises: {drift}\n{answer}");
        }
        (status, answer, headers)
    }

    async fn status(&self, order_id: &str) -> Value {
        let (status, order) = self
            .call("/flow/status", Some(json!({ "order_id": order_id })))
            .await;
        assert_eq!(status, 200, "{order}");
        order
    }

    async fn wait_status(&self, order_id: &str, wanted: &str) -> Value {
        wait_for(&format!("the order to be {wanted}"), DEADLINE, || async {
            let order = self.status(order_id).await;
            (order["status"] == wanted).then_some(order)
        })
        .await
    }
}

async fn add_customer(operator: &Operator, name: &str) -> CustomerKey {
    operator
        .post(
            "/v1/customers",
            &AddCustomer {
                name: name.to_string(),
            },
        )
        .await
        .expect("the customer is added")
}

async fn set_terms(
    operator: &Operator,
    customer: &str,
    requests: Option<u32>,
    orders: Option<u32>,
) {
    let _: CustomerInfo = operator
        .post(
            "/v1/customers/terms",
            &SetCustomerTerms {
                customer: customer.to_string(),
                requests_per_minute: requests,
                orders_per_minute: orders,
                ..SetCustomerTerms::default()
            },
        )
        .await
        .expect("terms set");
}

async fn credit_of(operator: &Operator, customer: &str) -> CustomerCredit {
    operator
        .get(&format!("/v1/customers/{customer}/credit"))
        .await
        .expect("the credit")
}

async fn order_count(operator: &Operator) -> usize {
    let orders: Vec<OrderSummary> = operator.get("/v1/orders").await.expect("orders");
    orders.len()
}

fn amount(order: &Value, field: &str) -> u64 {
    order[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {order}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_accounts_are_isolated_and_refuse_bad_keys_and_bad_input_changing_nothing() {
    init_logging();
    let devchain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path(), &devchain.base_url());
    // The per-address limits are tight; one customer gets its own, larger ones.
    config.http.limits.rate_limit_burst = 5;
    config.http.limits.rate_limit_per_minute = 5;
    let lsp = lsp_node::Builder::new(config.clone())
        .start()
        .await
        .expect("LSP starts");
    let operator = Operator::for_node(&lsp);
    fund(&devchain, &operator, 2_000_000).await;
    let base = format!("http://{}", lsp.http_listen_addr().unwrap());
    let acme_key = add_customer(&operator, "Acme").await;
    let other_key = add_customer(&operator, "Other").await;
    set_terms(&operator, "Acme", Some(1_000), Some(100)).await;
    let acme = FlowClient::new(&base, &acme_key);
    let other = FlowClient::new(&base, &other_key);

    // Keys: none, a wrong one, then the right one in either header.
    let anonymous = FlowClient {
        key: None,
        ..FlowClient::new(&base, &acme_key)
    };
    let order_body = json!({ "capacity": 100_000 });
    let (status, answer) = anonymous
        .call("/flow/create", Some(order_body.clone()))
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("X-VOLTAGE-AUTH"));
    let guesser = FlowClient {
        key: Some("ab".repeat(32)),
        ..FlowClient::new(&base, &acme_key)
    };
    assert_eq!(
        guesser
            .call("/flow/create", Some(order_body.clone()))
            .await
            .0,
        401
    );
    assert_eq!(
        order_count(&operator).await,
        0,
        "a refused key does nothing"
    );
    let by_api_key = FlowClient {
        header: "x-api-key",
        ..FlowClient::new(&base, &acme_key)
    };
    let (status, quote) = by_api_key
        .call("/flow/quote", Some(order_body.clone()))
        .await;
    assert_eq!(status, 200, "{quote}");
    assert_eq!(amount(&quote, "capacity"), 100_000);
    assert_eq!(amount(&quote, "lease_duration_blocks"), 2_016);
    assert_eq!(
        amount(&quote, "total_fee"),
        amount(&quote, "voltage_fee") + amount(&quote, "pool_fee")
    );
    assert_eq!(amount(&quote, "amount_due"), amount(&quote, "total_fee"));
    assert_eq!(amount(&quote, "credit_used"), 0);

    let (status, order) = acme.call("/flow/create", Some(order_body.clone())).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "waiting_payment");
    assert_eq!(order["paid"], false);
    assert_eq!(order["sidecar_ticket"], "");
    assert_eq!(order["onchain_address"], "");
    assert!(order["lightning_invoice"]
        .as_str()
        .unwrap()
        .starts_with("lnbcrt"));
    assert_eq!(amount(&order, "amount_due"), amount(&quote, "amount_due"));
    let order_id = order["order_id"].as_str().unwrap().to_string();

    // Another customer's order is "not found", word for word as an unknown one.
    let (status, theirs) = other
        .call("/flow/status", Some(json!({ "order_id": order_id })))
        .await;
    assert_eq!(status, 404);
    let (_, unknown) = other
        .call("/flow/status", Some(json!({ "order_id": "f".repeat(32) })))
        .await;
    assert_eq!(theirs, unknown);
    let (status, _) = other
        .call("/flow/cancel", Some(json!({ "order_id": order_id })))
        .await;
    assert_eq!(status, 404);
    assert_eq!(acme.status(&order_id).await["status"], "waiting_payment");

    // Bad input: a sentence, a 400, and no order.
    let refused = [
        (Some("{not json".to_string()), "/flow/create", None),
        (
            Some(json!({ "capacity": 100_000, "colour": "red" }).to_string()),
            "/flow/create",
            None,
        ),
        (
            Some(json!({ "capacity": 1_000_000_000_000u64 }).to_string()),
            "/flow/create",
            Some("capacity"),
        ),
        (
            Some(json!({ "capacity": 100_000, "lease_duration_blocks": 0 }).to_string()),
            "/flow/create",
            Some("lease_duration_blocks"),
        ),
        (
            Some(json!({ "capacity": "lots" }).to_string()),
            "/flow/quote",
            Some("capacity"),
        ),
        (
            Some(json!({}).to_string()),
            "/flow/status",
            Some("order_id"),
        ),
        (
            Some(json!({ "order_id": order_id, "refund": "gold" }).to_string()),
            "/flow/cancel",
            Some("refund"),
        ),
        (
            Some(json!({ "coupon": 7 }).to_string()),
            "/flow/redeem",
            Some("coupon"),
        ),
    ];
    for (body, path, property) in refused {
        let (status, answer, _) = acme.call_raw(path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body:?}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
        if let Some(property) = property {
            assert_eq!(answer["data"]["property"], property, "{answer}");
        }
    }
    assert_eq!(
        order_count(&operator).await,
        1,
        "no bad request made an order"
    );
    assert_eq!(acme.status(&order_id).await["status"], "waiting_payment");

    // Disable and enable; rotate: the old key stops at once.
    let disable = |disabled| DisableCustomer {
        customer: "Other".to_string(),
        disabled,
    };
    let _: CustomerInfo = operator
        .post("/v1/customers/disable", &disable(true))
        .await
        .unwrap();
    assert_eq!(other.call("/flow/coupons", None).await.0, 401);
    let _: CustomerInfo = operator
        .post("/v1/customers/disable", &disable(false))
        .await
        .unwrap();
    assert_eq!(other.call("/flow/coupons", None).await.0, 200);
    let rotated: CustomerKey = operator
        .post(
            "/v1/customers/rotate-key",
            &CustomerRef {
                customer: "Acme".to_string(),
            },
        )
        .await
        .unwrap();
    assert_eq!(acme.call("/flow/coupons", None).await.0, 401, "the old key");
    let acme = FlowClient::new(&base, &rotated);
    assert_eq!(acme.status(&order_id).await["order_id"], order_id.as_str());

    // Acme's own limit (1000 a minute) overrides the per-address burst of 5; Other has none of
    // its own and gets the per-address limits, counted for its account.
    for _ in 0..12 {
        assert_eq!(acme.call("/flow/coupons", None).await.0, 200);
    }
    let mut limited = None;
    for _ in 0..8 {
        let (status, answer, headers) = other.call_raw("/flow/coupons", None).await;
        if status == 429 {
            limited = Some((answer, headers));
            break;
        }
    }
    let (answer, headers) = limited.expect("Other reaches the default limit");
    assert!(headers.contains_key("retry-after"), "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("for this account"));

    // Coupons: issued to Acme, invisible to Other, redeemed once.
    let coupon: lsp_node::api::CreditCouponInfo = operator
        .post(
            "/v1/customers/coupons",
            &IssueCreditCoupon {
                customer: "Acme".to_string(),
                amount_sat: 5_000,
            },
        )
        .await
        .unwrap();
    let (_, listed) = acme.call("/flow/coupons", None).await;
    assert_eq!(
        listed["coupons"],
        json!([{ "coupon": coupon.code, "order_id": coupon.code, "amount": 5_000, "claimed": false }])
    );
    let (status, stolen) = other
        .call("/flow/redeem", Some(json!({ "coupon": coupon.code })))
        .await;
    assert_ne!(status, 200, "{stolen}");
    let (status, redeemed) = acme
        .call("/flow/redeem", Some(json!({ "coupon": coupon.code })))
        .await;
    assert_eq!(status, 200, "{redeemed}");
    assert_eq!(
        redeemed,
        json!({ "coupon": coupon.code, "credit": 5_000, "coupon_amount": 5_000 })
    );
    let (status, again) = acme
        .call("/flow/redeem", Some(json!({ "coupon": coupon.code })))
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(credit_of(&operator, "Acme").await.balance_sat, 5_000);
    assert_eq!(credit_of(&operator, "Other").await.balance_sat, 0);

    // Two creates at once against a balance that covers one order: together they never use
    // more credit than there was.
    let (_, quote) = acme.call("/flow/quote", Some(order_body.clone())).await;
    let total = amount(&quote, "total_fee");
    assert_eq!(amount(&quote, "credit_used"), total.min(5_000));
    let to_total = i64::try_from(total).unwrap() - 5_000;
    if to_total != 0 {
        let _: CustomerCredit = operator
            .post(
                "/v1/customers/credit",
                &AdjustCredit {
                    customer: "Acme".to_string(),
                    amount_sat: to_total,
                    reason: "exactly one order's worth".to_string(),
                },
            )
            .await
            .unwrap();
    }
    assert_eq!(credit_of(&operator, "Acme").await.balance_sat, total);
    let (first, second) = tokio::join!(
        acme.call("/flow/create", Some(order_body.clone())),
        acme.call("/flow/create", Some(order_body.clone()))
    );
    let used: Vec<u64> = [&first, &second]
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, order)| amount(order, "credit_used"))
        .collect();
    assert!(!used.is_empty(), "{first:?} {second:?}");
    for (status, answer) in [&first, &second] {
        assert!(*status == 200 || *status == 403, "{status} {answer}");
    }
    let spent: u64 = used.iter().sum();
    assert!(spent <= total, "{used:?} of {total}");
    let credit = credit_of(&operator, "Acme").await;
    assert_eq!(credit.balance_sat, total - spent);
    let debits = credit
        .entries
        .iter()
        .filter(|e| e.kind == "order_debit")
        .count();
    assert_eq!(debits, used.iter().filter(|u| **u > 0).count());
    let ledger = credit.entries.clone();

    // A restart keeps the keys and the ledger.
    lsp.stop().await.unwrap();
    let lsp = lsp_node::Builder::new(config)
        .start()
        .await
        .expect("LSP starts again");
    let operator = Operator::for_node(&lsp);
    let base = format!("http://{}", lsp.http_listen_addr().unwrap());
    let acme = FlowClient::new(&base, &rotated);
    assert_eq!(acme.status(&order_id).await["order_id"], order_id.as_str());
    assert_eq!(
        FlowClient::new(&base, &acme_key)
            .call("/flow/coupons", None)
            .await
            .0,
        401
    );
    assert_eq!(credit_of(&operator, "Acme").await.entries, ledger);
    lsp.stop().await.unwrap();
}

/// Decodes a bech32 LNURL (LUD-01) into its URL.
fn lnurl_url(lnurl: &str) -> String {
    let (hrp, data) = bitcoin::bech32::decode(lnurl).expect("a bech32 LNURL");
    assert!(hrp.as_str().eq_ignore_ascii_case("lnurl"), "{hrp}");
    String::from_utf8(data).unwrap()
}

async fn lnurl_get(url: &str) -> Value {
    let response = reqwest::get(url).await.expect("the LNURL service answers");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("a JSON answer")
}

/// Redeems the sidecar ticket of `order` for `wallet`, as an LNURL-channel wallet does.
async fn redeem_ticket(order: &Value, wallet: &ldk_node::Node) {
    let url = lnurl_url(order["sidecar_ticket"].as_str().expect("a ticket"));
    let request = lnurl_get(&url).await;
    assert_eq!(request["tag"], "channelRequest", "{request}");
    let (node, address) = request["uri"].as_str().unwrap().split_once('@').unwrap();
    wallet
        .connect(node.parse().unwrap(), address.parse().unwrap(), true)
        .expect("the wallet connects to the LSP");
    let answer = lnurl_get(&format!(
        "{}?k1={}&remoteid={}",
        request["callback"].as_str().unwrap(),
        request["k1"].as_str().unwrap(),
        wallet.node_id()
    ))
    .await;
    assert_eq!(answer, json!({ "status": "OK" }));
}

fn invoice_json(order: &Value) -> Value {
    json!({ "payment": { "bolt11": { "invoice": order["lightning_invoice"] } } })
}

async fn wait_filled(
    flow: &FlowClient,
    devchain: &lsp_node::devchain::Devchain,
    wallet: &Arc<ldk_node::Node>,
    order_id: &str,
) -> Value {
    let filled = flow.wait_status(order_id, "filled").await;
    let funding: bitcoin::Txid = filled["channel_funding_outpoint"]
        .as_str()
        .expect("a funding outpoint")
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    wait_for_tx_in_mempool(devchain, &funding, "the funding transaction").await;
    devchain.mine(6);
    wait_sold_channel_usable(wallet, funding).await;
    filled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_flow_cycle_with_credit_from_a_cancel_and_an_order_credit_pays_in_full() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client: payer,
        ..
    } = ClientScene::start(3_000_000).await;
    let key = add_customer(&operator, "Acme").await;
    set_terms(&operator, "Acme", Some(10_000), Some(100)).await;
    let flow = FlowClient::new(&public_api, &key);
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = Arc::new(start_ldk_node(&devchain, wallet_dir.path(), |_| {}));
    let small = json!({ "capacity": 100_000 });

    // Quote, create, pay over Lightning: created, with its ticket; redeemed: filled.
    let (_, quote) = flow.call("/flow/quote", Some(small.clone())).await;
    let (status, order) = flow.call("/flow/create", Some(small.clone())).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(amount(&order, "amount_due"), amount(&quote, "amount_due"));
    let id = order["order_id"].as_str().unwrap().to_string();
    let payment = pay_order_over_lightning(&payer, &invoice_json(&order)).await;
    let created = flow.wait_status(&id, "created").await;
    assert_eq!(created["paid"], true);
    assert!(created["sidecar_ticket"]
        .as_str()
        .unwrap()
        .starts_with("LNURL"));
    redeem_ticket(&created, &wallet).await;
    let filled = wait_filled(&flow, &devchain, &wallet, &id).await;
    assert_eq!(filled["node_id"], wallet.node_id().to_string());
    assert_eq!(filled["sidecar_ticket"], "", "redeemed once");
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the payer's HTLC to be claimed",
    )
    .await;

    // Paid, then cancelled: what was paid becomes credit (the HTLC is taken).
    let (_, second) = flow.call("/flow/create", Some(small.clone())).await;
    let second_id = second["order_id"].as_str().unwrap().to_string();
    let paid = amount(&second, "amount_due");
    let payment = pay_order_over_lightning(&payer, &invoice_json(&second)).await;
    flow.wait_status(&second_id, "created").await;
    let (status, cancelled) = flow
        .call("/flow/cancel", Some(json!({ "order_id": second_id })))
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(amount(&cancelled, "credit_refund"), paid);
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the HTLC of the order cancelled to credit to be taken",
    )
    .await;
    assert_eq!(credit_of(&operator, "Acme").await.balance_sat, paid);
    let (status, _) = flow
        .call("/flow/cancel", Some(json!({ "order_id": second_id })))
        .await;
    assert_eq!(status, 409, "a cancelled order is not cancelled again");
    assert_eq!(
        credit_of(&operator, "Acme").await.balance_sat,
        paid,
        "credited once"
    );

    // A larger order uses that credit first and asks for the rest; cancelled asking for the
    // payment back, the HTLC goes back and the credit used returns to credit.
    let large = json!({ "capacity": 200_000 });
    let (_, quote) = flow.call("/flow/quote", Some(large.clone())).await;
    assert_eq!(amount(&quote, "credit_used"), paid);
    let (_, third) = flow.call("/flow/create", Some(large.clone())).await;
    let third_id = third["order_id"].as_str().unwrap().to_string();
    assert_eq!(amount(&third, "credit_used"), paid);
    let due = amount(&third, "amount_due");
    assert_eq!(due, amount(&third, "total_fee") - paid);
    let invoice: ldk_node::lightning_invoice::Bolt11Invoice = third["lightning_invoice"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(invoice.amount_milli_satoshis(), Some(due * 1_000));
    assert_eq!(credit_of(&operator, "Acme").await.balance_sat, 0);
    let payment = pay_order_over_lightning(&payer, &invoice_json(&third)).await;
    flow.wait_status(&third_id, "created").await;
    let (status, cancelled) = flow
        .call(
            "/flow/cancel",
            Some(json!({ "order_id": third_id, "refund": "payment" })),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(amount(&cancelled, "credit_refund"), paid);
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Failed,
        "the payment to go back to its payer",
    )
    .await;
    assert_eq!(credit_of(&operator, "Acme").await.balance_sat, paid);

    // An order the credit pays in full: no invoice, created at once, redeemed and filled.
    let (status, fourth) = flow.call("/flow/create", Some(small.clone())).await;
    assert_eq!(status, 200, "{fourth}");
    assert_eq!(amount(&fourth, "amount_due"), 0);
    assert_eq!(amount(&fourth, "credit_used"), paid);
    assert_eq!(fourth["lightning_invoice"], "");
    assert_eq!(fourth["status"], "created");
    assert_eq!(fourth["paid"], true);
    let fourth_id = fourth["order_id"].as_str().unwrap().to_string();
    redeem_ticket(&fourth, &wallet).await;
    wait_filled(&flow, &devchain, &wallet, &fourth_id).await;
    let credit = credit_of(&operator, "Acme").await;
    assert_eq!(credit.balance_sat, 0);
    let kinds: Vec<(&str, i64)> = credit
        .entries
        .iter()
        .map(|e| (e.kind.as_str(), e.amount_sat))
        .collect();
    let paid = i64::try_from(paid).unwrap();
    assert_eq!(
        kinds,
        [
            ("order_cancelled", paid),
            ("order_debit", -paid),
            ("order_cancelled", paid),
            ("order_debit", -paid)
        ]
    );
    wallet.stop().unwrap();
    payer.stop().unwrap();
    lsp.stop().await.unwrap();
}

/// The real binary dies (aborted as by SIGKILL) after a cancel to credit is committed and
/// before the held HTLC is taken. Restarted, it takes the HTLC (it never fails it back: the
/// customer already has the credit) and the credit stays exactly what was paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_crash_between_a_cancel_to_credit_and_its_htlc_claim_credits_once() {
    use common::process::{regtest_config, NodeProcess};
    use lsp_node::fault_points::CRASH_AT_VAR;

    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let config = regtest_config(&dir.path().join("data"), &devchain.base_url(), 1);
    let mut lsp = NodeProcess::spawn(
        dir.path(),
        &config,
        &[(CRASH_AT_VAR, "cancelled_to_credit.before_htlc_claimed")],
    );
    let operator = lsp.wait_running(DEADLINE).await;
    fund(&devchain, &operator, 2_000_000).await;
    let payer_dir = tempfile::tempdir().unwrap();
    let payer = Arc::new(start_ldk_node_on(
        &devchain.base_url(),
        payer_dir.path(),
        |_| {},
    ));
    open_channel_to_ldk(
        &devchain,
        &operator,
        &payer,
        400_000,
        common::client_scene::PUSH_MSAT,
    )
    .await;
    let key = add_customer(&operator, "Acme").await;
    let flow = FlowClient::new(&lsp.public_api_url(), &key);
    let (_, order) = flow
        .call("/flow/create", Some(json!({ "capacity": 100_000 })))
        .await;
    let id = order["order_id"].as_str().unwrap().to_string();
    let paid = amount(&order, "amount_due");
    let payment = pay_order_over_lightning(&payer, &invoice_json(&order)).await;
    flow.wait_status(&id, "created").await;
    // The node dies inside this request.
    let _ = reqwest::Client::new()
        .post(format!("{}/flow/cancel", lsp.public_api_url()))
        .header("X-VOLTAGE-AUTH", &key.api_key)
        .json(&json!({ "order_id": id }))
        .send()
        .await;
    let status = lsp.wait_exit(DEADLINE).await;
    assert!(!status.success(), "aborted at the crash point: {status:?}");
    assert_eq!(
        payer.payment(&payment).unwrap().status,
        ldk_node::payment::PaymentStatus::Pending,
        "the HTLC is still held by the dead node"
    );

    let mut lsp = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = lsp.wait_running(DEADLINE).await;
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the HTLC of the cancelled order to be taken after the restart",
    )
    .await;
    let flow = FlowClient::new(&lsp.public_api_url(), &key);
    let cancelled = flow.status(&id).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(amount(&cancelled, "credit_refund"), paid);
    let credit = credit_of(&operator, "Acme").await;
    assert_eq!(
        credit.balance_sat, paid,
        "credited once: {:?}",
        credit.entries
    );
    assert_eq!(credit.entries.len(), 1);
    let detail = operator.order(&id).await;
    assert_eq!(detail.summary.state, "FAILED");
    assert_eq!(detail.order["payment"]["bolt11"]["state"], "PAID");
    lsp.terminate(DEADLINE).await;
    payer.stop().unwrap();
}
