//! Block ciphers (CARD-PROFILE §6 notation `E_K`): single DES, two-key 3DES, SM4, AES-128/256,
//! in ECB and CBC mode, over the RustCrypto crates `des`, `sm4` and `aes`.
//!
//! Each key type keeps its raw bytes (for diversification, KCV and key export by the key store)
//! and the expanded cipher; both are zeroized on drop (`des`/`sm4`/`aes` with their `zeroize`
//! feature, the raw bytes here).

use core::fmt;

use cipher::{Array, Block, BlockCipherDecrypt, BlockCipherEncrypt, BlockSizeUser, KeyInit};
use zeroize::Zeroize;

use super::CryptoError;

/// Sets every byte of a DES key to odd parity (bit 0 adjusted), FIPS 46-3 / CARD-PROFILE §5.2.
pub fn adjust_parity(key: &mut [u8]) {
    for b in key.iter_mut() {
        let high = *b & 0xFE;
        *b = high | u8::from(high.count_ones().is_multiple_of(2));
    }
}

/// ECB over a whole buffer; the caller has checked alignment (a tail is left untouched).
pub(crate) fn ecb_encrypt_in_place<C: BlockCipherEncrypt>(c: &C, data: &mut [u8]) {
    let (blocks, _tail) = Array::slice_as_chunks_mut(data);
    c.encrypt_blocks(blocks);
}

pub(crate) fn ecb_decrypt_in_place<C: BlockCipherDecrypt>(c: &C, data: &mut [u8]) {
    let (blocks, _tail) = Array::slice_as_chunks_mut(data);
    c.decrypt_blocks(blocks);
}

/// CBC encryption in place with `iv`; the caller has checked alignment.
pub(crate) fn cbc_encrypt_in_place<C: BlockCipherEncrypt>(c: &C, iv: &Block<C>, data: &mut [u8]) {
    let (blocks, _tail) = Array::<u8, C::BlockSize>::slice_as_chunks_mut(data);
    let mut chain = iv.clone();
    for block in blocks.iter_mut() {
        for (b, x) in block.iter_mut().zip(chain.iter()) {
            *b ^= x;
        }
        c.encrypt_block(block);
        chain.copy_from_slice(block);
    }
}

/// CBC decryption in place with `iv`; the caller has checked alignment.
pub(crate) fn cbc_decrypt_in_place<C: BlockCipherDecrypt + BlockSizeUser>(c: &C, iv: &Block<C>, data: &mut [u8]) {
    let (blocks, _tail) = Array::<u8, C::BlockSize>::slice_as_chunks_mut(data);
    let mut chain = iv.clone();
    for block in blocks.iter_mut() {
        let saved = block.clone();
        c.decrypt_block(block);
        for (b, x) in block.iter_mut().zip(chain.iter()) {
            *b ^= x;
        }
        chain = saved;
    }
}

fn check_aligned(len: usize, block_len: usize) -> Result<(), CryptoError> {
    if len.is_multiple_of(block_len) {
        Ok(())
    } else if block_len == 8 {
        Err(CryptoError::WrongDataLength { expected: "a multiple of 8", got: len })
    } else {
        Err(CryptoError::WrongDataLength { expected: "a multiple of 16", got: len })
    }
}

