//! The order service's LSPS7 side (lease extension, bLIP-57 draft): which of a client's
//! leases it may extend and how far, extension orders, and their rendering.
//!
//! A lease is extendable while its channel is open and has a short channel id, and the lease
//! is ACTIVE, or ENDED while its channel is kept open (`at_end = "keep"`, or `lsp-node
//! lease-keep`): an ended lease under `at_end = "close"` is being closed. It may be extended by
//! at most `max_extension_blocks` at once, and never past `max_total_lease_blocks` in all
//! (`[lsps1.leases]`); a lease at that total is not listed. An extension order is priced by
//! [`pricing::extension_price`] and paid like an LSPS1 order (HOLD invoice, or on-chain with
//! refunds); the blocks are added when it is paid (`fulfil`), never before.
//!
//! Errors (the draft's): a channel that is not an extendable lease of the asking client, or
//! that no one has, is error 100 on `short_channel_id` (the same answer, so a client learns
//! nothing of other clients' channels); too many blocks is error 100 on
//! `max_channel_extension_expiry_blocks`; an unknown extension order is 101.
//!
//! Field names: ZEUS reads `extendable_orders` where the draft says `extendable_channels`, and
//! lightning-liquidity's client reads `new_channel_expiry_block` where the draft says
//! `new_channel_expiry_blocks` (a height either way): both spellings are served.

use bitcoin::secp256k1::PublicKey;
use serde_json::{json, Value};

use crate::config::lsps1::LeaseEnd;
use crate::lsps1::clock::rfc3339;
use crate::lsps1::fulfil::REFUND_CONFIRM_BLOCKS;
use crate::lsps1::guard::{ExtensionOrderRequest, Lsps7Request};
use crate::lsps1::leases::{Lease, LeaseFilter, LeaseState};
use crate::lsps1::new_orders::Admission;
use crate::lsps1::order::{
    self, ExtensionTerms, Interface, Order, OrderId, OrderParams, OrderState, PaymentStateDialect,
};
use crate::lsps1::pricing::{self, PaymentMethod, PriceBreakdown};
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::service::{internal_error, store_error_to_rpc, OrderService};

/// A lease its client may extend now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendableLease {
    pub lease: Lease,
    /// `BLOCKxTXxOUTPUT`.
    pub short_channel_id: String,
    /// The most blocks one extension may add now.
    pub max_extension_blocks: u32,
}

/// A client's request for an extension, from any interface, its params checked by the guard.
#[derive(Debug, Clone)]
pub struct NewExtension {
    pub client_node_id: PublicKey,
    pub request: ExtensionOrderRequest,
    pub source: Interface,
}

/// `scid` as LSPS0 writes it: `BLOCKxTXxOUTPUT`.
pub fn format_scid(scid: u64) -> String {
    format!(
        "{}x{}x{}",
        scid >> 40,
        (scid >> 16) & 0xff_ffff,
        scid & 0xffff
    )
}

/// The short channel id `text` names, if it is one (`BLOCKxTXxOUTPUT`, each part in range).
pub fn parse_scid(text: &str) -> Option<u64> {
    let mut parts = text.split('x').map(|part| {
        (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u64>().ok())
            .flatten()
    });
    let (block, tx, output) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || block > 0xff_ffff || tx > 0xff_ffff || output > 0xffff {
        return None;
    }
    Some(block << 40 | tx << 16 | output)
}

