//! The TAP proxy service.
//!
//! Request flow, one module each under [`proxy`]: authenticate → resolve team
//! and credential → outbound safety → policy → approval → inject → forward →
//! scrub → audit.

pub mod agent_api;
pub mod agent_services;
pub mod agent_views;
pub mod approval;
pub mod clock;
pub mod config;
pub mod directory;
pub mod env_vars;
pub mod error;
pub mod http;
pub mod journal;
pub mod keyring;
pub mod mcp;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod proxy;
pub mod request_id;
pub mod retention;
pub mod server;
pub mod state;
pub mod telegram;
pub mod web;
