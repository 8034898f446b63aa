//! The operator's view of the order service: listing and inspecting orders, cancelling one,
//! rescanning an order's address, managing coupons. The node's operator API ([`crate::api::OperatorApi`]) delegates
//! here; this file turns order-book records into the API's types and its errors into
//! [`OperatorError`]s.

use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;

use crate::api::{
    CancelOrder, CloseLease, CouponInfo, CreateCoupon, DeleteCoupon, Empty, HoldAnswerInfo,
    KeepLease, LeaseInfo, LeaseList, LeaseQuery, OperatorError, OperatorResult, OrderDetail,
    OrderEventInfo, OrderQuery, OrderSummary, RefundInfo, RescanOrder, RescanResult,
};
use crate::lsps1::coupons::{Coupon, Discount, NewCoupon};
use crate::lsps1::fulfil::{CancelRefused, Canceller, LeaseRefused, RescanRefused};
use crate::lsps1::leases::{Lease, LeaseFilter, LeaseState};
use crate::lsps1::order::{Order, OrderId, OrderState};
use crate::lsps1::service::OrderService;
use crate::lsps1::store::{OrderFilter, StoreError};

/// Orders listed when the query gives no limit.
const DEFAULT_LIMIT: u32 = 100;

fn internal(error: StoreError) -> OperatorError {
    OperatorError::Internal(error.to_string())
}

pub fn list_orders(service: &OrderService, query: OrderQuery) -> OperatorResult<Vec<OrderSummary>> {
    let state = query
        .state
        .as_deref()
        .map(|s| {
            OrderState::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                OperatorError::InvalidRequest(format!(
                    "state \"{s}\" is not one of CREATED, COMPLETED, FAILED"
                ))
            })
        })
        .transpose()?;
    let client_node_id = query
        .client_node_id
        .as_deref()
        .map(|id| {
            PublicKey::from_str(id).map_err(|_| {
                OperatorError::InvalidRequest(format!("client_node_id \"{id}\" is not a node id"))
            })
        })
        .transpose()?;
    if query.stuck == Some(true) {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT) as usize;
        let stuck = service
            .order_book()
            .stuck_orders(service.now())
            .map_err(internal)?;
        return Ok(stuck
            .into_iter()
            .filter(|s| state.is_none_or(|state| s.order.state == state))
            .filter(|s| client_node_id.is_none_or(|id| s.order.client_node_id == Some(id)))
            .take(limit)
            .map(|s| OrderSummary {
                stuck: Some(s.why),
                ..summary(&s.order)
            })
            .collect());
    }
    let orders = service
        .order_book()
        .orders(&OrderFilter {
            state,
            client_node_id,
            created_from: query.created_from,
            created_until: query.created_until,
            limit: Some(query.limit.unwrap_or(DEFAULT_LIMIT)),
        })
        .map_err(internal)?;
    Ok(orders.iter().map(summary).collect())
}

pub fn order_detail(service: &OrderService, id: &str) -> OperatorResult<OrderDetail> {
    let not_found = || OperatorError::NotFound(format!("there is no order {id}"));
    let id = OrderId::parse(id).map_err(|_| not_found())?;
    let book = service.order_book();
    let order = book.order(&id).map_err(internal)?.ok_or_else(not_found)?;
    let events = book
        .events(&id)
        .map_err(internal)?
        .into_iter()
        .map(|e| OrderEventInfo {
            at: e.at,
            event: e.event,
            from_state: e.from_state,
            to_state: e.to_state,
            reason: e.reason,
            detail: e.detail,
        })
        .collect();
    let refunds = book
        .refunds(&id)
        .map_err(internal)?
        .into_iter()
        .map(|r| RefundInfo {
            txid: r.txid.to_string(),
            address: r.address,
            amount_sat: r.amount_sat,
            fee_sat: r.fee_sat,
            created_at: r.created_at,
        })
        .collect();
    let hold_answers = book
        .hold_answers(&id)
        .map_err(internal)?
        .into_iter()
        .map(|h| HoldAnswerInfo {
            spelling: h.spelling,
            answers: h.answers,
            first_at: h.first_at,
            last_at: h.last_at,
        })
        .collect();
    let height = service.best_block_height();
    // An extension order shows the lease it extends, and renders as LSPS7 clients see it.
    let leased = order
        .extension
        .as_ref()
        .map_or(&id, |terms| &terms.lease_order_id);
    let lease = book
        .lease(leased)
        .map_err(internal)?
        .map(|l| lease_info(&l, height));
    let rendered = match &order.extension {
        Some(_) => service
            .render_extension(&order, crate::lsps1::order::PaymentStateDialect::Blip51)
            .map_err(|e| OperatorError::Internal(e.message))?,
        None => service.render_http(&order),
    };
    Ok(OrderDetail {
        lease,
        summary: summary(&order),
        order: rendered,
        price: serde_json::to_value(order.price).unwrap_or_default(),
        coupon_code: order.coupon_code.clone(),
        email: order.email.clone(),
        events,
        refunds,
        hold_answers,
    })
}

