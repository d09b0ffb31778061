//! The agent's side: HTTP calls to a running proxy and the answers they get.

use std::time::Duration;

use http::HeaderMap;

use crate::tap::Served;

/// Bound on any one call to the proxy.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A loopback client that never follows redirects and ignores proxy settings.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CALL_TIMEOUT)
        .build()
        .unwrap()
}

/// Like [`http_client`], its connections leaving from `local`: any
/// 127.0.0.0/8 address reaches a proxy on 127.0.0.1, as another client
/// address (per-address limits tell them apart).
pub fn http_client_from(local: &str) -> reqwest::Client {
    let ip: std::net::IpAddr = local.parse().unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CALL_TIMEOUT)
        .local_address(ip)
        .build()
        .unwrap()
}

/// An answer of the proxy, fully read.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// Reads a whole answer.
    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap().to_vec();
        Self {
            status,
            headers,
            body,
        }
    }

    /// First value of a header, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Every value of a header, as text.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// `X-TAP-Request-Id`; panics when absent or empty.
    pub fn request_id(&self) -> String {
        let id = self
            .header("x-tap-request-id")
            .unwrap_or_else(|| panic!("no X-TAP-Request-Id (status {})", self.status));
        assert!(!id.is_empty(), "empty X-TAP-Request-Id");
        id
    }

    /// The `error_code` of a JSON error body, if any.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error_code"].as_str().map(str::to_owned))
    }

    /// Asserts a proxy-made refusal: `status`, `X-TAP-Error: code`, a JSON body
    /// `{"error", "error_code": code, "fix"}` and a request id. Returns the body.
    pub fn assert_refused(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(
            self.status,
            status,
            "expected {status} {code}, got {}: {}",
            self.status,
            self.text()
        );
        assert_eq!(
            self.header("x-tap-error").as_deref(),
            Some(code),
            "X-TAP-Error of {}",
            self.text()
        );
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "content-type {ct}");
        let v = self.json();
        assert_eq!(v["error_code"], code, "{v}");
        assert!(
            v["error"] == code && v["detail"].as_str().is_some_and(|s| !s.is_empty()),
            "error must carry the code and detail the sentence: {v}"
        );
        assert!(
            v["fix"].as_str().is_some_and(|s| !s.is_empty()),
            "no fix: {v}"
        );
        self.request_id();
        v
    }
}

/// A `POST /forward` being built.
pub struct Forward {
    req: reqwest::RequestBuilder,
}

impl Forward {
    /// `X-TAP-Credential`.
    pub fn credential(self, name: &str) -> Self {
        self.header("X-TAP-Credential", name)
    }

    /// `X-TAP-Target`.
    pub fn target(self, target: &str) -> Self {
        self.header("X-TAP-Target", target)
    }

    /// `X-TAP-Method`.
    pub fn method(self, method: &str) -> Self {
        self.header("X-TAP-Method", method)
    }

    /// Any header (appended, so a name may repeat).
    pub fn header(self, name: &str, value: &str) -> Self {
        Self {
            req: self.req.header(name, value),
        }
    }

    /// The request body.
    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        Self {
            req: self.req.body(body),
        }
    }

    /// Sends and reads the whole answer.
    pub async fn send(self) -> Reply {
        Reply::read(self.req.send().await.unwrap()).await
    }
}

impl Served {
    /// `POST /forward` with `X-TAP-Key: key`.
    pub fn forward(&self, key: &str) -> Forward {
        self.forward_without_key().header("X-TAP-Key", key)
    }

    /// `POST /forward` with no `X-TAP-Key`.
    pub fn forward_without_key(&self) -> Forward {
        Forward {
            req: http_client().post(format!("{}/forward", self.url)),
        }
    }

    /// `GET path`, with `X-TAP-Key` when `key` is given.
    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        let mut req = http_client().get(format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.header("X-TAP-Key", k);
        }
        Reply::read(req.send().await.unwrap()).await
    }

    /// Polls `GET /agent/approvals/{txn}` as `key` until the approval is
    /// final (`forwarded`, `denied`, `timed_out` or `error`; bounded: 150
    /// polls 100 ms apart); the poll body.
    pub async fn approval_outcome(&self, key: &str, txn: &str) -> serde_json::Value {
        let path = format!("/agent/approvals/{txn}");
        let last = crate::eventually(150, Duration::from_millis(100), || async {
            let r = self.get(&path, Some(key)).await;
            assert_eq!(r.status, 200, "poll of {txn}: {}", r.text());
            let v = r.json();
            (!matches!(v["status"].as_str(), Some("pending" | "approved"))).then_some(v)
        })
        .await;
        last.unwrap_or_else(|| panic!("approval {txn} never became final"))
    }

    /// `POST /login` as a member; the session token (panics unless 200).
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = http_client()
            .post(format!("{}/login", self.url))
            .header("Content-Type", "application/json")
            .body(serde_json::json!({"email": email, "password": password}).to_string())
            .send()
            .await
            .unwrap();
        let r = Reply::read(r).await;
        assert_eq!(r.status, 200, "login as {email}: {}", r.text());
        r.json()["session_token"].as_str().unwrap().to_owned()
    }

    /// `POST /login` as JSON through `client`, with `headers` added (say
    /// `X-Forwarded-For`): the answer as it came, whatever its status.
    pub async fn login_from(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = client
            .post(format!("{}/login", self.url))
            .header("Content-Type", "application/json")
            .body(serde_json::json!({"email": email, "password": password}).to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// `POST path` with a JSON body, as `Authorization: Bearer token` when
    /// one is given (a member's session) or anonymously.
    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Reply {
        let mut req = http_client()
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Reply::read(req.send().await.unwrap()).await
    }

    /// `GET path` with `Authorization: Bearer token`.
    pub async fn get_bearer(&self, path: &str, token: &str) -> Reply {
        let req = http_client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token);
        Reply::read(req.send().await.unwrap()).await
    }
}
