//! Interop with an LDK node we did not write: an lsp-node and an ldk-node 0.7.1 node (built on
//! LDK 0.2) on one devchain, over real TCP on 127.0.0.1. Each opens a channel to the other,
//! bolt11 payments cross each channel in both directions, then each side closes the channel
//! it opened cooperatively and both wallets get exactly their channel balances back.
//!
//! Which channel a payment takes is forced, not left to the router. lsp-node opens its channel
//! with most of it pushed to ldk-node; then a payer either has liquidity on one channel only,
//! or (ldk-node) pays on a single path with an amount only the intended channel can carry, or
//! (lsp-node) can send less than a tenth of the amount on the other channel, below the
//! router's minimum path contribution. After every payment the test checks that the intended
//! channel moved by exactly the amount (at the payee's end too, unless that end started below
//! its reserve, where LDK reports 0 sendable) and the other channel did not move at all.
//!
//! ldk-node runs its own runtime behind a blocking API, so the test thread drives it directly
//! while lsp-node and the devchain run on a separate tokio runtime. Run alone with
//! `cargo test --test node_ldk_node_interop`.

mod common;

use std::str::FromStr;
use std::time::{Duration, Instant};

use common::*;
use ldk_node::bitcoin::secp256k1::PublicKey as LdkPublicKey;
use ldk_node::bitcoin::{OutPoint, Txid};
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning::routing::router::RouteParametersConfig;
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use ldk_node::{Event, UserChannelId};
use lsp_node::api::*;
use lsp_node::devchain::Devchain;

const LSP_FUNDING_SAT: u64 = 1_000_000;
const LDK_FUNDING_SAT: u64 = 600_000;
/// Opened by ldk-node to lsp-node.
const LDK_CHANNEL_SAT: u64 = 400_000;
/// Opened by lsp-node to ldk-node.
const LSP_CHANNEL_SAT: u64 = 200_000;
/// Pushed to ldk-node when lsp-node opens, so that lsp-node's side of its own channel is
/// small: ldk-node (LDK 0.2 defaults) caps inbound HTLCs in flight at 10% of a channel, so
/// lsp-node could only drain it in many payments.
const LSP_PUSH_SAT: u64 = 180_000;
/// What lsp-node leaves itself sendable on its own channel when draining it: under a tenth of
/// any later lsp-node payment, so the router will not split a part onto that channel.
const DRAIN_MARGIN_SAT: u64 = 1_000;

/// Polls a blocking condition every 100 ms until it yields `Some`, failing after [`DEADLINE`].
fn poll_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let give_up = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Handles ldk-node events until one matches `extract`, returning what it extracted.
fn wait_ldk_event<T>(
    node: &ldk_node::Node,
    what: &str,
    mut extract: impl FnMut(&Event) -> Option<T>,
) -> T {
    poll_until(what, || {
        let event = node.next_event()?;
        let found = extract(&event);
        node.event_handled().expect("ldk-node event handled");
        if found.is_none() {
            tracing::info!(?event, "ldk-node event skipped while waiting for {what}");
        }
        found
    })
}

fn sync_ldk(node: &ldk_node::Node) {
    node.sync_wallets()
        .expect("ldk-node syncs against the devchain");
}

/// A channel as both ends see it, identified by the ids ldk-node reported.
struct Channel {
    channel_id: String,
    user_channel_id: UserChannelId,
    funding: OutPoint,
}

/// Sendable msat on one channel, from both ends.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Outbound {
    lsp_msat: u64,
    ldk_msat: u64,
}

/// The test's view of both nodes.
struct Harness {
    rt: tokio::runtime::Runtime,
    devchain: Devchain,
    lsp: lsp_node::App,
    operator: Operator,
    ldk: ldk_node::Node,
}

impl Harness {
    fn outbound(&self, channel: &Channel) -> Outbound {
        let lsp_msat = self
            .rt
            .block_on(self.operator.channels())
            .into_iter()
            .find(|c| c.channel_id == channel.channel_id)
            .expect("lsp-node lists the channel")
            .outbound_msat;
        let ldk_msat = self
            .ldk
            .list_channels()
            .into_iter()
            .find(|c| c.channel_id.to_string() == channel.channel_id)
            .expect("ldk-node lists the channel")
            .outbound_capacity_msat;
        Outbound { lsp_msat, ldk_msat }
    }

