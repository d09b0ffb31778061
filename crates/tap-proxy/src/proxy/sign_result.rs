//! The signing half of `POST /sign` (SPEC §6.4, §15), apart from the
//! handler so the approval executor can sign an approved request: body
//! decoding, key checks and the stored answer.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use tap_signer::keys::{KeyError, algorithm_of};

use crate::directory::CredentialEntry;
use crate::error::{ProxyError, Reason};

/// The body of `POST /sign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    payload: String,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // Shown to the approver in the captured body.
    payload_description: Option<String>,
}

fn invalid(detail: impl Into<String>) -> ProxyError {
    ProxyError::new(Reason::InvalidRequest, detail)
}

/// The payload bytes of a `/sign` body.
pub(crate) fn payload(body: &[u8]) -> Result<Vec<u8>, ProxyError> {
    let b: SignBody = serde_json::from_slice(body).map_err(|_| {
        invalid("the body must be JSON {\"payload\", \"encoding\": \"hex\"|\"base64\", \"payload_description\"?}")
    })?;
    match b.encoding.as_deref().unwrap_or("hex") {
        "hex" => hex_decode(b.payload.trim()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(b.payload.trim())
            .map_err(|_| invalid("payload is not valid base64")),
        _ => Err(invalid("encoding must be hex or base64")),
    }
}

fn hex_decode(s: &str) -> Result<Vec<u8>, ProxyError> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("payload is not valid hex"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| invalid("payload is not valid hex"))
        })
        .collect()
}

fn key_error(name: &str, e: &KeyError) -> ProxyError {
    ProxyError::new(
        Reason::CredentialFieldMissing,
        format!("signing key {name} is not usable: {e}"),
    )
    .with("credential", name)
}

/// The key's algorithm, when the credential is a usable signing key.
pub(crate) fn usable_key(
    credential: &CredentialEntry,
) -> Result<tap_signer::keys::Algorithm, ProxyError> {
    let name = credential.name.as_str();
    let value = match &credential.value {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Err(ProxyError::new(
                Reason::CredentialValueMissing,
                format!("credential {name} has no value set"),
            )
            .with("credential", name));
        }
        Err(_) => {
            return Err(ProxyError::new(
                Reason::Internal,
                "credential value could not be opened",
            ));
        }
    };
    if !credential.signing_key {
        return Err(invalid(format!(
            "credential {name} is not a signing key ({{\"algorithm\", \"private_key\"}}); use POST /forward"
        ))
        .with("credential", name));
    }
    algorithm_of(value).map_err(|e| key_error(name, &e))
}

/// Signs an approved `/sign` request (called by the executor after its
/// re-checks): the stored answer of the approval, and its (status,
/// upstream ms, scrubbed) for the audit row.
pub(crate) fn sign_approved(
    credential: &CredentialEntry,
    body: &[u8],
) -> Result<(String, (u16, f64, bool)), ProxyError> {
    usable_key(credential)?;
    let Ok(Some(value)) = &credential.value else {
        return Err(ProxyError::new(
            Reason::CredentialValueMissing,
            "the signing key has no value",
        ));
    };
    let payload = payload(body)?;
    let signed =
        tap_signer::keys::sign(value, &payload).map_err(|e| key_error(&credential.name, &e))?;
    let answer = json!({
        "algorithm": signed.algorithm.as_str(),
        "signature": signed.signature,
        "public_key": signed.public_key,
    })
    .to_string();
    let stored = json!({
        "status": 200,
        "headers": [["content-type", "application/json"]],
        "body": answer,
        "body_encoding": "utf-8",
    })
    .to_string();
    Ok((stored, (200, 0.0, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_decode_from_hex_and_base64_and_refuse_garbage() {
        assert_eq!(payload(br#"{"payload":"0a0B"}"#).unwrap(), [10, 11]);
        assert_eq!(
            payload(br#"{"payload":"0x0a","encoding":"hex"}"#).unwrap(),
            [10]
        );
        assert_eq!(
            payload(br#"{"payload":"aGk=","encoding":"base64","payload_description":"d"}"#)
                .unwrap(),
            b"hi"
        );
        for bad in [
            &br#"{"payload":"0g"}"#[..],
            br#"{"payload":"abc"}"#,
            br#"{"payload":"zz"}"#,
            br#"{"payload":"aa","encoding":"utf8"}"#,
            br#"{"payload":"aa","extra":1}"#,
            b"not json",
        ] {
            assert_eq!(payload(bad).unwrap_err().reason, Reason::InvalidRequest);
        }
    }
}
