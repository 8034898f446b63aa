//! Filling the order book to a size, offline (the node stopped), through the order book's own
//! calls: each order is a copy of a real one the node made, with its own id, client key and
//! signed invoice, created (with its reservation) and, for the orders that are over, failed.
//! The seeding connection skips fsync (`synchronous=OFF`): it fills a file, it takes no money.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentHash, PaymentSecret};
use lsp_node::lsps1::clock::SystemClock;
use lsp_node::lsps1::liquidity::ReservationRequest;
use lsp_node::lsps1::new_orders::Admission;
use lsp_node::lsps1::order::{Order, OrderEvent, OrderId};
use lsp_node::lsps1::store::OrderBook;

/// What the book holds after seeding.
pub struct Seeded {
    pub added: u64,
    pub live: u64,
    pub took: Duration,
}

/// Adds orders copied from `template` until the book holds `total`, of which `live` (at most)
/// stay unpaid and unexpired; the rest are failed. Orders already in the book count.
pub fn fill(db: &Path, template: &Order, total: u64, live: u64) -> Seeded {
    let started = Instant::now();
    let conn = rusqlite::Connection::open(db).expect("open the node database");
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let existing: u64 = conn
        .query_row("SELECT COUNT(*) FROM lsps1_orders", [], |row| row.get(0))
        .unwrap();
    let book = OrderBook::new(conn, Arc::new(SystemClock)).expect("open the order book");
    let secp = Secp256k1::new();
    let node_key = SecretKey::from_slice(&[7u8; 32]).unwrap();
    let clients: Vec<PublicKey> = (1..=1000u32)
        .map(|i| {
            let mut secret = [0x55u8; 32];
            secret[..4].copy_from_slice(&i.to_be_bytes());
            PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&secret).unwrap())
        })
        .collect();
    let now = template.created_at;
    let to_add = total.saturating_sub(existing);
    let live_to_add = live.min(to_add);
    let admission = |amount_sat| Admission {
        reservation: Some(ReservationRequest {
            amount_sat,
            spendable_sat: u64::MAX / 2,
        }),
        max_unpaid_orders_per_peer: None,
    };
    let amount_sat = template.params.lsp_balance_sat + template.price.onchain_fee_sat;
    let mut rng = rand::thread_rng();
    for n in 0..to_add {
        let stays_live = n >= to_add - live_to_add;
        let mut order = template.clone();
        order.client_node_id = Some(clients[(n % 1000) as usize]);
        // The ended orders spread over the last 30 days; the live ones over the last hour.
        let age = match stays_live {
            true => n % 3_600,
            false => n % (30 * 86_400),
        };
        order.created_at = now.saturating_sub(age);
        let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(order.created_at);
        order.id = OrderId::generate(created, &mut rng);
        order.updated_at = order.created_at;
        order.expires_at = match stays_live {
            true => now + 86_400,
            false => order.created_at + 3_600,
        };
        if let Some(bolt11) = order.bolt11.as_mut() {
            bolt11.invoice = invoice(&secp, &node_key, n, bolt11.order_total_sat);
            bolt11.expires_at = order.expires_at;
        }
        book.create_order(&order, &admission(amount_sat))
            .expect("seed an order");
        if !stays_live {
            book.apply(
                &order.id,
                &OrderEvent::Failed {
                    onchain_refund_pending: false,
                },
                "the order expired unpaid",
            )
            .expect("end a seeded order");
        }
        if n > 0 && n % 100_000 == 0 {
            eprintln!("  seeded {n} of {to_add} orders");
        }
    }
    Seeded {
        added: to_add,
        live: live_to_add,
        took: started.elapsed(),
    }
}

/// A signed regtest invoice of its own payment hash.
fn invoice(
    secp: &Secp256k1<bitcoin::secp256k1::All>,
    key: &SecretKey,
    n: u64,
    amount_sat: u64,
) -> String {
    let hash = sha256::Hash::hash(&n.to_be_bytes());
    InvoiceBuilder::new(Currency::Regtest)
        .description(format!("LSPS1 channel order {n}"))
        .payment_hash(PaymentHash(hash.to_byte_array()))
        .payment_secret(PaymentSecret([9u8; 32]))
        .current_timestamp()
        .min_final_cltv_expiry_delta(144)
        .amount_milli_satoshis(amount_sat * 1_000)
        .build_signed(|message| secp.sign_ecdsa_recoverable(message, key))
        .expect("sign an invoice")
        .to_string()
}
