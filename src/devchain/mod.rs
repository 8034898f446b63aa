//! devchain: a regtest chain that speaks the Esplora HTTP API, for tests and sandboxes.
//!
//! No bitcoind, electrs or esplora is needed: [`Devchain::start`] binds an HTTP listener and
//! serves a small, honestly kept regtest chain. It runs three ways, one implementation:
//! in-process from tests (`Devchain::start` on `127.0.0.1:0`), as `lsp-node devchain --listen
//! ADDR` ([`run_until_shutdown`]), and embedded in the node when `chain.source = "dev"`.
//!
//! # What is kept honestly
//! - Blocks start from the real regtest genesis block. Every header links to its parent, commits
//!   to its transactions' merkle root, meets regtest proof of work (bits `0x207fffff`, nonce
//!   ground for real) and has a strictly increasing time (`max(now, previous + 1)`), so it is
//!   also above the median time past. Coinbases carry the BIP34 height, pay the regtest subsidy
//!   (50 BTC halving every 150 blocks) plus fees to the faucet, and, when the block holds
//!   witness data, the BIP141 witness commitment.
//! - Every broadcast transaction is checked as Core's mempool would, except scripts: it must
//!   spend existing outputs (in the chain or the mempool) that nothing else spends (chain or
//!   mempool), inputs must cover outputs (fee >= 0), coinbase outputs need 100 confirmations,
//!   absolute locktimes (`nLockTime`) and BIP68 relative locktimes (`nSequence`) must be
//!   satisfied for the next block, no duplicate inputs, values within 21M BTC. Rejections are
//!   HTTP 400 with Esplora's body, e.g. `sendrawtransaction RPC error:
//!   {"code":-25,"message":"bad-txns-inputs-missingorspent"}` (codes and reasons are Core's).
//! - Full replace-by-fee, as Core with `mempoolfullrbf`: a transaction spending an output a
//!   mempool transaction spends replaces it (and its descendants) if it pays a higher fee rate
//!   than each transaction it conflicts with, at least their fees and its descendants' plus
//!   its own size at 1 sat/vB, evicts at most 100 transactions, spends no output of what it
//!   evicts and adds no unconfirmed input (BIP125 rules 2 to 6; signalling is not required).
//!   Otherwise it is refused with Core's `insufficient fee`, `replacement-adds-unconfirmed`,
//!   `bad-txns-spends-conflicting-tx` or `too many potential replacements`. Packages
//!   (`POST /txs/package`) apply the same rules to each transaction in turn.
//! - Re-broadcasting a transaction already in the mempool succeeds and changes nothing, as
//!   Core's `sendrawtransaction` does; one already confirmed is refused with code -27
//!   ("Transaction outputs already in utxo set").
//! - [`Devchain::invalidate`] disconnects blocks; their transactions return to the mempool
//!   (those no longer valid are dropped, as Core does on a reorg). Stale blocks stay queryable
//!   with `in_best_chain: false`, which LDK's transaction sync relies on to detect reorgs.
//!
//! # What is NOT validated or modelled
//! - **Scripts and signatures are not validated.** Any input spending an existing unspent output
//!   is accepted whatever its witness or scriptSig.
//! - No package/CPFP feerate rules (a replacement is judged on its own fee rate), no minimum
//!   relay fee (zero-fee transactions are accepted), no standardness rules, no block weight
//!   limit: `mine` puts the whole mempool, in arrival order, into the next block.
//! - No persistence: the chain lives in memory and is gone when the process ends.
//!
//! # Faucet
//! Every coinbase pays a fixed P2WPKH key held by the devchain; [`Devchain::start`] mines 101
//! blocks so the first coinbases are mature. [`Devchain::fund`] builds a signed SegWit v0
//! (P2WPKH-input) transaction paying the address at 2 sat/vB, change back to the faucet, and
//! puts it in the mempool: mine a block to confirm it.
//!
//! # Fee estimates
//! There is no fee market (every block takes the whole mempool), so `/fee-estimates` reports a
//! fixed schedule: 2 sat/vB for targets 1-6, 1.5 for 7-25, 1.0 for 144, 504 and 1008.
//!
//! # HTTP endpoints
//! Esplora API at the root, as called by bdk_esplora 0.22 (full scan, sync),
//! lightning-transaction-sync 0.3 (esplora-async), esplora-client 0.12/0.13 and ldk-node 0.7.1:
//!
//! | route | answer |
//! |---|---|
//! | `GET /blocks/tip/height`, `/blocks/tip/hash` | text |
//! | `GET /blocks`, `/blocks/:start_height` | JSON `[BlockInfo]`, 10 best-chain blocks downward |
//! | `GET /block-height/:height` | text block hash (404 above the tip) |
//! | `GET /block/:hash` | JSON `BlockInfo` (`id`, `height`, `version`, `timestamp`, `tx_count`, `size`, `weight`, `merkle_root`, `previousblockhash`, `mediantime`, `nonce`, `bits`, `difficulty`) |
//! | `GET /block/:hash/header` | hex of the 80-byte header |
//! | `GET /block/:hash/status` | JSON `{in_best_chain, height?, next_best?}` |
//! | `GET /block/:hash/raw` | binary block |
//! | `GET /block/:hash/txids`, `/block/:hash/txid/:index` | JSON `[txid]`, text txid |
//! | `GET /block/:hash/txs[/:start]` | JSON `[Tx]`, 25 per page (`start` multiple of 25) |
//! | `GET /tx/:txid` | JSON `Tx` (`txid`, `version`, `locktime`, `vin[]` with `prevout`, `scriptsig`, `witness`, `is_coinbase`, `sequence`; `vout[]`; `size`, `weight`, `fee`, `status`) |
//! | `GET /tx/:txid/raw`, `/tx/:txid/hex` | binary, hex |
//! | `GET /tx/:txid/status` | JSON `{confirmed, block_height?, block_hash?, block_time?}` (unknown: unconfirmed, as electrs) |
//! | `GET /tx/:txid/merkle-proof` | JSON `{block_height, merkle, pos}` (404 if unconfirmed) |
//! | `GET /tx/:txid/merkleblock-proof` | hex of a BIP37 `MerkleBlock` (404 if unconfirmed) |
//! | `GET /tx/:txid/outspend/:vout`, `/tx/:txid/outspends` | JSON `{spent, txid?, vin?, status?}` |
//! | `POST /tx` | body: tx hex; answer: text txid, or 400 with the Core rejection |
//! | `POST /txs/package` | body: JSON `[hex]`; answer: Core `submitpackage`-shaped JSON |
//! | `GET /scripthash/:h`, `/address/:a` | JSON stats `{chain_stats, mempool_stats}` |
//! | `GET /scripthash/:h/txs`, `/address/:a/txs` | up to 50 mempool then 25 newest confirmed |
//! | `GET /scripthash/:h/txs/chain[/:last_seen]` (and `/address/..`) | 25 confirmed after `last_seen` |
//! | `GET /scripthash/:h/txs/mempool` (and `/address/..`) | up to 50 mempool, newest first |
//! | `GET /scripthash/:h/utxo`, `/address/:a/utxo` | JSON `[{txid, vout, status, value}]` |
//! | `GET /mempool`, `/mempool/txids`, `/mempool/recent` | JSON |
//! | `GET /fee-estimates` | JSON `{"1": 2.0, ..., "1008": 1.0}` (sat/vB) |
//!
//! A scripthash is the SHA256 of the output script in natural byte order (what
//! `esplora-client` sends, and what electrs' REST API expects; Electrum's protocol reverses it,
//! Esplora's does not).
//!
//! Control routes, for scripts and people (bad input: 400 with one sentence):
//! - `POST /dev/mine {"blocks": n}` -> `{"hashes": ["..."]}` (oldest first; n in 1..=10000)
//! - `POST /dev/fund {"address": "bcrt1...", "sats": n}` -> `{"txid": "..."}` (in the mempool)
//! - `POST /dev/invalidate {"blocks": n}` -> `{"height", "hash", "dropped": ["txid"]}`
//! - `GET /dev/faucet` -> `{"address", "spendable_sat"}`
//!
//! Every request is logged at `debug`; unknown routes at `warn`.

