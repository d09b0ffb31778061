//! Domain records as the store keeps them. Sealed values stay sealed here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::inject::AuthBinding;
use crate::policy::ApprovalMode;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Longest part of a refused spelling echoed back in a [`ParseEnumError`].
pub const MAX_ECHO_LEN: usize = 64;

/// A spelling that is not one of an enum's wire values ([`MemberRole`],
/// [`Connector`], [`ApprovalStatus`]). Displays as
/// `unknown <what> "<value>": use <expected>`. Invariant: `value` holds at
/// most [`MAX_ECHO_LEN`] bytes of the input, cut on a character boundary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: use {expected}")]
pub struct ParseEnumError {
    /// What was being parsed, such as `member role`.
    pub what: &'static str,
    /// The refused spelling, clipped.
    pub value: String,
    /// The accepted spellings, as prose (`direct or sidecar`).
    pub expected: &'static str,
}

impl ParseEnumError {
    fn new(what: &'static str, value: &str, expected: &'static str) -> Self {
        let mut end = value.len().min(MAX_ECHO_LEN);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            what,
            value: value.get(..end).unwrap_or_default().to_owned(),
            expected,
        }
    }
}

/// A team: the isolation boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    /// Internal numeric id, bound into AADs; never shown to agents.
    pub internal_id: i64,
    /// The public slug (`X-TAP-Team`, `--team`).
    pub slug: String,
    /// What happens for credentials without a policy row.
    pub default_approval_mode: ApprovalMode,
    /// Id of the team's DEK.
    pub dek_id: String,
    /// The DEK wrapped by the master key.
    pub wrapped_dek: Vec<u8>,
    /// Creation time.
    pub created_at: Millis,
}

/// A member role (SPEC §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Everything.
    Owner,
    /// Everything but member roles and team deletion.
    Admin,
    /// Approves requests for credentials assigned to them.
    Approver,
    /// Read-only.
    Viewer,
}

impl MemberRole {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Approver => "approver",
            Self::Viewer => "viewer",
        }
    }
}

impl fmt::Display for MemberRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemberRole {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "approver" => Ok(Self::Approver),
            "viewer" => Ok(Self::Viewer),
            other => Err(ParseEnumError::new(
                "member role",
                other,
                "owner, admin, approver or viewer",
            )),
        }
    }
}

/// A human account (one per e-mail across the deployment).
#[derive(Clone, Debug)]
pub struct Account {
    /// Internal id.
    pub id: i64,
    /// Lower-case e-mail.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// An account's membership in one team.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    /// Account id.
    #[serde(skip)]
    pub account_id: i64,
    /// E-mail.
    pub email: String,
    /// Role in this team.
    pub role: MemberRole,
    /// Credentials assigned to an approver.
    pub credentials: Vec<String>,
    /// When the membership was made.
    #[serde(skip)]
    pub created_at: Millis,
}

/// An admin API token (stored as a keyed hash).
#[derive(Clone, Debug)]
pub struct AdminToken {
    /// Token id.
    pub id: i64,
    /// Owning account.
    pub account_id: i64,
    /// Keyed hash of the token.
    pub token_hash: String,
    /// Operator label.
    pub label: String,
    /// Creation time.
    pub created_at: Millis,
    /// Revocation time, when revoked.
    pub revoked_at: Option<Millis>,
}

/// An agent: a non-human caller with a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// Home team internal id.
    pub team_internal_id: i64,
    /// Home team slug.
    pub team: String,
    /// Agent id, unique within the team.
    pub id: String,
    /// Free text.
    pub description: String,
    /// Disabled agents are refused with `invalid_tap_key`.
    pub enabled: bool,
    /// Keyed hash of the current key.
    pub key_hash: String,
    /// Roles held.
    pub roles: Vec<String>,
    /// Credentials granted directly.
    pub credentials: Vec<String>,
    /// Requests per rolling hour; `None` means unlimited.
    pub rate_limit_per_hour: Option<u32>,
    /// Creation time.
    pub created_at: Millis,
}

/// How a credential reaches its API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Connector {
    /// The proxy injects and forwards itself.
    #[default]
    Direct,
    /// A sidecar signs and forwards (SPEC §6.2).
    Sidecar,
}

impl Connector {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Sidecar => "sidecar",
        }
    }
}

impl FromStr for Connector {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        match s {
            "direct" => Ok(Self::Direct),
            "sidecar" => Ok(Self::Sidecar),
            other => Err(ParseEnumError::new("connector", other, "direct or sidecar")),
        }
    }
}

