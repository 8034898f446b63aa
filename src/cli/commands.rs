//! The operator subcommands: arguments, the API call each one makes, and its output.
//!
//! [`run`] returns the text to print (readable by default, the node's JSON with `--json`); the
//! caller prints it. A failed call is a [`CliError`] carrying the node's one-sentence message.

use serde::de::DeserializeOwned;

use crate::api::*;

use super::client::{Answer, OperatorClient};
use super::customers::{self, CustomerCommand};
use super::output::unix_time;
use super::output::Printer;
use super::render::*;
use super::CliError;

/// Operator subcommands: each calls the running node's operator API.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum OperatorCommand {
    /// Node id, network, chain sync status, listening addresses.
    Info,
    /// On-chain and Lightning balances.
    Balance,
    /// A new on-chain receive address of the node's wallet.
    Address,
    /// Send on-chain funds from the node's wallet.
    Send {
        /// Destination address.
        address: String,
        /// Amount in sats, or `all` to empty the wallet.
        amount: SendAmountArg,
        /// Fee rate in sat/vB (default: the node's estimate).
        #[arg(long, value_name = "SAT_PER_VB")]
        fee_rate: Option<u64>,
    },
    /// Peers the node knows, and whether they are connected.
    Peers,
    /// Connect to a Lightning peer.
    Connect {
        /// NODEID@HOST:PORT
        peer: String,
    },
    /// The node's channels.
    Channels,
    /// Open a channel to a peer (connecting first when HOST:PORT is given).
    OpenChannel {
        /// NODEID or NODEID@HOST:PORT
        peer: String,
        /// Channel capacity in sats.
        sats: u64,
        /// Amount to give the peer at opening, in msat.
        #[arg(long, value_name = "MSAT", default_value_t = 0)]
        push_msat: u64,
        /// Announce the channel to the network (public channel).
        #[arg(long)]
        announce: bool,
    },
    /// Close a channel, cooperatively unless --force.
    CloseChannel {
        /// Channel id (hex) or user channel id (decimal), as shown by `channels`.
        channel_id: String,
        /// The channel peer's node id.
        node_id: String,
        /// Broadcast our latest commitment transaction instead of negotiating.
        #[arg(long)]
        force: bool,
        /// Close a sold channel whose lease is still running.
        #[arg(long)]
        override_lease: bool,
    },
    /// Payments sent and received.
    Payments,
    /// Create a BOLT11 invoice.
    Invoice {
        /// Amount in msat; omit for an any-amount invoice.
        amount_msat: Option<u64>,
        #[arg(long, default_value = "")]
        description: String,
        /// Seconds until the invoice expires (default: the node's).
        #[arg(long, value_name = "SECS")]
        expiry_secs: Option<u32>,
    },
    /// Pay a BOLT11 invoice.
    Pay {
        invoice: String,
        /// Amount in msat, for an invoice that does not name one.
        #[arg(long, value_name = "MSAT")]
        amount_msat: Option<u64>,
        /// Seconds to wait for the outcome before reporting it as pending (default: the node's).
        #[arg(long, value_name = "SECS")]
        wait_secs: Option<u64>,
    },
    /// Sync the wallet and Lightning state with the chain now.
    Sync,
    /// LSPS1 channel orders, newest first.
    Orders {
        /// Only orders in this state: CREATED, COMPLETED or FAILED.
        #[arg(long)]
        state: Option<String>,
        /// Only orders of this client node id.
        #[arg(long, value_name = "NODEID")]
        client: Option<String>,
        /// At most this many orders.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only orders with a money step pending longer than it should take, and why.
        #[arg(long)]
        stuck: bool,
    },
    /// One order with its history and refunds.
    Order {
        /// Order id.
        order_id: String,
    },
    /// Cancel an order that has not opened its channel; whatever was paid is returned.
    CancelOrder {
        /// Order id.
        order_id: String,
        /// Why, for the order's history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Watch an order's on-chain address again and read its whole history (a payment that
    /// arrived after the address was retired); what it received beyond the order's use is
    /// refunded.
    Rescan {
        /// Order id.
        order_id: String,
    },
    /// Leases of sold channels (soonest to end first), with totals.
    Leases {
        /// Only leases in this state: PENDING, ACTIVE, ENDED, CLOSING or CLOSED.
        #[arg(long)]
        state: Option<String>,
        /// Only open leases ending within this many blocks.
        #[arg(long, value_name = "BLOCKS")]
        ending_within: Option<u32>,
    },
    /// Close an order's leased channel now, whatever its lease says.
    LeaseClose {
        /// Order id.
        order_id: String,
        /// Broadcast our latest commitment transaction instead of negotiating.
        #[arg(long)]
        force: bool,
    },
    /// Keep an order's leased channel open past its lease's end.
    LeaseKeep {
        /// Order id.
        order_id: String,
    },
    /// Coupons clients can give as their LSPS1 token.
    Coupons,
    /// Create a coupon: a percentage or a fixed number of sats off the service fee.
    AddCoupon {
        /// The code clients send as `token` (letters, digits, '-' and '_').
        code: String,
        /// Percent off the service fee (0-100).
        #[arg(
            long,
            conflicts_with = "fixed_sat",
            required_unless_present = "fixed_sat"
        )]
        percent: Option<u8>,
        /// Sats off the service fee.
        #[arg(long, value_name = "SATS")]
        fixed_sat: Option<u64>,
        /// Orders that may use it (default: unlimited).
        #[arg(long)]
        max_uses: Option<u32>,
        /// Unix time after which it no longer works.
        #[arg(long, value_name = "UNIX_SECS")]
        expires_at: Option<u64>,
    },
    /// Delete a coupon.
    DeleteCoupon { code: String },
    #[command(flatten)]
    Customer(CustomerCommand),
}

