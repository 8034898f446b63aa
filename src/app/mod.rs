//! The composition root: config, the embedded devchain, the node, the order service and the
//! HTTP listeners, wired in that order by [`Builder`] and stopped in reverse by [`App::stop`].
//!
//! Start order: bind every listener (so a busy port fails before anything is written); with
//! `chain.source = "dev"` start the embedded devchain, which the node then reaches only by its
//! URL; build the node; load the operator API key; open the order book and build the order
//! service on the node's parts; start the node with the service plugged in (its event hook and
//! its LSPS gate); then run the service's fulfilment loop, the operator API and the public API.
//!
//! Files: `operator.rs` implements the operator contract over the node and the order service;
//! `serve.rs` runs the HTTP listeners and decides the URIs `get_info` advertises.

mod operator;
mod serve;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::keys::{load_or_create_api_key, AdminError};
use crate::config::{ChainSource, Config};
use crate::devchain::{Devchain, DevchainError, DevchainOptions};
use crate::lsps1::clock::SystemClock;
use crate::lsps1::gate::{Lsps1Gate, Lsps1Server};
use crate::lsps1::guard::RequestGuard;
use crate::lsps1::service::{OrderService, ServiceNode};
use crate::lsps1::store::{OrderBook, StoreError};
use crate::node::lsps::LspsGate;
use crate::node::types::{ChannelManager, LiquidityManager};
use crate::node::{self, Node, NodeError, NodeServices, ServiceHook};

