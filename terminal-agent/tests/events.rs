//! Reader and card events through pcscd + vpcd: the hub's watcher sees a card inserted into and removed from
//! `Virtual PCD 00 00`, and stops when the hub is dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use terminal_agent::service::events::{Event, EventHub};
use testkit::{vpcd_lock, Reader0, READER};
use tokio::sync::broadcast::{self, error::RecvError};

/// ATR of the gen 2 fixture card (as `terminal-agent readers` shows it).
const GEN2_ATR: &str = "3B6F00005353021037170000000000000000A2";

/// Receives until `want` matches an event of `READER`, at most `within`; returns the events skipped.
async fn expect(rx: &mut broadcast::Receiver<Event>, within: Duration, want: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if want(&e) => return seen,
            Ok(Ok(e)) => seen.push(e),
            Ok(Err(e)) => panic!("receiver failed: {e}; seen {seen:?}"),
            Err(_) => panic!("no matching event within {within:?}; seen {seen:?}"),
        }
    }
}

fn is_reader0(reader: &str) -> bool {
    reader == READER
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_inserted_and_removed_reach_a_subscriber() {
    let _lock = vpcd_lock();
    let hub = EventHub::start();
    let mut rx = hub.subscribe();
    // the first batch describes the present: the virtual reader, empty (its events may have gone out before the
    // subscription, on a busy machine: the snapshot says it all the same)
    let first = hub.snapshot_when_ready(Duration::from_secs(5)).await;
    assert!(first.iter().any(|r| r.reader == READER && !r.card_present && r.atr.is_none()), "{first:?}");

    let card = Reader0::insert_fixture("gen2-personalized.json");
    let skipped = expect(
        &mut rx,
        Duration::from_secs(5),
        |e| matches!(e, Event::CardInserted { reader, atr } if is_reader0(reader) && atr == GEN2_ATR),
    )
    .await;
    assert!(skipped.iter().all(|e| !matches!(e, Event::CardRemoved { reader } if is_reader0(reader))), "{skipped:?}");
    let snap = hub.snapshot();
    let r0 = snap.iter().find(|r| r.reader == READER).expect("reader 0 in the snapshot");
    assert!(r0.card_present);
    assert_eq!(r0.atr.as_deref(), Some(GEN2_ATR));
    let json = serde_json::to_value(Event::CardInserted { reader: READER.into(), atr: GEN2_ATR.into() }).unwrap();
    assert_eq!(json, serde_json::json!({"type": "card_inserted", "reader": READER, "atr": GEN2_ATR}));

    drop(card.remove());
    expect(&mut rx, Duration::from_secs(5), |e| matches!(e, Event::CardRemoved { reader } if is_reader0(reader))).await;
    assert!(hub.snapshot().iter().any(|r| r.reader == READER && !r.card_present));

    // a second insertion is seen as well (the watcher keeps waiting after each batch)
    let card = Reader0::insert_fixture("gen2-personalized.json");
    expect(&mut rx, Duration::from_secs(5), |e| matches!(e, Event::CardInserted { reader, .. } if is_reader0(reader)))
        .await;
    drop(card);
    expect(&mut rx, Duration::from_secs(5), |e| matches!(e, Event::CardRemoved { reader } if is_reader0(reader))).await;
}

/// Dropping the hub cancels the blocked `SCardGetStatusChange`: the thread ends and the receiver is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_hub_stops_the_watcher() {
    let _lock = vpcd_lock();
    let hub = EventHub::start();
    let mut rx = hub.subscribe();
    let first = hub.snapshot_when_ready(Duration::from_secs(5)).await;
    assert!(first.iter().any(|r| r.reader == READER), "{first:?}");
    // the watcher is now blocked in SCardGetStatusChange (nothing changes in the readers)
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(hub);
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match rx.recv().await {
                Err(RecvError::Closed) => return,
                Err(RecvError::Lagged(_)) | Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the watcher thread did not stop within 3 s of dropping the hub");
}
