//! A fake [`OperatorApi`] that records every call it receives, and a helper serving it through
//! the real admin router on 127.0.0.1 port 0. Shared by the admin router and operator CLI tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use lsp_node::api::*;
use lsp_node::http::admin;

/// One call the fake received: the method name and its request, as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    pub method: &'static str,
    pub request: serde_json::Value,
}

#[derive(Default)]
pub struct FakeApi {
    calls: Mutex<Vec<RecordedCall>>,
    /// When set, every call answers with this error (after being recorded).
    fail_with: Mutex<Option<OperatorError>>,
}

pub const FAKE_NODE_ID: &str = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";
pub const FAKE_ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
pub const FAKE_TXID: &str = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b";
pub const FAKE_CHANNEL_ID: &str =
    "7f8e9d0c1b2a39485766554433221100ffeeddccbbaa99887766554433221100";
pub const FAKE_PAYMENT_HASH: &str =
    "0001020304050607080910111213141516171819202122232425262728293031";
pub const FAKE_INVOICE: &str = "lnbcrt10u1pfakeinvoicefortests";

impl FakeApi {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeApi::default())
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().unwrap().clone()
    }

    pub fn fail_with(&self, error: OperatorError) {
        *self.fail_with.lock().unwrap() = Some(error);
    }

    fn record<T: serde::Serialize>(&self, method: &'static str, request: &T) -> OperatorResult<()> {
        let request = serde_json::to_value(request).expect("requests serialize");
        self.calls
            .lock()
            .unwrap()
            .push(RecordedCall { method, request });
        match self.fail_with.lock().unwrap().clone() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    pub fn payment() -> PaymentInfo {
        PaymentInfo {
            payment_hash: FAKE_PAYMENT_HASH.to_string(),
            direction: PaymentDirection::Outbound,
            amount_msat: Some(250_000),
            fee_paid_msat: Some(1_000),
            status: PaymentStatus::Succeeded,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_005,
        }
    }
}

impl OperatorApi for FakeApi {
    async fn info(&self) -> OperatorResult<NodeInfo> {
        self.record("info", &())?;
        Ok(NodeInfo {
            node_id: FAKE_NODE_ID.to_string(),
            network: "regtest".to_string(),
            block_height: 144,
            block_hash: "00".repeat(32),
            last_sync_at: Some(1_700_000_000),
            listening_addresses: vec!["127.0.0.1:9735".to_string()],
            version: "0.1.0".to_string(),
            num_peers: 2,
            num_channels: 1,
            chain_source: ChainSourceStatus {
                url: "http://127.0.0.1:3002".to_string(),
                synced: true,
                ..ChainSourceStatus::default()
            },
        })
    }

    async fn balances(&self) -> OperatorResult<Balances> {
        self.record("balances", &())?;
        Ok(Balances {
            onchain_confirmed_sat: 1_500_000,
            onchain_unconfirmed_sat: 20_000,
            lightning_sat: 300_000,
        })
    }

    async fn new_address(&self) -> OperatorResult<NewAddress> {
        self.record("new_address", &())?;
        Ok(NewAddress {
            address: FAKE_ADDRESS.to_string(),
        })
    }

    async fn send_onchain(&self, req: SendOnchain) -> OperatorResult<Txid> {
        self.record("send_onchain", &req)?;
        Ok(Txid {
            txid: FAKE_TXID.to_string(),
        })
    }

    async fn peers(&self) -> OperatorResult<Vec<PeerInfo>> {
        self.record("peers", &())?;
        Ok(vec![PeerInfo {
            node_id: FAKE_NODE_ID.to_string(),
            address: Some("127.0.0.1:9736".to_string()),
            connected: true,
        }])
    }

    async fn connect_peer(&self, req: ConnectPeer) -> OperatorResult<Empty> {
        self.record("connect_peer", &req)?;
        Ok(Empty {})
    }

    async fn channels(&self) -> OperatorResult<Vec<ChannelInfo>> {
        self.record("channels", &())?;
        Ok(vec![ChannelInfo {
            channel_id: FAKE_CHANNEL_ID.to_string(),
            user_channel_id: "42".to_string(),
            counterparty_node_id: FAKE_NODE_ID.to_string(),
            funding_txo: Some(format!("{FAKE_TXID}:1")),
            capacity_sat: 1_000_000,
            outbound_msat: 700_000_000,
            inbound_msat: 290_000_000,
            is_channel_ready: true,
            is_usable: true,
            is_announced: false,
            is_outbound: true,
            confirmations: Some(6),
            pending_htlcs: 0,
        }])
    }

    async fn open_channel(&self, req: OpenChannel) -> OperatorResult<OpenedChannel> {
        self.record("open_channel", &req)?;
        Ok(OpenedChannel {
            channel_id: Some(FAKE_CHANNEL_ID.to_string()),
            user_channel_id: "42".to_string(),
        })
    }

    async fn close_channel(&self, req: CloseChannel) -> OperatorResult<Empty> {
        self.record("close_channel", &req)?;
        Ok(Empty {})
    }

