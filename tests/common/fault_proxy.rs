//! An HTTP front for the devchain's Esplora API that misbehaves on request: requests matching a
//! [`Fault`] (method and path prefix) are refused with a status or delayed; every other request
//! is forwarded unchanged. Faults can be set and cleared while clients use the proxy, and the
//! proxy counts what it refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What happens to a matching request.
#[derive(Debug, Clone, Copy)]
pub enum FaultAction {
    /// Answer with this status and no body; the upstream never sees the request.
    Refuse(u16),
    /// Forward it after this long.
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub struct Fault {
    /// `None` matches every method.
    pub method: Option<Method>,
    pub path_prefix: String,
    pub action: FaultAction,
}

impl Fault {
    pub fn refuse(method: Option<Method>, path_prefix: &str, status: u16) -> Fault {
        Fault {
            method,
            path_prefix: path_prefix.to_string(),
            action: FaultAction::Refuse(status),
        }
    }
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    faults: Mutex<Vec<Fault>>,
    refused: AtomicU64,
}

pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1 port 0 in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            faults: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { url, shared, task }
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    pub fn clear_faults(&self) {
        self.set_faults(Vec::new());
    }

    /// How many requests were refused so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let fault = shared
        .faults
        .lock()
        .unwrap()
        .iter()
        .find(|f| {
            f.method.as_ref().is_none_or(|m| *m == method) && path.starts_with(&f.path_prefix)
        })
        .map(|f| f.action);
    match fault {
        Some(FaultAction::Refuse(status)) => {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            return StatusCode::from_u16(status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
                .into_response();
        }
        Some(FaultAction::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let upstream = shared
        .client
        .request(method, format!("{}{path}", shared.upstream))
        .body(body)
        .send()
        .await;
    match upstream {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/plain")
                .to_string();
            let bytes = response.bytes().await.unwrap_or_default();
            (
                status,
                [(axum::http::header::CONTENT_TYPE, content_type)],
                bytes,
            )
                .into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
