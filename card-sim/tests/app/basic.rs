//! Basic information, the national string, APDU counts, generation detection, two-step, tearing.

use card_core::card::SocialSecurityCard;
use card_core::crypto::Algorithm;
use card_core::national;
use card_core::security::key_service::{Answer, Backend, Operation, Query};
use card_core::security::{two_step, LocalKeys, NoKeys};
use card_core::transport::{RecordingTransport, TransportError};
use card_core::Error;
use card_sim::{Card, SimTransport, Tear, TearPoint};

use super::common::*;

#[test]
fn gen1_and_gen2_national_strings_in_3_apdus_with_read_all() {
    for (gen, file) in [(1, "gen1-basic.txt"), (2, "gen2-basic.txt")] {
        let mut c = card(gen, true);
        let (info, n) = apdus(&mut c, |c| c.read_basic(&NoKeys));
        let info = info.unwrap();
        assert_eq!(info.national(&terminal()).to_string(), national(file), "gen {gen}");
        assert_eq!(n, 3, "gen {gen}: SELECT, EF05 all, EF06 all");
        assert_eq!(info.national_code(), 0);
        assert_eq!(c.read_all_support(), Some(true));
    }
}

#[test]
fn typed_fields_and_empty_name_extension() {
    let mut c = card(2, true);
    let info = c.read_basic(&NoKeys).unwrap();
    assert_eq!(info.generation.number(), 2);
    assert_eq!(info.name.as_deref(), Some("张三"));
    assert_eq!(info.name_ext.as_deref(), Some(""), "an empty optional field");
    assert_eq!(info.sex.as_deref(), Some("1"));
    assert_eq!(info.ethnicity.as_deref(), Some("01"));
    assert_eq!(info.birthplace.as_deref(), Some("371702"));
    assert_eq!(info.birth_date.unwrap().to_string(), "19800101");
    assert_eq!(info.card_type, "1");
    let gen1 = card(1, true).read_basic(&NoKeys).unwrap();
    assert_eq!(gen1.name_ext, None, "gen 1 has no 4E");
    assert_eq!(gen1.sex.as_deref(), Some("1"));
}

#[test]
fn without_read_all_16_apdus_then_15() {
    let mut c = card(2, false);
    let (info, n) = apdus(&mut c, |c| c.read_basic(&NoKeys));
    assert_eq!(info.unwrap().national(&terminal()).to_string(), national("gen2-basic.txt"));
    assert_eq!(n, 16, "SELECT, probe 6A86, 7 + 7 records");
    assert_eq!(c.read_all_support(), Some(false));
    let (info, n) = apdus(&mut c, |c| c.read_basic(&NoKeys));
    assert_eq!(info.unwrap().national(&terminal()).to_string(), national("gen2-basic.txt"));
    assert_eq!(n, 15, "the probe is cached per card");
}

#[test]
fn fci_without_algorithm_costs_one_apdu() {
    for gen in [2, 3] {
        let mut card_ = Card::load(repo(&format!("fixtures/cards/gen{gen}-personalized.json"))).unwrap();
        card_.set_fci_algorithm(false);
        let mut c =
            SocialSecurityCard::new(RecordingTransport::counting(SimTransport::new(card_))).with_terminal(terminal());
        let (info, n) = apdus(&mut c, |c| c.read_basic(&keys()));
        assert_eq!(info.unwrap().national(&terminal()).to_string(), national(&format!("gen{gen}-basic.txt")));
        assert_eq!(n, if gen == 2 { 4 } else { 6 }, "gen {gen}: + READ RECORD EF05 3 after SELECT");
        assert_eq!(c.detect().unwrap().generation.number(), gen);
    }
}

