//! Turning a TOML file, `LSP_NODE_*` environment variables and CLI flags into one [`Config`].
//!
//! Each overridable key is looked up flag first, then environment, then file, and the place a
//! value came from travels with it, so an error names exactly what to fix ("flag --p2p-listen",
//! "environment variable LSP_NODE_NETWORK", "`admin.listen` in config/regtest.toml").
//! Nothing here touches the disk except reading the config file; see [`super::preflight`] for
//! the checks that look at the machine (data directory, ports).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bitcoin::Network;

use super::file::FileConfig;
use super::{
    AdminConfig, ChainConfig, ChainSource, Config, ConfigError, FundingBatchConfig, HttpConfig,
    HttpLimits, LogConfig, LogFormat, NodeConfig,
};

/// Default address of the embedded devchain's Esplora API.
pub const DEFAULT_DEV_LISTEN: &str = "127.0.0.1:3002";
/// Default address of the operator API.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:3001";
/// Default address of the Lightning p2p listener.
pub const DEFAULT_P2P_LISTEN: &str = "127.0.0.1:9735";
const DEFAULT_SYNC_INTERVAL_SECS: u64 = 30;
const DEFAULT_COLOR: &str = "f7931a";
const DEFAULT_MIN_INBOUND_CHANNEL_SAT: u64 = 20_000;
const MAX_FUNDING_BATCH_WINDOW_MS: u64 = 30_000;
const DEFAULT_FUNDING_BATCH_SIGNING_TIMEOUT_SECS: u64 = 30;
/// node_announcement carries the alias in 32 bytes.
const MAX_ALIAS_BYTES: usize = 32;

/// Settings given as CLI flags: the highest precedence. Values are kept as text so that a bad
/// one is reported like any other bad value, naming the flag.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    pub data_dir: Option<PathBuf>,
    pub network: Option<String>,
    pub esplora_url: Option<String>,
    pub dev_listen: Option<String>,
    pub p2p_listen: Option<String>,
    pub http_listen: Option<String>,
    pub admin_listen: Option<String>,
    pub seed_file: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
}

/// Environment variables read by the loader, with the config key each one overrides.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("LSP_NODE_NETWORK", "network"),
    ("LSP_NODE_DATA_DIR", "data_dir"),
    (
        "LSP_NODE_ESPLORA_URL",
        "chain.esplora_url (and chain.source = \"esplora\")",
    ),
    ("LSP_NODE_DEV_LISTEN", "chain.dev_listen"),
    ("LSP_NODE_P2P_LISTEN", "node.p2p_listen"),
    ("LSP_NODE_ALIAS", "node.alias"),
    ("LSP_NODE_SEED_FILE", "node.seed_file"),
    ("LSP_NODE_HTTP_LISTEN", "http.listen"),
    ("LSP_NODE_HTTP_PUBLIC_URL", "http.public_url"),
    ("LSP_NODE_ADMIN_LISTEN", "admin.listen"),
    ("LSP_NODE_API_KEY", "admin.api_key"),
    ("LSP_NODE_LOG_LEVEL", "log.level"),
    ("LSP_NODE_LOG_FORMAT", "log.format"),
];

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    File { path: String, key: &'static str },
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, key } => write!(f, "`{key}` in {path}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

struct Value<T> {
    value: T,
    origin: Origin,
}

impl Value<String> {
    fn invalid(&self, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_string(),
            problem: problem.into(),
        }
    }
}

/// Reads `path` and resolves it with the process environment and `flags`.
pub fn load(path: &Path, flags: &ConfigOverrides) -> Result<Config, ConfigError> {
    load_with_env(path, flags, |var| std::env::var(var).ok())
}

/// As [`load`], with the environment given as a lookup function (tests use a map).
pub fn load_with_env(
    path: &Path,
    flags: &ConfigOverrides,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, &path.display().to_string(), flags, env)
}

/// Resolves the TOML `text` (named `label` in errors) with `env` and `flags`.
pub fn parse(
    text: &str,
    label: &str,
    flags: &ConfigOverrides,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let file: FileConfig = toml::from_str(text).map_err(|e| toml_error(text, label, e))?;
    Resolver {
        file,
        label: label.to_string(),
        flags,
        env: &env,
    }
    .resolve()
}

