//! Cross-site request forgery guards (THREATS §N, §P).
//!
//! A browser attaches the session cookie to any request a foreign page makes
//! it send, so:
//! - `/team/...` never reads the cookie: bearer tokens only (see
//!   [`crate::web::bearer_member`]); a browser cannot add `Authorization` to a
//!   cross-site request without a CORS preflight TAP never grants.
//! - A state-changing `/team` request with a body must say
//!   `Content-Type: application/json` (else 415 `unsupported_media_type`): the
//!   bodies an HTML form can send (`text/plain`, form-encoded, multipart) are
//!   refused before any handler runs. A bodiless request needs no type.
//! - A state-changing request to `/team`, `/login`, `/logout` or the web pages
//!   (`/approve/...`, `/passkeys...`, `/dashboard...`) carrying an `Origin` must come from
//!   this proxy's own origin (`TAP_PUBLIC_URL`, or the listen address), else
//!   403 `origin_not_allowed`; without `Origin`, `Sec-Fetch-Site: cross-site`
//!   is refused the same way. The web forms also carry their per-session CSRF
//!   token.

use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};

use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// Paths a browser is expected on; agents' routes (`/forward`, `/agent/...`) are not guarded.
const BROWSER_PREFIXES: &[&str] = &[
    "/team",
    "/login",
    "/logout",
    "/approve/",
    "/passkeys",
    "/dashboard",
];

fn state_changing(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_admin(path: &str) -> bool {
    path == "/team" || path.starts_with("/team/")
}

fn guarded(path: &str) -> bool {
    BROWSER_PREFIXES.iter().any(|p| {
        path.starts_with(p)
            && (p.ends_with('/') || path.len() == p.len() || path[p.len()..].starts_with('/'))
    })
}

/// `Ok` when the request carries no `Origin` or one of `allowed` (and,
/// without `Origin`, is not marked `Sec-Fetch-Site: cross-site`).
pub(crate) fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ProxyError> {
    match headers.get(header::ORIGIN) {
        Some(v) => {
            let origin = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
            if allowed.contains(&origin) {
                Ok(())
            } else {
                Err(ProxyError::new(
                    Reason::OriginNotAllowed,
                    "requests that change state must come from this proxy's own pages",
                )
                .with("origin", origin.chars().take(200).collect::<String>()))
            }
        }
        None => {
            let cross_site = headers
                .get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
            if cross_site {
                Err(ProxyError::new(
                    Reason::OriginNotAllowed,
                    "requests that change state must come from this proxy's own pages",
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// `Ok` when the media type is `application/json` (parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// The checks, before any handler: `Err` holds the refusal.
pub(crate) fn check(state: &AppState, req: &Request) -> Result<(), ProxyError> {
    let path = req.uri().path();
    if !state_changing(req.method()) || !guarded(path) {
        return Ok(());
    }
    if let Err(e) = check_origin(req.headers(), &state.config.allowed_origins()) {
        tracing::info!(path = %path, "cross-origin request refused");
        return Err(e);
    }
    let has_body = !req.body().is_end_stream() || req.headers().contains_key(header::CONTENT_TYPE);
    if is_admin(path) && has_body && !is_json(req.headers()) {
        return Err(ProxyError::new(
            Reason::UnsupportedMediaType,
            "admin requests that change state take a JSON body with Content-Type: application/json",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn guards_browser_paths_only() {
        for p in [
            "/team",
            "/team/credentials",
            "/login",
            "/logout",
            "/approve/abc/approve",
            "/passkeys/register/begin",
            "/dashboard/credentials",
        ] {
            assert!(guarded(p), "{p}");
        }
        for p in [
            "/forward",
            "/agent/services",
            "/teams",
            "/loginx",
            "/dashboards",
            "/health",
        ] {
            assert!(!guarded(p), "{p}");
        }
    }

    #[test]
    fn origin_must_be_ours_when_present() {
        let ours = vec!["http://127.0.0.1:3100".to_owned()];
        assert!(check_origin(&headers(&[]), &ours).is_ok());
        assert!(check_origin(&headers(&[("origin", "http://127.0.0.1:3100")]), &ours).is_ok());
        for bad in ["http://evil.test", "null", "http://127.0.0.1:3101"] {
            let e = check_origin(&headers(&[("origin", bad)]), &ours).unwrap_err();
            assert_eq!(e.reason, Reason::OriginNotAllowed);
        }
        let e = check_origin(&headers(&[("sec-fetch-site", "cross-site")]), &ours).unwrap_err();
        assert_eq!(e.reason, Reason::OriginNotAllowed);
    }

    #[test]
    fn only_application_json_is_json() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        for t in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json-seq",
        ] {
            assert!(!is_json(&headers(&[("content-type", t)])), "{t}");
        }
    }
}
