//! Starting a built node, and stopping it in reverse.
//!
//! [`BuiltNode`] is a node whose components exist but run nothing: a service above the node
//! (the order service) reads what it needs from [`BuiltNode::node`], then plugs in through
//! [`NodeServices`] (its [`ServiceHook`] for payment and channel events, its [`LspsGate`] for
//! LSPS messages) and calls [`BuiltNode::start`]. Start order: the broadcaster, a first chain
//! sync (an unreachable chain source is retried by the loop), the background processor (events,
//! persistence, timers), the chain sync loop, the p2p listener and the peer maintenance loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lightning::events::bump_transaction::sync::BumpTransactionEventHandlerSync;
use lightning::sign::KeysManager;
use lightning::util::persist::{
    KVStoreSync, CHANNEL_MANAGER_PERSISTENCE_KEY, CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
    CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::Writeable;
use lightning::util::wallet_utils::WalletSync;
use lightning_background_processor::{process_events_async, GossipSync as BackgroundGossipSync};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::chain::EsploraBroadcaster;
use super::events::{ClaimEverything, EventHandler, InboundChannelPolicy, ServiceHook};
use super::funding::Funder;
use super::logger::LdkLogger;
use super::lsps::LspsGate;
use super::peers::{self, Announcement};
use super::types::{
    AsyncStore, GossipSync, LspsMessageHandler, OnionMessenger, OutputSweeper, Scorer,
};
use super::{Node, NodeError, NodeInner};

/// What a service above the node plugs in between build and start.
#[derive(Default)]
pub struct NodeServices {
    /// Decides on held payments and hears of channel events; without one the node claims
    /// every payment it can ([`ClaimEverything`]).
    pub hook: Option<Arc<dyn ServiceHook>>,
    /// Sees every LSPS message before the liquidity manager; without one the manager alone
    /// answers.
    pub lsps_gate: Option<Arc<dyn LspsGate>>,
}

/// The components only the running tasks use.
pub(super) struct StartParts {
    pub(super) p2p_listener: TcpListener,
    pub(super) broadcast_task: Pin<Box<dyn Future<Output = ()> + Send>>,
    pub(super) shutdown_rx: watch::Receiver<bool>,
    pub(super) async_store: AsyncStore,
    pub(super) keys_manager: Arc<KeysManager>,
    pub(super) broadcaster: Arc<EsploraBroadcaster>,
    pub(super) logger: Arc<LdkLogger>,
    pub(super) sweeper: Arc<OutputSweeper>,
    pub(super) gossip_sync: Arc<GossipSync>,
    pub(super) onion_messenger: Arc<OnionMessenger>,
    pub(super) scorer: Arc<Mutex<Scorer>>,
    pub(super) lsps_handler: Arc<LspsMessageHandler>,
    pub(super) announcement: Announcement,
    pub(super) inbound_policy: InboundChannelPolicy,
    pub(super) sync_interval: Duration,
    /// Whether the chain source answered during the build.
    pub(super) chain_reachable: bool,
}

/// A node built but not started: see the module doc.
pub struct BuiltNode {
    node: Node,
    parts: StartParts,
}

impl BuiltNode {
    pub(super) fn new(node: Node, parts: StartParts) -> BuiltNode {
        BuiltNode { node, parts }
    }

    /// The node's handle; its components are usable, though nothing runs yet.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Plugs `services` in and starts every task; the returned handle is the same node.
    pub async fn start(self, services: NodeServices) -> Result<Node, NodeError> {
        let BuiltNode { node, parts } = self;
        let inner = &node.inner;
        let shutdown_rx = parts.shutdown_rx;
        if let Some(gate) = services.lsps_gate {
            parts.lsps_handler.install_gate(gate);
        }
        let mut tasks = vec![tokio::spawn(parts.broadcast_task)];

        // Catch up before serving anything; an unreachable chain source is retried by the loop.
        if parts.chain_reachable {
            if let Err(e) = inner.chain_sync.sync().await {
                if e.is_configuration() {
                    inner.shutdown.send_replace(true);
                    return Err(e.into());
                }
                tracing::warn!(error = %e, "initial chain sync failed; retrying in the background");
            }
        }

        let hook: Arc<dyn ServiceHook> = services.hook.unwrap_or_else(|| Arc::new(ClaimEverything));
        let event_handler = Arc::new(EventHandler {
            channel_manager: Arc::clone(&inner.channel_manager),
            wallet: Arc::clone(&inner.wallet),
            fee_estimator: Arc::clone(&inner.fee_estimator),
            sweeper: Arc::clone(&parts.sweeper),
            bump_handler: BumpTransactionEventHandlerSync::new(
                Arc::clone(&parts.broadcaster),
                Arc::new(WalletSync::new(
                    Arc::clone(&inner.wallet),
                    Arc::clone(&parts.logger),
                )),
                Arc::clone(&parts.keys_manager),
                Arc::clone(&parts.logger),
            ),
            store: Arc::clone(&inner.store),
            peers: Arc::clone(&inner.peers),
            hook: Arc::clone(&hook),
            inbound_policy: parts.inbound_policy,
            funder: Arc::new(Funder::new(
                Arc::clone(&inner.channel_manager),
                Arc::clone(&inner.chain_monitor),
                Arc::clone(&inner.wallet),
                Box::new(move |user_channel_id, txid| hook.funding_created(user_channel_id, txid)),
                inner.config.node.funding_batch,
            )),
        });

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
        let processor = process_events_async(
            parts.async_store,
            move |event| {
                let handler = Arc::clone(&event_handler);
                async move { handler.handle(event).await }
            },
            Arc::clone(&inner.chain_monitor),
            Arc::clone(&inner.channel_manager),
            Some(parts.onion_messenger),
            BackgroundGossipSync::p2p(parts.gossip_sync),
            Arc::clone(&inner.peer_manager),
            Some(Arc::clone(&inner.liquidity_manager)),
            Some(parts.sweeper),
            parts.logger,
            Some(parts.scorer),
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
        *inner.background.lock().expect("background handle poisoned") =
            Some(tokio::spawn(processor));

        tasks.push(tokio::spawn(
            Arc::clone(&inner.chain_sync).run(parts.sync_interval, shutdown_rx.clone()),
        ));
        tasks.push(tokio::spawn(peers::accept_loop(
            parts.p2p_listener,
            Arc::clone(&inner.peer_manager),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(peers::maintenance_loop(
            Arc::clone(&inner.peers),
            Arc::clone(&inner.channel_manager),
            parts.announcement,
            shutdown_rx,
        )));
        inner
            .tasks
            .lock()
            .expect("task list poisoned")
            .extend(tasks);

        tracing::info!(
            node_id = %node.node_id(),
            network = %inner.config.network,
            p2p = %inner.p2p_addr,
            esplora = %inner.esplora_url,
            "node started"
        );
        Ok(node)
    }
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
    tracing::info!("node stopped");
    processed
}
