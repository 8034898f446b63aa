//! The price of an order: one pure function, [`price`], used by p2p, HTTP quotes and HTTP orders.
//!
//! ```text
//! service  = base_fee_sat
//!          + ceil(lsp_balance_sat * proportional_ppm / 1e6)
//!          + ceil(lsp_balance_sat * lease_ppm_per_year * channel_expiry_blocks / (1e6 * 52 560))
//! discount = coupon applied to `service` only (rounded down), never to on-chain costs
//! onchain  = ceil(funding_tx_weight * fee_rate_sat_per_kwu / 1000)
//! refund   = ceil(refund_tx_weight  * fee_rate_sat_per_kwu / 1000)   (on-chain payment only)
//! fee_total_sat   = service - discount + onchain + refund
//! order_total_sat = fee_total_sat + client_balance_sat
//! ```
//! Every fee term rounds up and the discount rounds down: any rounding is in the LSP's favour,
//! by less than one sat per term. All arithmetic is done in `u128`; a result that does not fit
//! a `u64` is [`PricingError::Overflow`], never a wrapped number.
//!
//! Transaction sizes (weight units; vbytes = weight / 4), for a wallet of P2WPKH coins:
//! - overhead 42 WU: version 4 + locktime 4 + input and output counts 1 + 1, times 4, plus the
//!   2 WU segwit marker and flag;
//! - P2WPKH input 272 WU: outpoint 36 + script length 1 + sequence 4 = 41 bytes (164 WU) plus a
//!   108 WU witness (item count 1, 73-byte signature with its length, 34-byte key with its length);
//! - P2WSH funding output 172 WU (value 8 + length 1 + script 34, times 4);
//! - P2WPKH change output 124 WU (8 + 1 + 22, times 4);
//! - refund output 172 WU: 43 bytes, the largest standard output (P2WSH or P2TR), because the
//!   client's refund address may be either.
//!
//! The funding transaction is estimated as overhead + `funding_inputs_estimate` inputs + funding
//! output + change; the refund transaction as overhead + one input + the refund output.
//!
//! # Worked example
//! Defaults (`base_fee_sat` 1 000, `proportional_ppm` 1 000, `lease_ppm_per_year` 10 000,
//! 2 funding inputs); an order for `lsp_balance_sat` 1 000 000 and `client_balance_sat`
//! 100 000, leased for 4 320 blocks (30 days), paid on-chain, fee rate 2 500 sat/kWU
//! (10 sat/vB), with a 10 % coupon:
//! - base 1 000
//! - proportional ceil(1 000 000 * 1 000 / 1e6) = 1 000
//! - lease ceil(1 000 000 * 10 000 * 4 320 / 52 560 000 000) = ceil(821.9) = 822
//! - discount floor(10 % of 2 822) = 282
//! - onchain: 42 + 2 * 272 + 172 + 124 = 882 WU; ceil(882 * 2 500 / 1 000) = 2 205
//! - refund reserve: 42 + 272 + 172 = 486 WU; ceil(486 * 2 500 / 1 000) = 1 215
//! - fee_total_sat = 2 822 - 282 + 2 205 + 1 215 = 5 960
//! - order_total_sat = 5 960 + 100 000 = 105 960
//!
//! The same order paid over Lightning has no refund reserve: fee 4 745, total 104 745.
//!
//! # Extensions
//! An extension (LSPS7) of a lease on `lsp_balance_sat` by `blocks` is priced by
//! [`extension_price`]: `base_fee_sat` + the lease term for `blocks`, the coupon on that, and
//! the refund reserve when paid on-chain. There is no proportional fee and no funding fee:
//! the channel exists. `order_total_sat` is `fee_total_sat` (no client balance).

use serde::{Deserialize, Serialize};

use crate::config::lsps1::PricingConfig;
use crate::lsps1::coupons::Discount;

/// Transaction overhead with segwit marker and flag, in weight units.
pub const TX_OVERHEAD_WU: u64 = 42;
/// One P2WPKH input with its witness, in weight units.
pub const P2WPKH_INPUT_WU: u64 = 272;
/// The P2WSH channel funding output, in weight units.
pub const P2WSH_OUTPUT_WU: u64 = 172;
/// A P2WPKH change output, in weight units.
pub const P2WPKH_OUTPUT_WU: u64 = 124;
/// The refund output: the largest standard output (P2WSH / P2TR), in weight units.
pub const REFUND_OUTPUT_WU: u64 = 172;
/// Blocks in a year at one block every ten minutes; the lease rate is per this many blocks.
pub const BLOCKS_PER_YEAR: u64 = 52_560;

