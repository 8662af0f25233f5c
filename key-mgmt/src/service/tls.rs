//! Mutual TLS: the server configuration (rustls on ring, installed explicitly), the terminal CA as the only
//! trust anchor for client certificates ([`WebPkiClientVerifier`]: chain and validity dates), and the peer's
//! identity read from its certificate with `x509-parser` (subject CN = the terminal number; the serial, for the
//! revocation list and the audit).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS setup failed (a file, a certificate, the key).
#[derive(Debug, thiserror::Error)]
#[error("TLS: {path}: {message}")]
pub struct TlsError {
    /// The file at fault.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError { path: path.display().to_string(), message: message.into() }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(path, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(path, "no certificate (PEM `CERTIFICATE`) in the file"));
    }
    Ok(certs)
}

/// The server configuration: our chain and key, client certificates required and verified against `client_ca`.
/// HTTP/1.1 only (ALPN `http/1.1`).
pub fn server_config(cert: &Path, key: &Path, client_ca: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for ca in certs(client_ca)? {
        roots.add(ca).map_err(|e| err(client_ca, e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| err(client_ca, e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .map_err(|e| err(key, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Who is on the other end of a connection, as the handlers see it (a request extension).
#[derive(Clone, Debug)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The terminal number: the certificate's subject CN (`None` over `--insecure-loopback`, or a certificate
    /// without a CN).
    pub terminal: Option<String>,
    /// The certificate's serial, upper-case hex without leading zeros (`None` over `--insecure-loopback`).
    pub serial: Option<String>,
    /// Plain HTTP on loopback (`--insecure-loopback`): the terminal is taken from the request.
    pub insecure: bool,
}

/// A serial as the revocation list and the audit write it: upper-case hex, no leading zeros (`0` for zero).
pub fn normalize_serial(bytes: &[u8]) -> String {
    let hex = hex::encode_upper(bytes);
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The subject CN and serial of a peer's end-entity certificate (already verified by rustls).
pub fn identity(cert: &CertificateDer<'_>) -> (Option<String>, Option<String>) {
    match x509_parser::parse_x509_certificate(cert.as_ref()) {
        Ok((_, x509)) => {
            let cn = x509
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string)
                .filter(|cn| !cn.is_empty() && cn.len() <= 64);
            (cn, Some(normalize_serial(x509.raw_serial())))
        }
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_serial;

    #[test]
    fn serials() {
        assert_eq!(normalize_serial(&[0x00, 0x10, 0x01]), "1001");
        assert_eq!(normalize_serial(&[0x00]), "0");
        assert_eq!(normalize_serial(&[0xAB, 0x0C]), "AB0C");
    }
}
