//! The HTTP API (`/v1/…`): JSON in and out; every error is `{"error": kind, "code": national code, "message": …}`
//! (see [`super::error`]). The routes are documented in `terminal-agent/openapi.yaml`, served at `/openapi.yaml`.
//!
//! Every card route goes through one `CardRequest`: resolve the reader, check the token where one is needed,
//! hand the job to the reader's worker, write the audit line with the card identifier the operation itself
//! learnt (in its own transaction), and map the outcome to a response.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use card_core::card::{Address, BasicInfo};
use card_core::security::SecurityModule;
use card_core::transport::{ReaderSelector, TransportError};
use card_core::{codec, national, Error};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

pub use super::error::ApiError;

use super::audit::{self, Entry};
use super::events::ReaderSnapshot;
use super::readers::{PoolError, PooledCard, Ticket};
use super::token::Scope;
use super::web::RequestOrigin;
use super::AppState;

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
///
/// Looked up in what the reader watcher last saw (no pcscd round trip); asked of the connector (pcscd) when the
/// watcher has not reported yet or does not know the reader — which also gives the precise error.
async fn reader_name(state: &AppState, which: &str) -> Result<String, ApiError> {
    let no_reader =
        |message: String| ApiError::new(StatusCode::NOT_FOUND, "no_reader", message).code(national::READER_CONNECTION);
    let selector = match which {
        "default" => state.preferred.clone(),
        // the index exactly as GET /v1/readers writes it: decimal digits, no sign, no leading zero
        _ => match which.parse::<usize>() {
            Ok(i) if which == i.to_string() => Some(ReaderSelector::Index(i)),
            _ => return Err(no_reader("a reader is an index of GET /v1/readers, or `default`".into())),
        },
    };
    if let Some(Some(name)) = state.events.presence().with_readers(|readers| watched_reader(readers, selector.as_ref()))
    {
        return Ok(name);
    }
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
    .map_err(|_| ApiError::internal("the reader lookup task failed"))?;
    // `which` is `default` or a number here: echoing it back quotes nothing else
    found.map_err(|e| match e {
        TransportError::NoReader(_) | TransportError::NoReaders => no_reader(format!("no reader {which}")),
        other => ApiError::from(Error::from(other)),
    })
}

/// The reader `selector` designates among the watcher's `readers` (none: the first with a card, else the first);
/// `None` if it designates none of them.
fn watched_reader(readers: &[ReaderSnapshot], selector: Option<&ReaderSelector>) -> Option<String> {
    match selector {
        Some(selector) => watched(readers, selector).map(|r| r.reader.clone()),
        None => readers.iter().find(|r| r.card_present).or(readers.first()).map(|r| r.reader.clone()),
    }
}

/// The reader `selector` designates among the watcher's `readers` (an index, an exact name or a part of exactly one).
pub(super) fn watched<'r>(readers: &'r [ReaderSnapshot], selector: &ReaderSelector) -> Option<&'r ReaderSnapshot> {
    match selector {
        ReaderSelector::Index(i) => readers.get(*i),
        ReaderSelector::Name(_) => {
            let names: Vec<String> = readers.iter().map(|r| r.reader.clone()).collect();
            let name = selector.pick(&names).ok()?;
            readers.iter().find(|r| r.reader == name)
        }
    }
}

/// One request on one reader's card, from the resolved reader to the audit line (also the national function
/// table's, [`super::national`]).
pub(super) struct CardRequest<'a> {
    state: &'a AppState,
    origin: &'a str,
    operation: &'static str,
    pub(super) reader: String,
}

/// Where the audit line's card identifier comes from.
pub(super) enum CardId<R> {
    /// Read by the operation itself, right after its SELECT, in its own transaction (one READ RECORD more).
    Read,
    /// Taken from the operation's result (the basic information carries it).
    From(fn(&R) -> Option<String>),
    /// Not needed (card status, Step 1 of a write).
    None,
}

