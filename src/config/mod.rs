//! Configuration: the typed settings every other room receives.
//!
//! Values come from a TOML file, then `LSP_NODE_*` environment variables, then CLI flags, in
//! that order of precedence (later wins). Everything is validated once, before anything is
//! created on disk; the rest of the crate never re-parses or re-checks configuration.
//!
//! - [`file`]: the TOML shape (unknown keys refused).
//! - [`load`]: file + environment + flags into a typed [`Config`], values checked.
//! - [`lsps1`]: the `[lsps1]` section: what the LSP sells, at what price, to whom.
//! - [`preflight`]: checks against the machine: data directory writable, ports free.

pub mod file;
pub mod load;
pub mod lsps1;
pub mod preflight;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use bitcoin::Network;

pub use load::{load, ConfigOverrides};
pub use preflight::preflight;

/// Why a configuration was refused. Each message is one sentence naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Syntax {
        file: String,
        line: Option<usize>,
        message: String,
    },
    #[error("`{key}` is not set: add it to {file}, or pass {flag} or {var}")]
    Missing {
        key: &'static str,
        file: String,
        flag: String,
        var: String,
    },
    #[error("invalid {origin}: {problem}")]
    Invalid { origin: String, problem: String },
    #[error("the data directory {} is not usable: {problem}", path.display())]
    DataDir { path: PathBuf, problem: String },
    #[error("{what} {addr} cannot be used: {problem}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        problem: String,
    },
}

/// Why `url` cannot be the public URL: an absolute `http://` or `https://` URL with a host and
/// no query, fragment or whitespace.
pub fn check_public_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the public URL must start with https:// (or http://)")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("the public URL has no host".into());
    }
    if url.contains(['?', '#']) || url.chars().any(char::is_whitespace) {
        return Err("the public URL may not hold a query, a fragment or whitespace".into());
    }
    Ok(())
}

impl HttpConfig {
    /// The base URL of links the node hands out (see [`HttpConfig::public_url`]), given the
    /// address the public listener is `bound` to; `None` when there is none to give.
    pub fn link_base(&self, network: Network, bound: SocketAddr) -> Option<String> {
        match &self.public_url {
            Some(url) => Some(url.clone()),
            None if network == Network::Regtest => Some(format!("http://{bound}")),
            None => None,
        }
    }
}

/// The complete, validated configuration of one node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bitcoin network the node runs on.
    pub network: Network,
    /// Directory holding the seed, the SQLite database and the generated admin API key.
    pub data_dir: PathBuf,
    pub chain: ChainConfig,
    pub node: NodeConfig,
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    /// Channel sales (LSPS1 over p2p and the HTTP mirror).
    pub lsps1: crate::config::lsps1::Lsps1Config,
}

/// Where the node reads the chain from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainSource {
    /// Any Esplora HTTP API (mutinynet, mainnet, or a devchain started elsewhere).
    Esplora { url: String },
    /// An embedded devchain, started by the node and served on `listen` so that wallets on the
    /// same machine can share it.
    Dev { listen: SocketAddr },
}

#[derive(Debug, Clone)]
pub struct ChainConfig {
    pub source: ChainSource,
    /// How often the wallet and LDK are synced with the chain source.
    pub sync_interval_secs: u64,
    /// For `Dev`: mine one block every this many seconds (0 = only on request).
    pub dev_block_interval_secs: u64,
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Address the Lightning p2p listener binds to.
    pub p2p_listen: SocketAddr,
    /// Public addresses announced in node_announcement (host:port), if any.
    pub announce_addresses: Vec<String>,
    pub alias: Option<String>,
    /// RGB color as 6 hex digits.
    pub color: String,
    /// Accept channels opened to us by other nodes.
    pub accept_inbound_channels: bool,
    /// Smallest inbound channel accepted, in sats.
    pub min_inbound_channel_sat: u64,
    /// Where the BIP39 mnemonic lives; `None` means `<data_dir>/seed`.
    pub seed_file: Option<PathBuf>,
    /// Funding the channels we open together; `None` funds each by its own transaction.
    pub funding_batch: Option<FundingBatchConfig>,
}

