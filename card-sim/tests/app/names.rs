//! Issue 10: names outside GBK (生僻字) and items found by their profile field, on cards personalized here.

use std::sync::Arc;

use card_core::apdu::{Command, Ins};
use card_core::card::SocialSecurityCard;
use card_core::profile::Profile;
use card_core::security::NoKeys;
use card_core::tlv::RecordTlv;
use card_core::transport::{CardTransactionExt, Transport};
use card_sim::fixture::{make_card, CardData, CardSpec, FixtureError, HolderData, TestKeys};
use card_sim::SimTransport;

use super::common::*;

fn test_keys() -> TestKeys {
    TestKeys::from_toml(&std::fs::read_to_string(repo("fixtures/cards/test-keys.toml")).unwrap()).unwrap()
}

/// A card of generation `gen` whose holder is `name` (and `name_ext`), personalized from `profile`.
fn personalize(gen: u8, name: &str, name_ext: &str, profile: &Profile) -> Result<card_sim::Card, FixtureError> {
    let spec = CardSpec {
        file: "test.json".into(),
        generation: gen,
        region: "371700".into(),
        serial: "00000000000000B1".into(),
        personalize: true,
        card: Some(CardData {
            card_type: "1".into(),
            card_number: "D0000004".into(),
            issue_date: "20260101".into(),
            expiry_date: "20360101".into(),
            pin: "123456".into(),
        }),
        holder: Some(HolderData {
            ssn: "371721198509090047".into(),
            name: name.into(),
            name_ext: name_ext.into(),
            sex: "2".into(),
            ethnicity: "01".into(),
            birthplace: "371721".into(),
            birth_date: "19850909".into(),
        }),
    };
    make_card(&spec, profile, &test_keys())
}

/// Tag and value of EF06 record `n` (generation 2: free to read).
fn ef06_record(card: card_sim::Card, n: u8) -> RecordTlv {
    let mut t = SimTransport::new(card);
    let mut tx = t.transaction().unwrap();
    tx.exchange_ok(&select_ssse()).unwrap();
    let cmd = Command::new(0x00, Ins::READ_RECORD, n, (6 << 3) | 4).with_le(256).unwrap();
    RecordTlv::parse(&tx.exchange_ok(&cmd).unwrap()).unwrap()
}

fn select_ssse() -> Command {
    let aid = Profile::builtin().df("SSSE").unwrap().aid.clone().unwrap();
    Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(aid).unwrap().with_le(256).unwrap()
}

/// 张𠮷 (𠮷 U+20BB7, CJK extension B) and 李㐀 (㐀 U+3400, extension A, not in GBK) with the name only: 09
/// holds the GBK form with 〓, 4E the whole name in GB 18030; the reader and the national string give it whole.
#[test]
fn a_name_outside_gbk_alone_is_written_whole_to_4e() {
    for (name, name_09, four_bytes) in
        [("张𠮷", "张〓", [0x95, 0x34, 0xB2, 0x35]), ("李㐀", "李〓", [0x81, 0x39, 0xEE, 0x39])]
    {
        for gen in [2, 3] {
            let card = personalize(gen, name, "", Profile::builtin()).unwrap();
            let mut c = SocialSecurityCard::new(SimTransport::new(card)).with_terminal(terminal());
            let info = c.read_basic(&keys()).unwrap();
            assert_eq!(info.name.as_deref(), Some(name), "gen {gen}");
            assert_eq!(info.name_09.as_deref(), Some(name_09), "gen {gen}");
            assert_eq!(info.name_ext.as_deref(), Some(name), "gen {gen}");
            let national = info.national(&terminal());
            assert_eq!(national.as_str().split('|').nth(4), Some(name), "gen {gen}");
            let gb = national.to_gb18030().unwrap();
            assert!(gb.windows(4).any(|w| w == four_bytes), "gen {gen}: four-byte GB 18030 sequence");
        }
    }
    // the bytes: 4E (record 3) is the GB 18030 name, 00-padded to 20; 09 (record 2) has 〓 = GBK A1FE
    let r3 = ef06_record(personalize(2, "张𠮷", "", Profile::builtin()).unwrap(), 3);
    assert_eq!((r3.tag, &r3.value[..6], r3.value.len()), (0x4E, &[0xD5, 0xC5, 0x95, 0x34, 0xB2, 0x35][..], 20));
    assert!(r3.value[6..].iter().all(|&b| b == 0));
    let r2 = ef06_record(personalize(2, "张𠮷", "", Profile::builtin()).unwrap(), 2);
    assert_eq!((r2.tag, &r2.value[..4]), (0x09, &[0xD5, 0xC5, 0xA1, 0xFE][..]));
}

