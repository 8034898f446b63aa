//! The operator contract ([`OperatorApi`]) for the whole program: node calls go to the node,
//! order, coupon and customer calls to the LSPS1 order service (refused with a sentence when the node
//! sells no channels).

use std::sync::Arc;

use super::App;
use crate::api::*;
use crate::lsps1::customer_admin;
use crate::lsps1::operator as orders;
use crate::lsps1::service::OrderService;

impl App {
    fn order_service_or_refuse(&self) -> OperatorResult<Arc<OrderService>> {
        self.order_service().ok_or_else(|| {
            OperatorError::Unavailable(
                "this node does not sell channels: set `enabled = true` in the [lsps1] section"
                    .to_string(),
            )
        })
    }

    /// Runs `work` against the order service on the blocking pool (it waits on SQLite).
    async fn on_order_service<T: Send + 'static>(
        &self,
        work: impl FnOnce(&OrderService) -> OperatorResult<T> + Send + 'static,
    ) -> OperatorResult<T> {
        let service = self.order_service_or_refuse()?;
        tokio::task::spawn_blocking(move || work(&service))
            .await
            .map_err(|e| OperatorError::Internal(format!("the request failed: {e}")))?
    }
}

impl OperatorApi for App {
    async fn info(&self) -> OperatorResult<NodeInfo> {
        self.node().info().await
    }

    async fn balances(&self) -> OperatorResult<Balances> {
        self.node().balances().await
    }

    async fn new_address(&self) -> OperatorResult<NewAddress> {
        self.node().new_address().await
    }

    async fn send_onchain(&self, req: SendOnchain) -> OperatorResult<Txid> {
        self.node().send_onchain(req).await
    }

    async fn peers(&self) -> OperatorResult<Vec<PeerInfo>> {
        self.node().peers().await
    }

    async fn connect_peer(&self, req: ConnectPeer) -> OperatorResult<Empty> {
        self.node().connect_peer(req).await
    }

    async fn channels(&self) -> OperatorResult<Vec<ChannelInfo>> {
        self.node().channels().await
    }

    async fn open_channel(&self, req: OpenChannel) -> OperatorResult<OpenedChannel> {
        self.node().open_channel(req).await
    }

    async fn close_channel(&self, req: CloseChannel) -> OperatorResult<Empty> {
        if let (Some(service), false) = (self.order_service(), req.override_lease) {
            let channels = self.node().channels().await?;
            let leased = channels
                .iter()
                .find(|c| c.channel_id == req.channel_id || c.user_channel_id == req.channel_id)
                .and_then(|c| c.user_channel_id.parse::<u128>().ok());
            if let Some(user_channel_id) = leased {
                orders::check_close_allowed(&service, user_channel_id)?;
            }
        }
        self.node().close_channel(req).await
    }

    async fn payments(&self) -> OperatorResult<Vec<PaymentInfo>> {
        self.node().payments().await
    }

    async fn create_invoice(&self, req: CreateInvoice) -> OperatorResult<Invoice> {
        self.node().create_invoice(req).await
    }

    async fn pay_invoice(&self, req: PayInvoice) -> OperatorResult<PaymentInfo> {
        self.node().pay_invoice(req).await
    }

    async fn sync(&self) -> OperatorResult<SyncStatus> {
        self.node().sync().await
    }

    async fn orders(&self, query: OrderQuery) -> OperatorResult<Vec<OrderSummary>> {
        orders::list_orders(&*self.order_service_or_refuse()?, query)
    }

    async fn order(&self, order_id: String) -> OperatorResult<OrderDetail> {
        orders::order_detail(&*self.order_service_or_refuse()?, &order_id)
    }

    async fn cancel_order(&self, req: CancelOrder) -> OperatorResult<OrderDetail> {
        orders::cancel_order(&*self.order_service_or_refuse()?, req)
    }

    async fn rescan_order(&self, req: RescanOrder) -> OperatorResult<RescanResult> {
        orders::rescan_order(&*self.order_service_or_refuse()?, req).await
    }

    async fn leases(&self, query: LeaseQuery) -> OperatorResult<LeaseList> {
        orders::leases(&*self.order_service_or_refuse()?, query)
    }

    async fn close_lease(&self, req: CloseLease) -> OperatorResult<LeaseInfo> {
        orders::close_lease(&*self.order_service_or_refuse()?, req)
    }

    async fn keep_lease(&self, req: KeepLease) -> OperatorResult<LeaseInfo> {
        orders::keep_lease(&*self.order_service_or_refuse()?, req)
    }

    async fn coupons(&self) -> OperatorResult<Vec<CouponInfo>> {
        orders::coupons(&*self.order_service_or_refuse()?)
    }

    async fn create_coupon(&self, req: CreateCoupon) -> OperatorResult<CouponInfo> {
        orders::create_coupon(&*self.order_service_or_refuse()?, req)
    }

    async fn delete_coupon(&self, req: DeleteCoupon) -> OperatorResult<Empty> {
        orders::delete_coupon(&*self.order_service_or_refuse()?, req)
    }

    async fn customers(&self) -> OperatorResult<Vec<CustomerInfo>> {
        self.on_order_service(customer_admin::customers).await
    }

    async fn add_customer(&self, req: AddCustomer) -> OperatorResult<CustomerKey> {
        self.on_order_service(|s| customer_admin::add_customer(s, req))
            .await
    }

    async fn disable_customer(&self, req: DisableCustomer) -> OperatorResult<CustomerInfo> {
        self.on_order_service(|s| customer_admin::disable_customer(s, req))
            .await
    }

    async fn delete_customer(&self, req: CustomerRef) -> OperatorResult<Empty> {
        self.on_order_service(|s| customer_admin::delete_customer(s, req))
            .await
    }

    async fn rotate_customer_key(&self, req: CustomerRef) -> OperatorResult<CustomerKey> {
        self.on_order_service(|s| customer_admin::rotate_customer_key(s, req))
            .await
    }

    async fn set_customer_terms(&self, req: SetCustomerTerms) -> OperatorResult<CustomerInfo> {
        self.on_order_service(|s| customer_admin::set_customer_terms(s, req))
            .await
    }

    async fn customer_credit(&self, customer: String) -> OperatorResult<CustomerCredit> {
        self.on_order_service(move |s| customer_admin::customer_credit(s, &customer))
            .await
    }

    async fn adjust_credit(&self, req: AdjustCredit) -> OperatorResult<CustomerCredit> {
        self.on_order_service(|s| customer_admin::adjust_credit(s, req))
            .await
    }

    async fn issue_credit_coupon(
        &self,
        req: IssueCreditCoupon,
    ) -> OperatorResult<CreditCouponInfo> {
        self.on_order_service(|s| customer_admin::issue_credit_coupon(s, req))
            .await
    }

    async fn metrics(&self) -> OperatorResult<Metrics> {
        let node = self.node().metrics();
        let orders = match self.order_service() {
            Some(service) => Some(
                crate::lsps1::metrics::order_metrics(&service, node.block_height)
                    .map_err(|e| OperatorError::Internal(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Metrics { node, orders })
    }
}
