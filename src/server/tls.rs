//! TLS on the proxy listener: rustls with h2 and http/1.1 by ALPN. The certificate is
//! read from PEM files at start and again on SIGHUP; new handshakes use the new one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::files::{self, MAX_SECRET_FILE_BYTES};
use crate::transport::tls;

/// The listener's certificate and the files it comes from.
pub struct ListenerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<CurrentCert>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerTls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// Hands rustls whatever certificate is current.
struct CurrentCert(ArcSwap<CertifiedKey>);

impl fmt::Debug for CurrentCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentCert")
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl ListenerTls {
    pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<Self, String> {
        let current = Arc::new(CurrentCert(ArcSwap::from_pointee(load(
            cert_path, key_path,
        )?)));
        let config = tls::server_config(current.clone()).map_err(|e| e.to_string())?;
        Ok(Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again; on error the current certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let key = load(&self.cert_path, &self.key_path)?;
        self.current.0.store(Arc::new(key));
        Ok(())
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, String> {
    let read = |path: &Path| {
        files::read_capped(path, MAX_SECRET_FILE_BYTES)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let chain = tls::certificates(&read(cert_path)?);
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert_path.display()));
    }
    let key = tls::private_key(&read(key_path)?)
        .ok_or_else(|| format!("{} holds no PEM private key", key_path.display()))?;
    tls::certified_key(chain, key).map_err(|e| {
        format!(
            "{} and {} do not make a usable certificate: {e}",
            cert_path.display(),
            key_path.display()
        )
    })
}
