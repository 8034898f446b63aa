//! Fee estimates: Esplora's `/fee-estimates` mapped onto LDK's [`ConfirmationTarget`]s, with a
//! floor of 253 sat/kW (the relay minimum LDK itself assumes) and fallbacks until the first
//! successful fetch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use bitcoin::FeeRate;
use lightning::chain::chaininterface::{ConfirmationTarget, FeeEstimator};

use super::error::{ChainError, ESPLORA_TIMEOUT};

/// The lowest fee rate LDK accepts, in sat per 1000 weight units (1.012 sat/vB).
pub const FEERATE_FLOOR_SAT_PER_KW: u32 = 253;

/// The confirmation targets our own on-chain spends use, beside LDK's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnchainTarget {
    /// An operator's on-chain payment: within about an hour.
    Payment,
    /// A channel funding transaction: within about two hours.
    ChannelFunding,
}

fn target_blocks(target: ConfirmationTarget) -> u16 {
    match target {
        ConfirmationTarget::MaximumFeeEstimate => 1,
        ConfirmationTarget::UrgentOnChainSweep => 6,
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => 1008,
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => 144,
        ConfirmationTarget::AnchorChannelFee => 1008,
        ConfirmationTarget::NonAnchorChannelFee => 12,
        ConfirmationTarget::ChannelCloseMinimum => 144,
        ConfirmationTarget::OutputSpendingFee => 12,
    }
}

/// Used until Esplora has answered once (and if it never has estimates for a target).
fn fallback_sat_per_kw(target: ConfirmationTarget) -> u32 {
    match target {
        ConfirmationTarget::MaximumFeeEstimate => 8_000,
        ConfirmationTarget::UrgentOnChainSweep => 5_000,
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => FEERATE_FLOOR_SAT_PER_KW,
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => FEERATE_FLOOR_SAT_PER_KW,
        ConfirmationTarget::AnchorChannelFee => 500,
        ConfirmationTarget::NonAnchorChannelFee => 1_000,
        ConfirmationTarget::ChannelCloseMinimum => 500,
        ConfirmationTarget::OutputSpendingFee => 1_000,
    }
}

const ALL_TARGETS: [ConfirmationTarget; 8] = [
    ConfirmationTarget::MaximumFeeEstimate,
    ConfirmationTarget::UrgentOnChainSweep,
    ConfirmationTarget::MinAllowedAnchorChannelRemoteFee,
    ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee,
    ConfirmationTarget::AnchorChannelFee,
    ConfirmationTarget::NonAnchorChannelFee,
    ConfirmationTarget::ChannelCloseMinimum,
    ConfirmationTarget::OutputSpendingFee,
];

/// Picks the estimate for `blocks` from Esplora's `{"<blocks>": sat_per_vb}` map: the entry for
/// the largest block count not above `blocks` (Esplora omits some counts), else the smallest.
fn estimate_for_blocks(estimates: &HashMap<u16, f64>, blocks: u16) -> Option<f64> {
    let at_or_below = estimates
        .iter()
        .filter(|(b, _)| **b <= blocks)
        .max_by_key(|(b, _)| **b);
    let nearest = at_or_below.or_else(|| estimates.iter().min_by_key(|(b, _)| **b));
    nearest.map(|(_, rate)| *rate)
}

/// Converts Esplora's sat/vB (a float on the wire) to sat/kW, never below the floor.
fn sat_per_vb_to_kw(sat_per_vb: f64) -> u32 {
    let per_kw = (sat_per_vb * 250.0).ceil();
    if per_kw.is_finite() && per_kw > 0.0 {
        (per_kw.min(u32::MAX as f64) as u32).max(FEERATE_FLOOR_SAT_PER_KW)
    } else {
        FEERATE_FLOOR_SAT_PER_KW
    }
}

/// Fee rates from Esplora's `/fee-estimates`, cached between refreshes.
pub struct EsploraFeeEstimator {
    base_url: String,
    http: reqwest::Client,
    sat_per_kw: RwLock<HashMap<ConfirmationTarget, u32>>,
    /// The last `/fee-estimates` answer (blocks -> sat/vB), for targets LDK does not name.
    by_blocks: RwLock<HashMap<u16, f64>>,
    /// Counts the refreshes that changed the estimates.
    changes: AtomicU64,
}

impl EsploraFeeEstimator {
    pub fn new(base_url: String, http: reqwest::Client) -> Self {
        let fallbacks = ALL_TARGETS
            .iter()
            .map(|t| (*t, fallback_sat_per_kw(*t)))
            .collect();
        EsploraFeeEstimator {
            base_url,
            http,
            sat_per_kw: RwLock::new(fallbacks),
            by_blocks: RwLock::new(HashMap::new()),
            changes: AtomicU64::new(0),
        }
    }

