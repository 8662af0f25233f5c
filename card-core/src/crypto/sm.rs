//! Process keys, authentication cryptograms, line protection and secure data
//! (CARD-PROFILE §6.1–§6.5).

use core::fmt;

use zeroize::{Zeroize, Zeroizing};

use super::block::DesKey;
use super::keys::{CardKey, Expanded};
use super::mac::{cbc_mac_aes, cbc_mac_sm4, retail_mac};
use super::pad::{iso9797_pad, iso9797_unpad2, Padding};
use super::{Algorithm, CryptoError};

/// A process (session) key derived from a card challenge, CARD-PROFILE §6.1.
///
/// 3DES: 8 bytes used as a single-DES key; SM4/AES: 16 bytes. Zeroized on drop, no `Clone`,
/// `Debug` prints `SessionKey(SM4, <redacted>)`.
pub struct SessionKey {
    alg: Algorithm,
    /// 3DES uses the first 8 bytes; the rest stay zero.
    bytes: [u8; 16],
}

/// `~X` = X ⊕ FF…FF (CARD-PROFILE §6 notation).
fn not8(x: &[u8; 8]) -> [u8; 8] {
    let mut out = *x;
    for b in out.iter_mut() {
        *b = !*b;
    }
    out
}

/// `X ‖ ~X` (16 bytes).
fn with_complement(x: &[u8; 8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(x);
    out[8..].copy_from_slice(&not8(x));
    out
}

/// Process key from the card challenge `R`, CARD-PROFILE §6.1:
///
/// - 3DES: `SK = 3DES_K(R)`, 8 bytes used as single DES;
/// - SM4 (profile decision): `SK = SM4_K(R ‖ ~R)`; AES-128 (profile extension): `SK = AES_K(R ‖ ~R)`.
///
/// For internal authentication (§6.3) `R` is the terminal's `R1`.
pub fn process_key(key: &CardKey, challenge: &[u8; 8]) -> SessionKey {
    let mut bytes = [0u8; 16];
    match key.expand() {
        Expanded::Tdes(k) => {
            let mut r = *challenge;
            k.encrypt_block(&mut r);
            bytes[..8].copy_from_slice(&r);
            r.zeroize();
        }
        Expanded::Sm4(k) => {
            bytes = with_complement(challenge);
            k.encrypt_block(&mut bytes);
        }
        Expanded::Aes(k) => {
            bytes = with_complement(challenge);
            k.encrypt_block(&mut bytes);
        }
    }
    SessionKey { alg: key.algorithm(), bytes }
}

impl SessionKey {
    /// The algorithm of the card key this session key came from.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Authentication cryptogram, CARD-PROFILE §6.2 (external, `C` from the terminal's `X`)
    /// and §6.3 (internal, the card's answer to `R2`):
    ///
    /// - 3DES: `DES_SK(X)`;
    /// - SM4/AES: `E_SK(X ‖ ~X)[0..8]`.
    ///
    /// Compare a received cryptogram with [`super::ct_eq`].
    pub fn cryptogram(&self, data: &[u8; 8]) -> [u8; 8] {
        let mut out = [0u8; 8];
        match self.alg {
            Algorithm::Tdes => {
                let mut sk = [0u8; 8];
                sk.copy_from_slice(&self.bytes[..8]);
                let k = DesKey::from_array(sk);
                sk.zeroize();
                out = *data;
                k.encrypt_block(&mut out);
            }
            Algorithm::Sm4 | Algorithm::Aes128 => {
                let k = CardKey::from_array(self.alg, self.bytes);
                let mut block = with_complement(data);
                // The block is 16 bytes, the block length of SM4 and AES.
                if k.encrypt_block(&mut block).is_ok() {
                    out.copy_from_slice(&block[..8]);
                }
            }
        }
        out
    }
}

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for SessionKey {}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({}, <redacted>)", self.alg.name())
    }
}

