//! devchain: a regtest chain that speaks the Esplora HTTP API, for tests and sandboxes.
//!
//! No bitcoind, electrs or esplora is needed: [`Devchain::start`] binds an HTTP listener and
//! serves a small, honestly kept regtest chain. It runs three ways, one implementation:
//! in-process from tests (`Devchain::start` on `127.0.0.1:0`), as `lsp-node devchain --listen
//! ADDR [--data-dir DIR]` ([`serve_until`]), and embedded in the node when
//! `chain.source = "dev"` (kept in `<data_dir>/devchain/`).
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
//!   (those no longer valid are dropped, as Core does on a reorg). [`Devchain::reorg`] replaces
//!   the top `depth` blocks (1 to [`MAX_REORG_DEPTH`]) with `depth + 1` new ones: the
//!   replaced blocks' transactions go into the first new block, except excluded ones and
//!   everything spending them (in those blocks or the mempool, transitively), which vanish.
//!   New blocks are timestamped after every earlier block, so their coinbases and hashes
//!   differ from the replaced ones even within one second. Stale blocks stay queryable with
//!   `in_best_chain: false`, which LDK's transaction sync relies on to detect reorgs.
//!
//! # What is NOT validated or modelled
//! - **Scripts and signatures are not validated.** Any input spending an existing unspent output
//!   is accepted whatever its witness or scriptSig.
//! - No package/CPFP feerate rules (a replacement is judged on its own fee rate), no minimum
//!   relay fee (zero-fee transactions are accepted), no standardness rules, no block weight
//!   limit: `mine` puts the whole mempool, in arrival order, into the next block.
//!
//! # Persistence
//! With [`DevchainOptions::data_dir`] set, the chain is kept in one SQLite file,
//! `DIR/devchain.sqlite` ([`FILE_NAME`]): every block (stale ones included) and the mempool in
//! arrival order, plus a format version and the genesis hash; the UTXO set and indexes are
//! rebuilt from the blocks. Every change (mined block, accepted transaction, RBF eviction,
//! invalidation, reorg; from the handle, the `/dev/*` routes or the block-interval miner) is
//! written, WAL with `synchronous=FULL`, before the call returns or the HTTP answer goes out,
//! so a SIGKILL right after an answer loses nothing; a failed write is a 500 (or an error),
//! never an acknowledgement. At start the file is re-validated (links, proof of work, merkle
//! roots; blocks replayed through the same connect path as mined ones; the mempool re-accepted
//! through the same checks as a broadcast, dropping what no longer validates). A damaged file,
//! another format version or another genesis is a [`DevchainError`] naming the file, never a
//! silent fresh chain; a directory without the file gets a fresh chain, stored at once.
//! Without a data directory the chain lives in memory and is gone with the process. Details:
//! the `store` module.
//!
//! # Faucet
//! Every coinbase pays a fixed P2WPKH key held by the devchain; [`Devchain::start`] mines 101
//! blocks so the first coinbases are mature. [`Devchain::fund`] builds a signed SegWit v0
//! (P2WPKH-input) transaction paying the address at 2 sat/vB, change back to the faucet, and
//! puts it in the mempool: mine a block to confirm it.
//!
//! # Fee estimates and congestion
//! Uncongested, every block takes the whole mempool and `/fee-estimates` reports a fixed
//! schedule: 2 sat/vB for targets 1-6, 1.5 for 7-25, 1.0 for 144, 504 and 1008.
//! `POST /dev/congestion` sets a minimum: blocks then take only the transactions whose package
//! (with their unconfirmed ancestors) pays at least that rate, so a child paying enough carries
//! its parent (CPFP), and no estimate is below it. The rest waits in the mempool. A restarted
//! devchain is uncongested.
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
//! - `POST /dev/reorg {"depth": n, "exclude_txids": ["txid"]}` (`exclude_txids` optional) ->
//!   `{"removed": ["hash"], "added": ["hash"], "dropped": ["txid"]}`, oldest first; `depth`
//!   in 1..=100 and at most the height, every excluded txid in a replaced block
//! - `POST /dev/congestion {"min_fee_rate_sat_per_vb": x}` -> the same; x in 0..=10000, 0 ends it
//! - `GET /dev/faucet` -> `{"address", "spendable_sat"}`
//!
//! Every request is logged at `debug`; unknown routes at `warn`; a failed write to the file is a
//! 500 with one sentence, logged at `error`.

