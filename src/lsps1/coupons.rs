//! Coupons: discount codes a client presents as the LSPS1 `token`.
//!
//! A coupon is a fixed or percentage discount on the service part of the fee (never on
//! on-chain costs; see [`crate::lsps1::pricing`]), usable once, a limited number of times or
//! without limit, optionally until an expiry time. This file holds the pure rules
//! ([`Coupon::check_redeemable`], [`Discount::discount_sat`]) and the SQL on the `lsps1_coupons`
//! table; the order book ([`crate::lsps1::store`]) calls [`redeem`] inside the same transaction
//! that creates the order, so a use is counted if and only if the order exists.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// Longest coupon code accepted.
pub const MAX_COUPON_CODE_LEN: usize = 64;

/// How much a coupon takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Discount {
    /// A fixed number of sats, at most the whole service fee.
    FixedSat(u64),
    /// A percentage (0 to 100) of the service fee, rounded down.
    Percent(u8),
}

impl Discount {
    /// The discount on a service fee of `service_fee_sat`, never more than that fee.
    pub fn discount_sat(&self, service_fee_sat: u64) -> u64 {
        match *self {
            Discount::FixedSat(sat) => sat.min(service_fee_sat),
            Discount::Percent(percent) => {
                let percent = u128::from(percent.min(100));
                // Fits: at most service_fee_sat.
                (u128::from(service_fee_sat) * percent / 100) as u64
            }
        }
    }

    fn kind_and_value(&self) -> (&'static str, u64) {
        match *self {
            Discount::FixedSat(sat) => ("fixed_sat", sat),
            Discount::Percent(p) => ("percent", u64::from(p)),
        }
    }

    fn from_kind_and_value(kind: &str, value: u64) -> Option<Discount> {
        match kind {
            "fixed_sat" => Some(Discount::FixedSat(value)),
            "percent" => u8::try_from(value)
                .ok()
                .filter(|p| *p <= 100)
                .map(Discount::Percent),
            _ => None,
        }
    }
}

/// What the operator supplies to create a coupon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCoupon {
    pub code: String,
    pub discount: Discount,
    /// `Some(1)` for single use, `Some(n)` for n uses, `None` for unlimited.
    pub max_uses: Option<u32>,
    /// Unix seconds after which the coupon is no longer accepted.
    pub expires_at: Option<u64>,
}

/// A stored coupon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    pub code: String,
    pub discount: Discount,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub expires_at: Option<u64>,
    pub created_at: u64,
}

impl Coupon {
    /// Whether one more order may use this coupon at `now` (Unix seconds).
    pub fn check_redeemable(&self, now: u64) -> Result<(), CouponError> {
        if self.expires_at.is_some_and(|expiry| now >= expiry) {
            return Err(CouponError::Expired);
        }
        if self.max_uses.is_some_and(|max| self.uses >= max) {
            return Err(CouponError::UsedUp);
        }
        Ok(())
    }
}

/// Why a coupon cannot be created or used. `Unknown`, `Expired` and `UsedUp` are what a client
/// sees as LSPS1 error 102.
#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    #[error("the token is not a known coupon")]
    Unknown,
    #[error("the coupon has expired")]
    Expired,
    #[error("the coupon has already been used up")]
    UsedUp,
    #[error("a coupon with this code already exists")]
    AlreadyExists,
    #[error("coupon codes must be 1 to 64 letters, digits, '-' or '_'")]
    InvalidCode,
    #[error("a percentage discount must be between 0 and 100 and a fixed discount above zero")]
    InvalidDiscount,
    #[error("a coupon needs max_uses of at least 1, or none for unlimited use")]
    InvalidMaxUses,
    #[error("the coupon table could not be read or written: {0}")]
    Database(#[from] rusqlite::Error),
}

impl CouponError {
    /// True for the errors a client caused by presenting a bad token (LSPS1 error 102).
    pub fn is_bad_token(&self) -> bool {
        matches!(
            self,
            CouponError::Unknown | CouponError::Expired | CouponError::UsedUp
        )
    }
}

/// Checks the shape of a coupon code without touching the database.
pub fn validate_code(code: &str) -> Result<(), CouponError> {
    let well_formed = !code.is_empty()
        && code.len() <= MAX_COUPON_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if well_formed {
        Ok(())
    } else {
        Err(CouponError::InvalidCode)
    }
}

