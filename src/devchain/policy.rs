//! Why a broadcast transaction is refused, worded the way Bitcoin Core words it.
//!
//! Esplora forwards broadcasts to bitcoind and, on failure, answers HTTP 400 with the body
//! `sendrawtransaction RPC error: {"code":<rpc code>,"message":"<reject reason>"}`. Clients (LDK,
//! BDK, ldk-node) log or match on that text, so the devchain reproduces both the RPC codes and
//! the reject-reason strings of Bitcoin Core's mempool acceptance.

use std::fmt;

use bitcoin::{Amount, Txid};

/// `RPC_VERIFY_ERROR`: used by Core for missing or already spent inputs.
const RPC_VERIFY_ERROR: i32 = -25;
/// `RPC_VERIFY_REJECTED`: every other mempool policy or consensus rejection.
const RPC_VERIFY_REJECTED: i32 = -26;
/// `RPC_VERIFY_ALREADY_IN_CHAIN`.
const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;
/// `RPC_DESERIALIZATION_ERROR`.
const RPC_DESERIALIZATION_ERROR: i32 = -22;

/// A refused transaction: Core's RPC error code and reject reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: i32,
    pub reason: String,
}

impl Rejection {
    fn rejected(reason: impl Into<String>) -> Self {
        Rejection {
            code: RPC_VERIFY_REJECTED,
            reason: reason.into(),
        }
    }

    pub(crate) fn decode_failed() -> Self {
        Rejection {
            code: RPC_DESERIALIZATION_ERROR,
            reason: "TX decode failed. Make sure the tx has at least one input.".to_string(),
        }
    }

    pub(crate) fn coinbase() -> Self {
        Self::rejected("coinbase")
    }

    pub(crate) fn no_inputs() -> Self {
        Self::rejected("bad-txns-vin-empty")
    }

    pub(crate) fn no_outputs() -> Self {
        Self::rejected("bad-txns-vout-empty")
    }

    pub(crate) fn duplicate_inputs() -> Self {
        Self::rejected("bad-txns-inputs-duplicate")
    }

    pub(crate) fn output_too_large() -> Self {
        Self::rejected("bad-txns-vout-toolarge")
    }

    pub(crate) fn output_total_too_large() -> Self {
        Self::rejected("bad-txns-txouttotal-toolarge")
    }

    pub(crate) fn non_final() -> Self {
        Self::rejected("non-final")
    }

    pub(crate) fn non_bip68_final() -> Self {
        Self::rejected("non-BIP68-final")
    }

    pub(crate) fn already_in_chain() -> Self {
        Rejection {
            code: RPC_VERIFY_ALREADY_IN_CHAIN,
            reason: "Transaction outputs already in utxo set".to_string(),
        }
    }

    /// An input refers to an output that does not exist or is spent in the chain.
    pub(crate) fn missing_or_spent() -> Self {
        Rejection {
            code: RPC_VERIFY_ERROR,
            reason: "bad-txns-inputs-missingorspent".to_string(),
        }
    }

    pub(crate) fn too_many_replacements(txid: Txid, count: usize) -> Self {
        Self::rejected(format!(
            "too many potential replacements, rejecting replacement {txid}; too many potential replacements ({count} > 100)"
        ))
    }

    pub(crate) fn spends_conflicting_tx(txid: Txid, spent: Txid) -> Self {
        Self::rejected(format!(
            "bad-txns-spends-conflicting-tx, {txid} spends conflicting transaction {spent}"
        ))
    }

    pub(crate) fn replacement_adds_unconfirmed(txid: Txid) -> Self {
        Self::rejected(format!(
            "replacement-adds-unconfirmed, replacement {txid} adds unconfirmed input"
        ))
    }

    pub(crate) fn replacement_feerate_too_low(
        txid: Txid,
        fee: Amount,
        vsize: u64,
        old_fee: Amount,
        old_vsize: u64,
    ) -> Self {
        Self::rejected(format!(
            "insufficient fee, rejecting replacement {txid}; new feerate {:.8} BTC/kvB <= old feerate {:.8} BTC/kvB",
            fee.to_btc() * 1000.0 / vsize as f64,
            old_fee.to_btc() * 1000.0 / old_vsize as f64
        ))
    }

    pub(crate) fn replacement_fee_below_evicted(txid: Txid, fee: Amount, evicted: Amount) -> Self {
        Self::rejected(format!(
            "insufficient fee, rejecting replacement {txid}, less fees than conflicting txs; {} < {}",
            fee.to_btc(),
            evicted.to_btc()
        ))
    }

    pub(crate) fn replacement_adds_too_little(txid: Txid, added: Amount, needed: Amount) -> Self {
        Self::rejected(format!(
            "insufficient fee, rejecting replacement {txid}, not enough additional fees to relay; {} < {}",
            added.to_btc(),
            needed.to_btc()
        ))
    }

    pub(crate) fn premature_coinbase_spend(depth: u32) -> Self {
        Self::rejected(format!(
            "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth {depth}"
        ))
    }

    pub(crate) fn inputs_below_outputs(value_in: Amount, value_out: Amount) -> Self {
        Self::rejected(format!(
            "bad-txns-in-belowout, value in ({}) < value out ({})",
            value_in.to_btc(),
            value_out.to_btc()
        ))
    }

    /// The body Esplora sends with HTTP 400 for this rejection.
    pub fn esplora_body(&self) -> String {
        let detail = serde_json::json!({ "code": self.code, "message": self.reason });
        format!("sendrawtransaction RPC error: {detail}")
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esplora_body_matches_electrs_format() {
        let txid: Txid = "8f4e2f4b3f9c9f1f6e1a5b8d4c3b2a1908070605040302010000000000000000"
            .parse()
            .unwrap();
        assert_eq!(
            Rejection::replacement_adds_unconfirmed(txid).esplora_body(),
            format!(
                r#"sendrawtransaction RPC error: {{"code":-26,"message":"replacement-adds-unconfirmed, replacement {txid} adds unconfirmed input"}}"#
            )
        );
        assert_eq!(
            Rejection::missing_or_spent().esplora_body(),
            r#"sendrawtransaction RPC error: {"code":-25,"message":"bad-txns-inputs-missingorspent"}"#
        );
    }
}
