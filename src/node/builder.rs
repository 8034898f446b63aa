//! Wiring: every component of the node created once, in dependency order, and torn down in
//! reverse by [`stop`].
//!
//! Start order: bind the p2p and admin listeners (so a busy port fails before anything is
//! written), start the embedded devchain if configured, load the seed, open the store, build
//! the chain source pieces and the wallet, restore (or create) the LDK state from the store,
//! then start the background processor, the chain sync loop, the p2p listener, the peer
//! maintenance loop and the operator API.

use std::io::Cursor;
use std::net::SocketAddr;

use bitcoin::secp256k1::PublicKey;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lightning::chain::chaininterface::BroadcasterInterface;
use lightning::chain::BlockLocator;
use lightning::events::bump_transaction::sync::BumpTransactionEventHandlerSync;
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
use lightning::util::ser::{ReadableArgs, Writeable};
use lightning::util::wallet_utils::WalletSync;
use lightning_background_processor::{process_events_async, GossipSync as BackgroundGossipSync};
use lightning_liquidity::LiquidityServiceConfig;
use lightning_transaction_sync::EsploraSyncClient;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::chain::{
    check_genesis, fetch_tip, unix_now, ChainEndpoint, ChainSync, EsploraBroadcaster,
    EsploraFeeEstimator,
};
use super::events::{ClaimEverything, EventHandler, InboundChannelPolicy, ServiceHook};
use super::keys::{NodeSeed, SeedOrigin};
use super::logger::LdkLogger;
use super::peers::{self, Announcement, PeerConnector};
use super::signer::WalletSignerProvider;
use super::store::Store;
use super::types::{
    ChainMonitor, ChannelManager, GossipSync, LiquidityManager, LspsMessageHandler, NetworkGraph,
    NoUtxoLookup, OnionMessenger, OutputSweeper, PeerManager, Scorer,
};
use super::wallet::Wallet;
use super::{Node, NodeError, NodeInner};
use crate::config::{ChainSource, Config};
use crate::devchain::{Devchain, DevchainOptions};
use crate::lsps1::clock::SystemClock;
use crate::lsps1::guard::{Lsps1Server, RequestGuard};
use crate::lsps1::service::{OrderService, ServiceNode};
use crate::lsps1::store::OrderBook;

/// The SQLite file inside the data directory.
pub const DATABASE_FILE: &str = "lsp-node.sqlite";

/// The seed file inside the data directory, unless `node.seed_file` says otherwise.
pub const SEED_FILE: &str = "seed";

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { what, addr, source })
}

