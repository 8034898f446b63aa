//! The faucet: the key every devchain coinbase pays to, and the funding transactions it signs.
//!
//! Funding transactions are ordinary, fully signed P2WPKH spends (version 2, locktime 0, inputs
//! final, BIP125-opt-out sequences): the faucet's outputs are P2WPKH to a fixed, publicly known
//! key, so the transactions look exactly like a wallet's and have realistic weights. They pay
//! [`FAUCET_FEE_RATE_SAT_PER_VB`] so fee-rate code downstream sees sane numbers. Change goes back
//! to the faucet script unless it would be dust, in which case it is added to the fee.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{All, Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Witness,
};

/// Fee rate of faucet transactions.
pub const FAUCET_FEE_RATE_SAT_PER_VB: u64 = 2;

/// Outputs below this are refused (Core's dust limit for P2PKH, the largest common one).
pub const DUST_LIMIT_SAT: u64 = 546;

/// Upper bound of a P2WPKH input's weight: 41 non-witness bytes (x4) plus a witness of
/// (items count, 73-byte signature, 34-byte pubkey), plus one for the segwit marker and flag
/// which is accounted once per transaction below.
const P2WPKH_INPUT_WEIGHT: u64 = 41 * 4 + 1 + 73 + 34;

/// A spendable faucet coin.
#[derive(Debug, Clone)]
pub struct FaucetCoin {
    pub outpoint: OutPoint,
    pub value: Amount,
}

/// Why the faucet could not build a funding transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaucetShortfall {
    /// The spendable coins do not cover amount plus fee.
    Insufficient { available: Amount },
}

/// The faucet's key and script.
pub struct Faucet {
    secp: Secp256k1<All>,
    secret_key: SecretKey,
    public_key: PublicKey,
    script_pubkey: ScriptBuf,
}

impl Faucet {
    /// The devchain faucet. Its key is derived from a fixed string: anyone may spend its coins,
    /// which is fine for a development chain and keeps runs reproducible.
    pub fn new() -> Self {
        let secp = Secp256k1::new();
        let seed = sha256::Hash::hash(b"lsp-node devchain faucet key");
        let secret_key =
            SecretKey::from_slice(seed.as_byte_array()).expect("sha256 output is a valid key");
        let public_key = PublicKey::from_secret_key(&secp, &secret_key);
        let script_pubkey = ScriptBuf::new_p2wpkh(&CompressedPublicKey(public_key).wpubkey_hash());
        Faucet {
            secp,
            secret_key,
            public_key,
            script_pubkey,
        }
    }

    /// The script every coinbase and every faucet change output pays to.
    pub fn script_pubkey(&self) -> &ScriptBuf {
        &self.script_pubkey
    }

    /// Builds and signs a transaction paying `amount` to `destination` from `coins`, taken in
    /// the given order until amount plus fee is covered.
    pub fn build_funding(
        &self,
        coins: &[FaucetCoin],
        destination: ScriptBuf,
        amount: Amount,
    ) -> Result<Transaction, FaucetShortfall> {
        let payment = TxOut {
            value: amount,
            script_pubkey: destination,
        };
        let change_template = TxOut {
            value: Amount::ZERO,
            script_pubkey: self.script_pubkey.clone(),
        };
        let mut selected: Vec<&FaucetCoin> = Vec::new();
        let mut selected_value = Amount::ZERO;
        for coin in coins {
            selected.push(coin);
            selected_value += coin.value;
            // Fee with a change output; dropped change only makes the fee rate higher.
            let fee = self.fee_for(selected.len(), &[&payment, &change_template]);
            let Some(change) = selected_value.checked_sub(amount + fee) else {
                continue;
            };
            let mut outputs = vec![payment.clone()];
            if change.to_sat() >= DUST_LIMIT_SAT {
                outputs.push(TxOut {
                    value: change,
                    script_pubkey: self.script_pubkey.clone(),
                });
            }
            return Ok(self.sign(&selected, outputs));
        }
        Err(FaucetShortfall::Insufficient {
            available: selected_value,
        })
    }

    fn fee_for(&self, inputs: usize, outputs: &[&TxOut]) -> Amount {
        // version + locktime + input/output counts, plus segwit marker and flag.
        let base_weight = (4 + 4 + 1 + 1) * 4 + 2;
        let outputs_weight: u64 = outputs.iter().map(|o| o.size() as u64 * 4).sum();
        let weight = base_weight + outputs_weight + inputs as u64 * P2WPKH_INPUT_WEIGHT;
        let vsize = weight.div_ceil(4);
        Amount::from_sat(vsize * FAUCET_FEE_RATE_SAT_PER_VB)
    }

    fn sign(&self, coins: &[&FaucetCoin], outputs: Vec<TxOut>) -> Transaction {
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: coins
                .iter()
                .map(|coin| TxIn {
                    previous_output: coin.outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_LOCKTIME_NO_RBF,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs,
        };
        let mut witnesses = Vec::with_capacity(coins.len());
        {
            let mut cache = SighashCache::new(&tx);
            for (index, coin) in coins.iter().enumerate() {
                let sighash = cache
                    .p2wpkh_signature_hash(
                        index,
                        &self.script_pubkey,
                        coin.value,
                        EcdsaSighashType::All,
                    )
                    .expect("the faucet script is P2WPKH and the index is in range");
                let message = Message::from(sighash);
                let signature = self.secp.sign_ecdsa(&message, &self.secret_key);
                let signature = bitcoin::ecdsa::Signature::sighash_all(signature);
                witnesses.push(Witness::p2wpkh(&signature, &self.public_key));
            }
        }
        for (input, witness) in tx.input.iter_mut().zip(witnesses) {
            input.witness = witness;
        }
        tx
    }
}

impl Default for Faucet {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::Txid;

    #[test]
    fn funding_pays_at_least_the_faucet_fee_rate_and_returns_change() {
        let faucet = Faucet::new();
        let coin = FaucetCoin {
            outpoint: OutPoint {
                txid: Txid::all_zeros(),
                vout: 0,
            },
            value: Amount::from_sat(100_000),
        };
        let destination =
            ScriptBuf::new_p2wpkh(&CompressedPublicKey(faucet.public_key).wpubkey_hash());
        let tx = faucet
            .build_funding(&[coin], destination, Amount::from_sat(40_000))
            .unwrap();
        let fee = 100_000 - tx.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
        assert!(
            fee >= tx.vsize() as u64 * FAUCET_FEE_RATE_SAT_PER_VB,
            "fee {fee} vsize {}",
            tx.vsize()
        );
        assert!(fee <= (tx.vsize() as u64 + 2) * FAUCET_FEE_RATE_SAT_PER_VB);
        assert_eq!(tx.output.len(), 2);
        assert_eq!(&tx.output[1].script_pubkey, faucet.script_pubkey());
    }

    #[test]
    fn insufficient_coins_are_reported() {
        let faucet = Faucet::new();
        let coin = FaucetCoin {
            outpoint: OutPoint {
                txid: Txid::all_zeros(),
                vout: 0,
            },
            value: Amount::from_sat(1_000),
        };
        let err = faucet
            .build_funding(
                &[coin],
                faucet.script_pubkey().clone(),
                Amount::from_sat(1_000),
            )
            .unwrap_err();
        assert_eq!(
            err,
            FaucetShortfall::Insufficient {
                available: Amount::from_sat(1_000)
            }
        );
    }
}
