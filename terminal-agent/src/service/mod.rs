//! `terminal-agent serve`: the counter's local card service, HTTP and WebSocket on loopback only.
//!
//! - [`connector`]: where readers and cards come from (pcscd, or in-process cards in tests);
//! - [`config`]: the TOML configuration; [`web`]: Host, Origin and CORS checks before anything else;
//! - [`api`]: the `/v1` routes; [`error`]: how failures become responses; [`token`]: the back end's operation
//!   tokens for writes and PIN operations;
//! - [`readers`]: one worker per reader, requests queued with a bounded wait, two-step sessions held;
//! - [`events`]: reader and card events from PC/SC status changes, sent to WebSocket clients, and kept for the
//!   reader lookup and the pool (no pcscd round trip per request besides the card's APDUs);
//! - [`national`]: the national function table (`iReadCardBas` and friends) as JSON calls over a WebSocket;
//! - [`audit`]: one line per operation; [`limit`]: PIN attempts per reader.

pub mod api;
pub mod audit;
pub mod config;
pub mod connector;
pub mod error;
pub mod events;
pub mod limit;
pub mod national;
pub mod readers;
pub mod token;
pub mod web;

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use card_core::card::TerminalIds;
use card_core::profile::Profile;
use card_core::security::key_service::Backend;
use card_core::security::SecurityModule;
use card_core::transport::ReaderSelector;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use self::audit::AuditLog;
use self::config::Config;
use self::connector::{CardConnector, PcscReaders};
use self::events::EventHub;
use self::limit::RateLimit;
use self::readers::{PoolConfig, ReaderPool};
use self::token::TokenVerifier;
use self::web::Guard;

/// What every handler shares.
pub struct Shared {
    /// Host and Origin checks.
    pub guard: Guard,
    /// The reader workers.
    pub pool: ReaderPool,
    /// Reader and card events.
    pub events: EventHub,
    /// Operation tokens.
    pub tokens: TokenVerifier,
    /// The audit log.
    pub audit: AuditLog,
    /// PIN attempts per reader.
    pub pin_limit: RateLimit,
    /// The terminal ids of the national strings.
    pub terminal: TerminalIds,
    /// Seconds a two-step session stays open.
    pub two_step_secs: u64,
    /// The reader `default` designates (none: the first with a card).
    pub preferred: Option<card_core::transport::ReaderSelector>,
    /// Where readers and cards come from (the pool holds the same).
    pub connector: Arc<dyn CardConnector>,
    /// The key service (`[keys] mode = "key-service"`): the back end of the two-step exchanges the agent runs
    /// itself for a generation 3 card's basic information and for writes.
    pub key_service: Option<Arc<dyn Backend>>,
    /// The readers of the national function table's `iType` (`[readers]`).
    pub roles: national::Roles,
    /// The counter page, with the configured idle timeout (`page_idle_secs`) in its `sscard-idle-seconds` meta.
    pub page: String,
}

impl Shared {
    /// The handlers' state for an agent answering on `port` (the Host check), with `keys` and the readers of
    /// `connector`: the reader pool, the events hub (from the connector's events), the token verifier, the
    /// audit log and the PIN rate limit. For [`Server::bind`], and for tests of [`router`] without a socket.
    pub fn new(
        config: &Config,
        port: u16,
        keys: Arc<dyn SecurityModule + Send + Sync>,
        connector: Arc<dyn CardConnector>,
    ) -> Result<AppState, ServeError> {
        let audit = AuditLog::open(config.audit_log.as_deref()).map_err(|source| ServeError::Audit {
            path: config.audit_log.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            source,
        })?;
        let key_service = config.keys.key_service_client(&config.terminal_no)?.map(|c| Arc::new(c) as Arc<dyn Backend>);
        let terminal = TerminalIds { terminal_no: config.terminal_no.clone(), device_no: config.device_no.clone() };
        // the watcher's view of the readers spares the pool and the reader lookup a pcscd round trip per request
        let events = EventHub::start_with(connector.events());
        let pool = ReaderPool::watched(
            PoolConfig {
                queue_wait: config.queue_wait,
                card_timeout: config.card_timeout,
                two_step_timeout: config.two_step_timeout,
                terminal: terminal.clone(),
                profile: Arc::new(Profile::builtin().clone()),
            },
            keys,
            connector.clone(),
            events.presence().clone(),
        );
        let tokens = match &config.spent_tokens {
            Some(path) => TokenVerifier::with_spent_file(
                config.token_key.clone(),
                &config.terminal_no,
                config.token_max_ttl,
                path,
            )
            .map_err(|source| ServeError::SpentTokens { path: path.clone(), source })?,
            None => TokenVerifier::new(config.token_key.clone(), &config.terminal_no, config.token_max_ttl),
        };
        Ok(Arc::new(Shared {
            guard: Guard::new(port, &config.allowed_origins),
            pool,
            events,
            tokens,
            audit,
            pin_limit: RateLimit::new(config.pin_attempts_per_minute, Duration::from_secs(60)),
            terminal,
            two_step_secs: config.two_step_timeout.as_secs(),
            preferred: config.reader.as_deref().map(|r| r.parse().unwrap_or(ReaderSelector::Index(0))),
            connector,
            key_service,
            roles: national::Roles::from_config(config),
            page: counter_page(config.page_idle),
        }))
    }
}

