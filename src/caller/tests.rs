use super::*;
use crate::path_pattern::PathPattern;
use http::HeaderValue;

fn token_caller(
    name: &str,
    token: &str,
    access: Access,
    rules: Option<Vec<RuleSpec>>,
) -> CallerSpec {
    CallerSpec {
        name: name.into(),
        identity: CallerIdentity::TokenSha256(sha256(token.as_bytes())),
        access,
        rules: rules.map(Into::into),
    }
}

fn callers() -> Callers {
    let github_reads = RuleSpec {
        source: "github".into(),
        methods: Some([Method::GET, Method::HEAD].into()),
        paths: Some([PathPattern::parse("/repos/acme/**").expect("pattern")].into()),
    };
    let any_pets = RuleSpec {
        source: "petstore".into(),
        methods: None,
        paths: None,
    };
    Callers::new(
        vec![
            token_caller("ci", "ci-token", Access::All, None),
            token_caller(
                "bot",
                "bot-token",
                Access::Only(vec!["github".into()]),
                None,
            ),
            token_caller(
                "executor",
                "executor-token",
                Access::Only(vec!["github".into(), "petstore".into(), "billing".into()]),
                Some(vec![github_reads, any_pets]),
            ),
        ],
        None,
    )
}

fn headers(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        PROXY_AUTHORIZATION,
        HeaderValue::from_str(value).expect("value"),
    );
    headers
}

fn caller<'c>(callers: &'c Callers, token: &str) -> &'c Caller {
    callers
        .authenticate(&headers(&format!("Bearer {token}")))
        .expect("known token")
        .caller
}

#[test]
fn authenticates_by_token_hash() {
    let callers = callers();
    let name = |value| {
        callers
            .authenticate(&headers(value))
            .map(|c| c.caller.name.to_string())
            .map_err(|e| e.rejection())
    };
    assert_eq!(name("Bearer ci-token").as_deref(), Ok("ci"));
    assert_eq!(name("bearer bot-token").as_deref(), Ok("bot"));
    for bad in [
        "Bearer nope",
        "Bearer a.b.c",
        "Basic Y2k6Y2k=",
        "Bearer ",
        "ci-token",
    ] {
        let why = name(bad).expect_err(bad);
        assert!(
            matches!(
                why,
                CallerRejection::UnknownToken | CallerRejection::MissingToken
            ),
            "{bad}: {why:?}"
        );
    }
    let missing = callers.authenticate(&HeaderMap::new()).expect_err("none");
    assert_eq!(missing.rejection(), CallerRejection::MissingToken);
}

#[test]
fn sources_bound_every_caller() {
    let callers = callers();
    let bot = caller(&callers, "bot-token");
    assert_eq!(bot.permits("github", &Method::POST, "/anything"), Ok(()));
    assert_eq!(
        bot.permits("billing", &Method::GET, "/"),
        Err(Forbidden::Source)
    );
    let ci = caller(&callers, "ci-token");
    assert_eq!(ci.permits("anything", &Method::DELETE, ""), Ok(()));
}

#[test]
fn rules_narrow_a_caller_to_methods_and_paths() {
    let callers = callers();
    let executor = caller(&callers, "executor-token");
    let permits = |source, method: Method, rest| executor.permits(source, &method, rest);
    assert_eq!(
        permits("github", Method::GET, "/repos/acme/widgets"),
        Ok(())
    );
    assert_eq!(permits("github", Method::HEAD, "/repos/acme"), Ok(()));
    assert_eq!(
        permits("github", Method::POST, "/repos/acme/widgets"),
        Err(Forbidden::Rule)
    );
    assert_eq!(
        permits("github", Method::GET, "/repos/other"),
        Err(Forbidden::Rule)
    );
    assert_eq!(
        permits("github", Method::GET, "/repos/acme%2F..%2Fother"),
        Err(Forbidden::Rule)
    );
    // A rule without methods or paths opens its whole source.
    assert_eq!(permits("petstore", Method::DELETE, "/pets/1"), Ok(()));
    // On the caller's sources, but no rule names it.
    assert_eq!(permits("billing", Method::GET, "/"), Err(Forbidden::Rule));
    assert_eq!(permits("jira", Method::GET, "/"), Err(Forbidden::Source));
}

#[test]
fn empty_rules_allow_nothing() {
    let callers = Callers::new(
        vec![token_caller("locked", "t", Access::All, Some(Vec::new()))],
        None,
    );
    let locked = caller(&callers, "t");
    assert_eq!(
        locked.permits("github", &Method::GET, "/"),
        Err(Forbidden::Rule)
    );
}

#[test]
fn hash_token_prints_lower_case_hex() {
    assert_eq!(
        token_sha256_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
