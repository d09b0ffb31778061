//! A fake upstream API on 127.0.0.1 that records what it receives.
//!
//! Routes:
//! - `/echo...`: 200 JSON echoing the `Authorization` header (body and `X-Echo` header) and the request
//! - `/reflect`: 200 JSON holding the injected token (see below) in several encodings, and
//!   `X-Reflect` / `X-Reflect-B64` headers holding it exact and base64-encoded
//! - `/big?bytes=N&secret=S`: N bytes streamed in 1000-byte chunks with S placed across chunk boundaries
//! - `/redirect?to=URL`: 302 with that `Location`
//! - `/gzip`: a body claiming `Content-Encoding: gzip`
//! - `/status/N`: that status, empty body
//! - `/slow`: answers after 5 s
//! - `/stall`: 200 and a first chunk at once, then nothing for 30 s (no length)
//! - a path given to [`FakeUpstream::answer`]: 200 with that body (an API
//!   that knows secrets the agent never holds, such as an OAuth consumer secret)
//! - anything else: 200 `{"ok":true}`
//!
//! The injected token is the `Authorization` value after its scheme word
//! (`Bearer S` gives `S`), else the `X-Api-Key` value. In the `secret` of
//! `/big` and the `to` of `/redirect`, the text `$auth` is replaced by it, so a
//! test can have the upstream reflect a secret the agent never holds.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers (lower-case names) in order.
    pub headers: Vec<(String, String)>,
    /// HTTP version, as `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).into_iter().next()
    }
}

/// The running fake.
#[derive(Clone)]
pub struct FakeUpstream {
    /// Address bound.
    pub addr: SocketAddr,
    /// Serves HTTPS with `fixtures/server.pem` (see [`FakeUpstream::start_tls`]).
    tls: bool,
    seen: Arc<Mutex<Vec<Recorded>>>,
    canned: Canned,
    task: Arc<tokio::task::JoinHandle<()>>,
}

/// Bodies answered for exact paths (see [`FakeUpstream::answer`]).
type Canned = Arc<Mutex<HashMap<String, Vec<u8>>>>;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, headers: &[(&str, String)], body: impl Into<Bytes>) -> Response<Body> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Full::new(body.into()).boxed()).unwrap()
}

fn query_param(uri: &http::Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

/// The secret the proxy injected: the `Authorization` value after its scheme, else `X-Api-Key`.
fn injected_token(rec: &Recorded) -> String {
    match rec.header("authorization") {
        Some(a) => a
            .split_once(' ')
            .map_or(a.clone(), |(_, t)| t.trim().to_owned()),
        None => rec.header("x-api-key").unwrap_or_default(),
    }
}

/// Every byte outside RFC 3986 unreserved as `%XX`.
fn percent_encode(s: &str, upper: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// Compresses with the named content coding.
pub(crate) async fn encode(coding: &str, plain: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
    use tokio::io::AsyncReadExt as _;
    let mut out = Vec::new();
    match coding {
        "gzip" => GzipEncoder::new(plain).read_to_end(&mut out).await,
        "deflate" => ZlibEncoder::new(plain).read_to_end(&mut out).await,
        "br" => BrotliEncoder::new(plain).read_to_end(&mut out).await,
        "zstd" => ZstdEncoder::new(plain).read_to_end(&mut out).await,
        _ => {
            out.extend_from_slice(plain);
            Ok(plain.len())
        }
    }
    .unwrap();
    out
}

async fn handle(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Recorded>>>,
    canned: Canned,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    let rec = Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
    };
    seen.lock().unwrap().push(rec.clone());
    let path = parts.uri.path();
    let auth = rec.header("authorization").unwrap_or_default();
    let answer = canned.lock().unwrap().get(path).cloned();
    let resp = if let Some(body) = answer {
        full(
            StatusCode::OK,
            &[("content-type", "application/json".into())],
            body,
        )
    } else if path.starts_with("/echo") {
        let json = serde_json::json!({
            "authorization": auth,
            "method": rec.method,
            "uri": rec.uri,
            "headers": rec.headers,
            "body": String::from_utf8_lossy(&body),
        });
        full(
            StatusCode::OK,
            &[
                ("content-type", "application/json".into()),
                ("x-echo", auth.clone()),
            ],
            json.to_string(),
        )
    } else if path == "/reflect" {
        let t = injected_token(&rec);
        let json = serde_json::json!({
            "exact": t,
            "b64": STANDARD.encode(&t),
            "b64_unpadded": STANDARD_NO_PAD.encode(&t),
            "b64url": URL_SAFE.encode(&t),
            "b64url_unpadded": URL_SAFE_NO_PAD.encode(&t),
            "pct_upper": percent_encode(&t, true),
            "pct_lower": percent_encode(&t, false),
            "in_basic": STANDARD.encode(format!("someone:{t}")),
        });
        full(
            StatusCode::OK,
            &[
                ("content-type", "application/json".into()),
                ("x-reflect", t.clone()),
                ("x-reflect-b64", STANDARD.encode(&t)),
            ],
            json.to_string(),
        )
    } else if path == "/big" {
        let n: usize = query_param(&parts.uri, "bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 20);
        let secret = query_param(&parts.uri, "secret")
            .unwrap_or_default()
            .replace("$auth", &injected_token(&rec))
            .into_bytes();
        let mut data = vec![b'x'; n];
        // Place the secret so that it straddles many 1000-byte chunk boundaries.
        if !secret.is_empty() && n > secret.len() * 2 {
            let mut pos = 1000 - secret.len() / 2;
            while pos + secret.len() < n {
                data[pos..pos + secret.len()].copy_from_slice(&secret);
                pos += 100_000;
            }
        }
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = data
            .chunks(1000)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/octet-stream")
            .body(BodyExt::boxed(StreamBody::new(stream::iter(chunks))))
            .unwrap()
    } else if path == "/redirect" {
        let to = query_param(&parts.uri, "to")
            .unwrap_or_else(|| "http://example.invalid/".into())
            .replace("$auth", &injected_token(&rec));
        full(StatusCode::FOUND, &[("location", to)], "")
    } else if path == "/gzip" {
        // Claims gzip but is not: the proxy must abort, never pass bytes it could not scan.
        full(
            StatusCode::OK,
            &[("content-encoding", "gzip".into())],
            vec![0x1f, 0x8b, 0, 0],
        )
    } else if path == "/compress" {
        full(
            StatusCode::OK,
            &[("content-encoding", "compress".into())],
            "not really compressed",
        )
    } else if path == "/coded" {
        // `?c=gzip|deflate|br|zstd`: JSON reflecting the Authorization header, compressed.
        let coding = query_param(&parts.uri, "c").unwrap_or_else(|| "gzip".into());
        let plain =
            serde_json::json!({"authorization": auth, "padding": "x".repeat(2000)}).to_string();
        let body = encode(&coding, plain.as_bytes()).await;
        full(
            StatusCode::OK,
            &[
                ("content-encoding", coding),
                ("content-type", "application/json".into()),
            ],
            body,
        )
    } else if let Some(code) = path.strip_prefix("/status/") {
        let s = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::OK);
        full(s, &[], "")
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
        full(StatusCode::OK, &[], "slow")
    } else if path == "/stall" {
        // The head and a first chunk at once, then nothing for 30 s.
        let first = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(
            b"partial-",
        )))]);
        let late = stream::once(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Frame::data(Bytes::from_static(b"late")))
        });
        Response::builder()
            .status(StatusCode::OK)
            .body(BodyExt::boxed(StreamBody::new(
                futures_util::StreamExt::chain(first, late),
            )))
            .unwrap()
    } else {
        full(
            StatusCode::OK,
            &[("content-type", "application/json".into())],
            "{\"ok\":true}",
        )
    };
    Ok(resp)
}

