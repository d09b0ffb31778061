//! Agents with their roles and direct credential grants (shared with
//! PostgreSQL: `crate::sql::agents`).

crate::sql::agents::agent_queries!(sqlx::SqlitePool, sqlx::SqliteConnection);
