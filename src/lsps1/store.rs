//! The order book: orders, their event history, coupons and liquidity reservations in SQLite.
//!
//! Tables (all prefixed `lsps1_`, created by [`migrate`], versioned in `lsps1_schema`):
//! - `lsps1_orders`: one row per order. The full [`Order`] is kept as JSON in `record`; the
//!   columns beside it (client, states, times, source, coupon) exist for queries and indexes and
//!   are written from the same value in the same statement.
//! - `lsps1_order_events`: every transition with time, event, state before and after, reason.
//! - `lsps1_coupons`: see [`crate::lsps1::coupons`].
//! - `lsps1_reservations`: sats committed to accepted orders whose channel is not open yet;
//!   a reservation is open while `released_at` is NULL.
//! - `lsps1_bolt11_payments`, `lsps1_refunds`: see [`crate::lsps1::ledger`].
//!
//! Every change is made in a `BEGIN IMMEDIATE` transaction (the write lock is taken first, so a
//! check and the write that depends on it cannot interleave with another connection's),
//! committed before the caller acknowledges anything: creating an order
//! ([`crate::lsps1::new_orders`]) also redeems its coupon, enforces the per-peer limit and
//! takes its reservation, in a savepoint of a transaction it may share with other new orders;
//! a transition also writes its history row and releases the reservation when the order is
//! funded, or failed with nothing left to refund.
//!
//! The node owns the SQLite file; [`OrderBook::open`] opens its own connection to it with the
//! node's settings (WAL, `synchronous=FULL`, foreign keys enforced), and [`OrderBook::new`]
//! takes a connection the node hands over.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use lightning_invoice::SignedRawBolt11Invoice;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::lsps1::clock::Clock;
use crate::lsps1::coupons::{self, from_sql_u64, to_sql_u64, Coupon, CouponError, NewCoupon};
use crate::lsps1::credit::{self, CreditError};
use crate::lsps1::group_commit::{GroupCommit, Write};
use crate::lsps1::liquidity::LiquidityError;
use crate::lsps1::order::{Order, OrderEvent, OrderId, OrderState, TransitionError};
use crate::lsps1::readers::ReadConnections;
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::schema;

/// Version of the `lsps1_` tables this build reads and writes (2 added the ledger tables of
/// [`crate::lsps1::ledger`], 3 the HOLD spelling counts of [`crate::lsps1::hold_spelling`],
/// 4 HTLC claims, 5 channel opens, 6 funding heights, 7 address watches, 8 HTLCs failed back,
/// 9 leases, 10 lease extensions, 11 claim tokens, 12 customers and credit, 13 customer
/// orders, limits and credit coupons, 14 the reservation total and the indexes of the
/// fulfilment walk, 15 the unpaid orders by client, 16 no index of every order by client; see
/// [`crate::lsps1::schema`]).
pub const SCHEMA_VERSION: i64 = 16;

/// Cache of the book's writing connection, in KiB.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// Prepared statements kept per connection: every statement of the order paths stays parsed.
pub(crate) const STATEMENT_CACHE: usize = 64;

