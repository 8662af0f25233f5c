//! The routes: `POST /v1/answers` (the one that computes), `GET /v1/health` (for load balancers) and
//! `GET /openapi.yaml`. Every answer request is audited, answered or refused; a request whose audit line cannot
//! be written is refused (503) and nothing is answered.

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use card_core::security::key_service::{Answer, AnswerRequest, Refusal, ANSWERS_PATH};
use zeroize::Zeroizing;

use super::answer::{self, Context, Facts, Refused};
use super::audit_log::{AuditLog, Record};
use super::keys::{Journal, KeySource};
use super::limit::{Limited, RateLimits};
use super::policy::Policies;
use super::revocation::Revocations;
use super::tls::Peer;

/// The OpenAPI description, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../openapi-key-service.yaml");

/// What every request shares.
pub struct Shared {
    /// The keys (replaced at SIGHUP).
    pub(super) keys: RwLock<Arc<dyn KeySource>>,
    /// issuance-cli's journal (read-only), if configured.
    pub journal: Option<Journal>,
    /// Terminal policies.
    pub policies: Policies,
    /// Rate limits.
    pub limits: RateLimits,
    /// Per-terminal rate and burst (unless a terminal's policy says otherwise).
    pub per_terminal: (f64, f64),
    /// Revoked certificate serials.
    pub revocations: Revocations,
    /// This replica's audit log.
    pub audit: AuditLog,
    /// Largest request body.
    pub max_body: usize,
}

impl Shared {
    /// The keys now.
    pub fn keys(&self) -> Option<Arc<dyn KeySource>> {
        self.keys.read().ok().map(|k| Arc::clone(&k))
    }

    /// Replaces the keys (SIGHUP); the old ones are dropped (zeroized) when the last request using them ends.
    pub fn set_keys(&self, keys: Arc<dyn KeySource>) {
        if let Ok(mut k) = self.keys.write() {
            *k = keys;
        }
    }
}

