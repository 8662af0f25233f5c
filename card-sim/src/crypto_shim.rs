//! TEMPORARY stand-in for `card_core::crypto` (being written on branch `crypto`), with the same names
//! and signatures, backed by the RustCrypto block ciphers. Deleted once `card_core::crypto` is merged.
#![allow(missing_docs, dead_code, clippy::manual_is_multiple_of)]

use cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use zeroize::{Zeroize, Zeroizing};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("bad input: {0}")]
    Bad(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Tdes,
    Sm4,
    Aes128,
}

impl Algorithm {
    pub fn id(self) -> u8 {
        match self {
            Algorithm::Tdes => 1,
            Algorithm::Sm4 => 3,
            Algorithm::Aes128 => 4,
        }
    }
    pub fn from_id(id: u8) -> Result<Self, CryptoError> {
        match id {
            1 => Ok(Algorithm::Tdes),
            3 => Ok(Algorithm::Sm4),
            4 => Ok(Algorithm::Aes128),
            _ => Err(CryptoError::Bad("algorithm")),
        }
    }
    pub fn block_len(self) -> usize {
        match self {
            Algorithm::Tdes => 8,
            _ => 16,
        }
    }
}

fn enc<C: BlockCipherEncrypt>(c: &C, buf: &mut [u8]) {
    if let Ok(b) = <&mut Array<u8, C::BlockSize>>::try_from(buf) {
        c.encrypt_block(b);
    }
}
fn dec<C: BlockCipherDecrypt>(c: &C, buf: &mut [u8]) {
    if let Ok(b) = <&mut Array<u8, C::BlockSize>>::try_from(buf) {
        c.decrypt_block(b);
    }
}

pub struct CardKey {
    alg: Algorithm,
    key: Zeroizing<[u8; 16]>,
}

impl CardKey {
    pub fn new(alg: Algorithm, key: &[u8]) -> Result<CardKey, CryptoError> {
        let k: [u8; 16] = key.try_into().map_err(|_| CryptoError::Bad("key length"))?;
        Ok(CardKey { alg, key: Zeroizing::new(k) })
    }
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
    pub fn expose_secret(&self) -> &[u8; 16] {
        &self.key
    }
    pub fn encrypt_block(&self, block: &mut [u8]) {
        match self.alg {
            Algorithm::Tdes => {
                if let Ok(c) = des::TdesEde2::new_from_slice(&self.key[..]) {
                    enc(&c, block)
                }
            }
            Algorithm::Sm4 => {
                if let Ok(c) = sm4::Sm4::new_from_slice(&self.key[..]) {
                    enc(&c, block)
                }
            }
            Algorithm::Aes128 => {
                if let Ok(c) = aes::Aes128::new_from_slice(&self.key[..]) {
                    enc(&c, block)
                }
            }
        }
    }
    fn decrypt_block(&self, block: &mut [u8]) {
        match self.alg {
            Algorithm::Tdes => {
                if let Ok(c) = des::TdesEde2::new_from_slice(&self.key[..]) {
                    dec(&c, block)
                }
            }
            Algorithm::Sm4 => {
                if let Ok(c) = sm4::Sm4::new_from_slice(&self.key[..]) {
                    dec(&c, block)
                }
            }
            Algorithm::Aes128 => {
                if let Ok(c) = aes::Aes128::new_from_slice(&self.key[..]) {
                    dec(&c, block)
                }
            }
        }
    }
    pub fn decrypt_ecb(&self, ct: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let bs = self.alg.block_len();
        if ct.is_empty() || ct.len() % bs != 0 {
            return Err(CryptoError::Bad("ciphertext length"));
        }
        let mut out = ct.to_vec();
        for chunk in out.chunks_mut(bs) {
            self.decrypt_block(chunk);
        }
        Ok(out)
    }
    fn encrypt_ecb(&self, pt: &[u8]) -> Vec<u8> {
        let bs = self.alg.block_len();
        let mut out = pt.to_vec();
        for chunk in out.chunks_mut(bs) {
            self.encrypt_block(chunk);
        }
        out
    }
}

pub enum SessionKey {
    Des(Zeroizing<[u8; 8]>),
    Block(CardKey),
}

fn not8(x: &[u8; 8]) -> [u8; 8] {
    let mut o = *x;
    o.iter_mut().for_each(|b| *b ^= 0xFF);
    o
}