/// Defines a key type with fixed key length over one RustCrypto cipher.
macro_rules! fixed_key {
    (
        $(#[$doc:meta])*
        $name:ident, $cipher:ty, $key_len:literal, $key_len_str:literal, $block_len:literal, $label:literal
    ) => {
        $(#[$doc])*
        pub struct $name {
            bytes: [u8; $key_len],
            cipher: $cipher,
        }

        impl $name {
            /// Key length in bytes.
            pub const KEY_LEN: usize = $key_len;
            /// Block length in bytes.
            pub const BLOCK_LEN: usize = $block_len;

            /// Builds the key from exactly `KEY_LEN` bytes; other lengths are refused.
            pub fn new(bytes: &[u8]) -> Result<Self, CryptoError> {
                let arr: [u8; $key_len] = bytes.try_into().map_err(|_| {
                    CryptoError::WrongKeyLength { expected: $key_len_str, got: bytes.len() }
                })?;
                Ok(Self::from_array(arr))
            }

            /// Builds the key from an array (the array passed by value is a copy: zeroize yours).
            pub fn from_array(mut bytes: [u8; $key_len]) -> Self {
                let cipher = <$cipher>::new((&bytes).into());
                let key = Self { bytes, cipher };
                bytes.zeroize();
                key
            }

            /// The raw key bytes. Handle with care: never log or print them.
            pub fn expose_secret(&self) -> &[u8; $key_len] {
                &self.bytes
            }

            /// Encrypts one block in place (ECB of one block).
            pub fn encrypt_block(&self, block: &mut [u8; $block_len]) {
                self.cipher.encrypt_block(block.into());
            }

            /// Decrypts one block in place.
            pub fn decrypt_block(&self, block: &mut [u8; $block_len]) {
                self.cipher.decrypt_block(block.into());
            }

            /// ECB encryption; `data` must be a multiple of the block length (no padding added).
            pub fn encrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
                check_aligned(data.len(), $block_len)?;
                let mut out = data.to_vec();
                ecb_encrypt_in_place(&self.cipher, &mut out);
                Ok(out)
            }

            /// ECB decryption; `data` must be a multiple of the block length.
            pub fn decrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
                check_aligned(data.len(), $block_len)?;
                let mut out = data.to_vec();
                ecb_decrypt_in_place(&self.cipher, &mut out);
                Ok(out)
            }

            /// CBC encryption with `iv`; `data` must be a multiple of the block length.
            pub fn encrypt_cbc(&self, iv: &[u8; $block_len], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
                check_aligned(data.len(), $block_len)?;
                let mut out = data.to_vec();
                cbc_encrypt_in_place(&self.cipher, iv.into(), &mut out);
                Ok(out)
            }

            /// CBC decryption with `iv`; `data` must be a multiple of the block length.
            pub fn decrypt_cbc(&self, iv: &[u8; $block_len], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
                check_aligned(data.len(), $block_len)?;
                let mut out = data.to_vec();
                cbc_decrypt_in_place(&self.cipher, iv.into(), &mut out);
                Ok(out)
            }

            pub(crate) fn cipher(&self) -> &$cipher {
                &self.cipher
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // The expanded `cipher` zeroizes itself (crate feature `zeroize`).
                self.bytes.zeroize();
            }
        }

        impl zeroize::ZeroizeOnDrop for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(", $label, ", <redacted>)"))
            }
        }
    };
}

fixed_key!(
    /// A single-DES key (8 bytes; parity bits are ignored by the cipher). Used for the 3DES
    /// process key of CARD-PROFILE §6.1–§6.3 and MAC algorithm 1 with DES. Zeroized on drop.
    DesKey, des::Des, 8, "8", 8, "DES"
);

fixed_key!(
    /// A two-key 3DES (EDE, `K1 ‖ K2`, 16 bytes) key: `E_K` of CARD-PROFILE §6 for generations 1
    /// and 2. Zeroized on drop.
    TdesKey, des::TdesEde2, 16, "16", 8, "3DES"
);

fixed_key!(
    /// An SM4 (GB/T 32907) key, 16 bytes: `E_K` of CARD-PROFILE §6 for generation 3.
    /// Zeroized on drop.
    Sm4Key, sm4::Sm4, 16, "16", 16, "SM4"
);

impl TdesKey {
    /// The left half `K1` as a single-DES key (retail MAC, ISO/IEC 9797-1 MAC algorithm 3).
    pub fn left(&self) -> DesKey {
        let mut k = [0u8; 8];
        k.copy_from_slice(&self.bytes[..8]);
        DesKey::from_array(k)
    }
}

/// The expanded AES cipher of an [`AesKey`].
enum AesCipher {
    A128(aes::Aes128),
    A256(aes::Aes256),
}

