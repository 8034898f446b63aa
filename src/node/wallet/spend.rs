//! Spending from the wallet: payments (`send`, refunds), channel funding transactions and
//! abandoning a transaction that will never be broadcast (fee bumps are `bump.rs`). Everything signed here is
//! recorded in the wallet as unconfirmed (its inputs stay spent) and kept by the broadcaster
//! from the moment it is signed.

use super::*;

impl Wallet {
    /// Builds, signs, persists and broadcasts a payment to `address`.
    pub fn send(
        &self,
        address: &Address,
        amount: SendAmount,
        fee_rate: FeeRate,
    ) -> Result<Txid, WalletError> {
        let tx = self.sign_payment(address, amount, fee_rate)?;
        self.broadcast(&tx);
        Ok(tx.compute_txid())
    }

    /// Builds and signs a payment to `address` and records it in the wallet (its inputs are
    /// spent from then on), without broadcasting it: for callers that must persist the
    /// transaction before it leaves the node. Broadcast with [`Wallet::broadcast`].
    pub fn sign_payment(
        &self,
        address: &Address,
        amount: SendAmount,
        fee_rate: FeeRate,
    ) -> Result<Transaction, WalletError> {
        if !address.as_unchecked().is_valid_for_network(self.network) {
            return Err(WalletError::WrongNetwork {
                address: address.to_string(),
                expected: self.network,
            });
        }
        check_fee_rate(fee_rate)?;
        let script = address.script_pubkey();
        let mut state = self.lock();
        let available = state.wallet.balance().trusted_spendable().to_sat();
        let untrusted = state.untrusted_outpoints(&self.broadcaster.unsent_txids());
        let mut builder = state.wallet.build_tx();
        builder.unspendable(untrusted).fee_rate(fee_rate);
        match amount {
            SendAmount::Exact(sat) => {
                check_above_dust(&script, sat)?;
                if sat > available {
                    return Err(WalletError::InsufficientFunds {
                        needed: sat,
                        available,
                    });
                }
                builder.add_recipient(script.clone(), Amount::from_sat(sat));
            }
            SendAmount::All => {
                if available == 0 {
                    return Err(WalletError::InsufficientFunds {
                        needed: 1,
                        available,
                    });
                }
                builder.drain_wallet().drain_to(script.clone());
            }
        }
        let psbt = builder.finish().map_err(|e| create_tx_error(e, &script))?;
        let tx = state.sign_and_record(psbt, &self.db_path)?;
        self.broadcaster.hold(&tx);
        tracing::info!(txid = %tx.compute_txid(), %address, ?amount, "signed on-chain payment");
        Ok(tx)
    }

    /// Hands a transaction of ours to the broadcaster, which keeps sending it until it is
    /// final or conflicted.
    pub fn broadcast(&self, tx: &Transaction) {
        self.broadcaster.broadcast_kept(tx);
    }

    /// For LDK's `FundingGenerationReady`: a signed transaction paying exactly `value` to
    /// `output_script`, change back to the wallet. Not broadcast (LDK does that once the peer
    /// signed the commitment), but recorded as unconfirmed so its inputs stay reserved. If LDK
    /// rejects it, release the inputs with [`Wallet::abandon_transaction`].
    pub fn create_funding_transaction(
        &self,
        output_script: ScriptBuf,
        value: Amount,
        fee_rate: FeeRate,
    ) -> Result<Transaction, WalletError> {
        self.create_batch_funding_transaction(&[(output_script, value)], fee_rate)
    }

    /// [`Wallet::create_funding_transaction`] for several channels at once: one output of
    /// exactly each value to each script (one transaction's overhead, inputs and change shared
    /// by all of them).
    pub fn create_batch_funding_transaction(
        &self,
        outputs: &[(ScriptBuf, Amount)],
        fee_rate: FeeRate,
    ) -> Result<Transaction, WalletError> {
        check_fee_rate(fee_rate)?;
        let Some((first_script, _)) = outputs.first() else {
            return Err(WalletError::CreateTx(
                "a funding transaction funds at least one channel".into(),
            ));
        };
        for (script, value) in outputs {
            check_above_dust(script, value.to_sat())?;
        }
        let needed = outputs.iter().map(|(_, value)| value.to_sat()).sum::<u64>();
        let mut state = self.lock();
        let available = state.wallet.balance().trusted_spendable().to_sat();
        if needed > available {
            return Err(WalletError::InsufficientFunds { needed, available });
        }
        let untrusted = state.untrusted_outpoints(&self.broadcaster.unsent_txids());
        let mut builder = state.wallet.build_tx();
        builder.unspendable(untrusted).fee_rate(fee_rate);
        for (script, value) in outputs {
            builder.add_recipient(script.clone(), *value);
        }
        let psbt = builder
            .finish()
            .map_err(|e| create_tx_error(e, first_script))?;
        let pays_exactly = outputs.iter().all(|(script, value)| {
            psbt.unsigned_tx
                .output
                .iter()
                .filter(|o| o.script_pubkey == *script)
                .map(|o| o.value)
                .collect::<Vec<_>>()
                == vec![*value]
        });
        if !pays_exactly {
            state.wallet.cancel_tx(&psbt.unsigned_tx);
            return Err(WalletError::CreateTx(
                "the funding transaction does not pay each requested amount to its channel script"
                    .into(),
            ));
        }
        let tx = state.sign_and_record(psbt, &self.db_path)?;
        self.broadcaster.hold(&tx);
        tracing::info!(txid = %tx.compute_txid(), channels = outputs.len(), value_sat = needed, "signed channel funding transaction");
        Ok(tx)
    }

