//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018).
//!
//! A server cookie is `version 1 | reserved (3) | timestamp (4) | SipHash-2-4(client cookie | version | reserved |
//! timestamp | client address)` under a 128-bit secret that rotates; the previous secret still validates, so a
//! rotation never invalidates a client's cookie at once. Pure functions: the keys are passed in.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// The EDNS option code of COOKIE (RFC 7873 §4).
pub(crate) const OPTION_COOKIE: u16 = 10;
/// A server cookie we issue: version, reserved, timestamp, hash.
pub(crate) const SERVER_COOKIE_LEN: usize = 16;
/// How old a server cookie may be (RFC 9018 §4.3: one hour), and how far in the future (five minutes).
const MAX_AGE_SECS: u32 = 3600;
const MAX_FUTURE_SECS: u32 = 300;

/// The current and previous cookie secrets.
#[derive(Clone)]
pub struct CookieKeys {
    current: [u8; 16],
    previous: [u8; 16],
}

impl CookieKeys {
    /// Fresh random keys (both the same until the first rotation).
    pub fn random() -> std::io::Result<CookieKeys> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(CookieKeys { current: key, previous: key })
    }

    /// Keys for the next period: a new current secret, the old one kept for validation.
    pub fn rotated(&self) -> std::io::Result<CookieKeys> {
        let mut next = CookieKeys::random()?;
        next.previous = self.current;
        Ok(next)
    }

    #[cfg(test)]
    pub fn fixed(current: [u8; 16], previous: [u8; 16]) -> CookieKeys {
        CookieKeys { current, previous }
    }
}

/// The cookie a client sent: its own 8 bytes and, when it has one, the server cookie it was given (8 to 32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCookie {
    pub client: [u8; 8],
    server: [u8; 32],
    server_len: u8,
}

impl ClientCookie {
    /// Parses a COOKIE option's data; `None` for the lengths RFC 7873 §5.2.2 calls malformed (FORMERR).
    pub fn parse(data: &[u8]) -> Option<ClientCookie> {
        let len = data.len();
        if len != 8 && !(16..=40).contains(&len) {
            return None;
        }
        let mut cookie = ClientCookie { client: [0; 8], server: [0; 32], server_len: (len - 8) as u8 };
        cookie.client.copy_from_slice(&data[..8]);
        cookie.server[..len - 8].copy_from_slice(&data[8..]);
        Some(cookie)
    }

    pub fn server(&self) -> &[u8] {
        &self.server[..self.server_len as usize]
    }
}

fn hash(key: &[u8; 16], client: &[u8; 8], head: &[u8; 8], source: IpAddr) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(key);
    h.write(client);
    h.write(head);
    match source {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => h.write(&v4.octets()),
            None => h.write(&v6.octets()),
        },
    }
    h.finish().to_be_bytes()
}

/// The COOKIE option of a reply: the client's cookie and a fresh server cookie, and whether the client's own server
/// cookie was valid (a valid cookie proves the source address; rate limiting exempts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieReply {
    pub client: [u8; 8],
    pub server: [u8; SERVER_COOKIE_LEN],
    pub valid: bool,
}

/// The COOKIE of a reply to the cookie `sent` from `source`, at `now` (Unix seconds).
pub fn reply(keys: &CookieKeys, sent: &ClientCookie, source: IpAddr, now: u32) -> CookieReply {
    CookieReply {
        client: sent.client,
        server: server_cookie(keys, &sent.client, source, now),
        valid: is_valid(keys, sent, source, now),
    }
}

/// The server cookie for this client cookie and address, stamped `now` (Unix seconds, mod 2^32).
pub fn server_cookie(keys: &CookieKeys, client: &[u8; 8], source: IpAddr, now: u32) -> [u8; SERVER_COOKIE_LEN] {
    let mut out = [0u8; SERVER_COOKIE_LEN];
    out[0] = 1;
    out[4..8].copy_from_slice(&now.to_be_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&out[..8]);
    out[8..].copy_from_slice(&hash(&keys.current, client, &head, source));
    out
}

/// True when the client returned a server cookie we issued (under the current or previous secret) that is still
/// fresh.
pub fn is_valid(keys: &CookieKeys, cookie: &ClientCookie, source: IpAddr, now: u32) -> bool {
    let server = cookie.server();
    if server.len() != SERVER_COOKIE_LEN || server[0] != 1 || server[1..4] != [0, 0, 0] {
        return false;
    }
    let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
    let age = now.wrapping_sub(stamp);
    let ahead = stamp.wrapping_sub(now);
    if age > MAX_AGE_SECS && ahead > MAX_FUTURE_SECS {
        return false;
    }
    let mut head = [0u8; 8];
    head.copy_from_slice(&server[..8]);
    [&keys.current, &keys.previous].iter().any(|key| {
        let expected = hash(key, &cookie.client, &head, source);
        // Constant-time comparison: a forger learns nothing from timing.
        expected.iter().zip(&server[8..]).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_expire() {
        let keys = CookieKeys::fixed([1; 16], [2; 16]);
        let source: IpAddr = "127.0.0.9".parse().unwrap();
        let client = [7u8; 8];
        let server = server_cookie(&keys, &client, source, 1000);
        let mut data = client.to_vec();
        data.extend_from_slice(&server);
        let cookie = ClientCookie::parse(&data).unwrap();
        assert!(is_valid(&keys, &cookie, source, 1000));
        assert!(is_valid(&keys, &cookie, source, 1000 + 3600));
        assert!(!is_valid(&keys, &cookie, source, 1000 + 3601), "too old");
        assert!(!is_valid(&keys, &cookie, "127.0.0.8".parse().unwrap(), 1000), "another address");
        let rotated = CookieKeys::fixed([3; 16], [1; 16]);
        assert!(is_valid(&rotated, &cookie, source, 1000), "the previous secret still validates");
        let twice = CookieKeys::fixed([4; 16], [3; 16]);
        assert!(!is_valid(&twice, &cookie, source, 1000), "two rotations later it does not");
    }

    #[test]
    fn malformed_lengths_are_refused() {
        for len in [0usize, 7, 9, 15, 41] {
            assert!(ClientCookie::parse(&vec![0u8; len]).is_none(), "{len}");
        }
        for len in [8usize, 16, 40] {
            assert!(ClientCookie::parse(&vec![0u8; len]).is_some(), "{len}");
        }
    }
}