#[test]
fn the_generation_comes_from_the_fci_algorithm() {
    // SM4 in the FCI: generation 3 with the SELECT alone; 3DES: generation 1 or 2, EF05 record 3 says which
    for (gen, apdus_to_detect) in [(1, 2), (2, 2), (3, 1)] {
        let mut c = card(gen, true);
        let (info, n) = apdus(&mut c, |c| c.detect());
        let info = info.unwrap();
        assert_eq!(info.generation.number(), gen);
        assert_eq!(info.algorithm, if gen == 3 { Algorithm::Sm4 } else { Algorithm::Tdes });
        assert_eq!(n, apdus_to_detect, "gen {gen}");
    }
    // the earlier profile decision (9F08, the spec version) is still understood: one SELECT
    let mut card_ = Card::load(repo("fixtures/cards/gen2-personalized.json")).unwrap();
    card_.set_fci_spec_version(true);
    let mut c = SocialSecurityCard::new(RecordingTransport::counting(SimTransport::new(card_)));
    let (info, n) = apdus(&mut c, |c| c.detect());
    assert_eq!((info.unwrap().generation.number(), n), (2, 1));
}

#[test]
fn gen3_with_keys_in_5_apdus_and_rare_character() {
    for read_all in [true, false] {
        let mut c = card(3, read_all);
        let (info, n) = apdus(&mut c, |c| c.read_basic(&keys()));
        let info = info.unwrap();
        assert_eq!(info.national(&terminal()).to_string(), national("gen3-basic.txt"));
        assert_eq!(n, if read_all { 5 } else { 18 }, "read_all {read_all}");
        assert_eq!(info.name.as_deref(), Some("欧阳𠮷娜"));
        assert_eq!(info.name_09.as_deref(), Some("欧阳〓娜"));
        let gb = info.national(&terminal()).to_gb18030().unwrap();
        assert!(gb.windows(4).any(|w| w == [0x95, 0x34, 0xB2, 0x35]), "𠮷 in GB 18030");
    }
}

#[test]
fn gen3_without_keys_withholds_holder_data_with_2203() {
    for sm in [&NoKeys as &dyn card_core::security::SecurityModule, &keys_without(&["RKSSSE"])] {
        let mut c = card(3, true);
        let (info, n) = apdus(&mut c, |c| c.read_basic(sm));
        let info = info.unwrap();
        assert_eq!(info.national(&terminal()).to_string(), national("gen3-basic-nokeys.txt"));
        assert_eq!(info.national_code(), national::NO_RKSSSE);
        assert_eq!(info.national_code(), -2203);
        assert_eq!(n, 2, "SELECT + EF05 whole (free, as on a real 3.00 card)");
    }
}

#[test]
fn gen3_wrong_rksse_is_an_auth_failure_with_tries() {
    let region = card_core::codec::RegionCode::parse("371700").unwrap();
    let wrong = card_core::crypto::CardKey::new(card_core::crypto::Algorithm::Sm4, &[7; 16]).unwrap();
    let sm = LocalKeys::new(region).with_key("RKSSSE", wrong);
    let err = card(3, true).read_basic(&sm).unwrap_err();
    assert!(matches!(&err, Error::AuthFailed { key, tries_left: 14 } if key == "RKSSSE"), "{err:?}");
    assert_eq!(national::code(&err), -0x63CE);
}

#[test]
fn two_step_with_a_back_end_holding_the_keys() {
    let backend = keys();
    let mut c = card(3, true);
    let before = c.transport().counters();
    let session = c.begin_two_step().unwrap();
    let step1 = session.step1();
    let fields: Vec<&str> = step1.split('|').collect();
    assert_eq!(fields.len(), 9, "{step1}");
    assert_eq!(&fields[..4], &["371700", "5353031037170000000000000000A3", "03", "371700D15600000500000000000000A3"]);
    let answer = two_step::backend_answer(&backend, &step1).unwrap();
    let info = session.finish(&answer).unwrap();
    assert_eq!(info.national(&terminal()).to_string(), national("gen3-basic.txt"));
    assert_eq!((c.transport().counters() - before).apdus, 7);

    // a back end whose IRK is not the card's: the card is not genuine for it
    let session = c.begin_two_step().unwrap();
    let step1 = session.step1();
    let mut answer = two_step::backend_answer(&backend, &step1).unwrap();
    answer.replace_range(0..2, if answer.starts_with("00") { "11" } else { "00" });
    assert!(matches!(session.finish(&answer), Err(Error::InternalAuthFailed)));
    // garbage from the back end
    let session = c.begin_two_step().unwrap();
    assert!(matches!(session.finish("nonsense"), Err(Error::BadParameter(_))));
}

