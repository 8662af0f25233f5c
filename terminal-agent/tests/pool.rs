//! The reader pool through the real stack (pcscd + vpcd + card-sim in `Virtual PCD 00 00`): exclusive jobs in
//! arrival order, the bounded wait, a card pulled and re-inserted, the two-step read with a back end holding
//! the test keys, unknown and expired sessions, a mute card given up on after the card timeout.
//!
//! Each test ends with `ReaderPool::shutdown` before its card is removed: vpcd may miss the next test's
//! insertion when the card is removed while a worker is closing its handle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use card_core::apdu::Sensitivity;
use card_core::card::{Address, TerminalIds};
use card_core::codec::RegionCode;
use card_core::crypto::{Algorithm, CardKey};
use card_core::profile::Profile;
use card_core::security::two_step::{backend_answer, backend_answer_for};
use card_core::security::{LocalKeys, NoKeys, SecurityModule};
use card_core::transport::{Transport, TransportError};
use card_core::Error;
use terminal_agent::service::readers::{PoolConfig, PoolError, ReaderPool};
use testkit::{vpcd_lock, Reader0, READER};

/// The terminal identifiers of the national fixture strings (`fixtures/national/README.md`).
const TERMINAL_NO: &str = "371700000001";
const DEVICE_NO: &str = "SIM-READER-01";

/// SELECT SSSE and READ RECORD EF05 1 (as in `tests/cli.rs`).
const SELECT_SSSE: &str = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF";
const READ_EF05_1: &str = "00B2012C00";

fn terminal() -> TerminalIds {
    TerminalIds { terminal_no: TERMINAL_NO.into(), device_no: DEVICE_NO.into() }
}

fn pool(queue_wait: Duration, two_step_timeout: Duration, keys: Arc<dyn SecurityModule + Send + Sync>) -> ReaderPool {
    let config = PoolConfig {
        queue_wait,
        card_timeout: card_core::transport::DEFAULT_CARD_TIMEOUT,
        two_step_timeout,
        terminal: terminal(),
        profile: Arc::new(Profile::builtin().clone()),
    };
    ReaderPool::new(config, keys)
}

/// The back end: region 371700's keys from the published test issuer keys (`fixtures/cards/test-keys.toml`).
fn backend_keys() -> LocalKeys {
    #[derive(serde::Deserialize)]
    struct File {
        issuer: BTreeMap<String, BTreeMap<String, String>>,
    }
    let text = std::fs::read_to_string(testkit::fixture("cards/test-keys.toml")).unwrap();
    let file: File = toml::from_str(&text).unwrap();
    let mut keys = Vec::new();
    for (alg, names) in &file.issuer {
        let alg = match alg.as_str() {
            "3des" => Algorithm::Tdes,
            "sm4" => Algorithm::Sm4,
            _ => continue,
        };
        for (name, hex_key) in names {
            keys.push((name.clone(), CardKey::new(alg, &hex::decode(hex_key).unwrap()).unwrap()));
        }
    }
    LocalKeys::from_issuer_keys(RegionCode::parse("371700").unwrap(), keys).unwrap()
}

fn national_fixture(name: &str) -> String {
    std::fs::read_to_string(testkit::fixture(&format!("national/{name}"))).unwrap()
}

/// Four jobs submitted together run one after the other, in the order they were submitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_one_reader_never_overlap_and_run_in_arrival_order() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let pool = pool(Duration::from_secs(20), Duration::from_secs(5), Arc::new(NoKeys));
    // the worker exists after the first job: the next ones reach its queue in the order they are polled
    pool.run(READER, |card, keys| card.read_basic(keys)).await.unwrap();

    let log: Arc<Mutex<Vec<(usize, Instant, Instant)>>> = Arc::default();
    let job = |i: usize| {
        let log = log.clone();
        pool.run(READER, move |card, keys| {
            let start = Instant::now();
            let info = card.read_basic(keys)?;
            std::thread::sleep(Duration::from_millis(100));
            let info2 = card.read_basic(keys)?;
            log.lock().unwrap().push((i, start, Instant::now()));
            Ok((info.name, info2.name))
        })
    };
    let (a, b, c, d) = tokio::join!(job(0), job(1), job(2), job(3));
    for r in [a, b, c, d] {
        let (n1, n2) = r.unwrap();
        assert_eq!(n1.as_deref(), Some("张三"));
        assert_eq!(n2.as_deref(), Some("张三"));
    }
    let log = log.lock().unwrap().clone();
    let order: Vec<usize> = log.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(order, vec![0, 1, 2, 3], "jobs ran in arrival order");
    for pair in log.windows(2) {
        let (_, _, end) = pair[0];
        let (_, start, _) = pair[1];
        assert!(start >= end, "job {} started before job {} ended", pair[1].0, pair[0].0);
    }
    pool.shutdown().await;
}

