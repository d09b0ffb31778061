//! Rows 12–13: inject, forward, scrub the answer, finish the audit record.
//!
//! Small answers with a known length are scrubbed whole; everything else is
//! streamed through a [`ScrubStream`] whose memory is bounded by the longest
//! pattern, so a 1 GiB answer never sits in memory.

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, TRANSFER_ENCODING};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{BodyDataStream, BodyExt as _, Full};
use hyper::body::{Body as _, Incoming};
use tap_core::inject::{Injection, OutboundRequest, SignError};
use tap_core::scrub::{ScrubSecret, ScrubSink, ScrubStream, Scrubber};
use tap_core::secret::Secret;
use tap_core::target::TargetUrl;
use tap_core::time::Clock;
use url::form_urlencoded;
use zeroize::Zeroizing;

use super::audit::AuditDraft;
use super::destination::Resolved;
use super::refuse;
use crate::clock::elapsed_ms;
use crate::directory::CredentialEntry;
use crate::error::{ProxyError, Reason};
use crate::outbound::{UpstreamBody, idle_timeout, is_guard_refusal};
use crate::state::AppState;

/// Answers up to this size with a known `Content-Length` are scrubbed in one piece.
pub(crate) const WHOLE_BODY_LIMIT: u64 = 256 * 1024;

/// Response headers never passed back.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Input of the forward stage. Invariant: only built by `prepare` after every check and a proceed decision.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) method: String,
    pub(crate) resolved: Resolved,
}

fn build_request(state: &AppState, p: &Prepared) -> Result<Request<UpstreamBody>, ProxyError> {
    let r = &p.resolved;
    upstream_request(
        &p.method,
        &r.url,
        &r.headers,
        &r.injection,
        r.body.clone(),
        &*state.clock,
    )
}

/// The upstream request: the agent's forwarded headers, the injected secrets,
/// `Accept-Encoding: identity` (so the answer can be scrubbed) and the body.
/// A signed injection signs last, over the final method, URL and body. A
/// sidecar injection goes to the sidecar, with `X-TAP-Method` (SPEC §6.2).
pub(crate) fn upstream_request(
    method: &str,
    target: &TargetUrl,
    headers: &HeaderMap,
    injection: &Injection,
    body: Bytes,
    clock: &dyn Clock,
) -> Result<Request<UpstreamBody>, ProxyError> {
    let mut url = injection.via.as_ref().unwrap_or(target).url().clone();
    if !injection.query.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in &injection.query {
            q.append_pair(k, &query_text(v));
        }
    }
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| ProxyError::new(Reason::MethodNotAllowed, "method is not a valid token"))?;
    // The URL may hold an injected secret (query parameter): never in an error.
    let uri = Uri::try_from(url.as_str()).map_err(|_| {
        tracing::error!("upstream request could not be built: the URL is not a valid URI");
        ProxyError::new(Reason::Internal, "upstream request could not be built")
    })?;
    let signed = match &injection.signer {
        None => Vec::new(),
        Some(signer) => {
            let sent: Vec<(&str, &str)> = headers
                .iter()
                .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
                .collect();
            let out = OutboundRequest {
                method: method.as_str(),
                url: &url,
                content_type: headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
                headers: &sent,
                body: &body,
            };
            signer.sign(&out, clock).map_err(signing_failed)?
        }
    };
    let sidecar_method = injection
        .via
        .as_ref()
        .and_then(|_| HeaderValue::from_str(method.as_str()).ok());
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    *h = headers.clone();
    for (name, value) in injection.headers.iter().chain(&signed) {
        let (Ok(n), Ok(mut v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.expose()),
        ) else {
            return Err(ProxyError::new(
                Reason::InvalidHeader,
                format!("injected header {name} is not valid"),
            ));
        };
        v.set_sensitive(true);
        h.insert(n, v);
    }
    if let Some(m) = sidecar_method {
        h.insert(super::sidecar::METHOD_HEADER, m);
    }
    h.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    Ok(req)
}

