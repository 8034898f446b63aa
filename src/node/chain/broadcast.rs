//! LDK's [`BroadcasterInterface`] over Esplora: transactions are queued and posted to
//! `POST /tx` by a background task that retries, treating "already known" as success.

use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::Transaction;
use lightning::chain::chaininterface::{BroadcasterInterface, TransactionType};
use tokio::sync::{mpsc, watch};

use super::error::ESPLORA_TIMEOUT;

/// How often a rejected broadcast is retried before giving up (LDK rebroadcasts what matters).
const BROADCAST_ATTEMPTS: u32 = 5;

/// Queues transactions for a background task that posts them to Esplora.
pub struct EsploraBroadcaster {
    queue: mpsc::UnboundedSender<Vec<Transaction>>,
}

impl EsploraBroadcaster {
    /// Returns the broadcaster and the task that drains its queue until every sender is gone or
    /// `shutdown` fires. Packages (a parent and its fee-bumping child) are posted in order.
    pub fn new(
        base_url: String,
        http: reqwest::Client,
        mut shutdown: watch::Receiver<bool>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (queue, mut pending) = mpsc::unbounded_channel::<Vec<Transaction>>();
        let task = async move {
            loop {
                let package = tokio::select! {
                    package = pending.recv() => match package {
                        Some(package) => package,
                        None => return,
                    },
                    _ = shutdown.changed() => return,
                };
                for tx in package {
                    post_with_retries(&http, &base_url, &tx).await;
                }
            }
        };
        (EsploraBroadcaster { queue }, task)
    }
}

impl BroadcasterInterface for EsploraBroadcaster {
    fn broadcast_transactions(&self, txs: &[(&Transaction, TransactionType)]) {
        let package: Vec<Transaction> = txs.iter().map(|(tx, _)| (*tx).clone()).collect();
        if self.queue.send(package).is_err() {
            tracing::warn!("broadcast requested while the node is stopping; LDK will rebroadcast");
        }
    }
}

/// Esplora (electrs) passes bitcoind's reject reason through; these mean the network already
/// has the transaction.
fn is_already_known(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("already in block chain")
        || reason.contains("txn-already-known")
        || reason.contains("txn-already-in-mempool")
        || reason.contains("already known")
        || reason.contains("already exists")
        || reason.contains("outputs already in utxo set")
}

async fn post_with_retries(http: &reqwest::Client, base_url: &str, tx: &Transaction) {
    let txid = tx.compute_txid();
    let url = format!("{base_url}/tx");
    let body = serialize_hex(tx);
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=BROADCAST_ATTEMPTS {
        let outcome = http
            .post(&url)
            .timeout(ESPLORA_TIMEOUT)
            .body(body.clone())
            .send()
            .await;
        match outcome {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(%txid, "broadcast transaction");
                return;
            }
            Ok(response) => {
                let status = response.status();
                let reason = response.text().await.unwrap_or_default();
                if is_already_known(&reason) {
                    tracing::debug!(%txid, "transaction already known to the chain source");
                    return;
                }
                tracing::warn!(%txid, %status, reason, attempt, "chain source rejected transaction");
            }
            Err(e) => {
                tracing::warn!(%txid, error = %e, attempt, "could not reach chain source to broadcast");
            }
        }
        if attempt < BROADCAST_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::error!(%txid, "giving up broadcasting transaction after {BROADCAST_ATTEMPTS} attempts");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reasons_for_known_transactions_count_as_success() {
        assert!(is_already_known("sendrawtransaction RPC error: {\"code\":-27,\"message\":\"Transaction already in block chain\"}"));
        assert!(is_already_known("txn-already-in-mempool"));
        assert!(is_already_known(
            "{\"code\":-27,\"message\":\"Transaction outputs already in utxo set\"}"
        ));
        assert!(!is_already_known("bad-txns-inputs-missingorspent"));
    }
}
