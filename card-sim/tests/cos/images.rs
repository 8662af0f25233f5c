//! Card images and atomicity.

use super::host::*;
use card_sim::{Card, Error, KeyAlgorithm};

#[test]
fn image_round_trip() {
    for c in both() {
        let image = c.card.to_image();
        assert!(image.contains("\"format\": \"sscard-sim-image\""));
        assert!(image.contains("\"version\": 1"));
        let back = Card::from_image(&image).unwrap();
        assert_eq!(back.to_image(), image);
        let mut h2 = Host { card: back, alg: c.alg };
        assert_eq!(h2.select_aid(SSSE_AID), 0x9000);
        assert_eq!(h2.verify(PIN), 0x9000);
        assert_eq!(h2.ext_auth(UKMF, &key_value(1, UKMF)), 0x9000);
    }
}

#[test]
fn save_and_load() {
    let c = personalized(KeyAlgorithm::Tdes);
    let dir = std::env::temp_dir().join(format!("card-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("card.json");
    c.card.save(&path).unwrap();
    let back = Card::load(&path).unwrap();
    assert_eq!(back.to_image(), c.card.to_image());
    assert!(matches!(Card::load(dir.join("missing.json")), Err(Error::Io { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_images_are_refused_clearly() {
    let c = personalized(KeyAlgorithm::Sm4);
    let image = c.card.to_image();
    assert!(matches!(Card::from_image("{"), Err(Error::ImageSyntax(_))));
    assert!(matches!(Card::from_image("[]"), Err(Error::ImageSyntax(_))));
    let other = image.replacen("\"version\": 1", "\"version\": 2", 1);
    assert!(matches!(Card::from_image(&other), Err(Error::ImageFormat { version: 2, .. })));
    let other = image.replacen("sscard-sim-image", "something-else", 1);
    assert!(matches!(Card::from_image(&other), Err(Error::ImageFormat { .. })));
    let bad_hex = image.replacen("\"fid\": \"DDF1\"", "\"fid\": \"XYZ\"", 1);
    assert!(matches!(Card::from_image(&bad_hex), Err(Error::ImageSyntax(_))));
    let bad_region = image.replacen("\"region\": \"371700\"", "\"region\": \"37A700\"", 1);
    let err = Card::from_image(&bad_region).unwrap_err();
    assert!(matches!(err, Error::ImageInvalid(_)), "{err}");
    let bad_tries = image.replacen("\"tries_left\": 15", "\"tries_left\": 99", 1);
    assert!(matches!(Card::from_image(&bad_tries), Err(Error::ImageInvalid(_))));
    // the error message never carries key material
    assert!(!format!("{err} {err:?}").contains(&hex::encode_upper(key_value(1, MK))));
}

#[test]
fn debug_never_prints_keys() {
    let c = personalized(KeyAlgorithm::Tdes);
    let dbg = format!("{:?} {:?}", c.card, c.card.mf());
    assert!(!dbg.contains(&hex::encode_upper(key_value(1, MK))));
    assert!(dbg.contains("REDACTED"));
}

#[test]
fn failing_commands_change_nothing() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        assert_eq!(c.ext_auth(UKMF, &key_value(1, UKMF)), 0x9000);
        let before = c.card.to_image();
        // a record that is too long, a TLV that lies about its length, a wrong MAC-less length
        assert_eq!(c.update_record(5, 2, &tlv(0x02, &[0x31; 30])), 0x6700);
        assert_eq!(c.update_record(5, 2, &[0x02, 0x09, 0x31]), 0x6A80);
        // line-protected update that passes the MAC but fails afterwards (record out of range)
        let apdu = c.mac_apdu([0x04, 0xDC, 0x09, 0x2C], &tlv(0x02, b"2"), &key_value(1, STK));
        assert_eq!(c.send(&apdu).1, 0x6A83);
        // secure WRITE KEY that passes the MAC but carries a bad record
        let rec = [&[0x09, 0x02, c.alg.id(), 0x03][..], &[0u8; 16]].concat();
        let apdu = c.enc_mac_apdu([0x84, 0xD4, 0x01, UKMF], &rec, &key_value(1, MK));
        assert_eq!(c.send(&apdu).1, 0x6A80);
        assert_eq!(c.card.to_image(), before);
        // a wrong PIN does change the image: the try counter
        assert_eq!(c.verify("000000"), 0x63C2);
        assert_ne!(c.card.to_image(), before);
    }
}

#[test]
fn inspection_api() {
    let c = personalized(KeyAlgorithm::Sm4);
    let ssse = c.card.mf().df_by_aid(&h(SSSE_AID)).unwrap();
    assert_eq!(ssse.fid, 0xDDF1);
    assert!(ssse.has_pin());
    assert_eq!(ssse.ef_with_sfi(5).unwrap().record(3), Some(&tlv(0x03, b"3.00")[..]));
    assert_eq!(ssse.ef_with_sfi(7).unwrap().binary().map(<[u8]>::len), Some(0x400));
    assert_eq!(ssse.key_info().len(), 7);
    assert_eq!(ssse.dfs().len(), 2);
    assert_eq!("SM4".parse::<KeyAlgorithm>().unwrap(), KeyAlgorithm::Sm4);
    assert!("ssf33".parse::<KeyAlgorithm>().is_err());
}

/// An image that never ends (`/dev/zero`, a FIFO nobody writes) or is larger than the limit is refused at once,
/// naming the file; the program says so with exit 2 (issue 11).
#[test]
fn unbounded_images_are_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.json");
    {
        let f = std::fs::File::create(&huge).unwrap();
        f.set_len(card_sim::MAX_IMAGE_FILE + 1).unwrap(); // sparse: no disk used
    }
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success(), "mkfifo is needed");
    let cases = [
        (std::path::PathBuf::from("/dev/zero"), std::io::ErrorKind::InvalidInput),
        (fifo, std::io::ErrorKind::InvalidInput),
        (huge, std::io::ErrorKind::FileTooLarge),
    ];
    for (path, kind) in cases {
        let t0 = std::time::Instant::now();
        match Card::load(&path) {
            Err(Error::Io { path: p, source }) => {
                assert_eq!(p, path.display().to_string());
                assert_eq!(source.kind(), kind, "{}: {source}", path.display());
            }
            other => panic!("{}: {other:?}", path.display()),
        }
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_card-sim"))
            .args(["show", "--image"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", path.display());
        assert!(err.contains(&path.display().to_string()), "the message names the file: {err}");
        assert!(err.contains(&format!("{} bytes", card_sim::MAX_IMAGE_FILE)), "the message names the limit: {err}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{}: not refused at once", path.display());
    }
}

/// `card-sim fixtures` whose `fixtures.toml` or `test-keys.toml` never ends (a link to `/dev/zero`, a FIFO nobody
/// writes) is refused at once naming the file and the 1 MiB limit, exit 2, and writes no image (issue 11).
#[test]
fn unbounded_fixture_specs_are_refused_fast() {
    let specs = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/cards");
    for (bad, fifo) in [("fixtures.toml", false), ("test-keys.toml", false), ("test-keys.toml", true)] {
        let dir = tempfile::tempdir().unwrap();
        for name in ["fixtures.toml", "test-keys.toml"] {
            std::fs::copy(format!("{specs}/{name}"), dir.path().join(name)).unwrap();
        }
        let path = dir.path().join(bad);
        std::fs::remove_file(&path).unwrap();
        if fifo {
            assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success(), "mkfifo is needed");
        } else {
            std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        }
        let t0 = std::time::Instant::now();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_card-sim"))
            .args(["fixtures", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(&path.display().to_string()), "the message names the file: {err}");
        assert!(err.contains("1048576 bytes"), "the message names the limit: {err}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{bad}: not refused at once");
        let images = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json")));
        assert_eq!(images.count(), 0, "{bad}: no image is written");
    }
}