/// A signature that failed at send time (the key set was checked when the
/// signer was built). Signer errors name fields, never values.
fn signing_failed(e: SignError) -> ProxyError {
    match e {
        SignError::ControlChar => ProxyError::new(
            Reason::InvalidHeader,
            "the signed header value contains a control character",
        ),
        SignError::FieldMissing(_)
        | SignError::Unsupported { .. }
        | SignError::Random
        | SignError::Failed => {
            tracing::error!(error = %e, "request could not be signed");
            ProxyError::new(Reason::Internal, "the request could not be signed")
        }
    }
}

/// The text an injected query value is written as before form encoding (a
/// value that is not UTF-8 is decoded lossily).
fn query_text(value: &Secret) -> Zeroizing<String> {
    Zeroizing::new(String::from_utf8_lossy(value.expose()).into_owned())
}

/// `scrubber` extended with the exact bytes [`upstream_request`] writes into
/// the query string for each injected parameter (the form-encoded value, as
/// `append_pair` encodes it), labelled `label`: the decoding scrubber finds
/// the form encoding of the secret itself, this also covers what it cannot
/// derive (a rendered format around the value, a lossily decoded non-UTF-8
/// value). Unchanged, without a rebuild, when nothing is injected in the query.
pub(crate) fn with_query_renderings(
    scrubber: Arc<Scrubber>,
    label: &str,
    injection: &Injection,
) -> Arc<Scrubber> {
    // Tokens minted for this request (SPEC §7): every variant, as `<label>.token`.
    let scrubber = if injection.minted.is_empty() {
        scrubber
    } else {
        let token_label = format!("{label}.token");
        Arc::new(
            scrubber.with_secrets(injection.minted.iter().map(|t| ScrubSecret {
                label: &token_label,
                value: t.expose(),
            })),
        )
    };
    if injection.query.is_empty() {
        return scrubber;
    }
    let rendered: Vec<Zeroizing<String>> = injection
        .query
        .iter()
        .map(|(_, v)| {
            Zeroizing::new(form_urlencoded::byte_serialize(query_text(v).as_bytes()).collect())
        })
        .collect();
    Arc::new(
        scrubber.with_renderings(rendered.iter().map(|r| ScrubSecret {
            label,
            value: r.as_bytes(),
        })),
    )
}

/// Maps a failed send to the agent's error. Neither hyper's errors nor their
/// sources carry the URL (which may hold an injected query-parameter secret).
pub(crate) fn send_error(e: hyper_util::client::legacy::Error, target: &str) -> ProxyError {
    if is_guard_refusal(&e) {
        return ProxyError::new(
            Reason::TargetNotAllowed,
            "destination resolves to a private or reserved address",
        );
    }
    let cause = std::error::Error::source(&e).map(ToString::to_string);
    tracing::warn!(error = %e, cause = cause.as_deref().unwrap_or("-"), "upstream request failed");
    let detail = match tls_problem(&e) {
        Some(TlsProblem::NotTls) => "the upstream does not speak TLS on this port (an https:// target on a plain-HTTP port?); nothing was forwarded: use http:// or the TLS port".to_owned(),
        Some(TlsProblem::Other(why)) => {
            format!("the TLS connection to the upstream failed ({why}); nothing was forwarded")
        }
        None if e.is_connect() => "the upstream request could not connect".to_owned(),
        None => "the upstream request failed".to_owned(),
    };
    ProxyError::new(Reason::UpstreamError, detail).with("target", target)
}

/// What went wrong in TLS, when that is why a send failed.
#[derive(Debug, PartialEq, Eq)]
enum TlsProblem {
    /// The peer answered with something that is not TLS (plain HTTP).
    NotTls,
    /// Certificate, protocol or handshake trouble (rustls' own words; they
    /// name no URL and no header).
    Other(String),
}

fn tls_problem(e: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(t) = tls {
            return Some(match t {
                rustls::Error::InvalidMessage(_) => TlsProblem::NotTls,
                other => TlsProblem::Other(other.to_string()),
            });
        }
        // The connector may hand the rustls error on as text only.
        let text = err.to_string();
        if text.contains("InvalidContentType") {
            return Some(TlsProblem::NotTls);
        }
        if text.contains("invalid peer certificate") {
            return Some(TlsProblem::Other(text));
        }
        cur = err.source();
    }
    None
}

