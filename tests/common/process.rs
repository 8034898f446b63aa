//! The real `lsp-node` binary as a child process: `run` on a config file written by the test
//! (or any subcommand, e.g. `devchain`), its log collected (JSON lines parsed, others kept as
//! text), its operator API found from the log, SIGKILLed when dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{wait_for, Operator};

pub const LSP_NODE: &str = env!("CARGO_BIN_EXE_lsp-node");

/// The operator API key every config written by [`regtest_config`] sets.
pub const API_KEY: &str = "e2e-operator-key-0123456789";

/// A regtest config syncing from `esplora_url` every `sync_interval_secs`, every listener on
/// 127.0.0.1 port 0, JSON logs.
pub fn regtest_config(data_dir: &Path, esplora_url: &str, sync_interval_secs: u64) -> String {
    format!(
        r#"network = "regtest"
data_dir = "{data_dir}"

[chain]
source = "esplora"
esplora_url = "{esplora_url}"
sync_interval_secs = {sync_interval_secs}

[node]
p2p_listen = "127.0.0.1:0"

[http]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
api_key = "{API_KEY}"

[log]
format = "json"
level = "info"
"#,
        data_dir = data_dir.display()
    )
}

pub struct NodeProcess {
    child: Child,
    log: Arc<Mutex<Vec<Value>>>,
}

impl NodeProcess {
    /// Writes `config` to `dir/node.toml` and starts `lsp-node run` on it, with none of the
    /// test's `LSP_NODE_*` or `SSL_CERT_*` variables and `env` added.
    pub fn spawn(dir: &Path, config: &str, env: &[(&str, &str)]) -> NodeProcess {
        let config_path = dir.join("node.toml");
        std::fs::write(&config_path, config).expect("write the config");
        let args = [
            OsStr::new("run"),
            OsStr::new("--config"),
            config_path.as_os_str(),
        ];
        Self::spawn_args(&args, env)
    }

    /// Starts `lsp-node ARGS`, with none of the test's `LSP_NODE_*` or `SSL_CERT_*` variables
    /// and `env` added.
    pub fn spawn_args(args: &[&OsStr], env: &[(&str, &str)]) -> NodeProcess {
        let mut command = Command::new(LSP_NODE);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (var, _) in lsp_node::config::load::ENV_VARS {
            command.env_remove(var);
        }
        command
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("the binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let entry = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lock().unwrap().push(entry);
            }
        });
        NodeProcess { child, log }
    }

    /// The `fields` of the first log line whose message starts with `message`, if any yet.
    pub fn log_fields(&self, message: &str) -> Option<Value> {
        self.log.lock().unwrap().iter().find_map(|entry| {
            let fields = entry.get("fields")?;
            let text = fields.get("message")?.as_str()?;
            text.starts_with(message).then(|| fields.clone())
        })
    }

    /// The first plain-text (not JSON) log line containing `text`, if any yet.
    pub fn log_line(&self, text: &str) -> Option<String> {
        self.log.lock().unwrap().iter().find_map(|entry| {
            let line = entry.as_str()?;
            line.contains(text).then(|| line.to_string())
        })
    }

    /// Waits until a plain-text log line contains `text` (failing if the process exits first).
    pub async fn wait_log_line(&mut self, text: &str, deadline: Duration) -> String {
        wait_for(&format!("a log line with {text:?}"), deadline, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("lsp-node exited with {status}:\n{}", self.log_text());
            }
            std::future::ready(self.log_line(text))
        })
        .await
    }

    /// Sends SIGTERM (a graceful stop, as a service manager does) and waits for the exit.
    pub async fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM could not be sent");
        self.wait_exit(deadline).await
    }

    /// SIGKILLs the process and reaps it: nothing gets to run on the way out.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the process logged so far, one line per entry.
    pub fn log_text(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter()
            .map(|entry| entry.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until the node logs that it runs; its operator API, with [`API_KEY`].
    pub async fn wait_running(&mut self, deadline: Duration) -> Operator {
        let fields = wait_for("the node to log that it runs", deadline, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("lsp-node exited with {status}:\n{}", self.log_text());
            }
            std::future::ready(self.log_fields("node running"))
        })
        .await;
        let admin = fields["operator_api"].as_str().expect("operator_api field");
        Operator::new(format!("http://{admin}"), API_KEY.to_string())
    }

    /// `http://IP:PORT` of the public HTTP API, once the node logged it.
    pub fn public_api_url(&self) -> String {
        let fields = self
            .log_fields("public LSPS1 HTTP API serving")
            .expect("the node logged its public API");
        format!(
            "http://{}",
            fields["public_api"].as_str().expect("public_api field")
        )
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        wait_for("lsp-node to exit", deadline, || {
            std::future::ready(self.child.try_wait().expect("child status"))
        })
        .await
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