mod chain;
mod esplora;
mod faucet;
mod http;
mod merkle;
mod policy;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::{Address, Amount, BlockHash, Network, Transaction, Txid};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use chain::{COINBASE_MATURITY, PREMINE_BLOCKS};
pub use faucet::{DUST_LIMIT_SAT, FAUCET_FEE_RATE_SAT_PER_VB};
pub use policy::Rejection;

use chain::{Accepted, ChainState};

/// How long [`Devchain::shutdown`] lets in-flight requests finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How to run a devchain.
#[derive(Debug, Clone)]
pub struct DevchainOptions {
    /// Address of the Esplora HTTP listener (`127.0.0.1:0` in tests).
    pub listen: SocketAddr,
    /// Mine one block every interval when set (it must not be zero).
    pub block_interval: Option<Duration>,
}

/// Everything that can go wrong with a devchain; each displays as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum DevchainError {
    #[error("the devchain could not listen on {addr}: {reason}")]
    Bind {
        addr: SocketAddr,
        reason: std::io::Error,
    },
    #[error("the devchain block interval must be longer than zero")]
    ZeroBlockInterval,
    #[error("{address} is not a regtest address")]
    WrongNetwork { address: String },
    #[error("cannot fund {sats} sats: amounts below the {DUST_LIMIT_SAT}-sat dust limit are not relayed")]
    BelowDust { sats: u64 },
    #[error(
        "the faucet can spend only {available} sats right now but {requested} were requested; mine more blocks"
    )]
    FaucetTooPoor { requested: u64, available: u64 },
    #[error("the transaction was rejected: {0}")]
    Rejected(Rejection),
    #[error("cannot invalidate {requested} blocks: only {height} blocks sit above genesis")]
    InvalidateTooDeep { requested: u32, height: u32 },
    #[error("the devchain could not wait for a shutdown signal: {0}")]
    Signal(std::io::Error),
}

