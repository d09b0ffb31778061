//! `tap migrate --to postgres://…`: copies a SQLite deployment into an empty
//! PostgreSQL database, table by table and row for row (ids, sealed values,
//! password and key hashes, the audit trail with its hashes, chain heads and
//! anchors), in one PostgreSQL transaction that commits only when every
//! table's count matches.
//!
//! Nothing is decrypted or re-chained: the copy is byte-for-byte, so the same
//! master key opens it and the chain verifies as it did.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, Row, SqlitePool};
use tap_core::store::{StoreError, StoreResult};

use crate::PgStore;
use crate::SqliteStore;

/// Every table of a deployment, parents before children. The SQLite store's
/// `audit_spool` (its fold position) has no PostgreSQL counterpart, and
/// `abuse_failures` (per-address failure windows of minutes, empty on a
/// single SQLite process) and `webauthn_ceremonies` (they last minutes, and a
/// source that must be quiet has none worth finishing) are not carried over.
const TABLES: &[&str] = &[
    "meta",
    "config_revision",
    "teams",
    "accounts",
    "members",
    "member_credentials",
    "admin_tokens",
    "agents",
    "agent_roles",
    "agent_credentials",
    "credentials",
    "roles",
    "role_credentials",
    "policies",
    "audit",
    "audit_anchor",
    "audit_head",
    "approvals",
    "approval_votes",
    "grants",
    "sessions",
    "links",
    "notification_channels",
    "telegram_users",
    "telegram_link_codes",
    "telegram_messages",
    "passkeys",
    "rate_events",
    "oauth_tokens",
];

/// Tables whose `id` is an identity: its sequence continues after the copied ids.
const IDENTITIES: &[&str] = &["teams", "accounts", "admin_tokens"];

/// Rows read from SQLite and written to PostgreSQL per statement.
const ROWS_PER_BATCH: i64 = 500;

/// What was copied: each table and its row count (equal on both sides).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// `(table, rows)` in copy order.
    pub tables: Vec<(String, i64)>,
}

/// A column's type on PostgreSQL, which decides how it is read from SQLite.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Text,
    Bytes,
}

#[derive(Debug)]
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

fn failed(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Unavailable(format!("{what}: {e}"))
}

/// Copies `from` into `to`, which must be empty: its schema is created (or
/// brought up to date) first, and any row in any table refuses the copy with
/// `Conflict`, changing nothing. The source must be quiet (no proxy serving
/// it) and its audit spool folded; the caller checks both.
pub async fn copy_sqlite_to_pg(from: &SqliteStore, to: &PgStore) -> StoreResult<CopyReport> {
    use tap_core::store::Store as _;
    to.migrate().await?;
    let (src, dst) = (from.pool(), to.pool());
    let mut tx = crate::pg::write_tx(dst).await?;
    for table in TABLES {
        // The one row a fresh schema holds: the revision, replaced by the copy's.
        if *table == "config_revision" {
            continue;
        }
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await
                .map_err(failed("count the target"))?;
        if n > 0 {
            return Err(StoreError::Conflict(format!(
                "the target database is not empty (table {table} has {n} rows); \
                 tap migrate --to copies only into an empty database"
            )));
        }
    }
    sqlx::query("DELETE FROM config_revision")
        .execute(&mut *tx)
        .await
        .map_err(failed("clear the revision"))?;
    let mut report = CopyReport::default();
    for table in TABLES {
        // Columns added on PostgreSQL only (e.g. `approvals.claimed_by`) start empty.
        let present: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
            .bind(*table)
            .fetch_all(src)
            .await
            .map_err(failed("read the source schema"))?;
        let columns: Vec<(String, Kind)> = columns(&mut tx, table)
            .await?
            .into_iter()
            .filter(|(name, _)| present.contains(name))
            .collect();
        let copied = copy_table(src, &mut tx, table, &columns).await?;
        let source: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(src)
                .await
                .map_err(failed("count the source"))?;
        let target: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await
                .map_err(failed("count the target"))?;
        if source != target || copied != target {
            return Err(StoreError::Corrupt(format!(
                "table {table}: {source} rows in SQLite, {target} copied; nothing was committed"
            )));
        }
        report.tables.push(((*table).to_owned(), target));
    }
    for table in IDENTITIES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             (SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"
        )))
        .execute(&mut *tx)
        .await
        .map_err(failed("continue the ids"))?;
    }
    tx.commit().await.map_err(failed("commit the copy"))?;
    Ok(report)
}

/// The target table's columns and their kinds, in order.
async fn columns(tx: &mut sqlx::PgConnection, table: &str) -> StoreResult<Vec<(String, Kind)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await
    .map_err(failed("read the target schema"))?;
    if rows.is_empty() {
        return Err(StoreError::Corrupt(format!("table {table} is missing")));
    }
    rows.into_iter()
        .map(|(name, ty)| {
            let kind = match ty.as_str() {
                "bigint" => Kind::Int,
                "text" => Kind::Text,
                "bytea" => Kind::Bytes,
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "column {table}.{name} has type {other}"
                    )));
                }
            };
            Ok((name, kind))
        })
        .collect()
}

/// Copies one table in batches, by SQLite rowid; returns the rows copied.
async fn copy_table(
    src: &SqlitePool,
    tx: &mut sqlx::PgConnection,
    table: &str,
    columns: &[(String, Kind)],
) -> StoreResult<i64> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let list = names.join(", ");
    let select = format!(
        "SELECT rowid AS tap_rowid, {list} FROM {table} WHERE rowid > $1 ORDER BY rowid LIMIT $2"
    );
    let mut after = i64::MIN;
    let mut copied = 0i64;
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
            .bind(after)
            .bind(ROWS_PER_BATCH)
            .fetch_all(src)
            .await
            .map_err(failed("read the source"))?;
        let Some(last) = rows.last() else {
            return Ok(copied);
        };
        after = last.try_get("tap_rowid").map_err(failed("read a rowid"))?;
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut one = Vec::with_capacity(columns.len());
            for (name, kind) in columns {
                let what = format!("read {table}.{name}");
                one.push(match kind {
                    Kind::Int => Value::Int(row.try_get(name.as_str()).map_err(failed(&what))?),
                    Kind::Text => Value::Text(row.try_get(name.as_str()).map_err(failed(&what))?),
                    Kind::Bytes => Value::Bytes(row.try_get(name.as_str()).map_err(failed(&what))?),
                });
            }
            values.push(one);
        }
        let mut insert =
            sqlx::QueryBuilder::<Postgres>::new(format!("INSERT INTO {table} ({list}) "));
        insert.push_values(values, |mut b, row| {
            for v in row {
                match v {
                    Value::Int(v) => b.push_bind(v),
                    Value::Text(v) => b.push_bind(v),
                    Value::Bytes(v) => b.push_bind(v),
                };
            }
        });
        let written = run(insert.build(), tx).await?;
        copied += i64::try_from(written).unwrap_or(i64::MAX);
    }
}

async fn run(q: Query<'_, Postgres, PgArguments>, tx: &mut sqlx::PgConnection) -> StoreResult<u64> {
    Ok(q.execute(tx)
        .await
        .map_err(failed("write the target"))?
        .rows_affected())
}
