//! Holder validation: each refusal names its line and field; the CLI refuses an invalid batch whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use card_core::profile::Generation;
use issuance::holders::{self, Context};

fn ctx<'a>(g: Generation, issued: &'a dyn Fn(&str) -> bool) -> Context<'a> {
    Context { generation: g, base: common::fixture("holders"), issued }
}

fn errors_of(p: &holders::Parsed) -> Vec<(u64, String)> {
    p.rejected.iter().flat_map(|r| &r.errors).map(|e| (e.line, e.field.clone())).collect()
}

#[test]
fn invalid_csv_names_line_and_field_of_each_refusal() {
    let no = |_: &str| false;
    let p = holders::read_file(
        &common::fixture("holders/invalid.csv"),
        &ctx(Generation::TWO, &no),
        holders::Encoding::Utf8,
    )
    .unwrap();
    let errs = errors_of(&p);
    for want in
        [(2, "ssn"), (3, "birth_date"), (4, "region_code"), (5, "name"), (7, "ssn"), (8, "initial_pin"), (8, "photo")]
    {
        assert!(errs.contains(&(want.0, want.1.to_owned())), "missing {want:?} in {errs:?}");
    }
    assert_eq!(p.valid.len(), 1);
    assert_eq!(p.valid[0].line, 6);
    let dup = p.rejected.iter().flat_map(|r| &r.errors).find(|e| e.line == 7).unwrap();
    assert!(dup.reason.contains("duplicate") && dup.reason.contains("line 6"), "{dup}");
}

#[test]
fn sample_is_valid_and_name_ext_needs_generation_2() {
    assert_eq!(common::sample(Generation::TWO).len(), 5);
    let h = common::sample(Generation::THREE);
    assert_eq!(h[3].name, "陈〓");
    assert_eq!(h[3].name_ext, "上土下口吉");
    assert!(h[4].own_pin && !h[0].own_pin);
    let no = |_: &str| false;
    let p =
        holders::read_file(&common::fixture("holders/sample.csv"), &ctx(Generation::ONE, &no), holders::Encoding::Utf8)
            .unwrap();
    assert!(errors_of(&p).contains(&(5, "name".to_owned())));
}

#[test]
fn already_issued_ssn_and_large_photo_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut big = vec![0xFF, 0xD8];
    big.resize(0x1001, 0);
    std::fs::write(dir.path().join("big.jpg"), &big).unwrap();
    std::fs::write(dir.path().join("ok.jpg"), [0xFF, 0xD8, 0xFF, 0xD9]).unwrap();
    let text = "ssn,name,name_ext,sex,ethnicity,birthplace,birth_date,region_code,initial_pin,photo\n\
                371702198101010112,张三,,1,01,371702,19810101,371700,,big.jpg\n\
                371702199002150026,李四,,2,01,371702,19900215,371700,,ok.jpg\n";
    let issued = |s: &str| s == "371702199002150026";
    let c = Context { generation: Generation::TWO, base: dir.path().to_path_buf(), issued: &issued };
    let p = holders::parse_csv(text, &c);
    assert_eq!(errors_of(&p), vec![(2, "photo".to_owned()), (3, "ssn".to_owned())]);
}

#[test]
fn json_lines_are_read_like_csv() {
    let no = |_: &str| false;
    let text = r#"{"ssn":"371702198101010112","name":"张三","sex":"1","ethnicity":"01","birthplace":"371702","birth_date":"19810101","region_code":"371700"}

{"ssn":"371702198101010113","name":"张三","sex":"1","ethnicity":"01","birthplace":"371702","birth_date":"19810101","region_code":"371700"}"#;
    let p = holders::parse_jsonl(text, &ctx(Generation::THREE, &no));
    assert_eq!(p.valid.len(), 1);
    assert_eq!(errors_of(&p), vec![(3, "ssn".to_owned())]);
}