/// The content coding of an upstream answer (SPEC §7). The proxy asks for
/// `identity`; an answer compressed anyway is decoded, scrubbed and returned
/// uncompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

/// An upstream answer whose content or transfer coding the scrubber cannot
/// read. Carries the header as the upstream sent it (trimmed), which the
/// refusal shows the agent; `?` when it is not visible ASCII. The upstream
/// chose that value and may echo an injected secret in it: it reaches the
/// agent only through the team scrubber, and is never logged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodingError {
    /// A content coding the proxy cannot decode.
    #[error("unsupported content encoding {0:?}")]
    Unsupported(String),
    /// More than one content coding applied on top of each other.
    #[error("stacked content encodings {0:?}")]
    Stacked(String),
    /// The `Content-Encoding` value is not visible ASCII.
    #[error("content encoding header is not visible ascii")]
    Unreadable,
    /// A `Transfer-Encoding` the proxy cannot undo: an unknown coding,
    /// `chunked` anywhere but last, more than one coding besides `chunked`,
    /// a transfer coding on top of a content coding, or a value that is not
    /// visible ASCII (`?`).
    #[error("unsupported transfer encoding {0:?}")]
    Transfer(String),
}

impl CodingError {
    /// The refused header value (`?` when unreadable).
    pub(crate) fn encoding(&self) -> &str {
        match self {
            Self::Unsupported(enc) | Self::Stacked(enc) | Self::Transfer(enc) => enc,
            Self::Unreadable => "?",
        }
    }

    /// The error body field naming the refused header's value.
    pub(crate) fn field(&self) -> &'static str {
        match self {
            Self::Unsupported(_) | Self::Stacked(_) | Self::Unreadable => "content_encoding",
            Self::Transfer(_) => "transfer_encoding",
        }
    }
}

/// The content coding named by `Content-Encoding` (unknown and stacked
/// codings are refused).
fn content_coding(headers: &HeaderMap) -> Result<Coding, CodingError> {
    let mut coding = Coding::Identity;
    for v in headers.get_all(CONTENT_ENCODING) {
        let raw = v.to_str().map_err(|_| CodingError::Unreadable)?;
        for part in raw.split(',').map(|p| p.trim().to_ascii_lowercase()) {
            let c = match part.as_str() {
                "" | "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "br" => Coding::Brotli,
                "zstd" => Coding::Zstd,
                _ => return Err(CodingError::Unsupported(raw.trim().to_owned())),
            };
            if coding != Coding::Identity {
                return Err(CodingError::Stacked(raw.trim().to_owned()));
            }
            coding = c;
        }
    }
    Ok(coding)
}

/// The transfer coding named by `Transfer-Encoding` besides `chunked`
/// (RFC 9112 §6.1), which the HTTP client undoes; `Identity` when none.
///
/// The client undoes `chunked` only when it is the last coding, and reads any
/// other `Transfer-Encoding` as a body delimited by the connection's close:
/// what it hands on is still coded. `gzip, chunked` is a content coding in
/// disguise; passed through, the scrubber would see compressed bytes only.
fn transfer_coding(headers: &HeaderMap) -> Result<Coding, CodingError> {
    let mut values = Vec::new();
    for v in headers.get_all(TRANSFER_ENCODING) {
        let raw = v
            .to_str()
            .map_err(|_| CodingError::Transfer("?".to_owned()))?;
        values.push(raw.trim());
    }
    let raw = values.join(", ");
    let refused = || CodingError::Transfer(raw.clone());
    let parts: Vec<String> = raw
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty() && p != "identity")
        .collect();
    let mut coding = Coding::Identity;
    for (i, part) in parts.iter().enumerate() {
        let c = match part.as_str() {
            "chunked" if i + 1 == parts.len() => continue,
            "gzip" | "x-gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            _ => return Err(refused()),
        };
        if coding != Coding::Identity {
            return Err(refused());
        }
        coding = c;
    }
    Ok(coding)
}

