//! End to end through pcscd and vpcd: the `issuance` program personalizes the sample batch on card-sim
//! blank cards that the test inserts into `Virtual PCD 00 00` one after another while the program waits
//! for each; then `status --json` shows every card issued. Also one card issued in process through
//! `PcscTransport`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use card_core::profile::Generation;
use card_core::transport::PcscTransport;
use card_sim::SimTransport;
use issuance::prepare::Settings;
use issuance::run::Issuer;
use testkit::{vpcd_lock, Reader0, READER};

#[test]
fn cli_personalizes_the_sample_one_card_after_another() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    let (child, rx) = common::spawn(
        common::issuance(dir.path())
            .args(["personalize", "--generation", "2", "--card-timeout", "60", "--reader", READER, "--holders"])
            .arg(common::fixture("holders/sample.csv")),
    );
    let mut issued = Vec::new();
    for (i, line) in [2, 3, 4, 5, 6].into_iter().enumerate() {
        let asked = common::expect_line(&rx, "insert a blank card");
        assert!(asked.contains(&format!("line {line} ")), "{asked}");
        let card = Reader0::insert(SimTransport::new(common::blank(2, 0x1000 + i as u64)));
        let done = common::expect_line(&rx, &format!("line {line} "));
        assert!(done.contains("issued"), "{done}");
        issued.push(card.remove());
    }
    let summary = common::expect_line(&rx, "batch 1:");
    assert!(summary.contains("5 issued, 0 failed"), "{summary}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let status = common::issuance(dir.path()).args(["status", "--json"]).output().unwrap();
    assert!(status.status.success());
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["format"], "issuance/1");
    assert_eq!(v["counts"]["issued"], 5);
    let cards = v["cards"].as_array().unwrap();
    assert!(cards.iter().all(|c| c["state"] == "issued"));
    let numbers: std::collections::BTreeSet<_> = cards.iter().map(|c| c["card_number"].to_string()).collect();
    assert_eq!(numbers.len(), 5);

    let report = common::issuance(dir.path()).args(["report", "--format", "json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(v["average"]["apdus"], 144.0);
    // the modeled card time of each card (it was empty through pcscd): the host's model of the APDUs it
    // exchanged through pcscd is what the card itself modeled, and the average is theirs
    let rows = v["cards"].as_array().unwrap();
    assert_eq!(rows.len(), issued.len());
    let mut sum = 0;
    for (row, sim) in rows.iter().zip(&issued) {
        let us = sim.modeled_time().as_micros() as i64;
        assert_eq!(row["modeled_us"].as_i64(), Some(us), "{row}");
        sum += us;
    }
    assert_eq!(rows[3]["modeled_us"].as_i64(), Some(4_274_150), "line 5, as issued in process (tests/issue.rs)");
    assert_eq!(v["average"]["modeled_us"].as_f64(), Some(sum as f64 / 5.0));
    let csv = common::issuance(dir.path()).args(["report", "--format", "csv"]).output().unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(csv.lines().any(|l| l.ends_with(",144,3056,4274150")), "{csv}");

    // a card of the batch, verified again in the reader (read back, keys, internal authentication)
    let card = Reader0::insert(issued.swap_remove(3));
    let out = common::issuance(dir.path()).args(["verify", "--json", "--reader", READER]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["ssn"], "371721198509090047");
    drop(card);
}

#[test]
fn cli_runs_one_worker_per_reader() {
    use card_core::transport::{wait_for_card, wait_for_removal, ReaderSelector};
    use card_sim::vpcd::InsertedCard;
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    let readers = [(READER, "127.0.0.1:35963"), ("Virtual PCD 00 01", "127.0.0.1:35964")];
    let (child, rx) = common::spawn(
        common::issuance(dir.path())
            .args(["personalize", "--generation", "3", "--card-timeout", "60", "--reader", readers[0].0])
            .args(["--reader", readers[1].0, "--holders"])
            .arg(common::fixture("holders/sample.csv")),
    );
    let mut inserted: [Option<InsertedCard>; 2] = [None, None];
    let mut serial = 0x3000;
    let mut done = Vec::new();
    let summary = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("output");
        if line.starts_with("batch ") {
            break line;
        }
        for (i, (name, port)) in readers.iter().enumerate() {
            let sel = ReaderSelector::Name((*name).into());
            if line.starts_with(&format!("{name}: insert")) {
                serial += 1;
                inserted[i] = Some(InsertedCard::insert(SimTransport::new(common::blank(3, serial)), port).unwrap());
                wait_for_card(&sel, Duration::from_secs(10)).unwrap();
            } else if line.starts_with(&format!("{name}: remove")) {
                inserted[i].take().unwrap().remove().unwrap();
                wait_for_removal(&sel, Duration::from_secs(10)).unwrap();
            } else if line.starts_with(&format!("{name}: line")) {
                assert!(line.contains("issued"), "{line}");
                done.push(i);
            }
        }
    };
    assert!(summary.contains("5 issued, 0 failed"), "{summary}");
    assert!(done.contains(&0) && done.contains(&1), "both readers worked: {done:?}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for c in inserted.into_iter().flatten() {
        c.remove().unwrap();
    }
}

