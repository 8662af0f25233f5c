//! What one read of the basic information costs the card, each way: deterministic, so asserted here (the wall
//! times are only in `cargo xtask bench`'s output).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use sscard_bench::measure::{modeled, project_steps, Costs};
use sscard_bench::reads::{test_keys, vendor_steps, Step};

fn costs(apdus: u64, bytes: u64, modeled_us: u64) -> Costs {
    Costs { apdus, bytes, modeled_us }
}

/// Generation 2: the project's 3 APDUs (SELECT SSSE, READ RECORD all of EF05, of EF06) against the vendors' 11.
/// The project reads the whole files (items the vendors skip too) yet moves 25 fewer bytes — 8 command headers,
/// status words and procedure bytes fewer — and takes 8 fewer command overheads: 43.65 ms less card time at 9600
/// bit/s (282.15 against 325.8 ms), 5.8 ms less at 115200.
#[test]
fn generation_2_read_basic() {
    let keys = test_keys().unwrap();
    let [project, vendor, raw] = modeled(2, 9600, &keys).unwrap();
    assert_eq!(project, costs(3, 222, 282_150));
    assert_eq!(vendor, costs(11, 247, 325_800));
    assert_eq!(raw, project, "the raw replay sends the project's own APDUs");
    let [project, vendor, raw] = modeled(2, 115_200, &keys).unwrap();
    assert_eq!(project, costs(3, 222, 24_337));
    assert_eq!(vendor, costs(11, 247, 30_174));
    assert_eq!(raw, project);
}

/// Generation 3, with RKSSSE: the project's 5 APDUs (SELECT, EF05, GET CHALLENGE, EXTERNAL AUTHENTICATE, EF06)
/// against the vendors' 16 (a second SELECT SSSE and EF05 after the authentication, as in the public log).
#[test]
fn generation_3_read_basic() {
    let keys = test_keys().unwrap();
    let [project, vendor, raw] = modeled(3, 9600, &keys).unwrap();
    assert_eq!(project, costs(5, 260, 332_950));
    assert_eq!(vendor, costs(16, 359, 473_750));
    assert_eq!(raw, project);
    let [project, vendor, _] = modeled(3, 115_200, &keys).unwrap();
    assert_eq!(project, costs(5, 260, 29_304));
    assert_eq!(vendor, costs(16, 359, 44_062));
}

/// The patterns themselves: the vendor's is record by record (one READ RECORD by identifier per item), the
/// project's reads whole files.
#[test]
fn the_patterns() {
    let keys = test_keys().unwrap();
    let reads = |steps: &[Step]| steps.iter().filter(|s| matches!(s, Step::Apdu(c) if c.get(1) == Some(&0xB2))).count();
    assert_eq!(reads(&vendor_steps(2)), 8);
    assert_eq!(reads(&vendor_steps(3)), 9);
    let project = project_steps(3, &keys).unwrap();
    assert_eq!(reads(&project), 2);
    // READ RECORD "all from record 1" (P2 low bits 101) of SFI 5 and SFI 6
    assert!(project.contains(&Step::Apdu(vec![0x00, 0xB2, 0x01, 0x2D, 0x00])));
    assert!(project.contains(&Step::Apdu(vec![0x00, 0xB2, 0x01, 0x35, 0x00])));
    assert!(project.contains(&Step::Authenticate { kid: 0x0A, key: "RKSSSE" }));
}

/// The Python baseline of the key set bench derives the same keys as card-core (when Python `cryptography` is
/// installed, as `cargo xtask bench` makes it; the test fails otherwise rather than skip).
#[test]
fn python_baseline_derives_card_cores_keys() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = testkit::tempdir();
    let out = dir.path().join("python.json");
    let status = std::process::Command::new("python3")
        .arg(root.join("bench/python_keysets.py"))
        .arg(&root)
        .arg(&out)
        .arg("0.05")
        .status()
        .expect("python3");
    assert!(status.success(), "python_keysets.py failed (is python3-cryptography installed?)");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(sscard_bench::report::check_python(&json).unwrap(), 56);
    // a key that differs is caught
    let mut wrong = json.clone();
    wrong["sm4"]["check"]["UKMF"] = serde_json::Value::String("00".repeat(16));
    assert!(sscard_bench::report::check_python(&wrong).unwrap_err().to_string().contains("sm4 UKMF differs"));
}

/// The README's section between the markers is replaced, the rest kept; no markers is an error.
#[test]
fn readme_section_is_replaced_between_its_markers() {
    use sscard_bench::report::replace_section;
    let readme = "# T\n\n<!-- bench-results:start -->\nold\n<!-- bench-results:end -->\n\n## Tests\n";
    let new = replace_section(readme, "| a | b |\n").unwrap();
    assert_eq!(new, "# T\n\n<!-- bench-results:start -->\n| a | b |\n<!-- bench-results:end -->\n\n## Tests\n");
    assert_eq!(replace_section(&new, "x").unwrap().matches("bench-results").count(), 2);
    assert!(replace_section("# no markers", "x").is_err());
}
