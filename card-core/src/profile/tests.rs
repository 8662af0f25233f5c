use super::*;

fn builtin() -> &'static Profile {
    Profile::builtin()
}

#[test]
fn builtin_profile_is_valid() {
    let p = Profile::from_toml(Profile::builtin_toml()).unwrap();
    assert_eq!(p.dfs.len(), 6);
    assert_eq!(p.df("ssse").unwrap().aid.as_deref(), Some(&hex::decode("7378312E73682EC9E7BBE1B1A3D5CF").unwrap()[..]));
}

#[test]
fn ef05_record_numbers_are_tag_numbers() {
    let (_, ef05) = builtin().file("SSSEEF05").unwrap();
    for g in [Generation::ONE, Generation::TWO, Generation::THREE] {
        for tag in 1..=7u8 {
            assert_eq!(ef05.record_of(g, tag).map(|(n, _)| n), Some(tag));
        }
    }
    assert_eq!(ef05.record_len(Generation::TWO), Some(2 + 16));
}

#[test]
fn ef06_generation_1_has_no_name_extension() {
    let (_, ef06) = builtin().file("SSSEEF06").unwrap();
    let tags = |g| ef06.items(g).map(|i| i.tag).collect::<Vec<_>>();
    assert_eq!(tags(Generation::ONE), [0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D]);
    assert_eq!(tags(Generation::TWO), [0x08, 0x09, 0x4E, 0x0A, 0x0B, 0x0C, 0x0D]);
    // CARD-PROFILE §2.1: in v1 cards record 3 = tag 0A
    assert_eq!(ef06.record_of(Generation::ONE, 0x0A).map(|(n, _)| n), Some(3));
    assert_eq!(ef06.record_of(Generation::TWO, 0x0A).map(|(n, _)| n), Some(4));
    assert_eq!(ef06.record_of(Generation::ONE, 0x4E), None);
}

