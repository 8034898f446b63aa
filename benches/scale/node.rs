//! The release binary under measurement: its config, starting it on a data directory, funding
//! its wallet from the embedded devchain's faucet, reading its CPU time and memory from
//! `/proc`, and stopping it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const API_KEY: &str = "bench-admin-key-0123456789abcdef";

/// How long any single wait of the bench may take before it gives up.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The listen ports of one node, picked free before it starts.
#[derive(Clone, Copy)]
pub struct Ports {
    pub public: u16,
    pub admin: u16,
    pub devchain: u16,
    pub p2p: u16,
}

impl Ports {
    pub fn free() -> Ports {
        let port = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        };
        Ports {
            public: port(),
            admin: port(),
            devchain: port(),
            p2p: port(),
        }
    }
}

/// The node's config: the embedded devchain, every per-client limit lifted so the server and
/// not the limiter is measured, quiet logs.
pub fn config(dir: &Path, ports: Ports) -> String {
    format!(
        r#"network = "regtest"
data_dir = "{dir}"

[chain]
source = "dev"
dev_listen = "127.0.0.1:{devchain}"
dev_block_interval_secs = 0
sync_interval_secs = 5

[node]
p2p_listen = "127.0.0.1:{p2p}"

[http]
listen = "127.0.0.1:{public}"
rate_limit_per_minute = 4000000000
rate_limit_burst = 4000000000
orders_per_hour = 4000000000

[admin]
listen = "127.0.0.1:{admin}"
api_key = "{API_KEY}"

[log]
format = "json"
level = "warn"

[lsps1]
enabled = true

[lsps1.limits]
max_unpaid_orders_per_peer = 4000000000
p2p_orders_per_hour_per_peer = 4000000000
p2p_orders_per_minute = 4000000000

[lsps1.options]
order_expiry_secs = 86400
min_required_channel_confirmations = 0
"#,
        dir = dir.display(),
        devchain = ports.devchain,
        p2p = ports.p2p,
        public = ports.public,
        admin = ports.admin,
    )
}

pub struct BenchNode {
    child: Child,
    pub public_url: String,
    admin_url: String,
    pub devchain_url: String,
    pub p2p_addr: std::net::SocketAddr,
    http: reqwest::Client,
}

impl BenchNode {
    /// Starts `binary` on `dir` and waits until its public API answers; returns the node and
    /// how long that took from the spawn.
    pub async fn start(binary: &Path, dir: &Path, ports: Ports) -> (BenchNode, Duration) {
        std::fs::create_dir_all(dir).expect("create the data directory");
        let config_path = dir.join("bench.toml");
        std::fs::write(&config_path, config(dir, ports)).expect("write the config");
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let node = BenchNode {
            child,
            public_url: format!("http://127.0.0.1:{}", ports.public),
            admin_url: format!("http://127.0.0.1:{}", ports.admin),
            devchain_url: format!("http://127.0.0.1:{}", ports.devchain),
            p2p_addr: std::net::SocketAddr::from(([127, 0, 0, 1], ports.p2p)),
            http: reqwest::Client::new(),
        };
        let info = format!("{}/api/v1/get_info", node.public_url);
        poll(DEADLINE, "the public API to answer", || async {
            let answer = node.http.get(&info).send().await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
        (node, started.elapsed())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.admin_url))
            .header("x-api-key", API_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("the operator API answers");
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn dev(&self, path: &str, body: Value) -> Value {
        let answer = self
            .http
            .post(format!("{}{path}", self.devchain_url))
            .json(&body)
            .send()
            .await
            .expect("the devchain answers");
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// The node's id, from the operator API.
    pub async fn node_id(&self) -> bitcoin::secp256k1::PublicKey {
        let info = self.admin(reqwest::Method::GET, "/v1/info", None).await;
        info["node_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("a node id")
    }

    /// Mines enough blocks for the faucet to pay what the bench funds.
    pub async fn mine_for_faucet(&self) {
        self.dev("/dev/mine", json!({ "blocks": 150 })).await;
    }

    /// Pays `coins` faucet outputs of `sats_each` to the wallet, confirms them, and waits until
    /// the wallet can spend them all.
    pub async fn fund(&self, coins: u32, sats_each: u64) {
        for _ in 0..coins {
            let address = self.admin(reqwest::Method::POST, "/v1/address", None).await;
            let address = address["address"].as_str().expect("an address").to_string();
            self.dev(
                "/dev/fund",
                json!({ "address": address, "sats": sats_each }),
            )
            .await;
        }
        self.dev("/dev/mine", json!({ "blocks": 6 })).await;
        let wanted = u64::from(coins) * sats_each;
        poll(DEADLINE, "the wallet to see its funds", || async {
            self.admin(reqwest::Method::POST, "/v1/sync", None).await;
            let balance = self.admin(reqwest::Method::GET, "/v1/balance", None).await;
            let spendable = balance["onchain_confirmed_sat"].as_u64()?;
            (spendable >= wanted).then_some(())
        })
        .await;
    }

    /// Waits until the node takes orders (it has synced with the chain since it started).
    pub async fn wait_taking_orders(&self, body: &str) {
        let url = format!("{}/api/v1/create_order", self.public_url);
        poll(DEADLINE, "the node to take orders", || async {
            let answer = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
    }

    /// Creates one order and returns its id.
    pub async fn create_order(&self, body: &str) -> String {
        let answer = self
            .http
            .post(format!("{}/api/v1/create_order", self.public_url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("create_order answers");
        let status = answer.status();
        let order: Value = answer.json().await.expect("an order");
        assert!(status.is_success(), "create_order: {status} {order}");
        order["order_id"].as_str().expect("an order id").to_string()
    }

    /// User plus system CPU time of the process so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("a stat line") + 2..]
            .split(' ')
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_sec())
    }

    /// Bytes the process has caused to be written to storage so far (`write_bytes` of
    /// `/proc/PID/io`: the SQLite files, their WAL, the node's own files).
    pub fn storage_written(&self) -> u64 {
        let io =
            std::fs::read_to_string(format!("/proc/{}/io", self.pid())).expect("read /proc/PID/io");
        io.lines()
            .find_map(|line| line.strip_prefix("write_bytes:"))
            .and_then(|bytes| bytes.trim().parse().ok())
            .expect("write_bytes")
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS");
        kib / 1024.0
    }

    /// Stops the node with SIGTERM and waits for it to exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn clock_ticks_per_sec() -> f64 {
    let output = Command::new("getconf").arg("CLK_TCK").output();
    output
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Calls `check` every 100 ms until it returns `Some`, or panics naming `what` after `within`.
pub async fn poll<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node's database file in `dir`.
pub fn database(dir: &Path) -> PathBuf {
    dir.join("lsp-node.sqlite")
}
