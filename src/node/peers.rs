//! Lightning peers: the p2p listener, outbound connections, the remembered peer list and the
//! reconnect loop.
//!
//! Peers the operator connects to are remembered in the store. On start and every
//! [`RECONNECT_INTERVAL`], the node reconnects to remembered peers it has channels with, and
//! (re)announces itself when it has an alias or public addresses configured and at least one
//! announced channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::SocketAddress;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::store::Store;
use super::types::{ChannelManager, PeerManager};

/// How often the node checks that it is connected to the peers it has channels with.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(60);

/// How long an outbound connection may take until the handshake is complete.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a peer connection failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("'{0}' is not a host:port address")]
    BadAddress(String),
    #[error("could not resolve {0}")]
    Unresolvable(String),
    #[error("could not connect to {node_id} at {address}")]
    ConnectFailed { node_id: PublicKey, address: String },
    #[error("the handshake with {node_id} at {address} did not complete within {secs} seconds")]
    HandshakeTimeout {
        node_id: PublicKey,
        address: String,
        secs: u64,
    },
    #[error("could not remember the peer: {0}")]
    Store(String),
}

/// Connects to peers and keeps the remembered list.
pub struct PeerConnector {
    pub(crate) peer_manager: Arc<PeerManager>,
    pub(crate) store: Arc<Store>,
}

impl PeerConnector {
    pub fn is_connected(&self, node_id: &PublicKey) -> bool {
        self.peer_manager.peer_by_node_id(node_id).is_some()
    }

    /// Connects to `node_id` at `address` (`host:port`), waiting for the handshake to finish.
    /// Succeeds at once when already connected.
    pub async fn connect(&self, node_id: PublicKey, address: &str) -> Result<(), PeerError> {
        if self.is_connected(&node_id) {
            return Ok(());
        }
        let socket_addr = resolve(address).await?;
        let failed = || PeerError::ConnectFailed {
            node_id,
            address: address.to_string(),
        };
        let connection = lightning_net_tokio::connect_outbound(
            Arc::clone(&self.peer_manager),
            node_id,
            socket_addr,
        )
        .await
        .ok_or_else(failed)?;
        let mut connection = Box::pin(connection);
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let mut poll = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                // The connection future only completes when the connection closes.
                _ = &mut connection => return Err(failed()),
                _ = poll.tick() => {
                    if self.is_connected(&node_id) {
                        tokio::spawn(connection);
                        return Ok(());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(PeerError::HandshakeTimeout {
                            node_id,
                            address: address.to_string(),
                            secs: CONNECT_TIMEOUT.as_secs(),
                        });
                    }
                }
            }
        }
    }

    /// Connects and remembers the peer, so the node reconnects to it after a restart.
    pub async fn connect_and_remember(
        &self,
        node_id: PublicKey,
        address: &str,
    ) -> Result<(), PeerError> {
        self.connect(node_id, address).await?;
        self.store
            .upsert_peer(&node_id, address)
            .map_err(|e| PeerError::Store(e.to_string()))
    }

    /// For LDK's `ConnectionNeeded`: tries the given addresses, then a remembered one.
    pub async fn connect_any(&self, node_id: PublicKey, addresses: &[SocketAddress]) {
        let mut candidates: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
        if let Ok(peers) = self.store.peers() {
            candidates.extend(
                peers
                    .into_iter()
                    .filter(|(id, _)| *id == node_id)
                    .map(|(_, a)| a),
            );
        }
        for address in candidates {
            match self.connect(node_id, &address).await {
                Ok(()) => return,
                Err(e) => tracing::debug!(%node_id, error = %e, "connection attempt failed"),
            }
        }
        tracing::warn!(%node_id, "could not connect to peer LDK asked for");
    }

    /// Reconnects to every remembered peer we have a channel with and are not connected to.
    pub async fn reconnect_channel_peers(&self, channel_manager: &ChannelManager) {
        let remembered = match self.store.peers() {
            Ok(peers) => peers,
            Err(e) => {
                tracing::warn!(error = %e, "could not read remembered peers");
                return;
            }
        };
        let channels = channel_manager.list_channels();
        for (node_id, address) in remembered {
            let has_channel = channels.iter().any(|c| c.counterparty.node_id == node_id);
            if !has_channel || self.is_connected(&node_id) {
                continue;
            }
            match self.connect(node_id, &address).await {
                Ok(()) => tracing::info!(%node_id, address, "reconnected to peer"),
                Err(e) => tracing::info!(%node_id, error = %e, "peer still unreachable"),
            }
        }
    }
}

/// Resolves `host:port` (names too) to the first socket address.
pub async fn resolve(address: &str) -> Result<SocketAddr, PeerError> {
    if !address.contains(':') {
        return Err(PeerError::BadAddress(address.to_string()));
    }
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    tokio::net::lookup_host(address)
        .await
        .map_err(|_| PeerError::Unresolvable(address.to_string()))?
        .next()
        .ok_or_else(|| PeerError::Unresolvable(address.to_string()))
}

/// Accepts inbound p2p connections until `shutdown` fires.
pub async fn accept_loop(
    listener: TcpListener,
    peer_manager: Arc<PeerManager>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let stream = match stream.into_std() {
                        Ok(stream) => stream,
                        Err(e) => {
                            tracing::warn!(%remote, error = %e, "could not take over inbound connection");
                            continue;
                        }
                    };
                    tokio::spawn(lightning_net_tokio::setup_inbound(Arc::clone(&peer_manager), stream));
                }
                Err(e) => tracing::warn!(error = %e, "accepting a p2p connection failed"),
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// What the node announces about itself, from config.
#[derive(Debug, Clone)]
pub struct Announcement {
    pub alias: Option<String>,
    pub rgb: [u8; 3],
    pub addresses: Vec<SocketAddress>,
}

impl Announcement {
    fn wanted(&self) -> bool {
        self.alias.is_some() || !self.addresses.is_empty()
    }

    fn alias_bytes(&self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        if let Some(alias) = &self.alias {
            let raw = alias.as_bytes();
            let len = raw.len().min(32);
            bytes[..len].copy_from_slice(&raw[..len]);
        }
        bytes
    }
}

/// Reconnects and re-announces on start and every [`RECONNECT_INTERVAL`] until `shutdown`.
pub async fn maintenance_loop(
    connector: Arc<PeerConnector>,
    channel_manager: Arc<ChannelManager>,
    announcement: Announcement,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(RECONNECT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                connector.reconnect_channel_peers(&channel_manager).await;
                let has_public_channel = channel_manager
                    .list_channels()
                    .iter()
                    .any(|c| c.is_announced && c.is_channel_ready);
                if announcement.wanted() && has_public_channel {
                    connector.peer_manager.broadcast_node_announcement(
                        announcement.rgb,
                        announcement.alias_bytes(),
                        announcement.addresses.clone(),
                    );
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
