//! `GET /v1/national`: the national terminal interface's function table (CARD-PROFILE §7) over a WebSocket, for
//! web counter pages written against vendor agents. The upgrade passes the same Host and Origin checks as every
//! `/v1` route ([`super::web`]); writes need the same operation token as `POST /v1/readers/{index}/items`.
//!
//! Each text message is one call, answered by one text message, in order:
//!
//! ```json
//! {"id": 7, "function": "iReadCardBas", "iType": 3}
//! {"id": 7, "function": "iReadCardBas", "code": 0, "pOutInfo": "371700|…|SIM-READER-01|"}
//! ```
//!
//! - `iReadCardBas` (`iType`), `iReadCard` (`iType`, `iAuthType`, `pCardInfo`, `pFileAddr`), `iWriteCard` (`iType`,
//!   `pCardInfo`, `pFileAddr`, `pWriteData`, `token`), `iReadCardBas_HSM_Step1` (`iType`) and
//!   `iReadCardBas_HSM_Step2` (`pKey`), `iReadCard_HSM_Step1/2` and `iWriteCard_HSM_Step1/2` (one DF, one key; the
//!   external cryptogram in `pKey`), `iVerifyPin` / `iChangePin` (the PINs as parameters, scope `pin`); the
//!   semantics of `libsscard`: the parameters are checked before the card
//!   is touched (−14, or the code of what is wrong in them), `pCardInfo` against the card's, −2203 with the
//!   holder fields empty for a generation 3 card the agent cannot read, −2201 for a key an agent without keys
//!   would need (callers switch to the `_HSM_` functions), a card error as `card_core::national::code` gives it.
//! - `iType` 1 contact, 2 contactless, 3 contact first, 4 contactless first, with the readers of the `[readers]`
//!   configuration ([`Roles`]); a reader is passed over for the next one only when it has no card or is not there.
//! - Between a `…_HSM_Step1` and its `…_Step2` the card is held by the reader pool (the challenge survives);
//!   the session belongs to the socket: a new Step1 on it, or the socket closing, gives the pending one up and
//!   releases the card at once.
//! - The answer echoes the call's `id` (any JSON value) and `function`; `message` says what a non-zero code
//!   means. An unknown function, and the PIN and other functions the agent does not offer here, answer −13;
//!   a message that is not a JSON object, or a missing or mistyped parameter, −14; a message over
//!   [`MAX_MESSAGE`] bytes closes the socket with 1009 (message too big).

use std::error::Error as _;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use card_core::card::{Address, BasicInfo, ItemValues};
use card_core::national as codes;
use card_core::transport::{ReaderSelector, TransportError};
use serde_json::{Map, Value};

use super::api::{card_id_of_basic, no_card_id, ApiError, CardId, CardRequest};
use super::config::{Config, KeyMode};
use super::readers::ReaderPool;
use super::token::Scope;
use super::web::RequestOrigin;
use super::AppState;

/// The largest call accepted (bytes of one WebSocket message): `iWriteCard`'s published `pWriteData` (20 KiB of
/// GBK) as JSON text, with room for escapes.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// WebSocket close code 1009: message too big (RFC 6455 §7.4.1).
const CLOSE_TOO_BIG: u16 = 1009;

/// The functions of CARD-PROFILE §7 offered over the socket.
const OFFERED: &[&str] = &[
    "iReadCardBas",
    "iReadCard",
    "iWriteCard",
    "iReadCardBas_HSM_Step1",
    "iReadCardBas_HSM_Step2",
    "iReadCard_HSM_Step1",
    "iReadCard_HSM_Step2",
    "iWriteCard_HSM_Step1",
    "iWriteCard_HSM_Step2",
    "iVerifyPin",
    "iChangePin",
];

