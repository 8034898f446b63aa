//! What the LSP offers and how it prices: the `[lsps1]` configuration section, read by
//! [`crate::lsps1`].
//!
//! [`Lsps1Options`] are the bLIP-51 `get_info` options plus the payment-option settings that
//! bLIP-51 puts on each order (on-chain confirmations, 0-conf fee floor, expiries).
//! [`Lsps1Config`] adds pricing, the token mode and per-peer limits. Both deserialize from TOML
//! with unknown keys rejected; every field has a default (listed on the field) so an empty
//! section is a working configuration. [`Lsps1Config::validate`] runs once at start and returns
//! one sentence naming the first bad setting.

use lightning_liquidity::lsps1::msgs::LSPS1Options;
use lightning_liquidity::lsps1::service::LSPS1ServiceConfig;
use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;
use serde::{Deserialize, Serialize};

/// Largest channel LDK opens without the `option_support_large_channel` feature (2^24 - 1 sat).
pub const MAX_NON_WUMBO_CHANNEL_SAT: u64 = 16_777_215;

/// bLIP-51: an on-chain payment counts as paid after at most this many confirmations.
pub const MAX_ONCHAIN_PAYMENT_CONFIRMATIONS: u16 = 6;

/// The options advertised in `lsps1.get_info` and applied to every order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lsps1Options {
    /// Smallest channel (lsp + client balance) sold. Default 20 000 sat.
    pub min_channel_balance_sat: u64,
    /// Largest channel sold. Default 16 777 215 sat (largest non-wumbo channel).
    pub max_channel_balance_sat: u64,
    /// Smallest balance the client may buy on its own side (pushed to it). Default 0.
    pub min_initial_client_balance_sat: u64,
    /// Largest client-side balance. Default 1 000 000 sat.
    pub max_initial_client_balance_sat: u64,
    /// Smallest inbound liquidity sold (our side of the channel). Default 20 000 sat.
    pub min_initial_lsp_balance_sat: u64,
    /// Largest inbound liquidity sold. Default 10 000 000 sat.
    pub max_initial_lsp_balance_sat: u64,
    /// Longest lease, in blocks. Default 13 140 (about three months).
    pub max_channel_expiry_blocks: u32,
    /// Fewest confirmations before we send `channel_ready`; 0 allows 0-conf channels. Default 1.
    pub min_required_channel_confirmations: u16,
    /// Fastest funding confirmation target a client may ask for, in blocks. Default 6.
    pub min_funding_confirms_within_blocks: u16,
    /// Whether clients may ask for a channel without reserve. Default false.
    pub supports_zero_channel_reserve: bool,
    /// Offer an on-chain payment option (only to clients that give a refund address). Default true.
    pub onchain_payment_enabled: bool,
    /// Confirmations after which an on-chain payment is PAID (at most 6). Default 1.
    pub min_onchain_payment_confirmations: u16,
    /// Fee rate (sat/vB, as bLIP-51 states it) at or above which an unconfirmed on-chain payment
    /// is accepted as PAID. Default 25.
    pub min_fee_for_0conf_sat_per_vb: u32,
    /// Seconds an unpaid order stays payable. Default 3 600.
    pub order_expiry_secs: u64,
    /// Expiry written into the bolt11 invoice, in seconds (at most `order_expiry_secs`).
    /// Default 3 600.
    pub invoice_expiry_secs: u64,
}

impl Default for Lsps1Options {
    fn default() -> Self {
        Lsps1Options {
            min_channel_balance_sat: 20_000,
            max_channel_balance_sat: MAX_NON_WUMBO_CHANNEL_SAT,
            min_initial_client_balance_sat: 0,
            max_initial_client_balance_sat: 1_000_000,
            min_initial_lsp_balance_sat: 20_000,
            max_initial_lsp_balance_sat: 10_000_000,
            max_channel_expiry_blocks: 13_140,
            min_required_channel_confirmations: 1,
            min_funding_confirms_within_blocks: 6,
            supports_zero_channel_reserve: false,
            onchain_payment_enabled: true,
            min_onchain_payment_confirmations: 1,
            min_fee_for_0conf_sat_per_vb: 25,
            order_expiry_secs: 3_600,
            invoice_expiry_secs: 3_600,
        }
    }
}