#[test]
fn generation_3_reads_need_rkssse() {
    let p = builtin();
    let (ssse, ef06) = p.file("SSSEEF06").unwrap();
    assert_eq!(ef06.read.for_generation(Generation::TWO), &Access::Free);
    assert_eq!(ef06.read.for_generation(Generation::THREE), &Access::Key("RKSSSE".into()));
    let (_, ef05) = p.file("SSSEEF05").unwrap();
    // the card number is free as on a real 3.00 card (CARD-PROFILE §3) …
    let (_, card_no) = ef05.record_of(Generation::THREE, 0x07).unwrap();
    assert_eq!(card_no.read, None);
    assert_eq!(ef05.read.for_generation(Generation::THREE), &Access::Free);
    // … and a profile setting: a deployment whose cards protect it says so
    let protected = with(|t| {
        t.replacen(r#"format = "an", len = 9 }"#, r#"format = "an", len = 9, read = "free; 3: key RKSSSE" }"#, 1)
    })
    .unwrap();
    let (_, card_no) = protected.file("SSSEEF05").unwrap().1.record_of(Generation::THREE, 0x07).unwrap();
    assert_eq!(card_no.read.as_ref().unwrap().for_generation(Generation::THREE), &Access::Key("RKSSSE".into()));
    assert_eq!(ssse.keys_for(Generation::TWO).count() + 1, ssse.keys_for(Generation::THREE).count());
    assert!(p.file("SSSEEF08").unwrap().1.generations.contains(Generation::TWO));
    assert!(!p.file("SSSEEF08").unwrap().1.generations.contains(Generation::ONE));
    assert_eq!(p.file("SSSEEF07").unwrap().1.size(Generation::ONE), Some(0x300));
    assert_eq!(p.file("SSSEEF07").unwrap().1.size(Generation::TWO), Some(0x400));
    assert_eq!(p.dfs_for(Generation::ONE).count(), 5, "DF07 is v2+");
}

#[test]
fn application_files() {
    let p = builtin();
    let (_, ef15) = p.file("DF01EF15").unwrap();
    let (_, b_tlv) = ef15.record_of(Generation::TWO, 0x40).unwrap();
    // 57 an 03, 58 cn 03, 59 an 28 -> (2+3)+(2+3)+(2+40)
    assert_eq!(b_tlv.len, 52);
    let (_, cyc) = p.file("DF04EF08").unwrap();
    assert_eq!(cyc.record_count(Generation::TWO), Some(30));
    assert_eq!(cyc.record_len(Generation::TWO), Some(2 + 1 + 6 + 7 + 4 + 4 + 4));
    assert_eq!(p.file("DF01EF1A").unwrap().1.size(Generation::TWO), Some(0x128));
    assert_eq!(p.file("DF09EF05"), None);
    assert_eq!(p.file("EF05"), None);
}

fn with(edit: impl Fn(&str) -> String) -> Result<Profile, ProfileError> {
    Profile::from_toml(&edit(Profile::builtin_toml()))
}

fn refused(edit: impl Fn(&str) -> String, entry: &str, problem: &str) {
    match with(edit) {
        Err(ProfileError::Invalid { entry: e, problem: p }) => {
            assert_eq!(e, entry, "{p}");
            assert!(p.contains(problem), "{p}");
        }
        other => panic!("expected refusal at {entry}, got {other:?}"),
    }
}

#[test]
fn contradictions_are_refused_naming_the_entry() {
    refused(
        |t| t.replacen(r#"{ tag = "02", name = "卡的类别""#, r#"{ tag = "01", name = "卡的类别""#, 1),
        "SSSE EF05",
        "duplicate tag 01",
    );
    refused(
        |t| t.replacen("format = \"an\", len = 30 }", "format = \"an\", len = 300 }", 1),
        "SSSE EF06 item 09",
        "len 300",
    );
    refused(|t| t.replacen("update = \"key UKMF\"", "update = \"key UKXX\"", 1), "SSSE EF05", "names key UKXX");
    // RKSSSE exists on generation 3 only
    refused(
        |t| t.replacen("read = \"free; 3: key RKSSSE\"", "read = \"key RKSSSE\"", 1),
        "SSSE EF06",
        "generation 1 names key RKSSSE",
    );
    refused(
        |t| {
            t.replacen(
                "kid = \"04\", usage = \"external-auth\", max_tries = 15 },\n  { name = \"PUK\"",
                "kid = \"01\", usage = \"external-auth\", max_tries = 15 },\n  { name = \"PUK\"",
                1,
            )
        },
        "SSSE",
        "duplicate key id 01",
    );
    refused(|t| t.replacen("sfi = 6\n", "sfi = 5\n", 1), "SSSE", "duplicate SFI 5");
    refused(|t| t.replacen("sfi = 6\n", "sfi = 31\n", 1), "SSSE EF06", "SFI 31");
    refused(|t| t.replacen("size = 4096", "size = 40000", 1), "SSSE EF08", "size 40000");
    refused(
        |t| t.replacen("read = \"free; 3: key RKSSSE\"", "read = \"free; 4: key RKSSSE\"", 1),
        "SSSE EF06",
        "generations",
    );
    refused(|t| t.replacen("read = \"free\"", "read = \"sometimes\"", 1), "SSSE EF05", "unknown access condition");
    refused(|t| t.replacen("aid = \"D15600000501\"", "aid = \"D15600000500\"", 1), "profile", "duplicate AID");
    refused(
        |t| t.replacen("format = \"b\", len = 16", "format = \"bcd\", len = 16", 1),
        "SSSE EF05 item 01",
        "unknown format",
    );
    assert!(matches!(with(|t| t.replacen("[pin]", "[pin", 1)), Err(ProfileError::Syntax(_))));
    refused(|t| t.replacen("name = \"DF01\"\n", "name = \"DF01\"\npin = true\n", 1), "pin", "exactly one DF");
    assert!(matches!(with(|t| t.replacen("sfi = 5\n", "sfi = 5\nbogus = 1\n", 1)), Err(ProfileError::Syntax(_))));
}

#[test]
fn a_deployment_can_change_a_profile_row() {
    // e.g. a city whose DF01 EF05 is protected by the PIN
    let p = with(|t| {
        t.replacen(
            "read = \"free\"\n  update = \"key UK\"\n  items = [\n    { tag = \"20\"",
            "read = \"pin\"\n  update = \"key UK\"\n  items = [\n    { tag = \"20\"",
            1,
        )
    })
    .unwrap();
    assert_eq!(p.file("DF01EF05").unwrap().1.read.for_generation(Generation::TWO), &Access::Pin);
}

#[test]
fn spec_versions() {
    assert_eq!(Generation::from_spec_version("2.00"), Some(Generation::TWO));
    assert_eq!(Generation::from_spec_version("3.00\0"), Some(Generation::THREE));
    assert_eq!(Generation::from_spec_version("4.00"), None);
    assert_eq!(Generation::from_spec_version("2.01"), Some(Generation::TWO), "three characters count");
    assert_eq!(Generation::from_spec_version(""), Some(Generation::ONE), "empty means 1.0x");
    assert_eq!(Generation::from_spec_version("2."), None);
    assert_eq!(Generation::THREE.spec_version(), "3.00");
}

/// Issue 10: every item of the basic information names its field; the name extension is `gb18030`.
#[test]
fn basic_information_items_name_their_fields() {
    let p = builtin();
    let ssse = p.df("SSSE").unwrap();
    for g in [Generation::ONE, Generation::TWO, Generation::THREE] {
        for ef in ["EF05", "EF06"] {
            for item in ssse.ef(ef).unwrap().items(g) {
                assert!(item.field.is_some(), "{ef} item {:02X} names no field", item.tag);
            }
        }
    }
    let at = |g, f| p.field(g, f).map(|fi| (fi.df.name.as_str(), fi.ef.name.as_str(), fi.record, fi.item.tag));
    assert_eq!(at(Generation::TWO, ItemField::CardId), Some(("SSSE", "EF05", 1, 0x01)));
    assert_eq!(at(Generation::TWO, ItemField::CardNumber), Some(("SSSE", "EF05", 7, 0x07)));
    assert_eq!(at(Generation::TWO, ItemField::Name), Some(("SSSE", "EF06", 2, 0x09)));
    assert_eq!(at(Generation::TWO, ItemField::NameExt), Some(("SSSE", "EF06", 3, 0x4E)));
    assert_eq!(at(Generation::ONE, ItemField::NameExt), None, "generation 1 has no 4E");
    assert_eq!(at(Generation::ONE, ItemField::Sex), Some(("SSSE", "EF06", 3, 0x0A)));
    let ext = p.field(Generation::THREE, ItemField::NameExt).unwrap();
    assert_eq!((ext.format(), ext.item.len), (Some(crate::codec::Format::Gb18030), 20));
    assert_eq!(p.field(Generation::TWO, ItemField::Name).unwrap().format(), Some(crate::codec::Format::An));
    for f in ItemField::ALL {
        assert_eq!(ItemField::parse(f.as_str()), Some(f));
        assert!(p.field(Generation::THREE, f).is_some(), "{f}");
    }
}

/// A deployment moves the name extension to another tag and length in its profile file: the lookup follows.
#[test]
fn a_deployment_can_move_a_field() {
    let p = with(|t| {
        t.replacen(
            r#"{ tag = "4E", name = "姓名扩展", field = "name_ext", en = "name extension", format = "gb18030", len = 20"#,
            r#"{ tag = "4F", name = "姓名扩展", field = "name_ext", en = "name extension", format = "gb18030", len = 24"#,
            1,
        )
    })
    .unwrap();
    let ext = p.field(Generation::TWO, ItemField::NameExt).unwrap();
    assert_eq!((ext.record, ext.item.tag, ext.item.len), (3, 0x4F, 24));
}

#[test]
fn fields_are_checked() {
    refused(
        |t| t.replacen(r#"field = "sex""#, r#"field = "gender""#, 1),
        "SSSE EF06 item 0A",
        "unknown field \"gender\"",
    );
    refused(|t| t.replacen(r#"field = "sex""#, r#"field = "ssn""#, 1), "profile", "duplicate field ssn");
    refused(
        |t| {
            t.replacen(
                r#"field = "card_id", en = "card identifier", format = "b""#,
                r#"field = "card_id", en = "card identifier", format = "an""#,
                1,
            )
        },
        "SSSE EF05 item 01",
        "field card_id cannot be held in format an",
    );
    refused(
        |t| {
            t.replacen(
                r#"field = "name", en = "name", format = "an""#,
                r#"field = "name", en = "name", format = "dec""#,
                1,
            )
        },
        "SSSE EF06 item 09",
        "field name cannot be held in format dec",
    );
    // the same field on generations that do not overlap is one item per generation
    let p = with(|t| {
        t.replacen(
            r#"format = "gb18030", len = 20, generations = [2, 3] },"#,
            r#"format = "gb18030", len = 20, generations = [2, 3] },
    { tag = "4F", name = "姓名扩展", field = "name_ext", format = "an", len = 20, generations = [1] },"#,
            1,
        )
    })
    .unwrap();
    assert_eq!(p.field(Generation::ONE, ItemField::NameExt).unwrap().item.tag, 0x4F);
}

/// A profile file that never ends (`/dev/zero`) or is larger than 4 MiB is refused at once, naming the file and
/// the limit (issue 11).
#[test]
fn unbounded_profile_files_are_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::File::create(&huge).unwrap().set_len(4 * 1024 * 1024 + 1).unwrap(); // sparse
    let cases = [
        (std::path::PathBuf::from("/dev/zero"), std::io::ErrorKind::InvalidInput),
        (huge, std::io::ErrorKind::FileTooLarge),
    ];
    for (path, kind) in cases {
        let t0 = std::time::Instant::now();
        let e = Profile::load(&path).unwrap_err();
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        match e {
            ProfileError::Io(shown, source) => {
                assert_eq!(shown, path.display().to_string());
                assert_eq!(source.kind(), kind, "{source}");
                assert!(source.to_string().contains("4194304 bytes"), "the limit is named: {source}");
            }
            other => panic!("{}: {other:?}", path.display()),
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "{}: not refused at once", path.display());
    }
}
