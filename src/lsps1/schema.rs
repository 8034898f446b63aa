//! The SQL that creates the order book's side tables, kept apart from the files that use them
//! so that [`crate::lsps1::store`]'s migration can create them without importing those files
//! (which themselves build on the store).

/// [`crate::lsps1::coupons`].
pub const COUPONS_TABLE: &str = "CREATE TABLE lsps1_coupons (
    code TEXT PRIMARY KEY NOT NULL,
    discount_kind TEXT NOT NULL CHECK (discount_kind IN ('fixed_sat', 'percent')),
    discount_value INTEGER NOT NULL CHECK (discount_value >= 0),
    max_uses INTEGER CHECK (max_uses IS NULL OR max_uses >= 1),
    uses INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0),
    expires_at INTEGER,
    created_at INTEGER NOT NULL
)";

/// [`crate::lsps1::ledger`]: invoice payment hashes (and held HTLCs), refunds.
pub const LEDGER_TABLES: &str = "
    CREATE TABLE lsps1_bolt11_payments (
        payment_hash TEXT PRIMARY KEY NOT NULL,
        order_id TEXT NOT NULL REFERENCES lsps1_orders(id),
        held_amount_msat INTEGER,
        claim_deadline INTEGER,
        held_at INTEGER
    );
    CREATE TABLE lsps1_refunds (
        txid TEXT PRIMARY KEY NOT NULL,
        order_id TEXT NOT NULL REFERENCES lsps1_orders(id),
        address TEXT NOT NULL,
        amount_sat INTEGER NOT NULL,
        fee_sat INTEGER NOT NULL,
        tx_hex TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        replaced_by TEXT
    );
    CREATE INDEX lsps1_refunds_by_order ON lsps1_refunds (order_id);";

/// [`crate::lsps1::hold_spelling`]: HOLD answers per order and spelling.
pub const HOLD_ANSWERS_TABLE: &str = "
    CREATE TABLE lsps1_hold_answers (
        order_id TEXT NOT NULL REFERENCES lsps1_orders(id),
        spelling TEXT NOT NULL,
        answers INTEGER NOT NULL,
        first_at INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (order_id, spelling)
    );";

/// [`crate::lsps1::ledger`]: when the held HTLC of a completed order was claimed (the
/// `PaymentClaimed` event). The HTLC is claimed only once the chain source has the funding
/// transaction; orders completed before this column existed had theirs claimed at once.
pub const HTLC_CLAIMS: &str = "
    ALTER TABLE lsps1_bolt11_payments ADD COLUMN claimed_at INTEGER;
    UPDATE lsps1_bolt11_payments SET claimed_at = held_at
        WHERE held_at IS NOT NULL
          AND order_id IN (SELECT id FROM lsps1_orders WHERE order_state = 'COMPLETED');
    CREATE INDEX lsps1_bolt11_unclaimed ON lsps1_bolt11_payments (order_id)
        WHERE held_at IS NOT NULL AND claimed_at IS NULL;";

/// [`crate::lsps1::ledger`]: every channel open started for an order, and the funding
/// transaction signed for it, so that neither the attempt count nor a funding survives only in
/// memory: an order whose funding LDK handed over is never opened again.
pub const CHANNEL_OPENS_TABLE: &str = "
    CREATE TABLE lsps1_channel_opens (
        order_id TEXT NOT NULL REFERENCES lsps1_orders(id),
        attempt INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        funding_txid TEXT,
        PRIMARY KEY (order_id, attempt)
    );";

