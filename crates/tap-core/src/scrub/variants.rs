//! The encodings a secret travels in: each [`Variant`] turns one secret into
//! at most one pattern to match.

use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::{Zeroize, Zeroizing};

/// An in-base64 alignment variant is used only when its fixed core has at
/// least this many characters (SPEC §7): shorter cores match random base64.
pub const ALIGNED_MIN_CORE_CHARS: usize = 8;

/// An encoding of a secret that is matched.
///
/// Variants are data: [`ALL_VARIANTS`] is the table pattern generation walks,
/// and [`Variant::encode`] turns one variant and one secret into at most one
/// pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The raw bytes.
    Exact,
    /// Base64, standard alphabet, padded.
    Base64Std,
    /// Base64, standard alphabet, no padding.
    Base64StdUnpadded,
    /// Base64, URL-safe alphabet, padded.
    Base64Url,
    /// Base64, URL-safe alphabet, no padding.
    Base64UrlUnpadded,
    /// Every byte outside RFC 3986 unreserved (`A-Za-z0-9-._~`) as `%XX`, upper-case hex.
    PercentUpper,
    /// Every byte outside RFC 3986 unreserved as `%xx`, lower-case hex.
    PercentLower,
    /// JSON string content exactly as `serde_json` writes it (no quotes); UTF-8 secrets only.
    JsonEscaped,
    /// As [`Variant::JsonEscaped`] with `/` written as `\/`.
    JsonEscapedSlash,
    /// JSON string content with `"` and `\` escaped and every char outside
    /// printable ASCII (`' '..='~'`) as `\uxxxx` (lower-case hex, UTF-16
    /// surrogate pairs for astral chars); UTF-8 secrets only.
    JsonUnicode,
    /// Hex, lower case.
    HexLower,
    /// Hex, upper case.
    HexUpper,
    /// The characters of the standard-alphabet base64 of a longer string that
    /// depend only on the secret, when the secret starts at byte offset `k`
    /// (mod 3) of that string. Only `k` in `0..=2` is meaningful.
    Base64StdAligned(u8),
    /// As [`Variant::Base64StdAligned`] with the URL-safe alphabet.
    Base64UrlAligned(u8),
}

/// Every variant, including the three alignments for both base64 alphabets.
/// [`Scrubber::new`] and [`Scrubber::leak_detector`] derive patterns from this table.
///
/// [`Scrubber::new`]: super::Scrubber::new
/// [`Scrubber::leak_detector`]: super::Scrubber::leak_detector
pub const ALL_VARIANTS: &[Variant] = &[
    Variant::Exact,
    Variant::Base64Std,
    Variant::Base64StdUnpadded,
    Variant::Base64Url,
    Variant::Base64UrlUnpadded,
    Variant::PercentUpper,
    Variant::PercentLower,
    Variant::JsonEscaped,
    Variant::JsonEscapedSlash,
    Variant::JsonUnicode,
    Variant::HexLower,
    Variant::HexUpper,
    Variant::Base64StdAligned(0),
    Variant::Base64StdAligned(1),
    Variant::Base64StdAligned(2),
    Variant::Base64UrlAligned(0),
    Variant::Base64UrlAligned(1),
    Variant::Base64UrlAligned(2),
];

