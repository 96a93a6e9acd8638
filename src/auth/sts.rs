//! Temporary AWS keys from STS `AssumeRoleWithWebIdentity`: the workload's token (read
//! again for each call, since the kubelet rotates it) for keys that live until their
//! `Expiration`.
//!
//! The call is a form POST and the answer XML, both small and fixed, so this is a request
//! builder and [`roxmltree`] (no DTDs, no entity expansion, no dependencies) rather than
//! the AWS SDK's STS client, which would bring its own HTTP stack and runtime.

use std::sync::Arc;

use aws_credential_types::Credentials as SdkCredentials;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use zeroize::Zeroizing;

use super::lifetime::until_rfc3339;
use super::token_cache::{Issue, Issued};
use super::token_client::{TokenClient, TokenError};
use crate::config::spec::WebIdentitySpec;
use crate::secret::Secret;

/// AWS keys ready to sign with.
#[derive(Clone)]
pub struct AwsKeys {
    /// What the signer takes: the key id, the secret key and the session token.
    pub identity: Identity,
    /// The session token again, to keep it out of responses (the signer sends it).
    pub session_token: Option<Secret>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKeys").finish_non_exhaustive()
    }
}

impl AwsKeys {
    pub fn new(
        access_key_id: &str,
        secret_access_key: &Secret,
        session_token: Option<&Secret>,
    ) -> Self {
        let credentials = SdkCredentials::new(
            access_key_id,
            secret_access_key.expose(),
            session_token.map(|token| token.expose().to_owned()),
            None,
            "credproxy",
        );
        Self {
            identity: credentials.into(),
            session_token: session_token.cloned(),
        }
    }
}

#[derive(Debug)]
pub struct StsIssuer {
    pub spec: WebIdentitySpec,
}

impl StsIssuer {
    pub fn new(spec: WebIdentitySpec) -> Self {
        Self { spec }
    }

    fn request(&self) -> Result<Request<Full<Bytes>>, TokenError> {
        let token = self.spec.token.read().map_err(TokenError::Request)?;
        let form = Zeroizing::new(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("Action", "AssumeRoleWithWebIdentity")
                .append_pair("Version", "2011-06-15")
                .append_pair("RoleArn", &self.spec.role_arn)
                .append_pair("RoleSessionName", &self.spec.session_name)
                .append_pair("WebIdentityToken", token.expose())
                .finish(),
        );
        Request::builder()
            .method(Method::POST)
            .uri(self.spec.sts_endpoint.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "text/xml")
            .body(Full::new(Bytes::copy_from_slice(form.as_bytes())))
            .map_err(|_| TokenError::Request("the STS request is not valid HTTP".into()))
    }
}

impl Issue for StsIssuer {
    type Value = Arc<AwsKeys>;
    type Client = TokenClient;

    /// STS takes no subject: the keys are the workload's.
    async fn issue(
        &self,
        client: &TokenClient,
        _subject: Option<&Secret>,
    ) -> Result<Issued<Arc<AwsKeys>>, TokenError> {
        let request = self.request()?;
        let (status, body) = client.send(request, None).await?;
        parse_response(status, &body)
    }
}

/// `<Credentials>` of a 2xx answer, or the `<Code>` of an error.
fn parse_response(status: StatusCode, body: &[u8]) -> Result<Issued<Arc<AwsKeys>>, TokenError> {
    let invalid = TokenError::InvalidResponse {
        status: status.as_u16(),
    };
    let text = std::str::from_utf8(body).ok();
    let document = text.and_then(|text| roxmltree::Document::parse(text).ok());
    let element = |name: &str| {
        document.as_ref().and_then(|document| {
            document
                .descendants()
                .find(|node| node.has_tag_name(name))
                .and_then(|node| node.text())
                .map(str::trim)
        })
    };
    if !status.is_success() {
        return Err(TokenError::refused(status, element("Code")));
    }
    let credentials = (
        element("AccessKeyId"),
        element("SecretAccessKey"),
        element("SessionToken"),
        element("Expiration"),
    );
    let (Some(key_id), Some(secret), Some(session_token), Some(expiration)) = credentials else {
        return Err(invalid);
    };
    let lifetime = until_rfc3339(expiration).ok_or(invalid.clone())?;
    let plausible = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
    if !(plausible(key_id) && plausible(secret) && plausible(session_token)) {
        return Err(invalid);
    }
    let keys = AwsKeys::new(
        key_id,
        &Secret::new(secret),
        Some(&Secret::new(session_token)),
    );
    Ok(Issued {
        value: Arc::new(keys),
        lifetime,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn answer(expiration: &str) -> String {
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE123</AccessKeyId>
      <SecretAccessKey>very/secret+key</SecretAccessKey>
      <SessionToken>session-token-value</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#
        )
    }

    #[test]
    fn reads_the_keys_and_their_expiration() {
        let expiration =
            humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(3600));
        let issued = parse_response(StatusCode::OK, answer(&expiration.to_string()).as_bytes())
            .expect("keys");
        assert!((3590..=3600).contains(&issued.lifetime.as_secs()));
        let credentials = issued
            .value
            .identity
            .data::<SdkCredentials>()
            .expect("credentials");
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE123");
        assert_eq!(credentials.secret_access_key(), "very/secret+key");
        assert_eq!(credentials.session_token(), Some("session-token-value"));
        assert_eq!(
            issued.value.session_token.as_ref().map(Secret::expose),
            Some("session-token-value")
        );
    }

    #[test]
    fn errors_name_the_status_and_code_only() {
        let body = br#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>
  <Message>Couldn't retrieve verification key from your identity provider</Message></Error>
  <RequestId>c6104cbe</RequestId></ErrorResponse>"#;
        assert_eq!(
            parse_response(StatusCode::BAD_REQUEST, body).map(|_| ()),
            Err(TokenError::Refused {
                status: 400,
                error: Some("InvalidIdentityToken".into())
            })
        );
        let odd_code =
            b"<ErrorResponse><Error><Code>not a code: secret</Code></Error></ErrorResponse>";
        assert_eq!(
            parse_response(StatusCode::FORBIDDEN, odd_code).map(|_| ()),
            Err(TokenError::Refused {
                status: 403,
                error: None
            })
        );
    }

    #[test]
    fn refuses_what_is_not_a_usable_answer() {
        let past = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(1));
        let doctype = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><a>&lol;</a>"#;
        for body in [
            answer(&past.to_string()),
            answer("tomorrow"),
            "<AccessKeyId>only</AccessKeyId>".to_owned(),
            doctype.to_owned(),
            "not xml".to_owned(),
        ] {
            assert_eq!(
                parse_response(StatusCode::OK, body.as_bytes()).map(|_| ()),
                Err(TokenError::InvalidResponse { status: 200 }),
                "{body}"
            );
        }
    }
}