/// Inserts a new coupon after checking its definition.
pub(crate) fn insert(
    conn: &Connection,
    coupon: &NewCoupon,
    now: u64,
) -> Result<Coupon, CouponError> {
    validate_code(&coupon.code)?;
    match coupon.discount {
        Discount::Percent(p) if p > 100 => return Err(CouponError::InvalidDiscount),
        Discount::FixedSat(0) => return Err(CouponError::InvalidDiscount),
        _ => {}
    }
    if coupon.max_uses == Some(0) {
        return Err(CouponError::InvalidMaxUses);
    }
    let (kind, value) = coupon.discount.kind_and_value();
    let inserted = conn.execute(
        "INSERT INTO lsps1_coupons (code, discount_kind, discount_value, max_uses, uses, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6) ON CONFLICT(code) DO NOTHING",
        params![coupon.code, kind, to_sql_u64(value), coupon.max_uses, coupon.expires_at.map(to_sql_u64), to_sql_u64(now)],
    )?;
    if inserted == 0 {
        return Err(CouponError::AlreadyExists);
    }
    Ok(Coupon {
        code: coupon.code.clone(),
        discount: coupon.discount,
        max_uses: coupon.max_uses,
        uses: 0,
        expires_at: coupon.expires_at,
        created_at: now,
    })
}

/// Loads one coupon.
pub(crate) fn load(conn: &Connection, code: &str) -> Result<Option<Coupon>, CouponError> {
    conn.query_row(
        "SELECT code, discount_kind, discount_value, max_uses, uses, expires_at, created_at
         FROM lsps1_coupons WHERE code = ?1",
        params![code],
        row_to_coupon,
    )
    .optional()?
    .transpose()
}

/// All coupons, ordered by code.
pub(crate) fn list(conn: &Connection) -> Result<Vec<Coupon>, CouponError> {
    let mut statement = conn.prepare(
        "SELECT code, discount_kind, discount_value, max_uses, uses, expires_at, created_at
         FROM lsps1_coupons ORDER BY code",
    )?;
    let rows = statement.query_map([], row_to_coupon)?;
    let mut coupons = Vec::new();
    for row in rows {
        coupons.push(row??);
    }
    Ok(coupons)
}

/// Deletes a coupon; orders that used it keep their code and discount.
pub(crate) fn delete(conn: &Connection, code: &str) -> Result<bool, CouponError> {
    Ok(conn.execute("DELETE FROM lsps1_coupons WHERE code = ?1", params![code])? == 1)
}

/// Counts one use of `code` if it is redeemable at `now`. Must run inside the transaction that
/// creates the order; the conditional UPDATE makes the check and the count one step.
pub(crate) fn redeem(conn: &Connection, code: &str, now: u64) -> Result<Coupon, CouponError> {
    let coupon = load(conn, code)?.ok_or(CouponError::Unknown)?;
    coupon.check_redeemable(now)?;
    let updated = conn.execute(
        "UPDATE lsps1_coupons SET uses = uses + 1
         WHERE code = ?1 AND (max_uses IS NULL OR uses < max_uses)",
        params![code],
    )?;
    if updated != 1 {
        return Err(CouponError::UsedUp);
    }
    Ok(Coupon {
        uses: coupon.uses + 1,
        ..coupon
    })
}

type CouponRow = Result<Coupon, CouponError>;

fn row_to_coupon(row: &rusqlite::Row<'_>) -> rusqlite::Result<CouponRow> {
    let kind: String = row.get(1)?;
    let value: i64 = row.get(2)?;
    let expires_at: Option<i64> = row.get(5)?;
    let created_at: i64 = row.get(6)?;
    let Some(discount) = Discount::from_kind_and_value(&kind, from_sql_u64(value)) else {
        return Ok(Err(CouponError::InvalidDiscount));
    };
    Ok(Ok(Coupon {
        code: row.get(0)?,
        discount,
        max_uses: row.get(3)?,
        uses: row.get(4)?,
        expires_at: expires_at.map(from_sql_u64),
        created_at: from_sql_u64(created_at),
    }))
}

