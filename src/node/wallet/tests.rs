//! Tests of the on-chain wallet.

use super::*;
use std::str::FromStr;

const PHRASE: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon \
    abandon abandon about";
const OTHER_PHRASE: &str = "legal winner thank year wave sausage worth useful legal winner \
    thank yellow";
// Nothing listens here: these tests never reach the chain source.
const UNUSED_ESPLORA: &str = "http://127.0.0.1:9";

#[derive(Default)]
struct RecordingBroadcaster(Mutex<Vec<Transaction>>);

impl KeepBroadcasting for RecordingBroadcaster {
    fn hold(&self, _tx: &Transaction) {}
    fn broadcast_kept(&self, tx: &Transaction) {
        self.0.lock().unwrap().push(tx.clone());
    }
    fn abandon(&self, _txid: &Txid) {}
    fn replaced(&self, _original: &Txid, _by: &Txid) {}
    fn open_txids(&self) -> HashSet<Txid> {
        HashSet::new()
    }
    fn unsent_txids(&self) -> HashSet<Txid> {
        HashSet::new()
    }
}

fn open(
    phrase: &str,
    network: Network,
    db: &Path,
) -> Result<(Wallet, Arc<RecordingBroadcaster>), WalletError> {
    let seed = NodeSeed::from_mnemonic(phrase).unwrap();
    let broadcaster = Arc::new(RecordingBroadcaster::default());
    let wallet = Wallet::load_or_create(&seed, network, db, UNUSED_ESPLORA, broadcaster.clone())?;
    Ok((wallet, broadcaster))
}

fn regtest_address(s: &str) -> Address {
    Address::from_str(s)
        .unwrap()
        .require_network(Network::Regtest)
        .unwrap()
}

#[test]
fn revealed_addresses_survive_reload_and_share_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("node.sqlite");
    let store = crate::node::store::Store::open(&db).unwrap();
    let (wallet, _) = open(PHRASE, Network::Regtest, &db).unwrap();
    let first = wallet.new_address().unwrap();
    let second = wallet.new_address().unwrap();
    assert_ne!(first, second);
    assert!(first.to_string().starts_with("bcrt1q"), "{first}");
    assert_eq!(wallet.balances(), WalletBalances::default());
    assert_eq!(wallet.best_block().0, 0);
    assert!(wallet.last_sync().is_none());
    drop(wallet);

    let (reloaded, _) = open(PHRASE, Network::Regtest, &db).unwrap();
    let third = reloaded.new_address().unwrap();
    assert!(
        third != first && third != second,
        "a reloaded wallet must not reuse addresses"
    );

    // The store's own tables are untouched by the wallet living in the same file.
    use lightning::util::persist::KVStoreSync;
    store.write("ns", "", "k", vec![1]).unwrap();
    assert_eq!(store.read("ns", "", "k").unwrap(), vec![1]);
}

#[test]
fn another_seed_or_network_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("node.sqlite");
    drop(open(PHRASE, Network::Regtest, &db).unwrap());
    let err = open(OTHER_PHRASE, Network::Regtest, &db).err().unwrap();
    assert!(matches!(err, WalletError::SeedMismatch { .. }), "{err}");
    let err = open(PHRASE, Network::Signet, &db).err().unwrap();
    assert!(matches!(err, WalletError::NetworkMismatch { .. }), "{err}");
    // Still loads with the right seed and network.
    open(PHRASE, Network::Regtest, &db).unwrap();
}

