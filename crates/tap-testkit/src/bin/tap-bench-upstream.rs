//! `tap-bench-upstream`: the fast local upstream of the benchmark (`bench/run.sh`).
//!
//! HTTP/1.1 with keep-alive on 127.0.0.1 only. Routes:
//! - `/small`: a 217-byte JSON object (`content-length` set)
//! - `/big`: 1 MiB of JSON-ish text (`content-length` set, one shared buffer)
//! - `/stream?mib=N`: N MiB (default 1024) in 64 KiB chunks without a length
//! - `/auth`: `{"authorization":"<the Authorization header>"}`, for the preflight
//!   that checks a proxy injected the credential (and, for TAP, scrubbed it back)
//! - anything else: 404
//!
//! Usage: `tap-bench-upstream [--listen 127.0.0.1:PORT] [--threads N] [--addr-file PATH]`.
//! Prints `listening on http://ADDR` once bound; `--addr-file` also gets `ADDR`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Size of the `/big` body.
const BIG_BYTES: usize = 1 << 20;
/// Chunk size of `/stream`.
const STREAM_CHUNK: usize = 64 * 1024;
/// Default size of `/stream`, in MiB.
const STREAM_DEFAULT_MIB: usize = 1024;
/// Largest `/stream` accepted, in MiB (bounds a typo).
const STREAM_MAX_MIB: usize = 16 * 1024;

/// The `/small` body: a typical small API answer, exactly 217 bytes.
const SMALL_BODY: &str = concat!(
    r#"{"ok":true,"id":"evt_01HZX8Q2W7K3M9N4P5R6S7T8V9","#,
    r#""type":"message.created","created":1718000000,"#,
    r#""channel":"C024BE91L","user":"U2147483697","#,
    r#""text":"Hello from the bench upstream","#,
    r#""reactions":[],"pinned":false,"score":1}"#
);

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

struct Bodies {
    small: Bytes,
    big: Bytes,
    chunk: Bytes,
}

fn big_body() -> Bytes {
    // Repeating JSON-like records: realistic for the scrubber's prefilter,
    // with no secret in it so every proxy returns it unchanged.
    let record = br#"{"id":12345,"name":"item","tags":["alpha","beta"],"value":3.14159},"#;
    let mut v = Vec::with_capacity(BIG_BYTES);
    while v.len() < BIG_BYTES {
        let n = record.len().min(BIG_BYTES - v.len());
        v.extend_from_slice(&record[..n]);
    }
    Bytes::from(v)
}

fn fixed(status: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed());
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn stream_mib(uri: &http::Uri) -> usize {
    uri.query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("mib=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(STREAM_DEFAULT_MIB)
        .min(STREAM_MAX_MIB)
}

fn handle(req: &Request<Incoming>, bodies: &Bodies) -> Response<Body> {
    match req.uri().path() {
        "/small" => fixed(StatusCode::OK, "application/json", bodies.small.clone()),
        "/big" => fixed(StatusCode::OK, "application/json", bodies.big.clone()),
        "/stream" => {
            let chunks = stream_mib(req.uri()) * (1 << 20) / STREAM_CHUNK;
            let chunk = bodies.chunk.clone();
            let body = StreamBody::new(stream::iter(
                (0..chunks).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
            ));
            let mut resp = Response::new(BodyExt::boxed(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/octet-stream"),
            );
            resp
        }
        "/auth" => {
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            let body = serde_json::json!({ "authorization": auth }).to_string();
            fixed(StatusCode::OK, "application/json", Bytes::from(body))
        }
        _ => fixed(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        ),
    }
}

struct Options {
    listen: SocketAddr,
    threads: usize,
    addr_file: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads: 1,
        addr_file: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => {
                let v = value()?;
                o.listen = v
                    .parse()
                    .map_err(|_| format!("--listen {v:?}: not an address"))?;
            }
            "--threads" => {
                let v = value()?;
                o.threads = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("--threads {v:?}: not a positive number"))?;
            }
            "--addr-file" => o.addr_file = Some(value()?),
            "-h" | "--help" => {
                return Err(
                    "usage: tap-bench-upstream [--listen 127.0.0.1:PORT] [--threads N] [--addr-file PATH]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if !o.listen.ip().is_loopback() {
        return Err(format!("--listen {}: loopback addresses only", o.listen));
    }
    Ok(o)
}

async fn serve(o: Options) -> Result<(), String> {
    let listener = TcpListener::bind(o.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", o.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(path) = &o.addr_file {
        std::fs::write(path, format!("{addr}\n")).map_err(|e| format!("{path}: {e}"))?;
    }
    println!("listening on http://{addr}");
    let bodies = std::sync::Arc::new(Bodies {
        small: Bytes::from_static(SMALL_BODY.as_bytes()),
        big: big_body(),
        chunk: Bytes::from(vec![b'x'; STREAM_CHUNK]),
    });
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let bodies = std::sync::Arc::clone(&bodies);
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let resp = handle(&req, &bodies);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tap-bench-upstream: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = if o.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tap-bench-upstream: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tap-bench-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_body_is_217_bytes_of_json() {
        assert_eq!(SMALL_BODY.len(), 217);
        let v: serde_json::Value = serde_json::from_str(SMALL_BODY).unwrap();
        assert_eq!(v["ok"], true);
    }

    #[test]
    fn big_body_is_one_mebibyte() {
        assert_eq!(big_body().len(), BIG_BYTES);
    }
}
