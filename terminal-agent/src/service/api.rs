//! The HTTP API (`/v1/…`): JSON in and out; every error is `{"error": kind, "code": national code, "message": …}`.
//! The routes are documented in `terminal-agent/openapi.yaml`, served at `/openapi.yaml`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use card_core::card::{Address, BasicInfo};
use card_core::security::NoKeys;
use card_core::transport::{ReaderSelector, TransportError};
use card_core::{codec, national, Error};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::{self, Entry};
use super::readers::{PoolError, PooledCard, Ticket};
use super::token::{Scope, TokenError};
use super::web::RequestOrigin;
use super::AppState;

/// An API error: HTTP status, a stable kind, the national code and a message (never a secret in it).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: i32,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with the national code `-14` (bad parameter) unless set otherwise.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, code: national::BAD_PARAMETER, message: message.into(), retry_after: None }
    }

    fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The national code.
    pub fn national_code(&self) -> i32 {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.kind, "code": self.code, "message": self.message });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = national::code(&e);
        let message = e.to_string();
        let (status, kind) = match &e {
            Error::Transport(t) => match t {
                TransportError::NoCard(_) | TransportError::CardRemoved | TransportError::CardReset => {
                    (StatusCode::CONFLICT, "no_card")
                }
                TransportError::NoReader(_) | TransportError::NoReaders => (StatusCode::NOT_FOUND, "no_reader"),
                TransportError::NoService | TransportError::ReaderBusy => {
                    (StatusCode::SERVICE_UNAVAILABLE, "reader_unavailable")
                }
                _ => (StatusCode::BAD_GATEWAY, "reader_error"),
            },
            Error::WrongPin { .. } | Error::PinBlocked => (StatusCode::UNPROCESSABLE_ENTITY, "pin_refused"),
            Error::Card(_) | Error::Blocked(_) | Error::AuthFailed { .. } | Error::National(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "card_refused")
            }
            Error::MissingKey { .. } => (StatusCode::CONFLICT, "key_not_held"),
            Error::Apdu(_) | Error::Codec(_) | Error::BadParameter(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            _ => (StatusCode::BAD_GATEWAY, "card_error"),
        };
        ApiError { status, kind, code, message, retry_after: None }
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        let code = e.national_code();
        match e {
            PoolError::Card(e) => e.into(),
            PoolError::Busy { .. } => ApiError {
                retry_after: Some(Duration::from_secs(1)),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()).code(code)
            },
            PoolError::NoSession { .. } => ApiError::new(StatusCode::NOT_FOUND, "no_session", e.to_string()).code(code),
            PoolError::SessionExpired { .. } => {
                ApiError::new(StatusCode::GONE, "session_expired", e.to_string()).code(code)
            }
            PoolError::Closed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", e.to_string()).code(code)
            }
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", other.to_string()).code(code),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        let status = match e {
            TokenError::Missing | TokenError::Malformed | TokenError::BadSignature | TokenError::Expired => {
                StatusCode::UNAUTHORIZED
            }
            _ => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, "token_refused", e.to_string()).code(national::KEY_LEVEL)
    }
}

type ApiResult = Result<Response, ApiError>;

/// The national code of a PIN operation refused by the rate limit \[P\]: −31, the first of the PIN entry errors
/// (−31…−36), as the attempt was refused before the card saw it.
pub const PIN_RATE_LIMITED: i32 = -31;

/// The body as JSON of `T`; errors say where, never what (a PIN may be in it). The body's buffer is wiped after
/// parsing when this request holds the only reference to it (PINs do not linger in freed memory).
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
        if too_large {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is too large")
        } else {
            ApiError::bad_request("cannot read the request body")
        }
    })?;
    let parsed = serde_json::from_slice(&body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not valid JSON",
            serde_json::error::Category::Data => "JSON of the wrong shape (missing field, unknown field or wrong type)",
            serde_json::error::Category::Io => "unreadable",
        };
        ApiError::bad_request(format!("request body: {what} at line {} column {}", e.line(), e.column()))
    });
    if let Ok(mut unique) = body.try_into_mut() {
        zeroize::Zeroize::zeroize(&mut unique[..]);
    }
    parsed
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The reader a path names: an index of `GET /v1/readers`, or `default` — the configured preference (`reader`:
/// a name, a unique part of one, or an index), else the first reader with a card, else the first reader.
async fn reader_name(state: &AppState, which: &str) -> Result<String, ApiError> {
    let selector = match which {
        "default" => state.preferred.clone(),
        _ => match which.parse::<usize>() {
            Ok(i) => Some(ReaderSelector::Index(i)),
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_reader",
                    "a reader is an index of GET /v1/readers, or `default`",
                )
                .code(national::READER_CONNECTION))
            }
        },
    };
    let connector = state.connector.clone();
    let found = tokio::task::spawn_blocking(move || match selector {
        Some(sel) => connector.resolve(&sel),
        None => {
            let states = connector.readers()?;
            states
                .iter()
                .find(|r| r.card_present)
                .or(states.first())
                .map(|r| r.name.clone())
                .ok_or(TransportError::NoReaders)
        }
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "reader lookup failed"))?;
    found.map_err(|e| match e {
        TransportError::NoReader(_) | TransportError::NoReaders => {
            ApiError::new(StatusCode::NOT_FOUND, "no_reader", format!("no reader {which}"))
                .code(national::READER_CONNECTION)
        }
        other => ApiError::from(Error::from(other)),
    })
}

