//! Fee bumps of our own unconfirmed transactions: replacing a payment (RBF, for refunds) and a
//! child paying for a parent that must not change its txid (CPFP, for channel fundings).
//!
//! A transaction with an unconfirmed descendant of ours is never replaced: the replacement
//! would take the descendant's input away (a funding spending a refund's change would die with
//! it). Such a transaction confirms with its descendants' help instead.

use bdk_wallet::chain::ChainPosition;
use bitcoin::Weight;

use super::spend::check_fee_rate;
use super::*;

/// Weight of a CPFP child: one P2WPKH input (signature at its largest) and one P2WPKH output,
/// with a vbyte to spare.
const CHILD_WEIGHT: Weight = Weight::from_wu(444);

/// What [`Wallet::bump_by_child`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildBump {
    /// The package already pays the rate asked for.
    NotNeeded,
    /// A child (or a replacement of the earlier child) was signed and handed to the
    /// broadcaster.
    Sent(Txid),
}

impl Wallet {
    /// Signs and records a replacement of our unconfirmed transaction `txid` paying the same
    /// recipients at a higher fee rate (at least `min_fee_rate`, and at least 1 sat/vB above the
    /// original), taking the extra fee from change or added inputs. Not broadcast: persist it
    /// first, then [`Wallet::broadcast_replacement`]. Refused when an unconfirmed transaction of
    /// ours spends one of its outputs.
    pub fn sign_fee_bump(
        &self,
        txid: &Txid,
        min_fee_rate: FeeRate,
    ) -> Result<Transaction, WalletError> {
        let mut state = self.lock();
        let original = state
            .wallet
            .get_tx(*txid)
            .map(|tx| tx.tx_node.tx.clone())
            .ok_or_else(|| {
                WalletError::CreateTx(format!("transaction {txid} is not in the wallet"))
            })?;
        if let Some(child) = state.unconfirmed_children(txid, &original).first() {
            return Err(WalletError::HasDescendants {
                txid: *txid,
                child: *child,
            });
        }
        let old_rate = state
            .wallet
            .calculate_fee_rate(&original)
            .map_err(|e| WalletError::CreateTx(format!("cannot compute the fee of {txid}: {e}")))?;
        let bumped_rate = FeeRate::from_sat_per_kwu(old_rate.to_sat_per_kwu() + 250);
        let fee_rate = bumped_rate.max(min_fee_rate);
        check_fee_rate(fee_rate)?;
        let mut builder = state
            .wallet
            .build_fee_bump(*txid)
            .map_err(|e| WalletError::CreateTx(format!("cannot replace {txid}: {e}")))?;
        builder.fee_rate(fee_rate);
        let psbt = builder
            .finish()
            .map_err(|e| WalletError::CreateTx(format!("cannot replace {txid}: {e}")))?;
        let tx = state.sign_and_record(psbt, &self.db_path)?;
        self.broadcaster.hold(&tx);
        tracing::info!(original = %txid, replacement = %tx.compute_txid(), sat_per_vb = fee_rate.to_sat_per_vb_ceil(), "signed fee bump");
        Ok(tx)
    }

    /// Broadcasts `replacement`, a fee bump of `original` signed with
    /// [`Wallet::sign_fee_bump`]; only the replacement is kept from then on.
    pub fn broadcast_replacement(&self, original: &Txid, replacement: &Transaction) {
        self.broadcaster
            .replaced(original, &replacement.compute_txid());
        self.broadcaster.broadcast_kept(replacement);
    }