/// A back end in-process, counting the requests it answered.
struct Counting {
    keys: LocalKeys,
    asked: std::sync::Mutex<Vec<(Operation, Option<String>)>>,
}

impl Backend for Counting {
    fn answer(&self, q: &Query<'_>) -> Result<Answer, Error> {
        self.asked.lock().unwrap().push((q.operation, q.file.map(str::to_owned)));
        let step2 = q.step2.unwrap_or_default();
        let (answer, key) = match (q.operation, q.file) {
            (Operation::PinReload, _) => (two_step::backend_pin_reload(&self.keys, q.step1, step2)?, "RLK"),
            (Operation::PinUnblock, _) => (two_step::backend_pin_unblock(&self.keys, q.step1, step2)?, "PUK"),
            (_, Some(file)) => {
                let key = if file.starts_with("SSSE") { "UKMF" } else { "UK_DF01" };
                (two_step::backend_answer_for(&self.keys, q.step1, key)?, key)
            }
            (_, None) => (two_step::backend_answer(&self.keys, q.step1)?, "RKSSSE"),
        };
        Ok(Answer { answer, key: key.into(), version: 1 })
    }
}

#[test]
fn read_basic_via_a_back_end_only_when_the_card_needs_it() {
    let backend = Counting { keys: keys(), asked: Default::default() };
    // generation 2: read without keys, the back end is not asked (3 APDUs as a plain read)
    let mut c = card(2, true);
    let (info, n) = apdus(&mut c, |c| c.read_basic_via(&NoKeys, &backend));
    assert_eq!(info.unwrap().national(&terminal()).to_string(), national("gen2-basic.txt"));
    assert_eq!(n, 3);
    assert!(backend.asked.lock().unwrap().is_empty());
    // generation 3: Step 1, the back end's answer, Step 2 in one transaction: the whole holder, 7 APDUs
    let mut c = card(3, true);
    let (info, n) = apdus(&mut c, |c| c.read_basic_via(&NoKeys, &backend));
    let info = info.unwrap();
    assert_eq!(info.national(&terminal()).to_string(), national("gen3-basic.txt"));
    assert_eq!(info.national_code(), 0);
    assert_eq!(n, 7);
    assert_eq!(backend.asked.lock().unwrap().as_slice(), &[(Operation::Read, None)]);
    // a module holding RKSSSE reads by itself
    let (info, _) = apdus(&mut c, |c| c.read_basic_via(&keys(), &backend));
    assert_eq!(info.unwrap().national_code(), 0);
    assert_eq!(backend.asked.lock().unwrap().len(), 1);
    // a back end that refuses: its code comes back, nothing read
    struct Refusing;
    impl Backend for Refusing {
        fn answer(&self, _: &Query<'_>) -> Result<Answer, Error> {
            Err(Error::KeyService { code: -24, message: "operation not allowed".into(), reached: true })
        }
    }
    let err = c.read_basic_via(&NoKeys, &Refusing).unwrap_err();
    assert_eq!(national::code(&err), -24);
}