impl Lsps1Options {
    /// The `get_info` options in lightning-liquidity's type, for `LSPS1ServiceConfig`.
    pub fn to_ldk_options(&self) -> LSPS1Options {
        LSPS1Options {
            min_required_channel_confirmations: self.min_required_channel_confirmations,
            min_funding_confirms_within_blocks: self.min_funding_confirms_within_blocks,
            supports_zero_channel_reserve: self.supports_zero_channel_reserve,
            max_channel_expiry_blocks: self.max_channel_expiry_blocks,
            min_initial_client_balance_sat: self.min_initial_client_balance_sat,
            max_initial_client_balance_sat: self.max_initial_client_balance_sat,
            min_initial_lsp_balance_sat: self.min_initial_lsp_balance_sat,
            max_initial_lsp_balance_sat: self.max_initial_lsp_balance_sat,
            min_channel_balance_sat: self.min_channel_balance_sat,
            max_channel_balance_sat: self.max_channel_balance_sat,
        }
    }

    /// The service configuration lightning-liquidity's LSPS1 service handler is built with.
    pub fn to_ldk_service_config(&self) -> LSPS1ServiceConfig {
        LSPS1ServiceConfig {
            supported_options: self.to_ldk_options(),
        }
    }

    /// The `get_info` result object as bLIP-51 shows it (amounts as strings).
    pub fn get_info_json(&self) -> serde_json::Value {
        serde_json::json!({
            "min_required_channel_confirmations": self.min_required_channel_confirmations,
            "min_funding_confirms_within_blocks": self.min_funding_confirms_within_blocks,
            "supports_zero_channel_reserve": self.supports_zero_channel_reserve,
            "max_channel_expiry_blocks": self.max_channel_expiry_blocks,
            "min_initial_client_balance_sat": self.min_initial_client_balance_sat.to_string(),
            "max_initial_client_balance_sat": self.max_initial_client_balance_sat.to_string(),
            "min_initial_lsp_balance_sat": self.min_initial_lsp_balance_sat.to_string(),
            "max_initial_lsp_balance_sat": self.max_initial_lsp_balance_sat.to_string(),
            "min_channel_balance_sat": self.min_channel_balance_sat.to_string(),
            "max_channel_balance_sat": self.max_channel_balance_sat.to_string(),
        })
    }

    fn validate(&self) -> Result<(), OptionsError> {
        let range = |name: &'static str, min: u64, max: u64| {
            if min > max {
                Err(OptionsError::MinAboveMax { name, min, max })
            } else {
                Ok(())
            }
        };
        range(
            "channel_balance_sat",
            self.min_channel_balance_sat,
            self.max_channel_balance_sat,
        )?;
        range(
            "initial_client_balance_sat",
            self.min_initial_client_balance_sat,
            self.max_initial_client_balance_sat,
        )?;
        range(
            "initial_lsp_balance_sat",
            self.min_initial_lsp_balance_sat,
            self.max_initial_lsp_balance_sat,
        )?;
        let nonzero = |name: &'static str, value: u64| {
            if value == 0 {
                Err(OptionsError::Zero(name))
            } else {
                Ok(())
            }
        };
        nonzero("max_channel_balance_sat", self.max_channel_balance_sat)?;
        nonzero(
            "max_initial_lsp_balance_sat",
            self.max_initial_lsp_balance_sat,
        )?;
        nonzero(
            "max_channel_expiry_blocks",
            self.max_channel_expiry_blocks.into(),
        )?;
        nonzero(
            "min_funding_confirms_within_blocks",
            self.min_funding_confirms_within_blocks.into(),
        )?;
        nonzero(
            "min_fee_for_0conf_sat_per_vb",
            self.min_fee_for_0conf_sat_per_vb.into(),
        )?;
        nonzero("order_expiry_secs", self.order_expiry_secs)?;
        nonzero("invoice_expiry_secs", self.invoice_expiry_secs)?;
        // The cheapest order allowed by the balance limits must fit in the largest channel, and
        // the largest must reach the smallest channel; otherwise no order can ever be accepted.
        let smallest = self
            .min_initial_lsp_balance_sat
            .saturating_add(self.min_initial_client_balance_sat);
        if smallest > self.max_channel_balance_sat {
            return Err(OptionsError::Unsatisfiable(
                "min_initial_lsp_balance_sat + min_initial_client_balance_sat exceeds max_channel_balance_sat",
            ));
        }
        let largest = self
            .max_initial_lsp_balance_sat
            .saturating_add(self.max_initial_client_balance_sat);
        if largest < self.min_channel_balance_sat {
            return Err(OptionsError::Unsatisfiable(
                "max_initial_lsp_balance_sat + max_initial_client_balance_sat is below min_channel_balance_sat",
            ));
        }
        if self.min_onchain_payment_confirmations > MAX_ONCHAIN_PAYMENT_CONFIRMATIONS {
            return Err(OptionsError::TooMany {
                name: "min_onchain_payment_confirmations",
                value: self.min_onchain_payment_confirmations.into(),
                max: MAX_ONCHAIN_PAYMENT_CONFIRMATIONS.into(),
            });
        }
        if self.invoice_expiry_secs > self.order_expiry_secs {
            return Err(OptionsError::InvoiceOutlivesOrder {
                invoice: self.invoice_expiry_secs,
                order: self.order_expiry_secs,
            });
        }
        Ok(())
    }
}

