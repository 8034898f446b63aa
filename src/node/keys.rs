//! Node keys: the BIP39 seed file and everything derived from it.
//!
//! The node has exactly one secret: a BIP39 mnemonic (24 words when we create it) stored as
//! text in the seed file (by default `<data_dir>/seed`). Everything else is derived from it
//! deterministically, so the mnemonic alone restores the node's identity and on-chain funds
//! (channel state additionally needs the database).
//!
//! Derivation, starting from the 64-byte BIP39 seed (`mnemonic.to_seed("")`, empty passphrase)
//! and its BIP32 master key `m`:
//!
//! | what                          | path                       | notes                                  |
//! |-------------------------------|----------------------------|----------------------------------------|
//! | LDK seed (`KeysManager::new`) | `m/535'`, 32-byte secret   | node id, channel keys, LDK destination |
//! | wallet, receive (external)    | `wpkh(m/84'/c'/0'/0/*)`    | BIP84; `c` = 0 on mainnet, 1 elsewhere |
//! | wallet, change (internal)     | `wpkh(m/84'/c'/0'/1/*)`    | BIP84                                  |
//! | ticket key                    | `m/536'`, 32-byte secret   | HMAC key of customers' claim tickets   |
//!
//! The LDK seed sits on its own hardened branch so that no wallet key can ever be used to
//! derive a Lightning key or the other way round.
//!
//! Seed file rules: created only when the path does not exist, written to a temporary file with
//! mode 0600 in the same directory, fsynced, then linked into place without replacing anything
//! (so the secret is never world-readable and an existing file is never overwritten). A file that
//! exists but cannot be read or parsed is an error naming the path; we never generate a new
//! seed in its place. Telling the operator to back up a freshly created mnemonic is the caller's
//! job ([`SeedOrigin::Created`]).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bip39::Mnemonic;
use bitcoin::bip32::{ChildNumber, Xpriv};
use bitcoin::secp256k1::Secp256k1;
use bitcoin::Network;

/// Number of words in a mnemonic we create.
const CREATED_MNEMONIC_WORDS: usize = 24;

/// Hardened child of the master key whose secret becomes the LDK seed (as ldk-node does).
const LDK_SEED_CHILD_INDEX: u32 = 535;

/// Hardened child whose secret keys the claim tickets of customers' orders.
const TICKET_KEY_CHILD_INDEX: u32 = 536;

/// Errors reading, creating or using the node seed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read the seed file {path}: {source}; fix its permissions or restore it from backup (a new seed is never created in place of an existing file)")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("the seed file {path} does not contain a valid BIP39 mnemonic ({reason}); restore it from backup (a new seed is never created in place of an existing file)")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot create the seed file {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("invalid BIP39 mnemonic: {0}")]
    InvalidMnemonic(String),
    #[error("cannot derive keys from the seed: {0}")]
    Derivation(String),
}

/// Whether [`NodeSeed::load_or_create`] found an existing seed or made a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOrigin {
    /// A new mnemonic was generated and written; the operator must back it up now.
    Created,
    /// An existing seed file was read.
    Loaded,
}

/// The node's root secret. `Debug` never prints the mnemonic or anything derived from it.
#[derive(Clone)]
pub struct NodeSeed {
    mnemonic: Mnemonic,
}

impl fmt::Debug for NodeSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSeed")
            .field("mnemonic", &"<redacted>")
            .finish()
    }
}

