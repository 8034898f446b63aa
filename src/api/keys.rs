//! The operator API key: the configured one, or the one kept in `<data_dir>/admin-api-key`,
//! created on first start (32 random bytes as hex, file mode 0600, written atomically). The
//! node serves with it; the operator CLI reads the same file to find a running node's key.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

/// Name of the file, inside the data directory, holding the generated API key.
pub const API_KEY_FILE: &str = "admin-api-key";

/// Why the API key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the configured admin API key is not usable: {0}")]
    InvalidConfiguredKey(&'static str),
    #[error("cannot read the admin API key file {}: {source}; fix its permissions or remove it to generate a new key", path.display())]
    KeyFileUnreadable { path: PathBuf, source: io::Error },
    #[error("the admin API key file {} is empty or not a valid key; write a key into it or remove it to generate a new one", path.display())]
    KeyFileInvalid { path: PathBuf },
    #[error("cannot create the admin API key file {}: {source}", path.display())]
    KeyFileWrite { path: PathBuf, source: io::Error },
}

/// Uses `configured` when Some; else reads `<data_dir>/admin-api-key`, or creates it (0600)
/// when it does not exist. An existing file that cannot be read or holds no key is an error
/// and is left as it is.
pub fn load_or_create_api_key(
    data_dir: &Path,
    configured: Option<&str>,
) -> Result<String, AdminError> {
    if let Some(key) = configured {
        validate_key(key).map_err(AdminError::InvalidConfiguredKey)?;
        return Ok(key.to_string());
    }
    let path = data_dir.join(API_KEY_FILE);
    match read_api_key_file(&path) {
        Err(AdminError::KeyFileUnreadable { source, .. })
            if source.kind() == io::ErrorKind::NotFound =>
        {
            create_api_key_file(data_dir, &path)
        }
        other => other,
    }
}

/// Reads the key stored at `path` (normally `<data_dir>/admin-api-key`) without creating
/// anything: what the operator CLI uses to find the running node's key.
pub fn read_api_key_file(path: &Path) -> Result<String, AdminError> {
    let contents = fs::read_to_string(path).map_err(|source| AdminError::KeyFileUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let key = contents.trim();
    if validate_key(key).is_err() {
        return Err(AdminError::KeyFileInvalid {
            path: path.to_path_buf(),
        });
    }
    Ok(key.to_string())
}

/// The rules an API key must follow: it travels in an HTTP header, so printable ASCII only.
fn validate_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("it is empty");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("it must be printable ASCII without spaces");
    }
    Ok(())
}

fn create_api_key_file(data_dir: &Path, path: &Path) -> Result<String, AdminError> {
    let write_err = |source| AdminError::KeyFileWrite {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = hex::encode(bytes);

    fs::create_dir_all(data_dir).map_err(write_err)?;
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let tmp = data_dir.join(format!(".{API_KEY_FILE}.tmp-{}", hex::encode(suffix)));
    let written = (|| {
        let mut file = private_file_options().open(&tmp)?;
        file.write_all(key.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        fs::File::open(data_dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    tracing::info!(path = %path.display(), "created a new admin API key");
    Ok(key)
}

fn private_file_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}
