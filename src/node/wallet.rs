//! The on-chain wallet (BDK): sync, addresses, sends, funding transactions, fee bumping inputs.
//!
//! A BIP84 BDK wallet derived from the node seed ([`crate::node::keys`]), persisted in the node
//! database file through its own SQLite connection (BDK keeps its own `bdk_*` tables), and synced
//! against the configured Esplora server with `bdk_esplora`:
//!
//! - the first sync of a wallet that has never seen a block is a full scan (stop gap
//!   [`FULL_SCAN_STOP_GAP`]) so a restored seed finds its funds; later syncs check the revealed
//!   scripts still watched (`wallet/watch.rs`), the unconfirmed transactions and the unspent
//!   outputs only;
//! - every change (sync result, revealed address, signed transaction) is persisted before the
//!   call returns;
//! - a transaction we sign (send or channel funding) is inserted into the wallet as unconfirmed
//!   right away, so its inputs are not spent twice while it waits for confirmation.
//!
//! Coins are "spendable" when confirmed or when they are our own unconfirmed change
//! (BDK's *trusted* balance); unconfirmed coins received from others are never spent.
//!
//! For LDK, [`Wallet`] implements `WalletSourceSync` (confirmed UTXOs, change scripts and PSBT
//! signing for anchor-channel fee bumping via `BumpTransactionEventHandlerSync`) and
//! `ChangeDestinationSourceSync` (where the `OutputSweeper` sends swept funds), in
//! `wallet/ldk.rs`. Spending (payments, funding transactions) is `wallet/spend.rs`, fee bumps
//! (RBF of payments, CPFP of fundings) `wallet/bump.rs`;
//! this file holds the wallet itself: loading, sync, addresses, balances, what was received.
//!
//! Locking: one `std::sync::Mutex` guards the BDK wallet and its connection together and is
//! never held across an `.await`; a sync takes its request under the lock, releases it for the
//! Esplora round trips, then re-locks to apply and persist. Syncs are serialized among
//! themselves by a separate async mutex.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bdk_esplora::esplora_client::{self, AsyncClient};
use bdk_esplora::EsploraAsyncExt;
use bdk_wallet::chain::{ChainPosition, ConfirmationBlockTime, TxUpdate};
use bdk_wallet::coin_selection::InsufficientFunds as BdkInsufficientFunds;
use bdk_wallet::error::CreateTxError;
use bdk_wallet::{
    KeychainKind, LoadError, LoadMismatch, LoadWithPersistError, PersistedWallet, SignOptions,
    Update,
};
use bitcoin::hashes::Hash;
use bitcoin::psbt::Psbt;
use bitcoin::{
    Address, Amount, BlockHash, FeeRate, Network, OutPoint, ScriptBuf, Transaction, Txid,
    WPubkeyHash,
};
use lightning::sign::ChangeDestinationSourceSync;
use lightning::util::wallet_utils::{Utxo, WalletSourceSync};
use rusqlite::Connection;

use crate::node::chain::broadcast::KeepBroadcasting;
use crate::node::keys::NodeSeed;
use crate::node::store::open_connection;

/// Unused addresses a full scan looks past before concluding a keychain is exhausted.
pub const FULL_SCAN_STOP_GAP: usize = 20;
/// Concurrent HTTP requests a sync makes to the Esplora server.
const SYNC_PARALLEL_REQUESTS: usize = 4;
/// Upper bound for one sync (all its Esplora requests together).
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of a single Esplora HTTP request, in seconds.
const ESPLORA_REQUEST_TIMEOUT_SECS: u64 = 30;

