//! Hand-made transactions for devchain tests: the devchain checks amounts, spent outputs and
//! locktimes but not scripts, so an unsigned spend is accepted.

use bitcoin::{
    absolute, transaction, Address, Amount, CompressedPublicKey, Network, OutPoint, PrivateKey,
    ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use lsp_node::devchain::Devchain;

/// A regtest P2WPKH address derived from `seed`.
pub fn address(seed: u8) -> Address {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let key = PrivateKey::from_slice(&[seed.max(1); 32], Network::Regtest).unwrap();
    let public = CompressedPublicKey::from_private_key(&secp, &key).unwrap();
    Address::p2wpkh(&public, Network::Regtest)
}

/// An unsigned spend of `input` paying `sats` to `to`.
pub fn spend(input: OutPoint, to: &Address, sats: u64) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: input,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::from_slice(&[[1u8; 71].as_slice(), [2u8; 33].as_slice()]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: to.script_pubkey(),
        }],
    }
}

/// The output of the known transaction `txid` that pays `to`.
pub fn outpoint_paying(devchain: &Devchain, txid: Txid, to: &Address) -> OutPoint {
    let tx = devchain.get_transaction(&txid).expect("known");
    let vout = tx
        .output
        .iter()
        .position(|o| o.script_pubkey == to.script_pubkey())
        .unwrap();
    OutPoint::new(txid, vout as u32)
}