/// SQLite integers are signed 64-bit; amounts and times above `i64::MAX` are clamped (no real
/// amount or time gets there, and clamping keeps a bad value from wrapping to a negative one).
pub(crate) fn to_sql_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coupon(max_uses: Option<u32>, uses: u32, expires_at: Option<u64>) -> Coupon {
        Coupon {
            code: "SAVE".into(),
            discount: Discount::Percent(10),
            max_uses,
            uses,
            expires_at,
            created_at: 0,
        }
    }

    #[test]
    fn redeemability_rules() {
        assert!(coupon(None, 1_000, None).check_redeemable(5).is_ok());
        assert!(coupon(Some(1), 0, None).check_redeemable(5).is_ok());
        assert!(matches!(
            coupon(Some(1), 1, None).check_redeemable(5),
            Err(CouponError::UsedUp)
        ));
        assert!(matches!(
            coupon(Some(3), 3, None).check_redeemable(5),
            Err(CouponError::UsedUp)
        ));
        assert!(coupon(Some(3), 2, Some(10)).check_redeemable(9).is_ok());
        assert!(matches!(
            coupon(None, 0, Some(10)).check_redeemable(10),
            Err(CouponError::Expired)
        ));
    }

    #[test]
    fn discounts_never_exceed_the_fee() {
        assert_eq!(Discount::FixedSat(100).discount_sat(50), 50);
        assert_eq!(Discount::FixedSat(100).discount_sat(500), 100);
        assert_eq!(Discount::Percent(100).discount_sat(u64::MAX), u64::MAX);
        assert_eq!(Discount::Percent(33).discount_sat(10), 3);
        assert_eq!(Discount::Percent(250).discount_sat(10), 10);
    }

    #[test]
    fn code_shape() {
        assert!(validate_code("SUMMER-2026_a").is_ok());
        for bad in ["", "has space", "ünicode", &"x".repeat(65)] {
            assert!(
                matches!(validate_code(bad), Err(CouponError::InvalidCode)),
                "{bad:?}"
            );
        }
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute(crate::lsps1::schema::COUPONS_TABLE, [])
            .unwrap();
        conn
    }

    #[test]
    fn sql_round_trip_and_definition_checks() {
        let conn = table();
        let new = NewCoupon {
            code: "FIVE".into(),
            discount: Discount::FixedSat(5_000),
            max_uses: Some(2),
            expires_at: Some(1_000),
        };
        let created = insert(&conn, &new, 10).unwrap();
        assert_eq!(load(&conn, "FIVE").unwrap(), Some(created.clone()));
        assert!(matches!(
            insert(&conn, &new, 11),
            Err(CouponError::AlreadyExists)
        ));
        let bad_percent = NewCoupon {
            code: "P".into(),
            discount: Discount::Percent(101),
            ..new.clone()
        };
        assert!(matches!(
            insert(&conn, &bad_percent, 0),
            Err(CouponError::InvalidDiscount)
        ));
        let zero_fixed = NewCoupon {
            code: "Z".into(),
            discount: Discount::FixedSat(0),
            ..new.clone()
        };
        assert!(matches!(
            insert(&conn, &zero_fixed, 0),
            Err(CouponError::InvalidDiscount)
        ));
        let zero_uses = NewCoupon {
            code: "U".into(),
            max_uses: Some(0),
            ..new.clone()
        };
        assert!(matches!(
            insert(&conn, &zero_uses, 0),
            Err(CouponError::InvalidMaxUses)
        ));
        assert_eq!(list(&conn).unwrap(), vec![created]);

        assert_eq!(redeem(&conn, "FIVE", 20).unwrap().uses, 1);
        assert_eq!(redeem(&conn, "FIVE", 20).unwrap().uses, 2);
        assert!(matches!(
            redeem(&conn, "FIVE", 20),
            Err(CouponError::UsedUp)
        ));
        assert!(matches!(
            redeem(&conn, "NOPE", 20),
            Err(CouponError::Unknown)
        ));
        assert!(delete(&conn, "FIVE").unwrap());
        assert!(!delete(&conn, "FIVE").unwrap());
        assert_eq!(load(&conn, "FIVE").unwrap(), None);
    }
}
