//! The readable output of the operator commands: one function per answer type (`--json`
//! prints the answer itself instead).

use crate::api::*;

use super::output::{fields, msat, table, unix_time};

pub(super) fn render_orders(orders: &[OrderSummary]) -> String {
    if orders.is_empty() {
        return "no orders".to_string();
    }
    let stuck = orders.iter().any(|o| o.stuck.is_some());
    let rows = orders
        .iter()
        .map(|o| {
            let mut row = vec![
                o.order_id.clone(),
                o.state.clone(),
                payment_states(o),
                client_of(o),
                o.lsp_balance_sat.to_string(),
                o.client_balance_sat.to_string(),
                unix_time(o.created_at),
            ];
            if stuck {
                row.push(o.stuck.clone().unwrap_or_default());
            }
            row
        })
        .collect::<Vec<_>>();
    let mut headers = vec![
        "ORDER",
        "STATE",
        "PAYMENT",
        "CLIENT",
        "LSP SAT",
        "CLIENT SAT",
        "CREATED",
    ];
    if stuck {
        headers.push("STUCK");
    }
    table(&headers, &rows)
}

fn payment_states(o: &OrderSummary) -> String {
    let mut parts = Vec::new();
    if let Some(state) = &o.bolt11_state {
        parts.push(format!("bolt11={state}"));
    }
    if let Some(state) = &o.onchain_state {
        parts.push(format!("onchain={state}"));
    }
    parts.join(" ")
}

pub(super) fn render_leases(list: &LeaseList) -> String {
    let height = |h: Option<u32>| h.map_or_else(|| "-".to_string(), |h| h.to_string());
    let rows = list
        .leases
        .iter()
        .map(|l| {
            vec![
                l.order_id.clone(),
                l.state.clone(),
                l.client_node_id.clone(),
                l.capacity_sat.to_string(),
                height(l.start_height),
                height(l.end_height),
                height(l.blocks_left),
                l.revenue_sat.to_string(),
                match (&l.closed_by, &l.close_kind) {
                    (Some(by), Some(kind)) => format!("{by} ({kind})"),
                    _ => "-".to_string(),
                },
            ]
        })
        .collect::<Vec<_>>();
    let mut text = match rows.is_empty() {
        true => "no leases\n".to_string(),
        false => table(
            &[
                "ORDER",
                "STATE",
                "CLIENT",
                "CAPACITY",
                "START",
                "END",
                "LEFT",
                "REVENUE",
                "CLOSED BY",
            ],
            &rows,
        ),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "leased out {} sat, freed by closes {} sat, revenue {} sat",
        list.leased_out_sat, list.freed_sat, list.revenue_sat
    ));
    text
}

pub(super) fn render_lease(lease: &LeaseInfo) -> String {
    let height = |h: Option<u32>| h.map_or_else(|| "-".to_string(), |h| h.to_string());
    fields(&[
        ("order", lease.order_id.clone()),
        ("state", lease.state.clone()),
        ("channel", lease.channel.clone()),
        ("client", lease.client_node_id.clone()),
        ("capacity", format!("{} sat", lease.capacity_sat)),
        ("start height", height(lease.start_height)),
        ("end height", height(lease.end_height)),
        ("blocks left", height(lease.blocks_left)),
        ("kept open", lease.keep_open.to_string()),
        ("revenue", format!("{} sat", lease.revenue_sat)),
    ])
}

pub(super) fn render_rescan(rescan: &RescanResult) -> String {
    fields(&[
        ("order", rescan.order_id.clone()),
        ("address", rescan.address.clone()),
        ("received", format!("{} sat", rescan.received_sat)),
        ("confirmed", format!("{} sat", rescan.confirmed_sat)),
        ("watched until", unix_time(rescan.watched_until)),
        (
            "wallet sync",
            rescan
                .sync_error
                .clone()
                .unwrap_or_else(|| "done".to_string()),
        ),
    ])
}

pub(super) fn render_order(detail: &OrderDetail) -> String {
    let o = &detail.summary;
    let mut text = fields(&[
        ("order", o.order_id.clone()),
        ("state", o.state.clone()),
        ("payment", payment_states(o)),
        ("client", client_of(o)),
        ("lsp balance", format!("{} sat", o.lsp_balance_sat)),
        ("client balance", format!("{} sat", o.client_balance_sat)),
        ("order total", format!("{} sat", o.order_total_sat)),
        ("via", o.source.clone()),
        ("created", unix_time(o.created_at)),
        (
            "funding outpoint",
            o.funding_outpoint.clone().unwrap_or_else(|| "-".into()),
        ),
    ]);
    text.push_str("\nhistory:\n");
    for event in &detail.events {
        text.push_str(&format!(
            "  {}  {} -> {}  ({})\n",
            unix_time(event.at),
            event.event,
            event.to_state,
            event.reason
        ));
    }
    for refund in &detail.refunds {
        text.push_str(&format!(
            "refund {} sat (fee {} sat) to {} in {}\n",
            refund.amount_sat, refund.fee_sat, refund.address, refund.txid
        ));
    }
    for held in &detail.hold_answers {
        text.push_str(&format!(
            "held payment told over p2p as {}: {} answer(s), {} to {}\n",
            held.spelling,
            held.answers,
            unix_time(held.first_at),
            unix_time(held.last_at)
        ));
    }
    text.trim_end().to_string()
}

