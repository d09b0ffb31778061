//! The access-token cache of the inline OAuth 2 token flows (SPEC §6.3;
//! the calls themselves are in [`super::token_flow`]).
//!
//! Access tokens are cached per (team, credential) until [`EXPIRY_MARGIN`]
//! before they expire; concurrent requests for one credential wait for one
//! token call. Across replicas the store shares them (sealed) and leases the
//! token call to one replica at a time (`token_flow::shared_mint`). A token
//! is fetched only for a request that may be sent: after the policy
//! decision, or after a human approved it (`destination::authorize`). A
//! refresh token the endpoint rotates is kept in memory at once and
//! persisted (re-sealed) into the credential's value, so a restart or
//! another replica uses the new one; that keeps the credential's version,
//! so approvals pending on it still forward, and it never overwrites a
//! value an admin set meanwhile. The endpoint is reached through the
//! guarded client (private addresses need `TAP_PRIVATE_ALLOWLIST`); any
//! failure is 502 `token_endpoint_error` and nothing is forwarded. Every
//! minted token joins the request's scrub set.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tap_core::secret::Secret;
use tap_core::time::Clock;
use tap_signer::oauth2::TokenGrant;
use tokio::sync::Mutex as AsyncMutex;

use crate::error::ProxyError;

/// A cached token is renewed this long before the expiry its endpoint named
/// (a token valid for less than this is used for one request only).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed when the endpoint names none (`expires_in` absent).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Most credentials with a cache slot; beyond, idle slots are dropped.
pub const MAX_SLOTS: usize = 10_000;

/// One credential's cached token.
#[derive(Default)]
struct Slot {
    /// Keyed digests of the values this slot belongs to: the value it was
    /// made for and the values persisted after rotations. A value outside
    /// the lineage (an operator set a new one) starts the slot afresh.
    lineage: Vec<String>,
    /// The access token and the time (ms) until which it is used.
    token: Option<(Secret, i64)>,
    /// The latest refresh token the endpoint rotated to.
    rotated: Option<Secret>,
}

/// What a token call produced.
pub(crate) struct Minted {
    /// The endpoint's answer.
    pub(crate) grant: TokenGrant,
    /// The digest of the value persisted with a rotated refresh token.
    pub(crate) persisted: Option<String>,
    /// Set when the token came from the store's shared cache: the time (ms)
    /// until which it is used, instead of the grant's lifetime.
    pub(crate) until: Option<i64>,
}

/// Until when (ms) a freshly minted `grant` is used: [`EXPIRY_MARGIN`]
/// before the expiry its endpoint named; `None` when it is shorter-lived
/// than the margin (it serves one request only).
pub(crate) fn usable_until(grant: &TokenGrant, now_ms: i64) -> Option<i64> {
    let lifetime = grant.expires_in.map_or(DEFAULT_LIFETIME, |secs| {
        Duration::from_secs(secs.min(365 * 24 * 3600))
    });
    let usable_ms =
        i64::try_from(lifetime.saturating_sub(EXPIRY_MARGIN).as_millis()).unwrap_or(i64::MAX);
    (usable_ms > 0).then(|| now_ms.saturating_add(usable_ms))
}

/// A slot, locked across its token call.
type SharedSlot = Arc<AsyncMutex<Slot>>;

/// Access tokens by (team internal id, credential name).
pub struct TokenCache {
    slots: Mutex<HashMap<(i64, String), SharedSlot>>,
    /// This process's name in the store's token leases (shared by replicas).
    holder: String,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            slots: Mutex::default(),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        }
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache")
    }
}