impl Variant {
    /// The pattern this variant derives from `secret`, or `None` when the
    /// variant does not apply: an empty secret, a JSON variant of bytes that
    /// are not UTF-8, an alignment core shorter than
    /// [`ALIGNED_MIN_CORE_CHARS`] (or an alignment outside `0..=2`), or a
    /// non-exact variant whose encoding equals the raw bytes (it adds nothing).
    /// The result holds secret-derived bytes and is zeroed on drop.
    pub fn encode(self, secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if secret.is_empty() {
            return None;
        }
        let encoded = match self {
            Variant::Exact => return Some(Zeroizing::new(secret.to_vec())),
            Variant::Base64Std => base64_whole(&STANDARD, secret),
            Variant::Base64StdUnpadded => base64_whole(&STANDARD_NO_PAD, secret),
            Variant::Base64Url => base64_whole(&URL_SAFE, secret),
            Variant::Base64UrlUnpadded => base64_whole(&URL_SAFE_NO_PAD, secret),
            Variant::PercentUpper => percent(secret, HEX_UPPER),
            Variant::PercentLower => percent(secret, HEX_LOWER),
            Variant::JsonEscaped => json_escaped(secret)?,
            Variant::JsonEscapedSlash => json_escaped_slash(secret)?,
            Variant::JsonUnicode => json_unicode(secret)?,
            Variant::HexLower => Zeroizing::new(hex::encode(secret).into_bytes()),
            Variant::HexUpper => Zeroizing::new(hex::encode_upper(secret).into_bytes()),
            Variant::Base64StdAligned(k) => base64_aligned(&STANDARD_NO_PAD, secret, k)?,
            Variant::Base64UrlAligned(k) => base64_aligned(&URL_SAFE_NO_PAD, secret, k)?,
        };
        (encoded.as_slice() != secret).then_some(encoded)
    }
}

impl Variant {
    /// True for the variants the decoder also walks (the raw bytes and the
    /// base64 encodings): their escaped or line-wrapped forms are found by
    /// decoding. The percent and JSON variants are escaped forms of the raw
    /// bytes, found by decoding anyway; hex has nothing to escape.
    pub(super) fn is_decoded_form(self) -> bool {
        !matches!(
            self,
            Variant::PercentUpper
                | Variant::PercentLower
                | Variant::JsonEscaped
                | Variant::JsonEscapedSlash
                | Variant::JsonUnicode
                | Variant::HexLower
                | Variant::HexUpper
        )
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn base64_whole(engine: &GeneralPurpose, secret: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(engine.encode(secret).into_bytes())
}

/// The base64 characters fully determined by `secret` when it sits at byte
/// offset `k` of a 3-byte group. Character `i` covers bits `6i..6i+6`; the
/// secret covers bits `8k..8(k+n)`, so the characters wholly inside are
/// `ceil(8k/6)..floor(8(k+n)/6)`, whatever bytes surround the secret.
fn base64_aligned(engine: &GeneralPurpose, secret: &[u8], k: u8) -> Option<Zeroizing<Vec<u8>>> {
    if k > 2 {
        return None;
    }
    let k = usize::from(k);
    let mut shifted = Zeroizing::new(vec![0u8; k]);
    shifted.extend_from_slice(secret);
    let encoded = Zeroizing::new(engine.encode(shifted.as_slice()).into_bytes());
    let start = (8 * k).div_ceil(6);
    let end = 8 * (k + secret.len()) / 6;
    let core = encoded.get(start..end)?;
    (core.len() >= ALIGNED_MIN_CORE_CHARS).then(|| Zeroizing::new(core.to_vec()))
}

fn percent(secret: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(secret.len() * 3));
    for &b in secret {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 0x0f)],
            ]);
        }
    }
    out
}

fn json_escaped(secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(secret).ok()?;
    let quoted = Zeroizing::new(serde_json::to_string(text).ok()?);
    let inner = quoted.get(1..quoted.len().checked_sub(1)?)?;
    Some(Zeroizing::new(inner.as_bytes().to_vec()))
}

fn json_escaped_slash(secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let plain = json_escaped(secret)?;
    let mut out = Zeroizing::new(Vec::with_capacity(plain.len() + 8));
    for &b in plain.iter() {
        // serde_json never escapes `/`, so every `/` in its output is a literal one.
        if b == b'/' {
            out.extend_from_slice(b"\\/");
        } else {
            out.push(b);
        }
    }
    Some(out)
}

fn json_unicode(secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(secret).ok()?;
    let mut out = Zeroizing::new(Vec::with_capacity(secret.len() * 2));
    let mut units = [0u16; 2];
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            ' '..='~' => out.push(c as u8),
            _ => {
                for &unit in c.encode_utf16(&mut units).iter() {
                    out.extend_from_slice(b"\\u");
                    for shift in [12u16, 8, 4, 0] {
                        out.push(HEX_LOWER[usize::from((unit >> shift) & 0x0f)]);
                    }
                }
            }
        }
    }
    units.zeroize();
    Some(out)
}
