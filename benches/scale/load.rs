//! The load: wrk runs and what they print, the create_order bodies (one client key each), and
//! the hello-world baseline every HTTP figure is compared with.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub requests: u64,
    /// Answers that were not 2xx, and connect/read/write/timeout errors.
    pub failures: u64,
}

/// One wrk run, started: [`Wrk::finish`] waits for it.
pub struct Wrk {
    child: Child,
}

/// A wrk run: `connections` over 2 threads for `secs` against `url`, with `script` (a Lua
/// script and its arguments) if given.
pub fn start_wrk(
    url: &str,
    connections: u32,
    secs: u32,
    script: Option<(&Path, &[String])>,
) -> Wrk {
    let mut command = Command::new("wrk");
    command
        .arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("--latency");
    if let Some((path, _)) = script {
        command.arg("-s").arg(path);
    }
    command.arg(url);
    if let Some((_, args)) = script {
        command.arg("--").args(args);
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run wrk (scripts/bench installs it)");
    Wrk { child }
}

impl Wrk {
    pub fn finish(self) -> Measured {
        let output = self.child.wait_with_output().expect("wrk runs");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "wrk failed:\n{text}");
        parse_wrk(&text).unwrap_or_else(|| panic!("cannot read wrk's output:\n{text}"))
    }
}

/// Runs wrk to the end.
pub fn wrk(url: &str, connections: u32, secs: u32, script: Option<(&Path, &[String])>) -> Measured {
    start_wrk(url, connections, secs, script).finish()
}

fn parse_wrk(text: &str) -> Option<Measured> {
    let mut measured = Measured {
        per_sec: 0.0,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        requests: 0,
        failures: 0,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => measured.p50 = parse_latency(value)?,
            ["99%", value] => measured.p99 = parse_latency(value)?,
            ["Requests/sec:", value] => measured.per_sec = value.parse().ok()?,
            [count, "requests", "in", ..] => measured.requests = count.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                measured.failures += count.parse::<u64>().ok()?
            }
            ["Socket", "errors:", rest @ ..] => {
                for number in rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                {
                    measured.failures += number;
                }
            }
            _ => {}
        }
    }
    (measured.requests > 0).then_some(measured)
}

fn parse_latency(value: &str) -> Option<Duration> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let secs = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// The wrk script posting create_order bodies, one per line of the file given as its first
/// argument, each wrk thread starting at its own place in the file.
const CREATE_ORDER_LUA: &str = r#"
local bodies = {}
local counter = 0
local threads = 0

function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  counter = math.floor((offset or 0) * #bodies / 2)
end

request = function()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
"#;

/// The create_order load: its wrk script and the bodies it posts.
pub struct OrderLoad {
    pub script: PathBuf,
    pub bodies: PathBuf,
    /// One body, for single orders.
    pub sample: String,
}

impl OrderLoad {
    /// Writes `count` Olympus create_order bodies, each for its own client key, and the
    /// script that posts them.
    pub fn write(dir: &Path, count: usize) -> OrderLoad {
        let secp = Secp256k1::new();
        let script = dir.join("create_order.lua");
        std::fs::write(&script, CREATE_ORDER_LUA).expect("write the wrk script");
        let bodies = dir.join("create_order_bodies.jsonl");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&bodies).expect("bodies"));
        let mut sample = String::new();
        for i in 0..count {
            let mut secret = [0u8; 32];
            secret[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            secret[31] = 1;
            let key = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&secret).unwrap());
            let body = order_body(&key);
            writeln!(file, "{body}").expect("write a body");
            if i == 0 {
                sample = body;
            }
        }
        file.flush().expect("flush the bodies");
        OrderLoad {
            script,
            bodies,
            sample,
        }
    }

    pub fn args(&self) -> Vec<String> {
        vec![self.bodies.display().to_string()]
    }
}

/// The Olympus document's create_order example at the smallest channel this node sells.
pub fn order_body(client: &PublicKey) -> String {
    serde_json::json!({
        "lsp_balance_sat": "20000",
        "client_balance_sat": "0",
        "required_channel_confirmations": 0,
        "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 13000,
        "token": "",
        "refund_onchain_address": "",
        "announce_channel": false,
        "public_key": client.to_string(),
    })
    .to_string()
}

/// Serves `body` as JSON at `/` on its own two-worker runtime (the node's shape), on a
/// thread of its own; returns the address.
pub fn start_hello_world(body: String) -> SocketAddr {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new().route(
                "/",
                get(move || {
                    let body = body.clone();
                    async move { ([("content-type", "application/json")], body) }
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    receiver.recv().expect("the hello-world server starts")
}
