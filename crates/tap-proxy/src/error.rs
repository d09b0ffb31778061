//! The one place where errors become HTTP answers.
//!
//! Every refusal the proxy makes is a [`ProxyError`] carrying a [`Reason`]; the
//! reason alone decides the status code, the stable `error_code`, the default
//! `fix` and the audit outcome. Proxy-made errors carry `X-TAP-Error: <code>` so
//! an agent can tell a TAP refusal from an upstream answer.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// Why the proxy refused or failed a request. Exhaustive: no catch-all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No `X-TAP-Key`.
    MissingTapKey,
    /// Unknown, disabled or malformed key.
    InvalidTapKey,
    /// An `X-TAP-*` header the protocol does not define.
    UnknownTapHeader,
    /// TRACE, CONNECT or a method that is not a token.
    MethodNotAllowed,
    /// Unknown `X-TAP-Auth-Mode`.
    InvalidAuthMode,
    /// CR/LF or another forbidden byte in a header.
    InvalidHeader,
    /// Agent rate limit reached.
    RateLimited,
    /// No `X-TAP-Target`.
    MissingTarget,
    /// Unparseable or unsupported target.
    InvalidTarget,
    /// Body above `TAP_MAX_BODY_BYTES`.
    BodyTooLarge,
    /// The request body did not arrive within the forward timeout.
    RequestTimeout,
    /// `X-TAP-Team` names a team the agent is not linked to.
    TeamNotLinked,
    /// The request carries a team secret.
    SecretInRequest,
    /// Neither `X-TAP-Credential` nor placeholders.
    NoCredential,
    /// A `<CREDENTIAL:…>` placeholder where it is never substituted.
    PlaceholderPositionViolation,
    /// A malformed `<CREDENTIAL:…>` placeholder in an allowed header.
    InvalidPlaceholder,
    /// The credential does not exist in the team.
    CredentialNotFound,
    /// The agent may not use the credential.
    CredentialNotGranted,
    /// Target host outside `allowed_hosts`.
    HostNotAllowed,
    /// Outbound safety refused the destination.
    TargetNotAllowed,
    /// The credential has no value yet.
    CredentialValueMissing,
    /// A bound field is missing from the value.
    CredentialFieldMissing,
    /// A JSON value injected whole.
    MultiSecretUnbound,
    /// A signing bundle used on `/forward`.
    SigningKeyOnForward,
    /// `..` in a relative target.
    PathTraversal,
    /// A credential value would go to a sidecar that is neither on loopback
    /// nor in `TAP_TRUSTED_SIDECARS`.
    SidecarNotTrusted,
    /// The request needs approval but no channel can decide it.
    ApprovalUnavailable,
    /// A member denied the request.
    ApprovalDenied,
    /// Nobody decided in time.
    ApprovalTimedOut,
    /// The policy needs a passkey and WebAuthn is not configured.
    PasskeyUnavailable,
    /// Too many approvals pending for this agent.
    TooManyPending,
    /// The stored request no longer matches what was approved.
    RequestTampered,
    /// The credential changed or vanished while the request waited.
    CredentialChanged,
    /// A restart interrupted the forwarding of an approved request.
    Interrupted,
    /// Connect, timeout or reset talking to the upstream.
    UpstreamError,
    /// A response the scrubber cannot read.
    UnscannableResponse,
    /// An OAuth 2 token endpoint failed or refused; nothing was forwarded.
    TokenEndpointError,
    /// The store failed; nothing was forwarded.
    StoreUnavailable,
    /// A route that does not exist, or an admin object that does not.
    NotFound,
    /// A bug; the cause is logged once.
    Internal,
    /// Admin API: no or an invalid bearer token.
    Unauthorized,
    /// Admin API: the member's role does not allow the operation.
    Forbidden,
    /// Admin API: a body or parameter that does not validate.
    InvalidRequest,
    /// Admin API: the write would break an invariant or a uniqueness rule.
    Conflict,
    /// Admin API: an approval that is no longer pending.
    NotPending,
    /// Admin API: the member already decided this approval.
    AlreadyDecided,
    /// Admin API: the approval needs a passkey assertion.
    PasskeyRequired,
    /// Admin API: a notification channel could not be reached.
    ChannelError,
    /// Admin API: the channel is not configured in this deployment.
    ChannelUnavailable,
    /// Too many attempts (failed logins).
    TooManyAttempts,
    /// A state-changing browser request from an origin this proxy is not.
    OriginNotAllowed,
    /// A state-changing admin request whose body is not `application/json`.
    UnsupportedMediaType,
    /// The connection cap (`TAP_MAX_CONNECTIONS`) is reached.
    TooManyConnections,
}

