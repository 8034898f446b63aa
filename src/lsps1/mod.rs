//! LSPS1 order service: selling channels over p2p (bLIP-51) and the HTTP mirror.
//!
//! Its settings are [`crate::config::lsps1`]. The rooms:
//! - [`guard`]: [`guard::RequestGuard`], the one check of every LSPS1 request (bLIP-50
//!   framing, params typed and within the options, the refund address), for raw p2p messages
//!   and for every HTTP dialect; it returns the typed [`guard::Lsps1Request`].
//! - [`gate`]: [`gate::Lsps1Gate`], the gate the node's LSPS message handler consults: the
//!   guard first, then checked `lsps1.*` requests go to the [`gate::Lsps1Server`].
//! - [`service`]: [`service::OrderService`], that server: takes orders from p2p and HTTP and
//!   answers for them; [`intake`] how it takes one (token, price, liquidity, HOLD invoice,
//!   address, then its write in a group commit).
//! - [`fulfil`]: carries a paid order to its channel, or its payment back: held HTLCs, on-chain
//!   payments, channel opens, failures, refunds and their fee bumps, resumed after a restart.
//! - [`order`]: the [`order::Order`] record and state machine ([`order::Order::apply`] with an
//!   [`order::OrderEvent`]), order ids, and [`order::render`], one bLIP-51 rendering for p2p and
//!   HTTP ([`order::PaymentStateDialect`] for clients that cannot parse HOLD).
//! - [`pricing`]: [`pricing::price`], the one fee function for every interface.
//! - [`customers`]: customer accounts (hashed API keys, own limits and discount);
//!   [`credit`] their credit ledger, [`credit_coupons`] the credit the operator issues them,
//!   [`customer_orders`] which orders are theirs, and [`accounts`] the service's side of it all
//!   (quotes and orders paid partly or wholly from credit, cancels that keep the payment as
//!   credit); [`customer_admin`] the operator's side.
//! - [`claims`]: pay-first orders, created without their node and claimed later with a
//!   bearer token; [`pay_first`] the service's side of them.
//! - [`leases`]: the lease book, every sold channel from its funding to its close;
//!   [`extensions`] the extension orders that add blocks to a lease, and [`lsps7`] the
//!   service's LSPS7 side (bLIP-57 draft) that sells them.
//! - [`store`]: [`store::OrderBook`] over SQLite: orders, event history, reservations; every
//!   change one transaction. [`new_orders`] admits and writes new orders, those asked for
//!   together sharing one commit through [`group_commit`]; [`readers`] its read-only
//!   connections. [`coupons`], [`ledger`] (invoice hashes, held HTLCs, refunds) and
//!   [`hold_spelling`] keep their tables beside it.
//! - [`liquidity`]: the reservation size and accept/reject decision.
//! - [`info`]: the `get_info` answer, kept ([`kept`]) while the wallet, the reservations and
//!   the fee estimate it depends on are unchanged.
//! - [`operator`]: the operator's view of orders and coupons, in the [`crate::api`] types;
//!   [`metrics`] its figures for monitoring; [`stuck`] the orders whose money step is late.
//! - [`rpc`]: JSON-RPC error codes and objects shared by p2p and HTTP; [`rate`] the token
//!   buckets that limit both.
//! - [`clock`]: the injected [`clock::Clock`] and RFC 3339 formatting.
//!
//! lightning-liquidity keeps its own copy of each order; the guard answers `lsps1.*` from the
//! order book instead, so p2p and HTTP see one rendering. bLIP-51 gives `min_fee_for_0conf` in
//! sat/vB; lightning-liquidity serializes that field in sat/kWU.

pub mod accounts;
pub mod address_watch;
pub mod claims;
pub mod clock;
pub mod coupons;
pub mod credit;
pub mod credit_coupons;
pub mod customer_admin;
pub mod customer_orders;
pub mod customers;
pub mod extensions;
pub mod fulfil;
pub mod gate;
pub mod group_commit;
pub mod guard;
pub mod hold_spelling;
pub mod info;
pub mod intake;
pub mod kept;
pub mod leases;
pub mod ledger;
pub mod liquidity;
pub mod lsps7;
pub mod metrics;
pub mod new_orders;
pub mod operator;
pub mod order;
pub mod pay_first;
pub mod pricing;
pub mod rate;
pub mod readers;
pub mod rpc;
pub mod schema;
pub mod service;
pub mod store;
pub mod stuck;