mod chain;
mod esplora;
mod faucet;
mod http;
mod merkle;
mod policy;
mod store;

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::{Address, Amount, BlockHash, Network, Transaction, Txid};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use chain::{ReorgOutcome, COINBASE_MATURITY, MAX_REORG_DEPTH, PREMINE_BLOCKS};
pub use faucet::{DUST_LIMIT_SAT, FAUCET_FEE_RATE_SAT_PER_VB};
pub use policy::Rejection;
pub use store::FILE_NAME;

use chain::{Accepted, ChainState};
use store::Store;

/// How long [`Devchain::shutdown`] lets in-flight requests finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How to run a devchain.
#[derive(Debug, Clone)]
pub struct DevchainOptions {
    /// Address of the Esplora HTTP listener (`127.0.0.1:0` in tests).
    pub listen: SocketAddr,
    /// Mine one block every interval when set (it must not be zero).
    pub block_interval: Option<Duration>,
    /// Keep the chain in `DIR/`[`FILE_NAME`] and come back from it at start (a directory
    /// without that file gets a fresh chain). `None`: in memory only, gone with the process.
    pub data_dir: Option<PathBuf>,
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
    #[error("a reorg must replace at least one block")]
    ReorgEmpty,
    #[error("cannot reorg {requested} blocks: at most {MAX_REORG_DEPTH} can be replaced at once")]
    ReorgTooDeep { requested: u32 },
    #[error("cannot reorg {requested} blocks: only {height} blocks sit above genesis")]
    ReorgBeyondGenesis { requested: u32, height: u32 },
    #[error("cannot exclude {txid}: it is in none of the top {depth} blocks the reorg replaces (coinbases aside)")]
    ReorgExcludeUnknown { txid: Txid, depth: u32 },
    #[error("the devchain could not read {}: {reason}", .path.display())]
    StoreRead { path: PathBuf, reason: String },
    #[error("the devchain could not write {}: {reason}", .path.display())]
    StoreWrite { path: PathBuf, reason: String },
    #[error("the devchain file {} is damaged ({reason}); move it away to start a fresh chain", .path.display())]
    StoreDamaged { path: PathBuf, reason: String },
    #[error("the devchain file {} has format version {found} but this build reads only version {known}; move it away to start a fresh chain", .path.display())]
    StoreVersion {
        path: PathBuf,
        found: String,
        known: i64,
    },
    #[error("the devchain file {} holds another chain (genesis {found:?}, not the regtest genesis); move it away to start a fresh chain", .path.display())]
    StoreOtherChain { path: PathBuf, found: String },
}

/// Chain state shared by the handle and the HTTP handlers, with the file keeping it (if any).
pub(crate) struct Shared {
    state: Mutex<State>,
}

struct State {
    chain: ChainState,
    store: Option<Store>,
}

/// Read access to the locked chain. Changes go through [`Shared::change`], which persists them.
pub(crate) struct ChainView<'a>(MutexGuard<'a, State>);

impl Deref for ChainView<'_> {
    type Target = ChainState;

    fn deref(&self) -> &ChainState {
        &self.0.chain
    }
}

impl Shared {
    fn new(chain: ChainState, store: Option<Store>) -> Self {
        Shared {
            state: Mutex::new(State { chain, store }),
        }
    }