/// The coding the answer's body arrives in, content and transfer codings
/// together, or why the scrubber cannot read it. At most one coding is
/// undone: unknown codings, stacked content codings and a transfer coding on
/// top of a content coding are refused.
pub(crate) fn response_coding(headers: &HeaderMap) -> Result<Coding, CodingError> {
    let content = content_coding(headers)?;
    match transfer_coding(headers)? {
        Coding::Identity => Ok(content),
        _ if content != Coding::Identity => {
            let raw: Vec<&str> = headers
                .get_all(TRANSFER_ENCODING)
                .iter()
                .map(|v| v.to_str().unwrap_or("?").trim())
                .collect();
            Err(CodingError::Transfer(raw.join(", ")))
        }
        transfer => Ok(transfer),
    }
}

/// True when an answer to `method` with `status` has no body (RFC 9110
/// §6.4.1): its coding headers describe a body that is not there, so there
/// is nothing to decode. Such answers are returned without
/// `Content-Encoding`, like decoded ones.
pub(crate) fn has_no_body(method: &str, status: http::StatusCode) -> bool {
    method.eq_ignore_ascii_case("HEAD")
        || status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
}

/// The upstream body as plain bytes, decoded when compressed; fails when no
/// chunk arrives for `idle`. Errors never carry the URL (it may hold an
/// injected query-parameter secret).
pub(crate) fn decoded_stream(
    resp: http::Response<Incoming>,
    coding: Coding,
    idle: std::time::Duration,
) -> UpstreamStream {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
    use futures_util::TryStreamExt as _;
    use tokio_util::io::{ReaderStream, StreamReader};
    let raw = idle_timeout(
        BodyDataStream::new(resp.into_body()).map_err(std::io::Error::other),
        idle,
    );
    let raw = Box::pin(raw);
    match coding {
        Coding::Identity => Box::pin(raw),
        Coding::Gzip => Box::pin(ReaderStream::new(GzipDecoder::new(StreamReader::new(raw)))),
        Coding::Deflate => Box::pin(ReaderStream::new(ZlibDecoder::new(StreamReader::new(raw)))),
        Coding::Brotli => Box::pin(ReaderStream::new(BrotliDecoder::new(StreamReader::new(
            raw,
        )))),
        Coding::Zstd => Box::pin(ReaderStream::new(ZstdDecoder::new(StreamReader::new(raw)))),
    }
}

/// Copies upstream headers for the agent, scrubbed of `credential`'s secrets.
///
/// Dropped: hop-by-hop headers; every `X-TAP-*` header (those are the proxy's
/// own words: an upstream `X-TAP-Error` must not pass for a TAP refusal); and
/// any header whose name holds a secret (a name cannot carry the marker).
/// Values are scrubbed; a value that no longer forms a valid header after
/// scrubbing is dropped. Returns the headers and the number of redactions.
pub(crate) fn scrub_headers(
    upstream: &HeaderMap,
    scrubber: &Scrubber,
    credentials: &[&CredentialEntry],
) -> (HeaderMap, u64) {
    let mut out = HeaderMap::with_capacity(upstream.len());
    let mut hits = 0;
    for (name, value) in upstream {
        let key = name.as_str();
        if HOP_BY_HOP.contains(&key) || key.starts_with("x-tap-") {
            continue;
        }
        let in_name = scrubber.find(key.as_bytes()).is_some()
            || credentials
                .iter()
                .any(|c| c.header_name_scrubber().find(key.as_bytes()).is_some());
        if in_name {
            hits += 1;
            continue;
        }
        let (scrubbed, n) = scrubber.scrub(value.as_bytes());
        hits += n;
        if n == 0 {
            out.append(name.clone(), value.clone());
        } else if let Ok(v) = HeaderValue::from_bytes(&scrubbed) {
            out.append(name.clone(), v);
        }
    }
    (out, hits)
}

