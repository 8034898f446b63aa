//! The customer-account subcommands (`customers`, `add-customer`, `disable-customer`,
//! `delete-customer`, `rotate-customer-key`, `customer-terms`, `credit`, `credit-coupon`): their
//! arguments, the operator API call each makes, and its readable output.

use crate::api::*;

use super::client::{Answer, OperatorClient};
use super::output::{fields, table, unix_time, Printer};
use super::CliError;

/// Customer accounts: the businesses that buy channels with an API key (the Flow API).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CustomerCommand {
    /// Every customer, with its credit and limits.
    Customers,
    /// Add a customer; its API key is shown once.
    AddCustomer {
        /// A name for the customer (unique).
        name: String,
    },
    /// Disable a customer (its key stops working at once), or enable it again.
    DisableCustomer {
        /// Id or name.
        customer: String,
        /// Enable the customer again instead.
        #[arg(long)]
        enable: bool,
    },
    /// Delete a customer with no credit left and no order in progress.
    DeleteCustomer {
        /// Id or name.
        customer: String,
    },
    /// Give a customer a new API key; the old one stops working at once.
    RotateCustomerKey {
        /// Id or name.
        customer: String,
    },
    /// Set a customer's own rate limits and discount.
    CustomerTerms {
        /// Id or name.
        customer: String,
        /// Requests a minute on the Flow API (default: the per-address limit).
        #[arg(long)]
        requests_per_minute: Option<u32>,
        /// Orders a minute (default: the per-address orders per hour).
        #[arg(long)]
        orders_per_minute: Option<u32>,
        /// Percent off the service fee of its orders (0-100).
        #[arg(long)]
        discount_percent: Option<u8>,
        /// Back to the per-address limits.
        #[arg(long)]
        clear_limits: bool,
    },
    /// A customer's credit: balance, ledger and coupons; with --add or --take, adjust it.
    Credit {
        /// Id or name.
        customer: String,
        /// Sats of credit to add.
        #[arg(
            long,
            value_name = "SATS",
            conflicts_with = "take",
            requires = "reason"
        )]
        add: Option<u64>,
        /// Sats of credit to take away (never below zero).
        #[arg(long, value_name = "SATS", requires = "reason")]
        take: Option<u64>,
        /// Why (kept in the ledger).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Issue a credit coupon to a customer, which it redeems with /flow/redeem.
    CreditCoupon {
        /// Id or name.
        customer: String,
        /// Sats of credit the coupon gives.
        amount_sat: u64,
    },
}

pub(super) async fn run(
    command: &CustomerCommand,
    client: &OperatorClient,
    out: &Printer,
) -> Result<String, CliError> {
    match command {
        CustomerCommand::Customers => {
            let answer: Answer<Vec<CustomerInfo>> = client.get("/v1/customers").await?;
            Ok(out.render(answer, |list| render_customers(list)))
        }
        CustomerCommand::AddCustomer { name } => {
            let request = AddCustomer { name: name.clone() };
            let answer: Answer<CustomerKey> = client.post("/v1/customers", Some(&request)).await?;
            Ok(out.render(answer, render_key))
        }
        CustomerCommand::DisableCustomer { customer, enable } => {
            let request = DisableCustomer {
                customer: customer.clone(),
                disabled: !enable,
            };
            let answer: Answer<CustomerInfo> =
                client.post("/v1/customers/disable", Some(&request)).await?;
            Ok(out.render(answer, |c| render_customers(std::slice::from_ref(c))))
        }
        CustomerCommand::DeleteCustomer { customer } => {
            let request = CustomerRef {
                customer: customer.clone(),
            };
            let answer: Answer<Empty> = client.post("/v1/customers/delete", Some(&request)).await?;
            Ok(out.render(answer, |_| format!("deleted customer {customer}")))
        }
        CustomerCommand::RotateCustomerKey { customer } => {
            let request = CustomerRef {
                customer: customer.clone(),
            };
            let answer: Answer<CustomerKey> = client
                .post("/v1/customers/rotate-key", Some(&request))
                .await?;
            Ok(out.render(answer, render_key))
        }
        CustomerCommand::CustomerTerms {
            customer,
            requests_per_minute,
            orders_per_minute,
            discount_percent,
            clear_limits,
        } => {
            let request = SetCustomerTerms {
                customer: customer.clone(),
                requests_per_minute: *requests_per_minute,
                orders_per_minute: *orders_per_minute,
                discount_percent: *discount_percent,
                clear_limits: *clear_limits,
            };
            let answer: Answer<CustomerInfo> =
                client.post("/v1/customers/terms", Some(&request)).await?;
            Ok(out.render(answer, |c| render_customers(std::slice::from_ref(c))))
        }
        CustomerCommand::Credit {
            customer,
            add,
            take,
            reason,
        } => {
            let amount = match (add, take) {
                (Some(add), _) => Some(i64::try_from(*add)),
                (None, Some(take)) => Some(i64::try_from(*take).map(|t| -t)),
                (None, None) => None,
            };
            let answer: Answer<CustomerCredit> = match amount {
                None => {
                    let path = format!("/v1/customers/{}/credit", path_segment(customer)?);
                    client.get(&path).await?
                }
                Some(amount) => {
                    let request = AdjustCredit {
                        customer: customer.clone(),
                        amount_sat: amount
                            .map_err(|_| CliError::Usage("the amount is too large".to_string()))?,
                        reason: reason.clone().unwrap_or_default(),
                    };
                    client.post("/v1/customers/credit", Some(&request)).await?
                }
            };
            Ok(out.render(answer, render_credit))
        }
        CustomerCommand::CreditCoupon {
            customer,
            amount_sat,
        } => {
            let request = IssueCreditCoupon {
                customer: customer.clone(),
                amount_sat: *amount_sat,
            };
            let answer: Answer<CreditCouponInfo> =
                client.post("/v1/customers/coupons", Some(&request)).await?;
            Ok(out.render(answer, |c| {
                format!(
                    "coupon {} gives {} sat of credit; the customer redeems it with POST /flow/redeem",
                    c.code, c.amount_sat
                )
            }))
        }
    }
}

