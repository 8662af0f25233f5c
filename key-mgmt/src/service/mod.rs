//! `keymgmt serve`: the province's key service. Counters that hold no keys send it the national two-step
//! strings and get the answers (CARD-PROFILE §7; protocol: [`card_core::security::key_service`]).
//!
//! - [`config`]: the TOML configuration; [`tls`]: mutual TLS and the peer's identity; [`revocation`]: revoked
//!   certificate serials; [`policy`]: what each terminal may ask; [`limit`]: rate limits;
//! - [`keys`]: where keys come from ([`keys::KeySource`]; the key store's region keys, [`keys::StoreKeys`]) and
//!   the card's key versions (issuance-cli's journal); [`answer`]: the computation and the national codes;
//! - [`routes`]: the HTTP routes; [`audit_log`]: one hash-chained JSON line per request.
//!
//! Stateless: replicas share nothing but the key store (read for the keys), the audit sinks and the journal.

pub mod answer;
pub mod audit_log;
pub mod config;
pub mod keys;
pub mod limit;
pub mod policy;
pub mod revocation;
pub mod routes;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use self::audit_log::{AuditLog, Record};
use self::config::Config;
use self::keys::{Journal, KeySource};
use self::limit::RateLimits;
use self::policy::Policies;
use self::revocation::Revocations;
use self::routes::Shared;
use self::tls::Peer;
use crate::error::{Error, ErrorKind};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A TLS file is wrong.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The revocation list is wrong.
    #[error(transparent)]
    Revocation(#[from] revocation::RevocationError),
    /// Plain HTTP asked for an address that is not loopback, or TLS files missing.
    #[error("{0}")]
    Usage(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The audit log, the journal or the key store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl ServeError {
    /// The kind, for the exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServeError::Config(_) | ServeError::Tls(_) | ServeError::Revocation(_) | ServeError::Usage(_) => {
                ErrorKind::BadInput
            }
            ServeError::Bind { .. } => ErrorKind::Other,
            ServeError::Store(e) => e.kind(),
        }
    }
}

/// A bound service, not yet running.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    shared: Arc<Shared>,
    handshake_timeout: Duration,
}

