//! What the shipped binary is built with. `cargo test` unifies the dev-dependencies' features
//! into every test build, so no test of a running node can see a feature that only a
//! dev-dependency turns on. This reads the normal (non-dev) dependency graph from
//! `cargo tree`, as `cargo build --release` resolves it, and checks it directly.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Package (`name vX.Y.Z`) -> features enabled, for the graph along `edges`.
fn resolved_features(edges: &str) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["tree", "--locked", "--offline", "--edges", edges])
        .args(["--prefix", "none", "--no-dedupe", "--format", "{p}|{f}"])
        .args([
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        let name_version = package
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        // A package met again along a cycle (the crate as its own dev-dependency) is marked
        // "(*)" after its features.
        let features = features.trim_end_matches(" (*)");
        graph.entry(name_version).or_default().extend(
            features
                .split(',')
                .filter(|f| !f.is_empty())
                .map(String::from),
        );
    }
    graph
}

fn features_of<'a>(
    graph: &'a BTreeMap<String, BTreeSet<String>>,
    name: &str,
) -> Vec<(&'a String, &'a BTreeSet<String>)> {
    let found: Vec<_> = graph
        .iter()
        .filter(|(package, _)| package.split(' ').next() == Some(name))
        .collect();
    assert!(
        !found.is_empty(),
        "{name} is not in the normal dependency graph"
    );
    found
}

#[test]
fn the_shipped_binary_speaks_https_on_every_outbound_client() {
    let graph = resolved_features("normal");
    // The node's own client (fees, broadcasts, genesis check) and the CLI's, and through
    // esplora-client 0.12 the on-chain wallet's.
    for (package, features) in features_of(&graph, "reqwest") {
        for needed in ["rustls-tls-webpki-roots", "rustls-tls-native-roots"] {
            assert!(
                features.contains(needed),
                "{package} lacks {needed}: {features:?}"
            );
        }
    }
    // esplora-client 0.12 (the wallet) and 0.13 (LDK's chain sync, over bitreq).
    for (package, features) in features_of(&graph, "esplora-client") {
        assert!(
            features.contains("async-https-rustls"),
            "{package} cannot speak HTTPS: {features:?}"
        );
    }
    for (package, features) in features_of(&graph, "bitreq") {
        for needed in ["async-https-rustls", "https-rustls-probe"] {
            assert!(
                features.contains(needed),
                "{package} lacks {needed}: {features:?}"
            );
        }
    }
    for (package, features) in features_of(&graph, "rustls") {
        assert!(
            features.contains("ring"),
            "{package} has no crypto provider: {features:?}"
        );
        assert!(
            !features.contains("aws_lc_rs") && !features.contains("aws-lc-rs"),
            "{package} would have two crypto providers and refuse to pick one: {features:?}"
        );
    }
}

/// Features that only the test build turns on for crates the binary also links, and why each
/// makes no difference to the binary. A new one fails here: decide whether the binary needs it.
const DEV_ONLY_FEATURES: &[(&str, &str, &str)] = &[
    ("tokio", "test-util", "paused time in tests"),
    (
        "rustls",
        "log",
        "rustls' own logging, through the log crate",
    ),
    (
        "rustls",
        "logging",
        "rustls' own logging, through the log crate",
    ),
    (
        "chrono",
        "clock",
        "ldk-node's clock; the node reads time through std",
    ),
    (
        "chrono",
        "now",
        "ldk-node's clock; the node reads time through std",
    ),
    (
        "chrono",
        "std",
        "ldk-node's clock; the node reads time through std",
    ),
    (
        "chrono",
        "iana-time-zone",
        "ldk-node's clock; time zones are never read",
    ),
    (
        "lsp-node",
        "fault-points",
        "the crash tests' named crash points (src/fault_points.rs); never shipped",
    ),
    ("chrono", "winapi", "Windows only"),
    ("chrono", "windows-link", "Windows only"),
    ("bitflags", "std", "std trait impls only"),
    (
        "bdk_core",
        "default",
        "its default is std, which the binary already has",
    ),
    (
        "bitcoin_hashes",
        "default",
        "its default is std, which the binary already has",
    ),
];

#[test]
fn no_feature_reaches_only_the_test_build_unexplained() {
    let normal = resolved_features("normal");
    let everything = resolved_features("normal,build,dev");
    let mut unexplained = Vec::new();
    for (package, features) in &normal {
        let name = package.split(' ').next().unwrap();
        let Some(test_features) = everything.get(package) else {
            continue;
        };
        for feature in test_features.difference(features) {
            let explained = DEV_ONLY_FEATURES
                .iter()
                .any(|(crate_name, f, _)| *crate_name == name && f == feature);
            if !explained {
                unexplained.push(format!("{package}: {feature}"));
            }
        }
    }
    assert!(
        unexplained.is_empty(),
        "the test build enables features the shipped binary lacks; add them to the binary or \
         explain them in DEV_ONLY_FEATURES: {unexplained:#?}"
    );
}
