//! The operator's side of customer accounts, in the [`crate::api`] types: what
//! `lsp-node customers`, `add-customer`, `disable-customer`, `delete-customer`,
//! `rotate-customer-key`, `customer-terms`, `credit` and `credit-coupon` ask of the order book.

use crate::api::{
    AddCustomer, AdjustCredit, CreditCouponInfo, CreditEntryInfo, CustomerCredit, CustomerInfo,
    CustomerKey, CustomerRef, DisableCustomer, Empty, IssueCreditCoupon, OperatorError,
    OperatorResult, SetCustomerTerms,
};
use crate::lsps1::credit::CreditKind;
use crate::lsps1::credit_coupons::CreditCoupon;
use crate::lsps1::customers::{Customer, CustomerError, CustomerTerms};
use crate::lsps1::service::OrderService;

/// Longest adjustment reason.
const MAX_REASON_LEN: usize = 200;

fn refused(error: CustomerError) -> OperatorError {
    match error {
        CustomerError::Unknown(_) | CustomerError::UnknownCoupon(_) => {
            OperatorError::NotFound(error.to_string())
        }
        CustomerError::Store(_) => {
            tracing::error!(%error, "customer account failure");
            OperatorError::Internal("the order book failed; see the node's log".to_string())
        }
        CustomerError::HasCredit(..)
        | CustomerError::HasLiveOrders(_)
        | CustomerError::CouponRedeemed(_)
        | CustomerError::InsufficientCredit { .. } => OperatorError::Unavailable(error.to_string()),
        _ => OperatorError::InvalidRequest(error.to_string()),
    }
}

fn info(service: &OrderService, customer: &Customer) -> OperatorResult<CustomerInfo> {
    let credit_sat = service
        .order_book()
        .credit_balance(&customer.id)
        .map_err(refused)?;
    Ok(CustomerInfo {
        id: customer.id.clone(),
        name: customer.name.clone(),
        disabled: customer.disabled,
        created_at: customer.created_at,
        key_rotated_at: customer.key_rotated_at,
        requests_per_minute: customer.terms.requests_per_minute,
        orders_per_minute: customer.terms.orders_per_minute,
        discount_percent: customer.terms.discount_percent,
        credit_sat,
    })
}

fn find(service: &OrderService, customer: &str) -> OperatorResult<Customer> {
    service
        .order_book()
        .customer(customer)
        .map_err(refused)?
        .ok_or_else(|| refused(CustomerError::Unknown(customer.to_string())))
}

pub fn customers(service: &OrderService) -> OperatorResult<Vec<CustomerInfo>> {
    let customers = service.order_book().customers().map_err(refused)?;
    customers.iter().map(|c| info(service, c)).collect()
}

pub fn add_customer(service: &OrderService, req: AddCustomer) -> OperatorResult<CustomerKey> {
    let (customer, key) = service
        .order_book()
        .add_customer(&req.name)
        .map_err(refused)?;
    tracing::info!(customer = %customer.id, name = %customer.name, "customer added");
    Ok(CustomerKey {
        customer: info(service, &customer)?,
        api_key: key.reveal().to_string(),
    })
}

pub fn disable_customer(
    service: &OrderService,
    req: DisableCustomer,
) -> OperatorResult<CustomerInfo> {
    let customer = service
        .order_book()
        .set_customer_disabled(&req.customer, req.disabled)
        .map_err(refused)?;
    tracing::info!(customer = %customer.id, disabled = req.disabled, "customer access changed");
    info(service, &customer)
}

pub fn delete_customer(service: &OrderService, req: CustomerRef) -> OperatorResult<Empty> {
    service
        .order_book()
        .delete_customer(&req.customer)
        .map_err(refused)?;
    tracing::info!(customer = %req.customer, "customer deleted");
    Ok(Empty {})
}

pub fn rotate_customer_key(
    service: &OrderService,
    req: CustomerRef,
) -> OperatorResult<CustomerKey> {
    let key = service
        .order_book()
        .rotate_customer_key(&req.customer)
        .map_err(refused)?;
    let customer = find(service, &req.customer)?;
    tracing::info!(customer = %customer.id, "customer API key rotated");
    Ok(CustomerKey {
        customer: info(service, &customer)?,
        api_key: key.reveal().to_string(),
    })
}

pub fn set_customer_terms(
    service: &OrderService,
    req: SetCustomerTerms,
) -> OperatorResult<CustomerInfo> {
    let current = find(service, &req.customer)?.terms;
    let limits = match req.clear_limits {
        true => CustomerTerms::default(),
        false => current,
    };
    let terms = CustomerTerms {
        requests_per_minute: req.requests_per_minute.or(limits.requests_per_minute),
        orders_per_minute: req.orders_per_minute.or(limits.orders_per_minute),
        discount_percent: req.discount_percent.unwrap_or(current.discount_percent),
    };
    let customer = service
        .order_book()
        .set_customer_terms(&req.customer, terms)
        .map_err(refused)?;
    tracing::info!(customer = %customer.id, ?terms, "customer terms set");
    info(service, &customer)
}

fn coupon_info(coupon: &CreditCoupon) -> CreditCouponInfo {
    CreditCouponInfo {
        code: coupon.code.clone(),
        customer_id: coupon.customer_id.clone(),
        amount_sat: coupon.amount_sat,
        created_at: coupon.created_at,
        redeemed_at: coupon.redeemed_at,
    }
}

pub fn customer_credit(service: &OrderService, customer: &str) -> OperatorResult<CustomerCredit> {
    let customer = find(service, customer)?;
    let book = service.order_book();
    let entries = book.credit_entries(&customer.id).map_err(refused)?;
    let coupons = book.credit_coupons(&customer.id).map_err(refused)?;
    let info = info(service, &customer)?;
    Ok(CustomerCredit {
        balance_sat: info.credit_sat,
        customer: info,
        entries: entries
            .into_iter()
            .map(|e| CreditEntryInfo {
                seq: e.seq,
                at: e.at,
                amount_sat: e.amount_sat,
                kind: e.kind,
                order_id: e.order_id,
                coupon_code: e.coupon_code,
                reason: e.reason,
                balance_after_sat: e.balance_after_sat,
            })
            .collect(),
        coupons: coupons.iter().map(coupon_info).collect(),
    })
}

pub fn adjust_credit(service: &OrderService, req: AdjustCredit) -> OperatorResult<CustomerCredit> {
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
        return Err(OperatorError::InvalidRequest(format!(
            "an adjustment needs a reason of 1 to {MAX_REASON_LEN} characters"
        )));
    }
    let customer = find(service, &req.customer)?;
    let kind = match req.amount_sat >= 0 {
        true => CreditKind::Adjustment(reason.to_string()),
        false => CreditKind::AdjustmentDebit(reason.to_string()),
    };
    let balance = service
        .order_book()
        .record_credit(&customer.id, req.amount_sat.unsigned_abs(), &kind)
        .map_err(refused)?;
    tracing::info!(customer = %customer.id, amount_sat = req.amount_sat, balance, reason, "credit adjusted");
    customer_credit(service, &customer.id)
}

pub fn issue_credit_coupon(
    service: &OrderService,
    req: IssueCreditCoupon,
) -> OperatorResult<CreditCouponInfo> {
    let coupon = service
        .order_book()
        .issue_credit_coupon(&req.customer, req.amount_sat)
        .map_err(refused)?;
    tracing::info!(customer = %coupon.customer_id, amount_sat = coupon.amount_sat, "credit coupon issued");
    Ok(coupon_info(&coupon))
}