/// The handlers' state.
pub type AppState = Arc<Shared>;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The audit log could not be opened.
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The spent-token file could not be opened or rewritten.
    #[error("cannot keep spent tokens in {}: {source}", path.display())]
    SpentTokens {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound, not yet running service.
pub struct Server {
    listeners: Vec<TcpListener>,
    port: u16,
    app: Router,
    state: AppState,
    header_read_timeout: Duration,
}

const PAGE: &str = include_str!("../../assets/counter.html");
const PAGE_JS: &str = include_str!("../../assets/counter.js");
const FAVICON: &str = include_str!("../../assets/favicon.svg");
const OPENAPI: &str = include_str!("../../openapi.yaml");

fn page_headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 5] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; \
                 img-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ]
}

/// The idle-timeout meta of the page as written in the asset.
const PAGE_IDLE_META: &str = r#"<meta name="sscard-idle-seconds" content="120">"#;

/// The counter page with `idle` in its idle-timeout meta.
fn counter_page(idle: Duration) -> String {
    PAGE.replacen(PAGE_IDLE_META, &format!(r#"<meta name="sscard-idle-seconds" content="{}">"#, idle.as_secs()), 1)
}

async fn page(State(state): State<AppState>) -> Response {
    (page_headers("text/html; charset=utf-8"), state.page.clone()).into_response()
}

/// Every answer under `/v1` is the holder's data or about the card in front of the clerk: never stored by a
/// browser or a proxy (`Cache-Control: no-store`), whatever the handler set.
async fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn page_js() -> Response {
    (page_headers("text/javascript; charset=utf-8"), PAGE_JS).into_response()
}

async fn favicon() -> Response {
    (page_headers("image/svg+xml"), FAVICON).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml; charset=utf-8")], OPENAPI).into_response()
}

/// The answer to a plain request on a WebSocket route.
fn not_websocket(e: WebSocketUpgradeRejection) -> Response {
    let message = format!("a WebSocket upgrade is expected here: {}", e.body_text());
    api::ApiError::new(e.status(), "not_websocket", message).into_response()
}

/// `GET /v1/events`: a WebSocket of JSON events; first a `snapshot` of the readers, then each change.
async fn events(State(state): State<AppState>, ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return not_websocket(e),
    };
    // a client that connects right after the agent started waits (a little) for the watcher's first look, so that
    // its snapshot holds the readers that are there (and the first batch's events are not sent to it again)
    state.events.snapshot_when_ready(Duration::from_secs(3)).await;
    let rx = state.events.subscribe();
    let snapshot = state.events.snapshot();
    ws.on_upgrade(move |socket| event_stream(socket, rx, snapshot))
}

async fn event_stream(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<events::Event>,
    snapshot: Vec<events::ReaderSnapshot>,
) {
    let first = serde_json::json!({ "type": "snapshot", "readers": snapshot });
    if socket.send(Message::Text(first.to_string().into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            event = rx.recv() => {
                let text = match event {
                    Ok(e) => serde_json::to_string(&e).unwrap_or_default(),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        serde_json::json!({ "type": "lagged", "missed": n }).to_string()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // clients have nothing to say; pings are answered by axum
            }
        }
    }
}

/// The runtime the agent serves on (`sscard-agent serve`, and the benchmark): one thread. Nothing of the service
/// blocks it — card jobs run on the readers' worker threads, pcscd's reader list on the blocking pool — and on a
/// machine with few cores a multi-thread runtime's idle workers, woken to look for work at every I/O event, compete
/// with the card's own threads (pcscd, the reader worker) for the CPU: measured on 2 cores, the agent's read of a
/// fast card took 1.16–1.27× a direct read on a multi-thread runtime and 1.02–1.06× on this one (issue 15).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// The router over `state` (exposed for in-process tests).
pub fn router(state: AppState, max_body: usize) -> Router {
    let v1 = Router::new()
        .route("/readers", get(api::readers))
        .route("/readers/{index}/card", get(api::card_status))
        .route("/readers/{index}/basic", get(api::basic))
        .route("/readers/{index}/basic/step1", post(api::read_step1))
        .route("/readers/{index}/basic/step2", post(api::read_step2))
        .route("/readers/{index}/items", get(api::read_items).post(api::write_items))
        .route("/readers/{index}/items/step1", post(api::write_step1))
        .route("/readers/{index}/items/step2", post(api::write_step2))
        .route("/readers/{index}/photo", get(api::photo))
        .route("/readers/{index}/pin/{op}", post(api::pin))
        .route("/events", get(events))
        .route("/national", get(national::upgrade))
        .layer(axum::middleware::map_response(no_store));
    Router::new()
        .route("/", get(page))
        .route("/counter.js", get(page_js))
        .route("/favicon.svg", get(favicon))
        .route("/openapi.yaml", get(openapi))
        .nest("/v1", v1)
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::guard))
        .with_state(state)
}

