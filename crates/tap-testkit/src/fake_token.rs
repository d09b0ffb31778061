//! A fake OAuth 2 token endpoint on loopback (SPEC §6.3): records every
//! token request's form and answers from a script the test sets, so tests
//! can count token calls, see which refresh token was sent, rotate refresh
//! tokens, fail, or stall.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum TokenReply {
    /// 200 with `access_token`, `expires_in` and, when given, a rotated `refresh_token`.
    Grant {
        /// The access token.
        access_token: String,
        /// Seconds of validity.
        expires_in: u64,
        /// A new refresh token.
        refresh_token: Option<String>,
    },
    /// This status with an OAuth error body.
    Status(u16),
    /// Never answers (until the connection is dropped).
    Stall,
}

impl TokenReply {
    /// A grant without rotation.
    pub fn grant(access_token: &str, expires_in: u64) -> Self {
        Self::Grant {
            access_token: access_token.to_owned(),
            expires_in,
            refresh_token: None,
        }
    }
}

/// The decoded form of every token call, in order.
type Calls = Arc<Mutex<Vec<Vec<(String, String)>>>>;

#[derive(Default)]
struct Script {
    /// Answers used once each, in order, before `default`.
    queue: VecDeque<TokenReply>,
    default: Option<TokenReply>,
}

/// The fake endpoint. `url()` is `http://127.0.0.1:PORT/token`.
pub struct FakeTokenEndpoint {
    /// Address bound.
    pub addr: SocketAddr,
    calls: Calls,
    script: Arc<Mutex<Script>>,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeTokenEndpoint {
    /// Starts on 127.0.0.1 with a free port, answering `default` to every call.
    pub async fn start(default: TokenReply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls: Calls = Arc::default();
        let script = Arc::new(Mutex::new(Script {
            queue: VecDeque::new(),
            default: Some(default),
        }));
        let (gate, gate_rx) = watch::channel(true);
        let (c2, s2) = (Arc::clone(&calls), Arc::clone(&script));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (calls, script, gate) = (Arc::clone(&c2), Arc::clone(&s2), gate_rx.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        handle(req, Arc::clone(&calls), Arc::clone(&script), gate.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            calls,
            script,
            gate,
            task,
        }
    }

    /// The token URL.
    pub fn url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Answers `reply` to the next call (after earlier queued ones).
    pub fn then(&self, reply: TokenReply) {
        self.script.lock().unwrap().queue.push_back(reply);
    }

    /// Answers `reply` from now on (after queued ones).
    pub fn always(&self, reply: TokenReply) {
        self.script.lock().unwrap().default = Some(reply);
    }

    /// While closed, calls are recorded but their answers held back.
    pub fn hold(&self, closed: bool) {
        self.gate.send_replace(!closed);
    }

    /// Number of token calls received.
    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// The decoded form of every call, in order.
    pub fn calls(&self) -> Vec<Vec<(String, String)>> {
        self.calls.lock().unwrap().clone()
    }

    /// The value of `field` in call `i`.
    pub fn field(&self, i: usize, field: &str) -> Option<String> {
        self.calls
            .lock()
            .unwrap()
            .get(i)?
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.clone())
    }
}

async fn handle(
    req: Request<Incoming>,
    calls: Calls,
    script: Arc<Mutex<Script>>,
    mut gate: watch::Receiver<bool>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    calls.lock().unwrap().push(form);
    let reply = {
        let mut s = script.lock().unwrap();
        s.queue.pop_front().or_else(|| s.default.clone())
    };
    let _ = gate.wait_for(|open| *open).await;
    let json = |status: StatusCode, v: serde_json::Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap()
    };
    Ok(match reply {
        Some(TokenReply::Grant {
            access_token,
            expires_in,
            refresh_token,
        }) => {
            let mut v = serde_json::json!({
                "access_token": access_token,
                "expires_in": expires_in,
                "token_type": "Bearer",
            });
            if let Some(r) = refresh_token {
                v["refresh_token"] = r.into();
            }
            json(StatusCode::OK, v)
        }
        Some(TokenReply::Status(code)) => json(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            serde_json::json!({"error": "server_error"}),
        ),
        Some(TokenReply::Stall) | None => std::future::pending().await,
    })
}
