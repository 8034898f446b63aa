//! The operator subcommands, run as the real binary against a real admin router (serving a fake
//! API that records calls) on 127.0.0.1: readable output, `--json`, the requests they send,
//! how they find the API and its key, and their errors.

#[path = "admin_support/mod.rs"]
mod admin_support;

use std::process::{Command, Output};

use admin_support::*;
use lsp_node::api::OperatorError;
use serde_json::{json, Value};

const LSP_NODE: &str = env!("CARGO_BIN_EXE_lsp-node");
const KEY: &str = "9a1f0c6d2b7e4f3a8c5d1e0f9b2a7c6d";

fn lsp_node(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(LSP_NODE);
    command.args(args);
    for (var, _) in lsp_node::config::load::ENV_VARS {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

/// Runs an operator command against `served` with `--admin-url` and the key in the environment.
fn operator(served: &ServedApi, args: &[&str]) -> Output {
    let url = served.url();
    let mut all = vec!["--admin-url", url.as_str()];
    all.extend_from_slice(args);
    lsp_node(&all, &[("LSP_NODE_API_KEY", KEY)])
}

fn stdout_of(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "command failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of_failure(output: &Output, code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn read_commands_print_readable_fields() {
    let served = serve(FakeApi::new(), KEY);

    let info = stdout_of(&operator(&served, &["info"]));
    assert!(info.contains(FAKE_NODE_ID), "{info}");
    assert!(info.contains("regtest") && info.contains("144"), "{info}");
    assert!(
        info.contains("2023-11-14 22:13:20 UTC"),
        "last sync as a date: {info}"
    );
    assert!(info.contains("127.0.0.1:9735"), "{info}");

    let balance = stdout_of(&operator(&served, &["balance"]));
    assert!(
        balance.contains("1500000 sat") && balance.contains("20000 sat"),
        "{balance}"
    );
    assert!(
        balance.contains("300000 sat") && balance.contains("1820000 sat"),
        "{balance}"
    );

    assert_eq!(
        stdout_of(&operator(&served, &["address"])).trim(),
        FAKE_ADDRESS
    );

    let peers = stdout_of(&operator(&served, &["peers"]));
    assert!(
        peers.starts_with("NODE ID") && peers.contains(FAKE_NODE_ID),
        "{peers}"
    );
    assert!(
        peers.contains("127.0.0.1:9736") && peers.contains("yes"),
        "{peers}"
    );

    let channels = stdout_of(&operator(&served, &["channels"]));
    assert!(
        channels.contains(FAKE_CHANNEL_ID) && channels.contains("1000000"),
        "{channels}"
    );
    assert!(
        channels.contains("700000") && channels.contains("usable"),
        "{channels}"
    );

    let payments = stdout_of(&operator(&served, &["payments"]));
    assert!(
        payments.contains(FAKE_PAYMENT_HASH) && payments.contains("succeeded"),
        "{payments}"
    );

    let sync = stdout_of(&operator(&served, &["sync"]));
    assert!(sync.contains("144"), "{sync}");

    let methods: Vec<&str> = served.api.calls().iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [
            "info",
            "balances",
            "new_address",
            "peers",
            "channels",
            "payments",
            "sync"
        ]
    );
}

#[test]
fn json_output_is_the_nodes_answer() {
    let served = serve(FakeApi::new(), KEY);
    let text = stdout_of(&operator(&served, &["--json", "balance"]));
    let value: Value = serde_json::from_str(&text).expect("--json prints JSON");
    assert_eq!(
        value,
        json!({"onchain_confirmed_sat": 1_500_000, "onchain_unconfirmed_sat": 20_000,
               "lightning_sat": 300_000})
    );
    let text = stdout_of(&operator(&served, &["channels", "--json"]));
    let value: Value = serde_json::from_str(&text).expect("--json prints JSON");
    assert_eq!(value[0]["channel_id"], FAKE_CHANNEL_ID);
    let text = stdout_of(&operator(&served, &["--json", "info"]));
    let value: Value = serde_json::from_str(&text).expect("--json prints JSON");
    assert_eq!(value["node_id"], FAKE_NODE_ID);
}

#[test]
fn write_commands_send_the_requests_given_on_the_command_line() {
    let served = serve(FakeApi::new(), KEY);
    let peer = format!("{FAKE_NODE_ID}@127.0.0.1:9736");

    let out = stdout_of(&operator(
        &served,
        &["send", FAKE_ADDRESS, "5000", "--fee-rate", "3"],
    ));
    assert!(out.contains(FAKE_TXID), "{out}");
    stdout_of(&operator(&served, &["send", FAKE_ADDRESS, "all"]));
    let out = stdout_of(&operator(&served, &["connect", &peer]));
    assert!(out.contains(FAKE_NODE_ID), "{out}");
    let out = stdout_of(&operator(
        &served,
        &[
            "open-channel",
            &peer,
            "100000",
            "--push-msat",
            "5000",
            "--announce",
        ],
    ));
    assert!(out.contains(FAKE_CHANNEL_ID), "{out}");
    stdout_of(&operator(&served, &["open-channel", FAKE_NODE_ID, "50000"]));
    stdout_of(&operator(
        &served,
        &["close-channel", FAKE_CHANNEL_ID, FAKE_NODE_ID, "--force"],
    ));
    let out = stdout_of(&operator(
        &served,
        &["invoice", "21000", "--description", "coffee"],
    ));
    assert!(
        out.contains(FAKE_INVOICE) && out.contains(FAKE_PAYMENT_HASH),
        "{out}"
    );
    let out = stdout_of(&operator(
        &served,
        &["pay", FAKE_INVOICE, "--amount-msat", "7000"],
    ));
    assert!(
        out.contains("succeeded") && out.contains("250 sat"),
        "{out}"
    );

    let requests: Vec<(&str, Value)> = served
        .api
        .calls()
        .into_iter()
        .map(|c| (c.method, c.request))
        .collect();
    assert_eq!(
        requests,
        vec![
            (
                "send_onchain",
                json!({"address": FAKE_ADDRESS, "amount_sat": 5000, "send_all": false,
                                    "fee_rate_sat_per_vb": 3})
            ),
            (
                "send_onchain",
                json!({"address": FAKE_ADDRESS, "amount_sat": null, "send_all": true,
                                    "fee_rate_sat_per_vb": null})
            ),
            (
                "connect_peer",
                json!({"node_id": FAKE_NODE_ID, "address": "127.0.0.1:9736"})
            ),
            (
                "open_channel",
                json!({"node_id": FAKE_NODE_ID, "address": "127.0.0.1:9736",
                                    "capacity_sat": 100000, "push_msat": 5000, "announce": true})
            ),
            (
                "open_channel",
                json!({"node_id": FAKE_NODE_ID, "address": null,
                                    "capacity_sat": 50000, "push_msat": 0, "announce": false})
            ),
            (
                "close_channel",
                json!({"channel_id": FAKE_CHANNEL_ID,
                                     "counterparty_node_id": FAKE_NODE_ID, "force": true, "override_lease": false})
            ),
            (
                "create_invoice",
                json!({"amount_msat": 21000, "description": "coffee",
                                      "expiry_secs": null})
            ),
            (
                "pay_invoice",
                json!({"invoice": FAKE_INVOICE, "amount_msat": 7000,
                                   "wait_secs": null})
            ),
        ]
    );
}

#[test]
fn stuck_orders_are_listed_with_why() {
    let served = serve(FakeApi::new(), KEY);
    let plain = stdout_of(&operator(&served, &["orders"]));
    assert!(!plain.contains("STUCK"), "{plain}");
    let stuck = stdout_of(&operator(&served, &["orders", "--stuck"]));
    assert!(
        stuck.contains("STUCK") && stuck.contains("paid, but its channel is not funded"),
        "{stuck}"
    );
    let calls = served.api.calls();
    assert_eq!(calls[0].request["stuck"], serde_json::Value::Null);
    assert_eq!(calls[1].request["stuck"], true);
}

#[test]
fn order_and_coupon_commands_call_their_routes() {
    let served = serve(FakeApi::new(), KEY);
    let orders = stdout_of(&operator(&served, &["orders", "--state", "completed"]));
    assert!(
        orders.contains("a3a06afbd700e7b94c38c2f5a4b94a1d") && orders.contains("bolt11=PAID"),
        "{orders}"
    );
    let order = stdout_of(&operator(
        &served,
        &["order", "a3a06afbd700e7b94c38c2f5a4b94a1d"],
    ));
    assert!(
        order.contains("order accepted") && order.contains("COMPLETED"),
        "{order}"
    );
    stdout_of(&operator(
        &served,
        &[
            "cancel-order",
            "a3a06afbd700e7b94c38c2f5a4b94a1d",
            "--reason",
            "client asked",
        ],
    ));
    let rescan = stdout_of(&operator(
        &served,
        &["rescan", "a3a06afbd700e7b94c38c2f5a4b94a1d"],
    ));
    assert!(
        rescan.contains("60000 sat") && rescan.contains("done"),
        "{rescan}"
    );
    let leases = stdout_of(&operator(&served, &["leases", "--ending-within", "144"]));
    assert!(
        leases.contains("ACTIVE")
            && leases.contains("1056")
            && leases.contains("leased out 100000 sat, freed by closes 0 sat, revenue 2345 sat"),
        "{leases}"
    );
    let closing = stdout_of(&operator(
        &served,
        &["lease-close", "a3a06afbd700e7b94c38c2f5a4b94a1d", "--force"],
    ));
    assert!(closing.contains("CLOSING"), "{closing}");
    let kept = stdout_of(&operator(
        &served,
        &["lease-keep", "a3a06afbd700e7b94c38c2f5a4b94a1d"],
    ));
    assert!(kept.contains("true"), "{kept}");
    let coupons = stdout_of(&operator(&served, &["coupons"]));
    assert!(
        coupons.contains("FRIENDS") && coupons.contains("50%"),
        "{coupons}"
    );
    stdout_of(&operator(
        &served,
        &[
            "add-coupon",
            "SPRING",
            "--fixed-sat",
            "500",
            "--max-uses",
            "3",
        ],
    ));
    stdout_of(&operator(&served, &["delete-coupon", "SPRING"]));

    let calls = served.api.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [
            "orders",
            "order",
            "cancel_order",
            "rescan_order",
            "leases",
            "close_lease",
            "keep_lease",
            "coupons",
            "create_coupon",
            "delete_coupon"
        ]
    );
    assert_eq!(calls[0].request["state"], "COMPLETED");
    assert_eq!(calls[2].request["reason"], "client asked");
    assert_eq!(
        calls[3].request["order_id"],
        "a3a06afbd700e7b94c38c2f5a4b94a1d"
    );
    assert_eq!(calls[4].request["ending_within_blocks"], 144);
    assert_eq!(calls[5].request["force"], true);
    assert_eq!(calls[8].request["fixed_sat"], 500);
    assert_eq!(calls[8].request["max_uses"], 3);

    // A coupon needs exactly one kind of discount; clap refuses before any call.
    let refused = operator(
        &served,
        &["add-coupon", "BOTH", "--percent", "5", "--fixed-sat", "5"],
    );
    assert!(!refused.status.success());
    assert_eq!(served.api.calls().len(), 10, "nothing reached the API");
}

