//! `aws_sigv4` → an [`AwsSpec`]: where to sign for, and exactly one of static keys or a
//! role assumed with a web identity token (DESIGN §8).

use super::credential::CredentialReader;
use super::spec::{AwsKeySource, AwsSpec, StaticAwsKeys, WebIdentitySpec};
use crate::secret::sensitive_header_value;

/// Bodies up to this size are read and hashed by default.
pub const DEFAULT_MAX_SIGNED_BODY: u64 = 8 * 1024 * 1024;
/// `aws_max_signed_body` may not exceed the process-wide budget for buffered bodies
/// (`transport::BufferedBodies::DEFAULT_BYTES`): one body could never get its share.
pub const MAX_SIGNED_BODY_LIMIT: u64 = 256 * 1024 * 1024;

const STATIC_FIELDS: [&str; 3] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];
const ROLE_FIELDS: [&str; 4] = [
    "aws_role_arn",
    "aws_web_identity_token",
    "aws_role_session_name",
    "aws_sts_endpoint",
];

impl CredentialReader<'_, '_, '_> {
    pub(super) fn aws(&mut self, source_id: &str) -> Option<AwsSpec> {
        let region = self.aws_name("aws_region", "an AWS region name, e.g. us-east-1");
        let service = self.aws_name(
            "aws_service",
            "a service signing name, e.g. s3, execute-api, bedrock, es",
        );
        let max_signed_body = match self.fields.node("aws_max_signed_body") {
            None => Some(DEFAULT_MAX_SIGNED_BODY),
            Some(_) => {
                self.fields
                    .count(self.problems, "aws_max_signed_body", MAX_SIGNED_BODY_LIMIT)
            }
        };
        let unsigned_payload = match self.fields.node("aws_unsigned_payload") {
            None => Some(false),
            Some(_) => self.fields.flag(self.problems, "aws_unsigned_payload"),
        };
        if unsigned_payload == Some(true) && self.fields.node("aws_max_signed_body").is_some() {
            self.fields.report(
                self.problems,
                "aws_max_signed_body",
                "has no effect with aws_unsigned_payload: true, which reads no body; remove one",
            );
        }
        let keys = self.aws_keys(region.as_deref(), source_id);
        Some(AwsSpec {
            region: region?,
            service: service?,
            keys: keys?,
            max_signed_body: max_signed_body?,
            unsigned_payload: unsigned_payload?,
        })
    }

    /// Exactly one of the two ways to get keys.
    fn aws_keys(&mut self, region: Option<&str>, source_id: &str) -> Option<AwsKeySource> {
        let has = |fields: &[&str]| fields.iter().any(|f| self.fields.node(f).is_some());
        match (has(&STATIC_FIELDS), has(&ROLE_FIELDS)) {
            (true, true) => {
                let at = ROLE_FIELDS
                    .into_iter()
                    .find(|f| self.fields.node(f).is_some())
                    .unwrap_or("aws_role_arn");
                self.fields.report(
                    self.problems,
                    at,
                    "static keys (aws_access_key_id, aws_secret_access_key) and a role \
                     (aws_role_arn, aws_web_identity_token) exclude each other; keep one",
                );
                None
            }
            (false, false) => {
                self.fields.report(
                    self.problems,
                    "aws_role_arn",
                    "missing; set aws_access_key_id and aws_secret_access_key, or aws_role_arn \
                     and aws_web_identity_token",
                );
                None
            }
            (true, false) => self.static_keys().map(AwsKeySource::Static),
            (false, true) => self
                .web_identity(region, source_id)
                .map(AwsKeySource::WebIdentity),
        }
    }

    fn static_keys(&mut self) -> Option<StaticAwsKeys> {
        self.require_both(
            ["aws_access_key_id", "aws_secret_access_key"],
            "static keys need",
        );
        // The key id is no secret (every Authorization header shows it), but may be kept
        // in the same place as the key; never remembered as one of the source's secrets.
        let access_key_id = self
            .fields
            .secret(self.problems, self.resolver, "aws_access_key_id");
        let access_key_id = access_key_id.and_then(|id| {
            let text = id.expose();
            let plausible = (16..=128).contains(&text.len())
                && text
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !plausible {
                let message = "is not an AWS access key id (16 to 128 capital letters and digits, \
                               e.g. AKIA…)";
                self.fields
                    .report(self.problems, "aws_access_key_id", message);
            }
            plausible.then(|| text.to_owned())
        });
        let secret_access_key = self.secret("aws_secret_access_key");
        let session_token = match self.fields.node("aws_session_token") {
            None => Some(None),
            Some(_) => self.secret("aws_session_token").and_then(|token| {
                // Sent as X-Amz-Security-Token.
                match sensitive_header_value(token.expose()) {
                    Ok(_) => Some(Some(token)),
                    Err(why) => {
                        self.fields
                            .report(self.problems, "aws_session_token", why.to_string());
                        None
                    }
                }
            }),
        };
        Some(StaticAwsKeys {
            access_key_id: access_key_id?,
            secret_access_key: secret_access_key?,
            session_token: session_token?,
        })
    }

    fn web_identity(&mut self, region: Option<&str>, source_id: &str) -> Option<WebIdentitySpec> {
        self.require_both(["aws_role_arn", "aws_web_identity_token"], "a role needs");
        let role_arn = self
            .fields
            .text(self.problems, "aws_role_arn")
            .and_then(|arn| {
                if is_role_arn(arn) {
                    Some(arn.to_owned())
                } else {
                    let message = "is not an IAM role ARN (arn:aws:iam::123456789012:role/name)";
                    self.fields.report(self.problems, "aws_role_arn", message);
                    None
                }
            });
        let token = self.live_secret("aws_web_identity_token");
        let session_name = match self.fields.node("aws_role_session_name") {
            None => Some(default_session_name(source_id)),
            Some(_) => self
                .fields
                .text(self.problems, "aws_role_session_name")
                .and_then(|name| {
                    if is_session_name(name) {
                        Some(name.to_owned())
                    } else {
                        let message = "must be 2 to 64 letters, digits or any of +=,.@_-";
                        self.fields
                            .report(self.problems, "aws_role_session_name", message);
                        None
                    }
                }),
        };
        let sts_endpoint = match self.fields.node("aws_sts_endpoint") {
            Some(_) => self.url("aws_sts_endpoint"),
            // A region name holds only [a-z0-9-] (checked), so this is a valid URL.
            None => region
                .and_then(|region| format!("https://sts.{region}.amazonaws.com/").parse().ok()),
        };
        Some(WebIdentitySpec {
            role_arn: role_arn?,
            token: token?,
            session_name: session_name?,
            sts_endpoint: sts_endpoint?,
        })
    }

    /// Reports whichever of the two `fields` is missing: "missing; {who_needs} both …".
    fn require_both(&mut self, fields: [&str; 2], who_needs: &str) {
        for field in fields {
            if self.fields.node(field).is_none() {
                let message = format!("missing; {who_needs} both {} and {}", fields[0], fields[1]);
                self.fields.report(self.problems, field, message);
            }
        }
    }

    /// A region or service name: lowercase letters, digits and `-`. They go into the
    /// signature's scope and the default STS host name.
    fn aws_name(&mut self, field: &str, what: &str) -> Option<String> {
        let text = self.fields.text(self.problems, field)?;
        let valid = text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            self.fields
                .report(self.problems, field, format!("is not {what}"));
            return None;
        }
        Some(text.to_owned())
    }
}

