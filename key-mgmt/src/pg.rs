//! Connecting to PostgreSQL as libpq's URLs say, with rustls on ring (`tokio-postgres-rustls`): `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey` in the URL. Used by issuance-cli's journal and by the key service's lookup of a card's key
//! versions in that journal.
//!
//! - `disable`: no TLS.
//! - `prefer` (the default): TLS if the server offers it, else a plain connection; the certificate not verified.
//! - `require`: TLS or nothing; the certificate not verified (as libpq: encryption only).
//! - `verify-ca`: TLS, the server's certificate chained to the CA in `sslrootcert`; any host name.
//! - `verify-full`: as `verify-ca`, and the certificate is for the host of the URL.
//!
//! As in libpq, `prefer` and `require` with an `sslrootcert` verify the chain as `verify-ca` does. The system's
//! roots are never used: `verify-ca` and `verify-full` need `sslrootcert`.
//!
//! `sslcert` and `sslkey` (both or neither, and not with `sslmode=disable`): the client certificate (its chain, PEM)
//! and its private key (PEM: PKCS#8, PKCS#1 or SEC1), presented when the server asks for one (a `cert` line in
//! `pg_hba.conf`, or `clientcert=verify-ca|verify-full`). The files are read at each connection; the key is held
//! in zeroized memory until rustls takes it, and no error quotes either file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
pub use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if offered, not verified.
    Prefer,
    /// TLS, not verified.
    Require,
    /// TLS, chained to `sslrootcert`.
    VerifyCa,
    /// TLS, chained to `sslrootcert`, for the URL's host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The mode's name in a URL.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS parameters of a URL.
#[derive(Clone, Debug)]
pub struct TlsParams {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: the CA to trust.
    pub root_cert: Option<PathBuf>,
    /// `sslcert` and `sslkey`: the client certificate to present.
    pub client_cert: Option<ClientCert>,
}

/// A client certificate's files (`sslcert`, `sslkey`): the paths only, never their content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// `sslcert`: the certificate, then any intermediate CA certificates (PEM).
    pub cert: PathBuf,
    /// `sslkey`: its private key (PEM).
    pub key: PathBuf,
}

/// What is wrong with a URL's TLS parameters.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// A `%` escape that is not one.
    #[error("the URL is not a valid postgresql:// URL")]
    Malformed,
    /// An `sslmode` libpq does not have (or `allow`, which is not offered).
    #[error("sslmode={0} is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    /// `verify-ca`/`verify-full` without `sslrootcert`.
    #[error("sslmode={0} needs sslrootcert=FILE (the CA that signed the server's certificate)")]
    RootCertMissing(&'static str),
    /// A password in the URL: passwords are given apart (a file, PGPASSWORD), never where they are shown.
    #[error("the URL holds a password")]
    PasswordInUrl,
    /// `sslcert` without `sslkey`, or `sslkey` without `sslcert`.
    #[error("{given}=FILE without {missing}=FILE: a client certificate needs both sslcert (the certificate) and sslkey (its private key)")]
    ClientCertIncomplete {
        /// The parameter given.
        given: &'static str,
        /// The one missing.
        missing: &'static str,
    },
    /// `sslcert` and `sslkey` with `sslmode=disable`: a client certificate is presented over TLS only.
    #[error("sslcert and sslkey need TLS, and sslmode=disable turns it off: remove them or use another sslmode")]
    ClientCertWithoutTls,
}

/// Why no TLS configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The `sslrootcert` file cannot be read or holds no usable certificate.
    #[error("sslrootcert {}: {source}", path.display())]
    RootCert {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `sslcert` file cannot be read or holds no usable certificate.
    #[error("sslcert {}: {source}", path.display())]
    ClientCert {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        #[source]
        source: std::io::Error,
    },
    /// The `sslkey` file cannot be read, holds no usable private key, or not the key of the `sslcert` certificate.
    #[error("sslkey {}: {source}", path.display())]
    ClientKey {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        #[source]
        source: std::io::Error,
    },
    /// rustls refused the configuration (a defect).
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
}