/// How long a writer waits for another connection's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Coupon(#[from] CouponError),
    #[error(transparent)]
    Liquidity(#[from] LiquidityError),
    #[error(transparent)]
    Credit(#[from] CreditError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("this node already has {0} unpaid orders; pay one or let it expire first")]
    TooManyUnpaidOrders(u32),
    #[error("order {0} does not exist")]
    OrderNotFound(OrderId),
    #[error("order {0} already exists")]
    DuplicateOrder(OrderId),
    #[error("order {0} cannot be stored as new: it must be CREATED with every payment option unpaid and no channel")]
    NotNew(OrderId),
    #[error("the order database has schema version {found}, newer than this build's {known}; upgrade lsp-node")]
    NewerSchema { found: i64, known: i64 },
    #[error("the order database failed: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored order {0} could not be decoded; the database may be damaged")]
    Corrupt(String),
    #[error("the lease of order {0} is closing or closed and cannot be extended")]
    LeaseNotOpen(OrderId),
}

impl StoreError {
    /// The JSON-RPC error a client sees for this failure.
    pub fn to_rpc_error(&self) -> RpcError {
        match self {
            StoreError::Coupon(e) if e.is_bad_token() => {
                RpcError::new(rpc::UNRECOGNIZED_TOKEN, e.to_string())
            }
            StoreError::Liquidity(e) => RpcError::new(rpc::CLIENT_REJECTED, e.to_string()),
            StoreError::Credit(CreditError::Insufficient { .. }) => RpcError::new(
                rpc::CLIENT_REJECTED,
                "the account's credit changed while the order was made; ask again",
            ),
            StoreError::TooManyUnpaidOrders(_) => {
                RpcError::new(rpc::CLIENT_REJECTED, self.to_string())
            }
            StoreError::OrderNotFound(_) => RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found"),
            StoreError::LeaseNotOpen(_) => RpcError::option_mismatch(
                "short_channel_id",
                "the leased channel is closing or closed and can no longer be extended",
            ),
            _ => RpcError::new(rpc::INTERNAL_ERROR, "Internal error"),
        }
    }
}

/// Creates or checks the `lsps1_` tables. Safe to call on every start.
pub fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS lsps1_schema (version INTEGER NOT NULL)")?;
    let found: Option<i64> =
        conn.query_row("SELECT MAX(version) FROM lsps1_schema", [], |row| {
            row.get(0)
        })?;
    match found {
        Some(version) if version > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema {
                found: version,
                known: SCHEMA_VERSION,
            })
        }
        Some(version) if version == SCHEMA_VERSION => return Ok(()),
        _ => {}
    }
    let tx = conn.unchecked_transaction()?;
    if found.is_none() {
        tx.execute_batch(
            "CREATE TABLE lsps1_orders (
                id TEXT PRIMARY KEY NOT NULL,
                client_node_id TEXT NOT NULL,
                order_state TEXT NOT NULL,
                bolt11_state TEXT,
                onchain_state TEXT,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                source TEXT NOT NULL,
                coupon_code TEXT,
                record TEXT NOT NULL
            );
            CREATE INDEX lsps1_orders_by_state ON lsps1_orders (order_state, created_at);
            CREATE TABLE lsps1_order_events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                order_id TEXT NOT NULL REFERENCES lsps1_orders(id),
                at INTEGER NOT NULL,
                event TEXT NOT NULL,
                from_state TEXT,
                to_state TEXT NOT NULL,
                reason TEXT NOT NULL,
                detail TEXT
            );
            CREATE INDEX lsps1_order_events_by_order ON lsps1_order_events (order_id, seq);
            CREATE TABLE lsps1_reservations (
                order_id TEXT PRIMARY KEY NOT NULL REFERENCES lsps1_orders(id),
                amount_sat INTEGER NOT NULL CHECK (amount_sat >= 0),
                created_at INTEGER NOT NULL,
                released_at INTEGER,
                release_reason TEXT
            );",
        )?;
        tx.execute(schema::COUPONS_TABLE, [])?;
    }
    let found = found.unwrap_or(0);
    if found < 2 {
        tx.execute_batch(schema::LEDGER_TABLES)?;
    }
    if found < 3 {
        tx.execute_batch(schema::HOLD_ANSWERS_TABLE)?;
    }
    if found < 4 {
        tx.execute_batch(schema::HTLC_CLAIMS)?;
    }
    if found < 5 {
        tx.execute_batch(schema::CHANNEL_OPENS_TABLE)?;
    }
    if found < 6 {
        tx.execute_batch(schema::FUNDING_HEIGHTS)?;
    }
    if found < 7 {
        tx.execute_batch(schema::ADDRESS_WATCH_TABLE)?;
    }
    if found < 8 {
        tx.execute_batch(schema::HTLC_FAILED_BACK)?;
    }
    if found < 9 {
        tx.execute_batch(schema::LEASES_TABLE)?;
    }
    if found < 10 {
        tx.execute_batch(schema::LEASE_EXTENSIONS_TABLE)?;
    }
    if found < 11 {
        tx.execute_batch(schema::CLAIM_TOKENS_TABLE)?;
    }
    if found < 12 {
        tx.execute_batch(schema::CUSTOMERS_TABLES)?;
    }
    if found < 13 {
        tx.execute_batch(schema::CUSTOMER_ORDERS_TABLES)?;
    }
    if found < 14 {
        tx.execute_batch(schema::SCALE_TABLES)?;
    }
    if found < 15 {
        tx.execute_batch(schema::UNPAID_BY_CLIENT_INDEX)?;
    }
    if found < 16 {
        tx.execute_batch(schema::NO_INDEX_BY_CLIENT)?;
    }
    tx.execute(
        "INSERT INTO lsps1_schema (version) VALUES (?1)",
        params![SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

/// Which orders to list.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub state: Option<OrderState>,
    pub client_node_id: Option<PublicKey>,
    /// Unix seconds, inclusive.
    pub created_from: Option<u64>,
    /// Unix seconds, exclusive.
    pub created_until: Option<u64>,
    pub limit: Option<u32>,
}

/// One row of an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderEventRecord {
    pub at: u64,
    pub event: String,
    /// None for the creation event.
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: String,
    /// The event's data as JSON (e.g. the channel for `channel_funded`).
    pub detail: Option<String>,
}

