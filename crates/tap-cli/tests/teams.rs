//! Teams, multi-account agents and the admin API end to end through the real
//! `tap` binary (SPEC §3.6, §4, §14 "Admin API bodies", §15; issue 4).
//!
//! - `isolation`: team A's agent or member sees and does nothing in team B,
//!   on every agent and admin endpoint, and same-id agents stay apart.
//! - `links`: `tap link` with a role, without one, and its removal.
//! - `keys`: comma-separated `X-TAP-Key` lists and per-agent rate limits.
//! - `rbac`: each member role gets exactly its permissions; 401, 409, values.
//! - `openapi`: the generated document served by the running binary.
//!
//! Loopback only; every wait is bounded (`eventually`), nothing asserts on
//! wall-clock time, and each test has its own `TapHome` and `FakeUpstream`.
#![allow(clippy::unwrap_used)]

#[path = "teams/support.rs"]
mod support;

#[path = "teams/isolation.rs"]
mod isolation;
#[path = "teams/keys.rs"]
mod keys;
#[path = "teams/links.rs"]
mod links;
#[path = "teams/openapi.rs"]
mod openapi;
#[path = "teams/rbac.rs"]
mod rbac;