pub fn cancel_order(service: &OrderService, req: CancelOrder) -> OperatorResult<OrderDetail> {
    let id = OrderId::parse(&req.order_id)
        .map_err(|_| OperatorError::NotFound(format!("there is no order {}", req.order_id)))?;
    let reason = req
        .reason
        .as_deref()
        .map_or("cancelled by the operator".to_string(), |r| {
            format!("cancelled by the operator: {r}")
        });
    match service.cancel_order(&id, &reason, Canceller::Operator) {
        Ok(_) => order_detail(service, id.as_str()),
        Err(CancelRefused::Unknown) => {
            Err(OperatorError::NotFound(format!("there is no order {id}")))
        }
        Err(CancelRefused::TooLate(state)) => Err(OperatorError::Unavailable(format!(
            "order {id} is {} and can no longer be cancelled",
            state.as_str()
        ))),
        Err(CancelRefused::OpenUnderway) => Err(OperatorError::Unavailable(format!(
            "order {id}'s channel is being opened"
        ))),
        Err(CancelRefused::Store(error)) => Err(OperatorError::Internal(error)),
    }
}

pub async fn rescan_order(
    service: &OrderService,
    req: RescanOrder,
) -> OperatorResult<RescanResult> {
    let not_found = || OperatorError::NotFound(format!("there is no order {}", req.order_id));
    let id = OrderId::parse(&req.order_id).map_err(|_| not_found())?;
    match service.rescan_order(&id).await {
        Ok(rescan) => Ok(RescanResult {
            order_id: id.to_string(),
            address: rescan.address,
            received_sat: rescan.received_sat,
            confirmed_sat: rescan.confirmed_sat,
            watched_until: rescan.watched_until,
            sync_error: rescan.sync_error,
        }),
        Err(RescanRefused::Unknown) => Err(not_found()),
        Err(RescanRefused::NoAddress) => Err(OperatorError::InvalidRequest(format!(
            "order {id} was not offered on-chain payment: it has no address to rescan"
        ))),
        Err(RescanRefused::Store(error)) => Err(OperatorError::Internal(error)),
    }
}

pub fn leases(service: &OrderService, query: LeaseQuery) -> OperatorResult<LeaseList> {
    let state = query
        .state
        .as_deref()
        .map(|s| {
            LeaseState::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                OperatorError::InvalidRequest(format!(
                    "state \"{s}\" is not one of PENDING, ACTIVE, ENDED, CLOSING, CLOSED"
                ))
            })
        })
        .transpose()?;
    let height = service.best_block_height();
    let book = service.order_book();
    let every = book.leases(&LeaseFilter::default()).map_err(internal)?;
    let sum = |closed: bool| {
        every
            .iter()
            .filter(|l| (l.state == LeaseState::Closed) == closed)
            .map(|l| l.lsp_balance_sat)
            .sum()
    };
    let (leased_out_sat, freed_sat) = (sum(false), sum(true));
    let revenue_sat = every.iter().map(|l| l.revenue_sat).sum();
    let listed = book
        .leases(&LeaseFilter {
            state,
            ending_by_height: query
                .ending_within_blocks
                .map(|blocks| height.saturating_add(blocks)),
            client: None,
        })
        .map_err(internal)?;
    Ok(LeaseList {
        leases: listed.iter().map(|l| lease_info(l, height)).collect(),
        leased_out_sat,
        freed_sat,
        revenue_sat,
    })
}

pub fn close_lease(service: &OrderService, req: CloseLease) -> OperatorResult<LeaseInfo> {
    let id = lease_order_id(&req.order_id)?;
    let lease = service
        .close_lease_now(&id, req.force)
        .map_err(|e| lease_refused(&id, e))?;
    Ok(lease_info(&lease, service.best_block_height()))
}

pub fn keep_lease(service: &OrderService, req: KeepLease) -> OperatorResult<LeaseInfo> {
    let id = lease_order_id(&req.order_id)?;
    let lease = service
        .keep_lease_open(&id)
        .map_err(|e| lease_refused(&id, e))?;
    Ok(lease_info(&lease, service.best_block_height()))
}

fn lease_order_id(id: &str) -> OperatorResult<OrderId> {
    OrderId::parse(id).map_err(|_| OperatorError::NotFound(format!("there is no order {id}")))
}

fn lease_refused(id: &OrderId, refused: LeaseRefused) -> OperatorError {
    match refused {
        LeaseRefused::Unknown => OperatorError::NotFound(format!(
            "order {id} has no lease: it does not exist or its channel was never funded"
        )),
        LeaseRefused::Closed(state) => {
            OperatorError::Unavailable(format!("order {id}'s lease is {} already", state.as_str()))
        }
        LeaseRefused::ChannelGone => {
            OperatorError::Unavailable(format!("order {id}'s channel is no longer open"))
        }
        LeaseRefused::Channel(error) => OperatorError::Unavailable(format!(
            "the node refused to close order {id}'s channel: {error}"
        )),
        LeaseRefused::Store(error) => OperatorError::Internal(error),
    }
}

