//! Policies, grants, members, admin tokens, links, channels and approvals
//! from the terminal: each command a thin adapter over the admin service
//! (`tap_proxy::ops`), printing the same typed view the admin API answers.
//!
//! The local operator holds the master key, so they act as an owner of the
//! team named by `--team` (`Ops::operator_scope`).

mod approvals;
mod channel;
mod grant;
mod link;
mod member;
mod policy;
mod token;

use anyhow::Result;
use serde::Serialize;
use tap_proxy::ops::{Ops, Scope};

use crate::env::Globals;

pub(crate) use approvals::{decide, pending, pending_show};
pub(crate) use channel::channel;
pub(crate) use grant::grant;
pub(crate) use link::link;
pub(crate) use member::member;
pub(crate) use policy::policy;
pub(crate) use token::token;

/// Opens the store and the operator's scope in `--team` (as `as_email` when
/// given, for approval decisions).
async fn operator(g: &Globals, as_email: Option<&str>) -> Result<(Ops, Scope)> {
    let store = g.open_store(false).await?;
    let (key, _) = g.require_key()?;
    let ops = Ops::open(store, key).await?;
    let scope = ops.operator_scope(&g.team, as_email).await?;
    Ok((ops, scope))
}

/// Prints a view: its JSON with `--json`, else the pretty form.
fn emit<T: Serialize>(g: &Globals, view: &T, pretty: impl FnOnce() -> String) -> Result<()> {
    if g.json {
        println!("{}", serde_json::to_string(view)?);
    } else {
        println!("{}", pretty());
    }
    Ok(())
}
