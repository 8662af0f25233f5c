//! The journal on PostgreSQL over TLS: `sslmode` and `sslrootcert` in the journal URL.
//!
//! Each test starts a throwaway cluster (`testkit::pg::Cluster`) that speaks TLS with a server certificate for
//! `localhost` and `127.0.0.1` from the test PKI (`testkit::pki`, rcgen) and accepts TCP connections over TLS only
//! (`hostssl` in `pg_hba.conf`): a plain connection is refused by the server. A test without Debian's PostgreSQL
//! fails: it never skips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use issuance::journal::pg::PgJournal;
use issuance::journal::{Backend, SCHEMA_VERSION};
use issuance::{Error, InputError, JournalError};
use testkit::pg::Cluster;
use testkit::pki::Pki;

/// A TLS-only cluster and the test PKI (its CA in `ca.pem`, another CA in `other-ca.pem`).
fn tls_cluster() -> (Cluster, Pki, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let cluster = Cluster::start_tls(&pki.server());
    (cluster, pki, dir)
}

fn url(cluster: &Cluster, query: &str) -> String {
    format!("{}?{query}", cluster.url())
}

fn verify(mode: &str, ca: &Path) -> String {
    format!("sslmode={mode}&sslrootcert={}", ca.display())
}

fn refusal(url: &str) -> Error {
    match PgJournal::connect(url, None) {
        Ok(_) => panic!("{url}: connected"),
        Err(e) => e,
    }
}

#[test]
fn verify_full_with_the_right_ca_opens_and_migrates_the_journal() {
    let (cluster, pki, _dir) = tls_cluster();
    for host in ["127.0.0.1", "localhost"] {
        let url = url(&cluster, &verify("verify-full", &pki.ca_pem)).replace("127.0.0.1", host);
        let j = PgJournal::connect(&url, None).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(j.schema_version().unwrap(), SCHEMA_VERSION);
    }
    // the tables are there: the journal migrated over TLS
    let j = PgJournal::connect(&url(&cluster, &verify("verify-ca", &pki.ca_pem)), None).unwrap();
    assert!(j.cards().unwrap().is_empty());
}

#[test]
fn verify_ca_accepts_any_host_name_verify_full_does_not() {
    let (cluster, pki, _dir) = tls_cluster();
    // the name the certificate is checked against is not the address connected to
    let base = cluster.url().replace("127.0.0.1", "journal.example");
    let query = |mode| format!("hostaddr=127.0.0.1&{}", verify(mode, &pki.ca_pem));
    PgJournal::connect(&format!("{base}?{}", query("verify-ca")), None).unwrap();
    let e = refusal(&format!("{base}?{}", query("verify-full")));
    assert!(
        matches!(e, Error::Journal(JournalError::ServerName { ref host, .. }) if host == "journal.example"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "journal: the journal server's certificate is not for journal.example (sslmode=verify-full)"
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused_with_the_ca_named() {
    let (cluster, pki, _dir) = tls_cluster();
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = refusal(&url(&cluster, &verify(mode, &pki.other_ca_pem)));
        assert!(matches!(e, Error::Journal(JournalError::ServerNotTrusted { .. })), "{mode}: {e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "journal: the journal server's certificate is not signed by the CA in {}",
                pki.other_ca_pem.display()
            )
        );
    }
    // the command line says the same, and exits as for any journal failure
    let out = Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", &url(&cluster, &verify("verify-full", &pki.other_ca_pem)), "status"])
        .env_remove("ISSUANCE_JOURNAL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("the journal server's certificate is not signed by the CA in"), "{err}");
}

#[test]
fn a_plain_connection_to_a_tls_only_server_is_refused_clearly() {
    let (cluster, _pki, _dir) = tls_cluster();
    let e = refusal(&url(&cluster, "sslmode=disable"));
    assert!(matches!(e, Error::Journal(JournalError::TlsRequired { mode: "disable", .. })), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("journal: the journal server refuses connections without TLS (sslmode=disable)"),
        "{text}"
    );
    // prefer (the default) uses TLS when the server offers it
    PgJournal::connect(&cluster.url(), None).unwrap();
    PgJournal::connect(&url(&cluster, "sslmode=prefer"), None).unwrap();
}

#[test]
fn require_encrypts_without_verifying_the_certificate() {
    let (cluster, _pki, _dir) = tls_cluster();
    // no CA given: the connection is encrypted (the server takes TCP over TLS only), the certificate not checked
    let j = PgJournal::connect(&url(&cluster, "sslmode=require"), None).unwrap();
    assert_eq!(j.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn require_against_a_server_without_tls_and_verification_without_a_ca_are_refused() {
    let cluster = Cluster::start();
    let e = refusal(&url(&cluster, "sslmode=require"));
    assert!(matches!(e, Error::Journal(JournalError::NoTls("require"))), "{e:?}");
    assert_eq!(e.to_string(), "journal: the journal server does not offer TLS (sslmode=require)");
    // prefer falls back to a plain connection there
    PgJournal::connect(&url(&cluster, "sslmode=prefer"), None).unwrap();

    let e = refusal(&url(&cluster, "sslmode=verify-full"));
    assert!(matches!(e, Error::Input(InputError::JournalRootCertMissing("verify-full"))), "{e:?}");
    assert!(e.to_string().contains("needs sslrootcert=FILE"), "{e}");
    let e = refusal(&url(&cluster, "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem"));
    assert!(matches!(e, Error::Input(InputError::JournalRootCert { .. })), "{e:?}");
    assert!(e.to_string().starts_with("sslrootcert /nonexistent/ca.pem of the journal URL: "), "{e}");
    let e = refusal(&url(&cluster, "sslmode=allow"));
    assert!(matches!(e, Error::Input(InputError::JournalSslMode(ref m)) if m == "allow"), "{e:?}");
}
