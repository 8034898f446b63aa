//! BOLT11 invoices for payments to this node, made as LDK's
//! `ChannelManager::create_bolt11_invoice` makes them, minus one step: LDK verifies the
//! signature it has just made (`Bolt11Invoice::from_signed`, a secp256k1 verification with a
//! context created for it), which a profile of create_order showed among its larger costs.
//! Here the signed invoice is encoded as it is signed.
//!
//! What a payer sees is LDK's invoice: the inbound payment comes from
//! `ChannelManager::create_inbound_payment` (so LDK recognises and claims it), the fields and
//! their defaults are LDK's, and the route hints follow LDK's choice
//! (`lightning::ln::invoice_utils::sort_and_filter_channels`, private to LDK), reproduced in
//! [`route_hints`] and checked against LDK's own invoice for the same channels in
//! `tests/order_invoice.rs`.

use std::collections::btree_map::{self, BTreeMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;
use bitcoin::Network;
use lightning::ln::channel_state::ChannelDetails;
use lightning::ln::channelmanager::MIN_FINAL_CLTV_EXPIRY_DELTA;
use lightning::routing::gossip::RoutingFees;
use lightning::routing::router::{RouteHint, RouteHintHop};
use lightning::sign::{KeysManager, NodeSigner, Recipient};
use lightning::types::payment::PaymentHash;
use lightning_invoice::{Currency, Description, InvoiceBuilder};

use super::types::ChannelManager;

/// LDK's limit on route hints per invoice.
const MAX_ROUTE_HINTS: usize = 3;

/// Below this many confirmations an announced channel may not have reached payers' graphs
/// yet, so it is hinted (LDK's rule).
const ANNOUNCED_CHANNEL_PROPAGATION_CONFS: u32 = 7;

/// What an invoice asks for.
pub struct InvoiceRequest {
    /// `None` for an any-amount invoice.
    pub amount_msat: Option<u64>,
    pub description: Description,
    pub expiry_secs: u32,
    /// LDK adds 3 blocks to it; `None` takes LDK's minimum.
    pub min_final_cltv_expiry_delta: Option<u16>,
}

/// A signed invoice, encoded.
pub struct NodeInvoice {
    pub text: String,
    pub payment_hash: PaymentHash,
}

#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    #[error("the final CLTV expiry delta is below LDK's minimum")]
    MinFinalCltvExpiryDeltaTooShort,
    #[error("LDK refused the inbound payment (invalid amount)")]
    InboundPayment,
    #[error("the invoice could not be built: {0}")]
    Creation(lightning_invoice::CreationError),
    #[error("the node could not sign the invoice")]
    Signing,
}

/// Makes the node's invoices (see the module doc).
pub struct InvoiceMaker {
    channel_manager: Arc<ChannelManager>,
    signer: Arc<KeysManager>,
    currency: Currency,
}

impl InvoiceMaker {
    pub fn new(
        channel_manager: Arc<ChannelManager>,
        signer: Arc<KeysManager>,
        network: Network,
    ) -> InvoiceMaker {
        InvoiceMaker {
            channel_manager,
            signer,
            currency: Currency::from(network),
        }
    }

