//! The blank cards' transport key for issuance (CARD-PROFILE §5.1): the chip maker delivers one per
//! delivery batch, not diversified; the store holds it as `TRANSPORT`, one version per delivery.

use card_core::crypto::CardKey;

use super::KeyStore;
use crate::error::{Error, Result};
use crate::inventory::{KeyRecord, KeyState};

impl KeyStore {
    /// The transport key `TRANSPORT` at `version`, or the highest active version when `None`.
    /// Only an active version is handed out; the use is audited (never the key).
    pub fn transport_key(&self, version: Option<u8>) -> Result<(KeyRecord, CardKey)> {
        let not_found = |v: u8| Error::KeyNotFound { name: "TRANSPORT".into(), version: v, region: String::new() };
        let v = match version {
            Some(v) => v,
            None => self
                .versions("TRANSPORT", "")?
                .into_iter()
                .filter(|r| r.state == KeyState::Active)
                .map(|r| r.version)
                .max()
                .ok_or_else(|| not_found(0))?,
        };
        let (rec, key) = self.load_key("TRANSPORT", v, "")?;
        if rec.state != KeyState::Active {
            return Err(Error::WrongState {
                name: rec.name,
                version: v,
                state: rec.state,
                what: "only an active transport key is used for issuance",
            });
        }
        self.audit_ok("use-transport", serde_json::json!({"name": "TRANSPORT", "version": v, "kcv": rec.kcv}))?;
        Ok((rec, key))
    }
}