/// Every reason, for lookups by code.
pub const ALL_REASONS: &[Reason] = &[
    Reason::MissingTapKey,
    Reason::InvalidTapKey,
    Reason::UnknownTapHeader,
    Reason::MethodNotAllowed,
    Reason::InvalidAuthMode,
    Reason::InvalidHeader,
    Reason::RateLimited,
    Reason::MissingTarget,
    Reason::InvalidTarget,
    Reason::BodyTooLarge,
    Reason::RequestTimeout,
    Reason::TeamNotLinked,
    Reason::SecretInRequest,
    Reason::NoCredential,
    Reason::PlaceholderPositionViolation,
    Reason::InvalidPlaceholder,
    Reason::CredentialNotFound,
    Reason::CredentialNotGranted,
    Reason::HostNotAllowed,
    Reason::TargetNotAllowed,
    Reason::CredentialValueMissing,
    Reason::CredentialFieldMissing,
    Reason::MultiSecretUnbound,
    Reason::SigningKeyOnForward,
    Reason::PathTraversal,
    Reason::SidecarNotTrusted,
    Reason::ApprovalUnavailable,
    Reason::ApprovalDenied,
    Reason::ApprovalTimedOut,
    Reason::PasskeyUnavailable,
    Reason::RequestTampered,
    Reason::CredentialChanged,
    Reason::Interrupted,
    Reason::UpstreamError,
    Reason::UnscannableResponse,
    Reason::TokenEndpointError,
    Reason::StoreUnavailable,
    Reason::NotFound,
    Reason::Internal,
    Reason::Unauthorized,
    Reason::Forbidden,
    Reason::InvalidRequest,
    Reason::Conflict,
    Reason::NotPending,
    Reason::AlreadyDecided,
    Reason::PasskeyRequired,
    Reason::ChannelError,
    Reason::ChannelUnavailable,
    Reason::OriginNotAllowed,
    Reason::UnsupportedMediaType,
    Reason::TooManyConnections,
];