/// The functions of CARD-PROFILE §7 the agent does not offer over this socket: −13, like an unknown function, but
/// said so. The PIN functions that ask the holder themselves (`iVerifyPIN`, `iChangePIN`, `iReloadPIN`,
/// `iUnblockPIN` and their steps) need a PIN entry on the agent's machine, which a service has not: a page asks
/// the PIN and calls `iVerifyPin` / `iChangePin`, or `POST /v1/readers/{index}/pin/{op}`. The debit functions
/// are out of the profile.
const NOT_OFFERED: &[&str] = &[
    "iVerifyPIN",
    "iChangePIN",
    "iReloadPIN",
    "iUnblockPIN",
    "iReloadPIN_HSM_Step1",
    "iReloadPIN_HSM_Step2",
    "iReloadPIN_HSM_Step3",
    "iUnblockPIN_HSM_Step1",
    "iUnblockPIN_HSM_Step2",
    "iUnblockPIN_HSM_Step3",
    "iDoDebit",
    "iDoDebit_HSM_Step1",
    "iDoDebit_HSM_Step2",
    "iReadDebitRecord",
];

/// Which reader answers which `iType`, and whether the agent has any key source of its own.
#[derive(Clone, Debug)]
pub struct Roles {
    /// The contact reader (`iType` 1; 3 and 4 automatic).
    pub contact: ReaderSelector,
    /// The contactless reader (`iType` 2); none: −13.
    pub contactless: Option<ReaderSelector>,
    /// The agent holds no keys (`two-step` or `key-service`): a key other than RKSSSE that an operation needs is
    /// −2201 (no PSAM), as in `libsscard` with `keys.mode = "none"`; with local keys that lack it, −24.
    pub no_keys: bool,
}

impl Roles {
    /// The roles of `config`: `[readers] contact` (default: the preferred `reader`, else the first reader) and
    /// `contactless` (default: none).
    pub fn from_config(config: &Config) -> Roles {
        let selector = |s: &str| s.parse().unwrap_or(ReaderSelector::Index(0));
        let contact =
            config.contact_reader.as_deref().or(config.reader.as_deref()).map_or(ReaderSelector::Index(0), selector);
        Roles {
            contact,
            contactless: config.contactless_reader.as_deref().map(selector),
            no_keys: !matches!(config.keys, KeyMode::Local { .. }),
        }
    }

    /// The readers an `iType` tries, in order: 1 contact, 2 contactless (−13 when none is configured), 3 contact
    /// then contactless, 4 contactless then contact; anything else −14.
    pub fn order(&self, itype: i64) -> Result<Vec<ReaderSelector>, (i32, &'static str)> {
        let contact = Some(self.contact.clone());
        let contactless = self.contactless.clone();
        Ok(match itype {
            1 => vec![self.contact.clone()],
            2 => vec![contactless.ok_or((codes::UNSUPPORTED, "no contactless reader is configured"))?],
            3 => [contact, contactless].into_iter().flatten().collect(),
            4 => [contactless, contact].into_iter().flatten().collect(),
            _ => return Err((codes::BAD_PARAMETER, "iType must be 1, 2, 3 or 4")),
        })
    }
}

/// A call that did not succeed: its national code and what the page is told.
#[derive(Debug)]
struct Refusal {
    code: i32,
    message: String,
}

impl Refusal {
    fn new(code: i32, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> Refusal {
        Refusal::new(codes::BAD_PARAMETER, message)
    }

    /// A parameter card-core refused (the address, the data, the card information): its code, and the caller's
    /// own text quoted back with what is wrong in it.
    fn parameter(what: &str, e: &card_core::Error) -> Refusal {
        Refusal::new(codes::code(e), format!("{what}: {e}"))
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        let code = e.national_code();
        let message = match (code, e.kind()) {
            (codes::NO_PSAM, _) => "the agent holds no keys: use the _HSM_ functions".to_owned(),
            (_, "key_not_held") => {
                "the agent does not hold the key this call needs: use the _HSM_ functions".to_owned()
            }
            _ => e.message().to_owned(),
        };
        Refusal { code, message }
    }
}

/// A successful call: its code (0, or −2203 for withheld holder data) and `pOutInfo`.
struct Done {
    code: i32,
    out: String,
}

/// `GET /v1/national`: the WebSocket of national function calls.
pub async fn upgrade(
    State(state): State<AppState>,
    Extension(origin): Extension<RequestOrigin>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return super::not_websocket(e),
    };
    ws.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE).on_upgrade(move |socket| serve(socket, state, origin))
}