    pub fn create(&self, request: InvoiceRequest) -> Result<NodeInvoice, InvoiceError> {
        let InvoiceRequest {
            amount_msat,
            description,
            expiry_secs,
            min_final_cltv_expiry_delta,
        } = request;
        if let Some(delta) = min_final_cltv_expiry_delta {
            if delta.saturating_add(3) < MIN_FINAL_CLTV_EXPIRY_DELTA {
                return Err(InvoiceError::MinFinalCltvExpiryDeltaTooShort);
            }
        }
        let (payment_hash, payment_secret, _) = self
            .channel_manager
            .create_inbound_payment(amount_msat, expiry_secs, min_final_cltv_expiry_delta, None)
            .map_err(|()| InvoiceError::InboundPayment)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut builder = InvoiceBuilder::new(self.currency.clone())
            .description(description.into_inner().0)
            .duration_since_epoch(now)
            .payee_pub_key(self.channel_manager.get_our_node_id())
            .payment_hash(payment_hash)
            .payment_secret(payment_secret)
            .basic_mpp()
            .min_final_cltv_expiry_delta(
                min_final_cltv_expiry_delta
                    .map(|delta| delta.saturating_add(3))
                    .unwrap_or(MIN_FINAL_CLTV_EXPIRY_DELTA)
                    .into(),
            )
            .expiry_time(Duration::from_secs(expiry_secs.into()));
        if let Some(amount_msat) = amount_msat {
            builder = builder.amount_milli_satoshis(amount_msat);
        }
        let candidates = self.channel_manager.list_channels();
        for hint in route_hints(candidates.iter().map(HintCandidate::of), amount_msat) {
            builder = builder.private_route(hint);
        }
        let raw = builder.build_raw().map_err(InvoiceError::Creation)?;
        let signature = self.signer.sign_invoice(&raw, Recipient::Node);
        let signed = raw
            .sign(|_| signature)
            .map_err(|()| InvoiceError::Signing)?;
        Ok(NodeInvoice {
            text: signed.to_string(),
            payment_hash,
        })
    }
}

/// What the route-hint choice reads of a channel.
#[derive(Clone, Debug)]
pub struct HintCandidate {
    pub counterparty: PublicKey,
    /// `None` for a channel not ready, or without an SCID or the counterparty's forwarding
    /// terms: such a channel cannot be hinted.
    pub hop: Option<HintHop>,
    pub inbound_capacity_msat: u64,
    pub is_usable: bool,
    pub is_announced: bool,
    pub confirmations: Option<u32>,
}

/// The hop a hint describes: the counterparty forwarding to us over the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintHop {
    pub short_channel_id: u64,
    pub fees: RoutingFees,
    pub cltv_expiry_delta: u16,
    pub htlc_minimum_msat: Option<u64>,
    pub htlc_maximum_msat: Option<u64>,
}

impl HintCandidate {
    fn of(channel: &ChannelDetails) -> HintCandidate {
        let hop = match (
            channel.is_channel_ready,
            channel.get_inbound_payment_scid(),
            &channel.counterparty.forwarding_info,
        ) {
            (true, Some(short_channel_id), Some(forwarding)) => Some(HintHop {
                short_channel_id,
                fees: RoutingFees {
                    base_msat: forwarding.fee_base_msat,
                    proportional_millionths: forwarding.fee_proportional_millionths,
                },
                cltv_expiry_delta: forwarding.cltv_expiry_delta,
                htlc_minimum_msat: channel.inbound_htlc_minimum_msat,
                htlc_maximum_msat: channel.inbound_htlc_maximum_msat,
            }),
            _ => None,
        };
        HintCandidate {
            counterparty: channel.counterparty.node_id,
            hop,
            inbound_capacity_msat: channel.inbound_capacity_msat,
            is_usable: channel.is_usable,
            is_announced: channel.is_announced,
            confirmations: channel.confirmations,
        }
    }

    fn hint(&self, hop: &HintHop) -> RouteHint {
        RouteHint(vec![RouteHintHop {
            src_node_id: self.counterparty,
            short_channel_id: hop.short_channel_id,
            fees: hop.fees,
            cltv_expiry_delta: hop.cltv_expiry_delta,
            htlc_minimum_msat: hop.htlc_minimum_msat,
            htlc_maximum_msat: hop.htlc_maximum_msat,
        }])
    }
}

