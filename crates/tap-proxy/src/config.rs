//! Proxy configuration, read once at start from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use tap_core::target::{HostPattern, OutboundRule, PrivateAllowlist, ResolvePins, TargetError};

use crate::http::forwarded::TrustedProxies;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3100";
/// Default upstream timeout.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// Default request body limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default life of a pending approval.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default time a synchronous request waits for a decision before answering 202.
/// Below the 30–60 s socket timeouts of public TAP clients, which send writes
/// without `Prefer` and expect a 202 (SPEC §3.3).
pub const DEFAULT_SYNC_WAIT: Duration = Duration::from_secs(20);
/// Default retention of approval results after the decision.
pub const DEFAULT_RESULT_RETENTION: Duration = Duration::from_secs(3600);

/// Default time a client has to send a whole request body (`TAP_BODY_TIMEOUT_SECS`).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a connection may stay open with no request in flight (`TAP_IDLE_TIMEOUT_SECS`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of client connections served at once (`TAP_MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How often the proxy checks the store for configuration changes (the 1 s revocation promise).
pub const RELOAD_INTERVAL: Duration = Duration::from_millis(200);

/// The public Telegram Bot API.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// A `TAP_*` variable the proxy cannot start with. Names the variable; echoes
/// only values that are addresses, numbers or outbound settings, never a token
/// or a URL.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not a socket address.
    #[error("{var} {value:?} is not an address like 127.0.0.1:3100")]
    NotAnAddress {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// Not a whole number of seconds.
    #[error("{var} {value:?} is not a number of seconds")]
    NotSeconds {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// Not a whole number of bytes.
    #[error("{var} {value:?} is not a number of bytes")]
    NotBytes {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// Not a positive whole number.
    #[error("{var} {value:?} is not a positive number")]
    NotACount {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// `TELEGRAM_MODE=webhook` without `TELEGRAM_WEBHOOK_SECRET`, or an unknown mode.
    #[error("{0}")]
    Telegram(&'static str),
    /// `TAP_WEBAUTHN_RP_ID` and `TAP_WEBAUTHN_ORIGIN` incomplete or inconsistent.
    #[error("{0}")]
    Webauthn(String),
    /// `TAP_TRUSTED_PROXIES` has an entry that is not an address or CIDR.
    #[error("{var} entry {entry} is not an IP address or CIDR like 10.0.0.0/8")]
    NotAProxy {
        /// The variable.
        var: &'static str,
        /// The entry (1-based).
        entry: usize,
    },
    /// `TAP_PRIVATE_ALLOWLIST` or `TAP_RESOLVE` did not parse.
    #[error("{var}: {source}")]
    Outbound {
        /// The variable.
        var: &'static str,
        /// Why (names the entry, not the whole value).
        source: TargetError,
    },
}

/// Bot API settings.
#[derive(Clone, Debug)]
pub struct TelegramConfig {
    /// API base.
    pub api_url: String,
    /// Bot token.
    pub token: Option<tap_core::secret::Secret>,
    /// Default chat.
    pub default_chat_id: Option<String>,
    /// `TELEGRAM_MODE=webhook`: updates arrive at `POST /telegram/webhook`
    /// instead of long polling.
    pub webhook: bool,
    /// `TELEGRAM_WEBHOOK_SECRET`: what Telegram sends in
    /// `X-Telegram-Bot-Api-Secret-Token`; webhook mode needs it.
    pub webhook_secret: Option<tap_core::secret::Secret>,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            api_url: DEFAULT_API_URL.to_owned(),
            token: None,
            default_chat_id: None,
            webhook: false,
            webhook_secret: None,
        }
    }
}

/// Sidecars (SPEC §6.2, §6.5): which may receive a credential value and the
/// secret the proxy authenticates itself to them with.
#[derive(Clone, Debug, Default)]
pub struct SidecarConfig {
    /// `TAP_TRUSTED_SIDECARS`: hosts besides loopback addresses that may
    /// receive `X-OAuth-Credential-Data` and `X-OAuth-Signer-Secret`
    /// (`allowed_hosts` syntax: without a scheme only `https` matches).
    pub trusted: Vec<HostPattern>,
    /// `TAP_SIGNER_SECRET`: sent to trusted sidecars in `X-OAuth-Signer-Secret`.
    pub signer_secret: Option<tap_core::secret::Secret>,
}

/// Everything the proxy reads from its environment.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Upstream timeout: connect plus response headers, and idle time between body chunks.
    pub forward_timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Private-destination rule.
    pub outbound: OutboundRule,
    /// `TAP_RESOLVE` pins.
    pub resolve: ResolvePins,
    /// `TAP_TRUSTED_SIDECARS` and `TAP_SIGNER_SECRET`.
    pub sidecars: SidecarConfig,
    /// `TAP_TRUSTED_PROXIES`: load balancers whose `X-Forwarded-For` names
    /// the client address the abuse limits and logs use (default: none).
    pub trusted_proxies: TrustedProxies,
    /// Public base URL for links.
    pub public_url: Option<String>,
    /// Configuration poll interval.
    pub reload_interval: Duration,
    /// Life of a pending approval (`TAP_APPROVAL_TIMEOUT_SECS`).
    pub approval_timeout: Duration,
    /// Synchronous wait before a 202 (`TAP_SYNC_APPROVAL_WAIT_SECS`).
    pub sync_wait: Duration,
    /// Retention of approval results after the decision (`TAP_RESULT_RETENTION_SECS`).
    pub result_retention: Duration,
    /// Days audit rows are kept (`TAP_AUDIT_RETENTION_DAYS`); 0 keeps them forever.
    pub audit_retention_days: u32,
    /// `TELEGRAM_BOT_TOKEN`, `TELEGRAM_API_URL`, `TELEGRAM_CHAT_ID`.
    pub telegram: TelegramConfig,
    /// `TAP_METRICS_PUBLIC`: `/metrics` without the admin bearer.
    pub metrics_public: bool,
    /// Time to receive a whole request body on any route (`TAP_BODY_TIMEOUT_SECS`).
    pub body_timeout: Duration,
    /// A connection with no request in flight for this long is closed (`TAP_IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// Connections served at once; more are refused (`TAP_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Passkeys: `TAP_WEBAUTHN_RP_ID` and `TAP_WEBAUTHN_ORIGIN`, both or neither.
    pub webauthn: Option<WebauthnConfig>,
    /// Several replicas may serve the store at once (PostgreSQL): agent rate
    /// limits are then counted in the store, not in this process.
    pub shared_store: bool,
    /// Token endpoint of OAuth 2 refresh bundles without `token_url`
    /// (`TAP_GOOGLE_TOKEN_URL`; Google's by default).
    pub google_token_url: String,
}

/// The WebAuthn relying party: its id (a domain) and the browser origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebauthnConfig {
    /// `TAP_WEBAUTHN_RP_ID`, e.g. `tap.example.com` (or `localhost`).
    pub rp_id: String,
    /// `TAP_WEBAUTHN_ORIGIN`, e.g. `https://tap.example.com`.
    pub origin: url::Url,
}

