//! Devchain benchmark (not a test): mining rate and tip-request throughput, each printed with a
//! ratio against a baseline measured in the same run on the same machine.
//!
//! - Mining 1,000 blocks vs raw block-header hashing (double SHA256 of 80 bytes): how many
//!   header hashes one mined block costs (coinbase, merkle root, nonce grinding, indexing).
//! - `GET /blocks/tip/height` and `/blocks/tip/hash` over HTTP vs a trivial axum handler
//!   answering a constant string, both through the same keep-alive reqwest client.
//!
//! Run with `cargo bench --bench devchain`.
//!
//! Example output on a 2-core machine (shared with other builds), 2026-11-22:
//!
//! ```text
//! mining: 1000 blocks in 5.21ms = 191847 blocks/s
//! baseline: 2682150 header hashes/s
//! ratio: one mined block costs 14.0 header hashes
//! baseline: trivial axum handler 8919 req/s
//! tip height: 8444 req/s (ratio to baseline 0.95)
//! tip hash: 9406 req/s (ratio to baseline 1.05)
//! ```
//!
//! Each figure is one timed pass, so ratios near 1.0 are within noise: the tip routes cost
//! about what a trivial axum handler costs.

use std::time::{Duration, Instant};

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use lsp_node::devchain::{Devchain, DevchainOptions};

const BLOCKS: u32 = 1_000;
const REQUESTS: u32 = 2_000;
const HEADER_HASHES: u32 = 200_000;

fn rate(count: u32, elapsed: Duration) -> f64 {
    f64::from(count) / elapsed.as_secs_f64()
}

fn header_hash_rate() -> f64 {
    let mut header = Header {
        version: Version::TWO,
        prev_blockhash: BlockHash::all_zeros(),
        merkle_root: TxMerkleNode::all_zeros(),
        time: 1_700_000_000,
        bits: CompactTarget::from_consensus(0x207f_ffff),
        nonce: 0,
    };
    let mut sink = 0u8;
    let started = Instant::now();
    for nonce in 0..HEADER_HASHES {
        header.nonce = nonce;
        sink ^= header.block_hash().as_byte_array()[0];
    }
    let elapsed = started.elapsed();
    std::hint::black_box(sink);
    rate(HEADER_HASHES, elapsed)
}

async fn request_rate(client: &reqwest::Client, url: &str) -> f64 {
    // Warm the connection up so both measurements reuse one keep-alive connection.
    client.get(url).send().await.unwrap().text().await.unwrap();
    let started = Instant::now();
    for _ in 0..REQUESTS {
        let body = client.get(url).send().await.unwrap().text().await.unwrap();
        std::hint::black_box(body);
    }
    rate(REQUESTS, started.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let devchain = Devchain::start(DevchainOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        block_interval: None,
        data_dir: None,
    })
    .await
    .expect("devchain starts");

    let hashes_per_sec = header_hash_rate();
    let started = Instant::now();
    let mined = devchain.mine(BLOCKS);
    let mining_elapsed = started.elapsed();
    assert_eq!(mined.len(), BLOCKS as usize);
    let blocks_per_sec = rate(BLOCKS, mining_elapsed);
    println!("mining: {BLOCKS} blocks in {mining_elapsed:.2?} = {blocks_per_sec:.0} blocks/s");
    println!("baseline: {hashes_per_sec:.0} header hashes/s");
    println!(
        "ratio: one mined block costs {:.1} header hashes",
        hashes_per_sec / blocks_per_sec
    );

    let baseline_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let baseline_url = format!("http://{}/", baseline_listener.local_addr().unwrap());
    let baseline_app = axum::Router::new().route("/", axum::routing::get(|| async { "1101" }));
    tokio::spawn(async move { axum::serve(baseline_listener, baseline_app).await.unwrap() });

    let client = reqwest::Client::new();
    let baseline = request_rate(&client, &baseline_url).await;
    let tip_height = request_rate(
        &client,
        &format!("{}/blocks/tip/height", devchain.base_url()),
    )
    .await;
    let tip_hash = request_rate(&client, &format!("{}/blocks/tip/hash", devchain.base_url())).await;
    println!("baseline: trivial axum handler {baseline:.0} req/s");
    println!(
        "tip height: {tip_height:.0} req/s (ratio to baseline {:.2})",
        tip_height / baseline
    );
    println!(
        "tip hash: {tip_hash:.0} req/s (ratio to baseline {:.2})",
        tip_hash / baseline
    );
    devchain.shutdown().await;
}
