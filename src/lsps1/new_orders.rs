//! Writing new orders: the checks that admit one (duplicate id, the client's unpaid orders,
//! its coupon, the liquidity it reserves) and its rows, made atomically with the rows other
//! tables keep beside it, through the book's [`crate::lsps1::group_commit`]: orders asked for
//! together share one commit, and each is answered only once that commit is durable.

use rusqlite::{params, Connection};

use crate::lsps1::coupons::{self, to_sql_u64};
use crate::lsps1::group_commit::Write;
use crate::lsps1::liquidity::{self, ReservationRequest};
use crate::lsps1::order::{Order, OrderState, PaymentState};
use crate::lsps1::store::{
    encode, index_invoice, insert_event, invoice_payment_hash, node_column, reserved_sat,
    watch_address, OrderBook, StoreError,
};

/// The checks that must pass, atomically with the insert, for a new order to exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admission {
    /// Reserve liquidity for this order (None: do not reserve, e.g. an operator-made order).
    pub reservation: Option<ReservationRequest>,
    /// Refuse the order if the client already has this many unpaid, unexpired orders made
    /// over the same interface. Anyone may name any node over HTTP; over p2p the node itself
    /// asks, so orders made over HTTP for a node never block its own p2p orders.
    pub max_unpaid_orders_per_peer: Option<u32>,
}

impl OrderBook {
    /// Stores a new order: redeems its coupon (if any), enforces the per-peer limit, takes its
    /// reservation and records the `created` event, all or nothing, durable when it returns.
    pub fn create_order(&self, order: &Order, admission: &Admission) -> Result<(), StoreError> {
        self.create_order_with(order, admission, |_| Ok(()))
    }

    /// [`Self::create_order`], with `also` run in the same transaction after the order row is
    /// written (the rows another table keeps beside a new order, and their checks): all of it
    /// is committed, or none.
    pub(crate) fn create_order_with(
        &self,
        order: &Order,
        admission: &Admission,
        also: impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let write = self.new_order_write(order, admission, also)?;
        self.write_in_group(write)
    }

    /// The write of new order `order` and whatever `also` writes beside it, refused at once
    /// when `order` is not new.
    pub(crate) fn new_order_write(
        &self,
        order: &Order,
        admission: &Admission,
        also: impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Write<StoreError>, StoreError> {
        let unpaid =
            |state: Option<PaymentState>| state.is_none_or(|s| s == PaymentState::ExpectPayment);
        if order.state != OrderState::Created
            || !unpaid(order.bolt11.as_ref().map(|b| b.state))
            || !unpaid(order.onchain.as_ref().map(|o| o.state))
            || order.channel.is_some()
        {
            return Err(StoreError::NotNew(order.id.clone()));
        }
        let now = self.clock().now_unix_secs();
        // Made before the write is queued: the batch's writes run one after another, its
        // callers' threads side by side.
        let rows = NewOrderRows {
            record: encode(order)?,
            payment_hash: invoice_payment_hash(order),
        };
        let (order, admission) = (order.clone(), *admission);
        Ok(Box::new(move |tx| {
            insert_new_order(tx, &order, &rows, &admission, now)?;
            also(tx)
        }))
    }
}

/// What a new order's rows hold that is derived from the order itself.
struct NewOrderRows {
    /// The order's JSON record.
    record: String,
    /// Its invoice's payment hash, for the ledger.
    payment_hash: Option<String>,
}

/// The checks and rows of one new order, inside the caller's transaction.
fn insert_new_order(
    tx: &Connection,
    order: &Order,
    rows: &NewOrderRows,
    admission: &Admission,
    now: u64,
) -> Result<(), StoreError> {
    let exists: bool = tx
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM lsps1_orders WHERE id = ?1)")?
        .query_row(params![order.id.as_str()], |row| row.get(0))?;
    if exists {
        return Err(StoreError::DuplicateOrder(order.id.clone()));
    }
    // The node column: the claimed node, or '' for a pay-first order not claimed yet.
    let client_column = node_column(order);
    if let (Some(max), Some(_)) = (admission.max_unpaid_orders_per_peer, order.client_node_id) {
        // Through the unpaid orders' own index (left to itself the planner walks every live
        // order by state), and no further than the limit: the walk is bounded by `max`, not
        // by the client's history.
        let open: u32 = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM (
                    SELECT 1 FROM lsps1_orders INDEXED BY lsps1_orders_unpaid_by_client
                    WHERE client_node_id = ?1 AND source = ?3 AND expires_at > ?2
                      AND order_state = 'CREATED'
                      AND COALESCE(bolt11_state, 'EXPECT_PAYMENT') = 'EXPECT_PAYMENT'
                      AND COALESCE(onchain_state, 'EXPECT_PAYMENT') = 'EXPECT_PAYMENT'
                    LIMIT ?4)",
            )?
            .query_row(
                params![
                    client_column,
                    to_sql_u64(now),
                    order.source.as_str(),
                    i64::from(max)
                ],
                |row| row.get(0),
            )?;
        if open >= max {
            return Err(StoreError::TooManyUnpaidOrders(open));
        }
    }
    if let Some(code) = &order.coupon_code {
        coupons::redeem(tx, code, now)?;
    }
    if let Some(request) = admission.reservation {
        liquidity::check(request.spendable_sat, reserved_sat(tx)?, request.amount_sat)?;
    }
    tx.prepare_cached(
        "INSERT INTO lsps1_orders (id, client_node_id, order_state, bolt11_state, onchain_state,
            created_at, expires_at, updated_at, source, coupon_code, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        order.id.as_str(),
        client_column,
        order.state.as_str(),
        order.bolt11.as_ref().map(|b| b.state.as_str()),
        order.onchain.as_ref().map(|o| o.state.as_str()),
        to_sql_u64(order.created_at),
        to_sql_u64(order.expires_at),
        to_sql_u64(order.updated_at),
        order.source.as_str(),
        order.coupon_code,
        rows.record,
    ])?;
    if let Some(payment_hash) = &rows.payment_hash {
        index_invoice(tx, payment_hash, &order.id)?;
    }
    watch_address(tx, order)?;
    if let Some(request) = admission.reservation {
        tx.prepare_cached(
            "INSERT INTO lsps1_reservations (order_id, amount_sat, created_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![
            order.id.as_str(),
            to_sql_u64(request.amount_sat),
            to_sql_u64(now)
        ])?;
    }
    insert_event(
        tx,
        &order.id,
        now,
        "created",
        None,
        &order.state_summary(),
        "order accepted",
        None,
    )
}