#[test]
fn json_lines_with_an_unknown_or_missing_field_are_refused_naming_the_line() {
    let no = |_: &str| false;
    let text = r#"{"ssn":"371702198101010112","name":"张三","sex":"1","ethnicity":"01","birthplace":"371702","birth_date":"19810101","region_code":"371700","nickname":"x"}
{"ssn":"371702198101010112","name":"张三","sex":"1","ethnicity":"01","birthplace":"371702","region_code":"371700"}
{"ssn":"371702198101010112","name":"张三","sex":"1","ethnicity":"01","birthplace":"371702","birth_date":19810101,"region_code":"371700"}"#;
    let p = holders::parse_jsonl(text, &ctx(Generation::THREE, &no));
    assert_eq!(p.valid.len(), 0);
    assert_eq!(errors_of(&p), vec![(1, "row".to_owned()), (2, "row".to_owned()), (3, "row".to_owned())]);
    let reasons: Vec<String> = p.rejected.iter().flat_map(|r| r.errors.iter().map(|e| e.to_string())).collect();
    assert!(reasons[0].contains("unknown field `nickname`"), "{reasons:?}");
    assert!(reasons[1].contains("birth_date"), "{reasons:?}");
}

#[test]
fn cli_refuses_an_invalid_batch_whole_unless_skip_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.db");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_issuance"))
            .args(["--journal", journal.to_str().unwrap(), "validate", "--generation", "2", "--holders"])
            .arg(common::fixture("holders/invalid.csv"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2, field ssn:") && err.contains("line 5, field name:"), "{err}");
    let skipped = dir.path().join("rejected.csv");
    let out = run(&["--skip-invalid", skipped.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rejected = std::fs::read_to_string(&skipped).unwrap();
    assert_eq!(rejected.lines().count(), 1 + 6);
    assert!(!rejected.contains("12ab"), "a PIN is never written out");
    let pin_row = rejected.lines().find(|l| l.starts_with("371702198101010112,")).expect("line 8 is rejected");
    assert!(pin_row.contains(",REDACTED,"), "a refused row's PIN is REDACTED: {pin_row}");
}

/// A holder's PIN, valid or refused, is never in a `Debug` (which logs and panics print) nor in the
/// `--skip-invalid` report, which says `REDACTED` for it.
#[test]
fn a_pin_is_in_no_debug_and_redacted_in_the_refusal_report() {
    let no = |_: &str| false;
    let text = "ssn,name,name_ext,sex,ethnicity,birthplace,birth_date,region_code,initial_pin,photo\n\
                371702197703030052,欧阳明,,1,03,371702,19770303,371700,135790,\n\
                371702198101010113,张三,,1,01,371702,19810101,371700,24680,\n";
    let p = holders::parse_csv(text, &ctx(Generation::THREE, &no));
    assert_eq!(p.valid.len(), 1);
    assert_eq!(p.rejected.len(), 1);
    let valid = format!("{:?} {:#?}", p.valid[0], p.valid[0]);
    assert!(!valid.contains("135790"), "{valid}");
    assert!(valid.contains("REDACTED"), "{valid}");
    assert!(p.valid[0].own_pin && p.valid[0].pin.is_some());
    let refused = format!("{:?} {p:?}", p.rejected[0]);
    assert!(!refused.contains("24680"), "{refused}");
    assert!(refused.contains("REDACTED"), "{refused}");

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("rejected.csv");
    holders::write_rejected(&report, &p.rejected).unwrap();
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(!report.contains("24680"), "{report}");
    assert_eq!(report.lines().nth(1).unwrap().split(',').nth(8), Some("REDACTED"), "{report}");
}

/// Issue 17: 陈𠮷 (𠮷 is outside GBK) keeps tag 09's `陈〓` for the card, and its name as written for people.
#[test]
fn a_name_outside_gbk_is_shown_as_written() {
    for g in [Generation::TWO, Generation::THREE] {
        let h = &common::sample(g)[3];
        assert_eq!(h.name, "陈〓");
        assert_eq!(h.display_name(), "陈𠮷");
        assert_eq!(common::sample(g)[0].display_name(), "张三");
    }
    // a holder journalled before the name as written was kept shows tag 09's form
    let mut old = serde_json::to_value(&common::sample(Generation::TWO)[3]).unwrap();
    old.as_object_mut().unwrap().remove("written_name");
    let old: issuance::holders::Holder = serde_json::from_value(old).unwrap();
    assert_eq!(old.display_name(), "陈〓");
}

/// Issue 10: a name outside GBK (生僻字) needs no `name_ext` on generations 2 and 3: tag 09 holds it with 〓,
/// tag 4E the whole name (GB 18030). Generation 1 (no 4E) refuses it, and a name longer than 4E is refused,
/// each naming line and field.
#[test]
fn a_name_outside_gbk_alone_is_valid_on_generation_2_and_3() {
    let no = |_: &str| false;
    let text = "ssn,name,name_ext,sex,ethnicity,birthplace,birth_date,region_code,initial_pin,photo\n\
                371702198101010112,张𠮷,,1,01,371702,19810101,371700,,\n\
                371702199002150026,李㐀,,2,01,371702,19900215,371700,,\n\
                371702200006300031,王小明,,1,01,371702,20000630,371700,,\n\
                371721198509090047,阿卜杜𠮷热合曼·买买提,,2,01,371721,19850909,371700,,\n";
    for g in [Generation::TWO, Generation::THREE] {
        let p = holders::parse_csv(text, &ctx(g, &no));
        assert_eq!(errors_of(&p), vec![(5, "name".to_owned())]);
        let reason = &p.rejected[0].errors[0].reason;
        assert!(reason.contains("tag 4E") && reason.contains("24") && reason.contains("20"), "{reason}");
        let h = &p.valid;
        assert_eq!((h[0].name.as_str(), h[0].name_ext.as_str(), h[0].display_name()), ("张〓", "张𠮷", "张𠮷"));
        assert_eq!((h[1].name.as_str(), h[1].name_ext.as_str()), ("李〓", "李㐀"), "extension A, not in GBK");
        assert_eq!((h[2].name.as_str(), h[2].name_ext.as_str()), ("王小明", ""), "GBK: 4E stays empty");
    }
    let p = holders::parse_csv(text, &ctx(Generation::ONE, &no));
    assert_eq!(errors_of(&p), vec![(2, "name".to_owned()), (3, "name".to_owned()), (5, "name".to_owned())]);
    let reason = &p.rejected[0].errors[0].reason;
    assert!(reason.contains("𠮷") && reason.contains("generation 1") && reason.contains("4E"), "{reason}");
    // an explicit name_ext is the 4E text; it may hold what GBK cannot encode (GB 18030), within 20 bytes
    let text = "ssn,name,name_ext,sex,ethnicity,birthplace,birth_date,region_code,initial_pin,photo\n\
                371702198101010112,张𠮷,张𠮷,1,01,371702,19810101,371700,,\n\
                371702199002150026,李㐀,𠮷𠮷𠮷𠮷𠮷𠮷,2,01,371702,19900215,371700,,\n";
    let p = holders::parse_csv(text, &ctx(Generation::TWO, &no));
    assert_eq!((p.valid[0].name.as_str(), p.valid[0].name_ext.as_str()), ("张〓", "张𠮷"));
    assert_eq!(errors_of(&p), vec![(3, "name_ext".to_owned())]);
}

const HEADER_LINE: &str = "ssn,name,name_ext,sex,ethnicity,birthplace,birth_date,region_code,initial_pin,photo";

/// One valid row with `name` in place of the name (CSV-quoted by the caller when needed).
fn row(name: &str) -> String {
    format!("371702198101010112,{name},,1,01,371702,19810101,371700,,")
}

#[test]
fn names_with_characters_the_national_formats_cannot_carry_are_refused() {
    let no = |_: &str| false;
    for name in ["张\u{1}三", "\"张\t三\"", "\"张\n三\"", "张|三", "张$三", "张\u{1b}[31m三", "张\u{200B}三"]
    {
        let text = format!("{HEADER_LINE}\n{}\n", row(name));
        let p = holders::parse_csv(&text, &ctx(Generation::THREE, &no));
        assert_eq!(p.valid.len(), 0, "{name:?} was accepted");
        let e = p.rejected.iter().flat_map(|r| &r.errors).find(|e| e.field == "name").unwrap();
        assert_eq!(e.line, 2, "{name:?}");
        assert!(e.reason.contains("cannot be written on the card"), "{name:?}: {e}");
    }
    // the middle dot of Uyghur names and characters outside GBK are fine
    for name in ["阿卜杜·买买提", "张𠮷"] {
        let text = format!("{HEADER_LINE}\n{}\n", row(name));
        assert_eq!(holders::parse_csv(&text, &ctx(Generation::THREE, &no)).valid.len(), 1, "{name}");
    }
}

fn validate_file(dir: &std::path::Path, file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", dir.join("j.db").to_str().unwrap()])
        .args(extra)
        .args(["validate", "--generation", "2", "--holders"])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn holders_files_in_gbk_garbage_empty_endless_or_huge_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // exported from a Windows tool: GBK
    let text = format!("{HEADER_LINE}\n{}\n", row("张三"));
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    let file = d.join("gbk.csv");
    std::fs::write(&file, &gbk).unwrap();
    let out = validate_file(d, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2 is not UTF-8") && err.contains("--encoding gbk"), "{err}");
    let out = validate_file(d, &file, &["--encoding", "gbk"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 holders valid"));
    // binary garbage
    let file = d.join("garbage.csv");
    std::fs::write(&file, [0xFFu8, 0xFE, 0x00, 0x81, 0x30, 0x9F, 0xC3]).unwrap();
    let out = validate_file(d, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 is not UTF-8"));
    // a header and nothing else: an empty batch is an error
    let file = d.join("empty.csv");
    std::fs::write(&file, format!("{HEADER_LINE}\n")).unwrap();
    let out = validate_file(d, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no holders in the file"), "{out:?}");
    // a device that never ends
    let out = validate_file(d, std::path::Path::new("/dev/zero"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"), "{out:?}");
    // a 1 MB name: refused, and not echoed whole
    let file = d.join("huge.csv");
    std::fs::write(&file, format!("{HEADER_LINE}\n{}\n", row(&"张".repeat(350_000)))).unwrap();
    let out = validate_file(d, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.len() < 4096, "{} bytes of refusal", out.stderr.len());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2, field name:"));
}

#[test]
fn a_passphrase_file_that_never_ends_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", dir.path().join("j.db").to_str().unwrap()])
        .args(["--keystore", dir.path().join("keys.db").to_str().unwrap(), "--passphrase-file", "/dev/zero"])
        .args(["plan", "--holders"])
        .arg(common::fixture("holders/sample.csv"))
        .args(["--holder-line", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/zero: not a regular file") && err.contains("4096 bytes"), "{out:?}");
}

/// A photo that never ends (`/dev/zero`, a FIFO nobody writes) is refused at once, naming the file and the
/// limit; the batch is refused whole (exit 2) (issue 11).
#[test]
fn photo_files_that_never_end_are_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("photo.jpg");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success(), "mkfifo (coreutils) is needed");
    for photo in ["/dev/zero", fifo.to_str().unwrap()] {
        let file = d.join("holders.csv");
        std::fs::write(&file, format!("{HEADER_LINE}\n{}{photo}\n", row("张三"))).unwrap();
        let t0 = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_issuance"))
            .args(["--journal", d.join("j.db").to_str().unwrap()])
            .args(["validate", "--generation", "3", "--holders"])
            .arg(&file)
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{photo}: {said}");
        assert!(said.contains(&format!("{photo}: not a regular file")), "{photo}: the file is named: {said}");
        assert!(said.contains("1048576 bytes"), "{photo}: the limit is named: {said}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{photo}: not refused at once");
    }
}

/// A new-PIN file (`unblock-pin`, `reload-pin`) that never ends or is huge is refused at once, before any reader
/// or key store is touched, naming the file and the limit, exit 2 (issue 11).
#[test]
fn pin_files_that_never_end_are_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success(), "mkfifo (coreutils) is needed");
    let huge = d.join("huge.txt");
    std::fs::File::create(&huge).unwrap().set_len(4097).unwrap();
    for service in ["unblock-pin", "reload-pin"] {
        for bad in ["/dev/zero", fifo.to_str().unwrap(), huge.to_str().unwrap()] {
            let t0 = std::time::Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_issuance"))
                .args(["--journal", d.join("j.db").to_str().unwrap()])
                .args(["--keystore", d.join("keys.db").to_str().unwrap(), "--passphrase-file", "/dev/null"])
                .args([service, "--reader", "no such reader", "--card-number", "X00000019", "--new-pin-file", bad])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{service} {bad}: {err}");
            assert!(err.contains(&format!("--new-pin-file {bad}")), "{service} {bad}: the file is named: {err}");
            assert!(err.contains("4096 bytes"), "{service} {bad}: the limit is named: {err}");
            assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{service} {bad}: not refused at once");
        }
    }
}
