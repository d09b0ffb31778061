//! The admin dashboard (`/dashboard/...`): a team managed in the browser.
//!
//! Every page calls the admin service ([`crate::ops`]) exactly as the admin
//! API does, with the signed-in member's [`Scope`] in the selected team, so
//! the role checks are the API's: a viewer's page shows no form that changes
//! anything, and a forged POST from a viewer's session is refused by the same
//! operation (403). Every POST is a form carrying the session's dashboard
//! CSRF token; success redirects (303) with a one-shot flash message, except
//! where something is shown once (an agent key, a password, a token).
//!
//! The team is chosen by `?team=<slug>` on every URL (GET and form actions
//! alike); without it the member's first team is used.

// Handlers answer a refusal where they find it (`Result<_, Response>`).
#![allow(clippy::result_large_err)]

pub mod agents;
pub mod audit;
pub mod channels;
pub mod credentials;
pub mod grants;
pub mod home;
pub mod links;
pub mod members;
pub mod policies;
pub mod roles;
pub mod status;
pub mod tokens;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::pages::{self, Nav};
use super::session::{MemberCtx, csrf_ok, csrf_token, member, member_teams, nav, secure_attr};
use crate::error::ProxyError;
use crate::ops::{Need, OpsError, Scope};
use crate::state::AppState;

/// CSRF purpose of every dashboard form: the session's page token (also in
/// every page's `tap-csrf` meta tag), bound to the session like all of them.
const CSRF_PURPOSE: &str = "api";
/// The one-shot message cookie shown after a redirect.
const FLASH_COOKIE: &str = "tap_flash";
/// Longest flash message kept (characters).
const MAX_FLASH: usize = 300;

/// Every dashboard route. Pages of other modules (audit, status) merge theirs
/// here too.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(home::routes())
        .merge(credentials::routes())
        .merge(agents::routes())
        .merge(roles::routes())
        .merge(policies::routes())
        .merge(grants::routes())
        .merge(members::routes())
        .merge(links::routes())
        .merge(channels::routes())
        .merge(tokens::routes())
}

/// The query every dashboard URL may carry.
#[derive(Debug, Default, Deserialize)]
pub struct TeamQuery {
    /// The team acted on (a slug of one of the member's teams).
    #[serde(default)]
    pub team: Option<String>,
}

/// What every dashboard page shows around its content (`dashboard/frame.html`).
#[derive(Clone, Debug)]
pub struct Frame {
    /// The section shown (`credentials`, `agents`, …) for the menu.
    pub section: &'static str,
    /// The selected team's slug.
    pub team: String,
    /// The member's teams (the team switcher).
    pub teams: Vec<String>,
    /// The member's role in the selected team.
    pub role: &'static str,
    /// Admin or owner: forms that change things are shown.
    pub can_write: bool,
    /// Owner: member roles and admin tokens may be changed.
    pub is_owner: bool,
    /// The CSRF token every form carries.
    pub csrf: String,
    /// A message left by the last action.
    pub flash: Option<String>,
    /// This page's path (team switcher links keep it).
    pub path: String,
}

impl Frame {
    /// `?team=<slug>` for links and form actions.
    pub fn q(&self) -> String {
        format!("?team={}", self.team)
    }
}

/// A signed-in member acting in one team.
pub struct Dash {
    /// The member.
    pub member: MemberCtx,
    /// Who acts where, for the admin service.
    pub scope: Scope,
    /// The page header.
    pub nav: Nav,
    /// The dashboard frame.
    pub frame: Frame,
    /// `; Secure` when browsers reach the proxy over https.
    secure: &'static str,
}

impl Dash {
    /// The page header, for a template's `nav`.
    pub fn nav(&self) -> Option<Nav> {
        Some(self.nav.clone())
    }

    /// A path in the selected team: `path?team=<slug>`.
    pub fn at(&self, path: &str) -> String {
        format!("{path}{}", self.frame.q())
    }

    /// A refusal of the admin service as a page: the API's status, detail and fix.
    pub fn failed(&self, e: OpsError, back: &str) -> Response {
        let e = ProxyError::from(e);
        refused(Some(self.nav.clone()), &e, &self.at(back))
    }

    /// After a successful action: 303 to `path` in this team, with `flash`.
    pub fn done(&self, path: &str, flash: &str) -> Response {
        let mut resp = Redirect::to(&self.at(path)).into_response();
        let text: String = flash.chars().take(MAX_FLASH).collect();
        let value: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{FLASH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=60{}",
            self.secure
        )) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }

    /// Renders a page; the flash shown is cleared.
    pub fn page(&self, page: &impl askama::Template) -> Response {
        self.page_with(StatusCode::OK, page)
    }

    /// [`Dash::page`] with a status.
    pub fn page_with(&self, status: StatusCode, page: &impl askama::Template) -> Response {
        let mut resp = pages::render(status, page);
        if self.frame.flash.is_some()
            && let Ok(v) = HeaderValue::from_str(&format!(
                "{FLASH_COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0{}",
                self.secure
            ))
        {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }
}

