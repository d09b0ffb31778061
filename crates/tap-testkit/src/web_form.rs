//! The member pages as methods of [`Served`], over the functions of
//! [`crate::member_pages`].

use crate::client::Reply;
use crate::member_pages::{get_page, post_form, sign_in};
use crate::tap::Served;

impl Served {
    /// `GET path` as a browser: with the session cookie when given, no redirects followed.
    pub async fn page(&self, path: &str, cookie: Option<&str>) -> Reply {
        get_page(self, path, cookie).await
    }

    /// `POST path` with a form body and the cookie.
    pub async fn post_form(&self, path: &str, cookie: &str, body: &str) -> Reply {
        post_form(self, path, cookie, body).await
    }

    /// Signs in through the `/login` form as a browser does (CSRF cookie and
    /// token); returns the session cookie pair (panics unless it succeeds).
    pub async fn sign_in_form(&self, email: &str, password: &str) -> String {
        sign_in(self, email, password).await
    }
}