/// A credential as stored: metadata plus the sealed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Owning team.
    pub team_internal_id: i64,
    /// Name, unique within the team.
    pub name: String,
    /// Free text shown to agents.
    pub description: String,
    /// Connector.
    pub connector: Connector,
    /// Base URL for relative targets and agent hints.
    pub api_base: Option<String>,
    /// Targets are paths appended to `api_base`.
    pub relative_target: bool,
    /// Authorization header format (default `Bearer {value}`).
    pub auth_header_format: Option<String>,
    /// Header / query bindings.
    pub auth_bindings: Vec<AuthBinding>,
    /// Host patterns the value may be sent to.
    pub allowed_hosts: Vec<String>,
    /// Explicit opt-out of host binding.
    pub allow_any_host: bool,
    /// The value sealed with the team DEK (`None` until set).
    pub sealed_value: Option<Vec<u8>>,
    /// The sealed value is a JSON object.
    pub value_is_json: bool,
    /// Creation time.
    pub created_at: Millis,
    /// Last change by an admin (metadata or value); a refresh token the
    /// token endpoint rotates into the value leaves it alone.
    pub updated_at: Millis,
}

/// An agent role: a named set of credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Role {
    /// Owning team.
    #[serde(skip)]
    pub team_internal_id: i64,
    /// Role name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Credentials granted by the role.
    pub credentials: Vec<String>,
    /// Requests per rolling hour for agents through this role.
    pub rate_limit_per_hour: Option<u32>,
}

/// Where an approval is in its life (SPEC §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for decisions.
    Pending,
    /// Approved; not yet claimed for forwarding.
    Approved,
    /// Claimed by one proxy, being forwarded (shown to agents as `approved`).
    Forwarding,
    /// Forwarded; the scrubbed response is stored.
    Forwarded,
    /// A member denied it.
    Denied,
    /// Nobody decided in time.
    TimedOut,
    /// Approved but refused at forward time (re-check failed) or the upstream failed.
    Error,
}

impl ApprovalStatus {
    /// Spelling in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Forwarding => "forwarding",
            Self::Forwarded => "forwarded",
            Self::Denied => "denied",
            Self::TimedOut => "timed_out",
            Self::Error => "error",
        }
    }

    /// Spelling shown to agents and members (internal `forwarding` reads `approved`).
    pub fn public_str(self) -> &'static str {
        match self {
            Self::Forwarding => "approved",
            other => other.as_str(),
        }
    }

    /// True once nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Forwarded | Self::Denied | Self::TimedOut | Self::Error
        )
    }
}

impl FromStr for ApprovalStatus {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        Ok(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "forwarding" => Self::Forwarding,
            "forwarded" => Self::Forwarded,
            "denied" => Self::Denied,
            "timed_out" => Self::TimedOut,
            "error" => Self::Error,
            other => {
                return Err(ParseEnumError::new(
                    "approval status",
                    other,
                    "pending, approved, forwarding, forwarded, denied, timed_out or error",
                ));
            }
        })
    }
}

/// One member's vote on an approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vote {
    /// Member e-mail.
    pub email: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// Channel the vote came through.
    pub channel: String,
    /// When.
    pub at: Millis,
}

/// A pending or decided approval on one exact request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// Transaction id (equals the request id).
    pub txn_id: String,
    /// Team whose credential and policy apply.
    pub team_internal_id: i64,
    /// Agent's home team.
    pub agent_team_internal_id: i64,
    /// Agent id.
    pub agent_id: String,
    /// Credential name; for a legacy placeholder request referencing several
    /// credentials, every name in reference order joined by `,` (names never
    /// contain a comma). Read the names with [`Approval::credential_names`].
    pub credential: String,
    /// Credential version (its `updated_at`; the latest of them for several)
    /// when approval was asked; a change refuses forwarding.
    pub credential_version: Millis,
    /// Upper-cased method.
    pub method: String,
    /// Display target.
    pub target: String,
    /// The captured request (JSON), forwarded byte for byte once approved.
    pub request: String,
    /// Keyed hash binding method, target, headers and body.
    pub request_hash: String,
    /// Status.
    pub status: ApprovalStatus,
    /// The policy reason that asked for approval.
    pub policy_reason: String,
    /// Distinct approvals needed.
    pub min_approvals: u32,
    /// Channels the request was routed to.
    pub channels: Vec<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Expiry of the pending state.
    pub expires_at: Millis,
    /// When it was decided.
    pub decided_at: Option<Millis>,
    /// Error code when status is `error`.
    pub error_code: Option<String>,
    /// Stored scrubbed response (JSON) when forwarded.
    pub response: Option<String>,
    /// Votes so far.
    pub votes: Vec<Vote>,
}

