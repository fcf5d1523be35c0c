//! Per-client rate limits on varco's login endpoints: each login start signs with RSA, writes an
//! audit record and a pending login, and each ACS or SLO post parses XML, so an unauthenticated
//! flood would cost CPU, disk and the pending logins of real citizens.
//!
//! One token bucket per client: `sso_burst` requests at once, then `sso_rate` a second. The
//! client is the connection's peer, or, from a trusted proxy, the last address in
//! `X-Forwarded-For` that is not a trusted proxy itself. IPv6 clients count per /64, the block an
//! attacker gets as easily as one address. Loopback clients are limited too. Buckets outlive
//! reloads; a bucket unused for a minute is forgotten.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use pingora::http::RequestHeader;

use crate::request::headers::X_FORWARDED_FOR;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every client seen lately.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    buckets: moka::sync::Cache<u128, Arc<Mutex<Bucket>>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    /// No client seen yet.
    pub(crate) fn new() -> Self {
        Self {
            buckets: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
        }
    }

    /// Takes one token from `client`'s bucket; `Err(wait)` when there is none, with how long
    /// until there is.
    pub(crate) fn take(&self, client: IpAddr, rate: u32, burst: u32) -> Result<(), Duration> {
        let burst = f64::from(burst.max(1));
        let rate = f64::from(rate.max(1));
        let bucket = self.buckets.get_with(key(client), || {
            Arc::new(Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }))
        });
        let mut b = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

/// The bucket key: an IPv4 address, or an IPv6 /64.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64 << 64) | (1 << 32),
        },
    }
}

/// The client a request counts for: the peer, or, behind trusted proxies, the first address
/// from the right of `X-Forwarded-For` that is not one of them (what the client cannot forge).
pub(crate) fn client_of(
    peer: Option<IpAddr>,
    req: &RequestHeader,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return Some(peer);
    }
    let mut forwarded: Vec<IpAddr> = Vec::new();
    for v in req.headers.get_all(&X_FORWARDED_FOR) {
        let Ok(s) = v.to_str() else { return Some(peer) };
        for part in s.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => forwarded.push(ip),
                // Unreadable: stop believing the list here.
                Err(_) => return forwarded.last().copied().or(Some(peer)),
            }
        }
    }
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.iter().any(|n| n.contains(ip)))
            .unwrap_or(peer),
    )
}

/// Whether a request to this `/.sso/` path costs enough to be limited (metadata, keys and the
/// session read are cheap and cacheable).
pub(crate) fn limited_path(path: &str) -> bool {
    matches!(
        path,
        "/.sso/login"
            | "/.sso/acs"
            | "/.sso/oidc/callback"
            | "/.sso/slo"
            | "/.sso/logout"
            | "/.sso/handoff"
            | "/.sso/cns"
            | "/.sso/cns/callback"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_its_rate() {
        let l = RateLimiter::new();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        for _ in 0..5 {
            assert!(l.take(ip, 1, 5).is_ok());
        }
        let wait = l.take(ip, 1, 5).expect_err("empty");
        assert!(
            wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another client has its own bucket.
        assert!(l.take("192.0.2.2".parse().expect("ip"), 1, 5).is_ok());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let l = RateLimiter::new();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(l.take(a, 1, 1).is_ok());
        assert!(l.take(b, 1, 1).is_err(), "the same /64");
        assert!(l.take(c, 1, 1).is_ok(), "another /64");
        assert_ne!(
            key("0.0.0.1".parse().expect("ip")),
            key("::".parse().expect("ip"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_first_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut req = RequestHeader::build("GET", b"/.sso/login", None).expect("req");
        req.append_header("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.2")
            .expect("h");
        let lb: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(
            client_of(Some(lb), &req, &trusted),
            Some("203.0.113.9".parse().expect("ip")),
            "the client may have forged 198.51.100.7, not what the proxy appended"
        );
        let other: IpAddr = "192.0.2.5".parse().expect("ip");
        assert_eq!(
            client_of(Some(other), &req, &trusted),
            Some(other),
            "an untrusted peer"
        );
        let mut junk = RequestHeader::build("GET", b"/", None).expect("req");
        junk.append_header("x-forwarded-for", "garbage").expect("h");
        assert_eq!(client_of(Some(lb), &junk, &trusted), Some(lb));
    }
}
