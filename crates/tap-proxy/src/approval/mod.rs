//! Human approval (SPEC §3.3, §11): approvals are stored state, decided through
//! one gate, forwarded by an executor exactly once.
//!
//! - The broker captures the request at decision time (method, target, the
//!   headers to forward, the body), binds it with a keyed hash and stores it.
//! - Every channel (web page, `/team/approvals`, the terminal, Telegram later)
//!   decides through [`decide::decide`], which checks eligibility, `allowed_approvers`,
//!   distinct approvers, routing and passkey requirements.
//! - The executor (one task per proxy) expires pending approvals, claims
//!   approved ones atomically, re-checks the agent, credential and destination,
//!   forwards byte for byte what was approved, and stores the scrubbed result.
//!   A restart loses nothing: everything lives in the store.

pub mod broker;
pub mod captured;
pub mod decide;
pub mod display;
pub mod executor;
pub mod results;
pub mod telegram;
