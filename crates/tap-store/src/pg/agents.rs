//! Agents with their roles and direct credential grants (shared with SQLite:
//! `crate::sql::agents`).

crate::sql::agents::agent_queries!(sqlx::PgPool, sqlx::PgConnection);