    /// Stops sending `txid` again (the funding of a channel that closed); if the chain source
    /// does not have it, a later sync gives its inputs back.
    pub fn stop_sending(&self, txid: &Txid) {
        self.broadcaster.abandon(txid);
    }

    /// Forgets a transaction we signed but that will never be broadcast (e.g. a funding
    /// transaction LDK refused), releasing its inputs and change address.
    pub fn abandon_transaction(&self, tx: &Transaction) -> Result<(), WalletError> {
        let mut state = self.lock();
        // Eviction must be later than the time we recorded it as seen.
        state
            .wallet
            .apply_evicted_txs([(tx.compute_txid(), unix_now() + 1)]);
        state.wallet.cancel_tx(tx);
        state.persist(&self.db_path)?;
        self.broadcaster.abandon(&tx.compute_txid());
        Ok(())
    }
}

impl WalletState {
    /// Outputs never spent: unconfirmed outputs paid to us by others (the sender could replace
    /// them), and outputs of our own transactions signed but not yet handed for broadcast
    /// (`unsent`: a funding waiting for its peers' signatures may never be broadcast, and
    /// whatever spent its change would never confirm).
    fn untrusted_outpoints(&self, unsent: &HashSet<Txid>) -> Vec<OutPoint> {
        self.wallet
            .list_unspent()
            .filter(|u| {
                (!u.chain_position.is_confirmed() && u.keychain == KeychainKind::External)
                    || unsent.contains(&u.outpoint.txid)
            })
            .map(|u| u.outpoint)
            .collect()
    }

    /// Signs a PSBT built from our own inputs, records the transaction as unconfirmed (so its
    /// inputs are not reused) and persists. On error the change address is released.
    pub(super) fn sign_and_record(
        &mut self,
        mut psbt: Psbt,
        path: &Path,
    ) -> Result<Transaction, WalletError> {
        let signed = match self.wallet.sign(&mut psbt, SignOptions::default()) {
            Ok(true) => psbt
                .clone()
                .extract_tx()
                .map_err(|e| WalletError::Sign(e.to_string())),
            Ok(false) => Err(WalletError::Sign("not every input could be signed".into())),
            Err(e) => Err(WalletError::Sign(e.to_string())),
        };
        let tx = match signed {
            Ok(tx) => tx,
            Err(e) => {
                self.wallet.cancel_tx(&psbt.unsigned_tx);
                return Err(e);
            }
        };
        self.wallet
            .apply_unconfirmed_txs([(tx.clone(), unix_now())]);
        self.persist(path)?;
        Ok(tx)
    }
}

fn create_tx_error(e: CreateTxError, script: &ScriptBuf) -> WalletError {
    match e {
        CreateTxError::CoinSelection(BdkInsufficientFunds { needed, available }) => {
            WalletError::InsufficientFunds {
                needed: needed.to_sat(),
                available: available.to_sat(),
            }
        }
        CreateTxError::OutputBelowDustLimit(_) => WalletError::CreateTx(format!(
            "an output would be below the dust limit of {} sat after fees",
            script.minimal_non_dust().to_sat()
        )),
        other => WalletError::CreateTx(other.to_string()),
    }
}

fn check_above_dust(script: &ScriptBuf, amount_sat: u64) -> Result<(), WalletError> {
    let dust_limit_sat = script.minimal_non_dust().to_sat();
    if amount_sat < dust_limit_sat {
        return Err(WalletError::BelowDust {
            amount_sat,
            dust_limit_sat,
        });
    }
    Ok(())
}

pub(super) fn check_fee_rate(fee_rate: FeeRate) -> Result<(), WalletError> {
    if fee_rate < FeeRate::BROADCAST_MIN {
        return Err(WalletError::FeeRateTooLow {
            sat_per_kwu: fee_rate.to_sat_per_kwu(),
        });
    }
    Ok(())
}