/// An explicit name extension stays what 4E holds; a name GBK encodes leaves 4E empty.
#[test]
fn an_explicit_name_extension_is_kept() {
    let card = personalize(2, "陈𠮷", "上土下口吉", Profile::builtin()).unwrap();
    let info = SocialSecurityCard::new(SimTransport::new(card)).read_basic(&NoKeys).unwrap();
    assert_eq!((info.name_09.as_deref(), info.name_ext.as_deref()), (Some("陈〓"), Some("上土下口吉")));
    let card = personalize(2, "张三", "", Profile::builtin()).unwrap();
    let info = SocialSecurityCard::new(SimTransport::new(card)).read_basic(&NoKeys).unwrap();
    assert_eq!((info.name.as_deref(), info.name_ext.as_deref()), (Some("张三"), Some("")));
}

/// Generation 1 has no 4E: the personalizer refuses a name it could not hold whole; and a name longer than 4E
/// is refused, never cut.
#[test]
fn a_name_that_cannot_be_held_whole_is_refused() {
    let err = personalize(1, "张𠮷", "", Profile::builtin()).unwrap_err().to_string();
    assert!(err.contains("generation 1") && err.contains("张𠮷"), "{err}");
    let long = "阿卜杜𠮷热合曼·买买提"; // 24 bytes of GB 18030
    let err = personalize(2, long, "", Profile::builtin()).unwrap_err().to_string();
    assert!(err.contains("4E") && err.contains("24") && err.contains("20"), "{err}");
}

/// A deployment's profile file moves the name extension to tag 4F and 24 bytes: the personalizer writes it
/// there and card-core's reader finds it there, with no code changed.
#[test]
fn a_moved_name_extension_is_written_and_read_where_the_profile_says() {
    let text = Profile::builtin_toml().replacen(
        r#"{ tag = "4E", name = "姓名扩展", field = "name_ext", en = "name extension", format = "gb18030", len = 20"#,
        r#"{ tag = "4F", name = "姓名扩展", field = "name_ext", en = "name extension", format = "gb18030", len = 24"#,
        1,
    );
    let profile = Profile::from_toml(&text).unwrap();
    let long = "阿卜杜𠮷热合曼·买买提"; // 24 bytes: too long for the built-in 4E, fits the deployment's 4F
    for gen in [2, 3] {
        if gen == 2 {
            let r3 = ef06_record(personalize(gen, long, "", &profile).unwrap(), 3);
            assert_eq!((r3.tag, r3.value.len()), (0x4F, 24));
        }
        let card = personalize(gen, long, "", &profile).unwrap();
        let mut c = SocialSecurityCard::with_profile(SimTransport::new(card), Arc::new(profile.clone()));
        let info = c.read_basic(&keys()).unwrap();
        assert_eq!(info.name.as_deref(), Some(long), "gen {gen}");
        assert_eq!(info.name_09.as_deref(), Some("阿卜杜〓热合曼·买买提"), "gen {gen}");
        assert_eq!(info.name_ext.as_deref(), Some(long), "gen {gen}");
    }
}