/// The photo of a generation 3 card (EF08 behind RKSSSE) at a counter without keys: read through the back end in
/// one transaction; a generation 2 card's photo is read without asking it.
#[test]
fn read_the_photo_via_a_back_end_only_when_the_card_needs_it() {
    let photo = std::fs::read(repo("fixtures/photos/holder.jpg")).unwrap();
    for gen in [2u8, 3] {
        let backend = Counting { keys: keys(), asked: Default::default() };
        let mut c = card(gen, true);
        c.write_binary(&keys(), "SSSEEF08", &photo).unwrap();
        let data = c.read_binary_via(&NoKeys, &backend, "SSSEEF08").unwrap();
        assert_eq!(&data[..photo.len()], &photo[..], "gen {gen}");
        let asked = backend.asked.lock().unwrap().clone();
        if gen == 3 {
            assert_eq!(asked, [(Operation::Read, None)]);
            // without the back end, NoKeys cannot
            assert!(matches!(c.read_binary(&NoKeys, "SSSEEF08"), Err(Error::MissingKey { .. })));
        } else {
            assert!(asked.is_empty(), "gen 2's photo is free: {asked:?}");
        }
    }
}

#[test]
fn write_items_via_a_back_end() {
    let backend = Counting { keys: keys(), asked: Default::default() };
    let mut c = card(3, true);
    let address: card_core::card::Address = "SSSEEF06|09|$".parse().unwrap();
    c.write_items_via(&backend, &address, "SSSEEF06|李四|$").unwrap();
    assert_eq!(backend.asked.lock().unwrap().as_slice(), &[(Operation::Write, Some("SSSEEF06".into()))]);
    let read = c.read_items(&keys(), &address, None).unwrap();
    assert_eq!(read.to_national(), "SSSEEF06|李四|$");
}

#[test]
fn pin_reload_and_unblock_via_a_back_end_are_accepted_by_the_card() {
    use secrecy::SecretString;
    for gen in [2, 3] {
        let backend = Counting { keys: keys(), asked: Default::default() };
        let mut c = card(gen, true);
        // block the PIN with wrong tries, unblock through the back end, then the new PIN verifies
        while !matches!(c.verify_pin(&SecretString::from("999999")), Err(Error::PinBlocked)) {}
        c.unblock_pin_via(&backend, &SecretString::from("654321")).unwrap();
        c.verify_pin(&SecretString::from("654321")).unwrap();
        c.reload_pin_via(&backend, &SecretString::from("112233")).unwrap();
        c.verify_pin(&SecretString::from("112233")).unwrap();
        assert!(matches!(c.verify_pin(&SecretString::from("654321")), Err(Error::WrongPin { .. })), "gen {gen}");
        let asked: Vec<Operation> = backend.asked.lock().unwrap().iter().map(|(o, _)| *o).collect();
        assert_eq!(asked, [Operation::PinUnblock, Operation::PinReload]);
        // a MAC that is not the card's: refused by the card, the PIN unchanged
        struct Wrong;
        impl Backend for Wrong {
            fn answer(&self, _: &Query<'_>) -> Result<Answer, Error> {
                Ok(Answer { answer: "01020304|".into(), key: "RLK".into(), version: 1 })
            }
        }
        assert!(matches!(c.reload_pin_via(&Wrong, &SecretString::from("445566")), Err(Error::Card(_))));
        c.verify_pin(&SecretString::from("112233")).unwrap();
    }
}

#[test]
fn internal_authentication_proves_the_card() {
    for gen in [2, 3] {
        let mut c = card(gen, true);
        c.authenticate_card(&keys()).unwrap();
        let region = card_core::codec::RegionCode::parse("371700").unwrap();
        let alg = if gen == 3 { card_core::crypto::Algorithm::Sm4 } else { card_core::crypto::Algorithm::Tdes };
        let other = LocalKeys::new(region).with_key("IRK", card_core::crypto::CardKey::new(alg, &[9; 16]).unwrap());
        let err = c.authenticate_card(&other).unwrap_err();
        assert!(matches!(err, Error::InternalAuthFailed));
        assert_eq!(national::code(&err), -21);
        assert!(matches!(c.authenticate_card(&NoKeys), Err(Error::MissingKey { .. })));
    }
}