impl<'a> CardRequest<'a> {
    /// Resolves the reader `which` for `operation`. An unknown reader is not audited: no card was addressed.
    async fn open(
        state: &'a AppState,
        origin: &'a RequestOrigin,
        which: &str,
        operation: &'static str,
    ) -> Result<CardRequest<'a>, ApiError> {
        let reader = reader_name(state, which).await?;
        Ok(CardRequest { state, origin: &origin.0, operation, reader })
    }

    /// A request for `operation` on the reader named `reader` (exact name, resolved by the caller).
    pub(super) fn on(
        state: &'a AppState,
        origin: &'a RequestOrigin,
        reader: String,
        operation: &'static str,
    ) -> CardRequest<'a> {
        CardRequest { state, origin: &origin.0, operation, reader }
    }

    /// Records a request refused before the card was touched, and gives the refusal back.
    pub(super) fn refuse(&self, e: ApiError) -> ApiError {
        self.audit(None, Err(&e));
        e
    }

    /// Checks the request's token for `scope`; a refusal is audited.
    fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<(), ApiError> {
        self.authorize_token(bearer(headers), scope)
    }

    /// Checks `token` for `scope` (a token that came in the request's body rather than its headers).
    pub(super) fn authorize_token(&self, token: Option<&str>, scope: Scope) -> Result<(), ApiError> {
        self.state.tokens.check(token, scope).map(drop).map_err(|e| self.refuse(e.into()))
    }

    /// Runs `job` on the reader's card through the pool and audits the outcome with the card identifier `id`
    /// says where to find.
    pub(super) async fn run<R, F>(&self, id: CardId<R>, job: F) -> Result<R, ApiError>
    where
        F: FnOnce(&mut PooledCard, &dyn SecurityModule) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.run_judged(id, job, |_| Ok(national::OK)).await
    }

    /// [`CardRequest::run`] whose result is judged before the audit line is written, so that the line says what the
    /// client is told: `judge` gives the national code of a success (−2203 for withheld holder data) or the refusal
    /// the client gets (404 `no_photo` for a card without a photo).
    pub(super) async fn run_judged<R, F>(
        &self,
        id: CardId<R>,
        job: F,
        judge: impl FnOnce(&R) -> Result<i32, ApiError>,
    ) -> Result<R, ApiError>
    where
        F: FnOnce(&mut PooledCard, &dyn SecurityModule) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let result = match id {
            CardId::Read => {
                // kept apart from the result, so that a refused operation is audited with its card too
                let seen: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
                let into = seen.clone();
                let result = self
                    .state
                    .pool
                    .run(&self.reader, move |card, sm| {
                        let (id, result) = card.identified(|card| job(card, sm));
                        *into.lock().unwrap_or_else(PoisonError::into_inner) = id;
                        result
                    })
                    .await;
                let id = seen.lock().unwrap_or_else(PoisonError::into_inner).take();
                return self.finish(result, id.map(|id| codec::hex_upper(&id)), judge);
            }
            CardId::From(_) | CardId::None => self.state.pool.run(&self.reader, job).await,
        };
        let id = match (&id, &result) {
            (CardId::From(of), Ok(r)) => of(r),
            _ => None,
        };
        self.finish(result, id, judge)
    }

    /// Awaits a pool operation of its own (the two-step exchanges) and audits it like [`CardRequest::run`].
    pub(super) async fn wait<R>(
        &self,
        operation: impl Future<Output = Result<R, PoolError>>,
        id: fn(&R) -> Option<String>,
    ) -> Result<R, ApiError> {
        let result = operation.await;
        let card_id = result.as_ref().ok().and_then(id);
        self.finish(result, card_id, |_| Ok(national::OK))
    }

    /// The audit line of what the client is told, then the outcome as the API's.
    fn finish<R>(
        &self,
        result: Result<R, PoolError>,
        card_id: Option<String>,
        judge: impl FnOnce(&R) -> Result<i32, ApiError>,
    ) -> Result<R, ApiError> {
        let judged = result.map_err(ApiError::from).and_then(|r| judge(&r).map(|code| (r, code)));
        match &judged {
            Ok((_, code)) => self.audit(card_id.as_deref(), Ok(*code)),
            Err(e) => self.audit(card_id.as_deref(), Err(e)),
        }
        judged.map(|(r, _)| r)
    }

    fn audit(&self, card_id: Option<&str>, outcome: Result<i32, &ApiError>) {
        let (res, error, code) = match outcome {
            Ok(code) => ("ok", None, code),
            Err(e) => ("error", Some(e.kind()), e.national_code()),
        };
        self.state.audit.record(&Entry {
            time: audit::now(),
            origin: self.origin,
            operation: self.operation,
            reader: Some(&self.reader),
            card_id,
            result: res,
            error,
            code,
        });
    }
}

