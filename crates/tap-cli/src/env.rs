//! Where the deployment lives: data dir, master key source, store.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tap_core::crypto::MasterKey;
use tap_core::store::Store;
use tap_store::{PgStore, SqliteStore};

/// Global options shared by every command. `Debug` leaves out the database
/// URL (it may hold a password).
#[derive(Clone)]
pub(crate) struct Globals {
    pub(crate) data_dir: PathBuf,
    pub(crate) database_url: Option<String>,
    pub(crate) team: String,
    pub(crate) json: bool,
}

impl std::fmt::Debug for Globals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Globals")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "[redacted]"),
            )
            .field("team", &self.team)
            .field("json", &self.json)
            .finish()
    }
}

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    Env,
    File(PathBuf),
    Command,
    DataDir(PathBuf),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Globals {
    pub(crate) fn key_file(&self) -> PathBuf {
        self.data_dir.join("master.key")
    }

    /// Reads the master key by SPEC precedence; `None` when no source exists at all.
    pub(crate) fn load_key(&self) -> Result<Option<(MasterKey, KeySource)>> {
        if let Some(v) = env("TAP_MASTER_KEY").or_else(|| env("TAP_ENCRYPTION_KEY")) {
            let k = MasterKey::parse(&v).context("TAP_MASTER_KEY is not a valid key")?;
            return Ok(Some((k, KeySource::Env)));
        }
        if let Some(p) = env("TAP_MASTER_KEY_FILE") {
            let path = PathBuf::from(p);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read TAP_MASTER_KEY_FILE {}", path.display()))?;
            let k = MasterKey::parse(&text).with_context(|| {
                format!(
                    "TAP_MASTER_KEY_FILE {} does not hold a valid key",
                    path.display()
                )
            })?;
            return Ok(Some((k, KeySource::File(path))));
        }
        if let Some(cmd) = env("TAP_MASTER_KEY_COMMAND") {
            let out = Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .output()
                .context("cannot run TAP_MASTER_KEY_COMMAND")?;
            if !out.status.success() {
                bail!("TAP_MASTER_KEY_COMMAND failed with {}", out.status);
            }
            let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&out.stdout).into_owned());
            let k = MasterKey::parse(&text)
                .context("TAP_MASTER_KEY_COMMAND did not print a valid key")?;
            return Ok(Some((k, KeySource::Command)));
        }
        let path = self.key_file();
        if path.exists() {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            );
            let k = MasterKey::parse(&text)
                .with_context(|| format!("{} does not hold a valid key", path.display()))?;
            return Ok(Some((k, KeySource::DataDir(path))));
        }
        Ok(None)
    }

    /// The key, or a clear error saying how to provide it.
    pub(crate) fn require_key(&self) -> Result<(MasterKey, KeySource)> {
        self.load_key()?.ok_or_else(|| {
            anyhow::anyhow!(
                "no master key: {} does not exist and TAP_MASTER_KEY, TAP_MASTER_KEY_FILE and TAP_MASTER_KEY_COMMAND are unset; run `tap init` or set one of them",
                self.key_file().display()
            )
        })
    }

    /// The key, generating `<data-dir>/master.key` (0600) when there is no source at all.
    pub(crate) fn key_or_generate(&self) -> Result<(MasterKey, KeySource)> {
        if let Some(k) = self.load_key()? {
            return Ok(k);
        }
        self.ensure_data_dir()?;
        let key = MasterKey::generate().context("random source unavailable")?;
        let path = self.key_file();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(key.to_hex().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        Ok((key, KeySource::DataDir(path)))
    }

    pub(crate) fn ensure_data_dir(&self) -> Result<()> {
        if !self.data_dir.exists() {
            std::fs::create_dir_all(&self.data_dir)
                .with_context(|| format!("cannot create data dir {}", self.data_dir.display()))?;
            std::fs::set_permissions(&self.data_dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    pub(crate) fn db_path(&self) -> PathBuf {
        self.data_dir.join("tap.db")
    }

    /// Opens the store a first start may initialise: `(store, fresh)` where
    /// `fresh` says the SQLite file did not exist before (remove it with
    /// [`Self::discard_fresh_store`] if initialising fails, so TAP never
    /// leaves a file without its schema). A file that exists, is not empty
    /// and holds no schema is refused: it is a copy taken without its `-wal`
    /// file (or damaged), and initialising it would replace a deployment.
    pub(crate) async fn open_store_for_init(&self) -> Result<(Arc<dyn Store>, bool)> {
        let path = self.db_path();
        let local = self.database_url.is_none();
        let existed_with_data = local && std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        let fresh = local && !path.exists();
        let store = self.open_store(true).await?;
        if existed_with_data && !store.is_initialized().await? {
            bail!(
                "{} exists but holds no TAP store; was it copied without its tap.db-wal file? \
                 Restore a `tap backup` with `tap restore`, or copy tap.db together with tap.db-wal; \
                 nothing was changed",
                path.display()
            );
        }
        Ok((store, fresh))
    }

    /// Removes a store file this process created, after a failed first start.
    pub(crate) fn discard_fresh_store(&self) {
        let path = self.db_path();
        for p in [
            path.clone(),
            path.with_extension("db-wal"),
            path.with_extension("db-shm"),
            path.with_extension("db-lock"),
        ] {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Opens the store (creating the SQLite file when `create`).
    pub(crate) async fn open_store(&self, create: bool) -> Result<Arc<dyn Store>> {
        if let Some(url) = &self.database_url {
            if is_postgres(url) {
                // The database must exist; its schema is created by `tap init`
                // or the first `tap serve`, as for a SQLite file.
                let s = PgStore::connect(url)
                    .await
                    .context("cannot open the PostgreSQL store")?;
                return Ok(Arc::new(s));
            }
            let s = SqliteStore::open_url(url)
                .await
                .context("cannot open the store")?;
            return Ok(Arc::new(s));
        }
        let path = self.db_path();
        if !create && !path.exists() {
            bail!("no store at {}; run `tap init` first", path.display());
        }
        self.ensure_data_dir()?;
        let s = SqliteStore::open(&path)
            .await
            .context("cannot open the store")?;
        Ok(Arc::new(s))
    }
}

/// True for a `postgres://` (or `postgresql://`) URL: the PostgreSQL store.
pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub(crate) fn display(p: &Path) -> String {
    p.display().to_string()
}
