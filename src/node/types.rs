//! Type aliases naming the concrete LDK components this node is assembled from.
//!
//! LDK is generic over every collaborator; these aliases pin each generic to the one type we
//! use, so the rest of the node can say `ChannelManager` instead of a nine-parameter type.

use std::sync::{Arc, Mutex};

use lightning::chain::chainmonitor;
use lightning::ln::channelmanager;
use lightning::ln::peer_handler::IgnoringMessageHandler;
use lightning::onion_message::messenger::DefaultMessageRouter;
use lightning::routing::gossip;
use lightning::routing::router::DefaultRouter;
use lightning::routing::scoring::{ProbabilisticScorer, ProbabilisticScoringFeeParameters};
use lightning::routing::utxo::UtxoLookup;
use lightning::sign::{ChangeDestinationSourceSyncWrapper, InMemorySigner, KeysManager};
use lightning::util::persist::KVStoreSyncWrapper;
use lightning::util::sweep;
use lightning_liquidity::utils::time::DefaultTimeProvider;
use lightning_transaction_sync::EsploraSyncClient;

use super::chain::broadcast::EsploraBroadcaster;
use super::chain::fees::EsploraFeeEstimator;
use super::logger::LdkLogger;
use super::signer::WalletSignerProvider;
use super::store::Store;
use super::wallet::Wallet;

/// The LDK logger, forwarding to `tracing`.
pub type Logger = LdkLogger;

/// Registers the transactions and outputs LDK watches and syncs them from Esplora.
pub type ChainSyncClient = EsploraSyncClient<Arc<Logger>>;

/// Our SQLite store seen through LDK's async `KVStore` trait.
pub type AsyncStore = KVStoreSyncWrapper<Arc<Store>>;

pub type ChainMonitor = chainmonitor::ChainMonitor<
    InMemorySigner,
    Arc<ChainSyncClient>,
    Arc<EsploraBroadcaster>,
    Arc<EsploraFeeEstimator>,
    Arc<Logger>,
    Arc<Store>,
    Arc<KeysManager>,
>;

pub type NetworkGraph = gossip::NetworkGraph<Arc<Logger>>;

pub type Scorer = ProbabilisticScorer<Arc<NetworkGraph>, Arc<Logger>>;

pub type Router = DefaultRouter<
    Arc<NetworkGraph>,
    Arc<Logger>,
    Arc<KeysManager>,
    Arc<Mutex<Scorer>>,
    ProbabilisticScoringFeeParameters,
    Scorer,
>;

pub type MessageRouter = DefaultMessageRouter<Arc<NetworkGraph>, Arc<Logger>, Arc<KeysManager>>;

pub type ChannelManager = channelmanager::ChannelManager<
    Arc<ChainMonitor>,
    Arc<EsploraBroadcaster>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<WalletSignerProvider>,
    Arc<EsploraFeeEstimator>,
    Arc<Router>,
    Arc<MessageRouter>,
    Arc<Logger>,
>;

/// We do not validate gossiped channels against the chain (no UTXO source).
pub type NoUtxoLookup = Arc<dyn UtxoLookup + Send + Sync>;

pub type GossipSync = gossip::P2PGossipSync<Arc<NetworkGraph>, NoUtxoLookup, Arc<Logger>>;

/// Where swept funds go: a fresh address of our on-chain wallet.
pub type ChangeDestination = ChangeDestinationSourceSyncWrapper<Arc<Wallet>>;

pub type OutputSweeper = sweep::OutputSweeper<
    Arc<EsploraBroadcaster>,
    Arc<ChangeDestination>,
    Arc<EsploraFeeEstimator>,
    Arc<ChainSyncClient>,
    AsyncStore,
    Arc<Logger>,
    Arc<KeysManager>,
>;

/// LSPS0 over Lightning custom messages; advertises LSPS1 when the order service runs.
pub type LiquidityManager = lightning_liquidity::LiquidityManager<
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<ChannelManager>,
    AsyncStore,
    DefaultTimeProvider,
    Arc<EsploraBroadcaster>,
>;

/// Onion message routing; BOLT12 offers messages go to the ChannelManager.
pub type OnionMessenger = lightning::onion_message::messenger::OnionMessenger<
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<Logger>,
    Arc<ChannelManager>,
    Arc<MessageRouter>,
    Arc<ChannelManager>,
    Arc<ChannelManager>,
    IgnoringMessageHandler,
    IgnoringMessageHandler,
>;

/// The PeerManager's custom message handler: the LiquidityManager behind the gate a service
/// may install (the LSPS1 order service installs its guard).
pub type LspsMessageHandler = super::lsps::GatedLspsHandler<Arc<LiquidityManager>>;

pub type PeerManager = lightning::ln::peer_handler::PeerManager<
    lightning_net_tokio::SocketDescriptor,
    Arc<ChannelManager>,
    Arc<GossipSync>,
    Arc<OnionMessenger>,
    Arc<Logger>,
    Arc<LspsMessageHandler>,
    Arc<KeysManager>,
    IgnoringMessageHandler,
>;

/// Fee bumping of anchor-channel transactions, with inputs from our wallet.
pub type BumpTransactionHandler =
    lightning::events::bump_transaction::sync::BumpTransactionEventHandlerSync<
        Arc<EsploraBroadcaster>,
        Arc<lightning::util::wallet_utils::WalletSync<Arc<Wallet>, Arc<Logger>>>,
        Arc<KeysManager>,
        Arc<Logger>,
    >;
