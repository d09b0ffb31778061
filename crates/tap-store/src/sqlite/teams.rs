//! Teams and what belongs to a team as a whole: members (with the last-owner
//! rule), links that let other teams' agents in, notification channels
//! (shared with PostgreSQL: `crate::sql::teams`).

crate::sql::teams::team_queries!(sqlx::SqlitePool, sqlx::SqliteConnection, sqlx::Sqlite);
