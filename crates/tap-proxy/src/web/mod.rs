//! Members in the browser (SPEC §11 Web, Passkey): sign-in, the approvals
//! inbox, the approval page, passkeys; compiled templates, one stylesheet
//! and one script, a strict Content-Security-Policy on every page.

pub mod approve;
pub mod assets;
pub mod dashboard;
pub mod inbox;
pub mod pages;
pub mod passkey;
pub mod passkey_login;
pub mod passkey_service;
pub mod session;

pub use session::{MemberCtx, api_error, bearer_member, member};
