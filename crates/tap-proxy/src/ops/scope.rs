//! Who acts in which team, and the one role check every operation makes.

use tap_core::model::{MemberRole, Team};

use super::{META_INIT_OWNER, Ops, OpsError, OpsResult};

/// The name the local operator acts under when no init owner is recorded.
const OPERATOR: &str = "operator";

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any member (approvers see only their credentials).
    Member,
    /// Viewer or above (not approver-only reads).
    Read,
    /// Admin or owner.
    Write,
    /// Owner.
    Owner,
}

impl Need {
    /// Whether `role` satisfies this need.
    pub fn allows(self, role: MemberRole) -> bool {
        match self {
            Need::Member => true,
            Need::Read => role != MemberRole::Approver,
            Need::Write => matches!(role, MemberRole::Owner | MemberRole::Admin),
            Need::Owner => role == MemberRole::Owner,
        }
    }

    /// The role named in a refusal.
    pub fn name(self) -> &'static str {
        match self {
            Need::Member => "member",
            Need::Read => "viewer",
            Need::Write => "admin",
            Need::Owner => "owner",
        }
    }
}

/// A member acting in one team: the input of every scoped operation.
///
/// Built only by [`Ops::member_scope`] (a member authenticated by the admin
/// API) or [`Ops::operator_scope`] (the local operator holding the master key).
#[derive(Clone, Debug)]
pub struct Scope {
    /// The team acted on.
    pub team: Team,
    /// The acting member's e-mail.
    pub email: String,
    /// Their account.
    pub account_id: i64,
    /// Their role in the team.
    pub role: MemberRole,
    /// Credentials assigned to an approver.
    pub assigned: Vec<String>,
}

impl Scope {
    /// The one role check: `Forbidden` naming the needed role.
    pub fn require(&self, need: Need) -> OpsResult<()> {
        if need.allows(self.role) {
            return Ok(());
        }
        Err(OpsError::Forbidden(format!(
            "this needs the {} role; you are {} in team {}",
            need.name(),
            self.role.as_str(),
            self.team.slug
        )))
    }

    /// Whether an approver-limited member may see `credential`.
    pub fn sees_credential(&self, credential: &str) -> bool {
        self.role != MemberRole::Approver || self.assigned.iter().any(|c| c == credential)
    }
}

impl Ops {
    /// The scope of an authenticated account in `team` (its first team when `None`).
    pub async fn member_scope(&self, account_id: i64, team: Option<&str>) -> OpsResult<Scope> {
        let account = self
            .store
            .account(account_id)
            .await?
            .ok_or(OpsError::Unauthorized)?;
        for t in self.store.teams().await? {
            if team.is_some_and(|w| w != t.slug) {
                continue;
            }
            let members = self.store.members(t.internal_id).await?;
            if let Some(me) = members.into_iter().find(|x| x.account_id == account_id) {
                return Ok(Scope {
                    team: t,
                    email: account.email,
                    account_id,
                    role: me.role,
                    assigned: me.credentials,
                });
            }
        }
        Err(OpsError::Forbidden(match team {
            Some(w) => format!("you are not a member of team {w}"),
            None => "you are not a member of any team".into(),
        }))
    }

    /// The local operator's scope in `team`: the operator holds the master key,
    /// so they act as an owner; approvals are decided as `as_email` (a member of
    /// the team) or the owner `tap init` created.
    pub async fn operator_scope(&self, team: &str, as_email: Option<&str>) -> OpsResult<Scope> {
        let team = self.team(team).await?;
        let email = match as_email {
            Some(e) => e.trim().to_ascii_lowercase(),
            None => match self.default_actor(&team).await {
                Ok(e) => e,
                // A team nobody owns yet (`tap team create` adds no member) is
                // still the operator's to manage: they act under the init
                // owner's name, which only shows in `created_by`; the approval
                // gate refuses non-members on its own.
                Err(OpsError::NotFound(_)) => self
                    .store
                    .meta(META_INIT_OWNER)
                    .await?
                    .map(|raw| String::from_utf8_lossy(&raw).into_owned())
                    .unwrap_or_else(|| OPERATOR.to_owned()),
                Err(e) => return Err(e),
            },
        };
        let members = self.store.members(team.internal_id).await?;
        let me = members.into_iter().find(|m| m.email == email);
        Ok(Scope {
            account_id: me.as_ref().map_or(0, |m| m.account_id),
            assigned: me.map(|m| m.credentials).unwrap_or_default(),
            role: MemberRole::Owner,
            email,
            team,
        })
    }
}