pub(super) fn card_id_of_basic(info: &BasicInfo) -> Option<String> {
    Some(codec::hex_upper(&info.card_id))
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
    // Asked of pcscd (one SCardListReaders, one SCardGetStatusChange that does not wait), not of the reader watcher
    // as the card routes do: `exclusive` must be now's, and pcsc-lite does not wake a waiting SCardGetStatusChange
    // when another application connects exclusively (seen with pcsc-lite 1.9.9: the flag is in the state asked for,
    // a waiter sees it only at the next card event), so the watcher cannot know it.
    let connector = state.connector.clone();
    let states = tokio::task::spawn_blocking(move || connector.readers())
        .await
        .map_err(|_| ApiError::internal("the reader listing task failed"))?
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
    let req = CardRequest::open(&state, &origin, &which, "card-status").await?;
    let (info, atr) = req
        .run(CardId::None, |card, _| {
            let info = card.detect()?;
            let atr = card_core::transport::Transport::atr(card.transport()).to_vec();
            Ok((info, atr))
        })
        .await?;
    Ok(Json(json!({
        "reader": req.reader,
        "present": true,
        "atr": codec::hex_upper(&atr),
        "generation": info.generation.number(),
        "algorithm": info.algorithm.name(),
        "historical_bytes": codec::hex_upper(&info.historical_bytes),
    }))
    .into_response())
}

/// `GET /v1/readers/{index}/basic`: iReadCardBas, with the keys the agent holds — or, in `key-service` mode, a
/// generation 3 card through the key service (Step 1, the service's answer and Step 2 in the card's transaction).
pub async fn basic(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
) -> ApiResult {
    let req = CardRequest::open(&state, &origin, &which, "read-basic").await?;
    let service = state.key_service.clone();
    let info = req
        .run_judged(
            CardId::From(card_id_of_basic),
            move |card, sm| match &service {
                Some(backend) => card.read_basic_via(sm, backend.as_ref()),
                None => card.read_basic(sm),
            },
            |info| Ok(info.national_code()),
        )
        .await?;
    Ok(Json(basic_answer(&state, &info)).into_response())
}

/// Query of `GET …/items`.
#[derive(Deserialize)]
pub struct ItemsQuery {
    address: String,
}

fn parse_address(text: &str) -> Result<Address, ApiError> {
    // the client's own address, quoted back with what is wrong in it
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
    let req = CardRequest::open(&state, &origin, &which, "read-items").await?;
    let values = req.run(CardId::Read, move |card, sm| card.read_items(sm, &address, None)).await?;
    Ok(Json(json!({ "address": q.address, "national": values.to_national() })).into_response())
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
    let req = CardRequest::open(&state, &origin, &which, "write-items").await?;
    req.authorize(&headers, Scope::Write)?;
    let data = b.data;
    let service = state.key_service.clone();
    req.run(CardId::Read, move |card, sm| match &service {
        Some(backend) => card.write_items_via(backend.as_ref(), &address, &data),
        None => card.write_items(sm, &address, &data),
    })
    .await?;
    Ok(Json(json!({ "address": b.address, "written": true })).into_response())
}

/// `GET /v1/readers/{index}/photo`: the holder's photo (JPEG), when the card has one — a generation 3 card's (EF08
/// behind RKSSSE) through the key service in `key-service` mode, as the basic information.
pub async fn photo(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
) -> ApiResult {
    let req = CardRequest::open(&state, &origin, &which, "read-photo").await?;
    let service = state.key_service.clone();
    let data = req
        .run_judged(
            CardId::Read,
            move |card, sm| match &service {
                Some(backend) => card.read_binary_via(sm, backend.as_ref(), "SSSEEF08"),
                None => card.read_binary(sm, "SSSEEF08"),
            },
            |data| {
                jpeg_end(data)
                    .map(|_| national::OK)
                    .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_photo", "the card holds no photo"))
            },
        )
        .await?;
    let end =
        jpeg_end(&data).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_photo", "the card holds no photo"))?;
    let jpeg = data[..end].to_vec();
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], jpeg).into_response())
}