    async fn payments(&self) -> OperatorResult<Vec<PaymentInfo>> {
        self.record("payments", &())?;
        Ok(vec![FakeApi::payment()])
    }

    async fn create_invoice(&self, req: CreateInvoice) -> OperatorResult<Invoice> {
        self.record("create_invoice", &req)?;
        Ok(Invoice {
            invoice: FAKE_INVOICE.to_string(),
            payment_hash: FAKE_PAYMENT_HASH.to_string(),
        })
    }

    async fn pay_invoice(&self, req: PayInvoice) -> OperatorResult<PaymentInfo> {
        self.record("pay_invoice", &req)?;
        Ok(FakeApi::payment())
    }

    async fn sync(&self) -> OperatorResult<SyncStatus> {
        self.record("sync", &())?;
        Ok(SyncStatus {
            block_height: 144,
            last_sync_at: Some(1_700_000_000),
        })
    }

    async fn orders(&self, query: OrderQuery) -> OperatorResult<Vec<OrderSummary>> {
        self.record("orders", &query)?;
        let stuck =
            (query.stuck == Some(true)).then(|| "paid, but its channel is not funded".into());
        Ok(vec![OrderSummary {
            stuck,
            ..Self::order_summary()
        }])
    }

    async fn order(&self, order_id: String) -> OperatorResult<OrderDetail> {
        self.record("order", &order_id)?;
        Ok(Self::order_detail())
    }

    async fn cancel_order(&self, req: CancelOrder) -> OperatorResult<OrderDetail> {
        self.record("cancel_order", &req)?;
        Ok(Self::order_detail())
    }

    async fn rescan_order(&self, req: RescanOrder) -> OperatorResult<RescanResult> {
        self.record("rescan_order", &req)?;
        Ok(RescanResult {
            order_id: req.order_id,
            address: FAKE_ADDRESS.to_string(),
            received_sat: 60_000,
            confirmed_sat: 60_000,
            watched_until: 1_700_000_000,
            sync_error: None,
        })
    }

    async fn leases(&self, query: LeaseQuery) -> OperatorResult<LeaseList> {
        self.record("leases", &query)?;
        Ok(LeaseList {
            leases: vec![Self::lease()],
            leased_out_sat: 100_000,
            freed_sat: 0,
            revenue_sat: 2_345,
        })
    }

    async fn close_lease(&self, req: CloseLease) -> OperatorResult<LeaseInfo> {
        self.record("close_lease", &req)?;
        Ok(LeaseInfo {
            state: "CLOSING".to_string(),
            ..Self::lease()
        })
    }

    async fn keep_lease(&self, req: KeepLease) -> OperatorResult<LeaseInfo> {
        self.record("keep_lease", &req)?;
        Ok(LeaseInfo {
            keep_open: true,
            ..Self::lease()
        })
    }

    async fn coupons(&self) -> OperatorResult<Vec<CouponInfo>> {
        self.record("coupons", &())?;
        Ok(vec![Self::coupon()])
    }

    async fn create_coupon(&self, req: CreateCoupon) -> OperatorResult<CouponInfo> {
        self.record("create_coupon", &req)?;
        Ok(Self::coupon())
    }

    async fn delete_coupon(&self, req: DeleteCoupon) -> OperatorResult<Empty> {
        self.record("delete_coupon", &req)?;
        Ok(Empty {})
    }

    async fn customers(&self) -> OperatorResult<Vec<CustomerInfo>> {
        self.record("customers", &())?;
        Ok(vec![Self::customer()])
    }

    async fn add_customer(&self, req: AddCustomer) -> OperatorResult<CustomerKey> {
        self.record("add_customer", &req)?;
        Ok(Self::customer_key())
    }

    async fn disable_customer(&self, req: DisableCustomer) -> OperatorResult<CustomerInfo> {
        self.record("disable_customer", &req)?;
        Ok(CustomerInfo {
            disabled: req.disabled,
            ..Self::customer()
        })
    }

    async fn delete_customer(&self, req: CustomerRef) -> OperatorResult<Empty> {
        self.record("delete_customer", &req)?;
        Ok(Empty {})
    }

    async fn rotate_customer_key(&self, req: CustomerRef) -> OperatorResult<CustomerKey> {
        self.record("rotate_customer_key", &req)?;
        Ok(Self::customer_key())
    }

    async fn set_customer_terms(&self, req: SetCustomerTerms) -> OperatorResult<CustomerInfo> {
        self.record("set_customer_terms", &req)?;
        Ok(Self::customer())
    }

    async fn customer_credit(&self, customer: String) -> OperatorResult<CustomerCredit> {
        self.record("customer_credit", &customer)?;
        Ok(Self::credit())
    }

    async fn adjust_credit(&self, req: AdjustCredit) -> OperatorResult<CustomerCredit> {
        self.record("adjust_credit", &req)?;
        Ok(Self::credit())
    }

