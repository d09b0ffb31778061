//! Shared state of a running proxy.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tap_core::store::Store;

use crate::config::ProxyConfig;
use crate::directory::DirectoryHandle;
use crate::journal::Journal;
use crate::keyring::Keyring;
use crate::outbound::GuardedResolver;

/// Everything handlers share. Cloned for every request (axum's `State`), so
/// a clone is one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Opened keys.
    pub keys: Arc<Keyring>,
    /// In-memory configuration view.
    pub directory: Arc<DirectoryHandle>,
    /// Audit writer.
    pub journal: Journal,
    /// The client that forwards agents' requests.
    pub upstream: crate::outbound::UpstreamClient,
    /// The client for approval channels (Telegram's Bot API).
    pub client: reqwest::Client,
    /// The guarded resolver (also used by the client).
    pub resolver: Arc<GuardedResolver>,
    /// Configuration.
    pub config: Arc<ProxyConfig>,
    /// Agent rate limits.
    pub rate: Arc<RateLimiter>,
    /// Approval coordination.
    pub broker: Arc<crate::approval::broker::Broker>,
    /// The Telegram channel, when `TELEGRAM_BOT_TOKEN` is set.
    pub telegram: Option<Arc<tap_bot::TelegramBot>>,
    /// The admin service, attached to this proxy (read your writes).
    pub ops: crate::ops::Ops,
    /// The one source of wall-clock time.
    pub clock: Arc<dyn tap_core::time::Clock>,
    /// Failed logins and agent keys per client address (bounded, expiring).
    pub abuse: Arc<crate::http::limiter::AbuseLimits>,
    /// Passkeys, when `TAP_WEBAUTHN_RP_ID` and `TAP_WEBAUTHN_ORIGIN` are set.
    pub passkeys: Option<Arc<crate::web::passkey_service::PasskeyService>>,
    /// Access tokens minted by OAuth 2 token flows (SPEC §6.3).
    pub tokens: Arc<crate::proxy::token_cache::TokenCache>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The rolling window of agent rate limits.
pub const RATE_WINDOW: Duration = Duration::from_secs(3600);

/// Exact sliding-hour counters per (team, agent): a limit of N allows exactly N.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<(i64, String), VecDeque<Instant>>>,
}

impl RateLimiter {
    /// How many events of `key` fall in the current window (counts nothing).
    pub fn recent(&self, team: i64, key: &str, now: Instant) -> usize {
        let map = match self.windows.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        map.get(&(team, key.to_owned())).map_or(0, |q| {
            q.iter()
                .filter(|t| now.duration_since(**t) < RATE_WINDOW)
                .count()
        })
    }

    /// Counts one request; `Err(retry_after_secs)` when the limit is reached (nothing counted).
    pub fn check(&self, team: i64, agent: &str, limit: u32, now: Instant) -> Result<(), u64> {
        let mut map = match self.windows.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let q = map.entry((team, agent.to_owned())).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW)
        {
            q.pop_front();
        }
        if q.len() >= limit as usize {
            let oldest = q.front().copied().unwrap_or(now);
            let wait = RATE_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        q.push_back(now);
        Ok(())
    }
}