/// While a job holds the reader, another fails with Busy after queue_wait and never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_after_queue_wait_while_another_job_holds_the_reader() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let queue_wait = Duration::from_millis(300);
    let pool = pool(queue_wait, Duration::from_secs(5), Arc::new(NoKeys));

    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.run(READER, move |card, keys| {
                let info = card.read_basic(keys)?;
                let _ = started_tx.send(());
                release_rx.recv_timeout(Duration::from_secs(10)).expect("released by the test");
                Ok(info.name)
            })
            .await
        }
    });
    tokio::time::timeout(Duration::from_secs(10), started).await.unwrap().unwrap();

    let ran = Arc::new(Mutex::new(false));
    let t0 = Instant::now();
    let waiting = pool
        .run(READER, {
            let ran = ran.clone();
            move |_, _| {
                *ran.lock().unwrap() = true;
                Ok(())
            }
        })
        .await;
    let waited = t0.elapsed();
    match &waiting {
        Err(PoolError::Busy { reader, waited: w }) => {
            assert_eq!(reader, READER);
            assert_eq!(*w, queue_wait);
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    // Busy only after queue_wait. No wall-clock upper bound (flaky under a shared pcscd): that it did not wait for
    // the holder is certain, since the holder is released only after this returned.
    assert!(waited >= queue_wait, "Busy after {waited:?}");
    assert_eq!(waiting.unwrap_err().national_code(), -11);

    release.send(()).unwrap();
    assert_eq!(holder.await.unwrap().unwrap().as_deref(), Some("张三"));
    // the next job runs after the busy one's place in the queue: that one was skipped, card untouched
    pool.run(READER, |card, keys| card.read_basic(keys)).await.unwrap();
    assert!(!*ran.lock().unwrap(), "the job that timed out as Busy must not run");
    pool.shutdown().await;
    let closed = pool.run(READER, |card, keys| card.read_basic(keys)).await;
    assert!(matches!(closed, Err(PoolError::Closed)), "{closed:?}");
}

/// The thread a job runs on.
fn thread_name() -> String {
    std::thread::current().name().unwrap_or("(unnamed)").to_owned()
}

/// The names of this process's threads (as the kernel keeps them: 15 bytes).
fn threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_owned())
        .collect()
}

/// Every job runs on the reader's worker thread, on the agent's runtime as on a multi-thread one, and the worker
/// makes the PC/SC calls itself: the pool's connection has no PC/SC thread of its own (card-core's
/// `PcscTransport` names its thread `pcsc <reader>`).
#[test]
fn every_job_runs_on_the_readers_worker_which_makes_the_pcsc_calls() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let runtimes = [
        terminal_agent::service::runtime().unwrap(),
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
    ];
    for runtime in runtimes {
        runtime.block_on(async {
            let pool = pool(Duration::from_secs(20), Duration::from_secs(5), Arc::new(NoKeys));
            for _ in 0..2 {
                let ran_on = pool.run(READER, |card, keys| card.read_basic(keys).map(|_| thread_name())).await.unwrap();
                assert_eq!(ran_on, format!("reader {READER}"));
            }
            let pcsc_thread: String = format!("pcsc {READER}").chars().take(15).collect();
            assert!(!threads().contains(&pcsc_thread), "{:?}", threads());
            pool.shutdown().await;
        });
    }
}

