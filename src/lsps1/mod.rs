//! LSPS1 order service: pricing, orders, coupons, liquidity and the bLIP-50 guard in front of
//! lightning-liquidity's `LiquidityManager`.
//!
//! # What exists (pure parts, each tested on its own)
//! - [`options`]: the `[lsps1]` configuration ([`options::Lsps1Config`]): `get_info` options,
//!   payment-option settings, pricing, token mode, limits; `validate()` at start; conversion to
//!   lightning-liquidity's `LSPS1ServiceConfig`.
//! - [`pricing`]: [`pricing::price`], the one fee function for every interface, with a worked
//!   example; returns the [`pricing::PriceBreakdown`] the HTTP quote will serve.
//! - [`order`]: the [`order::Order`] record, its state machine ([`order::Order::apply`] with an
//!   [`order::OrderEvent`]), random order ids, and [`order::render`], the bLIP-51 JSON of an
//!   order for p2p and HTTP alike.
//! - [`coupons`]: coupon rules and their SQL.
//! - [`liquidity`]: the reservation size and accept/reject decision.
//! - [`store`]: [`store::OrderBook`] over SQLite: orders, event history, coupons, reservations;
//!   every change one transaction (coupon redemption and reservation atomic with creation).
//! - [`guard`]: [`guard::RequestGuard`] (pre-check of raw LSPS messages) and
//!   [`guard::GuardedMessageHandler`] (wraps the `LiquidityManager` as the PeerManager's custom
//!   message handler).
//! - [`rpc`]: JSON-RPC error codes and objects shared by p2p and HTTP.
//! - [`clock`]: the injected [`clock::Clock`] and RFC 3339 formatting.
//!
//! # What the wiring step must do (not built yet)
//! In `node`: build the `LiquidityManager` with
//! `LiquidityServiceConfig { lsps1_service_config: Some(config.options.to_ldk_service_config()),
//! advertise_service: true, .. }` after `Lsps1Config::validate()`, and give the PeerManager
//! `GuardedMessageHandler::new(liquidity_manager, RequestGuard::new(options, network))` as its
//! custom message handler. Then an order service task (`lsps1/service.rs`) reacts to events:
//!
//! 1. `LSPS1ServiceEvent::RequestForPaymentDetails { request_id, counterparty_node_id, order,
//!    refund_onchain_address }` (params already passed the guard):
//!    token per [`options::TokenMode`] (`OrderBook::coupon` + `Coupon::check_redeemable`;
//!    failure: `invalid_token_provided` = error 102); fee rate for
//!    `funding_confirms_within_blocks` from the node's fee estimator; `pricing::price` for
//!    bolt11 and, when `refund_onchain_address` is set and on-chain payment is enabled, for
//!    on-chain; `liquidity::reservation_for` with the wallet's spendable balance; create the
//!    HOLD invoice (ChannelManager `create_inbound_payment` with our own preimage kept in the
//!    order, amount `order_total_sat`, expiry `invoice_expiry_secs`) and a fresh wallet address;
//!    build the `Order` (`OrderId::random(&mut OsRng)`), `OrderBook::create_order` with
//!    `Admission { reservation, max_unpaid_orders_per_peer }`; only after that commit, answer
//!    with `send_payment_details` (bolt11/onchain payment info in `EXPECT_PAYMENT`). A store
//!    error maps to the client through `StoreError::to_rpc_error` (liquidity/limit: 1, coupon:
//!    102). lightning-liquidity 0.3.0-rc3 can only reject with 102 (`invalid_token_provided`)
//!    or 100 (`onchain_payments_required`); it has no call for error 1. Send those with
//!    [`guard::GuardedMessageHandler::reply_error`] (the manager keeps the request as pending
//!    until the peer disconnects; its per-peer pending limit then applies).
//! 2. `Event::PaymentClaimable` for an order's payment hash: amount must equal
//!    `order_total_sat` (else fail back); `apply(Bolt11HtlcHeld)`, `order_payment_received`,
//!    then open the channel (wait bounded for the peer; capacity = lsp + client balance; push
//!    client balance; announce flag; 0-conf / zero-reserve as ordered and advertised).
//!    Watch the HTLC's claim deadline: within a safety margin, `apply(Failed)` and fail back.
//! 3. On-chain: watch each order's address in the wallet; `apply(OnchainPaymentConfirmed)`
//!    after `min_onchain_payment_confirmations` (0-conf only at >= `min_fee_for_0conf`).
//!    Under/over/late payments: refund (`amount - refund fee`), `apply(OnchainRefunded)`.
//! 4. Funding broadcast (`Event::ChannelPending` / funding tx generated): `apply(ChannelFunded)`
//!    (this releases the reservation and moves a held bolt11 payment to PAID), then claim the
//!    HTLC, then `order_channel_opened`.
//! 5. Open failure, expiry (`Order::is_expired_unpaid`), operator cancel: `apply(Failed)`
//!    (releases the reservation), fail the HTLC back / refund on-chain, then
//!    `order_failed_and_refunded`.
//! 6. On start: `OrderBook::orders_needing_attention()` and resume each order from its state
//!    (held HTLCs are replayed by LDK as `PaymentClaimable` after restart).
//!
//! Open questions for the wiring step: lightning-liquidity 0.3 keeps its own copy of each order
//! and answers `lsps1.get_order` from it; to serve one rendering and the [`order::PaymentStateDialect`]
//! for ldk-node 0.7.1 clients (whose enum has no HOLD), the guard can answer `get_order` from
//! the order book instead. bLIP-51 gives `min_fee_for_0conf` in sat/vB; lightning-liquidity
//! serializes that field in sat/kWU.

pub mod clock;
pub mod coupons;
pub mod fulfil;
pub mod guard;
pub mod hold_spelling;
pub mod ledger;
pub mod liquidity;
pub mod operator;
pub mod options;
pub mod order;
pub mod pricing;
pub mod rpc;
pub mod service;
pub mod store;
