//! TLS to the journal's PostgreSQL server: libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` in the journal
//! URL, as
//! [`key_mgmt::pg`] reads them (shared with the key service), with the journal's errors.

pub(crate) use key_mgmt::pg::TlsParams;
use key_mgmt::pg::{self, Refusal, SetupError, UrlError};

use crate::{Defect, Error, InputError, JournalError};

/// The `postgres` configuration of the journal URL (with `password`, application name `issuance`), and the TLS
/// parameters.
pub(crate) fn config(url: &str, password: Option<&str>) -> Result<(postgres::Config, TlsParams), InputError> {
    pg::config(url, password, "issuance").map_err(|e| match e {
        UrlError::Malformed => InputError::JournalUrl,
        UrlError::SslMode(m) => InputError::JournalSslMode(m),
        UrlError::RootCertMissing(m) => InputError::JournalRootCertMissing(m),
        UrlError::PasswordInUrl => InputError::JournalPasswordInUrl,
        UrlError::ClientCertIncomplete { given, missing } => InputError::JournalClientCertIncomplete { given, missing },
        UrlError::ClientCertWithoutTls => InputError::JournalClientCertWithoutTls,
    })
}

/// Connects with `config` as `params` say; a refusal said precisely when TLS was why.
pub(crate) fn connect(config: &postgres::Config, params: &TlsParams) -> Result<postgres::Client, Error> {
    match pg::connect(config, params) {
        Ok(c) => Ok(c),
        Err(pg::ConnectError::Setup(SetupError::RootCert { path, source })) => {
            Err(InputError::JournalRootCert { path, source }.into())
        }
        Err(pg::ConnectError::Setup(SetupError::ClientCert { path, source })) => {
            Err(InputError::JournalClientCert { path, source }.into())
        }
        Err(pg::ConnectError::Setup(SetupError::ClientKey { path, source })) => {
            Err(InputError::JournalClientKey { path, source }.into())
        }
        Err(pg::ConnectError::Setup(SetupError::Tls(e))) => Err(Defect::Tls(e).into()),
        Err(pg::ConnectError::Postgres(e)) => Err(match pg::refusal(&e, params, config) {
            Refusal::NotTrusted { ca, source } => JournalError::ServerNotTrusted { ca, source }.into(),
            Refusal::Name { host, source } => JournalError::ServerName { host, source }.into(),
            Refusal::Certificate(source) => JournalError::ServerCertificate(source).into(),
            Refusal::NoTls(mode) => JournalError::NoTls(mode).into(),
            Refusal::TlsRequired(mode) => JournalError::TlsRequired { mode, source: e }.into(),
            Refusal::ClientCertRequired => JournalError::ClientCertRequired.into(),
            Refusal::ClientCertRefused { cert, source } => JournalError::ClientCertRefused { cert, source }.into(),
            Refusal::ClientCertUser { cert, user } => JournalError::ClientCertUser { cert, user }.into(),
            Refusal::Other => Error::Postgres(e),
        }),
    }
}
