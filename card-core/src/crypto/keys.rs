//! The 16-byte key of a card algorithm: block operations, diversification (CARD-PROFILE §5.2)
//! and key check values (§6.6).

use core::fmt;

use zeroize::Zeroize;

use super::block::{adjust_parity, AesKey, Sm4Key, TdesKey};
use super::mac::{aes_cmac, sm4_cmac, tdes_cmac};
use super::{Algorithm, CryptoError};

/// A 16-byte key of a card algorithm (CARD-PROFILE §5): two-key 3DES, SM4 or AES-128.
///
/// Zeroized on drop; no `Clone` (use [`CardKey::try_clone`] deliberately), no `Serialize`;
/// `Debug` prints `CardKey(SM4, <redacted>)`.
pub struct CardKey {
    alg: Algorithm,
    bytes: [u8; 16],
}

/// A card key expanded for its cipher; short-lived, on the stack.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Expanded {
    Tdes(TdesKey),
    Sm4(Sm4Key),
    Aes(AesKey),
}

impl CardKey {
    /// A key of `alg` from exactly 16 bytes (CARD-PROFILE §4 key record: `key(16)`).
    pub fn new(alg: Algorithm, bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 16] =
            bytes.try_into().map_err(|_| CryptoError::WrongKeyLength { expected: "16", got: bytes.len() })?;
        Ok(Self { alg, bytes: arr })
    }

    /// A key of `alg` from an array (the array passed by value is a copy: zeroize yours).
    pub fn from_array(alg: Algorithm, bytes: [u8; 16]) -> Self {
        Self { alg, bytes }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The raw key bytes. Handle with care: never log or print them.
    pub fn expose_secret(&self) -> &[u8; 16] {
        &self.bytes
    }

    /// An explicit copy, for key stores. Both copies are zeroized on drop.
    pub fn try_clone(&self) -> CardKey {
        Self { alg: self.alg, bytes: self.bytes }
    }

    pub(crate) fn expand(&self) -> Expanded {
        match self.alg {
            Algorithm::Tdes => Expanded::Tdes(TdesKey::from_array(self.bytes)),
            Algorithm::Sm4 => Expanded::Sm4(Sm4Key::from_array(self.bytes)),
            Algorithm::Aes128 => Expanded::Aes(AesKey::from_array128(self.bytes)),
        }
    }

    /// `E_K` of one block in place (CARD-PROFILE §6 notation); `block.len()` must equal
    /// [`Algorithm::block_len`].
    pub fn encrypt_block(&self, block: &mut [u8]) -> Result<(), CryptoError> {
        match self.expand() {
            Expanded::Tdes(k) => k.encrypt_block(block_mut8(block)?),
            Expanded::Sm4(k) => k.encrypt_block(block_mut16(block)?),
            Expanded::Aes(k) => k.encrypt_block(block_mut16(block)?),
        }
        Ok(())
    }

    /// Inverse of [`CardKey::encrypt_block`].
    pub fn decrypt_block(&self, block: &mut [u8]) -> Result<(), CryptoError> {
        match self.expand() {
            Expanded::Tdes(k) => k.decrypt_block(block_mut8(block)?),
            Expanded::Sm4(k) => k.decrypt_block(block_mut16(block)?),
            Expanded::Aes(k) => k.decrypt_block(block_mut16(block)?),
        }
        Ok(())
    }

    /// ECB encryption; `data` must be a multiple of the block length (no padding added).
    pub fn encrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self.expand() {
            Expanded::Tdes(k) => k.encrypt_ecb(data),
            Expanded::Sm4(k) => k.encrypt_ecb(data),
            Expanded::Aes(k) => k.encrypt_ecb(data),
        }
    }

    /// ECB decryption; `data` must be a multiple of the block length.
    pub fn decrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self.expand() {
            Expanded::Tdes(k) => k.decrypt_ecb(data),
            Expanded::Sm4(k) => k.decrypt_ecb(data),
            Expanded::Aes(k) => k.decrypt_ecb(data),
        }
    }

    /// `Div(K, D)`, CARD-PROFILE §5.2 (PBOC style):
    ///
    /// - 3DES: `3DES_K(D) ‖ 3DES_K(~D)`, odd parity adjusted (EMV option A);
    /// - SM4: `SM4_K(D ‖ ~D)`; AES-128 (profile extension): `AES_K(D ‖ ~D)`.
    ///
    /// The result has the same algorithm as `self`.
    pub fn div(&self, factor: &[u8; 8]) -> CardKey {
        let mut inv = *factor;
        for b in inv.iter_mut() {
            *b = !*b;
        }
        let mut out = [0u8; 16];
        match self.expand() {
            Expanded::Tdes(k) => {
                let mut left = *factor;
                let mut right = inv;
                k.encrypt_block(&mut left);
                k.encrypt_block(&mut right);
                out[..8].copy_from_slice(&left);
                out[8..].copy_from_slice(&right);
                left.zeroize();
                right.zeroize();
                adjust_parity(&mut out);
            }
            Expanded::Sm4(k) => {
                out[..8].copy_from_slice(factor);
                out[8..].copy_from_slice(&inv);
                k.encrypt_block(&mut out);
            }
            Expanded::Aes(k) => {
                out[..8].copy_from_slice(factor);
                out[8..].copy_from_slice(&inv);
                k.encrypt_block(&mut out);
            }
        }
        let key = CardKey::from_array(self.alg, out);
        out.zeroize();
        key
    }

    /// Diversifies through several levels in order (CARD-PROFILE §5.2: region factor, then card
    /// factor; a provincial factor may come first). An empty path gives a copy of `self`.
    pub fn div_path(&self, factors: &[[u8; 8]]) -> CardKey {
        factors.iter().fold(self.try_clone(), |k, f| k.div(f))
    }

    /// Key check value, CARD-PROFILE §6.6, with `b` = block length (8 for 3DES, 16 otherwise):
    ///
    /// - [`KcvMethod::Zeros`]: `E_K(00×b)[0..3]` — the 3DES/DES KCV of §6.6, PKCS#11 style for
    ///   SM4/AES;
    /// - [`KcvMethod::GlobalPlatformOnes`]: `E_K(01×b)[0..3]` — GlobalPlatform's KCV for AES
    ///   keys. For 3DES this computes `E_K(01×8)[0..3]`, which is **not** what GlobalPlatform
    ///   specifies for DES keys (it uses zeros): use `Zeros` for 3DES;
    /// - [`KcvMethod::Cmac`]: `CMAC_K(00×b)[0..3]` (X9.24 style; AES-CMAC, SM4-CMAC, and
    ///   TDES-CMAC with a 64-bit block for 3DES).
    pub fn kcv(&self, method: KcvMethod) -> Kcv {
        let mut block = [0u8; 16];
        let full = match (method, self.expand()) {
            (KcvMethod::Cmac, Expanded::Tdes(k)) => {
                let mut t = [0u8; 16];
                t[..8].copy_from_slice(&tdes_cmac(&k, &block[..8]));
                t
            }
            (KcvMethod::Cmac, Expanded::Sm4(k)) => sm4_cmac(&k, &block),
            (KcvMethod::Cmac, Expanded::Aes(k)) => aes_cmac(&k, &block),
            (m, k) => {
                if m == KcvMethod::GlobalPlatformOnes {
                    block = [0x01; 16];
                }
                match k {
                    Expanded::Tdes(k) => {
                        let mut eight = [0u8; 8];
                        eight.copy_from_slice(&block[..8]);
                        k.encrypt_block(&mut eight);
                        block[..8].copy_from_slice(&eight);
                    }
                    Expanded::Sm4(k) => k.encrypt_block(&mut block),
                    Expanded::Aes(k) => k.encrypt_block(&mut block),
                }
                block
            }
        };
        Kcv { method, value: [full[0], full[1], full[2]] }
    }
}

