//! The order service's pay-first side ([`crate::lsps1::claims`]): creating an order without its
//! node, claiming it with its token, and what the pay-first HTTP API shows of it (the on-chain
//! payments received, the node's connection).

use bitcoin::secp256k1::PublicKey;

use crate::lsps1::claims::{ClaimRefused, ClaimToken};
use crate::lsps1::order::Order;
use crate::lsps1::rpc::RpcError;
use crate::lsps1::service::{internal_error, NewOrder, OrderService};
use crate::node::wallet::ReceivedOutput;

impl OrderService {
    /// Creates and persists a pay-first order (`request.client_node_id` is ignored: the node is
    /// named later by whoever holds the returned claim token, [`Self::claim_order`]).
    pub fn create_pay_first_order(
        &self,
        request: NewOrder,
    ) -> Result<(Order, ClaimToken), RpcError> {
        let token = ClaimToken::random(&mut rand::rngs::OsRng);
        let request = NewOrder {
            client_node_id: None,
            ..request
        };
        let order = self.new_order(request, Some(&token), None)?;
        Ok((order, token))
    }

    /// Names `node` as the node of the pay-first order `token` claims.
    pub fn claim_order(&self, token: &ClaimToken, node: PublicKey) -> Result<Order, ClaimRefused> {
        let claimed = self.book.claim(token, node)?;
        tracing::info!(order = %claimed.id, %node, "pay-first order claimed");
        self.wake.notify_one();
        Ok(claimed)
    }

    /// The pay-first order `token` claims, if any.
    pub fn pay_first_order(&self, token: &ClaimToken) -> Result<Option<Order>, RpcError> {
        self.book
            .order_by_token(token)
            .map_err(|e| internal_error("could not read the order", &e))
    }

    /// What `order`'s on-chain address has received (confirmed or not).
    pub fn received_onchain(&self, order: &Order) -> Vec<ReceivedOutput> {
        self.receipts(std::iter::once(order))
            .remove(&order.id)
            .map(|receipts| receipts.into_outputs())
            .unwrap_or_default()
    }

    /// Connects to a buyer's node at `address` (`host:port`), remembered so that the node is
    /// dialled again after a restart while its channel is opened.
    pub async fn connect_client(&self, node: PublicKey, address: &str) -> Result<(), String> {
        self.node
            .peers
            .connect_and_remember(node, address)
            .await
            .map_err(|e| e.to_string())
    }
}