/// The MAC of §6.4 with a given full IV (8 bytes for 3DES, 16 for SM4/AES; shorter IVs are
/// right-padded with zeros), first 4 bytes.
fn mac4(key: &CardKey, iv: &[u8], input: &[u8]) -> [u8; 4] {
    let mut full = [0u8; 16];
    let n = iv.len().min(16);
    full[..n].copy_from_slice(&iv[..n]);
    let mac: [u8; 16] = match key.expand() {
        Expanded::Tdes(k) => {
            let mut iv8 = [0u8; 8];
            iv8.copy_from_slice(&full[..8]);
            let m = retail_mac(&k, &iv8, input, Padding::Method2);
            let mut t = [0u8; 16];
            t[..8].copy_from_slice(&m);
            t
        }
        Expanded::Sm4(k) => cbc_mac_sm4(&k, &full, input, Padding::Method2),
        Expanded::Aes(k) => cbc_mac_aes(&k, &full, input, Padding::Method2),
    };
    [mac[0], mac[1], mac[2], mac[3]]
}

/// Line-protection MAC, CARD-PROFILE §6.4 (PBOC form), first 4 bytes.
///
/// - 3DES: `IV = challenge(4) ‖ 00000000`, ISO/IEC 9797-1 MAC algorithm 3 (retail MAC).
/// - SM4/AES: `IV = challenge(8) ‖ 00×8`, CBC-MAC with 16-byte blocks.
///
/// `input` is `CLA INS P1 P2 Lc'` ‖ data (Lc' counting the 4 MAC bytes); it is padded with
/// method 2 here. The challenge must be exactly 4 bytes for 3DES (GET CHALLENGE `Le=04`) and
/// exactly 8 bytes for SM4/AES (`Le=08`); anything else — including an 8-byte challenge with a
/// 3DES key — is refused with [`CryptoError::WrongChallengeLength`] rather than guessed, since a
/// wrong guess only shows up as `9302` from the card.
pub fn line_mac(key: &CardKey, challenge: &[u8], input: &[u8]) -> Result<[u8; 4], CryptoError> {
    let expected = match key.algorithm() {
        Algorithm::Tdes => 4,
        Algorithm::Sm4 | Algorithm::Aes128 => 8,
    };
    if challenge.len() != expected {
        return Err(CryptoError::WrongChallengeLength { algorithm: key.algorithm(), expected, got: challenge.len() });
    }
    Ok(mac4(key, challenge, input))
}

/// The line-protection MAC of [`line_mac`] with an all-zero IV (RELOAD PIN with RLK,
/// CARD-PROFILE §4).
pub fn line_mac_zero_iv(key: &CardKey, input: &[u8]) -> [u8; 4] {
    mac4(key, &[], input)
}

/// Secure data, CARD-PROFILE §6.5 (PBOC form): `ENC_K(Ld ‖ data ‖ pad)` in ECB, `Ld` = one
/// byte, the length of `data`; `pad` = ISO/IEC 9797-1 method 2, always added.
///
/// `data` longer than 255 bytes is refused. The result carries no integrity: the caller adds
/// the §6.4 MAC over the ciphertext.
pub fn secure_data_encrypt(key: &CardKey, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let ld = u8::try_from(data.len())
        .map_err(|_| CryptoError::WrongDataLength { expected: "at most 255", got: data.len() })?;
    let mut plain = Zeroizing::new(Vec::with_capacity(data.len() + 1));
    plain.push(ld);
    plain.extend_from_slice(data);
    let padded = Zeroizing::new(iso9797_pad(&plain, key.algorithm().block_len(), Padding::Method2));
    key.encrypt_ecb(&padded)
}

/// Inverse of [`secure_data_encrypt`]: decrypts, checks the method-2 padding and that `Ld`
/// equals the remaining length. The plaintext is returned in a zeroizing buffer.
///
/// The checks catch most, not all, tampering: verify the §6.4 MAC first.
pub fn secure_data_decrypt(key: &CardKey, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let block_len = key.algorithm().block_len();
    let plain = Zeroizing::new(key.decrypt_ecb(ciphertext)?);
    let unpadded = iso9797_unpad2(&plain, block_len)?;
    let (ld, data) = unpadded.split_first().ok_or(CryptoError::BadPadding)?;
    if usize::from(*ld) != data.len() {
        return Err(CryptoError::SecureDataLength { declared: usize::from(*ld), actual: data.len() });
    }
    Ok(Zeroizing::new(data.to_vec()))
}
