//! A bare Lightning peer that speaks LSPS0 only: it connects to a node over real TCP (BOLT8
//! handshake, LDK's `PeerManager`), sends raw LSPS JSON-RPC requests in custom messages of type
//! 37913 and collects the answers. Each peer has its own fresh node key, as a flood of throwaway
//! node ids would, or the key of a node that is offline ([`Lsps0Peer::connect_with_seed`]); it
//! answers no channel message ([`super::quiet_channels`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::{DecodeError, Init, LightningError};
use lightning::ln::peer_handler::{
    CustomMessageHandler, IgnoringMessageHandler, MessageHandler, PeerManager,
};
use lightning::ln::wire::CustomMessageReader;
use lightning::sign::{KeysManager, NodeSigner, Recipient};
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::logger::{Logger, Record};
use lightning::util::ser::{LengthLimitedRead, LengthReadable};
use lightning_liquidity::lsps0::ser::{RawLSPSMessage, LSPS_MESSAGE_TYPE_ID};
use tokio::sync::Notify;

use super::quiet_channels::QuietChannels;

struct Silent;

impl Logger for Silent {
    fn log(&self, _record: Record) {}
}

/// Queues requests out and answers in.
#[derive(Default)]
struct RawLsps {
    outbox: Mutex<Vec<(PublicKey, RawLSPSMessage)>>,
    answers: Mutex<Vec<String>>,
    answered: Notify,
}

impl CustomMessageReader for RawLsps {
    type CustomMessage = RawLSPSMessage;

    fn read<R: LengthLimitedRead>(
        &self,
        message_type: u16,
        buffer: &mut R,
    ) -> Result<Option<RawLSPSMessage>, DecodeError> {
        if message_type != LSPS_MESSAGE_TYPE_ID {
            return Ok(None);
        }
        RawLSPSMessage::read_from_fixed_length_buffer(buffer).map(Some)
    }
}

impl CustomMessageHandler for RawLsps {
    fn handle_custom_message(
        &self,
        msg: RawLSPSMessage,
        _sender_node_id: PublicKey,
    ) -> Result<(), LightningError> {
        self.answers.lock().unwrap().push(msg.payload);
        self.answered.notify_one();
        Ok(())
    }

    fn get_and_clear_pending_msg(&self) -> Vec<(PublicKey, RawLSPSMessage)> {
        std::mem::take(&mut *self.outbox.lock().unwrap())
    }

    fn peer_disconnected(&self, _their_node_id: PublicKey) {}

    fn peer_connected(&self, _: PublicKey, _: &Init, _: bool) -> Result<(), ()> {
        Ok(())
    }

    fn provided_node_features(&self) -> NodeFeatures {
        NodeFeatures::empty()
    }

    fn provided_init_features(&self, _their_node_id: PublicKey) -> InitFeatures {
        InitFeatures::empty()
    }
}

type BarePeerManager = PeerManager<
    lightning_net_tokio::SocketDescriptor,
    Arc<QuietChannels>,
    Arc<IgnoringMessageHandler>,
    Arc<IgnoringMessageHandler>,
    Arc<Silent>,
    Arc<RawLsps>,
    Arc<KeysManager>,
    IgnoringMessageHandler,
>;

/// One connected LSPS0 peer.
pub struct Lsps0Peer {
    peer_manager: Arc<BarePeerManager>,
    handler: Arc<RawLsps>,
    node: PublicKey,
    pub node_id: PublicKey,
}

impl Lsps0Peer {
    /// Connects a peer with a fresh node key to `node` at `address`, waiting for the handshake
    /// until `deadline`.
    pub async fn connect(node: PublicKey, address: SocketAddr, deadline: Duration) -> Lsps0Peer {
        Lsps0Peer::connect_with_seed(node, address, rand::random(), deadline).await
    }

    /// Connects a peer whose node key comes from the `KeysManager` seed `seed` (a node id that
    /// another node also has, to speak as it while it is offline).
    pub async fn connect_with_seed(
        node: PublicKey,
        address: SocketAddr,
        seed: [u8; 32],
        deadline: Duration,
    ) -> Lsps0Peer {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let keys = Arc::new(KeysManager::new(
            &seed,
            now.as_secs(),
            now.subsec_nanos(),
            true,
        ));
        let node_id = keys.get_node_id(Recipient::Node).expect("a node key");
        let handler = Arc::new(RawLsps::default());
        let ephemeral: [u8; 32] = rand::random();
        let peer_manager = Arc::new(PeerManager::new(
            MessageHandler {
                chan_handler: Arc::new(QuietChannels),
                route_handler: Arc::new(IgnoringMessageHandler {}),
                onion_message_handler: Arc::new(IgnoringMessageHandler {}),
                custom_message_handler: Arc::clone(&handler),
                send_only_message_handler: IgnoringMessageHandler {},
            },
            now.as_secs() as u32,
            &ephemeral,
            Arc::new(Silent),
            keys,
        ));
        let connection =
            lightning_net_tokio::connect_outbound(Arc::clone(&peer_manager), node, address)
                .await
                .expect("TCP connection to the node");
        tokio::spawn(connection);
        let peer = Lsps0Peer {
            peer_manager,
            handler,
            node,
            node_id,
        };
        tokio::time::timeout(deadline, async {
            while peer.peer_manager.peer_by_node_id(&node).is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the handshake completes");
        peer
    }

    /// Sends one JSON-RPC request and waits (until `deadline`) for the next answer.
    pub async fn call(&self, request: &serde_json::Value, deadline: Duration) -> serde_json::Value {
        self.send(request);
        self.answer(deadline).await.expect("the node answers")
    }

    /// Sends one JSON-RPC request without waiting for its answer.
    pub fn send(&self, request: &serde_json::Value) {
        self.handler.outbox.lock().unwrap().push((
            self.node,
            RawLSPSMessage {
                payload: request.to_string(),
            },
        ));
        self.peer_manager.process_events();
    }

    /// The next answer not taken yet, waiting for one until `deadline` (`None`: none came).
    pub async fn answer(&self, deadline: Duration) -> Option<serde_json::Value> {
        tokio::time::timeout(deadline, async {
            loop {
                let answered = self.handler.answered.notified();
                if let Some(answer) = self.handler.answers.lock().unwrap().pop() {
                    return serde_json::from_str(&answer).expect("the answer is JSON");
                }
                answered.await;
            }
        })
        .await
        .ok()
    }

    pub fn disconnect(&self) {
        self.peer_manager.disconnect_all_peers();
    }
}

/// An `lsps1.create_order` request with `id` for a channel of `lsp_balance_sat` (nothing pushed
/// to the client, not announced, funded within 6 blocks, leased for 1,000).
pub fn create_order_request(
    id: &str,
    lsp_balance_sat: u64,
    required_channel_confirmations: u8,
) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "lsps1.create_order",
        "params": {
            "lsp_balance_sat": lsp_balance_sat.to_string(),
            "client_balance_sat": "0",
            "required_channel_confirmations": required_channel_confirmations,
            "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 1000,
            "announce_channel": false,
        },
    })
}
