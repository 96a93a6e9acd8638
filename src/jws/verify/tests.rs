//! ES256 end to end with keys from rcgen; RS256 is verified against tokens jose mints in
//! `tests/integration/jwt_callers.rs` (ring cannot generate RSA keys).

use super::*;
use crate::jws::{sign, sign_hs256, SigningKey};
use crate::secret::Secret;

fn ec_key() -> SigningKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    SigningKey::from_pem(&pair.serialize_pem()).expect("P-256 PKCS#8")
}

fn set(keys: &[(&SigningKey, &str)]) -> serde_json::Value {
    let keys: Vec<_> = keys
        .iter()
        .map(|(key, kid)| {
            let mut jwk = key.public_jwk();
            jwk["kid"] = (*kid).into();
            jwk
        })
        .collect();
    serde_json::json!({ "keys": keys })
}

fn jwks(value: &serde_json::Value) -> Jwks {
    Jwks::parse(value.to_string().as_bytes()).expect("usable set")
}

fn token(key: &SigningKey, kid: Option<&str>) -> Secret {
    sign(key, kid, &serde_json::json!({ "sub": "me" })).expect("signs")
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[test]
fn es256_verifies_by_kid_and_without_one() {
    let (one, two) = (ec_key(), ec_key());
    let keys = jwks(&set(&[(&one, "one"), (&two, "two")]));
    assert_eq!(keys.len(), 2);
    for (key, kid) in [(&one, Some("one")), (&two, Some("two")), (&two, None)] {
        let token = token(key, kid);
        let parsed = Unverified::parse(token.expose()).expect("parses");
        assert_eq!(parsed.verify(&keys), Ok(()), "{kid:?}");
        let claims: serde_json::Value = serde_json::from_slice(parsed.payload()).expect("json");
        assert_eq!(claims["sub"], "me");
    }
    // The right kid, the wrong key behind it.
    let forged = token(&two, Some("one"));
    let parsed = Unverified::parse(forged.expose()).expect("parses");
    assert_eq!(parsed.verify(&keys), Err(VerifyError::Signature));
}

#[test]
fn an_unknown_kid_is_told_apart_from_a_bad_signature() {
    let key = ec_key();
    let keys = jwks(&set(&[(&key, "one")]));
    let token = token(&key, Some("rotated"));
    let parsed = Unverified::parse(token.expose()).expect("parses");
    assert!(parsed.names_unknown_key(&keys));
    assert_eq!(parsed.verify(&keys), Err(VerifyError::UnknownKey));
}

#[test]
fn debug_shows_no_part_of_the_token() {
    let key = ec_key();
    let token = token(&key, Some("one"));
    let parsed = Unverified::parse(token.expose()).expect("parses");
    let shown = format!("{parsed:?}");
    for part in token.expose().split('.') {
        assert!(!shown.contains(part), "{shown}");
    }
    assert!(shown.contains("Es256") && shown.contains("one"), "{shown}");
}

#[test]
fn a_changed_payload_fails() {
    let key = ec_key();
    let keys = jwks(&set(&[(&key, "one")]));
    let token = token(&key, Some("one"));
    let mut parts: Vec<&str> = token.expose().split('.').collect();
    let other = b64(&serde_json::json!({ "sub": "admin" }));
    parts[1] = &other;
    let tampered = parts.join(".");
    let parsed = Unverified::parse(&tampered).expect("parses");
    assert_eq!(parsed.verify(&keys), Err(VerifyError::Signature));
}

#[test]
fn none_hmac_and_other_algorithms_are_refused_before_any_key() {
    let claims = b64(&serde_json::json!({ "sub": "me" }));
    for alg in [
        "none", "HS256", "HS512", "RS384", "PS256", "ES384", "EdDSA", "",
    ] {
        let header = b64(&serde_json::json!({ "alg": alg, "kid": "one" }));
        let token = format!("{header}.{claims}.c2ln");
        assert_eq!(
            Unverified::parse(&token).err(),
            Some(VerifyError::Algorithm),
            "{alg}"
        );
    }
    // HS256 made with a public key's bytes as the secret (the classic confusion).
    let key = ec_key();
    let public = Secret::new(set(&[(&key, "one")]).to_string());
    let hs = sign_hs256(&public, &serde_json::json!({ "sub": "me" }));
    assert_eq!(
        Unverified::parse(hs.expose()).err(),
        Some(VerifyError::Algorithm)
    );
}

#[test]
fn a_key_of_the_wrong_type_does_not_verify() {
    // An RS256 header naming an EC key: refused, not tried.
    let key = ec_key();
    let keys = jwks(&set(&[(&key, "one")]));
    let header = b64(&serde_json::json!({ "alg": "RS256", "kid": "one" }));
    let claims = b64(&serde_json::json!({ "sub": "me" }));
    let token = format!("{header}.{claims}.c2ln");
    let parsed = Unverified::parse(&token).expect("parses");
    assert_eq!(parsed.verify(&keys), Err(VerifyError::UnknownKey));
}

#[test]
fn malformed_tokens() {
    let header = b64(&serde_json::json!({ "alg": "ES256" }));
    let crit = b64(&serde_json::json!({ "alg": "ES256", "crit": ["exp"] }));
    let claims = b64(&serde_json::json!({}));
    let huge = format!("{header}.{}.c2ln", "a".repeat(MAX_TOKEN_BYTES));
    for bad in [
        "",
        "a.b",
        "not base64!.x.y",
        &format!("{header}.{claims}"),
        &format!("{header}.{claims}.!!"),
        &format!("{crit}.{claims}.c2ln"),
        &format!("e30.{claims}.c2ln"),
        &huge,
    ] {
        assert_eq!(
            Unverified::parse(bad).err(),
            Some(VerifyError::Malformed),
            "{:.40}",
            bad
        );
    }
}

#[test]
fn sets_keep_only_usable_signing_keys() {
    let key = ec_key();
    let mut jwk = key.public_jwk();
    jwk["kid"] = "ok".into();
    let n_1024 = URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
    let n_2048 = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
    let mixed = serde_json::json!({ "keys": [
        jwk,
        { "kty": "RSA", "kid": "small", "n": n_1024, "e": "AQAB" },
        { "kty": "RSA", "kid": "enc", "use": "enc", "n": n_2048, "e": "AQAB" },
        { "kty": "RSA", "kid": "ps", "alg": "PS256", "n": n_2048, "e": "AQAB" },
        { "kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig", "n": n_2048, "e": "AQAB" },
        { "kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA" },
        { "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA" },
        { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
        "not a key",
    ]});
    let keys = jwks(&mixed);
    let kids: Vec<_> = keys.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
    assert_eq!(kids, ["ok", "rsa"]);

    let only_unusable = serde_json::json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] });
    let err = Jwks::parse(only_unusable.to_string().as_bytes()).err();
    assert_eq!(err, Some(JwksError::NoUsableKey));
    for not_a_set in ["[]", "{}", "{\"keys\": 1}", "nope"] {
        let err = Jwks::parse(not_a_set.as_bytes()).err();
        assert_eq!(err, Some(JwksError::NotJwks), "{not_a_set}");
    }
    let many: Vec<_> = (0..=MAX_KEYS).map(|_| key.public_jwk()).collect();
    let err = Jwks::parse(serde_json::json!({ "keys": many }).to_string().as_bytes()).err();
    assert_eq!(err, Some(JwksError::TooManyKeys));
}

#[test]
fn equal_sets_have_equal_fingerprints_whatever_the_layout() {
    let key = ec_key();
    let compact = set(&[(&key, "one")]);
    let pretty = serde_json::to_string_pretty(&compact).expect("json");
    let (a, b) = (jwks(&compact), Jwks::parse(pretty.as_bytes()).expect("set"));
    assert!(a.same_keys(&b));
    assert!(!a.same_keys(&jwks(&set(&[(&ec_key(), "one")]))));
}
