//! Known-answer tests from `test-vectors/*.json` (STYLE "Tests": one file per algorithm, hex text,
//! each vector citing its source).
//!
//! File schema:
//!
//! ```json
//! { "algorithm": "sm4", "source": "standard or project",
//!   "vectors": [ { "source": "…", "key": "HEX", "input": "HEX", "expected": "HEX", … } ] }
//! ```
//!
//! `all_vector_files` runs every file; adding a vector (or a file of a known algorithm) needs no
//! code. A new `algorithm` needs one arm in [`check_vector`]. The per-file tests below name
//! the file that failed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use card_core::crypto::{
    aes_cmac, retail_mac, sm4_cmac, tdes_cmac, AesKey, Algorithm, CardKey, DesKey, KcvMethod, Padding, Sm4Key, TdesKey,
};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

/// `Ok(())` or what went wrong.
type Checked = Result<(), String>;

/// Checks one vector of a file whose `algorithm` is `algorithm`.
///
/// THE dispatch: add a new algorithm as one arm here (e.g. the codec checks
/// `"iso7064-mod11-2"` and `"iso7064-mod37-2"`). An unknown algorithm is an error.
fn check_vector(algorithm: &str, v: &Value) -> Checked {
    match algorithm {
        "des" => check_des(v),
        "tdes" => check_tdes(v),
        "sm4" => check_sm4(v),
        "sm4-cbc" => check_sm4_cbc(v),
        "aes" => check_aes(v),
        "aes-cmac" => check_aes_cmac(v),
        "tdes-cmac" => check_tdes_cmac(v),
        "sm4-cmac" => check_sm4_cmac(v),
        "retail-mac" => check_retail_mac(v),
        "diversification" => check_diversification(v),
        "kcv" => check_kcv(v),
        "iso7064-mod11-2" => check_check_char(v, card_core::codec::mod11_2_check),
        "iso7064-mod37-2" => check_check_char(v, card_core::codec::mod37_2_check),
        "pcsc-part10" => check_pin_structure(v),
        other => Err(format!("unknown algorithm {other:?}: add an arm to check_vector")),
    }
}

/// ISO/IEC 7064 check characters: `input` (the body) → `expected` (one character).
fn check_check_char(v: &Value, check: fn(&str) -> Result<char, card_core::codec::CodecError>) -> Checked {
    let input = text(v, "input")?;
    let expected = text(v, "expected")?;
    let got = check(input).map_err(err)?;
    if expected.chars().eq(std::iter::once(got)) {
        Ok(())
    } else {
        Err(format!("check character of {input}: got {got}, expected {expected}"))
    }
}

/// PC/SC part 10 PIN structures: the fields (hex) serialized must give `expected`; with `card_pin_length`, the
/// card's own structure (`for_card`) must equal the fields too.
fn check_pin_structure(v: &Value) -> Checked {
    use card_core::profile::PinSpec;
    use card_core::transport::pinpad::{PadTimeouts, PinModifyStructure, PinVerifyStructure};
    let byte = |f: &str| hex_array::<1>(v, f).map(|[b]| b);
    let word = |f: &str| hex_array::<2>(v, f).map(u16::from_be_bytes);
    let timeouts = PadTimeouts { first: byte("bTimerOut")?, between: byte("bTimerOut2")? };
    let [min_digits, max_digits] = hex_array::<2>(v, "wPINMaxExtraDigit")?;
    let card = v.get("card_pin_length").and_then(Value::as_u64).map(|l| PinSpec { length: l as usize, max_tries: 3 });
    let expected = hex_field(v, "expected")?;
    match text(v, "structure")? {
        "verify" => {
            let s = PinVerifyStructure {
                timeouts,
                format_string: byte("bmFormatString")?,
                pin_block_string: byte("bmPINBlockString")?,
                pin_length_format: byte("bmPINLengthFormat")?,
                min_digits,
                max_digits,
                entry_validation: byte("bEntryValidationCondition")?,
                number_message: byte("bNumberMessage")?,
                lang_id: word("wLangId")?,
                msg_index: byte("bMsgIndex")?,
                teo_prologue: hex_array(v, "bTeoPrologue")?,
                apdu: hex_field(v, "abData")?,
            };
            expect_eq("PIN_VERIFY_STRUCTURE", &s.to_bytes().map_err(err)?, &expected)?;
            if let Some(spec) = card {
                let built = PinVerifyStructure::for_card(&spec, timeouts).map_err(err)?;
                expect_eq("for_card", &built.to_bytes().map_err(err)?, &expected)?;
            }
            Ok(())
        }
        "modify" => {
            let s = PinModifyStructure {
                timeouts,
                format_string: byte("bmFormatString")?,
                pin_block_string: byte("bmPINBlockString")?,
                pin_length_format: byte("bmPINLengthFormat")?,
                offset_old: byte("bInsertionOffsetOld")?,
                offset_new: byte("bInsertionOffsetNew")?,
                min_digits,
                max_digits,
                confirm_pin: byte("bConfirmPIN")?,
                entry_validation: byte("bEntryValidationCondition")?,
                number_message: byte("bNumberMessage")?,
                lang_id: word("wLangId")?,
                msg_index: hex_array(v, "bMsgIndex")?,
                teo_prologue: hex_array(v, "bTeoPrologue")?,
                apdu: hex_field(v, "abData")?,
            };
            expect_eq("PIN_MODIFY_STRUCTURE", &s.to_bytes().map_err(err)?, &expected)?;
            if let Some(spec) = card {
                let built = PinModifyStructure::for_card(&spec, timeouts).map_err(err)?;
                expect_eq("for_card", &built.to_bytes().map_err(err)?, &expected)?;
            }
            Ok(())
        }
        other => Err(format!("unknown structure {other:?}")),
    }
}

