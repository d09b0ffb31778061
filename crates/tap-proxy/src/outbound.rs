//! Outbound safety (SPEC §8): the guarded resolver and the one upstream client.
//!
//! Names are resolved once by [`GuardedResolver`], every address is checked by
//! the private-address rule, and the client connects only to the vetted
//! addresses: the resolver the client uses *is* the check, so there is no
//! rebinding window between check and connect.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use tap_core::target::{AllowedHosts, OutboundRule, ResolvePins};

use crate::config::ProxyConfig;

/// Bound on one DNS lookup.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle pooled upstream connections kept per host.
pub const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// A destination the rule refuses. Never carries a secret.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// Every address of the host is private and not allowed.
    #[error("destination {host} resolves only to private or reserved addresses")]
    Refused {
        /// The host.
        host: String,
    },
    /// DNS failed.
    #[error("could not resolve {host}")]
    Unresolvable {
        /// The host.
        host: String,
    },
}

/// The upstream clients could not be built. Never carries a URL.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The platform's TLS trust store could not be loaded.
    #[error("cannot load the TLS trust store: {0}")]
    TrustStore(#[source] rustls::Error),
    /// The HTTP client for the Bot API could not be built.
    #[error("cannot build the upstream client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Resolves names with `TAP_RESOLVE` pins and the system resolver, keeping only permitted addresses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    rule: OutboundRule,
    pins: ResolvePins,
}

impl GuardedResolver {
    /// A resolver for the configured rule and pins.
    pub fn new(rule: OutboundRule, pins: ResolvePins) -> Self {
        Self { rule, pins }
    }

    /// The rule.
    pub fn rule(&self) -> &OutboundRule {
        &self.rule
    }

    /// Permitted socket addresses of `host` (a name, not an IP literal).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
        let candidates: Vec<IpAddr> = if let Some(ip) = self.pins.get(host) {
            vec![ip]
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            vec![ip]
        } else {
            let lookup =
                tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port))).await;
            match lookup {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                _ => {
                    return Err(GuardError::Unresolvable {
                        host: host.to_owned(),
                    });
                }
            }
        };
        if candidates.is_empty() {
            return Err(GuardError::Unresolvable {
                host: host.to_owned(),
            });
        }
        // Names never get the per-credential IP-literal exception.
        let none = AllowedHosts::List(Vec::new());
        let permitted: Vec<SocketAddr> = candidates
            .into_iter()
            .filter(|ip| self.rule.permits(host, *ip, &none))
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        if permitted.is_empty() {
            return Err(GuardError::Refused {
                host: host.to_owned(),
            });
        }
        Ok(permitted)
    }
}

struct ClientResolver(Arc<GuardedResolver>);

impl reqwest::dns::Resolve for ClientResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let r = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
            // Port 0: the client substitutes the URL's port.
            let addrs = r
                .resolve(&host, 0)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// True when `err` (or its sources) is a guard refusal from the connect-time resolver.
pub fn is_guard_refusal(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(GuardError::Refused { .. }) = e.downcast_ref::<GuardError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The guarded resolver as the upstream connector's DNS service.
#[derive(Clone)]
struct GuardedDns(Arc<GuardedResolver>);

impl tower_service::Service<Name> for GuardedDns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = GuardError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, GuardError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), GuardError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let r = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
            // Port 0: the connector substitutes the URL's port.
            r.resolve(&host, 0).await.map(Vec::into_iter)
        })
    }
}

/// Body of an upstream request: read whole before forwarding.
pub type UpstreamBody = Full<Bytes>;

/// The client that forwards agents' requests (hyper's pooled client, HTTP/1.1
/// and HTTP/2 by ALPN, rustls with the platform verifier): no redirects, no
/// proxies from the environment, the guarded resolver, a connect timeout and
/// bounded read buffers. Callers bound the wait for the answer's head and the
/// idle time between body chunks ([`idle_timeout`]).
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Client<HttpsConnector<HttpConnector<GuardedDns>>, UpstreamBody>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamClient")
    }
}

/// Largest read buffer per upstream connection: bounds what one streamed
/// answer holds in memory between the upstream socket and the agent's.
pub const UPSTREAM_READ_BUFFER: usize = 64 * 1024;

impl UpstreamClient {
    /// Builds the client; fails when the TLS trust store cannot be loaded.
    pub fn new(
        config: &ProxyConfig,
        resolver: Arc<GuardedResolver>,
    ) -> Result<Self, OutboundError> {
        let mut http = HttpConnector::new_with_resolver(GuardedDns(resolver));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.forward_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(OutboundError::TrustStore)?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .http1_max_buf_size(UPSTREAM_READ_BUFFER)
            .build(https);
        Ok(Self { inner })
    }

    /// Sends `req` and waits for the answer's head.
    pub async fn send(
        &self,
        req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        self.inner.request(req).await
    }
}

/// An answer body that fails with `TimedOut` when no chunk arrives for `idle`.
pub fn idle_timeout<S>(
    inner: S,
    idle: Duration,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send
where
    S: futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
{
    let state = (inner, Box::pin(tokio::time::sleep(idle)), false);
    futures_util::stream::unfold(state, move |(mut inner, mut timer, done)| async move {
        if done {
            return None;
        }
        tokio::select! {
            biased;
            next = futures_util::StreamExt::next(&mut inner) => {
                let next = next?;
                timer.as_mut().reset(tokio::time::Instant::now() + idle);
                Some((next, (inner, timer, false)))
            }
            () = timer.as_mut() => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the upstream answer stalled",
                )),
                (inner, timer, true),
            )),
        }
    })
}

/// The client for everything else (Telegram's Bot API): no redirects, no
/// proxies from the environment, guarded resolver, connect and idle-read
/// timeouts, pooled connections.
pub fn upstream_client(
    config: &ProxyConfig,
    resolver: Arc<GuardedResolver>,
) -> Result<reqwest::Client, OutboundError> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(ClientResolver(resolver)))
        .connect_timeout(config.forward_timeout)
        .read_timeout(config.forward_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| OutboundError::Client(e.without_url()))
}