impl OrderService {
    /// The leases `client` may extend now, ending soonest first.
    pub fn extendable_leases(&self, client: &PublicKey) -> Result<Vec<ExtendableLease>, RpcError> {
        let leases = self
            .book
            .leases(&LeaseFilter {
                client: Some(*client),
                ..LeaseFilter::default()
            })
            .map_err(|e| internal_error("could not read the leases", &e))?;
        let config = &self.config.leases;
        let kept_open = |lease: &Lease| lease.keep_open || config.at_end == LeaseEnd::Keep;
        let channels = self.node.channel_manager.list_channels();
        let extendable = leases
            .into_iter()
            .filter(|lease| match lease.state {
                LeaseState::Active => true,
                LeaseState::Ended => kept_open(lease),
                _ => false,
            })
            .filter_map(|lease| {
                let scid = channels
                    .iter()
                    .find(|c| c.user_channel_id == lease.user_channel_id)?
                    .short_channel_id?;
                let room = config
                    .max_total_lease_blocks
                    .saturating_sub(lease.lease_blocks)
                    .min(config.max_extension_blocks);
                (room > 0 && lease.end_height.is_some()).then(|| ExtendableLease {
                    lease,
                    short_channel_id: format_scid(scid),
                    max_extension_blocks: room,
                })
            })
            .collect();
        Ok(extendable)
    }

    /// Creates and persists an extension order; the returned order is what the client is told.
    pub fn create_extension_order(&self, new: NewExtension) -> Result<Order, RpcError> {
        if !self.config.leases.extensions {
            return Err(RpcError::method_not_found());
        }
        let request = &new.request;
        let refund_address = request.refund_address.as_ref();
        self.admit_new_order(refund_address)?;
        if parse_scid(&request.short_channel_id).is_none() {
            return Err(RpcError::invalid_property(
                "short_channel_id",
                "is not a short channel id (BLOCKxTXxOUTPUT)",
            ));
        }
        let extendable = self
            .extendable_leases(&new.client_node_id)?
            .into_iter()
            .find(|e| e.short_channel_id == request.short_channel_id)
            .ok_or_else(|| {
                RpcError::option_mismatch(
                    "short_channel_id",
                    "no lease of yours that this LSP can extend has this channel",
                )
            })?;
        let blocks = request.channel_extension_expiry_blocks;
        if blocks > extendable.max_extension_blocks {
            return Err(RpcError::option_mismatch(
                "max_channel_extension_expiry_blocks",
                &format!(
                    "channel_extension_expiry_blocks is above the maximum: this lease may be extended by at most {} blocks",
                    extendable.max_extension_blocks
                ),
            ));
        }
        let lease = &extendable.lease;
        let height = self.best_block_height();
        let end = lease.end_height.unwrap_or(height);
        if end.saturating_add(blocks) <= height {
            return Err(RpcError::option_mismatch(
                "expiration_block",
                &format!("the lease ended at height {end}; an extension must reach past the current height {height}"),
            ));
        }
        let leased = self
            .book
            .order(&lease.order_id)
            .map_err(|e| internal_error("could not read the leased order", &e))?
            .ok_or_else(|| RpcError::new(rpc::INTERNAL_ERROR, "Internal error"))?;
        let coupon = self.coupon_for(request.token.as_deref())?;
        let discount = coupon.as_ref().map(|c| c.discount);
        let price = |method| self.extension_price(lease, blocks, method, discount);
        let bolt11_price = price(PaymentMethod::Lightning)?;
        let onchain_price = match refund_address {
            Some(_) if self.config.options.onchain_payment_enabled => {
                Some(price(PaymentMethod::Onchain)?)
            }
            _ => None,
        };
        let id = OrderId::generate(std::time::SystemTime::now(), &mut rand::rngs::OsRng);
        let now = self.now();
        let (bolt11, onchain) = self.payment_options(
            &id,
            format!("LSPS7 lease extension {id}"),
            &bolt11_price,
            onchain_price.as_ref().zip(refund_address),
        )?;
        let order = Order {
            id,
            client_node_id: Some(new.client_node_id),
            params: OrderParams {
                lsp_balance_sat: 0,
                client_balance_sat: 0,
                required_channel_confirmations: leased.params.required_channel_confirmations,
                funding_confirms_within_blocks: leased.params.funding_confirms_within_blocks,
                channel_expiry_blocks: blocks,
                token: request.token.clone(),
                announce_channel: leased.params.announce_channel,
            },
            refund_onchain_address: refund_address.map(ToString::to_string),
            created_at: now,
            expires_at: now + self.config.options.order_expiry_secs,
            state: OrderState::Created,
            bolt11: Some(bolt11),
            onchain,
            channel: None,
            price: bolt11_price,
            coupon_code: coupon.map(|c| c.code),
            source: new.source,
            email: None,
            updated_at: now,
            extension: Some(ExtensionTerms {
                lease_order_id: lease.order_id.clone(),
                short_channel_id: extendable.short_channel_id.clone(),
                blocks,
            }),
            customer: None,
        };
        let admission = Admission {
            // The channel exists: an extension sells no new capital.
            reservation: None,
            max_unpaid_orders_per_peer: Some(self.config.limits.max_unpaid_orders_per_peer),
        };
        self.book
            .create_extension_order(&order, &admission)
            .map_err(|e| store_error_to_rpc(&e))?;
        tracing::info!(
            order = %order.id,
            lease = %lease.order_id,
            client = %new.client_node_id,
            blocks,
            order_total_sat = bolt11_price.order_total_sat,
            "extension order created"
        );
        Ok(order)
    }

