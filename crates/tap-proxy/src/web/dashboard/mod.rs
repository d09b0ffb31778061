//! The dashboard: the team's audit trail and the proxy's status in the browser.

pub mod audit;
pub mod status;