impl Reason {
    /// The reason with this code (`TooManyPending` shares `rate_limited` and is never looked up).
    pub fn from_code(code: &str) -> Reason {
        ALL_REASONS
            .iter()
            .copied()
            .find(|r| r.code() == code)
            .unwrap_or(Reason::Internal)
    }

    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingTapKey | Self::InvalidTapKey => StatusCode::UNAUTHORIZED,
            Self::UnknownTapHeader
            | Self::MethodNotAllowed
            | Self::InvalidAuthMode
            | Self::InvalidHeader
            | Self::MissingTarget
            | Self::InvalidTarget
            | Self::SecretInRequest
            | Self::NoCredential
            | Self::PlaceholderPositionViolation
            | Self::InvalidPlaceholder
            | Self::CredentialValueMissing
            | Self::CredentialFieldMissing
            | Self::MultiSecretUnbound
            | Self::SigningKeyOnForward
            | Self::PathTraversal => StatusCode::BAD_REQUEST,
            Self::RateLimited | Self::TooManyPending => StatusCode::TOO_MANY_REQUESTS,
            Self::ApprovalDenied => StatusCode::FORBIDDEN,
            Self::ApprovalTimedOut => StatusCode::GATEWAY_TIMEOUT,
            Self::PasskeyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTampered | Self::CredentialChanged => StatusCode::CONFLICT,
            Self::Interrupted => StatusCode::BAD_GATEWAY,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TeamNotLinked
            | Self::CredentialNotGranted
            | Self::HostNotAllowed
            | Self::TargetNotAllowed
            | Self::SidecarNotTrusted => StatusCode::FORBIDDEN,
            Self::CredentialNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::ApprovalUnavailable | Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamError | Self::UnscannableResponse | Self::TokenEndpointError => {
                StatusCode::BAD_GATEWAY
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::PasskeyRequired => StatusCode::FORBIDDEN,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Conflict | Self::NotPending | Self::AlreadyDecided => StatusCode::CONFLICT,
            Self::ChannelError => StatusCode::BAD_GATEWAY,
            Self::ChannelUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable `error_code`.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingTapKey => "missing_tap_key",
            Self::InvalidTapKey => "invalid_tap_key",
            Self::UnknownTapHeader => "unknown_tap_header",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidAuthMode => "invalid_auth_mode",
            Self::InvalidHeader => "invalid_header",
            Self::RateLimited => "rate_limited",
            Self::MissingTarget => "missing_target",
            Self::InvalidTarget => "invalid_target",
            Self::BodyTooLarge => "body_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::TeamNotLinked => "team_not_linked",
            Self::SecretInRequest => "secret_in_request",
            Self::NoCredential => "no_credential",
            Self::PlaceholderPositionViolation => "placeholder_position_violation",
            Self::InvalidPlaceholder => "invalid_placeholder",
            Self::CredentialNotFound => "credential_not_found",
            Self::CredentialNotGranted => "credential_not_granted",
            Self::HostNotAllowed => "host_not_allowed",
            Self::TargetNotAllowed => "target_not_allowed",
            Self::CredentialValueMissing => "credential_value_missing",
            Self::CredentialFieldMissing => "credential_field_missing",
            Self::MultiSecretUnbound => "multi_secret_unbound",
            Self::SigningKeyOnForward => "signing_key_on_forward",
            Self::PathTraversal => "path_traversal",
            Self::SidecarNotTrusted => "sidecar_not_trusted",
            Self::ApprovalUnavailable => "approval_unavailable",
            Self::ApprovalDenied => "approval_denied",
            Self::ApprovalTimedOut => "approval_timed_out",
            Self::PasskeyUnavailable => "passkey_unavailable",
            Self::TooManyPending => "rate_limited",
            Self::RequestTampered => "request_tampered",
            Self::CredentialChanged => "credential_changed",
            Self::Interrupted => "interrupted",
            Self::UpstreamError => "upstream_error",
            Self::UnscannableResponse => "unscannable_response",
            Self::TokenEndpointError => "token_endpoint_error",
            Self::StoreUnavailable => "store_unavailable",
            Self::NotFound => "not_found",
            Self::Internal => "internal",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::InvalidRequest => "invalid_request",
            Self::Conflict => "conflict",
            Self::NotPending => "not_pending",
            Self::AlreadyDecided => "already_decided",
            Self::PasskeyRequired => "passkey_required",
            Self::ChannelError => "channel_error",
            Self::ChannelUnavailable => "channel_unavailable",
            Self::TooManyAttempts => "rate_limited",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyConnections => "too_many_connections",
        }
    }

    /// What the agent (or its operator) can do about it.
    pub fn fix(self) -> &'static str {
        match self {
            Self::MissingTapKey => "Send your agent key in the X-TAP-Key header.",
            Self::InvalidTapKey => {
                "Check the X-TAP-Key value; ask an operator for a new key if it was rotated or the agent disabled."
            }
            Self::UnknownTapHeader => {
                "Remove the header. Request bodies go in the HTTP body and upstream headers are sent as plain headers; only the X-TAP-* headers listed in supported_tap_headers are understood."
            }
            Self::MethodNotAllowed => {
                "Use a standard method such as GET, POST, PUT, PATCH or DELETE in X-TAP-Method; TRACE and CONNECT are refused."
            }
            Self::InvalidAuthMode => "Use X-TAP-Auth-Mode auto, bearer or oauth1, or leave it out.",
            Self::InvalidHeader => "Remove CR, LF and NUL characters from header values.",
            Self::RateLimited => "Wait for the time in Retry-After before sending more requests.",
            Self::MissingTarget => {
                "Send the upstream URL in X-TAP-Target, e.g. https://api.example.com/v1/items."
            }
            Self::InvalidTarget => {
                "X-TAP-Target must be an absolute http(s) URL without user info, or a path starting with / for relative-target credentials."
            }
            Self::BodyTooLarge => "Send a smaller body; the limit is set by TAP_MAX_BODY_BYTES.",
            Self::RequestTimeout => "Send the whole request body without pausing.",
            Self::TeamNotLinked => {
                "Leave X-TAP-Team out to use your home team, or ask the other team's admin to link your agent."
            }
            Self::SecretInRequest => {
                "Never send credential values; name the credential in X-TAP-Credential and let the proxy inject it."
            }
            Self::NoCredential => {
                "Name the credential to use in X-TAP-Credential (GET /agent/services lists yours), or reference it as <CREDENTIAL:name> in the Authorization header."
            }
            Self::PlaceholderPositionViolation => {
                "Placeholders are substituted only in Authorization, X-Api-Key, X-Auth-Token or a header the credential binds; never in the body or the URL. Move it there, or send X-TAP-Credential and let the proxy inject the credential."
            }
            Self::InvalidPlaceholder => {
                "Write placeholders as <CREDENTIAL:name> or <CREDENTIAL:name.field> (credential names are lower-case letters, digits, '-' and '_')."
            }
            Self::CredentialNotFound => {
                "Check the credential name; GET /agent/services lists the credentials you may use."
            }
            Self::CredentialNotGranted => {
                "Ask an operator to grant this credential to your agent or one of its roles."
            }
            Self::HostNotAllowed => {
                "Use a target on one of the credential's allowed_hosts (GET /agent/services lists them)."
            }
            Self::TargetNotAllowed => {
                "The destination is a private or reserved address; an operator must allow it explicitly."
            }
            Self::CredentialValueMissing => {
                "Ask an operator to set the credential's value (tap cred set-value)."
            }
            Self::CredentialFieldMissing => {
                "Ask an operator to fix the credential's value or bindings: a bound field is missing."
            }
            Self::MultiSecretUnbound => {
                "Ask an operator to add auth bindings for the credential's JSON fields."
            }
            Self::SigningKeyOnForward => {
                "Signing keys are used through POST /sign, never forwarded."
            }
            Self::PathTraversal => "Remove '..' segments from the target path.",
            Self::SidecarNotTrusted => {
                "Ask an operator to run the credential's sidecar on loopback or list its host in TAP_TRUSTED_SIDECARS; credential values go to no other sidecar."
            }
            Self::ApprovalUnavailable => {
                "This request needs human approval and no member can decide it; ask an operator to check the credential's policy and approvers."
            }
            Self::ApprovalDenied => "A human denied this request; do not retry it unchanged.",
            Self::ApprovalTimedOut => {
                "Nobody approved the request in time; retry later or ask your human to watch for approvals."
            }
            Self::PasskeyUnavailable => {
                "This credential needs passkey approval and WebAuthn is not configured; ask an operator."
            }
            Self::TooManyPending => {
                "Wait for your pending approvals to be decided before sending more requests that need approval."
            }
            Self::RequestTampered => {
                "The stored request changed after it was captured; it was not forwarded. Send it again."
            }
            Self::CredentialChanged => {
                "The credential changed while the request waited for approval; it was not forwarded. Send it again."
            }
            Self::Interrupted => {
                "A restart interrupted forwarding; the upstream may or may not have seen the request. Check before retrying."
            }
            Self::UpstreamError => {
                "The upstream did not answer; retry later or check the target URL."
            }
            Self::UnscannableResponse => {
                "The upstream answered in an encoding the proxy cannot scan; nothing was returned."
            }
            Self::TokenEndpointError => {
                "The credential's OAuth 2 token endpoint failed; nothing was forwarded. Retry later, or ask an operator to check the credential (token_url, client and refresh token) and, for a private endpoint, TAP_PRIVATE_ALLOWLIST."
            }
            Self::StoreUnavailable => {
                "The proxy's store is unavailable; nothing was forwarded. Retry later."
            }
            Self::NotFound => "GET /instructions describes the agent API.",
            Self::Internal => "Retry later; report the request id to an operator if it persists.",
            Self::Unauthorized => {
                "Send Authorization: Bearer with an admin token (tap token create) or a session from POST /login."
            }
            Self::Forbidden => {
                "Ask an owner of the team for the role this operation needs, or pick another team with X-TAP-Team."
            }
            Self::InvalidRequest => "Correct the field named in detail and send the request again.",
            Self::Conflict => "Resolve the conflict named in detail first, then retry.",
            Self::NotPending => "The approval was already decided or expired; nothing to do.",
            Self::AlreadyDecided => {
                "Your decision was already counted; another member must decide."
            }
            Self::PasskeyRequired => {
                "Approve on the approval page with your passkey; this credential's policy requires one."
            }
            Self::ChannelError => "Check the channel's settings and that the service is reachable.",
            Self::ChannelUnavailable => {
                "Configure the channel first (for Telegram: TELEGRAM_BOT_TOKEN)."
            }
            Self::TooManyAttempts => "Wait for the time in Retry-After before trying again.",
            Self::OriginNotAllowed => {
                "Send the request from the proxy's own pages or without an Origin header; set TAP_PUBLIC_URL to the address browsers use."
            }
            Self::UnsupportedMediaType => {
                "Send the body as JSON with Content-Type: application/json."
            }
            Self::TooManyConnections => {
                "Retry shortly; the proxy is serving as many connections as TAP_MAX_CONNECTIONS allows."
            }
        }
    }
}