/// How the client pays; an on-chain payment adds the cost of a possible refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Lightning,
    Onchain,
}

/// What is being priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRequest {
    pub lsp_balance_sat: u64,
    pub client_balance_sat: u64,
    pub channel_expiry_blocks: u32,
    /// Fee rate expected to confirm the funding within `funding_confirms_within_blocks`,
    /// in sat per 1000 weight units (LDK's unit; 250 sat/kWU = 1 sat/vB). Also used for the
    /// refund estimate.
    pub fee_rate_sat_per_kwu: u64,
    pub payment: PaymentMethod,
    pub discount: Option<Discount>,
}

/// Every component of a price, in sats. Served as-is by the HTTP quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBreakdown {
    pub base_fee_sat: u64,
    pub proportional_fee_sat: u64,
    pub lease_fee_sat: u64,
    pub onchain_fee_sat: u64,
    pub refund_reserve_sat: u64,
    pub discount_sat: u64,
    pub fee_total_sat: u64,
    pub order_total_sat: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("the price of this order is too large to compute; ask for a smaller channel or lease")]
    Overflow,
}

/// Weight of the funding transaction with `inputs` wallet inputs.
pub fn funding_tx_weight(inputs: u8) -> u64 {
    TX_OVERHEAD_WU + u64::from(inputs) * P2WPKH_INPUT_WU + P2WSH_OUTPUT_WU + P2WPKH_OUTPUT_WU
}

/// Weight of the transaction refunding an on-chain payment.
pub fn refund_tx_weight() -> u64 {
    TX_OVERHEAD_WU + P2WPKH_INPUT_WU + REFUND_OUTPUT_WU
}

/// Fee for `weight` WU at `sat_per_kwu`, rounded up.
pub fn fee_for_weight(weight: u64, sat_per_kwu: u64) -> Result<u64, PricingError> {
    narrow(div_ceil(
        u128::from(weight) * u128::from(sat_per_kwu),
        1_000,
    ))
}

/// Computes the price of an order. Pure: same input, same output, on every interface.
pub fn price(
    config: &PricingConfig,
    request: &PriceRequest,
) -> Result<PriceBreakdown, PricingError> {
    let lsp_balance = u128::from(request.lsp_balance_sat);
    let base_fee_sat = config.base_fee_sat;
    let proportional_fee_sat = narrow(div_ceil(
        lsp_balance * u128::from(config.proportional_ppm),
        1_000_000,
    ))?;
    let lease_fee_sat = lease_fee(
        config,
        request.lsp_balance_sat,
        request.channel_expiry_blocks,
    )?;
    let service_fee_sat = base_fee_sat
        .checked_add(proportional_fee_sat)
        .and_then(|s| s.checked_add(lease_fee_sat))
        .ok_or(PricingError::Overflow)?;
    let discount_sat = request
        .discount
        .map_or(0, |d| d.discount_sat(service_fee_sat));

    let onchain_fee_sat = fee_for_weight(
        funding_tx_weight(config.funding_inputs_estimate),
        request.fee_rate_sat_per_kwu,
    )?;
    let refund_reserve_sat = match request.payment {
        PaymentMethod::Lightning => 0,
        PaymentMethod::Onchain => fee_for_weight(refund_tx_weight(), request.fee_rate_sat_per_kwu)?,
    };

    let fee_total_sat = (service_fee_sat - discount_sat)
        .checked_add(onchain_fee_sat)
        .and_then(|s| s.checked_add(refund_reserve_sat))
        .ok_or(PricingError::Overflow)?;
    let order_total_sat = fee_total_sat
        .checked_add(request.client_balance_sat)
        .ok_or(PricingError::Overflow)?;

    Ok(PriceBreakdown {
        base_fee_sat,
        proportional_fee_sat,
        lease_fee_sat,
        onchain_fee_sat,
        refund_reserve_sat,
        discount_sat,
        fee_total_sat,
        order_total_sat,
    })
}