pub(crate) async fn forward(state: &AppState, p: Prepared, mut draft: AuditDraft) -> Response {
    let req = match build_request(state, &p) {
        Ok(r) => r,
        Err(e) => return refuse(e, draft).await,
    };
    let scrubber = with_query_renderings(
        p.resolved.scrubber(),
        &p.resolved.credential.name,
        &p.resolved.injection,
    );
    let scrubber = super::sidecar::with_signer_secret(scrubber, &p.resolved.injection);
    let display_target = p.resolved.url.as_str().to_owned();
    let upstream_started = Instant::now();
    let timeout = state.config.forward_timeout;
    let sent = tokio::time::timeout(timeout, state.upstream.send(req)).await;
    let resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return refuse(send_error(e, &display_target), draft).await,
        Err(_) => {
            let err = ProxyError::new(Reason::UpstreamError, "the upstream request timed out")
                .with("target", display_target);
            return refuse(err, draft).await;
        }
    };
    let status = resp.status();
    draft.record.upstream_status = Some(status.as_u16());
    let bodyless = has_no_body(&p.method, status);
    let coding = match response_coding(resp.headers()) {
        // Nothing to decode (and a decoder would fail on the empty body).
        _ if bodyless => Coding::Identity,
        Ok(c) => c,
        Err(e) => {
            draft.record.latency_upstream_ms = Some(elapsed_ms(upstream_started));
            return refuse(unscannable(e), draft).await;
        }
    };
    let used: Vec<&CredentialEntry> = p.resolved.credentials().map(|c| &**c).collect();
    let (mut headers, header_hits) = scrub_headers(resp.headers(), &scrubber, &used);
    if coding != Coding::Identity || bodyless {
        // Returned decoded: the coding header no longer describes the body.
        headers.remove(CONTENT_ENCODING);
    }
    let small = coding == Coding::Identity
        && resp
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= WHOLE_BODY_LIMIT);
    if small {
        let collected = tokio::time::timeout(timeout, resp.into_body().collect()).await;
        let bytes = match collected {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream body failed");
                let err = ProxyError::new(Reason::UpstreamError, "the upstream answer broke off")
                    .with("target", display_target);
                return refuse(err, draft).await;
            }
            Err(_) => {
                tracing::warn!("upstream body stalled");
                let err = ProxyError::new(Reason::UpstreamError, "the upstream answer broke off")
                    .with("target", display_target);
                return refuse(err, draft).await;
            }
        };
        draft.record.latency_upstream_ms = Some(elapsed_ms(upstream_started));
        let mut parts = Parts::new(bytes.clone());
        let hits = scrubber.scrub_into(&bytes, &mut parts);
        let body = parts.into_body();
        draft.record.response_scrubbed = hits + header_hits > 0;
        draft.finish(None);
        let mut response = (status, Body::from(body)).into_response();
        *response.headers_mut() = headers;
        return response;
    }
    let stream = ScrubbedBody {
        pending: VecDeque::new(),
        decoding: coding != Coding::Identity,
        inner: decoded_stream(resp, coding, timeout),
        scrub: scrubber.stream(),
        done: false,
        header_hits,
        upstream_started,
        draft: Some(draft),
    };
    let mut response = (status, Body::from_stream(stream)).into_response();
    *response.headers_mut() = headers;
    response
}

/// The refusal for an answer the scrubber cannot read (its body is scrubbed
/// by [`refuse`] like every refusal).
pub(crate) fn unscannable(e: CodingError) -> ProxyError {
    let what = match e {
        CodingError::Transfer(_) => "a transfer encoding",
        CodingError::Unsupported(_) | CodingError::Stacked(_) | CodingError::Unreadable => {
            "a content encoding"
        }
    };
    ProxyError::new(
        Reason::UnscannableResponse,
        format!("the upstream answered with {what} the proxy cannot scan; nothing was returned"),
    )
    .with(e.field(), e.encoding())
}

/// A plain (decoded) upstream body.
pub(crate) type UpstreamStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Scrubbed output of one upstream chunk: unchanged spans are slices of the
/// chunk (no copy), markers and held-back bytes are gathered in between.
struct Parts {
    chunk: Bytes,
    copied: Vec<u8>,
    out: VecDeque<Bytes>,
}