/// Sats held for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub order_id: OrderId,
    pub amount_sat: u64,
    pub created_at: u64,
    pub released_at: Option<u64>,
    pub release_reason: Option<String>,
}

/// The order book. Cheap to share (`Arc<OrderBook>`); calls serialize on one connection, and
/// several `OrderBook`s on the same file stay consistent through SQLite's write lock.
pub struct OrderBook {
    conn: Arc<Mutex<Connection>>,
    readers: ReadConnections,
    new_orders: GroupCommit<StoreError>,
    changes: AtomicU64,
    clock: Arc<dyn Clock>,
}

/// The book's writing connection, held; counts a change when let go.
pub(crate) struct Writer<'a> {
    guard: MutexGuard<'a, Connection>,
    changes: &'a AtomicU64,
}

impl Deref for Writer<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.guard
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.guard
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }
}

impl OrderBook {
    /// Opens a connection of its own to the node's SQLite file, with the settings of every
    /// connection to it ([`crate::node::store::open_connection`]: WAL, `synchronous=FULL`,
    /// foreign keys enforced).
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<OrderBook, StoreError> {
        OrderBook::new(crate::node::store::open_connection(path)?, clock)
    }

    /// Uses a connection handed over by the node; migrates the `lsps1_` tables.
    pub fn new(conn: Connection, clock: Arc<dyn Clock>) -> Result<OrderBook, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Every new order lands on random pages of the indexes keyed by client (its unpaid
        // orders) and by payment hash; at a million orders the default 2 MiB of cache no longer holds their inner pages.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        // Each queued write of a group commit runs in a savepoint, which copies every page it
        // touches to a sub-journal first; past 64 KiB SQLite moves that journal to a temporary
        // file, so each new order cost a dozen writes to a file. In memory it is a copy. Only
        // this connection, which writes: the readers, which sort listings, keep files.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        migrate(&conn)?;
        let readers = ReadConnections::open(&conn, BUSY_TIMEOUT, STATEMENT_CACHE);
        let conn = Arc::new(Mutex::new(conn));
        Ok(OrderBook {
            readers,
            new_orders: GroupCommit::new(Arc::clone(&conn)),
            conn,
            changes: AtomicU64::new(0),
            clock,
        })
    }

