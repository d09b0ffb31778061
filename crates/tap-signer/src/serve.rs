//! `tap-signer serve`: the standalone OAuth 1.0a signer sidecar of SPEC §6.5.
//!
//! The proxy sends a request with `X-OAuth-Credential`, `X-OAuth-Target`,
//! `X-TAP-Method`, `X-OAuth-Signer-Secret` and (optionally)
//! `X-OAuth-Credential-Data`. The signer checks the shared secret in constant
//! time, checks the target against its own `TAP_SIGNER_ALLOWED_HOSTS` and the
//! private-address rule, signs the request (RFC 5849) with the key set from
//! the data header or its own environment, forwards it to `X-OAuth-Target`
//! only, and streams the answer back. It never forwards `X-OAuth-*` or
//! `X-TAP-*` upstream, and never follows redirects.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use subtle::ConstantTimeEq as _;
use tap_core::inject::{OutboundRequest, SignedShape};
use tap_core::secret::{CredentialValue, Secret};
use tap_core::target::{AllowedHosts, HostPattern, OutboundRule, TargetUrl};
use tap_core::time::SystemClock;

mod net;

pub use net::Upstream;

/// Default listen address (loopback: the proxy is the only caller).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";
/// Default upstream timeout (connect, answer head, and each body chunk).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body accepted from the proxy.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Prefix of credentials held in the signer's own environment:
/// `TAP_SIGNER_CREDENTIAL_<NAME>` holds a JSON key set for `X-OAuth-Credential: name`
/// (upper-cased, `-` as `_`).
pub const CREDENTIAL_ENV_PREFIX: &str = "TAP_SIGNER_CREDENTIAL_";

/// Headers never forwarded upstream as received.
const STRIPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
];

/// Answer headers never passed back.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A setting the signer cannot start with. Never echoes a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `TAP_SIGNER_SECRET` is missing or empty.
    #[error("TAP_SIGNER_SECRET must be set: the proxy authenticates with it")]
    NoSecret,
    /// `TAP_SIGNER_ALLOWED_HOSTS` is missing or empty.
    #[error(
        "TAP_SIGNER_ALLOWED_HOSTS must list the upstream hosts the signer may reach (e.g. api.x.com)"
    )]
    NoHosts,
    /// A variable does not parse.
    #[error("{var}: {why}")]
    Invalid {
        /// The variable.
        var: String,
        /// Why (never the value of a secret variable).
        why: String,
    },
}

/// Everything `tap-signer serve` reads from its environment.
#[derive(Debug)]
pub struct SignerConfig {
    /// `TAP_SIGNER_SECRET`.
    pub secret: Secret,
    /// `TAP_SIGNER_ALLOWED_HOSTS`: where signed requests may go.
    pub allowed_hosts: AllowedHosts,
    /// `TAP_SIGNER_ALLOW_PRIVATE_TARGETS`: private upstream addresses allowed
    /// (an exact IP literal in the allowed hosts is allowed anyway).
    pub outbound: OutboundRule,
    /// `TAP_SIGNER_TIMEOUT_SECS`.
    pub timeout: Duration,
    /// Key sets by credential name (lower-case), from `TAP_SIGNER_CREDENTIAL_*`.
    pub credentials: HashMap<String, CredentialValue>,
}

impl SignerConfig {
    /// Reads the environment through `vars` (name, value pairs).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut secret = None;
        let mut hosts = Vec::new();
        let mut allow_private = false;
        let mut timeout = DEFAULT_TIMEOUT;
        let mut credentials = HashMap::new();
        for (k, v) in vars {
            match k.as_str() {
                "TAP_SIGNER_SECRET" => {
                    secret = Some(v.trim().as_bytes().to_vec()).filter(|s| !s.is_empty());
                }
                "TAP_SIGNER_ALLOWED_HOSTS" => {
                    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                        hosts.push(HostPattern::parse(entry).map_err(|e| {
                            ConfigError::Invalid {
                                var: k.clone(),
                                why: format!("{entry:?}: {e}"),
                            }
                        })?);
                    }
                }
                "TAP_SIGNER_ALLOW_PRIVATE_TARGETS" => {
                    allow_private = matches!(
                        v.trim().to_ascii_lowercase().as_str(),
                        "1" | "true" | "yes" | "on"
                    );
                }
                "TAP_SIGNER_TIMEOUT_SECS" => {
                    let secs: u64 = v.trim().parse().map_err(|_| ConfigError::Invalid {
                        var: k.clone(),
                        why: format!("{v:?} is not a number of seconds"),
                    })?;
                    timeout = Duration::from_secs(secs.max(1));
                }
                _ => {
                    if let Some(name) = k.strip_prefix(CREDENTIAL_ENV_PREFIX) {
                        let value = CredentialValue::parse(v.as_bytes())
                            .ok()
                            .filter(|c| SignedShape::of(c) == Some(SignedShape::OAuth1))
                            .ok_or_else(|| ConfigError::Invalid {
                                var: k.clone(),
                                why: "not an OAuth 1.0a key set (consumer_key, consumer_secret, access_token, access_token_secret)".into(),
                            })?;
                        credentials.insert(name.to_ascii_lowercase().replace('_', "-"), value);
                    }
                }
            }
        }
        let secret = Secret::new(secret.ok_or(ConfigError::NoSecret)?);
        if hosts.is_empty() {
            return Err(ConfigError::NoHosts);
        }
        let outbound = OutboundRule {
            allow_all_private: allow_private,
            ..OutboundRule::default()
        };
        Ok(Self {
            secret,
            allowed_hosts: AllowedHosts::List(hosts),
            outbound,
            timeout,
            credentials,
        })
    }
}

