//! Telegram approvals: linked Telegram users, one-time link codes and the
//! approval messages sent. None of this is configuration the proxy caches,
//! so nothing here bumps the revision.

/// The Telegram queries over `$pool` (and `$conn` inside a transaction),
/// decoding `$row`.
macro_rules! telegram_queries {
    ($pool:ty, $conn:ty, $row:ty) => {
        use sqlx::Row;
        use tap_core::model::TelegramMessage;
        use tap_core::store::StoreResult;

        use super::pool::{conflict_as, unavailable, write_tx};
        use super::rows::saturating_u32;
        use crate::clock::now_ms;

        async fn account_id(tx: &mut $conn, email: &str) -> StoreResult<Option<i64>> {
            sqlx::query_scalar("SELECT id FROM accounts WHERE email = $1")
                .bind(email.trim().to_ascii_lowercase())
                .fetch_optional(tx)
                .await
                .map_err(unavailable)
        }

        async fn link(tx: &mut $conn, account: i64, telegram_user_id: i64) -> StoreResult<()> {
            sqlx::query("DELETE FROM telegram_users WHERE telegram_user_id = $1 OR account_id = $2")
                .bind(telegram_user_id)
                .bind(account)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            sqlx::query(
                "INSERT INTO telegram_users (telegram_user_id, account_id, linked_at) VALUES ($1, $2, $3)",
            )
            .bind(telegram_user_id)
            .bind(account)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            Ok(())
        }

        pub(super) async fn link_telegram_user(
            pool: &$pool,
            email: &str,
            telegram_user_id: i64,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let Some(account) = account_id(&mut tx, email).await? else {
                return Ok(false);
            };
            link(&mut tx, account, telegram_user_id).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(true)
        }

        pub(super) async fn telegram_user(
            pool: &$pool,
            telegram_user_id: i64,
        ) -> StoreResult<Option<String>> {
            sqlx::query_scalar(
                "SELECT a.email FROM telegram_users t JOIN accounts a ON a.id = t.account_id
                 WHERE t.telegram_user_id = $1",
            )
            .bind(telegram_user_id)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)
        }

        pub(super) async fn create_telegram_link_code(
            pool: &$pool,
            email: &str,
            code_hash: &str,
            expires_at: i64,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let Some(account) = account_id(&mut tx, email).await? else {
                return Ok(false);
            };
            sqlx::query(
                "INSERT INTO telegram_link_codes (code_hash, account_id, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(code_hash)
            .bind(account)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_as("telegram link code already exists".into()))?;
            tx.commit().await.map_err(unavailable)?;
            Ok(true)
        }

        pub(super) async fn redeem_telegram_link_code(
            pool: &$pool,
            code_hash: &str,
            telegram_user_id: i64,
            now: i64,
        ) -> StoreResult<Option<String>> {
            let mut tx = write_tx(pool).await?;
            let account: Option<i64> = sqlx::query_scalar(
                "UPDATE telegram_link_codes SET used_at = $2
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2
                 RETURNING account_id",
            )
            .bind(code_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            let Some(account) = account else {
                return Ok(None);
            };
            link(&mut tx, account, telegram_user_id).await?;
            let email: Option<String> = sqlx::query_scalar("SELECT email FROM accounts WHERE id = $1")
                .bind(account)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(email)
        }

        fn message_from_row(r: &$row) -> TelegramMessage {
            TelegramMessage {
                nonce_hash: r.get("nonce_hash"),
                txn_id: r.get("txn_id"),
                chat_id: r.get("chat_id"),
                message_id: r.get("message_id"),
                text: r.get("text"),
                offers_grant: r.get::<i64, _>("offers_grant") != 0,
                approve_url: r.get("approve_url"),
                shown: r.get("shown"),
                closed: r.get::<i64, _>("closed") != 0,
                attempts: saturating_u32(r.get("attempts")),
                next_attempt_at: r.get("next_attempt_at"),
                created_at: r.get("created_at"),
            }
        }

        pub(super) async fn create_telegram_message(pool: &$pool, m: &TelegramMessage) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO telegram_messages (nonce_hash, txn_id, chat_id, message_id, text, offers_grant, shown, closed, attempts, next_attempt_at, created_at, approve_url)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&m.nonce_hash)
            .bind(&m.txn_id)
            .bind(&m.chat_id)
            .bind(m.message_id)
            .bind(&m.text)
            .bind(i64::from(m.offers_grant))
            .bind(&m.shown)
            .bind(i64::from(m.closed))
            .bind(i64::from(m.attempts))
            .bind(m.next_attempt_at)
            .bind(now_ms())
            .bind(&m.approve_url)
            .execute(pool)
            .await
            .map_err(conflict_as("telegram message already exists".into()))?;
            Ok(())
        }

        pub(super) async fn telegram_message(
            pool: &$pool,
            nonce_hash: &str,
        ) -> StoreResult<Option<TelegramMessage>> {
            Ok(
                sqlx::query("SELECT * FROM telegram_messages WHERE nonce_hash = $1")
                    .bind(nonce_hash)
                    .fetch_optional(pool)
                    .await
                    .map_err(unavailable)?
                    .as_ref()
                    .map(message_from_row),
            )
        }

        pub(super) async fn open_telegram_messages(
            pool: &$pool,
            now: i64,
            limit: u32,
        ) -> StoreResult<Vec<TelegramMessage>> {
            Ok(sqlx::query(
                "SELECT * FROM telegram_messages WHERE closed = 0 AND next_attempt_at <= $1
                 ORDER BY created_at, nonce_hash LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(message_from_row)
            .collect())
        }

        pub(super) async fn update_telegram_message(
            pool: &$pool,
            m: &TelegramMessage,
        ) -> StoreResult<bool> {
            let n = sqlx::query(
                "UPDATE telegram_messages SET message_id = $2, shown = $3, closed = $4, attempts = $5, next_attempt_at = $6
                 WHERE nonce_hash = $1",
            )
            .bind(&m.nonce_hash)
            .bind(m.message_id)
            .bind(&m.shown)
            .bind(i64::from(m.closed))
            .bind(i64::from(m.attempts))
            .bind(m.next_attempt_at)
            .execute(pool)
            .await
            .map_err(unavailable)?
            .rows_affected();
            Ok(n > 0)
        }
    };
}

pub(crate) use telegram_queries;
