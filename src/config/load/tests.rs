//! Tests of configuration loading.

use std::collections::HashMap;

use super::*;

const FILE: &str = r#"
network = "regtest"
data_dir = "./data/file"

[chain]
source = "dev"
dev_listen = "127.0.0.1:3002"

[node]
p2p_listen = "127.0.0.1:9735"

[admin]
listen = "127.0.0.1:3001"
"#;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |var| map.get(var).cloned()
}

fn parse_with(
    text: &str,
    flags: &ConfigOverrides,
    vars: &[(&str, &str)],
) -> Result<Config, ConfigError> {
    parse(text, "test.toml", flags, env(vars))
}

#[test]
fn file_values_are_used_when_nothing_overrides_them() {
    let config = parse_with(FILE, &ConfigOverrides::default(), &[]).unwrap();
    assert_eq!(config.network, Network::Regtest);
    assert_eq!(config.data_dir, PathBuf::from("./data/file"));
    assert_eq!(
        config.chain.source,
        ChainSource::Dev {
            listen: "127.0.0.1:3002".parse().unwrap()
        }
    );
    assert_eq!(config.node.p2p_listen, "127.0.0.1:9735".parse().unwrap());
    assert_eq!(config.admin.listen, "127.0.0.1:3001".parse().unwrap());
    assert_eq!(config.http.listen, None);
    assert_eq!(config.node.color, DEFAULT_COLOR);
    assert_eq!(config.log.format, LogFormat::Human);
}

#[test]
fn http_limits_default_and_refuse_impossible_values() {
    let none = ConfigOverrides::default();
    let config = parse_with(FILE, &none, &[]).unwrap();
    assert_eq!(config.http.limits, HttpLimits::default());
    let with_http = |body: &str| format!("{FILE}\n[http]\n{body}\n");
    let config = parse_with(
        &with_http("rate_limit_burst = 5\ncors_allowed_origins = [\"https://w.example\"]"),
        &none,
        &[],
    )
    .unwrap();
    assert_eq!(config.http.limits.rate_limit_burst, 5);
    assert_eq!(
        config.http.limits.cors_allowed_origins,
        ["https://w.example"]
    );
    for key in [
        "rate_limit_per_minute",
        "rate_limit_burst",
        "orders_per_hour",
    ] {
        let e = error_of(&with_http(&format!("{key} = 0")), &none, &[]);
        assert!(
            e.contains(&format!("`http.{key}`")) && e.contains("at least 1"),
            "{e}"
        );
    }
    let e = error_of(
        &with_http("cors_allowed_origins = [\"wallet.example\"]"),
        &none,
        &[],
    );
    assert!(
        e.contains("`http.cors_allowed_origins`") && e.contains("not a web origin"),
        "{e}"
    );
    let config = parse_with(
        &with_http("trusted_proxies = [\"127.0.0.1\", \"::ffff:10.0.0.1\", \"::1\"]"),
        &none,
        &[],
    )
    .unwrap();
    let expected: Vec<IpAddr> = ["127.0.0.1", "10.0.0.1", "::1"]
        .iter()
        .map(|ip| ip.parse().unwrap())
        .collect();
    assert_eq!(config.http.limits.trusted_proxies, expected);
    let e = error_of(&with_http("trusted_proxies = [\"10.0.0.0/8\"]"), &none, &[]);
    assert!(
        e.contains("`http.trusted_proxies`") && e.contains("not an IP address"),
        "{e}"
    );
}

#[test]
fn funding_batches_are_off_by_default_and_bounded() {
    let none = ConfigOverrides::default();
    assert_eq!(
        parse_with(FILE, &none, &[]).unwrap().node.funding_batch,
        None
    );
    let with_node = |body: &str| FILE.replace("[node]\n", &format!("[node]\n{body}\n"));
    let config = parse_with(&with_node("funding_batch_window_ms = 0"), &none, &[]).unwrap();
    assert_eq!(config.node.funding_batch, None, "0 turns batching off");
    let config = parse_with(&with_node("funding_batch_window_ms = 2500"), &none, &[]).unwrap();
    assert_eq!(
        config.node.funding_batch,
        Some(FundingBatchConfig {
            window: std::time::Duration::from_millis(2500),
            signing_timeout: std::time::Duration::from_secs(
                DEFAULT_FUNDING_BATCH_SIGNING_TIMEOUT_SECS
            ),
        })
    );
    let e = error_of(&with_node("funding_batch_window_ms = 30001"), &none, &[]);
    assert!(
        e.contains("`node.funding_batch_window_ms`") && e.contains("at most 30000 ms"),
        "{e}"
    );
    let e = error_of(
        &with_node("funding_batch_window_ms = 100\nfunding_batch_signing_timeout_secs = 0"),
        &none,
        &[],
    );
    assert!(
        e.contains("`node.funding_batch_signing_timeout_secs`") && e.contains("at least 1"),
        "{e}"
    );
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let vars = [
        ("LSP_NODE_DATA_DIR", "/env/data"),
        ("LSP_NODE_P2P_LISTEN", "127.0.0.1:19735"),
        ("LSP_NODE_ADMIN_LISTEN", "127.0.0.1:13001"),
        ("LSP_NODE_SEED_FILE", "/env/seed"),
        ("LSP_NODE_LOG_FORMAT", "json"),
    ];
    let config = parse_with(FILE, &ConfigOverrides::default(), &vars).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/env/data"));
    assert_eq!(config.node.p2p_listen, "127.0.0.1:19735".parse().unwrap());
    assert_eq!(config.admin.listen, "127.0.0.1:13001".parse().unwrap());
    assert_eq!(config.node.seed_file, Some(PathBuf::from("/env/seed")));
    assert_eq!(config.log.format, LogFormat::Json);

    let flags = ConfigOverrides {
        data_dir: Some("/flag/data".into()),
        p2p_listen: Some("127.0.0.1:29735".into()),
        seed_file: Some("/flag/seed".into()),
        ..Default::default()
    };
    let config = parse_with(FILE, &flags, &vars).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/flag/data"));
    assert_eq!(config.node.p2p_listen, "127.0.0.1:29735".parse().unwrap());
    assert_eq!(config.node.seed_file, Some(PathBuf::from("/flag/seed")));
    // Not given as a flag: the environment still wins over the file.
    assert_eq!(config.admin.listen, "127.0.0.1:13001".parse().unwrap());
}

