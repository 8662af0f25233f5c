//! What the counter page relies on, in process (the router over card-sim cards, no socket, no pcscd): the holder's
//! photo, `Cache-Control: no-store` on every answer under `/v1` (success and error alike: a browser or a proxy
//! never keeps a holder's data), and the page carrying the configured idle timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use card_core::security::NoKeys;
use card_sim::SimTransport;
use terminal_agent::service::config::Config;
use terminal_agent::service::connector::InProcessReaders;
use terminal_agent::service::{router, Shared};
use testkit::{fixture_card, fixture_card_with_photo, test_photo};
use tower::ServiceExt;

const PORT: u16 = 17788;
const HOST: &str = "127.0.0.1:17788";
const ORIGIN: &str = "https://counter.example";

/// Reader 0: the generation 2 fixture with the test photo; reader 1: the generation 2 fixture as it is (no photo).
fn app(page_idle: Duration) -> Router {
    let readers = InProcessReaders::new();
    readers.insert("Sim Reader 0", SimTransport::new(fixture_card_with_photo("gen2-personalized.json", &test_photo())));
    readers.insert("Sim Reader 1", SimTransport::new(fixture_card("gen2-personalized.json")));
    let config = Config {
        allowed_origins: vec![ORIGIN.to_owned()],
        terminal_no: "371700000001".into(),
        device_no: "SIM-READER-01".into(),
        queue_wait: Duration::from_secs(5),
        page_idle,
        ..Config::default()
    };
    let state = Shared::new(&config, PORT, Arc::new(NoKeys), Arc::new(readers)).unwrap();
    router(state, config.max_body_bytes)
}

async fn get(app: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let req = Request::builder().uri(path).header("host", HOST).header("origin", ORIGIN).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec())
}

fn cache_control(headers: &axum::http::HeaderMap) -> &str {
    headers.get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("(none)")
}

#[tokio::test]
async fn the_photo_is_served_and_nothing_personal_is_cacheable() {
    let app = app(Duration::from_secs(120));
    let (status, headers, body) = get(&app, "/v1/readers/0/photo").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get("content-type").unwrap(), "image/jpeg");
    assert_eq!(body, test_photo(), "the photo as written, the card's padding cut at the JPEG's end");
    assert_eq!(cache_control(&headers), "no-store");

    // every /v1 answer: data, errors, the reader list
    for (path, expected) in [
        ("/v1/readers/0/basic", StatusCode::OK),
        ("/v1/readers/1/basic", StatusCode::OK),
        ("/v1/readers/1/photo", StatusCode::NOT_FOUND),
        ("/v1/readers/0/items?address=SSSEEF06%7C08%7C%24", StatusCode::OK),
        ("/v1/readers", StatusCode::OK),
        ("/v1/readers/0/card", StatusCode::OK),
        ("/v1/readers/9/basic", StatusCode::NOT_FOUND),
    ] {
        let (status, headers, body) = get(&app, path).await;
        assert_eq!(status, expected, "{path}: {}", String::from_utf8_lossy(&body));
        assert_eq!(cache_control(&headers), "no-store", "{path}");
    }
    let (_, _, body) = get(&app, "/v1/readers/1/photo").await;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "no_photo", "{body}");
}

#[tokio::test]
async fn the_page_carries_the_configured_idle_timeout() {
    let (status, headers, body) = get(&app(Duration::from_secs(7)), "/").await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains(r#"<meta name="sscard-idle-seconds" content="7">"#), "{page}");
    assert!(headers.get("content-security-policy").unwrap().to_str().unwrap().contains("img-src 'self' blob:"));
    let (_, _, body) = get(&app(Duration::from_secs(120)), "/").await;
    assert!(String::from_utf8(body).unwrap().contains(r#"content="120""#));
}

#[test]
fn the_idle_timeout_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, "page_idle_secs = 30\n").unwrap();
    assert_eq!(Config::load(&file).unwrap().page_idle, Duration::from_secs(30));
    std::fs::write(&file, "page_idle_secs = 0\n").unwrap();
    let err = Config::load(&file).and_then(|c| c.validate().map(|()| c)).unwrap_err();
    assert!(err.to_string().contains("page_idle_secs must be 1…3600"), "{err}");
    assert_eq!(Config::default().page_idle, Duration::from_secs(120));
}