impl TokenCache {
    /// This process's name in the store's token leases.
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    fn slot(&self, team: i64, name: &str) -> SharedSlot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= MAX_SLOTS && !slots.contains_key(&(team, name.to_owned())) {
            // Bounded: drop slots nobody is using right now.
            slots.retain(|_, s| Arc::strong_count(s) > 1);
        }
        Arc::clone(slots.entry((team, name.to_owned())).or_default())
    }

    /// The access token for a credential whose value has digest
    /// `fingerprint`: the cached one while it is fresh, else the one `mint`
    /// gets (given the rotated refresh token, if any). One `mint` at a time
    /// per credential; callers arriving meanwhile use its token.
    pub(crate) async fn token<F, Fut>(
        &self,
        team: i64,
        name: &str,
        fingerprint: &str,
        clock: &dyn Clock,
        mint: F,
    ) -> Result<Secret, ProxyError>
    where
        F: FnOnce(Option<Secret>) -> Fut,
        Fut: Future<Output = Result<Minted, ProxyError>>,
    {
        let slot = self.slot(team, name);
        let mut s = slot.lock().await;
        if !s.lineage.iter().any(|f| f == fingerprint) {
            *s = Slot {
                lineage: vec![fingerprint.to_owned()],
                ..Slot::default()
            };
        }
        if let Some((token, until)) = &s.token
            && clock.now_ms() < *until
        {
            return Ok(token.clone());
        }
        let minted = mint(s.rotated.clone()).await?;
        let until = match minted.until {
            Some(until) => Some(until),
            None => usable_until(&minted.grant, clock.now_ms()),
        };
        let token = minted.grant.access_token.clone();
        // A token shorter-lived than the margin serves this request only.
        s.token = until.map(|until| (token.clone(), until));
        if let Some(r) = minted.grant.refresh_token {
            s.rotated = Some(r);
        }
        if let Some(f) = minted.persisted {
            s.lineage.push(f);
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tap_core::time::ManualClock;

    use super::*;
    use crate::error::Reason;

    fn grant(token: &str, expires_in: Option<u64>, refresh: Option<&str>) -> Minted {
        Minted {
            grant: TokenGrant {
                access_token: Secret::from(token),
                expires_in,
                refresh_token: refresh.map(Secret::from),
            },
            persisted: None,
            until: None,
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_token_call_until_expiry() {
        let cache = Arc::new(TokenCache::default());
        let clock = Arc::new(ManualClock::new(1_000_000));
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, clock, calls, mut gate) = (
                Arc::clone(&cache),
                Arc::clone(&clock),
                Arc::clone(&calls),
                gate.clone(),
            );
            tasks.push(tokio::spawn(async move {
                cache
                    .token(1, "g", "fp", &*clock, |_| async move {
                        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                        // Held open until every caller is queued behind it.
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(grant(&format!("tok-{n}"), Some(3600), None))
                    })
                    .await
                    .unwrap()
            }));
        }
        release.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap().expose(), b"tok-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Just before the margin: still cached; past it: a new call.
        clock.advance(Duration::from_secs(3600) - EXPIRY_MARGIN - Duration::from_millis(1));
        let again = cache
            .token(1, "g", "fp", &*clock, |_| async {
                Ok(grant("tok-2", Some(3600), None))
            })
            .await
            .unwrap();
        assert_eq!(again.expose(), b"tok-1");
        clock.advance(Duration::from_millis(1));
        let renewed = cache
            .token(1, "g", "fp", &*clock, |_| async {
                Ok(grant("tok-2", Some(3600), None))
            })
            .await
            .unwrap();
        assert_eq!(renewed.expose(), b"tok-2");
    }

    #[tokio::test]
    async fn a_rotated_refresh_token_is_used_next_and_a_new_value_starts_afresh() {
        let cache = TokenCache::default();
        let clock = ManualClock::new(0);
        // Shorter-lived than the margin: never cached.
        let t = cache
            .token(1, "g", "fp", &clock, |rotated| async move {
                assert!(rotated.is_none());
                Ok(grant("a", Some(30), Some("rt-2")))
            })
            .await
            .unwrap();
        assert_eq!(t.expose(), b"a");
        let t = cache
            .token(1, "g", "fp", &clock, |rotated| async move {
                assert_eq!(rotated.unwrap().expose(), b"rt-2");
                Ok(grant("b", Some(3600), None))
            })
            .await
            .unwrap();
        assert_eq!(t.expose(), b"b");
        // The operator set a new value: nothing of the old one is used.
        let t = cache
            .token(1, "g", "other", &clock, |rotated| async move {
                assert!(rotated.is_none());
                Ok(grant("c", Some(3600), None))
            })
            .await
            .unwrap();
        assert_eq!(t.expose(), b"c");
        // Failures are not cached.
        let e = cache
            .token(2, "g", "fp", &clock, |_| async {
                Err(ProxyError::new(Reason::TokenEndpointError, "down"))
            })
            .await
            .unwrap_err();
        assert_eq!(e.reason, Reason::TokenEndpointError);
    }
}
