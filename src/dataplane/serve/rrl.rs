//! Rate limits for UDP: response rate limiting (off by default), a token bucket per client network (/24 or /56);
//! and the per-source query limit (on by default), a token bucket per client address.
//!
//! Over the rate, responses are dropped, except every `slip`-th, which is sent truncated (TC, no records) so that a
//! real client behind a spoofed flood still gets through over TCP. A client that returns a valid server cookie has
//! proved its address and is never limited. The limiter only decides; the UDP loop acts on its verdict.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use ahash::RandomState;

pub(crate) use crate::settings::RrlSettings;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Send,
    /// Send a truncated, empty reply instead (TC set).
    Slip,
    Drop,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u32,
}

/// The limiter shared by every UDP socket.
pub(crate) struct Limiter {
    settings: RrlSettings,
    buckets: Mutex<HashMap<IpAddr, Bucket, RandomState>>,
}

/// Buckets kept at most; past this, idle ones are forgotten (bounded memory whatever the traffic).
const MAX_BUCKETS: usize = 100_000;

impl Limiter {
    pub(crate) fn new(settings: RrlSettings) -> Limiter {
        Limiter { settings, buckets: Mutex::new(HashMap::default()) }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.settings.responses_per_second > 0
    }

    /// The verdict for one response to `source`.
    pub(crate) fn check(&self, source: IpAddr, cookie_valid: bool, now: Instant) -> Verdict {
        if !self.enabled() || cookie_valid {
            return Verdict::Send;
        }
        let rate = f64::from(self.settings.responses_per_second);
        let Ok(mut buckets) = self.buckets.lock() else { return Verdict::Send };
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| now.duration_since(b.last).as_secs_f64() * rate < rate);
        }
        let bucket = buckets.entry(network(source)).or_insert(Bucket { tokens: rate, last: now, limited: 0 });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        match self.settings.slip {
            0 => Verdict::Drop,
            slip if bucket.limited % slip == 0 => Verdict::Slip,
            _ => Verdict::Drop,
        }
    }
}

/// The per-source query limit: each client address gets its VPC's rate of full answers a second (as a cloud's VPC
/// resolver caps each network interface); past it every `slip`-th query gets a truncated reply (a real client
/// retries over TCP, which is not limited here) and the others none. The buckets are spread over shards, so the
/// UDP threads rarely wait on each other.
pub(crate) struct SourceLimiter {
    slip: u32,
    shards: Box<[Mutex<HashMap<IpAddr, SourceBucket, RandomState>>]>,
    hasher: RandomState,
}

struct SourceBucket {
    tokens: f32,
    last: Instant,
    limited: u32,
}

const SOURCE_SHARDS: usize = 64;
/// Buckets per shard at most; past this, full buckets are forgotten.
const MAX_SOURCES_PER_SHARD: usize = 4096;

impl SourceLimiter {
    pub(crate) fn new(slip: u32) -> SourceLimiter {
        let shards = (0..SOURCE_SHARDS).map(|_| Mutex::new(HashMap::default())).collect();
        SourceLimiter { slip, shards, hasher: RandomState::new() }
    }

    /// The verdict for one query from `source` limited to `rate` a second (0: unlimited).
    pub(crate) fn check(&self, source: IpAddr, rate: u32, now: Instant) -> Verdict {
        if rate == 0 {
            return Verdict::Send;
        }
        let source = crate::model::classify::normalize_ip(source);
        let shard = self.hasher.hash_one(source) as usize % SOURCE_SHARDS;
        let Some(shard) = self.shards.get(shard) else { return Verdict::Send };
        let Ok(mut buckets) = shard.lock() else { return Verdict::Send };
        let rate = rate as f32;
        if buckets.len() >= MAX_SOURCES_PER_SHARD {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f32() * rate < rate);
        }
        let bucket = buckets.entry(source).or_insert(SourceBucket { tokens: rate, last: now, limited: 0 });
        bucket.tokens = (bucket.tokens + now.saturating_duration_since(bucket.last).as_secs_f32() * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        match self.slip {
            0 => Verdict::Drop,
            slip if bucket.limited % slip == 0 => Verdict::Slip,
            _ => Verdict::Drop,
        }
    }
}

