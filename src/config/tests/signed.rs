//! `aws_sigv4` and `github_app`: what loads, and every combination `check` refuses.

use super::*;
use crate::secret::Secret;

fn aws_of(spec: &Spec, id: &str) -> spec::AwsSpec {
    match &source(spec, id).credential {
        CredentialSpec::AwsSigV4(aws) => (**aws).clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn aws_static_keys_and_a_web_identity_load_with_their_defaults() {
    let dir = identity_dir();
    let text = "sources:\n  s3:\n    upstream: https://s3.eu-west-1.amazonaws.com\n    auth_type: aws_sigv4\n    aws_region: eu-west-1\n    aws_service: s3\n    aws_access_key_id: AKIAIOSFODNN7EXAMPLE\n    aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n    aws_unsigned_payload: true\n  bedrock:\n    upstream: https://bedrock-runtime.us-east-1.amazonaws.com\n    auth_type: aws_sigv4\n    aws_region: us-east-1\n    aws_service: bedrock\n    aws_role_arn: arn:aws:iam::123456789012:role/agents\n    aws_web_identity_token: { file: token }\n    aws_max_signed_body: 1048576\n";
    let spec = load_in(&dir, text).unwrap_or_else(|e| panic!("{e}"));
    let s3 = aws_of(&spec, "s3");
    assert_eq!(
        (s3.region.as_str(), s3.service.as_str()),
        ("eu-west-1", "s3")
    );
    assert!(s3.unsigned_payload);
    assert_eq!(s3.max_signed_body, 8 * 1024 * 1024);
    let spec::AwsKeySource::Static(keys) = &s3.keys else {
        panic!("static")
    };
    assert_eq!(keys.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert!(keys.session_token.is_none());

    let bedrock = aws_of(&spec, "bedrock");
    assert_eq!(
        (bedrock.max_signed_body, bedrock.unsigned_payload),
        (1 << 20, false)
    );
    let spec::AwsKeySource::WebIdentity(role) = &bedrock.keys else {
        panic!("role")
    };
    assert_eq!(role.session_name, "credproxy-bedrock");
    assert_eq!(role.sts_endpoint, "https://sts.us-east-1.amazonaws.com/");
    assert_eq!(role.token, spec::LiveSecret::File(dir.path().join("token")));
    assert!(spec.meta.secret_files.contains(&dir.path().join("token")));
    // The key id is no secret; the secret key is one.
    let secrets: Vec<&str> = source(&spec, "s3")
        .secrets
        .iter()
        .map(Secret::expose)
        .collect();
    assert_eq!(secrets, ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]);
}

#[test]
fn aws_field_combinations_are_checked() {
    let dir = identity_dir();
    let source = |id: &str, fields: &str| {
        format!("  {id}:\n    upstream: https://api.test\n    auth_type: aws_sigv4\n{fields}")
    };
    let region = "    aws_region: us-east-1\n    aws_service: execute-api\n";
    let keys = "    aws_access_key_id: AKIAIOSFODNN7EXAMPLE\n    aws_secret_access_key: hunter2-secret-key\n";
    let text = [
        "sources:\n".to_owned(),
        source("both", &format!("{region}{keys}    aws_role_arn: arn:aws:iam::123456789012:role/r\n")),
        source("neither", region),
        source("no-region", keys),
        source("bad-names", &format!("    aws_region: US East\n    aws_service: s3/x\n{keys}")),
        source("half-static", &format!("{region}    aws_access_key_id: not-a-key-id\n    aws_session_token: hunter2-session\n")),
        source("half-role", &format!("{region}    aws_role_arn: arn:aws:iam::123456789012:user/bob\n    aws_role_session_name: x\n")),
        source("body", &format!("{region}{keys}    aws_max_signed_body: 8MiB\n    aws_unsigned_payload: yes\n")),
        source("too-big", &format!("{region}{keys}    aws_max_signed_body: 999999999999\n")),
        source("pointless", &format!("{region}{keys}    aws_max_signed_body: 10\n    aws_unsigned_payload: true\n")),
        source("own-header", &format!("{region}{keys}    headers: {{ X-Amz-Date: hunter2-header }}\n")),
        source("sts", &format!("{region}    aws_role_arn: arn:aws:iam::123456789012:role/r\n    aws_web_identity_token: {{ file: token }}\n    aws_sts_endpoint: sts.amazonaws.com\n")),
    ]
    .concat();
    let message = load_in(&dir, &text).expect_err("rejected").to_string();
    for expected in [
        "sources.both.aws_role_arn: static keys (aws_access_key_id, aws_secret_access_key) and a role",
        "sources.neither.aws_role_arn: missing; set aws_access_key_id and aws_secret_access_key, or aws_role_arn",
        "sources.no-region.aws_region: missing; the region to sign for",
        "sources.no-region.aws_service: missing",
        "sources.bad-names.aws_region: is not an AWS region name",
        "sources.bad-names.aws_service: is not a service signing name",
        "sources.half-static.aws_secret_access_key: missing; static keys need both",
        "sources.half-static.aws_access_key_id: is not an AWS access key id",
        "sources.half-role.aws_web_identity_token: missing; a role needs both",
        "sources.half-role.aws_role_arn: is not an IAM role ARN",
        "sources.half-role.aws_role_session_name: must be 2 to 64",
        "sources.body.aws_max_signed_body: must be a whole number of bytes",
        "sources.body.aws_unsigned_payload: must be true or false",
        "sources.too-big.aws_max_signed_body: must be at most 268435456",
        "sources.pointless.aws_max_signed_body: has no effect with aws_unsigned_payload: true",
        "sources.own-header.headers.X-Amz-Date: is the header the source's auth_type already sets",
        "sources.sts.aws_sts_endpoint: is not an absolute URL",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn github_app_fields_are_checked_and_never_quoted() {
    let dir = identity_dir();
    std::fs::write(dir.path().join("not-a-key.pem"), "hunter2-not-pem").expect("write");
    let source = |id: &str, fields: &str| {
        format!(
            "  {id}:\n    upstream: https://api.github.com\n    auth_type: github_app\n{fields}"
        )
    };
    let text = [
        "sources:\n".to_owned(),
        source("ec", "    github_app_id: 12345\n    github_installation_id: 678\n    github_private_key: { file: key.pem }\n"),
        source("bad", "    github_app_id: not an id\n    github_installation_id: abc\n    github_private_key: { file: not-a-key.pem }\n    github_api_url: api.github.com\n"),
        source("narrow", "    github_app_id: Iv23liExample\n    github_installation_id: 678\n    github_private_key: { file: key.pem }\n    github_permissions: { contents: hunter2-level, Issues: write }\n    github_repositories: [octo-org/hunter2-repo]\n"),
        source("missing", "    github_app_id: 1\n"),
    ]
    .concat();
    let message = load_in(&dir, &text).expect_err("rejected").to_string();
    for expected in [
        "sources.ec.github_private_key: must be an RSA key: GitHub verifies App JWTs with RS256",
        "sources.bad.github_app_id: must be the App's numeric id or its client id",
        "sources.bad.github_installation_id: must be the installation's numeric id",
        "sources.bad.github_private_key: holds no PEM private key",
        "sources.bad.github_api_url: is not an absolute URL",
        "sources.narrow.github_permissions: each entry must be a permission name",
        "sources.narrow.github_repositories: each entry must be a repository name without its owner",
        "sources.missing.github_installation_id: missing",
        "sources.missing.github_private_key: missing",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
    assert!(!message.contains("hunter2"), "{message}");
    assert!(
        !message.contains("ec.github_app_id"),
        "a numeric id is fine: {message}"
    );
}
