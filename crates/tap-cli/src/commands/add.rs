//! `tap add <name>`: add or update a credential (SPEC §10).

use std::process::ExitCode;

use anyhow::{Result, anyhow};
use tap_core::inject::AuthBinding;
use tap_core::model::Connector;
use tap_proxy::ops::CredentialSpec;
use tap_proxy::ops::credentials::{PutCredential, ValueInput};

use super::cred::read_value;
use super::{emit_view, operator};
use crate::AddArgs;
use crate::env::Globals;

fn parse_bindings(a: &AddArgs) -> Result<Vec<AuthBinding>> {
    let mut out = Vec::new();
    for (raw, query) in a
        .bind
        .iter()
        .map(|b| (b, false))
        .chain(a.bind_query.iter().map(|b| (b, true)))
    {
        let (k, f) = raw.split_once('=').ok_or_else(|| {
            anyhow!("binding {raw:?} must look like NAME=FORMAT, e.g. X-Api-Key={{value}}")
        })?;
        out.push(AuthBinding {
            header: (!query).then(|| k.trim().to_owned()),
            query: query.then(|| k.trim().to_owned()),
            format: f.to_owned(),
        });
    }
    Ok(out)
}

pub(super) async fn add(g: &Globals, a: AddArgs) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    let connector: Connector = a
        .connector
        .parse()
        .map_err(|e: tap_core::model::ParseEnumError| anyhow!(e))?;
    let spec = CredentialSpec {
        name: a.name.clone(),
        description: a.description.clone().unwrap_or_default(),
        connector,
        api_base: a.api_base.clone(),
        relative_target: a.relative_target,
        auth_header_format: a.auth_header_format.clone(),
        auth_bindings: parse_bindings(&a)?,
        allowed_hosts: a
            .allowed_host
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
        allow_any_host: a.allow_any_host,
    };
    // The service validates again; this only spares the operator typing a
    // value for a definition that will be refused.
    spec.clone().validate()?;
    let value = read_value(a.value_stdin, &a.name)?.map(ValueInput::from_bytes);
    let put = admin
        .put_credential(
            &scope,
            PutCredential {
                spec,
                keep_description: a.description.is_none(),
                value,
            },
        )
        .await?;
    let c = &put.credential;
    emit_view(g, &put, || {
        format!(
            "{} credential {} in team {} ({})",
            if put.created { "Added" } else { "Updated" },
            c.name,
            scope.team.slug,
            if c.value_set {
                "value set"
            } else {
                "no value yet: tap cred set-value"
            }
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
