//! The Lightning node: LDK assembled with our store, wallet and chain source.
//!
//! [`Builder`] takes a validated [`Config`] and returns a running [`Node`]: keys from the seed
//! file, one SQLite store, the BDK wallet, LDK's ChannelManager/ChainMonitor/OutputSweeper
//! synced from Esplora, the p2p listener, the background processor (events, persistence,
//! timers) and the operator API on the admin listener. [`Node::stop`] shuts all of it down
//! and persists everything. Nothing here touches global state: no logger setup, no signal
//! handlers; the binary does those.
//!
//! Files: `builder.rs` wires the components, `types.rs` names them, `chain.rs` talks to
//! Esplora, `events.rs` handles LDK events, `peers.rs` keeps connections, `operator.rs`
//! serves the operator API, `logger.rs` bridges LDK logs to `tracing`, `signer.rs` sends closing funds to the wallet; `keys.rs`, `store.rs`
//! and `wallet.rs` hold the seed, the SQLite store and the on-chain wallet.

pub mod chain;
pub mod events;
pub mod keys;
pub mod logger;
pub mod operator;
pub mod peers;
pub mod signer;
pub mod store;
pub mod types;
pub mod wallet;

mod builder;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::PublicKey;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use lightning::util::config::UserConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::devchain::Devchain;
use crate::lsps1::service::OrderService;

pub use events::{ClaimDecision, ClaimEverything, ClaimablePayment, PendingChannel, ServiceHook};

use chain::{ChainSync, EsploraFeeEstimator};
use peers::PeerConnector;
use store::Store;
use types::{ChainMonitor, ChannelManager, LiquidityManager, PeerManager};
use wallet::Wallet;

/// Why the node could not start or stop. Each message is one sentence an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot load the node seed: {0}")]
    Seed(#[from] keys::KeysError),
    #[error("cannot open the node database: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot load the on-chain wallet: {0}")]
    Wallet(#[from] wallet::WalletError),
    #[error("cannot start the embedded devchain: {0}")]
    Devchain(#[from] crate::devchain::DevchainError),
    #[error("cannot use the chain source: {0}")]
    Chain(#[from] chain::ChainError),
    #[error("the stored Lightning state is unreadable ({what}); restore the data directory from a backup")]
    CorruptState { what: String },
    #[error("cannot listen for {what} on {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up the operator API key: {0}")]
    AdminKey(#[from] crate::api::keys::AdminError),
    #[error("cannot start the liquidity service: {0}")]
    Liquidity(String),
    #[error("cannot open the order book: {0}")]
    OrderBook(#[from] crate::lsps1::store::StoreError),
    #[error("the background processor stopped with an error: {0}")]
    Background(String),
}

impl NodeError {
    /// True when the configuration is wrong (for example a chain source serving another
    /// network): restarting with the same settings cannot help.
    pub fn is_configuration(&self) -> bool {
        matches!(self, NodeError::Chain(e) if e.is_configuration())
    }
}

/// Builds a [`Node`] from a [`Config`]. With `[lsps1] enabled` (the default) the node runs
/// the LSPS1 order service; otherwise it claims every payment it can and sells nothing.
pub struct Builder {
    config: Config,
}

impl Builder {
    pub fn new(config: Config) -> Builder {
        Builder { config }
    }

    /// Builds every component, binds the listeners and starts the background tasks.
    pub async fn start(self) -> Result<Node, NodeError> {
        builder::build(self.config).await
    }
}

/// A running Lightning node. Cheap to clone; every clone is the same node.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    pub(crate) config: Config,
    pub(crate) esplora_url: String,
    pub(crate) devchain: Option<Devchain>,
    pub(crate) store: Arc<Store>,
    pub(crate) wallet: Arc<Wallet>,
    pub(crate) fee_estimator: Arc<EsploraFeeEstimator>,
    pub(crate) chain_monitor: Arc<ChainMonitor>,
    pub(crate) channel_manager: Arc<ChannelManager>,
    pub(crate) peer_manager: Arc<PeerManager>,
    pub(crate) liquidity_manager: Arc<LiquidityManager>,
    pub(crate) order_service: Option<Arc<OrderService>>,
    pub(crate) chain_sync: Arc<ChainSync>,
    pub(crate) peers: Arc<PeerConnector>,
    pub(crate) user_config: UserConfig,
    pub(crate) p2p_addr: SocketAddr,
    pub(crate) admin_addr: SocketAddr,
    /// Where the public LSPS1 HTTP API listens (`[http] listen`), if configured.
    pub(crate) http_addr: Option<SocketAddr>,
    pub(crate) admin_api_key: String,
    /// Set to `true` once to stop every background task.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Listeners, loops and the broadcaster: stopped by `shutdown`.
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The background processor; it persists the ChannelManager when it exits.
    pub(crate) background: Mutex<Option<JoinHandle<Result<(), lightning::io::Error>>>>,
}

impl Node {
    pub fn node_id(&self) -> PublicKey {
        self.inner.channel_manager.get_our_node_id()
    }

    /// The address the p2p listener is bound to (port 0 in the config resolved).
    pub fn p2p_listen_addr(&self) -> SocketAddr {
        self.inner.p2p_addr
    }

    /// The address the operator API is served on.
    pub fn admin_listen_addr(&self) -> SocketAddr {
        self.inner.admin_addr
    }

    /// The bound address of the public LSPS1 HTTP API, when `[http] listen` is set.
    pub fn http_listen_addr(&self) -> Option<SocketAddr> {
        self.inner.http_addr
    }

    pub fn admin_api_key(&self) -> String {
        self.inner.admin_api_key.clone()
    }

    /// The Esplora base URL the node syncs from (the embedded devchain's with `dev`).
    pub fn esplora_url(&self) -> String {
        self.inner.esplora_url.clone()
    }

    /// The embedded devchain, when `chain.source = dev`.
    pub fn devchain(&self) -> Option<Devchain> {
        self.inner.devchain.clone()
    }

    /// The LiquidityManager plugged into the peer manager as custom message handler; the LSPS1
    /// order service takes its events from here.
    pub fn liquidity_manager(&self) -> Arc<LiquidityManager> {
        Arc::clone(&self.inner.liquidity_manager)
    }

    /// The ChannelManager, for services built on top of the node.
    pub fn channel_manager(&self) -> Arc<ChannelManager> {
        Arc::clone(&self.inner.channel_manager)
    }

    /// The LSPS1 order service, when `[lsps1] enabled`.
    pub fn order_service(&self) -> Option<Arc<OrderService>> {
        self.inner.order_service.clone()
    }

    /// Claims a payment a [`ServiceHook`] chose to hold.
    pub fn claim_payment(&self, preimage: PaymentPreimage) {
        self.inner.channel_manager.claim_funds(preimage);
    }

    /// Fails a payment a [`ServiceHook`] chose to hold, returning the HTLCs to the payer.
    pub fn fail_payment(&self, payment_hash: &PaymentHash) {
        self.inner.channel_manager.fail_htlc_backwards(payment_hash);
    }

    /// Stops gracefully: background tasks, peers, the background processor (which persists the
    /// ChannelManager), the wallet, the listeners and the embedded devchain.
    pub async fn stop(self) -> Result<(), NodeError> {
        builder::stop(&self.inner).await
    }
}

/// A fresh random id we attach to each channel, to find it again in events.
pub(crate) fn random_user_channel_id() -> u128 {
    rand::random::<u128>()
}