    /// The largest HTLC each end can send on `channel` right now.
    fn next_htlc_limits(&self, channel: &Channel) -> Outbound {
        let lsp_msat = self
            .lsp
            .channel_manager()
            .list_channels()
            .into_iter()
            .find(|c| c.channel_id.to_string() == channel.channel_id)
            .expect("lsp-node's channel manager has the channel")
            .next_outbound_htlc_limit_msat;
        let ldk_msat = self
            .ldk
            .list_channels()
            .into_iter()
            .find(|c| c.channel_id.to_string() == channel.channel_id)
            .expect("ldk-node lists the channel")
            .next_outbound_htlc_limit_msat;
        Outbound { lsp_msat, ldk_msat }
    }

    /// lsp-node pays `amount_sat` to ldk-node, and it can only go over `via`: lsp-node can
    /// send less than a tenth of it on `other`, below the router's minimum path contribution.
    fn lsp_pays_ldk_over(&self, amount_sat: u64, via: &Channel, other: &Channel) {
        let amount_msat = amount_sat * 1000;
        let other_limit = self.next_htlc_limits(other).lsp_msat;
        assert!(
            other_limit * 10 < amount_msat,
            "lsp-node could route part of {amount_sat} sat over the other channel ({other_limit} msat)"
        );
        let before = (self.outbound(via), self.outbound(other));
        self.lsp_pays_ldk(amount_msat);
        self.assert_paid_over(
            "lsp-node -> ldk-node",
            true,
            amount_msat,
            (via, before.0),
            (other, before.1),
        );
    }

    /// ldk-node pays `amount_sat` to lsp-node on a single path, which only `via` can carry.
    fn ldk_pays_lsp_over(&self, amount_sat: u64, via: &Channel, other: &Channel) {
        let amount_msat = amount_sat * 1000;
        let other_limit = self.next_htlc_limits(other).ldk_msat;
        assert!(
            other_limit < amount_msat,
            "ldk-node could send {amount_sat} sat over the other channel ({other_limit} msat)"
        );
        let via_limit = self.next_htlc_limits(via).ldk_msat;
        assert!(
            via_limit >= amount_msat,
            "ldk-node cannot send {amount_sat} sat over the channel ({via_limit} msat)"
        );
        let before = (self.outbound(via), self.outbound(other));
        self.ldk_pays_lsp(amount_msat);
        self.assert_paid_over(
            "ldk-node -> lsp-node",
            false,
            amount_msat,
            (via, before.0),
            (other, before.1),
        );
    }

    /// Waits until the payment settled over `via` at both ends (`via` moved exactly
    /// `amount_msat` from the payer's side to the payee's, lsp-node holds no HTLC on either
    /// channel), then checks `other` did not move at either end.
    fn assert_paid_over(
        &self,
        what: &str,
        lsp_pays: bool,
        amount_msat: u64,
        (via, via_before): (&Channel, Outbound),
        (other, other_before): (&Channel, Outbound),
    ) {
        poll_until(&format!("{what} to settle"), || {
            let via_now = self.outbound(via);
            let (payer, payee) = if lsp_pays {
                (
                    (via_before.lsp_msat, via_now.lsp_msat),
                    (via_before.ldk_msat, via_now.ldk_msat),
                )
            } else {
                (
                    (via_before.ldk_msat, via_now.ldk_msat),
                    (via_before.lsp_msat, via_now.lsp_msat),
                )
            };
            let payer_sent = payer.0.checked_sub(payer.1) == Some(amount_msat);
            // Below its reserve a side's sendable amount reads 0, so a payee starting there
            // can only be seen to have gained something.
            let payee_got = if payee.0 == 0 {
                payee.1 > 0
            } else {
                payee.1.checked_sub(payee.0) == Some(amount_msat)
            };
            let no_htlcs_at_lsp =
                self.lsp.channel_manager().list_channels().iter().all(|c| {
                    c.pending_inbound_htlcs.is_empty() && c.pending_outbound_htlcs.is_empty()
                });
            (payer_sent && payee_got && no_htlcs_at_lsp).then_some(())
        });
        assert_eq!(
            self.outbound(other),
            other_before,
            "{what}: the other channel must not carry any of it"
        );
    }