/// The answer body: the upstream's, streamed, or the signer's own JSON.
pub type AnswerBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The running service's state.
#[derive(Debug)]
pub struct Service {
    config: SignerConfig,
    upstream: Upstream,
}

impl Service {
    /// A service for `config`, sending through `upstream`.
    pub fn new(config: SignerConfig, upstream: Upstream) -> Self {
        Self { config, upstream }
    }

    /// Handles one request from the proxy. Never panics on input.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<AnswerBody> {
        let (parts, body) = req.into_parts();
        match self.prepare(&parts.method, &parts.headers, body).await {
            Ok(out) => self.send(out).await,
            Err(e) => e.into_response(),
        }
    }

    async fn prepare(
        &self,
        method: &Method,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Request<Full<Bytes>>, Refusal> {
        if !secret_matches(&self.config.secret, headers.get("x-oauth-signer-secret")) {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong X-OAuth-Signer-Secret",
                "Set the same TAP_SIGNER_SECRET on the proxy and the signer.",
            ));
        }
        let name = text(headers, "x-oauth-credential")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("missing_credential", "X-OAuth-Credential is missing"))?;
        let raw_target = text(headers, "x-oauth-target")
            .ok_or_else(|| bad("missing_target", "X-OAuth-Target is missing"))?;
        let target = TargetUrl::parse(raw_target).map_err(|e| {
            bad(
                "invalid_target",
                &format!("X-OAuth-Target is not usable: {e}"),
            )
        })?;
        if !self.config.allowed_hosts.matches(&target) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                &format!(
                    "host {} is not in TAP_SIGNER_ALLOWED_HOSTS",
                    target.host_str()
                ),
                "List the upstream host in the signer's TAP_SIGNER_ALLOWED_HOSTS.",
            ));
        }
        if let Some(ip) = target.ip()
            && !self
                .config
                .outbound
                .permits(target.host_str(), ip, &self.config.allowed_hosts)
        {
            return Err(not_allowed(target.host_str()));
        }
        let method = match text(headers, "x-tap-method").filter(|m| !m.is_empty()) {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| bad("method_not_allowed", "X-TAP-Method is not a method"))?,
            None => method.clone(),
        };
        if method == Method::TRACE || method == Method::CONNECT {
            return Err(bad("method_not_allowed", "TRACE and CONNECT are refused"));
        }
        let value = self.key_set(name, headers)?;
        let signer = crate::signer_for(SignedShape::OAuth1, &value, target.url())
            .map_err(|e| bad("credential_field_missing", &e.to_string()))?;
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|_| {
                Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is too large or broke off",
                    "Send a smaller body.",
                )
            })?
            .to_bytes();
        let mut fwd = forwarded(headers);
        let sent: Vec<(&str, &str)> = fwd
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
            .collect();
        let out = OutboundRequest {
            method: method.as_str(),
            url: target.url(),
            content_type: headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            headers: &sent,
            body: &body,
        };
        let signed = signer
            .sign(&out, &SystemClock)
            .map_err(|e| bad("signing_failed", &e.to_string()))?;
        for (n, v) in signed {
            let (Ok(n), Ok(mut v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_bytes(v.expose()),
            ) else {
                return Err(bad("invalid_header", "a signed header is not valid"));
            };
            v.set_sensitive(true);
            fwd.insert(n, v);
        }
        let uri = Uri::try_from(target.as_str())
            .map_err(|_| bad("invalid_target", "X-OAuth-Target is not a valid URI"))?;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = fwd;
        Ok(req)
    }

    /// The key set: `X-OAuth-Credential-Data` when the proxy sent one, else
    /// the signer's own `TAP_SIGNER_CREDENTIAL_<NAME>`.
    fn key_set(&self, name: &str, headers: &HeaderMap) -> Result<CredentialValue, Refusal> {
        if let Some(data) = headers.get("x-oauth-credential-data") {
            let value = CredentialValue::parse(data.as_bytes())
                .ok()
                .filter(|v| SignedShape::of(v) == Some(SignedShape::OAuth1))
                .ok_or_else(|| {
                    bad(
                        "credential_field_missing",
                        "X-OAuth-Credential-Data is not an OAuth 1.0a key set",
                    )
                })?;
            return Ok(value);
        }
        self.config
            .credentials
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::NOT_FOUND,
                    "credential_not_found",
                    &format!("the signer holds no credential {name}"),
                    "Set TAP_SIGNER_CREDENTIAL_<NAME> on the signer or a value on the proxy's credential.",
                )
            })
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Response<AnswerBody> {
        let host = req.uri().host().unwrap_or_default().to_owned();
        let sent = tokio::time::timeout(self.config.timeout, self.upstream.send(req)).await;
        let resp = match sent {
            Ok(Ok(r)) => r,
            Ok(Err(e)) if net::is_refusal(&e) => return not_allowed(&host).into_response(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream request failed");
                return Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "the upstream request failed",
                    "Retry later or check the target.",
                )
                .into_response();
            }
            Err(_) => {
                return Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "the upstream request timed out",
                    "Retry later or check the target.",
                )
                .into_response();
            }
        };
        let (mut parts, body) = resp.into_parts();
        for h in HOP_BY_HOP {
            parts.headers.remove(*h);
        }
        let idle = self.config.timeout;
        let body = net::idle_bounded(body, idle);
        Response::from_parts(parts, body)
    }
}

