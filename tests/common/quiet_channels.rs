//! A channel message handler that has no channels and says nothing: LDK's own
//! `ErroringMessageHandler` answers every channel message with an error, and a node that gets
//! one for a channel it has force-closes it. A bare peer speaking with the node key of a node
//! that has channels (while that node is offline) must stay silent instead.

use bitcoin::constants::ChainHash;
use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::{
    self, BaseMessageHandler, ChannelMessageHandler, Init, MessageSendEvent,
};
use lightning::ln::types::ChannelId;
use lightning::types::features::{InitFeatures, NodeFeatures};

pub struct QuietChannels;

impl BaseMessageHandler for QuietChannels {
    fn get_and_clear_pending_msg_events(&self) -> Vec<MessageSendEvent> {
        Vec::new()
    }

    fn peer_disconnected(&self, _: PublicKey) {}

    fn provided_node_features(&self) -> NodeFeatures {
        NodeFeatures::empty()
    }

    /// The features a node requires of a peer before it talks to it at all.
    fn provided_init_features(&self, _: PublicKey) -> InitFeatures {
        let mut features = InitFeatures::empty();
        features.set_data_loss_protect_optional();
        features.set_upfront_shutdown_script_optional();
        features.set_variable_length_onion_optional();
        features.set_static_remote_key_optional();
        features.set_payment_secret_optional();
        features.set_basic_mpp_optional();
        features.set_channel_type_optional();
        features
    }

    fn peer_connected(&self, _: PublicKey, _: &Init, _: bool) -> Result<(), ()> {
        Ok(())
    }
}

macro_rules! ignore {
    ($($handle:ident($message:ty)),* $(,)?) => {
        $(fn $handle(&self, _: PublicKey, _: $message) {})*
    };
}

impl ChannelMessageHandler for QuietChannels {
    ignore!(
        handle_open_channel(&msgs::OpenChannel),
        handle_open_channel_v2(&msgs::OpenChannelV2),
        handle_accept_channel(&msgs::AcceptChannel),
        handle_accept_channel_v2(&msgs::AcceptChannelV2),
        handle_funding_created(&msgs::FundingCreated),
        handle_funding_signed(&msgs::FundingSigned),
        handle_channel_ready(&msgs::ChannelReady),
        handle_peer_storage(msgs::PeerStorage),
        handle_peer_storage_retrieval(msgs::PeerStorageRetrieval),
        handle_shutdown(&msgs::Shutdown),
        handle_closing_signed(&msgs::ClosingSigned),
        handle_stfu(&msgs::Stfu),
        handle_splice_init(&msgs::SpliceInit),
        handle_splice_ack(&msgs::SpliceAck),
        handle_splice_locked(&msgs::SpliceLocked),
        handle_tx_add_input(&msgs::TxAddInput),
        handle_tx_add_output(&msgs::TxAddOutput),
        handle_tx_remove_input(&msgs::TxRemoveInput),
        handle_tx_remove_output(&msgs::TxRemoveOutput),
        handle_tx_complete(&msgs::TxComplete),
        handle_tx_signatures(&msgs::TxSignatures),
        handle_tx_init_rbf(&msgs::TxInitRbf),
        handle_tx_ack_rbf(&msgs::TxAckRbf),
        handle_tx_abort(&msgs::TxAbort),
        handle_update_add_htlc(&msgs::UpdateAddHTLC),
        handle_update_fulfill_htlc(msgs::UpdateFulfillHTLC),
        handle_update_fail_htlc(&msgs::UpdateFailHTLC),
        handle_update_fail_malformed_htlc(&msgs::UpdateFailMalformedHTLC),
        handle_commitment_signed(&msgs::CommitmentSigned),
        handle_revoke_and_ack(&msgs::RevokeAndACK),
        handle_update_fee(&msgs::UpdateFee),
        handle_announcement_signatures(&msgs::AnnouncementSignatures),
        handle_channel_reestablish(&msgs::ChannelReestablish),
        handle_channel_update(&msgs::ChannelUpdate),
        handle_error(&msgs::ErrorMessage),
    );

    fn handle_commitment_signed_batch(
        &self,
        _: PublicKey,
        _: ChannelId,
        _: Vec<msgs::CommitmentSigned>,
    ) {
    }

    fn get_chain_hashes(&self) -> Option<Vec<ChainHash>> {
        None
    }

    fn message_received(&self) {}
}
