//! Credentials from identities (DESIGN §7) against real verifiers: oidc-provider over
//! HTTPS with client certificates checks every client authentication (private_key_jwt with
//! RSA and P-256 keys in every PEM form, client_secret_jwt, tls_client_auth, a ready-made
//! client assertion, none), a JWT-bearer grant and a Google-style token endpoint verify
//! their assertions with jose. The keys are made by node:crypto; credproxy only signs.

use crate::support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use credproxy::secret::MasterKeys;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::client::{self, get};
use support::provider::Provider;
use support::token_endpoint::TokenEndpoint;
use support::upstream::Upstream;
use support::{eventually, InProcessProxy};

/// The provider in identity mode, and the directory of its keys and certificates.
struct Idp {
    provider: Provider,
    dir: tempfile::TempDir,
    roots: rustls::RootCertStore,
}

impl Idp {
    /// Writes a CA, the provider's server certificate and credproxy's client certificate
    /// (`CN=credproxy-mtls`), then starts the provider, which adds its keys.
    fn start() -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "interop CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &issuer).expect("leaf");
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = leaf(vec!["127.0.0.1".into()], "interop provider");
        let (client, client_key) = leaf(Vec::new(), "credproxy-mtls");
        for (name, text) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server),
            ("server-key.pem", server_key),
            ("client.pem", client),
            ("client-key.pem", client_key),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).expect("root");
        let provider = Provider::start(&[("INTEROP_IDENTITY_DIR", dir.path().as_os_str())])?;
        Some(Self {
            provider,
            dir,
            roots,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A source of `auth_type` with the token endpoint, its CA, and `fields`.
    fn source(&self, id: &str, upstream: &Upstream, auth_type: &str, fields: &str) -> String {
        format!(
            "  {id}:\n    upstream: {}\n    auth_type: {auth_type}\n    oauth2_token_url: {}\n    \
             oauth2_token_ca_file: {}\n{fields}",
            upstream.url(),
            self.provider.token_endpoint,
            self.path("ca.pem").display(),
        )
    }

    /// A GET to one of the provider's test routes.
    async fn get_json(&self, path: &str) -> serde_json::Value {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(self.roots.clone())
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
        let url = format!("{}{path}", self.provider.issuer);
        let response = support::within("the provider", client.get(url.parse().expect("uri")))
            .await
            .expect("provider answers");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&body).expect("json")
    }

    /// Tokens issued so far for `what` (a client id, `jwt-bearer:<sub>`, `google:<scope>`).
    async fn issued(&self, what: &str) -> u64 {
        self.get_json("/interop/stats").await[what]
            .as_u64()
            .unwrap_or(0)
    }

    /// Writes a fresh ready-made assertion (`for` = `client` or `grant`) to `path`, the way
    /// the kubelet rotates a projected token: a new file renamed over the old one.
    async fn write_assertion(&self, kind: &str, path: &Path) {
        let assertion = self
            .get_json(&format!("/interop/assertion?for={kind}"))
            .await;
        let temp = path.with_extension("new");
        std::fs::write(&temp, assertion["assertion"].as_str().expect("assertion")).expect("write");
        std::fs::rename(&temp, path).expect("rename");
    }
}

const SCOPE: &str = "    oauth2_scopes: [api.read]\n";

fn pkjwt(client: &str, key: &Path) -> String {
    format!(
        "    oauth2_client_id: {client}\n    oauth2_client_auth: private_key_jwt\n    \
         oauth2_client_private_key: {{ file: {} }}\n{SCOPE}",
        key.display()
    )
}