pub fn process_key(key: &CardKey, challenge: &[u8; 8]) -> SessionKey {
    match key.alg {
        Algorithm::Tdes => {
            let mut b = *challenge;
            key.encrypt_block(&mut b);
            let sk = SessionKey::Des(Zeroizing::new(b));
            b.zeroize();
            sk
        }
        alg => {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(challenge);
            b[8..].copy_from_slice(&not8(challenge));
            key.encrypt_block(&mut b);
            let sk = CardKey { alg, key: Zeroizing::new(b) };
            b.zeroize();
            SessionKey::Block(sk)
        }
    }
}

impl SessionKey {
    pub fn cryptogram(&self, data: &[u8; 8]) -> [u8; 8] {
        let mut out = [0u8; 8];
        match self {
            SessionKey::Des(k) => {
                if let Ok(c) = des::Des::new_from_slice(&k[..]) {
                    let mut b = *data;
                    enc(&c, &mut b);
                    out = b;
                }
            }
            SessionKey::Block(k) => {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(data);
                b[8..].copy_from_slice(&not8(data));
                k.encrypt_block(&mut b);
                out.copy_from_slice(&b[..8]);
            }
        }
        out
    }
}

fn pad(input: &[u8], bs: usize) -> Vec<u8> {
    let mut v = input.to_vec();
    v.push(0x80);
    while v.len() % bs != 0 {
        v.push(0);
    }
    v
}

fn mac_with_iv(key: &CardKey, iv: &[u8], input: &[u8]) -> [u8; 4] {
    let bs = key.alg.block_len();
    let data = pad(input, bs);
    let mut state = iv.to_vec();
    state.resize(bs, 0);
    match key.alg {
        Algorithm::Tdes => {
            let k1 = des::Des::new_from_slice(&key.key[..8]);
            let k2 = des::Des::new_from_slice(&key.key[8..]);
            if let (Ok(k1), Ok(k2)) = (k1, k2) {
                for chunk in data.chunks(bs) {
                    state.iter_mut().zip(chunk).for_each(|(s, c)| *s ^= c);
                    enc(&k1, &mut state);
                }
                dec(&k2, &mut state);
                enc(&k1, &mut state);
            }
        }
        _ => {
            for chunk in data.chunks(bs) {
                state.iter_mut().zip(chunk).for_each(|(s, c)| *s ^= c);
                key.encrypt_block(&mut state);
            }
        }
    }
    let mut out = [0u8; 4];
    out.copy_from_slice(&state[..4]);
    out
}

pub fn line_mac(key: &CardKey, challenge: &[u8], input: &[u8]) -> Result<[u8; 4], CryptoError> {
    let want = if key.alg == Algorithm::Tdes { 4 } else { 8 };
    if challenge.len() != want {
        return Err(CryptoError::Bad("challenge length"));
    }
    Ok(mac_with_iv(key, challenge, input))
}

pub fn line_mac_zero_iv(key: &CardKey, input: &[u8]) -> [u8; 4] {
    mac_with_iv(key, &[], input)
}

pub fn secure_data_encrypt(key: &CardKey, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let ld = u8::try_from(data.len()).map_err(|_| CryptoError::Bad("data too long"))?;
    let mut v = vec![ld];
    v.extend_from_slice(data);
    Ok(key.encrypt_ecb(&pad(&v, key.alg.block_len())))
}

pub fn secure_data_decrypt(key: &CardKey, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let pt = Zeroizing::new(key.decrypt_ecb(ciphertext)?);
    let ld = usize::from(*pt.first().ok_or(CryptoError::Bad("empty"))?);
    let data = pt.get(1..1 + ld).ok_or(CryptoError::Bad("Ld"))?;
    let rest = pt.get(1 + ld..).ok_or(CryptoError::Bad("Ld"))?;
    match rest.split_first() {
        Some((0x80, zeros)) if zeros.iter().all(|b| *b == 0) && rest.len() <= key.alg.block_len() => {}
        _ => return Err(CryptoError::Bad("padding")),
    }
    Ok(Zeroizing::new(data.to_vec()))
}

pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

pub fn card_factor(historical_bytes: &[u8]) -> Result<[u8; 8], CryptoError> {
    let n = historical_bytes.len();
    let tail = historical_bytes.get(n.wrapping_sub(8)..).filter(|_| n >= 8).ok_or(CryptoError::Bad("short"))?;
    let mut f = [0u8; 8];
    f.copy_from_slice(tail);
    Ok(f)
}