/// The card identifier, read without keys, for the audit log (none if it cannot be read).
fn card_id_of(card: &mut PooledCard) -> Option<String> {
    let address: Address = "SSSEEF05|01|$".parse().ok()?;
    let values = card.read_items(&NoKeys, &address, None).ok()?;
    values.get("SSSEEF05", 0x01).map(str::to_owned)
}

struct Audit<'a> {
    state: &'a AppState,
    origin: &'a str,
    operation: &'static str,
    reader: Option<&'a str>,
}

impl Audit<'_> {
    fn record<T>(&self, card_id: Option<&str>, result: &Result<T, ApiError>) {
        match result {
            Ok(_) => self.line(card_id, "ok", national::OK),
            Err(e) => self.line(card_id, "error", e.code),
        }
    }

    /// Records a request refused before the card was touched, and gives the refusal back.
    fn refuse(&self, e: ApiError) -> ApiError {
        self.line(None, "error", e.code);
        e
    }

    /// Checks the request's token for `scope`; a refusal is audited.
    fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<(), ApiError> {
        self.state.tokens.check(bearer(headers), scope).map(drop).map_err(|e| self.refuse(e.into()))
    }

    fn line(&self, card_id: Option<&str>, res: &str, code: i32) {
        self.state.audit.record(&Entry {
            time: audit::now(),
            origin: self.origin,
            operation: self.operation,
            reader: self.reader,
            card_id,
            result: res,
            code,
        });
    }
}

/// The typed fields of the basic information.
pub fn basic_json(b: &BasicInfo) -> Value {
    let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    json!({
        "generation": b.generation.number(),
        "algorithm": b.algorithm.name(),
        "historical_bytes": codec::hex_upper(&b.historical_bytes),
        "card_id": codec::hex_upper(&b.card_id),
        "region": b.region.as_str(),
        "card_type": b.card_type,
        "spec_version": b.spec_version,
        "init_org": b.init_org,
        "issue_date": b.issue_date.to_string(),
        "expiry_date": b.expiry_date.to_string(),
        "card_number": opt(&b.card_number),
        "ssn": opt(&b.ssn),
        "name": opt(&b.name),
        "name_ext": opt(&b.name_ext),
        "sex": opt(&b.sex),
        "ethnicity": opt(&b.ethnicity),
        "birthplace": opt(&b.birthplace),
        "birth_date": b.birth_date.map(|d| Value::String(d.to_string())).unwrap_or(Value::Null),
        "withheld_for_lack_of": opt(&b.withheld),
    })
}

fn basic_answer(state: &AppState, info: &BasicInfo) -> Value {
    let national_string = info.national(&state.terminal);
    let code = info.national_code();
    json!({
        "national": national_string.as_str(),
        "code": code,
        "message": national::message(code),
        "card": basic_json(info),
    })
}

/// `GET /v1/readers`
pub async fn readers(State(state): State<AppState>) -> ApiResult {
    let connector = state.connector.clone();
    let states = tokio::task::spawn_blocking(move || connector.readers())
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "reader listing failed"))?
        .map_err(|e| ApiError::from(Error::from(e)))?;
    let list: Vec<Value> = states
        .iter()
        .map(|r| {
            json!({
                "index": r.index,
                "name": r.name,
                "card_present": r.card_present,
                "exclusive": r.exclusive,
                "atr": if r.card_present { Value::String(codec::hex_upper(&r.atr)) } else { Value::Null },
            })
        })
        .collect();
    Ok(Json(json!({ "readers": list })).into_response())
}