/// A card that never answers (vpcd waits for card-sim's answer, so does pcscd's `SCardTransmit`): the job fails
/// with `NoAnswer` once its call is a card timeout old, and so does the job queued behind it, without running;
/// the next job starts a new worker. The stuck call returns when the card is pulled; a good card is then read by
/// the same pool.
#[tokio::test(flavor = "current_thread")]
async fn a_mute_card_fails_its_jobs_after_the_card_timeout_and_the_reader_recovers() {
    let _lock = vpcd_lock();
    let mut sim = card_sim::SimTransport::new(testkit::fixture_card("gen2-personalized.json"));
    sim.set_hostile(Some("empty:B2".parse().unwrap()));
    let mute = Reader0::insert(sim);
    let card_timeout = Duration::from_millis(700);
    let config = PoolConfig {
        queue_wait: Duration::from_secs(30),
        card_timeout,
        two_step_timeout: Duration::from_secs(5),
        terminal: terminal(),
        profile: Arc::new(Profile::builtin().clone()),
    };
    let pool = ReaderPool::new(config, Arc::new(NoKeys));

    let t0 = Instant::now();
    let ran = Arc::new(Mutex::new(false));
    let queued = {
        let ran = ran.clone();
        pool.run(READER, move |_, _| {
            *ran.lock().unwrap() = true;
            Ok(())
        })
    };
    let both = async {
        tokio::join!(pool.run(READER, |card, keys| card.read_basic(keys)), async {
            // behind the stuck job in the queue
            tokio::time::sleep(Duration::from_millis(100)).await;
            queued.await
        })
    };
    let (stuck, queued) = tokio::time::timeout(Duration::from_secs(30), both).await.expect("the jobs were given up on");
    let waited = t0.elapsed();
    for r in [stuck.map(|_| ()), queued] {
        match r {
            Err(PoolError::Card(Error::Transport(TransportError::NoAnswer { waited }))) => {
                assert_eq!(waited, card_timeout)
            }
            other => panic!("expected NoAnswer, got {other:?}"),
        }
    }
    assert!(waited >= card_timeout, "NoAnswer after {waited:?}");
    assert!(!*ran.lock().unwrap(), "the job queued behind the stuck one must not run");
    assert_eq!(reader_threads(), 1, "the abandoned worker, stuck in its call");

    // the card still in the reader: more requests wait for the stuck call as long as for their own and fail the
    // same way, and no second thread is left stuck on the same card (each would hold one of pcscd's contexts)
    for _ in 0..3 {
        let t0 = Instant::now();
        match pool.run(READER, |card, keys| card.read_basic(keys)).await {
            Err(PoolError::Card(Error::Transport(TransportError::NoAnswer { waited }))) => {
                assert_eq!(waited, card_timeout)
            }
            other => panic!("expected NoAnswer, got {other:?}"),
        }
        assert!(t0.elapsed() >= card_timeout);
        assert_eq!(reader_threads(), 1);
    }

    // the card pulled: the stuck call returns, the abandoned worker releases its card; a good card works
    mute.remove();
    let _good = Reader0::insert_fixture("gen2-personalized.json");
    let info = pool.run(READER, |card, keys| card.read_basic(keys)).await.unwrap();
    assert_eq!(info.name.as_deref(), Some("张三"));
    assert_eq!(reader_threads(), 1, "the new worker alone");
    pool.shutdown().await;
}

/// The live worker threads of `READER` in this process (named `reader Virtual PCD 00 00`, which the kernel keeps
/// to 15 bytes).
fn reader_threads() -> usize {
    let name = &format!("reader {READER}")[..15];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.strip_suffix('\n') == Some(name))
        .count()
}