    /// Makes our unconfirmed transaction `parent` and its unconfirmed ancestors pay at least
    /// `package_rate` together, by a child spending `parent`'s change back to the wallet (or
    /// a replacement of the child sent earlier, paying more). For a transaction whose txid
    /// must not change: a channel's funding. The child is kept by the broadcaster like any
    /// payment of ours.
    pub fn bump_by_child(
        &self,
        parent: &Txid,
        package_rate: FeeRate,
    ) -> Result<ChildBump, WalletError> {
        check_fee_rate(package_rate)?;
        let mut state = self.lock();
        let parent_tx = match state.wallet.get_tx(*parent) {
            Some(tx) if !tx.chain_position.is_confirmed() => tx.tx_node.tx.clone(),
            Some(_) => return Ok(ChildBump::NotNeeded),
            None => {
                return Err(WalletError::CreateTx(format!(
                    "transaction {parent} is not in the wallet"
                )))
            }
        };
        let (ancestry_fee, ancestry_vsize) = state.unconfirmed_ancestry(&parent_tx)?;
        // Only a child of this kind is ever replaced here: any other spender of the change (a
        // refund paying a client, say) keeps its recipients.
        let earlier_child = state
            .unconfirmed_children(parent, &parent_tx)
            .into_iter()
            .filter_map(|txid| state.wallet.get_tx(txid).map(|tx| tx.tx_node.tx.clone()))
            .find(|tx| state.is_bump_child_of(tx, parent));
        let (child_fee_now, child_weight) = match &earlier_child {
            Some(child) => (state.fee_of(child)?, child.weight().max(CHILD_WEIGHT)),
            None => (Amount::ZERO, CHILD_WEIGHT),
        };
        let paid = ancestry_fee + child_fee_now;
        // Nodes and miners count each transaction's size in whole vbytes, rounded up.
        let needed = fee_for_vsize(package_rate, ancestry_vsize + child_weight.to_vbytes_ceil());
        if paid >= needed {
            return Ok(ChildBump::NotNeeded);
        }
        // A replacement must also pay for its own relay (1 sat/vB) on top of what it replaces.
        let relay = FeeRate::BROADCAST_MIN
            .fee_wu(child_weight)
            .unwrap_or(Amount::ZERO);
        let child_fee = match &earlier_child {
            Some(_) => (needed - ancestry_fee).max(child_fee_now + relay),
            None => needed
                .checked_sub(ancestry_fee)
                .unwrap_or(Amount::ZERO)
                .max(relay),
        };
        let psbt = match &earlier_child {
            Some(child) => {
                let mut builder =
                    state
                        .wallet
                        .build_fee_bump(child.compute_txid())
                        .map_err(|e| {
                            WalletError::CreateTx(format!(
                                "cannot replace the child of {parent}: {e}"
                            ))
                        })?;
                // BDK takes a lone output for a recipient; the child's is change, all of it.
                let change = child.output[0].script_pubkey.clone();
                builder
                    .set_recipients(Vec::new())
                    .drain_to(change)
                    .fee_absolute(child_fee);
                builder.finish()
            }
            None => {
                let change = state.own_unspent_outputs(parent, &parent_tx);
                if change.is_empty() {
                    return Err(WalletError::CreateTx(format!(
                        "transaction {parent} has no change output of ours to pay for it"
                    )));
                }
                let destination = state
                    .wallet
                    .next_unused_address(KeychainKind::Internal)
                    .script_pubkey();
                let mut builder = state.wallet.build_tx();
                builder
                    .add_utxos(&change)
                    .map_err(|e| WalletError::CreateTx(e.to_string()))?
                    .manually_selected_only()
                    .drain_to(destination)
                    .fee_absolute(child_fee);
                builder.finish()
            }
        }
        .map_err(|e| WalletError::CreateTx(format!("cannot pay for {parent}: {e}")))?;
        let tx = state.sign_and_record(psbt, &self.db_path)?;
        drop(state);
        let child = tx.compute_txid();
        self.broadcaster.hold(&tx);
        match &earlier_child {
            Some(earlier) => self.broadcast_replacement(&earlier.compute_txid(), &tx),
            None => self.broadcast(&tx),
        }
        tracing::info!(%parent, %child, child_fee_sat = child_fee.to_sat(), package_sat_per_vb = package_rate.to_sat_per_vb_ceil(), "a child pays for an unconfirmed transaction");
        Ok(ChildBump::Sent(child))
    }
}

impl WalletState {
    /// Our unconfirmed transactions spending an output of `txid` (its children).
    fn unconfirmed_children(&self, txid: &Txid, tx: &Transaction) -> Vec<Txid> {
        let graph = self.wallet.tx_graph();
        let mut children = Vec::new();
        for vout in 0..tx.output.len() as u32 {
            for spender in graph.outspends(OutPoint::new(*txid, vout)) {
                let canonical_unconfirmed = self
                    .wallet
                    .get_tx(*spender)
                    .is_some_and(|t| !t.chain_position.is_confirmed());
                if canonical_unconfirmed && !children.contains(spender) {
                    children.push(*spender);
                }
            }
        }
        children
    }

    /// Whether `tx` is a child [`Wallet::bump_by_child`] signs for `parent`: it spends only
    /// `parent`'s outputs and pays everything to one change address of ours.
    fn is_bump_child_of(&self, tx: &Transaction, parent: &Txid) -> bool {
        let [output] = tx.output.as_slice() else {
            return false;
        };
        let change = self
            .wallet
            .derivation_of_spk(output.script_pubkey.clone())
            .is_some_and(|(keychain, _)| keychain == KeychainKind::Internal);
        change && tx.input.iter().all(|i| i.previous_output.txid == *parent)
    }

    /// Fee and vsize of `tx` with every unconfirmed ancestor (all ours: unconfirmed coins of
    /// others are never spent).
    fn unconfirmed_ancestry(&self, tx: &Transaction) -> Result<(Amount, u64), WalletError> {
        let mut fee = Amount::ZERO;
        let mut vsize = 0u64;
        let mut seen: HashSet<Txid> = HashSet::new();
        let mut queue = vec![tx.clone()];
        while let Some(next) = queue.pop() {
            if !seen.insert(next.compute_txid()) {
                continue;
            }
            fee += self.fee_of(&next)?;
            vsize += next.weight().to_vbytes_ceil();
            for input in &next.input {
                if let Some(parent) = self.wallet.get_tx(input.previous_output.txid) {
                    if matches!(parent.chain_position, ChainPosition::Unconfirmed { .. }) {
                        queue.push(parent.tx_node.tx.as_ref().clone());
                    }
                }
            }
        }
        Ok((fee, vsize))
    }

    fn fee_of(&self, tx: &Transaction) -> Result<Amount, WalletError> {
        self.wallet.calculate_fee(tx).map_err(|e| {
            WalletError::CreateTx(format!(
                "cannot compute the fee of {}: {e}",
                tx.compute_txid()
            ))
        })
    }

    /// The unspent outputs of `txid` that belong to the wallet.
    fn own_unspent_outputs(&self, txid: &Txid, tx: &Transaction) -> Vec<OutPoint> {
        let unspent: HashSet<OutPoint> = self.wallet.list_unspent().map(|u| u.outpoint).collect();
        (0..tx.output.len() as u32)
            .map(|vout| OutPoint::new(*txid, vout))
            .filter(|outpoint| unspent.contains(outpoint))
            .collect()
    }
}

/// The fee of `vsize` vbytes at `rate`, rounded up to the next sat.
fn fee_for_vsize(rate: FeeRate, vsize: u64) -> Amount {
    Amount::from_sat((rate.to_sat_per_kwu() * vsize * 4).div_ceil(1000))
}