impl WebauthnConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let rp = get("TAP_WEBAUTHN_RP_ID").filter(|v| !v.trim().is_empty());
        let origin = get("TAP_WEBAUTHN_ORIGIN").filter(|v| !v.trim().is_empty());
        let (rp_id, origin) = match (rp, origin) {
            (None, None) => return Ok(None),
            (Some(r), Some(o)) => (r.trim().to_ascii_lowercase(), o.trim().to_owned()),
            _ => {
                return Err(ConfigError::Webauthn(
                    "passkeys need both TAP_WEBAUTHN_RP_ID and TAP_WEBAUTHN_ORIGIN".into(),
                ));
            }
        };
        let origin = url::Url::parse(&origin)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.path() == "/")
            .ok_or_else(|| {
                ConfigError::Webauthn(format!(
                    "TAP_WEBAUTHN_ORIGIN {origin:?} is not an origin like https://tap.example.com"
                ))
            })?;
        let host = origin.host_str().unwrap_or_default().to_ascii_lowercase();
        if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
            return Err(ConfigError::Webauthn(format!(
                "TAP_WEBAUTHN_ORIGIN's host {host} is not {rp_id} or a subdomain of it (TAP_WEBAUTHN_RP_ID)"
            )));
        }
        Ok(Some(Self { rp_id, origin }))
    }

    /// The origin as browsers send it in `Origin`.
    pub fn origin_header(&self) -> String {
        self.origin.origin().ascii_serialization()
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 3100))),
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            outbound: OutboundRule::default(),
            resolve: ResolvePins::default(),
            sidecars: SidecarConfig::default(),
            trusted_proxies: TrustedProxies::default(),
            public_url: None,
            reload_interval: RELOAD_INTERVAL,
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            sync_wait: DEFAULT_SYNC_WAIT,
            result_retention: DEFAULT_RESULT_RETENTION,
            audit_retention_days: 0,
            telegram: TelegramConfig::default(),
            metrics_public: false,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            webauthn: None,
            shared_store: false,
            google_token_url: tap_core::inject::GOOGLE_TOKEN_URL.to_owned(),
        }
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl ProxyConfig {
    /// Where humans and agents reach this proxy: `TAP_PUBLIC_URL`, else the
    /// listen address; without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The browser origins allowed to send state-changing requests: the
    /// origin of `TAP_PUBLIC_URL` and that of the listen address (plus
    /// `localhost` when it is a loopback address). Lower-case, no trailing slash,
    /// default ports left out, as browsers send them in `Origin`.
    pub fn allowed_origins(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(u) = &self.public_url
            && let Ok(u) = url::Url::parse(u.trim())
            && let url::Origin::Tuple(..) = u.origin()
        {
            out.push(u.origin().ascii_serialization());
        }
        if let Some(w) = &self.webauthn {
            out.push(w.origin_header());
        }
        out.push(format!("http://{}", self.listen));
        if self.listen.ip().is_loopback() {
            out.push(format!("http://localhost:{}", self.listen.port()));
        }
        out
    }

    /// Whether browsers reach this proxy over TLS (`TAP_PUBLIC_URL` is https):
    /// the session cookie is then marked `Secure`.
    pub fn serves_https(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| {
            u.trim()
                .get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        })
    }

    /// The approval page link.
    pub fn approval_url(&self, txn_id: &str) -> String {
        format!("{}/approve/{txn_id}", self.public_base())
    }

    /// Reads `TAP_*` variables through `get` (the process environment in production).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        if let Some(v) = get("TAP_LISTEN_ADDR") {
            c.listen = v.trim().parse().map_err(|_| ConfigError::NotAnAddress {
                var: "TAP_LISTEN_ADDR",
                value: v.clone(),
            })?;
        }
        let secs = |var: &'static str| -> Result<Option<Duration>, ConfigError> {
            get(var)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(Duration::from_secs)
                        .map_err(|_| ConfigError::NotSeconds { var, value: v })
                })
                .transpose()
        };
        if let Some(d) = secs("TAP_FORWARD_TIMEOUT_SECS")? {
            c.forward_timeout = d.max(Duration::from_secs(1));
        }
        if let Some(v) = get("TAP_MAX_BODY_BYTES") {
            c.max_body_bytes = v.trim().parse().map_err(|_| ConfigError::NotBytes {
                var: "TAP_MAX_BODY_BYTES",
                value: v.clone(),
            })?;
        }
        if let Some(v) = get("TAP_ALLOW_PRIVATE_TARGETS") {
            c.outbound.allow_all_private = truthy(&v);
        }
        if let Some(v) = get("TAP_PRIVATE_ALLOWLIST") {
            c.outbound.allowlist =
                PrivateAllowlist::parse(&v).map_err(|source| ConfigError::Outbound {
                    var: "TAP_PRIVATE_ALLOWLIST",
                    source,
                })?;
        }
        if let Some(v) = get("TAP_RESOLVE") {
            c.resolve = ResolvePins::parse(&v).map_err(|source| ConfigError::Outbound {
                var: "TAP_RESOLVE",
                source,
            })?;
        }
        if let Some(v) = get("TAP_TRUSTED_SIDECARS") {
            for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let p = HostPattern::parse(entry).map_err(|source| ConfigError::Outbound {
                    var: "TAP_TRUSTED_SIDECARS",
                    source,
                })?;
                c.sidecars.trusted.push(p);
            }
        }
        if let Some(v) = get("TAP_TRUSTED_PROXIES") {
            c.trusted_proxies =
                TrustedProxies::parse(&v).map_err(|entry| ConfigError::NotAProxy {
                    var: "TAP_TRUSTED_PROXIES",
                    entry,
                })?;
        }
        c.sidecars.signer_secret = get("TAP_SIGNER_SECRET")
            .filter(|s| !s.trim().is_empty())
            .map(|s| tap_core::secret::Secret::new(s.trim().as_bytes().to_vec()));
        if let Some(d) = secs("TAP_APPROVAL_TIMEOUT_SECS")? {
            c.approval_timeout = d.max(Duration::from_secs(1));
        }
        if let Some(d) = secs("TAP_SYNC_APPROVAL_WAIT_SECS")? {
            c.sync_wait = d;
        }
        if let Some(d) = secs("TAP_RESULT_RETENTION_SECS")? {
            c.result_retention = d;
        }
        if let Some(v) = get("TAP_AUDIT_RETENTION_DAYS") {
            c.audit_retention_days =
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| ConfigError::NotACount {
                        var: "TAP_AUDIT_RETENTION_DAYS",
                        value: v.clone(),
                    })?;
        }
        if let Some(d) = secs("TAP_BODY_TIMEOUT_SECS")? {
            c.body_timeout = d.max(Duration::from_secs(1));
        }
        if let Some(d) = secs("TAP_IDLE_TIMEOUT_SECS")? {
            c.idle_timeout = d.max(Duration::from_secs(1));
        }
        if let Some(v) = get("TAP_MAX_CONNECTIONS") {
            c.max_connections = v.trim().parse::<usize>().ok().filter(|n| *n > 0).ok_or(
                ConfigError::NotACount {
                    var: "TAP_MAX_CONNECTIONS",
                    value: v.clone(),
                },
            )?;
        }
        if let Some(t) = get("TELEGRAM_BOT_TOKEN").filter(|t| !t.trim().is_empty()) {
            c.telegram.token = Some(tap_core::secret::Secret::new(t.trim().as_bytes().to_vec()));
        }
        if let Some(u) = get("TELEGRAM_API_URL").filter(|u| !u.trim().is_empty()) {
            c.telegram.api_url = u.trim().to_owned();
        }
        c.telegram.default_chat_id = get("TELEGRAM_CHAT_ID").filter(|c| !c.trim().is_empty());
        c.telegram.webhook_secret = get("TELEGRAM_WEBHOOK_SECRET")
            .filter(|s| !s.trim().is_empty())
            .map(|s| tap_core::secret::Secret::new(s.trim().as_bytes().to_vec()));
        c.telegram.webhook = match get("TELEGRAM_MODE").as_deref().map(str::trim) {
            None | Some("" | "polling") => false,
            Some("webhook") if c.telegram.webhook_secret.is_some() => true,
            Some("webhook") => {
                return Err(ConfigError::Telegram(
                    "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET (Telegram sends it in X-Telegram-Bot-Api-Secret-Token)",
                ));
            }
            Some(_) => {
                return Err(ConfigError::Telegram(
                    "TELEGRAM_MODE must be polling or webhook",
                ));
            }
        };
        if let Some(u) = get("TAP_GOOGLE_TOKEN_URL").filter(|u| !u.trim().is_empty()) {
            c.google_token_url = u.trim().to_owned();
        }
        c.public_url = get("TAP_PUBLIC_URL").filter(|s| !s.trim().is_empty());
        c.metrics_public = get("TAP_METRICS_PUBLIC").is_some_and(|v| truthy(&v));
        c.webauthn = WebauthnConfig::from_lookup(&get)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(var: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k| (k == var).then(|| value.to_owned())
    }

    #[test]
    fn allowed_origins_are_the_public_url_and_the_listen_address() {
        let mut c = ProxyConfig {
            listen: "127.0.0.1:4000".parse().unwrap(),
            ..ProxyConfig::default()
        };
        assert_eq!(
            c.allowed_origins(),
            ["http://127.0.0.1:4000", "http://localhost:4000"]
        );
        assert!(!c.serves_https());
        c.public_url = Some("HTTPS://Tap.Example.com:443/base/".into());
        assert_eq!(c.allowed_origins()[0], "https://tap.example.com");
        assert!(c.serves_https());
    }

    #[test]
    fn config_errors_name_the_variable_and_the_problem() {
        let msg = |var, value| {
            ProxyConfig::from_lookup(lookup(var, value))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            msg("TAP_LISTEN_ADDR", "nowhere"),
            r#"TAP_LISTEN_ADDR "nowhere" is not an address like 127.0.0.1:3100"#
        );
        assert_eq!(
            msg("TAP_FORWARD_TIMEOUT_SECS", "soon"),
            r#"TAP_FORWARD_TIMEOUT_SECS "soon" is not a number of seconds"#
        );
        assert_eq!(
            msg("TAP_SYNC_APPROVAL_WAIT_SECS", "-1"),
            r#"TAP_SYNC_APPROVAL_WAIT_SECS "-1" is not a number of seconds"#
        );
        assert_eq!(
            msg("TAP_MAX_BODY_BYTES", "10MB"),
            r#"TAP_MAX_BODY_BYTES "10MB" is not a number of bytes"#
        );
        assert_eq!(
            msg("TAP_TRUSTED_PROXIES", "10.0.0.1, lb.internal"),
            "TAP_TRUSTED_PROXIES entry 2 is not an IP address or CIDR like 10.0.0.0/8"
        );
        assert_eq!(
            msg("TAP_MAX_CONNECTIONS", "0"),
            r#"TAP_MAX_CONNECTIONS "0" is not a positive number"#
        );
        assert_eq!(
            msg("TAP_BODY_TIMEOUT_SECS", "1m"),
            r#"TAP_BODY_TIMEOUT_SECS "1m" is not a number of seconds"#
        );
        assert!(msg("TAP_RESOLVE", "nonsense").starts_with("TAP_RESOLVE: "));
        assert_eq!(
            msg("TAP_WEBAUTHN_RP_ID", "tap.example.com"),
            "passkeys need both TAP_WEBAUTHN_RP_ID and TAP_WEBAUTHN_ORIGIN"
        );
        assert!(msg("TAP_PRIVATE_ALLOWLIST", "10.0.0.0/99").starts_with("TAP_PRIVATE_ALLOWLIST: "));
    }

    #[test]
    fn webauthn_needs_an_origin_on_the_relying_party_domain() {
        let both = |rp: &'static str, origin: &'static str| {
            ProxyConfig::from_lookup(move |k| match k {
                "TAP_WEBAUTHN_RP_ID" => Some(rp.to_owned()),
                "TAP_WEBAUTHN_ORIGIN" => Some(origin.to_owned()),
                _ => None,
            })
        };
        let c = both("example.com", "https://tap.example.com").unwrap();
        let w = c.webauthn.clone().unwrap();
        assert_eq!(w.rp_id, "example.com");
        assert!(
            c.allowed_origins()
                .contains(&"https://tap.example.com".to_owned())
        );
        assert!(both("example.com", "https://evil.com").is_err());
        assert!(both("example.com", "https://notexample.com").is_err());
        assert!(both("localhost", "http://localhost:3100").is_ok());
        assert!(both("localhost", "not a url").is_err());
        assert!(
            ProxyConfig::from_lookup(|_| None)
                .unwrap()
                .webauthn
                .is_none()
        );
    }
}
