//! The host side of the tests: APDU helpers, host cryptography, and a personalization through APDUs.

use card_core::crypto;
use card_sim::{BlankParams, Card, KeyAlgorithm};
use crypto::{line_mac, process_key, secure_data_encrypt, Algorithm, CardKey};

pub const SSSE_AID: &str = "7378312E73682EC9E7BBE1B1A3D5CF";
pub const DF01_AID: &str = "D15600000500";
pub const DF02_AID: &str = "D15600000501";
pub const PIN: &str = "123456";
pub const TRANSPORT_KEY: [u8; 16] = [0x5A; 16];

/// Key ids (CARD-PROFILE §5.1).
pub const MK: u8 = 0x00;
pub const IRK: u8 = 0x01;
pub const UKMF: u8 = 0x04;
pub const RK: u8 = 0x05;
pub const PUK: u8 = 0x06;
pub const STK: u8 = 0x07;
pub const RLK: u8 = 0x08;
pub const RKSSSE: u8 = 0x0A;

/// Key types of the reference COS (card-sim keys.rs).
pub const T_MK: u8 = 0x01;
pub const T_INT: u8 = 0x02;
pub const T_EXT: u8 = 0x03;
pub const T_PUK: u8 = 0x04;
pub const T_STK: u8 = 0x05;
pub const T_RLK: u8 = 0x06;
pub const T_PIN: u8 = 0x0F;

pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

pub fn alg_of(a: KeyAlgorithm) -> Algorithm {
    match a {
        KeyAlgorithm::Tdes => Algorithm::Tdes,
        KeyAlgorithm::Sm4 => Algorithm::Sm4,
        KeyAlgorithm::Aes128 => Algorithm::Aes128,
    }
}

/// The test value of a key: its DF (0 MF, 1 SSSE, 2 DF01, 3 DF02) and kid.
pub fn key_value(df: u8, kid: u8) -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = (df << 4 | kid).wrapping_mul(37).wrapping_add(i as u8 * 11) ^ 0xA5;
    }
    k
}

/// A card with its host: sends APDUs, knows the algorithm.
pub struct Host {
    pub card: Card,
    pub alg: KeyAlgorithm,
}

impl Host {
    /// Sends hex or bytes; returns (data, SW).
    pub fn send(&mut self, apdu: impl AsRef<[u8]>) -> (Vec<u8>, u16) {
        let r = self.card.process(apdu.as_ref());
        let (data, sw) = r.split_at(r.len() - 2);
        (data.to_vec(), u16::from_be_bytes([sw[0], sw[1]]))
    }

    pub fn sw(&mut self, apdu_hex: &str) -> u16 {
        self.send(h(apdu_hex)).1
    }

    pub fn key(&self, value: &[u8; 16]) -> CardKey {
        CardKey::new(alg_of(self.alg), value).unwrap()
    }

    pub fn challenge(&mut self, len: u8) -> Vec<u8> {
        let (r, sw) = self.send([0x00, 0x84, 0x00, 0x00, len]);
        assert_eq!(sw, 0x9000);
        r
    }

    /// The EXTERNAL AUTHENTICATE APDU for a fresh challenge.
    pub fn ext_auth_apdu(&mut self, kid: u8, value: &[u8; 16]) -> Vec<u8> {
        let r: [u8; 8] = self.challenge(8).try_into().unwrap();
        let x = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
        let c = process_key(&self.key(value), &r).cryptogram(&x);
        [&[0x00, 0x82, 0x00, kid, 0x10][..], &c, &x].concat()
    }

    pub fn ext_auth(&mut self, kid: u8, value: &[u8; 16]) -> u16 {
        let apdu = self.ext_auth_apdu(kid, value);
        self.send(apdu).1
    }

    /// A line-protected command: GET CHALLENGE (4 for 3DES, 8 otherwise), then header ‖ Lc' ‖ payload ‖ MAC.
    pub fn mac_apdu(&mut self, header: [u8; 4], payload: &[u8], value: &[u8; 16]) -> Vec<u8> {
        let n = if self.alg == KeyAlgorithm::Tdes { 4 } else { 8 };
        let r = self.challenge(n);
        mac_apdu_with(self.alg, &r, header, payload, value)
    }

    /// A secure-data command: ENC(Ld ‖ data ‖ pad) then MAC.
    pub fn enc_mac_apdu(&mut self, header: [u8; 4], data: &[u8], value: &[u8; 16]) -> Vec<u8> {
        let enc = secure_data_encrypt(&self.key(value), data).unwrap();
        self.mac_apdu(header, &enc, value)
    }

    pub fn write_key(&mut self, kid: u8, ty: u8, version: u8, tries: u8, value: &[u8]) -> u16 {
        let alg = if ty == T_PIN { 0 } else { self.alg.id() };
        let mut rec = vec![ty, version, alg, tries];
        rec.extend_from_slice(value);
        rec.resize(20, 0xFF);
        let apdu = [&[0x80, 0xD4, 0x01, kid, 20][..], &rec].concat();
        self.send(apdu).1
    }

