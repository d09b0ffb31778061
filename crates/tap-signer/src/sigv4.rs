//! AWS Signature Version 4 with AWS's maintained `aws-sigv4` crate.
//!
//! Signed: the method, the final URL, `host`, the request's `content-type`
//! and `x-amz-*` headers as sent, `x-amz-date` from the injected clock, the
//! session token when the value has one, and the SHA-256 of the exact body
//! forwarded. S3 gets `x-amz-content-sha256`, single URI encoding and no path
//! normalisation, as S3 requires. Region and service come from the value, or
//! from an `*.amazonaws.com` host.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use tap_core::inject::{OutboundRequest, SignError, Signer};
use tap_core::secret::{CredentialValue, Secret};
use tap_core::time::Clock;
use url::Url;

#[cfg(test)]
mod tests;

/// Headers the signer sets itself; an agent's copy is neither signed nor kept.
const OWN_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// The region and service an AWS endpoint host names:
/// `<service>.<region>.amazonaws.com`, `<bucket>.s3.<region>.amazonaws.com`,
/// legacy `s3-<region>.amazonaws.com`, and global endpoints
/// (`iam.amazonaws.com`: `us-east-1`). `None` for any other host.
pub fn scope_from_host(host: &str) -> Option<(String, String)> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let labels: Vec<&str> = rest.split('.').filter(|l| !l.is_empty()).collect();
    let (&last, before) = labels.split_last()?;
    if let Some(region) = last.strip_prefix("s3-").filter(|r| is_region(r)) {
        return Some((region.to_owned(), "s3".to_owned()));
    }
    if is_region(last) {
        let (&service, _) = before.split_last()?;
        return Some((last.to_owned(), service.to_owned()));
    }
    Some(("us-east-1".to_owned(), last.to_owned()))
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`: letters, dashes, a final number.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// Signs requests with AWS keys. Invariant: `Debug` shows region and
/// service only.
pub struct SigV4Signer {
    access_key_id: Secret,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    region: String,
    service: String,
}

impl std::fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

fn text(s: &Secret) -> String {
    String::from_utf8_lossy(s.expose()).into_owned()
}

impl SigV4Signer {
    /// A signer for a JSON value and the target it will sign for (the
    /// region and service default from its host).
    pub fn from_value(value: &CredentialValue, target: &Url) -> Result<Self, SignError> {
        let access_key_id = value
            .field("access_key_id")
            .ok_or(SignError::FieldMissing("access_key_id"))?;
        let secret_access_key = value
            .field("secret_access_key")
            .ok_or(SignError::FieldMissing("secret_access_key"))?;
        let from_host = target.host_str().and_then(scope_from_host);
        let region = value
            .field("region")
            .map(|r| text(&r))
            .or_else(|| from_host.as_ref().map(|(r, _)| r.clone()))
            .ok_or(SignError::FieldMissing("region"))?;
        let service = value
            .field("service")
            .map(|s| text(&s))
            .or_else(|| from_host.map(|(_, s)| s))
            .ok_or(SignError::FieldMissing("service"))?;
        Ok(Self {
            access_key_id,
            secret_access_key,
            session_token: value.field("session_token"),
            region,
            service,
        })
    }

    /// Signs `req` as of `time`: the headers to set.
    pub fn sign_at(
        &self,
        req: &OutboundRequest<'_>,
        time: SystemTime,
    ) -> Result<Vec<(String, Secret)>, SignError> {
        let identity: Identity = Credentials::new(
            text(&self.access_key_id),
            text(&self.secret_access_key),
            self.session_token.as_ref().map(text),
            None,
            "tap",
        )
        .into();
        let mut settings = SigningSettings::default();
        if self.service == "s3" {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|_| SignError::Failed)?
            .into();
        let mut headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .copied()
            .filter(|(n, _)| n.starts_with("x-amz-") && !OWN_HEADERS.contains(n))
            .collect();
        if let Some(ct) = req.content_type {
            headers.push(("content-type", ct));
        }
        let signable = SignableRequest::new(
            req.method,
            req.url.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(req.body),
        )
        .map_err(|_| SignError::Failed)?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|_| SignError::Failed)?
            .into_parts();
        let (out, _) = instructions.into_parts();
        Ok(out
            .into_iter()
            .map(|h| {
                (
                    h.name().to_owned(),
                    Secret::new(h.value().as_bytes().to_vec()),
                )
            })
            .collect())
    }
}

impl Signer for SigV4Signer {
    fn sign(
        &self,
        req: &OutboundRequest<'_>,
        clock: &dyn Clock,
    ) -> Result<Vec<(String, Secret)>, SignError> {
        let ms = u64::try_from(clock.now_ms()).unwrap_or(0);
        self.sign_at(req, UNIX_EPOCH + Duration::from_millis(ms))
    }
}
