//! The `get_info` bodies of the dialects, rendered once per change of the order service's
//! answer ([`crate::lsps1::service::OrderService::kept_info`]) and served as stored bytes: a
//! current answer costs no trip to the blocking pool and no serialization.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::http::public::PublicState;

/// Each dialect's last body, with the service answer it was rendered from.
#[derive(Default)]
pub struct InfoBodies {
    rendered: Mutex<HashMap<&'static str, (Arc<Value>, Bytes)>>,
}

impl PublicState {
    /// The `get_info` body of `dialect`: `render` applied to the service's answer, from what
    /// is stored while that answer is unchanged.
    pub(crate) async fn info_body(
        &self,
        dialect: &'static str,
        render: impl FnOnce(&Value) -> Value,
    ) -> Response {
        let info = match self.service.kept_info() {
            Some(info) => info,
            None => self.with_service(|service| service.get_info()).await,
        };
        let stored = lock(&self.info_bodies.rendered)
            .get(dialect)
            .filter(|(from, _)| Arc::ptr_eq(from, &info))
            .map(|(_, body)| body.clone());
        let body = match stored {
            Some(body) => body,
            None => {
                let body = Bytes::from(render(&info).to_string());
                lock(&self.info_bodies.rendered).insert(dialect, (info, body.clone()));
                body
            }
        };
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// Sets the two options of the LSPS1 draft the Olympus and Kaleidoswap clients were written
/// against (bLIP-51 moved them into each order's on-chain payment) on `info`: null means "no
/// on-chain payment" / "no minimum".
pub(crate) fn set_draft_onchain_options(
    info: &mut Value,
    options: &crate::config::lsps1::Lsps1Options,
) {
    info["min_onchain_payment_confirmations"] = match options.onchain_payment_enabled {
        true => serde_json::json!(options.min_onchain_payment_confirmations),
        false => Value::Null,
    };
    info["min_onchain_payment_size_sat"] = Value::Null;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