    async fn issue_credit_coupon(
        &self,
        req: IssueCreditCoupon,
    ) -> OperatorResult<CreditCouponInfo> {
        self.record("issue_credit_coupon", &req)?;
        Ok(CreditCouponInfo {
            code: "5f0c6a1e9b2d4c7f8a3e1d2c3b4a5968".to_string(),
            customer_id: Self::customer().id,
            amount_sat: req.amount_sat,
            created_at: 1_700_000_000,
            redeemed_at: None,
        })
    }

    async fn metrics(&self) -> OperatorResult<Metrics> {
        self.record("metrics", &())?;
        Ok(Metrics {
            node: NodeMetrics {
                block_height: 144,
                broadcasts_open: vec![StateCount {
                    state: "sending".to_string(),
                    count: 1,
                }],
                ..NodeMetrics::default()
            },
            orders: Some(OrderMetrics {
                orders_by_state: vec![StateCount {
                    state: "CREATED".to_string(),
                    count: 3,
                }],
                ..OrderMetrics::default()
            }),
        })
    }
}

impl FakeApi {
    pub fn order_summary() -> OrderSummary {
        OrderSummary {
            order_id: "a3a06afbd700e7b94c38c2f5a4b94a1d".to_string(),
            client_node_id: Some(FAKE_NODE_ID.to_string()),
            state: "COMPLETED".to_string(),
            bolt11_state: Some("PAID".to_string()),
            onchain_state: Some("EXPECT_PAYMENT".to_string()),
            lsp_balance_sat: 100_000,
            client_balance_sat: 20_000,
            order_total_sat: 21_561,
            source: "p2p".to_string(),
            created_at: 1_700_000_000,
            updated_at: 1_700_000_060,
            funding_outpoint: Some(format!("{FAKE_TXID}:0")),
            stuck: None,
        }
    }

    pub fn order_detail() -> OrderDetail {
        OrderDetail {
            summary: Self::order_summary(),
            order: serde_json::json!({ "order_id": "a3a06afbd700e7b94c38c2f5a4b94a1d" }),
            price: serde_json::json!({ "fee_total_sat": 1_561 }),
            coupon_code: None,
            email: None,
            events: vec![OrderEventInfo {
                at: 1_700_000_000,
                event: "created".to_string(),
                from_state: None,
                to_state: "CREATED bolt11=EXPECT_PAYMENT".to_string(),
                reason: "order accepted".to_string(),
                detail: None,
            }],
            refunds: Vec::new(),
            hold_answers: Vec::new(),
            lease: None,
        }
    }

    pub fn lease() -> LeaseInfo {
        LeaseInfo {
            order_id: "a3a06afbd700e7b94c38c2f5a4b94a1d".to_string(),
            channel: format!("{FAKE_TXID}:0"),
            client_node_id: FAKE_NODE_ID.to_string(),
            capacity_sat: 100_000,
            lsp_balance_sat: 100_000,
            lease_blocks: 1_000,
            start_height: Some(200),
            end_height: Some(1_200),
            blocks_left: Some(1_056),
            state: "ACTIVE".to_string(),
            revenue_sat: 2_345,
            closed_by: None,
            close_kind: None,
            closed_at: None,
            keep_open: false,
        }
    }

    pub fn customer() -> CustomerInfo {
        CustomerInfo {
            id: "0d1f2e3c4b5a69788796a5b4c3d2e1f0".to_string(),
            name: "Acme wallet".to_string(),
            disabled: false,
            created_at: 1_700_000_000,
            key_rotated_at: None,
            requests_per_minute: Some(600),
            orders_per_minute: None,
            discount_percent: 10,
            credit_sat: 2_500,
        }
    }

    pub fn customer_key() -> CustomerKey {
        CustomerKey {
            customer: Self::customer(),
            api_key: "ab".repeat(32),
        }
    }

    pub fn credit() -> CustomerCredit {
        CustomerCredit {
            customer: Self::customer(),
            balance_sat: 2_500,
            entries: vec![CreditEntryInfo {
                seq: 1,
                at: 1_700_000_000,
                amount_sat: 2_500,
                kind: "adjustment".to_string(),
                order_id: None,
                coupon_code: None,
                reason: "welcome credit".to_string(),
                balance_after_sat: 2_500,
            }],
            coupons: Vec::new(),
        }
    }

    pub fn coupon() -> CouponInfo {
        CouponInfo {
            code: "FRIENDS".to_string(),
            kind: "percent".to_string(),
            value: 50,
            max_uses: Some(10),
            uses: 1,
            expires_at: None,
            created_at: 1_700_000_000,
        }
    }
}

/// A real admin router serving `api` over real TCP on 127.0.0.1, on a runtime of its own thread
/// so that blocking callers (the CLI binary, run as a child process) can use it too.
pub struct ServedApi {
    pub addr: SocketAddr,
    pub api: Arc<FakeApi>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServedApi {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub fn serve(api: Arc<FakeApi>, key: &str) -> ServedApi {
    let router = admin::router(api.clone(), key.to_string());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, on_shutdown) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = on_shutdown.await;
                })
                .await
                .unwrap();
        });
    });
    ServedApi {
        addr,
        api,
        shutdown: Some(shutdown),
        thread: Some(thread),
    }
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