/// Chain state shared by the handle and the HTTP handlers.
pub(crate) struct Shared {
    chain: Mutex<ChainState>,
}

impl Shared {
    /// Locks the chain. A panic while locked cannot leave a half-applied change visible to
    /// clients in practice (all mutations are validated before they start), so a poisoned lock
    /// is recovered rather than propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ChainState> {
        self.chain
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Seconds since the UNIX epoch, for block timestamps.
pub(crate) fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// A running devchain. Cloning shares the same chain; dropping the last clone (or calling
/// [`Devchain::shutdown`]) stops the server.
#[derive(Clone)]
pub struct Devchain {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Devchain {
    /// Creates a fresh chain (genesis plus [`PREMINE_BLOCKS`] blocks to the faucet), binds
    /// `opts.listen` and serves the Esplora API on it.
    pub async fn start(opts: DevchainOptions) -> Result<Devchain, DevchainError> {
        if opts
            .block_interval
            .is_some_and(|interval| interval.is_zero())
        {
            return Err(DevchainError::ZeroBlockInterval);
        }
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|reason| DevchainError::Bind {
                addr: opts.listen,
                reason,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|reason| DevchainError::Bind {
                addr: opts.listen,
                reason,
            })?;
        let shared = Arc::new(Shared {
            chain: Mutex::new(ChainState::new(unix_now())),
        });
        let (shutdown, _) = watch::channel(false);

        let mut tasks = Vec::new();
        let app = http::router(Arc::clone(&shared));
        let mut stop = shutdown.subscribe();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                // Also returns when the sender is dropped with the last handle.
                let _ = stop.wait_for(|stop| *stop).await;
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!("the devchain HTTP server stopped: {err}");
            }
        }));
        if let Some(interval) = opts.block_interval {
            tasks.push(tokio::spawn(mine_periodically(
                Arc::clone(&shared),
                interval,
                shutdown.subscribe(),
            )));
        }
        let (height, _) = shared.lock().tip();
        tracing::info!(url = %format!("http://{local_addr}"), height, "devchain started");
        Ok(Devchain {
            inner: Arc::new(Inner {
                shared,
                local_addr,
                shutdown,
                tasks: Mutex::new(tasks),
            }),
        })
    }

    /// The Esplora base URL, `http://IP:PORT` without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.local_addr)
    }

    /// The address the HTTP listener is bound to (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Mines `blocks` blocks; the first one confirms the whole mempool. Returns their hashes,
    /// oldest first.
    pub fn mine(&self, blocks: u32) -> Vec<BlockHash> {
        self.inner.shared.lock().mine(blocks, unix_now())
    }

    /// Pays `sats` to `address` from the faucet. The transaction waits in the mempool.
    pub fn fund(&self, address: &Address, sats: u64) -> Result<Txid, DevchainError> {
        if !address
            .as_unchecked()
            .is_valid_for_network(Network::Regtest)
        {
            return Err(DevchainError::WrongNetwork {
                address: address.to_string(),
            });
        }
        self.inner
            .shared
            .lock()
            .fund(address.script_pubkey(), Amount::from_sat(sats))
    }

    /// Height and hash of the best block.
    pub fn tip(&self) -> (u32, BlockHash) {
        self.inner.shared.lock().tip()
    }

    /// Disconnects the last `blocks` blocks (a reorg); their transactions return to the mempool.
    pub fn invalidate(&self, blocks: u32) -> Result<(), DevchainError> {
        self.inner
            .shared
            .lock()
            .invalidate(blocks)
            .map(|_dropped| ())
    }

    /// Txids waiting in the mempool, in arrival order.
    pub fn mempool_txids(&self) -> Vec<Txid> {
        self.inner.shared.lock().mempool_txids()
    }

    /// A transaction in the best chain or the mempool.
    pub fn get_transaction(&self, txid: &Txid) -> Option<Transaction> {
        self.inner
            .shared
            .lock()
            .transaction(txid)
            .map(|(tx, _)| tx.clone())
    }

    /// `None` if unknown, `Some(0)` in the mempool, else the number of confirmations.
    pub fn confirmations(&self, txid: &Txid) -> Option<u32> {
        self.inner.shared.lock().confirmations(txid)
    }

    /// Broadcasts `tx` as `POST /tx` would (same validation). Re-sending a mempool transaction
    /// succeeds without change.
    pub fn send_raw(&self, tx: Transaction) -> Result<Txid, DevchainError> {
        let txid = tx.compute_txid();
        match self.inner.shared.lock().accept(tx) {
            Ok(Accepted::New { .. } | Accepted::AlreadyInMempool) => Ok(txid),
            Err(rejection) => Err(DevchainError::Rejected(rejection)),
        }
    }

    /// Fee of a known transaction in sats (zero for coinbases).
    pub fn fee_of(&self, txid: &Txid) -> Option<u64> {
        let chain = self.inner.shared.lock();
        let (tx, _) = chain.transaction(txid)?;
        chain.fee_of(tx).map(|fee| fee.to_sat())
    }

    /// Sats the faucet can spend right now.
    pub fn faucet_balance(&self) -> u64 {
        self.inner.shared.lock().faucet_balance().to_sat()
    }

    /// Stops serving: in-flight requests get a short grace period, then the listener closes.
    /// Other clones of this handle keep the chain readable but no longer served.
    pub async fn shutdown(self) {
        let _ = self.inner.shutdown.send(true);
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for mut task in tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                tracing::warn!("devchain task did not stop within {SHUTDOWN_GRACE:?}; aborting it");
                task.abort();
            }
        }
        tracing::info!(addr = %self.inner.local_addr, "devchain stopped");
    }
}

async fn mine_periodically(
    shared: Arc<Shared>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let hashes = shared.lock().mine(1, unix_now());
                tracing::debug!(hash = %hashes[0], "devchain mined a block on its interval");
            }
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// For `lsp-node devchain --listen ADDR`: starts a devchain, logs its URL, and serves until
/// SIGINT or SIGTERM.
pub async fn run_until_shutdown(opts: DevchainOptions) -> Result<(), DevchainError> {
    let devchain = Devchain::start(opts).await?;
    tracing::info!(
        "devchain serving the Esplora API at {} (POST /dev/mine, POST /dev/fund)",
        devchain.base_url()
    );
    let signal = wait_for_shutdown_signal().await;
    devchain.shutdown().await;
    signal
}

async fn wait_for_shutdown_signal() -> Result<(), DevchainError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).map_err(DevchainError::Signal)?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(DevchainError::Signal),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(DevchainError::Signal)
    }
}
