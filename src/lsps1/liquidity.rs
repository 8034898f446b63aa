//! The liquidity guard: never sell a channel the wallet cannot fund.
//!
//! Every accepted order that has not opened its channel yet holds a reservation of
//! `lsp_balance_sat + client_balance_sat + funding fee` (the whole channel capacity: the
//! client's payment is not counted as available, because before the order is PAID it is not
//! spendable and a bolt11 payment never reaches the wallet). A new order is accepted only if
//! its reservation fits in `spendable - reserved`, where `spendable` is the wallet's spendable
//! balance passed in by the caller and `reserved` is the sum of open reservations in the store.
//!
//! The decision is [`check`], pure. The order book calls it inside the transaction that creates
//! the order and inserts the reservation, so two concurrent orders cannot both take the same
//! sats; it releases the reservation in the transaction that records the channel as funded or
//! the order as failed. A rejected request reserves nothing and is answered with error code 1.
//!
//! `get_info` advertises what can be sold now ([`cap_to_sellable`]): the maximum balances are
//! the configured ones, lowered to what is spendable, not reserved and left after a funding
//! fee. Capital comes back into them when a lease's channel closes and its funds are spendable
//! again.

use serde::{Deserialize, Serialize};

/// What a new order needs to reserve and what the wallet can spend right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRequest {
    /// From [`reservation_for`].
    pub amount_sat: u64,
    /// The wallet's spendable balance (confirmed, or trusted unconfirmed change), in sats.
    pub spendable_sat: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiquidityError {
    /// Shown to the client without the numbers: our balance is nobody's business.
    #[error("the LSP cannot fund a channel of this size right now; try a smaller lsp_balance_sat or try again later")]
    Insufficient { needed_sat: u64, available_sat: u64 },
    #[error("the channel size and funding fee of this order overflow")]
    Overflow,
}

/// The sats an order must reserve: its full capacity plus the funding transaction fee.
pub fn reservation_for(
    lsp_balance_sat: u64,
    client_balance_sat: u64,
    funding_fee_sat: u64,
) -> Result<u64, LiquidityError> {
    lsp_balance_sat
        .checked_add(client_balance_sat)
        .and_then(|capacity| capacity.checked_add(funding_fee_sat))
        .ok_or(LiquidityError::Overflow)
}

/// Accepts the reservation if `needed_sat` fits in what is spendable and not yet reserved.
pub fn check(spendable_sat: u64, reserved_sat: u64, needed_sat: u64) -> Result<(), LiquidityError> {
    let available_sat = spendable_sat.saturating_sub(reserved_sat);
    if needed_sat <= available_sat {
        Ok(())
    } else {
        Err(LiquidityError::Insufficient {
            needed_sat,
            available_sat,
        })
    }
}

/// Lowers the maximum balances of a `get_info` answer (`info`, amounts as decimal strings) to
/// `sellable_sat`: a channel's whole capacity is reserved, so neither side of it, nor the
/// channel, can be larger than what the wallet can fund now.
pub fn cap_to_sellable(info: &mut serde_json::Value, sellable_sat: u64) {
    for key in [
        "max_initial_lsp_balance_sat",
        "max_initial_client_balance_sat",
        "max_channel_balance_sat",
    ] {
        let configured = info[key].as_str().and_then(|s| s.parse::<u64>().ok());
        if let Some(configured) = configured {
            info[key] = serde_json::json!(configured.min(sellable_sat).to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_is_capacity_plus_funding_fee() {
        assert_eq!(reservation_for(1_000_000, 100_000, 2_205), Ok(1_102_205));
        assert_eq!(
            reservation_for(u64::MAX, 1, 0),
            Err(LiquidityError::Overflow)
        );
    }

    #[test]
    fn advertised_maxima_never_exceed_what_can_be_funded() {
        let mut info = serde_json::json!({
            "max_initial_lsp_balance_sat": "10000000",
            "max_initial_client_balance_sat": "1000000",
            "max_channel_balance_sat": "16777215",
            "min_initial_lsp_balance_sat": "20000",
        });
        cap_to_sellable(&mut info, 2_500_000);
        assert_eq!(info["max_initial_lsp_balance_sat"], "2500000");
        assert_eq!(info["max_initial_client_balance_sat"], "1000000");
        assert_eq!(info["max_channel_balance_sat"], "2500000");
        assert_eq!(info["min_initial_lsp_balance_sat"], "20000", "minima stay");
    }

    #[test]
    fn decision_table() {
        assert!(check(1_000, 0, 1_000).is_ok());
        assert!(check(1_000, 400, 600).is_ok());
        assert_eq!(
            check(1_000, 400, 601),
            Err(LiquidityError::Insufficient {
                needed_sat: 601,
                available_sat: 600
            })
        );
        // More reserved than spendable (the wallet shrank): nothing is available.
        assert_eq!(
            check(100, 500, 1),
            Err(LiquidityError::Insufficient {
                needed_sat: 1,
                available_sat: 0
            })
        );
        assert!(check(0, 0, 0).is_ok());
    }

    #[test]
    fn rejection_message_hides_our_balance() {
        let message = LiquidityError::Insufficient {
            needed_sat: 123_456,
            available_sat: 654_321,
        }
        .to_string();
        assert!(
            !message.contains("123") && !message.contains("654"),
            "{message}"
        );
    }
}