/// Why a connection failed, when TLS was the reason.
#[derive(Debug)]
pub enum Refusal {
    /// The server's certificate is not signed by the CA of `sslrootcert`.
    NotTrusted {
        /// The CA file.
        ca: PathBuf,
        /// rustls's words.
        source: rustls::Error,
    },
    /// The server's certificate is not for the URL's host.
    Name {
        /// The URL's hosts.
        host: String,
        /// rustls's words.
        source: rustls::Error,
    },
    /// The server's certificate was refused otherwise (expired, malformed).
    Certificate(rustls::Error),
    /// The server does not offer TLS and `sslmode` requires it.
    NoTls(&'static str),
    /// The server requires TLS and `sslmode` does not use it.
    TlsRequired(&'static str),
    /// The server requires a client certificate and the URL gives none (`sslcert`, `sslkey`).
    ClientCertRequired,
    /// The server refused the client certificate during the handshake (not signed by a CA it trusts, expired).
    ClientCertRefused {
        /// The certificate file (`sslcert`).
        cert: PathBuf,
        /// The server's alert, as rustls reports it.
        source: rustls::Error,
    },
    /// The server accepted the certificate's chain, but its subject (CN) is not the user connecting.
    ClientCertUser {
        /// The certificate file (`sslcert`).
        cert: PathBuf,
        /// The user of the URL.
        user: String,
    },
    /// Not TLS: the `postgres` crate's error says why.
    Other,
}

/// Takes `sslmode`, `sslrootcert`, `sslcert` and `sslkey` out of the URL's query: the URL the `postgres` crate
/// reads (which knows neither `verify-*` nor the files), and the TLS parameters.
pub fn split_url(url: &str) -> Result<(String, TlsParams), UrlError> {
    let mut params = TlsParams { mode: SslMode::Prefer, root_cert: None, client_cert: None };
    let (mut cert_file, mut key_file) = (None, None);
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), params));
    };
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                let value = percent_decode(value).ok_or(UrlError::Malformed)?;
                params.mode = SslMode::parse(&value).ok_or(UrlError::SslMode(value))?;
            }
            "sslrootcert" => params.root_cert = file_param(value)?,
            "sslcert" => cert_file = file_param(value)?,
            "sslkey" => key_file = file_param(value)?,
            _ => rest.push(pair),
        }
    }
    params.client_cert = match (cert_file, key_file) {
        (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
        (Some(_), None) => return Err(UrlError::ClientCertIncomplete { given: "sslcert", missing: "sslkey" }),
        (None, Some(_)) => return Err(UrlError::ClientCertIncomplete { given: "sslkey", missing: "sslcert" }),
        (None, None) => None,
    };
    if params.mode == SslMode::Disable && params.client_cert.is_some() {
        return Err(UrlError::ClientCertWithoutTls);
    }
    if matches!(params.mode, SslMode::VerifyCa | SslMode::VerifyFull) && params.root_cert.is_none() {
        return Err(UrlError::RootCertMissing(params.mode.name()));
    }
    let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
    Ok((url, params))
}

/// A file parameter's path, percent-decoded; none when empty (as libpq).
fn file_param(value: &str) -> Result<Option<PathBuf>, UrlError> {
    let value = percent_decode(value).ok_or(UrlError::Malformed)?;
    Ok((!value.is_empty()).then(|| PathBuf::from(value)))
}

/// `%XX` decoded (UTF-8), `None` when malformed.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What `url` (no password in it) says, with `password` added and `application` as the application name unless
/// the URL names one: the `postgres` configuration and the TLS parameters it is connected with ([`connect`]).
pub fn config(url: &str, password: Option<&str>, application: &str) -> Result<(postgres::Config, TlsParams), UrlError> {
    let (base, tls) = split_url(url)?;
    let mut config: postgres::Config = base.parse().map_err(|_| UrlError::Malformed)?;
    if config.get_password().is_some() {
        return Err(UrlError::PasswordInUrl);
    }
    if let Some(p) = password {
        config.password(p);
    }
    if config.get_application_name().is_none() {
        config.application_name(application);
    }
    config.ssl_mode(pg_mode(&tls));
    Ok((config, tls))
}

