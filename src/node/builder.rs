//! Building the node: every LDK component created once, in dependency order, with nothing
//! running yet ([`super::start`] spawns the tasks).
//!
//! Order: bind the p2p listener (so a busy port fails before anything is written), load the
//! seed, open the store, check the chain source's genesis, build the fee estimator, the
//! broadcaster and the wallet, then restore (or create) the LDK state from the store.

use std::io::Cursor;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lightning::chain::BlockLocator;
use lightning::ln::channelmanager::{ChainParameters, ChannelManagerReadArgs};
use lightning::ln::msgs::SocketAddress;
use lightning::ln::peer_handler::{IgnoringMessageHandler, MessageHandler};
use lightning::routing::gossip::P2PGossipSync;
use lightning::routing::router::DefaultRouter;
use lightning::routing::scoring::{
    ProbabilisticScoringDecayParameters, ProbabilisticScoringFeeParameters,
};
use lightning::sign::{ChangeDestinationSourceSyncWrapper, KeysManager, NodeSigner};
use lightning::util::config::UserConfig;
use lightning::util::persist::{
    read_channel_monitors, KVStoreSync, KVStoreSyncWrapper, CHANNEL_MANAGER_PERSISTENCE_KEY,
    CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
    NETWORK_GRAPH_PERSISTENCE_KEY, NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE,
    NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE, OUTPUT_SWEEPER_PERSISTENCE_KEY,
    OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE, OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
    SCORER_PERSISTENCE_KEY, SCORER_PERSISTENCE_PRIMARY_NAMESPACE,
    SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::ReadableArgs;
use lightning_liquidity::LiquidityServiceConfig;
use lightning_transaction_sync::EsploraSyncClient;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::chain::broadcast::KeepBroadcasting;
use super::chain::{
    check_genesis, fetch_tip, unix_now, ChainEndpoint, ChainSync, EsploraBroadcaster,
    EsploraFeeEstimator,
};
use super::events::InboundChannelPolicy;
use super::invoice::InvoiceMaker;
use super::keys::{NodeSeed, SeedOrigin};
use super::logger::LdkLogger;
use super::peers::{Announcement, PeerConnector};
use super::signer::WalletSignerProvider;
use super::start::{BuiltNode, StartParts};
use super::store::Store;
use super::types::{
    ChainMonitor, ChannelManager, GossipSync, LiquidityManager, LspsMessageHandler, NetworkGraph,
    NoUtxoLookup, OnionMessenger, OutputSweeper, PeerManager, Scorer,
};
use super::wallet::Wallet;
use super::{Node, NodeError, NodeInner};
use crate::config::{ChainSource, Config};

/// The SQLite file inside the data directory.
pub const DATABASE_FILE: &str = "lsp-node.sqlite";

/// The seed file inside the data directory, unless `node.seed_file` says otherwise.
pub const SEED_FILE: &str = "seed";

/// Reads a key of LDK data; `Ok(None)` when it was never written.
fn read_key(
    store: &Store,
    primary: &str,
    secondary: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, NodeError> {
    match KVStoreSync::read(store, primary, secondary, key) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == lightning::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::CorruptState {
            what: format!("{key}: {e}"),
        }),
    }
}

fn corrupt(what: &str) -> NodeError {
    NodeError::CorruptState {
        what: what.to_string(),
    }
}

/// The channel settings every channel starts from.
fn user_config() -> UserConfig {
    let mut config = UserConfig::default();
    // Anchor outputs: fees are set at broadcast time with inputs from our wallet.
    config
        .channel_handshake_config
        .negotiate_anchors_zero_fee_htlc_tx = true;
    // Channels are unannounced unless the operator asks (OpenChannel::announce).
    config.channel_handshake_config.announce_for_forwarding = false;
    // Let peers choose whether the channels they open to us are announced.
    config
        .channel_handshake_limits
        .force_announced_channel_preference = false;
    // Every inbound request surfaces as OpenChannelRequest, where our policy applies.
    config.accept_inbound_channels = true;
    config
}

fn parse_rgb(color: &str) -> [u8; 3] {
    let mut rgb = [0u8; 3];
    if let Ok(bytes) = hex::decode(color) {
        if bytes.len() == 3 {
            rgb.copy_from_slice(&bytes);
        }
    }
    rgb
}