    fn extension_price(
        &self,
        lease: &Lease,
        blocks: u32,
        method: PaymentMethod,
        discount: Option<crate::lsps1::coupons::Discount>,
    ) -> Result<PriceBreakdown, RpcError> {
        pricing::extension_price(
            &self.config.pricing,
            lease.lsp_balance_sat,
            blocks,
            self.funding_fee_rate_sat_per_kwu(REFUND_CONFIRM_BLOCKS),
            method,
            discount,
        )
        .map_err(|e| RpcError::new(rpc::CLIENT_REJECTED, e.to_string()))
    }

    /// Extension order `id` as its client may see it: another node's order, an LSPS1 order,
    /// and an unknown or malformed id are all "not found" (101).
    pub fn get_extension_order(
        &self,
        client: Option<&PublicKey>,
        id: &str,
    ) -> Result<Order, RpcError> {
        let not_found = || RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found");
        let id = OrderId::parse(id).map_err(|_| not_found())?;
        self.book
            .order(&id)
            .map_err(|e| internal_error("could not read the order", &e))?
            .filter(|order| order.extension.is_some())
            .filter(|order| client.is_none_or(|client| Some(*client) == order.client_node_id))
            .ok_or_else(not_found)
    }

    /// The draft's extendable-channel object of `lease`.
    fn extendable_channel_json(
        &self,
        lease: &Lease,
        short_channel_id: &str,
        max_extension_blocks: u32,
    ) -> Result<Value, RpcError> {
        let extensions = self
            .book
            .applied_extensions(&lease.order_id)
            .map_err(|e| internal_error("could not read the lease's extensions", &e))?;
        let ids: Vec<&str> = extensions.iter().map(|e| e.order_id.as_str()).collect();
        Ok(json!({
            "original_order": { "id": lease.order_id.as_str(), "service": "LSPS1" },
            "extension_order_ids": ids,
            "short_channel_id": short_channel_id,
            "max_channel_extension_expiry_blocks": max_extension_blocks,
            "expiration_block": lease.end_height.unwrap_or(0),
        }))
    }

