//! Items by national address, read and write; binaries in chunks.

use card_core::card::Address;
use card_core::national;
use card_core::security::NoKeys;
use card_core::Error;
use secrecy::SecretString;

use super::common::*;

#[test]
fn read_by_address_mirrors_the_address() {
    let mut c = card(2, true);
    let addr: Address = "SSSEEF05|05|06|07|$SSSEEF06|08|09|$DF01EF06|23|28|$".parse().unwrap();
    let v = c.read_items(&NoKeys, &addr, None).unwrap();
    assert_eq!(
        v.to_national(),
        "SSSEEF05|20200101|20300101|A0000001T|$SSSEEF06|371702198001010019|张三|$DF01EF06|T23|T28|$"
    );
}

#[test]
fn write_a_df01_item_with_uk_and_read_it_back() {
    for read_all in [true, false] {
        let mut c = card(2, read_all);
        let addr: Address = "DF01EF06|23|28|$".parse().unwrap();
        assert!(matches!(
            c.write_items(&NoKeys, &addr, "DF01EF06|北京市朝阳区|ABC|$"),
            Err(Error::MissingKey { key }) if key == "UK_DF01"
        ));
        c.write_items(&keys(), &addr, "DF01EF06|北京市朝阳区|ABC|$").unwrap();
        let v = c.read_items(&NoKeys, &addr, None).unwrap();
        assert_eq!(v.to_national(), "DF01EF06|北京市朝阳区|ABC|$");
        // a value longer than its field: an error, never a truncation; nothing is sent
        let err = c.write_items(&keys(), &addr, "DF01EF06|x|0123456789ABCDEF|$").unwrap_err();
        assert_eq!(national::code(&err), -42);
        let err = c.write_items(&keys(), &addr, "DF01EF06|x|$").unwrap_err();
        assert_eq!(national::code(&err), -14);
    }
}

#[test]
fn write_the_holder_name_with_ukmf_rare_character_in_4e() {
    let mut c = card(3, true);
    let addr: Address = "SSSEEF06|09|4E|$".parse().unwrap();
    c.write_items(&keys(), &addr, "SSSEEF06|李〓|李𠮷|$").unwrap();
    let info = c.read_basic(&keys()).unwrap();
    assert_eq!(info.name.as_deref(), Some("李𠮷"));
    assert_eq!(info.name_09.as_deref(), Some("李〓"));
    // 𠮷 cannot go into 09 (GBK)
    let err = c.write_items(&keys(), &addr, "SSSEEF06|李𠮷||$").unwrap_err();
    assert_eq!(national::code(&err), -41);
}

#[test]
fn pin_or_key_file_reads_with_the_key_or_the_pin() {
    let mut c = card(2, true);
    let addr: Address = "DF02EF05|42|41|$".parse().unwrap();
    let with_key = c.read_items(&keys(), &addr, None).unwrap();
    assert_eq!(with_key.to_national(), "DF02EF05|T42|T41|$");
    let pin = SecretString::from("123456".to_owned());
    assert_eq!(c.read_items(&NoKeys, &addr, Some(&pin)).unwrap(), with_key);
    let err = c.read_items(&NoKeys, &addr, None).unwrap_err();
    assert!(matches!(&err, Error::MissingKey { key } if key == "RK_DF02"), "{err:?}");
    assert_eq!(national::code(&err), -24);
}

#[test]
fn photo_in_chunks() {
    for gen in [2, 3] {
        let mut c = card(gen, true);
        let photo: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let (r, n) = apdus(&mut c, |c| c.write_binary(&keys(), "SSSEEF08", &photo));
        r.unwrap();
        // the first operation on a 3DES card reads EF05 record 3 after SELECT: a real card's FCI names the
        // algorithm, not generation 1 or 2 (CARD-PROFILE §4.2); the next operations know it
        let learn = if gen == 2 { 1 } else { 0 };
        assert_eq!(n, 1 + learn + 2 + 1 + 17, "SELECT, (EF05 3,) auth UKMF, SELECT EF, 17 × 248 bytes");
        let (back, n) = apdus(&mut c, |c| c.read_binary(&keys(), "SSSEEF08"));
        assert_eq!(back.unwrap(), photo);
        assert_eq!(n, if gen == 3 { 1 + 2 + 1 + 16 } else { 1 + 1 + 16 });
        if gen == 3 {
            assert!(matches!(c.read_binary(&NoKeys, "SSSEEF08"), Err(Error::MissingKey { .. })));
        }
    }
    assert!(matches!(card(1, true).read_binary(&NoKeys, "SSSEEF08"), Err(Error::BadParameter(_))));
}

