//! HTTP adapters over the admin service and the proxy, and the guards every
//! request passes: browser-origin and media-type checks, bounded body reads,
//! per-address abuse limits, connection bounds.

pub mod admin;
pub mod body;
pub mod connection;
pub mod csrf;
pub mod limiter;