/// The test CA that signed `server.pem` (PEM): point `SSL_CERT_FILE` at a
/// copy of it to make TAP trust [`FakeUpstream::start_tls`]. The fixtures are
/// test-only, valid until 2126, for `IP:127.0.0.1` and `DNS:localhost`.
pub const TEST_CA_PEM: &str = include_str!("../fixtures/ca.pem");
/// A CA that signed nothing this upstream serves (PEM): trusting only it,
/// TAP must refuse the upstream's certificate.
pub const OTHER_CA_PEM: &str = include_str!("../fixtures/other-ca.pem");
const SERVER_CERT_PEM: &str = include_str!("../fixtures/server.pem");
const SERVER_KEY_PEM: &str = include_str!("../fixtures/server.key");

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(SERVER_CERT_PEM.as_bytes())
            .collect::<Result<_, _>>()
            .expect("fixture certificate");
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM.as_bytes()).expect("fixture key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("fixture certificate and key");
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

impl FakeUpstream {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts an HTTPS upstream on 127.0.0.1 (HTTP/2 or HTTP/1.1 by ALPN) with the fixture
    /// certificate signed by [`TEST_CA_PEM`]; a client that does not trust
    /// that CA fails the handshake and no request is recorded.
    pub async fn start_tls() -> Self {
        Self::start_with(Some(tls_acceptor())).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = Arc::clone(&seen);
        let canned: Canned = Arc::default();
        let c2 = Arc::clone(&canned);
        let is_tls = tls.is_some();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&s2);
                let canned = Arc::clone(&c2);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc =
                        service_fn(move |req| handle(req, Arc::clone(&seen), Arc::clone(&canned)));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                        Some(acceptor) => {
                            // A failed handshake (an untrusting client) just ends the connection.
                            let Ok(Ok(stream)) =
                                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                                    .await
                            else {
                                return;
                            };
                            // HTTP/2 or HTTP/1.1, as the client chose by ALPN.
                            let _ = hyper_util::server::conn::auto::Builder::new(
                                hyper_util::rt::TokioExecutor::new(),
                            )
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            tls: is_tls,
            seen,
            canned,
            task: Arc::new(task),
        }
    }

    /// From now on, answers `path` (exactly, query ignored) with 200 and `body`.
    pub fn answer(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.canned
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.into());
    }

    /// `http://127.0.0.1:PORT`, or `https://` for [`FakeUpstream::start_tls`].
    pub fn base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    /// Number of requests received.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}