/// A card pulled in the middle of a job (between two APDUs of one transaction) gives `card removed`; with no
/// card the next job gives `no card`; after re-insertion the same pool reads the card again, and a card removed
/// and re-inserted between two jobs does not fail the second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_pulled_during_a_job_then_reinserted() {
    let _lock = vpcd_lock();
    let card = Reader0::insert_fixture("gen2-personalized.json");
    let pool = pool(Duration::from_secs(20), Duration::from_secs(5), Arc::new(NoKeys));

    let (selected_tx, selected) = tokio::sync::oneshot::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let job = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.run(READER, move |card, _| {
                let mut tx = card.transport_mut().transaction()?;
                let select = tx.transmit(&hex::decode(SELECT_SSSE).unwrap(), Sensitivity::Plain)?;
                let _ = selected_tx.send(select);
                go_rx.recv_timeout(Duration::from_secs(20)).expect("go from the test");
                Ok(tx.transmit(&hex::decode(READ_EF05_1).unwrap(), Sensitivity::Plain)?)
            })
            .await
        }
    });
    let select = tokio::time::timeout(Duration::from_secs(10), selected).await.unwrap().unwrap();
    assert!(select.ends_with(&[0x90, 0x00]), "SELECT SSSE answered {select:02X?}");
    let sim = tokio::task::spawn_blocking(move || card.remove()).await.unwrap();
    go.send(()).unwrap();
    let pulled = job.await.unwrap();
    match &pulled {
        Err(PoolError::Card(Error::Transport(TransportError::CardRemoved))) => {}
        other => panic!("expected card removed, got {other:?}"),
    }
    assert_eq!(pulled.unwrap_err().national_code(), -2);

    let empty = pool.run(READER, |card, keys| card.read_basic(keys)).await;
    assert!(
        matches!(&empty, Err(PoolError::Card(Error::Transport(TransportError::NoCard(r)))) if r == READER),
        "{empty:?}"
    );

    let card = tokio::task::spawn_blocking(move || Reader0::insert(sim)).await.unwrap();
    let info = pool.run(READER, |card, keys| card.read_basic(keys)).await.unwrap();
    assert_eq!(info.name.as_deref(), Some("张三"));

    // pulled and put back between two jobs: the worker notices its old connection is dead and connects again
    let sim = tokio::task::spawn_blocking(move || card.remove()).await.unwrap();
    let _card = tokio::task::spawn_blocking(move || Reader0::insert(sim)).await.unwrap();
    let info = pool.run(READER, |card, keys| card.read_basic(keys)).await.unwrap();
    assert_eq!(info.name.as_deref(), Some("张三"));
    pool.shutdown().await;
}

/// The agent holds no keys; the back end answers Step 1 with the test keys: Step 2 returns the holder of the
/// gen 3 card (external authentication with RKSSSE, the card checked with IRK), as the national string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_read_with_the_backend_answer_returns_the_holder() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let pool = pool(Duration::from_secs(20), Duration::from_secs(10), Arc::new(NoKeys));
    let backend = backend_keys();

    let ticket = pool.read_step1(READER).await.unwrap();
    assert_eq!(ticket.session.len(), 32);
    assert!(ticket.session.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(ticket.key, "RKSSSE");
    assert!(ticket.step1.starts_with("371700|"), "{}", ticket.step1);
    let answer = backend_answer(&backend, &ticket.step1).unwrap();
    let info = pool.read_step2(READER, &ticket.session, answer).await.unwrap();
    assert_eq!(info.name.as_deref(), Some("欧阳𠮷娜"));
    assert!(info.withheld.is_none());
    assert_eq!(info.national(&terminal()).as_str(), national_fixture("gen3-basic.txt"));

    // two sessions give two different ids, and the reader is free again after each
    let again = pool.read_step1(READER).await.unwrap();
    assert_ne!(again.session, ticket.session);
    let answer = backend_answer(&backend, &again.step1).unwrap();
    pool.read_step2(READER, &again.session, answer).await.unwrap();
    pool.shutdown().await;
}

/// Unknown ids, a read session used as a write or on another reader, a used session, and a wrong answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_wrong_and_used_sessions() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let pool = pool(Duration::from_secs(20), Duration::from_secs(10), Arc::new(NoKeys));
    let backend = backend_keys();

    let unknown = pool.read_step2(READER, "00112233445566778899aabbccddeeff", "00|00|".into()).await;
    assert!(matches!(&unknown, Err(PoolError::NoSession { reader, kind: "read" }) if reader == READER), "{unknown:?}");
    assert_eq!(unknown.unwrap_err().national_code(), -14);

    let ticket = pool.read_step1(READER).await.unwrap();
    let answer = backend_answer(&backend, &ticket.step1).unwrap();
    let as_write = pool.write_step2(READER, &ticket.session, answer.clone()).await;
    assert!(matches!(as_write, Err(PoolError::NoSession { kind: "write", .. })), "{as_write:?}");
    let other_reader = pool.read_step2("Virtual PCD 00 01", &ticket.session, answer.clone()).await;
    assert!(matches!(other_reader, Err(PoolError::NoSession { .. })), "{other_reader:?}");
    // the wrong attempts left the session waiting
    let info = pool.read_step2(READER, &ticket.session, answer.clone()).await.unwrap();
    assert_eq!(info.name.as_deref(), Some("欧阳𠮷娜"));
    let used = pool.read_step2(READER, &ticket.session, answer).await;
    assert!(matches!(used, Err(PoolError::NoSession { .. })), "a session answers once: {used:?}");

    // an answer whose internal part is not the card's: the card is not trusted
    let ticket = pool.read_step1(READER).await.unwrap();
    let answer = backend_answer(&backend, &ticket.step1).unwrap();
    let forged = format!("{}{}", if answer.starts_with('0') { '1' } else { '0' }, &answer[1..]);
    let refused = pool.read_step2(READER, &ticket.session, forged).await;
    assert!(matches!(refused, Err(PoolError::Card(Error::InternalAuthFailed))), "{refused:?}");
    assert_eq!(refused.unwrap_err().national_code(), -21);
    pool.shutdown().await;
}

