//! Operation tokens: writes and PIN operations need a short-lived token signed by the counter back end.
//!
//! A token is `v1.<claims>.<mac>`: `claims` is the base64url (no padding) of a JSON object
//! `{"scope":["pin"],"terminal":"371700000001","exp":1764201600,"nonce":"…"}`, and `mac` the base64url of
//! HMAC-SHA256 over the ASCII text `v1.<claims>` with the key shared by the back end and the agent (`token_key`).
//! The agent checks, in this order: form, MAC (constant time), expiry (`exp` in the future, and no further than
//! the configured maximum lifetime), terminal (the agent's 终端机编号), scope (the operation's), and that the
//! nonce was not used before (a token is good for one operation).
//!
//! Scopes: `pin` (verify, change, reload, unblock) and `write` (item writes, two-step writes).
//!
//! A fixed vector to build a back end against (`tests::fixed_vector_for_back_ends`, computed with Python's
//! `hmac`/`base64`, not with this file): key = the 32 bytes `00 01 02 … 1F`, claims JSON (exactly these bytes)
//! `{"scope":["pin","write"],"terminal":"371700000001","exp":4102444800,"nonce":"00112233445566778899aabbccddeeff"}`
//! → `v1.eyJzY29wZSI6WyJwaW4iLCJ3cml0ZSJdLCJ0ZXJtaW5hbCI6IjM3MTcwMDAwMDAwMSIsImV4cCI6NDEwMjQ0NDgwMCwibm9uY2UiOiIwMDExMjIzMzQ0NTU2Njc3ODg5OWFhYmJjY2RkZWVmZiJ9.eqkH_cu2uXf3RBzQOpX_nLJN_7D4hOA4sC4G-l1VPhg`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// PIN verify, change, reload, unblock.
    Pin,
    /// Writing items on the card.
    Write,
}

impl Scope {
    /// The scope's name in tokens.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Pin => "pin",
            Scope::Write => "write",
        }
    }
}

/// The claims of a token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The operations it allows.
    pub scope: Vec<Scope>,
    /// The terminal (终端机编号) it is for.
    pub terminal: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Random, unique per token.
    pub nonce: String,
}

/// Why a token was refused (the messages name no secret).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No token came with the request.
    #[error("this operation needs a token from the counter back end (Authorization: Bearer …)")]
    Missing,
    /// The agent has no token key configured.
    #[error("the agent has no token key configured: writes and PIN operations are disabled")]
    NotConfigured,
    /// Not a token of this format.
    #[error("malformed token")]
    Malformed,
    /// The MAC does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Claims a lifetime longer than allowed.
    #[error("token lifetime exceeds the allowed maximum")]
    TooLong,
    /// For another terminal.
    #[error("token is for another terminal")]
    WrongTerminal,
    /// Does not allow this operation.
    #[error("token does not allow {0} operations")]
    WrongScope(&'static str),
    /// Already used.
    #[error("token already used")]
    Replayed,
    /// The spent-token file could not record it: the token is not accepted (it could be replayed after a restart).
    #[error("the agent cannot record the token as spent")]
    Unrecorded,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn mac(key: &[u8], signed: &str) -> Result<HmacSha256, TokenError> {
    // HMAC takes keys of any length; the error cannot happen, and would mean no usable key
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|_| TokenError::NotConfigured)?;
    m.update(signed.as_bytes());
    Ok(m)
}

/// Signs claims (what the counter back end does; here for tests, tools and the reference implementation).
pub fn sign(key: &[u8], claims: &Claims) -> Result<String, TokenError> {
    let json = serde_json::to_vec(claims).map_err(|_| TokenError::Malformed)?;
    let signed = format!("v1.{}", URL_SAFE_NO_PAD.encode(json));
    let tag = mac(key, &signed)?.finalize().into_bytes();
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag)))
}

/// Makes claims for `scope` on `terminal`, valid for `ttl`, with a fresh nonce.
pub fn claims(scope: &[Scope], terminal: &str, ttl: Duration) -> Claims {
    let nonce: [u8; 16] = rand::random();
    Claims {
        scope: scope.to_vec(),
        terminal: terminal.to_owned(),
        exp: now() + ttl.as_secs(),
        nonce: hex::encode(nonce),
    }
}

/// Checks tokens and remembers the nonces used, until they expire — across restarts when it has a spent-token file
/// (one `nonce exp` line per spent token, appended and synced before the token is accepted; expired lines are
/// dropped when the file is opened).
pub struct TokenVerifier {
    key: Option<Zeroizing<Vec<u8>>>,
    terminal: String,
    max_ttl: Duration,
    used: Mutex<Spent>,
}

struct Spent {
    nonces: HashMap<String, u64>,
    file: Option<std::fs::File>,
}

