//! Finding the running node's operator API: its URL and its key.
//!
//! The URL is `--admin-url` when given, else `admin.listen` from `--config` (with the same
//! environment overrides the node applies), else the default 127.0.0.1:3001. The key is
//! `LSP_NODE_API_KEY` when set, else `admin.api_key` from the config, else the key file the node
//! wrote into its data directory (`--data-dir`, or `data_dir` from the config). Nothing is
//! created: a missing key file is an error naming the file.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::api::keys::{read_api_key_file, API_KEY_FILE};
use crate::config::{self, load::DEFAULT_ADMIN_LISTEN, ConfigOverrides};

use super::CliError;

/// How the operator commands find the node; shared by every operator subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// The node's config file: the operator API address, key and data directory come from it.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The node's data directory (where the generated API key file is); for `devchain`, the
    /// directory keeping the chain (in memory without it).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Base URL of the operator API, e.g. http://127.0.0.1:3001 (key from LSP_NODE_API_KEY).
    #[arg(long, value_name = "URL", global = true)]
    pub admin_url: Option<String>,
}

/// Where to send operator calls, with which key.
#[derive(Debug, Clone)]
pub struct ApiTarget {
    pub url: String,
    pub api_key: String,
}

/// Resolves the target from the arguments and the environment (`env` looks variables up).
pub fn resolve(
    args: &TargetArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ApiTarget, CliError> {
    let overrides = ConfigOverrides {
        data_dir: args.data_dir.clone(),
        ..Default::default()
    };
    let config = match &args.config {
        Some(path) => Some(config::load::load_with_env(path, &overrides, &env)?),
        None => None,
    };

    let url = match (&args.admin_url, &config) {
        (Some(url), _) => check_url(url)?,
        (None, Some(config)) => url_for(config.admin.listen)?,
        (None, None) => url_for(DEFAULT_ADMIN_LISTEN.parse().expect("static address"))?,
    };

    let env_key = env("LSP_NODE_API_KEY").filter(|k| !k.is_empty());
    let configured_key = config.as_ref().and_then(|c| c.admin.api_key.clone());
    let data_dir = config
        .as_ref()
        .map(|c| c.data_dir.clone())
        .or_else(|| args.data_dir.clone());
    let api_key = match (env_key.or(configured_key), data_dir) {
        (Some(key), _) => key,
        (None, Some(dir)) => read_api_key_file(&dir.join(API_KEY_FILE))?,
        (None, None) => {
            return Err(CliError::Usage(format!(
                "no operator API key: set LSP_NODE_API_KEY, or pass the node's --config or \
                 --data-dir so the key can be read from its {API_KEY_FILE} file"
            )))
        }
    };
    Ok(ApiTarget { url, api_key })
}

fn check_url(text: &str) -> Result<String, CliError> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(text.trim_end_matches('/').to_string())
        }
        _ => Err(CliError::Usage(format!(
            "--admin-url \"{text}\" is not an http URL such as http://127.0.0.1:3001"
        ))),
    }
}

/// The URL to reach a listener bound to `listen`: a wildcard address is reached on loopback.
fn url_for(listen: SocketAddr) -> Result<String, CliError> {
    if listen.port() == 0 {
        return Err(CliError::Usage(format!(
            "admin.listen is {listen}: with port 0 the node picks a port at start, so pass \
             --admin-url with the address it logged"
        )));
    }
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}", SocketAddr::new(ip, listen.port())))
}