fn refusal(r: &Refused) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = Refusal { error: r.error.to_string(), code: r.code, message: r.message.clone() };
    let mut resp = (status, Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Handles one answer request; returns the audit record and the outcome.
fn handle(shared: &Shared, peer: &Peer, body: Result<Zeroizing<Vec<u8>>, String>) -> (Record, Result<Answer, Refused>) {
    let mut rec = Record {
        event: "answer",
        terminal: peer.terminal.clone(),
        cert_serial: peer.serial.clone(),
        client: peer.addr.to_string(),
        insecure: peer.insecure,
        ..Record::default()
    };
    let mut facts = Facts::default();
    let result = (|| {
        if let Some(serial) = &peer.serial {
            if shared.revocations.is_revoked(serial) {
                return Err(Refused::forbidden(format!("certificate {serial} is revoked")));
            }
        }
        if let Some(t) = &peer.terminal {
            limit(shared, t)?;
        } else if !peer.insecure {
            return Err(Refused::forbidden("the client certificate has no subject CN (the terminal number)"));
        }
        let body = body.map_err(Refused::bad)?;
        // serde's messages can quote a value (a PIN sent as a number): only the kind and the place are said
        let mut req: AnswerRequest = serde_json::from_slice(&body).map_err(|e| {
            Refused::bad(format!(
                "the body is not an AnswerRequest ({:?} error at line {}, column {}; see /openapi.yaml)",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let outcome = checked(shared, peer, &req, &mut rec, &mut facts);
        if let Some(step2) = req.step2.as_mut() {
            zeroize::Zeroize::zeroize(step2);
        }
        outcome
    })();

    rec.card_id = facts.card_id;
    rec.region = facts.region;
    rec.key = facts.key;
    rec.version = facts.version;
    match &result {
        Ok(a) => {
            rec.result = "ok";
            rec.status = Some(200);
            rec.key = Some(a.key.clone());
            rec.version = Some(a.version);
        }
        Err(r) => {
            rec.result = "refused";
            rec.status = Some(r.status);
            rec.code = r.code;
            rec.message = Some(r.message.clone());
        }
    }
    (rec, result)
}

/// The checks after parsing (terminal, rate limit in insecure mode), then the answer.
fn checked(
    shared: &Shared,
    peer: &Peer,
    req: &AnswerRequest,
    rec: &mut Record,
    facts: &mut Facts,
) -> Result<Answer, Refused> {
    rec.operation = Some(req.operation.to_string());
    if req.terminal.is_empty() || req.terminal.len() > 64 {
        return Err(Refused::bad("terminal must be 1 to 64 characters"));
    }
    match &peer.terminal {
        Some(t) if *t != req.terminal => {
            return Err(Refused::forbidden(format!(
                "terminal {:?} is not the certificate's ({t})",
                req.terminal.chars().take(64).collect::<String>()
            )))
        }
        Some(_) => {}
        None => {
            rec.terminal = Some(req.terminal.clone());
            limit(shared, &req.terminal)?;
        }
    }
    let keys = shared.keys().ok_or_else(|| Refused::unavailable("keys unavailable"))?;
    let cx = Context { keys: &*keys, journal: shared.journal.as_ref(), policy: shared.policies.of(&req.terminal) };
    answer::answer(req, &cx, facts)
}

fn limit(shared: &Shared, terminal: &str) -> Result<(), Refused> {
    let p = shared.policies.of(terminal);
    let rate = p.per_second.unwrap_or(shared.per_terminal.0);
    let burst = p.burst.unwrap_or(shared.per_terminal.1);
    shared.limits.check(terminal, rate, burst).map_err(|l| match l {
        Limited::Terminal => Refused::limited("this terminal's rate limit: try again in a second"),
        Limited::Global => Refused::limited("the service's rate limit: try again in a second"),
    })
}

/// A body larger than this is not read to its end: the connection is closed after the refusal.
const DRAIN_MAX: usize = 4 * 1024 * 1024;

/// Reads the body (zeroized when dropped: it may hold a PIN), at most `max` bytes kept. A larger one is read on (and dropped) up to [`DRAIN_MAX`] so that
/// the client, still sending, gets its 400 rather than a broken connection.
async fn read_body(body: Body, max: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut kept = Zeroizing::new(Vec::new());
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("request body: {e}"))?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= max {
                kept.extend_from_slice(&data);
            } else if total > DRAIN_MAX {
                break;
            }
        }
    }
    if total > max {
        return Err(format!("the request body is larger than {max} bytes"));
    }
    Ok(kept)
}

/// `POST /v1/answers`.
async fn answers(State(shared): State<Arc<Shared>>, peer: Option<Extension<Peer>>, body: Body) -> Response {
    let Some(Extension(peer)) = peer else {
        return refusal(&Refused::unavailable("no connection identity"));
    };
    let body = read_body(body, shared.max_body).await;
    let (rec, result) = handle(&shared, &peer, body);
    if let Err(e) = shared.audit.write(&rec) {
        eprintln!("keymgmt serve: audit log {}: {e}: refusing to answer", shared.audit.path().display());
        return refusal(&Refused::unavailable("the audit log cannot be written: nothing is answered"));
    }
    match result {
        Ok(a) => (StatusCode::OK, Json(a)).into_response(),
        Err(r) => refusal(&r),
    }
}

/// `GET /v1/health`.
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let regions: Vec<String> =
        shared.keys().map(|k| k.regions().iter().map(|r| r.as_str().to_string()).collect()).unwrap_or_default();
    Json(serde_json::json!({ "status": "ok", "regions": regions })).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml; charset=utf-8")], OPENAPI).into_response()
}

async fn not_found() -> Response {
    refusal(&Refused {
        status: 404,
        error: "not_found",
        code: card_core::national::BAD_PARAMETER,
        message: format!("no such route; POST {ANSWERS_PATH}"),
    })
}

async fn method_not_allowed() -> Response {
    refusal(&Refused {
        status: 405,
        error: "method_not_allowed",
        code: card_core::national::BAD_PARAMETER,
        message: format!("POST {ANSWERS_PATH}"),
    })
}

/// The router over `shared`; bodies larger than its `max_body` are refused (400, −14).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/answers", post(answers))
        .route("/v1/health", get(health))
        .route("/openapi.yaml", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    /// Every route of [`super::router`] is in the OpenAPI file, and every documented path is routed.
    #[test]
    fn every_route_is_in_the_openapi_file() {
        let source = include_str!("routes.rs");
        let routed: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".route(\""))
            .filter_map(|l| l.split('"').next())
            .filter(|p| p.starts_with("/v1"))
            .collect();
        let documented: Vec<&str> =
            super::OPENAPI.lines().filter_map(|l| l.strip_prefix("  /").and_then(|p| p.strip_suffix(':'))).collect();
        for p in &routed {
            assert!(documented.iter().any(|d| format!("/{d}") == *p), "route {p} is not in openapi-key-service.yaml");
        }
        for d in &documented {
            assert!(routed.iter().any(|r| *r == format!("/{d}")), "openapi documents /{d}, which is not routed");
        }
        assert_eq!(routed.len(), 2, "{routed:?}");
        assert!(super::OPENAPI.contains(card_core::security::key_service::ANSWERS_PATH));
    }
}