#[tokio::test]
async fn every_client_authentication_and_grant_gets_a_token_the_upstream_receives() {
    let Some(idp) = Idp::start() else { return };
    let upstream = Upstream::recording().await;
    let assertion = idp.path("client-assertion.jwt");
    idp.write_assertion("client", &assertion).await;
    let grant_assertion = idp.path("grant-assertion.jwt");
    idp.write_assertion("grant", &grant_assertion).await;
    let sources = [
        ("rsa-pkcs8", "oauth2", pkjwt("credproxy-pkjwt-rsa", &idp.path("rsa-pkcs8.pem"))),
        ("rsa-pkcs1", "oauth2", pkjwt("credproxy-pkjwt-rsa", &idp.path("rsa-pkcs1.pem"))),
        ("ec-pkcs8", "oauth2", pkjwt("credproxy-pkjwt-ec", &idp.path("ec-pkcs8.pem"))),
        ("ec-sec1", "oauth2", pkjwt("credproxy-pkjwt-ec", &idp.path("ec-sec1.pem"))),
        (
            "secret-jwt",
            "oauth2",
            format!("    oauth2_client_id: credproxy-sjwt\n    oauth2_client_auth: client_secret_jwt\n    oauth2_client_secret: interop-secret-jwt-0123456789abcdef0123456789abcdef\n{SCOPE}"),
        ),
        (
            "mtls",
            "oauth2",
            format!(
                "    oauth2_client_id: credproxy-mtls\n    oauth2_client_auth: tls_client_auth\n    oauth2_tls_client_cert_file: {}\n    oauth2_tls_client_key_file: {}\n{SCOPE}",
                idp.path("client.pem").display(),
                idp.path("client-key.pem").display()
            ),
        ),
        (
            "assertion",
            "oauth2",
            format!("    oauth2_client_id: credproxy-assertion\n    oauth2_client_auth: client_assertion\n    oauth2_client_assertion: {{ file: {} }}\n{SCOPE}", assertion.display()),
        ),
        (
            "public",
            "oauth2",
            format!("    oauth2_client_id: credproxy-public\n    oauth2_client_auth: none\n{SCOPE}"),
        ),
        (
            "grant-signed",
            "jwt_bearer",
            format!(
                "    oauth2_client_id: credproxy-public\n    oauth2_client_private_key: {{ file: {} }}\n    jwt_bearer_issuer: credproxy-workload\n    jwt_bearer_subject: workload-1\n{SCOPE}",
                idp.path("ec-pkcs8.pem").display()
            ),
        ),
        (
            "grant-ready",
            "jwt_bearer",
            format!("    oauth2_client_id: credproxy-public\n    oauth2_client_assertion: {{ file: {} }}\n{SCOPE}", grant_assertion.display()),
        ),
    ];
    let mut yaml = String::from("sources:\n");
    for (id, auth_type, fields) in &sources {
        yaml.push_str(&idp.source(id, &upstream, auth_type, fields));
    }
    yaml.push_str(&format!(
        "  google:\n    upstream: {}\n    auth_type: google_service_account\n    google_service_account_key: {{ file: {} }}\n    oauth2_scopes: [https://www.googleapis.com/auth/cloud-platform]\n    oauth2_token_ca_file: {}\n",
        upstream.url(),
        idp.path("google.json").display(),
        idp.path("ca.pem").display()
    ));
    let proxy = InProcessProxy::start(&yaml).await;
    let http = client::http1();
    let ids: Vec<&str> = sources
        .iter()
        .map(|(id, _, _)| *id)
        .chain(["google"])
        .collect();
    for id in &ids {
        let answer = get(&http, &proxy.url(&format!("/{id}/x"))).await;
        assert_eq!(answer.status, 200, "{id}: {}", answer.text());
    }
    let seen = upstream.authorizations();
    assert_eq!(seen.len(), ids.len());
    assert!(
        seen.iter()
            .all(|a| a.starts_with("Bearer ") && a.len() > 20),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "a token per source"
    );
    for (client, n) in [
        ("credproxy-pkjwt-rsa", 2),
        ("credproxy-pkjwt-ec", 2),
        ("credproxy-sjwt", 1),
        ("credproxy-mtls", 1),
        ("credproxy-assertion", 1),
        ("credproxy-public", 1),
        ("jwt-bearer:workload-1", 2),
        ("google:https://www.googleapis.com/auth/cloud-platform", 1),
    ] {
        assert_eq!(idp.issued(client).await, n, "{client}");
    }
}

