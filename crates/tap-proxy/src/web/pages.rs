//! The member pages' templates (askama: compiled, HTML-escaped by default)
//! and the headers every page carries.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::ProxyError;

/// The page policy: only this proxy's own stylesheet and script, no inline
/// code, no framing, forms and fetches to this origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The signed-in member as the page header shows them.
#[derive(Clone, Debug)]
pub struct Nav {
    /// E-mail.
    pub email: String,
    /// CSRF token of the sign-out form.
    pub logout_csrf: String,
    /// CSRF token the page script sends in `X-TAP-CSRF`.
    pub api_csrf: String,
}

/// `/login`.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Heading.
    pub title: &'static str,
    /// Always `None` (nobody is signed in).
    pub nav: Option<Nav>,
    /// What the page is for.
    pub intro: &'static str,
    /// Where to go after signing in.
    pub next: String,
    /// The form's CSRF token (double-submitted with a cookie).
    pub csrf: String,
    /// A failure to show.
    pub message: Option<String>,
    /// The e-mail typed before a failure.
    pub email: String,
    /// Whether "Sign in with a passkey" is offered.
    pub passkeys: bool,
}

/// A short message page.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Heading.
    pub title: String,
    /// The header's member, when signed in.
    pub nav: Option<Nav>,
    /// Paragraphs of text.
    pub paragraphs: Vec<String>,
    /// An optional link (href, text).
    pub link: Option<(String, String)>,
}

/// Renders `page` with `status` and the security headers.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => with_headers((status, Html(html)).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "page template failed");
            with_headers(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("<!doctype html><title>Error</title><p>internal error</p>".to_owned()),
                )
                    .into_response(),
            )
        }
    }
}

/// The headers of every member page and fragment.
pub fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send
    // `Origin: null` with the pages' own form posts, which the origin guard
    // (rightly) refuses. Other sites still get no referrer.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A message page.
pub fn message(
    status: StatusCode,
    nav: Option<Nav>,
    title: &str,
    paragraphs: &[&str],
    link: Option<(&str, &str)>,
) -> Response {
    render(
        status,
        &MessagePage {
            title: title.to_owned(),
            nav,
            paragraphs: paragraphs.iter().map(|p| (*p).to_owned()).collect(),
            link: link.map(|(h, t)| (h.to_owned(), t.to_owned())),
        },
    )
}

/// "No such request": the same for a missing request and another team's.
pub fn not_found(nav: Option<Nav>) -> Response {
    message(
        StatusCode::NOT_FOUND,
        nav,
        "Not found",
        &["No such request."],
        Some(("/inbox", "Back to the inbox")),
    )
}

/// A refusal as a page: the same status, detail and fix as the JSON dialect.
pub fn error_page(nav: Option<Nav>, e: &ProxyError, title: &str) -> Response {
    message(
        e.reason.status(),
        nav,
        title,
        &[&e.message, e.reason.fix()],
        Some(("/inbox", "Back to the inbox")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_the_policy_allows_no_inline_script() {
        let html = MessagePage {
            title: "<b>t</b>".into(),
            nav: None,
            paragraphs: vec!["<script>alert(1)</script> & \"q\"".into()],
            link: None,
        }
        .render()
        .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;q&#34;"),
            "{html}"
        );
        assert!(!html.contains("<b>t</b>"));
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }
}
