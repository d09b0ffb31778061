//! The signer's upstream client: resolves each name once, keeps only
//! addresses the private-address rule permits and connects to those (no
//! rebinding window), no redirects, no proxies from the environment.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use tap_core::target::OutboundRule;

use super::AnswerBody;

/// Bound on one DNS lookup.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// A name whose addresses are all refused, or that does not resolve.
#[derive(Debug, thiserror::Error)]
pub(super) enum DnsRefusal {
    /// Every address is private and not allowed.
    #[error("destination {0} resolves only to private or reserved addresses")]
    Private(String),
    /// DNS failed.
    #[error("could not resolve {0}")]
    Unresolvable(String),
}

#[derive(Clone, Debug)]
struct GuardedDns(OutboundRule);

impl tower_service::Service<Name> for GuardedDns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = DnsRefusal;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DnsRefusal>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DnsRefusal>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let rule = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
            let found = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((&*host, 0)))
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| DnsRefusal::Unresolvable(host.clone()))?;
            let ok: Vec<SocketAddr> = found
                .filter(|a| super::permitted(&rule, &host, a.ip()))
                .collect();
            if ok.is_empty() {
                return Err(DnsRefusal::Private(host));
            }
            Ok(ok.into_iter())
        })
    }
}

/// The one upstream client of the signer.
#[derive(Clone)]
pub struct Upstream {
    inner: Client<HttpsConnector<HttpConnector<GuardedDns>>, Full<Bytes>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upstream")
    }
}

impl Upstream {
    /// A client applying `rule` to every resolved name; fails when the TLS
    /// trust store cannot be loaded.
    pub fn new(rule: OutboundRule, connect_timeout: Duration) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new_with_resolver(GuardedDns(rule));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .try_with_platform_verifier()?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { inner })
    }

    /// Sends `req` and waits for the answer's head.
    pub async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        self.inner.request(req).await
    }
}

/// True when the send failed because the guard refused every address.
pub(super) fn is_refusal(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(DnsRefusal::Private(_)) = e.downcast_ref::<DnsRefusal>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The upstream body, streamed, failing when no chunk arrives for `idle`.
pub(super) fn idle_bounded(body: Incoming, idle: Duration) -> AnswerBody {
    let frames = futures_util::stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => Some((Ok(frame), Some(body))),
            Ok(Some(Err(e))) => Some((Err(Box::new(e) as BoxError), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the upstream answer stalled",
                )) as BoxError),
                None,
            )),
        }
    });
    BodyExt::boxed(StreamBody::new(frames))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