fn block_mut8(block: &mut [u8]) -> Result<&mut [u8; 8], CryptoError> {
    let got = block.len();
    block.try_into().map_err(|_| CryptoError::WrongDataLength { expected: "8", got })
}

fn block_mut16(block: &mut [u8]) -> Result<&mut [u8; 16], CryptoError> {
    let got = block.len();
    block.try_into().map_err(|_| CryptoError::WrongDataLength { expected: "16", got })
}

impl Drop for CardKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for CardKey {}

impl fmt::Debug for CardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardKey({}, <redacted>)", self.alg.name())
    }
}

/// How a key check value is computed (CARD-PROFILE §6.6); see [`CardKey::kcv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KcvMethod {
    /// `E_K(00×b)[0..3]`: the DES/3DES KCV; PKCS#11 style for SM4/AES.
    Zeros,
    /// `E_K(01×b)[0..3]`: GlobalPlatform's KCV for AES keys.
    GlobalPlatformOnes,
    /// `CMAC_K(00×b)[0..3]` (ANSI X9.24-1 style).
    Cmac,
}

/// A key check value with the method that produced it (CARD-PROFILE §6.6: "name the method
/// with every KCV"). `Display` prints the value as uppercase hex, e.g. `8BAF47`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kcv {
    /// The method used.
    pub method: KcvMethod,
    /// The first three bytes.
    pub value: [u8; 3],
}

impl fmt::Display for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.value {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}
