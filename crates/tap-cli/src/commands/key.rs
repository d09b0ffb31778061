//! `tap key rotate [--reencrypt] [--new-key-file F]`: a new master key. Every
//! team's data key and the MAC key are re-wrapped in one store transaction
//! (with `--reencrypt`, every team gets a new data key and every value is
//! re-sealed under it in that transaction); agent keys, admin tokens and the
//! audit chain stay valid; the old master key no longer opens the store.
//! Running proxies whose key comes from a file or command pick the new key
//! up from it. The new key is written before the store changes,
//! so a crash never leaves a store whose key exists nowhere.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tap_core::crypto::MasterKey;
use tap_proxy::ops::Ops as Admin;

use super::emit;
use crate::env::{Globals, KeySource};

/// Writes `key` as hex to a new file (0600), synced.
fn write_new_key(path: &Path, key: &MasterKey) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist)", path.display()))?;
    f.write_all(key.to_hex().as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

pub(crate) async fn rotate(
    g: &Globals,
    new_key_file: Option<PathBuf>,
    reencrypt: bool,
) -> Result<ExitCode> {
    let store = g.open_store(false).await?;
    let (old, source) = g.require_key()?;
    let admin = Admin::open(store, old).await?;
    let old_id = admin.keys.kek_id();
    let new = MasterKey::generate().context("random source unavailable")?;
    let new_id = new.key_id();
    // Where the new key goes, decided (and written) before the store changes.
    let (written, replace) = match (&new_key_file, &source) {
        (Some(f), _) => (f.clone(), None),
        (None, KeySource::DataDir(path)) => {
            let mut staged = path.clone().into_os_string();
            staged.push(".new");
            (PathBuf::from(staged), Some(path.clone()))
        }
        (None, _) => bail!(
            "the master key comes from TAP_MASTER_KEY, TAP_MASTER_KEY_FILE or TAP_MASTER_KEY_COMMAND; \
             give --new-key-file FILE for the new key and point that source at it before the next start (nothing was changed)"
        ),
    };
    write_new_key(&written, &new)?;
    let rotation = match admin
        .keys
        .rotate(admin.store.as_ref(), new, reencrypt)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&written);
            return Err(e).context("the rotation was not applied; the old key still works");
        }
    };
    let key_file = match replace {
        Some(target) => {
            std::fs::rename(&written, &target).with_context(|| {
                format!(
                    "the store now needs the new key, which is in {}; move it to {}",
                    written.display(),
                    target.display()
                )
            })?;
            if let Some(dir) = target.parent()
                && let Ok(d) = std::fs::File::open(dir)
            {
                let _ = d.sync_all();
            }
            target
        }
        None => written,
    };
    emit(
        g,
        &json!({
            "rotated": true,
            "old_key_id": old_id,
            "key_id": new_id,
            "key_file": key_file.display().to_string(),
            "reencrypted": reencrypt,
            "new_data_keys": rotation.new_deks,
            "resealed_values": rotation.resealed,
        }),
        || {
            let sealed = if reencrypt {
                format!(
                    "\n{} team data keys replaced, {} values re-sealed.",
                    rotation.new_deks, rotation.resealed
                )
            } else {
                String::new()
            };
            format!(
                "master key rotated: key id {old_id} -> {new_id}\nthe new key is in {}; the old key no longer opens the store.{sealed}\n\
                 Running proxies keep serving and take the new key from their key file or command; \
                 a proxy given the key in TAP_MASTER_KEY must be restarted with the new key before it changes credentials or teams.",
                key_file.display()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
