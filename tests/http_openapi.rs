//! The OpenAPI document is valid OpenAPI 3.0.3, as checked by openapi-spec-validator
//! (`scripts/check-openapi`, pinned from PyPI): both `docs/openapi.json` and the bytes a live
//! node serves at `/api/v1/openapi.json`. Without PyPI (and no environment installed before)
//! the test fails, saying so.

mod common;

use common::python::run_script;
use common::*;
use lsp_node::http::public::openapi;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_and_checked_in_openapi_documents_are_valid() {
    init_logging();
    let devchain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    // `config_for` serves the public API on 127.0.0.1 port 0.
    let node = start_node(dir.path(), &devchain.base_url()).await;
    let url = format!(
        "http://{}{}",
        node.http_listen_addr().unwrap(),
        openapi::PATH
    );
    let served = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let parsed: Value = serde_json::from_slice(&served).expect("the document is JSON");
    assert_eq!(parsed, openapi::document());
    let served_path = dir.path().join("served-openapi.json");
    std::fs::write(&served_path, &served).unwrap();

    let checked_in = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let report = run_script(
        "check-openapi",
        [checked_in.as_ref(), served_path.as_os_str()],
    )
    .await;
    assert_eq!(
        report.matches(": valid OpenAPI 3.0.3").count(),
        2,
        "{report}"
    );
    node.stop().await.unwrap();
}
