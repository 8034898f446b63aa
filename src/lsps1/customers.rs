//! Customer accounts and their credit, in the order book.
//!
//! A customer is a business that buys channels with an API key (the Flow API's
//! `X-VOLTAGE-AUTH`): the key is 32 random bytes (64 hex characters), shown once when the
//! customer is added or the key rotated, and kept only as its SHA-256; rotating replaces the
//! hash, so the old key stops working at once. A disabled customer's key finds nothing.
//!
//! Credit is an append-only ledger (`lsps1_credit`): credit from a cancelled paid order, a
//! redeemed coupon or an operator adjustment, debits when an order uses credit. Every entry
//! records the balance after it, computed and checked (never negative) in the transaction that
//! writes it, which takes SQLite's write lock first: two debits at once, from any connection,
//! cannot both spend the same balance. Each entry names its order or coupon; an adjustment
//! names its reason. A customer with credit left cannot be deleted.

use bitcoin::hashes::{sha256, Hash};
use rand::RngCore;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::order::OrderId;
use crate::lsps1::store::{OrderBook, StoreError};

/// Random bytes in an API key, and in a customer id.
const KEY_BYTES: usize = 32;
const ID_BYTES: usize = 16;
/// Longest customer name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A customer's API key; shown once, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    fn random<R: RngCore + ?Sized>(rng: &mut R) -> ApiKey {
        let mut bytes = [0u8; KEY_BYTES];
        rng.fill_bytes(&mut bytes);
        ApiKey(hex::encode(bytes))
    }

    /// A key a client presented.
    pub fn from_client(text: &str) -> ApiKey {
        ApiKey(text.to_string())
    }

    /// The key itself, to show the operator once.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> String {
        sha256::Hash::hash(self.0.as_bytes()).to_string()
    }
}

/// Never printed.
impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

/// One customer account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: u64,
    pub key_rotated_at: Option<u64>,
}

/// What a credit entry is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditKind {
    /// What a cancelled, paid order's customer paid, kept as credit.
    OrderCancelled(OrderId),
    /// A redeemed coupon.
    Coupon(String),
    /// The operator's adjustment, with its reason.
    Adjustment(String),
    /// Credit an order used.
    OrderDebit(OrderId),
}