#[test]
fn a_wrong_key_fails_with_the_apis_sentence_and_does_nothing() {
    let served = serve(FakeApi::new(), KEY);
    let url = served.url();
    let output = lsp_node(
        &["--admin-url", &url, "send", FAKE_ADDRESS, "5000"],
        &[("LSP_NODE_API_KEY", "not-the-right-key-at-all")],
    );
    let stderr = stderr_of_failure(&output, 1);
    assert!(
        stderr.starts_with("error: The API key is wrong"),
        "{stderr}"
    );
    assert!(served.api.calls().is_empty());
}

#[test]
fn an_api_error_is_printed_as_its_sentence() {
    let served = serve(FakeApi::new(), KEY);
    served.api.fail_with(OperatorError::Unavailable(
        "The wallet holds only 1000 sats.".into(),
    ));
    let output = operator(&served, &["send", FAKE_ADDRESS, "5000"]);
    let stderr = stderr_of_failure(&output, 1);
    assert_eq!(stderr.trim_end(), "error: The wallet holds only 1000 sats.");
}

#[test]
fn an_unreachable_node_gets_a_hint() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let output = lsp_node(&["--admin-url", &url, "info"], &[("LSP_NODE_API_KEY", KEY)]);
    let stderr = stderr_of_failure(&output, 1);
    assert!(
        stderr.contains(&format!("cannot reach the node's operator API at {url}")),
        "{stderr}"
    );
    assert!(stderr.contains("is `lsp-node run` running"), "{stderr}");
}