/// A refusal as a page with a way back.
fn refused(nav: Option<Nav>, e: &ProxyError, back: &str) -> Response {
    pages::message(
        e.reason.status(),
        nav,
        "Refused",
        &[&e.message, e.reason.fix()],
        Some((back, "Back")),
    )
}

fn flash(headers: &HeaderMap) -> Option<String> {
    let raw = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == FLASH_COOKIE && !v.is_empty()).then(|| v.to_owned())
        })?;
    let text = url::form_urlencoded::parse(format!("f={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.chars().take(MAX_FLASH).collect::<String>())?;
    (!text.is_empty()).then_some(text)
}

/// Opens a dashboard page: the signed-in member (else the sign-in form) in
/// the selected team (else a refusal), with the frame filled in.
pub async fn enter(
    state: &AppState,
    headers: &HeaderMap,
    team: Option<&str>,
    section: &'static str,
    path: &str,
) -> Result<Dash, Response> {
    let Some(m) = member(state, headers).await else {
        return Err(Redirect::to(&format!("/login?next={}", sign_in_next(path))).into_response());
    };
    let nav = nav(state, &m);
    let teams: Vec<String> = member_teams(state, &m)
        .await
        .into_iter()
        .map(|(t, _, _)| t.slug)
        .collect();
    let wanted = team.map(str::trim).filter(|t| !t.is_empty());
    let scope = match state.ops.member_scope(m.account_id, wanted).await {
        Ok(s) => s,
        Err(e) => {
            let e = ProxyError::from(e);
            return Err(refused(Some(nav), &e, "/dashboard"));
        }
    };
    let frame = Frame {
        section,
        team: scope.team.slug.clone(),
        teams,
        role: scope.role.as_str(),
        can_write: Need::Write.allows(scope.role),
        is_owner: Need::Owner.allows(scope.role),
        csrf: csrf_token(state, &m, CSRF_PURPOSE),
        flash: flash(headers),
        path: path.to_owned(),
    };
    Ok(Dash {
        member: m,
        scope,
        nav,
        frame,
        secure: secure_attr(state),
    })
}

/// Where the sign-in form sends the member back to (paths only; see `safe_next`).
fn sign_in_next(path: &str) -> String {
    if path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
    {
        path.to_owned()
    } else {
        "/dashboard".to_owned()
    }
}

/// A posted form's fields, in order (repeated names kept).
#[derive(Default)]
pub struct FormData(Vec<(String, String)>);

impl std::fmt::Debug for FormData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Fields may hold a credential value or a password.
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Drop for FormData {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for (_, v) in &mut self.0 {
            v.zeroize();
        }
    }
}