pub(super) fn render_coupons(coupons: &[CouponInfo]) -> String {
    if coupons.is_empty() {
        return "no coupons".to_string();
    }
    let rows = coupons
        .iter()
        .map(|c| {
            vec![
                c.code.clone(),
                match c.kind.as_str() {
                    "percent" => format!("{}%", c.value),
                    _ => format!("{} sat", c.value),
                },
                format!(
                    "{}/{}",
                    c.uses,
                    c.max_uses
                        .map_or("unlimited".to_string(), |m| m.to_string())
                ),
                c.expires_at
                    .map(unix_time)
                    .unwrap_or_else(|| "never".into()),
            ]
        })
        .collect::<Vec<_>>();
    table(&["CODE", "DISCOUNT", "USES", "EXPIRES"], &rows)
}

pub(super) fn render_info(info: &NodeInfo) -> String {
    fields(&[
        ("node id", info.node_id.clone()),
        ("network", info.network.clone()),
        (
            "block height",
            format!("{} ({})", info.block_height, info.block_hash),
        ),
        (
            "last sync",
            info.last_sync_at
                .map(unix_time)
                .unwrap_or_else(|| "never".into()),
        ),
        ("chain source", render_chain_source(&info.chain_source)),
        ("listening on", info.listening_addresses.join(", ")),
        ("peers", info.num_peers.to_string()),
        ("channels", info.num_channels.to_string()),
        ("version", info.version.clone()),
    ])
}

pub(super) fn render_chain_source(source: &ChainSourceStatus) -> String {
    let state = match (&source.last_error, source.synced) {
        (Some(error), _) => format!(
            "failing ({} syncs in a row since {}): {error}",
            source.consecutive_failures,
            source.failing_since.map(unix_time).unwrap_or_default()
        ),
        (None, true) => "synced".to_string(),
        (None, false) => "not synced yet".to_string(),
    };
    let selling = if source.synced {
        ""
    } else {
        "; selling no channels until synced"
    };
    format!("{} ({state}{selling})", source.url)
}

pub(super) fn render_balances(b: &Balances) -> String {
    let total = b.onchain_confirmed_sat + b.onchain_unconfirmed_sat + b.lightning_sat;
    fields(&[
        (
            "on-chain confirmed",
            format!("{} sat", b.onchain_confirmed_sat),
        ),
        (
            "on-chain unconfirmed",
            format!("{} sat", b.onchain_unconfirmed_sat),
        ),
        ("lightning", format!("{} sat", b.lightning_sat)),
        ("total", format!("{total} sat")),
    ])
}

pub(super) fn render_peers(peers: &[PeerInfo]) -> String {
    if peers.is_empty() {
        return "no peers".to_string();
    }
    let rows = peers
        .iter()
        .map(|p| {
            vec![
                p.node_id.clone(),
                p.address.clone().unwrap_or_else(|| "-".into()),
                if p.connected { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect::<Vec<_>>();
    table(&["NODE ID", "ADDRESS", "CONNECTED"], &rows)
}

pub(super) fn render_channels(channels: &[ChannelInfo]) -> String {
    if channels.is_empty() {
        return "no channels".to_string();
    }
    let rows = channels
        .iter()
        .map(|c| {
            let state = if c.is_usable {
                "usable"
            } else if c.is_channel_ready {
                "ready"
            } else {
                "pending"
            };
            vec![
                c.channel_id.clone(),
                c.counterparty_node_id.clone(),
                c.capacity_sat.to_string(),
                (c.outbound_msat / 1000).to_string(),
                (c.inbound_msat / 1000).to_string(),
                state.to_string(),
                c.confirmations
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                if c.is_announced { "public" } else { "private" }.to_string(),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            "CHANNEL ID",
            "PEER",
            "CAPACITY SAT",
            "OUT SAT",
            "IN SAT",
            "STATE",
            "CONFS",
            "KIND",
        ],
        &rows,
    )
}

pub(super) fn render_payments(payments: &[PaymentInfo]) -> String {
    if payments.is_empty() {
        return "no payments".to_string();
    }
    let rows = payments
        .iter()
        .map(|p| {
            vec![
                p.payment_hash.clone(),
                direction(p.direction).to_string(),
                p.amount_msat
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                p.fee_paid_msat
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "-".into()),
                status(p.status).to_string(),
                unix_time(p.updated_at),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            "PAYMENT HASH",
            "DIRECTION",
            "AMOUNT MSAT",
            "FEE MSAT",
            "STATUS",
            "UPDATED",
        ],
        &rows,
    )
}

pub(super) fn render_payment(p: &PaymentInfo) -> String {
    fields(&[
        ("payment", status(p.status).to_string()),
        ("payment hash", p.payment_hash.clone()),
        (
            "amount",
            p.amount_msat.map(msat).unwrap_or_else(|| "-".into()),
        ),
        (
            "fee",
            p.fee_paid_msat.map(msat).unwrap_or_else(|| "-".into()),
        ),
    ])
}

fn direction(d: PaymentDirection) -> &'static str {
    match d {
        PaymentDirection::Inbound => "inbound",
        PaymentDirection::Outbound => "outbound",
    }
}

fn status(s: PaymentStatus) -> &'static str {
    match s {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Succeeded => "succeeded",
        PaymentStatus::Failed => "failed",
    }
}

/// The order's node, or a dash while a pay-first order has not named one.
fn client_of(order: &OrderSummary) -> String {
    order
        .client_node_id
        .clone()
        .unwrap_or_else(|| "- (unclaimed)".to_string())
}
