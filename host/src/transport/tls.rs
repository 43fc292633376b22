//! SIP over TLS (RFC 3261 section 26, RFC 5630): the server certificate,
//! reloaded from its PEM files on SIGHUP or when the files change, and the
//! client side that verifies peers against the system's web roots or a
//! configured CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where the certificate and key live.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates trusted for outbound TLS; `None`: the web roots.
    pub ca: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| pem_error(path, format!("bad PEM: {e}")))?
        .ok_or_else(|| pem_error(path, "no PRIVATE KEY block"))
}

fn certified_key(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| pem_error(&files.key, format!("unusable key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(certs, signing)))
}

/// The server certificate in use; swapped when the files change.
#[derive(Debug)]
struct Reloading {
    files: TlsFiles,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().0.clone())
    }
}

fn modified(files: &TlsFiles) -> Option<SystemTime> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (m(&files.cert), m(&files.key)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

impl Reloading {
    /// Reads the files again if they changed (or `force`); a bad new pair
    /// is logged and the old one kept, so a half-copied file never takes
    /// TLS down.
    fn reload(&self, force: bool) {
        let stamp = modified(&self.files);
        if !force && stamp == self.current.read().1 {
            return;
        }
        match certified_key(&self.files) {
            Ok(k) => {
                *self.current.write() = (k, stamp);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate loaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; keeping the old one")
            }
        }
    }
}

/// Both sides of TLS for the transport.
#[derive(Clone)]
pub struct Tls {
    /// Accepts phones' connections.
    pub acceptor: TlsAcceptor,
    /// Opens connections to trunks and phones with no flow.
    pub connector: TlsConnector,
    reloading: Arc<Reloading>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.reloading.files.cert)
            .finish()
    }
}

impl Tls {
    /// Loads the certificate and key and the roots for outbound TLS.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let key = certified_key(&files)?;
        let stamp = modified(&files);
        let mut roots = rustls::RootCertStore::empty();
        match &files.ca {
            Some(ca) => {
                for c in load_certs(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| pem_error(ca, format!("unusable CA: {e}")))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let reloading = Arc::new(Reloading {
            files,
            current: RwLock::new((key, stamp)),
        });
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(reloading.clone());
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            reloading,
        })
    }

    /// Reloads the certificate on SIGHUP, and when its files change
    /// (checked every few seconds); ends when the returned task is aborted.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let r = self.reloading.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                #[cfg(unix)]
                {
                    let hangup = async {
                        match hup.as_mut() {
                            Some(h) => h.recv().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = tick.tick() => r.reload(false),
                        _ = hangup => r.reload(true),
                    }
                }
                #[cfg(not(unix))]
                {
                    tick.tick().await;
                    r.reload(false);
                }
            }
        })
    }
}

/// The name a TLS peer's certificate must carry: the host it was
/// resolved from, else its address.
pub fn server_name(host: Option<&str>, addr: std::net::SocketAddr) -> ServerName<'static> {
    host.and_then(|h| ServerName::try_from(h.to_owned()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
}