/// LDK's route hints for an invoice of `amount_msat` over `channels`: none when an announced
/// channel old enough to be in payers' graphs can be hinted; otherwise one channel per
/// counterparty (announced ones only, when some announced channel is still young), those
/// with enough inbound capacity and a connected peer first, at most three, the smallest
/// sufficient first when one is online and sufficient, else the largest first.
pub fn route_hints(
    channels: impl IntoIterator<Item = HintCandidate>,
    amount_msat: Option<u64>,
) -> Vec<RouteHint> {
    let min_inbound = amount_msat.unwrap_or(0);
    let mut per_counterparty: BTreeMap<PublicKey, (HintCandidate, HintHop)> = BTreeMap::new();
    let mut sufficient_exists = false;
    let mut online_exists = false;
    let mut online_sufficient_exists = false;
    let mut young_announced_exists = false;
    for channel in channels {
        let Some(hop) = channel.hop.clone() else {
            continue;
        };
        if channel.is_announced {
            match channel.confirmations {
                Some(confs) if confs < ANNOUNCED_CHANNEL_PROPAGATION_CONFS => {
                    young_announced_exists = true
                }
                _ => return Vec::new(),
            }
        }
        if channel.inbound_capacity_msat >= min_inbound {
            sufficient_exists = true;
            online_sufficient_exists |= channel.is_usable;
        }
        online_exists |= channel.is_usable;
        match per_counterparty.entry(channel.counterparty) {
            btree_map::Entry::Vacant(entry) => {
                entry.insert((channel, hop));
            }
            btree_map::Entry::Occupied(mut entry) => {
                let current = &entry.get().0;
                let now_announced = channel.is_announced && !current.is_announced;
                let preferable = channel.is_announced == current.is_announced
                    && !prefer_current(
                        amount_msat,
                        current.inbound_capacity_msat,
                        channel.inbound_capacity_msat,
                    );
                if now_announced || preferable {
                    entry.insert((channel, hop));
                }
            }
        }
    }
    let mut eligible: Vec<(HintCandidate, HintHop)> = per_counterparty
        .into_values()
        .filter(|(channel, _)| {
            let sufficient = channel.inbound_capacity_msat >= min_inbound;
            if young_announced_exists {
                channel.is_announced
            } else if online_sufficient_exists {
                sufficient && channel.is_usable
            } else if sufficient_exists {
                sufficient
            } else if online_exists {
                channel.is_usable
            } else {
                true
            }
        })
        .collect();
    eligible.sort_unstable_by(|(a, _), (b, _)| {
        if online_sufficient_exists {
            a.inbound_capacity_msat.cmp(&b.inbound_capacity_msat)
        } else {
            b.inbound_capacity_msat.cmp(&a.inbound_capacity_msat)
        }
    });
    eligible
        .iter()
        .take(MAX_ROUTE_HINTS)
        .map(|(channel, hop)| channel.hint(hop))
        .collect()
}