/// One socket: its calls, one at a time, in order.
async fn serve(mut socket: WebSocket, state: AppState, origin: RequestOrigin) {
    let mut calls = Calls { state, origin, pending: None };
    while let Some(incoming) = socket.recv().await {
        let answer = match incoming {
            Ok(Message::Text(text)) => calls.call(text.as_str()).await,
            Ok(Message::Binary(_)) => answer(None, None, Err(Refusal::bad("a call is a JSON text message"))),
            Ok(Message::Close(_)) => break,
            Ok(_) => continue, // pings are answered by axum
            Err(e) => {
                let too_big = e
                    .source()
                    .and_then(|s| s.downcast_ref::<tungstenite::Error>())
                    .is_some_and(|t| matches!(t, tungstenite::Error::Capacity(_)));
                if too_big {
                    let reason = format!("a call is at most {MAX_MESSAGE} bytes");
                    let frame = CloseFrame { code: CLOSE_TOO_BIG, reason: reason.into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                }
                tracing::debug!(error = %e, "national socket ended");
                break;
            }
        };
        if socket.send(Message::Text(answer.to_string().into())).await.is_err() {
            break;
        }
    }
    // `calls` is dropped here: a pending two-step read is given up and its card released
}

/// A call's operation token (`token`: a string, or absent / null).
fn token(p: &Params) -> Result<Option<String>, Refusal> {
    match p.0.get("token") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Ok(Some(t.clone())),
        Some(_) => Err(Refusal::bad("token must be a string")),
    }
}

/// The answer message.
fn answer(id: Option<Value>, function: Option<&str>, result: Result<Done, Refusal>) -> Value {
    let mut out = Map::new();
    if let Some(id) = id {
        out.insert("id".into(), id);
    }
    if let Some(f) = function {
        out.insert("function".into(), Value::String(f.to_owned()));
    }
    let (code, text, message) = match result {
        Ok(Done { code, out }) => (code, out, (code != codes::OK).then(|| codes::message(code).to_owned())),
        Err(Refusal { code, message }) => (code, String::new(), Some(format!("{}: {message}", codes::message(code)))),
    };
    out.insert("code".into(), Value::from(code));
    out.insert("pOutInfo".into(), Value::String(text));
    if let Some(m) = message {
        out.insert("message".into(), Value::String(m));
    }
    Value::Object(out)
}

/// A two-step exchange waiting for its Step 2 on this socket; given up when dropped.
struct Pending {
    pool: ReaderPool,
    reader: String,
    session: String,
    /// The Step 2 function that answers it.
    step2: &'static str,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // a no-op once Step 2 has taken the session
        self.pool.abandon(&self.session);
    }
}

/// The state of one socket.
struct Calls {
    state: AppState,
    origin: RequestOrigin,
    pending: Option<Pending>,
}

/// The parameters of a call.
struct Params(Map<String, Value>);

impl Params {
    fn get(&self, name: &str) -> Result<&Value, Refusal> {
        self.0.get(name).ok_or_else(|| Refusal::bad(format!("{name} is missing")))
    }

    fn int(&self, name: &str) -> Result<i64, Refusal> {
        self.get(name)?.as_i64().ok_or_else(|| Refusal::bad(format!("{name} must be an integer")))
    }

    fn text(&self, name: &str) -> Result<String, Refusal> {
        match self.get(name)? {
            Value::String(s) => Ok(s.clone()),
            _ => Err(Refusal::bad(format!("{name} must be a string"))),
        }
    }
}