#[tokio::test]
async fn a_wrong_key_or_certificate_is_a_502_naming_the_refusal() {
    let Some(idp) = Idp::start() else { return };
    let upstream = Upstream::recording().await;
    let yaml = format!(
        "sources:\n{}{}",
        idp.source("wrong-key", &upstream, "oauth2", &pkjwt("credproxy-pkjwt-rsa", &idp.path("wrong-pkcs8.pem"))),
        // Another client's certificate subject: the provider's subject check refuses it.
        idp.source(
            "wrong-cert",
            &upstream,
            "oauth2",
            &format!(
                "    oauth2_client_id: credproxy-pkjwt-ec\n    oauth2_client_auth: tls_client_auth\n    oauth2_tls_client_cert_file: {}\n    oauth2_tls_client_key_file: {}\n{SCOPE}",
                idp.path("client.pem").display(),
                idp.path("client-key.pem").display()
            ),
        ),
    );
    let proxy = InProcessProxy::start(&yaml).await;
    for id in ["wrong-key", "wrong-cert"] {
        let answer = get(&client::http1(), &proxy.url(&format!("/{id}/x"))).await;
        answer.assert_problem(502, "token_endpoint_error");
        assert!(
            answer.json()["detail"]
                .as_str()
                .expect("detail")
                .starts_with("The token endpoint answered HTTP 4"),
            "{id}: {}",
            answer.text()
        );
    }
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn a_rotated_assertion_file_is_used_for_the_next_token_request_and_keeps_the_cache() {
    let Some(idp) = Idp::start() else { return };
    let revoked = Arc::new(Mutex::new(HashSet::new()));
    let upstream = Upstream::refusing(Arc::clone(&revoked)).await;
    let config_dir = tempfile::tempdir().expect("tempdir");
    let assertion = config_dir.path().join("token");
    idp.write_assertion("client", &assertion).await;
    let path = config_dir.path().join("sources.yaml");
    let fields = "    oauth2_client_id: credproxy-assertion\n    oauth2_client_auth: client_assertion\n    oauth2_client_assertion: { file: token }\n    oauth2_scopes: [api.read]\n";
    std::fs::write(
        &path,
        format!("sources:\n{}", idp.source("s", &upstream, "oauth2", fields)),
    )
    .expect("write");
    let proxy = InProcessProxy::watching(&path, MasterKeys::default()).await;
    let http = client::http1();
    let first = get(&http, &proxy.url("/s/1")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(idp.issued("credproxy-assertion").await, 1);

    // The kubelet rotates the projected token: the file watcher reloads the config, and
    // the token source, whose settings name the same file, keeps its cached token.
    idp.write_assertion("client", &assertion).await;
    eventually("the rotation to be reloaded", || async {
        proxy.store.load().meta.generation == 2
    })
    .await;
    let cached = get(&http, &proxy.url("/s/2")).await;
    assert_eq!(cached.text(), first.text());
    assert_eq!(idp.issued("credproxy-assertion").await, 1);

    // The next token request sends the new assertion: the provider refuses a reused one.
    let token = first.text();
    let token = token.split('|').next().unwrap_or_default();
    revoked
        .lock()
        .expect("revoked")
        .insert(token.trim_start_matches("Bearer ").to_owned());
    let refreshed = get(&http, &proxy.url("/s/3")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert_ne!(refreshed.text(), first.text());
    assert_eq!(idp.issued("credproxy-assertion").await, 2);
}

#[tokio::test]
async fn concurrent_cold_requests_make_one_signed_token_request() {
    let Some(idp) = Idp::start() else { return };
    let upstream = Upstream::recording().await;
    let yaml = format!(
        "sources:\n{}",
        idp.source(
            "s",
            &upstream,
            "oauth2",
            &pkjwt("credproxy-pkjwt-ec", &idp.path("ec-pkcs8.pem"))
        )
    );
    let proxy = InProcessProxy::start(&yaml).await;
    let requests: Vec<_> = (0..30)
        .map(|i| {
            let url = proxy.url(&format!("/s/{i}"));
            tokio::spawn(async move { get(&client::http1(), &url).await.status })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.expect("task"), 200);
    }
    assert_eq!(idp.issued("credproxy-pkjwt-ec").await, 1);
}

#[tokio::test]
async fn resources_and_extra_params_reach_the_token_endpoint() {
    let idp = TokenEndpoint::start().await;
    let upstream = Upstream::recording().await;
    let yaml = format!(
        "sources:\n  s:\n    upstream: {}\n    auth_type: oauth2\n    oauth2_token_url: {}\n    oauth2_client_id: c\n    oauth2_client_secret: s\n    oauth2_resource: [https://mcp.example/a, https://mcp.example/b]\n    oauth2_extra_params: {{ tenant: t-1, audience_hint: orders }}\n",
        upstream.url(),
        idp.url()
    );
    let proxy = InProcessProxy::start(&yaml).await;
    assert_eq!(get(&client::http1(), &proxy.url("/s/x")).await.status, 200);
    let request = idp.requests().pop().expect("a token request");
    let values = |name: &str| -> Vec<&str> {
        request
            .pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(
        values("resource"),
        ["https://mcp.example/a", "https://mcp.example/b"]
    );
    assert_eq!(values("tenant"), ["t-1"]);
    assert_eq!(values("audience_hint"), ["orders"]);
}

#[tokio::test]
async fn trace_logs_hold_no_key_assertion_secret_or_token() {
    let Some(idp) = Idp::start() else { return };
    let upstream = Upstream::recording().await;
    let assertion = idp.path("client-assertion.jwt");
    idp.write_assertion("client", &assertion).await;
    let config_dir = tempfile::tempdir().expect("tempdir");
    let path = config_dir.path().join("sources.yaml");
    let yaml = format!(
        "sources:\n{}{}{}  google:\n    upstream: {}\n    auth_type: google_service_account\n    google_service_account_key: {{ file: {} }}\n    oauth2_scopes: [https://www.googleapis.com/auth/cloud-platform]\n    oauth2_token_ca_file: {}\n",
        idp.source("ec", &upstream, "oauth2", &pkjwt("credproxy-pkjwt-ec", &idp.path("ec-pkcs8.pem"))),
        idp.source(
            "sjwt",
            &upstream,
            "oauth2",
            &format!("    oauth2_client_id: credproxy-sjwt\n    oauth2_client_auth: client_secret_jwt\n    oauth2_client_secret: interop-secret-jwt-0123456789abcdef0123456789abcdef\n{SCOPE}"),
        ),
        idp.source(
            "assertion",
            &upstream,
            "oauth2",
            &format!("    oauth2_client_id: credproxy-assertion\n    oauth2_client_auth: client_assertion\n    oauth2_client_assertion: {{ file: {} }}\n{SCOPE}", assertion.display()),
        ),
        upstream.url(),
        idp.path("google.json").display(),
        idp.path("ca.pem").display()
    );
    std::fs::write(&path, yaml).expect("write");
    let proxy = support::binary::BinaryProxy::start(&path, "trace", &[]);
    for id in ["ec", "sjwt", "assertion", "google"] {
        let answer = get(&client::http1(), &proxy.url(&format!("/{id}/x?q=1"))).await;
        assert_eq!(answer.status, 200, "{id}: {}", answer.text());
    }
    let logs = proxy.output_when("four access-log events", |o| {
        o.matches("\"target\":\"credproxy::access\"").count() >= 4
    });
    let mut secrets: Vec<String> = upstream
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization"))
        .map(|a| a.trim_start_matches("Bearer ").to_owned())
        .collect();
    assert_eq!(secrets.len(), 4);
    secrets.push("interop-secret-jwt-0123456789abcdef".into());
    secrets.push(std::fs::read_to_string(&assertion).expect("assertion"));
    let google: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(idp.path("google.json")).expect("key"))
            .expect("json");
    let ec = std::fs::read_to_string(idp.path("ec-pkcs8.pem")).expect("key");
    for pem in [
        ec.as_str(),
        google["private_key"].as_str().expect("private_key"),
    ] {
        // A line from the middle of the key's base64.
        let line = pem
            .lines()
            .filter(|l| !l.contains("-----"))
            .nth(1)
            .expect("a key line");
        secrets.push(line.to_owned());
    }
    for secret in &secrets {
        assert!(
            !logs.contains(secret.trim()),
            "a secret in the trace log: {}…",
            &secret[..8]
        );
    }
    assert!(logs.contains("\"level\":\"TRACE\"") || logs.contains("\"level\":\"DEBUG\""));
}
