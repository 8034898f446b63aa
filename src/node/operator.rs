//! The node's half of the operator API: info, balances, addresses, peers, channels and
//! payments, as inherent methods of [`Node`] in the [`crate::api`] types. The application's
//! `OperatorApi` delegates its node calls here.
//!
//! Every request is validated before anything changes; errors are one sentence an operator can
//! act on. Outgoing payments are written to the store as pending before LDK is asked to send
//! them, so a crash between the two leaves a record, never a silent payment.

use std::str::FromStr;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Address, FeeRate};
use lightning::ln::channelmanager::{
    Bolt11InvoiceParameters, OptionalBolt11PaymentParams, PaymentId,
};
use lightning::ln::types::ChannelId;
use lightning::types::payment::PaymentHash;
use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};

use super::chain::{unix_now, OnchainTarget};
use super::store::PaymentRecord;
use super::types::ChannelManager;
use super::wallet::{SendAmount, WalletError};
use super::Node;
use crate::api::*;

/// How long `pay` waits for an outcome when the request does not say.
const DEFAULT_PAY_WAIT: Duration = Duration::from_secs(30);

/// Default invoice lifetime.
const DEFAULT_INVOICE_EXPIRY_SECS: u32 = 3600;

fn invalid(message: impl Into<String>) -> OperatorError {
    OperatorError::InvalidRequest(message.into())
}

fn parse_node_id(raw: &str) -> OperatorResult<PublicKey> {
    PublicKey::from_str(raw.trim())
        .map_err(|_| invalid(format!("'{raw}' is not a node id (66 hex characters)")))
}

