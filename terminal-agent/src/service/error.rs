//! The API's errors, in one place: every failure becomes `{"error": kind, "code": national code, "message": …}`
//! with an HTTP status (the axum `error-handling` pattern).
//!
//! The message says what went wrong in the client's terms and is stable for each kind of failure: it never
//! carries the internal detail of card-core's or the pool's error (reader internals, status words, key
//! names, profile details). That detail goes to the agent's log (`tracing`, stderr), where no secret can be
//! either: card-core's and the pool's errors carry no PIN, key or token by construction.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use card_core::transport::TransportError;
use card_core::{national, Error};
use serde_json::json;

use super::readers::PoolError;
use super::token::TokenError;

/// An API error: HTTP status, a stable kind, the national code and a message (never a secret in it).
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) code: i32,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with the national code `-14` (bad parameter) unless set otherwise.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, code: national::BAD_PARAMETER, message: message.into(), retry_after: None }
    }

    /// With another national code.
    pub(crate) fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }

    /// With a `Retry-After` header.
    pub(crate) fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The agent itself failed (a task did not finish): nothing the client can change.
    pub(crate) fn internal(what: &str) -> Self {
        tracing::error!(what, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error of the agent")
    }

    /// The national code.
    pub fn national_code(&self) -> i32 {
        self.code
    }

    /// The stable kind (`no_card`, `pin_refused`, …).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
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

/// Status, kind and message of a card-core error.
fn describe(e: &Error) -> (StatusCode, &'static str, String) {
    use StatusCode as S;
    let fixed = |status, kind, message: &str| (status, kind, message.to_owned());
    match e {
        Error::Transport(t) => match t {
            TransportError::NoCard(_) => fixed(S::CONFLICT, "no_card", "no card in the reader"),
            TransportError::CardRemoved => fixed(S::CONFLICT, "no_card", "the card was removed during the operation"),
            TransportError::CardReset => {
                fixed(S::CONFLICT, "no_card", "the card was reset by another application; try again")
            }
            TransportError::NoReader(_) | TransportError::NoReaders => {
                fixed(S::NOT_FOUND, "no_reader", "no such reader")
            }
            TransportError::NoService => {
                fixed(S::SERVICE_UNAVAILABLE, "reader_unavailable", "the PC/SC service is not available")
            }
            TransportError::ReaderBusy => fixed(
                S::SERVICE_UNAVAILABLE,
                "reader_unavailable",
                "the card is in exclusive use by another application",
            ),
            TransportError::CardUnresponsive => fixed(S::BAD_GATEWAY, "reader_error", "the card does not respond"),
            TransportError::Timeout => fixed(S::BAD_GATEWAY, "reader_error", "the card did not answer in time"),
            // the connection was abandoned: the next request connects anew
            TransportError::NoAnswer { .. } => fixed(
                S::GATEWAY_TIMEOUT,
                "card_timeout",
                "the card does not respond; remove it and insert a working card",
            ),
            _ => fixed(S::BAD_GATEWAY, "reader_error", "the reader failed to reach the card"),
        },
        // the tries left are the client's business: the clerk tells the holder
        Error::WrongPin { tries_left } => {
            (S::UNPROCESSABLE_ENTITY, "pin_refused", format!("wrong PIN, {tries_left} tries left"))
        }
        Error::PinBlocked => fixed(S::UNPROCESSABLE_ENTITY, "pin_refused", "the PIN is blocked"),
        Error::Blocked(_) => fixed(S::UNPROCESSABLE_ENTITY, "card_refused", "the application on the card is blocked"),
        Error::AuthFailed { .. } => {
            fixed(S::UNPROCESSABLE_ENTITY, "card_refused", "the card refused the agent's authentication")
        }
        Error::Card(_) | Error::National(_) => {
            fixed(S::UNPROCESSABLE_ENTITY, "card_refused", "the card refused the operation (see the code)")
        }
        Error::MissingKey { .. } => fixed(
            S::CONFLICT,
            "key_not_held",
            "the agent does not hold the key this operation needs; use the two-step routes",
        ),
        Error::Apdu(_) | Error::Codec(_) | Error::BadParameter(_) => fixed(
            S::BAD_REQUEST,
            "bad_request",
            "the address or the data does not fit the card (items, lengths or characters)",
        ),
        Error::KeyService { reached: false, .. } => fixed(
            S::SERVICE_UNAVAILABLE,
            "key_service_unreachable",
            "the key service cannot be reached; tell the help desk the code",
        ),
        Error::KeyService { .. } => fixed(
            S::BAD_GATEWAY,
            "key_service_refused",
            "the key service refused the request for this card or terminal; tell the help desk the code",
        ),
        Error::CardData(_) => fixed(S::BAD_GATEWAY, "card_error", "the card's data is malformed"),
        Error::UnknownCard(_) => fixed(S::BAD_GATEWAY, "card_error", "not a supported social security card"),
        Error::InternalAuthFailed => {
            fixed(S::BAD_GATEWAY, "card_error", "the card failed the check that it is genuine")
        }
        Error::CardMismatch => fixed(S::BAD_GATEWAY, "card_error", "the card in the reader is not the expected card"),
        _ => fixed(S::BAD_GATEWAY, "card_error", "the card's answer could not be understood"),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind, message) = describe(&e);
        // the detail for the operator; card-core's errors hold no PIN, key or token
        tracing::warn!(kind, error = %e, "card operation failed");
        ApiError { status, kind, code: national::code(&e), message, retry_after: None }
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        let e = match e {
            PoolError::Card(card) => return card.into(),
            other => other,
        };
        let code = e.national_code();
        let (status, kind, message) = match &e {
            PoolError::Busy { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "busy", "the reader is busy with other requests; try again shortly")
            }
            PoolError::NoSession { .. } => {
                (StatusCode::NOT_FOUND, "no_session", "no two-step session with this id is waiting on this reader")
            }
            PoolError::SessionExpired { .. } => {
                (StatusCode::GONE, "session_expired", "the two-step session expired; start again with step 1")
            }
            PoolError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the agent is shutting down"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error of the agent"),
        };
        tracing::warn!(kind, error = %e, "card request failed");
        let error = ApiError::new(status, kind, message).code(code);
        match e {
            PoolError::Busy { .. } => error.retry_after(Duration::from_secs(1)),
            _ => error,
        }
    }
}

