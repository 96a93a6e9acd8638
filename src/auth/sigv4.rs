//! AWS Signature Version 4 over each request, exactly as it is forwarded: method, upstream
//! URI, headers and the payload's SHA-256, by the AWS SDK's own signer (`aws-sigv4`), with
//! static keys or STS keys from [`super::sts`].
//!
//! This runs last in [`super::inject`], when the URI and every header are final; nothing
//! after it may change a signed header. The caller's own signing headers are dropped
//! first, so a caller can neither pre-sign nor replay a signature through the proxy.

use std::sync::Arc;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use http::request::Parts;
use http::{HeaderName, HeaderValue};

use super::sts::{AwsKeys, StsIssuer};
use super::token_cache::{CredentialCache, Keyed};
use super::token_client::TokenClient;
use super::{AuthError, TokenOutcome};
use crate::config::spec::{AwsKeySource, AwsSpec, AWS_SIGNING_HEADERS};
use crate::transport::{BufferedBodies, CallerBody, Payload};

/// Forwarded but not signed: headers that proxies and clients on the way may rewrite
/// (the SDKs leave out the same), and `expect`, which hyper may answer itself.
const UNSIGNED_HEADERS: [HeaderName; 3] = [
    http::header::USER_AGENT,
    http::header::EXPECT,
    HeaderName::from_static("x-amzn-trace-id"),
];

/// S3's signing names: S3 signs the path as sent, without normalising or re-encoding it.
const S3_SERVICES: [&str; 4] = ["s3", "s3-object-lambda", "s3express", "s3-outposts"];

/// STS keys, cached by the rules of §4.
pub type AssumedKeys = CredentialCache<StsIssuer>;

/// A SigV4 source's signing settings and keys.
#[derive(Debug)]
pub struct AwsSigner {
    pub spec: AwsSpec,
    keys: Keys,
    settings: SigningSettings,
}

#[derive(Debug)]
enum Keys {
    Static(Arc<AwsKeys>),
    Assumed(Arc<AssumedKeys>),
}

impl AwsSigner {
    pub fn new(spec: AwsSpec, source_id: &Arc<str>) -> Self {
        let keys = match &spec.keys {
            AwsKeySource::Static(keys) => Keys::Static(Arc::new(AwsKeys::new(
                &keys.access_key_id,
                &keys.secret_access_key,
                keys.session_token.as_ref(),
            ))),
            AwsKeySource::WebIdentity(role) => Keys::Assumed(Arc::new(CredentialCache::new(
                Arc::clone(source_id),
                StsIssuer::new(role.clone()),
                Keyed::Single,
            ))),
        };
        let mut settings = SigningSettings::default();
        // Filtered here instead (UNSIGNED_HEADERS): with no list, cloning the settings for
        // each request allocates nothing.
        settings.excluded_headers = None;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        if S3_SERVICES.contains(&spec.service.as_str()) {
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        Self {
            spec,
            keys,
            settings,
        }
    }

    /// The STS key cache, for a source with a role.
    pub fn assumed_keys(&self) -> Option<&Arc<AssumedKeys>> {
        match &self.keys {
            Keys::Assumed(cache) => Some(cache),
            Keys::Static(_) => None,
        }
    }

    /// The keys to sign with, and whether they came from the STS cache.
    pub async fn keys(
        &self,
        client: &TokenClient,
    ) -> Result<(Arc<AwsKeys>, TokenOutcome), AuthError> {
        match &self.keys {
            Keys::Static(keys) => Ok((Arc::clone(keys), TokenOutcome::None)),
            Keys::Assumed(cache) => {
                let got = cache.get(client, None).await?;
                Ok((Arc::clone(&got.value), got.outcome))
            }
        }
    }

    /// Signs `parts` as they will be sent, reading the body whole first to hash it unless
    /// the source sends unsigned payloads. The caller's signing headers were dropped by
    /// [`super::inject`].
    pub async fn sign(
        &self,
        parts: &mut Parts,
        keys: &AwsKeys,
        body: CallerBody,
        bodies: &BufferedBodies,
    ) -> Result<Payload, AuthError> {
        let payload = if self.spec.unsigned_payload {
            Payload::Streaming(body)
        } else {
            let limit = self.spec.max_signed_body;
            Payload::Whole(bodies.read(body, limit).await.map_err(AuthError::Body)?)
        };
        let hashed = match &payload {
            Payload::Whole(whole) => Some(&whole.bytes[..]),
            Payload::Streaming(_) => None,
        };
        self.sign_head(parts, keys, hashed)?;
        Ok(payload)
    }

    /// Drops the caller's own signature headers: none of them may reach the upstream.
    pub fn drop_caller_signature(headers: &mut http::HeaderMap) {
        for name in &AWS_SIGNING_HEADERS {
            headers.remove(name);
        }
    }

    /// Writes the signature of `parts` with `body` (its hash is signed), or with
    /// `UNSIGNED-PAYLOAD` for `None`.
    pub fn sign_head(
        &self,
        parts: &mut Parts,
        keys: &AwsKeys,
        body: Option<&[u8]>,
    ) -> Result<(), AuthError> {
        let body = body.map_or(SignableBody::UnsignedPayload, SignableBody::Bytes);
        let failed = |what: &str| AuthError::Sign(what.to_owned());
        let params = v4::SigningParams::builder()
            .identity(&keys.identity)
            .region(&self.spec.region)
            .name(&self.spec.service)
            .time(SystemTime::now())
            .settings(self.settings.clone())
            .build()
            .map_err(|_| failed("incomplete signing parameters"))?
            .into();
        // Values that are not visible ASCII cannot be signed; they are sent unsigned.
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| !UNSIGNED_HEADERS.contains(name))
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let uri = parts.uri.to_string();
        let request = SignableRequest::new(parts.method.as_str(), uri, headers, body)
            .map_err(|_| failed("the upstream URI cannot be signed"))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|_| failed("the signer refused the request"))?
            .into_parts();
        let (headers, _query) = instructions.into_parts();
        for header in headers {
            let name = HeaderName::from_bytes(header.name().as_bytes())
                .map_err(|_| failed("the signer made an invalid header name"))?;
            let mut value = HeaderValue::from_str(header.value())
                .map_err(|_| failed("the signer made an invalid header value"))?;
            value.set_sensitive(header.sensitive() || name == http::header::AUTHORIZATION);
            parts.headers.insert(name, value);
        }
        Ok(())
    }
}