/// The fee schedule (see [`crate::lsps1::pricing`] for the formula and a worked example).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    /// Flat fee per order. Default 1 000 sat.
    pub base_fee_sat: u64,
    /// Fee in parts per million of `lsp_balance_sat`, independent of the lease. Default 1 000.
    pub proportional_ppm: u32,
    /// Yearly lease rate in parts per million of `lsp_balance_sat`, charged pro rata for
    /// `channel_expiry_blocks` (52 560 blocks per year). Default 10 000 (1 % a year).
    pub lease_ppm_per_year: u32,
    /// Wallet inputs assumed when estimating the funding transaction's size (at least 1).
    /// Default 2.
    pub funding_inputs_estimate: u8,
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            base_fee_sat: 1_000,
            proportional_ppm: 1_000,
            lease_ppm_per_year: 10_000,
            funding_inputs_estimate: 2,
        }
    }
}

/// How the `token` field of `create_order` is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenMode {
    /// The token is never read; anyone can order, no coupons over LSPS1.
    Ignore,
    /// Open LSP: no token is fine; a token must name a redeemable coupon (else error 102).
    #[default]
    Coupon,
    /// Private LSP: every order must carry a redeemable coupon code (else error 102).
    Required,
}

/// What happens to a leased channel once its lease has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseEnd {
    /// Close it cooperatively (force after `force_close_after_blocks`): the capital comes back.
    #[default]
    Close,
    /// Leave it open; the client (or the operator) closes it.
    Keep,
}

/// `[lsps1.leases]`: the end of a lease, and its extension (LSPS7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseConfig {
    /// Default `close`.
    pub at_end: LeaseEnd,
    /// With `at_end = "close"`: blocks past the end height after which a channel the client
    /// has not let close cooperatively (offline, or refusing) is force-closed. Default 144.
    pub force_close_after_blocks: u32,
    /// Clients may buy more blocks for their leases (LSPS7, bLIP-57 draft; `list_protocols`
    /// then lists 7). Default true.
    pub extensions: bool,
    /// The most blocks one extension order buys. Default 13 140 (about three months).
    pub max_extension_blocks: u32,
    /// No lease, with all its extensions, is longer than this many blocks: a lease that has
    /// reached it is not extendable. Default 52 560 (about a year).
    pub max_total_lease_blocks: u32,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            at_end: LeaseEnd::Close,
            force_close_after_blocks: 144,
            extensions: true,
            max_extension_blocks: 13_140,
            max_total_lease_blocks: 52_560,
        }
    }
}

/// Abuse limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lsps1Limits {
    /// Orders a single client node may have waiting for payment at once. Default 3.
    pub max_unpaid_orders_per_peer: u32,
    /// `create_order` requests one node may send over p2p per hour (all at once, refilled
    /// over the hour). Default 20.
    pub p2p_orders_per_hour_per_peer: u32,
    /// `create_order` requests all p2p peers together may send per minute: node ids cost
    /// nothing, so a per-peer limit alone does not bound a flood. Default 600.
    pub p2p_orders_per_minute: u32,
}

impl Default for Lsps1Limits {
    fn default() -> Self {
        Lsps1Limits {
            max_unpaid_orders_per_peer: 3,
            p2p_orders_per_hour_per_peer: 20,
            p2p_orders_per_minute: 600,
        }
    }
}

