//! Embedding lsp-node in your own tokio program: a regtest node on an embedded devchain, every
//! listener on 127.0.0.1 with a free port, its data in a temporary directory. Prints the node id,
//! the operator view of the node and the LSPS1 `get_info` it sells under, then stops.
//!
//!     cargo run --example embed

use lsp_node::api::OperatorApi;
use lsp_node::config::Config;
use lsp_node::Builder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::temp_dir().join(format!("lsp-node-embed-{}", std::process::id()));
    let node = Builder::new(Config::regtest_ephemeral(data_dir.clone()))
        .start()
        .await?;

    println!("node id: {}", node.node_id());
    let info = node.info().await?;
    println!(
        "network {}, block height {}, chain source {}",
        info.network, info.block_height, info.chain_source.url
    );
    if let Some(service) = node.order_service() {
        let get_info = service.config().options.get_info_json();
        println!(
            "lsps1.get_info: {}",
            serde_json::to_string_pretty(&get_info)?
        );
    }

    node.stop().await?;
    std::fs::remove_dir_all(&data_dir)?;
    Ok(())
}
