//! The HTTP client side of the operator API: one typed call per contract route.
//!
//! Every call returns both the typed answer (for readable output) and the raw JSON (for
//! `--json`), so scripts see exactly what the node sent.

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::error_chain;
use crate::api::{ErrorBody, API_KEY_HEADER};

use super::CliError;

/// A client of one node's operator API.
pub struct OperatorClient {
    base_url: String,
    api_key: String,
    http: reqwest::Client,
}

/// A decoded answer and the JSON it was decoded from.
pub struct Answer<T> {
    pub value: T,
    pub json: serde_json::Value,
}

impl OperatorClient {
    pub fn new(base_url: &str, api_key: String) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(OperatorClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            http,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, CliError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer<T>, CliError> {
        self.call(Method::POST, path, body).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer<T>, CliError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self
            .http
            .request(method, &url)
            .header(API_KEY_HEADER, self.api_key.as_str());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| CliError::Unreachable {
            url: self.base_url.clone(),
            detail: error_chain(&e),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| CliError::Unreachable {
            url: self.base_url.clone(),
            detail: error_chain(&e),
        })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => CliError::Api {
                    status: status.as_u16(),
                    message: body.error,
                },
                Err(_) => self.not_our_api(format!("HTTP status {status} without an error body")),
            });
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.not_our_api(format!("the answer is not JSON: {e}")))?;
        let value = serde_json::from_value(json.clone())
            .map_err(|e| self.not_our_api(format!("unexpected answer: {e}")))?;
        Ok(Answer { value, json })
    }

    fn not_our_api(&self, detail: String) -> CliError {
        CliError::BadResponse {
            url: self.base_url.clone(),
            detail,
        }
    }
}