/// Why the program could not start or stop. Each message is one sentence an operator can act
/// on.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("cannot start the embedded devchain: {0}")]
    Devchain(#[from] DevchainError),
    #[error("cannot set up the operator API key: {0}")]
    AdminKey(#[from] AdminError),
    #[error("cannot open the order book: {0}")]
    OrderBook(#[from] StoreError),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl AppError {
    /// True when the configuration is wrong (for example a chain source serving another
    /// network): restarting with the same settings cannot help.
    pub fn is_configuration(&self) -> bool {
        matches!(self, AppError::Node(e) if e.is_configuration())
    }
}

/// A bound listener and the address it is bound to (port 0 resolved).
async fn bind(what: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), AppError> {
    let listen = |source| AppError::Listen { what, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;
    Ok((listener, bound))
}

/// Starts the whole program from a [`Config`]. With `[lsps1] enabled` (the default) the node
/// runs the LSPS1 order service; otherwise it claims every payment it can and sells nothing.
pub struct Builder {
    config: Config,
}

impl Builder {
    pub fn new(config: Config) -> Builder {
        Builder { config }
    }

    /// Builds every component, binds the listeners and starts the background tasks.
    pub async fn start(self) -> Result<App, AppError> {
        let mut config = self.config;
        let (p2p_listener, _) = bind("Lightning peers", config.node.p2p_listen).await?;
        let admin_listener = bind("the operator API", config.admin.listen).await?;
        let http_listener = match config.http.listen {
            Some(addr) => Some(bind("the public LSPS1 API", addr).await?),
            None => None,
        };

        let devchain = match &config.chain.source {
            ChainSource::Esplora { .. } => None,
            ChainSource::Dev { listen } => {
                let block_interval = match config.chain.dev_block_interval_secs {
                    0 => None,
                    secs => Some(Duration::from_secs(secs)),
                };
                let devchain = Devchain::start(DevchainOptions {
                    listen: *listen,
                    block_interval,
                    data_dir: Some(config.data_dir.join("devchain")),
                })
                .await?;
                let url = devchain.base_url();
                tracing::info!(url, "embedded devchain started");
                config.chain.source = ChainSource::Esplora { url };
                Some(devchain)
            }
        };
        let started = start_services(
            config,
            devchain.clone(),
            p2p_listener,
            admin_listener,
            http_listener,
        )
        .await;
        match started {
            Ok((inner, listeners)) => {
                // The operator API serves the finished App, so it starts last.
                let app = App {
                    inner: Arc::new(inner),
                };
                let tasks = serve::spawn(&app, listeners);
                app.inner
                    .tasks
                    .lock()
                    .expect("task list poisoned")
                    .extend(tasks);
                Ok(app)
            }
            Err(e) => {
                if let Some(devchain) = devchain {
                    devchain.shutdown().await;
                }
                Err(e)
            }
        }
    }
}

/// Everything after the devchain: the node and the order service, running; the HTTP listeners
/// bound, to be served once the App exists.
async fn start_services(
    config: Config,
    devchain: Option<Devchain>,
    p2p_listener: TcpListener,
    (admin_listener, admin_addr): (TcpListener, SocketAddr),
    http_listener: Option<(TcpListener, SocketAddr)>,
) -> Result<(AppInner, serve::Listeners), AppError> {
    let built = node::Builder::new(config.clone())
        .with_p2p_listener(p2p_listener)
        .build()
        .await?;
    let admin_api_key = load_or_create_api_key(&config.data_dir, config.admin.api_key.as_deref())?;

    let order_service = match config.lsps1.enabled {
        true => {
            let book = OrderBook::open(&built.node().database_path(), Arc::new(SystemClock))?;
            Some(Arc::new(OrderService::new(
                config.lsps1.clone(),
                book,
                ServiceNode::of(built.node()),
            )))
        }
        false => None,
    };
    let services = match &order_service {
        Some(service) => NodeServices {
            hook: Some(Arc::clone(service) as Arc<dyn ServiceHook>),
            lsps_gate: Some(Arc::new(Lsps1Gate::serving(
                Arc::clone(service.guard()),
                Arc::clone(service) as Arc<dyn Lsps1Server>,
                &config.lsps1.limits,
            )) as Arc<dyn LspsGate>),
        },
        None => NodeServices {
            hook: None,
            lsps_gate: Some(Arc::new(Lsps1Gate::refusing(Arc::new(RequestGuard::new(
                config.lsps1.options.clone(),
                config.network,
            ))))),
        },
    };
    let node = built.start(services).await?;

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(service) = &order_service {
        tasks.push(tokio::spawn(Arc::clone(service).run(shutdown_rx.clone())));
    }
    let http_addr = http_listener.as_ref().map(|(_, bound)| *bound);
    let inner = AppInner {
        node,
        order_service,
        devchain,
        admin_addr,
        http_addr,
        admin_api_key,
        shutdown,
        tasks: Mutex::new(tasks),
    };
    let listeners = serve::Listeners {
        admin: admin_listener,
        public: http_listener.map(|(listener, _)| listener),
        shutdown: shutdown_rx,
    };
    Ok((inner, listeners))
}

/// The running program. Cheap to clone; every clone is the same program.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    node: Node,
    order_service: Option<Arc<OrderService>>,
    devchain: Option<Devchain>,
    admin_addr: SocketAddr,
    /// Where the public LSPS1 HTTP API listens (`[http] listen`), if configured.
    http_addr: Option<SocketAddr>,
    admin_api_key: String,
    /// Set to `true` once to stop the order service and the HTTP listeners.
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl App {
    /// The Lightning node.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    pub fn node_id(&self) -> PublicKey {
        self.inner.node.node_id()
    }

    /// The address the p2p listener is bound to (port 0 in the config resolved).
    pub fn p2p_listen_addr(&self) -> SocketAddr {
        self.inner.node.p2p_listen_addr()
    }

    /// The address the operator API is served on.
    pub fn admin_listen_addr(&self) -> SocketAddr {
        self.inner.admin_addr
    }

    /// The bound address of the public LSPS1 HTTP API, when `[http] listen` is set.
    pub fn http_listen_addr(&self) -> Option<SocketAddr> {
        self.inner.http_addr
    }

    pub fn admin_api_key(&self) -> String {
        self.inner.admin_api_key.clone()
    }

    /// The Esplora base URL the node syncs from (the embedded devchain's with `dev`).
    pub fn esplora_url(&self) -> String {
        self.inner.node.esplora_url()
    }

    /// The embedded devchain, when `chain.source = dev`.
    pub fn devchain(&self) -> Option<Devchain> {
        self.inner.devchain.clone()
    }

    /// The LSPS1 order service, when `[lsps1] enabled`.
    pub fn order_service(&self) -> Option<Arc<OrderService>> {
        self.inner.order_service.clone()
    }

    /// The ChannelManager, for services built on top of the node.
    pub fn channel_manager(&self) -> Arc<ChannelManager> {
        self.inner.node.channel_manager()
    }

    /// The LiquidityManager behind the node's LSPS message handler.
    pub fn liquidity_manager(&self) -> Arc<LiquidityManager> {
        self.inner.node.liquidity_manager()
    }

    /// Claims a payment a [`ServiceHook`] chose to hold.
    pub fn claim_payment(&self, preimage: PaymentPreimage) {
        self.inner.node.claim_payment(preimage);
    }

    /// Fails a payment a [`ServiceHook`] chose to hold, returning the HTLCs to the payer.
    pub fn fail_payment(&self, payment_hash: &PaymentHash) {
        self.inner.node.fail_payment(payment_hash);
    }

    /// Stops in reverse order: the HTTP listeners and the order service, then the node (which
    /// persists everything), then the embedded devchain.
    pub async fn stop(self) -> Result<(), AppError> {
        if self.inner.shutdown.send_replace(true) {
            return Ok(()); // Already stopped by another clone.
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *self.inner.tasks.lock().expect("task list poisoned"));
        for task in tasks {
            let _ = task.await;
        }
        let stopped = self.inner.node.clone().stop().await;
        if let Some(devchain) = self.inner.devchain.clone() {
            devchain.shutdown().await;
        }
        Ok(stopped?)
    }
}