/// Computes the price of extending a lease on `lsp_balance_sat` by `blocks` (see the module
/// doc). `fee_rate_sat_per_kwu` prices the refund reserve.
pub fn extension_price(
    config: &PricingConfig,
    lsp_balance_sat: u64,
    blocks: u32,
    fee_rate_sat_per_kwu: u64,
    payment: PaymentMethod,
    discount: Option<Discount>,
) -> Result<PriceBreakdown, PricingError> {
    let lease_fee_sat = lease_fee(config, lsp_balance_sat, blocks)?;
    let service_fee_sat = config
        .base_fee_sat
        .checked_add(lease_fee_sat)
        .ok_or(PricingError::Overflow)?;
    let discount_sat = discount.map_or(0, |d| d.discount_sat(service_fee_sat));
    let refund_reserve_sat = match payment {
        PaymentMethod::Lightning => 0,
        PaymentMethod::Onchain => fee_for_weight(refund_tx_weight(), fee_rate_sat_per_kwu)?,
    };
    let fee_total_sat = (service_fee_sat - discount_sat)
        .checked_add(refund_reserve_sat)
        .ok_or(PricingError::Overflow)?;
    Ok(PriceBreakdown {
        base_fee_sat: config.base_fee_sat,
        proportional_fee_sat: 0,
        lease_fee_sat,
        onchain_fee_sat: 0,
        refund_reserve_sat,
        discount_sat,
        fee_total_sat,
        order_total_sat: fee_total_sat,
    })
}

fn lease_fee(
    config: &PricingConfig,
    lsp_balance_sat: u64,
    blocks: u32,
) -> Result<u64, PricingError> {
    narrow(div_ceil(
        u128::from(lsp_balance_sat) * u128::from(config.lease_ppm_per_year) * u128::from(blocks),
        1_000_000 * u128::from(BLOCKS_PER_YEAR),
    ))
}

fn div_ceil(numerator: u128, denominator: u128) -> u128 {
    numerator.div_ceil(denominator)
}

