//! Domain records as the store keeps them. Sealed values stay sealed here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::inject::AuthBinding;
use crate::policy::ApprovalMode;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "approver" => Ok(Self::Approver),
            "viewer" => Ok(Self::Viewer),
            other => Err(format!(
                "unknown member role {other:?}: use owner, admin, approver or viewer"
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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "direct" => Ok(Self::Direct),
            "sidecar" => Ok(Self::Sidecar),
            other => Err(format!(
                "unknown connector {other:?}: use direct or sidecar"
            )),
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
    /// Last change.
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
