//! Per-address abuse limits (THREATS §I, §P): failed logins and failed agent
//! keys are counted per client address, never per e-mail or per key, so a
//! stranger's failures cannot lock the owner out and attacker-chosen strings
//! are never kept.
//!
//! The maps are `moka` caches: bounded in entries ([`MAX_TRACKED_ADDRESSES`])
//! and every entry expires one window after the address's first failure, so
//! a flood from many addresses costs a bounded amount of memory.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// Failed logins one address may make per [`LOGIN_WINDOW`]; the next attempt,
/// right password or not, is answered 429 until the window ends.
pub const MAX_LOGIN_FAILURES: u32 = 10;
/// The login failure window (starts at an address's first failure).
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Invalid agent keys one address may present per [`AGENT_KEY_WINDOW`].
pub const MAX_AGENT_KEY_FAILURES: u32 = 20;
/// The agent-key failure window (starts at an address's first failure).
pub const AGENT_KEY_WINDOW: Duration = Duration::from_secs(60);
/// argon2 password checks running at once (each holds ~19 MiB for its run).
pub const MAX_PASSWORD_CHECKS: usize = 4;
/// Longest wait for a password-check slot before 429 with `Retry-After: 1`.
pub const PASSWORD_CHECK_WAIT: Duration = Duration::from_secs(10);
/// Addresses tracked per limiter; beyond it the least useful entries are evicted.
pub const MAX_TRACKED_ADDRESSES: u64 = 100_000;

/// The address a request came from: the TCP peer (a reverse proxy in front
/// of TAP counts as one address; `X-Forwarded-For` is not trusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl From<SocketAddr> for ClientAddr {
    fn from(a: SocketAddr) -> Self {
        Self(a.ip())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        // Requests not served by `Proxy::serve` (router tests) share one bucket.
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or(ClientAddr(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// The bucket an address counts in: IPv4 as is (IPv4-mapped IPv6 too), IPv6
/// by its /64, the smallest block one host usually holds.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug)]
struct Failures {
    first: Instant,
    count: AtomicU32,
}

/// Failures per address within a window starting at the first failure.
#[derive(Clone)]
pub struct AddressLimiter {
    cache: moka::sync::Cache<IpAddr, Arc<Failures>>,
    limit: u32,
    window: Duration,
}

impl std::fmt::Debug for AddressLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressLimiter")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl AddressLimiter {
    /// `limit` failures per `window`, at most [`MAX_TRACKED_ADDRESSES`] addresses.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::with_capacity(limit, window, MAX_TRACKED_ADDRESSES)
    }

    fn with_capacity(limit: u32, window: Duration, capacity: u64) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window)
                .build(),
            limit,
            window,
        }
    }

    /// `Some(retry_after_secs)` when `ip` used up its failures in the current window.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let f = self.cache.get(&bucket(ip))?;
        let elapsed = f.first.elapsed();
        if f.count.load(Ordering::Relaxed) < self.limit || elapsed >= self.window {
            return None;
        }
        Some(self.window.saturating_sub(elapsed).as_secs().max(1))
    }

    /// Counts one failure of `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let f = self.cache.get_with(bucket(ip), || {
            Arc::new(Failures {
                first: Instant::now(),
                count: AtomicU32::new(0),
            })
        });
        f.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Addresses currently tracked (after pending evictions ran).
    pub fn tracked(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

/// The abuse limits of one proxy, plus the dummy password hash that makes an
/// unknown e-mail cost the same argon2 work as a known one.
#[derive(Debug)]
pub struct AbuseLimits {
    /// Failed logins per address.
    pub logins: AddressLimiter,
    /// Invalid agent keys per address.
    pub agent_keys: AddressLimiter,
    /// A PHC string with the parameters of real account hashes.
    pub dummy_password_hash: String,
    /// Slots for argon2 checks ([`MAX_PASSWORD_CHECKS`]).
    pub password_checks: tokio::sync::Semaphore,
}

impl AbuseLimits {
    /// The default limits; hashes the dummy password (slow: call off the async workers).
    pub fn new() -> Self {
        use argon2::{Argon2, PasswordHasher as _};
        let dummy_password_hash = Argon2::default()
            .hash_password(b"tap-dummy-password-never-an-account")
            .map(|h| h.to_string())
            .unwrap_or_default();
        Self {
            logins: AddressLimiter::new(MAX_LOGIN_FAILURES, LOGIN_WINDOW),
            agent_keys: AddressLimiter::new(MAX_AGENT_KEY_FAILURES, AGENT_KEY_WINDOW),
            dummy_password_hash,
            password_checks: tokio::sync::Semaphore::new(MAX_PASSWORD_CHECKS),
        }
    }
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_an_address_after_its_limit_and_no_other() {
        let l = AddressLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(l.blocked(ip("10.0.0.1")), None);
            l.record_failure(ip("10.0.0.1"));
        }
        let retry = l.blocked(ip("10.0.0.1")).unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(l.blocked(ip("10.0.0.2")), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = AddressLimiter::new(2, Duration::from_secs(60));
        l.record_failure(ip("2001:db8:1:2::1"));
        l.record_failure(ip("2001:db8:1:2::ffff"));
        assert!(l.blocked(ip("2001:db8:1:2::42")).is_some());
        assert_eq!(l.blocked(ip("2001:db8:1:3::1")), None);
        l.record_failure(ip("::ffff:10.1.1.1"));
        l.record_failure(ip("10.1.1.1"));
        assert!(l.blocked(ip("10.1.1.1")).is_some());
    }

    #[test]
    fn the_map_stays_bounded_under_a_flood_of_addresses() {
        let l = AddressLimiter::with_capacity(5, Duration::from_secs(60), 1_000);
        for i in 0..20_000u32 {
            l.record_failure(IpAddr::V4(Ipv4Addr::from(i)));
        }
        assert!(l.tracked() <= 1_000, "{}", l.tracked());
    }

    #[test]
    fn the_dummy_hash_verifies_nothing_but_is_a_real_argon2_hash() {
        use argon2::{Argon2, PasswordVerifier as _};
        let a = AbuseLimits::new();
        let h = argon2::password_hash::phc::PasswordHash::new(&a.dummy_password_hash).unwrap();
        assert!(Argon2::default().verify_password(b"anything", &h).is_err());
    }
}
