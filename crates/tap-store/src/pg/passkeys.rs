//! Members' passkeys (WebAuthn credentials). Not configuration the proxy
//! caches, so nothing here bumps the revision (shared with SQLite:
//! `crate::sql::passkeys`).

crate::sql::passkeys::passkey_queries!(sqlx::PgPool, sqlx::postgres::PgRow);