    /// Fetches fresh estimates; on failure the previous ones stay in use.
    pub async fn refresh(&self) -> Result<(), ChainError> {
        let url = format!("{}/fee-estimates", self.base_url);
        let response = self
            .http
            .get(&url)
            .timeout(ESPLORA_TIMEOUT)
            .send()
            .await
            .map_err(|e| ChainError::Unreachable {
                url: self.base_url.clone(),
                reason: e.to_string(),
            })?;
        let raw: HashMap<String, f64> = response
            .error_for_status()
            .map_err(|e| ChainError::BadAnswer {
                url: url.clone(),
                reason: e.to_string(),
            })?
            .json()
            .await
            .map_err(|e| ChainError::BadAnswer {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let estimates: HashMap<u16, f64> = raw
            .into_iter()
            .filter_map(|(k, v)| k.parse::<u16>().ok().map(|b| (b, v)))
            .collect();
        if estimates.is_empty() {
            // Regtest Esplora servers often answer `{}`; keep the fallbacks.
            return Ok(());
        }
        self.by_blocks
            .write()
            .expect("fee lock poisoned")
            .clone_from(&estimates);
        let mut rates = HashMap::new();
        for target in ALL_TARGETS {
            let Some(sat_per_vb) = estimate_for_blocks(&estimates, target_blocks(target)) else {
                continue;
            };
            let mut per_kw = sat_per_vb_to_kw(sat_per_vb);
            match target {
                // Leave room below the background rate so a peer's slightly lower estimate
                // does not make us force-close.
                ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => {
                    per_kw = per_kw.saturating_sub(250).max(FEERATE_FLOOR_SAT_PER_KW)
                }
                // Protection against fee inflation, with leeway for honest spikes.
                ConfirmationTarget::MaximumFeeEstimate => {
                    per_kw = per_kw.saturating_mul(11) / 10 + 2_500
                }
                _ => {}
            }
            rates.insert(target, per_kw);
        }
        self.sat_per_kw
            .write()
            .expect("fee lock poisoned")
            .extend(rates);
        self.changes.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// A number that changes whenever the estimates may have changed: answers derived from
    /// them and kept beside this number are current while it is unchanged.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The fee rate expected to confirm within `blocks`, never below the floor; the funding
    /// target's rate while the chain source has given no estimates.
    pub fn fee_rate_within_blocks(&self, blocks: u16) -> FeeRate {
        let estimate =
            estimate_for_blocks(&self.by_blocks.read().expect("fee lock poisoned"), blocks);
        match estimate {
            Some(sat_per_vb) => FeeRate::from_sat_per_kwu(u64::from(sat_per_vb_to_kw(sat_per_vb))),
            None => self.onchain_fee_rate(OnchainTarget::ChannelFunding),
        }
    }

    /// The fee rate our own on-chain spends use.
    pub fn onchain_fee_rate(&self, target: OnchainTarget) -> FeeRate {
        let ldk_target = match target {
            OnchainTarget::Payment => ConfirmationTarget::UrgentOnChainSweep,
            OnchainTarget::ChannelFunding => ConfirmationTarget::NonAnchorChannelFee,
        };
        FeeRate::from_sat_per_kwu(self.get_est_sat_per_1000_weight(ldk_target) as u64)
    }
}

impl FeeEstimator for EsploraFeeEstimator {
    fn get_est_sat_per_1000_weight(&self, target: ConfirmationTarget) -> u32 {
        let rates = self.sat_per_kw.read().expect("fee lock poisoned");
        rates
            .get(&target)
            .copied()
            .unwrap_or_else(|| fallback_sat_per_kw(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esplora_rates_map_to_the_nearest_lower_block_count_with_a_floor() {
        let estimates: HashMap<u16, f64> = [(1, 20.0), (6, 10.0), (144, 1.0), (1008, 0.5)].into();
        assert_eq!(estimate_for_blocks(&estimates, 12), Some(10.0));
        assert_eq!(estimate_for_blocks(&estimates, 1008), Some(0.5));
        assert_eq!(sat_per_vb_to_kw(10.0), 2_500);
        assert_eq!(sat_per_vb_to_kw(0.5), FEERATE_FLOOR_SAT_PER_KW);
        assert_eq!(sat_per_vb_to_kw(f64::NAN), FEERATE_FLOOR_SAT_PER_KW);
    }
}
