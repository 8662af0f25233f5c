//! Interoperability with an independent implementation: the Python package `psec`
//! (TR-31 key blocks) and `cryptography` (its dependency; OpenSSL's SM4 for the derivation).
//!
//! Needs `python3` with `psec` (`cargo xtask setup` installs it); without it the tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::OnceLock;

use card_core::crypto::AesKey;
use key_mgmt::tr31::{self, Exportability, Header, KeyUsage, ModeOfUse, OptionalBlock, Tr31Algorithm};

fn python_ok(code: &str) -> bool {
    Command::new("python3").args(["-c", code]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Fails unless psec is importable. `cargo xtask test` installs it (`python3 -m pip install psec`); without it
/// these tests fail rather than pass untested.
fn require_psec() {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| python_ok("import psec.tr31"));
    assert!(ok, "python3 cannot import psec: run `cargo xtask setup` or `python3 -m pip install psec`");
}

/// Runs Python `code` with `args` in `sys.argv[1:]`; returns its stdout, trimmed.
fn python(code: &str, args: &[&str]) -> String {
    let o = Command::new("python3").arg("-c").arg(code).args(args).output().unwrap();
    assert!(o.status.success(), "python failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

const PSEC_UNWRAP: &str = "import sys\nfrom psec import tr31\nh, k = tr31.unwrap(bytes.fromhex(sys.argv[1]), sys.argv[2])\n\
print(k.hex().upper(), h.key_usage, h.algorithm, h.mode_of_use, h.version_num, h.exportability, dict(h.blocks).get('KS', '-'))";

const PSEC_WRAP: &str =
    "import sys\nfrom psec import tr31\nprint(tr31.wrap(bytes.fromhex(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])))";

fn cases() -> Vec<(String, Header, String)> {
    let mut out = Vec::new();
    let kbpks =
        ["88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6", "B8ED59E0A279A295E9F5ED7944FD06B9"];
    let headers = [
        Header::new(KeyUsage::E6, Tr31Algorithm::SM4, ModeOfUse::X, 0x01, Exportability::E),
        Header::new(KeyUsage::E5, Tr31Algorithm::TDES, ModeOfUse::X, 0x2A, Exportability::E),
        Header::new(KeyUsage::K0, Tr31Algorithm::AES, ModeOfUse::B, 0x00, Exportability::N),
        {
            let mut h = Header::new(KeyUsage::B0, Tr31Algorithm::TDES, ModeOfUse::X, 0x12, Exportability::S);
            h.optional.push(OptionalBlock { id: *b"KS", data: "00604B120F9292800000".into() });
            h
        },
    ];
    for k in kbpks {
        for (i, h) in headers.iter().enumerate() {
            out.push((k.to_string(), h.clone(), format!("{:02X}", 0x30 + i).repeat(16)));
        }
    }
    out
}

#[test]
fn psec_unwraps_our_blocks() {
    require_psec();
    for (kbpk, header, key) in cases() {
        let k = AesKey::new(&hex::decode(&kbpk).unwrap()).unwrap();
        for masked in [None, Some(32)] {
            let block = tr31::wrap(&k, &header, &hex::decode(&key).unwrap(), masked).unwrap();
            let got = python(PSEC_UNWRAP, &[&kbpk, &block]);
            let ks = header.optional.first().map(|b| b.data.as_str()).unwrap_or("-");
            let want = format!(
                "{key} {} {} {} {} {} {ks}",
                header.usage,
                header.algorithm,
                header.mode,
                std::str::from_utf8(&header.key_version).unwrap(),
                header.exportability
            );
            assert_eq!(got, want, "{block}");
        }
    }
}

#[test]
fn we_unwrap_psec_blocks() {
    require_psec();
    for (kbpk, header, key) in cases() {
        let ks = header.optional.first().map(|b| format!("KS{:02X}{}", b.data.len() + 4, b.data)).unwrap_or_default();
        let head = format!(
            "D0000{}{}{}{}{}{:02}00{ks}",
            header.usage,
            header.algorithm,
            header.mode,
            std::str::from_utf8(&header.key_version).unwrap(),
            header.exportability,
            header.optional.len()
        );
        let block = python(PSEC_WRAP, &[&kbpk, &head, &key]);
        let k = AesKey::new(&hex::decode(&kbpk).unwrap()).unwrap();
        let (h, got) = tr31::unwrap(&k, &block).unwrap();
        assert_eq!(hex::encode_upper(&got[..]), key);
        assert_eq!(h, header, "{block}");
    }
}

/// `keymgmt export` under an AES KEK, unwrapped by psec; and the SM4 card-key KCV of
/// `derive-kcv` recomputed with OpenSSL's SM4 (through `cryptography`).
#[test]
fn cli_export_and_sm4_derivation_match_python() {
    require_psec();
    let bin = env!("CARGO_BIN_EXE_keymgmt");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (n, t) in [
        ("c1.hex", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"),
        ("c2.hex", "3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A"),
        ("k1.hex", "00112233445566778899AABBCCDDEEFF"),
        ("k2.hex", "5B2E9A17C4D3F0886E11A9B0D7C4E2F3"),
        ("u1.hex", "A1B2C3D4E5F60718293A4B5C6D7E8F90"),
        ("u2.hex", "A09186B36C5DCAF7D7E6F1C41B2ABD80"),
        ("pass.txt", "correct horse battery staple"),
    ] {
        std::fs::write(d.join(n), t).unwrap();
    }
    let km = |args: &[&str]| {
        let o = Command::new(bin)
            .args(["--store", "k.db", "--passphrase-file", "pass.txt"])
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    km(&["init", "--component-file", "c1.hex", "--component-file", "c2.hex"]);
    km(&[
        "import",
        "--name",
        "KEK",
        "--version",
        "1",
        "--alg",
        "aes",
        "--component-file",
        "k1.hex",
        "--component-file",
        "k2.hex",
        "--activate",
    ]);
    km(&[
        "import",
        "--name",
        "UKMF",
        "--version",
        "1",
        "--alg",
        "sm4",
        "--component-file",
        "u1.hex",
        "--component-file",
        "u2.hex",
        "--activate",
    ]);
    let block = km(&["export", "--name", "UKMF", "--version", "1", "--kek", "KEK"]);
    let kek = "5B3FB824808696FFE688030B1B190C0C"; // k1 ⊕ k2
    let got = python(PSEC_UNWRAP, &[kek, block.trim()]);
    assert_eq!(got, "0123456789ABCDEFFEDCBA9876543210 E6 3 X 01 E -");

    let kcv_json = km(&[
        "derive-kcv",
        "--name",
        "UKMF",
        "--version",
        "1",
        "--region",
        "371700",
        "--card-factor",
        "1122334455667788",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&kcv_json).unwrap();
    let sm4 = "import sys\nfrom cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes\n\
def e(k, p):\n    c = Cipher(algorithms.SM4(k), modes.ECB()).encryptor(); return c.update(p) + c.finalize()\n\
def div(k, d): return e(k, d + bytes(b ^ 0xFF for b in d))\n\
k = bytes.fromhex(sys.argv[1])\ncard = div(div(k, sys.argv[2].encode() + b'sx'), bytes.fromhex(sys.argv[3]))\n\
print(e(card, bytes(16))[:3].hex().upper())";
    // Fails (never skips) when the cross-check cannot run: an untested derivation must not pass.
    assert!(
        python_ok(
            "from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes\n\
             Cipher(algorithms.SM4(bytes(16)), modes.ECB()).encryptor().update(bytes(16))"
        ),
        "python3's `cryptography` cannot encrypt with SM4 (its OpenSSL lacks SM4): install a build that has it, \
         e.g. `python3 -m pip install --upgrade cryptography` (the PyPI wheels bundle OpenSSL with SM4), \
         or run `cargo xtask setup`"
    );
    let py = python(sm4, &["0123456789ABCDEFFEDCBA9876543210", "371700", "1122334455667788"]);
    assert_eq!(v["kcv"].as_str().unwrap(), py);
}
