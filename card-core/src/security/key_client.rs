//! [`KeyServiceClient`]: the counter's side of the key service (`keymgmt serve`) — a [`Backend`] that posts the
//! two-step exchanges' Step1 strings over HTTPS with the terminal's client certificate (mutual TLS) and fails
//! over between replicas.
//!
//! - Replicas are tried in order, starting with the one that answered last; a replica that cannot be reached
//!   (connection refused, TLS failure, timeout) or answers `5xx` is skipped for the next. A `4xx` is the
//!   service's refusal (bad request, not allowed, rate limited): it is final and comes back as
//!   [`Error::KeyService`] with the service's national code — asking another replica would not change it.
//! - No replica reached: [`Error::KeyService`] with `reached: false` and code −11 (reader connection, as the
//!   national interface codes a link failure), naming each replica's failure.
//! - The answer's body is read with a size limit; nothing of a request or answer is logged.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use zeroize::{Zeroize, Zeroizing};

use super::key_service::{Answer, AnswerRequest, Backend, Query, Refusal, ANSWERS_PATH};
use crate::national;
use crate::Error;

/// Largest PEM file read (a certificate chain or a key is a few KiB).
pub const MAX_PEM_FILE: u64 = 256 * 1024;
/// Largest answer body read.
const MAX_ANSWER: u64 = 64 * 1024;

/// Where the key service is and who this terminal is.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URLs of the replicas (`https://keys1.example:8443`); tried in order.
    pub urls: Vec<String>,
    /// The terminal number (终端机编号); the service checks it against the certificate.
    pub terminal: String,
    /// The CA that signed the service's certificate (PEM).
    pub ca_file: PathBuf,
    /// The terminal's certificate (PEM, chain) and its key (PEM); none: no client certificate (the service
    /// refuses then, unless it runs `--insecure-loopback` in a test).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The longest wait for one replica (connect + answer).
    pub timeout: Duration,
}

/// A configuration of the client that cannot be used (unreadable or malformed files).
#[derive(Debug, thiserror::Error)]
#[error("key service client: {0}")]
pub struct ClientConfigError(String);

/// The key service over HTTPS, with failover between replicas.
pub struct KeyServiceClient {
    agent: ureq::Agent,
    urls: Vec<String>,
    terminal: String,
    /// The replica that answered last (tried first).
    preferred: AtomicUsize,
}

impl std::fmt::Debug for KeyServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyServiceClient").field("urls", &self.urls).field("terminal", &self.terminal).finish()
    }
}

fn pem_items(path: &Path) -> Result<Vec<PemItem<'static>>, ClientConfigError> {
    let bytes = crate::read_limited(path, MAX_PEM_FILE)
        .map_err(|e| ClientConfigError(format!("cannot read {}: {e}", path.display())))?;
    let items: Result<Vec<_>, _> = ureq::tls::parse_pem(&bytes).collect();
    items.map_err(|e| ClientConfigError(format!("{}: not PEM: {e}", path.display())))
}