impl FormData {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name` as sent (not trimmed), `None` when absent or empty.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every non-blank value of `name` (checkbox groups).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Whether the checkbox `name` is ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A list typed as one field: comma- or line-separated, blanks dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| split_list(v))
            .collect()
    }

    /// A whole number, `None` when blank; `Err` names the field.
    pub fn number(&self, name: &str) -> Result<Option<u32>, OpsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| OpsError::Invalid(format!("{name} must be a whole number"))),
        }
    }
}

/// Splits a typed list on commas and line breaks.
pub fn split_list(v: &str) -> Vec<String> {
    v.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Opens a form post: the member, the CSRF token (else 403, nothing done),
/// the team. The operation called next makes the role check.
pub async fn act(
    state: &AppState,
    headers: &HeaderMap,
    team: Option<&str>,
    section: &'static str,
    path: &str,
    body: &Bytes,
) -> Result<(Dash, FormData), Response> {
    let form = FormData::parse(body);
    let Some(m) = member(state, headers).await else {
        return Err(Redirect::to("/login?next=/dashboard").into_response());
    };
    let presented = form.raw("csrf").unwrap_or_default();
    if !csrf_ok(state, &m, CSRF_PURPOSE, presented) {
        tracing::info!(path = %path, "dashboard form refused: bad csrf token");
        return Err(pages::message(
            StatusCode::FORBIDDEN,
            Some(nav(state, &m)),
            "Refused",
            &[
                "The form expired or did not come from this dashboard; reload the page and try again.",
            ],
            Some((path, "Back")),
        ));
    }
    let dash = enter(state, headers, team, section, path).await?;
    Ok((dash, form))
}

/// A page about a secret shown once (`dashboard/once.html`): an agent key, a
/// generated password, an admin token. Served `Cache-Control: no-store`.
#[derive(askama::Template)]
#[template(path = "dashboard/once.html")]
pub struct OncePage {
    /// Heading.
    pub title: String,
    /// Header.
    pub nav: Option<Nav>,
    /// Frame.
    pub frame: Frame,
    /// What the value is.
    pub label: String,
    /// The value, shown this once.
    pub value: String,
    /// What to do with it.
    pub note: String,
    /// Where to go on.
    pub back: String,
}

/// The confirmation step of a deletion (`dashboard/confirm.html`).
#[derive(askama::Template)]
#[template(path = "dashboard/confirm.html")]
pub struct ConfirmPage {
    /// Heading.
    pub title: String,
    /// Header.
    pub nav: Option<Nav>,
    /// Frame.
    pub frame: Frame,
    /// What will happen.
    pub text: String,
    /// The form's action (with `?team=`).
    pub action: String,
    /// The confirm button's label.
    pub button: String,
    /// Hidden fields the form posts (name, value).
    pub fields: Vec<(String, String)>,
    /// Where "Cancel" goes.
    pub back: String,
}

impl Dash {
    /// The confirmation page of a deletion posting to `action`.
    pub fn confirm(&self, title: &str, text: &str, action: &str, back: &str) -> Response {
        self.confirm_with(title, text, action, back, Vec::new())
    }

    /// [`Dash::confirm`] posting hidden `fields` too.
    pub fn confirm_with(
        &self,
        title: &str,
        text: &str,
        action: &str,
        back: &str,
        fields: Vec<(String, String)>,
    ) -> Response {
        if !self.frame.can_write {
            return self.failed(
                OpsError::Forbidden(format!(
                    "this needs the admin role; you are {} in team {}",
                    self.frame.role, self.frame.team
                )),
                back,
            );
        }
        self.page(&ConfirmPage {
            title: title.to_owned(),
            nav: self.nav(),
            frame: self.frame.clone(),
            text: text.to_owned(),
            action: self.at(action),
            button: "Delete".to_owned(),
            fields,
            back: self.at(back),
        })
    }

    /// The confirmation step of deleting item `name` of the list at `list`
    /// (its page `{list}/{name}`, the form posting to `{list}/{name}/delete`),
    /// once `found` shows it exists; else the refusal, back to the list.
    pub fn confirm_delete<T>(
        &self,
        found: Result<T, OpsError>,
        list: &str,
        name: &str,
        title: &str,
        text: &str,
    ) -> Response {
        if let Err(e) = found {
            return self.failed(e, list);
        }
        let back = format!("{list}/{name}");
        self.confirm(title, text, &format!("{back}/delete"), &back)
    }

    /// The names of the team's credentials, for a form's choices; none when
    /// the member may not list them.
    pub async fn credential_names(&self, state: &AppState) -> Vec<String> {
        state
            .ops
            .credentials(&self.scope)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name)
            .collect()
    }

    /// The names of the team's roles, for a form's choices; none when the
    /// member may not list them.
    pub async fn role_names(&self, state: &AppState) -> Vec<String> {
        state
            .ops
            .roles(&self.scope)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect()
    }

    /// A value shown once.
    pub fn once(
        &self,
        title: &str,
        label: &str,
        value: String,
        note: &str,
        back: &str,
    ) -> Response {
        self.page(&OncePage {
            title: title.to_owned(),
            nav: self.nav(),
            frame: self.frame.clone(),
            label: label.to_owned(),
            value,
            note: note.to_owned(),
            back: self.at(back),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_lines() {
        assert_eq!(
            split_list(" a.example.com, b.example.com\r\n\n*.c.test ,"),
            vec!["a.example.com", "b.example.com", "*.c.test"]
        );
        assert!(split_list(" , \n").is_empty());
    }

    #[test]
    fn form_fields_are_read_as_typed() {
        let f = FormData::parse(b"a=+x+&b=&c=1&c=2&c=&n=12&bad=x1&csrf=t%2Bk");
        assert_eq!(f.get("a").as_deref(), Some("x"));
        assert_eq!(f.get("b"), None);
        assert_eq!(f.all("c"), vec!["1", "2"]);
        assert_eq!(f.number("n").unwrap(), Some(12));
        assert!(f.number("bad").is_err());
        assert_eq!(f.number("missing").unwrap(), None);
        assert_eq!(f.raw("csrf"), Some("t+k"));
        assert!(!format!("{f:?}").contains("t+k"));
    }

    #[test]
    fn sign_in_comes_back_only_to_plain_paths() {
        assert_eq!(sign_in_next("/dashboard/agents"), "/dashboard/agents");
        assert_eq!(sign_in_next("/dashboard/x?y"), "/dashboard");
    }
}
