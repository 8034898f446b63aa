//! The operator contract for leases: every sold channel is a lease of inbound liquidity, from
//! the block confirming its funding to its close.

use serde::{Deserialize, Serialize};

/// Which leases to list (both optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LeaseQuery {
    /// `PENDING`, `ACTIVE`, `ENDED`, `CLOSING` or `CLOSED`.
    pub state: Option<String>,
    /// Only open leases that end within this many blocks of the best block.
    pub ending_within_blocks: Option<u32>,
}

/// One lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseInfo {
    pub order_id: String,
    /// The channel's funding outpoint, `txid:vout`.
    pub channel: String,
    pub client_node_id: String,
    pub capacity_sat: u64,
    /// The inbound liquidity sold (the LSP's side of the channel at its opening).
    pub lsp_balance_sat: u64,
    /// Blocks bought.
    pub lease_blocks: u32,
    /// Height of the block confirming the funding; `None` while unconfirmed.
    pub start_height: Option<u32>,
    /// `start_height + lease_blocks`: from then the LSP may close the channel.
    pub end_height: Option<u32>,
    /// Blocks from the best block to the end (0 once reached).
    pub blocks_left: Option<u32>,
    /// `PENDING`, `ACTIVE`, `ENDED`, `CLOSING` or `CLOSED`.
    pub state: String,
    /// Fees paid for the lease.
    pub revenue_sat: u64,
    /// Who closed the channel: `client`, `lsp` or `chain`.
    pub closed_by: Option<String>,
    /// How: `cooperative`, `force`, or `funding_lost`.
    pub close_kind: Option<String>,
    pub closed_at: Option<u64>,
    /// The operator keeps the channel open past the end (`lease-keep`).
    #[serde(default)]
    pub keep_open: bool,
}

/// Close a lease's channel now, whatever its lease says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CloseLease {
    pub order_id: String,
    /// Broadcast our latest commitment instead of negotiating.
    #[serde(default)]
    pub force: bool,
}

/// Keep a lease's channel open past its end, whatever `[lsps1.leases] at_end` says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeepLease {
    pub order_id: String,
}

/// The leases asked for, and totals over every lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseList {
    pub leases: Vec<LeaseInfo>,
    /// Inbound liquidity in leases not closed (`lsp_balance_sat` summed).
    pub leased_out_sat: u64,
    /// Inbound liquidity of closed leases: capital back with the LSP.
    pub freed_sat: u64,
    /// Fees of every lease.
    pub revenue_sat: u64,
}