fn certificates(path: &Path) -> Result<Vec<Certificate<'static>>, ClientConfigError> {
    let certs: Vec<_> = pem_items(path)?
        .into_iter()
        .filter_map(|i| match i {
            PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(ClientConfigError(format!("{}: no certificate", path.display())));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKey<'static>, ClientConfigError> {
    pem_items(path)?
        .into_iter()
        .find_map(|i| match i {
            PemItem::PrivateKey(k) => Some(k),
            _ => None,
        })
        .ok_or_else(|| ClientConfigError(format!("{}: no private key", path.display())))
}

/// What one replica did with a request.
enum Outcome {
    Answered(Answer),
    Refused(Error),
    /// Not reached, or a server error: try the next replica.
    Failed(String),
}

impl KeyServiceClient {
    /// A client for `config`: reads the CA, the certificate and its key now (a bad file is an error here, not
    /// at the first card).
    pub fn new(config: &ClientConfig) -> Result<Self, ClientConfigError> {
        if config.urls.is_empty() {
            return Err(ClientConfigError("no key service URL".into()));
        }
        for u in &config.urls {
            if !u.starts_with("https://") && !u.starts_with("http://127.0.0.1") && !u.starts_with("http://localhost") {
                return Err(ClientConfigError(format!(
                    "{u}: the key service is reached over https:// (plain http only on loopback, for tests)"
                )));
            }
        }
        let roots = RootCerts::Specific(Arc::new(certificates(&config.ca_file)?));
        let client_cert = match &config.client_cert {
            Some((cert, key)) => Some(ClientCert::new_with_certs(&certificates(cert)?, private_key(key)?)),
            None => None,
        };
        let tls = TlsConfig::builder().root_certs(roots).client_cert(client_cert).build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .user_agent("sscard-terminal")
            .build()
            .into();
        Ok(KeyServiceClient {
            agent,
            urls: config.urls.iter().map(|u| u.trim_end_matches('/').to_owned()).collect(),
            terminal: config.terminal.clone(),
            preferred: AtomicUsize::new(0),
        })
    }

    fn ask(&self, url: &str, body: &[u8]) -> Outcome {
        let response =
            self.agent.post(format!("{url}{ANSWERS_PATH}")).header("content-type", "application/json").send(body);
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("{url}: {e}")),
        };
        let status = response.status().as_u16();
        let text = match response.body_mut().with_config().limit(MAX_ANSWER).read_to_string() {
            Ok(t) => t,
            Err(e) => return Outcome::Failed(format!("{url}: answer unreadable: {e}")),
        };
        match status {
            200 => match serde_json::from_str::<Answer>(&text) {
                Ok(a) => Outcome::Answered(a),
                Err(_) => Outcome::Failed(format!("{url}: an answer that is not the service's JSON")),
            },
            s if s >= 500 => Outcome::Failed(format!("{url}: HTTP {s}")),
            s => {
                let refusal = serde_json::from_str::<Refusal>(&text).unwrap_or(Refusal {
                    error: "refused".into(),
                    code: national::BAD_PARAMETER,
                    message: format!("HTTP {s}"),
                });
                Outcome::Refused(Error::KeyService {
                    code: refusal.code,
                    message: format!("{} ({}, HTTP {s})", refusal.message, refusal.error),
                    reached: true,
                })
            }
        }
    }
}

impl Backend for KeyServiceClient {
    fn answer(&self, query: &Query<'_>) -> Result<Answer, Error> {
        let request = AnswerRequest {
            operation: query.operation,
            step1: query.step1.to_owned(),
            terminal: self.terminal.clone(),
            file: query.file.map(str::to_owned),
            step2: query.step2.map(str::to_owned),
        };
        // the body of a PIN operation holds the new PIN: both are wiped after the request
        let body = Zeroizing::new(
            serde_json::to_vec(&request).map_err(|e| Error::BadParameter(format!("key service request: {e}")))?,
        );
        if let Some(mut step2) = request.step2 {
            step2.zeroize();
        }
        let first = self.preferred.load(Ordering::Relaxed) % self.urls.len();
        let mut failures = Vec::new();
        for i in 0..self.urls.len() {
            let n = (first + i) % self.urls.len();
            let url = &self.urls[n];
            match self.ask(url, body.as_slice()) {
                Outcome::Answered(a) => {
                    self.preferred.store(n, Ordering::Relaxed);
                    return Ok(a);
                }
                Outcome::Refused(e) => return Err(e),
                Outcome::Failed(why) => {
                    tracing::warn!(replica = %url, "key service replica failed, trying the next: {why}");
                    failures.push(why);
                }
            }
        }
        Err(Error::KeyService {
            code: national::READER_CONNECTION,
            message: format!("no replica answered: {}", failures.join("; ")),
            reached: false,
        })
    }
}
