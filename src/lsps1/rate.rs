//! Token buckets keyed by who asks: `burst` requests at once, refilled at `per_second`. The
//! public HTTP listener keys them by client address; the p2p gate by node id, with one more
//! bucket for all peers together, since node ids cost nothing to make. A full map forgets the
//! buckets that are full again (idle clients) before it tracks a new one.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// Keys tracked before idle ones are forgotten.
const MAX_TRACKED: usize = 10_000;

pub struct TokenBuckets<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Hash + Eq + Copy> TokenBuckets<K> {
    /// `burst` at once, refilled at `per_second`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        TokenBuckets {
            per_second,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `per_period` at once, refilled evenly over `period_secs`.
    pub fn per_period(per_period: u32, period_secs: u32) -> Self {
        TokenBuckets::new(f64::from(per_period) / f64::from(period_secs), per_period)
    }

    /// Takes one token from `key`'s bucket: `Ok`, or how many seconds until one is left.
    pub fn admit(&self, key: K, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            buckets.retain(|_, bucket| self.refilled(bucket, now) < self.burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        bucket.tokens = self.refilled(bucket, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }

    /// Whether `key`'s bucket holds a token now (nothing is taken).
    pub fn has_token(&self, key: K, now: Instant) -> bool {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .get(&key)
            .is_none_or(|bucket| self.refilled(bucket, now) >= 1.0)
    }

    /// Seconds until `key`'s bucket holds a token (0 when it holds one now).
    pub fn wait_secs(&self, key: K, now: Instant) -> u64 {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let tokens = buckets
            .get(&key)
            .map_or(self.burst, |bucket| self.refilled(bucket, now));
        match tokens >= 1.0 {
            true => 0,
            false => ((1.0 - tokens) / self.per_second).ceil().max(1.0) as u64,
        }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn idle_keys_are_forgotten_when_the_map_is_full() {
        let buckets = TokenBuckets::new(1.0, 2);
        let start = Instant::now();
        for key in 0..MAX_TRACKED as u32 {
            buckets.admit(key, start).unwrap();
        }
        let later = start + Duration::from_secs(5);
        buckets.admit(u32::MAX, later).unwrap();
        let tracked = buckets.buckets.lock().unwrap().len();
        assert_eq!(tracked, 1, "every refilled bucket was dropped");
    }

    #[test]
    fn a_period_budget_is_spent_at_once_and_comes_back_evenly() {
        let buckets = TokenBuckets::per_period(3, 60);
        let start = Instant::now();
        for _ in 0..3 {
            buckets.admit("peer", start).unwrap();
        }
        assert_eq!(buckets.admit("peer", start), Err(20));
        assert_eq!(buckets.admit("other", start), Ok(()));
        buckets
            .admit("peer", start + Duration::from_secs(20))
            .expect("one back after a third of the period");
    }
}