/// Where the JPEG in EF08 ends (after its EOI): a JPEG starts with SOI and ends with EOI; the file is padded after
/// it. `None`: no photo.
fn jpeg_end(data: &[u8]) -> Option<usize> {
    data.starts_with(&[0xFF, 0xD8]).then(|| data.windows(2).rposition(|w| w == [0xFF, 0xD9]).map(|i| i + 2)).flatten()
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
/// with the reload key), `unblock` (new_pin, with the unblock key) — in `key-service` mode the service computes
/// reload's MAC and unblock's secure data and MAC. Token scope `pin`; rate-limited per reader.
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
    let req = CardRequest::open(&state, &origin, &which, operation).await?;
    req.authorize(&headers, Scope::Pin)?;
    if let Err(wait) = state.pin_limit.attempt(&req.reader) {
        return Err(req.refuse(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many PIN operations on this reader; try again in {} s", wait.as_secs().max(1)),
            )
            .code(PIN_RATE_LIMITED)
            .retry_after(wait),
        ));
    }
    match operation {
        "pin-verify" => {
            let pin = need(b.pin, "pin")?;
            req.run(CardId::Read, move |card, _| card.verify_pin(&pin)).await?;
        }
        "pin-change" => {
            let (old, new) = (need(b.old_pin, "old_pin")?, need(b.new_pin, "new_pin")?);
            req.run(CardId::Read, move |card, _| card.change_pin(&old, &new)).await?;
        }
        "pin-reload" => {
            let new = need(b.new_pin, "new_pin")?;
            let service = state.key_service.clone();
            req.run(CardId::Read, move |card, sm| match &service {
                Some(backend) => card.reload_pin_via(backend.as_ref(), &new),
                None => card.reload_pin(sm, &new),
            })
            .await?;
        }
        _ => {
            let new = need(b.new_pin, "new_pin")?;
            let service = state.key_service.clone();
            req.run(CardId::Read, move |card, sm| match &service {
                Some(backend) => card.unblock_pin_via(backend.as_ref(), &new),
                None => card.unblock_pin(sm, &new),
            })
            .await?;
        }
    }
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

pub(super) fn no_card_id<R>(_: &R) -> Option<String> {
    None
}

/// `POST /v1/readers/{index}/basic/step1`: iReadCardBas_HSM_Step1; the card stays reserved for step 2.
pub async fn read_step1(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
) -> ApiResult {
    let req = CardRequest::open(&state, &origin, &which, "read-basic-step1").await?;
    let t = req.wait(state.pool.read_step1(&req.reader), no_card_id).await?;
    Ok(ticket(&state, t))
}

/// `POST /v1/readers/{index}/basic/step2`: iReadCardBas_HSM_Step2 with the back end's answer.
pub async fn read_step2(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: Step2Body = parse(body)?;
    let req = CardRequest::open(&state, &origin, &which, "read-basic-step2").await?;
    let info = req.wait(state.pool.read_step2(&req.reader, &b.session, b.answer), card_id_of_basic).await?;
    Ok(Json(basic_answer(&state, &info)).into_response())
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
    let req = CardRequest::open(&state, &origin, &which, "write-items-step1").await?;
    req.authorize(&headers, Scope::Write)?;
    let t = req.wait(state.pool.write_step1(&req.reader, address, b.data), no_card_id).await?;
    Ok(ticket(&state, t))
}

/// `POST /v1/readers/{index}/items/step2`: finishes a two-step write with the back end's answer.
pub async fn write_step2(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    Path(which): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: Step2Body = parse(body)?;
    let req = CardRequest::open(&state, &origin, &which, "write-items-step2").await?;
    req.wait(state.pool.write_step2(&req.reader, &b.session, b.answer), no_card_id).await?;
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
