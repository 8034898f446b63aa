//! Running the project's Python checks from tests: the scripts in `scripts/` that install
//! pinned tools from PyPI into project-local environments (see `scripts/python-venv`). A script
//! that fails, including for want of PyPI, fails the test with its own words.

use std::ffi::OsStr;
use std::path::PathBuf;

/// Where the scripts keep their environments: in cargo's target directory, so a re-run finds
/// them installed and needs no network.
pub fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python")
}

/// Runs `scripts/<script> args` from the repository root and returns its stdout; panics with
/// its stdout and stderr unless it exits 0.
pub async fn run_script<I, S>(script: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let root = env!("CARGO_MANIFEST_DIR");
    let output = tokio::process::Command::new(format!("{root}/scripts/{script}"))
        .args(args)
        .current_dir(root)
        .env("LSP_NODE_PYTHON_DIR", python_dir())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("scripts/{script} could not be started: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

/// The python of the project-local environment `name` holding exactly `pins`.
pub async fn python_venv(name: &str, pins: &[&str]) -> PathBuf {
    let args = std::iter::once(name).chain(pins.iter().copied());
    PathBuf::from(run_script("python-venv", args).await.trim())
}