/// Whether `e` says the server is gone or cannot be reached (refused, reset, shut down, restarting) rather than
/// refusing what was asked: a new connection may succeed where this one failed.
pub fn is_connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // connection exceptions; admin/crash shutdown; the server starting up or shutting down
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    // no answer at all: refused, reset, unreachable
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The `sslmode` the `postgres` crate is given (it checks the server's answer to the TLS request itself).
pub fn pg_mode(params: &TlsParams) -> postgres::config::SslMode {
    match params.mode {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => postgres::config::SslMode::Require,
    }
}

/// The TLS connector for `params`; none for `sslmode=disable`.
pub fn connector(params: &TlsParams) -> Result<Option<MakeRustlsConnect>, SetupError> {
    if params.mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match &params.root_cert {
        None => Arc::new(EncryptOnly(provider.clone())),
        Some(file) => {
            let roots = Arc::new(roots(file)?);
            let chain = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| root_cert_error(file, e))?;
            if params.mode == SslMode::VerifyFull {
                chain
            } else {
                Arc::new(AnyName(chain))
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(SetupError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &params.client_cert {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let chain = client_chain(&files.cert)?;
            let key = client_key(&files.key)?;
            // rustls takes its own copy (parsed into ring's key); ours is zeroized when dropped here
            builder.with_client_auth_cert(chain, key.clone_key()).map_err(|e| match e {
                rustls::Error::InvalidCertificate(_) => client_cert_error(&files.cert, e),
                rustls::Error::InconsistentKeys(_) => client_key_error(
                    &files.key,
                    format!("it is not the private key of the certificate in sslcert {}", files.cert.display()),
                ),
                other => client_key_error(&files.key, other),
            })?
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

fn client_cert_error(file: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SetupError {
    SetupError::ClientCert { path: file.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::InvalidData, e) }
}

fn client_key_error(file: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SetupError {
    SetupError::ClientKey { path: file.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::InvalidData, e) }
}

/// The client certificate chain of `file` (PEM `CERTIFICATE`s, the client's first). A PEM syntax error is said in
/// words of our own (the parser's quote a line of the file).
fn client_chain(file: &Path) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let text = std::fs::read(file).map_err(|source| SetupError::ClientCert { path: file.to_path_buf(), source })?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| client_cert_error(file, "it is not a well-formed PEM file"))?;
    if chain.is_empty() {
        return Err(client_cert_error(file, "it holds no PEM certificate"));
    }
    Ok(chain)
}

/// The private key of `file` (PEM: PKCS#8, PKCS#1 or SEC1), the file's bytes and the key zeroized when dropped.
/// No error says anything of the content.
fn client_key(file: &Path) -> Result<Zeroizing<PrivateKeyDer<'static>>, SetupError> {
    let text = Zeroizing::new(
        std::fs::read(file).map_err(|source| SetupError::ClientKey { path: file.to_path_buf(), source })?,
    );
    match PrivateKeyDer::from_pem_slice(&text) {
        Ok(key) => Ok(Zeroizing::new(key)),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            Err(client_key_error(file, "it holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"))
        }
        Err(_) => Err(client_key_error(file, "it is not a well-formed PEM file")),
    }
}

/// Connects with `config` (the URL without its TLS parameters) as `params` say.
pub fn connect(config: &postgres::Config, params: &TlsParams) -> Result<postgres::Client, ConnectError> {
    let client = match connector(params)? {
        None => config.connect(postgres::NoTls),
        Some(connector) => config.connect(connector),
    };
    client.map_err(ConnectError::Postgres)
}

/// A connection that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No TLS configuration.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The server or the network refused ([`refusal`] says whether TLS was why).
    #[error(transparent)]
    Postgres(postgres::Error),
}

fn root_cert_error(file: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SetupError {
    SetupError::RootCert { path: file.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::InvalidData, e) }
}

/// The CA certificates of `file` (PEM).
fn roots(file: &Path) -> Result<RootCertStore, SetupError> {
    let text = std::fs::read(file).map_err(|source| SetupError::RootCert { path: file.to_path_buf(), source })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&text) {
        let cert = cert.map_err(|e| root_cert_error(file, e))?;
        roots.add(cert).map_err(|e| root_cert_error(file, e))?;
    }
    if roots.is_empty() {
        return Err(root_cert_error(file, "it holds no PEM certificate"));
    }
    Ok(roots)
}