impl CreditKind {
    fn name(&self) -> &'static str {
        match self {
            CreditKind::OrderCancelled(_) => "order_cancelled",
            CreditKind::Coupon(_) => "coupon",
            CreditKind::Adjustment(_) => "adjustment",
            CreditKind::OrderDebit(_) => "order_debit",
        }
    }
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditEntry {
    pub seq: i64,
    pub at: u64,
    /// Positive credit, negative debit.
    pub amount_sat: i64,
    pub kind: String,
    pub order_id: Option<String>,
    pub coupon_code: Option<String>,
    pub reason: String,
    pub balance_after_sat: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    #[error("a customer name is 1 to {MAX_NAME_LEN} printable characters")]
    BadName,
    #[error("there is already a customer named {0}")]
    NameTaken(String),
    #[error("there is no customer {0}")]
    Unknown(String),
    #[error("the credit is {balance_sat} sat; {needed_sat} sat cannot be taken from it")]
    InsufficientCredit { balance_sat: u64, needed_sat: u64 },
    #[error("customer {0} still has {1} sat of credit; settle it before deleting the customer")]
    HasCredit(String, u64),
    #[error("a credit entry moves at least 1 sat")]
    ZeroAmount,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for CustomerError {
    fn from(error: rusqlite::Error) -> Self {
        CustomerError::Store(error.into())
    }
}

fn customer_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Customer> {
    Ok(Customer {
        id: row.get(0)?,
        name: row.get(1)?,
        disabled: row.get(2)?,
        created_at: from_sql_u64(row.get(3)?),
        key_rotated_at: row.get::<_, Option<i64>>(4)?.map(from_sql_u64),
    })
}

const COLUMNS: &str = "id, name, disabled, created_at, key_rotated_at";

impl OrderBook {
    /// Adds a customer named `name`; returns it with its API key (the only time it is seen).
    pub fn add_customer(&self, name: &str) -> Result<(Customer, ApiKey), CustomerError> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_LEN
            || name.chars().any(char::is_control)
        {
            return Err(CustomerError::BadName);
        }
        let mut rng = rand::rngs::OsRng;
        let key = ApiKey::random(&mut rng);
        let mut id = [0u8; ID_BYTES];
        rng.fill_bytes(&mut id);
        let customer = Customer {
            id: hex::encode(id),
            name: name.to_string(),
            disabled: false,
            created_at: self.clock().now_unix_secs(),
            key_rotated_at: None,
        };
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO lsps1_customers (id, name, key_hash, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                customer.id,
                customer.name,
                key.hash(),
                to_sql_u64(customer.created_at)
            ],
        )?;
        if inserted == 0 {
            return Err(CustomerError::NameTaken(customer.name));
        }
        Ok((customer, key))
    }

    /// The enabled customer `key` belongs to, if any.
    pub fn customer_by_key(&self, key: &ApiKey) -> Result<Option<Customer>, CustomerError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM lsps1_customers WHERE key_hash = ?1 AND disabled = 0"
                ),
                params![key.hash()],
                customer_row,
            )
            .optional()?)
    }

    /// Customer `id_or_name`.
    pub fn customer(&self, id_or_name: &str) -> Result<Option<Customer>, CustomerError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM lsps1_customers WHERE id = ?1 OR name = ?1"),
                params![id_or_name],
                customer_row,
            )
            .optional()?)
    }

    /// Every customer, oldest first.
    pub fn customers(&self) -> Result<Vec<Customer>, CustomerError> {
        let conn = self.conn();
        let mut statement = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM lsps1_customers ORDER BY created_at, id"
        ))?;
        let rows = statement.query_map([], customer_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Disables (or enables again) customer `id_or_name`: a disabled customer's key finds
    /// nothing.
    pub fn set_customer_disabled(
        &self,
        id_or_name: &str,
        disabled: bool,
    ) -> Result<Customer, CustomerError> {
        let changed = self.conn().execute(
            "UPDATE lsps1_customers SET disabled = ?2 WHERE id = ?1 OR name = ?1",
            params![id_or_name, disabled],
        )?;
        if changed == 0 {
            return Err(CustomerError::Unknown(id_or_name.to_string()));
        }
        self.customer(id_or_name)?
            .ok_or_else(|| CustomerError::Unknown(id_or_name.to_string()))
    }

    /// Gives customer `id_or_name` a new API key; the old one stops working at once.
    pub fn rotate_customer_key(&self, id_or_name: &str) -> Result<ApiKey, CustomerError> {
        let key = ApiKey::random(&mut rand::rngs::OsRng);
        let changed = self.conn().execute(
            "UPDATE lsps1_customers SET key_hash = ?2, key_rotated_at = ?3
             WHERE id = ?1 OR name = ?1",
            params![
                id_or_name,
                key.hash(),
                to_sql_u64(self.clock().now_unix_secs())
            ],
        )?;
        if changed == 0 {
            return Err(CustomerError::Unknown(id_or_name.to_string()));
        }
        Ok(key)
    }

    /// Deletes customer `id_or_name` with its (settled) ledger; refused while it has credit.
    pub fn delete_customer(&self, id_or_name: &str) -> Result<(), CustomerError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let customer = tx
            .query_row(
                "SELECT id FROM lsps1_customers WHERE id = ?1 OR name = ?1",
                params![id_or_name],
                |row| row.get::<_, String>(0),
            )
            .optional()?
            .ok_or_else(|| CustomerError::Unknown(id_or_name.to_string()))?;
        let balance = balance_in(&tx, &customer)?;
        if balance > 0 {
            return Err(CustomerError::HasCredit(id_or_name.to_string(), balance));
        }
        tx.execute(
            "DELETE FROM lsps1_credit WHERE customer_id = ?1",
            params![customer],
        )?;
        tx.execute(
            "DELETE FROM lsps1_customers WHERE id = ?1",
            params![customer],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Adds a ledger entry for `customer_id`: `amount_sat` of credit (a debit for
    /// [`CreditKind::OrderDebit`]); returns the balance after it. A debit larger than the
    /// balance is refused and writes nothing.
    pub fn record_credit(
        &self,
        customer_id: &str,
        amount_sat: u64,
        kind: &CreditKind,
    ) -> Result<u64, CustomerError> {
        if amount_sat == 0 {
            return Err(CustomerError::ZeroAmount);
        }
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let known: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM lsps1_customers WHERE id = ?1)",
            params![customer_id],
            |row| row.get(0),
        )?;
        if !known {
            return Err(CustomerError::Unknown(customer_id.to_string()));
        }
        let balance = balance_in(&tx, customer_id)?;
        let (signed, after) = match kind {
            CreditKind::OrderDebit(_) => {
                let after =
                    balance
                        .checked_sub(amount_sat)
                        .ok_or(CustomerError::InsufficientCredit {
                            balance_sat: balance,
                            needed_sat: amount_sat,
                        })?;
                (-to_sql_u64(amount_sat), after)
            }
            _ => (to_sql_u64(amount_sat), balance.saturating_add(amount_sat)),
        };
        let (order_id, coupon_code, reason) = match kind {
            CreditKind::OrderCancelled(id) => (
                Some(id.to_string()),
                None,
                "a cancelled paid order".to_string(),
            ),
            CreditKind::OrderDebit(id) => {
                (Some(id.to_string()), None, "used by an order".to_string())
            }
            CreditKind::Coupon(code) => (None, Some(code.clone()), "a redeemed coupon".to_string()),
            CreditKind::Adjustment(reason) => (None, None, reason.clone()),
        };
        tx.execute(
            "INSERT INTO lsps1_credit (customer_id, at, amount_sat, kind, order_id, coupon_code,
                reason, balance_after_sat)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                customer_id,
                to_sql_u64(now),
                signed,
                kind.name(),
                order_id,
                coupon_code,
                reason,
                to_sql_u64(after)
            ],
        )?;
        tx.commit()?;
        Ok(after)
    }

    /// The credit of `customer_id` now.
    pub fn credit_balance(&self, customer_id: &str) -> Result<u64, CustomerError> {
        balance_in(&self.conn(), customer_id)
    }

    /// The ledger of `customer_id`, oldest first.
    pub fn credit_entries(&self, customer_id: &str) -> Result<Vec<CreditEntry>, CustomerError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT seq, at, amount_sat, kind, order_id, coupon_code, reason, balance_after_sat
             FROM lsps1_credit WHERE customer_id = ?1 ORDER BY seq",
        )?;
        let rows = statement.query_map(params![customer_id], |row| {
            Ok(CreditEntry {
                seq: row.get(0)?,
                at: from_sql_u64(row.get(1)?),
                amount_sat: row.get(2)?,
                kind: row.get(3)?,
                order_id: row.get(4)?,
                coupon_code: row.get(5)?,
                reason: row.get(6)?,
                balance_after_sat: from_sql_u64(row.get(7)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The balance after the last entry of `customer_id` (0 without one).
fn balance_in(conn: &rusqlite::Connection, customer_id: &str) -> Result<u64, CustomerError> {
    let balance: Option<i64> = conn
        .query_row(
            "SELECT balance_after_sat FROM lsps1_credit WHERE customer_id = ?1
             ORDER BY seq DESC LIMIT 1",
            params![customer_id],
            |row| row.get(0),
        )
        .optional()?;
    Ok(balance.map_or(0, from_sql_u64))
}