    pub fn create(&mut self, fid: u16, data: &[u8]) -> u16 {
        let apdu = [&[0x80, 0xE0][..], &fid.to_be_bytes(), &[data.len() as u8], data].concat();
        self.send(apdu).1
    }

    pub fn select_aid(&mut self, aid: &str) -> u16 {
        let aid = h(aid);
        let apdu = [&[0x00, 0xA4, 0x04, 0x00, aid.len() as u8][..], &aid].concat();
        self.send(apdu).1
    }

    pub fn select_fid(&mut self, fid: u16) -> u16 {
        let apdu = [&[0x00, 0xA4, 0x00, 0x00, 0x02][..], &fid.to_be_bytes()].concat();
        self.send(apdu).1
    }

    pub fn update_record(&mut self, sfi: u8, rec: u8, tlv: &[u8]) -> u16 {
        let apdu = [&[0x00, 0xDC, rec, sfi << 3 | 4, tlv.len() as u8][..], tlv].concat();
        self.send(apdu).1
    }

    pub fn verify(&mut self, pin: &str) -> u16 {
        let pin = h(pin);
        let apdu = [&[0x00, 0x20, 0x00, 0x00, pin.len() as u8][..], &pin].concat();
        self.send(apdu).1
    }

    pub fn read_record(&mut self, sfi: u8, rec: u8) -> (Vec<u8>, u16) {
        self.send([0x00, 0xB2, rec, sfi << 3 | 4, 0x00])
    }
}

pub fn mac_apdu_with(alg: KeyAlgorithm, r: &[u8], header: [u8; 4], payload: &[u8], value: &[u8; 16]) -> Vec<u8> {
    let key = CardKey::new(alg_of(alg), value).unwrap();
    let lc = payload.len() as u8 + 4;
    let input = [&header[..], &[lc], payload].concat();
    let mac = line_mac(&key, r, &input).unwrap();
    [&header[..], &[lc], payload, &mac].concat()
}

pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    [&[tag, value.len() as u8][..], value].concat()
}

/// EF05 records (CARD-PROFILE §2.1), generation `g`.
pub fn ef05_records(g: u8) -> Vec<Vec<u8>> {
    vec![
        tlv(0x01, &h("371700D15600000500BF7C7A48FB4966")),
        tlv(0x02, b"1"),
        tlv(0x03, format!("{g}.00").as_bytes()),
        tlv(0x04, &h("371700000001FFFFFFFFFFFF")),
        tlv(0x05, &h("20240101")),
        tlv(0x06, &h("20340101")),
        tlv(0x07, b"A00000019"),
    ]
}

/// EF06 records (gen 2+: with 4E).
pub fn ef06_records() -> Vec<Vec<u8>> {
    let mut name = b"ZHANG SAN".to_vec();
    name.resize(30, 0);
    vec![
        tlv(0x08, b"11010519491231002X"),
        tlv(0x09, &name),
        tlv(0x4E, &[0; 20]),
        tlv(0x0A, b"1"),
        tlv(0x0B, &h("01")),
        tlv(0x0C, &h("110105")),
        tlv(0x0D, &h("19491231")),
    ]
}

/// A blank card.
pub fn blank(alg: KeyAlgorithm, generation: u8) -> Host {
    let card = Card::new_blank(BlankParams {
        generation,
        region: "371700".into(),
        serial: 0x0011_2233_4455_6677,
        transport_key: TRANSPORT_KEY,
        algorithm: alg,
    })
    .unwrap();
    Host { card, alg }
}

/// Which generation goes with an algorithm in the usual tests.
pub fn gen_of(alg: KeyAlgorithm) -> u8 {
    if alg == KeyAlgorithm::Tdes {
        2
    } else {
        3
    }
}

