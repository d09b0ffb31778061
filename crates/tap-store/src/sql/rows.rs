//! Decoding stored rows into domain types. Pure: no queries.

/// The row decoders (and their helpers) over `$row`, the backend's row type;
/// both schemas name and type the columns alike.
macro_rules! row_decoders {
    ($row:ty) => {
        use std::str::FromStr;

        use sqlx::Row;
        use tap_core::audit::{AuditPhase, AuditRow};
        use tap_core::inject::AuthBinding;
        use tap_core::model::{
            Agent, Approval, ApprovalStatus, Connector, Credential, Grant, Link, Role, Team, Vote,
        };
        use tap_core::policy::ApprovalMode;
        use tap_core::store::{StoreError, StoreResult};

        /// The columns [`agent_from_row`] reads; callers add `WHERE`/`ORDER BY`.
        pub(super) const AGENT_SELECT: &str = "SELECT a.team_id, t.slug, a.id, a.description, a.enabled, a.key_hash, a.rate_limit_per_hour, a.created_at FROM agents a JOIN teams t ON t.id = a.team_id";

        /// A JSON column that does not decode, named.
        pub(super) fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
            move |e| StoreError::Corrupt(format!("{what}: {e}"))
        }

        fn json_list(s: &str) -> StoreResult<Vec<String>> {
            serde_json::from_str(s).map_err(corrupt("list"))
        }

        /// A stored count or limit; the schema keeps them in `u32`, a larger value saturates.
        pub(super) fn saturating_u32(n: i64) -> u32 {
            u32::try_from(n).unwrap_or(u32::MAX)
        }

        pub(super) fn team_from_row(r: &$row) -> StoreResult<Team> {
            let mode: String = r.get("default_approval_mode");
            Ok(Team {
                internal_id: r.get("id"),
                slug: r.get("slug"),
                default_approval_mode: ApprovalMode::from_str(&mode)
                    .map_err(|_| StoreError::Corrupt(format!("approval mode {mode:?}")))?,
                dek_id: r.get("dek_id"),
                wrapped_dek: r.get("wrapped_dek"),
                created_at: r.get("created_at"),
            })
        }

        pub(super) fn credential_from_row(r: &$row) -> StoreResult<Credential> {
            let connector: String = r.get("connector");
            let bindings: String = r.get("auth_bindings");
            let hosts: String = r.get("allowed_hosts");
            Ok(Credential {
                team_internal_id: r.get("team_id"),
                name: r.get("name"),
                description: r.get("description"),
                connector: Connector::from_str(&connector)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                api_base: r.get("api_base"),
                relative_target: r.get::<i64, _>("relative_target") != 0,
                auth_header_format: r.get("auth_header_format"),
                auth_bindings: serde_json::from_str::<Vec<AuthBinding>>(&bindings)
                    .map_err(corrupt("auth_bindings"))?,
                allowed_hosts: json_list(&hosts)?,
                allow_any_host: r.get::<i64, _>("allow_any_host") != 0,
                sealed_value: r.get("sealed_value"),
                value_is_json: r.get::<i64, _>("value_is_json") != 0,
                created_at: r.get("created_at"),
                updated_at: r.get("updated_at"),
            })
        }

        pub(super) fn audit_from_row(r: &$row) -> StoreResult<AuditRow> {
            let phase: String = r.get("phase");
            Ok(AuditRow {
                seq: r.get("seq"),
                phase: match phase.as_str() {
                    "start" => AuditPhase::Start,
                    "finish" => AuditPhase::Finish,
                    other => return Err(StoreError::Corrupt(format!("audit phase {other:?}"))),
                },
                record_json: r.get("record"),
                prev_hash: r.get("prev_hash"),
                row_hash: r.get("row_hash"),
            })
        }

        pub(super) fn agent_from_row(r: &$row, roles: Vec<String>, credentials: Vec<String>) -> Agent {
            Agent {
                team_internal_id: r.get("team_id"),
                team: r.get("slug"),
                id: r.get("id"),
                description: r.get("description"),
                enabled: r.get::<i64, _>("enabled") != 0,
                key_hash: r.get("key_hash"),
                roles,
                credentials,
                rate_limit_per_hour: r
                    .get::<Option<i64>, _>("rate_limit_per_hour")
                    .map(saturating_u32),
                created_at: r.get("created_at"),
            }
        }

        /// A role from its `roles` row and its credentials (kept in `role_credentials`).
        pub(super) fn role_from_row(r: &$row, credentials: Vec<String>) -> Role {
            Role {
                team_internal_id: r.get("team_id"),
                name: r.get("name"),
                description: r.get("description"),
                credentials,
                rate_limit_per_hour: r
                    .get::<Option<i64>, _>("rate_limit_per_hour")
                    .map(saturating_u32),
            }
        }

        pub(super) fn link_from_row(r: &$row) -> Link {
            Link {
                team_internal_id: r.get(0),
                home_team_internal_id: r.get(1),
                home_team: r.get(2),
                agent_id: r.get(3),
                role: r.get(4),
                created_at: r.get(5),
            }
        }

        pub(super) fn grant_from_row(r: &$row) -> StoreResult<Grant> {
            let methods: String = r.get("methods");
            Ok(Grant {
                id: r.get("id"),
                team_internal_id: r.get("team_id"),
                credential: r.get("credential"),
                methods: json_list(&methods)?,
                route_scope: r.get("route_scope"),
                expires_at: r.get("expires_at"),
                max_uses: r.get::<Option<i64>, _>("max_uses").map(saturating_u32),
                uses: saturating_u32(r.get("uses")),
                created_by: r.get("created_by"),
                created_at: r.get("created_at"),
                revoked_at: r.get("revoked_at"),
            })
        }

        pub(super) fn approval_from_row(r: &$row, votes: Vec<Vote>) -> StoreResult<Approval> {
            let status: String = r.get("status");
            let channels: String = r.get("channels");
            Ok(Approval {
                txn_id: r.get("txn_id"),
                team_internal_id: r.get("team_id"),
                agent_team_internal_id: r.get("agent_team_id"),
                agent_id: r.get("agent_id"),
                credential: r.get("credential"),
                credential_version: r.get("credential_version"),
                method: r.get("method"),
                target: r.get("target"),
                request: r.get("request"),
                request_hash: r.get("request_hash"),
                status: ApprovalStatus::from_str(&status)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                policy_reason: r.get("policy_reason"),
                min_approvals: u32::try_from(r.get::<i64, _>("min_approvals")).unwrap_or(1),
                channels: json_list(&channels)?,
                created_at: r.get("created_at"),
                expires_at: r.get("expires_at"),
                decided_at: r.get("decided_at"),
                error_code: r.get("error_code"),
                response: r.get("response"),
                votes,
            })
        }
    };
}

pub(crate) use row_decoders;