/// `prefer` and `require` without a CA: the connection is encrypted, the server's certificate not verified (libpq's
/// meaning of these modes). The handshake's signatures are still checked.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain to the CA verified (webpki checks the chain before the name), any host name accepted.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Whether TLS was why a connection failed: the server's certificate (not signed by the CA, not for the host,
/// otherwise refused), no TLS offered where it is required, or TLS required by the server where it is disabled
/// here.
pub fn refusal(e: &postgres::Error, params: &TlsParams, config: &postgres::Config) -> Refusal {
    if let Some(tls) = rustls_error(e) {
        // the server's alert about our certificate (OpenSSL's, when it does not verify it or wants one)
        if let rustls::Error::AlertReceived(alert) = &tls {
            let about_ours = matches!(
                alert,
                AlertDescription::BadCertificate
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::CertificateRevoked
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::UnknownCA
                    | AlertDescription::CertificateRequired
                    | AlertDescription::AccessDenied
            );
            match &params.client_cert {
                Some(files) if about_ours => {
                    return Refusal::ClientCertRefused { cert: files.cert.clone(), source: tls }
                }
                None if matches!(alert, AlertDescription::CertificateRequired) => return Refusal::ClientCertRequired,
                _ => {}
            }
        }
        return match (&tls, &params.root_cert) {
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature),
                Some(ca),
            ) => Refusal::NotTrusted { ca: ca.clone(), source: tls },
            (
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                ),
                _,
            ) => Refusal::Name { host: hosts(config), source: tls },
            (rustls::Error::InvalidCertificate(_), _) => Refusal::Certificate(tls),
            _ => Refusal::Other,
        };
    }
    let refused_plain = e.as_db_error().is_some_and(|db| {
        *db.code() == postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && db.message().ends_with("no encryption")
    });
    if refused_plain && matches!(params.mode, SslMode::Disable | SslMode::Prefer) {
        return Refusal::TlsRequired(params.mode.name());
    }
    // the server's words (auth.c) when a `cert` line or `clientcert=` finds no certificate, or one for another user
    let refused_auth = |words: &str| {
        e.as_db_error().is_some_and(|db| {
            *db.code() == postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION && db.message().contains(words)
        })
    };
    if refused_auth("requires a valid client certificate") {
        return Refusal::ClientCertRequired;
    }
    if let Some(files) = &params.client_cert {
        if refused_auth("certificate authentication failed for user")
            || refused_auth("certificate validation (clientcert=verify-full) failed for user")
        {
            let user = config.get_user().unwrap_or_default().to_owned();
            return Refusal::ClientCertUser { cert: files.cert.clone(), user };
        }
    }
    // the `postgres` crate's words when the server answers the TLS request with "no"
    let no_tls = std::error::Error::source(e).is_some_and(|s| s.to_string() == "server does not support TLS");
    if no_tls && e.as_db_error().is_none() {
        return Refusal::NoTls(params.mode.name());
    }
    Refusal::Other
}

