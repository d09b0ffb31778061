//! Validation of names that appear in URLs, headers and CLI arguments.

/// Errors for names. The message names the rule, never more than the bad input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// A credential, agent or role name breaks `^[a-z0-9][a-z0-9_-]{0,63}$`.
    #[error(
        "invalid {kind} name {name:?}: use 1-64 chars of a-z, 0-9, '_' and '-', starting with a letter or digit"
    )]
    Invalid {
        /// What was being named.
        kind: &'static str,
        /// The rejected input, truncated.
        name: String,
    },
    /// A team slug breaks `^[a-z0-9][a-z0-9-]{0,63}$`.
    #[error(
        "invalid team slug {0:?}: use 1-64 chars of a-z, 0-9 and '-', starting with a letter or digit"
    )]
    Slug(String),
    /// An e-mail address without exactly one '@' and a dot in the domain.
    #[error("invalid email address {0:?}")]
    Email(String),
}

fn truncated(s: &str) -> String {
    s.chars().take(80).collect()
}

fn check(s: &str, allow_underscore: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == b'-'
                || (allow_underscore && c == b'_')
        })
}

/// Validates a credential name, agent id or role name.
pub fn validate_name(kind: &'static str, s: &str) -> Result<(), NameError> {
    if check(s, true) {
        Ok(())
    } else {
        Err(NameError::Invalid {
            kind,
            name: truncated(s),
        })
    }
}

/// Validates a team slug.
pub fn validate_slug(s: &str) -> Result<(), NameError> {
    if check(s, false) {
        Ok(())
    } else {
        Err(NameError::Slug(truncated(s)))
    }
}

/// Validates and lower-cases an e-mail address.
pub fn normalize_email(s: &str) -> Result<String, NameError> {
    let e = s.trim().to_ascii_lowercase();
    let valid = e.len() <= 254
        && e.matches('@').count() == 1
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && e.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(e)
    } else {
        Err(NameError::Email(truncated(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_names_and_rejects_others() {
        for ok in ["slack", "a", "git_hub-2", &"a".repeat(64)] {
            assert!(validate_name("credential", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Slack", "_x", "-x", "a b", "a/b", &"a".repeat(65), "ä"] {
            assert!(validate_name("credential", bad).is_err(), "{bad}");
        }
        assert!(validate_slug("acme-corp").is_ok());
        assert!(validate_slug("acme_corp").is_err());
        assert_eq!(
            normalize_email(" Admin@Example.COM ").unwrap(),
            "admin@example.com"
        );
        assert!(normalize_email("nope").is_err());
        assert!(normalize_email("a@b").is_err());
    }
}
