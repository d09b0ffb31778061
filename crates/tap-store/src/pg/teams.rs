//! Teams and what belongs to a team as a whole: members (with the last-owner
//! rule), links that let other teams' agents in, notification channels
//! (shared with SQLite: `crate::sql::teams`).

crate::sql::teams::team_queries!(sqlx::PgPool, sqlx::PgConnection, sqlx::Postgres);