fn bound_addr(
    what: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, NodeError> {
    listener
        .local_addr()
        .map_err(|source| NodeError::Listen { what, addr, source })
}

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

pub(super) async fn build(config: Config) -> Result<Node, NodeError> {
    let data_dir = config.data_dir.clone();
    let network = config.network;

    let p2p_listener = bind("Lightning peers", config.node.p2p_listen).await?;
    let p2p_addr = bound_addr("Lightning peers", &p2p_listener, config.node.p2p_listen)?;
    let admin_listener = bind("the operator API", config.admin.listen).await?;
    let admin_addr = bound_addr("the operator API", &admin_listener, config.admin.listen)?;
    let http_listener = match config.http.listen {
        Some(addr) => {
            let listener = bind("the public LSPS1 API", addr).await?;
            let bound = bound_addr("the public LSPS1 API", &listener, addr)?;
            Some((listener, bound))
        }
        None => None,
    };
    let http_addr = http_listener.as_ref().map(|(_, bound)| *bound);
    let http_limits = config.http.limits.clone();

    std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;

    let (devchain, esplora_url) = match &config.chain.source {
        ChainSource::Esplora { url } => (None, url.trim_end_matches('/').to_string()),
        ChainSource::Dev { listen } => {
            let block_interval = match config.chain.dev_block_interval_secs {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            };
            let devchain = Devchain::start(DevchainOptions {
                listen: *listen,
                block_interval,
                data_dir: Some(data_dir.join("devchain")),
            })
            .await?;
            let url = devchain.base_url();
            tracing::info!(url, "embedded devchain started");
            (Some(devchain), url)
        }
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

    let admin_api_key =
        crate::api::keys::load_or_create_api_key(&data_dir, config.admin.api_key.as_deref())?;

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
    let (broadcaster, broadcast_task) =
        EsploraBroadcaster::new(esplora_url.clone(), http.clone(), shutdown_rx.clone());
    let broadcaster = Arc::new(broadcaster);
    let mut tasks = vec![tokio::spawn(broadcast_task)];

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
        Arc::clone(&broadcaster) as Arc<dyn BroadcasterInterface + Send + Sync>,
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
    let lsps_handler = Arc::new(LspsMessageHandler::new(
        Arc::clone(&liquidity_manager),
        RequestGuard::new(config.lsps1.options.clone(), network),
    ));
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

    // Catch up before serving anything; an unreachable chain source is retried by the loop.
    if chain_reachable {
        if let Err(e) = chain_sync.sync().await {
            if e.is_configuration() {
                return Err(e.into());
            }
            tracing::warn!(error = %e, "initial chain sync failed; retrying in the background");
        }
    }

    let order_service = if config.lsps1.enabled {
        let book = OrderBook::open(&db_path, Arc::new(SystemClock))?;
        let service = Arc::new(OrderService::new(
            config.lsps1.clone(),
            book,
            ServiceNode {
                network,
                channel_manager: Arc::clone(&channel_manager),
                chain_monitor: Arc::clone(&chain_monitor),
                wallet: Arc::clone(&wallet),
                fee_estimator: Arc::clone(&fee_estimator),
                peers: Arc::clone(&peers),
                esplora_url: esplora_url.clone(),
                http: http.clone(),
                chain_sync: Arc::clone(&chain_sync),
            },
        ));
        lsps_handler.serve_lsps1_with(Arc::clone(&service) as Arc<dyn Lsps1Server>);
        Some(service)
    } else {
        lsps_handler.refuse_lsps1();
        None
    };
    let hook: Arc<dyn ServiceHook> = match &order_service {
        Some(service) => Arc::clone(service) as Arc<dyn ServiceHook>,
        None => Arc::new(ClaimEverything),
    };

    let event_handler = Arc::new(EventHandler {
        channel_manager: Arc::clone(&channel_manager),
        wallet: Arc::clone(&wallet),
        fee_estimator: Arc::clone(&fee_estimator),
        sweeper: Arc::clone(&sweeper),
        bump_handler: BumpTransactionEventHandlerSync::new(
            Arc::clone(&broadcaster),
            Arc::new(WalletSync::new(Arc::clone(&wallet), Arc::clone(&logger))),
            Arc::clone(&keys_manager),
            Arc::clone(&logger),
        ),
        store: Arc::clone(&store),
        peers: Arc::clone(&peers),
        hook,
        inbound_policy: InboundChannelPolicy {
            accept: config.node.accept_inbound_channels,
            min_channel_sat: config.node.min_inbound_channel_sat,
        },
    });

    let background = {
        let sleeper_rx = shutdown_rx.clone();
        let sleeper = move |duration: Duration| {
            let mut stop = sleeper_rx.clone();
            Box::pin(async move {
                if *stop.borrow() {
                    return true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(duration) => false,
                    _ = stop.changed() => true,
                }
            })
        };
        let handler = Arc::clone(&event_handler);
        let processor = process_events_async(
            async_store.clone(),
            move |event| {
                let handler = Arc::clone(&handler);
                async move { handler.handle(event).await }
            },
            Arc::clone(&chain_monitor),
            Arc::clone(&channel_manager),
            Some(Arc::clone(&onion_messenger)),
            BackgroundGossipSync::p2p(Arc::clone(&gossip_sync)),
            Arc::clone(&peer_manager),
            Some(Arc::clone(&liquidity_manager)),
            Some(Arc::clone(&sweeper)),
            Arc::clone(&logger),
            Some(Arc::clone(&scorer)),
            sleeper,
            false,
            || {
                Some(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default(),
                )
            },
        );
        tokio::spawn(processor)
    };

    let sync_interval = Duration::from_secs(config.chain.sync_interval_secs.max(1));
    tasks.push(tokio::spawn(
        Arc::clone(&chain_sync).run(sync_interval, shutdown_rx.clone()),
    ));
    tasks.push(tokio::spawn(peers::accept_loop(
        p2p_listener,
        Arc::clone(&peer_manager),
        shutdown_rx.clone(),
    )));
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
    tasks.push(tokio::spawn(peers::maintenance_loop(
        Arc::clone(&peers),
        Arc::clone(&channel_manager),
        announcement,
        shutdown_rx.clone(),
    )));

    let public_uris = public_uris(
        channel_manager.get_our_node_id(),
        p2p_addr,
        &config.node.announce_addresses,
        http_addr.is_some(),
    );
    let node = Node {
        inner: Arc::new(NodeInner {
            config,
            esplora_url,
            devchain,
            store,
            wallet,
            fee_estimator,
            chain_monitor,
            channel_manager,
            peer_manager,
            liquidity_manager,
            order_service: order_service.clone(),
            chain_sync,
            peers,
            user_config,
            p2p_addr,
            admin_addr,
            http_addr,
            admin_api_key: admin_api_key.clone(),
            shutdown,
            tasks: Mutex::new(Vec::new()),
            background: Mutex::new(Some(background)),
        }),
    };

    if let Some(service) = order_service {
        tasks.push(tokio::spawn(service.run(shutdown_rx.clone())));
    }

    let router = crate::http::admin::router(Arc::new(node.clone()), admin_api_key);
    let mut admin_stop = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        let served = axum::serve(admin_listener, router)
            .with_graceful_shutdown(async move {
                let _ = admin_stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "operator API server failed");
        }
    }));
    match (http_listener, node.inner.order_service.clone()) {
        (Some((listener, _)), Some(service)) => {
            let state = crate::http::public::PublicState::new(service, public_uris, http_limits);
            let router = crate::http::public::router(state);
            let mut public_stop = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                let served = axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = public_stop.wait_for(|stop| *stop).await;
                })
                .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "public LSPS1 API server failed");
                }
            }));
        }
        (Some(_), None) => {
            tracing::warn!(
                "[http] listen is set but LSPS1 is disabled: the public API is not served"
            )
        }
        _ => {}
    }
    node.inner
        .tasks
        .lock()
        .expect("task list poisoned")
        .extend(tasks);

    tracing::info!(
        node_id = %node.node_id(),
        network = %network,
        p2p = %p2p_addr,
        admin = %admin_addr,
        esplora = %node.inner.esplora_url,
        "node started"
    );
    Ok(node)
}

