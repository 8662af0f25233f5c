//! Web safety, checked on every request before any handler runs:
//!
//! - **Host** must be exactly `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT` (a DNS-rebinding page reaches the
//!   agent under its own host name, and is refused here with 421);
//! - **Origin**: API routes (`/v1/…`, the WebSocket upgrade included) need an Origin on the allow-list or one of the
//!   agent's own origins (its counter page); an absent or `null` Origin is refused (403), except a same-origin GET from
//!   the agent's own page, which browsers send without Origin but with `Sec-Fetch-Site: same-origin`;
//! - **CORS** headers only for allowed origins, echoing the one origin (never `*`), with `Vary: Origin`; preflights
//!   from other origins get 403.
//!
//! The page routes (`/`, `/openapi.yaml`) need the Host check only: a top-level navigation carries no Origin.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::ApiError;
use super::AppState;

/// What the guard knows: the bound port and the allow-list.
#[derive(Clone, Debug)]
pub struct Guard {
    hosts: Vec<String>,
    own_origins: Vec<String>,
    allowed: Vec<String>,
}

/// The verdict on a request's origin.
#[derive(Debug, PartialEq, Eq)]
pub enum OriginVerdict {
    /// The agent's own page (same origin): no CORS headers needed.
    Own,
    /// An allowed foreign origin: CORS headers echo it.
    Allowed(String),
    /// No Origin header (only acceptable where the route allows it).
    Absent,
    /// `null` or an origin not on the list.
    Refused(String),
}

impl Guard {
    /// The guard for an agent listening on `port`, allowing `allowed` origins.
    pub fn new(port: u16, allowed: &[String]) -> Self {
        let hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")];
        let own_origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        Guard { hosts, own_origins, allowed: allowed.to_vec() }
    }

    /// Whether the Host header names the agent itself.
    pub fn host_ok(&self, headers: &HeaderMap) -> bool {
        let hosts: Vec<_> = headers.get_all(header::HOST).iter().collect();
        match hosts.as_slice() {
            [one] => one.to_str().is_ok_and(|h| self.hosts.iter().any(|ok| ok == h)),
            _ => false,
        }
    }

    /// Classifies the Origin header.
    pub fn origin(&self, headers: &HeaderMap) -> OriginVerdict {
        let origins: Vec<_> = headers.get_all(header::ORIGIN).iter().collect();
        match origins.as_slice() {
            [] => OriginVerdict::Absent,
            [one] => match one.to_str() {
                Ok(o) if self.own_origins.iter().any(|x| x == o) => OriginVerdict::Own,
                Ok(o) if self.allowed.iter().any(|x| x == o) => OriginVerdict::Allowed(o.to_owned()),
                Ok(o) => OriginVerdict::Refused(o.to_owned()),
                Err(_) => OriginVerdict::Refused("(not ASCII)".into()),
            },
            _ => OriginVerdict::Refused("(several Origin headers)".into()),
        }
    }
}

fn same_origin_fetch(headers: &HeaderMap) -> bool {
    headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"same-origin")
}

fn cors_headers(resp: &mut Response, origin: &str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The middleware: Host, then Origin, then CORS.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let g = &state.guard;
    let headers = req.headers();
    if !g.host_ok(headers) {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "bad_host",
            "this agent answers to 127.0.0.1, localhost and [::1] only",
        )
        .into_response();
    }
    let api = req.uri().path().starts_with("/v1/");
    let verdict = g.origin(headers);
    let origin_for_audit = match &verdict {
        OriginVerdict::Own | OriginVerdict::Absent => "self".to_owned(),
        OriginVerdict::Allowed(o) | OriginVerdict::Refused(o) => o.clone(),
    };
    match &verdict {
        OriginVerdict::Refused(o) => {
            return ApiError::new(StatusCode::FORBIDDEN, "bad_origin", format!("origin {o} is not allowed"))
                .into_response()
        }
        OriginVerdict::Absent if api && !(req.method() == Method::GET && same_origin_fetch(headers)) => {
            return ApiError::new(StatusCode::FORBIDDEN, "bad_origin", "a request without Origin is refused")
                .into_response()
        }
        _ => {}
    }
    if req.method() == Method::OPTIONS {
        // a CORS preflight: only allowed origins get here
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        if let OriginVerdict::Allowed(o) = &verdict {
            cors_headers(&mut resp, o);
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        return resp;
    }
    let mut req = req;
    req.extensions_mut().insert(RequestOrigin(origin_for_audit));
    let mut resp = next.run(req).await;
    if let OriginVerdict::Allowed(o) = &verdict {
        cors_headers(&mut resp, o);
    }
    resp
}

/// The origin a request came from, for the audit log (`self` for the agent's own page).
#[derive(Clone, Debug)]
pub struct RequestOrigin(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn host_must_be_the_agent_itself() {
        let g = Guard::new(17788, &[]);
        for ok in ["127.0.0.1:17788", "localhost:17788", "[::1]:17788"] {
            assert!(g.host_ok(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in ["evil.example:17788", "127.0.0.1", "127.0.0.1:80", "localhost.evil.example:17788", "LOCALHOST:1"] {
            assert!(!g.host_ok(&headers(&[("host", bad)])), "{bad}");
        }
        assert!(!g.host_ok(&HeaderMap::new()), "no Host");
        assert!(!g.host_ok(&headers(&[("host", "127.0.0.1:17788"), ("host", "evil:1")])), "two Hosts");
    }

    #[test]
    fn origins_are_compared_exactly() {
        let g = Guard::new(17788, &["https://counter.example".to_owned()]);
        assert_eq!(
            g.origin(&headers(&[("origin", "https://counter.example")])),
            OriginVerdict::Allowed("https://counter.example".into())
        );
        assert_eq!(g.origin(&headers(&[("origin", "http://127.0.0.1:17788")])), OriginVerdict::Own);
        for bad in ["https://counter.example.evil", "http://counter.example", "https://counter.example:443", "null"] {
            assert!(matches!(g.origin(&headers(&[("origin", bad)])), OriginVerdict::Refused(_)), "{bad}");
        }
        assert_eq!(g.origin(&HeaderMap::new()), OriginVerdict::Absent);
    }
}