/// A card personalized through APDUs only: SSSE (EF05, EF06, EF07 transparent, keys, PIN), DF01
/// (EF05 free, EF06 PIN-protected, EF16 transparent), DF02 (EF07 cyclic 4×16), new MF MK, END PERSO.
pub fn personalized(alg: KeyAlgorithm) -> Host {
    let g = gen_of(alg);
    let mut c = blank(alg, g);
    assert_eq!(c.ext_auth(MK, &TRANSPORT_KEY), 0x9000);
    assert_eq!(c.create(0xDDF1, &[&[0x38][..], &h(SSSE_AID)].concat()), 0x9000);
    assert_eq!(c.select_aid(SSSE_AID), 0x9000);
    assert_eq!(c.write_key(MK, T_MK, 1, 15, &key_value(1, MK)), 0x9000);
    assert_eq!(c.ext_auth(MK, &key_value(1, MK)), 0x9000);
    for (kid, ty) in [(IRK, T_INT), (UKMF, T_EXT), (PUK, T_PUK), (STK, T_STK), (RLK, T_RLK)] {
        assert_eq!(c.write_key(kid, ty, 1, 3, &key_value(1, kid)), 0x9000);
    }
    if g == 3 {
        assert_eq!(c.write_key(RKSSSE, T_EXT, 1, 3, &key_value(1, RKSSSE)), 0x9000);
    }
    assert_eq!(c.write_key(0, T_PIN, 0, 3, &h(PIN)), 0x9000);
    // EF05: free (gen 3: record 7 needs RKSSSE); EF06: free (gen 3: RKSSSE); update: UKMF
    let (ef05, ef06) = if g == 3 {
        ([0x04, 0x05, 0x00, 0x24, 7, 20, 7, 0x2A].to_vec(), [0x04, 0x06, 0x2A, 0x24, 7, 40].to_vec())
    } else {
        ([0x04, 0x05, 0x00, 0x24, 7, 20].to_vec(), [0x04, 0x06, 0x00, 0x24, 7, 40].to_vec())
    };
    assert_eq!(c.create(0xEF05, &ef05), 0x9000);
    assert_eq!(c.create(0xEF06, &ef06), 0x9000);
    assert_eq!(c.create(0xEF07, &[0x01, 0x07, 0x00, 0x24, 0x04, 0x00]), 0x9000);
    assert_eq!(c.create(0xDF01, &[&[0x38][..], &h(DF01_AID)].concat()), 0x9000);
    assert_eq!(c.create(0xDF02, &[&[0x38][..], &h(DF02_AID)].concat()), 0x9000);
    assert_eq!(c.ext_auth(UKMF, &key_value(1, UKMF)), 0x9000);
    for (i, r) in ef05_records(g).iter().enumerate() {
        assert_eq!(c.update_record(5, i as u8 + 1, r), 0x9000);
    }
    for (i, r) in ef06_records().iter().enumerate() {
        assert_eq!(c.update_record(6, i as u8 + 1, r), 0x9000);
    }
    // DF01
    assert_eq!(c.select_aid(DF01_AID), 0x9000);
    assert_eq!(c.write_key(MK, T_MK, 1, 15, &key_value(2, MK)), 0x9000);
    assert_eq!(c.ext_auth(MK, &key_value(2, MK)), 0x9000);
    assert_eq!(c.write_key(UKMF, T_EXT, 1, 3, &key_value(2, UKMF)), 0x9000);
    assert_eq!(c.write_key(RK, T_EXT, 1, 3, &key_value(2, RK)), 0x9000);
    assert_eq!(c.write_key(STK, T_STK, 1, 3, &key_value(2, STK)), 0x9000);
    assert_eq!(c.create(0xEF05, &[0x04, 0x05, 0x00, 0x24, 3, 0x52]), 0x9000);
    assert_eq!(c.create(0xEF06, &[0x04, 0x06, 0x10, 0x24, 5, 0x52]), 0x9000);
    assert_eq!(c.create(0xEF16, &[0x01, 0x16, 0x00, 0x24, 0x01, 0x28]), 0x9000);
    assert_eq!(c.ext_auth(UKMF, &key_value(2, UKMF)), 0x9000);
    assert_eq!(c.update_record(5, 1, &tlv(0x20, b"01")), 0x9000);
    assert_eq!(c.update_record(6, 1, &tlv(0x23, b"secret")), 0x9000);
    // DF02 with a cyclic EF
    assert_eq!(c.select_aid(DF02_AID), 0x9000);
    assert_eq!(c.write_key(MK, T_MK, 1, 15, &key_value(3, MK)), 0x9000);
    assert_eq!(c.ext_auth(MK, &key_value(3, MK)), 0x9000);
    assert_eq!(c.write_key(UKMF, T_EXT, 1, 3, &key_value(3, UKMF)), 0x9000);
    assert_eq!(c.write_key(STK, T_STK, 1, 3, &key_value(3, STK)), 0x9000);
    assert_eq!(c.create(0xEF07, &[0x06, 0x07, 0x00, 0x24, 4, 16]), 0x9000);
    // MF: replace the transport key, end personalization
    assert_eq!(c.select_fid(0x3F00), 0x9000);
    assert_eq!(c.ext_auth(MK, &TRANSPORT_KEY), 0x9000);
    assert_eq!(c.write_key(MK, T_MK, 1, 15, &key_value(0, MK)), 0x9000);
    assert_eq!(c.ext_auth(MK, &key_value(0, MK)), 0x9000);
    assert_eq!(c.sw("80EA000000"), 0x9000);
    c.card.reset();
    c
}

/// Both algorithms' cards.
pub fn both() -> [Host; 2] {
    [personalized(KeyAlgorithm::Tdes), personalized(KeyAlgorithm::Sm4)]
}
