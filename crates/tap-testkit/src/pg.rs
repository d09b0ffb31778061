//! A throwaway PostgreSQL schema for tests that run TAP on PostgreSQL.

/// The variable naming the test database (`.ci/run` sets it).
const DATABASE_URL: &str = "DATABASE_URL";

/// A fresh schema in the database `DATABASE_URL` names, dropped with this
/// value: each test sees only its own tables, so tests run in parallel.
pub struct TempPg {
    base: String,
    schema: String,
}

impl TempPg {
    /// A fresh schema; `None` (after printing why the test is skipped) when
    /// `DATABASE_URL` is not a `postgres://` URL.
    pub async fn create() -> Option<Self> {
        let base = match std::env::var(DATABASE_URL) {
            Ok(url) if url.starts_with("postgres") => url,
            _ => {
                eprintln!("skipped: {DATABASE_URL} is not set to a postgres:// URL");
                return None;
            }
        };
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).expect("random");
        let schema = format!(
            "tap_test_{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        run(&base, format!("CREATE SCHEMA {schema}")).await;
        Some(Self { base, schema })
    }

    /// [`TempPg::create`] from synchronous code (a thread with its own runtime).
    pub fn create_blocking() -> Option<Self> {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(Self::create())
        })
        .join()
        .expect("schema thread")
    }

    /// The URL a `tap` process uses (`TAP_DATABASE_URL`): the database with
    /// this schema as its search path.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={}", self.base, self.schema)
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

async fn run(url: &str, sql: String) {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("connect to DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .expect("schema statement");
    pool.close().await;
}

impl Drop for TempPg {
    fn drop(&mut self) {
        let (base, schema) = (self.base.clone(), self.schema.clone());
        // Drop may run inside a test's runtime: drop the schema on a thread of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(run(&base, format!("DROP SCHEMA {schema} CASCADE")));
        })
        .join();
        if dropped.is_err() {
            eprintln!("schema {} was not dropped", self.schema);
        }
    }
}
