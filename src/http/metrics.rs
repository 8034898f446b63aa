//! The Prometheus text format (version 0.0.4) of [`Metrics`], served by the operator router at
//! `GET /metrics`. Every figure is a gauge named `lsp_*`; states are a `state` label.

use std::fmt::Write as _;

use crate::api::{Metrics, StateCount};

/// The content type Prometheus expects for its text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Prometheus text for `metrics`. A figure that is unknown (no sync yet, no HTLC held) is
/// left out rather than given a made-up value.
pub fn render(metrics: &Metrics) -> String {
    let mut out = Text::default();
    let node = &metrics.node;
    out.gauge(
        "lsp_block_height",
        "The node's best block.",
        node.block_height,
    );
    out.optional(
        "lsp_chain_sync_age_seconds",
        "Seconds since the last completed chain sync.",
        node.chain_sync_age_secs,
    );
    out.gauge(
        "lsp_chain_sync_consecutive_failures",
        "Failed chain syncs in a row.",
        node.chain_sync_consecutive_failures,
    );
    out.optional(
        "lsp_wallet_sync_age_seconds",
        "Seconds since the on-chain wallet last synced.",
        node.wallet_sync_age_secs,
    );
    out.gauge(
        "lsp_wallet_watched_scripts",
        "Wallet scripts each sync asks the chain source about.",
        node.wallet_watched_scripts,
    );
    out.states(
        "lsp_broadcasts_open",
        "Kept transactions (funding, refunds, wallet payments) that may still confirm, by state.",
        &node.broadcasts_open,
        &["signed", "sending", "seen"],
    );
    out.optional(
        "lsp_broadcast_oldest_unsent_age_seconds",
        "Age of the oldest kept transaction the chain source does not have.",
        node.broadcast_oldest_unsent_age_secs,
    );
    out.gauge(
        "lsp_broadcast_failed_posts",
        "Refused or unanswered posts of the kept transactions still open.",
        node.broadcast_failed_posts,
    );
    out.gauge("lsp_peers", "Connected peers.", node.peers);
    out.gauge("lsp_channels", "Channels, usable or not.", node.channels);
    out.gauge(
        "lsp_channels_usable",
        "Channels that can carry payments now.",
        node.usable_channels,
    );
    if let Some(orders) = &metrics.orders {
        out.states(
            "lsp_orders",
            "Orders in the book by order state.",
            &orders.orders_by_state,
            &["CREATED", "COMPLETED", "FAILED"],
        );
        out.gauge(
            "lsp_refunds_pending",
            "Failed orders whose on-chain payment is not yet confirmed back to the client.",
            orders.refunds_pending,
        );
        out.gauge(
            "lsp_htlcs_held",
            "HTLCs held for orders, not yet claimed or failed back.",
            orders.htlcs_held,
        );
        out.gauge(
            "lsp_orders_stuck",
            "Orders with a money step pending longer than it should take (lsp-node orders --stuck).",
            orders.orders_stuck,
        );
        out.optional(
            "lsp_htlc_nearest_deadline_blocks",
            "Blocks left before the nearest deadline of a held HTLC.",
            orders.htlc_nearest_deadline_blocks,
        );
    }
    out.0
}

#[derive(Default)]
struct Text(String);

impl Text {
    fn header(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} gauge");
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Into<u64>) {
        self.header(name, help);
        let _ = writeln!(self.0, "{name} {}", value.into());
    }

    fn optional(&mut self, name: &str, help: &str, value: Option<impl Into<u64>>) {
        if let Some(value) = value {
            self.gauge(name, help, value);
        }
    }

    /// One line per state; the `always` states are written with 0 when absent, so a
    /// dashboard sees a series drop to zero instead of vanishing.
    fn states(&mut self, name: &str, help: &str, counts: &[StateCount], always: &[&str]) {
        self.header(name, help);
        for state in always {
            if !counts.iter().any(|c| c.state == *state) {
                let _ = writeln!(self.0, "{name}{{state=\"{state}\"}} 0");
            }
        }
        for count in counts {
            let _ = writeln!(
                self.0,
                "{name}{{state=\"{}\"}} {}",
                count.state, count.count
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{NodeMetrics, OrderMetrics};

    #[test]
    fn figures_render_as_prometheus_gauges_and_unknown_ones_are_left_out() {
        let metrics = Metrics {
            node: NodeMetrics {
                block_height: 812,
                chain_sync_age_secs: Some(3),
                broadcasts_open: vec![StateCount {
                    state: "sending".into(),
                    count: 2,
                }],
                broadcast_failed_posts: 7,
                ..NodeMetrics::default()
            },
            orders: Some(OrderMetrics {
                orders_by_state: vec![StateCount {
                    state: "COMPLETED".into(),
                    count: 5,
                }],
                htlcs_held: 1,
                htlc_nearest_deadline_blocks: Some(40),
                ..OrderMetrics::default()
            }),
        };
        let text = render(&metrics);
        for line in [
            "# TYPE lsp_block_height gauge",
            "lsp_block_height 812",
            "lsp_chain_sync_age_seconds 3",
            "lsp_broadcasts_open{state=\"sending\"} 2",
            "lsp_broadcasts_open{state=\"seen\"} 0",
            "lsp_broadcast_failed_posts 7",
            "lsp_orders{state=\"COMPLETED\"} 5",
            "lsp_orders{state=\"FAILED\"} 0",
            "lsp_htlcs_held 1",
            "lsp_htlc_nearest_deadline_blocks 40",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert!(!text.contains("lsp_wallet_sync_age_seconds"), "{text}");
        assert!(!render(&Metrics::default()).contains("lsp_orders"));
    }
}
