//! The binary refuses bad configurations before touching the disk, with one sentence and exit
//! code 2; and flags override the environment, which overrides the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const LSP_NODE: &str = env!("CARGO_BIN_EXE_lsp-node");

/// Every listener on port 0 (never bound by the checks) and a data directory that does not
/// exist yet: a configuration that is valid on any machine.
fn valid_config(data_dir: &Path) -> String {
    format!(
        r#"network = "regtest"
data_dir = "{}"

[chain]
source = "dev"
dev_listen = "127.0.0.1:0"

[node]
p2p_listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[log]
level = "info"
"#,
        data_dir.display()
    )
}

struct Case {
    dir: tempfile::TempDir,
    config: PathBuf,
    data_dir: PathBuf,
}

impl Case {
    fn new(edit: impl FnOnce(String) -> String) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let config = dir.path().join("node.toml");
        std::fs::write(&config, edit(valid_config(&data_dir))).unwrap();
        Case {
            dir,
            config,
            data_dir,
        }
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Runs the binary with no `LSP_NODE_*` variables but those given.
fn lsp_node(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(LSP_NODE);
    command.args(args);
    for (var, _) in lsp_node::config::load::ENV_VARS {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

/// Asserts a refusal: exit code 2, one line on stderr naming the problem, nothing on disk.
fn assert_refused(case: &Case, args: &[&str], env: &[(&str, &str)], expected: &[&str]) -> String {
    let before = case.files();
    let output = lsp_node(args, env);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit code for {args:?}; stderr: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for word in expected {
        assert!(
            stderr.contains(word),
            "stderr should mention {word:?}: {stderr}"
        );
    }
    assert!(
        !case.data_dir.exists(),
        "the data directory must not be created"
    );
    assert_eq!(
        case.files(),
        before,
        "nothing may be created beside the config"
    );
    stderr
}

fn run_args(case: &Case) -> Vec<String> {
    vec![
        "run".into(),
        "--config".into(),
        case.config.display().to_string(),
    ]
}

fn refused(case: &Case, expected: &[&str]) -> String {
    let args = run_args(case);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_refused(case, &args, &[], expected)
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let case = Case::new(|c| c.replace("[admin]\n", "[admin]\nlisten_port = 3001\n"));
    refused(&case, &["node.toml line 12", "unknown field `listen_port`"]);
}

#[test]
fn a_bad_network_is_refused() {
    let case = Case::new(|c| c.replace("\"regtest\"", "\"moonnet\""));
    refused(&case, &["`network`", "moonnet", "regtest"]);
}

#[test]
fn impossible_lsps1_options_are_refused() {
    let case = Case::new(|c| {
        format!(
            "{c}\n[lsps1.options]\nmin_channel_balance_sat = 500\nmax_channel_balance_sat = 100\n"
        )
    });
    refused(
        &case,
        &[
            "[lsps1]",
            "min_channel_balance_sat (500)",
            "max_channel_balance_sat (100)",
        ],
    );
    let case = Case::new(|c| format!("{c}\n[lsps1]\nhold_as_paid_peers = [\"alice\"]\n"));
    refused(&case, &["hold_as_paid_peers", "alice"]);
}

#[test]
fn a_bad_esplora_url_is_refused() {
    let case = Case::new(|c| {
        c.replace(
            "source = \"dev\"",
            "source = \"esplora\"\nesplora_url = \"mutinynet.com/api\"",
        )
    });
    refused(
        &case,
        &["`chain.esplora_url`", "mutinynet.com/api", "not a URL"],
    );
}

#[test]
fn a_bad_listen_address_is_refused() {
    let case = Case::new(|c| {
        c.replace(
            "p2p_listen = \"127.0.0.1:0\"",
            "p2p_listen = \"localhost:9735\"",
        )
    });
    refused(
        &case,
        &["`node.p2p_listen`", "localhost:9735", "IP address and port"],
    );
}

#[test]
fn a_port_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let case = Case::new(|c| {
        c.replace(
            "[admin]\nlisten = \"127.0.0.1:0\"",
            &format!("[admin]\nlisten = \"127.0.0.1:{port}\""),
        )
    });
    refused(
        &case,
        &[
            "operator API",
            &format!("127.0.0.1:{port}"),
            "already listening",
        ],
    );
    drop(taken);
}

#[test]
fn two_listeners_on_one_port_are_refused() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let case = Case::new(|c| c.replace("127.0.0.1:0", &format!("127.0.0.1:{port}")));
    refused(&case, &["same port"]);
}

#[test]
fn an_unwritable_data_dir_is_refused() {
    // Under a regular file: no directory can be created there, whoever runs the test.
    let case = Case::new(|c| c);
    let blocker = case.dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let data_dir = blocker.join("data");
    let config = valid_config(&data_dir);
    std::fs::write(&case.config, config).unwrap();
    refused(
        &case,
        &["data directory", "not-a-dir", "is a file, not a directory"],
    );
    assert!(!data_dir.exists());

    // A directory this process cannot write into (procfs refuses even root).
    let case = Case::new(|c| {
        c.replace(
            &c.lines().nth(1).unwrap().to_string(),
            "data_dir = \"/proc/lsp-node-data\"",
        )
    });
    refused(
        &case,
        &["data directory", "/proc/lsp-node-data", "cannot be created"],
    );
}

#[test]
fn a_missing_config_file_and_a_missing_key_are_refused() {
    let case = Case::new(|c| c);
    std::fs::remove_file(&case.config).unwrap();
    refused(&case, &["cannot read the config file", "node.toml"]);

    let case = Case::new(|c| c.replace("network = \"regtest\"\n", ""));
    refused(
        &case,
        &["`network` is not set", "--network", "LSP_NODE_NETWORK"],
    );
}

#[test]
fn a_bad_value_in_the_environment_or_a_flag_is_refused_naming_it() {
    let case = Case::new(|c| c);
    let args = run_args(&case);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_refused(
        &case,
        &args,
        &[("LSP_NODE_NETWORK", "moonnet")],
        &["LSP_NODE_NETWORK"],
    );
    args.extend(["--http-listen", "nowhere"]);
    assert_refused(&case, &args, &[], &["flag --http-listen", "nowhere"]);
}

/// `check-config` prints the settings in effect as TOML.
fn effective(case: &Case, flags: &[&str], env: &[(&str, &str)]) -> toml::Value {
    let mut args = vec![
        "check-config".to_string(),
        "--config".into(),
        case.config.display().to_string(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = lsp_node(&args, env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "check-config failed: {stderr}");
    toml::from_str(&String::from_utf8_lossy(&output.stdout)).expect("check-config prints TOML")
}

#[test]
fn flags_override_the_environment_which_overrides_the_file() {
    // An announced address, so the signet + public API combination below is reachable.
    let case = Case::new(|c| {
        c.replace(
            "[node]\n",
            "[node]\nannounce_addresses = [\"203.0.113.7:9735\"]\n",
        )
    });
    let from_file = case.data_dir.display().to_string();
    let from_env = case.dir.path().join("env-data").display().to_string();
    let from_flag = case.dir.path().join("flag-data").display().to_string();

    let config = effective(&case, &[], &[]);
    assert_eq!(config["data_dir"].as_str(), Some(from_file.as_str()));
    assert_eq!(config["chain"]["source"].as_str(), Some("dev"));
    assert_eq!(config["node"]["p2p_listen"].as_str(), Some("127.0.0.1:0"));
    assert_eq!(config["log"]["level"].as_str(), Some("info"));

    let env = [
        ("LSP_NODE_DATA_DIR", from_env.as_str()),
        ("LSP_NODE_ESPLORA_URL", "http://127.0.0.1:1/env"),
        ("LSP_NODE_P2P_LISTEN", "127.0.0.2:0"),
        ("LSP_NODE_ADMIN_LISTEN", "127.0.0.3:0"),
        ("LSP_NODE_LOG_LEVEL", "debug"),
    ];
    let config = effective(&case, &[], &env);
    assert_eq!(config["data_dir"].as_str(), Some(from_env.as_str()));
    assert_eq!(config["chain"]["source"].as_str(), Some("esplora"));
    assert_eq!(
        config["chain"]["esplora_url"].as_str(),
        Some("http://127.0.0.1:1/env")
    );
    assert_eq!(config["node"]["p2p_listen"].as_str(), Some("127.0.0.2:0"));
    assert_eq!(config["admin"]["listen"].as_str(), Some("127.0.0.3:0"));
    assert_eq!(config["log"]["level"].as_str(), Some("debug"));

    let flags = [
        "--data-dir",
        &from_flag,
        "--esplora-url",
        "http://127.0.0.1:1/flag",
        "--p2p-listen",
        "127.0.0.4:0",
        "--http-listen",
        "127.0.0.5:0",
        "--network",
        "signet",
        "--log-level",
        "warn",
    ];
    let config = effective(&case, &flags, &env);
    assert_eq!(config["network"].as_str(), Some("signet"));
    assert_eq!(config["data_dir"].as_str(), Some(from_flag.as_str()));
    assert_eq!(
        config["chain"]["esplora_url"].as_str(),
        Some("http://127.0.0.1:1/flag")
    );
    assert_eq!(config["node"]["p2p_listen"].as_str(), Some("127.0.0.4:0"));
    assert_eq!(config["http"]["listen"].as_str(), Some("127.0.0.5:0"));
    assert_eq!(config["log"]["level"].as_str(), Some("warn"));
    // No flag given for it: the environment still wins over the file.
    assert_eq!(config["admin"]["listen"].as_str(), Some("127.0.0.3:0"));

    // Checking changed nothing on disk.
    assert!(
        !case.data_dir.exists()
            && !Path::new(&from_env).exists()
            && !Path::new(&from_flag).exists()
    );
}

#[test]
fn the_shipped_config_files_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for name in ["regtest.toml", "mutinynet.toml", "mainnet.example.toml"] {
        let path = root.join(name);
        let parsed = lsp_node::config::load::load_with_env(&path, &Default::default(), |_| None);
        let config = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        match name {
            "regtest.toml" => {
                assert_eq!(config.network, bitcoin::Network::Regtest);
                assert_eq!(
                    config.chain.source,
                    lsp_node::config::ChainSource::Dev {
                        listen: "127.0.0.1:3002".parse().unwrap()
                    }
                );
                assert_eq!(config.admin.listen, "127.0.0.1:3001".parse().unwrap());
                assert_eq!(config.node.p2p_listen, "127.0.0.1:9735".parse().unwrap());
            }
            "mutinynet.toml" => {
                assert_eq!(config.network, bitcoin::Network::Signet);
                assert_eq!(
                    config.chain.source,
                    lsp_node::config::ChainSource::Esplora {
                        url: "https://mutinynet.com/api".into()
                    }
                );
            }
            _ => assert_eq!(config.network, bitcoin::Network::Bitcoin),
        }
    }
}

#[test]
fn a_corrupt_seed_file_stops_the_node_and_is_left_untouched() {
    let case = Case::new(|c| c);
    std::fs::create_dir(&case.data_dir).unwrap();
    let seed = case.data_dir.join("seed");
    let corrupt = b"these are not twelve words from the bip39 list\n";
    std::fs::write(&seed, corrupt).unwrap();

    let args = run_args(&case);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = lsp_node(&args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a runtime failure; stderr: {stderr}"
    );
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: cannot load the node seed"),
        "{stderr}"
    );
    assert!(last.contains("seed"), "names the file: {last}");
    assert_eq!(
        std::fs::read(&seed).unwrap(),
        corrupt,
        "the seed file is untouched"
    );
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    // A corrupt seed stops `run` right after the embedded devchain logged its start, so the
    // binary logs through tracing to a pipe and exits.
    let case = Case::new(|c| c);
    std::fs::create_dir(&case.data_dir).unwrap();
    std::fs::write(case.data_dir.join("seed"), b"not a mnemonic\n").unwrap();

    let args = run_args(&case);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = lsp_node(&args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("devchain started"),
        "something was logged through tracing: {stderr}"
    );
    assert!(
        !stderr.contains("\x1b["),
        "no ANSI escape codes when stderr is not a terminal: {stderr:?}"
    );
}

#[test]
fn a_public_api_that_would_advertise_an_unreachable_p2p_address_is_refused_off_regtest() {
    let signet_with_http = |p2p: &str, announce: &str| {
        let p2p_line = format!("p2p_listen = \"{p2p}\"\n{announce}");
        Case::new(move |c| {
            c.replace("\"regtest\"", "\"signet\"")
                .replace(
                    "source = \"dev\"\ndev_listen = \"127.0.0.1:0\"",
                    "source = \"esplora\"\nesplora_url = \"https://mutinynet.com/api\"",
                )
                .replace("p2p_listen = \"127.0.0.1:0\"\n", &p2p_line)
                + "\n[http]\nlisten = \"127.0.0.1:0\"\n"
        })
    };
    for p2p in ["0.0.0.0:9735", "127.0.0.1:9735", "[::]:9735"] {
        let case = signet_with_http(p2p, "");
        refused(
            &case,
            &[
                "node.announce_addresses",
                "node.p2p_listen",
                p2p,
                "cannot reach",
            ],
        );
        assert_eq!(case.files(), ["node.toml"], "nothing was created");
    }
    let announced = signet_with_http(
        "0.0.0.0:9735",
        "announce_addresses = [\"203.0.113.7:9735\"]\n",
    );
    let config =
        lsp_node::config::load::load_with_env(&announced.config, &Default::default(), |_| None)
            .expect("an announced address is reachable");
    assert_eq!(config.node.announce_addresses, ["203.0.113.7:9735"]);
    // Regtest sandboxes run on one machine: allowed (the node warns at start).
    let regtest = Case::new(|c| {
        c.replace("p2p_listen = \"127.0.0.1:0\"", "p2p_listen = \"0.0.0.0:0\"")
            + "\n[http]\nlisten = \"127.0.0.1:0\"\n"
    });
    lsp_node::config::load::load_with_env(&regtest.config, &Default::default(), |_| None)
        .expect("regtest may advertise loopback");
}
