//! The approval message: plain text (no parse mode, so nothing a request
//! carries can become markup or a fake button) and its inline keyboard.

use tap_core::approval::ApprovalSummary;
use tap_core::model::{Approval, ApprovalStatus};

use crate::api::{InlineKeyboardButton, InlineKeyboardMarkup};

/// Most characters of the body shown in a message (Telegram's limit is 4096
/// for the whole text); the approval page shows the rest.
pub const MAX_BODY_CHARS: usize = 2000;
/// Minutes an "Approve for 30 min" grant lasts.
pub const GRANT_MINUTES: u32 = 30;

/// Callback data prefix of Approve.
pub const APPROVE: &str = "a:";
/// Callback data prefix of Deny.
pub const DENY: &str = "d:";
/// Callback data prefix of Approve for 30 min.
pub const GRANT: &str = "g:";

pub use tap_core::text::visible;

/// `s` cut to at most `max` characters, on a character boundary.
pub fn cut(s: &str, max: usize) -> (&str, bool) {
    match s.char_indices().nth(max) {
        Some((i, _)) => (&s[..i], true),
        None => (s, false),
    }
}

fn pretty_body(preview: &str) -> String {
    let laid_out = serde_json::from_str::<serde_json::Value>(preview)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| preview.to_owned());
    let (shown, cut_off) = cut(&laid_out, MAX_BODY_CHARS);
    let mut out = visible(shown);
    if cut_off {
        out.push_str("\n… (cut; the approval page shows the whole body)");
    }
    out
}

/// The message body: who asks, for what, where to see it all.
pub fn summary_text(s: &ApprovalSummary) -> String {
    let mut t = format!(
        "TAP: approval needed\n\nTeam: {}\nAgent: {}\nCredential: {}\n{} {}\n",
        visible(&s.team),
        visible(&s.agent_id),
        visible(&s.credential),
        visible(&s.method),
        visible(&s.target),
    );
    if !s.body_preview.is_empty() {
        t.push_str("\nBody:\n");
        t.push_str(&pretty_body(&s.body_preview));
        t.push('\n');
    }
    t.push_str(&format!(
        "\nFull request: {}\nExpires: {}",
        s.approval_url, s.expires_at
    ));
    t
}

/// The state a message should show for `a` at `now`: `pending:N` or an outcome.
pub fn state_of(a: &Approval) -> String {
    match a.status {
        ApprovalStatus::Pending => format!("pending:{}", a.approvers().len()),
        ApprovalStatus::Approved | ApprovalStatus::Forwarding => "approved".into(),
        s => s.as_str().to_owned(),
    }
}

/// True once nothing more will change on the message.
pub fn is_closed_state(state: &str) -> bool {
    !state.starts_with("pending:") && state != "approved"
}

fn deciders(a: &Approval, decision: &str) -> String {
    let who: Vec<String> = a
        .votes
        .iter()
        .filter(|v| v.decision == decision)
        .map(|v| format!("{} ({})", v.email, v.channel))
        .collect();
    if who.is_empty() {
        "nobody".into()
    } else {
        who.join(", ")
    }
}

/// The status line under the summary.
pub fn status_line(a: &Approval) -> String {
    match a.status {
        ApprovalStatus::Pending => format!(
            "Approvals: {}/{}",
            a.approvers().len(),
            a.min_approvals.max(1)
        ),
        ApprovalStatus::Approved | ApprovalStatus::Forwarding => {
            format!("✅ Approved by {}; forwarding…", deciders(a, "approve"))
        }
        ApprovalStatus::Forwarded => {
            format!("✅ Approved by {}; forwarded.", deciders(a, "approve"))
        }
        ApprovalStatus::Denied => format!("❌ Denied by {}.", deciders(a, "deny")),
        ApprovalStatus::TimedOut => "⌛ Expired without a decision.".into(),
        ApprovalStatus::Error => format!(
            "⚠️ Approved by {}; not forwarded ({}).",
            deciders(a, "approve"),
            a.error_code.as_deref().unwrap_or("error")
        ),
    }
}

/// The inline keyboard for a pending approval: Approve / Deny (and Approve
/// for 30 min when offered); for a passkey approval, Approve is a link to the
/// approval page, where the passkey ceremony runs.
pub fn keyboard(
    nonce: &str,
    offers_grant: bool,
    approve_url: Option<&str>,
) -> InlineKeyboardMarkup {
    let button = |text: &str, prefix: &str| InlineKeyboardButton {
        text: text.into(),
        callback_data: Some(format!("{prefix}{nonce}")),
        url: None,
    };
    let approve = match approve_url {
        Some(url) => InlineKeyboardButton {
            text: "Approve with passkey".into(),
            callback_data: None,
            url: Some(url.to_owned()),
        },
        None => button("Approve", APPROVE),
    };
    let mut rows = vec![vec![approve, button("Deny", DENY)]];
    if offers_grant {
        rows.push(vec![button(
            &format!("Approve for {GRANT_MINUTES} min"),
            GRANT,
        )]);
    }
    InlineKeyboardMarkup {
        inline_keyboard: rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary() {
        let s = "ééé";
        assert_eq!(cut(s, 2), ("éé", true));
        assert_eq!(cut(s, 3), ("ééé", false));
    }

    #[test]
    fn hidden_characters_become_visible_escapes() {
        assert_eq!(
            visible("a\u{202E}b\u{200B}c\nd"),
            "a\\u{202E}b\\u{200B}c\nd"
        );
    }

    #[test]
    fn a_json_body_is_laid_out_and_a_long_one_is_cut() {
        assert_eq!(pretty_body(r#"{"a":1}"#), "{\n  \"a\": 1\n}");
        let long = "x".repeat(MAX_BODY_CHARS + 10);
        assert!(pretty_body(&long).ends_with("shows the whole body)"));
    }

    #[test]
    fn the_keyboard_carries_the_nonce_never_anything_else() {
        let k = keyboard("NONCE", true, None);
        let data: Vec<&str> = k
            .inline_keyboard
            .iter()
            .flatten()
            .filter_map(|b| b.callback_data.as_deref())
            .collect();
        assert_eq!(data, vec!["a:NONCE", "d:NONCE", "g:NONCE"]);
        assert_eq!(keyboard("N", false, None).inline_keyboard.len(), 1);
        let passkey = keyboard("N", false, Some("https://tap.example/approve/t1"));
        let first = &passkey.inline_keyboard[0][0];
        assert_eq!(first.url.as_deref(), Some("https://tap.example/approve/t1"));
        assert!(first.callback_data.is_none());
    }
}
