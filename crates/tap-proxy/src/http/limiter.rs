//! Per-address abuse limits (THREATS §I, §P; "login brute force"): failed
//! logins and failed agent keys are counted per client address, never per
//! e-mail or per key, so a stranger's failures cannot lock the owner out and
//! attacker-chosen strings are never kept.
//!
//! Where they are counted depends on who shares the store. A single process
//! (SQLite) counts in `moka` caches: bounded in entries
//! ([`MAX_TRACKED_ADDRESSES`]) and every entry expires one window after the
//! address's first failure, so a flood from many addresses costs a bounded
//! amount of memory, and no store write is made. Replicas sharing a store
//! (PostgreSQL) count in it ([`Store::count_abuse_failure`]), so spreading
//! attempts over N replicas does not give N times the attempts; only
//! failures (and sign-in attempts) reach the store, never a successful agent
//! request; a replica remembers the addresses the store refused until their
//! window ends. A store that cannot count refuses the attempt (503), never
//! lets it through uncounted. The argon2 bound stays per process.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tap_core::store::{AbuseKind, Store};
use tap_core::time::Clock;

use crate::error::ProxyError;

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

/// The address a request came from: the TCP peer, or, when the peer is one
/// of `TAP_TRUSTED_PROXIES`, the client its `X-Forwarded-For` names
/// ([`super::forwarded::TrustedProxies::client`]). Without that variable a
/// reverse proxy in front of TAP counts as one address.
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
        if f.count.load(Ordering::Relaxed) < self.limit {
            return None;
        }
        self.retry_after(&f)
    }

    /// Counts one failure of `ip`: `None` when counted, `Some(retry_after_secs)`
    /// when `ip` had already used up its failures (then nothing is counted).
    pub fn record_failure(&self, ip: IpAddr) -> Option<u64> {
        let f = self.cache.get_with(bucket(ip), || {
            Arc::new(Failures {
                first: Instant::now(),
                count: AtomicU32::new(0),
            })
        });
        let limit = self.limit;
        match f
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                (c < limit).then_some(c + 1)
            }) {
            Ok(_) => None,
            Err(_) => Some(self.retry_after(&f).unwrap_or(1)),
        }
    }

    /// Seconds left in `f`'s window, `None` once it ended.
    fn retry_after(&self, f: &Failures) -> Option<u64> {
        let elapsed = f.first.elapsed();
        (elapsed < self.window).then(|| self.window.saturating_sub(elapsed).as_secs().max(1))
    }

    /// Addresses currently tracked (after pending evictions ran).
    pub fn tracked(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

/// Where one limit's failures are counted.
enum Counter {
    /// In this process: one process serves the store.
    Process(AddressLimiter),
    /// In the store, shared by every replica serving it.
    Store(StoreCounter),
}

/// Failures counted in the store, plus what this replica learnt from it:
/// an address the store found over its limit is refused here until its window
/// ends without asking the store again, so a flood of refused attempts costs
/// the shared database one round trip per address and window, not one per
/// attempt. Bounded like [`AddressLimiter`].
struct StoreCounter {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Bucket → when the store's refusal ends.
    known_blocked: moka::sync::Cache<IpAddr, Instant>,
}

impl StoreCounter {
    fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, window: Duration) -> Self {
        Self {
            store,
            clock,
            known_blocked: moka::sync::Cache::builder()
                .max_capacity(MAX_TRACKED_ADDRESSES)
                .time_to_live(window)
                .build(),
        }
    }

    /// Seconds left of a refusal the store gave `bucket`, if one is running.
    fn known(&self, bucket: IpAddr) -> Option<u64> {
        let until = self.known_blocked.get(&bucket)?;
        let left = until.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then(|| secs_of(i64::try_from(left.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Keeps the store's refusal of `bucket` (`Some(retry_after_ms)`) and
    /// answers it in whole seconds.
    fn learn(&self, bucket: IpAddr, refused: Option<i64>) -> Option<u64> {
        let ms = refused?;
        let left = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        if let Some(until) = Instant::now().checked_add(left) {
            self.known_blocked.insert(bucket, until);
        }
        Some(secs_of(ms))
    }
}

/// One abuse limit: failures of one [`AbuseKind`] per client address, at
/// most `limit` per `window` starting at the address's first failure.
pub struct FailureLimit {
    kind: AbuseKind,
    limit: u32,
    window: Duration,
    counter: Counter,
}

impl std::fmt::Debug for FailureLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLimit")
            .field("kind", &self.kind)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("shared", &self.is_shared())
            .finish()
    }
}

/// Milliseconds of a store wait as whole seconds for `Retry-After` (at least 1).
fn secs_of(ms: i64) -> u64 {
    u64::try_from(ms.max(1).saturating_add(999) / 1000).unwrap_or(1)
}

impl FailureLimit {
    fn in_process(kind: AbuseKind, limit: u32, window: Duration) -> Self {
        Self {
            kind,
            limit,
            window,
            counter: Counter::Process(AddressLimiter::new(limit, window)),
        }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// True when failures are counted in the store (replicas share it).
    pub fn is_shared(&self) -> bool {
        matches!(self.counter, Counter::Store(_))
    }

    /// The answer of [`FailureLimit::blocked`] as far as this process knows
    /// it, never touching the store: when failures are counted in the store,
    /// only a refusal the store already gave this replica for `ip`.
    pub fn blocked_in_process(&self, ip: IpAddr) -> Option<u64> {
        match &self.counter {
            Counter::Process(l) => l.blocked(ip),
            Counter::Store(c) => c.known(bucket(ip)),
        }
    }

    /// `Some(retry_after_secs)` when `ip` used up its failures in the current
    /// window; `Err` (503 `store_unavailable`) when the store cannot say.
    pub async fn blocked(&self, ip: IpAddr) -> Result<Option<u64>, ProxyError> {
        let c = match &self.counter {
            Counter::Process(l) => return Ok(l.blocked(ip)),
            Counter::Store(c) => c,
        };
        let b = bucket(ip);
        if let Some(retry) = c.known(b) {
            return Ok(Some(retry));
        }
        let refused = c
            .store
            .abuse_blocked(
                self.kind,
                &b.to_string(),
                self.limit,
                self.window_ms(),
                c.clock.now_ms(),
            )
            .await?;
        Ok(c.learn(b, refused))
    }

    /// Counts one failure of `ip`: `Ok(None)` when counted,
    /// `Ok(Some(retry_after_secs))` when `ip` had already used up its
    /// failures (nothing counted: answer 429), `Err` (503
    /// `store_unavailable`) when the store cannot count it.
    pub async fn record_failure(&self, ip: IpAddr) -> Result<Option<u64>, ProxyError> {
        let c = match &self.counter {
            Counter::Process(l) => return Ok(l.record_failure(ip)),
            Counter::Store(c) => c,
        };
        let b = bucket(ip);
        if let Some(retry) = c.known(b) {
            return Ok(Some(retry));
        }
        let refused = c
            .store
            .count_abuse_failure(
                self.kind,
                &b.to_string(),
                self.limit,
                self.window_ms(),
                c.clock.now_ms(),
            )
            .await?;
        Ok(c.learn(b, refused))
    }
}

/// The abuse limits of one proxy, plus the dummy password hash that makes an
/// unknown e-mail cost the same argon2 work as a known one.
#[derive(Debug)]
pub struct AbuseLimits {
    /// Failed logins per address.
    pub logins: FailureLimit,
    /// Invalid agent keys per address.
    pub agent_keys: FailureLimit,
    /// A PHC string with the parameters of real account hashes.
    pub dummy_password_hash: String,
    /// Slots for argon2 checks ([`MAX_PASSWORD_CHECKS`]), always per process.
    pub password_checks: tokio::sync::Semaphore,
}

impl AbuseLimits {
    /// The default limits, counted in this process; hashes the dummy
    /// password (slow: call off the async workers).
    pub fn new() -> Self {
        use argon2::{Argon2, PasswordHasher as _};
        let dummy_password_hash = Argon2::default()
            .hash_password(b"tap-dummy-password-never-an-account")
            .map(|h| h.to_string())
            .unwrap_or_default();
        Self {
            logins: FailureLimit::in_process(AbuseKind::Login, MAX_LOGIN_FAILURES, LOGIN_WINDOW),
            agent_keys: FailureLimit::in_process(
                AbuseKind::AgentKey,
                MAX_AGENT_KEY_FAILURES,
                AGENT_KEY_WINDOW,
            ),
            dummy_password_hash,
            password_checks: tokio::sync::Semaphore::new(MAX_PASSWORD_CHECKS),
        }
    }

    /// The same limits counted in `store` (timed by `clock`), for replicas
    /// sharing it: every replica then counts an address's failures together.
    pub fn counted_in(mut self, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        for limit in [&mut self.logins, &mut self.agent_keys] {
            limit.counter = Counter::Store(StoreCounter::new(
                Arc::clone(&store),
                Arc::clone(&clock),
                limit.window,
            ));
        }
        self
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
            assert_eq!(l.record_failure(ip("10.0.0.1")), None);
        }
        let retry = l.blocked(ip("10.0.0.1")).unwrap();
        assert!((1..=60).contains(&retry));
        // A failure over the limit is refused, not counted.
        assert!(l.record_failure(ip("10.0.0.1")).is_some());
        assert_eq!(l.blocked(ip("10.0.0.2")), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = AddressLimiter::new(2, Duration::from_secs(60));
        let _ = l.record_failure(ip("2001:db8:1:2::1"));
        let _ = l.record_failure(ip("2001:db8:1:2::ffff"));
        assert!(l.blocked(ip("2001:db8:1:2::42")).is_some());
        assert_eq!(l.blocked(ip("2001:db8:1:3::1")), None);
        let _ = l.record_failure(ip("::ffff:10.1.1.1"));
        let _ = l.record_failure(ip("10.1.1.1"));
        assert!(l.blocked(ip("10.1.1.1")).is_some());
    }

    #[test]
    fn the_map_stays_bounded_under_a_flood_of_addresses() {
        let l = AddressLimiter::with_capacity(5, Duration::from_secs(60), 1_000);
        for i in 0..20_000u32 {
            let _ = l.record_failure(IpAddr::V4(Ipv4Addr::from(i)));
        }
        assert!(l.tracked() <= 1_000, "{}", l.tracked());
    }

    fn in_store(store: &Arc<dyn Store>, clock: &Arc<dyn Clock>) -> FailureLimit {
        let window = Duration::from_secs(60);
        FailureLimit {
            kind: AbuseKind::AgentKey,
            limit: 3,
            window,
            counter: Counter::Store(StoreCounter::new(
                Arc::clone(store),
                Arc::clone(clock),
                window,
            )),
        }
    }

    async fn sqlite(dir: &tempfile::TempDir, migrated: bool) -> Arc<dyn Store> {
        let store = tap_store::SqliteStore::open(&dir.path().join("tap.db"))
            .await
            .unwrap();
        if migrated {
            store.migrate().await.unwrap();
        }
        Arc::new(store)
    }

    #[tokio::test]
    async fn replicas_counting_in_the_store_share_the_limit_and_remember_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir, true).await;
        let clock: Arc<dyn Clock> = Arc::new(tap_core::time::ManualClock::starting_now());
        let (one, two) = (in_store(&store, &clock), in_store(&store, &clock));
        assert!(one.is_shared());
        let a = ip("203.0.113.7");
        assert_eq!(one.record_failure(a).await.unwrap(), None);
        assert_eq!(two.record_failure(a).await.unwrap(), None);
        assert_eq!(one.record_failure(a).await.unwrap(), None);
        // Replica two has not asked the store since: it knows nothing yet.
        assert_eq!(two.blocked_in_process(a), None);
        let retry = two.blocked(a).await.unwrap().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        // ...and now refuses the address without the store.
        assert!(two.blocked_in_process(a).is_some());
        // A fourth failure on replica one is refused, not counted.
        assert!(one.record_failure(a).await.unwrap().is_some());
        assert!(one.blocked_in_process(a).is_some());
        // Another address is apart.
        let b = ip("203.0.113.8");
        assert_eq!(one.blocked(b).await.unwrap(), None);
        assert_eq!(one.record_failure(b).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_store_that_cannot_count_refuses_with_store_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        // No schema: every abuse query fails.
        let store = sqlite(&dir, false).await;
        let clock: Arc<dyn Clock> = Arc::new(tap_core::time::ManualClock::starting_now());
        let limit = in_store(&store, &clock);
        let a = ip("203.0.113.7");
        let counted = limit.record_failure(a).await.unwrap_err();
        assert_eq!(counted.reason, crate::error::Reason::StoreUnavailable);
        let read = limit.blocked(a).await.unwrap_err();
        assert_eq!(read.reason, crate::error::Reason::StoreUnavailable);
    }

    #[test]
    fn store_waits_round_up_to_whole_seconds() {
        assert_eq!(secs_of(1), 1);
        assert_eq!(secs_of(0), 1);
        assert_eq!(secs_of(-5), 1);
        assert_eq!(secs_of(1000), 1);
        assert_eq!(secs_of(1001), 2);
        assert_eq!(secs_of(900_000), 900);
    }

    #[test]
    fn the_dummy_hash_verifies_nothing_but_is_a_real_argon2_hash() {
        use argon2::{Argon2, PasswordVerifier as _};
        let a = AbuseLimits::new();
        let h = argon2::password_hash::phc::PasswordHash::new(&a.dummy_password_hash).unwrap();
        assert!(Argon2::default().verify_password(b"anything", &h).is_err());
    }
}
