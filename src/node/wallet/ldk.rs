//! The wallet as LDK's wallet source: confirmed UTXOs, change scripts and PSBT signing for
//! anchor-channel fee bumping (`BumpTransactionEventHandlerSync`), and where the
//! `OutputSweeper` sends swept funds.

use super::*;

impl WalletSourceSync for Wallet {
    fn list_confirmed_utxos(&self) -> Result<Vec<Utxo>, ()> {
        let state = self.lock();
        let utxos = state
            .wallet
            .list_unspent()
            .filter(|u| matches!(u.chain_position, ChainPosition::Confirmed { .. }))
            .filter_map(|u| {
                let script = &u.txout.script_pubkey;
                if !script.is_p2wpkh() {
                    // Our descriptors are wpkh only; anything else is not ours to spend here.
                    tracing::warn!(outpoint = %u.outpoint, "skipping a non-P2WPKH wallet output");
                    return None;
                }
                let hash = WPubkeyHash::from_slice(&script.as_bytes()[2..]).ok()?;
                Some(Utxo::new_v0_p2wpkh(u.outpoint, u.txout.value, &hash))
            })
            .collect();
        Ok(utxos)
    }

    fn get_prevtx(&self, outpoint: OutPoint) -> Result<Transaction, ()> {
        match self.lock().wallet.get_tx(outpoint.txid) {
            Some(tx) => Ok(tx.tx_node.tx.as_ref().clone()),
            None => {
                tracing::error!(%outpoint, "LDK asked for a transaction the wallet does not know");
                Err(())
            }
        }
    }

    fn get_change_script(&self) -> Result<ScriptBuf, ()> {
        let mut state = self.lock();
        let info = state.wallet.next_unused_address(KeychainKind::Internal);
        state
            .persist(&self.db_path)
            .map_err(|e| tracing::error!("{e}"))?;
        Ok(info.address.script_pubkey())
    }

    fn sign_psbt(&self, mut psbt: Psbt) -> Result<Transaction, ()> {
        let state = self.lock();
        // LDK fills `witness_utxo` only; BDK must be told to trust it for segwit v0 inputs.
        let options = SignOptions {
            trust_witness_utxo: true,
            ..Default::default()
        };
        // BDK cannot finalize LDK's own (anchor) inputs, so `finalized` is false by design.
        state
            .wallet
            .sign(&mut psbt, options)
            .map_err(|e| tracing::error!("cannot sign a fee-bumping PSBT: {e}"))?;
        // LDK computes the fee itself; skip the absurd-fee check that needs every input value.
        Ok(psbt.extract_tx_unchecked_fee_rate())
    }
}

impl ChangeDestinationSourceSync for Wallet {
    fn get_change_destination_script(&self) -> Result<ScriptBuf, ()> {
        let mut state = self.lock();
        let info = state.wallet.reveal_next_address(KeychainKind::Internal);
        state
            .persist(&self.db_path)
            .map_err(|e| tracing::error!("{e}"))?;
        Ok(info.address.script_pubkey())
    }
}
