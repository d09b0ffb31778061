//! The member pages as a browser drives them, for end-to-end tests: the
//! sign-in form with its CSRF cookie, pages fetched with the session cookie,
//! form posts, and the hidden fields of a page's forms.

use crate::client::{Reply, http_client};
use crate::tap::Served;

/// `name=value` of the `Set-Cookie` for `name` (panics when there is none).
pub fn cookie_pair(r: &Reply, name: &str) -> String {
    let all = r.header_all("set-cookie");
    all.iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie: {all:?}"))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The value of the hidden input `name` in the form posting to `action`.
pub fn form_field(html: &str, action: &str, name: &str) -> String {
    let at = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action}: {html}"));
    let rest = &html[at..];
    let key = format!("name=\"{name}\" value=\"");
    let v = rest.find(&key).unwrap() + key.len();
    let end = rest[v..].find('"').unwrap();
    rest[v..v + end].to_owned()
}

/// Form-urlencodes one value.
pub fn form_enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Served {
    /// `GET path` as a browser: with the session cookie when given, no redirects followed.
    pub async fn page(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut req = http_client().get(format!("{}{path}", self.url));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        Reply::read(req.send().await.unwrap()).await
    }

    /// `POST path` with a form body and the cookie.
    pub async fn post_form(&self, path: &str, cookie: &str, body: &str) -> Reply {
        let r = http_client()
            .post(format!("{}{path}", self.url))
            .header("Cookie", cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        Reply::read(r).await
    }

    /// Signs in through the `/login` form as a browser does (CSRF cookie and
    /// token); returns the session cookie pair (panics unless it succeeds).
    pub async fn sign_in_form(&self, email: &str, password: &str) -> String {
        let form = self.page("/login", None).await;
        let csrf_cookie = cookie_pair(&form, "tap_login_csrf");
        let csrf = form_field(&form.text(), "/login", "csrf");
        let r = self
            .post_form(
                "/login",
                &csrf_cookie,
                &format!(
                    "email={}&password={}&next=%2Finbox&csrf={}",
                    form_enc(email),
                    form_enc(password),
                    form_enc(&csrf)
                ),
            )
            .await;
        assert_eq!(r.status, 303, "sign-in as {email}: {}", r.text());
        cookie_pair(&r, "tap_session")
    }
}
