//! The operator contract for the node itself: its state, wallet, peers, channels, payments
//! and chain sync, as request and response types.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// Hex-encoded compressed public key.
    pub node_id: String,
    /// `bitcoin`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// Height of the best block the node has synced to.
    pub block_height: u32,
    pub block_hash: String,
    /// Unix time (seconds) of the last completed chain sync, if any.
    pub last_sync_at: Option<u64>,
    /// `host:port` strings the p2p listener is reachable on.
    pub listening_addresses: Vec<String>,
    pub version: String,
    pub num_peers: usize,
    pub num_channels: usize,
    /// Whether the chain source is being reached, and why not.
    #[serde(default)]
    pub chain_source: ChainSourceStatus,
}

/// The chain source as the node sees it. Until `synced` is true the node sells no channels.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainSourceStatus {
    /// Esplora base URL.
    pub url: String,
    /// A sync has completed since the node started.
    pub synced: bool,
    /// Failed syncs in a row; 0 when the last sync succeeded.
    pub consecutive_failures: u32,
    /// Unix time (seconds) of the first failure in the current run of failures.
    pub failing_since: Option<u64>,
    /// The last failure, as one sentence.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Balances {
    pub onchain_confirmed_sat: u64,
    /// Unconfirmed and immature on-chain funds.
    pub onchain_unconfirmed_sat: u64,
    /// Sum of our balances in open channels, rounded down to whole sats.
    pub lightning_sat: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewAddress {
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendOnchain {
    pub address: String,
    /// Amount to send; omit and set `send_all` to sweep the wallet.
    #[serde(default)]
    pub amount_sat: Option<u64>,
    #[serde(default)]
    pub send_all: bool,
    /// Fee rate; defaults to the node's estimate for a normal-priority transaction.
    #[serde(default)]
    pub fee_rate_sat_per_vb: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Txid {
    pub txid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerInfo {
    pub node_id: String,
    /// Last known address, if any.
    pub address: Option<String>,
    pub connected: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectPeer {
    pub node_id: String,
    /// `host:port`.
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Hex channel id (the temporary id until funding is known).
    pub channel_id: String,
    pub user_channel_id: String,
    pub counterparty_node_id: String,
    /// `txid:vout` once the funding transaction exists.
    pub funding_txo: Option<String>,
    pub capacity_sat: u64,
    pub outbound_msat: u64,
    pub inbound_msat: u64,
    pub is_channel_ready: bool,
    pub is_usable: bool,
    pub is_announced: bool,
    pub is_outbound: bool,
    pub confirmations: Option<u32>,
    /// HTLCs not yet settled in both parties' commitments (in flight, being added or removed).
    /// The balances above can still move by their on-chain fee until this is 0.
    pub pending_htlcs: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenChannel {
    pub node_id: String,
    /// Connect to this `host:port` first, when not already connected.
    #[serde(default)]
    pub address: Option<String>,
    pub capacity_sat: u64,
    #[serde(default)]
    pub push_msat: u64,
    #[serde(default)]
    pub announce: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenedChannel {
    /// The channel's id, as `channels` and `close-channel` know it: the answer waits (up to
    /// 30 s) until the peer accepted and the funding transaction exists. `None` when the peer
    /// has not answered by then; the open goes on, and `user_channel_id` finds the channel.
    pub channel_id: Option<String>,
    /// Ours from the start, never changes; `close-channel` accepts it too.
    pub user_channel_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CloseChannel {
    /// The channel id (64 hex characters) or its `user_channel_id` (decimal).
    pub channel_id: String,
    pub counterparty_node_id: String,
    /// Broadcast our latest commitment instead of negotiating a cooperative close.
    #[serde(default)]
    pub force: bool,
    /// Close a sold channel whose lease is still running (PENDING or ACTIVE); refused
    /// without it, since the client paid for the inbound liquidity until the lease's end.
    #[serde(default)]
    pub override_lease: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentDirection {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentInfo {
    pub payment_hash: String,
    pub direction: PaymentDirection,
    pub amount_msat: Option<u64>,
    pub fee_paid_msat: Option<u64>,
    pub status: PaymentStatus,
    /// Unix time (seconds) the payment was first recorded.
    pub created_at: u64,
    pub updated_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateInvoice {
    /// Omit for an any-amount invoice.
    #[serde(default)]
    pub amount_msat: Option<u64>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub expiry_secs: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invoice {
    pub invoice: String,
    pub payment_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayInvoice {
    pub invoice: String,
    /// Required for any-amount invoices, refused otherwise.
    #[serde(default)]
    pub amount_msat: Option<u64>,
    /// How long to wait for the outcome before answering with `pending`.
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncStatus {
    pub block_height: u32,
    pub last_sync_at: Option<u64>,
}