#[test]
fn bad_arguments_are_refused_before_calling() {
    let served = serve(FakeApi::new(), KEY);
    let output = operator(&served, &["connect", FAKE_NODE_ID]);
    assert!(stderr_of_failure(&output, 2).contains("NODEID@HOST:PORT"));
    let output = operator(&served, &["open-channel", "02abc@127.0.0.1:9735", "100000"]);
    assert!(stderr_of_failure(&output, 2).contains("not a node id"));
    let output = operator(&served, &["send", FAKE_ADDRESS, "lots"]);
    assert_eq!(output.status.code(), Some(2), "clap refuses the amount");
    assert!(String::from_utf8_lossy(&output.stderr).contains("`all`"));
    assert!(served.api.calls().is_empty());
}

#[test]
fn the_api_and_key_are_found_from_the_nodes_config_and_data_dir() {
    let served = serve(FakeApi::new(), KEY);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::write(data_dir.join("admin-api-key"), format!("{KEY}\n")).unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "network = \"regtest\"\ndata_dir = \"{}\"\n[chain]\nsource = \"dev\"\n[admin]\nlisten = \"{}\"\n",
            data_dir.display(),
            served.addr
        ),
    )
    .unwrap();
    let config = config.display().to_string();

    // --config: address from admin.listen, key from the data directory's key file.
    let info = stdout_of(&lsp_node(&["info", "--config", &config], &[]));
    assert!(info.contains(FAKE_NODE_ID), "{info}");

    // --admin-url with --data-dir: the key file again.
    let url = served.url();
    let data_dir_arg = data_dir.display().to_string();
    let out = stdout_of(&lsp_node(
        &["--admin-url", &url, "--data-dir", &data_dir_arg, "address"],
        &[],
    ));
    assert_eq!(out.trim(), FAKE_ADDRESS);

    // No key anywhere: a usage error naming the ways to give one, and no call.
    let calls = served.api.calls().len();
    let output = lsp_node(&["--admin-url", &url, "info"], &[]);
    let stderr = stderr_of_failure(&output, 2);
    assert!(
        stderr.contains("LSP_NODE_API_KEY") && stderr.contains("--data-dir"),
        "{stderr}"
    );
    assert_eq!(served.api.calls().len(), calls);
}