/// Refuses a plain operator close of a channel whose lease is still running.
pub fn check_close_allowed(service: &OrderService, user_channel_id: u128) -> OperatorResult<()> {
    let Some(lease) = service
        .order_book()
        .lease_of_channel(user_channel_id)
        .map_err(internal)?
    else {
        return Ok(());
    };
    let until = match (lease.state, lease.end_height) {
        (LeaseState::Active, Some(end)) => format!(
            "until height {end} ({} blocks left)",
            end.saturating_sub(service.best_block_height())
        ),
        (LeaseState::Pending, _) => "from its funding's confirmation".to_string(),
        _ => return Ok(()),
    };
    Err(OperatorError::Unavailable(format!(
        "this channel is leased to {} {until} (order {}): the client paid for its inbound liquidity; set override_lease (lsp-node close-channel --override-lease) to close it anyway",
        lease.client_node_id, lease.order_id
    )))
}

fn lease_info(lease: &Lease, height: u32) -> LeaseInfo {
    LeaseInfo {
        order_id: lease.order_id.to_string(),
        channel: lease.funding_outpoint.clone(),
        client_node_id: lease.client_node_id.to_string(),
        capacity_sat: lease.capacity_sat,
        lsp_balance_sat: lease.lsp_balance_sat,
        lease_blocks: lease.lease_blocks,
        start_height: lease.start_height,
        end_height: lease.end_height,
        blocks_left: lease.blocks_left(height),
        state: lease.state.as_str().to_string(),
        revenue_sat: lease.revenue_sat,
        closed_by: lease.closed_by.clone(),
        close_kind: lease.close_kind.clone(),
        closed_at: lease.closed_at,
        keep_open: lease.keep_open,
    }
}

pub fn coupons(service: &OrderService) -> OperatorResult<Vec<CouponInfo>> {
    let coupons = service.order_book().coupons().map_err(internal)?;
    Ok(coupons.iter().map(coupon_info).collect())
}

pub fn create_coupon(service: &OrderService, req: CreateCoupon) -> OperatorResult<CouponInfo> {
    let discount = match (req.percent, req.fixed_sat) {
        (Some(percent), None) => Discount::Percent(percent),
        (None, Some(sat)) => Discount::FixedSat(sat),
        _ => {
            return Err(OperatorError::InvalidRequest(
                "give exactly one of percent and fixed_sat".to_string(),
            ))
        }
    };
    let created = service.order_book().create_coupon(&NewCoupon {
        code: req.code,
        discount,
        max_uses: req.max_uses,
        expires_at: req.expires_at,
    });
    match created {
        Ok(coupon) => Ok(coupon_info(&coupon)),
        Err(StoreError::Coupon(e))
            if !matches!(e, crate::lsps1::coupons::CouponError::Database(_)) =>
        {
            Err(OperatorError::InvalidRequest(e.to_string()))
        }
        Err(e) => Err(internal(e)),
    }
}

pub fn delete_coupon(service: &OrderService, req: DeleteCoupon) -> OperatorResult<Empty> {
    if service
        .order_book()
        .delete_coupon(&req.code)
        .map_err(internal)?
    {
        Ok(Empty {})
    } else {
        Err(OperatorError::NotFound(format!(
            "there is no coupon {}",
            req.code
        )))
    }
}

fn summary(order: &Order) -> OrderSummary {
    OrderSummary {
        order_id: order.id.to_string(),
        client_node_id: order.client_node_id.map(|node| node.to_string()),
        state: order.state.as_str().to_string(),
        bolt11_state: order.bolt11.as_ref().map(|b| b.state.as_str().to_string()),
        onchain_state: order.onchain.as_ref().map(|o| o.state.as_str().to_string()),
        lsp_balance_sat: order.params.lsp_balance_sat,
        client_balance_sat: order.params.client_balance_sat,
        order_total_sat: order.price.order_total_sat,
        source: order.source.as_str().to_string(),
        created_at: order.created_at,
        updated_at: order.updated_at,
        funding_outpoint: order.channel.as_ref().map(|c| c.funding_outpoint.clone()),
        stuck: None,
    }
}

fn coupon_info(coupon: &Coupon) -> CouponInfo {
    let (kind, value) = match coupon.discount {
        Discount::Percent(percent) => ("percent", u64::from(percent)),
        Discount::FixedSat(sat) => ("fixed_sat", sat),
    };
    CouponInfo {
        code: coupon.code.clone(),
        kind: kind.to_string(),
        value,
        max_uses: coupon.max_uses,
        uses: coupon.uses,
        expires_at: coupon.expires_at,
        created_at: coupon.created_at,
    }
}