impl Approval {
    /// Every credential the request uses, in reference order (one for
    /// `X-TAP-Credential` requests).
    pub fn credential_names(&self) -> impl Iterator<Item = &str> {
        self.credential.split(',').filter(|c| !c.is_empty())
    }

    /// Members who approved.
    pub fn approvers(&self) -> Vec<String> {
        self.votes
            .iter()
            .filter(|v| v.decision == "approve")
            .map(|v| v.email.clone())
            .collect()
    }
}

/// A time-boxed, use-limited auto-approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// Id.
    pub id: String,
    /// Team.
    #[serde(skip)]
    pub team_internal_id: i64,
    /// Credential.
    pub credential: String,
    /// Methods covered.
    pub methods: Vec<String>,
    /// Route pattern.
    pub route_scope: String,
    /// Expiry, unix seconds.
    pub expires_at: i64,
    /// Use limit.
    pub max_uses: Option<u32>,
    /// Uses so far.
    pub uses: u32,
    /// Who made it.
    pub created_by: String,
    /// Creation time.
    pub created_at: Millis,
    /// Revocation time.
    pub revoked_at: Option<Millis>,
}

/// A link letting another team's agent use this team's credentials through a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    /// The linking team (whose credentials are used).
    #[serde(skip)]
    pub team_internal_id: i64,
    /// The agent's home team.
    #[serde(skip)]
    pub home_team_internal_id: i64,
    /// The agent's home team slug.
    pub home_team: String,
    /// The agent id.
    pub agent_id: String,
    /// The role granted; `None` grants nothing.
    pub role: Option<String>,
    /// Creation time.
    #[serde(skip)]
    pub created_at: Millis,
}

/// A team notification channel (today: a Telegram chat).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// Owning team.
    #[serde(skip)]
    pub team_internal_id: i64,
    /// Channel name, unique in the team.
    pub name: String,
    /// Kind: `telegram`.
    pub kind: String,
    /// Telegram chat id.
    pub chat_id: String,
    /// Creation time.
    #[serde(skip)]
    pub created_at: Millis,
}

/// A member's registered passkey (WebAuthn credential).
///
/// Invariant: `passkey` holds only public material (the credential id, the
/// public key, the signature counter) as the WebAuthn library serialises it;
/// nothing here lets anyone sign an assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// Our id (UUID).
    pub id: String,
    /// The account it belongs to.
    pub account_id: i64,
    /// The member's name for it ("laptop", "phone").
    pub name: String,
    /// The WebAuthn credential id, base64url; unique across accounts.
    pub credential_id: String,
    /// The serialised public passkey (JSON).
    pub passkey: String,
    /// Registration time.
    pub created_at: Millis,
    /// Last successful assertion.
    pub last_used_at: Option<Millis>,
}

/// What a WebAuthn ceremony in progress is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyKind {
    /// A member registering a passkey.
    Register,
    /// A member approving one request with a passkey.
    Approve,
    /// Someone signing in with a passkey (a decoy for unknown e-mails).
    SignIn,
}

impl CeremonyKind {
    /// Wire spelling, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Approve => "approve",
            Self::SignIn => "sign_in",
        }
    }
}

impl FromStr for CeremonyKind {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        match s {
            "register" => Ok(Self::Register),
            "approve" => Ok(Self::Approve),
            "sign_in" => Ok(Self::SignIn),
            other => Err(ParseEnumError::new(
                "ceremony kind",
                other,
                "register, approve or sign_in",
            )),
        }
    }
}

/// A WebAuthn ceremony begun and not yet finished, kept in the store so that
/// any replica can finish a ceremony another began.
///
/// Invariants: `state` is the WebAuthn library's server-side ceremony state
/// (it holds the challenge; never sent to the browser, never logged: `Debug`
/// prints it as `[redacted]`); `None` only for a decoy sign-in, which can
/// never succeed. A ceremony is taken out at most once and never after
/// `expires_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct CeremonyRecord {
    /// The ceremony's id: random (sign-in), or derived from the session that
    /// began it (registration, approval); unique.
    pub id: String,
    /// What it is for.
    pub kind: CeremonyKind,
    /// The library's serialised ceremony state (JSON).
    pub state: Option<String>,
    /// The account it is for; `None` for a decoy sign-in.
    pub account_id: Option<i64>,
    /// Registration: the name the member gave the new passkey.
    pub name: Option<String>,
    /// Approval: the transaction approved.
    pub txn_id: Option<String>,
    /// Approval: the request hash the approval had when the challenge was made.
    pub request_hash: Option<String>,
    /// When it began.
    pub created_at: Millis,
    /// When it stops counting.
    pub expires_at: Millis,
}

