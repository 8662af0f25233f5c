//! Key block tests: the published version `D` example and refusals.

use super::*;

/// ANSI X9.143:2021 §8.1 = ASC X9 TR-31:2018 Annex A.7.4, example 3 (version D, AES-256 KBPK,
/// AES-128 PIN encryption key, key length masked to 32 bytes; the example's "random"
/// padding is given so the wrap is deterministic).
const KBPK: &str = "88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6";
const KEY: &str = "3F419E1CB7079442AA37474C2EFBF8B8";
const PADDING: &str = "1A87BBFA2CFE78D383E5F4C6AA83473C1C2965473CE206BB855B01533782";
const BLOCK_A74: &str = "D0144P0AE00E00002C77FA3F4A553BED6E88AE5C172A4166E3D4ACA8E2AC71C158A476FAC12C13C3829DE55D3AB54C48F4C4FEF7AC75E90FC47F1B77E7B19A73ED46E64410082557";

fn kbpk() -> AesKey {
    AesKey::new(&hex::decode(KBPK).unwrap()).unwrap()
}

#[test]
fn x9_143_8_1_unwrap() {
    let (h, key) = unwrap(&kbpk(), BLOCK_A74).unwrap();
    assert_eq!(&key[..], &hex::decode(KEY).unwrap()[..]);
    assert_eq!(h.usage, KeyUsage::P0);
    assert_eq!(h.algorithm, Tr31Algorithm::AES);
    assert_eq!(h.mode, ModeOfUse::E);
    assert_eq!(&h.key_version, b"00");
    assert_eq!(h.exportability, Exportability::E);
}

#[test]
fn x9_143_8_1_wrap() {
    let h = Header::new(KeyUsage::P0, Tr31Algorithm::AES, ModeOfUse::E, 0, Exportability::E);
    let block = wrap_with_padding(&kbpk(), &h, &hex::decode(KEY).unwrap(), &hex::decode(PADDING).unwrap()).unwrap();
    assert_eq!(block, BLOCK_A74);
}

#[test]
fn round_trip_aes128_kbpk_with_optional_blocks() {
    let k = AesKey::new(&[0x5A; 16]).unwrap();
    let mut h = Header::new(KeyUsage::E5, Tr31Algorithm::SM4, ModeOfUse::X, 0x02, Exportability::E);
    h.optional.push(OptionalBlock { id: *b"KS", data: "00604B120F9292800000".into() });
    let block = wrap(&k, &h, &[7u8; 16], Some(32)).unwrap();
    assert_eq!(block.len(), (block[1..5]).parse::<usize>().unwrap());
    let (h2, key) = unwrap(&k, &block).unwrap();
    assert_eq!(h2, h);
    assert_eq!(&key[..], &[7u8; 16]);
    assert_eq!(h2.key_version_number(), Some(2));
}

#[test]
fn every_changed_character_is_detected() {
    let block = BLOCK_A74.to_string();
    for i in 0..block.len() {
        let mut b = block.clone().into_bytes();
        b[i] = if b[i] == b'0' { b'1' } else { b'0' };
        let s = String::from_utf8(b).unwrap();
        // the length, version or header no longer parse, or the authenticator no longer matches
        assert!(
            matches!(
                unwrap(&kbpk(), &s),
                Err(Tr31Error::MacMismatch | Tr31Error::Malformed(_) | Tr31Error::UnsupportedVersion(_))
            ),
            "change at {i} not detected"
        );
    }
}

#[test]
fn header_change_is_a_mac_failure() {
    // Change the mode of use E → B: well-formed, but the header is authenticated.
    let changed = BLOCK_A74.replacen("P0AE", "P0AB", 1);
    assert_eq!(unwrap(&kbpk(), &changed).unwrap_err(), Tr31Error::MacMismatch);
}

#[test]
fn wrong_kbpk_is_refused() {
    let other = AesKey::new(&[1u8; 32]).unwrap();
    assert_eq!(unwrap(&other, BLOCK_A74).unwrap_err(), Tr31Error::MacMismatch);
}

#[test]
fn refusals() {
    let k = kbpk();
    assert_eq!(unwrap(&k, "B0016P0TE00N0000").unwrap_err(), Tr31Error::UnsupportedVersion('B'));
    assert!(matches!(unwrap(&k, "D0020P0"), Err(Tr31Error::Malformed(_))));
    assert!(matches!(unwrap(&k, &BLOCK_A74[..143]), Err(Tr31Error::Malformed(_))));
    let h = Header::new(KeyUsage::K0, Tr31Algorithm::AES, ModeOfUse::B, 1, Exportability::N);
    assert_eq!(wrap(&k, &h, &[], None).unwrap_err(), Tr31Error::KeyLength(0));
}

#[test]
fn parse_optional_blocks_like_psec() {
    // psec tests/test_tr31.py test_header_load_optional_multiple, with version D.
    let (h, _, len) = Header::parse("D0000P0TE00N0400KS1800604B120F9292800000T104T20600PB0600").unwrap();
    assert_eq!(len, 56);
    assert_eq!(h.optional.len(), 3);
    assert_eq!(h.optional[0].data, "00604B120F9292800000");
    assert_eq!(h.optional[1].data, "");
    assert_eq!(h.optional[2].data, "00");
    // Extended length form.
    let (h, _, len) = Header::parse("D0000P0TE00N0200KS00011600604B120F9292PB0A000000").unwrap();
    assert_eq!(len, 48);
    assert_eq!(h.optional[0].data, "00604B120F9292");
}