/// A customer id or name as one URL path segment.
fn path_segment(customer: &str) -> Result<String, CliError> {
    if customer.is_empty() {
        return Err(CliError::Usage("name a customer".to_string()));
    }
    Ok(customer
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect())
}

fn render_key(key: &CustomerKey) -> String {
    format!(
        "{}\n\napi key: {}\nKeep it now: it is shown only this once (only its hash is stored).",
        render_customers(std::slice::from_ref(&key.customer)),
        key.api_key
    )
}

fn render_customers(customers: &[CustomerInfo]) -> String {
    if customers.is_empty() {
        return "no customers".to_string();
    }
    let limit = |limit: Option<u32>| limit.map_or("default".to_string(), |l| format!("{l}/min"));
    let rows = customers
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.id.clone(),
                match c.disabled {
                    true => "disabled".to_string(),
                    false => "enabled".to_string(),
                },
                format!("{} sat", c.credit_sat),
                limit(c.requests_per_minute),
                limit(c.orders_per_minute),
                format!("{}%", c.discount_percent),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            "NAME", "ID", "ACCESS", "CREDIT", "REQUESTS", "ORDERS", "DISCOUNT",
        ],
        &rows,
    )
}

fn render_credit(credit: &CustomerCredit) -> String {
    let mut text = fields(&[
        ("customer", credit.customer.name.clone()),
        ("balance", format!("{} sat", credit.balance_sat)),
    ]);
    text.push_str("\n\n");
    if credit.entries.is_empty() {
        text.push_str("no ledger entries");
    } else {
        let rows = credit
            .entries
            .iter()
            .map(|e| {
                vec![
                    unix_time(e.at),
                    format!("{:+}", e.amount_sat),
                    e.kind.clone(),
                    e.order_id
                        .clone()
                        .or_else(|| e.coupon_code.clone())
                        .unwrap_or_default(),
                    e.reason.clone(),
                    e.balance_after_sat.to_string(),
                ]
            })
            .collect::<Vec<_>>();
        text.push_str(&table(
            &["AT", "SAT", "KIND", "ORDER/COUPON", "REASON", "BALANCE"],
            &rows,
        ));
    }
    if !credit.coupons.is_empty() {
        let rows = credit
            .coupons
            .iter()
            .map(|c| {
                vec![
                    c.code.clone(),
                    format!("{} sat", c.amount_sat),
                    c.redeemed_at
                        .map(unix_time)
                        .unwrap_or_else(|| "not yet".into()),
                ]
            })
            .collect::<Vec<_>>();
        text.push_str("\n\n");
        text.push_str(&table(&["COUPON", "AMOUNT", "REDEEMED"], &rows));
    }
    text
}