    /// Waits for ldk-node's ChannelPending for a new channel, its funding broadcast, six
    /// blocks seen by both nodes, and the channel usable at both ends.
    fn confirm_new_channel(&self, what: &str) -> Channel {
        let (channel_id, user_channel_id, funding) = wait_ldk_event(
            &self.ldk,
            &format!("ChannelPending ({what})"),
            |e| match e {
                Event::ChannelPending {
                    channel_id,
                    user_channel_id,
                    funding_txo,
                    ..
                } => Some((channel_id.to_string(), *user_channel_id, *funding_txo)),
                _ => None,
            },
        );
        poll_until(&format!("the funding broadcast ({what})"), || {
            (self.devchain.confirmations(&funding.txid) == Some(0)).then_some(())
        });
        self.rt
            .block_on(mine_and_sync(&self.devchain, 6, &[&self.operator]));
        sync_ldk(&self.ldk);
        wait_ldk_event(&self.ldk, &format!("ChannelReady ({what})"), |e| match e {
            Event::ChannelReady {
                channel_id: ready, ..
            } => (ready.to_string() == channel_id).then_some(()),
            _ => None,
        });
        let channel = Channel {
            channel_id,
            user_channel_id,
            funding,
        };
        poll_until(&format!("the channel usable at both ends ({what})"), || {
            let at_lsp = self
                .rt
                .block_on(self.operator.channels())
                .into_iter()
                .any(|c| c.channel_id == channel.channel_id && c.is_usable);
            let at_ldk = self
                .ldk
                .list_channels()
                .into_iter()
                .any(|c| c.channel_id.to_string() == channel.channel_id && c.is_usable);
            (at_lsp && at_ldk).then_some(())
        });
        channel
    }

    /// ldk-node pays an lsp-node invoice on a single path; lsp-node records it received.
    fn ldk_pays_lsp(&self, amount_msat: u64) {
        let invoice = self.rt.block_on(self.operator.invoice(amount_msat));
        let parsed = Bolt11Invoice::from_str(&invoice.invoice).expect("lsp-node invoice parses");
        let single_path = RouteParametersConfig {
            max_path_count: 1,
            ..Default::default()
        };
        self.ldk
            .bolt11_payment()
            .send(&parsed, Some(single_path))
            .expect("ldk-node sends");
        let paid_hash = wait_ldk_event(&self.ldk, "PaymentSuccessful at ldk-node", |e| match e {
            Event::PaymentSuccessful { payment_hash, .. } => Some(payment_hash.to_string()),
            Event::PaymentFailed { reason, .. } => {
                panic!("ldk-node could not pay lsp-node: {reason:?}")
            }
            _ => None,
        });
        assert_eq!(paid_hash, invoice.payment_hash);
        self.rt.block_on(wait_for(
            "lsp-node to record the received payment",
            DEADLINE,
            || async {
                self.operator
                    .payments()
                    .await
                    .into_iter()
                    .find(|p| p.payment_hash == invoice.payment_hash)
                    .filter(|p| {
                        p.status == PaymentStatus::Succeeded
                            && p.direction == PaymentDirection::Inbound
                            && p.amount_msat == Some(amount_msat)
                    })
            },
        ));
    }

    /// lsp-node pays an ldk-node invoice through the operator API; ldk-node receives it.
    fn lsp_pays_ldk(&self, amount_msat: u64) {
        let description =
            Bolt11InvoiceDescription::Direct(Description::new("interop".to_string()).unwrap());
        let invoice = self
            .ldk
            .bolt11_payment()
            .receive(amount_msat, &description, 3600)
            .expect("ldk-node invoice");
        let paid = self.rt.block_on(self.operator.pay(&invoice.to_string()));
        assert_eq!(
            paid.status,
            PaymentStatus::Succeeded,
            "lsp-node pays ldk-node: {paid:?}"
        );
        assert_eq!(paid.fee_paid_msat.unwrap_or(0), 0, "a direct payment");
        let received = wait_ldk_event(&self.ldk, "PaymentReceived at ldk-node", |e| match e {
            Event::PaymentReceived {
                payment_hash,
                amount_msat,
                ..
            } => Some((payment_hash.to_string(), *amount_msat)),
            _ => None,
        });
        assert_eq!(received, (paid.payment_hash, amount_msat));
    }