    /// Locks the state. A panic while locked cannot leave a half-applied change visible to
    /// clients in practice (all mutations are validated before they start), so a poisoned lock
    /// is recovered rather than propagated.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the chain for reading.
    pub(crate) fn lock(&self) -> ChainView<'_> {
        ChainView(self.state())
    }

    /// Runs `change` on the locked chain, then writes what it changed to the file (when there
    /// is one) before unlocking. `Err` only when that write failed: the change then stays in
    /// memory, unacknowledged, and the next successful change writes it too.
    pub(crate) fn change<T>(
        &self,
        change: impl FnOnce(&mut ChainState) -> T,
    ) -> Result<T, DevchainError> {
        let mut state = self.state();
        let State { chain, store } = &mut *state;
        let outcome = change(chain);
        if let Some(store) = store {
            store.save(chain)?;
        }
        Ok(outcome)
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
    /// Loads the chain kept in `opts.data_dir`, or creates a fresh one (genesis plus
    /// [`PREMINE_BLOCKS`] blocks to the faucet, stored there when a directory is given), binds
    /// `opts.listen` and serves the Esplora API on it.
    pub async fn start(opts: DevchainOptions) -> Result<Devchain, DevchainError> {
        if opts
            .block_interval
            .is_some_and(|interval| interval.is_zero())
        {
            return Err(DevchainError::ZeroBlockInterval);
        }
        let (chain, store) = match &opts.data_dir {
            Some(dir) => {
                let (chain, store) = store::open(dir, unix_now())?;
                (chain, Some(store))
            }
            None => (ChainState::new(unix_now()), None),
        };
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
        let file = store
            .as_ref()
            .map(|store| store.path().display().to_string());
        let shared = Arc::new(Shared::new(chain, store));
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
        tracing::info!(
            url = %format!("http://{local_addr}"),
            height,
            file = file.as_deref().unwrap_or("none (in memory)"),
            "devchain started"
        );
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

    /// Mines `blocks` blocks; the first one confirms the whole mempool (under congestion, what
    /// pays enough). Returns their hashes, oldest first.
    ///
    /// # Panics
    /// If the devchain keeps a data directory and cannot write it; [`Devchain::try_mine`]
    /// returns that error instead.
    pub fn mine(&self, blocks: u32) -> Vec<BlockHash> {
        self.try_mine(blocks)
            .unwrap_or_else(|err| panic!("devchain mining failed: {err}"))
    }

    /// [`Devchain::mine`], with a failure to write the data directory as an error.
    pub fn try_mine(&self, blocks: u32) -> Result<Vec<BlockHash>, DevchainError> {
        self.inner
            .shared
            .change(|chain| chain.mine(blocks, unix_now()))
    }

    /// Sets the congestion: blocks take only packages paying at least `sat_per_vb`, and fee
    /// estimates are no lower; 0 ends it (as `POST /dev/congestion`).
    pub fn set_congestion(&self, sat_per_vb: f64) {
        let _ = self
            .inner
            .shared
            .change(|chain| chain.set_block_min_fee_rate(sat_per_vb));
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
            .change(|chain| chain.fund(address.script_pubkey(), Amount::from_sat(sats)))?
    }

    /// Height and hash of the best block.
    pub fn tip(&self) -> (u32, BlockHash) {
        self.inner.shared.lock().tip()
    }

    /// Disconnects the last `blocks` blocks (a reorg); their transactions return to the mempool.
    pub fn invalidate(&self, blocks: u32) -> Result<(), DevchainError> {
        self.inner
            .shared
            .change(|chain| chain.invalidate(blocks))?
            .map(|_dropped| ())
    }

    /// Replaces the top `depth` blocks (1 to [`MAX_REORG_DEPTH`], at most the height) with
    /// `depth + 1` new ones, as `POST /dev/reorg` does. Their transactions go back into the
    /// first new block, except `exclude` (transactions of the replaced blocks) and everything
    /// spending them, which vanish. Bad arguments change nothing.
    pub fn reorg(&self, depth: u32, exclude: &[Txid]) -> Result<ReorgOutcome, DevchainError> {
        self.inner
            .shared
            .change(|chain| chain.reorg(depth, exclude, unix_now()))?
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
        match self.inner.shared.change(|chain| chain.accept(tx))? {
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
            _ = ticks.tick() => match shared.change(|chain| chain.mine(1, unix_now())) {
                Ok(hashes) => {
                    tracing::debug!(hash = %hashes[0], "devchain mined a block on its interval")
                }
                Err(err) => tracing::error!("{err}"),
            },
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// For `lsp-node devchain --listen ADDR`: starts a devchain, logs its URL, and serves until
/// `stop` resolves (the binary passes its signal handling: the library installs none).
pub async fn serve_until(
    opts: DevchainOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), DevchainError> {
    let devchain = Devchain::start(opts).await?;
    tracing::info!(
        "devchain serving the Esplora API at {} (POST /dev/mine, /dev/fund, /dev/reorg)",
        devchain.base_url()
    );
    stop.await;
    devchain.shutdown().await;
    Ok(())
}