impl Calls {
    /// One call: the answer message.
    async fn call(&mut self, text: &str) -> Value {
        let map = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return answer(None, None, Err(Refusal::bad("a call is a JSON object"))),
            Err(e) => {
                let at = format!("not valid JSON at line {} column {}", e.line(), e.column());
                return answer(None, None, Err(Refusal::bad(at)));
            }
        };
        let mut params = Params(map);
        let id = params.0.remove("id");
        let function = match params.0.remove("function") {
            Some(Value::String(f)) => f,
            Some(_) => return answer(id, None, Err(Refusal::bad("function must be a string"))),
            None => return answer(id, None, Err(Refusal::bad("function is missing"))),
        };
        let result = match function.as_str() {
            "iReadCardBas" => self.read_basic(&params).await,
            "iReadCard" => self.read_card(&params).await,
            "iWriteCard" => self.write_card(&params).await,
            "iReadCardBas_HSM_Step1" => self.read_step1(&params).await,
            "iReadCardBas_HSM_Step2" => self.read_step2(&params).await,
            "iReadCard_HSM_Step1" => self.items_step1(&params, false).await,
            "iReadCard_HSM_Step2" => self.read_items_step2(&params).await,
            "iWriteCard_HSM_Step1" => self.items_step1(&params, true).await,
            "iWriteCard_HSM_Step2" => self.write_items_step2(&params).await,
            "iVerifyPin" | "iChangePin" => self.pin(&params, function == "iChangePin").await,
            f if NOT_OFFERED.contains(&f) => {
                Err(Refusal::new(codes::UNSUPPORTED, "this function is not offered over the agent's socket"))
            }
            _ => Err(Refusal::new(codes::UNSUPPORTED, "unknown function")),
        };
        // the function's name is echoed only when it is one of the table's (a page's text is not sent back)
        let known = OFFERED.contains(&function.as_str()) || NOT_OFFERED.contains(&function.as_str());
        answer(id, known.then_some(function.as_str()), result)
    }

    /// The reader an `iType` designates now: the first of its order that holds a card, else the last of its
    /// order (whose error is then the call's).
    ///
    /// Looked up in what the reader watcher last saw (no pcscd round trip) when it knows every reader of the order;
    /// else asked of the connector (pcscd).
    async fn reader(&self, itype: i64) -> Result<String, Refusal> {
        let order = self.state.roles.order(itype).map_err(|(code, what)| Refusal::new(code, what))?;
        let watched = self.state.events.presence().with_readers(|readers| {
            let (last, before) = order.split_last()?;
            for selector in before {
                let r = super::api::watched(readers, selector)?;
                if r.card_present {
                    return Some(r.reader.clone());
                }
            }
            super::api::watched(readers, last).map(|r| r.reader.clone())
        });
        if let Some(Some(name)) = watched {
            return Ok(name);
        }
        let connector = self.state.connector.clone();
        let found = tokio::task::spawn_blocking(move || {
            let (last, before) = order.split_last().ok_or(TransportError::NoReaders)?;
            if !before.is_empty() {
                let states = connector.readers()?;
                for selector in before {
                    if let Ok(name) = connector.resolve(selector) {
                        if states.iter().any(|r| r.name == name && r.card_present) {
                            return Ok(name);
                        }
                    }
                }
            }
            connector.resolve(last)
        })
        .await
        .map_err(|_| Refusal::from(ApiError::internal("the reader lookup task failed")))?;
        found.map_err(|e| Refusal::from(ApiError::from(card_core::Error::from(e))))
    }

    fn request(&self, reader: String, operation: &'static str) -> CardRequest<'_> {
        CardRequest::on(&self.state, &self.origin, reader, operation)
    }

    /// `iReadCardBas(iType)`: the 11 fields, and 0 or −2203 (holder fields withheld).
    async fn read_basic(&self, p: &Params) -> Result<Done, Refusal> {
        let itype = p.int("iType")?;
        let req = self.request(self.reader(itype).await?, "read-basic");
        let service = self.state.key_service.clone();
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
        Ok(self.basic(&info))
    }

    fn basic(&self, info: &BasicInfo) -> Done {
        Done { code: info.national_code(), out: info.national(&self.state.terminal).as_str().to_owned() }
    }

    /// A card error as the page sees it (see [`Roles::no_keys`]).
    fn keys_failure(no_keys: bool, e: card_core::Error) -> card_core::Error {
        match &e {
            card_core::Error::MissingKey { key } if no_keys && key != "RKSSSE" => {
                card_core::Error::National(codes::NO_PSAM)
            }
            _ => e,
        }
    }

    /// `iReadCard(iType, iAuthType, pCardInfo, pFileAddr)`: the values mirroring `pFileAddr`.
    async fn read_card(&self, p: &Params) -> Result<Done, Refusal> {
        let itype = p.int("iType")?;
        // the published signature has it; the agent, like libsscard, reads with the keys it has
        p.int("iAuthType")?;
        let card_info = p.text("pCardInfo")?;
        let address: Address = p.text("pFileAddr")?.parse().map_err(|e| Refusal::parameter("pFileAddr", &e))?;
        codes::check_card_info_shape(&card_info).map_err(|e| Refusal::parameter("pCardInfo", &e))?;
        let req = self.request(self.reader(itype).await?, "read-items");
        let no_keys = self.state.roles.no_keys;
        let values = req
            .run(CardId::Read, move |card, sm| {
                let read = |card: &mut super::readers::PooledCard| {
                    card.read_basic(sm)?.check_card_info(&card_info)?;
                    card.read_items(sm, &address, None)
                };
                read(card).map_err(|e| Calls::keys_failure(no_keys, e))
            })
            .await?;
        Ok(Done { code: codes::OK, out: values.to_national() })
    }

    /// `iWriteCard(iType, pCardInfo, pFileAddr, pWriteData)` with the operation token (scope `write`): nothing is
    /// written unless every value is valid; `pOutInfo` is empty.
    async fn write_card(&self, p: &Params) -> Result<Done, Refusal> {
        let itype = p.int("iType")?;
        let card_info = p.text("pCardInfo")?;
        let address: Address = p.text("pFileAddr")?.parse().map_err(|e| Refusal::parameter("pFileAddr", &e))?;
        let data = p.text("pWriteData")?;
        ItemValues::parse(&address, &data).map_err(|e| Refusal::parameter("pWriteData", &e))?;
        codes::check_card_info_shape(&card_info).map_err(|e| Refusal::parameter("pCardInfo", &e))?;
        let req = self.request(self.reader(itype).await?, "write-items");
        req.authorize_token(token(p)?.as_deref(), Scope::Write)?;
        let service = self.state.key_service.clone();
        let no_keys = self.state.roles.no_keys;
        req.run(CardId::Read, move |card, sm| {
            let write = |card: &mut super::readers::PooledCard| {
                card.read_basic(sm)?.check_card_info(&card_info)?;
                match &service {
                    Some(backend) => card.write_items_via(backend.as_ref(), &address, &data),
                    None => card.write_items(sm, &address, &data),
                }
            };
            write(card).map_err(|e| Calls::keys_failure(no_keys, e))
        })
        .await?;
        Ok(Done { code: codes::OK, out: String::new() })
    }

    /// `iReadCardBas_HSM_Step1(iType)`: `region|hist|algorithm|card id|R1|R2|R3|R4|`; the card is held for Step 2
    /// on this socket (a pending Step 1 of this socket is given up first).
    async fn read_step1(&mut self, p: &Params) -> Result<Done, Refusal> {
        let itype = p.int("iType")?;
        self.pending = None;
        let reader = self.reader(itype).await?;
        let req = self.request(reader.clone(), "read-basic-step1");
        let ticket = req.wait(self.state.pool.read_step1(&reader), no_card_id).await?;
        let pool = self.state.pool.clone();
        self.pending = Some(Pending { pool, reader, session: ticket.session, step2: "iReadCardBas_HSM_Step2" });
        Ok(Done { code: codes::OK, out: ticket.step1 })
    }

    /// This socket's pending exchange, if Step 2 is `function`; −14 otherwise (a pending exchange of another
    /// function stays pending).
    fn take_pending(&mut self, function: &'static str) -> Result<Pending, Refusal> {
        match self.pending.take() {
            Some(p) if p.step2 == function => Ok(p),
            other => {
                self.pending = other;
                Err(Refusal::bad(format!("no Step1 is waiting for {function} on this socket")))
            }
        }
    }

    /// `iReadCard_HSM_Step1(iType, pCardInfo, pFileAddr)` (`write` false) or `iWriteCard_HSM_Step1(iType,
    /// pCardInfo, pFileAddr)`: the Step 1 string for the back end, which computes the EXTERNAL AUTHENTICATE
    /// cryptogram of the files' read or update key; the card is held for Step 2 on this socket. A read of items
    /// every card gives freely: −2204. A write needs the operation token (scope `write`).
    async fn items_step1(&mut self, p: &Params, write: bool) -> Result<Done, Refusal> {
        let itype = p.int("iType")?;
        let card_info = p.text("pCardInfo")?;
        let address: Address = p.text("pFileAddr")?.parse().map_err(|e| Refusal::parameter("pFileAddr", &e))?;
        codes::check_card_info_shape(&card_info).map_err(|e| Refusal::parameter("pCardInfo", &e))?;
        self.pending = None;
        let reader = self.reader(itype).await?;
        let pool = self.state.pool.clone();
        let (ticket, step2) = if write {
            let req = self.request(reader.clone(), "write-items-step1");
            req.authorize_token(token(p)?.as_deref(), Scope::Write)?;
            (req.wait(pool.write_items_step1(&reader, card_info, address), no_card_id).await?, "iWriteCard_HSM_Step2")
        } else {
            let req = self.request(reader.clone(), "read-items-step1");
            (req.wait(pool.read_items_step1(&reader, card_info, address), no_card_id).await?, "iReadCard_HSM_Step2")
        };
        self.pending = Some(Pending { pool, reader, session: ticket.session, step2 });
        Ok(Done { code: codes::OK, out: ticket.step1 })
    }

    /// `iReadCard_HSM_Step2(pKey)`: the external cryptogram (`C` or `C‖R4`); the values mirroring Step 1's address.
    async fn read_items_step2(&mut self, p: &Params) -> Result<Done, Refusal> {
        let key = p.text("pKey")?;
        let pending = self.take_pending("iReadCard_HSM_Step2")?;
        let req = self.request(pending.reader.clone(), "read-items-step2");
        let values =
            req.wait(self.state.pool.read_items_step2(&pending.reader, &pending.session, key), no_card_id).await?;
        Ok(Done { code: codes::OK, out: values.to_national() })
    }

    /// `iWriteCard_HSM_Step2(pKey, pWriteData)`: the data, checked before the cryptogram is sent, then written.
    async fn write_items_step2(&mut self, p: &Params) -> Result<Done, Refusal> {
        let key = p.text("pKey")?;
        let data = p.text("pWriteData")?;
        let pending = self.take_pending("iWriteCard_HSM_Step2")?;
        let req = self.request(pending.reader.clone(), "write-items-step2");
        let write = self.state.pool.write_items_step2(&pending.reader, &pending.session, key, data);
        req.wait(write, no_card_id).await?;
        Ok(Done { code: codes::OK, out: String::new() })
    }

    /// `iVerifyPin(iType, pPin)` or `iChangePin(iType, pOldPin, pNewPin)` (the vendor variants with the PINs as
    /// parameters), with the operation token (scope `pin`) and the reader's PIN rate limit, as
    /// `POST /v1/readers/{index}/pin/{op}`. −51 a wrong PIN, −52 blocked. The PINs are never logged.
    async fn pin(&self, p: &Params, change: bool) -> Result<Done, Refusal> {
        let itype = p.int("iType")?;
        let secret = |name: &str| p.text(name).map(secrecy::SecretString::from);
        let (pin, new) = if change { (secret("pOldPin")?, Some(secret("pNewPin")?)) } else { (secret("pPin")?, None) };
        let reader = self.reader(itype).await?;
        let req = self.request(reader, if change { "pin-change" } else { "pin-verify" });
        req.authorize_token(token(p)?.as_deref(), Scope::Pin)?;
        if let Err(wait) = self.state.pin_limit.attempt(&req.reader) {
            let message = format!("too many PIN operations on this reader; try again in {} s", wait.as_secs().max(1));
            return Err(Refusal::new(super::api::PIN_RATE_LIMITED, message));
        }
        req.run(CardId::Read, move |card, _| match &new {
            Some(new) => card.change_pin(&pin, new),
            None => card.verify_pin(&pin),
        })
        .await?;
        Ok(Done { code: codes::OK, out: String::new() })
    }

    /// `iReadCardBas_HSM_Step2(pKey)`: the back end's answer to this socket's Step 1; the 11 fields. No Step 1
    /// pending: −14; one that expired (the card was released): −4.
    async fn read_step2(&mut self, p: &Params) -> Result<Done, Refusal> {
        let key = p.text("pKey")?;
        let pending = self.take_pending("iReadCardBas_HSM_Step2")?;
        let req = self.request(pending.reader.clone(), "read-basic-step2");
        let info =
            req.wait(self.state.pool.read_step2(&pending.reader, &pending.session, key), card_id_of_basic).await?;
        Ok(self.basic(&info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(contactless: Option<&str>) -> Roles {
        Roles {
            contact: ReaderSelector::Name("A".into()),
            contactless: contactless.map(|c| ReaderSelector::Name(c.into())),
            no_keys: true,
        }
    }

    #[test]
    fn itype_orders_follow_the_library() {
        let names = |v: Vec<ReaderSelector>| v.into_iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let one = roles(None);
        for itype in [1, 3, 4] {
            assert_eq!(names(one.order(itype).unwrap()), ["A"], "iType {itype}");
        }
        assert_eq!(one.order(2).unwrap_err().0, codes::UNSUPPORTED);
        for bad in [0, 5, -1, i64::MAX] {
            assert_eq!(one.order(bad).unwrap_err().0, codes::BAD_PARAMETER, "iType {bad}");
        }
        let both = roles(Some("B"));
        assert_eq!(names(both.order(2).unwrap()), ["B"]);
        assert_eq!(names(both.order(3).unwrap()), ["A", "B"]);
        assert_eq!(names(both.order(4).unwrap()), ["B", "A"]);
    }

    #[test]
    fn roles_default_to_the_preferred_then_the_first_reader() {
        let mut c = Config::default();
        let r = Roles::from_config(&c);
        assert_eq!((r.contact, r.contactless, r.no_keys), (ReaderSelector::Index(0), None, true));
        c.reader = Some("Virtual PCD".into());
        assert_eq!(Roles::from_config(&c).contact, ReaderSelector::Name("Virtual PCD".into()));
        c.contact_reader = Some("2".into());
        c.contactless_reader = Some("Virtual PCD 00 01".into());
        c.keys = KeyMode::Local { keystore: None, passphrase_file: None, key_file: None, region: "371700".into() };
        let r = Roles::from_config(&c);
        assert_eq!(r.contact, ReaderSelector::Index(2));
        assert_eq!(r.contactless, Some(ReaderSelector::Name("Virtual PCD 00 01".into())));
        assert!(!r.no_keys);
    }

    #[test]
    fn answers_echo_the_id_and_say_what_a_code_means() {
        let ok = answer(Some(Value::from(7)), Some("iReadCardBas"), Ok(Done { code: 0, out: "a|".into() }));
        assert_eq!(ok, serde_json::json!({"id": 7, "function": "iReadCardBas", "code": 0, "pOutInfo": "a|"}));
        let withheld = answer(None, Some("iReadCardBas"), Ok(Done { code: -2203, out: "b|".into() }));
        assert_eq!(withheld["message"], codes::message(-2203));
        let refused = answer(Some(Value::from("x")), None, Err(Refusal::new(-13, "unknown function")));
        assert_eq!(refused["code"], -13);
        assert_eq!(refused["pOutInfo"], "");
        assert_eq!(refused["id"], "x");
        assert!(refused["message"].as_str().unwrap().ends_with("unknown function"));
        assert!(refused.get("function").is_none());
    }
}