#[test]
fn card_pulled_mid_read_then_reinserted() {
    let mut c = card(2, true);
    c.transport_mut().inner_mut().arm_tear(Tear { after_apdu: 2, when: TearPoint::BeforeWrite });
    let err = c.read_basic(&NoKeys).unwrap_err();
    assert!(matches!(err, Error::Transport(TransportError::CardRemoved)), "{err:?}");
    assert_eq!(national::code(&err), national::NO_CARD);
    assert!(matches!(c.read_basic(&NoKeys), Err(Error::Transport(TransportError::NoCard(_)))));
    c.transport_mut().inner_mut().reinsert();
    let info = c.read_basic(&NoKeys).unwrap();
    assert_eq!(info.national(&terminal()).to_string(), national("gen2-basic.txt"));
}

#[test]
fn not_a_social_security_card() {
    let blank = Card::load(repo("fixtures/cards/blank-gen2.json")).unwrap();
    let mut c = SocialSecurityCard::new(SimTransport::new(blank));
    let err = c.read_basic(&NoKeys).unwrap_err();
    assert!(matches!(err, Error::UnknownCard(_)), "{err:?}");
    assert_eq!(national::code(&err), -1);
}

/// The pattern of vendor reader software in public logs (CARD-PROFILE §4.2): SELECT SSSE by name, SELECT EF05 by
/// FID, one READ RECORD per item by identifier in the current EF (`00 B2 tag 00 Le`), the same for EF06 — 17
/// commands for a generation 2 basic read, each answered `9000` with the data `read_basic` gives.
#[test]
fn vendor_reader_pattern_reads_the_same_data() {
    use card_core::codec::{decode_an, decode_cn};
    use card_core::profile::{Generation, Profile};
    use card_core::transport::{CardTransactionExt, Transport};
    let expected = card(2, true).read_basic(&NoKeys).unwrap();
    let profile = Profile::builtin();
    let ssse = profile.df("SSSE").unwrap();
    let mut sim = SimTransport::new(Card::load(repo("fixtures/cards/gen2-personalized.json")).unwrap());
    let mut tx = sim.transaction().unwrap();
    let mut commands = vec![format!("00A404000F{}00", hex::encode_upper(ssse.aid.as_ref().unwrap()))];
    let mut values = std::collections::BTreeMap::new();
    for ef in ["EF05", "EF06"] {
        commands.push(format!("00A4020002{ef}"));
        for item in ssse.ef(ef).unwrap().items(Generation::TWO) {
            commands.push(format!("00B2{:02X}00{:02X}", item.tag, item.len + 2));
        }
    }
    assert_eq!(commands.len(), 17);
    for cmd in &commands {
        let apdu = card_core::apdu::Command::parse(&hex::decode(cmd).unwrap()).unwrap();
        let r = tx.exchange(&apdu).unwrap();
        assert_eq!(r.sw(), card_core::apdu::StatusWord::OK, "{cmd}");
        if cmd.starts_with("00B2") {
            let rec = card_core::tlv::RecordTlv::parse(r.data()).unwrap();
            assert_eq!(format!("{:02X}", rec.tag), cmd[4..6], "{cmd}: the record of that identifier");
            values.insert(rec.tag, rec.value);
        }
    }
    let an = |t: u8| decode_an(&values[&t]).unwrap();
    assert_eq!(values[&0x01], expected.card_id);
    assert_eq!(an(0x02), expected.card_type);
    assert_eq!(an(0x03), expected.spec_version);
    assert_eq!(decode_cn(&values[&0x05]).unwrap(), expected.issue_date.to_string());
    assert_eq!(decode_cn(&values[&0x06]).unwrap(), expected.expiry_date.to_string());
    assert_eq!(Some(an(0x07)), expected.card_number);
    assert_eq!(Some(an(0x08)), expected.ssn);
    assert_eq!(Some(an(0x09)), expected.name_09);
    assert_eq!(Some(an(0x0A)), expected.sex);
    assert_eq!(Some(decode_cn(&values[&0x0D]).unwrap()), expected.birth_date.map(|d| d.to_string()));
    assert_eq!(values.len(), 14);
}
