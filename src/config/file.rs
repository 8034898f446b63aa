//! The TOML file's shape: every section and key a config file may contain, nothing else
//! (`deny_unknown_fields`, so a misspelt key is an error instead of a silently ignored setting).
//!
//! Values stay close to their text here; [`super::load`] turns them into the typed
//! [`super::Config`], after the environment and flags have had their say.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub network: Option<String>,
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub chain: FileChain,
    #[serde(default)]
    pub node: FileNode,
    #[serde(default)]
    pub http: FileHttp,
    #[serde(default)]
    pub admin: FileAdmin,
    #[serde(default)]
    pub log: FileLog,
    /// Channel sales; see [`crate::config::lsps1`] for every key and its default.
    #[serde(default)]
    pub lsps1: crate::config::lsps1::Lsps1Config,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChain {
    /// `dev` (embedded devchain) or `esplora`.
    pub source: Option<String>,
    pub esplora_url: Option<String>,
    pub dev_listen: Option<String>,
    pub dev_block_interval_secs: Option<u64>,
    pub sync_interval_secs: Option<u64>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNode {
    pub p2p_listen: Option<String>,
    pub announce_addresses: Option<Vec<String>>,
    pub alias: Option<String>,
    pub color: Option<String>,
    pub accept_inbound_channels: Option<bool>,
    pub min_inbound_channel_sat: Option<u64>,
    pub seed_file: Option<PathBuf>,
    pub funding_batch_window_ms: Option<u64>,
    pub funding_batch_signing_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHttp {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub orders_per_hour: Option<u32>,
    pub cors_allowed_origins: Option<Vec<String>>,
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    pub listen: Option<String>,
    pub api_key: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLog {
    /// `human` or `json`.
    pub format: Option<String>,
    pub level: Option<String>,
}

/// The settings in effect, as a config file (what `lsp-node check-config` prints). The API key
/// is never printed; a comment says whether one is configured.
pub fn render(config: &super::Config) -> String {
    use super::{ChainSource, LogFormat};
    let (source, esplora_url, dev_listen) = match &config.chain.source {
        ChainSource::Esplora { url } => ("esplora", Some(url.clone()), None),
        ChainSource::Dev { listen } => ("dev", None, Some(listen.to_string())),
    };
    let file = FileConfig {
        network: Some(config.network.to_string()),
        data_dir: Some(config.data_dir.clone()),
        chain: FileChain {
            source: Some(source.to_string()),
            esplora_url,
            dev_listen,
            dev_block_interval_secs: Some(config.chain.dev_block_interval_secs),
            sync_interval_secs: Some(config.chain.sync_interval_secs),
        },
        node: FileNode {
            p2p_listen: Some(config.node.p2p_listen.to_string()),
            announce_addresses: Some(config.node.announce_addresses.clone()),
            alias: config.node.alias.clone(),
            color: Some(config.node.color.clone()),
            accept_inbound_channels: Some(config.node.accept_inbound_channels),
            min_inbound_channel_sat: Some(config.node.min_inbound_channel_sat),
            seed_file: Some(config.seed_path()),
            funding_batch_window_ms: Some(
                config
                    .node
                    .funding_batch
                    .map_or(0, |batch| batch.window.as_millis() as u64),
            ),
            funding_batch_signing_timeout_secs: config
                .node
                .funding_batch
                .map(|batch| batch.signing_timeout.as_secs()),
        },
        http: FileHttp {
            listen: config.http.listen.map(|a| a.to_string()),
            public_url: config.http.public_url.clone(),
            rate_limit_per_minute: Some(config.http.limits.rate_limit_per_minute),
            rate_limit_burst: Some(config.http.limits.rate_limit_burst),
            orders_per_hour: Some(config.http.limits.orders_per_hour),
            cors_allowed_origins: Some(config.http.limits.cors_allowed_origins.clone()),
            trusted_proxies: Some(
                config
                    .http
                    .limits
                    .trusted_proxies
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect(),
            ),
        },
        admin: FileAdmin {
            listen: Some(config.admin.listen.to_string()),
            api_key: None,
        },
        log: FileLog {
            format: Some(match config.log.format {
                LogFormat::Human => "human".to_string(),
                LogFormat::Json => "json".to_string(),
            }),
            level: Some(config.log.level.clone()),
        },
        lsps1: config.lsps1.clone(),
    };
    let key_note = if config.admin.api_key.is_some() {
        "# admin.api_key is configured (not shown)\n"
    } else {
        "# admin.api_key is not configured: the node uses <data_dir>/admin-api-key\n"
    };
    let body = toml::to_string(&file).expect("the config shape serializes to TOML");
    format!("{key_note}{body}")
}