/// Longest nonce accepted (hex of 16 bytes is 32; some slack for other back ends).
const MAX_NONCE_LEN: usize = 128;
/// Largest spent-token file read back (a larger one, a FIFO or a device is refused).
const MAX_SPENT_FILE: u64 = 16 * 1024 * 1024;

impl TokenVerifier {
    /// A verifier with the shared key (none: every token is refused), for `terminal`; spent tokens are kept in
    /// memory only.
    pub fn new(key: Option<Zeroizing<Vec<u8>>>, terminal: &str, max_ttl: Duration) -> Self {
        let used = Mutex::new(Spent { nonces: HashMap::new(), file: None });
        TokenVerifier { key, terminal: terminal.to_owned(), max_ttl, used }
    }

    /// [`TokenVerifier::new`] whose spent tokens are also kept in `path` (created if absent, mode 0600), so that a
    /// token spent before a restart stays spent until it expires.
    pub fn with_spent_file(
        key: Option<Zeroizing<Vec<u8>>>,
        terminal: &str,
        max_ttl: Duration,
        path: &std::path::Path,
    ) -> std::io::Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let now = now();
        let mut nonces = HashMap::new();
        let text = match card_core::read_limited_string(path, MAX_SPENT_FILE) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            // a FIFO, device or oversized file: refused (its tokens could not be known as spent)
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            if let Some((nonce, exp)) = line.split_once(' ') {
                if let Ok(exp) = exp.parse::<u64>() {
                    if exp > now && nonce.len() <= MAX_NONCE_LEN {
                        nonces.insert(nonce.to_owned(), exp);
                    }
                }
            }
        }
        // rewritten without the expired lines, then appended to
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            for (nonce, exp) in &nonces {
                writeln!(f, "{nonce} {exp}")?;
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = std::fs::OpenOptions::new().append(true).mode(0o600).open(path)?;
        let used = Mutex::new(Spent { nonces, file: Some(file) });
        Ok(TokenVerifier { key, terminal: terminal.to_owned(), max_ttl, used })
    }

    /// Checks a token for `scope` and spends it.
    pub fn check(&self, token: Option<&str>, scope: Scope) -> Result<Claims, TokenError> {
        let key = self.key.as_ref().ok_or(TokenError::NotConfigured)?;
        let token = token.ok_or(TokenError::Missing)?;
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let payload = signed.strip_prefix("v1.").ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Malformed)?;
        mac(key, signed)?.verify_slice(&tag).map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.nonce.is_empty()
            || claims.nonce.len() > MAX_NONCE_LEN
            || !claims.nonce.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(TokenError::Malformed);
        }
        let now = now();
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.exp - now > self.max_ttl.as_secs() {
            return Err(TokenError::TooLong);
        }
        if claims.terminal != self.terminal {
            return Err(TokenError::WrongTerminal);
        }
        if !claims.scope.contains(&scope) {
            return Err(TokenError::WrongScope(scope.name()));
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.nonces.retain(|_, exp| *exp > now);
        if used.nonces.contains_key(&claims.nonce) {
            return Err(TokenError::Replayed);
        }
        if let Some(f) = used.file.as_mut() {
            use std::io::Write;
            writeln!(f, "{} {}", claims.nonce, claims.exp)
                .and_then(|()| f.sync_data())
                .map_err(|_| TokenError::Unrecorded)?;
        }
        used.nonces.insert(claims.nonce.clone(), claims.exp);
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signed(key: &[u8], claims: &Claims) -> String {
        sign(key, claims).unwrap()
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(Some(Zeroizing::new(KEY.to_vec())), "T1", Duration::from_secs(300))
    }

    #[test]
    fn hmac_sha256_known_answer_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// A back end's fixed vector: key, claims JSON → the exact token. Computed independently with Python
    /// (`hmac.new(key, signed, hashlib.sha256)`, `base64.urlsafe_b64encode(..).rstrip(b"=")`), not with `sign`.
    const VECTOR_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const VECTOR_CLAIMS_JSON: &str = r#"{"scope":["pin","write"],"terminal":"371700000001","exp":4102444800,"nonce":"00112233445566778899aabbccddeeff"}"#;
    const VECTOR_TOKEN: &str = "v1.eyJzY29wZSI6WyJwaW4iLCJ3cml0ZSJdLCJ0ZXJtaW5hbCI6IjM3MTcwMDAwMDAwMSIsImV4cCI6NDEwMjQ0NDgwMCwibm9uY2UiOiIwMDExMjIzMzQ0NTU2Njc3ODg5OWFhYmJjY2RkZWVmZiJ9.eqkH_cu2uXf3RBzQOpX_nLJN_7D4hOA4sC4G-l1VPhg";

    #[test]
    fn fixed_vector_for_back_ends() {
        let key = hex::decode(VECTOR_KEY_HEX).unwrap();
        let claims: Claims = serde_json::from_str(VECTOR_CLAIMS_JSON).unwrap();
        // sign() serializes the claims to exactly the vector's JSON bytes and signs them to the vector's token
        assert_eq!(serde_json::to_string(&claims).unwrap(), VECTOR_CLAIMS_JSON);
        assert_eq!(sign(&key, &claims).unwrap(), VECTOR_TOKEN);
        // and the verifier accepts the vector token (expiry 2100-01-01: allow that lifetime here)
        let v = TokenVerifier::new(Some(Zeroizing::new(key)), "371700000001", Duration::from_secs(u64::MAX / 2));
        let got = v.check(Some(VECTOR_TOKEN), Scope::Write).unwrap();
        assert_eq!(got, claims);
        assert_eq!(v.check(Some(VECTOR_TOKEN), Scope::Pin), Err(TokenError::Replayed));
    }

    #[test]
    fn a_good_token_passes_once() {
        let v = verifier();
        let t = signed(KEY, &claims(&[Scope::Pin], "T1", Duration::from_secs(60)));
        assert_eq!(v.check(Some(&t), Scope::Pin).unwrap().terminal, "T1");
        assert_eq!(v.check(Some(&t), Scope::Pin), Err(TokenError::Replayed));
    }

    #[test]
    fn every_refusal_is_precise() {
        let v = verifier();
        let ok = || claims(&[Scope::Pin], "T1", Duration::from_secs(60));
        assert_eq!(v.check(None, Scope::Pin), Err(TokenError::Missing));
        assert_eq!(v.check(Some("nonsense"), Scope::Pin), Err(TokenError::Malformed));
        assert_eq!(v.check(Some(&signed(b"another key", &ok())), Scope::Pin), Err(TokenError::BadSignature));
        let mut c = ok();
        c.exp = now() - 1;
        assert_eq!(v.check(Some(&signed(KEY, &c)), Scope::Pin), Err(TokenError::Expired));
        assert_eq!(
            v.check(Some(&signed(KEY, &claims(&[Scope::Pin], "T1", Duration::from_secs(3600)))), Scope::Pin),
            Err(TokenError::TooLong)
        );
        assert_eq!(
            v.check(Some(&signed(KEY, &claims(&[Scope::Pin], "T2", Duration::from_secs(60)))), Scope::Pin),
            Err(TokenError::WrongTerminal)
        );
        assert_eq!(v.check(Some(&signed(KEY, &ok())), Scope::Write), Err(TokenError::WrongScope("write")));
        let unconfigured = TokenVerifier::new(None, "T1", Duration::from_secs(300));
        assert_eq!(unconfigured.check(Some(&signed(KEY, &ok())), Scope::Pin), Err(TokenError::NotConfigured));
    }

    #[test]
    fn a_tampered_claim_breaks_the_signature() {
        let v = verifier();
        let t = signed(KEY, &claims(&[Scope::Pin], "T1", Duration::from_secs(60)));
        let (signed, tag) = t.rsplit_once('.').unwrap();
        let mut c: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(signed.strip_prefix("v1.").unwrap()).unwrap()).unwrap();
        c.scope.push(Scope::Write);
        let forged = format!("v1.{}.{tag}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap()));
        assert_eq!(v.check(Some(&forged), Scope::Write), Err(TokenError::BadSignature));
    }
}