/// The whole `[lsps1]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lsps1Config {
    /// Sell channels at all (LSPS1 over p2p and HTTP). Default true.
    pub enabled: bool,
    pub token_mode: TokenMode,
    /// Once an order is paid, how long (seconds) the client has to be connected and the channel
    /// to be funded; after that the order fails and the payment is returned. Default 600.
    pub open_timeout_secs: u64,
    /// A held HTLC is failed back (order FAILED) when the chain comes this many blocks from the
    /// HTLC's claim deadline. Default 6.
    pub htlc_safety_margin_blocks: u32,
    /// Final CLTV delta of order invoices: how many blocks a held HTLC can wait for its channel.
    /// Default 144 (about a day).
    pub invoice_min_final_cltv_expiry_delta: u16,
    /// An on-chain refund still unconfirmed after this many seconds is replaced by one paying a
    /// higher fee (RBF). Default 21 600 (six hours, as bLIP-51 suggests).
    pub refund_bump_after_secs: u64,
    /// A failed order's on-chain option reads REFUNDED once every refund it sent has this many
    /// confirmations. Default 1.
    pub refund_confirmations: u32,
    /// An order's on-chain address is watched for late and extra payments this many seconds
    /// past the order's expiry; after that, once nothing is in flight on it, the wallet stops
    /// asking the chain source about it (`lsp-node rescan ORDER` watches it again). Default
    /// 2 592 000 (30 days); 0 retires it as soon as the order has ended and settled.
    pub address_watch_secs: u64,
    /// A paid pay-first order that no one has claimed (named its node) this many seconds after
    /// its payment fails and its payment is returned; a held HTLC goes back sooner if its
    /// deadline comes first (`htlc_safety_margin_blocks`). Default 86 400 (a day).
    pub claim_timeout_secs: u64,
    /// Clients whose p2p `get_order` answers spell the HOLD payment state as PAID: node ids, or
    /// `"*"` for every client. For wallets built on lightning-liquidity 0.2 (ldk-node 0.7),
    /// whose payment-state enum has no HOLD: such a client cannot parse an order while its HTLC
    /// is held and ignores this node until it reconnects. Default: none (bLIP-51 spelling).
    pub hold_as_paid_peers: Vec<String>,
    pub options: Lsps1Options,
    pub pricing: PricingConfig,
    pub limits: Lsps1Limits,
    pub leases: LeaseConfig,
}

impl Default for Lsps1Config {
    fn default() -> Self {
        Lsps1Config {
            enabled: true,
            token_mode: TokenMode::default(),
            open_timeout_secs: 600,
            htlc_safety_margin_blocks: 6,
            invoice_min_final_cltv_expiry_delta: 144,
            refund_bump_after_secs: 21_600,
            refund_confirmations: 1,
            address_watch_secs: 2_592_000,
            claim_timeout_secs: 86_400,
            hold_as_paid_peers: Vec::new(),
            options: Lsps1Options::default(),
            pricing: PricingConfig::default(),
            limits: Lsps1Limits::default(),
            leases: LeaseConfig::default(),
        }
    }
}

impl Lsps1Config {
    /// Checks every rule; the error names the first setting that breaks one.
    pub fn validate(&self) -> Result<(), OptionsError> {
        self.options.validate()?;
        const PPM_MAX: u32 = 1_000_000;
        if self.pricing.proportional_ppm > PPM_MAX {
            return Err(OptionsError::TooMany {
                name: "pricing.proportional_ppm",
                value: self.pricing.proportional_ppm.into(),
                max: PPM_MAX.into(),
            });
        }
        if self.pricing.lease_ppm_per_year > PPM_MAX {
            return Err(OptionsError::TooMany {
                name: "pricing.lease_ppm_per_year",
                value: self.pricing.lease_ppm_per_year.into(),
                max: PPM_MAX.into(),
            });
        }
        if self.pricing.funding_inputs_estimate == 0 {
            return Err(OptionsError::Zero("pricing.funding_inputs_estimate"));
        }
        if self.limits.max_unpaid_orders_per_peer == 0 {
            return Err(OptionsError::Zero("limits.max_unpaid_orders_per_peer"));
        }
        if self.limits.p2p_orders_per_hour_per_peer == 0 {
            return Err(OptionsError::Zero("limits.p2p_orders_per_hour_per_peer"));
        }
        if self.limits.p2p_orders_per_minute == 0 {
            return Err(OptionsError::Zero("limits.p2p_orders_per_minute"));
        }
        if self.leases.max_extension_blocks == 0 {
            return Err(OptionsError::Zero("leases.max_extension_blocks"));
        }
        if self.leases.max_total_lease_blocks == 0 {
            return Err(OptionsError::Zero("leases.max_total_lease_blocks"));
        }
        if self.open_timeout_secs == 0 {
            return Err(OptionsError::Zero("open_timeout_secs"));
        }
        if self.claim_timeout_secs == 0 {
            return Err(OptionsError::Zero("claim_timeout_secs"));
        }
        if self.refund_bump_after_secs == 0 {
            return Err(OptionsError::Zero("refund_bump_after_secs"));
        }
        if self.refund_confirmations == 0 {
            return Err(OptionsError::Zero("refund_confirmations"));
        }
        if u32::from(self.invoice_min_final_cltv_expiry_delta) <= self.htlc_safety_margin_blocks {
            return Err(OptionsError::MarginTooLarge {
                margin: self.htlc_safety_margin_blocks,
                delta: self.invoice_min_final_cltv_expiry_delta,
            });
        }
        for peer in &self.hold_as_paid_peers {
            if peer != "*" && PublicKey::from_str(peer).is_err() {
                return Err(OptionsError::BadPeer(peer.clone()));
            }
        }
        Ok(())
    }