/// The hosts of the URL, for a message.
fn hosts(config: &postgres::Config) -> String {
    config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The rustls error under a failed connection (through the `io::Error` tokio-rustls wraps it in), if any.
fn rustls_error(e: &postgres::Error) -> Option<rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls.clone());
            }
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, p) =
            split_url("postgresql://u@h:5/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&connect_timeout=3")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url, "postgresql://u@h:5/db?connect_timeout=3");
        assert_eq!((p.mode, p.root_cert), (SslMode::VerifyFull, Some(PathBuf::from("/tmp/ca.pem"))));
        let (url, p) = split_url("postgresql://u@h:5/db").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((url.as_str(), p.mode, p.root_cert), ("postgresql://u@h:5/db", SslMode::Prefer, None));
        let (url, p) = split_url("postgresql://u@h:5/db?sslmode=require").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((url.as_str(), p.mode), ("postgresql://u@h:5/db", SslMode::Require));
    }

    #[test]
    fn an_unknown_sslmode_or_verification_without_a_ca_is_refused() {
        assert!(matches!(
            split_url("postgresql://h/db?sslmode=allow"),
            Err(UrlError::SslMode(m)) if m == "allow"
        ));
        assert!(matches!(
            split_url("postgresql://h/db?sslmode=verify-ca"),
            Err(UrlError::RootCertMissing("verify-ca"))
        ));
        assert!(matches!(split_url("postgresql://h/db?sslrootcert=%G1"), Err(UrlError::Malformed)));
    }

    #[test]
    fn sslcert_and_sslkey_are_taken_out_of_the_url_together() {
        let (url, p) = split_url(
            "postgresql://desk@h:5/db?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=%2Fetc%2Fdesk.pem&sslkey=/etc/desk.key&connect_timeout=3",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url, "postgresql://desk@h:5/db?connect_timeout=3");
        assert_eq!(
            p.client_cert,
            Some(ClientCert { cert: PathBuf::from("/etc/desk.pem"), key: PathBuf::from("/etc/desk.key") })
        );
        // any mode that uses TLS; empty values are no files (as libpq)
        for mode in ["prefer", "require", "verify-ca&sslrootcert=/ca.pem"] {
            let (_, p) = split_url(&format!("postgresql://h/db?sslmode={mode}&sslcert=/c.pem&sslkey=/c.key"))
                .unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert!(p.client_cert.is_some(), "{mode}");
        }
        let (url, p) = split_url("postgresql://h/db?sslcert=&sslkey=").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((url.as_str(), p.client_cert), ("postgresql://h/db", None));
    }

    #[test]
    fn half_a_client_certificate_or_one_without_tls_is_refused() {
        let e = split_url("postgresql://h/db?sslmode=require&sslcert=/c.pem").map(|_| ()).unwrap_err();
        assert!(matches!(e, UrlError::ClientCertIncomplete { given: "sslcert", missing: "sslkey" }), "{e:?}");
        assert!(e.to_string().starts_with("sslcert=FILE without sslkey=FILE: a client certificate needs both"), "{e}");
        let e = split_url("postgresql://h/db?sslkey=/c.key").map(|_| ()).unwrap_err();
        assert!(matches!(e, UrlError::ClientCertIncomplete { given: "sslkey", missing: "sslcert" }), "{e:?}");
        let e = split_url("postgresql://h/db?sslmode=disable&sslcert=/c.pem&sslkey=/c.key").map(|_| ()).unwrap_err();
        assert!(matches!(e, UrlError::ClientCertWithoutTls), "{e:?}");
        assert!(e.to_string().contains("sslmode=disable"), "{e}");
        assert!(matches!(split_url("postgresql://h/db?sslcert=%ZZ&sslkey=/k"), Err(UrlError::Malformed)));
    }

    /// Files that cannot be used are named, and nothing of their content is quoted.
    #[test]
    fn unusable_client_files_are_named_without_their_content() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETxx!!\n-----END PRIVATE KEY-----\n";
        let (cert, key, missing) = (dir.path().join("c.pem"), dir.path().join("c.key"), dir.path().join("none.key"));
        std::fs::write(&key, secret).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&cert, "not a certificate TOPSECRET").unwrap_or_else(|e| panic!("{e}"));
        let params = |cert: &Path, key: &Path| TlsParams {
            mode: SslMode::Require,
            root_cert: None,
            client_cert: Some(ClientCert { cert: cert.to_path_buf(), key: key.to_path_buf() }),
        };
        let words = |r: Result<Option<MakeRustlsConnect>, SetupError>| match r {
            Ok(_) => panic!("a connector made"),
            Err(e) => (format!("{e:?}"), e.to_string(), e),
        };
        let (debug, text, e) = words(connector(&params(&cert, &key)));
        assert!(matches!(e, SetupError::ClientCert { ref path, .. } if *path == cert), "{debug}");
        assert_eq!(text, format!("sslcert {}: it holds no PEM certificate", cert.display()));
        assert!(!debug.contains("TOPSECRET"), "{debug}");

        let pki = testkit::pki::Pki::new(dir.path());
        let good = pki.client("desk");
        for (file, said) in [
            (&key, "it is not a well-formed PEM file"),
            (&good.cert, "it holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
        ] {
            let (debug, text, e) = words(connector(&params(&good.cert, file)));
            assert!(matches!(e, SetupError::ClientKey { ref path, .. } if path == file), "{debug}");
            assert_eq!(text, format!("sslkey {}: {said}", file.display()));
            assert!(!debug.contains("TOPSECRET") && !debug.contains("BEGIN"), "{debug}");
        }
        let (_, text, e) = words(connector(&params(&good.cert, &missing)));
        assert!(matches!(e, SetupError::ClientKey { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound));
        assert!(text.starts_with(&format!("sslkey {}: ", missing.display())), "{text}");
        // another certificate's key
        let other = pki.client("other");
        let (_, text, _) = words(connector(&params(&good.cert, &other.key)));
        assert_eq!(
            text,
            format!(
                "sslkey {}: it is not the private key of the certificate in sslcert {}",
                other.key.display(),
                good.cert.display()
            )
        );
        // both right: a connector
        assert!(connector(&params(&good.cert, &good.key)).is_ok_and(|c| c.is_some()));
    }
}
