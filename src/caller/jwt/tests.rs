//! Caller selection and the verified-token cache, on a key file (tokens from ring via
//! `jws::sign`; RS256 and the fetched key sets are exercised in `tests/integration/jwt_callers.rs`).

use super::*;
use crate::digest::sha256;
use crate::jws::{sign, SigningKey};
use serde_json::json;

const NOW: u64 = 1_800_000_000;

struct Fixture {
    key: SigningKey,
    callers: JwtCallers,
}

/// A JWT caller of the test issuer; its `keys` are replaced by the fixture's key file.
fn member(subject: Option<SubjectPattern>) -> JwtCallerSpec {
    JwtCallerSpec {
        issuer: "https://issuer.example".into(),
        audience: "credproxy".into(),
        keys: crate::config::spec::JwksSpec::Url {
            url: http::Uri::from_static("https://unused.example/jwks"),
            tls: None,
        },
        subject,
    }
}

fn fixture() -> Fixture {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let key = SigningKey::from_pem(&pair.serialize_pem()).expect("key");
    let mut jwk = key.public_jwk();
    jwk["kid"] = "k".into();
    let keys = Arc::new(Jwks::parse(json!({ "keys": [jwk] }).to_string().as_bytes()).expect("set"));
    let specs = [
        member(None),
        member(Some(SubjectPattern::Prefix(
            "system:serviceaccount:".into(),
        ))),
        member(Some(SubjectPattern::Prefix(
            "system:serviceaccount:agents:".into(),
        ))),
        member(Some(SubjectPattern::Exact(
            "system:serviceaccount:agents:triage".into(),
        ))),
    ];
    let callers = JwtCallers::new(specs.iter().enumerate(), |_| Keys::File(Arc::clone(&keys)));
    Fixture { key, callers }
}

impl Fixture {
    fn token(&self, sub: &str, exp: u64) -> String {
        let claims =
            json!({ "iss": "https://issuer.example", "aud": "credproxy", "sub": sub, "exp": exp });
        sign(&self.key, Some("k"), &claims)
            .expect("signs")
            .expose()
            .to_owned()
    }

    fn caller(&self, token: &str, now: u64) -> Result<usize, JwtRejection> {
        match self
            .callers
            .authenticate(token, &sha256(token.as_bytes()), now)
        {
            JwtOutcome::Caller(index, _) => Ok(index),
            JwtOutcome::Rejected(why) => Err(why),
            JwtOutcome::FetchKeys(_) => panic!("a key file never fetches"),
        }
    }
}

#[test]
fn the_most_specific_subject_wins() {
    let f = fixture();
    assert_eq!(
        f.callers.groups.len(),
        1,
        "one issuer, one key set: one group"
    );
    let exp = NOW + 600;
    for (sub, caller) in [
        ("system:serviceaccount:agents:triage", 3),
        ("system:serviceaccount:agents:runner", 2),
        ("system:serviceaccount:billing:runner", 1),
        ("someone-else", 0),
    ] {
        assert_eq!(f.caller(&f.token(sub, exp), NOW), Ok(caller), "{sub}");
    }
}

#[test]
fn a_verified_token_is_cached_but_never_past_its_exp() {
    let f = fixture();
    let exp = NOW + 120;
    let token = f.token("system:serviceaccount:agents:runner", exp);
    let digest = sha256(token.as_bytes());
    assert_eq!(f.caller(&token, NOW), Ok(2));
    assert!(f.callers.verified.contains_key(&digest), "cached");
    assert_eq!(f.caller(&token, exp - 1), Ok(2));
    // At `exp` the entry is dropped; within the leeway the token still passes, uncached.
    assert_eq!(f.caller(&token, exp), Ok(2));
    assert!(!f.callers.verified.contains_key(&digest), "cached past exp");
    assert_eq!(f.caller(&token, exp + LEEWAY_SECONDS), Ok(2));
    assert_eq!(
        f.caller(&token, exp + LEEWAY_SECONDS + 1),
        Err(JwtRejection::Expired)
    );
}

#[test]
fn claims_of_the_wrong_type_are_refused() {
    let f = fixture();
    for claims in [
        json!({ "iss": "https://issuer.example", "aud": "credproxy", "exp": "tomorrow" }),
        json!({ "iss": "https://issuer.example", "aud": 7, "exp": NOW + 60 }),
        json!({ "iss": "https://issuer.example", "aud": "credproxy", "exp": NOW + 60, "nbf": "now" }),
    ] {
        let token = sign(&f.key, Some("k"), &claims).expect("signs");
        assert_eq!(
            f.caller(token.expose(), NOW),
            Err(JwtRejection::Claims),
            "{claims}"
        );
    }
}