impl NodeSeed {
    /// Reads the BIP39 mnemonic at `path`, or creates it (mode 0600) when the file does not
    /// exist. A file that exists but cannot be read or parsed is an error, never replaced.
    pub fn load_or_create(path: &Path) -> Result<(NodeSeed, SeedOrigin), KeysError> {
        match fs::symlink_metadata(path) {
            Ok(_) => Self::load(path).map(|seed| (seed, SeedOrigin::Loaded)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(path),
            Err(source) => Err(KeysError::Unreadable {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses a BIP39 mnemonic (English word list, any valid length).
    pub fn from_mnemonic(phrase: &str) -> Result<NodeSeed, KeysError> {
        let normalized = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
        let mnemonic =
            Mnemonic::parse(normalized).map_err(|e| KeysError::InvalidMnemonic(e.to_string()))?;
        Ok(NodeSeed { mnemonic })
    }

    /// The mnemonic words separated by single spaces (for the one-time backup warning).
    pub fn mnemonic_phrase(&self) -> String {
        self.mnemonic.to_string()
    }

    /// The 32-byte seed for `lightning::sign::KeysManager::new`: the secret key at `m/535'`.
    pub fn ldk_seed(&self) -> [u8; 32] {
        self.hardened_secret(LDK_SEED_CHILD_INDEX)
    }

    /// The key the claim tickets of customers' orders are derived with
    /// ([`crate::lsps1::claims::ClaimToken::derived`]): the secret key at `m/536'`.
    pub fn ticket_key(&self) -> [u8; 32] {
        self.hardened_secret(TICKET_KEY_CHILD_INDEX)
    }

    fn hardened_secret(&self, index: u32) -> [u8; 32] {
        // The secret is independent of the network; the network only affects serialization.
        let child = self
            .master_key(Network::Bitcoin)
            .derive_priv(&Secp256k1::new(), &[ChildNumber::Hardened { index }])
            .expect("hardened derivation from a valid master key cannot fail");
        child.private_key.secret_bytes()
    }

    /// BIP84 (`wpkh`) descriptors for the on-chain wallet: `(external, internal)`.
    ///
    /// They contain the extended private key, so treat them as secrets too.
    pub fn wallet_descriptors(&self, network: Network) -> (String, String) {
        let master = self.master_key(network);
        let coin_type = if network == Network::Bitcoin { 0 } else { 1 };
        (
            format!("wpkh({master}/84'/{coin_type}'/0'/0/*)"),
            format!("wpkh({master}/84'/{coin_type}'/0'/1/*)"),
        )
    }

    fn master_key(&self, network: Network) -> Xpriv {
        let seed = self.mnemonic.to_seed("");
        Xpriv::new_master(network, &seed).expect("a 64-byte seed always yields a master key")
    }

    fn load(path: &Path) -> Result<NodeSeed, KeysError> {
        let text = fs::read_to_string(path).map_err(|source| KeysError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let seed = Self::from_mnemonic(&text).map_err(|e| KeysError::Corrupt {
            path: path.to_path_buf(),
            reason: match e {
                KeysError::InvalidMnemonic(reason) => reason,
                other => other.to_string(),
            },
        })?;
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the seed file is readable by other users; restrict it with chmod 600"
                );
            }
        }
        Ok(seed)
    }

    fn create(path: &Path) -> Result<(NodeSeed, SeedOrigin), KeysError> {
        let create_err = |source| KeysError::Create {
            path: path.to_path_buf(),
            source,
        };
        let mnemonic = Mnemonic::generate(CREATED_MNEMONIC_WORDS)
            .map_err(|e| KeysError::Derivation(e.to_string()))?;
        let seed = NodeSeed { mnemonic };

        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path.file_name().ok_or_else(|| {
            create_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path names no file",
            ))
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let tmp_path = dir.join(tmp_name);

        let written = write_private_file(&tmp_path, seed.mnemonic_phrase().as_bytes())
            // A hard link never replaces an existing file, unlike rename.
            .and_then(|()| fs::hard_link(&tmp_path, path))
            .and_then(|()| File::open(&dir)?.sync_all());
        let _ = fs::remove_file(&tmp_path);
        written.map_err(create_err)?;
        Ok((seed, SeedOrigin::Created))
    }
}

/// Creates `path` (which must not exist) with mode 0600 from the start, writes and fsyncs it.
fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    // BIP39 test vector (all-zero entropy, 24 words).
    const PHRASE: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon art";

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn creates_then_loads_the_same_seed_with_mode_0600() {
        let dir = tempdir();
        let path = dir.path().join("seed");
        let (created, origin) = NodeSeed::load_or_create(&path).unwrap();
        assert_eq!(origin, SeedOrigin::Created);
        assert_eq!(created.mnemonic_phrase().split(' ').count(), 24);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let (loaded, origin) = NodeSeed::load_or_create(&path).unwrap();
        assert_eq!(origin, SeedOrigin::Loaded);
        assert_eq!(loaded.mnemonic_phrase(), created.mnemonic_phrase());
        assert_eq!(loaded.ldk_seed(), created.ldk_seed());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("seed")]);
    }

