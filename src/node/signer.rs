//! Channel keys from LDK's `KeysManager`, with every destination for our closing funds taken
//! from the on-chain wallet.
//!
//! `KeysManager` alone would pay cooperative closes and our force-close outputs to scripts
//! derived from the seed that the BDK wallet does not watch; those sats would be spendable but
//! invisible to the operator. [`WalletSignerProvider`] asks the wallet for a fresh address
//! instead, so closed channels show up in the wallet balance.

use std::sync::Arc;

use bitcoin::ScriptBuf;
use lightning::ln::script::ShutdownScript;
use lightning::sign::{InMemorySigner, KeysManager, SignerProvider};

use super::wallet::Wallet;

/// LDK's [`SignerProvider`], delegating key derivation to [`KeysManager`] and destinations to
/// the wallet.
pub struct WalletSignerProvider {
    keys_manager: Arc<KeysManager>,
    wallet: Arc<Wallet>,
}

impl WalletSignerProvider {
    pub fn new(keys_manager: Arc<KeysManager>, wallet: Arc<Wallet>) -> Self {
        WalletSignerProvider {
            keys_manager,
            wallet,
        }
    }

    fn wallet_script(&self) -> Result<ScriptBuf, ()> {
        match self.wallet.new_address() {
            Ok(address) => Ok(address.script_pubkey()),
            Err(e) => {
                tracing::error!(error = %e, "the wallet could not give an address for channel funds");
                Err(())
            }
        }
    }
}

impl SignerProvider for WalletSignerProvider {
    type EcdsaSigner = InMemorySigner;

    fn generate_channel_keys_id(&self, inbound: bool, user_channel_id: u128) -> [u8; 32] {
        self.keys_manager
            .generate_channel_keys_id(inbound, user_channel_id)
    }

    fn derive_channel_signer(&self, channel_keys_id: [u8; 32]) -> Self::EcdsaSigner {
        self.keys_manager.derive_channel_signer(channel_keys_id)
    }

    fn get_destination_script(&self, _channel_keys_id: [u8; 32]) -> Result<ScriptBuf, ()> {
        self.wallet_script()
    }

    fn get_shutdown_scriptpubkey(&self) -> Result<ShutdownScript, ()> {
        let script = self.wallet_script()?;
        ShutdownScript::try_from(script).map_err(|_| {
            tracing::error!("the wallet's address type cannot be used to close channels");
        })
    }
}
