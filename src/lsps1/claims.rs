//! Pay-first orders: an order created without its node (`client_node_id` `None`), paid like
//! any other, and claimed later by whoever holds its claim token, who names the node once
//! ([`OrderEvent::Claimed`]); from then on it is carried out like an LSPS1 order.
//!
//! The claim token is a bearer secret: 32 random bytes (64 hex characters), handed to the buyer
//! once, at creation. The book keeps only its SHA-256 (`lsps1_claim_tokens`), so neither the
//! database nor the logs (which name the order by its own id) hold it. The order id is not the
//! token: it appears in the invoice description and the logs, and knowing it claims nothing.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::PublicKey;
use rand::RngCore;
use rusqlite::{params, OptionalExtension};

use crate::lsps1::new_orders::Admission;
use crate::lsps1::order::{Order, OrderEvent, OrderId};
use crate::lsps1::store::{apply_in, load_order, OrderBook, StoreError};

/// Random bytes in a claim token.
const TOKEN_BYTES: usize = 32;

/// A pay-first order's claim token (hex); its holder names the order's node.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh token from `rng` (production: `rand::rngs::OsRng`).
    pub fn random<R: RngCore + ?Sized>(rng: &mut R) -> ClaimToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        rng.fill_bytes(&mut bytes);
        ClaimToken(hex::encode(bytes))
    }

    /// The token of order `order` derived from the node's ticket key (HMAC-SHA256): shown to
    /// the order's customer as often as it asks ([`crate::lsps1::accounts`]), yet kept nowhere.
    pub fn derived(key: &[u8; 32], order: &OrderId) -> ClaimToken {
        use bitcoin::hashes::{hmac, HashEngine};
        let mut engine = hmac::HmacEngine::<sha256::Hash>::new(key);
        engine.input(order.as_str().as_bytes());
        ClaimToken(hmac::Hmac::<sha256::Hash>::from_engine(engine).to_string())
    }

    /// A token a client sent (any string: an unknown one simply finds no order).
    pub fn from_client(text: &str) -> ClaimToken {
        ClaimToken(text.to_string())
    }

    /// The token itself, to hand to the buyer.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> String {
        sha256::Hash::hash(self.0.as_bytes()).to_string()
    }
}

/// Never printed: a token in a log line would let its reader claim the order.
impl std::fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimToken(..)")
    }
}

/// Why a claim was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimRefused {
    #[error("no order has this claim token")]
    Unknown,
    #[error("the order already names the node its channel goes to")]
    AlreadyClaimed,
    #[error("the order has ended ({0}) and can no longer be claimed")]
    Ended(&'static str),
    #[error(transparent)]
    Store(StoreError),
}

impl OrderBook {
    /// Stores a new pay-first order (no node yet; see [`OrderBook::create_order`]) with the
    /// hash of its claim token, all or nothing.
    pub fn create_pay_first_order(
        &self,
        order: &Order,
        admission: &Admission,
        token: &ClaimToken,
    ) -> Result<(), StoreError> {
        self.create_pay_first_order_with(order, admission, token, |_| Ok(()))
    }

    /// [`Self::create_pay_first_order`], with `also` run in the same transaction.
    pub(crate) fn create_pay_first_order_with(
        &self,
        order: &Order,
        admission: &Admission,
        token: &ClaimToken,
        also: impl FnOnce(&rusqlite::Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        if order.client_node_id.is_some() {
            return Err(StoreError::NotNew(order.id.clone()));
        }
        let (token_hash, id) = (token.hash(), order.id.clone());
        self.create_order_with(order, admission, move |tx| {
            tx.execute(
                "INSERT INTO lsps1_claim_tokens (token_hash, order_id) VALUES (?1, ?2)",
                params![token_hash, id.as_str()],
            )?;
            also(tx)
        })
    }

    /// The order `token` claims, if any.
    pub fn order_by_token(&self, token: &ClaimToken) -> Result<Option<Order>, StoreError> {
        let conn = self.conn();
        let id = order_of_token(&conn, token)?;
        match id {
            Some(id) => load_order(&conn, &id),
            None => Ok(None),
        }
    }

    /// Names `node` as the node of the order `token` claims: once, while it is CREATED.
    pub fn claim(&self, token: &ClaimToken, node: PublicKey) -> Result<Order, ClaimRefused> {
        let now = self.clock().now_unix_secs();
        let store = ClaimRefused::Store;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| store(e.into()))?;
        let id = order_of_token(&tx, token)
            .map_err(store)?
            .ok_or(ClaimRefused::Unknown)?;
        let order = load_order(&tx, &id)
            .map_err(store)?
            .ok_or(ClaimRefused::Unknown)?;
        if order.client_node_id.is_some() {
            return Err(ClaimRefused::AlreadyClaimed);
        }
        if order.state.is_final() {
            return Err(ClaimRefused::Ended(order.state.as_str()));
        }
        let reason = format!("the buyer named node {node} for the channel");
        let claimed = apply_in(
            &tx,
            &id,
            &OrderEvent::Claimed { node_id: node },
            &reason,
            now,
        )
        .map_err(store)?;
        tx.commit().map_err(|e| store(e.into()))?;
        Ok(claimed)
    }
}

fn order_of_token(
    conn: &rusqlite::Connection,
    token: &ClaimToken,
) -> Result<Option<OrderId>, StoreError> {
    let id: Option<String> = conn
        .query_row(
            "SELECT order_id FROM lsps1_claim_tokens WHERE token_hash = ?1",
            params![token.hash()],
            |row| row.get(0),
        )
        .optional()?;
    id.map(|id| OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id)))
        .transpose()
}