/// `GET /v1/readers/{index}/card`: present, ATR, generation (1 APDU: SELECT SSSE).
pub async fn card_status(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
) -> ApiResult {
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation: "card-status", reader: Some(&reader) };
    let result = state
        .pool
        .run(&reader, |card, _sm| {
            let info = card.detect()?;
            let atr = card_core::transport::Transport::atr(card.transport()).to_vec();
            Ok((info, atr))
        })
        .await
        .map_err(ApiError::from);
    audit.record(None, &result);
    let (info, atr) = result?;
    Ok(Json(json!({
        "reader": reader,
        "present": true,
        "atr": codec::hex_upper(&atr),
        "generation": info.generation.number(),
        "algorithm": info.algorithm.name(),
        "historical_bytes": codec::hex_upper(&info.historical_bytes),
    }))
    .into_response())
}

/// `GET /v1/readers/{index}/basic`: iReadCardBas, with the keys the agent holds.
pub async fn basic(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
) -> ApiResult {
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation: "read-basic", reader: Some(&reader) };
    let result = state.pool.run(&reader, |card, sm| card.read_basic(sm)).await.map_err(ApiError::from);
    audit.record(result.as_ref().ok().map(|i| codec::hex_upper(&i.card_id)).as_deref(), &result);
    Ok(Json(basic_answer(&state, &result?)).into_response())
}

/// Query of `GET …/items`.
#[derive(Deserialize)]
pub struct ItemsQuery {
    address: String,
}

fn parse_address(text: &str) -> Result<Address, ApiError> {
    text.parse().map_err(|e: Error| ApiError::bad_request(format!("address: {e}")).code(national::BAD_PARAMETER))
}

/// `GET /v1/readers/{index}/items?address=…`: iReadCard.
pub async fn read_items(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
    q: Result<Query<ItemsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|_| ApiError::bad_request("the query needs address=<national file address>"))?;
    let address = parse_address(&q.address)?;
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation: "read-items", reader: Some(&reader) };
    let result = state
        .pool
        .run(&reader, move |card, sm| {
            let id = card_id_of(card);
            card.read_items(sm, &address, None).map(|v| (id, v.to_national()))
        })
        .await
        .map_err(ApiError::from);
    audit.record(result.as_ref().ok().and_then(|(id, _)| id.as_deref()), &result);
    let (_, values) = result?;
    Ok(Json(json!({ "address": q.address, "national": values })).into_response())
}

/// Body of `POST …/items` and `…/items/step1`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    address: String,
    data: String,
}

/// `POST /v1/readers/{index}/items`: iWriteCard (token scope `write`).
pub async fn write_items(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: WriteBody = parse(body)?;
    let address = parse_address(&b.address)?;
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation: "write-items", reader: Some(&reader) };
    audit.authorize(&headers, Scope::Write)?;
    let result = state
        .pool
        .run(&reader, move |card, sm| {
            let id = card_id_of(card);
            card.write_items(sm, &address, &b.data).map(|()| id)
        })
        .await
        .map_err(ApiError::from);
    audit.record(result.as_ref().ok().and_then(|id| id.as_deref()), &result);
    result?;
    Ok(Json(json!({ "address": b.address, "written": true })).into_response())
}

/// `GET /v1/readers/{index}/photo`: the holder's photo (JPEG), when the card has one.
pub async fn photo(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
) -> ApiResult {
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation: "read-photo", reader: Some(&reader) };
    let result = state
        .pool
        .run(&reader, |card, sm| {
            let id = card_id_of(card);
            card.read_binary(sm, "SSSEEF08").map(|b| (id, b))
        })
        .await
        .map_err(ApiError::from);
    audit.record(result.as_ref().ok().and_then(|(id, _)| id.as_deref()), &result);
    let (_, data) = result?;
    // a JPEG starts with SOI and ends with EOI; the file is padded after it
    let Some(end) = data.starts_with(&[0xFF, 0xD8]).then(|| data.windows(2).rposition(|w| w == [0xFF, 0xD9])).flatten()
    else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no_photo", "the card holds no photo"));
    };
    let jpeg = data[..end + 2].to_vec();
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], jpeg).into_response())
}

/// Body of the PIN operations: the fields each one needs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    #[serde(default)]
    pin: Option<SecretString>,
    #[serde(default)]
    old_pin: Option<SecretString>,
    #[serde(default)]
    new_pin: Option<SecretString>,
}

fn need(v: Option<SecretString>, field: &str) -> Result<SecretString, ApiError> {
    v.ok_or_else(|| ApiError::bad_request(format!("request body: {field} is required")))
}

