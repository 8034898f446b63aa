//! Credit coupons (`lsps1_credit_coupons`): an amount of credit the operator issues to one
//! customer account, which the customer redeems once into its credit ledger. Not the discount
//! coupons of [`crate::lsps1::coupons`], which a client names as an order's token.

use rand::RngCore;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::credit::{self, CreditKind};
use crate::lsps1::customers::CustomerError;
use crate::lsps1::store::OrderBook;

/// Random bytes in a coupon code.
const CODE_BYTES: usize = 16;
/// Largest coupon: 1 BTC.
pub const MAX_COUPON_SAT: u64 = 100_000_000;

/// One credit coupon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditCoupon {
    pub code: String,
    pub customer_id: String,
    pub amount_sat: u64,
    pub created_at: u64,
    pub redeemed_at: Option<u64>,
}

fn coupon_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CreditCoupon> {
    Ok(CreditCoupon {
        code: row.get(0)?,
        customer_id: row.get(1)?,
        amount_sat: from_sql_u64(row.get(2)?),
        created_at: from_sql_u64(row.get(3)?),
        redeemed_at: row.get::<_, Option<i64>>(4)?.map(from_sql_u64),
    })
}

const COLUMNS: &str = "code, customer_id, amount_sat, created_at, redeemed_at";

impl OrderBook {
    /// Issues a coupon of `amount_sat` (1 sat to [`MAX_COUPON_SAT`]) to customer
    /// `id_or_name`.
    pub fn issue_credit_coupon(
        &self,
        id_or_name: &str,
        amount_sat: u64,
    ) -> Result<CreditCoupon, CustomerError> {
        if amount_sat == 0 || amount_sat > MAX_COUPON_SAT {
            return Err(CustomerError::BadCouponAmount);
        }
        let customer = self
            .customer(id_or_name)?
            .ok_or_else(|| CustomerError::Unknown(id_or_name.to_string()))?;
        let mut code = [0u8; CODE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut code);
        let coupon = CreditCoupon {
            code: hex::encode(code),
            customer_id: customer.id,
            amount_sat,
            created_at: self.clock().now_unix_secs(),
            redeemed_at: None,
        };
        self.conn().execute(
            "INSERT INTO lsps1_credit_coupons (code, customer_id, amount_sat, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                coupon.code,
                coupon.customer_id,
                to_sql_u64(amount_sat),
                to_sql_u64(coupon.created_at)
            ],
        )?;
        Ok(coupon)
    }

    /// Customer `customer_id`'s coupons, redeemed or not, oldest first.
    pub fn credit_coupons(&self, customer_id: &str) -> Result<Vec<CreditCoupon>, CustomerError> {
        let conn = self.conn();
        let mut statement = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM lsps1_credit_coupons WHERE customer_id = ?1
             ORDER BY created_at, code"
        ))?;
        let rows = statement.query_map(params![customer_id], coupon_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Redeems coupon `code` of customer `customer_id` into its credit, once: returns the
    /// coupon and the balance after it. Another customer's coupon is unknown.
    pub fn redeem_credit_coupon(
        &self,
        customer_id: &str,
        code: &str,
    ) -> Result<(CreditCoupon, u64), CustomerError> {
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let coupon = tx
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM lsps1_credit_coupons WHERE code = ?1 AND customer_id = ?2"
                ),
                params![code, customer_id],
                coupon_row,
            )
            .optional()?
            .ok_or_else(|| CustomerError::UnknownCoupon(code.to_string()))?;
        if coupon.redeemed_at.is_some() {
            return Err(CustomerError::CouponRedeemed(code.to_string()));
        }
        tx.execute(
            "UPDATE lsps1_credit_coupons SET redeemed_at = ?2 WHERE code = ?1",
            params![code, to_sql_u64(now)],
        )?;
        let balance = credit::write_entry(
            &tx,
            customer_id,
            coupon.amount_sat,
            &CreditKind::Coupon(code.to_string()),
            now,
        )?;
        tx.commit()?;
        Ok((
            CreditCoupon {
                redeemed_at: Some(now),
                ..coupon
            },
            balance,
        ))
    }
}