#[test]
fn bad_sends_are_refused_and_broadcast_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (wallet, broadcaster) =
        open(PHRASE, Network::Regtest, &dir.path().join("w.sqlite")).unwrap();
    let to = regtest_address("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080");
    let rate = FeeRate::from_sat_per_vb(2).unwrap();

    let err = wallet
        .send(&to, SendAmount::Exact(10_000), rate)
        .unwrap_err();
    assert!(
        matches!(
            err,
            WalletError::InsufficientFunds {
                needed: 10_000,
                available: 0
            }
        ),
        "{err}"
    );
    assert!(matches!(
        wallet.send(&to, SendAmount::All, rate),
        Err(WalletError::InsufficientFunds { .. })
    ));
    let err = wallet.send(&to, SendAmount::Exact(100), rate).unwrap_err();
    assert!(
        matches!(
            err,
            WalletError::BelowDust {
                amount_sat: 100,
                ..
            }
        ),
        "{err}"
    );
    let err = wallet
        .send(
            &to,
            SendAmount::Exact(10_000),
            FeeRate::from_sat_per_kwu(100),
        )
        .unwrap_err();
    assert!(matches!(err, WalletError::FeeRateTooLow { .. }), "{err}");

    let mainnet = Address::from_str("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu")
        .unwrap()
        .assume_checked();
    let err = wallet
        .send(&mainnet, SendAmount::Exact(10_000), rate)
        .unwrap_err();
    assert!(matches!(err, WalletError::WrongNetwork { .. }), "{err}");

    let script = to.script_pubkey();
    let err = wallet
        .create_funding_transaction(script, Amount::from_sat(50_000), rate)
        .unwrap_err();
    assert!(
        matches!(
            err,
            WalletError::InsufficientFunds {
                needed: 50_000,
                available: 0
            }
        ),
        "{err}"
    );
    assert!(broadcaster.0.lock().unwrap().is_empty());
}

#[test]
fn change_destinations_are_fresh_wallet_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let (wallet, _) = open(PHRASE, Network::Regtest, &dir.path().join("w.sqlite")).unwrap();
    let a = wallet.get_change_destination_script().unwrap();
    let b = wallet.get_change_destination_script().unwrap();
    assert_ne!(a, b);
    let change = wallet.get_change_script().unwrap();
    let state = wallet.lock();
    for script in [&a, &b, &change] {
        assert!(script.is_p2wpkh());
        assert!(state.wallet.is_mine(script.clone()));
        assert_eq!(
            state.wallet.derivation_of_spk(script.clone()).unwrap().0,
            KeychainKind::Internal
        );
    }
    drop(state);
    assert!(wallet.list_confirmed_utxos().unwrap().is_empty());
}

#[test]
fn unreachable_esplora_is_a_sync_error() {
    let dir = tempfile::tempdir().unwrap();
    let (wallet, _) = open(PHRASE, Network::Regtest, &dir.path().join("w.sqlite")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime.block_on(wallet.sync()).unwrap_err();
    assert!(matches!(err, WalletError::Sync { .. }), "{err}");
    assert!(err.to_string().contains(UNUSED_ESPLORA), "{err}");
    assert!(wallet.last_sync().is_none());
}

#[test]
fn an_unwatched_script_leaves_the_sync_request_and_stays_off_after_reload() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("node.sqlite");
    let (wallet, _) = open(PHRASE, Network::Regtest, &db).unwrap();
    let kept = wallet.new_address().unwrap().script_pubkey();
    let retired = wallet.new_address().unwrap().script_pubkey();
    let synced = |wallet: &Wallet| -> Vec<ScriptBuf> {
        let mut request = watch::sync_request(&wallet.lock());
        let spks = request.iter_spks_with_expected_txids().map(|s| s.spk);
        spks.collect()
    };
    assert!(synced(&wallet).contains(&retired));
    let before = wallet.watched_script_count();

    wallet.stop_watching(&retired).unwrap();
    wallet.stop_watching(&retired).unwrap();
    assert!(!synced(&wallet).contains(&retired));
    assert!(synced(&wallet).contains(&kept));
    assert_eq!(wallet.watched_script_count(), before - 1);
    assert!(!wallet.is_watched(&retired) && wallet.is_watched(&kept));
    assert!(wallet.is_mine(&retired), "still the wallet's own script");
    drop(wallet);

    let (reloaded, _) = open(PHRASE, Network::Regtest, &db).unwrap();
    assert!(
        !synced(&reloaded).contains(&retired),
        "the list is persisted"
    );
    reloaded.watch_again(&retired).unwrap();
    assert!(synced(&reloaded).contains(&retired));
    drop(reloaded);
    let (reloaded, _) = open(PHRASE, Network::Regtest, &db).unwrap();
    assert!(reloaded.is_watched(&retired));
    assert_eq!(reloaded.watched_script_count(), before);
}