fn parse_channel_id(raw: &str) -> OperatorResult<ChannelId> {
    let bytes = hex::decode(raw.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes
        .map(ChannelId)
        .ok_or_else(|| invalid(format!("'{raw}' is not a channel id (64 hex characters)")))
}

/// How long `open_channel` waits for the peer to accept and the funding to exist.
const OPEN_ANSWER_WAIT: Duration = Duration::from_secs(30);

/// The id a new channel will keep, once the funding transaction exists (the temporary id is
/// replaced then). `None` if the peer has not answered within [`OPEN_ANSWER_WAIT`]; an error
/// if the open ended (the peer refused, or funding failed).
async fn funded_channel_id(
    channel_manager: &ChannelManager,
    user_channel_id: u128,
) -> OperatorResult<Option<ChannelId>> {
    let give_up = tokio::time::Instant::now() + OPEN_ANSWER_WAIT;
    loop {
        let channel = channel_manager
            .list_channels()
            .into_iter()
            .find(|c| c.user_channel_id == user_channel_id);
        match channel {
            Some(c) if c.funding_txo.is_some() => return Ok(Some(c.channel_id)),
            Some(_) => {}
            None => {
                return Err(OperatorError::Unavailable(
                    "the channel open ended before funding: the peer refused it or the funding failed; the node log says why".to_string(),
                ))
            }
        }
        if tokio::time::Instant::now() >= give_up {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn internal(context: &str, e: impl std::fmt::Display) -> OperatorError {
    tracing::error!(error = %e, "{context}");
    OperatorError::Internal(format!("{context}: {e}"))
}

impl Node {
    pub async fn info(&self) -> OperatorResult<NodeInfo> {
        let inner = &self.inner;
        let best = inner.channel_manager.current_best_block();
        let mut listening_addresses = vec![inner.p2p_addr.to_string()];
        listening_addresses.extend(inner.config.node.announce_addresses.iter().cloned());
        Ok(NodeInfo {
            node_id: self.node_id().to_string(),
            network: inner.config.network.to_string(),
            block_height: best.height,
            block_hash: best.block_hash.to_string(),
            last_sync_at: inner.chain_sync.last_sync().map(|s| s.synced_at),
            listening_addresses,
            version: env!("CARGO_PKG_VERSION").to_string(),
            num_peers: inner.peer_manager.list_peers().len(),
            num_channels: inner.channel_manager.list_channels().len(),
            chain_source: {
                let failure = inner.chain_sync.failure();
                ChainSourceStatus {
                    url: inner.esplora_url.clone(),
                    synced: inner.chain_sync.has_synced(),
                    consecutive_failures: failure.as_ref().map_or(0, |f| f.consecutive),
                    failing_since: failure.as_ref().map(|f| f.failing_since),
                    last_error: failure.map(|f| f.last_error),
                }
            },
        })
    }

    pub async fn balances(&self) -> OperatorResult<Balances> {
        let inner = &self.inner;
        let onchain = inner.wallet.balances();
        let lightning_sat = inner
            .chain_monitor
            .get_claimable_balances(&[])
            .iter()
            .map(|b| b.claimable_amount_satoshis())
            .sum();
        Ok(Balances {
            onchain_confirmed_sat: onchain.confirmed_sat,
            onchain_unconfirmed_sat: onchain.unconfirmed_sat,
            lightning_sat,
        })
    }

    pub async fn new_address(&self) -> OperatorResult<NewAddress> {
        let address = self
            .inner
            .wallet
            .new_address()
            .map_err(|e| internal("could not derive an address", e))?;
        Ok(NewAddress {
            address: address.to_string(),
        })
    }

    pub async fn send_onchain(&self, req: SendOnchain) -> OperatorResult<Txid> {
        let network = self.inner.config.network;
        let address = Address::from_str(req.address.trim())
            .map_err(|_| invalid(format!("'{}' is not a bitcoin address", req.address)))?
            .require_network(network)
            .map_err(|_| invalid(format!("'{}' is not an address for {network}", req.address)))?;
        let amount = match (req.amount_sat, req.send_all) {
            (Some(_), true) => return Err(invalid("give either amount_sat or send_all, not both")),
            (None, false) => {
                return Err(invalid(
                    "give amount_sat, or set send_all to empty the wallet",
                ))
            }
            (Some(0), false) => return Err(invalid("amount_sat must be more than 0")),
            (Some(sat), false) => SendAmount::Exact(sat),
            (None, true) => SendAmount::All,
        };
        let fee_rate = match req.fee_rate_sat_per_vb {
            Some(0) => return Err(invalid("fee_rate_sat_per_vb must be at least 1")),
            Some(rate) => FeeRate::from_sat_per_vb(rate)
                .ok_or_else(|| invalid(format!("fee rate {rate} sat/vB is too high")))?,
            None => self
                .inner
                .fee_estimator
                .onchain_fee_rate(OnchainTarget::Payment),
        };
        let txid = self
            .inner
            .wallet
            .send(&address, amount, fee_rate)
            .map_err(|e| match e {
                WalletError::WrongNetwork { .. }
                | WalletError::BelowDust { .. }
                | WalletError::FeeRateTooLow { .. } => invalid(e.to_string()),
                WalletError::InsufficientFunds { .. } => OperatorError::Unavailable(e.to_string()),
                other => internal("could not send", other),
            })?;
        Ok(Txid {
            txid: txid.to_string(),
        })
    }

    pub async fn peers(&self) -> OperatorResult<Vec<PeerInfo>> {
        let inner = &self.inner;
        let remembered = inner
            .store
            .peers()
            .map_err(|e| internal("could not read peers", e))?;
        let connected = inner.peer_manager.list_peers();
        let mut peers: Vec<PeerInfo> = connected
            .iter()
            .map(|p| PeerInfo {
                node_id: p.counterparty_node_id.to_string(),
                address: remembered
                    .iter()
                    .find(|(id, _)| *id == p.counterparty_node_id)
                    .map(|(_, a)| a.clone())
                    .or_else(|| p.socket_address.as_ref().map(|a| a.to_string())),
                connected: true,
            })
            .collect();
        for (node_id, address) in remembered {
            if !connected.iter().any(|p| p.counterparty_node_id == node_id) {
                peers.push(PeerInfo {
                    node_id: node_id.to_string(),
                    address: Some(address),
                    connected: false,
                });
            }
        }
        Ok(peers)
    }

    pub async fn connect_peer(&self, req: ConnectPeer) -> OperatorResult<Empty> {
        let node_id = parse_node_id(&req.node_id)?;
        if node_id == self.node_id() {
            return Err(invalid("that is this node's own id"));
        }
        self.inner
            .peers
            .connect_and_remember(node_id, req.address.trim())
            .await
            .map_err(|e| OperatorError::Unavailable(e.to_string()))?;
        Ok(Empty {})
    }

    pub async fn channels(&self) -> OperatorResult<Vec<ChannelInfo>> {
        Ok(self
            .inner
            .channel_manager
            .list_channels()
            .into_iter()
            .map(|c| ChannelInfo {
                channel_id: c.channel_id.to_string(),
                user_channel_id: c.user_channel_id.to_string(),
                counterparty_node_id: c.counterparty.node_id.to_string(),
                funding_txo: c.funding_txo.map(|o| format!("{}:{}", o.txid, o.index)),
                capacity_sat: c.channel_value_satoshis,
                outbound_msat: c.outbound_capacity_msat,
                inbound_msat: c.inbound_capacity_msat,
                is_channel_ready: c.is_channel_ready,
                is_usable: c.is_usable,
                is_announced: c.is_announced,
                is_outbound: c.is_outbound,
                confirmations: c.confirmations,
                pending_htlcs: c.pending_inbound_htlcs.len() + c.pending_outbound_htlcs.len(),
            })
            .collect())
    }

    pub async fn open_channel(&self, req: OpenChannel) -> OperatorResult<OpenedChannel> {
        let inner = &self.inner;
        let node_id = parse_node_id(&req.node_id)?;
        if node_id == self.node_id() {
            return Err(invalid("a channel to this node itself is not possible"));
        }
        if req.capacity_sat == 0 {
            return Err(invalid("capacity_sat must be more than 0"));
        }
        if req.push_msat > req.capacity_sat.saturating_mul(1000) {
            return Err(invalid("push_msat cannot exceed the channel capacity"));
        }
        let onchain = inner.wallet.balances();
        if onchain.spendable_sat < req.capacity_sat {
            return Err(OperatorError::Unavailable(format!(
                "not enough on-chain funds: {} sat spendable, {} sat needed plus fees",
                onchain.spendable_sat, req.capacity_sat
            )));
        }
        match req
            .address
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            Some(address) => inner
                .peers
                .connect_and_remember(node_id, address)
                .await
                .map_err(|e| OperatorError::Unavailable(e.to_string()))?,
            None if inner.peers.is_connected(&node_id) => {}
            None => {
                return Err(OperatorError::Unavailable(format!(
                    "not connected to {node_id}; give its address to connect first"
                )))
            }
        }
        let mut channel_config = inner.user_config.clone();
        channel_config
            .channel_handshake_config
            .announce_for_forwarding = req.announce;
        let user_channel_id = super::random_user_channel_id();
        let temporary_channel_id = inner
            .channel_manager
            .create_channel(
                node_id,
                req.capacity_sat,
                req.push_msat,
                user_channel_id,
                None,
                Some(channel_config),
            )
            .map_err(|e| {
                OperatorError::Unavailable(format!("could not open the channel: {e:?}"))
            })?;
        tracing::info!(%node_id, capacity_sat = req.capacity_sat, %temporary_channel_id, "opening channel");
        let channel_id = funded_channel_id(&inner.channel_manager, user_channel_id).await?;
        Ok(OpenedChannel {
            channel_id: channel_id.map(|id| id.to_string()),
            user_channel_id: user_channel_id.to_string(),
        })
    }

    pub async fn close_channel(&self, req: CloseChannel) -> OperatorResult<Empty> {
        let inner = &self.inner;
        let counterparty = parse_node_id(&req.counterparty_node_id)?;
        let raw = req.channel_id.trim();
        let by_user_id = raw.parse::<u128>().ok().filter(|_| raw.len() < 64);
        let by_channel_id = match by_user_id {
            Some(_) => None,
            None => Some(parse_channel_id(raw)?),
        };
        let channel_id = inner
            .channel_manager
            .list_channels_with_counterparty(&counterparty)
            .into_iter()
            .find(|c| match by_user_id {
                Some(user_id) => c.user_channel_id == user_id,
                None => Some(c.channel_id) == by_channel_id,
            })
            .map(|c| c.channel_id)
            .ok_or_else(|| {
                OperatorError::NotFound(format!("no open channel {raw} with {counterparty}"))
            })?;
        let outcome = if req.force {
            inner.channel_manager.force_close_broadcasting_latest_txn(
                &channel_id,
                &counterparty,
                "closed by the operator".to_string(),
            )
        } else {
            inner
                .channel_manager
                .close_channel(&channel_id, &counterparty)
        };
        outcome.map_err(|e| {
            OperatorError::Unavailable(format!("could not close the channel: {e:?}"))
        })?;
        tracing::info!(%channel_id, %counterparty, force = req.force, "closing channel");
        Ok(Empty {})
    }

    pub async fn payments(&self) -> OperatorResult<Vec<PaymentInfo>> {
        let records = self
            .inner
            .store
            .payments()
            .map_err(|e| internal("could not read payments", e))?;
        Ok(records.iter().map(PaymentInfo::from).collect())
    }

    pub async fn create_invoice(&self, req: CreateInvoice) -> OperatorResult<Invoice> {
        if req.amount_msat == Some(0) {
            return Err(invalid(
                "amount_msat must be more than 0; omit it for an any-amount invoice",
            ));
        }
        if req.expiry_secs == Some(0) {
            return Err(invalid("expiry_secs must be more than 0"));
        }
        let description = Description::new(req.description.clone())
            .map_err(|_| invalid("the description is too long"))?;
        let params = Bolt11InvoiceParameters {
            amount_msats: req.amount_msat,
            description: Bolt11InvoiceDescription::Direct(description),
            invoice_expiry_delta_secs: Some(req.expiry_secs.unwrap_or(DEFAULT_INVOICE_EXPIRY_SECS)),
            ..Default::default()
        };
        let invoice = self
            .inner
            .channel_manager
            .create_bolt11_invoice(params)
            .map_err(|e| internal("could not create the invoice", format!("{e:?}")))?;
        Ok(Invoice {
            invoice: invoice.to_string(),
            payment_hash: invoice.payment_hash().to_string(),
        })
    }

    pub async fn pay_invoice(&self, req: PayInvoice) -> OperatorResult<PaymentInfo> {
        let inner = &self.inner;
        let invoice = Bolt11Invoice::from_str(req.invoice.trim())
            .map_err(|e| invalid(format!("not a valid BOLT11 invoice: {e}")))?;
        if invoice.network() != inner.config.network {
            return Err(invalid(format!(
                "the invoice is for {}, this node runs on {}",
                invoice.network(),
                inner.config.network
            )));
        }
        if invoice.is_expired() {
            return Err(invalid("the invoice has expired"));
        }
        let amount_msat = match (invoice.amount_milli_satoshis(), req.amount_msat) {
            (Some(_), Some(_)) => {
                return Err(invalid("the invoice sets its amount; omit amount_msat"))
            }
            (None, None) => return Err(invalid("the invoice has no amount; give amount_msat")),
            (None, Some(0)) => return Err(invalid("amount_msat must be more than 0")),
            (Some(amount), None) | (None, Some(amount)) => amount,
        };
        let payment_hash = PaymentHash(invoice.payment_hash().0);
        let existing = inner
            .store
            .payment(&payment_hash)
            .map_err(|e| internal("could not read payments", e))?;
        if let Some(existing) = existing {
            if existing.direction == PaymentDirection::Inbound {
                return Err(invalid("that invoice was created by this node"));
            }
            if existing.status != PaymentStatus::Failed {
                return Err(OperatorError::Unavailable(format!(
                    "this invoice was already paid or is being paid (status {:?})",
                    existing.status
                )));
            }
        }
        let now = unix_now();
        let record = PaymentRecord {
            payment_hash,
            preimage: None,
            direction: PaymentDirection::Outbound,
            amount_msat: Some(amount_msat),
            fee_paid_msat: None,
            status: PaymentStatus::Pending,
            created_at: now,
            updated_at: now,
        };
        inner
            .store
            .upsert_payment(&record)
            .map_err(|e| internal("could not record the payment", e))?;
        let explicit_amount = invoice
            .amount_milli_satoshis()
            .is_none()
            .then_some(amount_msat);
        let sent = inner.channel_manager.pay_for_bolt11_invoice(
            &invoice,
            PaymentId(payment_hash.0),
            explicit_amount,
            OptionalBolt11PaymentParams::default(),
        );
        if let Err(e) = sent {
            let failed = PaymentRecord {
                status: PaymentStatus::Failed,
                updated_at: unix_now(),
                ..record
            };
            inner
                .store
                .upsert_payment(&failed)
                .map_err(|e| internal("could not record the payment", e))?;
            return Err(OperatorError::Unavailable(format!(
                "could not pay the invoice: {e:?}"
            )));
        }
        let wait = req
            .wait_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_PAY_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let current = inner
                .store
                .payment(&payment_hash)
                .map_err(|e| internal("could not read payments", e))?
                .unwrap_or_else(|| record.clone());
            if current.status != PaymentStatus::Pending || tokio::time::Instant::now() >= deadline {
                return Ok(PaymentInfo::from(&current));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn sync(&self) -> OperatorResult<SyncStatus> {
        let snapshot = self
            .inner
            .chain_sync
            .sync()
            .await
            .map_err(|e| OperatorError::Unavailable(e.to_string()))?;
        Ok(SyncStatus {
            block_height: snapshot.height,
            last_sync_at: Some(snapshot.synced_at),
        })
    }
}