impl Server {
    /// Binds 127.0.0.1:PORT and \[::1\]:PORT (the same port; port 0 picks a free one) and builds the service over
    /// pcscd's readers. Nothing else is ever bound: the agent is not reachable from the network.
    pub async fn bind(config: Config, keys: Arc<dyn SecurityModule + Send + Sync>) -> Result<Server, ServeError> {
        Server::bind_with(config, keys, Arc::new(PcscReaders)).await
    }

    /// [`Server::bind`] over the readers of `connector`.
    pub async fn bind_with(
        config: Config,
        keys: Arc<dyn SecurityModule + Send + Sync>,
        connector: Arc<dyn CardConnector>,
    ) -> Result<Server, ServeError> {
        config.validate()?;
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
        let first = TcpListener::bind(v4).await.map_err(|source| ServeError::Bind { addr: v4, source })?;
        let port = first.local_addr().map_err(|source| ServeError::Bind { addr: v4, source })?.port();
        let mut listeners = vec![first];
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        match TcpListener::bind(v6).await {
            Ok(l) => listeners.push(l),
            // a machine without IPv6 on loopback: serve IPv4 only, and say so
            Err(e) => eprintln!("terminal-agent: not listening on {v6}: {e}"),
        }
        let state = Shared::new(&config, port, keys, connector)?;
        let app = router(state.clone(), config.max_body_bytes);
        Ok(Server { listeners, port, app, state, header_read_timeout: config.header_read_timeout })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The addresses bound.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Serves until `shutdown` completes, then lets the requests in flight finish and the reader workers let go of
    /// their cards.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for listener in self.listeners {
            tasks.push(tokio::spawn(serve(listener, self.app.clone(), self.header_read_timeout, stop_rx.clone())));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        let mut result = Ok(());
        for t in tasks {
            if let Err(e) = t.await {
                result = Err(std::io::Error::other(e));
            }
        }
        self.state.pool.shutdown().await;
        result
    }
}

/// Until the stop is signalled (the guard of the value is not kept: the future stays `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// How long the requests in flight may take to finish after the stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` and serves each over HTTP/1.1 (with upgrades, for the events WebSocket)
/// until `stop`: a connection that does not send a request's headers within `header_read_timeout` — a slow
/// client, or one idle between requests — is closed, so idle connections cannot pile up. Then the requests in
/// flight finish (at most [`SHUTDOWN_GRACE`]).
async fn serve(listener: TcpListener, app: Router, header_read_timeout: Duration, mut stop: watch::Receiver<bool>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // out of descriptors and the like: say so, breathe, go on
                    tracing::warn!("terminal-agent: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        // finished connections are reaped as new ones come
        while connections.try_join_next().is_some() {}
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        let mut stop = stop.clone();
        connections.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = stopped(&mut stop) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
}

#[cfg(test)]
mod tests {
    /// Every route of [`super::router`] is documented in the OpenAPI file, and every documented path is routed.
    #[test]
    fn every_route_is_in_the_openapi_file() {
        let source = include_str!("mod.rs");
        let routed: Vec<String> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".route(\"/"))
            .filter_map(|l| l.split('"').next())
            .map(|p| format!("/{p}"))
            .collect();
        let in_v1 = |p: &str| ["/readers", "/events", "/national"].iter().any(|x| p.starts_with(x));
        let documented: Vec<&str> =
            super::OPENAPI.lines().filter_map(|l| l.strip_prefix("  /v1").and_then(|p| p.strip_suffix(':'))).collect();
        for p in routed.iter().filter(|p| in_v1(p)) {
            assert!(documented.contains(&p.as_str()), "route /v1{p} is not in openapi.yaml");
        }
        for p in &documented {
            assert!(routed.iter().any(|r| r == p), "openapi.yaml documents /v1{p}, which is not routed");
        }
        assert!(routed.len() >= 15, "{routed:?}");
    }

    /// The page carries the configured idle timeout; the asset's default meta is what gets replaced.
    #[test]
    fn the_page_carries_the_idle_timeout() {
        assert!(super::PAGE.contains(super::PAGE_IDLE_META), "the asset lost its idle meta");
        let page = super::counter_page(std::time::Duration::from_secs(7));
        assert!(page.contains(r#"<meta name="sscard-idle-seconds" content="7">"#));
        assert!(!page.contains(super::PAGE_IDLE_META));
        assert_eq!(super::counter_page(crate::service::config::DEFAULT_PAGE_IDLE), super::PAGE);
    }
}