    /// The closing transaction of `channel` once it is in the mempool.
    fn wait_closing_tx(&self, channel: &Channel) -> Txid {
        poll_until("the closing transaction in the mempool", || {
            self.devchain.mempool_txids().into_iter().find(|txid| {
                self.devchain.get_transaction(txid).is_some_and(|tx| {
                    tx.input
                        .iter()
                        .any(|input| input.previous_output == channel.funding)
                })
            })
        })
    }
}

#[test]
fn e2e_ldk_node_interop_channels_both_ways_payments_and_cooperative_closes() {
    init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let devchain = rt.block_on(start_devchain());
    let lsp_dir = tempfile::tempdir().unwrap();
    let lsp = rt.block_on(start_node(lsp_dir.path(), &devchain.base_url()));
    let operator = Operator::for_node(&lsp);
    rt.block_on(fund(&devchain, &operator, LSP_FUNDING_SAT));

    let ldk_dir = tempfile::tempdir().unwrap();
    let ldk = start_ldk_node(&devchain, ldk_dir.path(), |_| {});
    let ldk_address = ldk
        .onchain_payment()
        .new_address()
        .expect("ldk-node address");
    devchain
        .fund(&ldk_address, LDK_FUNDING_SAT)
        .expect("faucet pays ldk-node");
    devchain.mine(1);
    sync_ldk(&ldk);
    assert_eq!(
        ldk.list_balances().spendable_onchain_balance_sats,
        LDK_FUNDING_SAT
    );
    let h = Harness {
        rt,
        devchain,
        lsp,
        operator,
        ldk,
    };
    let lsp_id = LdkPublicKey::from_str(&h.lsp.node_id().to_string()).unwrap();

    // ldk-node opens to lsp-node over TCP.
    let lsp_socket = SocketAddress::from_str(&h.lsp.p2p_listen_addr().to_string()).unwrap();
    h.ldk
        .open_channel(lsp_id, lsp_socket, LDK_CHANNEL_SAT, None, None)
        .expect("ldk-node opens a channel to lsp-node");
    let ldk_opened = h.confirm_new_channel("ldk-node -> lsp-node");

    // lsp-node opens to ldk-node over the connection ldk-node made.
    let request = OpenChannel {
        node_id: h.ldk.node_id().to_string(),
        address: None,
        capacity_sat: LSP_CHANNEL_SAT,
        push_msat: LSP_PUSH_SAT * 1000,
        announce: false,
    };
    let _: OpenedChannel =
        h.rt.block_on(h.operator.post("/v1/channels", &request))
            .expect("lsp-node opens a channel to ldk-node");
    let lsp_opened = h.confirm_new_channel("lsp-node -> ldk-node");

    let lsp_channels = h.rt.block_on(h.operator.channels());
    assert_eq!(lsp_channels.len(), 2);
    let ldk_id = h.ldk.node_id().to_string();
    for channel in &lsp_channels {
        assert_eq!(channel.counterparty_node_id, ldk_id);
        let expected = if channel.channel_id == ldk_opened.channel_id {
            (LDK_CHANNEL_SAT, false)
        } else {
            assert_eq!(channel.channel_id, lsp_opened.channel_id);
            (LSP_CHANNEL_SAT, true)
        };
        assert_eq!((channel.capacity_sat, channel.is_outbound), expected);
    }
    assert_eq!(h.ldk.list_channels().len(), 2);

    // On-chain holdings while both channels are open; the closes add exactly the channel
    // balances to these, minus the closing fee for the side that opened.
    sync_ldk(&h.ldk);
    let ldk_onchain_sat = h.ldk.list_balances().total_onchain_balance_sats;
    let lsp_onchain_sat = h.rt.block_on(h.operator.balance()).onchain_confirmed_sat;

    // 1. lsp-node -> ldk-node over lsp_opened: lsp-node has nothing on ldk_opened yet. It
    //    sends all it can there but DRAIN_MARGIN_SAT, so step 3 cannot use that channel.
    assert_eq!(h.next_htlc_limits(&ldk_opened).lsp_msat, 0);
    let drain_sat = h.next_htlc_limits(&lsp_opened).lsp_msat / 1000 - DRAIN_MARGIN_SAT;
    assert!(
        drain_sat >= 10_000,
        "lsp-node keeps {drain_sat} sat to send"
    );
    h.lsp_pays_ldk_over(drain_sat, &lsp_opened, &ldk_opened);

    // 2. ldk-node -> lsp-node over ldk_opened: more than ldk-node can send on lsp_opened.
    let to_lsp_sat = 250_000;
    h.ldk_pays_lsp_over(to_lsp_sat, &ldk_opened, &lsp_opened);

    // 3. lsp-node -> ldk-node over ldk_opened: lsp-node's own channel is drained.
    let back_to_ldk_sat = 30_000;
    h.lsp_pays_ldk_over(back_to_ldk_sat, &ldk_opened, &lsp_opened);

    // 4. ldk-node -> lsp-node over lsp_opened: more than ldk-node can send on ldk_opened.
    let back_to_lsp_sat = 185_000;
    h.ldk_pays_lsp_over(back_to_lsp_sat, &lsp_opened, &ldk_opened);

    // Each side closes the channel it opened, cooperatively.
    h.ldk
        .close_channel(&ldk_opened.user_channel_id, lsp_id)
        .expect("ldk-node closes its channel");
    let ldk_close = h.wait_closing_tx(&ldk_opened);
    let close = CloseChannel {
        channel_id: lsp_opened.channel_id.clone(),
        counterparty_node_id: ldk_id.clone(),
        force: false,
        override_lease: false,
    };
    let _: Empty =
        h.rt.block_on(h.operator.post("/v1/channels/close", &close))
            .expect("lsp-node closes its channel");
    let lsp_close = h.wait_closing_tx(&lsp_opened);
    let ldk_close_fee = h.devchain.fee_of(&ldk_close).expect("closing fee");
    let lsp_close_fee = h.devchain.fee_of(&lsp_close).expect("closing fee");
    for _ in 0..2 {
        wait_ldk_event(&h.ldk, "ChannelClosed at ldk-node", |e| {
            matches!(e, Event::ChannelClosed { .. }).then_some(())
        });
    }
    // Six blocks: LDK keeps reporting closing balances until they are reorg-safe.
    h.rt.block_on(mine_and_sync(&h.devchain, 6, &[&h.operator]));
    sync_ldk(&h.ldk);
    assert_eq!(h.devchain.confirmations(&ldk_close), Some(6));
    assert_eq!(h.devchain.confirmations(&lsp_close), Some(6));

    // Channel balances, in sats: the opener of each channel pays its closing fee.
    let lsp_on_ldk_opened = to_lsp_sat - back_to_ldk_sat;
    let ldk_on_ldk_opened = LDK_CHANNEL_SAT - lsp_on_ldk_opened;
    let ldk_on_lsp_opened = LSP_PUSH_SAT + drain_sat - back_to_lsp_sat;
    let lsp_on_lsp_opened = LSP_CHANNEL_SAT - ldk_on_lsp_opened;
    let lsp_expected = lsp_onchain_sat + lsp_on_ldk_opened + lsp_on_lsp_opened - lsp_close_fee;
    let ldk_expected = ldk_onchain_sat + ldk_on_ldk_opened - ldk_close_fee + ldk_on_lsp_opened;
    h.rt.block_on(wait_for(
        "lsp-node's channel balances back in its wallet",
        DEADLINE,
        || async {
            h.operator.sync().await;
            let channels = h.operator.channels().await;
            let balance = h.operator.balance().await;
            (channels.is_empty()
                && balance.lightning_sat == 0
                && balance.onchain_confirmed_sat == lsp_expected)
                .then_some(())
        },
    ));
    assert!(h.ldk.list_channels().is_empty());
    assert_eq!(
        h.ldk.list_balances().total_onchain_balance_sats,
        ldk_expected,
        "ldk-node's channel balances back in its wallet"
    );

    let Harness {
        rt,
        devchain,
        lsp,
        ldk,
        ..
    } = h;
    ldk.stop().expect("ldk-node stops");
    rt.block_on(async {
        lsp.stop().await.expect("lsp-node stops");
        devchain.shutdown().await;
    });
}