    /// True when `peer` is listed in `hold_as_paid_peers` (by node id, or by `"*"`).
    pub fn spells_hold_as_paid(&self, peer: &PublicKey) -> bool {
        self.hold_as_paid_peers
            .iter()
            .any(|p| p == "*" || PublicKey::from_str(p).is_ok_and(|key| key == *peer))
    }
}

/// A configuration rule that does not hold; displayed as one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("lsps1 option min_{name} ({min}) must not be greater than max_{name} ({max})")]
    MinAboveMax {
        name: &'static str,
        min: u64,
        max: u64,
    },
    #[error("lsps1 setting {0} must be greater than zero")]
    Zero(&'static str),
    #[error("lsps1 setting {name} is {value} but may be at most {max}")]
    TooMany {
        name: &'static str,
        value: u64,
        max: u64,
    },
    #[error(
        "lsps1 option invoice_expiry_secs ({invoice}) must not exceed order_expiry_secs ({order})"
    )]
    InvoiceOutlivesOrder { invoice: u64, order: u64 },
    #[error("lsps1 options allow no order at all: {0}")]
    Unsatisfiable(&'static str),
    #[error("lsps1 setting htlc_safety_margin_blocks ({margin}) must be below invoice_min_final_cltv_expiry_delta ({delta}), or held payments fail at once")]
    MarginTooLarge { margin: u32, delta: u16 },
    #[error("lsps1 setting hold_as_paid_peers has {0:?}, which is neither a node id nor \"*\"")]
    BadPeer(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_an_empty_section_parses_to_them() {
        let parsed: Lsps1Config = toml::from_str("").expect("empty section");
        assert_eq!(parsed, Lsps1Config::default());
        parsed.validate().expect("defaults validate");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Lsps1Config>("[options]\nmax_chanel_balance_sat = 5\n")
            .expect_err("misspelled key");
        assert!(err.to_string().contains("max_chanel_balance_sat"), "{err}");
        assert!(toml::from_str::<Lsps1Config>("surprise = 1\n").is_err());
        assert!(toml::from_str::<Lsps1Config>("[pricing]\nbase_fee = 1\n").is_err());
    }

    #[test]
    fn toml_values_land_in_the_right_fields() {
        let parsed: Lsps1Config = toml::from_str(
            "token_mode = \"required\"\n[options]\nmax_channel_expiry_blocks = 1000\n\
             [pricing]\nbase_fee_sat = 7\n[limits]\nmax_unpaid_orders_per_peer = 9\n",
        )
        .unwrap();
        assert_eq!(parsed.token_mode, TokenMode::Required);
        assert_eq!(parsed.options.max_channel_expiry_blocks, 1000);
        assert_eq!(parsed.pricing.base_fee_sat, 7);
        assert_eq!(parsed.limits.max_unpaid_orders_per_peer, 9);
    }

    #[test]
    fn validation_table() {
        type Edit = fn(&mut Lsps1Config);
        let cases: Vec<(Edit, Option<&str>)> = vec![
            (|_| {}, None),
            (|c| c.options.min_channel_balance_sat = c.options.max_channel_balance_sat + 1,
                Some("min_channel_balance_sat (16777216) must not be greater than max_channel_balance_sat (16777215)")),
            (|c| c.options.min_initial_client_balance_sat = 2_000_000,
                Some("min_initial_client_balance_sat (2000000) must not be greater than max_initial_client_balance_sat (1000000)")),
            (|c| c.options.min_initial_lsp_balance_sat = 20_000_000,
                Some("min_initial_lsp_balance_sat")),
            (|c| c.options.max_channel_expiry_blocks = 0, Some("max_channel_expiry_blocks must be greater than zero")),
            (|c| c.options.min_funding_confirms_within_blocks = 0, Some("min_funding_confirms_within_blocks must be greater than zero")),
            (|c| c.options.order_expiry_secs = 0, Some("order_expiry_secs must be greater than zero")),
            (|c| c.options.invoice_expiry_secs = 7_200, Some("invoice_expiry_secs (7200) must not exceed order_expiry_secs (3600)")),
            (|c| c.options.min_onchain_payment_confirmations = 7, Some("min_onchain_payment_confirmations is 7 but may be at most 6")),
            (|c| c.options.min_onchain_payment_confirmations = 6, None),
            (|c| c.options.min_fee_for_0conf_sat_per_vb = 0, Some("min_fee_for_0conf_sat_per_vb must be greater than zero")),
            (|c| { c.options.min_initial_lsp_balance_sat = 10_000_000; c.options.min_initial_client_balance_sat = 1_000_000; c.options.max_channel_balance_sat = 10_500_000; },
                Some("allow no order at all")),
            (|c| { c.options.max_initial_lsp_balance_sat = 20_000; c.options.max_initial_client_balance_sat = 0; c.options.min_channel_balance_sat = 30_000; },
                Some("below min_channel_balance_sat")),
            (|c| { c.options.min_channel_balance_sat = 0; c.options.min_initial_lsp_balance_sat = 0; }, None),
            (|c| { c.options.max_channel_balance_sat = 0; c.options.min_channel_balance_sat = 0; c.options.min_initial_lsp_balance_sat = 0; },
                Some("max_channel_balance_sat must be greater than zero")),
            (|c| c.pricing.proportional_ppm = 1_000_001, Some("pricing.proportional_ppm is 1000001 but may be at most 1000000")),
            (|c| c.pricing.lease_ppm_per_year = 2_000_000, Some("pricing.lease_ppm_per_year")),
            (|c| c.pricing.funding_inputs_estimate = 0, Some("pricing.funding_inputs_estimate must be greater than zero")),
            (|c| c.limits.max_unpaid_orders_per_peer = 0, Some("limits.max_unpaid_orders_per_peer must be greater than zero")),
        ];
        for (i, (edit, expected)) in cases.into_iter().enumerate() {
            let mut config = Lsps1Config::default();
            edit(&mut config);
            match (config.validate(), expected) {
                (Ok(()), None) => {}
                (Err(e), Some(fragment)) => {
                    let text = e.to_string();
                    assert!(
                        text.contains(fragment),
                        "case {i}: {text:?} lacks {fragment:?}"
                    );
                    assert!(
                        !text.contains('\n') && !text.contains("{"),
                        "case {i}: one plain sentence"
                    );
                }
                (got, want) => panic!("case {i}: got {got:?}, wanted error containing {want:?}"),
            }
        }
    }

    #[test]
    fn conversion_to_lightning_liquidity_keeps_every_option() {
        let options = Lsps1Options {
            min_channel_balance_sat: 1,
            max_channel_balance_sat: 2,
            min_initial_client_balance_sat: 3,
            max_initial_client_balance_sat: 4,
            min_initial_lsp_balance_sat: 5,
            max_initial_lsp_balance_sat: 6,
            max_channel_expiry_blocks: 7,
            min_required_channel_confirmations: 8,
            min_funding_confirms_within_blocks: 9,
            supports_zero_channel_reserve: true,
            ..Lsps1Options::default()
        };
        let ldk = options.to_ldk_service_config().supported_options;
        assert_eq!(
            (ldk.min_channel_balance_sat, ldk.max_channel_balance_sat),
            (1, 2)
        );
        assert_eq!(
            (
                ldk.min_initial_client_balance_sat,
                ldk.max_initial_client_balance_sat
            ),
            (3, 4)
        );
        assert_eq!(
            (
                ldk.min_initial_lsp_balance_sat,
                ldk.max_initial_lsp_balance_sat
            ),
            (5, 6)
        );
        assert_eq!(ldk.max_channel_expiry_blocks, 7);
        assert_eq!(ldk.min_required_channel_confirmations, 8);
        assert_eq!(ldk.min_funding_confirms_within_blocks, 9);
        assert!(ldk.supports_zero_channel_reserve);
        // Our get_info JSON and lightning-liquidity's serialization agree field for field.
        assert_eq!(serde_json::to_value(&ldk).unwrap(), options.get_info_json());
    }
}
