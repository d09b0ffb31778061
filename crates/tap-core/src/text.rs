//! Text as a human must see it before approving: characters that draw
//! nothing, reorder text or break lines invisibly made visible, so a crafted
//! request cannot pretend to be other text (the approval page, the terminal
//! and Telegram messages all use this).

/// True for characters that draw nothing, reorder text or break lines
/// invisibly: controls other than newline and tab, and the format, bidi and
/// separator characters.
pub fn is_hidden(c: char) -> bool {
    if c == '\n' || c == '\t' {
        return false;
    }
    c.is_control()
        || matches!(
            c as u32,
            0x00AD
                | 0x034F
                | 0x0600..=0x0605
                | 0x061C
                | 0x06DD
                | 0x070F
                | 0x08E2
                | 0x115F
                | 0x1160
                | 0x17B4
                | 0x17B5
                | 0x180B..=0x180F
                | 0x200B..=0x200F
                | 0x2028..=0x202E
                | 0x2060..=0x206F
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFEFF
                | 0xFFA0
                | 0xFFF9..=0xFFFB
                | 0x110BD
                | 0x110CD
                | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A
                | 0xE0000..=0xE0FFF
        )
}

/// `s` with every hidden character as a visible `\u{XXXX}` escape.
pub fn visible(s: &str) -> String {
    if !s.chars().any(is_hidden) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_hidden(c) {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_zero_width_and_controls_become_escapes() {
        assert_eq!(visible("a\u{202E}b"), "a\\u{202E}b");
        assert_eq!(visible("x\u{200B}y\u{0007}"), "x\\u{200B}y\\u{0007}");
        assert_eq!(visible("tag\u{E0041}"), "tag\\u{E0041}");
    }

    #[test]
    fn plain_text_newlines_and_tabs_stay() {
        assert_eq!(visible("POST /v1\n\tok é 日本"), "POST /v1\n\tok é 日本");
    }
}