/// `AMOUNT` of `send`: sats, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAmountArg {
    Sats(u64),
    All,
}

impl std::str::FromStr for SendAmountArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("all") {
            return Ok(SendAmountArg::All);
        }
        match text.parse::<u64>() {
            Ok(0) => Err("the amount must be more than 0 sats".to_string()),
            Ok(sats) => Ok(SendAmountArg::Sats(sats)),
            Err(_) => Err(format!(
                "expected an amount in sats or `all`, got \"{text}\""
            )),
        }
    }
}

/// Runs `command` against `client`; returns what to print.
pub async fn run(
    command: &OperatorCommand,
    client: &OperatorClient,
    json: bool,
) -> Result<String, CliError> {
    let out = Printer { json };
    match command {
        OperatorCommand::Info => {
            let answer: Answer<NodeInfo> = client.get("/v1/info").await?;
            Ok(out.render(answer, render_info))
        }
        OperatorCommand::Balance => {
            let answer: Answer<Balances> = client.get("/v1/balance").await?;
            Ok(out.render(answer, render_balances))
        }
        OperatorCommand::Address => {
            let answer: Answer<NewAddress> = post_empty(client, "/v1/address").await?;
            Ok(out.render(answer, |a| a.address.clone()))
        }
        OperatorCommand::Send {
            address,
            amount,
            fee_rate,
        } => {
            let request = SendOnchain {
                address: address.clone(),
                amount_sat: match amount {
                    SendAmountArg::Sats(sats) => Some(*sats),
                    SendAmountArg::All => None,
                },
                send_all: *amount == SendAmountArg::All,
                fee_rate_sat_per_vb: *fee_rate,
            };
            let answer: Answer<Txid> = client.post("/v1/send", Some(&request)).await?;
            Ok(out.render(answer, |t| format!("sent in transaction {}", t.txid)))
        }
        OperatorCommand::Peers => {
            let answer: Answer<Vec<PeerInfo>> = client.get("/v1/peers").await?;
            Ok(out.render(answer, |list| render_peers(list)))
        }
        OperatorCommand::Connect { peer } => {
            let (node_id, address) = split_peer(peer)?;
            let address = address.ok_or_else(|| {
                CliError::Usage(format!(
                    "\"{peer}\" has no address: expected NODEID@HOST:PORT"
                ))
            })?;
            let request = ConnectPeer {
                node_id: node_id.clone(),
                address: address.clone(),
            };
            let answer: Answer<Empty> = client.post("/v1/peers", Some(&request)).await?;
            Ok(out.render(answer, |_| format!("connected to {node_id} at {address}")))
        }
        OperatorCommand::Channels => {
            let answer: Answer<Vec<ChannelInfo>> = client.get("/v1/channels").await?;
            Ok(out.render(answer, |list| render_channels(list)))
        }
        OperatorCommand::OpenChannel {
            peer,
            sats,
            push_msat,
            announce,
        } => {
            let (node_id, address) = split_peer(peer)?;
            if *sats == 0 {
                return Err(CliError::Usage(
                    "the channel capacity must be more than 0 sats".into(),
                ));
            }
            let request = OpenChannel {
                node_id,
                address,
                capacity_sat: *sats,
                push_msat: *push_msat,
                announce: *announce,
            };
            let answer: Answer<OpenedChannel> = client.post("/v1/channels", Some(&request)).await?;
            Ok(out.render(answer, |c| match &c.channel_id {
                Some(id) => format!(
                    "opening channel {id} (user channel id {}); it becomes usable once the \
                     funding transaction confirms",
                    c.user_channel_id
                ),
                None => format!(
                    "opening a channel with user channel id {}; the peer has not answered yet, \
                     `channels` shows it by that id",
                    c.user_channel_id
                ),
            }))
        }
        OperatorCommand::CloseChannel {
            channel_id,
            node_id,
            force,
            override_lease,
        } => {
            check_node_id(node_id)?;
            let request = CloseChannel {
                channel_id: channel_id.clone(),
                counterparty_node_id: node_id.clone(),
                force: *force,
                override_lease: *override_lease,
            };
            let answer: Answer<Empty> = client.post("/v1/channels/close", Some(&request)).await?;
            let kind = if *force {
                "force-closing"
            } else {
                "cooperatively closing"
            };
            Ok(out.render(answer, |_| format!("{kind} channel {channel_id}")))
        }
        OperatorCommand::Payments => {
            let answer: Answer<Vec<PaymentInfo>> = client.get("/v1/payments").await?;
            Ok(out.render(answer, |list| render_payments(list)))
        }
        OperatorCommand::Invoice {
            amount_msat,
            description,
            expiry_secs,
        } => {
            let request = CreateInvoice {
                amount_msat: *amount_msat,
                description: description.clone(),
                expiry_secs: *expiry_secs,
            };
            let answer: Answer<Invoice> = client.post("/v1/invoices", Some(&request)).await?;
            Ok(out.render(answer, |i| {
                format!("{}\npayment hash: {}", i.invoice, i.payment_hash)
            }))
        }
        OperatorCommand::Pay {
            invoice,
            amount_msat,
            wait_secs,
        } => {
            let request = PayInvoice {
                invoice: invoice.clone(),
                amount_msat: *amount_msat,
                wait_secs: *wait_secs,
            };
            let answer: Answer<PaymentInfo> = client.post("/v1/pay", Some(&request)).await?;
            let failed = answer.value.status == PaymentStatus::Failed;
            let text = out.render(answer, render_payment);
            if failed {
                return Err(CliError::Outcome(text));
            }
            Ok(text)
        }
        OperatorCommand::Sync => {
            let answer: Answer<SyncStatus> = post_empty(client, "/v1/sync").await?;
            Ok(out.render(answer, |s| {
                let at = s
                    .last_sync_at
                    .map(unix_time)
                    .unwrap_or_else(|| "never".into());
                format!("synced to block height {} (last sync {at})", s.block_height)
            }))
        }
        OperatorCommand::Orders {
            state,
            client: client_id,
            limit,
            stuck,
        } => {
            let mut query = format!("/v1/orders?limit={limit}");
            if *stuck {
                query.push_str("&stuck=true");
            }
            if let Some(state) = state {
                query.push_str(&format!("&state={}", state.to_ascii_uppercase()));
            }
            if let Some(client_id) = client_id {
                check_node_id(client_id)?;
                query.push_str(&format!("&client_node_id={client_id}"));
            }
            let answer: Answer<Vec<OrderSummary>> = client.get(&query).await?;
            Ok(out.render(answer, |list| render_orders(list)))
        }
        OperatorCommand::Order { order_id } => {
            check_order_id(order_id)?;
            let answer: Answer<OrderDetail> = client.get(&format!("/v1/orders/{order_id}")).await?;
            Ok(out.render(answer, render_order))
        }
        OperatorCommand::CancelOrder { order_id, reason } => {
            check_order_id(order_id)?;
            let request = CancelOrder {
                order_id: order_id.clone(),
                reason: reason.clone(),
            };
            let answer: Answer<OrderDetail> =
                client.post("/v1/orders/cancel", Some(&request)).await?;
            Ok(out.render(answer, render_order))
        }
        OperatorCommand::Rescan { order_id } => {
            check_order_id(order_id)?;
            let request = RescanOrder {
                order_id: order_id.clone(),
            };
            let answer: Answer<RescanResult> =
                client.post("/v1/orders/rescan", Some(&request)).await?;
            Ok(out.render(answer, render_rescan))
        }
        OperatorCommand::Leases {
            state,
            ending_within,
        } => {
            let mut query = Vec::new();
            if let Some(state) = state {
                query.push(format!("state={}", state.to_ascii_uppercase()));
            }
            if let Some(blocks) = ending_within {
                query.push(format!("ending_within_blocks={blocks}"));
            }
            let path = match query.is_empty() {
                true => "/v1/leases".to_string(),
                false => format!("/v1/leases?{}", query.join("&")),
            };
            let answer: Answer<LeaseList> = client.get(&path).await?;
            Ok(out.render(answer, render_leases))
        }
        OperatorCommand::LeaseClose { order_id, force } => {
            check_order_id(order_id)?;
            let request = CloseLease {
                order_id: order_id.clone(),
                force: *force,
            };
            let answer: Answer<LeaseInfo> = client.post("/v1/leases/close", Some(&request)).await?;
            Ok(out.render(answer, render_lease))
        }
        OperatorCommand::LeaseKeep { order_id } => {
            check_order_id(order_id)?;
            let request = KeepLease {
                order_id: order_id.clone(),
            };
            let answer: Answer<LeaseInfo> = client.post("/v1/leases/keep", Some(&request)).await?;
            Ok(out.render(answer, render_lease))
        }
        OperatorCommand::Coupons => {
            let answer: Answer<Vec<CouponInfo>> = client.get("/v1/coupons").await?;
            Ok(out.render(answer, |list| render_coupons(list)))
        }
        OperatorCommand::AddCoupon {
            code,
            percent,
            fixed_sat,
            max_uses,
            expires_at,
        } => {
            let request = CreateCoupon {
                code: code.clone(),
                percent: *percent,
                fixed_sat: *fixed_sat,
                max_uses: *max_uses,
                expires_at: *expires_at,
            };
            let answer: Answer<CouponInfo> = client.post("/v1/coupons", Some(&request)).await?;
            Ok(out.render(answer, |c| render_coupons(std::slice::from_ref(c))))
        }
        OperatorCommand::DeleteCoupon { code } => {
            let request = DeleteCoupon { code: code.clone() };
            let answer: Answer<Empty> = client.post("/v1/coupons/delete", Some(&request)).await?;
            Ok(out.render(answer, |_| format!("deleted coupon {code}")))
        }
        OperatorCommand::Customer(command) => customers::run(command, client, &out).await,
    }
}