pub(super) async fn build(
    config: Config,
    p2p_listener: Option<TcpListener>,
) -> Result<BuiltNode, NodeError> {
    let data_dir = config.data_dir.clone();
    let network = config.network;

    let p2p_listener = match p2p_listener {
        Some(listener) => Ok(listener),
        None => TcpListener::bind(config.node.p2p_listen).await,
    }
    .and_then(|listener| Ok((listener.local_addr()?, listener)));
    let (p2p_addr, p2p_listener) = p2p_listener.map_err(|source| NodeError::Listen {
        what: "Lightning peers",
        addr: config.node.p2p_listen,
        source,
    })?;

    std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;

    let esplora_url = match &config.chain.source {
        ChainSource::Esplora { url } => url.trim_end_matches('/').to_string(),
        ChainSource::Dev { .. } => return Err(NodeError::DevchainNotStarted),
    };

    let seed_path = config
        .node
        .seed_file
        .clone()
        .unwrap_or_else(|| data_dir.join(SEED_FILE));
    let (seed, origin) = NodeSeed::load_or_create(&seed_path)?;
    if matches!(origin, SeedOrigin::Created) {
        tracing::warn!(
            path = %seed_path.display(),
            mnemonic = %seed.mnemonic_phrase(),
            "created a new node seed; write these words down and keep them safe: they are the only way to recover the node's funds"
        );
    }

    let db_path = data_dir.join(DATABASE_FILE);
    let store = Arc::new(Store::open(&db_path)?);
    let async_store = KVStoreSyncWrapper(Arc::clone(&store));

    let (shutdown, shutdown_rx) = watch::channel(false);
    let http = reqwest::Client::new();
    let logger = Arc::new(LdkLogger);

    // A chain source that serves another network is a configuration error; one that cannot be
    // reached now is retried in the background while the node serves its peers.
    let chain_reachable = match check_genesis(&http, &esplora_url, network).await {
        Ok(()) => true,
        Err(e) if e.is_configuration() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "chain source unreachable at start; retrying in the background, selling no channels until synced");
            false
        }
    };

    let fee_estimator = Arc::new(EsploraFeeEstimator::new(esplora_url.clone(), http.clone()));
    if let Err(e) = fee_estimator.refresh().await {
        tracing::warn!(error = %e, "no fee estimates yet; using fallbacks until the next sync");
    }
    let (broadcaster, broadcast_task) = EsploraBroadcaster::new(
        esplora_url.clone(),
        http.clone(),
        Store::clone(&store),
        Duration::from_secs(config.chain.sync_interval_secs.max(1)),
        shutdown_rx.clone(),
    );
    let broadcaster = Arc::new(broadcaster);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let keys_manager = Arc::new(KeysManager::new(
        &seed.ldk_seed(),
        now.as_secs(),
        now.subsec_nanos(),
        true,
    ));

    let wallet = Arc::new(Wallet::load_or_create(
        &seed,
        network,
        &db_path,
        &esplora_url,
        Arc::clone(&broadcaster) as Arc<dyn KeepBroadcasting>,
    )?);

    let signer_provider = Arc::new(WalletSignerProvider::new(
        Arc::clone(&keys_manager),
        Arc::clone(&wallet),
    ));

    let tx_sync = Arc::new(EsploraSyncClient::new(
        esplora_url.clone(),
        Arc::clone(&logger),
    ));
    let chain_monitor: Arc<ChainMonitor> = Arc::new(ChainMonitor::new(
        Some(Arc::clone(&tx_sync)),
        Arc::clone(&broadcaster),
        Arc::clone(&logger),
        Arc::clone(&fee_estimator),
        Arc::clone(&store),
        Arc::clone(&keys_manager),
        keys_manager.get_peer_storage_key(),
        false,
    ));

    let network_graph: Arc<NetworkGraph> = match read_key(
        &store,
        NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE,
        NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE,
        NETWORK_GRAPH_PERSISTENCE_KEY,
    )? {
        Some(bytes) => Arc::new(
            NetworkGraph::read(&mut Cursor::new(bytes), Arc::clone(&logger))
                .map_err(|_| corrupt("network graph"))?,
        ),
        None => Arc::new(NetworkGraph::new(network, Arc::clone(&logger))),
    };

    let decay = ProbabilisticScoringDecayParameters::default();
    let scorer: Arc<Mutex<Scorer>> = Arc::new(Mutex::new(
        match read_key(
            &store,
            SCORER_PERSISTENCE_PRIMARY_NAMESPACE,
            SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
            SCORER_PERSISTENCE_KEY,
        )? {
            Some(bytes) => Scorer::read(
                &mut Cursor::new(bytes),
                (decay, Arc::clone(&network_graph), Arc::clone(&logger)),
            )
            .map_err(|_| corrupt("scorer"))?,
            None => Scorer::new(decay, Arc::clone(&network_graph), Arc::clone(&logger)),
        },
    ));

    let router = Arc::new(DefaultRouter::new(
        Arc::clone(&network_graph),
        Arc::clone(&logger),
        Arc::clone(&keys_manager),
        Arc::clone(&scorer),
        ProbabilisticScoringFeeParameters::default(),
    ));
    let message_router = Arc::new(
        lightning::onion_message::messenger::DefaultMessageRouter::new(
            Arc::clone(&network_graph),
            Arc::clone(&keys_manager),
        ),
    );

    let user_config = user_config();
    let mut monitors = read_channel_monitors(
        Arc::clone(&store),
        Arc::clone(&keys_manager),
        Arc::clone(&signer_provider),
    )
    .map_err(|e| corrupt(&format!("channel monitors: {e}")))?;

    let stored_manager = read_key(
        &store,
        CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_KEY,
    )?;
    let channel_manager: Arc<ChannelManager> = match stored_manager {
        Some(bytes) => {
            let monitor_refs = monitors.iter().map(|(_, m)| m).collect();
            let args = ChannelManagerReadArgs::new(
                Arc::clone(&keys_manager),
                Arc::clone(&keys_manager),
                Arc::clone(&signer_provider),
                Arc::clone(&fee_estimator),
                Arc::clone(&chain_monitor),
                Arc::clone(&broadcaster),
                Arc::clone(&router),
                Arc::clone(&message_router),
                Arc::clone(&logger),
                user_config.clone(),
                monitor_refs,
            );
            let (_, manager) =
                <(BlockLocator, ChannelManager)>::read(&mut Cursor::new(bytes), args)
                    .map_err(|e| corrupt(&format!("channel manager: {e:?}")))?;
            Arc::new(manager)
        }
        None => {
            if !monitors.is_empty() {
                return Err(corrupt(
                    "channel monitors exist but the channel manager is missing",
                ));
            }
            // A fresh node starts at the tip, or at genesis when the chain source is away; the
            // first sync catches up either way, and a node without channels has nothing to miss.
            let best_block = match chain_reachable {
                true => match fetch_tip(&http, &esplora_url).await {
                    Ok((height, block_hash)) => BlockLocator::new(block_hash, height),
                    Err(e) => {
                        tracing::warn!(error = %e, "no chain tip; starting from genesis");
                        BlockLocator::from_network(network)
                    }
                },
                false => BlockLocator::from_network(network),
            };
            let params = ChainParameters {
                network,
                best_block,
            };
            Arc::new(ChannelManager::new(
                Arc::clone(&fee_estimator),
                Arc::clone(&chain_monitor),
                Arc::clone(&broadcaster),
                Arc::clone(&router),
                Arc::clone(&message_router),
                Arc::clone(&logger),
                Arc::clone(&keys_manager),
                Arc::clone(&keys_manager),
                Arc::clone(&signer_provider),
                user_config.clone(),
                params,
                unix_now() as u32,
            ))
        }
    };
    for (_, monitor) in monitors.drain(..) {
        let channel_id = monitor.channel_id();
        chain_monitor
            .load_existing_monitor(channel_id, monitor)
            .map_err(|()| corrupt(&format!("channel monitor {channel_id} could not be loaded")))?;
    }

    let change_destination = Arc::new(ChangeDestinationSourceSyncWrapper::new(Arc::clone(&wallet)));
    let sweeper: Arc<OutputSweeper> = match read_key(
        &store,
        OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE,
        OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
        OUTPUT_SWEEPER_PERSISTENCE_KEY,
    )? {
        Some(bytes) => {
            let args = (
                Arc::clone(&broadcaster),
                Arc::clone(&fee_estimator),
                Some(Arc::clone(&tx_sync)),
                Arc::clone(&keys_manager),
                Arc::clone(&change_destination),
                async_store.clone(),
                Arc::clone(&logger),
            );
            let (_, sweeper) = <(BlockLocator, OutputSweeper)>::read(&mut Cursor::new(bytes), args)
                .map_err(|e| corrupt(&format!("output sweeper: {e:?}")))?;
            Arc::new(sweeper)
        }
        None => Arc::new(OutputSweeper::new(
            channel_manager.current_best_block(),
            Arc::clone(&broadcaster),
            Arc::clone(&fee_estimator),
            Some(Arc::clone(&tx_sync)),
            Arc::clone(&keys_manager),
            Arc::clone(&change_destination),
            async_store.clone(),
            Arc::clone(&logger),
        )),
    };

    let gossip_sync: Arc<GossipSync> = Arc::new(P2PGossipSync::new(
        Arc::clone(&network_graph),
        None::<NoUtxoLookup>,
        Arc::clone(&logger),
    ));
    let onion_messenger: Arc<OnionMessenger> = Arc::new(OnionMessenger::new(
        Arc::clone(&keys_manager),
        Arc::clone(&keys_manager),
        Arc::clone(&logger),
        Arc::clone(&channel_manager),
        Arc::clone(&message_router),
        Arc::clone(&channel_manager),
        Arc::clone(&channel_manager),
        IgnoringMessageHandler {},
        IgnoringMessageHandler {},
    ));
    let liquidity_service = config.lsps1.enabled.then(|| LiquidityServiceConfig {
        lsps1_service_config: Some(config.lsps1.options.to_ldk_service_config()),
        lsps2_service_config: None,
        lsps5_service_config: None,
        advertise_service: true,
    });
    let liquidity_manager: Arc<LiquidityManager> = Arc::new(
        LiquidityManager::new(
            Arc::clone(&keys_manager),
            Arc::clone(&keys_manager),
            Arc::clone(&channel_manager),
            async_store.clone(),
            Arc::clone(&broadcaster),
            liquidity_service,
            None,
        )
        .await
        .map_err(|e| NodeError::Liquidity(e.to_string()))?,
    );
    let lsps_handler = Arc::new(LspsMessageHandler::new(Arc::clone(&liquidity_manager)));
    let ephemeral_bytes: [u8; 32] = rand::random();
    let peer_manager: Arc<PeerManager> = Arc::new(PeerManager::new(
        MessageHandler {
            chan_handler: Arc::clone(&channel_manager),
            route_handler: Arc::clone(&gossip_sync),
            onion_message_handler: Arc::clone(&onion_messenger),
            custom_message_handler: Arc::clone(&lsps_handler),
            send_only_message_handler: IgnoringMessageHandler {},
        },
        unix_now() as u32,
        &ephemeral_bytes,
        Arc::clone(&logger),
        Arc::clone(&keys_manager),
    ));
    let flushed = Arc::downgrade(&peer_manager);
    lsps_handler.set_flush(move || {
        if let Some(peer_manager) = flushed.upgrade() {
            peer_manager.process_events();
        }
    });

    let peers = Arc::new(PeerConnector {
        peer_manager: Arc::clone(&peer_manager),
        store: Arc::clone(&store),
    });
    let chain_sync = Arc::new(ChainSync::new(
        Arc::clone(&tx_sync),
        Arc::clone(&fee_estimator),
        Arc::clone(&wallet),
        Arc::clone(&channel_manager),
        Arc::clone(&chain_monitor),
        Arc::clone(&sweeper),
        ChainEndpoint {
            http: http.clone(),
            base_url: esplora_url.clone(),
            network,
        },
    ));

    let announcement = Announcement {
        alias: config.node.alias.clone(),
        rgb: parse_rgb(&config.node.color),
        addresses: config
            .node
            .announce_addresses
            .iter()
            .filter_map(|a| a.parse::<SocketAddress>().ok())
            .collect(),
    };
    let invoices = Arc::new(InvoiceMaker::new(
        Arc::clone(&channel_manager),
        Arc::clone(&keys_manager),
        config.network,
    ));
    let parts = StartParts {
        p2p_listener,
        broadcast_task: Box::pin(broadcast_task),
        shutdown_rx,
        async_store,
        keys_manager,
        broadcaster: Arc::clone(&broadcaster),
        logger,
        sweeper,
        gossip_sync,
        onion_messenger,
        scorer,
        lsps_handler,
        announcement,
        inbound_policy: InboundChannelPolicy {
            accept: config.node.accept_inbound_channels,
            min_channel_sat: config.node.min_inbound_channel_sat,
        },
        sync_interval: Duration::from_secs(config.chain.sync_interval_secs.max(1)),
        chain_reachable,
    };
    let node = Node {
        inner: Arc::new(NodeInner {
            config,
            esplora_url,
            http,
            store,
            wallet,
            broadcaster,
            fee_estimator,
            chain_monitor,
            channel_manager,
            invoices,
            peer_manager,
            liquidity_manager,
            chain_sync,
            peers,
            user_config,
            p2p_addr,
            ticket_key: seed.ticket_key(),
            shutdown,
            tasks: Mutex::new(Vec::new()),
            background: Mutex::new(None),
        }),
    };
    Ok(BuiltNode::new(node, parts))
}