/// [`crate::lsps1::ledger`]: the height at which each funding transaction was signed (its
/// confirmation deadline counts from there), when the order stopped needing it watched
/// (final, or the order failed), the lookup from a funding txid to its order, and when LDK was
/// first asked to claim a held HTLC.
pub const FUNDING_HEIGHTS: &str = "
    ALTER TABLE lsps1_bolt11_payments ADD COLUMN claim_requested_at INTEGER;
    UPDATE lsps1_bolt11_payments SET claim_requested_at = claimed_at WHERE claimed_at IS NOT NULL;
    ALTER TABLE lsps1_channel_opens ADD COLUMN funding_height INTEGER;
    ALTER TABLE lsps1_channel_opens ADD COLUMN funding_settled_at INTEGER;
    CREATE INDEX lsps1_channel_opens_by_funding ON lsps1_channel_opens (funding_txid)
        WHERE funding_txid IS NOT NULL;
    CREATE INDEX lsps1_channel_opens_unsettled ON lsps1_channel_opens (order_id)
        WHERE funding_txid IS NOT NULL AND funding_settled_at IS NULL;";

/// [`crate::lsps1::address_watch`]: which order addresses the wallet still watches for
/// payments, from when (the order's expiry, or the operator's last rescan), and when each was
/// retired. Orders stored before this table watch from their expiry.
pub const ADDRESS_WATCH_TABLE: &str = "
    CREATE TABLE lsps1_address_watch (
        order_id TEXT PRIMARY KEY NOT NULL REFERENCES lsps1_orders(id),
        watch_from INTEGER NOT NULL,
        retired_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX lsps1_address_watch_live ON lsps1_address_watch (watch_from)
        WHERE retired_at IS NULL;
    INSERT INTO lsps1_address_watch (order_id, watch_from)
        SELECT id, expires_at FROM lsps1_orders WHERE onchain_state IS NOT NULL;";

/// [`crate::lsps1::ledger`]: when LDK reported a held HTLC failed back (by the service, or by
/// LDK itself at the HTLC's deadline). The start-up pass fails back again only the held HTLCs
/// of failed orders without it; those held before this column and over a month old are taken
/// as failed back (LDK gives up an HTLC at its deadline, far sooner).
pub const HTLC_FAILED_BACK: &str = "
    ALTER TABLE lsps1_bolt11_payments ADD COLUMN failed_back_at INTEGER;
    UPDATE lsps1_bolt11_payments SET failed_back_at = held_at
        WHERE held_at IS NOT NULL AND claimed_at IS NULL
          AND held_at < CAST(strftime('%s', 'now') AS INTEGER) - 2592000;
    DROP INDEX IF EXISTS lsps1_bolt11_unclaimed;
    CREATE INDEX lsps1_bolt11_unclaimed ON lsps1_bolt11_payments (order_id)
        WHERE held_at IS NOT NULL AND claimed_at IS NULL AND failed_back_at IS NULL;";

/// [`crate::lsps1::leases`]: the lease of every sold channel, from its funding to its close.
pub const LEASES_TABLE: &str = "
    CREATE TABLE lsps1_leases (
        order_id TEXT PRIMARY KEY NOT NULL REFERENCES lsps1_orders(id),
        user_channel_id TEXT NOT NULL,
        funding_outpoint TEXT NOT NULL,
        client_node_id TEXT NOT NULL,
        capacity_sat INTEGER NOT NULL,
        lsp_balance_sat INTEGER NOT NULL,
        lease_blocks INTEGER NOT NULL,
        revenue_sat INTEGER NOT NULL,
        start_height INTEGER,
        end_height INTEGER,
        state TEXT NOT NULL
            CHECK (state IN ('PENDING', 'ACTIVE', 'ENDED', 'CLOSING', 'CLOSED')),
        closed_by TEXT,
        close_kind TEXT,
        closed_at INTEGER,
        keep_open INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX lsps1_leases_by_channel ON lsps1_leases (user_channel_id);
    CREATE INDEX lsps1_leases_by_end ON lsps1_leases (end_height) WHERE state != 'CLOSED';";

/// [`crate::lsps1::extensions`]: the extension orders of each lease (LSPS7). The order itself
/// is a row of `lsps1_orders`; this row ties it to the lease and records when it was applied
/// and the end height it gave the lease.
pub const LEASE_EXTENSIONS_TABLE: &str = "
    CREATE TABLE lsps1_lease_extensions (
        order_id TEXT PRIMARY KEY NOT NULL REFERENCES lsps1_orders(id),
        lease_order_id TEXT NOT NULL REFERENCES lsps1_leases(order_id),
        blocks INTEGER NOT NULL CHECK (blocks >= 1),
        applied_at INTEGER,
        end_height_after INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX lsps1_lease_extensions_by_lease ON lsps1_lease_extensions (lease_order_id);";

/// [`crate::lsps1::claims`]: the claim token of each pay-first order, kept as its SHA-256
/// only (whoever holds the token may name the order's node; the book never holds the token).
pub const CLAIM_TOKENS_TABLE: &str = "
    CREATE TABLE lsps1_claim_tokens (
        token_hash TEXT PRIMARY KEY NOT NULL,
        order_id TEXT NOT NULL UNIQUE REFERENCES lsps1_orders(id)
    ) WITHOUT ROWID;";

/// [`crate::lsps1::customers`]: customer accounts (their API keys kept as SHA-256 only) and
/// their credit, an append-only ledger whose every row records the balance after it (never
/// negative: a CHECK, besides the check in the writing transaction).
pub const CUSTOMERS_TABLES: &str = "
    CREATE TABLE lsps1_customers (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL UNIQUE,
        key_hash TEXT NOT NULL UNIQUE,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        key_rotated_at INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE lsps1_credit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        customer_id TEXT NOT NULL REFERENCES lsps1_customers(id),
        at INTEGER NOT NULL,
        amount_sat INTEGER NOT NULL,
        kind TEXT NOT NULL
            CHECK (kind IN ('order_cancelled', 'coupon', 'adjustment', 'order_debit')),
        order_id TEXT,
        coupon_code TEXT,
        reason TEXT NOT NULL,
        balance_after_sat INTEGER NOT NULL CHECK (balance_after_sat >= 0)
    );
    CREATE INDEX lsps1_credit_by_customer ON lsps1_credit (customer_id, seq);";

/// [`crate::lsps1::customers`]: each customer's own limits and discount; which orders belong to
/// which customer and the credit each used; and the credit coupons the operator issues to a
/// customer (redeemed once, into its credit).
pub const CUSTOMER_ORDERS_TABLES: &str = "
    ALTER TABLE lsps1_customers ADD COLUMN requests_per_minute INTEGER;
    ALTER TABLE lsps1_customers ADD COLUMN orders_per_minute INTEGER;
    ALTER TABLE lsps1_customers ADD COLUMN discount_percent INTEGER NOT NULL DEFAULT 0
        CHECK (discount_percent BETWEEN 0 AND 100);
    CREATE TABLE lsps1_customer_orders (
        order_id TEXT PRIMARY KEY NOT NULL REFERENCES lsps1_orders(id),
        customer_id TEXT NOT NULL REFERENCES lsps1_customers(id),
        credit_used_sat INTEGER NOT NULL CHECK (credit_used_sat >= 0),
        cancelled_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX lsps1_customer_orders_by_customer ON lsps1_customer_orders (customer_id);
    CREATE TABLE lsps1_credit_coupons (
        code TEXT PRIMARY KEY NOT NULL,
        customer_id TEXT NOT NULL REFERENCES lsps1_customers(id),
        amount_sat INTEGER NOT NULL CHECK (amount_sat >= 1),
        created_at INTEGER NOT NULL,
        redeemed_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX lsps1_credit_coupons_by_customer ON lsps1_credit_coupons (customer_id);";

/// [`crate::lsps1::store`] at scale: the sum of open reservations kept in one row by triggers
/// (every order asks for it, and summing the reservations grew with the book), and partial
/// indexes over the orders the fulfilment walk reads each second: live orders by expiry, the
/// live orders with something to act on (a payment held or made, credit, an on-chain option),
/// and the failed orders still owing an on-chain refund. Written so that it applies again
/// over itself.
pub const SCALE_TABLES: &str = "
    CREATE TABLE IF NOT EXISTS lsps1_reserved_total (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        amount_sat INTEGER NOT NULL CHECK (amount_sat >= 0)
    );
    INSERT OR REPLACE INTO lsps1_reserved_total (id, amount_sat)
        SELECT 0, COALESCE(SUM(amount_sat), 0) FROM lsps1_reservations WHERE released_at IS NULL;
    CREATE TRIGGER IF NOT EXISTS lsps1_reservation_taken AFTER INSERT ON lsps1_reservations
        WHEN NEW.released_at IS NULL
        BEGIN
            UPDATE lsps1_reserved_total SET amount_sat = amount_sat + NEW.amount_sat WHERE id = 0;
        END;
    CREATE TRIGGER IF NOT EXISTS lsps1_reservation_released AFTER UPDATE OF released_at
        ON lsps1_reservations
        WHEN OLD.released_at IS NULL AND NEW.released_at IS NOT NULL
        BEGIN
            UPDATE lsps1_reserved_total SET amount_sat = amount_sat - OLD.amount_sat WHERE id = 0;
        END;
    CREATE TRIGGER IF NOT EXISTS lsps1_reservation_reopened AFTER UPDATE OF released_at
        ON lsps1_reservations
        WHEN OLD.released_at IS NOT NULL AND NEW.released_at IS NULL
        BEGIN
            UPDATE lsps1_reserved_total SET amount_sat = amount_sat + NEW.amount_sat WHERE id = 0;
        END;
    CREATE TRIGGER IF NOT EXISTS lsps1_reservation_resized AFTER UPDATE OF amount_sat
        ON lsps1_reservations
        WHEN OLD.released_at IS NULL AND NEW.released_at IS NULL
        BEGIN
            UPDATE lsps1_reserved_total
                SET amount_sat = amount_sat - OLD.amount_sat + NEW.amount_sat WHERE id = 0;
        END;
    CREATE TRIGGER IF NOT EXISTS lsps1_reservation_deleted AFTER DELETE ON lsps1_reservations
        WHEN OLD.released_at IS NULL
        BEGIN
            UPDATE lsps1_reserved_total SET amount_sat = amount_sat - OLD.amount_sat WHERE id = 0;
        END;
    CREATE INDEX IF NOT EXISTS lsps1_orders_live_by_expiry ON lsps1_orders (expires_at)
        WHERE order_state = 'CREATED';
    CREATE INDEX IF NOT EXISTS lsps1_orders_acting ON lsps1_orders (created_at)
        WHERE order_state = 'CREATED'
          AND (bolt11_state IS NOT 'EXPECT_PAYMENT' OR onchain_state IS NOT NULL);
    CREATE INDEX IF NOT EXISTS lsps1_orders_refunding ON lsps1_orders (created_at)
        WHERE order_state = 'FAILED' AND onchain_state IN ('EXPECT_PAYMENT', 'PAID');";

/// Schema 15: the unpaid, live-or-just-expired orders of each client, so counting a client's
/// unpaid orders for a new one reads only those, not every order it ever made.
pub const UNPAID_BY_CLIENT_INDEX: &str = "
    CREATE INDEX IF NOT EXISTS lsps1_orders_unpaid_by_client
        ON lsps1_orders (client_node_id, source, expires_at)
        WHERE order_state = 'CREATED'
          AND COALESCE(bolt11_state, 'EXPECT_PAYMENT') = 'EXPECT_PAYMENT'
          AND COALESCE(onchain_state, 'EXPECT_PAYMENT') = 'EXPECT_PAYMENT';";

/// Schema 16: the index of every order by client goes. No query used it (the operator's
/// listing, whose client filter is optional, reads the table), and each new order wrote one
/// page of it at a random place in the file.
pub const NO_INDEX_BY_CLIENT: &str = "DROP INDEX IF EXISTS lsps1_orders_by_client;";