/// Errors of the on-chain wallet; each reads as one sentence an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("cannot open the wallet database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the wallet in {path} was created for {stored}, but the node runs on {expected}; use the data directory of that network")]
    NetworkMismatch {
        path: PathBuf,
        stored: Network,
        expected: Network,
    },
    #[error("the wallet in {path} belongs to a different seed than the configured seed file; restore the matching seed or use another data directory")]
    SeedMismatch { path: PathBuf },
    #[error("cannot load the wallet from {path}: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error("cannot save the wallet to {path}: {detail}")]
    Persist { path: PathBuf, detail: String },
    #[error("invalid Esplora URL {url}: {detail}")]
    EsploraUrl { url: String, detail: String },
    #[error("wallet sync with {url} failed: {detail}")]
    Sync { url: String, detail: String },
    #[error("wallet sync with {url} did not finish within {secs} seconds")]
    SyncTimeout { url: String, secs: u64 },
    #[error("the address {address} is not a {expected} address")]
    WrongNetwork { address: String, expected: Network },
    #[error("{amount_sat} sat is below the dust limit of {dust_limit_sat} sat for this output")]
    BelowDust {
        amount_sat: u64,
        dust_limit_sat: u64,
    },
    #[error("insufficient funds: {needed} sat needed, {available} sat spendable")]
    InsufficientFunds {
        /// Sats the transaction needs (amount, plus fees where known).
        needed: u64,
        /// Sats the wallet can spend (confirmed plus its own unconfirmed change).
        available: u64,
    },
    #[error("a fee rate of {sat_per_kwu} sat/kwu is below the minimum relay fee rate of 1 sat/vB")]
    FeeRateTooLow { sat_per_kwu: u64 },
    #[error("cannot build the transaction: {0}")]
    CreateTx(String),
    #[error("transaction {txid} is not replaced: our unconfirmed transaction {child} spends its output and would be lost with it")]
    HasDescendants { txid: Txid, child: Txid },
    #[error("cannot sign the transaction: {0}")]
    Sign(String),
}

/// What to send with [`Wallet::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAmount {
    /// Exactly this many sats to the recipient; the fee is paid on top.
    Exact(u64),
    /// Everything spendable, minus the fee.
    All,
}

/// An output paying one of the addresses asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedOutput {
    pub outpoint: OutPoint,
    pub script_pubkey: ScriptBuf,
    pub value_sat: u64,
    /// Height of the block that confirmed it; `None` while in the mempool.
    pub confirmation_height: Option<u32>,
    /// Unix seconds it reached us: first seen in the mempool, or else the time of the block
    /// that confirmed it.
    pub arrived_at: Option<u64>,
}

/// On-chain balances in sats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalletBalances {
    /// In blocks (and mature).
    pub confirmed_sat: u64,
    /// In the mempool: our own change and incoming payments.
    pub unconfirmed_sat: u64,
    /// What a send can use now: confirmed plus our own unconfirmed change.
    pub spendable_sat: u64,
}

/// The outcome of the last completed sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletSyncInfo {
    /// Unix time (seconds) the sync started: everything it learnt, the chain source said after
    /// this.
    pub started_at: u64,
    /// Unix time (seconds) the sync finished.
    pub synced_at: u64,
    /// Best block the wallet knows after that sync.
    pub height: u32,
    pub block_hash: BlockHash,
}

/// The node's on-chain wallet. Share it as `Arc<Wallet>`.
pub struct Wallet {
    state: Mutex<WalletState>,
    /// The balances as of the last look at the wallet state, `None` once anything has taken
    /// the state since: written and cleared only under the state's lock.
    balances: Mutex<Option<WalletBalances>>,
    /// Counts the times the state was taken (and so may have changed).
    changes: AtomicU64,
    sync_serializer: tokio::sync::Mutex<()>,
    last_sync: Mutex<Option<WalletSyncInfo>>,
    esplora: AsyncClient,
    esplora_url: String,
    broadcaster: Arc<dyn KeepBroadcasting>,
    network: Network,
    db_path: PathBuf,
}

struct WalletState {
    wallet: PersistedWallet<Connection>,
    conn: Connection,
    /// Revealed scripts syncs no longer ask about (`wallet/watch.rs`).
    unwatched: HashSet<ScriptBuf>,
}

enum ChainRequest {
    FullScan(bdk_wallet::chain::spk_client::FullScanRequest<KeychainKind>),
    Incremental(bdk_wallet::chain::spk_client::SyncRequest<(KeychainKind, u32)>),
}