/// The two-step write for a terminal without keys: the back end (here `LocalKeys`) computes the cryptogram
/// for the DF's update key named by the session; an application DF and SSSE; refusals write nothing.
#[test]
fn two_step_write_with_a_back_end_holding_the_keys() {
    use card_core::security::two_step;
    for gen in [2, 3] {
        let backend = keys();
        let mut c = card(gen, true);
        // DF01: UK_DF01, the card checked after the write
        let addr: Address = "DF01EF06|23|28|$".parse().unwrap();
        let w = c.begin_two_step_write(&addr, "DF01EF06|济南市|ABC|$").unwrap();
        assert_eq!(w.key(), "UK_DF01");
        let answer = two_step::backend_answer_for(&backend, &w.step1(), &w.key()).unwrap();
        w.finish(&answer).unwrap();
        assert_eq!(c.read_items(&NoKeys, &addr, None).unwrap().to_national(), "DF01EF06|济南市|ABC|$", "gen {gen}");
        // SSSE: UKMF, the card checked before the write
        let addr: Address = "SSSEEF06|0A|$".parse().unwrap();
        let w = c.begin_two_step_write(&addr, "SSSEEF06|2|$").unwrap();
        assert_eq!(w.key(), "UKMF");
        let answer = two_step::backend_answer_for(&backend, &w.step1(), &w.key()).unwrap();
        w.finish(&answer).unwrap();
        let back = c.read_items(&keys(), &addr, None).unwrap().to_national();
        assert_eq!(back, "SSSEEF06|2|$", "gen {gen}");

        // a cryptogram for another key: the card refuses, nothing is written
        let w = c.begin_two_step_write(&addr, "SSSEEF06|1|$").unwrap();
        let wrong = two_step::backend_answer_for(&backend, &w.step1(), "STK").unwrap();
        assert!(matches!(w.finish(&wrong), Err(Error::AuthFailed { .. })), "gen {gen}");
        assert_eq!(c.read_items(&keys(), &addr, None).unwrap().to_national(), "SSSEEF06|2|$");
        // a back end that does not know the card (wrong IRK answer): in SSSE nothing is written
        let w = c.begin_two_step_write(&addr, "SSSEEF06|1|$").unwrap();
        let mut answer = two_step::backend_answer_for(&backend, &w.step1(), &w.key()).unwrap();
        answer.replace_range(0..2, if answer.starts_with("00") { "11" } else { "00" });
        assert!(matches!(w.finish(&answer), Err(Error::InternalAuthFailed)));
        assert_eq!(c.read_items(&keys(), &addr, None).unwrap().to_national(), "SSSEEF06|2|$");
        // files of two DFs in one exchange, or a value that does not fit: refused after the SELECT that tells
        // the generation, before anything else is sent
        let two: Address = "SSSEEF06|0A|$DF01EF06|23|$".parse().unwrap();
        let before = c.transport().counters();
        assert!(matches!(c.begin_two_step_write(&two, "SSSEEF06|1|$DF01EF06|x|$"), Err(Error::BadParameter(_))));
        assert!(
            matches!(
                c.begin_two_step_write(&addr, "SSSEEF06|12|$"),
                Err(Error::Codec(card_core::codec::CodecError::TooLong { len: 2, max: 1 }))
            ),
            "sex is one character"
        );
        assert_eq!((c.transport().counters() - before).apdus, 2, "one SELECT each");
    }
}
