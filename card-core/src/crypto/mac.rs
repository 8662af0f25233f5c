//! ISO/IEC 9797-1 MAC algorithms 1 and 3 with an explicit IV, SM4/AES CBC-MAC and CMAC
//! (CARD-PROFILE §6.4 line protection, §6.6 KCV).
//!
//! The IV is XORed into the first block (CBC with IV), as PBOC-style cards do for the line
//! protection MAC. All functions pad the message themselves with the given [`Padding`] and
//! return the full final block; callers truncate (the card uses the first 4 bytes).

use cipher::common::InnerInit;
use cipher::{Array, Block, BlockCipherEncrypt};
use cmac::{Cmac, Mac};

use super::block::{cbc_encrypt_in_place, AesKey, DesKey, Sm4Key, TdesKey};
use super::pad::{iso9797_pad, Padding};

/// The last block of a CBC encryption of `padded` (length a multiple of the block length;
/// the IV itself for an empty input, which padding never produces).
fn cbc_last<C: BlockCipherEncrypt>(c: &C, iv: &Block<C>, padded: &mut [u8]) -> Block<C> {
    cbc_encrypt_in_place(c, iv, padded);
    let (blocks, _tail) = Array::<u8, C::BlockSize>::slice_as_chunks(padded);
    blocks.last().cloned().unwrap_or_else(|| iv.clone())
}

/// ISO/IEC 9797-1 MAC algorithm 1 with single DES: CBC-MAC, output = last block.
pub fn cbc_mac_des(key: &DesKey, iv: &[u8; 8], msg: &[u8], padding: Padding) -> [u8; 8] {
    let mut padded = zeroize::Zeroizing::new(iso9797_pad(msg, 8, padding));
    cbc_last(key.cipher(), iv.into(), &mut padded).into()
}

/// ISO/IEC 9797-1 MAC algorithm 1 with two-key 3DES: CBC-MAC, output = last block.
pub fn cbc_mac_tdes(key: &TdesKey, iv: &[u8; 8], msg: &[u8], padding: Padding) -> [u8; 8] {
    let mut padded = zeroize::Zeroizing::new(iso9797_pad(msg, 8, padding));
    cbc_last(key.cipher(), iv.into(), &mut padded).into()
}

/// ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC", ANSI X9.19) with a two-key 3DES key:
/// single-DES CBC with `K1` over all blocks, then `E_K1(D_K2(H))` on the result
/// (CARD-PROFILE §6.4 for 3DES).
pub fn retail_mac(key: &TdesKey, iv: &[u8; 8], msg: &[u8], padding: Padding) -> [u8; 8] {
    let k1 = key.left();
    let mut right = [0u8; 8];
    right.copy_from_slice(&key.expose_secret()[8..]);
    let k2 = DesKey::from_array(right);
    zeroize::Zeroize::zeroize(&mut right);
    let mut h = cbc_mac_des(&k1, iv, msg, padding);
    k2.decrypt_block(&mut h);
    k1.encrypt_block(&mut h);
    h
}

/// CBC-MAC with SM4 (ISO/IEC 9797-1 MAC algorithm 1, 16-byte blocks), output = last block
/// (CARD-PROFILE §6.4 for SM4).
pub fn cbc_mac_sm4(key: &Sm4Key, iv: &[u8; 16], msg: &[u8], padding: Padding) -> [u8; 16] {
    let mut padded = zeroize::Zeroizing::new(iso9797_pad(msg, 16, padding));
    cbc_last(key.cipher(), iv.into(), &mut padded).into()
}

/// CBC-MAC with AES-128 or AES-256 (ISO/IEC 9797-1 MAC algorithm 1), output = last block
/// (CARD-PROFILE §6.4 applied to the AES extension).
pub fn cbc_mac_aes(key: &AesKey, iv: &[u8; 16], msg: &[u8], padding: Padding) -> [u8; 16] {
    let padded = zeroize::Zeroizing::new(iso9797_pad(msg, 16, padding));
    let mut out = [0u8; 16];
    let mut chain = *iv;
    for block in padded.chunks_exact(16) {
        for (c, b) in chain.iter_mut().zip(block) {
            *c ^= b;
        }
        key.encrypt_block(&mut chain);
    }
    out.copy_from_slice(&chain);
    out
}

/// AES-CMAC (NIST SP 800-38B, RFC 4493) with a 128- or 256-bit key, full 16-byte tag
/// (CARD-PROFILE §6.6 CMAC KCV). Uses the `cmac` crate.
pub fn aes_cmac(key: &AesKey, msg: &[u8]) -> [u8; 16] {
    let tag = match key.aes_cipher() {
        super::block::AesCipherRef::A128(c) => {
            let mut m = Cmac::<aes::Aes128>::inner_init(c.clone());
            m.update(msg);
            m.finalize().into_bytes()
        }
        super::block::AesCipherRef::A256(c) => {
            let mut m = Cmac::<aes::Aes256>::inner_init(c.clone());
            m.update(msg);
            m.finalize().into_bytes()
        }
    };
    tag.into()
}

/// SM4-CMAC (the NIST SP 800-38B construction with SM4), full 16-byte tag. Used for the `Cmac`
/// KCV method of SM4 keys (CARD-PROFILE §6.6). Uses the `cmac` crate.
pub fn sm4_cmac(key: &Sm4Key, msg: &[u8]) -> [u8; 16] {
    let mut m = Cmac::<sm4::Sm4>::inner_init(key.cipher().clone());
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// TDES-CMAC (NIST SP 800-38B with a 64-bit block) with a two-key 3DES key, full 8-byte tag.
/// Used for the `Cmac` KCV method of 3DES keys (CARD-PROFILE §6.6, see [`super::KcvMethod`]).
pub fn tdes_cmac(key: &TdesKey, msg: &[u8]) -> [u8; 8] {
    let mut m = Cmac::<des::TdesEde2>::inner_init(key.cipher().clone());
    m.update(msg);
    m.finalize().into_bytes().into()
}
