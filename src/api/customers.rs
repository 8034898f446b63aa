//! The operator contract for customer accounts (the Flow API's buyers): adding, listing,
//! disabling and deleting customers, their API keys, limits and discount, and their credit
//! ledger and credit coupons, as request and response types.

use serde::{Deserialize, Serialize};

/// One customer account. `customer` in requests names it by id or by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomerInfo {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    pub created_at: u64,
    pub key_rotated_at: Option<u64>,
    /// None: `[http.limits] rate_limit_per_minute`.
    pub requests_per_minute: Option<u32>,
    /// None: `[http.limits] orders_per_hour`.
    pub orders_per_minute: Option<u32>,
    pub discount_percent: u8,
    pub credit_sat: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AddCustomer {
    pub name: String,
}

/// A customer with its API key: the only time the key is shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomerKey {
    pub customer: CustomerInfo,
    pub api_key: String,
}

/// Names one customer (by id or name).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CustomerRef {
    pub customer: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DisableCustomer {
    pub customer: String,
    /// false enables the customer again.
    pub disabled: bool,
}

/// A customer's own limits and discount; each field left out keeps its value, and
/// `clear_limits` returns both limits to the per-address defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SetCustomerTerms {
    pub customer: String,
    pub requests_per_minute: Option<u32>,
    pub orders_per_minute: Option<u32>,
    pub discount_percent: Option<u8>,
    #[serde(default)]
    pub clear_limits: bool,
}

/// An operator adjustment of a customer's credit: positive adds, negative takes away (never
/// below zero).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdjustCredit {
    pub customer: String,
    pub amount_sat: i64,
    pub reason: String,
}

/// A credit coupon to issue to a customer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IssueCreditCoupon {
    pub customer: String,
    pub amount_sat: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreditCouponInfo {
    pub code: String,
    pub customer_id: String,
    pub amount_sat: u64,
    pub created_at: u64,
    pub redeemed_at: Option<u64>,
}

/// One ledger entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreditEntryInfo {
    pub seq: i64,
    pub at: u64,
    /// Positive credit, negative debit.
    pub amount_sat: i64,
    /// `order_cancelled`, `coupon`, `adjustment` or `order_debit`.
    pub kind: String,
    pub order_id: Option<String>,
    pub coupon_code: Option<String>,
    pub reason: String,
    pub balance_after_sat: u64,
}

/// A customer's credit: the balance, every ledger entry (oldest first) and its coupons.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomerCredit {
    pub customer: CustomerInfo,
    pub balance_sat: u64,
    pub entries: Vec<CreditEntryInfo>,
    pub coupons: Vec<CreditCouponInfo>,
}
