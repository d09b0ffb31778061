//! [`TargetError`]: the one error of the target module, shared by the url
//! parser, `allowed_hosts` patterns and the outbound settings.

/// Why a target, an `allowed_hosts` entry or an outbound-safety setting was
/// refused. Messages are lower-case and never contain the rejected input
/// beyond a short, harmless fragment (a scheme name or a reason).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// The target was empty.
    #[error("target is missing")]
    Missing,
    /// The target was longer than [`MAX_TARGET_BYTES`].
    ///
    /// [`MAX_TARGET_BYTES`]: super::MAX_TARGET_BYTES
    #[error("target is longer than 8192 bytes")]
    TooLong,
    /// The target starts or ends with whitespace.
    #[error("target has leading or trailing whitespace")]
    Whitespace,
    /// The target contains a tab, CR, LF, NUL or another control character
    /// (WHATWG would silently drop some of them; TAP refuses).
    #[error("target contains a control character")]
    ControlCharacter,
    /// The `url` crate refused the target; carries its reason, not the input.
    #[error("target is not a valid url: {0}")]
    Unparseable(String),
    /// The scheme is not `http` or `https`. Carries the scheme only when it is
    /// short and alphabetic, else `other`.
    #[error("unsupported scheme {0:?}: only http and https targets are allowed")]
    UnsupportedScheme(String),
    /// The target has userinfo (`user:pw@`, or even a bare `@`) before the host.
    #[error(
        "target contains userinfo (`user@`); credentials are injected by tap, never taken from the url"
    )]
    UserInfo,
    /// The target has no host, or an empty one.
    #[error("target has no host")]
    NoHost,
    /// The target is a relative reference (`/path`, `host/path`) or
    /// scheme-relative (`//host/path`).
    #[error("target is relative; an absolute http:// or https:// url is required")]
    Relative,
    /// The target is absolute but spelled in a way parsers disagree on, such
    /// as `http:host`, `http:/host`, `http:///host` or `http:\\host`.
    #[error("ambiguous target: {0}")]
    Ambiguous(&'static str),
    /// The host is not a plain DNS name after IDNA normalisation (only
    /// `a-z`, `0-9`, `-`, `_` in non-empty labels), nor an IP literal.
    #[error("target host is not valid: {0}")]
    InvalidHost(&'static str),
    /// The port is 0.
    #[error("target port is not valid")]
    InvalidPort,
    /// A `relative_target` path does not start with exactly one `/`.
    #[error("relative target must be a path starting with a single '/'")]
    NotAPath,
    /// A `relative_target` path contains a `..` segment, literally or
    /// percent-encoded (`%2e%2e` in any case).
    #[error("relative target contains a '..' segment")]
    PathTraversal,
    /// An `allowed_hosts` entry is not `[http://|https://]host[:port]` or `*.suffix`.
    #[error("invalid allowed_hosts entry: {0}")]
    InvalidHostPattern(&'static str),
    /// An entry of `TAP_PRIVATE_ALLOWLIST` is neither a host nor an IP/CIDR.
    #[error("invalid TAP_PRIVATE_ALLOWLIST entry {entry}: {reason}")]
    InvalidAllowlist {
        /// 1-based position of the entry in the comma-separated list.
        entry: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry of `TAP_RESOLVE` is not `host=ip`.
    #[error("invalid TAP_RESOLVE entry {entry}: {reason}")]
    InvalidResolvePin {
        /// 1-based position of the entry in the comma-separated list.
        entry: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}
