//! The Lightning node: LDK assembled with our store, wallet and chain source. It knows nothing
//! of what is sold over it; services plug in through the traits it owns.
//!
//! [`Builder::build`] takes a validated [`Config`] and constructs a [`BuiltNode`]: keys from
//! the seed file, one SQLite store, the BDK wallet, LDK's ChannelManager/ChainMonitor/
//! OutputSweeper on an Esplora chain source, the bound p2p listener. [`BuiltNode::start`] plugs
//! in the [`NodeServices`] (a [`ServiceHook`] for events, an [`lsps::LspsGate`] for LSPS
//! messages) and spawns the background processor, the chain sync loop and the peer loops.
//! [`Node::stop`] shuts all of it down and persists everything. Nothing here touches global
//! state: no logger setup, no signal handlers; the binary does those.
//!
//! Files: `builder.rs` constructs the components, `start.rs` runs and stops them, `types.rs`
//! names them, `chain/` talks to Esplora, `events.rs` handles LDK events, `funding.rs` funds the channels we open (alone or in batches), `invoice.rs` makes the node's BOLT11 invoices, `lsps.rs` is the
//! LSPS message handler and its gate, `peers.rs` keeps connections, `operator.rs` answers the
//! operator's node calls, `metrics.rs` reports its figures, `logger.rs` bridges LDK logs to `tracing`, `signer.rs` sends closing
//! funds to the wallet; `keys.rs`, `store.rs` and `wallet.rs` hold the seed, the SQLite store
//! and the on-chain wallet.

pub mod chain;
pub mod events;
pub mod funding;
pub mod invoice;
pub mod keys;
pub mod logger;
pub mod lsps;
pub mod metrics;
pub mod operator;
pub mod peers;
pub mod signer;
pub mod store;
pub mod types;
pub mod wallet;

mod builder;
mod start;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::PublicKey;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use lightning::util::config::UserConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;

pub use events::{ClaimDecision, ClaimEverything, ClaimablePayment, PendingChannel, ServiceHook};
pub use start::{BuiltNode, NodeServices};

use chain::{ChainSync, EsploraBroadcaster, EsploraFeeEstimator};
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
    #[error("chain.source = \"dev\" needs the embedded devchain, which the node does not start: build through lsp_node::Builder, which starts it and hands the node its URL")]
    DevchainNotStarted,
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
    #[error("cannot start the liquidity service: {0}")]
    Liquidity(String),
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

/// Builds a [`Node`] from a [`Config`] whose chain source is an Esplora URL.
pub struct Builder {
    config: Config,
    p2p_listener: Option<tokio::net::TcpListener>,
}

impl Builder {
    pub fn new(config: Config) -> Builder {
        Builder {
            config,
            p2p_listener: None,
        }
    }

    /// Serves peers on `listener` instead of binding `node.p2p_listen`; a caller binds it
    /// early so that a busy port fails before anything is written.
    pub fn with_p2p_listener(mut self, listener: tokio::net::TcpListener) -> Builder {
        self.p2p_listener = Some(listener);
        self
    }

    /// Constructs every component and binds the p2p listener; nothing runs until
    /// [`BuiltNode::start`].
    pub async fn build(self) -> Result<BuiltNode, NodeError> {
        builder::build(self.config, self.p2p_listener).await
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
    pub(crate) http: reqwest::Client,
    pub(crate) store: Arc<Store>,
    pub(crate) wallet: Arc<Wallet>,
    /// Posts transactions, and keeps ours (funding, wallet payments) until the chain settles them.
    pub(crate) broadcaster: Arc<EsploraBroadcaster>,
    pub(crate) fee_estimator: Arc<EsploraFeeEstimator>,
    pub(crate) chain_monitor: Arc<ChainMonitor>,
    pub(crate) channel_manager: Arc<ChannelManager>,
    pub(crate) invoices: Arc<invoice::InvoiceMaker>,
    pub(crate) peer_manager: Arc<PeerManager>,
    pub(crate) liquidity_manager: Arc<LiquidityManager>,
    pub(crate) chain_sync: Arc<ChainSync>,
    pub(crate) peers: Arc<PeerConnector>,
    pub(crate) user_config: UserConfig,
    pub(crate) p2p_addr: SocketAddr,
    /// Keys the claim tickets of customers' orders ([`crate::node::keys::NodeSeed::ticket_key`]).
    pub(crate) ticket_key: [u8; 32],
    /// Set to `true` once to stop every background task.
    pub(crate) shutdown: watch::Sender<bool>,
    /// The p2p listener, loops and the broadcaster: stopped by `shutdown`.
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

    /// The Esplora base URL the node syncs from.
    pub fn esplora_url(&self) -> String {
        self.inner.esplora_url.clone()
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

    /// Claims a payment a [`ServiceHook`] chose to hold.
    pub fn claim_payment(&self, preimage: PaymentPreimage) {
        self.inner.channel_manager.claim_funds(preimage);
    }

    /// Fails a payment a [`ServiceHook`] chose to hold, returning the HTLCs to the payer.
    pub fn fail_payment(&self, payment_hash: &PaymentHash) {
        self.inner.channel_manager.fail_htlc_backwards(payment_hash);
    }

    /// The network the node runs on.
    pub fn network(&self) -> bitcoin::Network {
        self.inner.config.network
    }

    /// The SQLite file of the node; services keep their tables in it too.
    pub fn database_path(&self) -> std::path::PathBuf {
        self.inner.config.data_dir.join(builder::DATABASE_FILE)
    }

    /// The configuration the node was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Stops gracefully: background tasks, peers, the background processor (which persists the
    /// ChannelManager), the wallet and the p2p listener.
    pub async fn stop(self) -> Result<(), NodeError> {
        start::stop(&self.inner).await
    }
}

/// A fresh random id we attach to each channel, to find it again in events.
pub(crate) fn random_user_channel_id() -> u128 {
    rand::random::<u128>()
}