impl Parts {
    fn new(chunk: Bytes) -> Self {
        Self {
            chunk,
            copied: Vec::new(),
            out: VecDeque::new(),
        }
    }

    fn flush(&mut self) {
        if !self.copied.is_empty() {
            self.out
                .push_back(Bytes::from(std::mem::take(&mut self.copied)));
        }
    }

    /// Everything as one buffer (one slice of the chunk when nothing changed).
    fn into_body(mut self) -> Bytes {
        self.flush();
        if self.out.len() <= 1 {
            return self.out.pop_front().unwrap_or_default();
        }
        let mut all = Vec::with_capacity(self.out.iter().map(Bytes::len).sum());
        for b in &self.out {
            all.extend_from_slice(b);
        }
        Bytes::from(all)
    }
}

impl ScrubSink for Parts {
    fn bytes(&mut self, bytes: &[u8]) {
        self.copied.extend_from_slice(bytes);
    }

    fn span(&mut self, input: &[u8], range: Range<usize>) {
        // `input` is `self.chunk` (the caller scrubs the chunk it built `Parts`
        // with): the span is passed on as a slice of it.
        debug_assert!(std::ptr::eq(input, &self.chunk[..]));
        self.flush();
        self.out.push_back(self.chunk.slice(range));
    }
}

/// The streamed, scrubbed answer. Finishes the audit record when the body ends,
/// fails, or the agent goes away.
struct ScrubbedBody {
    /// Scrubbed output not yet handed to the server, in order.
    pending: VecDeque<Bytes>,
    inner: UpstreamStream,
    decoding: bool,
    scrub: ScrubStream,
    done: bool,
    header_hits: u64,
    upstream_started: Instant,
    draft: Option<AuditDraft>,
}

impl ScrubbedBody {
    fn finish(&mut self, error: Option<&str>) {
        if let Some(mut d) = self.draft.take() {
            d.record.latency_upstream_ms = Some(elapsed_ms(self.upstream_started));
            d.record.response_scrubbed = self.scrub.hits() + self.header_hits > 0;
            d.finish(error);
        }
    }
}

impl Stream for ScrubbedBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(part) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(part)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let mut parts = Parts::new(chunk.clone());
                    this.scrub.push(&chunk, &mut parts);
                    parts.flush();
                    this.pending = parts.out;
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "upstream body broke off");
                    this.done = true;
                    // Undecodable bytes are never sent: the response is aborted.
                    let code = if this.decoding {
                        "unscannable_response"
                    } else {
                        "upstream_error"
                    };
                    this.finish(Some(code));
                    // An error aborts the response: held-back bytes are never sent unscrubbed.
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "upstream body broke off",
                    ))));
                }
                Poll::Ready(None) => {
                    let mut out = Vec::new();
                    this.scrub.finish(&mut out);
                    this.done = true;
                    this.finish(None);
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Bytes::from(out))));
                }
            }
        }
    }
}

impl Drop for ScrubbedBody {
    fn drop(&mut self) {
        // The agent disconnected before the end.
        self.finish(Some("client_disconnected"));
    }
}

