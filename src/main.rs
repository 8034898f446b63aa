//! The `lsp-node` binary: parse arguments, set up logging, run until a signal.
//!
//! Subcommands: `run` (the node), `check-config` (validate and print the settings in effect),
//! `devchain` (a standalone regtest chain), and the operator commands of [`lsp_node::cli`],
//! which talk to a running node's operator API.
//!
//! Exit codes: 0 success, 2 bad command line or configuration (nothing was started or written),
//! 1 any other failure.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use lsp_node::cli::{self, client::OperatorClient, CliError, OperatorCommand, TargetArgs};
use lsp_node::config::{self, Config, ConfigOverrides, LogFormat};

#[derive(Parser)]
#[command(
    name = "lsp-node",
    version,
    about = "A Lightning Service Provider in one binary: an LDK node selling inbound channels (LSPS1)."
)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    /// Operator commands: print the node's JSON answer instead of readable text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node with the configuration in --config (plus environment and flags).
    Run(NodeFlags),
    /// Validate the configuration as `run` would, and print the settings in effect.
    CheckConfig(NodeFlags),
    /// Run a standalone regtest devchain serving the Esplora API; with --data-dir DIR it is
    /// kept in DIR/devchain.sqlite and comes back from there at the next start.
    Devchain(DevchainArgs),
    #[command(flatten)]
    Operator(OperatorCommand),
}

/// Flags overriding the config file (and the `LSP_NODE_*` environment variables).
#[derive(Args)]
struct NodeFlags {
    /// bitcoin, testnet, testnet4, signet or regtest.
    #[arg(long)]
    network: Option<String>,
    /// Use this Esplora API (sets chain.source = "esplora").
    #[arg(long, value_name = "URL")]
    esplora_url: Option<String>,
    /// Address of the embedded devchain's Esplora API (chain.source = "dev").
    #[arg(long, value_name = "IP:PORT")]
    dev_listen: Option<String>,
    /// Lightning p2p listen address.
    #[arg(long, value_name = "IP:PORT")]
    p2p_listen: Option<String>,
    /// Public HTTP (LSPS1 mirror) listen address.
    #[arg(long, value_name = "IP:PORT")]
    http_listen: Option<String>,
    /// Operator API listen address.
    #[arg(long, value_name = "IP:PORT")]
    admin_listen: Option<String>,
    /// BIP39 seed file (default: <data_dir>/seed).
    #[arg(long, value_name = "FILE")]
    seed_file: Option<PathBuf>,
    /// Log filter, e.g. `info` or `lsp_node=debug,info`.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// `human` or `json`.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
}

#[derive(Args)]
struct DevchainArgs {
    /// Address to serve the Esplora API and the /dev control routes on.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:3002")]
    listen: std::net::SocketAddr,
    /// Mine a block every this many seconds (default: only when asked via /dev/mine).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    block_interval: Option<u64>,
}