    #[test]
    fn corrupt_seed_file_is_refused_and_left_untouched() {
        let dir = tempdir();
        let path = dir.path().join("seed");
        fs::write(&path, "abandon abandon not a mnemonic").unwrap();
        let err = NodeSeed::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeysError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "abandon abandon not a mnemonic"
        );
    }

    #[test]
    fn empty_seed_file_is_refused() {
        let dir = tempdir();
        let path = dir.path().join("seed");
        fs::write(&path, "").unwrap();
        assert!(matches!(
            NodeSeed::load_or_create(&path),
            Err(KeysError::Corrupt { .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn unreadable_seed_file_is_refused_and_left_untouched() {
        let dir = tempdir();
        // A directory where the seed file should be: exists, but cannot be read as a file.
        // (Permission bits do not stop root, which tests may run as.)
        let path = dir.path().join("seed");
        fs::create_dir(&path).unwrap();
        let err = NodeSeed::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeysError::Unreadable { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(path.is_dir());
    }

    #[test]
    fn missing_directory_is_a_create_error() {
        let dir = tempdir();
        let path = dir.path().join("no-such-dir").join("seed");
        assert!(matches!(
            NodeSeed::load_or_create(&path),
            Err(KeysError::Create { .. })
        ));
    }

    #[test]
    fn seed_file_with_surrounding_whitespace_loads() {
        let dir = tempdir();
        let path = dir.path().join("seed");
        fs::write(&path, format!("\n  {PHRASE}  \n\n")).unwrap();
        let (seed, origin) = NodeSeed::load_or_create(&path).unwrap();
        assert_eq!(origin, SeedOrigin::Loaded);
        assert_eq!(
            seed.mnemonic_phrase(),
            NodeSeed::from_mnemonic(PHRASE).unwrap().mnemonic_phrase()
        );
    }

    #[test]
    fn derivation_is_deterministic_and_separates_branches() {
        let a = NodeSeed::from_mnemonic(PHRASE).unwrap();
        let b = NodeSeed::from_mnemonic(PHRASE).unwrap();
        assert_eq!(a.ldk_seed(), b.ldk_seed());
        assert_eq!(
            a.wallet_descriptors(Network::Regtest),
            b.wallet_descriptors(Network::Regtest)
        );

        // m/535' of this vector, independently: it is not the master secret itself.
        let master = Xpriv::new_master(Network::Bitcoin, &a.mnemonic.to_seed("")).unwrap();
        assert_ne!(a.ldk_seed(), master.private_key.secret_bytes());

        let (ext, int) = a.wallet_descriptors(Network::Regtest);
        assert!(
            ext.starts_with("wpkh(tprv") && ext.ends_with("/84'/1'/0'/0/*)"),
            "{ext}"
        );
        assert!(int.ends_with("/84'/1'/0'/1/*)"), "{int}");
        let (main_ext, _) = a.wallet_descriptors(Network::Bitcoin);
        assert!(main_ext.starts_with("wpkh(xprv") && main_ext.ends_with("/84'/0'/0'/0/*)"));

        let other = NodeSeed::load_or_create(&tempdir().path().join("seed"))
            .unwrap()
            .0;
        assert_ne!(other.ldk_seed(), a.ldk_seed());
    }

    #[test]
    fn bip84_descriptor_gives_the_reference_address() {
        // BIP84's test vector: first receive address of this mnemonic on mainnet.
        use bdk_wallet::KeychainKind;
        let seed = NodeSeed::from_mnemonic(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
             abandon about",
        )
        .unwrap();
        let (ext, int) = seed.wallet_descriptors(Network::Bitcoin);
        let wallet = bdk_wallet::Wallet::create(ext, int)
            .network(Network::Bitcoin)
            .create_wallet_no_persist()
            .unwrap();
        let address = wallet.peek_address(KeychainKind::External, 0).address;
        assert_eq!(
            address.to_string(),
            "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
        );
    }

    #[test]
    fn invalid_mnemonic_is_rejected() {
        assert!(matches!(
            NodeSeed::from_mnemonic("abandon abandon abandon"),
            Err(KeysError::InvalidMnemonic(_))
        ));
    }

    #[test]
    fn debug_output_hides_the_mnemonic() {
        let seed = NodeSeed::from_mnemonic(PHRASE).unwrap();
        let printed = format!("{seed:?}");
        assert!(!printed.contains("abandon"), "{printed}");
        assert!(printed.contains("redacted"));
    }
}
