//! ANSI X9.143 (ASC X9 TR-31) key blocks, version `D` (AES key block protection key).
//!
//! A key block is ASCII: a 16-character header (version id, length, key usage, algorithm,
//! mode of use, key version, exportability, number of optional blocks, reserved `00`), the
//! optional blocks, the encrypted key data in hex and the 16-byte authenticator in hex.
//!
//! Version `D` (X9.143 §7.3, TR-31:2018 §5.3.2):
//!
//! - the key block encryption key (KBEK) and authentication key (KBAK) are derived from the
//!   KBPK with AES-CMAC (NIST SP 800-108 counter mode) over
//!   `counter(1) ‖ usage(2: 0000 enc, 0001 MAC) ‖ separator 00 ‖ algorithm(2: 0002 AES-128,
//!   0004 AES-256) ‖ length in bits(2)`, one CMAC per 128 bits of key;
//! - the clear key data is `key length in bits(2) ‖ key ‖ random padding` (to a multiple of
//!   16 bytes, optionally with extra "masking" bytes hiding the real key length);
//! - the authenticator is `AES-CMAC_KBAK(header ‖ clear key data)`, all 16 bytes;
//! - the key data is encrypted with AES-CBC under the KBEK with the authenticator as IV.
//!
//! The header is thus bound to the key: a changed usage, algorithm, mode of use, key version
//! or exportability makes [`unwrap`] fail.
//!
//! X9.143 has no algorithm code for SM4; numeric codes are reserved for proprietary use, and
//! this crate uses [`Tr31Algorithm::SM4`] = `3` (the card's own SM4 algorithm id, CARD-PROFILE §1).

use core::fmt;

use card_core::crypto::{aes_cmac, ct_eq, AesKey};
use zeroize::{Zeroize, Zeroizing};

/// Errors of key block parsing, wrapping and unwrapping. None carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tr31Error {
    /// The block or header is not well formed (what is wrong, never key bytes).
    #[error("malformed key block: {0}")]
    Malformed(&'static str),
    /// A version id other than `D`.
    #[error("key block version {0:?} is not supported (only D)")]
    UnsupportedVersion(char),
    /// The key block protection key is not AES-128 or AES-256.
    #[error("key block protection key must be 16 or 32 bytes, got {0}")]
    KbpkLength(usize),
    /// The key to wrap is empty or too long.
    #[error("key length {0} not supported")]
    KeyLength(usize),
    /// The authenticator does not match: wrong KBPK, or a changed block.
    #[error("key block authenticator does not match (wrong key block protection key or altered block)")]
    MacMismatch,
}

