//! HTTP adapters over the admin service and the proxy.

pub mod admin;