impl Wallet {
    /// Loads the wallet stored in `db_path`, or creates it there, for `seed` on `network`.
    /// Nothing is fetched from Esplora here; call [`Wallet::sync`].
    pub fn load_or_create(
        seed: &NodeSeed,
        network: Network,
        db_path: &Path,
        esplora_url: &str,
        broadcaster: Arc<dyn KeepBroadcasting>,
    ) -> Result<Wallet, WalletError> {
        let path = db_path.to_path_buf();
        let esplora = esplora_client::Builder::new(esplora_url)
            .timeout(ESPLORA_REQUEST_TIMEOUT_SECS)
            .build_async()
            .map_err(|e| WalletError::EsploraUrl {
                url: esplora_url.to_string(),
                detail: e.to_string(),
            })?;

        let mut conn = open_connection(db_path).map_err(|source| WalletError::Open {
            path: path.clone(),
            source,
        })?;
        let (external, internal) = seed.wallet_descriptors(network);
        let loaded = bdk_wallet::Wallet::load()
            .descriptor(KeychainKind::External, Some(external.clone()))
            .descriptor(KeychainKind::Internal, Some(internal.clone()))
            .extract_keys()
            .check_network(network)
            .load_wallet(&mut conn)
            .map_err(|e| load_error(&path, e))?;
        let wallet = match loaded {
            Some(wallet) => wallet,
            None => {
                let wallet = bdk_wallet::Wallet::create(external, internal)
                    .network(network)
                    .create_wallet(&mut conn)
                    .map_err(|e| WalletError::Load {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                tracing::info!(path = %path.display(), %network, "created a new on-chain wallet");
                wallet
            }
        };

        let unwatched = watch::load_unwatched(&conn).map_err(|e| WalletError::Load {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        Ok(Wallet {
            state: Mutex::new(WalletState {
                wallet,
                conn,
                unwatched,
            }),
            balances: Mutex::new(None),
            changes: AtomicU64::new(0),
            sync_serializer: tokio::sync::Mutex::new(()),
            last_sync: Mutex::new(None),
            esplora,
            esplora_url: esplora_url.to_string(),
            broadcaster,
            network,
            db_path: path,
        })
    }

    /// The network the wallet's addresses are for.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Brings the wallet up to date with the chain: a full scan the first time, then an
    /// incremental sync. The result is persisted before this returns.
    pub async fn sync(&self) -> Result<(), WalletError> {
        let _one_sync_at_a_time = self.sync_serializer.lock().await;
        let started_at = unix_now();
        let request = self.chain_request();
        let full_scan = matches!(request, ChainRequest::FullScan(_));
        // A kept transaction the chain source does not have yet (a funding transaction waiting
        // for `funding_signed`, a refund whose broadcast failed) is not evicted: the broadcaster
        // is still sending it, and its inputs must not be spent again meanwhile.
        let kept = self.broadcaster.open_txids();
        let fetch = async {
            match request {
                ChainRequest::FullScan(r) => self
                    .esplora
                    .full_scan(r, FULL_SCAN_STOP_GAP, SYNC_PARALLEL_REQUESTS)
                    .await
                    .map(|mut response| {
                        keep_kept(&mut response.tx_update, &kept);
                        Update::from(response)
                    }),
                ChainRequest::Incremental(r) => self
                    .esplora
                    .sync(r, SYNC_PARALLEL_REQUESTS)
                    .await
                    .map(|mut response| {
                        keep_kept(&mut response.tx_update, &kept);
                        Update::from(response)
                    }),
            }
        };
        let update = tokio::time::timeout(SYNC_TIMEOUT, fetch)
            .await
            .map_err(|_| WalletError::SyncTimeout {
                url: self.esplora_url.clone(),
                secs: SYNC_TIMEOUT.as_secs(),
            })?
            .map_err(|e| WalletError::Sync {
                url: self.esplora_url.clone(),
                detail: e.to_string(),
            })?;

        let info = {
            let mut state = self.lock();
            state
                .wallet
                .apply_update(update)
                .map_err(|e| WalletError::Sync {
                    url: self.esplora_url.clone(),
                    detail: format!("the chain source returned blocks that do not connect: {e}"),
                })?;
            state.persist(&self.db_path)?;
            let tip = state.wallet.latest_checkpoint();
            WalletSyncInfo {
                started_at,
                synced_at: unix_now(),
                height: tip.height(),
                block_hash: tip.hash(),
            }
        };
        tracing::debug!(full_scan, height = info.height, "on-chain wallet synced");
        *self.last_sync.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
        Ok(())
    }

    /// The last completed sync in this process, if any.
    pub fn last_sync(&self) -> Option<WalletSyncInfo> {
        *self.last_sync.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a sync that started after the Unix second `at` has completed: the wallet's view
    /// of the chain is at least as fresh as what the chain source said at `at`.
    pub fn has_synced_since(&self, at: u64) -> bool {
        self.last_sync().is_some_and(|sync| sync.started_at > at)
    }

    /// The blocks the wallet has seen (its checkpoints, persisted with it) at most `depth`
    /// below its best block, highest first: the best block, the recent blocks of each sync and
    /// the blocks confirming its transactions.
    pub fn recent_blocks(&self, depth: u32) -> Vec<(u32, BlockHash)> {
        let tip = self.lock().wallet.latest_checkpoint();
        let lowest = tip.height().saturating_sub(depth);
        tip.iter()
            .take_while(|checkpoint| checkpoint.height() >= lowest)
            .map(|checkpoint| (checkpoint.height(), checkpoint.hash()))
            .collect()
    }

    /// Height and hash of the best block the wallet has synced to (genesis before any sync).
    pub fn best_block(&self) -> (u32, BlockHash) {
        let tip = self.lock().wallet.latest_checkpoint();
        (tip.height(), tip.hash())
    }

    /// Reveals and returns a fresh receive address (persisted before it is returned).
    pub fn new_address(&self) -> Result<Address, WalletError> {
        let mut state = self.lock();
        let info = state.wallet.reveal_next_address(KeychainKind::External);
        state.persist(&self.db_path)?;
        Ok(info.address)
    }

    /// Whether `script` pays this wallet (any address it derived or could derive so far).
    pub fn is_mine(&self, script: &bitcoin::Script) -> bool {
        self.lock().wallet.is_mine(script.to_owned())
    }

    /// Current balances, as of the last sync plus transactions signed since.
    /// Computed once per change of the wallet state, not on every call.
    pub fn balances(&self) -> WalletBalances {
        if let Some(known) = *lock_ignoring_poison(&self.balances) {
            return known;
        }
        let state = lock_ignoring_poison(&self.state);
        let balance = state.wallet.balance();
        let balances = WalletBalances {
            confirmed_sat: balance.confirmed.to_sat(),
            unconfirmed_sat: (balance.trusted_pending + balance.untrusted_pending).to_sat(),
            spendable_sat: balance.trusted_spendable().to_sat(),
        };
        *lock_ignoring_poison(&self.balances) = Some(balances);
        drop(state);
        balances
    }

    /// A number that changes whenever the wallet state may have changed (a sync, a signed
    /// transaction, a revealed address): answers derived from the wallet and kept beside this
    /// number are current while it is unchanged.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Every output of a wallet transaction that pays one of `scripts` (which must be wallet
    /// addresses, revealed with [`Wallet::new_address`], for the wallet to see them).
    pub fn received_outputs(&self, scripts: &HashSet<ScriptBuf>) -> Vec<ReceivedOutput> {
        let state = self.lock();
        let mut received = Vec::new();
        for wallet_tx in state.wallet.transactions() {
            let tx = &wallet_tx.tx_node.tx;
            let (confirmation_height, block_time) = match &wallet_tx.chain_position {
                ChainPosition::Confirmed { anchor, .. } => {
                    (Some(anchor.block_id.height), Some(anchor.confirmation_time))
                }
                ChainPosition::Unconfirmed { .. } => (None, None),
            };
            let arrived_at = wallet_tx.tx_node.first_seen.or(block_time);
            let txid = tx.compute_txid();
            for (vout, output) in tx.output.iter().enumerate() {
                if scripts.contains(&output.script_pubkey) {
                    received.push(ReceivedOutput {
                        outpoint: OutPoint::new(txid, vout as u32),
                        script_pubkey: output.script_pubkey.clone(),
                        value_sat: output.value.to_sat(),
                        confirmation_height,
                        arrived_at,
                    });
                }
            }
        }
        received
    }

    /// The height of the block confirming wallet transaction `txid` in the best chain the
    /// wallet knows; `None` while unconfirmed (or unknown).
    pub fn confirmation_height(&self, txid: &Txid) -> Option<u32> {
        match self.lock().wallet.get_tx(*txid)?.chain_position {
            ChainPosition::Confirmed { anchor, .. } => Some(anchor.block_id.height),
            ChainPosition::Unconfirmed { .. } => None,
        }
    }

    /// Where wallet transaction `txid` stands: `None` when it is not (or no longer) one that
    /// may confirm (evicted, conflicted, unknown); `Some(None)` unconfirmed (in the chain
    /// source's mempool at the last sync, or ours and kept); `Some(Some(height))` confirmed.
    pub fn chain_position(&self, txid: &Txid) -> Option<Option<u32>> {
        match self.lock().wallet.get_tx(*txid)?.chain_position {
            ChainPosition::Confirmed { anchor, .. } => Some(Some(anchor.block_id.height)),
            ChainPosition::Unconfirmed { .. } => Some(None),
        }
    }

    /// Whether `txid` is a wallet transaction confirmed in the best chain it knows.
    pub fn is_confirmed(&self, txid: &Txid) -> bool {
        self.lock()
            .wallet
            .get_tx(*txid)
            .is_some_and(|tx| tx.chain_position.is_confirmed())
    }

    fn chain_request(&self) -> ChainRequest {
        let state = self.lock();
        let wallet = &state.wallet;
        if wallet.latest_checkpoint().height() == 0 {
            return ChainRequest::FullScan(wallet.start_full_scan().build());
        }
        ChainRequest::Incremental(watch::sync_request(&state))
    }

    /// The wallet state, for any use that may change it: forgets the kept balances.
    fn lock(&self) -> MutexGuard<'_, WalletState> {
        // BDK applies changes to its in-memory state before we persist; if a panic interrupted
        // that, the worst case is a staged change persisted later, which BDK merges safely.
        let state = lock_ignoring_poison(&self.state);
        *lock_ignoring_poison(&self.balances) = None;
        self.changes.fetch_add(1, Ordering::AcqRel);
        state
    }
}

fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl WalletState {
    fn persist(&mut self, path: &Path) -> Result<(), WalletError> {
        self.wallet
            .persist(&mut self.conn)
            .map(|_| ())
            .map_err(|e| WalletError::Persist {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
    }
}

fn load_error(path: &Path, e: LoadWithPersistError<rusqlite::Error>) -> WalletError {
    match e {
        LoadWithPersistError::InvalidChangeSet(LoadError::Mismatch(LoadMismatch::Network {
            loaded,
            expected,
        })) => WalletError::NetworkMismatch {
            path: path.to_path_buf(),
            stored: loaded,
            expected,
        },
        LoadWithPersistError::InvalidChangeSet(LoadError::Mismatch(LoadMismatch::Descriptor {
            ..
        })) => WalletError::SeedMismatch {
            path: path.to_path_buf(),
        },
        other => WalletError::Load {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

/// Drops the evictions of `kept` transactions from a sync result.
fn keep_kept(update: &mut TxUpdate<ConfirmationBlockTime>, kept: &HashSet<Txid>) {
    update.evicted_ats.retain(|(txid, _)| !kept.contains(txid));
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

mod bump;
mod ldk;
mod spend;
mod watch;

pub use bump::ChildBump;
#[cfg(test)]
mod tests;