/// A Step 1 without its Step 2 holds the card for two_step_timeout: a job with a shorter bounded wait is Busy;
/// once the session expires the reader is free, and the late Step 2 is SessionExpired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_frees_the_reader() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let two_step_timeout = Duration::from_millis(1500);
    let backend = backend_keys();

    // shorter bounded wait than the hold: Busy
    let impatient = pool(Duration::from_millis(300), two_step_timeout, Arc::new(NoKeys));
    let ticket = impatient.read_step1(READER).await.unwrap();
    let busy = impatient.run(READER, |card, keys| card.read_basic(keys)).await;
    assert!(matches!(busy, Err(PoolError::Busy { .. })), "{busy:?}");
    // the held session still completes
    let answer = backend_answer(&backend, &ticket.step1).unwrap();
    impatient.read_step2(READER, &ticket.session, answer).await.unwrap();

    // longer bounded wait: the job starts when the session expires. (The first pool stays alive: dropping it
    // closes its worker's card handle while this pool connects, and pcscd 1.9.9 + vpcd then may answer
    // SCardConnect with PROTO_MISMATCH.)
    let pool = pool(Duration::from_secs(10), two_step_timeout, Arc::new(NoKeys));
    let ticket = pool.read_step1(READER).await.unwrap();
    let t0 = Instant::now();
    let info = pool.run(READER, |card, keys| card.read_basic(keys)).await.unwrap();
    let waited = t0.elapsed();
    assert_eq!(info.withheld.as_deref(), Some("RKSSSE"), "the agent holds no keys");
    assert!(waited >= two_step_timeout - Duration::from_millis(200), "ran after {waited:?}, before the expiry");
    // It ran (not Busy), so it started before the 10 s queue wait ran out: that is the deterministic upper bound;
    // the tighter wall-clock one (expiry + 3 s) was flaky under a shared pcscd.
    assert!(waited < Duration::from_secs(10), "ran only after {waited:?}");

    let answer = backend_answer(&backend, &ticket.step1).unwrap();
    let late = pool.read_step2(READER, &ticket.session, answer).await;
    assert!(matches!(late, Err(PoolError::SessionExpired { timeout }) if timeout == two_step_timeout), "{late:?}");
    assert_eq!(late.unwrap_err().national_code(), -4);
    impatient.shutdown().await;
    pool.shutdown().await;
}

/// A two-step write of a DF01 item under UK_DF01 with the back end's cryptogram; read back through the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_write_with_the_backend_answer_writes_the_item() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let pool = pool(Duration::from_secs(20), Duration::from_secs(10), Arc::new(NoKeys));
    let backend = backend_keys();
    let address: Address = "DF01EF06|23|$".parse().unwrap();

    let ticket = pool.write_step1(READER, address.clone(), "DF01EF06|济南市历下区|$".into()).await.unwrap();
    assert_eq!(ticket.key, "UK_DF01");
    let answer = backend_answer_for(&backend, &ticket.step1, &ticket.key).unwrap();
    let as_read = pool.read_step2(READER, &ticket.session, answer.clone()).await;
    assert!(matches!(as_read, Err(PoolError::NoSession { kind: "read", .. })), "{as_read:?}");
    pool.write_step2(READER, &ticket.session, answer).await.unwrap();

    let read = pool.run(READER, move |card, keys| card.read_items(keys, &address, None)).await.unwrap();
    assert_eq!(read.to_national(), "DF01EF06|济南市历下区|$");
    pool.shutdown().await;
}
