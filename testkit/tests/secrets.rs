//! No secret leaks into what the programs print or keep: a whole desk-and-counter run through pcscd — a key store
//! made from components with a passphrase, a transport key from components, a card issued with a holder's own PIN,
//! the card read, its PIN verified at the terminal and through the agent with a token, the audit checked — and then
//! every byte the programs printed and every file they wrote (journal, key store, audit logs, the agent's spent
//! tokens, the witness and the sink) is searched for every secret used: each component, the transport key, the
//! passphrase, the PINs and the token key, in hex of either case and as text. Only the files that hold a secret by
//! design (the inputs the test wrote, the card image, the token key file) are not searched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use testkit::script::{programs, run_block};

const C1: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
const C2: &str = "3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A";
const PASSPHRASE: &str = "correct horse battery staple";
const T1: &str = "5C5154477C7C686F2C202C1A64656E56";
const T2: &str = "5D535040747765613C33390C7D7F7249";
/// T1 ⊕ T2.
const TRANSPORT: &str = "01020407080B0D0E10131516191A1C1F";
/// The holder's own initial PIN, and the new PIN the counter sets.
const PIN: &str = "481537";
const NEW_PIN: &str = "902614";

/// Files that hold a secret by design: what the test wrote for the programs, and the virtual card's image.
const INPUTS: &[&str] =
    &["c1.hex", "c2.hex", "pass.txt", "t1.hex", "t2.hex", "holders.csv", "agent-token.key", "card.json", "script"];

const SCRIPT: &str = r#"
printf '%s\n' "$C1" > c1.hex
printf '%s\n' "$C2" > c2.hex
printf '%s\n' "$PASSPHRASE" > pass.txt
printf '%s\n' "$T1" > t1.hex
printf '%s\n' "$T2" > t2.hex
printf 'ssn,name,name_ext,sex,ethnicity,birthplace,birth_date,region_code,initial_pin,photo\n371702198101010112,张三,,1,01,371702,19810101,371700,%s,\n' "$PIN" > holders.csv
keymgmt --store keys.db --passphrase-file pass.txt init --component-file c1.hex --component-file c2.hex
keymgmt --store keys.db --passphrase-file pass.txt generate-profile-keys --alg 3des --version 1 --activate
keymgmt --store keys.db --passphrase-file pass.txt import --name TRANSPORT --version 1 --alg 3des --component-file t1.hex --component-file t2.hex --activate
keymgmt --store keys.db --passphrase-file pass.txt list --json
echo 'not the passphrase' > wrong.txt
keymgmt --store keys.db --passphrase-file wrong.txt list || true
card-sim new --gen 2 --region 371700 --serial 77 --transport-key "$TRANSPORT" --out card.json
card-sim --vpcd 127.0.0.1:35963 --image card.json --save &
issuance --journal j.db --keystore keys.db --passphrase-file pass.txt personalize --generation 2 --holders holders.csv --reader 'Virtual PCD 00 00'
issuance --journal j.db status --json
issuance --journal j.db report --format json
terminal-agent read-basic --json
terminal-agent verify-pin --pin-fd 3 3<<< "$PIN"
terminal-agent token-key --out agent-token.key
printf 'allowed_origins = ["https://counter.example"]\ntoken_key_file = "agent-token.key"\naudit_log = "agent-audit.jsonl"\nterminal_no = "T1"\n' > agent.toml
terminal-agent serve --config agent.toml --port 17791 &
TOKEN=$(terminal-agent token --config agent.toml --scope pin)
curl --retry 30 --retry-connrefused --retry-delay 1 -sS -X POST -H 'Host: 127.0.0.1:17791' -H 'Origin: https://counter.example' \
     -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "{\"pin\": \"$PIN\"}" \
     http://127.0.0.1:17791/v1/readers/0/pin/verify
TOKEN=$(terminal-agent token --config agent.toml --scope pin)
curl -sS -X POST -H 'Host: 127.0.0.1:17791' -H 'Origin: https://counter.example' -H "Authorization: Bearer $TOKEN" \
     -H 'Content-Type: application/json' -d "{\"old_pin\": \"$PIN\", \"new_pin\": \"$NEW_PIN\"}" \
     http://127.0.0.1:17791/v1/readers/0/pin/change
TOKEN=$(terminal-agent token --config agent.toml --scope pin)
curl -sS -X POST -H 'Host: 127.0.0.1:17791' -H 'Origin: https://counter.example' -H "Authorization: Bearer $TOKEN" \
     -H 'Content-Type: application/json' -d "{\"pin\": \"$NEW_PIN\"}" http://127.0.0.1:17791/v1/readers/0/pin/verify
keymgmt --store keys.db --passphrase-file pass.txt audit verify
"#;

/// The ways a secret could show: as given, lower-case hex, and (for PINs) the BCD bytes a card command carries.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let mut out = vec![secret.as_bytes().to_vec(), secret.to_ascii_lowercase().into_bytes()];
    if let Ok(bytes) = hex::decode(secret) {
        if bytes.len() >= 8 {
            out.push(bytes);
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "fixtures") {
                files(&p, out);
            }
        } else if !INPUTS.iter().any(|i| p.file_name().is_some_and(|n| n == *i)) && !p.ends_with(".doc-test.sh") {
            out.push(p);
        }
    }
}

#[test]
fn no_secret_is_printed_or_kept_by_a_whole_run() {
    assert!(testkit::pcscd::answers(), "pcscd is not running (cargo xtask setup starts it)");
    let _lock = testkit::vpcd_lock();
    let bin = programs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = format!(
        "C1={C1} C2={C2} PASSPHRASE='{PASSPHRASE}' T1={T1} T2={T2} TRANSPORT={TRANSPORT} PIN={PIN} NEW_PIN={NEW_PIN}\n{SCRIPT}"
    );
    let outcome = run_block(d, &bin, &script, Duration::from_secs(300));
    assert_eq!(outcome.code, Some(0), "the run failed:\n{}", outcome.output);
    // the run did what it says: a card issued, the PIN verified twice and changed
    assert!(outcome.output.contains("issued"), "{}", outcome.output);
    assert!(outcome.output.contains("audit log OK"), "{}", outcome.output);
    assert_eq!(outcome.output.matches("\"ok\":true").count(), 3, "{}", outcome.output);
    let token_key = std::fs::read_to_string(d.join("agent-token.key")).unwrap().trim().to_owned();

    let secrets = [C1, C2, PASSPHRASE, T1, T2, TRANSPORT, PIN, NEW_PIN, token_key.as_str()];
    let mut searched = vec![(String::from("the programs' output"), outcome.output.clone().into_bytes())];
    let mut written = Vec::new();
    files(d, &mut written);
    for f in &written {
        searched.push((f.strip_prefix(d).unwrap().display().to_string(), std::fs::read(f).unwrap()));
    }
    let names: Vec<&str> = searched.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["keys.db", "j.db", "agent-audit.jsonl", "agent-spent-tokens"] {
        assert!(names.iter().any(|n| n.starts_with(expected)), "{expected} was not written: {names:?}");
    }
    let mut leaks = Vec::new();
    for (name, bytes) in &searched {
        for secret in secrets {
            for form in forms(secret) {
                if bytes.windows(form.len()).any(|w| w == form.as_slice()) {
                    leaks.push(format!("{name} holds {}…", &secret[..4.min(secret.len())]));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "secrets found: {leaks:?} (searched {names:?})");
}
