//! The journal on PostgreSQL over TLS: `sslmode`, `sslrootcert`, and a client certificate (`sslcert`, `sslkey`) in
//! the journal URL.
//!
//! Each test starts a throwaway cluster (`testkit::pg::Cluster`) that speaks TLS with a server certificate for
//! `localhost` and `127.0.0.1` from the test PKI (`testkit::pki`, rcgen) and accepts TCP connections over TLS only
//! (`hostssl` in `pg_hba.conf`): a plain connection is refused by the server; the client certificate tests' cluster
//! also requires a client certificate from the test CA whose CN is the user (`hostssl … cert`). A test without Debian's PostgreSQL
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

/// A TLS-only cluster that requires a client certificate from the test CA whose CN is the user (`hostssl … cert`),
/// and the test PKI.
fn client_cert_cluster() -> (Cluster, Pki, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let cluster = Cluster::start_tls_client_cert(&pki.server(), &pki.ca_pem);
    (cluster, pki, dir)
}

fn with_client(cluster: &Cluster, ca: &Path, client: &testkit::pki::Issued) -> String {
    url(
        cluster,
        &format!("{}&sslcert={}&sslkey={}", verify("verify-full", ca), client.cert.display(), client.key.display()),
    )
}

#[test]
fn a_client_certificate_for_the_user_opens_and_migrates_the_journal() {
    let (cluster, pki, _dir) = client_cert_cluster();
    let url = with_client(&cluster, &pki.ca_pem, &pki.client("postgres"));
    let j = PgJournal::connect(&url, None).unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(j.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(j.cards().unwrap().is_empty());
    // the server took the certificate: its subject is the session's client DN
    let (config, tls) = key_mgmt::pg::config(&url, None, "test").unwrap();
    let mut client = key_mgmt::pg::connect(&config, &tls).unwrap();
    let dn: String =
        client.query_one("SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap().get(0);
    assert!(dn.contains("CN=postgres"), "{dn}");
    // without verification of the server (require) the client certificate is presented all the same
    let require = url.replace(&verify("verify-full", &pki.ca_pem), "sslmode=require");
    PgJournal::connect(&require, None).unwrap_or_else(|e| panic!("{require}: {e}"));
    // the command line too
    let out = Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", &url, "--json", "status"])
        .env_remove("ISSUANCE_JOURNAL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn without_a_client_certificate_the_server_refuses_clearly() {
    let (cluster, pki, _dir) = client_cert_cluster();
    let e = refusal(&url(&cluster, &verify("verify-full", &pki.ca_pem)));
    assert!(matches!(e, Error::Journal(JournalError::ClientCertRequired)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "journal: the journal server requires a client certificate: set sslcert=FILE and sslkey=FILE in the \
         journal URL (a certificate whose CN is the database user, signed by the CA the server trusts)"
    );
}

#[test]
fn a_client_certificate_from_another_ca_or_for_another_user_is_refused() {
    let (cluster, pki, _dir) = client_cert_cluster();
    let stranger = pki.other_ca_client("postgres");
    let e = refusal(&with_client(&cluster, &pki.ca_pem, &stranger));
    assert!(
        matches!(e, Error::Journal(JournalError::ClientCertRefused { ref cert, .. }) if *cert == stranger.cert),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "journal: the journal server refuses the client certificate in {} (not signed by a CA it trusts, or \
             expired): ",
            stranger.cert.display()
        )),
        "{e}"
    );
    // the right CA, another user's certificate
    let desk = pki.client("desk");
    let e = refusal(&with_client(&cluster, &pki.ca_pem, &desk));
    assert!(matches!(e, Error::Journal(JournalError::ClientCertUser { ref user, .. }) if user == "postgres"), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "journal: the client certificate in {} is not for database user postgres (its CN must be the user)",
            desk.cert.display()
        )
    );
}

#[test]
fn sslcert_without_sslkey_or_an_unreadable_key_is_the_operators_error() {
    let (cluster, pki, dir) = client_cert_cluster();
    let client = pki.client("postgres");
    let e = refusal(&url(&cluster, &format!("sslmode=require&sslcert={}", client.cert.display())));
    assert!(
        matches!(e, Error::Input(InputError::JournalClientCertIncomplete { given: "sslcert", missing: "sslkey" })),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("sslcert=FILE in the journal URL without sslkey=FILE"), "{e}");
    let e = refusal(&url(&cluster, &format!("sslmode=disable&sslcert={0}&sslkey={0}", client.cert.display())));
    assert!(matches!(e, Error::Input(InputError::JournalClientCertWithoutTls)), "{e:?}");

    // a key file that cannot be read, or that holds no key: the path named, nothing of the file said
    let missing = dir.path().join("missing.key");
    let query = |key: &Path| {
        format!("{}&sslcert={}&sslkey={}", verify("verify-full", &pki.ca_pem), client.cert.display(), key.display())
    };
    let e = refusal(&url(&cluster, &query(&missing)));
    assert!(matches!(e, Error::Input(InputError::JournalClientKey { ref path, .. }) if *path == missing), "{e:?}");
    assert!(e.to_string().starts_with(&format!("sslkey {} of the journal URL: ", missing.display())), "{e}");
    assert_eq!(e.fault(), issuance::Fault::Input);
    let garbled = dir.path().join("garbled.key");
    // the key's base64 with characters base64 does not have
    let body = client.key_pem.lines().nth(1).unwrap();
    std::fs::write(&garbled, client.key_pem.replace(body, &format!("!!{}", &body[2..]))).unwrap();
    let e = refusal(&url(&cluster, &query(&garbled)));
    assert_eq!(
        e.to_string(),
        format!("sslkey {} of the journal URL: it is not a well-formed PEM file", garbled.display())
    );
    assert!(!format!("{e:?}").contains(&body[4..20]), "{e:?}");
    // the command line names the file and exits as for the operator's error
    let out = Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", &url(&cluster, &query(&missing)), "status"])
        .env_remove("ISSUANCE_JOURNAL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("sslkey {} of the journal URL", missing.display())), "{err}");
}
