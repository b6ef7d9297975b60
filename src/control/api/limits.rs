//! Bounds the tenant API keeps: token buckets per key (an account's writes, its link requests) and counts of open
//! connections per client address. In memory, per node: a restart forgets them, which only ever lets a client in
//! sooner.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Buckets kept at most; past this, full ones are forgotten (a full bucket is the same as none).
const MAX_KEYS: usize = 100_000;

/// A token bucket per key: `rate` tokens a second, at most `burst` saved up.
pub(crate) struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub(crate) fn new(rate: f64, burst: u32) -> RateLimiter<K> {
        RateLimiter { rate: rate.max(f64::MIN_POSITIVE), burst: f64::from(burst.max(1)), buckets: Mutex::default() }
    }

    /// Takes a token for `key`, or says how long until one is there.
    pub(crate) fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_KEYS {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, last)| *tokens + now.duration_since(*last).as_secs_f64() * rate < burst);
        }
        let (tokens, last) = buckets.entry(key.clone()).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// Open connections: all together and per client address.
pub(crate) struct ConnectionCounts {
    max: usize,
    per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A connection's place in the counts; given back when dropped.
pub(crate) struct Slot {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl ConnectionCounts {
    pub(crate) fn new(max: usize, per_address: usize) -> Arc<ConnectionCounts> {
        Arc::new(ConnectionCounts { max, per_address, open: Mutex::default() })
    }

    /// A slot for a connection from `ip`, unless that would pass either bound.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from_ip = open.1.get(&ip).copied().unwrap_or(0);
        if open.0 >= self.max || from_ip >= self.per_address {
            return None;
        }
        open.0 += 1;
        open.1.insert(ip, from_ip + 1);
        Some(Slot { counts: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_their_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.take(&"a", t0).is_ok()));
        let wait = limiter.take(&"a", t0).expect_err("empty");
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(limiter.take(&"b", t0).is_ok(), "another key has its own bucket");
        assert!(limiter.take(&"a", t0 + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn connections_are_bounded_in_all_and_per_address() {
        let counts = ConnectionCounts::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let first = counts.admit(a).expect("1");
        let _second = counts.admit(a).expect("2");
        assert!(counts.admit(a).is_none(), "per address");
        let _third = counts.admit(b).expect("3");
        assert!(counts.admit(b).is_none(), "in all");
        drop(first);
        assert!(counts.admit(a).is_some(), "a closed connection gives its slot back");
    }
}