const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(EXIT_FAILURE, format!("cannot start the async runtime: {e}")),
    };
    match &cli.command {
        Command::Run(flags) => run(&runtime, &cli.target, flags),
        Command::CheckConfig(flags) => check_config(&cli.target, flags),
        Command::Devchain(args) => devchain(&runtime, args, cli.target.data_dir.clone()),
        Command::Operator(command) => operator(&runtime, &cli.target, command, cli.json),
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// Loads and fully validates the configuration, as `run` needs it.
fn load_config(target: &TargetArgs, flags: &NodeFlags) -> Result<Config, String> {
    let path = target
        .config
        .as_ref()
        .ok_or("no configuration given: pass --config FILE (see config/regtest.toml)")?;
    let overrides = ConfigOverrides {
        data_dir: target.data_dir.clone(),
        network: flags.network.clone(),
        esplora_url: flags.esplora_url.clone(),
        dev_listen: flags.dev_listen.clone(),
        p2p_listen: flags.p2p_listen.clone(),
        http_listen: flags.http_listen.clone(),
        admin_listen: flags.admin_listen.clone(),
        seed_file: flags.seed_file.clone(),
        log_level: flags.log_level.clone(),
        log_format: flags.log_format.clone(),
    };
    let config = config::load(path, &overrides).map_err(|e| e.to_string())?;
    config::preflight(&config).map_err(|e| e.to_string())?;
    Ok(config)
}

fn check_config(target: &TargetArgs, flags: &NodeFlags) -> ExitCode {
    match load_config(target, flags) {
        Ok(config) => {
            print!("{}", config::file::render(&config));
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_CONFIG, e),
    }
}

fn init_tracing(log: &config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::new(&log.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs())
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Colour codes only for a person at a terminal: not for journald, files or pipes, and not
/// when `NO_COLOR` is set to anything (https://no-color.org).
fn colour_logs() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

fn run(runtime: &tokio::runtime::Runtime, target: &TargetArgs, flags: &NodeFlags) -> ExitCode {
    let config = match load_config(target, flags) {
        Ok(config) => config,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    init_tracing(&config.log);
    match runtime.block_on(node_runner::run_until_signal(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_configuration() => fail(EXIT_CONFIG, e),
        Err(e) => fail(EXIT_FAILURE, e),
    }
}

/// `data_dir` is the global `--data-dir`: where the chain is kept (in memory when absent).
fn devchain(
    runtime: &tokio::runtime::Runtime,
    args: &DevchainArgs,
    data_dir: Option<PathBuf>,
) -> ExitCode {
    init_tracing(&config::LogConfig {
        format: LogFormat::Human,
        level: "info".to_string(),
    });
    let run = node_runner::run_devchain(args.listen, args.block_interval, data_dir);
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_FAILURE, e),
    }
}

fn operator(
    runtime: &tokio::runtime::Runtime,
    target: &TargetArgs,
    command: &OperatorCommand,
    json: bool,
) -> ExitCode {
    let outcome = runtime.block_on(async {
        let api = cli::target::resolve(target, |var| std::env::var(var).ok())?;
        let client = OperatorClient::new(&api.url, api.api_key)?;
        cli::commands::run(command, &client, json).await
    });
    match outcome {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(CliError::Outcome(text)) => {
            println!("{text}");
            ExitCode::from(EXIT_FAILURE)
        }
        Err(e) => fail(e.exit_code() as u8, e),
    }
}

/// The parts of `run` and `devchain` that start the node and the devchain.
mod node_runner {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use lsp_node::config::Config;
    use lsp_node::devchain::{self, DevchainOptions};

    /// Starts the node, waits for SIGINT/SIGTERM, stops it (persisting everything).
    pub async fn run_until_signal(config: Config) -> Result<(), lsp_node::AppError> {
        let node = lsp_node::Builder::new(config).start().await?;
        tracing::info!(
            node_id = %node.node_id(),
            p2p = %node.p2p_listen_addr(),
            operator_api = %node.admin_listen_addr(),
            "node running; stop it with Ctrl-C or SIGTERM"
        );
        if let Some(public_api) = node.http_listen_addr() {
            tracing::info!(
                public_api = %public_api,
                "public LSPS1 HTTP API serving; its OpenAPI document is /api/v1/openapi.json"
            );
        }
        if let Some(chain) = node.devchain() {
            tracing::info!(
                esplora = %chain.base_url(),
                "embedded devchain serving the Esplora API, POST /dev/mine and POST /dev/fund"
            );
        }
        shutdown_signal().await;
        node.stop().await?;
        tracing::info!("node stopped");
        Ok(())
    }

    /// Runs a standalone devchain until SIGINT/SIGTERM, kept in `data_dir` when given.
    pub async fn run_devchain(
        listen: SocketAddr,
        block_interval: Option<u64>,
        data_dir: Option<PathBuf>,
    ) -> Result<(), String> {
        let options = DevchainOptions {
            listen,
            block_interval: block_interval.map(Duration::from_secs),
            data_dir,
        };
        devchain::serve_until(options, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    }

    /// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
    async fn shutdown_signal() {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("received SIGINT, stopping"),
            _ = terminate => tracing::info!("received SIGTERM, stopping"),
        }
    }
}
