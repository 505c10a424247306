//! HTTPS served by scf-console itself: a certificate chain and its key from PEM files, with
//! rustls (ring) and HTTP/1.1 only, as the rest of the server speaks.

use axum::http::{HeaderName, header};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Browsers that once reached the console over HTTPS never try plain HTTP again for a year.
pub const HSTS: (HeaderName, &str) = (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");

/// The acceptor for a certificate chain and its private key, each in a PEM file; every
/// failure names the file and what is wrong with it.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("cannot read the TLS certificate {}: {e}", cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the TLS certificate file {} holds no certificate (PEM, BEGIN CERTIFICATE)",
        cert.display()
    );
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("cannot read the TLS private key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, private)
    .map_err(|e| {
        anyhow::anyhow!(
            "the TLS certificate {} and key {} cannot be used together: {e}",
            cert.display(),
            key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