impl From<TokenError> for ApiError {
    /// Token refusals name the rule the token broke (their messages are fixed and never quote the token).
    fn from(e: TokenError) -> Self {
        let status = match e {
            TokenError::Missing | TokenError::Malformed | TokenError::BadSignature | TokenError::Expired => {
                StatusCode::UNAUTHORIZED
            }
            TokenError::Unrecorded => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, "token_refused", e.to_string()).code(national::KEY_LEVEL)
    }
}

#[cfg(test)]
mod tests {
    use card_core::apdu::StatusWord;

    use super::*;

    /// Messages are fixed per kind: nothing of the error's own text reaches the client.
    #[test]
    fn messages_do_not_echo_internal_detail() {
        let cases: Vec<Error> = vec![
            Error::Transport(TransportError::NoReader("Secret Reader Name 42".into())),
            Error::Transport(TransportError::NoCard("Secret Reader Name 42".into())),
            Error::Transport(TransportError::Io(std::io::Error::other("socket /run/secret-path"))),
            Error::Card(StatusWord::SECURITY_NOT_SATISFIED),
            Error::MissingKey { key: "RKSSSE-secret-name".into() },
            Error::BadParameter("profile detail secret-path".into()),
            Error::UnknownCard("ATR detail secret-path".into()),
        ];
        for e in cases {
            let internal = e.to_string();
            let api = ApiError::from(e);
            for word in ["Secret", "secret", "6982", "RKSSSE"] {
                assert!(!api.message.contains(word), "{internal} → {}", api.message);
            }
        }
        let pin = ApiError::from(Error::WrongPin { tries_left: 2 });
        assert_eq!((pin.status, pin.kind, pin.code), (StatusCode::UNPROCESSABLE_ENTITY, "pin_refused", -51));
        assert_eq!(pin.message, "wrong PIN, 2 tries left");
        let busy = ApiError::from(PoolError::Busy { reader: "Secret Reader".into(), waited: Duration::from_secs(3) });
        assert_eq!((busy.status, busy.kind), (StatusCode::SERVICE_UNAVAILABLE, "busy"));
        assert!(busy.retry_after.is_some() && !busy.message.contains("Secret"));
        let mute = ApiError::from(Error::Transport(TransportError::NoAnswer { waited: Duration::from_secs(10) }));
        assert_eq!((mute.status, mute.kind, mute.code), (StatusCode::GATEWAY_TIMEOUT, "card_timeout", -4));
        let name = ApiError::from(Error::CardData(card_core::codec::CodecError::MalformedGbk { position: 0 }));
        assert_eq!((name.status, name.kind, name.code), (StatusCode::BAD_GATEWAY, "card_error", -23));
        let gone = ApiError::from(PoolError::Card(Error::Transport(TransportError::CardRemoved)));
        assert_eq!((gone.status, gone.kind, gone.code), (StatusCode::CONFLICT, "no_card", -2));
    }
}