#[cfg(test)]
mod coding_tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CONTENT_ENCODING, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn refuses_unknown_and_stacked_codings_naming_the_header() {
        let e = response_coding(&headers(&["compress"])).unwrap_err();
        assert_eq!(e, CodingError::Unsupported("compress".into()));
        assert_eq!(e.encoding(), "compress");
        let e = response_coding(&headers(&["gzip, br"])).unwrap_err();
        assert_eq!(e.encoding(), "gzip, br");
        assert_eq!(e.to_string(), r#"stacked content encodings "gzip, br""#);
        let unreadable = HeaderValue::from_bytes(b"g\xffzip").unwrap();
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, unreadable);
        assert_eq!(response_coding(&h).unwrap_err().encoding(), "?");
    }

    fn with_transfer(te: &[&'static str], ce: &[&'static str]) -> HeaderMap {
        let mut h = headers(ce);
        for v in te {
            h.append(TRANSFER_ENCODING, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn undoes_one_transfer_coding_before_chunked() {
        let ok = |te: &[&'static str]| response_coding(&with_transfer(te, &[]));
        assert_eq!(ok(&["chunked"]), Ok(Coding::Identity));
        assert_eq!(ok(&["gzip, chunked"]), Ok(Coding::Gzip));
        assert_eq!(ok(&["GZIP", "Chunked"]), Ok(Coding::Gzip));
        assert_eq!(ok(&["x-gzip"]), Ok(Coding::Gzip));
        assert_eq!(ok(&["deflate, chunked"]), Ok(Coding::Deflate));
        assert_eq!(ok(&["identity, chunked"]), Ok(Coding::Identity));
    }

    #[test]
    fn refuses_transfer_codings_it_cannot_undo_naming_the_header() {
        for te in [
            "x-custom, chunked",
            "compress",
            "br, chunked",
            "chunked, gzip",
            "chunked, chunked",
            "gzip, deflate, chunked",
        ] {
            let e = response_coding(&with_transfer(&[te], &[])).unwrap_err();
            assert_eq!(e, CodingError::Transfer(te.into()), "{te}");
            assert_eq!(e.field(), "transfer_encoding");
        }
        // A transfer coding on top of a content coding.
        let e = response_coding(&with_transfer(&["gzip, chunked"], &["gzip"])).unwrap_err();
        assert_eq!(e, CodingError::Transfer("gzip, chunked".into()));
        // Plain chunked over a content coding is the usual case.
        assert_eq!(
            response_coding(&with_transfer(&["chunked"], &["br"])),
            Ok(Coding::Brotli)
        );
        let mut h = HeaderMap::new();
        h.insert(
            TRANSFER_ENCODING,
            HeaderValue::from_bytes(b"g\xffzip").unwrap(),
        );
        assert_eq!(response_coding(&h).unwrap_err().encoding(), "?");
        assert_eq!(
            response_coding(&headers(&["compress"]))
                .unwrap_err()
                .field(),
            "content_encoding"
        );
    }

    #[test]
    fn accepts_one_known_coding() {
        assert_eq!(response_coding(&headers(&[])), Ok(Coding::Identity));
        assert_eq!(
            response_coding(&headers(&["identity", "X-Gzip"])),
            Ok(Coding::Gzip)
        );
    }
}

#[cfg(test)]
mod query_rendering_tests {
    use super::*;

    #[test]
    fn the_query_rendering_written_to_the_url_is_scrubbed_exactly() {
        // Not UTF-8: the URL carries a lossy rendering the secret's own
        // encodings never produce.
        let value = b"k\xffy ~/+&=".to_vec();
        let injection = Injection {
            headers: Vec::new(),
            query: vec![("key".to_owned(), Secret::new(value.clone()))],
            signer: None,
            minted: Vec::new(),
            via: None,
        };
        let target = TargetUrl::parse("https://api.example.com/v1?a=1").unwrap();
        let clock = tap_core::time::ManualClock::new(0);
        let req = upstream_request(
            "GET",
            &target,
            &HeaderMap::new(),
            &injection,
            Bytes::new(),
            &clock,
        )
        .unwrap();
        let query = req.uri().query().unwrap().to_owned();
        let rendered = query.strip_prefix("a=1&key=").unwrap().to_owned();
        let base = Arc::new(Scrubber::new([ScrubSecret {
            label: "cred",
            value: &value,
        }]));
        let echoed = format!("{{\"echo\":\"{rendered}\"}}");
        assert_eq!(
            base.scrub(echoed.as_bytes()).1,
            0,
            "the base scrubber cannot derive the lossy rendering"
        );
        let s = with_query_renderings(Arc::clone(&base), "cred", &injection);
        assert_eq!(
            s.scrub(echoed.as_bytes()).0,
            b"{\"echo\":\"[REDACTED:cred]\"}"
        );
        // Nothing injected in the query: the same scrubber, not a rebuild.
        let none = with_query_renderings(Arc::clone(&base), "cred", &Injection::default());
        assert!(Arc::ptr_eq(&none, &base));
    }
}