/// A refusal or failure with its human sentence and extra JSON fields.
///
/// Invariant: `message` and `extra` never hold a secret value; they may name
/// hosts, headers and credentials.
#[derive(Debug)]
pub struct ProxyError {
    /// Why.
    pub reason: Reason,
    /// Human sentence.
    pub message: String,
    /// Fields added to the body (`host`, `credential`, ...).
    pub extra: Map<String, Value>,
    /// `Retry-After` seconds, for rate limits.
    pub retry_after: Option<u64>,
}

impl ProxyError {
    /// A new error.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    /// Adds a field to the body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON body of SPEC §3: `error` and `error_code` carry the code token
    /// (public clients compare `error`), `detail` the sentence, `fix` the remedy.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("error".into(), Value::String(self.reason.code().into()));
        m.insert(
            "error_code".into(),
            Value::String(self.reason.code().into()),
        );
        m.insert("detail".into(), Value::String(self.message.clone()));
        m.insert("fix".into(), Value::String(self.reason.fix().into()));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.code(), self.message)
    }
}

impl std::error::Error for ProxyError {}

impl From<tap_core::store::StoreError> for ProxyError {
    fn from(e: tap_core::store::StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        ProxyError::new(Reason::StoreUnavailable, "the proxy's store is unavailable")
    }
}

/// Builds the JSON error response from an already scrubbed body.
pub fn error_response(reason: Reason, body: Vec<u8>, retry_after: Option<u64>) -> Response {
    let mut resp = (reason.status(), body).into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-tap-error", HeaderValue::from_static(reason.code()));
    if let Some(s) = retry_after {
        h.insert(http::header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        error_response(self.reason, body, self.retry_after)
    }
}
