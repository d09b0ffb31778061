//! Upstream targets and where a secret may go (SPEC §3.1 row 4 and 8–10, §4 `allowed_hosts`, §8).
//!
//! A target is parsed exactly once, with the WHATWG URL rules of the `url`
//! crate, into a [`TargetUrl`]. Every later decision — the credential's host
//! binding ([`AllowedHosts`]), the private-address rule ([`is_private`],
//! [`OutboundRule`]) and DNS pins ([`ResolvePins`]) — looks at the host that
//! `url` reports, which is the host the proxy connects to. Inputs that the
//! WHATWG parser would silently repair (tabs, newlines, surrounding
//! whitespace, missing or extra slashes after the scheme, userinfo) are
//! refused instead, so that no other parser can read a different host out of
//! the same string.
//!
//! Nothing here performs I/O: no DNS, no sockets.

mod error;
mod host;
mod host_pattern;
mod outbound;
mod private;
#[cfg(test)]
mod tests;
mod url;

// `self::`: a bare `url` here would also name the `url` crate.
pub use self::url::{MAX_TARGET_BYTES, TargetUrl};
pub use error::TargetError;
pub use host_pattern::{AllowedHosts, HostPattern};
pub use outbound::{OutboundRule, PrivateAllowlist, ResolvePins};
pub use private::is_private;