    /// `lsps7.get_extendable_channels`'s result for `client`.
    pub fn render_extendable_channels(&self, client: &PublicKey) -> Result<Value, RpcError> {
        let channels = self
            .extendable_leases(client)?
            .iter()
            .map(|e| {
                self.extendable_channel_json(&e.lease, &e.short_channel_id, e.max_extension_blocks)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({ "extendable_channels": channels, "extendable_orders": channels }))
    }

    /// The HTTP mirror's `get_extendable_channels`: the extendable channel of LSPS1 order `id`
    /// (none if its lease is not extendable); an unknown order is 101.
    pub fn render_extendable_channel_of_order(&self, id: &str) -> Result<Value, RpcError> {
        let order = self.get_order(None, id)?;
        let Some(client) = order.client_node_id else {
            return Ok(json!({ "extendable_channels": [], "extendable_orders": [] }));
        };
        let channels = self
            .extendable_leases(&client)?
            .iter()
            .filter(|e| e.lease.order_id == order.id)
            .map(|e| {
                self.extendable_channel_json(&e.lease, &e.short_channel_id, e.max_extension_blocks)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({ "extendable_channels": channels, "extendable_orders": channels }))
    }

    /// Extension order `order` as `lsps7.create_order` and `lsps7.get_order` answer it.
    pub fn render_extension(
        &self,
        order: &Order,
        dialect: PaymentStateDialect,
    ) -> Result<Value, RpcError> {
        let terms = order
            .extension
            .as_ref()
            .ok_or_else(|| RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found"))?;
        let lease = self
            .book
            .lease(&terms.lease_order_id)
            .map_err(|e| internal_error("could not read the lease", &e))?
            .ok_or_else(|| RpcError::new(rpc::INTERNAL_ERROR, "Internal error"))?;
        let extension = self
            .book
            .extension(&order.id)
            .map_err(|e| internal_error("could not read the extension", &e))?;
        let new_end = extension
            .and_then(|e| e.end_height_after)
            .or_else(|| lease.end_height.map(|end| end.saturating_add(terms.blocks)))
            .unwrap_or(0);
        let room = self
            .config
            .leases
            .max_total_lease_blocks
            .saturating_sub(lease.lease_blocks)
            .min(self.config.leases.max_extension_blocks);
        let mut channel = self.extendable_channel_json(&lease, &terms.short_channel_id, room)?;
        let leased_channel = self
            .book
            .order(&terms.lease_order_id)
            .map_err(|e| internal_error("could not read the leased order", &e))?
            .and_then(|o| o.channel);
        if let Some(leased) = leased_channel {
            channel["funded_at"] = json!(rfc3339(leased.funded_at));
            channel["expires_at"] = json!(rfc3339(leased.expires_at));
        }
        Ok(json!({
            "order_id": order.id.as_str(),
            "short_channel_id": terms.short_channel_id,
            "channel_extension_expiry_blocks": terms.blocks,
            "new_channel_expiry_block": new_end,
            "new_channel_expiry_blocks": new_end,
            "token": order.params.token.clone().unwrap_or_default(),
            "created_at": rfc3339(order.created_at),
            "order_state": order.state.as_str(),
            "payment": order::render_payment(order, dialect),
            "channel": channel,
        }))
    }

    /// Answers an `lsps7.*` request arriving over p2p.
    pub(crate) fn serve_lsps7_p2p(
        &self,
        peer: PublicKey,
        request: Lsps7Request,
    ) -> Result<Value, RpcError> {
        if !self.config.leases.extensions {
            return Err(RpcError::method_not_found());
        }
        let dialect = PaymentStateDialect::for_peer(&self.config, &peer);
        match request {
            Lsps7Request::GetExtendableChannels => self.render_extendable_channels(&peer),
            Lsps7Request::CreateOrder(request) => {
                let order = self.create_extension_order(NewExtension {
                    client_node_id: peer,
                    request,
                    source: Interface::P2p,
                })?;
                self.render_extension(&order, dialect)
            }
            Lsps7Request::GetOrder { order_id } => {
                let order = self.get_extension_order(Some(&peer), &order_id)?;
                self.render_extension(&order, dialect)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_channel_ids_read_and_write_as_lsps0_spells_them() {
        let scid = 871_428u64 << 40 | 964 << 16 | 1;
        assert_eq!(format_scid(scid), "871428x964x1");
        assert_eq!(parse_scid("871428x964x1"), Some(scid));
        for bad in [
            "",
            "1x2",
            "1x2x3x4",
            "ax2x3",
            "1x2x70000",
            "16777216x0x0",
            "1x-2x3",
            "1x+2x3",
        ] {
            assert_eq!(parse_scid(bad), None, "{bad}");
        }
    }
}
