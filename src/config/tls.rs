//! TLS settings in the config: a CA file, a client certificate and its key → a
//! [`TlsProfile`], for an upstream (`tls_*`), a token endpoint (`oauth2_token_ca_file`,
//! `oauth2_tls_client_*`) or a JWT caller's key set (`jwks_ca_file`).

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::fields::{Fields, Problems};
use super::resolve::Resolver;
use super::spec::TlsProfile;
use crate::transport::tls;

/// Which fields hold the CA, the client certificate and its key.
pub struct TlsFields {
    pub ca: &'static str,
    /// The certificate's and the key's, where a client certificate may be configured.
    pub client: Option<(&'static str, &'static str)>,
}

pub const UPSTREAM: TlsFields = TlsFields {
    ca: "tls_ca_file",
    client: Some(("tls_client_cert_file", "tls_client_key_file")),
};

pub const TOKEN_ENDPOINT: TlsFields = TlsFields {
    ca: "oauth2_token_ca_file",
    client: Some(("oauth2_tls_client_cert_file", "oauth2_tls_client_key_file")),
};

/// A key set is public: its server needs no client certificate.
pub const JWKS: TlsFields = TlsFields {
    ca: "jwks_ca_file",
    client: None,
};

/// The PEM texts of a source's `tls_*` files, and a hash over all of them.
struct TlsFiles {
    ca: Option<zeroize::Zeroizing<Vec<u8>>>,
    cert: Option<zeroize::Zeroizing<Vec<u8>>>,
    key: Option<zeroize::Zeroizing<Vec<u8>>>,
    fingerprint: [u8; 32],
}

/// The TLS client settings from the `names` fields: the public roots plus the CA, and the
/// client certificate. Every file is read (and recorded for watching) and every problem
/// reported. `Some(None)`: no such fields; `None`: a problem was reported.
pub fn profile(
    fields: &Fields<'_>,
    resolver: &mut Resolver<'_>,
    p: &mut Problems,
    names: &TlsFields,
) -> Option<Option<TlsProfile>> {
    let before = p.len();
    // The PEM of every file that could be read is checked, whatever happened to the others.
    let Some(files) = read_tls_files(fields, resolver, p, names) else {
        return Some(None);
    };
    let mut roots = tls::public_roots();
    if let Some(pem) = &files.ca {
        let certs = tls::certificates(pem);
        if certs.is_empty() {
            fields.report(p, names.ca, "holds no PEM certificate");
        }
        for cert in certs {
            if let Err(e) = roots.add(cert) {
                fields.report(p, names.ca, format!("not a usable CA certificate: {e}"));
            }
        }
    }
    let (cert_field, key_field) = names.client.unwrap_or_default();
    let chain = files.cert.as_deref().map(|pem| tls::certificates(pem));
    if chain.as_ref().is_some_and(Vec::is_empty) {
        fields.report(p, cert_field, "holds no PEM certificate");
    }
    let private = files.key.as_deref().map(|pem| tls::private_key(pem));
    if matches!(private, Some(None)) {
        fields.report(p, key_field, "holds no PEM private key");
    }
    if p.len() > before {
        return None;
    }
    let identity = match (chain, private) {
        (Some(chain), Some(Some(key))) => Some((chain, key)),
        _ => None,
    };
    let (field, fits) = match identity {
        Some(_) => (key_field, "does not fit the certificate: "),
        None => (names.ca, ""),
    };
    match tls::client_config(roots, identity) {
        Ok(config) => Some(Some(TlsProfile {
            config: Arc::new(config),
            fingerprint: files.fingerprint,
        })),
        Err(e) => {
            fields.report(p, field, format!("{fits}{e}"));
            None
        }
    }
}

/// Reads the files the `tls_*` fields name, reporting those that cannot be; `None` when
/// the source has no such fields.
fn read_tls_files(
    fields: &Fields<'_>,
    resolver: &mut Resolver<'_>,
    p: &mut Problems,
    names: &TlsFields,
) -> Option<TlsFiles> {
    let ca = fields.text(p, names.ca);
    let (cert, key) = match names.client {
        Some((cert, key)) => (fields.text(p, cert), fields.text(p, key)),
        None => (None, None),
    };
    if ca.is_none() && cert.is_none() && key.is_none() {
        return None;
    }
    let mut fingerprint = Sha256::new();
    let mut read = |field: &str, path: Option<&str>, p: &mut Problems| match resolver
        .read_file(Path::new(path?))
    {
        Ok(bytes) => {
            fingerprint.update((bytes.len() as u64).to_le_bytes());
            fingerprint.update(&bytes);
            Some(zeroize::Zeroizing::new(bytes))
        }
        Err(why) => {
            fields.report(p, field, why);
            None
        }
    };
    let (cert_field, key_field) = names.client.unwrap_or_default();
    let files = TlsFiles {
        ca: read(names.ca, ca, p),
        cert: read(cert_field, cert, p),
        key: read(key_field, key, p),
        fingerprint: [0; 32],
    };
    match (cert, key) {
        (Some(_), None) => {
            fields.report(p, key_field, "missing; a client certificate needs its key")
        }
        (None, Some(_)) => {
            fields.report(p, cert_field, "missing; a client key needs its certificate")
        }
        _ => {}
    }
    Some(TlsFiles {
        fingerprint: fingerprint.finalize().into(),
        ..files
    })
}