// ---------- field access ----------

fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v.get(field).and_then(Value::as_str).ok_or_else(|| format!("missing string field {field:?}"))
}

fn hex_field(v: &Value, field: &str) -> Result<Vec<u8>, String> {
    let s = text(v, field)?;
    if s.chars().any(|c| c.is_ascii_lowercase()) {
        return Err(format!("field {field:?} must be uppercase hex"));
    }
    hex::decode(s).map_err(|e| format!("field {field:?}: {e}"))
}

fn hex_array<const N: usize>(v: &Value, field: &str) -> Result<[u8; N], String> {
    let bytes = hex_field(v, field)?;
    bytes.try_into().map_err(|b: Vec<u8>| format!("field {field:?}: expected {N} bytes, got {}", b.len()))
}

fn expect_eq(what: &str, got: &[u8], expected: &[u8]) -> Checked {
    if got == expected {
        Ok(())
    } else {
        Err(format!("{what}: got {}, expected {}", hex::encode_upper(got), hex::encode_upper(expected)))
    }
}

fn card_algorithm(v: &Value) -> Result<Algorithm, String> {
    match text(v, "card_algorithm")? {
        "3DES" => Ok(Algorithm::Tdes),
        "SM4" => Ok(Algorithm::Sm4),
        "AES-128" => Ok(Algorithm::Aes128),
        other => Err(format!("unknown card_algorithm {other:?}")),
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ---------- checkers ----------

/// Single DES, one block (or several in ECB); also checks decryption.
fn check_des(v: &Value) -> Checked {
    let key = DesKey::new(&hex_field(v, "key")?).map_err(err)?;
    let input = hex_field(v, "input")?;
    let expected = hex_field(v, "expected")?;
    expect_eq("DES encrypt", &key.encrypt_ecb(&input).map_err(err)?, &expected)?;
    expect_eq("DES decrypt", &key.decrypt_ecb(&expected).map_err(err)?, &input)
}

/// Two-key 3DES, `mode` `ecb` or `cbc` (with `iv`); also checks decryption.
fn check_tdes(v: &Value) -> Checked {
    let key = TdesKey::new(&hex_field(v, "key")?).map_err(err)?;
    let input = hex_field(v, "input")?;
    let expected = hex_field(v, "expected")?;
    match text(v, "mode")? {
        "ecb" => {
            expect_eq("3DES-ECB encrypt", &key.encrypt_ecb(&input).map_err(err)?, &expected)?;
            expect_eq("3DES-ECB decrypt", &key.decrypt_ecb(&expected).map_err(err)?, &input)
        }
        "cbc" => {
            let iv: [u8; 8] = hex_array(v, "iv")?;
            expect_eq("3DES-CBC encrypt", &key.encrypt_cbc(&iv, &input).map_err(err)?, &expected)?;
            expect_eq("3DES-CBC decrypt", &key.decrypt_cbc(&iv, &expected).map_err(err)?, &input)
        }
        other => Err(format!("unknown mode {other:?}")),
    }
}

/// SM4 ECB; with `iterations` n, the (single-block) input is encrypted n times in a chain.
///
/// GB/T 32907 example 2 (n = 1 000 000) takes about 1.2 s in the test profile (the `sm4`
/// crate is built with opt-level 2, this crate with 0) and 0.15 s in release: cheap enough to
/// run always, so there is no skip.
fn check_sm4(v: &Value) -> Checked {
    let key = Sm4Key::new(&hex_field(v, "key")?).map_err(err)?;
    let input = hex_field(v, "input")?;
    let expected = hex_field(v, "expected")?;
    let iterations = v.get("iterations").and_then(Value::as_u64).unwrap_or(1);
    if iterations == 1 {
        expect_eq("SM4 encrypt", &key.encrypt_ecb(&input).map_err(err)?, &expected)?;
        return expect_eq("SM4 decrypt", &key.decrypt_ecb(&expected).map_err(err)?, &input);
    }
    let mut block: [u8; 16] = hex_array(v, "input")?;
    for _ in 0..iterations {
        key.encrypt_block(&mut block);
    }
    expect_eq("SM4 iterated encrypt", &block, &expected)
}

/// SM4-CBC without padding; also checks decryption.
fn check_sm4_cbc(v: &Value) -> Checked {
    let key = Sm4Key::new(&hex_field(v, "key")?).map_err(err)?;
    let iv: [u8; 16] = hex_array(v, "iv")?;
    let input = hex_field(v, "input")?;
    let expected = hex_field(v, "expected")?;
    expect_eq("SM4-CBC encrypt", &key.encrypt_cbc(&iv, &input).map_err(err)?, &expected)?;
    expect_eq("SM4-CBC decrypt", &key.decrypt_cbc(&iv, &expected).map_err(err)?, &input)
}

/// AES-128/256 ECB; also checks decryption.
fn check_aes(v: &Value) -> Checked {
    let key = AesKey::new(&hex_field(v, "key")?).map_err(err)?;
    let input = hex_field(v, "input")?;
    let expected = hex_field(v, "expected")?;
    expect_eq("AES encrypt", &key.encrypt_ecb(&input).map_err(err)?, &expected)?;
    expect_eq("AES decrypt", &key.decrypt_ecb(&expected).map_err(err)?, &input)
}

/// AES-CMAC, full tag.
fn check_aes_cmac(v: &Value) -> Checked {
    let key = AesKey::new(&hex_field(v, "key")?).map_err(err)?;
    let tag = aes_cmac(&key, &hex_field(v, "input")?);
    expect_eq("AES-CMAC", &tag, &hex_field(v, "expected")?)
}

/// TDES-CMAC with a two-key 3DES key, full 8-byte tag.
fn check_tdes_cmac(v: &Value) -> Checked {
    let key = TdesKey::new(&hex_field(v, "key")?).map_err(err)?;
    let tag = tdes_cmac(&key, &hex_field(v, "input")?);
    expect_eq("TDES-CMAC", &tag, &hex_field(v, "expected")?)
}

/// SM4-CMAC, full 16-byte tag.
fn check_sm4_cmac(v: &Value) -> Checked {
    let key = Sm4Key::new(&hex_field(v, "key")?).map_err(err)?;
    let tag = sm4_cmac(&key, &hex_field(v, "input")?);
    expect_eq("SM4-CMAC", &tag, &hex_field(v, "expected")?)
}

/// Retail MAC (ISO/IEC 9797-1 MAC algorithm 3); `padding` 1 or 2; optional `iv`.
fn check_retail_mac(v: &Value) -> Checked {
    let key = TdesKey::new(&hex_field(v, "key")?).map_err(err)?;
    let padding = match v.get("padding").and_then(Value::as_u64) {
        Some(1) => Padding::Method1,
        Some(2) => Padding::Method2,
        other => return Err(format!("padding must be 1 or 2, got {other:?}")),
    };
    let iv: [u8; 8] = if v.get("iv").is_some() { hex_array(v, "iv")? } else { [0; 8] };
    let input = hex_field(v, "input")?;
    let mac = retail_mac(&key, &iv, &input, padding);
    expect_eq("retail MAC", &mac, &hex_field(v, "expected")?)
}

/// `Div` along `factors` (CARD-PROFILE §5.2).
fn check_diversification(v: &Value) -> Checked {
    let key = CardKey::new(card_algorithm(v)?, &hex_field(v, "key")?).map_err(err)?;
    let factors = v
        .get("factors")
        .and_then(Value::as_array)
        .ok_or("missing array field \"factors\"")?
        .iter()
        .map(|f| {
            let bytes = hex::decode(f.as_str().ok_or("factor must be a hex string")?).map_err(err)?;
            <[u8; 8]>::try_from(bytes).map_err(|_| "factor must be 8 bytes".to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let derived = key.div_path(&factors);
    expect_eq("Div", derived.expose_secret(), &hex_field(v, "expected")?)
}

/// KCV (CARD-PROFILE §6.6); `method` zeros, gp-ones or cmac.
fn check_kcv(v: &Value) -> Checked {
    let key = CardKey::new(card_algorithm(v)?, &hex_field(v, "key")?).map_err(err)?;
    let method = match text(v, "method")? {
        "zeros" => KcvMethod::Zeros,
        "gp-ones" => KcvMethod::GlobalPlatformOnes,
        "cmac" => KcvMethod::Cmac,
        other => return Err(format!("unknown method {other:?}")),
    };
    let kcv = key.kcv(method);
    let expected = text(v, "expected")?;
    if kcv.to_string() != expected {
        return Err(format!("KCV: got {kcv}, expected {expected}"));
    }
    expect_eq("KCV", &kcv.value, &hex_field(v, "expected")?)
}

// ---------- drivers ----------

/// Runs every vector of one file; returns the number passed or the list of failures.
fn run_file(path: &Path) -> Result<usize, Vec<String>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{name}: {e}")])?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| vec![format!("{name}: {e}")])?;
    let algorithm =
        doc.get("algorithm").and_then(Value::as_str).ok_or_else(|| vec![format!("{name}: missing \"algorithm\"")])?;
    if doc.get("source").and_then(Value::as_str).is_none() {
        return Err(vec![format!("{name}: missing file-level \"source\"")]);
    }
    let vectors = doc
        .get("vectors")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| vec![format!("{name}: missing or empty \"vectors\"")])?;
    let mut passed = 0;
    let mut failures = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let result = match v.get("source").and_then(Value::as_str) {
            None => Err("missing \"source\"".to_string()),
            Some(_) => check_vector(algorithm, v),
        };
        match result {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{name} [{algorithm}] vector {i}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(passed)
    } else {
        Err(failures)
    }
}

/// Every `*.json` file of `test-vectors/`, sorted.
fn vector_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("test-vectors directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The required test: every file, every vector.
#[test]
fn all_vector_files() {
    let files = vector_files();
    assert!(!files.is_empty(), "no vector files in {}", vectors_dir().display());
    let mut total = 0;
    let mut failures = Vec::new();
    for path in &files {
        match run_file(path) {
            Ok(n) => {
                let file = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
                println!("{file}: {n} vectors passed");
                total += n;
            }
            Err(f) => failures.extend(f),
        }
    }
    println!("{} files, {total} vectors passed", files.len());
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    assert!(total >= files.len(), "every file has at least one vector");
}

/// An unknown algorithm is an error, not a silent pass.
#[test]
fn unknown_algorithm_is_an_error() {
    let v: Value = serde_json::json!({ "source": "test", "input": "00" });
    assert!(check_vector("no-such-algorithm", &v).is_err());
}

/// One test per file (STYLE "Tests": the test named after the file).
macro_rules! vector_file_tests {
    ($($test:ident => $file:literal,)*) => {$(
        #[test]
        fn $test() {
            let path = vectors_dir().join($file);
            if let Err(f) = run_file(&path) {
                panic!("{}", f.join("\n"));
            }
        }
    )*};
}

vector_file_tests! {
    // GB/T 32907-2016 Appendix A; draft-ribose-cfrg-sm4 A.2.1
    sm4_json => "sm4.json",
    // draft-ribose-cfrg-sm4 A.2.2
    sm4_cbc_json => "sm4-cbc.json",
    // NIST SP 800-20, FIPS 81
    des_json => "des.json",
    // NIST SP 800-20 (TECB/TCBC)
    tdes_json => "tdes.json",
    // FIPS 197 Appendices B, C.1, C.3
    aes_json => "aes.json",
    // NIST SP 800-38B D.1, D.3; RFC 4493
    aes_cmac_json => "aes-cmac.json",
    // NIST SP 800-38B D.5 (two-key TDEA), corrected examples
    tdes_cmac_json => "tdes-cmac.json",
    // computed with OpenSSL's CMAC + SM4 (no published vector found); see the file
    sm4_cmac_json => "sm4-cmac.json",
    // ISO/IEC 9797-1 MAC algorithm 3; ICAO 9303-11 D.3
    retail_mac_json => "retail-mac.json",
    // EMV option A
    diversification_json => "diversification.json",
    // libccid examples/scardcontrol.c (PC/SC part 10 structures); the card's own, see the file
    pcsc_part10_json => "pcsc-part10.json",
    // CARD-PROFILE §6.6, §9
    kcv_json => "kcv.json",
    // GB 11643 / CARD-PROFILE §9, LD/T 33 sample, python-stdnum
    iso7064_mod11_2_json => "iso7064-mod11-2.json",
    // python-stdnum doctest and computed values, each labelled
    iso7064_mod37_2_json => "iso7064-mod37-2.json",
}
