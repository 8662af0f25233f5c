//! Test certificates for the services that use mutual TLS (the key service, `keymgmt serve`; the terminal
//! agent's client of it): a province's terminal CA, a server certificate for `localhost` and `127.0.0.1`,
//! terminal client certificates whose subject CN is the terminal number, an expired one, and the same from
//! another CA; PostgreSQL client certificates whose CN is the database user. PEM files written to a directory.
//! TEST MATERIAL ONLY: keys are made fresh and kept in clear.
//!
//! ```no_run
//! let dir = tempfile::tempdir().unwrap();
//! let pki = testkit::pki::Pki::new(dir.path());
//! let server = pki.server();                       // server.pem, server.key
//! let t = pki.terminal("371700000001");            // terminal-371700000001.pem / .key
//! let expired = pki.expired_terminal("371700000002");
//! let stranger = pki.other_ca_terminal("371700000001");
//! println!("{} {} {} {}", pki.ca_pem.display(), t.cert.display(), expired.serial, stranger.key.display());
//! # drop(server);
//! ```

use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// Its serial number, upper-case hex without leading zeros (as revocation lists write it).
    pub serial: String,
    /// The certificate, PEM text.
    pub cert_pem: String,
    /// The key, PEM text.
    pub key_pem: String,
}

/// A certificate authority made for a test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

/// The test PKI: the terminal CA (`ca.pem`), another CA (`other-ca.pem`), and what they issue, in `dir`.
pub struct Pki {
    dir: PathBuf,
    ca: Ca,
    other: Ca,
    /// The terminal CA's certificate (the service trusts it; clients trust it for the server too).
    pub ca_pem: PathBuf,
    /// Another CA's certificate (trusted by nobody).
    pub other_ca_pem: PathBuf,
    next_serial: std::cell::Cell<u64>,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn make_ca(name: &str) -> (Ca, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.distinguished_name.push(DnType::OrganizationName, "sscard test PKI");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (Ca { issuer: Issuer::new(params, key) }, cert.pem())
}

impl Pki {
    /// A new terminal CA and another CA, their certificates written to `dir` (`ca.pem`, `other-ca.pem`).
    pub fn new(dir: &Path) -> Pki {
        let (ca, ca_text) = make_ca("Province terminal CA (test)");
        let (other, other_text) = make_ca("Some other CA (test)");
        let ca_pem = dir.join("ca.pem");
        let other_ca_pem = dir.join("other-ca.pem");
        write(&ca_pem, &ca_text);
        write(&other_ca_pem, &other_text);
        Pki { dir: dir.to_path_buf(), ca, other, ca_pem, other_ca_pem, next_serial: std::cell::Cell::new(0x1001) }
    }

    fn issue(&self, by_other: bool, file: &str, cn: &str, server: bool, expired: bool) -> Issued {
        let sans = if server { vec!["localhost".to_string(), "127.0.0.1".to_string()] } else { Vec::new() };
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![if server { ExtendedKeyUsagePurpose::ServerAuth } else { ExtendedKeyUsagePurpose::ClientAuth }];
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        params.serial_number = Some(SerialNumber::from(serial));
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        } else {
            params.not_before = date_time_ymd(2024, 1, 1);
            params.not_after = date_time_ymd(2100, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let issuer = if by_other { &self.other.issuer } else { &self.ca.issuer };
        let cert = params.signed_by(&key, issuer).expect("sign the leaf");
        let (cert_path, key_path) = (self.dir.join(format!("{file}.pem")), self.dir.join(format!("{file}.key")));
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        write(&cert_path, &cert_pem);
        write(&key_path, &key_pem);
        Issued { cert: cert_path, key: key_path, serial: format!("{serial:X}"), cert_pem, key_pem }
    }

    /// The server's certificate for `localhost` and `127.0.0.1` (`server.pem`, `server.key`), by the terminal CA.
    pub fn server(&self) -> Issued {
        self.issue(false, "server", "localhost", true, false)
    }

    /// A terminal's client certificate (CN = `terminal`), by the terminal CA: `terminal-<N>.pem` / `.key`
    /// (a second one for the same terminal gets `-2`, `-3`, … appended).
    pub fn terminal(&self, terminal: &str) -> Issued {
        let file = self.fresh(&format!("terminal-{terminal}"));
        self.issue(false, &file, terminal, false, false)
    }

    /// A terminal certificate that expired in 2021.
    pub fn expired_terminal(&self, terminal: &str) -> Issued {
        let file = self.fresh(&format!("expired-{terminal}"));
        self.issue(false, &file, terminal, false, true)
    }

    /// A terminal certificate from another CA.
    pub fn other_ca_terminal(&self, terminal: &str) -> Issued {
        let file = self.fresh(&format!("other-{terminal}"));
        self.issue(true, &file, terminal, false, false)
    }

    /// A PostgreSQL client certificate for database user `user` (CN = `user`, what a `cert` line in `pg_hba.conf`
    /// compares with the user connecting), by the terminal CA: `client-<user>.pem` / `.key` (`-2`, … for another).
    pub fn client(&self, user: &str) -> Issued {
        let file = self.fresh(&format!("client-{user}"));
        self.issue(false, &file, user, false, false)
    }

    /// A client certificate for database user `user` from another CA.
    pub fn other_ca_client(&self, user: &str) -> Issued {
        let file = self.fresh(&format!("other-client-{user}"));
        self.issue(true, &file, user, false, false)
    }

    fn fresh(&self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 2;
        while self.dir.join(format!("{name}.pem")).exists() {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }
}
