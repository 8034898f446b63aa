//! The HTTP listeners of the program: the operator API (over the [`App`], which implements the
//! operator contract) and the public LSPS1 mirror (over the order service), each stopped by the
//! app's shutdown signal; and the URIs the mirror's `get_info` advertises.

use std::net::SocketAddr;
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::App;
use crate::http::{admin, public};

/// The bound HTTP listeners, waiting for the finished [`App`].
pub(super) struct Listeners {
    pub(super) admin: TcpListener,
    pub(super) public: Option<TcpListener>,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// Serves the operator API, and the public API when it is configured and LSPS1 is enabled.
pub(super) fn spawn(app: &App, listeners: Listeners) -> Vec<JoinHandle<()>> {
    let Listeners {
        admin: admin_listener,
        public: public_listener,
        shutdown,
    } = listeners;
    let router = admin::router(Arc::new(app.clone()), app.admin_api_key());
    let mut admin_stop = shutdown.clone();
    let mut tasks = vec![tokio::spawn(async move {
        let served = axum::serve(admin_listener, router)
            .with_graceful_shutdown(async move {
                let _ = admin_stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "operator API server failed");
        }
    })];
    match (public_listener, app.order_service()) {
        (Some(listener), Some(service)) => {
            let config = app.node().config();
            let uris = public_uris(
                app.node_id(),
                app.p2p_listen_addr(),
                &config.node.announce_addresses,
                true,
            );
            let link_base = listener
                .local_addr()
                .ok()
                .and_then(|bound| config.http.link_base(config.network, bound));
            let state = public::PublicState::new(service, uris, config.http.limits.clone())
                .with_link_base(link_base);
            let router = public::router(state);
            let mut public_stop = shutdown;
            tasks.push(tokio::spawn(async move {
                let served = axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = public_stop.wait_for(|stop| *stop).await;
                })
                .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "public LSPS1 API server failed");
                }
            }));
        }
        (Some(_), None) => {
            tracing::warn!(
                "[http] listen is set but LSPS1 is disabled: the public API is not served"
            )
        }
        _ => {}
    }
    tasks
}

/// Where `get_info` tells wallets to connect: the announced addresses, else the p2p listener;
/// never an unspecified address (a listener on 0.0.0.0 is named by its loopback address, which
/// only this machine reaches: configuration refuses that outside regtest).
fn public_uris(
    node_id: PublicKey,
    p2p_addr: SocketAddr,
    announce_addresses: &[String],
    http_enabled: bool,
) -> Vec<String> {
    if !announce_addresses.is_empty() {
        return announce_addresses
            .iter()
            .map(|addr| format!("{node_id}@{addr}"))
            .collect();
    }
    let mut advertised = p2p_addr;
    if p2p_addr.ip().is_unspecified() {
        advertised.set_ip(match p2p_addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    if http_enabled && advertised.ip().is_loopback() {
        tracing::warn!(
            p2p_listen = %p2p_addr,
            advertised = %advertised,
            "node.announce_addresses is empty: get_info tells wallets to connect to a loopback address, which only this machine can reach"
        );
    }
    vec![format!("{node_id}@{advertised}")]
}

#[cfg(test)]
mod public_uri_tests {
    use super::*;

    fn node_id() -> PublicKey {
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
            .parse()
            .unwrap()
    }

    #[test]
    fn an_unspecified_listener_is_never_advertised() {
        let uris = public_uris(node_id(), "0.0.0.0:9735".parse().unwrap(), &[], true);
        assert_eq!(uris, [format!("{}@127.0.0.1:9735", node_id())]);
        let uris = public_uris(node_id(), "[::]:9735".parse().unwrap(), &[], true);
        assert_eq!(uris, [format!("{}@[::1]:9735", node_id())]);
    }

    #[test]
    fn announced_addresses_win_over_the_listener() {
        let announced = [
            "203.0.113.7:9735".to_string(),
            "lsp.example.com:9735".to_string(),
        ];
        let uris = public_uris(node_id(), "0.0.0.0:9735".parse().unwrap(), &announced, true);
        assert_eq!(
            uris,
            [
                format!("{}@203.0.113.7:9735", node_id()),
                format!("{}@lsp.example.com:9735", node_id())
            ]
        );
    }
}
