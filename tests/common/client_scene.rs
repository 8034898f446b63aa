//! A devchain, an LSP with sats on it, and an ldk-node client holding a channel from the LSP
//! whose balance was pushed to it, so the client can buy channels over Lightning.

use std::sync::Arc;

use lsp_node::devchain::Devchain;
use lsp_node::Builder;

use super::*;

/// The client's balance in the channel the LSP opens to it, so it can pay the LSP.
pub const PUSH_MSAT: u64 = 150_000_000;

pub struct ClientScene {
    pub _dirs: (tempfile::TempDir, tempfile::TempDir),
    pub devchain: Devchain,
    pub lsp: lsp_node::App,
    /// The LSP's config, to start it again on the same data directory.
    pub config: lsp_node::config::Config,
    pub operator: Operator,
    /// `http://host:port` of the LSP's public API.
    pub public_api: String,
    pub client: Arc<ldk_node::Node>,
}

/// The seed of the `KeysManager` that ldk-node builds for the node whose storage is
/// `client_dir` (the BIP32 master key's secret of its `keys_seed` file, as ldk-node 0.7's
/// builder derives it): a `KeysManager` from it has that node's key, for a bare peer that
/// speaks as the node while it is offline.
pub fn client_node_key_seed(client_dir: &std::path::Path) -> [u8; 32] {
    let entropy = std::fs::read(client_dir.join("keys_seed")).expect("ldk-node's keys_seed file");
    bitcoin::bip32::Xpriv::new_master(bitcoin::Network::Regtest, &entropy)
        .expect("a master key")
        .private_key
        .secret_bytes()
}

impl ClientScene {
    /// The scene with `lsp_sats` in the LSP's wallet.
    pub async fn start(lsp_sats: u64) -> ClientScene {
        ClientScene::start_with(lsp_sats, |_| {}).await
    }

    /// The scene with `lsp_sats` in the LSP's wallet and `edit` applied to its config.
    pub async fn start_with(
        lsp_sats: u64,
        edit: impl FnOnce(&mut lsp_node::config::Config),
    ) -> ClientScene {
        init_logging();
        let dir = tempfile::tempdir().unwrap();
        let devchain = start_devchain().await;
        let mut config = config_for(dir.path(), &devchain.base_url());
        edit(&mut config);
        let lsp = Builder::new(config.clone())
            .start()
            .await
            .expect("LSP starts");
        let operator = Operator::for_node(&lsp);
        let public_api = format!("http://{}", lsp.http_listen_addr().unwrap());
        fund(&devchain, &operator, lsp_sats).await;
        let client_dir = tempfile::tempdir().unwrap();
        let client = Arc::new(start_ldk_node(&devchain, client_dir.path(), |_| {}));
        open_channel_to_ldk(&devchain, &operator, &client, 400_000, PUSH_MSAT).await;
        ClientScene {
            _dirs: (dir, client_dir),
            devchain,
            lsp,
            config,
            operator,
            public_api,
            client,
        }
    }
}
