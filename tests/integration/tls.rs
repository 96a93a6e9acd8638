//! TLS: an upstream that requires a client certificate (per-source CA and mTLS), and the
//! proxy's own TLS listener, with a certificate swapped by SIGHUP.

use crate::support;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::PrivateKeyDer;
use support::binary::BinaryProxy;
use support::client::{self, get};
use support::upstream::Upstream;
use support::InProcessProxy;

/// A CA that can sign leaf certificates.
struct Ca {
    cert_pem: String,
    der: rustls::pki_types::CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca cert");
        Self {
            cert_pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `names`.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("root");
        roots
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_chain(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.expect("cert"))
        .collect()
}

fn pem_key(pem: &str) -> PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("key")
}

#[tokio::test]
async fn mtls_upstream_with_its_own_ca() {
    let server_ca = Ca::new("upstream CA");
    let client_ca = Ca::new("client CA");
    let (server_cert, server_key) = server_ca.leaf(&["localhost"]);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(client_ca.roots()),
        provider(),
    )
    .build()
    .expect("client verifier");
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem_chain(&server_cert), pem_key(&server_key))
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let upstream = Upstream::tls_recording(Arc::new(config)).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let (client_cert, client_key) = client_ca.leaf(&["credproxy"]);
    std::fs::write(dir.path().join("ca.pem"), &server_ca.cert_pem).expect("write");
    std::fs::write(dir.path().join("client.pem"), client_cert).expect("write");
    std::fs::write(dir.path().join("client.key"), client_key).expect("write");
    let upstream_url = format!("https://localhost:{}", upstream.addr.port());
    let yaml = format!(
        "sources:\n  mtls:\n    upstream: {upstream_url}\n    auth_type: bearer\n    bearer_token: t\n    \
         tls_ca_file: ca.pem\n    tls_client_cert_file: client.pem\n    tls_client_key_file: client.key\n  \
         ca-only:\n    upstream: {upstream_url}\n    auth_type: bearer\n    bearer_token: t\n    tls_ca_file: ca.pem\n"
    );
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, yaml).expect("write");
    let proxy = InProcessProxy::watching(&path, Default::default()).await;
    let http = client::http1();

    for _ in 0..2 {
        let answer = get(&http, &proxy.url("/mtls/x")).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    // Trusting the CA is not enough: this upstream wants a client certificate.
    get(&http, &proxy.url("/ca-only/x"))
        .await
        .assert_problem(502, "upstream_unreachable");
    let seen = upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].version, http::Version::HTTP_2);
    assert_eq!(
        upstream.connections(),
        2,
        "one pooled connection for mtls, one refused for ca-only"
    );

    // A bad key file is a load error naming the field, never the file's contents.
    std::fs::write(dir.path().join("bad.key"), "not a key").expect("write");
    let error = credproxy::config::load_bytes(
        &path,
        format!(
            "sources:\n  s:\n    upstream: {upstream_url}\n    auth_type: none\n    tls_client_cert_file: client.pem\n    tls_client_key_file: bad.key\n"
        )
        .as_bytes(),
        Default::default(),
    )
    .expect_err("bad key");
    assert!(
        error
            .to_string()
            .contains("sources.s.tls_client_key_file: holds no PEM private key"),
        "{error}"
    );
}

fn https_client(
    roots: rustls::RootCertStore,
) -> Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
> {
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

async fn https_get(
    roots: rustls::RootCertStore,
    url: &str,
) -> Result<(u16, http::Version), String> {
    let response = support::within(
        "an https response",
        https_client(roots).get(url.parse().expect("uri")),
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    Ok((response.status().as_u16(), response.version()))
}

fn write_pair(dir: &Path, (cert, key): (String, String)) {
    std::fs::write(dir.join("tls.crt"), cert).expect("write");
    std::fs::write(dir.join("tls.key"), key).expect("write");
}

/// The binary with a TLS listener whose certificate `ca` signed (in the returned
/// directory, as `tls.crt` and `tls.key`), in front of `upstream` as source `s`.
fn tls_listener(upstream: &Upstream, ca: &Ca, extra: &[&str]) -> (tempfile::TempDir, BinaryProxy) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_pair(dir.path(), ca.leaf(&["localhost"]));
    let path = dir.path().join("sources.yaml");
    let yaml = format!(
        "sources:\n  s:\n    upstream: {}\n    auth_type: bearer\n    bearer_token: t\n",
        upstream.url()
    );
    std::fs::write(&path, yaml).expect("write");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let mut args = vec![
        "--tls-cert",
        cert.to_str().expect("path"),
        "--tls-key",
        key.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    let proxy = BinaryProxy::start(&path, "info", &args);
    (dir, proxy)
}

#[tokio::test]
async fn tls_listener_serves_h1_and_h2_and_reloads_its_certificate_on_sighup() {
    let upstream = Upstream::recording().await;
    let first = Ca::new("first");
    let (dir, proxy) = tls_listener(&upstream, &first, &[]);
    let url = format!("https://localhost:{}/s/x", proxy.addr.port());
    let (status, version) = https_get(first.roots(), &url).await.expect("https");
    assert_eq!((status, version), (200, http::Version::HTTP_2));
    assert_eq!(
        upstream.single().header("authorization").as_deref(),
        Some("Bearer t")
    );

    let second = Ca::new("second");
    write_pair(dir.path(), second.leaf(&["localhost"]));
    proxy.signal("HUP");
    proxy.output_when("the certificate reload", |out| {
        out.contains("TLS certificate reloaded")
    });
    assert_eq!(
        https_get(second.roots(), &url)
            .await
            .expect("https after reload")
            .0,
        200
    );
    assert!(
        https_get(first.roots(), &url).await.is_err(),
        "the old certificate is no longer served"
    );
}

#[tokio::test]
async fn a_tls_connection_that_goes_silent_after_its_handshake_is_closed() {
    let upstream = Upstream::recording().await;
    let ca = Ca::new("silent");
    let (_dir, proxy) = tls_listener(&upstream, &ca, &["--header-read-timeout", "500ms"]);
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    for alpn in [None, Some(b"h2".to_vec()), Some(b"http/1.1".to_vec())] {
        let mut config = config.clone();
        config.alpn_protocols = alpn.into_iter().collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        // Handshake done, nothing sent: the server ends the connection at the deadline.
        let mut buf = Vec::new();
        let read = support::within("the silent TLS connection to close", async {
            tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut buf).await
        })
        .await;
        assert!(!String::from_utf8_lossy(&buf).contains("200"), "{read:?}");
    }
    assert!(upstream.requests().is_empty());
}