#[test]
fn an_esplora_url_override_switches_the_chain_source() {
    let flags = ConfigOverrides {
        network: Some("signet".into()),
        esplora_url: Some("https://mutinynet.com/api/".into()),
        ..Default::default()
    };
    let config = parse_with(FILE, &flags, &[]).unwrap();
    assert_eq!(config.network, Network::Signet);
    assert_eq!(
        config.chain.source,
        ChainSource::Esplora {
            url: "https://mutinynet.com/api".to_string()
        }
    );
    let vars = [("LSP_NODE_ESPLORA_URL", "http://127.0.0.1:3002")];
    let config = parse_with(FILE, &ConfigOverrides::default(), &vars).unwrap();
    assert_eq!(
        config.chain.source,
        ChainSource::Esplora {
            url: "http://127.0.0.1:3002".to_string()
        }
    );
}

#[test]
fn empty_environment_variables_count_as_unset() {
    let config = parse_with(
        FILE,
        &ConfigOverrides::default(),
        &[("LSP_NODE_NETWORK", "")],
    )
    .unwrap();
    assert_eq!(config.network, Network::Regtest);
}

fn error_of(text: &str, flags: &ConfigOverrides, vars: &[(&str, &str)]) -> String {
    parse_with(text, flags, vars).unwrap_err().to_string()
}

#[test]
fn bad_values_name_where_they_came_from() {
    let none = ConfigOverrides::default();
    let e = error_of(&FILE.replace("\"regtest\"", "\"moonnet\""), &none, &[]);
    assert!(
        e.contains("`network` in test.toml") && e.contains("moonnet"),
        "{e}"
    );

    let e = error_of(FILE, &none, &[("LSP_NODE_NETWORK", "moonnet")]);
    assert!(e.contains("environment variable LSP_NODE_NETWORK"), "{e}");

    let flags = ConfigOverrides {
        p2p_listen: Some("localhost".into()),
        ..Default::default()
    };
    let e = error_of(FILE, &flags, &[]);
    assert!(
        e.contains("flag --p2p-listen") && e.contains("\"localhost\""),
        "{e}"
    );

    let flags = ConfigOverrides {
        esplora_url: Some("mutinynet.com/api".into()),
        ..Default::default()
    };
    let e = error_of(FILE, &flags, &[]);
    assert!(
        e.contains("flag --esplora-url") && e.contains("not a URL"),
        "{e}"
    );

    let flags = ConfigOverrides {
        esplora_url: Some("ftp://x.org".into()),
        ..Default::default()
    };
    assert!(error_of(FILE, &flags, &[]).contains("not an http(s) URL"));

    let e = error_of(&FILE.replace("\"dev\"", "\"bitcoind\""), &none, &[]);
    assert!(
        e.contains("`chain.source`") && e.contains("bitcoind"),
        "{e}"
    );

    let e = error_of(FILE, &none, &[("LSP_NODE_API_KEY", "short")]);
    assert!(
        e.contains("LSP_NODE_API_KEY") && e.contains("shorter than 16"),
        "{e}"
    );

    let e = error_of(
        &format!("{FILE}\n[log]\nlevel = \"lsp_node=loud\"\n"),
        &none,
        &[],
    );
    assert!(e.contains("`log.level`"), "{e}");

    let with_color = FILE.replace("[admin]", "color = \"orange\"\n\n[admin]");
    let e = error_of(&with_color, &none, &[]);
    assert!(e.contains("`node.color`") && e.contains("orange"), "{e}");
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let text = FILE.replace("[admin]", "[admin]\napi_keys = \"x\"");
    let e = parse_with(&text, &ConfigOverrides::default(), &[]).unwrap_err();
    match &e {
        ConfigError::Syntax { line, message, .. } => {
            assert_eq!(*line, Some(13), "{e}");
            assert!(message.contains("unknown field `api_keys`"), "{e}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
    assert!(!e.to_string().contains('\n'), "one line: {e}");
}

#[test]
fn the_devchain_needs_regtest_and_required_keys_are_named() {
    let e = error_of(
        &FILE.replace("\"regtest\"", "\"signet\""),
        &ConfigOverrides::default(),
        &[],
    );
    assert!(e.contains("regtest"), "{e}");
    let e = error_of(
        "data_dir = \"x\"\n[chain]\nsource = \"dev\"\n",
        &ConfigOverrides::default(),
        &[],
    );
    assert!(e.contains("`network`") && e.contains("--network"), "{e}");
    let e = error_of(
        "network = \"signet\"\ndata_dir = \"x\"\n[chain]\nsource = \"esplora\"\n",
        &ConfigOverrides::default(),
        &[],
    );
    assert!(e.contains("chain.esplora_url"), "{e}");
}
