//! Test harness: a recording fake upstream speaking real HTTP on loopback,
//! the real `tap` binary run in a temporary data dir, a fake Telegram Bot
//! API and a software passkey.
#![allow(clippy::unwrap_used)]

mod client;
mod fake_telegram;
mod fake_token;
mod member_pages;
mod oauth1;
mod passkey;
mod pg;
mod raw;
mod routes;
mod tap;
mod upstream;
mod web_form;

pub use client::{CALL_TIMEOUT, Forward, Reply, http_client, http_client_from};
pub use fake_telegram::{BotCall, FakeMessage, FakeTelegram};
pub use fake_token::{FakeTokenEndpoint, TokenReply};
pub use member_pages::{
    cookie_pair, form_body, form_enc, form_field, get_page, page_csrf, post_form, set_cookies,
    sign_in,
};
pub use oauth1::{expected_oauth1_signature, oauth_param, oauth_params, oauth_pct};
pub use passkey::SoftPasskey;
pub use pg::TempPg;
pub use raw::{LAST_CHUNK, RawAnswer, RawRequest, RawUpstream, chunk, gzip};
pub use routes::SPEC_ROUTES;
pub use tap::{Served, TEST_BACKEND, TapHome};
pub use upstream::{FakeUpstream, OTHER_CA_PEM, Recorded, TEST_CA_PEM};

use std::time::Duration;

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `f` until it returns `Some`, at most `tries` times `every` apart.
pub async fn eventually<T, F, Fut>(tries: u32, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(every).await;
    }
    None
}