/// Batched funding (`node.funding_batch_window_ms` > 0): channels whose funding LDK asks for
/// within one window are funded by one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FundingBatchConfig {
    /// How long the first channel ready for funding waits for others.
    pub window: std::time::Duration,
    /// How long a batch may wait for every peer's signature before the peers that have not
    /// signed are dropped from it (the others are funded again without them).
    pub signing_timeout: std::time::Duration,
}

/// The public HTTP listener (the LSPS1 mirror).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address of the public LSPS1 HTTP mirror; `None` serves no public HTTP.
    pub listen: Option<SocketAddr>,
    /// The URL clients reach the public listener at (`https://lsp.example/`, no query), for
    /// the links the node hands out (LNURL-channel). Without it no such link is made, except on
    /// regtest, where `http://<listen>` serves.
    pub public_url: Option<String>,
    pub limits: HttpLimits,
}

/// Protection of the public HTTP mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests per minute each client address may make, sustained. Default 120.
    pub rate_limit_per_minute: u32,
    /// Requests a client address may make at once before the per-minute rate applies.
    /// Default 20.
    pub rate_limit_burst: u32,
    /// Orders each client address may create per hour (all at once, at most). Every order
    /// holds liquidity until it is paid or expires. Default 10.
    pub orders_per_hour: u32,
    /// Web origins allowed to call the API from a browser (`https://wallet.example`, or
    /// `*`). Default none: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client the limits count against.
    /// Default none: every request counts against the address it came from.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            rate_limit_per_minute: 120,
            rate_limit_burst: 20,
            orders_per_hour: 10,
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Address of the operator API (keep it on loopback or behind a proxy).
    pub listen: SocketAddr,
    /// API key; generated on first start and written to the data directory when absent.
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, e.g. `info` or `lsp_node=debug,info`.
    pub level: String,
}

impl Config {
    /// Where the seed lives: `node.seed_file`, or `<data_dir>/seed`.
    pub fn seed_path(&self) -> PathBuf {
        self.node
            .seed_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("seed"))
    }

    /// A regtest configuration with an embedded devchain and every listener on 127.0.0.1 port 0:
    /// what tests and embedders start from.
    pub fn regtest_ephemeral(data_dir: PathBuf) -> Self {
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("static address");
        Config {
            network: Network::Regtest,
            data_dir,
            chain: ChainConfig {
                source: ChainSource::Dev { listen: any_port },
                sync_interval_secs: 5,
                dev_block_interval_secs: 0,
            },
            node: NodeConfig {
                p2p_listen: any_port,
                announce_addresses: Vec::new(),
                alias: None,
                color: "f7931a".to_string(),
                accept_inbound_channels: true,
                min_inbound_channel_sat: 20_000,
                seed_file: None,
                funding_batch: None,
            },
            http: HttpConfig {
                listen: Some(any_port),
                public_url: None,
                limits: HttpLimits::default(),
            },
            admin: AdminConfig {
                listen: any_port,
                api_key: None,
            },
            log: LogConfig {
                format: LogFormat::Human,
                level: "info".to_string(),
            },
            lsps1: crate::config::lsps1::Lsps1Config::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_is_an_absolute_http_url_without_query() {
        for good in [
            "https://lsp.example",
            "https://lsp.example/lsp/",
            "http://127.0.0.1:3000",
        ] {
            assert_eq!(check_public_url(good), Ok(()), "{good}");
        }
        for bad in [
            "lsp.example",
            "ftp://lsp.example",
            "https://",
            "https://:443/x",
            "https://lsp.example/?a=1",
            "https://lsp.example/#top",
            "https://lsp example",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_need_a_public_url_except_on_regtest() {
        let bound: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let mut http = HttpConfig {
            listen: Some(bound),
            public_url: None,
            limits: HttpLimits::default(),
        };
        assert_eq!(http.link_base(Network::Bitcoin, bound), None);
        assert_eq!(
            http.link_base(Network::Regtest, bound).as_deref(),
            Some("http://127.0.0.1:3000")
        );
        http.public_url = Some("https://lsp.example".into());
        assert_eq!(
            http.link_base(Network::Bitcoin, bound).as_deref(),
            Some("https://lsp.example")
        );
    }
}