    /// The clock every timestamp of this book comes from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The writing connection; letting it go counts as a change ([`Self::changes`]).
    pub(crate) fn conn(&self) -> Writer<'_> {
        // A panic while holding the lock cannot leave a half-written order: the transaction
        // was rolled back when it was dropped.
        let guard = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Writer {
            guard,
            changes: &self.changes,
        }
    }

    /// A number that changes after every use of the writing connection, so after every
    /// commit: answers derived from the book (get_info's reserved total) and kept beside this
    /// number are current while it is unchanged.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// A connection for reads that need no write lock: one of the book's read-only
    /// connections ([`crate::lsps1::readers`]), or the writer when it has none.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.readers.get(&self.conn)
    }

    /// How many read-only connections the book reads through (0: through its writer).
    pub fn read_connections(&self) -> usize {
        self.readers.len()
    }

    /// Makes `write` durable in one transaction with the other writes queued meanwhile
    /// ([`crate::lsps1::group_commit`]).
    pub(crate) fn write_in_group(&self, write: Write<StoreError>) -> Result<(), StoreError> {
        let outcome = self.new_orders.write(write);
        self.changes.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    /// [`Self::write_in_group`] for an async caller, which holds no thread while it waits.
    pub(crate) async fn write_in_group_async(
        &self,
        write: Write<StoreError>,
    ) -> Result<(), StoreError> {
        let outcome = self.new_orders.write_async(write).await;
        self.changes.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    /// Applies `event` to order `id` and persists the result with its history row; releases
    /// the order's reservation when the channel is funded, or the order fails with nothing to
    /// refund on-chain, or its refund is confirmed. Returns the
    /// updated order. On any error nothing is written.
    pub fn apply(
        &self,
        id: &OrderId,
        event: &OrderEvent,
        reason: &str,
    ) -> Result<Order, StoreError> {
        let now = self.clock.now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let next = apply_in(&tx, id, event, reason, now)?;
        tx.commit()?;
        Ok(next)
    }

    /// One order.
    pub fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        load_order(&self.reader(), id)
    }

    /// [`OrderBook::order`] through a read connection free right now; `None`, without
    /// waiting, when every one is busy or the book has none. A read by key takes well under a
    /// millisecond, so an async task may make it itself instead of queueing for a thread.
    pub fn order_without_waiting(&self, id: &OrderId) -> Option<Result<Option<Order>, StoreError>> {
        let reader = self.readers.free()?;
        Some(load_order(&reader, id))
    }

    /// Orders matching `filter`, newest first.
    pub fn orders(&self, filter: &OrderFilter) -> Result<Vec<Order>, StoreError> {
        let conn = self.reader();
        let mut statement = conn.prepare(
            "SELECT record FROM lsps1_orders
             WHERE (?1 IS NULL OR order_state = ?1)
               AND (?2 IS NULL OR client_node_id = ?2)
               AND (?3 IS NULL OR created_at >= ?3)
               AND (?4 IS NULL OR created_at < ?4)
             ORDER BY created_at DESC, id
             LIMIT ?5",
        )?;
        let rows = statement.query_map(
            params![
                filter.state.map(|s| s.as_str()),
                filter.client_node_id.map(|k| k.to_string()),
                filter.created_from.map(to_sql_u64),
                filter.created_until.map(to_sql_u64),
                filter.limit.map_or(-1, i64::from),
            ],
            |row| row.get::<_, String>(0),
        )?;
        rows.map(|record| decode(&record?)).collect()
    }

    /// Orders the service must act on now: CREATED orders that are paid in some way (an HTLC
    /// held, on-chain, by credit), have an on-chain option to watch, or have expired; and FAILED
    /// orders whose on-chain funds have not been refunded yet. An unpaid Lightning-only order
    /// is left out until it expires: its HTLC's arrival reaches the service through the node's
    /// events, which wake the walk. The reconciliation pass on start walks these; each part is
    /// read through its own index, so the walk does not grow with the orders waiting for
    /// payment or the orders that are over.
    pub fn orders_needing_attention(&self) -> Result<Vec<Order>, StoreError> {
        let now = to_sql_u64(self.clock.now_unix_secs());
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT record, created_at, id FROM lsps1_orders INDEXED BY lsps1_orders_acting
             WHERE order_state = 'CREATED'
               AND (bolt11_state IS NOT 'EXPECT_PAYMENT' OR onchain_state IS NOT NULL)
             UNION
             SELECT record, created_at, id FROM lsps1_orders INDEXED BY lsps1_orders_live_by_expiry
             WHERE order_state = 'CREATED' AND expires_at <= ?1
             UNION
             SELECT record, created_at, id FROM lsps1_orders INDEXED BY lsps1_orders_refunding
             WHERE order_state = 'FAILED' AND onchain_state IN ('EXPECT_PAYMENT', 'PAID')
             ORDER BY 2, 3",
        )?;
        let rows = statement.query_map(params![now], |row| row.get::<_, String>(0))?;
        rows.map(|record| decode(&record?)).collect()
    }

    /// Adds a row to order `id`'s history that changes none of its states: something the
    /// node observed or did beside the state machine.
    pub fn note(&self, id: &OrderId, event: &str, reason: &str) -> Result<(), StoreError> {
        let now = self.clock.now_unix_secs();
        insert_note(&self.conn(), id, now, event, reason)
    }

    /// The history of one order, oldest first.
    pub fn events(&self, id: &OrderId) -> Result<Vec<OrderEventRecord>, StoreError> {
        let conn = self.reader();
        let mut statement = conn.prepare(
            "SELECT at, event, from_state, to_state, reason, detail FROM lsps1_order_events
             WHERE order_id = ?1 ORDER BY seq",
        )?;
        let rows = statement.query_map(params![id.as_str()], |row| {
            Ok(OrderEventRecord {
                at: from_sql_u64(row.get(0)?),
                event: row.get(1)?,
                from_state: row.get(2)?,
                to_state: row.get(3)?,
                reason: row.get(4)?,
                detail: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sats held by open reservations.
    pub fn reserved_sat(&self) -> Result<u64, StoreError> {
        reserved_sat(&self.reader())
    }

    /// The reservation of one order, open or released.
    pub fn reservation(&self, id: &OrderId) -> Result<Option<Reservation>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT amount_sat, created_at, released_at, release_reason FROM lsps1_reservations
                 WHERE order_id = ?1",
                params![id.as_str()],
                |row| {
                    Ok(Reservation {
                        order_id: id.clone(),
                        amount_sat: from_sql_u64(row.get(0)?),
                        created_at: from_sql_u64(row.get(1)?),
                        released_at: row.get::<_, Option<i64>>(2)?.map(from_sql_u64),
                        release_reason: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn create_coupon(&self, coupon: &NewCoupon) -> Result<Coupon, StoreError> {
        Ok(coupons::insert(
            &self.conn(),
            coupon,
            self.clock.now_unix_secs(),
        )?)
    }

    pub fn coupon(&self, code: &str) -> Result<Option<Coupon>, StoreError> {
        Ok(coupons::load(&self.conn(), code)?)
    }

    pub fn coupons(&self) -> Result<Vec<Coupon>, StoreError> {
        Ok(coupons::list(&self.conn())?)
    }

    /// Deletes a coupon; returns whether it existed.
    pub fn delete_coupon(&self, code: &str) -> Result<bool, StoreError> {
        Ok(coupons::delete(&self.conn(), code)?)
    }
}

pub(crate) fn reserved_sat(conn: &Connection) -> Result<u64, StoreError> {
    // Kept by the triggers of schema::SCALE_TABLES in every transaction that takes or releases
    // a reservation.
    let total: i64 = conn
        .prepare_cached("SELECT amount_sat FROM lsps1_reserved_total WHERE id = 0")?
        .query_row([], |row| row.get(0))?;
    Ok(from_sql_u64(total))
}

/// [`OrderBook::apply`] inside the caller's transaction `conn`.
pub(crate) fn apply_in(
    conn: &Connection,
    id: &OrderId,
    event: &OrderEvent,
    reason: &str,
    now: u64,
) -> Result<Order, StoreError> {
    let current = load_order(conn, id)?.ok_or_else(|| StoreError::OrderNotFound(id.clone()))?;
    let next = current.apply(event, now)?;

    conn.execute(
        "UPDATE lsps1_orders SET order_state = ?2, bolt11_state = ?3, onchain_state = ?4,
                updated_at = ?5, record = ?6, client_node_id = ?7 WHERE id = ?1",
        params![
            id.as_str(),
            next.state.as_str(),
            next.bolt11.as_ref().map(|b| b.state.as_str()),
            next.onchain.as_ref().map(|o| o.state.as_str()),
            to_sql_u64(next.updated_at),
            encode(&next)?,
            node_column(&next),
        ],
    )?;
    if current.state != OrderState::Failed && next.state == OrderState::Failed {
        credit::settle_failed_order(conn, &current, event, now)?;
    }
    let detail = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    insert_event(
        conn,
        id,
        now,
        event.name(),
        Some(&current.state_summary()),
        &next.state_summary(),
        reason,
        Some(&detail),
    )?;
    // A failed order that must refund on-chain funds keeps its reservation until the
    // refund is confirmed: the sats it returns must not be sold to a new order meanwhile.
    if matches!(
        event,
        OrderEvent::ChannelFunded(_)
            | OrderEvent::Extended(_)
            | OrderEvent::Failed {
                onchain_refund_pending: false
            }
            | OrderEvent::OnchainRefunded
            | OrderEvent::CancelledToCredit
    ) {
        conn.execute(
            "UPDATE lsps1_reservations SET released_at = ?2, release_reason = ?3
                 WHERE order_id = ?1 AND released_at IS NULL",
            params![id.as_str(), to_sql_u64(now), event.name()],
        )?;
    }
    Ok(next)
}

pub(crate) fn load_order(conn: &Connection, id: &OrderId) -> Result<Option<Order>, StoreError> {
    let record: Option<String> = conn
        .prepare_cached("SELECT record FROM lsps1_orders WHERE id = ?1")?
        .query_row(params![id.as_str()], |row| row.get(0))
        .optional()?;
    record.map(|r| decode(&r)).transpose()
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_event(
    conn: &Connection,
    id: &OrderId,
    at: u64,
    event: &str,
    from_state: Option<&str>,
    to_state: &str,
    reason: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO lsps1_order_events (order_id, at, event, from_state, to_state, reason, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id.as_str(),
        to_sql_u64(at),
        event,
        from_state,
        to_state,
        reason,
        detail
    ])?;
    Ok(())
}

/// The payment hash of `order`'s invoice, as the ledger (see [`crate::lsps1::ledger`])
/// indexes it; `None` for an order without an invoice, or whose invoice text is not a BOLT11
/// invoice (test fixtures).
pub(crate) fn invoice_payment_hash(order: &Order) -> Option<String> {
    // Parsed without checking its signature again: the node itself has just signed it.
    let invoice = order
        .bolt11
        .as_ref()?
        .invoice
        .parse::<SignedRawBolt11Invoice>()
        .ok()?;
    Some(invoice.raw_invoice().payment_hash()?.to_string())
}

/// Indexes `payment_hash` (see [`invoice_payment_hash`]) as the invoice of order `id`.
pub(crate) fn index_invoice(
    conn: &Connection,
    payment_hash: &str,
    id: &OrderId,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO lsps1_bolt11_payments (payment_hash, order_id) VALUES (?1, ?2)",
    )?
    .execute(params![payment_hash, id.as_str()])?;
    Ok(())
}

/// Sets the `expires_at` of order `id`'s channel (the earliest time the LSP may close it, as
/// bLIP-51 clients read it), leaving its states alone.
pub(crate) fn set_channel_expiry(
    conn: &Connection,
    id: &OrderId,
    expires_at: u64,
) -> Result<(), StoreError> {
    let mut order = load_order(conn, id)?.ok_or_else(|| StoreError::OrderNotFound(id.clone()))?;
    let Some(channel) = order.channel.as_mut() else {
        return Ok(());
    };
    channel.expires_at = expires_at;
    conn.execute(
        "UPDATE lsps1_orders SET record = ?2 WHERE id = ?1",
        params![id.as_str(), encode(&order)?],
    )?;
    Ok(())
}

/// A history row of order `id` at its current states (see [`OrderBook::note`]).
pub(crate) fn insert_note(
    conn: &Connection,
    id: &OrderId,
    at: u64,
    event: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let order = load_order(conn, id)?.ok_or_else(|| StoreError::Corrupt(id.to_string()))?;
    let state = order.state_summary();
    insert_event(conn, id, at, event, Some(&state), &state, reason, None)
}

/// The `lsps1_address_watch` row of a new order with an on-chain option
/// ([`crate::lsps1::address_watch`]): watched from the order's expiry.
pub(crate) fn watch_address(conn: &Connection, order: &Order) -> Result<(), StoreError> {
    if order.onchain.is_some() {
        conn.execute(
            "INSERT INTO lsps1_address_watch (order_id, watch_from) VALUES (?1, ?2)",
            params![order.id.as_str(), to_sql_u64(order.expires_at)],
        )?;
    }
    Ok(())
}

/// The `client_node_id` column of `order`: its node, or '' while a pay-first order names none.
pub(crate) fn node_column(order: &Order) -> String {
    order
        .client_node_id
        .map(|node| node.to_string())
        .unwrap_or_default()
}

pub(crate) fn encode(order: &Order) -> Result<String, StoreError> {
    serde_json::to_string(order).map_err(|e| StoreError::Corrupt(format!("{}: {e}", order.id)))
}

pub(crate) fn decode(record: &str) -> Result<Order, StoreError> {
    serde_json::from_str(record).map_err(|e| {
        let id = serde_json::Value::from_str(record)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_string))
            .unwrap_or_else(|| "(unknown id)".to_string());
        StoreError::Corrupt(format!("{id}: {e}"))
    })
}
