//! The store's key block protection key (KBPK) and the keys derived from it.

use argon2::{Algorithm as Argon, Argon2, Params, Version};
use card_core::crypto::{aes_cmac, AesKey};
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// KBPK length: AES-256.
pub const KBPK_LEN: usize = 32;

/// Argon2id parameters for the passphrase wrap: memory KiB, iterations, lanes
/// (OWASP's minimum recommendation: 19 MiB, 2 passes, 1 lane).
pub const ARGON2_PARAMS: (u32, u32, u32) = (19 * 1024, 2, 1);

/// The unlocked store's secrets: the KBPK and the keys derived from it.
pub(crate) struct StoreKeys {
    pub(crate) kbpk: AesKey,
    /// HMAC key authenticating each key row.
    pub(crate) row_key: Zeroizing<[u8; 32]>,
    /// HMAC key authenticating the audit head.
    pub(crate) audit_key: Zeroizing<[u8; 32]>,
}

impl StoreKeys {
    pub(crate) fn new(kbpk_bytes: &[u8]) -> Result<Self> {
        let kbpk = AesKey::new(kbpk_bytes)?;
        if kbpk.key_len() != KBPK_LEN {
            return Err(Error::InvalidInput("the KBPK must be AES-256".into()));
        }
        let row_key = Zeroizing::new(hmac(kbpk_bytes, &[b"keymgmt/v1/row-auth"]));
        let audit_key = Zeroizing::new(hmac(kbpk_bytes, &[b"keymgmt/v1/audit-head"]));
        Ok(StoreKeys { kbpk, row_key, audit_key })
    }

    /// A check value proving the KBPK without revealing it: HMAC-SHA256(KBPK, label), hex.
    pub(crate) fn check_value(&self) -> String {
        hex::encode_upper(hmac(self.kbpk.expose_secret(), &[b"keymgmt/v1/kbpk-check"]))
    }
}

/// HMAC-SHA256 over the length-prefixed concatenation of `parts` (unambiguous framing).
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// KCV of an AES key (KBPK or component): `CMAC_K(00×16)[0..3]` (X9.24), uppercase hex.
pub fn aes_kcv(key: &[u8]) -> Result<String> {
    let k = AesKey::new(key)?;
    let mac = aes_cmac(&k, &[0u8; 16]);
    Ok(hex::encode_upper(&mac[..3]))
}

/// The passphrase key: Argon2id(passphrase, salt) → 32 bytes (an AES-256 key wrapping the KBPK).
pub(crate) fn passphrase_key(passphrase: &[u8], salt: &[u8], params: (u32, u32, u32)) -> Result<AesKey> {
    let p = Params::new(params.0, params.1, params.2, Some(32)).map_err(|_| Error::Kdf)?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Argon::Argon2id, Version::V0x13, p)
        .hash_password_into(passphrase, salt, &mut out[..])
        .map_err(|_| Error::Kdf)?;
    Ok(AesKey::new(&out[..])?)
}