/// How long requests in flight may take to finish after the stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Server {
    /// Checks the configuration, opens the audit log, the revocation list and the journal, and binds. With
    /// `insecure_loopback`, plain HTTP on a loopback address only (the terminal is then the request's).
    pub async fn bind(
        config: &Config,
        insecure_loopback: bool,
        keys: Arc<dyn KeySource>,
    ) -> Result<Server, ServeError> {
        let acceptor = if insecure_loopback {
            if !config.listen.ip().is_loopback() {
                return Err(ServeError::Usage(format!(
                    "--insecure-loopback serves plain HTTP on loopback only: {} is not a loopback address (use 127.0.0.1)",
                    config.listen
                )));
            }
            None
        } else {
            let t = config.tls.as_ref().ok_or_else(|| {
                ServeError::Usage("the configuration has no [tls] (cert, key, client_ca): TLS is required".into())
            })?;
            Some(TlsAcceptor::from(tls::server_config(&t.cert, &t.key, &t.client_ca)?))
        };
        let revocations = Revocations::load(config.revocation_list.as_deref())?;
        let journal = match config.journal.as_deref() {
            None => None,
            Some(j) => match j.to_str().filter(|s| keys::is_postgres(s)) {
                Some(url) => {
                    let password = match &config.journal_password_file {
                        Some(f) => Some(crate::cli::read_passphrase(f)?),
                        None => std::env::var("PGPASSWORD").ok().map(zeroize::Zeroizing::new),
                    };
                    Some(keys::off_runtime(|| Journal::connect(url, password.as_deref().map(String::as_str)))?)
                }
                None => Some(Journal::open(j)?),
            },
        };
        let audit = AuditLog::open(&config.audit_log)?;
        let limits = RateLimits::new(config.limits.global_per_second, config.limits.global_burst);
        let shared = Arc::new(Shared {
            keys: std::sync::RwLock::new(keys),
            journal,
            policies: Policies::from_config(config),
            limits,
            per_terminal: (config.limits.per_terminal_per_second, config.limits.per_terminal_burst),
            revocations,
            audit,
            max_body: config.max_body_bytes,
        });
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: config.listen, source })?;
        let app = routes::router(shared.clone());
        Ok(Server {
            listener,
            addr,
            acceptor,
            app,
            shared,
            handshake_timeout: Duration::from_secs(config.handshake_timeout_secs),
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (keys, revocations, audit), for reloads.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` completes, then lets the requests in flight finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            self.listener,
            self.acceptor,
            self.app,
            self.shared,
            self.handshake_timeout,
            stop_rx,
        ));
        shutdown.await;
        let _ = stop_tx.send(true);
        let _ = task.await;
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    shared: Arc<Shared>,
    handshake_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("keymgmt serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        while connections.try_join_next().is_some() {}
        let (app, shared, acceptor, stop) = (app.clone(), shared.clone(), acceptor.clone(), stop.clone());
        connections.spawn(async move {
            match acceptor {
                None => {
                    let peer = Peer { addr, terminal: None, serial: None, insecure: true };
                    serve_connection(stream, app, peer, stop).await;
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return refused_handshake(&shared, addr, &e.to_string()),
                        Err(_) => return refused_handshake(&shared, addr, "no TLS handshake in time"),
                    };
                    let (terminal, serial) = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(tls::identity)
                        .unwrap_or((None, None));
                    let peer = Peer { addr, terminal, serial, insecure: false };
                    serve_connection(tls, app, peer, stop).await;
                }
            }
        });
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
}

/// A connection refused in the TLS handshake (no certificate, another CA, expired, …): the only trace is this
/// connection-level audit line.
fn refused_handshake(shared: &Shared, addr: SocketAddr, why: &str) {
    let rec = Record {
        event: "tls",
        result: "refused",
        code: card_core::national::KEY_LEVEL,
        message: Some(format!("TLS handshake: {}", why.chars().take(200).collect::<String>())),
        client: addr.to_string(),
        ..Record::default()
    };
    if let Err(e) = shared.audit.write(&rec) {
        eprintln!("keymgmt serve: audit log {}: {e}", shared.audit.path().display());
    }
}

async fn serve_connection<S>(io: S, app: Router, peer: Peer, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        app.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopped(&mut stop) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// Runs `server` until SIGTERM or SIGINT. SIGHUP calls `reload_keys` (on a blocking thread: the unlock is slow on
/// purpose) and reloads the revocation list; the list is also reloaded when its file changes (checked every
/// second). Each reload is said on stderr (names and versions, never a key).
pub async fn run_with_signals(
    server: Server,
    reload_keys: Arc<dyn Fn() -> Result<Arc<dyn KeySource>, Error> + Send + Sync>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let shared = server.shared();
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let reloader = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = hup.recv() => {
                        let reload = reload_keys.clone();
                        match tokio::task::spawn_blocking(move || reload()).await {
                            Ok(Ok(keys)) => {
                                eprintln!("keymgmt serve: SIGHUP: keys reloaded: {}", keys.describe().join(", "));
                                shared.set_keys(keys);
                            }
                            Ok(Err(e)) => eprintln!("keymgmt serve: SIGHUP: keys not reloaded, the previous ones stay: {e}"),
                            Err(e) => eprintln!("keymgmt serve: SIGHUP: keys not reloaded: {e}"),
                        }
                        revocations(&shared, true);
                        eprintln!("keymgmt serve: SIGHUP: reloaded");
                    }
                    _ = tick.tick() => revocations(&shared, false),
                }
            }
        })
    };
    server
        .run(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await;
    reloader.abort();
    let _ = reloader.await;
    Ok(())
}

fn revocations(shared: &Shared, force: bool) {
    match shared.revocations.reload(force) {
        Ok(Some(n)) => eprintln!("keymgmt serve: revocation list reloaded: {n} serials"),
        Ok(None) => {}
        Err(e) => eprintln!("keymgmt serve: revocation list not reloaded, the previous one stays: {e}"),
    }
}
