//! A software passkey: kanidm's soft authenticator (webauthn-authenticator-rs)
//! behind the WebAuthn client steps a browser performs, speaking the same JSON
//! the approval page's script sends. Each instance is one device holding its
//! own credentials.

use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey as Soft;

use crate::tap::Served;

/// One software authenticator with user verification.
pub struct SoftPasskey {
    inner: Soft,
    origin: url::Url,
}

impl std::fmt::Debug for SoftPasskey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftPasskey")
            .field("origin", &self.origin.as_str())
            .finish_non_exhaustive()
    }
}

impl SoftPasskey {
    /// A device used from pages served at `origin` (e.g. `http://localhost:4100`).
    pub fn new(origin: &str) -> Self {
        Self {
            inner: Soft::new(true),
            origin: url::Url::parse(origin).unwrap(),
        }
    }

    /// `navigator.credentials.create`: the credential JSON for `options`
    /// (the `/passkeys/register/begin` answer).
    pub fn register(&mut self, options: &Value) -> Value {
        let options = serde_json::from_value(options.clone()).unwrap();
        let cred = self
            .inner
            .do_registration(self.origin.clone(), options)
            .unwrap();
        serde_json::to_value(cred).unwrap()
    }

    /// `navigator.credentials.get`: the assertion JSON for `options` (the
    /// `/approve/{txn}/passkey/begin` answer); `None` when this device holds
    /// none of the allowed credentials.
    pub fn assert(&mut self, options: &Value) -> Option<Value> {
        let options = serde_json::from_value(options.clone()).unwrap();
        self.inner
            .do_authentication(self.origin.clone(), options)
            .ok()
            .map(|a| serde_json::to_value(a).unwrap())
    }

    /// Registers a new passkey named `name` on this device for the member
    /// of `session`: `POST /passkeys/register/begin` on `begin`, the
    /// credential to `/passkeys/register/finish` on `finish` (the same
    /// server, or another replica); the new passkey's id. Panics unless
    /// both steps succeed.
    pub async fn register_on(
        &mut self,
        begin: &Served,
        finish: &Served,
        session: &str,
        name: &str,
    ) -> String {
        let began = begin
            .post_json(
                "/passkeys/register/begin",
                Some(session),
                &json!({"name": name}),
            )
            .await;
        assert_eq!(began.status, 200, "{}", began.text());
        let options = began.json();
        assert!(options["publicKey"]["challenge"].is_string(), "{options}");
        assert_eq!(
            options["publicKey"]["authenticatorSelection"]["userVerification"], "required",
            "{options}"
        );
        let cred = self.register(&options);
        let done = finish
            .post_json("/passkeys/register/finish", Some(session), &cred)
            .await;
        assert_eq!(
            done.status,
            201,
            "{name}: {}\n{}",
            done.text(),
            finish.log()
        );
        assert_eq!(done.json()["name"], name);
        done.json()["id"].as_str().unwrap().to_owned()
    }
}