fn narrow(value: u128) -> Result<u64, PricingError> {
    u64::try_from(value).map_err(|_| PricingError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_request() -> PriceRequest {
        PriceRequest {
            lsp_balance_sat: 1_000_000,
            client_balance_sat: 100_000,
            channel_expiry_blocks: 4_320,
            fee_rate_sat_per_kwu: 2_500,
            payment: PaymentMethod::Onchain,
            discount: Some(Discount::Percent(10)),
        }
    }

    #[test]
    fn an_extension_costs_the_base_fee_and_the_lease_term_only() {
        let config = PricingConfig::default();
        let lightning = extension_price(
            &config,
            1_000_000,
            4_320,
            2_500,
            PaymentMethod::Lightning,
            None,
        )
        .unwrap();
        // base 1 000 + lease 822 (as in the worked example); no proportional, no funding fee.
        assert_eq!(lightning.fee_total_sat, 1_822);
        assert_eq!(lightning.order_total_sat, 1_822);
        assert_eq!(
            (lightning.proportional_fee_sat, lightning.onchain_fee_sat),
            (0, 0)
        );
        let onchain = extension_price(
            &config,
            1_000_000,
            4_320,
            2_500,
            PaymentMethod::Onchain,
            Some(Discount::Percent(10)),
        )
        .unwrap();
        // floor(10 % of 1 822) = 182 off; refund reserve 1 215.
        assert_eq!(onchain.fee_total_sat, 1_822 - 182 + 1_215);
    }

    #[test]
    fn worked_example_from_the_module_doc() {
        let breakdown = price(&PricingConfig::default(), &example_request()).unwrap();
        assert_eq!(
            breakdown,
            PriceBreakdown {
                base_fee_sat: 1_000,
                proportional_fee_sat: 1_000,
                lease_fee_sat: 822,
                onchain_fee_sat: 2_205,
                refund_reserve_sat: 1_215,
                discount_sat: 282,
                fee_total_sat: 5_960,
                order_total_sat: 105_960,
            }
        );
        let lightning = price(
            &PricingConfig::default(),
            &PriceRequest {
                payment: PaymentMethod::Lightning,
                ..example_request()
            },
        )
        .unwrap();
        assert_eq!(
            (lightning.refund_reserve_sat, lightning.fee_total_sat),
            (0, 4_745)
        );
        assert_eq!(lightning.order_total_sat, 104_745);
    }

    #[test]
    fn sizes_match_the_documented_numbers() {
        assert_eq!(funding_tx_weight(1), 610);
        assert_eq!(funding_tx_weight(2), 882);
        assert_eq!(refund_tx_weight(), 486);
    }

    #[test]
    fn zero_lease_charges_no_lease_fee() {
        let request = PriceRequest {
            channel_expiry_blocks: 0,
            discount: None,
            ..example_request()
        };
        let breakdown = price(&PricingConfig::default(), &request).unwrap();
        assert_eq!(breakdown.lease_fee_sat, 0);
        assert_eq!(breakdown.fee_total_sat, 1_000 + 1_000 + 2_205 + 1_215);
    }

    #[test]
    fn fee_terms_round_up_and_discount_rounds_down() {
        let config = PricingConfig {
            base_fee_sat: 0,
            proportional_ppm: 1,
            lease_ppm_per_year: 1,
            funding_inputs_estimate: 1,
        };
        let request = PriceRequest {
            lsp_balance_sat: 1,
            client_balance_sat: 0,
            channel_expiry_blocks: 1,
            fee_rate_sat_per_kwu: 1,
            payment: PaymentMethod::Onchain,
            discount: Some(Discount::Percent(99)),
        };
        let b = price(&config, &request).unwrap();
        assert_eq!((b.proportional_fee_sat, b.lease_fee_sat), (1, 1));
        // 610 WU and 486 WU at 1 sat/kWU are fractions of a sat, charged as one each.
        assert_eq!((b.onchain_fee_sat, b.refund_reserve_sat), (1, 1));
        // 99 % of 2 sat is 1.98 sat; the discount is 1.
        assert_eq!(b.discount_sat, 1);
        assert_eq!(b.fee_total_sat, 3);
    }

    #[test]
    fn discounts_cover_the_service_fee_at_most() {
        let cases = [
            (Discount::FixedSat(500), 500),
            (Discount::FixedSat(1_000_000), 2_822),
            (Discount::Percent(100), 2_822),
            (Discount::Percent(0), 0),
            (Discount::Percent(50), 1_411),
        ];
        for (discount, expected) in cases {
            let request = PriceRequest {
                discount: Some(discount),
                ..example_request()
            };
            let b = price(&PricingConfig::default(), &request).unwrap();
            assert_eq!(b.discount_sat, expected, "{discount:?}");
            // On-chain costs are never discounted.
            assert_eq!(
                b.fee_total_sat,
                2_822 - expected + 2_205 + 1_215,
                "{discount:?}"
            );
            assert_eq!(b.order_total_sat, b.fee_total_sat + 100_000);
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let config = PricingConfig {
            base_fee_sat: u64::MAX,
            ..PricingConfig::default()
        };
        assert_eq!(
            price(&config, &example_request()),
            Err(PricingError::Overflow)
        );

        let huge_client = PriceRequest {
            client_balance_sat: u64::MAX,
            ..example_request()
        };
        assert_eq!(
            price(&PricingConfig::default(), &huge_client),
            Err(PricingError::Overflow)
        );

        let huge_rate = PriceRequest {
            fee_rate_sat_per_kwu: u64::MAX,
            ..example_request()
        };
        assert_eq!(
            price(&PricingConfig::default(), &huge_rate),
            Err(PricingError::Overflow)
        );

        // Huge balances with the maximal rates: the u128 intermediates do not overflow, the
        // u64 result does.
        let config = PricingConfig {
            proportional_ppm: 1_000_000,
            lease_ppm_per_year: 1_000_000,
            ..PricingConfig::default()
        };
        let request = PriceRequest {
            lsp_balance_sat: u64::MAX,
            channel_expiry_blocks: u32::MAX,
            ..example_request()
        };
        assert_eq!(price(&config, &request), Err(PricingError::Overflow));
        assert!(!PricingError::Overflow.to_string().contains('\n'));
    }

    #[test]
    fn lease_scales_linearly_with_length() {
        let one_year = PriceRequest {
            channel_expiry_blocks: BLOCKS_PER_YEAR as u32,
            discount: None,
            ..example_request()
        };
        let b = price(&PricingConfig::default(), &one_year).unwrap();
        assert_eq!(b.lease_fee_sat, 10_000); // 1 % of 1 000 000 for a full year
        let half = PriceRequest {
            channel_expiry_blocks: (BLOCKS_PER_YEAR / 2) as u32,
            ..one_year
        };
        assert_eq!(
            price(&PricingConfig::default(), &half)
                .unwrap()
                .lease_fee_sat,
            5_000
        );
    }
}
