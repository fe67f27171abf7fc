//! HTTPS for the server: rustls with a certificate that follows its files. cert-manager (or a
//! mounted Secret) replaces the PEM files in place; every handshake at most once a second
//! looks at their modification times and loads the new pair when they changed. A pair that
//! does not load (caught half-written) leaves the old one in service and is tried again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

/// How often the files are looked at, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The PEM files of the serving certificate (with its chain) and its private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate's and the key's modification times.
type Stamps = (Option<SystemTime>, Option<SystemTime>);

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TlsFiles {
    fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
        let fail = |path: &Path, reason: String| TlsError::Load {
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| fail(&self.cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(fail(&self.cert, "no certificate in the file".into()));
        }
        let key =
            PrivateKeyDer::from_pem_file(&self.key).map_err(|e| fail(&self.key, e.to_string()))?;
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| fail(&self.key, e.to_string()))?;
        let certified = CertifiedKey::new(chain, key);
        certified
            .keys_match()
            .map_err(|e| fail(&self.cert, format!("does not match the key: {e}")))?;
        Ok(certified)
    }

    fn stamps(&self) -> Stamps {
        (modified(&self.cert), modified(&self.key))
    }
}

/// The certificate in service and what it was loaded from.
#[derive(Debug)]
struct Reloading {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// When the files were last looked at, and their modification times then.
    checked: Mutex<(Instant, Stamps)>,
}

impl Reloading {
    fn refresh(&self) {
        let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        if checked.0.elapsed() < CHECK_EVERY {
            return;
        }
        checked.0 = Instant::now();
        let stamps = self.files.stamps();
        if stamps == checked.1 {
            return;
        }
        match self.files.load(&self.provider) {
            Ok(certified) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
                checked.1 = stamps;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(
                error = %e,
                "the changed TLS certificate does not load yet; the previous one stays in service"
            ),
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// A rustls server configuration serving `files`, reloaded as they change. Fails now when the
/// files do not load.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let stamps = files.stamps();
    let certified = files.load(&provider)?;
    let resolver = Reloading {
        files: files.clone(),
        provider: Arc::clone(&provider),
        current: RwLock::new(Arc::new(certified)),
        checked: Mutex::new((Instant::now(), stamps)),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