/// `arn:<partition>:iam::<account>:role/<path and name>`.
fn is_role_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty())
    )
}

/// STS's rule for `RoleSessionName`: `[\w+=,.@-]{2,64}`.
fn is_session_name(text: &str) -> bool {
    (2..=64).contains(&text.len()) && text.bytes().all(is_session_name_byte)
}

fn is_session_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)
}

/// `credproxy-<source id>`, with what STS would refuse replaced by `-` and cut to its 64.
fn default_session_name(source_id: &str) -> String {
    let mut name: String = format!("credproxy-{source_id}")
        .bytes()
        .map(|b| {
            if is_session_name_byte(b) {
                char::from(b)
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(64);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_and_session_names() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/reader"));
        assert!(is_role_arn(
            "arn:aws-cn:iam::123456789012:role/path/to/reader"
        ));
        for bad in [
            "arn:aws:iam::123456789012:user/bob",
            "arn:aws:iam::12345:role/r",
            "arn:aws:s3:::bucket",
            "role/reader",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert!(!is_role_arn(bad), "{bad}");
        }
        assert_eq!(default_session_name("bedrock"), "credproxy-bedrock");
        assert_eq!(default_session_name("grüne~api"), "credproxy-gr--ne-api");
        let long = default_session_name(&"x".repeat(100));
        assert!(long.len() == 64 && is_session_name(&long));
    }
}
