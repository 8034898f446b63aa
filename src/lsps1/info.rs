//! The `get_info` answer: the configured options with their maximum balances lowered to what
//! the wallet can fund now, kept between requests while nothing it is computed from changes.
//!
//! It depends on the wallet's spendable balance, the order book's reserved total and the fee
//! estimate. Each of those sources counts its changes ([`crate::node::wallet::Wallet::changes`],
//! [`crate::lsps1::store::OrderBook::changes`],
//! [`crate::node::chain::EsploraFeeEstimator::changes`]); the kept answer is served while
//! all three counts are those read before it was computed, so it is never older than the last
//! change. The counts are read first: a change during the computation makes the answer stale at
//! once, never wrongly current.

use std::sync::Arc;

use serde_json::Value;

use crate::lsps1::liquidity;
use crate::lsps1::pricing;
use crate::lsps1::service::OrderService;

/// The change counts of the answer's sources.
pub type Sources = [u64; 3];

impl OrderService {
    /// The `get_info` options, their maximum balances lowered to what the wallet can fund now
    /// (spendable, not reserved, less the fee of a funding at the fastest target offered).
    pub fn get_info(&self) -> Arc<Value> {
        if let Some(kept) = self.kept_info() {
            return kept;
        }
        let sources = self.info_sources();
        let options = &self.config.options;
        let mut info = options.get_info_json();
        let rate = self.funding_fee_rate_sat_per_kwu(options.min_funding_confirms_within_blocks);
        let funding_fee = pricing::fee_for_weight(
            pricing::funding_tx_weight(self.config.pricing.funding_inputs_estimate),
            rate,
        )
        .unwrap_or(u64::MAX);
        let reserved = self.book.reserved_sat().unwrap_or(u64::MAX);
        let sellable = self
            .node
            .wallet
            .balances()
            .spendable_sat
            .saturating_sub(reserved)
            .saturating_sub(funding_fee);
        liquidity::cap_to_sellable(&mut info, sellable);
        let info = Arc::new(info);
        self.info.put(sources, Arc::clone(&info));
        info
    }

    /// The kept `get_info` answer if it is current: no I/O, no wait on the wallet or the order
    /// book, so an async task may call it.
    pub fn kept_info(&self) -> Option<Arc<Value>> {
        self.info.get(&self.info_sources())
    }

    fn info_sources(&self) -> Sources {
        [
            self.node.wallet.changes(),
            self.book.changes(),
            self.node.fee_estimator.changes(),
        ]
    }
}
