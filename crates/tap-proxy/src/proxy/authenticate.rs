//! Stage 1: who is calling (SPEC §3.5). Keys are looked up by keyed hash and
//! compared in constant time; disabled agents get `invalid_tap_key`.

use std::sync::Arc;

use axum::http::HeaderMap;
use tap_core::crypto::{AGENT_KEY_PREFIX, KeyMac, ct_eq};

use crate::directory::{AgentEntry, Directory};
use crate::error::{ProxyError, Reason};

/// Longest key accepted before hashing (keys are 47 bytes).
const MAX_KEY_LEN: usize = 128;
/// Most keys in one comma-separated `X-TAP-Key`.
const MAX_KEYS: usize = 8;

/// The agents whose keys were presented, in the order given. Invariant: every
/// one is enabled and its key verified.
#[derive(Debug)]
pub struct Authenticated {
    /// Non-empty.
    pub agents: Vec<Arc<AgentEntry>>,
}

impl Authenticated {
    /// The first key's agent.
    pub fn primary(&self) -> &Arc<AgentEntry> {
        &self.agents[0]
    }
}

/// Authenticates `X-TAP-Key` (one key or a comma-separated list; any invalid key fails all).
pub fn authenticate(
    dir: &Directory,
    mac: &KeyMac,
    headers: &HeaderMap,
) -> Result<Authenticated, ProxyError> {
    let mut raw = String::new();
    for v in headers.get_all("x-tap-key") {
        let Ok(s) = v.to_str() else {
            return Err(ProxyError::new(
                Reason::InvalidTapKey,
                "X-TAP-Key is not a valid agent key",
            ));
        };
        if !raw.is_empty() {
            raw.push(',');
        }
        raw.push_str(s);
    }
    let keys: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        return Err(ProxyError::new(
            Reason::MissingTapKey,
            "X-TAP-Key header is missing",
        ));
    }
    if keys.len() > MAX_KEYS {
        return Err(ProxyError::new(
            Reason::InvalidTapKey,
            "too many keys in X-TAP-Key",
        ));
    }
    let mut agents = Vec::with_capacity(keys.len());
    for key in keys {
        let invalid =
            || ProxyError::new(Reason::InvalidTapKey, "X-TAP-Key is not a valid agent key");
        if !key.starts_with(AGENT_KEY_PREFIX) || key.len() > MAX_KEY_LEN {
            return Err(invalid());
        }
        let digest = mac.digest(key);
        let Some(agent) = dir.agents_by_key.get(&digest) else {
            return Err(invalid());
        };
        if !ct_eq(agent.key_hash.as_bytes(), digest.as_bytes()) || !agent.enabled {
            return Err(invalid());
        }
        agents.push(Arc::clone(agent));
    }
    Ok(Authenticated { agents })
}