/// `POST /v1/readers/{index}/pin/{op}` with op `verify` (pin), `change` (old_pin, new_pin), `reload` (new_pin,
/// with the reload key), `unblock` (new_pin, with the unblock key). Token scope `pin`; rate-limited per reader.
pub async fn pin(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path((which, op)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let operation = match op.as_str() {
        "verify" => "pin-verify",
        "change" => "pin-change",
        "reload" => "pin-reload",
        "unblock" => "pin-unblock",
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no PIN operation {op:?}"))),
    };
    let b: PinBody = parse(body)?;
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation, reader: Some(&reader) };
    audit.authorize(&headers, Scope::Pin)?;
    if let Err(wait) = state.pin_limit.attempt(&reader) {
        return Err(audit.refuse(ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many PIN operations on this reader; try again in {} s", wait.as_secs().max(1)),
            )
            .code(PIN_RATE_LIMITED)
        }));
    }
    let result = match operation {
        "pin-verify" => {
            let pin = need(b.pin, "pin")?;
            state.pool.run(&reader, move |card, _| Ok((card_id_of(card), card.verify_pin(&pin)?))).await
        }
        "pin-change" => {
            let (old, new) = (need(b.old_pin, "old_pin")?, need(b.new_pin, "new_pin")?);
            state.pool.run(&reader, move |card, _| Ok((card_id_of(card), card.change_pin(&old, &new)?))).await
        }
        "pin-reload" => {
            let new = need(b.new_pin, "new_pin")?;
            state.pool.run(&reader, move |card, sm| Ok((card_id_of(card), card.reload_pin(sm, &new)?))).await
        }
        _ => {
            let new = need(b.new_pin, "new_pin")?;
            state.pool.run(&reader, move |card, sm| Ok((card_id_of(card), card.unblock_pin(sm, &new)?))).await
        }
    }
    .map_err(ApiError::from);
    audit.record(result.as_ref().ok().and_then(|(id, _)| id.as_deref()), &result);
    result?;
    Ok(Json(json!({ "ok": true })).into_response())
}

/// Body of a step 2.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step2Body {
    session: String,
    answer: String,
}

/// The answer to a step 1: what the back end needs, and how long the card waits for its step 2.
fn ticket(state: &AppState, t: Ticket) -> Response {
    Json(json!({ "session": t.session, "step1": t.step1, "key": t.key, "expires_in": state.two_step_secs }))
        .into_response()
}

/// `POST /v1/readers/{index}/basic/step1`: iReadCardBas_HSM_Step1; the card stays reserved for step 2.
pub async fn read_step1(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
) -> ApiResult {
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation: "read-basic-step1", reader: Some(&reader) };
    let result = state.pool.read_step1(&reader).await.map_err(ApiError::from);
    audit.record(None, &result);
    Ok(ticket(&state, result?))
}

/// `POST /v1/readers/{index}/basic/step2`: iReadCardBas_HSM_Step2 with the back end's answer.
pub async fn read_step2(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: Step2Body = parse(body)?;
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation: "read-basic-step2", reader: Some(&reader) };
    let result = state.pool.read_step2(&reader, &b.session, b.answer).await.map_err(ApiError::from);
    audit.record(result.as_ref().ok().map(|i| codec::hex_upper(&i.card_id)).as_deref(), &result);
    Ok(Json(basic_answer(&state, &result?)).into_response())
}

/// `POST /v1/readers/{index}/items/step1`: a two-step write (token scope `write`); the answer's key is named.
pub async fn write_step1(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: WriteBody = parse(body)?;
    let address = parse_address(&b.address)?;
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation: "write-items-step1", reader: Some(&reader) };
    audit.authorize(&headers, Scope::Write)?;
    let result = state.pool.write_step1(&reader, address, b.data).await.map_err(ApiError::from);
    audit.record(None, &result);
    Ok(ticket(&state, result?))
}

/// `POST /v1/readers/{index}/items/step2`: finishes a two-step write with the back end's answer.
pub async fn write_step2(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: Step2Body = parse(body)?;
    let reader = reader_name(&state, &which).await?;
    let audit = Audit { state: &state, origin: &origin.0, operation: "write-items-step2", reader: Some(&reader) };
    let result = state.pool.write_step2(&reader, &b.session, b.answer).await.map_err(ApiError::from);
    audit.record(None, &result);
    result?;
    Ok(Json(json!({ "written": true })).into_response())
}

/// Unknown routes: the same error shape.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// A known route with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take this method")
}