#[cfg(test)]
mod spent_file_tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn verifier(path: &std::path::Path) -> TokenVerifier {
        TokenVerifier::with_spent_file(Some(Zeroizing::new(KEY.to_vec())), "T1", Duration::from_secs(300), path)
            .unwrap()
    }

    #[test]
    fn a_token_spent_before_a_restart_stays_spent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spent");
        let token = sign(KEY, &claims(&[Scope::Pin], "T1", Duration::from_secs(120))).unwrap();
        let other = sign(KEY, &claims(&[Scope::Pin], "T1", Duration::from_secs(120))).unwrap();
        assert!(verifier(&path).check(Some(&token), Scope::Pin).is_ok());
        // the agent restarts: the same token is refused, a fresh one is accepted
        let after = verifier(&path);
        assert!(matches!(after.check(Some(&token), Scope::Pin), Err(TokenError::Replayed)));
        assert!(after.check(Some(&other), Scope::Pin).is_ok());
        assert!(matches!(verifier(&path).check(Some(&other), Scope::Pin), Err(TokenError::Replayed)));
        // the file holds nonces and expiries only, never a token
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains("v1."));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn expired_entries_are_dropped_and_garbage_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spent");
        std::fs::write(&path, "aaaa 1\nnot a line\nbbbb 99999999999\n").unwrap();
        let _ = verifier(&path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "bbbb 99999999999\n");
    }
}