/// A truncated reply to the query in `packet` (header and question, QR and TC set, no records), for a query that
/// gets no answer of its own (a limited source's, before anything was resolved).
pub(crate) fn truncated_reply(packet: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if packet.len() < 12 {
        return;
    }
    out.extend_from_slice(packet);
    out[2] = (out[2] & 0x79) | 0x80; // QR set; opcode and RD kept; AA and TC cleared (TC is set below)
    out[3] = 0; // RA, Z, AD, CD, rcode: NOERROR
    truncate_in_place(out);
}

/// The /24 or /56 a client belongs to.
pub(crate) fn network(ip: IpAddr) -> IpAddr {
    match crate::model::classify::normalize_ip(ip) {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xFFFF_FF00)),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 72) - 1))),
    }
}

/// Turns a response in `out` into its truncated form: header and question only, TC set, no records.
pub(crate) fn truncate_in_place(out: &mut Vec<u8>) {
    if out.len() < 12 {
        return;
    }
    let qd = u16::from_be_bytes([out[4], out[5]]);
    let mut end = 12;
    if qd == 1 {
        let mut pos = 12;
        while let Some(&len) = out.get(pos) {
            pos += 1 + len as usize;
            if len == 0 {
                break;
            }
        }
        end = (pos + 4).min(out.len());
    }
    out.truncate(end);
    out[2] |= 0x02;
    out[6..12].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits_per_network_with_slip() {
        let limiter = Limiter::new(RrlSettings { responses_per_second: 5, slip: 2 });
        let t0 = Instant::now();
        let a: IpAddr = "127.0.5.1".parse().unwrap();
        let same_net: IpAddr = "127.0.5.200".parse().unwrap();
        let other: IpAddr = "127.0.6.1".parse().unwrap();
        let verdicts: Vec<Verdict> =
            (0..9).map(|i| limiter.check(if i % 2 == 0 { a } else { same_net }, false, t0)).collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Send).count(), 5);
        assert_eq!(&verdicts[5..], &[Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]);
        assert_eq!(limiter.check(other, false, t0), Verdict::Send, "another network has its own bucket");
        assert_eq!(limiter.check(a, true, t0), Verdict::Send, "a valid cookie is never limited");
        assert_eq!(limiter.check(a, false, t0 + Duration::from_secs(1)), Verdict::Send, "tokens come back");
    }

    #[test]
    fn sources_are_limited_one_address_at_a_time() {
        let limiter = SourceLimiter::new(2);
        let t0 = Instant::now();
        let a: IpAddr = "127.0.5.1".parse().unwrap();
        let neighbour: IpAddr = "127.0.5.2".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..14).map(|_| limiter.check(a, 10, t0)).collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Send).count(), 10);
        assert_eq!(&verdicts[10..], &[Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]);
        assert_eq!(limiter.check(neighbour, 10, t0), Verdict::Send, "the next address has its own bucket");
        assert_eq!(limiter.check(a, 0, t0), Verdict::Send, "rate 0: unlimited");
        assert_eq!(limiter.check(a, 10, t0 + Duration::from_millis(200)), Verdict::Send, "two tokens came back");
    }

    #[test]
    fn a_truncated_reply_keeps_the_question() {
        let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x03www\x00\x00\x01\x00\x01extra";
        let mut out = Vec::new();
        truncated_reply(query, &mut out);
        assert_eq!(&out[..2], b"\x12\x34");
        assert_eq!(out[2] & 0x82, 0x82, "QR and TC");
        assert_eq!(out[2] & 0x01, 0x01, "RD kept");
        assert_eq!(&out[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&out[12..], b"\x03www\x00\x00\x01\x00\x01");
    }

    #[test]
    fn off_by_default() {
        let limiter = Limiter::new(RrlSettings::default());
        let a: IpAddr = "127.0.5.1".parse().unwrap();
        assert!((0..1000).all(|_| limiter.check(a, false, Instant::now()) == Verdict::Send));
    }
}