#[test]
fn customer_commands_call_their_routes() {
    let served = serve(FakeApi::new(), KEY);
    let list = stdout_of(&operator(&served, &["customers"]));
    assert!(
        list.contains("Acme wallet") && list.contains("2500 sat") && list.contains("600/min"),
        "{list}"
    );
    let added = stdout_of(&operator(&served, &["add-customer", "Acme wallet"]));
    assert!(
        added.contains(&"ab".repeat(32)) && added.contains("shown only this once"),
        "{added}"
    );
    stdout_of(&operator(&served, &["disable-customer", "Acme wallet"]));
    stdout_of(&operator(
        &served,
        &["disable-customer", "Acme wallet", "--enable"],
    ));
    stdout_of(&operator(&served, &["rotate-customer-key", "Acme wallet"]));
    stdout_of(&operator(
        &served,
        &[
            "customer-terms",
            "Acme wallet",
            "--orders-per-minute",
            "30",
            "--discount-percent",
            "15",
        ],
    ));
    let credit = stdout_of(&operator(&served, &["credit", "Acme wallet"]));
    assert!(
        credit.contains("welcome credit") && credit.contains("+2500"),
        "{credit}"
    );
    stdout_of(&operator(
        &served,
        &[
            "credit",
            "Acme wallet",
            "--take",
            "500",
            "--reason",
            "paid back",
        ],
    ));
    let coupon = stdout_of(&operator(
        &served,
        &["credit-coupon", "Acme wallet", "5000"],
    ));
    assert!(coupon.contains("5000 sat"), "{coupon}");
    stdout_of(&operator(&served, &["delete-customer", "Acme wallet"]));

    let calls = served.api.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [
            "customers",
            "add_customer",
            "disable_customer",
            "disable_customer",
            "rotate_customer_key",
            "set_customer_terms",
            "customer_credit",
            "adjust_credit",
            "issue_credit_coupon",
            "delete_customer"
        ]
    );
    assert_eq!(calls[2].request["disabled"], true);
    assert_eq!(calls[3].request["disabled"], false);
    assert_eq!(calls[5].request["orders_per_minute"], 30);
    assert_eq!(calls[5].request["discount_percent"], 15);
    assert_eq!(
        calls[6].request, "Acme wallet",
        "the name, decoded from the path"
    );
    assert_eq!(calls[7].request["amount_sat"], -500);
    assert_eq!(calls[7].request["reason"], "paid back");

    // An adjustment needs its reason; clap refuses before any call.
    let refused = operator(&served, &["credit", "Acme wallet", "--add", "5"]);
    assert!(!refused.status.success());
    assert_eq!(served.api.calls().len(), 10, "nothing reached the API");
}