/// Whether the channel already chosen for a counterparty stays chosen over `candidate`
/// (LDK's rule): without an amount the larger inbound wins; with one, a channel with 110% of
/// it wins over one without, and between two that both have it the smaller wins.
fn prefer_current(amount_msat: Option<u64>, current: u64, candidate: u64) -> bool {
    let Some(amount_msat) = amount_msat else {
        return current > candidate;
    };
    let scaled_min = u128::from(amount_msat) * 110;
    let current_sufficient = u128::from(current) * 100 >= scaled_min;
    let candidate_sufficient = u128::from(candidate) * 100 >= scaled_min;
    match (current_sufficient, candidate_sufficient) {
        (true, true) => current < candidate,
        (true, false) => true,
        (false, true) => false,
        (false, false) => current > candidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    fn peer(n: u8) -> PublicKey {
        PublicKey::from_secret_key(&Secp256k1::new(), &SecretKey::from_slice(&[n; 32]).unwrap())
    }

    /// A ready, usable, private channel with `peer(n)` as counterparty and SCID `scid`.
    fn channel(n: u8, scid: u64, inbound_msat: u64) -> HintCandidate {
        HintCandidate {
            counterparty: peer(n),
            hop: Some(HintHop {
                short_channel_id: scid,
                fees: RoutingFees {
                    base_msat: 1_000,
                    proportional_millionths: 100,
                },
                cltv_expiry_delta: 72,
                htlc_minimum_msat: Some(1),
                htlc_maximum_msat: Some(inbound_msat),
            }),
            inbound_capacity_msat: inbound_msat,
            is_usable: true,
            is_announced: false,
            confirmations: Some(10),
        }
    }

    fn scids(hints: &[RouteHint]) -> Vec<u64> {
        hints
            .iter()
            .map(|hint| hint.0[0].short_channel_id)
            .collect()
    }

    #[test]
    fn an_announced_channel_in_the_graph_means_no_hints() {
        let mut public = channel(1, 10, 5_000);
        public.is_announced = true;
        public.confirmations = Some(ANNOUNCED_CHANNEL_PROPAGATION_CONFS);
        assert!(route_hints([channel(2, 20, 5_000), public.clone()], Some(1_000)).is_empty());
        // LDK counts a channel without a confirmation count as propagated too.
        public.confirmations = None;
        assert!(route_hints([public], Some(1_000)).is_empty());
    }

    #[test]
    fn a_young_announced_channel_hides_the_private_ones() {
        let mut public = channel(1, 10, 5_000);
        public.is_announced = true;
        public.confirmations = Some(3);
        let hints = route_hints([channel(2, 20, 9_000), public], Some(1_000));
        assert_eq!(scids(&hints), [10]);
        assert_eq!(hints[0].0[0].src_node_id, peer(1));
    }

    #[test]
    fn channels_that_cannot_be_hinted_are_skipped() {
        let mut not_ready = channel(1, 10, 5_000);
        not_ready.hop = None;
        // Not even an announced one that cannot be hinted suppresses the others.
        let mut public = channel(3, 30, 5_000);
        public.is_announced = true;
        public.hop = None;
        assert_eq!(
            scids(&route_hints(
                [not_ready, public, channel(2, 20, 5_000)],
                None
            )),
            [20]
        );
    }

    #[test]
    fn one_channel_per_counterparty_by_ldks_preference() {
        // With an amount: of two sufficient channels, the smaller (110% of the amount) wins.
        let hints = route_hints([channel(1, 10, 9_000), channel(1, 11, 1_200)], Some(1_000));
        assert_eq!(scids(&hints), [11]);
        // A sufficient channel beats an insufficient one, whatever their order.
        let hints = route_hints([channel(1, 10, 1_050), channel(1, 11, 3_000)], Some(1_000));
        assert_eq!(scids(&hints), [11]);
        // Without an amount, the larger inbound wins.
        let hints = route_hints([channel(1, 10, 1_000), channel(1, 11, 3_000)], None);
        assert_eq!(scids(&hints), [11]);
    }

    #[test]
    fn at_most_three_smallest_sufficient_first_when_one_is_online() {
        let channels = [
            channel(1, 10, 8_000),
            channel(2, 20, 2_000),
            channel(3, 30, 500),
            channel(4, 40, 4_000),
            channel(5, 50, 6_000),
        ];
        // 500 msat is not enough for 1,000 and is left out; the rest, smallest first.
        assert_eq!(scids(&route_hints(channels, Some(1_000))), [20, 40, 50]);
    }

    #[test]
    fn offline_or_insufficient_channels_fall_back_largest_first() {
        let mut offline = channel(1, 10, 8_000);
        offline.is_usable = false;
        let small_online = channel(2, 20, 500);
        // Sufficient channels exist but none online: the sufficient ones, largest first.
        assert_eq!(
            scids(&route_hints(
                [offline.clone(), small_online.clone()],
                Some(1_000)
            )),
            [10]
        );
        // Nothing sufficient: the online ones.
        assert_eq!(
            scids(&route_hints([offline.clone(), small_online], Some(10_000))),
            [20]
        );
        // Nothing sufficient, nothing online: all of them, largest first.
        let mut offline_small = channel(3, 30, 100);
        offline_small.is_usable = false;
        assert_eq!(
            scids(&route_hints([offline_small, offline], Some(10_000))),
            [10, 30]
        );
    }

    #[test]
    fn the_preference_holds_at_amounts_near_the_limit() {
        assert!(!prefer_current(Some(u64::MAX), 1, 2));
        assert!(prefer_current(Some(u64::MAX), u64::MAX, u64::MAX - 1));
        assert!(prefer_current(None, 2, 1));
    }
}