macro_rules! code {
    ($(#[$m:meta])* $name:ident, $len:literal, { $($(#[$cm:meta])* $c:ident = $v:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*

            /// The code as text.
            pub fn as_str(&self) -> &str {
                core::str::from_utf8(&self.0).unwrap_or("?")
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

code!(
    /// Key usage (X9.143 Table 6), two characters.
    KeyUsage, 2, {
        /// `B0` base derivation key (BDK).
        B0 = *b"B0";
        /// `E0` EMV/chip issuer master key: application cryptograms.
        E0 = *b"E0";
        /// `E1` EMV/chip issuer master key: secure messaging for confidentiality.
        E1 = *b"E1";
        /// `E2` EMV/chip issuer master key: secure messaging for integrity.
        E2 = *b"E2";
        /// `E3` EMV/chip issuer master key: data authentication code.
        E3 = *b"E3";
        /// `E4` EMV/chip issuer master key: dynamic numbers.
        E4 = *b"E4";
        /// `E5` EMV/chip issuer master key: card personalization.
        E5 = *b"E5";
        /// `E6` EMV/chip issuer master key: other.
        E6 = *b"E6";
        /// `K0` key encryption or wrapping key (KEK).
        K0 = *b"K0";
        /// `K1` TR-31 key block protection key (KBPK).
        K1 = *b"K1";
        /// `P0` PIN encryption key.
        P0 = *b"P0";
    }
);

code!(
    /// Algorithm (X9.143 Table 7), one character.
    Tr31Algorithm, 1, {
        /// `A` AES.
        AES = *b"A";
        /// `T` triple DES.
        TDES = *b"T";
        /// `3` SM4: proprietary (numeric codes are reserved for proprietary use; X9.143 has no SM4).
        SM4 = *b"3";
    }
);

code!(
    /// Mode of use (X9.143 Table 8), one character.
    ModeOfUse, 1, {
        /// `B` both encrypt/wrap and decrypt/unwrap.
        B = *b"B";
        /// `C` both generate and verify (MAC).
        C = *b"C";
        /// `D` decrypt/unwrap only.
        D = *b"D";
        /// `E` encrypt/wrap only.
        E = *b"E";
        /// `N` no special restrictions.
        N = *b"N";
        /// `X` key used to derive other keys.
        X = *b"X";
    }
);

code!(
    /// Exportability (X9.143 Table 10), one character.
    Exportability, 1, {
        /// `E` exportable under a trusted key.
        E = *b"E";
        /// `N` not exportable.
        N = *b"N";
        /// `S` sensitive: exportable under an untrusted key.
        S = *b"S";
    }
);

/// An optional header block: two-character id and printable ASCII data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionalBlock {
    /// Block id, e.g. `KS`.
    pub id: [u8; 2],
    /// Block data.
    pub data: String,
}

/// A version `D` key block header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Key usage.
    pub usage: KeyUsage,
    /// Algorithm of the wrapped key.
    pub algorithm: Tr31Algorithm,
    /// Mode of use.
    pub mode: ModeOfUse,
    /// Key version number: two characters, `00` = not used.
    pub key_version: [u8; 2],
    /// Exportability.
    pub exportability: Exportability,
    /// Optional blocks (a pad block `PB` is added when formatting if needed and dropped when parsing).
    pub optional: Vec<OptionalBlock>,
}

/// Version `D` key data and MAC are in 16-byte blocks.
const BLOCK: usize = 16;

impl Header {
    /// A header without optional blocks; `key_version` is printed as two hex digits (`00` = unused).
    pub fn new(
        usage: KeyUsage,
        algorithm: Tr31Algorithm,
        mode: ModeOfUse,
        key_version: u8,
        exportability: Exportability,
    ) -> Self {
        let v = format!("{key_version:02X}");
        let mut kv = [b'0'; 2];
        kv.copy_from_slice(v.as_bytes());
        Header { usage, algorithm, mode, key_version: kv, exportability, optional: Vec::new() }
    }

    /// The key version as a number if it is two hex digits.
    pub fn key_version_number(&self) -> Option<u8> {
        u8::from_str_radix(core::str::from_utf8(&self.key_version).ok()?, 16).ok()
    }

    /// The optional blocks as text, with a `PB` pad block to a multiple of 16 characters;
    /// returns (number of blocks, text).
    fn format_optional(&self) -> Result<(usize, String), Tr31Error> {
        let mut out = String::new();
        for b in &self.optional {
            let id = core::str::from_utf8(&b.id).map_err(|_| Tr31Error::Malformed("optional block id"))?;
            out.push_str(id);
            let len = b.data.len() + 4;
            if len <= 255 {
                out.push_str(&format!("{len:02X}"));
            } else {
                let ext = b.data.len() + 10;
                if ext > 0xFFFF {
                    return Err(Tr31Error::Malformed("optional block too long"));
                }
                out.push_str(&format!("0002{ext:04X}"));
            }
            out.push_str(&b.data);
        }
        let mut count = self.optional.len();
        if !out.len().is_multiple_of(BLOCK) {
            let pad = BLOCK - ((out.len() + 4) % BLOCK);
            out.push_str(&format!("PB{:02X}", pad + 4));
            out.extend(core::iter::repeat_n('0', pad));
            count += 1;
        }
        if count > 99 {
            return Err(Tr31Error::Malformed("more than 99 optional blocks"));
        }
        Ok((count, out))
    }

    /// Formats the header for a block of `total_len` characters.
    fn format(&self, total_len: usize) -> Result<String, Tr31Error> {
        let (count, blocks) = self.format_optional()?;
        if total_len > 9999 {
            return Err(Tr31Error::Malformed("key block longer than 9999 characters"));
        }
        let mut s = format!("D{total_len:04}");
        for part in [&self.usage.0[..], &self.algorithm.0, &self.mode.0, &self.key_version, &self.exportability.0] {
            s.push_str(core::str::from_utf8(part).map_err(|_| Tr31Error::Malformed("header field"))?);
        }
        s.push_str(&format!("{count:02}00"));
        s.push_str(&blocks);
        Ok(s)
    }

    /// Length of the formatted header including optional blocks.
    fn formatted_len(&self) -> Result<usize, Tr31Error> {
        Ok(16 + self.format_optional()?.1.len())
    }

    /// Parses the header at the start of `block`; returns the header, the declared total
    /// length and the header's length in characters.
    pub fn parse(block: &str) -> Result<(Header, usize, usize), Tr31Error> {
        let b = block.as_bytes();
        let fixed = b.get(..16).ok_or(Tr31Error::Malformed("shorter than a header"))?;
        if !fixed.iter().all(u8::is_ascii_alphanumeric) {
            return Err(Tr31Error::Malformed("header is not alphanumeric"));
        }
        if fixed[0] != b'D' {
            return Err(Tr31Error::UnsupportedVersion(char::from(fixed[0])));
        }
        let total = digits(&fixed[1..5]).ok_or(Tr31Error::Malformed("length is not 4 digits"))?;
        let count = digits(&fixed[12..14]).ok_or(Tr31Error::Malformed("block count is not 2 digits"))?;
        let mut header = Header {
            usage: KeyUsage([fixed[5], fixed[6]]),
            algorithm: Tr31Algorithm([fixed[7]]),
            mode: ModeOfUse([fixed[8]]),
            key_version: [fixed[9], fixed[10]],
            exportability: Exportability([fixed[11]]),
            optional: Vec::new(),
        };
        let mut pos = 16;
        for _ in 0..count {
            let id = b.get(pos..pos + 2).ok_or(Tr31Error::Malformed("optional block id"))?;
            if !id.iter().all(u8::is_ascii_alphanumeric) {
                return Err(Tr31Error::Malformed("optional block id"));
            }
            let id = [id[0], id[1]];
            let l = hex_num(b.get(pos + 2..pos + 4)).ok_or(Tr31Error::Malformed("optional block length"))?;
            let (data_start, len) = if l == 0 {
                let ll = hex_num(b.get(pos + 4..pos + 6)).ok_or(Tr31Error::Malformed("optional block length"))?;
                if ll == 0 {
                    return Err(Tr31Error::Malformed("optional block length of length is 0"));
                }
                let len =
                    hex_num(b.get(pos + 6..pos + 6 + 2 * ll)).ok_or(Tr31Error::Malformed("optional block length"))?;
                (pos + 6 + 2 * ll, len)
            } else {
                (pos + 4, l)
            };
            let end = pos.checked_add(len).ok_or(Tr31Error::Malformed("optional block length"))?;
            if end < data_start {
                return Err(Tr31Error::Malformed("optional block length"));
            }
            let data = b.get(data_start..end).ok_or(Tr31Error::Malformed("optional block data"))?;
            if !data.iter().all(|c| (0x20..0x7F).contains(c)) {
                return Err(Tr31Error::Malformed("optional block data is not printable"));
            }
            if &id != b"PB" {
                let data = String::from_utf8(data.to_vec()).map_err(|_| Tr31Error::Malformed("optional block data"))?;
                header.optional.push(OptionalBlock { id, data });
            }
            pos = end;
        }
        Ok((header, total, pos))
    }
}

fn digits(b: &[u8]) -> Option<usize> {
    core::str::from_utf8(b).ok().filter(|s| s.bytes().all(|c| c.is_ascii_digit()))?.parse().ok()
}

fn hex_num(b: Option<&[u8]>) -> Option<usize> {
    let s = core::str::from_utf8(b?).ok()?;
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    usize::from_str_radix(s, 16).ok()
}

/// KBEK and KBAK of version `D`, derived from the KBPK (X9.143 §7.3.2).
fn derive(kbpk: &AesKey) -> Result<(AesKey, AesKey), Tr31Error> {
    let n = kbpk.key_len();
    let (alg, bits): (u16, u16) = match n {
        16 => (0x0002, 0x0080),
        32 => (0x0004, 0x0100),
        other => return Err(Tr31Error::KbpkLength(other)),
    };
    let mut kbek = Zeroizing::new(Vec::with_capacity(n));
    let mut kbak = Zeroizing::new(Vec::with_capacity(n));
    for counter in 1..=(n / BLOCK) as u8 {
        for (usage, out) in [(0u16, &mut kbek), (1u16, &mut kbak)] {
            let mut input = [0u8; 8];
            input[0] = counter;
            input[1..3].copy_from_slice(&usage.to_be_bytes());
            input[4..6].copy_from_slice(&alg.to_be_bytes());
            input[6..8].copy_from_slice(&bits.to_be_bytes());
            let mut part = aes_cmac(kbpk, &input);
            out.extend_from_slice(&part);
            part.zeroize();
        }
    }
    let kbek = AesKey::new(&kbek).map_err(|_| Tr31Error::KbpkLength(n))?;
    let kbak = AesKey::new(&kbak).map_err(|_| Tr31Error::KbpkLength(n))?;
    Ok((kbek, kbak))
}

/// Wraps `key` under `kbpk` into a version `D` key block with random padding.
///
/// `masked_len` (at least the key length) hides the key length: the key data is padded as
/// if the key had that many bytes (X9.143 "key length obfuscation"); `None` = no masking.
pub fn wrap(kbpk: &AesKey, header: &Header, key: &[u8], masked_len: Option<usize>) -> Result<String, Tr31Error> {
    let masked = masked_len.unwrap_or(key.len()).max(key.len());
    let pad_len = pad_len(masked) + (masked - key.len());
    let mut pad = Zeroizing::new(vec![0u8; pad_len]);
    rand::fill(&mut pad[..]);
    wrap_with_padding(kbpk, header, key, &pad)
}

/// Bytes of padding after `2 + len` bytes to reach a multiple of 16 (at least 1, as X9.143 pads always).
fn pad_len(len: usize) -> usize {
    BLOCK - ((2 + len) % BLOCK)
}

/// [`wrap`] with the given padding bytes (masking bytes first), for known-answer tests.
pub(crate) fn wrap_with_padding(
    kbpk: &AesKey,
    header: &Header,
    key: &[u8],
    padding: &[u8],
) -> Result<String, Tr31Error> {
    if key.is_empty() || key.len() > 64 {
        return Err(Tr31Error::KeyLength(key.len()));
    }
    let data_len = 2 + key.len() + padding.len();
    if !data_len.is_multiple_of(BLOCK) {
        return Err(Tr31Error::Malformed("padding does not reach a block boundary"));
    }
    let (kbek, kbak) = derive(kbpk)?;
    let mut clear = Zeroizing::new(Vec::with_capacity(data_len));
    clear.extend_from_slice(&((key.len() * 8) as u16).to_be_bytes());
    clear.extend_from_slice(key);
    clear.extend_from_slice(padding);
    let total = header.formatted_len()? + 2 * data_len + 2 * BLOCK;
    let head = header.format(total)?;
    let mac = mac(&kbak, &head, &clear);
    let enc = kbek.encrypt_cbc(&mac, &clear).map_err(|_| Tr31Error::Malformed("key data"))?;
    Ok(format!("{head}{}{}", hex::encode_upper(enc), hex::encode_upper(mac)))
}

fn mac(kbak: &AesKey, header: &str, clear: &[u8]) -> [u8; 16] {
    let mut input = Zeroizing::new(Vec::with_capacity(header.len() + clear.len()));
    input.extend_from_slice(header.as_bytes());
    input.extend_from_slice(clear);
    aes_cmac(kbak, &input)
}

/// Unwraps a version `D` key block: checks the length, the authenticator (in constant
/// time) and the key length field; returns the header and the key.
pub fn unwrap(kbpk: &AesKey, block: &str) -> Result<(Header, Zeroizing<Vec<u8>>), Tr31Error> {
    let (header, total, head_len) = Header::parse(block)?;
    if total != block.len() {
        return Err(Tr31Error::Malformed("length field does not match the block length"));
    }
    let body = block.get(head_len..).ok_or(Tr31Error::Malformed("header"))?;
    if body.len() < 4 * BLOCK || !body.len().is_multiple_of(2 * BLOCK) {
        return Err(Tr31Error::Malformed("key data is not a whole number of blocks"));
    }
    let (data_hex, mac_hex) = body.split_at(body.len() - 2 * BLOCK);
    let enc = hex::decode(data_hex).map_err(|_| Tr31Error::Malformed("key data is not hex"))?;
    let mut received = [0u8; 16];
    hex::decode_to_slice(mac_hex, &mut received).map_err(|_| Tr31Error::Malformed("authenticator is not hex"))?;
    let (kbek, kbak) = derive(kbpk)?;
    let clear = Zeroizing::new(kbek.decrypt_cbc(&received, &enc).map_err(|_| Tr31Error::Malformed("key data"))?);
    let head = block.get(..head_len).ok_or(Tr31Error::Malformed("header"))?;
    if !ct_eq(&mac(&kbak, head, &clear), &received) {
        return Err(Tr31Error::MacMismatch);
    }
    let bits = usize::from(u16::from_be_bytes([clear[0], clear[1]]));
    if bits == 0 || bits % 8 != 0 {
        return Err(Tr31Error::Malformed("key length field"));
    }
    let key = clear.get(2..2 + bits / 8).ok_or(Tr31Error::Malformed("key length field exceeds the key data"))?;
    Ok((header, Zeroizing::new(key.to_vec())))
}

#[cfg(test)]
mod tests;