fn toml_error(text: &str, label: &str, error: toml::de::Error) -> ConfigError {
    let line = error.span().map(|span| {
        text.as_bytes()[..span.start.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    });
    let message = error
        .message()
        .trim()
        .trim_end_matches('.')
        .replace('\n', " ");
    ConfigError::Syntax {
        file: label.to_string(),
        line,
        message,
    }
}

struct Resolver<'a> {
    file: FileConfig,
    label: String,
    flags: &'a ConfigOverrides,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    /// The value of one key: the flag, else the environment variable, else the file.
    fn pick(
        &self,
        flag: (Option<String>, &'static str),
        env_var: Option<&'static str>,
        file: (Option<String>, &'static str),
    ) -> Option<Value<String>> {
        if let Some(value) = flag.0 {
            return Some(Value {
                value,
                origin: Origin::Flag(flag.1),
            });
        }
        if let Some(var) = env_var {
            if let Some(value) = (self.env)(var).filter(|v| !v.is_empty()) {
                return Some(Value {
                    value,
                    origin: Origin::Env(var),
                });
            }
        }
        file.0.map(|value| Value {
            value,
            origin: Origin::File {
                path: self.label.clone(),
                key: file.1,
            },
        })
    }

    fn file_value(&self, value: Option<String>, key: &'static str) -> Option<Value<String>> {
        self.pick((None, ""), None, (value, key))
    }

    /// A value of the config file's `key` that cannot be used.
    fn invalid_file_key(&self, key: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: Origin::File {
                path: self.label.clone(),
                key,
            }
            .to_string(),
            problem: problem.into(),
        }
    }

    fn missing(&self, key: &'static str, flag: &str, var: &str) -> ConfigError {
        ConfigError::Missing {
            key,
            file: self.label.clone(),
            flag: flag.to_string(),
            var: var.to_string(),
        }
    }

    fn resolve(self) -> Result<Config, ConfigError> {
        let flags = self.flags;
        let file = &self.file;
        let path_text = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());

        let network = self
            .pick(
                (flags.network.clone(), "--network"),
                Some("LSP_NODE_NETWORK"),
                (file.network.clone(), "network"),
            )
            .ok_or_else(|| self.missing("network", "--network", "LSP_NODE_NETWORK"))?;
        let network = parse_network(&network)?;

        let data_dir = self
            .pick(
                (path_text(&flags.data_dir), "--data-dir"),
                Some("LSP_NODE_DATA_DIR"),
                (path_text(&file.data_dir), "data_dir"),
            )
            .ok_or_else(|| self.missing("data_dir", "--data-dir", "LSP_NODE_DATA_DIR"))?;
        if data_dir.value.trim().is_empty() {
            return Err(data_dir.invalid("the data directory path is empty"));
        }
        let data_dir = PathBuf::from(data_dir.value);

        let chain = self.resolve_chain(network)?;
        let node = self.resolve_node()?;

        let http_listen = self
            .pick(
                (flags.http_listen.clone(), "--http-listen"),
                Some("LSP_NODE_HTTP_LISTEN"),
                (file.http.listen.clone(), "http.listen"),
            )
            .map(|v| parse_socket_addr(&v, "127.0.0.1:3000"))
            .transpose()?;

        let admin_listen = self
            .pick(
                (flags.admin_listen.clone(), "--admin-listen"),
                Some("LSP_NODE_ADMIN_LISTEN"),
                (file.admin.listen.clone(), "admin.listen"),
            )
            .map(|v| parse_socket_addr(&v, DEFAULT_ADMIN_LISTEN))
            .transpose()?
            .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.parse().expect("static address"));
        let api_key = self.pick(
            (None, ""),
            Some("LSP_NODE_API_KEY"),
            (file.admin.api_key.clone(), "admin.api_key"),
        );
        if let Some(key) = &api_key {
            check_api_key(key)?;
        }

        if http_listen.is_some() {
            check_advertised_p2p(network, &node)?;
        }
        let public_url = self
            .pick(
                (None, ""),
                Some("LSP_NODE_HTTP_PUBLIC_URL"),
                (file.http.public_url.clone(), "http.public_url"),
            )
            .map(|url| {
                super::check_public_url(&url.value)
                    .map(|()| url.value.trim_end_matches('/').to_string())
                    .map_err(|problem| url.invalid(problem))
            })
            .transpose()?;

        let log = self.resolve_log()?;

        let lsps1 = self.file.lsps1.clone();
        lsps1.validate().map_err(|e| ConfigError::Invalid {
            origin: format!("`[lsps1]` in {}", self.label),
            problem: e.to_string(),
        })?;

        Ok(Config {
            network,
            data_dir,
            chain,
            node,
            http: HttpConfig {
                listen: http_listen,
                public_url,
                limits: self.resolve_http_limits()?,
            },
            admin: AdminConfig {
                listen: admin_listen,
                api_key: api_key.map(|k| k.value),
            },
            log,
            lsps1,
        })
    }

    fn resolve_chain(&self, network: Network) -> Result<ChainConfig, ConfigError> {
        let flags = self.flags;
        let chain = &self.file.chain;
        let esplora_override = self.pick(
            (flags.esplora_url.clone(), "--esplora-url"),
            Some("LSP_NODE_ESPLORA_URL"),
            (None, ""),
        );
        let source_kind = self.file_value(chain.source.clone(), "chain.source");
        let source = match (esplora_override, source_kind) {
            // An Esplora URL given as a flag or in the environment means "use this Esplora".
            (Some(url), _) => ChainSource::Esplora {
                url: parse_esplora_url(&url)?,
            },
            (None, None) => {
                return Err(self.missing("chain.source", "--esplora-url", "LSP_NODE_ESPLORA_URL"))
            }
            (None, Some(kind)) => match kind.value.as_str() {
                "esplora" => {
                    let url = self
                        .file_value(chain.esplora_url.clone(), "chain.esplora_url")
                        .ok_or_else(|| {
                            self.missing(
                                "chain.esplora_url",
                                "--esplora-url",
                                "LSP_NODE_ESPLORA_URL",
                            )
                        })?;
                    ChainSource::Esplora {
                        url: parse_esplora_url(&url)?,
                    }
                }
                "dev" => {
                    let listen = self
                        .pick(
                            (flags.dev_listen.clone(), "--dev-listen"),
                            Some("LSP_NODE_DEV_LISTEN"),
                            (chain.dev_listen.clone(), "chain.dev_listen"),
                        )
                        .map(|v| parse_socket_addr(&v, DEFAULT_DEV_LISTEN))
                        .transpose()?
                        .unwrap_or_else(|| DEFAULT_DEV_LISTEN.parse().expect("static address"));
                    if network != Network::Regtest {
                        return Err(kind.invalid(format!(
                            "the embedded devchain is a regtest chain, but the network is {network}; \
                             set network = \"regtest\" or use chain.source = \"esplora\""
                        )));
                    }
                    ChainSource::Dev { listen }
                }
                other => {
                    return Err(kind.invalid(format!(
                        "expected \"dev\" (embedded devchain) or \"esplora\", got \"{other}\""
                    )))
                }
            },
        };

        let sync_interval_secs = chain
            .sync_interval_secs
            .unwrap_or(DEFAULT_SYNC_INTERVAL_SECS);
        if sync_interval_secs == 0 {
            return Err(self.invalid_file_key(
                "chain.sync_interval_secs",
                "the sync interval must be at least 1 second",
            ));
        }
        Ok(ChainConfig {
            source,
            sync_interval_secs,
            dev_block_interval_secs: chain.dev_block_interval_secs.unwrap_or(0),
        })
    }

    fn resolve_node(&self) -> Result<NodeConfig, ConfigError> {
        let flags = self.flags;
        let node = &self.file.node;
        let p2p_listen = self
            .pick(
                (flags.p2p_listen.clone(), "--p2p-listen"),
                Some("LSP_NODE_P2P_LISTEN"),
                (node.p2p_listen.clone(), "node.p2p_listen"),
            )
            .map(|v| parse_socket_addr(&v, DEFAULT_P2P_LISTEN))
            .transpose()?
            .unwrap_or_else(|| DEFAULT_P2P_LISTEN.parse().expect("static address"));

        let mut announce_addresses = Vec::new();
        for address in node.announce_addresses.clone().unwrap_or_default() {
            let value = Value {
                value: address,
                origin: Origin::File {
                    path: self.label.clone(),
                    key: "node.announce_addresses",
                },
            };
            check_host_port(&value)?;
            announce_addresses.push(value.value);
        }

        let alias = self.pick(
            (None, ""),
            Some("LSP_NODE_ALIAS"),
            (node.alias.clone(), "node.alias"),
        );
        if let Some(alias) = &alias {
            if alias.value.len() > MAX_ALIAS_BYTES {
                return Err(alias.invalid(format!(
                    "the alias is {} bytes long; a node alias holds at most {MAX_ALIAS_BYTES}",
                    alias.value.len()
                )));
            }
        }

        let color = self
            .file_value(node.color.clone(), "node.color")
            .map(|color| {
                let hex = color.value.trim_start_matches('#').to_ascii_lowercase();
                if hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(hex)
                } else {
                    Err(color.invalid(format!(
                        "expected an RGB color as 6 hex digits such as \"f7931a\", got \"{}\"",
                        color.value
                    )))
                }
            })
            .transpose()?
            .unwrap_or_else(|| DEFAULT_COLOR.to_string());

        let seed_file = self
            .pick(
                (
                    flags.seed_file.as_ref().map(|p| p.display().to_string()),
                    "--seed-file",
                ),
                Some("LSP_NODE_SEED_FILE"),
                (
                    node.seed_file.as_ref().map(|p| p.display().to_string()),
                    "node.seed_file",
                ),
            )
            .map(|v| {
                if v.value.trim().is_empty() {
                    Err(v.invalid("the seed file path is empty"))
                } else {
                    Ok(PathBuf::from(v.value))
                }
            })
            .transpose()?;

        Ok(NodeConfig {
            p2p_listen,
            announce_addresses,
            alias: alias.map(|a| a.value),
            color,
            accept_inbound_channels: node.accept_inbound_channels.unwrap_or(true),
            min_inbound_channel_sat: node
                .min_inbound_channel_sat
                .unwrap_or(DEFAULT_MIN_INBOUND_CHANNEL_SAT),
            seed_file,
            funding_batch: self.resolve_funding_batch()?,
        })
    }

    fn resolve_funding_batch(&self) -> Result<Option<FundingBatchConfig>, ConfigError> {
        let node = &self.file.node;
        let window = node.funding_batch_window_ms.unwrap_or(0);
        if window > MAX_FUNDING_BATCH_WINDOW_MS {
            return Err(self.invalid_file_key(
                "node.funding_batch_window_ms",
                format!("a funding batch window is at most {MAX_FUNDING_BATCH_WINDOW_MS} ms (channels wait for their funding that long)"),
            ));
        }
        let signing_timeout = node
            .funding_batch_signing_timeout_secs
            .unwrap_or(DEFAULT_FUNDING_BATCH_SIGNING_TIMEOUT_SECS);
        if signing_timeout == 0 {
            return Err(self.invalid_file_key(
                "node.funding_batch_signing_timeout_secs",
                "the signing timeout must be at least 1 second",
            ));
        }
        Ok((window > 0).then(|| FundingBatchConfig {
            window: std::time::Duration::from_millis(window),
            signing_timeout: std::time::Duration::from_secs(signing_timeout),
        }))
    }

    fn resolve_http_limits(&self) -> Result<HttpLimits, ConfigError> {
        let http = &self.file.http;
        let defaults = HttpLimits::default();
        let invalid = |key: &'static str, problem: String| self.invalid_file_key(key, problem);
        let positive = |key: &'static str, value: Option<u32>, default: u32| match value {
            Some(0) => Err(invalid(key, "must be at least 1".to_string())),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let origins = http.cors_allowed_origins.clone().unwrap_or_default();
        for origin in &origins {
            let web = origin.starts_with("https://") || origin.starts_with("http://");
            if origin != "*" && (!web || origin.contains(char::is_whitespace)) {
                return Err(invalid(
                    "http.cors_allowed_origins",
                    format!(
                        "\"{origin}\" is not a web origin such as https://wallet.example, or \"*\""
                    ),
                ));
            }
        }
        let trusted_proxies = http
            .trusted_proxies
            .iter()
            .flatten()
            .map(|proxy| {
                proxy
                    .parse::<IpAddr>()
                    .map(|ip| ip.to_canonical())
                    .map_err(|_| {
                        invalid(
                            "http.trusted_proxies",
                            format!("\"{proxy}\" is not an IP address such as 127.0.0.1 or ::1"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HttpLimits {
            rate_limit_per_minute: positive(
                "http.rate_limit_per_minute",
                http.rate_limit_per_minute,
                defaults.rate_limit_per_minute,
            )?,
            rate_limit_burst: positive(
                "http.rate_limit_burst",
                http.rate_limit_burst,
                defaults.rate_limit_burst,
            )?,
            orders_per_hour: positive(
                "http.orders_per_hour",
                http.orders_per_hour,
                defaults.orders_per_hour,
            )?,
            cors_allowed_origins: origins,
            trusted_proxies,
        })
    }

    fn resolve_log(&self) -> Result<LogConfig, ConfigError> {
        let flags = self.flags;
        let log = &self.file.log;
        let format = match self.pick(
            (flags.log_format.clone(), "--log-format"),
            Some("LSP_NODE_LOG_FORMAT"),
            (log.format.clone(), "log.format"),
        ) {
            None => LogFormat::Human,
            Some(v) => match v.value.as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                other => {
                    return Err(
                        v.invalid(format!("expected \"human\" or \"json\", got \"{other}\""))
                    )
                }
            },
        };
        let level = match self.pick(
            (flags.log_level.clone(), "--log-level"),
            Some("LSP_NODE_LOG_LEVEL"),
            (log.level.clone(), "log.level"),
        ) {
            None => "info".to_string(),
            Some(v) => {
                if let Err(e) = tracing_subscriber::EnvFilter::try_new(&v.value) {
                    return Err(v.invalid(format!(
                        "\"{}\" is not a log filter such as \"info\" or \"lsp_node=debug,info\" ({e})",
                        v.value
                    )));
                }
                v.value
            }
        };
        Ok(LogConfig { format, level })
    }
}

fn parse_network(value: &Value<String>) -> Result<Network, ConfigError> {
    let network = match value.value.as_str() {
        "mainnet" => Some(Network::Bitcoin),
        text => Network::from_str(text).ok(),
    };
    network.ok_or_else(|| {
        value.invalid(format!(
            "expected one of bitcoin (or mainnet), testnet, testnet4, signet, regtest; got \"{}\"",
            value.value
        ))
    })
}

fn parse_socket_addr(value: &Value<String>, example: &str) -> Result<SocketAddr, ConfigError> {
    SocketAddr::from_str(value.value.trim()).map_err(|_| {
        value.invalid(format!(
            "expected an IP address and port such as {example}, got \"{}\"",
            value.value
        ))
    })
}

fn parse_esplora_url(value: &Value<String>) -> Result<String, ConfigError> {
    let text = value.value.trim();
    let url = reqwest::Url::parse(text).map_err(|e| {
        value.invalid(format!(
            "\"{text}\" is not a URL ({e}); expected an Esplora API base such as https://mutinynet.com/api"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(value.invalid(format!(
            "\"{text}\" is not an http(s) URL; expected an Esplora API base such as https://mutinynet.com/api"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(value.invalid(format!(
            "\"{text}\" has a query or fragment; give only the Esplora API base URL"
        )));
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// `host:port` where host is an IP address or a DNS name (announced addresses).
/// The public HTTP API tells wallets where to connect: `node.announce_addresses`, else the p2p
/// listen address. An unspecified or loopback address there reaches no wallet, so outside
/// regtest it is refused (regtest sandboxes run on one machine; the node warns at start).
fn check_advertised_p2p(network: Network, node: &NodeConfig) -> Result<(), ConfigError> {
    let ip = node.p2p_listen.ip();
    if network == Network::Regtest
        || !node.announce_addresses.is_empty()
        || !(ip.is_unspecified() || ip.is_loopback())
    {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        origin: "node.announce_addresses".to_string(),
        problem: format!(
            "it is empty and node.p2p_listen is {}, so the public HTTP API would tell wallets to connect to an address they cannot reach; set node.announce_addresses to this node's public host:port",
            node.p2p_listen
        ),
    })
}

fn check_host_port(value: &Value<String>) -> Result<(), ConfigError> {
    let bad = || {
        value.invalid(format!(
            "expected host:port such as 203.0.113.7:9735 or node.example.com:9735, got \"{}\"",
            value.value
        ))
    };
    if SocketAddr::from_str(&value.value).is_ok() {
        return Ok(());
    }
    let (host, port) = value.value.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !host_ok || !port.parse::<u16>().is_ok_and(|p| p > 0) {
        return Err(bad());
    }
    Ok(())
}

fn check_api_key(key: &Value<String>) -> Result<(), ConfigError> {
    const MIN_LEN: usize = 16;
    if !key.value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(key.invalid("the API key must be printable ASCII without spaces"));
    }
    if key.value.len() < MIN_LEN {
        return Err(key.invalid(format!(
            "the API key is shorter than {MIN_LEN} characters; use a long random value (or leave it \
             unset and the node generates one)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
