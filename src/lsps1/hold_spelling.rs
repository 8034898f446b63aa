//! How the HOLD payment state was spelled to p2p clients, so an operator can see why a wallet
//! stopped answering.
//!
//! bLIP-51 names a held payment `HOLD`; clients built on lightning-liquidity 0.2 (ldk-node 0.7)
//! have no such variant, fail to parse the whole answer and stop listening to this node, unless
//! the operator lists them in `lsps1.hold_as_paid_peers` (then they are told `PAID`). The
//! default stays bLIP-51, and this file makes its effect visible:
//!
//! - `lsps1_hold_answers`: per order and spelling, how many p2p answers carried a payment in
//!   HOLD and when the first and last were sent. `lsp-node order` and `GET /v1/orders/{id}`
//!   show it.
//! - [`HoldSpellingWarnings`]: the first time (per process) a peer not in `hold_as_paid_peers`
//!   is sent `HOLD`, one warning names the peer and the setting.

use std::collections::HashSet;
use std::sync::Mutex;

use bitcoin::secp256k1::PublicKey;
use rusqlite::params;

use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::order::{Order, OrderId, PaymentState, PaymentStateDialect};
use crate::lsps1::store::{OrderBook, StoreError};

/// The p2p answers that carried one order's held payment under one spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldAnswers {
    /// `HOLD` (bLIP-51) or `PAID` (for peers in `hold_as_paid_peers`).
    pub spelling: String,
    pub answers: u64,
    pub first_at: u64,
    pub last_at: u64,
}

/// The word a p2p answer uses for a held payment, or None if no payment of `order` is held.
pub fn hold_spelling(order: &Order, dialect: PaymentStateDialect) -> Option<&'static str> {
    let held = order
        .bolt11
        .as_ref()
        .map(|b| b.state)
        .into_iter()
        .chain(order.onchain.as_ref().map(|o| o.state))
        .any(|state| state == PaymentState::Hold);
    held.then(|| dialect.spell(PaymentState::Hold))
}

impl OrderBook {
    /// Counts one p2p answer that spelled `order`'s held payment as `spelling`.
    pub fn record_hold_answer(&self, order: &OrderId, spelling: &str) -> Result<(), StoreError> {
        let now = to_sql_u64(self.clock().now_unix_secs());
        self.conn().execute(
            "INSERT INTO lsps1_hold_answers (order_id, spelling, answers, first_at, last_at)
             VALUES (?1, ?2, 1, ?3, ?3)
             ON CONFLICT (order_id, spelling)
             DO UPDATE SET answers = answers + 1, last_at = excluded.last_at",
            params![order.as_str(), spelling, now],
        )?;
        Ok(())
    }

    /// Every spelling `order`'s held payment was sent with, first used first.
    pub fn hold_answers(&self, order: &OrderId) -> Result<Vec<HoldAnswers>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT spelling, answers, first_at, last_at FROM lsps1_hold_answers
             WHERE order_id = ?1 ORDER BY first_at, spelling",
        )?;
        let rows = statement.query_map(params![order.as_str()], |row| {
            Ok(HoldAnswers {
                spelling: row.get(0)?,
                answers: from_sql_u64(row.get(1)?),
                first_at: from_sql_u64(row.get(2)?),
                last_at: from_sql_u64(row.get(3)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Peers already warned about this process's bLIP-51 HOLD spelling.
#[derive(Default)]
pub struct HoldSpellingWarnings {
    warned: Mutex<HashSet<PublicKey>>,
}

impl HoldSpellingWarnings {
    /// True the first time `peer` is offered, false after. Only peers with a held payment reach
    /// this, so the set grows with paid orders, not with requests.
    pub fn first_for(&self, peer: &PublicKey) -> bool {
        self.warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(*peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_is_warned_once() {
        let warnings = HoldSpellingWarnings::default();
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let peer = |byte: u8| {
            let key = bitcoin::secp256k1::SecretKey::from_slice(&[byte; 32]).expect("valid key");
            PublicKey::from_secret_key(&secp, &key)
        };
        assert!(warnings.first_for(&peer(1)));
        assert!(!warnings.first_for(&peer(1)));
        assert!(warnings.first_for(&peer(2)));
    }
}
