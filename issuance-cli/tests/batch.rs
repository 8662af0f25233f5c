//! Stopping and continuing a batch, end to end through pcscd: Ctrl-C (SIGINT to the `issuance` process)
//! during the first card stops after that card with exit code 130 and a consistent journal; Ctrl-C while
//! waiting for a card stops at once; a batch stopped by Ctrl-C or by a failure (no card inserted in time)
//! continues with `personalize --continue BATCH`, which issues only the holders without a card.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use card_sim::SimTransport;
use issuance::journal::Journal;
use testkit::{vpcd_lock, Reader0, READER};

/// Ctrl-C, as the terminal sends it.
fn sigint(child: &common::Running) {
    let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

/// Waits until the journal of `dir` shows a card in `state`.
fn wait_for_state(dir: &Path, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let location = issuance::journal::Location::new(common::journal_arg(dir).into());
    loop {
        if let Ok(j) = Journal::open_at(&location, None) {
            if j.cards().unwrap_or_default().iter().any(|c| c.state == state) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no card {state} in the journal");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `personalize` (already spawned) for `lines` one card after another; returns the summary line.
fn feed(rx: &mpsc::Receiver<String>, lines: &[u64], serial: u64) -> String {
    for (i, line) in lines.iter().enumerate() {
        let asked = common::expect_line(rx, "insert a blank card");
        assert!(asked.contains(&format!("line {line} ")), "expected line {line}: {asked}");
        let card = Reader0::insert(SimTransport::new(common::blank(2, serial + i as u64)));
        let done = common::expect_line(rx, &format!("line {line} "));
        assert!(done.contains("issued"), "{done}");
        card.remove();
    }
    common::expect_line(rx, "batch ")
}

fn status(dir: &Path) -> serde_json::Value {
    let out = common::issuance(dir).args(["status", "--json"]).output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn ctrl_c_during_a_card_stops_after_it_and_the_batch_continues() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    let sample = common::fixture("holders/sample.csv");
    let (child, rx) = common::spawn(
        common::issuance(dir.path())
            .args(["personalize", "--generation", "2", "--card-timeout", "60", "--reader", READER, "--holders"])
            .arg(&sample),
    );
    let asked = common::expect_line(&rx, "insert a blank card");
    assert!(asked.contains("line 2 "), "{asked}");
    // a paced card (about 4 s, as a real card at 9600 bit/s), so that the journal is seen saying "personalizing"
    // while it is: an unpaced card can be issued between two looks, more so on PostgreSQL and a busy machine
    let mut blank = SimTransport::new(common::blank(2, 0x7000));
    blank.set_pace(true);
    let card = Reader0::insert(blank);
    // the first card is under way: Ctrl-C
    wait_for_state(dir.path(), "personalizing");
    sigint(&child);
    let done = common::expect_line(&rx, "line 2 ");
    assert!(done.contains("issued"), "the card under way is finished: {done}");
    let summary = common::expect_line(&rx, "batch 1:");
    assert!(summary.contains("1 issued, 0 failed, 4 not started"), "{summary}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted") && stderr.contains("--continue 1"), "{stderr}");
    card.remove();
    // the journal: one card, issued (verified), nothing half done
    let v = status(dir.path());
    let cards = v["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1);
    assert_eq!((cards[0]["holder_line"].as_i64(), cards[0]["state"].as_str()), (Some(2), Some("issued")));
    // the text status: the batch, how far it is, and each card's batch
    let text = common::issuance(dir.path()).arg("status").output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("batch 1 (") && l.ends_with(": 5 holders, 1 issued, 4 remaining")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("#1    batch 1    line 2 ")), "{text}");

    // line 6 has its own initial PIN, which is never journalled: continuing needs the holders file
    let refused =
        common::issuance(dir.path()).args(["personalize", "--continue", "1", "--reader", READER]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("lines 6"), "{refused:?}");

    // continued: lines 3 to 6 only, in the same batch
    let (child, rx) = common::spawn(
        common::issuance(dir.path())
            .args(["personalize", "--continue", "1", "--card-timeout", "60", "--reader", READER, "--holders"])
            .arg(&sample),
    );
    let summary = feed(&rx, &[3, 4, 5, 6], 0x7100);
    assert!(summary.contains("batch 1: 4 issued, 0 failed, 0 not started"), "{summary}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = status(dir.path());
    let cards = v["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 5);
    assert!(cards.iter().all(|c| c["state"] == "issued" && c["batch"] == 1));
    let ssns: BTreeSet<_> = cards.iter().map(|c| c["ssn"].to_string()).collect();
    assert_eq!(ssns.len(), 5, "no holder issued twice");

    // nothing left
    let out =
        common::issuance(dir.path()).args(["personalize", "--continue", "1", "--reader", READER]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no holder is waiting"));
}

#[test]
fn ctrl_c_while_waiting_for_a_card_stops_at_once() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    let (child, rx) = common::spawn(
        common::issuance(dir.path())
            .args(["personalize", "--generation", "2", "--card-timeout", "60", "--reader", READER, "--holders"])
            .arg(common::fixture("holders/sample.csv")),
    );
    common::expect_line(&rx, "insert a blank card for line 2 ");
    let asked = Instant::now();
    sigint(&child);
    // the summary and the command that continues the batch, as after a card (README)
    let summary = common::expect_line(&rx, "batch 1:");
    assert!(summary.contains("0 issued, 0 failed, 5 not started"), "{summary}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // exit 130 with the interrupted summary (above) is what tells a stop from a card timeout; the wall-clock bound
    // is only widened to just under the 60 s card timeout (10 s was flaky under a shared pcscd)
    assert!(asked.elapsed() < Duration::from_secs(50), "stopped at once, not after the card timeout");
    assert_eq!(status(dir.path())["cards"].as_array().unwrap().len(), 0, "no card was started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("issuance personalize --continue 1 --reader '{READER}'")), "{stderr}");
    assert!(stderr.contains("interrupted: 5 holders of batch 1 not started"), "{stderr}");

    // the same batch continues: its first holder is asked for again
    let (child, rx) = common::spawn(
        common::issuance(dir.path())
            .args(["personalize", "--continue", "1", "--card-timeout", "60", "--reader", READER, "--holders"])
            .arg(common::fixture("holders/sample.csv")),
    );
    common::expect_line(&rx, "insert a blank card for line 2 ");
    // Ctrl-C while waiting for the removal of an issued card: stops there, the summary counts the card
    let card = Reader0::insert(SimTransport::new(common::blank(2, 0x7400)));
    assert!(common::expect_line(&rx, "line 2 ").contains("issued"));
    common::expect_line(&rx, "remove the card");
    sigint(&child);
    let summary = common::expect_line(&rx, "batch 1:");
    assert!(summary.contains("1 issued, 0 failed, 4 not started"), "{summary}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--continue 1"));
    card.remove();
}

#[test]
fn a_batch_stopped_by_a_failure_continues_with_the_holders_left() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    // the first two holders of the sample
    let sample = std::fs::read_to_string(common::fixture("holders/sample.csv")).unwrap();
    let two: Vec<&str> = sample.lines().take(3).collect();
    let holders = dir.path().join("two.csv");
    std::fs::write(&holders, two.join("\n") + "\n").unwrap();

    let (child, rx) = common::spawn(
        common::issuance(dir.path())
            .args(["personalize", "--generation", "2", "--validity-years", "5", "--card-timeout", "3"])
            .args(["--reader", READER, "--holders"])
            .arg(&holders),
    );
    let asked = common::expect_line(&rx, "insert a blank card");
    assert!(asked.contains("line 2 "), "{asked}");
    let card = Reader0::insert(SimTransport::new(common::blank(2, 0x7200)));
    assert!(common::expect_line(&rx, "line 2 ").contains("issued"));
    common::expect_line(&rx, "remove the card");
    card.remove();
    // no card for line 3 within the timeout: the batch stops
    common::expect_line(&rx, "insert a blank card for line 3 ");
    let summary = common::expect_line(&rx, "batch 1:");
    assert!(summary.contains("1 issued, 0 failed, 1 not started"), "{summary}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "reader/card failure: {stderr}");
    assert!(stderr.contains("--continue 1"), "{stderr}");

    let (child, rx) = common::spawn(common::issuance(dir.path()).args([
        "personalize",
        "--continue",
        "1",
        "--card-timeout",
        "60",
        "--reader",
        READER,
    ]));
    let summary = feed(&rx, &[3], 0x7300);
    assert!(summary.contains("batch 1: 1 issued"), "{summary}");
    assert!(child.wait_with_output().unwrap().status.success());
    let v = status(dir.path());
    let lines: Vec<_> =
        v["cards"].as_array().unwrap().iter().map(|c| (c["holder_line"].clone(), c["state"].clone())).collect();
    assert_eq!(lines, vec![(2.into(), "issued".into()), (3.into(), "issued".into())]);
    // the continued card has the batch's 5 years, not the command line's default 10
    for c in v["cards"].as_array().unwrap() {
        let (issue, expiry) = (c["issue_date"].as_str().unwrap(), c["expiry_date"].as_str().unwrap());
        let years = expiry[..4].parse::<u32>().unwrap() - issue[..4].parse::<u32>().unwrap();
        assert_eq!(years, 5, "{c}");
    }
}