impl fmt::Debug for CeremonyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CeremonyRecord")
            .field("kind", &self.kind)
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("account_id", &self.account_id)
            .field("txn_id", &self.txn_id)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// One approval message sent (or to be sent) to a Telegram chat.
///
/// Invariant: the per-message nonce carried in the buttons' callback data is
/// stored only as its SHA-256 (`nonce_hash`), so the table alone cannot be
/// turned into clickable callbacks; `text` is built from an
/// [`crate::approval::ApprovalSummary`] and holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelegramMessage {
    /// Hex SHA-256 of the callback nonce; unique.
    pub nonce_hash: String,
    /// The approval it asks about.
    pub txn_id: String,
    /// Destination chat.
    pub chat_id: String,
    /// Telegram's message id once delivered.
    pub message_id: Option<i64>,
    /// The summary text (without the status line).
    pub text: String,
    /// Whether "Approve for 30 min" is offered.
    pub offers_grant: bool,
    /// For `require_passkey` approvals: Approve is a link to this page (where
    /// the passkey ceremony runs) instead of a callback button.
    pub approve_url: Option<String>,
    /// The state last shown (`pending:N`, or a final status); empty before delivery.
    pub shown: String,
    /// True once the outcome is shown and the buttons are gone.
    pub closed: bool,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// When to try delivery (or an edit) again.
    pub next_attempt_at: Millis,
    /// Creation time.
    pub created_at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_names_the_value_and_the_accepted_spellings() {
        let e = "root".parse::<MemberRole>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown member role "root": use owner, admin, approver or viewer"#
        );
        let e = "proxy".parse::<Connector>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown connector "proxy": use direct or sidecar"#
        );
        let e = "done".parse::<ApprovalStatus>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown approval status "done": use pending, approved, forwarding, forwarded, denied, timed_out or error"#
        );
        assert_eq!(e.what, "approval status");
        assert_eq!(e.value, "done");
    }

    #[test]
    fn parse_error_clips_a_long_value_on_a_char_boundary() {
        let long = format!("{}é{}", "a".repeat(MAX_ECHO_LEN - 1), "b".repeat(100));
        let e = long.parse::<MemberRole>().unwrap_err();
        assert_eq!(e.value, "a".repeat(MAX_ECHO_LEN - 1));
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn parses_every_wire_spelling_back() {
        for r in [
            MemberRole::Owner,
            MemberRole::Admin,
            MemberRole::Approver,
            MemberRole::Viewer,
        ] {
            assert_eq!(r.as_str().parse::<MemberRole>(), Ok(r));
        }
        for c in [Connector::Direct, Connector::Sidecar] {
            assert_eq!(c.as_str().parse::<Connector>(), Ok(c));
        }
        for s in [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Forwarding,
            ApprovalStatus::Forwarded,
            ApprovalStatus::Denied,
            ApprovalStatus::TimedOut,
            ApprovalStatus::Error,
        ] {
            assert_eq!(s.as_str().parse::<ApprovalStatus>(), Ok(s));
        }
        for k in [
            CeremonyKind::Register,
            CeremonyKind::Approve,
            CeremonyKind::SignIn,
        ] {
            assert_eq!(k.as_str().parse::<CeremonyKind>(), Ok(k));
        }
        assert!("signin".parse::<CeremonyKind>().is_err());
    }

    #[test]
    fn a_ceremony_debugs_without_its_state_or_id() {
        let c = CeremonyRecord {
            id: "ceremony-id-held-by-the-browser".into(),
            kind: CeremonyKind::SignIn,
            state: Some("{\"challenge\":\"c2VjcmV0LWNoYWxsZW5nZQ\"}".into()),
            account_id: Some(7),
            name: None,
            txn_id: None,
            request_hash: None,
            created_at: 1,
            expires_at: 2,
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("challenge"), "{shown}");
        assert!(!shown.contains("ceremony-id"), "{shown}");
    }
}