pub(super) async fn stop(inner: &NodeInner) -> Result<(), NodeError> {
    if inner.shutdown.send_replace(true) {
        return Ok(()); // Already stopped by another clone.
    }
    tracing::info!("stopping node");
    let tasks: Vec<_> = std::mem::take(&mut *inner.tasks.lock().expect("task list poisoned"));
    inner.peer_manager.disconnect_all_peers();
    let background = inner
        .background
        .lock()
        .expect("background handle poisoned")
        .take();
    let processed = match background {
        Some(handle) => match handle.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NodeError::Background(e.to_string())),
            Err(e) => Err(NodeError::Background(e.to_string())),
        },
        None => Ok(()),
    };
    for task in tasks {
        let _ = task.await;
    }
    // The background processor wrote the ChannelManager on exit; write it once more in case it
    // failed, so no acknowledged state is lost.
    let manager_bytes = inner.channel_manager.encode();
    if let Err(e) = KVStoreSync::write(
        &*inner.store,
        CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_KEY,
        manager_bytes,
    ) {
        tracing::error!(error = %e, "could not persist the channel manager on stop");
    }
    if let Some(devchain) = inner.devchain.clone() {
        devchain.shutdown().await;
    }
    tracing::info!("node stopped");
    processed
}

/// Where `get_info` tells wallets to connect: the announced addresses, else the p2p listener;
/// never an unspecified address (a listener on 0.0.0.0 is named by its loopback address, which
/// only this machine reaches: configuration refuses that outside regtest).
fn public_uris(
    node_id: PublicKey,
    p2p_addr: SocketAddr,
    announce_addresses: &[String],
    http_enabled: bool,
) -> Vec<String> {
    if !announce_addresses.is_empty() {
        return announce_addresses
            .iter()
            .map(|addr| format!("{node_id}@{addr}"))
            .collect();
    }
    let mut advertised = p2p_addr;
    if p2p_addr.ip().is_unspecified() {
        advertised.set_ip(match p2p_addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    if http_enabled && advertised.ip().is_loopback() {
        tracing::warn!(
            p2p_listen = %p2p_addr,
            advertised = %advertised,
            "node.announce_addresses is empty: get_info tells wallets to connect to a loopback address, which only this machine can reach"
        );
    }
    vec![format!("{node_id}@{advertised}")]
}

#[cfg(test)]
mod public_uri_tests {
    use super::*;

    fn node_id() -> PublicKey {
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
            .parse()
            .unwrap()
    }

    #[test]
    fn an_unspecified_listener_is_never_advertised() {
        let uris = public_uris(node_id(), "0.0.0.0:9735".parse().unwrap(), &[], true);
        assert_eq!(uris, [format!("{}@127.0.0.1:9735", node_id())]);
        let uris = public_uris(node_id(), "[::]:9735".parse().unwrap(), &[], true);
        assert_eq!(uris, [format!("{}@[::1]:9735", node_id())]);
    }

    #[test]
    fn announced_addresses_win_over_the_listener() {
        let announced = [
            "203.0.113.7:9735".to_string(),
            "lsp.example.com:9735".to_string(),
        ];
        let uris = public_uris(node_id(), "0.0.0.0:9735".parse().unwrap(), &announced, true);
        assert_eq!(
            uris,
            [
                format!("{}@203.0.113.7:9735", node_id()),
                format!("{}@lsp.example.com:9735", node_id())
            ]
        );
    }
}