/// Refuses what cannot be an order id before asking the node.
fn check_order_id(id: &str) -> Result<(), CliError> {
    if crate::api::is_order_id(id) {
        Ok(())
    } else {
        Err(CliError::Usage(format!("\"{id}\" is not an order id")))
    }
}

async fn post_empty<T: DeserializeOwned>(
    client: &OperatorClient,
    path: &str,
) -> Result<Answer<T>, CliError> {
    client.post::<(), T>(path, None).await
}

/// `NODEID[@HOST:PORT]` into its parts, with the node id checked.
fn split_peer(text: &str) -> Result<(String, Option<String>), CliError> {
    let (node_id, address) = match text.split_once('@') {
        Some((id, address)) => (id, Some(address)),
        None => (text, None),
    };
    check_node_id(node_id)?;
    if let Some(address) = address {
        let port_ok = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            return Err(CliError::Usage(format!(
                "\"{address}\" is not HOST:PORT such as 127.0.0.1:9735"
            )));
        }
    }
    Ok((node_id.to_string(), address.map(str::to_string)))
}

fn check_node_id(node_id: &str) -> Result<(), CliError> {
    let hex_ok = node_id.len() == 66 && node_id.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_ok {
        return Err(CliError::Usage(format!(
            "\"{node_id}\" is not a node id: expected 66 hex characters (a compressed public key)"
        )));
    }
    Ok(())
}