/// Borrowed expanded AES cipher, for CMAC.
pub(crate) enum AesCipherRef<'a> {
    A128(&'a aes::Aes128),
    A256(&'a aes::Aes256),
}

/// An AES key of 16 (AES-128) or 32 (AES-256) bytes (profile extension, CARD-PROFILE §1;
/// AES KCVs of §6.6). Zeroized on drop.
pub struct AesKey {
    bytes: [u8; 32],
    len: usize,
    cipher: AesCipher,
}

impl AesKey {
    /// Block length in bytes.
    pub const BLOCK_LEN: usize = 16;

    /// Builds an AES-128 (16 bytes) or AES-256 (32 bytes) key; other lengths are refused.
    pub fn new(bytes: &[u8]) -> Result<Self, CryptoError> {
        if let Ok(arr) = <[u8; 16]>::try_from(bytes) {
            Ok(Self::from_array128(arr))
        } else if let Ok(arr) = <[u8; 32]>::try_from(bytes) {
            Ok(Self::from_array256(arr))
        } else {
            Err(CryptoError::WrongKeyLength { expected: "16 or 32", got: bytes.len() })
        }
    }

    /// Builds an AES-128 key from an array (the array passed by value is a copy: zeroize yours).
    pub fn from_array128(mut bytes: [u8; 16]) -> Self {
        let mut arr = [0u8; 32];
        arr[..16].copy_from_slice(&bytes);
        let cipher = AesCipher::A128(aes::Aes128::new((&bytes).into()));
        bytes.zeroize();
        Self { bytes: arr, len: 16, cipher }
    }

    /// Builds an AES-256 key from an array (the array passed by value is a copy: zeroize yours).
    pub fn from_array256(mut bytes: [u8; 32]) -> Self {
        let cipher = AesCipher::A256(aes::Aes256::new((&bytes).into()));
        let key = Self { bytes, len: 32, cipher };
        bytes.zeroize();
        key
    }

    /// The raw key bytes (16 or 32). Handle with care: never log or print them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Key length in bytes: 16 or 32.
    pub fn key_len(&self) -> usize {
        self.len
    }

    pub(crate) fn aes_cipher(&self) -> AesCipherRef<'_> {
        match &self.cipher {
            AesCipher::A128(c) => AesCipherRef::A128(c),
            AesCipher::A256(c) => AesCipherRef::A256(c),
        }
    }

    /// Encrypts one block in place.
    pub fn encrypt_block(&self, block: &mut [u8; 16]) {
        match &self.cipher {
            AesCipher::A128(c) => c.encrypt_block(block.into()),
            AesCipher::A256(c) => c.encrypt_block(block.into()),
        }
    }

    /// Decrypts one block in place.
    pub fn decrypt_block(&self, block: &mut [u8; 16]) {
        match &self.cipher {
            AesCipher::A128(c) => c.decrypt_block(block.into()),
            AesCipher::A256(c) => c.decrypt_block(block.into()),
        }
    }

    /// ECB encryption; `data` must be a multiple of 16 bytes (no padding added).
    pub fn encrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_aligned(data.len(), 16)?;
        let mut out = data.to_vec();
        match &self.cipher {
            AesCipher::A128(c) => ecb_encrypt_in_place(c, &mut out),
            AesCipher::A256(c) => ecb_encrypt_in_place(c, &mut out),
        }
        Ok(out)
    }

    /// ECB decryption; `data` must be a multiple of 16 bytes.
    pub fn decrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_aligned(data.len(), 16)?;
        let mut out = data.to_vec();
        match &self.cipher {
            AesCipher::A128(c) => ecb_decrypt_in_place(c, &mut out),
            AesCipher::A256(c) => ecb_decrypt_in_place(c, &mut out),
        }
        Ok(out)
    }

    /// CBC encryption with `iv`; `data` must be a multiple of 16 bytes.
    pub fn encrypt_cbc(&self, iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_aligned(data.len(), 16)?;
        let mut out = data.to_vec();
        match &self.cipher {
            AesCipher::A128(c) => cbc_encrypt_in_place(c, iv.into(), &mut out),
            AesCipher::A256(c) => cbc_encrypt_in_place(c, iv.into(), &mut out),
        }
        Ok(out)
    }

    /// CBC decryption with `iv`; `data` must be a multiple of 16 bytes.
    pub fn decrypt_cbc(&self, iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_aligned(data.len(), 16)?;
        let mut out = data.to_vec();
        match &self.cipher {
            AesCipher::A128(c) => cbc_decrypt_in_place(c, iv.into(), &mut out),
            AesCipher::A256(c) => cbc_decrypt_in_place(c, iv.into(), &mut out),
        }
        Ok(out)
    }
}

impl Drop for AesKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for AesKey {}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AesKey(AES-{}, <redacted>)", self.len * 8)
    }
}
