//! A browser's view of the member pages without a browser: the sign-in form
//! with its CSRF cookie, GETs and form POSTs with the session cookie, and
//! reading hidden form fields out of the HTML.

use crate::{Reply, Served, http_client};

/// Every `Set-Cookie` of an answer.
pub fn set_cookies(r: &Reply) -> Vec<String> {
    r.header_all("set-cookie")
}

/// `name=value` of the `Set-Cookie` for `name`.
pub fn cookie_pair(r: &Reply, name: &str) -> String {
    set_cookies(r)
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie: {:?}", set_cookies(r)))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The value of the input `name` in the form posting to `action`.
pub fn form_field(html: &str, action: &str, name: &str) -> String {
    let at = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action}: {html}"));
    let rest = &html[at..];
    let key = format!("name=\"{name}\" value=\"");
    let v = rest
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in the form for {action}"))
        + key.len();
    let end = rest[v..].find('"').unwrap();
    rest[v..v + end].to_owned()
}

/// The page's CSRF token (`<meta name="tap-csrf">`), which a signed-in page carries.
pub fn page_csrf(html: &str) -> String {
    let key = "<meta name=\"tap-csrf\" content=\"";
    let v = html
        .find(key)
        .unwrap_or_else(|| panic!("no tap-csrf meta: {html}"))
        + key.len();
    let end = html[v..].find('"').unwrap();
    html[v..v + end].to_owned()
}

/// Form-encodes one value.
pub fn form_enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A form body from pairs.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_enc(k), form_enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET path` with an optional `Cookie` header; redirects are not followed.
pub async fn get_page(served: &Served, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = http_client().get(format!("{}{path}", served.url));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    Reply::read(req.send().await.unwrap()).await
}

/// A form `POST` with a `Cookie` header; redirects are not followed.
pub async fn post_form(served: &Served, path: &str, cookie: &str, body: &str) -> Reply {
    let r = http_client()
        .post(format!("{}{path}", served.url))
        .header("Cookie", cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    Reply::read(r).await
}

/// Signs in through the form as a browser does (the form's CSRF cookie
/// included) and checks it lands on the inbox; returns the session cookie
/// pair `tap_session=…`.
pub async fn sign_in(served: &Served, email: &str, password: &str) -> String {
    let form = get_page(served, "/login", None).await;
    let csrf_cookie = cookie_pair(&form, "tap_login_csrf");
    let csrf = form_field(&form.text(), "/login", "csrf");
    let r = post_form(
        served,
        "/login",
        &csrf_cookie,
        &form_body(&[
            ("email", email),
            ("password", password),
            ("next", "/inbox"),
            ("csrf", &csrf),
        ]),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location").as_deref(), Some("/inbox"));
    cookie_pair(&r, "tap_session")
}
