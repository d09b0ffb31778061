//! The real `tap` binary in a temporary data dir.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::TempPg;

/// A temporary TAP deployment driven through the binary.
pub struct TapHome {
    bin: PathBuf,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// The PostgreSQL schema of this deployment, with `TAP_TEST_BACKEND=postgres`.
    _pg: Option<TempPg>,
}

/// Set to `postgres` to run every [`TapHome`] on PostgreSQL (a fresh schema
/// of `DATABASE_URL` each) instead of a SQLite file in its data dir.
pub const TEST_BACKEND: &str = "TAP_TEST_BACKEND";

/// A running `tap serve`.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl TapHome {
    /// A fresh data dir for `bin` (use `env!("CARGO_BIN_EXE_tap")`).
    /// With `TAP_TEST_BACKEND=postgres`, the deployment lives in a fresh
    /// PostgreSQL schema instead (`TAP_DATABASE_URL` set for every command).
    pub fn new(bin: &str) -> Self {
        let mut env = Vec::new();
        let pg = (std::env::var(TEST_BACKEND).as_deref() == Ok("postgres")).then(|| {
            let pg = TempPg::create_blocking()
                .unwrap_or_else(|| panic!("{TEST_BACKEND}=postgres needs DATABASE_URL"));
            env.push(("TAP_DATABASE_URL".to_owned(), pg.url()));
            pg
        });
        Self {
            bin: PathBuf::from(bin),
            dir: tempfile::tempdir().unwrap(),
            env,
            _pg: pg,
        }
    }

    /// True when this deployment runs on PostgreSQL (tests that open the
    /// SQLite file behind TAP's back skip themselves then).
    pub fn on_postgres(&self) -> bool {
        self._pg.is_some()
    }

    /// Runs one statement on the deployment's database behind TAP's back (its
    /// SQLite file, or its PostgreSQL schema); `$1`, `$2`… are `binds`.
    /// Returns the rows affected.
    pub async fn sql_execute(&self, sql: &str, binds: &[&str]) -> u64 {
        use sqlx::Connection as _;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self._pg {
            Some(pg) => {
                let mut c = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(&mut c).await.unwrap().rows_affected()
            }
            None => {
                let mut c = self.sqlite().await;
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(&mut c).await.unwrap().rows_affected()
            }
        }
    }

    /// The first column of the one row `sql` selects, as text (see
    /// [`TapHome::sql_execute`]).
    pub async fn sql_text(&self, sql: &str, binds: &[&str]) -> String {
        use sqlx::Connection as _;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self._pg {
            Some(pg) => {
                let mut c = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
                let mut q = sqlx::query_scalar(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_one(&mut c).await.unwrap()
            }
            None => {
                let mut c = self.sqlite().await;
                let mut q = sqlx::query_scalar(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_one(&mut c).await.unwrap()
            }
        }
    }

    /// Everything the store holds at rest, for canary checks: the SQLite
    /// files (`tap.db`, `-wal`, `-shm`), or every row of every table of the
    /// PostgreSQL schema as text (bytea as escaped text too).
    pub async fn store_bytes(&self) -> Vec<u8> {
        use sqlx::Connection as _;
        let Some(pg) = &self._pg else {
            let mut out = Vec::new();
            for f in ["tap.db", "tap.db-wal", "tap.db-shm"] {
                if let Ok(data) = std::fs::read(self.path(f)) {
                    out.extend(data);
                }
            }
            return out;
        };
        let mut c = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = $1",
        )
        .bind(pg.schema())
        .fetch_all(&mut c)
        .await
        .unwrap();
        let mut out = Vec::new();
        for (table, column, ty) in columns {
            let value = if ty == "bytea" {
                format!("encode({column}, 'escape')")
            } else {
                format!("{column}::text")
            };
            let sql = format!("SELECT coalesce(string_agg({value}, E'\\n'), '') FROM {table}");
            let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut c)
                .await
                .unwrap();
            out.extend(text.into_bytes());
        }
        out
    }

    async fn sqlite(&self) -> sqlx::SqliteConnection {
        use sqlx::ConnectOptions as _;
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.db_path())
            .connect()
            .await
            .unwrap()
    }

    /// Adds an environment variable for every command.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("tap.db")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TAP_DATA_DIR", self.data_dir())
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Starts a command with piped stdout and stderr, for a test that reads
    /// its output as it comes and signals it (the caller reaps it).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs a command with stdin.
    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command with extra environment variables, killing it after `timeout`.
    /// Panics when it does not exit in time.
    pub fn run_bounded(&self, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "tap {args:?} did not exit within {timeout:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tap logs --json`: one audit record per line, oldest first.
    pub fn logs(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["logs", "--json"];
        args.extend_from_slice(extra);
        self.ok(&args)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tap {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a `--json` command that must succeed; returns the parsed JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// `tap init` and returns its JSON.
    pub fn init(&self) -> serde_json::Value {
        self.json(&["init"])
    }

    /// Adds a credential with a value from stdin.
    pub fn add_credential(&self, name: &str, value: &str, extra: &[&str]) {
        let mut args = vec!["add", name, "--value-stdin"];
        args.extend_from_slice(extra);
        let out = self.run_stdin(&args, value.as_bytes());
        assert!(
            out.status.success(),
            "tap add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates an agent and returns its key.
    pub fn agent(&self, id: &str, extra: &[&str]) -> String {
        let mut args = vec!["agent", "create", id];
        args.extend_from_slice(extra);
        self.json(&args)["api_key"].as_str().unwrap().to_owned()
    }

    /// Starts `tap serve` on a free port and waits until it listens.
    pub fn serve(&self) -> Served {
        self.serve_with(&[])
    }

    /// Like [`TapHome::serve`], with extra environment variables for this server only.
    pub fn serve_with(&self, env: &[(&str, &str)]) -> Served {
        self.serve_on("127.0.0.1:0", env)
    }

    /// Like [`TapHome::serve_with`], listening on `listen` (for tests that must
    /// know the port before the server starts, e.g. a WebAuthn origin).
    pub fn serve_on(&self, listen: &str, env: &[(&str, &str)]) -> Served {
        let mut cmd = self.command(&["serve", "--listen", listen]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(url) = line.strip_prefix("TAP proxy listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                    sent = true;
                }
                let mut g = l2.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let l3 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut g = l3.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("tap serve did not start: {}", log.lock().unwrap()));
        Served { child, url, log }
    }

    /// Path of a file in the data dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.data_dir().join(name)
    }

    /// The temp root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Served {
    /// The server's process id (for `/proc/<pid>/status` and the like).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Kills the server with SIGKILL (a crash) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for the exit status code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
