//! Checks of a [`Config`] against the machine, run by `lsp-node run` before the node starts:
//! the data directory can be created and written, the seed file location is usable, and every
//! listen address is free. Nothing is left on disk and no port stays bound: a probe file made
//! to test writability is removed at once, and listeners are released right after binding.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::{ChainSource, Config, ConfigError};

/// Runs every check; the first failure is returned.
pub fn preflight(config: &Config) -> Result<(), ConfigError> {
    check_listeners(&listeners(config))?;
    check_data_dir(&config.data_dir)?;
    if let Some(seed_file) = &config.node.seed_file {
        check_seed_file(seed_file, &config.data_dir)?;
    }
    Ok(())
}

/// The listeners a node with `config` binds, with what each one is for.
pub fn listeners(config: &Config) -> Vec<(&'static str, SocketAddr)> {
    let mut listeners = vec![
        (
            "the p2p listen address (node.p2p_listen)",
            config.node.p2p_listen,
        ),
        (
            "the operator API address (admin.listen)",
            config.admin.listen,
        ),
    ];
    if let Some(http) = config.http.listen {
        listeners.push(("the public HTTP address (http.listen)", http));
    }
    if let ChainSource::Dev { listen } = config.chain.source {
        listeners.push(("the devchain address (chain.dev_listen)", listen));
    }
    listeners
}

fn check_listeners(listeners: &[(&'static str, SocketAddr)]) -> Result<(), ConfigError> {
    for (i, (what, addr)) in listeners.iter().enumerate() {
        if addr.port() == 0 {
            continue;
        }
        for (other_what, other) in &listeners[..i] {
            let same_ip = addr.ip() == other.ip()
                || addr.ip().is_unspecified()
                || other.ip().is_unspecified();
            if other.port() == addr.port() && same_ip {
                return Err(ConfigError::Listen {
                    what,
                    addr: *addr,
                    problem: format!("{other_what} uses the same port; give each listener its own"),
                });
            }
        }
        // Bind and release at once: only to learn, before anything starts, whether it is free.
        if let Err(e) = TcpListener::bind(addr) {
            let problem = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "another program is already listening there; stop it or choose another port"
                        .to_string()
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    "this machine has no such address; use one of its own IP addresses".to_string()
                }
                _ => format!("binding it failed ({e})"),
            };
            return Err(ConfigError::Listen {
                what,
                addr: *addr,
                problem,
            });
        }
    }
    Ok(())
}

/// The data directory must be a writable directory, or creatable: its nearest existing ancestor
/// must be a writable directory.
fn check_data_dir(data_dir: &Path) -> Result<(), ConfigError> {
    let fail = |problem: String| ConfigError::DataDir {
        path: data_dir.to_path_buf(),
        problem,
    };
    let absolute = std::path::absolute(data_dir)
        .map_err(|e| fail(format!("its absolute path cannot be found ({e})")))?;
    let existing = absolute
        .ancestors()
        .find(|p| fs::symlink_metadata(p).is_ok())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let metadata = fs::metadata(&existing)
        .map_err(|e| fail(format!("{} cannot be inspected ({e})", existing.display())))?;
    if !metadata.is_dir() {
        return Err(fail(if existing == absolute {
            "it exists and is not a directory".to_string()
        } else {
            format!("{} is a file, not a directory", existing.display())
        }));
    }
    probe_writable(&existing).map_err(|e| {
        fail(if existing == absolute {
            format!("it cannot be written ({e})")
        } else {
            format!(
                "it does not exist and cannot be created in {} ({e})",
                existing.display()
            )
        })
    })
}

/// A configured seed file must be a file when it exists; when it does not, the node creates it,
/// so its directory must exist (or be the data directory, which the node creates).
fn check_seed_file(seed_file: &Path, data_dir: &Path) -> Result<(), ConfigError> {
    let fail = |problem: String| ConfigError::Invalid {
        origin: format!("seed file {}", seed_file.display()),
        problem,
    };
    match fs::metadata(seed_file) {
        Ok(m) if m.is_dir() => Err(fail("it is a directory, not a file".to_string())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = match seed_file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if parent == data_dir || parent.is_dir() {
                Ok(())
            } else {
                Err(fail(format!(
                    "it does not exist and its directory {} does not exist either",
                    parent.display()
                )))
            }
        }
        Err(e) => Err(fail(format!("it cannot be inspected ({e})"))),
    }
}

fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let probe = dir.join(format!(".lsp-node-write-probe-{}", hex::encode(suffix)));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    fs::remove_file(&probe)
}