#[test]
fn one_card_through_pcscd_in_process() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    let keys = common::key_source(&dir.path().join("keys.db"));
    let journal = common::fresh_journal();
    let holders = common::sample(Generation::THREE);
    let batch = journal.new_batch("sample.csv", 3, &holders).unwrap();
    let issuer = Issuer::reference(&keys, &journal, Settings::new(Generation::THREE));
    let card = Reader0::insert(SimTransport::new(common::blank(3, 0x2000)));
    let mut t = PcscTransport::connect(&testkit::reader()).unwrap();
    let (id, costs) = issuer.issue(&mut t, &holders[0], Some(batch)).unwrap();
    drop(t);
    assert_eq!(journal.card(id).unwrap().state, "issued");
    assert_eq!(costs.apdus, 147);
    let sim = card.remove();
    assert_eq!(sim.card().lifecycle(), card_sim::Lifecycle::Personalized);
}

/// `issuance replace` through pcscd: the old card presented in the reader is application-blocked, then the
/// blank card in the same reader becomes the replacement; a second holder's card, absent, is only marked
/// replaced. `status --json` shows both old cards replaced (blocked or not) and the new ones issued as type 2.
#[test]
fn cli_replaces_a_presented_card_and_an_absent_one() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    // two cards issued earlier (in process, into the CLI's journal)
    let keys = common::key_source(&dir.path().join("keys.db"));
    let journal = common::journal(dir.path());
    let holders = common::sample(Generation::TWO);
    let batch = journal.new_batch("sample.csv", 2, &holders).unwrap();
    let issuer = Issuer::reference(&keys, &journal, Settings::new(Generation::TWO));
    let mut old1 = SimTransport::new(common::blank(2, 0x6000));
    let n1 = journal.card(issuer.issue(&mut old1, &holders[0], Some(batch)).unwrap().0).unwrap().card_number;
    let mut old2 = SimTransport::new(common::blank(2, 0x6100));
    let n2 = journal.card(issuer.issue(&mut old2, &holders[1], Some(batch)).unwrap().0).unwrap().card_number;

    // presented: the old card first, then the blank one, in one reader
    let (child, rx) = common::spawn(common::issuance(dir.path()).args([
        "replace",
        "--card-number",
        &n1,
        "--reader",
        READER,
        "--card-timeout",
        "60",
        "--reason",
        "damaged",
    ]));
    common::expect_line(&rx, "present the old card");
    let card = Reader0::insert(old1);
    common::expect_line(&rx, "application blocked");
    common::expect_line(&rx, "remove the old card");
    let mut old1 = card.remove();
    common::expect_line(&rx, "insert a blank card for line 2 ");
    let card = Reader0::insert(SimTransport::new(common::blank(2, 0x6001)));
    let done = common::expect_line(&rx, "issued as the replacement");
    assert!(done.contains(&n1), "{done}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(card);
    assert_eq!(common::select_ssse(&mut old1), card_core::apdu::StatusWord::FUNCTION_NOT_SUPPORTED, "old card blocked");

    // absent: only the blank card is at the desk
    let card = Reader0::insert(SimTransport::new(common::blank(2, 0x6101)));
    let out = common::issuance(dir.path())
        .args(["--json", "replace", "--card-number", &n2, "--old-card-absent", "--reader", READER])
        .args(["--card-timeout", "60"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(card);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["old"]["application_blocked"], false);
    assert_eq!((v["new"]["state"].as_str(), v["new"]["card_type"].as_str()), (Some("issued"), Some("2")));
    assert_ne!(v["new"]["card_number"].as_str(), Some(n2.as_str()));
    assert_eq!(common::select_ssse(&mut old2), card_core::apdu::StatusWord::OK, "the absent card was not touched");

    let status = common::issuance(dir.path()).args(["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!((v["counts"]["issued"].as_i64(), v["counts"]["replaced"].as_i64()), (Some(2), Some(2)));
    let cards = v["cards"].as_array().unwrap();
    let by_number = |n: &str| cards.iter().find(|c| c["card_number"] == n).unwrap();
    assert_eq!(by_number(&n1)["state"], "replaced");
    assert_eq!(by_number(&n1)["replacement"]["application_blocked"], true);
    assert_eq!(by_number(&n2)["state"], "replaced");
    assert_eq!(by_number(&n2)["replacement"]["application_blocked"], false);
    assert!(by_number(&n2)["error"].as_str().unwrap().contains("NOT blocked"));
    let new: Vec<_> = cards.iter().filter(|c| c["state"] == "issued").collect();
    assert!(new.iter().all(|c| c["card_type"] == "2"));
    let report = common::issuance(dir.path()).args(["report", "--format", "csv"]).output().unwrap();
    let text = String::from_utf8(report.stdout).unwrap();
    assert!(text.lines().any(|l| l.contains(&n1) && l.contains(",replaced,")), "{text}");

    // a replaced card is not replaced again
    let again = common::issuance(dir.path())
        .args(["replace", "--card-number", &n1, "--old-card-absent", "--reader", READER])
        .output();
    assert_eq!(again.unwrap().status.code(), Some(2));
}

/// Issue 17: the prompt names the holder as written in the (UTF-8) holders file — 陈𠮷, whose 𠮷 GBK cannot
/// encode — not as tag 09 holds the name (`陈〓`).
#[test]
fn cli_prompt_shows_the_name_as_written() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    let sample = std::fs::read_to_string(common::fixture("holders/sample.csv")).unwrap();
    let lines: Vec<&str> = sample.lines().collect();
    let one = dir.path().join("one.csv");
    std::fs::write(&one, format!("{}\n{}\n", lines[0], lines[4])).unwrap();
    let (child, rx) = common::spawn(
        common::issuance(dir.path())
            .args(["personalize", "--generation", "2", "--card-timeout", "60", "--reader", READER, "--holders"])
            .arg(&one),
    );
    let asked = common::expect_line(&rx, "insert a blank card");
    assert!(asked.contains("line 2 陈𠮷 (371721198509090047)"), "{asked}");
    let card = Reader0::insert(SimTransport::new(common::blank(2, 0x2100)));
    assert!(common::expect_line(&rx, "line 2 ").contains("issued"));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(card);
}

/// Issue 10: through pcscd, the `issuance` program issues holders whose names have a character GBK lacks —
/// 张𠮷 (𠮷 U+20BB7, CJK extension B) and 李㐀 (㐀 U+3400, extension A), `name_ext` empty — on generations 2
/// and 3; each card, read back in the reader through card-core's `PcscTransport`, gives the name whole (tag 09
/// with 〓, tag 4E in GB 18030, the national string).
#[test]
fn cli_issues_names_outside_gbk_that_read_back_whole() {
    use card_core::card::SocialSecurityCard;
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    let keys = common::key_source(&dir.path().join("keys.db"));
    let names = [("张𠮷", "张〓"), ("李㐀", "李〓")];
    // one journal: other holders (SSNs of the sample) on each generation
    let rows = [
        ("371702198101010112,张𠮷,,1,01,371702,19810101", "371702199002150026,李㐀,,2,01,371702,19900215"),
        ("371702200006300031,张𠮷,,1,01,371702,20000630", "371721198509090047,李㐀,,2,01,371721,19850909"),
    ];
    for (g, (a, b)) in [2u8, 3].into_iter().zip(rows) {
        let holders = dir.path().join(format!("names-{g}.csv"));
        let header = issuance::holders::HEADER.join(",");
        std::fs::write(&holders, format!("{header}\n{a},371700,,\n{b},371700,,\n")).unwrap();
        let (child, rx) = common::spawn(
            common::issuance(dir.path())
                .args(["personalize", "--generation", &g.to_string(), "--card-timeout", "60", "--reader", READER])
                .arg("--holders")
                .arg(&holders),
        );
        let mut issued = Vec::new();
        for (i, (line, (name, _))) in [2, 3].into_iter().zip(names).enumerate() {
            let asked = common::expect_line(&rx, "insert a blank card");
            assert!(asked.contains(&format!("line {line} {name} ")), "{asked}");
            let card = Reader0::insert(SimTransport::new(common::blank(g, 0x4000 + u64::from(g) * 16 + i as u64)));
            let done = common::expect_line(&rx, &format!("line {line} "));
            assert!(done.contains("issued"), "{done}");
            issued.push(card.remove());
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let gen = Generation::new(g).unwrap();
        let module = keys.region_module("371700", issuance::prepare::algorithm_of(gen)).unwrap();
        for (sim, (name, name_09)) in issued.into_iter().zip(names) {
            let card = Reader0::insert(sim);
            let mut reader = SocialSecurityCard::new(PcscTransport::connect(&testkit::reader()).unwrap());
            let info = reader.read_basic(&module).unwrap();
            drop(reader);
            drop(card);
            assert_eq!(info.name.as_deref(), Some(name), "gen {g}");
            assert_eq!(info.name_09.as_deref(), Some(name_09), "gen {g}");
            assert_eq!(info.name_ext.as_deref(), Some(name), "gen {g}");
            assert_eq!(info.national(&Default::default()).as_str().split('|').nth(4), Some(name), "gen {g}");
        }
    }
}
