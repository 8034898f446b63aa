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
use crate::lsps1::credit::{self, CreditError};
pub use crate::lsps1::credit::{CreditEntry, CreditKind};
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
    pub terms: CustomerTerms,
}

/// What a new order of a customer draws on.
#[derive(Debug, Clone)]
pub struct Account {
    pub customer_id: String,
    pub discount: Option<crate::lsps1::coupons::Discount>,
    /// The credit balance when the order is priced.
    pub credit_sat: u64,
}

/// What a customer gets apart from everyone else: its own rate limits (overriding the
/// per-address ones of `[http.limits]` when set) and a discount on the service part of the fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CustomerTerms {
    /// Requests a minute on the Flow API; `None`: `[http.limits] rate_limit_per_minute`.
    pub requests_per_minute: Option<u32>,
    /// Orders created a minute; `None`: `[http.limits] orders_per_minute`.
    pub orders_per_minute: Option<u32>,
    /// Percent (0 to 100) off the service fee of this customer's orders.
    pub discount_percent: u8,
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
    #[error("customer {0} still has an order in progress; cancel it or let it end first")]
    HasLiveOrders(String),
    #[error("a discount is 0 to 100 percent, and a rate limit at least 1 a minute")]
    BadTerms,
    #[error("no coupon {0} for this account")]
    UnknownCoupon(String),
    #[error("coupon {0} has already been redeemed")]
    CouponRedeemed(String),
    #[error("a coupon is worth 1 sat to 1 BTC")]
    BadCouponAmount,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CreditError> for CustomerError {
    fn from(error: CreditError) -> Self {
        match error {
            CreditError::Insufficient {
                balance_sat,
                needed_sat,
            } => CustomerError::InsufficientCredit {
                balance_sat,
                needed_sat,
            },
            CreditError::UnknownCustomer(id) => CustomerError::Unknown(id),
            CreditError::ZeroAmount => CustomerError::ZeroAmount,
            CreditError::Database(e) => CustomerError::Store(e.into()),
        }
    }
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
        terms: CustomerTerms {
            requests_per_minute: row.get(5)?,
            orders_per_minute: row.get(6)?,
            discount_percent: row.get(7)?,
        },
    })
}

const COLUMNS: &str = "id, name, disabled, created_at, key_rotated_at, requests_per_minute,
    orders_per_minute, discount_percent";

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
            terms: CustomerTerms::default(),
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
        let balance = credit::balance(&tx, &customer)?;
        if balance > 0 {
            return Err(CustomerError::HasCredit(id_or_name.to_string(), balance));
        }
        let live: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM lsps1_customer_orders c
                JOIN lsps1_orders o ON o.id = c.order_id
                WHERE c.customer_id = ?1 AND o.order_state = 'CREATED')",
            params![customer],
            |row| row.get(0),
        )?;
        if live {
            return Err(CustomerError::HasLiveOrders(id_or_name.to_string()));
        }
        for table in [
            "lsps1_credit",
            "lsps1_customer_orders",
            "lsps1_credit_coupons",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE customer_id = ?1"),
                params![customer],
            )?;
        }
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
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let after = credit::write_entry(&tx, customer_id, amount_sat, kind, now)?;
        tx.commit()?;
        Ok(after)
    }

    /// The credit of `customer_id` now.
    pub fn credit_balance(&self, customer_id: &str) -> Result<u64, CustomerError> {
        Ok(credit::balance(&self.conn(), customer_id)?)
    }

    /// The ledger of `customer_id`, oldest first.
    pub fn credit_entries(&self, customer_id: &str) -> Result<Vec<CreditEntry>, CustomerError> {
        Ok(credit::entries(&self.conn(), customer_id)?)
    }

    /// Sets customer `id_or_name`'s own limits and discount.
    pub fn set_customer_terms(
        &self,
        id_or_name: &str,
        terms: CustomerTerms,
    ) -> Result<Customer, CustomerError> {
        if terms.discount_percent > 100
            || terms.requests_per_minute == Some(0)
            || terms.orders_per_minute == Some(0)
        {
            return Err(CustomerError::BadTerms);
        }
        let changed = self.conn().execute(
            "UPDATE lsps1_customers SET requests_per_minute = ?2, orders_per_minute = ?3,
                discount_percent = ?4 WHERE id = ?1 OR name = ?1",
            params![
                id_or_name,
                terms.requests_per_minute,
                terms.orders_per_minute,
                terms.discount_percent
            ],
        )?;
        if changed == 0 {
            return Err(CustomerError::Unknown(id_or_name.to_string()));
        }
        self.customer(id_or_name)?
            .ok_or_else(|| CustomerError::Unknown(id_or_name.to_string()))
    }
}