/// Constant-time comparison of the presented secret (length is not hidden).
pub fn secret_matches(expected: &Secret, presented: Option<&HeaderValue>) -> bool {
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.expose())))
}

/// The proxy's headers minus hop-by-hop ones, `Authorization` (the signature
/// replaces it) and every `X-OAuth-*` and `X-TAP-*` control header.
pub fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (n, v) in headers {
        let ns = n.as_str();
        if ns.starts_with("x-oauth-") || ns.starts_with("x-tap-") || STRIPPED.contains(&ns) {
            continue;
        }
        out.append(n.clone(), v.clone());
    }
    // Never inherited from the hop: hyper sets them for the upstream.
    out.remove(HOST);
    out.remove(CONTENT_LENGTH);
    out
}

fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A refusal: status and the one error body of SPEC §3.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    detail: String,
    fix: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, detail: &str, fix: &'static str) -> Self {
        Self {
            status,
            code,
            detail: detail.to_owned(),
            fix,
        }
    }

    fn into_response(self) -> Response<AnswerBody> {
        let body = serde_json::json!({
            "error": self.code,
            "error_code": self.code,
            "detail": self.detail,
            "fix": self.fix,
        });
        let mut r = Response::new(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never: Infallible| match never {})
                .boxed(),
        );
        *r.status_mut() = self.status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r.headers_mut()
            .insert("x-tap-signer-error", HeaderValue::from_static(self.code));
        r
    }
}

fn bad(code: &'static str, detail: &str) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        code,
        detail,
        "Send requests to the signer through the TAP proxy (a sidecar credential).",
    )
}

fn not_allowed(host: &str) -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "target_not_allowed",
        &format!("destination {host} is a private or reserved address"),
        "Set TAP_SIGNER_ALLOW_PRIVATE_TARGETS=true or name the exact IP in TAP_SIGNER_ALLOWED_HOSTS.",
    )
}

/// True when `ip` may be reached under `rule` (for names resolved by [`Upstream`]).
fn permitted(rule: &OutboundRule, host: &str, ip: IpAddr) -> bool {
    rule.permits(host, ip, &AllowedHosts::List(Vec::new()))
}

/// Serves on `listener` until the process ends: one task per connection,
/// HTTP/1.1, each connection's requests handled by `service`.
pub async fn run(listener: tokio::net::TcpListener, service: Arc<Service>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let service = Arc::clone(&service);
                async move { Ok::<_, Infallible>(service.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// The address to listen on from `--listen` or `TAP_SIGNER_LISTEN_ADDR`.
pub fn listen_addr(raw: Option<&str>) -> Result<SocketAddr, ConfigError> {
    raw.unwrap_or(DEFAULT_LISTEN)
        .trim()
        .parse()
        .map_err(|_| ConfigError::Invalid {
            var: "TAP_SIGNER_LISTEN_ADDR".into(),
            why: "not an address like 127.0.0.1:8090".into(),
        })
}

#[cfg(test)]
mod tests;
