//! libsscard.so as a counter program uses it: `tests/c/read_basic.c`, compiled with `cc` against the committed
//! header `include/sscard.h` and the built library, run against card-sim cards in `Virtual PCD 00 00` through
//! pcscd, its output bytes (GBK) compared with the national strings of `fixtures/national/` (written by hand).
//!
//! The C program's output buffers are exactly the published sizes, followed by canary bytes it checks; one run is
//! under valgrind with buffers of exactly the published size. `header_is_current` checks the header against
//! what cbindgen generates from `src/ffi.rs` now.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use card_core::codec::RegionCode;
use card_core::security::{key_file, two_step};
use testkit::key_service::KeyService;
use testkit::pki::Pki;
use testkit::{vpcd_lock, Reader0, READER};

/// The other virtual reader, empty in these tests.
const READER1: &str = "Virtual PCD 00 01";
const TERMINAL: &str = "[terminal]\nterminal_no = \"371700000001\"\ndevice_no = \"SIM-READER-01\"\n";
const GEN2_INFO: &str = "371700D15600000500000000000000A2|A0000001T|";
const GEN3_INFO: &str = "371700D15600000500000000000000A3|B0000002U|";

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folder of `libsscard.so`: beside this test executable (`target/debug/deps/`), where cargo puts the cdylib
/// it builds with the rlib the tests link (the copy in `target/debug/` is refreshed by `cargo build` only).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_owned();
    assert!(
        dir.join("libsscard.so").is_file(),
        "{} has no libsscard.so: `cargo test -p libsscard` builds it with the tests",
        dir.display()
    );
    dir
}

/// The C program, compiled once per test run (warnings are errors) into `CARGO_TARGET_TMPDIR/libsscard-c/`.
fn program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libsscard-c");
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("read_basic");
        // built under a name of this process, then renamed: test runs of several worktrees may share the folder
        let building = dir.join(format!("read_basic.{}", std::process::id()));
        let o = Command::new("cc")
            .args(["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-pthread", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&building)
            .arg("-I")
            .arg(manifest().join("include"))
            .arg(manifest().join("tests/c/read_basic.c"))
            .arg("-L")
            .arg(lib_dir())
            .arg("-lsscard")
            .output()
            .expect("run cc");
        assert!(o.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&o.stderr));
        std::fs::rename(&building, &exe).unwrap();
        exe
    })
}

/// A configuration file in `dir` (a new one each call).
fn config(dir: &Path, text: &str) -> PathBuf {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("sscard-{n}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn readers(contact: &str) -> String {
    format!("[readers]\ncontact = \"{contact}\"\n{TERMINAL}")
}

fn test_keys_config() -> String {
    let keys = testkit::fixture("cards/test-keys.toml");
    format!("{}[keys]\nmode = \"local\"\nregion = \"371700\"\nkey_file = \"{}\"\n", readers(READER), keys.display())
}

fn command(config: &Path, args: &[&[u8]]) -> Command {
    let mut c = Command::new(program());
    c.args(args.iter().map(|a| OsStr::from_bytes(a)))
        .env("LD_LIBRARY_PATH", lib_dir())
        .env("SSCARD_CONFIG", config)
        .stdin(Stdio::null());
    c
}

fn run(config: &Path, args: &[&[u8]]) -> Output {
    command(config, args).output().expect("run the C program")
}

/// The calls' `(code, output bytes)` of a run that ended well.
fn calls(o: &Output) -> Vec<(i64, Vec<u8>)> {
    assert!(o.status.success(), "{:?}\nstdout {}\nstderr {}", o.status, lossy(&o.stdout), lossy(&o.stderr));
    let mut lines = o.stdout.split(|b| *b == b'\n');
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let code = std::str::from_utf8(line.strip_prefix(b"code ").expect("a code line")).unwrap().parse().unwrap();
        let bytes = lines.next().and_then(|l| l.strip_prefix(b"out ")).expect("an out line").to_vec();
        out.push((code, bytes));
    }
    out
}

/// The one call of a run.
fn call(config: &Path, args: &[&[u8]]) -> (i64, Vec<u8>) {
    let o = run(config, args);
    if !o.stderr.is_empty() {
        eprintln!("{}", lossy(&o.stderr));
    }
    let mut all = calls(&o);
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn lossy(b: &[u8]) -> String {
    let (text, _, _) = encoding_rs::GB18030.decode(b);
    text.into_owned()
}

/// GBK (GB 18030 for characters outside GBK), by encoding_rs directly.
fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

fn national(name: &str) -> Vec<u8> {
    gbk(&std::fs::read_to_string(testkit::fixture(&format!("national/{name}"))).unwrap())
}

#[test]
fn header_is_current() {
    let generated = generate_header();
    let committed_path = manifest().join("include/sscard.h");
    if std::env::var_os("SSCARD_BLESS_HEADER").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/sscard.h differs from what cbindgen generates from src/ffi.rs; regenerate it with \
         SSCARD_BLESS_HEADER=1 cargo test -p libsscard --test c_api header_is_current"
    );
    assert!(committed.contains("the library HOLDS THE CARD"), "the header says the card is held between the steps");
}

/// The header cbindgen makes of `src/ffi.rs`. cbindgen takes only `extern "C"` functions: it is given the file
/// with `extern "system"` read as `extern "C"`, which is what `system` is on Linux.
fn generate_header() -> String {
    let source = std::fs::read_to_string(manifest().join("src/ffi.rs")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ffi = dir.path().join("ffi.rs");
    std::fs::write(&ffi, source.replace("extern \"system\"", "extern \"C\"")).unwrap();
    let config = cbindgen::Config {
        language: cbindgen::Language::C,
        header: Some(std::fs::read_to_string(manifest().join("include/header-comment.txt")).unwrap()),
        include_guard: Some("SSCARD_H".into()),
        autogen_warning: Some(
            "/* Generated by cbindgen from libsscard/src/ffi.rs (test header_is_current): do not edit. */".into(),
        ),
        cpp_compat: true,
        usize_is_size_t: true,
        documentation_style: cbindgen::DocumentationStyle::C,
        ..Default::default()
    };
    let mut out = Vec::new();
    cbindgen::Builder::new().with_config(config).with_src(&ffi).generate().expect("cbindgen").write(&mut out);
    String::from_utf8(out).unwrap()
}

/// `sscard.pc.in`, filled in as a package build would, gives what a counter program is compiled with:
/// `pkg-config --cflags --libs sscard` builds the C program, which then runs.
#[test]
fn the_pkg_config_file_builds_a_caller() {
    let dir = testkit::tempdir();
    let pc = std::fs::read_to_string(manifest().join("sscard.pc.in"))
        .unwrap()
        .replace("@PREFIX@", "/usr")
        .replace("@LIBDIR@", &lib_dir().display().to_string())
        .replace("@INCLUDEDIR@", &manifest().join("include").display().to_string())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::write(dir.path().join("sscard.pc"), pc).unwrap();
    let o = Command::new("pkg-config")
        .args(["--cflags", "--libs", "sscard"])
        .env("PKG_CONFIG_PATH", dir.path())
        .output()
        .expect("run pkg-config (Debian package pkgconf)");
    assert!(o.status.success(), "{}", lossy(&o.stderr));
    let flags = String::from_utf8(o.stdout).unwrap();
    assert!(flags.contains("-lsscard"), "{flags}");
    let exe = dir.path().join("caller");
    let o = Command::new("cc")
        .args(["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-pthread", "-o"])
        .arg(&exe)
        .arg(manifest().join("tests/c/read_basic.c"))
        .args(flags.split_whitespace())
        .output()
        .unwrap();
    assert!(o.status.success(), "cc with pkg-config's flags {flags}: {}", lossy(&o.stderr));
    let o = Command::new(&exe).arg("nulls").env("LD_LIBRARY_PATH", lib_dir()).output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).lines().count() == 31, "{o:?}");
}

#[test]
fn read_basic_gen2_gbk_bytes_in_an_exact_buffer_and_every_itype() {
    let dir = testkit::tempdir();
    let contact_only = config(dir.path(), &readers(READER));
    let both =
        config(dir.path(), &format!("[readers]\ncontact = \"{READER}\"\ncontactless = \"{READER1}\"\n{TERMINAL}"));
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let expected = national("gen2-basic.txt");
    // 1 contact; 3 and 4 with no contactless reader: the contact one
    for itype in [b"1", b"3", b"4"] {
        assert_eq!(call(&contact_only, &[b"read_basic", itype]), (0, expected.clone()), "iType {itype:?}");
    }
    assert_eq!(call(&contact_only, &[b"read_basic", b"2"]), (-13, vec![]), "no contactless reader configured");
    assert_eq!(call(&contact_only, &[b"read_basic", b"0"]), (-14, vec![]));
    assert_eq!(call(&contact_only, &[b"read_basic", b"5"]), (-14, vec![]));
    // a contactless reader without a card: 2 is no card, 4 tries it and then the contact one
    assert_eq!(call(&both, &[b"read_basic", b"2"]), (-2, vec![]));
    assert_eq!(call(&both, &[b"read_basic", b"4"]), (0, expected.clone()));
    assert_eq!(call(&both, &[b"read_basic", b"3"]), (0, expected));
}

#[test]
fn read_basic_gen3_name_outside_gbk_with_keys_and_minus_2203_without() {
    let dir = testkit::tempdir();
    let no_keys = config(dir.path(), &readers(READER));
    let keys = config(dir.path(), &test_keys_config());
    let _lock = vpcd_lock();
    let mut card = Some(Reader0::insert_fixture("gen3-personalized.json"));
    let (code, out) = call(&keys, &[b"read_basic", b"1"]);
    assert_eq!((code, lossy(&out)), (0, lossy(&national("gen3-basic.txt"))));
    assert_eq!(out, national("gen3-basic.txt"), "𠮷 as its GB 18030 four bytes 95 34 B2 35");
    assert!(out.windows(4).any(|w| w == [0x95, 0x34, 0xB2, 0x35]));
    // no keys: the national answer with SSN and name empty, and −2203 (callers switch to the _HSM_ functions)
    assert_eq!(call(&no_keys, &[b"read_basic", b"1"]), (-2203, national("gen3-basic-nokeys.txt")));

    // the two-step read, the back end's HSM played with the published test keys
    let hsm = two_step_read(&no_keys);
    assert_eq!(hsm[0].0, 0);
    let step1 = String::from_utf8(hsm[0].1.clone()).unwrap();
    assert!(step1.starts_with("371700|5353031037170000000000000000A3|03|371700D15600000500000000000000A3|"), "{step1}");
    assert_eq!(hsm[1], (0, national("gen3-basic.txt")), "Step2 gives iReadCardBas's string");
    // a wrong answer: the card refuses the external authentication with its status word
    let refused = two_step_read_answering(&no_keys, |_| format!("{}|{}|", "00".repeat(16), "00".repeat(16)));
    assert!(refused[1].0 < -0x6000 && refused[1].1.is_empty(), "{:?}", refused[1]);
    // Step2 with no Step1 pending in the process
    assert_eq!(call(&no_keys, &[b"step2", b"00|00|"]), (-14, vec![]));
    // the card pulled between Step1 and Step2: no card
    let pulled = two_step_read_answering(&no_keys, |step1| {
        card.take().unwrap().remove();
        let keys = test_keys();
        two_step::backend_answer(&keys, step1).unwrap()
    });
    assert_eq!(pulled[1], (-2, vec![]));
}

fn test_keys() -> card_core::security::LocalKeys {
    key_file::load(&testkit::fixture("cards/test-keys.toml"), RegionCode::parse("371700").unwrap()).unwrap()
}

fn two_step_read(config: &Path) -> Vec<(i64, Vec<u8>)> {
    let keys = test_keys();
    two_step_read_answering(config, |step1| two_step::backend_answer(&keys, step1).unwrap())
}

/// `hsm_basic 1`: Step1's string to `answer`, its answer to Step2 on the program's stdin.
fn two_step_read_answering(config: &Path, answer: impl FnOnce(&str) -> String) -> Vec<(i64, Vec<u8>)> {
    let mut child =
        command(config, &[b"hsm_basic", b"1"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut code = String::new();
    let mut step1 = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut code).unwrap();
    std::io::BufRead::read_line(&mut stdout, &mut step1).unwrap();
    let step1 = step1.trim_end().strip_prefix("out ").unwrap().to_owned();
    assert_eq!(code.trim_end(), "code 0", "{step1}");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", answer(&step1)).unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let o =
        Output { status, stdout: [code.as_bytes(), b"out ", step1.as_bytes(), b"\n", &rest].concat(), stderr: vec![] };
    calls(&o)
}

/// `hsm_items`/`hsm_write`: Step1's string to `answer`, its answer to Step2 on the program's stdin.
fn two_step_items(config: &Path, args: &[&[u8]], answer: impl FnOnce(&str) -> String) -> Vec<(i64, Vec<u8>)> {
    let mut child = command(config, args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut code = String::new();
    let mut step1 = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut code).unwrap();
    std::io::BufRead::read_line(&mut stdout, &mut step1).unwrap();
    let step1 = step1.strip_prefix("out ").unwrap().trim_end().to_owned();
    let mut stdin = child.stdin.take().unwrap();
    if code.trim_end() == "code 0" {
        writeln!(stdin, "{}", answer(&step1)).unwrap();
    }
    drop(stdin);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let o =
        Output { status, stdout: [code.as_bytes(), b"out ", step1.as_bytes(), b"\n", &rest].concat(), stderr: vec![] };
    calls(&o)
}

/// A counter without keys reads and writes a generation 3 card's protected items through `iReadCard_HSM_*` and
/// `iWriteCard_HSM_*`, the back end's HSM played with the published test keys (`C‖R4`, 32 hex, in the published
/// 32-character `pKey`). Free items need no exchange (−2204); bad data at Step2 writes nothing; a wrong
/// cryptogram is the card's refusal; a Step2 that answers another Step1 is −14.
#[test]
fn hsm_reads_and_writes_items_for_a_counter_without_keys() {
    let dir = testkit::tempdir();
    let no_keys = config(dir.path(), &readers(READER));
    let keys = config(dir.path(), &test_keys_config());
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let local = test_keys();
    let info = GEN3_INFO.as_bytes();
    let holder = b"SSSEEF06|08|09|$".as_slice();
    let expected = call(&keys, &[b"read_card", b"1", info, holder]);
    assert_eq!(expected.0, 0);
    assert!(lossy(&expected.1).starts_with("SSSEEF06|371702199203150022|"), "{}", lossy(&expected.1));
    // without keys the plain read is refused: RKSSSE is missing
    assert_eq!(call(&no_keys, &[b"read_card", b"1", info, holder]), (-2203, vec![]));
    let steps = two_step_items(&no_keys, &[b"hsm_items", b"1", info, holder], |step1| {
        assert!(step1.starts_with("371700|5353031037170000000000000000A3|03|371700D15600000500000000000000A3|"));
        two_step::backend_external_answer(&local, step1, "RKSSSE").unwrap()
    });
    assert_eq!(steps[1], expected, "Step2 gives iReadCard's string");
    // C alone (16 hex) also does
    let steps = two_step_items(&no_keys, &[b"hsm_items", b"1", info, holder], |step1| {
        two_step::backend_external_answer(&local, step1, "RKSSSE").unwrap()[..16].to_owned()
    });
    assert_eq!(steps[1], expected);
    // free items: no exchange needed
    assert_eq!(call(&no_keys, &[b"hsm_items", b"1", info, b"SSSEEF05|05|07|$"]), (-2204, vec![]));
    // another card's pCardInfo, a malformed address: before any exchange
    assert_eq!(call(&no_keys, &[b"hsm_items", b"1", GEN2_INFO.as_bytes(), holder]).0, -22);
    assert_eq!(call(&no_keys, &[b"hsm_items", b"1", info, b"SSSEEF06|8|$"]), (-14, vec![]));
    // an answer for another Step1 (its R4), a wrong cryptogram (the card counts a try)
    let other = two_step_items(&no_keys, &[b"hsm_items", b"1", info, holder], |step1| {
        let answer = two_step::backend_external_answer(&local, step1, "RKSSSE").unwrap();
        format!("{}{}", &answer[..16], "00".repeat(8))
    });
    assert_eq!(other[1], (-14, vec![]));
    let wrong = two_step_items(&no_keys, &[b"hsm_items", b"1", info, holder], |_| "00".repeat(8));
    assert!((-0x63CF..=-0x63C0).contains(&wrong[1].0) && wrong[1].1.is_empty(), "{:?}", wrong[1]);
    // a Step2 with no Step1 of its function pending
    assert_eq!(call(&no_keys, &[b"items_step2", "00".repeat(16).as_bytes()]), (-14, vec![]));
    // put the try back
    let _ = two_step_items(&no_keys, &[b"hsm_items", b"1", info, holder], |step1| {
        two_step::backend_external_answer(&local, step1, "RKSSSE").unwrap()
    });

    // an application's file read under its RK (DF02EF05 is "pin|key RK")
    let df02 = b"DF02EF05|42|41|$".as_slice();
    let expected = call(&keys, &[b"read_card", b"1", info, df02]);
    assert_eq!(expected.0, 0);
    let steps = two_step_items(&no_keys, &[b"hsm_items", b"1", info, df02], |step1| {
        two_step::backend_external_answer(&local, step1, "RK_DF02").unwrap()
    });
    assert_eq!(steps[1], expected);
    // one exchange, one key: RKSSSE and RK_DF02 together are refused before Step1
    let both = [holder, df02].concat();
    assert_eq!(call(&no_keys, &[b"hsm_items", b"1", info, &both]), (-14, vec![]));

    // a write under UK_DF01 (DF01EF06 reads freely: read back with iReadCard)
    let address = b"DF01EF06|23|$".as_slice();
    let data = gbk("DF01EF06|济南市历下区泉城路|$");
    let write = |data: &[u8]| {
        let args: [&[u8]; 5] = [b"hsm_write", b"1", info, address, data];
        two_step_items(&no_keys, &args, |step1| two_step::backend_external_answer(&local, step1, "UK_DF01").unwrap())
    };
    let read_back = || call(&no_keys, &[b"read_card", b"1", info, address]);
    assert_eq!(call(&no_keys, &[b"hsm_items", b"1", info, address]), (-2204, vec![]));
    assert_eq!(write(&data)[1], (0, vec![]));
    assert_eq!(read_back(), (0, data.clone()));
    // 81 characters do not fit the item: refused at Step2 before the cryptogram, nothing written
    let long = gbk(&format!("DF01EF06|{}|$", "一".repeat(41)));
    assert_eq!(write(&long)[1], (-42, vec![]));
    assert_eq!(read_back(), (0, data.clone()));
    // a cryptogram of the wrong key: the card refuses it, nothing written
    let other = gbk("DF01EF06|青岛市|$");
    let args: [&[u8]; 5] = [b"hsm_write", b"1", info, address, &other];
    let refused =
        two_step_items(&no_keys, &args, |step1| two_step::backend_external_answer(&local, step1, "RK_DF01").unwrap());
    assert!((-0x63CF..=-0x63C0).contains(&refused[1].0), "{refused:?}");
    assert_eq!(read_back(), (0, data));
    assert_eq!(write(&other)[1], (0, vec![]), "a right cryptogram after a wrong one");
}

/// The vendor variants that take the PIN: a wrong PIN is −51 (and counts), the right one 0, a change takes, a
/// PIN of letters is refused before the card (−14); with no pinentry configured the entered variants are −13.
#[test]
fn pins_given_and_no_pinentry() {
    let dir = testkit::tempdir();
    let cfg = config(dir.path(), &readers(READER));
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let pin = |args: &[&[u8]]| call(&cfg, args);
    assert_eq!(pin(&[b"verify_pin", b"1", b"123456"]), (0, vec![]));
    assert_eq!(pin(&[b"verify_pin", b"1", b"111111"]), (-51, vec![]));
    assert_eq!(pin(&[b"verify_pin", b"1", b"12a456"]).0, -14);
    assert_eq!(pin(&[b"change_pin", b"1", b"111111", b"246810"]), (-51, vec![]));
    assert_eq!(pin(&[b"change_pin", b"1", b"123456", b"246810"]), (0, vec![]));
    assert_eq!(pin(&[b"verify_pin", b"1", b"123456"]), (-51, vec![]));
    assert_eq!(pin(&[b"verify_pin", b"1", b"246810"]), (0, vec![]));
    assert_eq!(pin(&[b"verify_pin_entered", b"1"]), (-13, vec![]));
    assert_eq!(pin(&[b"change_pin_entered", b"1"]), (-13, vec![]));
    assert_eq!(pin(&[b"reset_pin", b"1", GEN2_INFO.as_bytes(), b"reload"]), (-13, vec![]));
    assert_eq!(pin(&[b"verify_pin_entered", b"9"]), (-14, vec![]));
}

/// A pinentry that answers every GETPIN with `pin` (with `S PIN_REPEATED` when a repeat was asked) and logs the
/// commands it was sent (not the PIN: it never receives one) to `log`.
fn fake_pinentry(dir: &Path, pin: &str, log: &Path) -> PathBuf {
    let path = dir.join(format!("pinentry-{pin}"));
    std::fs::write(
        &path,
        format!(
            "#!/usr/bin/env python3\n\
             import sys\n\
             log = open({log:?}, 'a')\n\
             print('OK Pleased to meet you', flush=True)\n\
             repeat = False\n\
             for line in sys.stdin:\n\
             \x20   cmd = line.rstrip('\\n')\n\
             \x20   log.write(cmd.split(' ')[0] + '\\n'); log.flush()\n\
             \x20   if cmd.startswith('SETREPEAT'):\n\
             \x20       repeat = True\n\
             \x20   if cmd == 'GETPIN':\n\
             \x20       if repeat:\n\
             \x20           print('S PIN_REPEATED', flush=True)\n\
             \x20       print('D {pin}', flush=True)\n\
             \x20   print('OK', flush=True)\n\
             \x20   if cmd == 'BYE':\n\
             \x20       break\n",
            log = log.display().to_string()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

/// `hsm_pin`: Step1's string and Step2's output to `answer`, which gives Step2's and Step3's `pKey`.
fn three_steps(config: &Path, args: &[&[u8]], mut answer: impl FnMut(usize, &str) -> String) -> Vec<(i64, Vec<u8>)> {
    let mut child = command(config, args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = Vec::new();
    for step in 0..2 {
        let mut code = String::new();
        let mut out = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut code).unwrap();
        std::io::BufRead::read_line(&mut stdout, &mut out).unwrap();
        seen.push(format!("{code}{out}"));
        if code.trim_end() != "code 0" {
            break;
        }
        writeln!(stdin, "{}", answer(step, out.strip_prefix("out ").unwrap().trim_end())).unwrap();
    }
    drop(stdin);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    calls(&Output { status, stdout: [seen.concat().into_bytes(), rest].concat(), stderr: vec![] })
}

/// The PIN functions that ask the holder (through a pinentry program, here a fake one speaking its protocol), and
/// RELOAD PIN / PIN UNBLOCK in three steps for a counter without keys, the back end's HSM played with the
/// published test keys: the card takes the new PIN.
#[test]
fn pins_entered_through_pinentry_and_reset_in_three_steps() {
    let dir = testkit::tempdir();
    let log = dir.path().join("pinentry.log");
    let with_pin = |pin: &str, keys: &str| {
        let entry = fake_pinentry(dir.path(), pin, &log);
        config(dir.path(), &format!("{}{keys}[pin]\npinentry = \"{}\"\n", readers(READER), entry.display()))
    };
    let local_keys = test_keys_config();
    let local_keys = local_keys.split_once("[keys]").map(|(_, k)| format!("[keys]{k}")).unwrap();
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let info = GEN2_INFO.as_bytes();
    let given = config(dir.path(), &readers(READER));
    assert_eq!(call(&with_pin("123456", ""), &[b"verify_pin_entered", b"1"]), (0, vec![]));
    assert_eq!(call(&with_pin("111111", ""), &[b"verify_pin_entered", b"1"]), (-51, vec![]));
    let sent = std::fs::read_to_string(&log).unwrap();
    assert!(sent.contains("GETPIN\n") && sent.contains("SETDESC\n"), "{sent}");
    // iChangePIN asks the current and the new PIN (the fake gives the same to both)
    assert_eq!(call(&with_pin("123456", ""), &[b"change_pin_entered", b"1"]), (0, vec![]));
    // RELOAD PIN with the local test keys: the new PIN asked, then taken by the card
    assert_eq!(call(&with_pin("135790", &local_keys), &[b"reset_pin", b"1", info, b"reload"]), (0, vec![]));
    assert_eq!(call(&given, &[b"verify_pin", b"1", b"135790"]), (0, vec![]));
    // no keys: −2201, the caller switches to the three steps
    let no_keys = with_pin("246802", "");
    assert_eq!(call(&no_keys, &[b"reset_pin", b"1", info, b"reload"]), (-2201, vec![]));
    let local = test_keys();
    let hsm = |cfg: &Path, what: &[u8], back_end: &dyn Fn(&str, &str) -> String| {
        let mut step1 = String::new();
        three_steps(cfg, &[b"hsm_pin", b"1", info, what], |step, out| {
            if step == 0 {
                step1 = out.to_owned();
                String::new()
            } else {
                back_end(&step1, out)
            }
        })
    };
    let reload = |step1: &str, step2: &str| two_step::backend_pin_reload(&local, step1, step2).unwrap();
    let steps = hsm(&no_keys, b"reload", &reload);
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(lossy(&steps[0].1).starts_with("371700|"), "Step1 names the card");
    assert_eq!(steps[1], (0, b"246802|".to_vec()), "Step2: the new PIN (BCD) for the back end");
    assert_eq!(steps[2], (0, vec![]));
    assert_eq!(call(&given, &[b"verify_pin", b"1", b"246802"]), (0, vec![]));
    // a wrong MAC: the card refuses it and keeps the PIN
    let wrong = hsm(&with_pin("999999", ""), b"reload", &|_: &str, _: &str| "00000000|".to_owned());
    assert!(wrong[2].0 < -0x6000, "{wrong:?}");
    assert_eq!(call(&given, &[b"verify_pin", b"1", b"246802"]), (0, vec![]));
    // a Step2 pKey: no external authentication precedes RELOAD PIN on this card
    let keyed = three_steps(&no_keys, &[b"hsm_pin", b"1", info, b"reload"], |_, _| "00".repeat(16));
    assert_eq!(keyed[1], (-2204, vec![]));

    // block the PIN, then PIN UNBLOCK in three steps gives a new one
    let blocked = (0..16).any(|_| call(&given, &[b"verify_pin", b"1", b"000000"]).0 == -52);
    assert!(blocked);
    assert_eq!(call(&given, &[b"verify_pin", b"1", b"246802"]), (-52, vec![]));
    let unblock = |step1: &str, step2: &str| two_step::backend_pin_unblock(&local, step1, step2).unwrap();
    let steps = hsm(&with_pin("112233", ""), b"unblock", &unblock);
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(lossy(&steps[1].1).ends_with("|84240000|112233|"), "{:?}", lossy(&steps[1].1));
    assert_eq!(steps[2], (0, vec![]));
    assert_eq!(call(&given, &[b"verify_pin", b"1", b"112233"]), (0, vec![]));
}

#[test]
fn read_and_write_items_by_address_with_limits() {
    let dir = testkit::tempdir();
    let no_keys = config(dir.path(), &readers(READER));
    let keys = config(dir.path(), &test_keys_config());
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let info = GEN2_INFO.as_bytes();
    let read = |cfg: &Path, info: &[u8], addr: &[u8]| call(cfg, &[b"read_card", b"1", info, addr]);
    assert_eq!(
        read(&no_keys, info, b"SSSEEF05|05|07|$SSSEEF06|09|$"),
        (0, gbk("SSSEEF05|20200101|A0000001T|$SSSEEF06|张三|$"))
    );
    // pCardInfo of another card, a malformed one, a malformed address
    assert_eq!(read(&no_keys, GEN3_INFO.as_bytes(), b"SSSEEF05|05|$").0, -22);
    assert_eq!(read(&no_keys, b"371700D1|A0000001T|", b"SSSEEF05|05|$").0, -20);
    assert_eq!(read(&no_keys, info, b"SSSEEF05|5|$"), (-14, vec![]));
    assert_eq!(read(&no_keys, info, b"SSSEEF05|05|").0, -14);
    // bytes that are not GBK; a pFileAddr with no NUL within its published 1024 bytes
    assert_eq!(read(&no_keys, info, b"SSSEEF05|05|$\xFF\xFF").0, -41);
    assert_eq!(read(&no_keys, info, &[b"SSSEEF05|".as_slice(), &b"05|".repeat(340), b"$"].concat()).0, -42);

    // a write: refused with no keys configured (−2201, no PSAM), done with the update key, every value checked first
    let address = b"DF01EF06|23|$".as_slice();
    let street = "山东省济南市历下区泉城路一号院二号楼三单元四层五室六号七号八号九号十号十一号十二"; // 40 characters
    assert_eq!(gbk(street).len(), 80, "the item's full length");
    let data = gbk(&format!("DF01EF06|{street}|$"));
    let write = |cfg: &Path, data: &[u8]| call(cfg, &[b"write_card", b"1", info, address, data]);
    assert_eq!(write(&no_keys, &data), (-2201, vec![]));
    // a key file without UK_DF01: key level insufficient
    let partial = dir.path().join("region-keys.toml");
    std::fs::write(
        &partial,
        "format = \"sscard-region-keys\"\nversion = 1\nregion = \"371700\"\n[keys.3des]\nUKMF = \"00112233445566778899AABBCCDDEEFF\"\n",
    )
    .unwrap();
    let partial = config(
        dir.path(),
        &format!("{}[keys]\nmode = \"local\"\nregion = \"371700\"\nkey_file = \"region-keys.toml\"\n", readers(READER)),
    );
    assert_eq!(write(&partial, &data), (-24, vec![]));
    assert_eq!(write(&keys, &gbk(&format!("DF01EF06|{street}一|$"))).0, -42, "81 characters do not fit");
    assert_eq!(write(&keys, &data), (0, vec![]));
    assert_eq!(read(&no_keys, info, address), (0, data.clone()));

    // 330 times that item: 26 730 bytes, more than the published 20 480 of pOutInfo: −42, nothing written past it
    let many = [b"DF01EF06|".as_slice(), &b"23|".repeat(330), b"$"].concat();
    assert!(many.len() < 1024);
    assert_eq!(read(&no_keys, info, &many), (-42, vec![]));
    let fits = [b"DF01EF06|".as_slice(), &b"23|".repeat(250), b"$"].concat();
    let (code, out) = read(&no_keys, info, &fits);
    assert_eq!((code, out.len()), (0, 9 + 250 * 81 + 1));
}

#[test]
fn no_card_no_reader_and_null_pointers() {
    let dir = testkit::tempdir();
    let cfg = config(dir.path(), &readers(READER));
    let no_such = config(dir.path(), &readers("No Such Reader 99"));
    let broken = config(dir.path(), "[readers]\ncontact = 1\n");
    let missing = dir.path().join("missing.toml");
    let _lock = vpcd_lock();
    assert_eq!(call(&cfg, &[b"read_basic", b"1"]), (-2, vec![]));
    assert_eq!(call(&cfg, &[b"read_card", b"1", GEN2_INFO.as_bytes(), b"SSSEEF05|05|$"]), (-2, vec![]));
    assert_eq!(call(&no_such, &[b"read_basic", b"1"]), (-11, vec![]));
    assert_eq!(call(&no_such, &[b"read_basic", b"3"]), (-11, vec![]));
    // an unusable configuration: −12, and why on stderr
    for bad in [&broken, &missing] {
        let o = run(bad, &[b"read_basic", b"1"]);
        assert_eq!(calls(&o), [(-12, vec![])]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("libsscard: ") && err.contains(&*bad.display().to_string()), "{err}");
    }
    let o = run(&cfg, &[b"nulls"]);
    assert!(o.status.success(), "{o:?}");
    let text = String::from_utf8(o.stdout).unwrap();
    let codes: Vec<&str> = text.lines().collect();
    assert_eq!(codes.len(), 31, "{text}");
    for line in codes {
        assert!(line.ends_with(" -14"), "{line}");
    }
}

/// The library keeps the card connected between calls: another card inserted in between is read as itself (the
/// connection to the first is found dead and made again), and an emptied reader is no card.
#[test]
fn a_card_changed_between_two_calls_is_the_new_card() {
    let dir = testkit::tempdir();
    let cfg = config(dir.path(), &readers(READER));
    let _lock = vpcd_lock();
    let twice = |between: &mut dyn FnMut()| {
        let mut child =
            command(&cfg, &[b"read_basic_twice", b"1"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = Vec::new();
        for _ in 0..2 {
            std::io::BufRead::read_until(&mut stdout, b'\n', &mut first).unwrap();
        }
        between();
        writeln!(child.stdin.take().unwrap(), "go").unwrap();
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut rest).unwrap();
        let status = child.wait().unwrap();
        calls(&Output { status, stdout: [first, rest].concat(), stderr: vec![] })
    };
    let mut card = Some(Reader0::insert_fixture("gen2-personalized.json"));
    let swapped = twice(&mut || {
        card.take().unwrap().remove();
        card = Some(Reader0::insert_fixture("gen3-personalized.json"));
    });
    assert_eq!(swapped, [(0, national("gen2-basic.txt")), (-2203, national("gen3-basic-nokeys.txt"))]);
    let emptied = twice(&mut || {
        card.take().unwrap().remove();
    });
    assert_eq!(emptied, [(-2203, national("gen3-basic-nokeys.txt")), (-2, vec![])]);
}

/// A counter without keys with the province's key service (`keymgmt serve` over mutual TLS, test certificates,
/// the store of the published test keys): `iReadCardBas` reads the generation 3 card whole (0, the full string),
/// `iWriteCard` writes with the service's answer.
#[test]
fn the_key_service_serves_a_counter_without_keys() {
    let dir = testkit::tempdir();
    let pki = Pki::new(dir.path());
    let store = testkit::keys::issuer_store(dir.path());
    let server = pki.server();
    let keymgmt = testkit::script::programs().join("keymgmt");
    let policies = "[terminal.371700000001]\noperations = [\"read\", \"write\"]\nregions = [\"371700\"]\n\
                    dfs = [\"SSSE\", \"DF01\"]\n";
    let audit = dir.path().join("audit.jsonl");
    let service_config = testkit::key_service::config(&store, &pki, &server, &audit, policies);
    let service = KeyService::start(&keymgmt, dir.path(), "service", &service_config).unwrap();
    let cert = pki.terminal("371700000001");
    let cfg = config(
        dir.path(),
        &format!(
            "{}[keys]\nmode = \"key-service\"\nurls = [\"{}\"]\nca_file = \"{}\"\ncert_file = \"{}\"\n\
             key_file = \"{}\"\ntimeout_ms = 3000\n",
            readers(READER),
            service.base,
            pki.ca_pem.display(),
            cert.cert.display(),
            cert.key.display()
        ),
    );
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    assert_eq!(call(&cfg, &[b"read_basic", b"1"]), (0, national("gen3-basic.txt")), "{}", service.stderr());
    let data = gbk("DF01EF06|济南市历下区|$");
    let info = GEN3_INFO.as_bytes();
    assert_eq!(call(&cfg, &[b"write_card", b"1", info, b"DF01EF06|23|$", &data]), (0, vec![]), "{}", service.stderr());
    assert_eq!(call(&cfg, &[b"read_card", b"1", info, b"DF01EF06|23|$"]), (0, data));
}

/// The second caller: Python's ctypes loads the library and gets the same bytes.
#[test]
fn python_ctypes_gets_the_same_bytes() {
    let dir = testkit::tempdir();
    let cfg = config(dir.path(), &readers(READER));
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let python = |args: &[&[u8]]| {
        let o = Command::new("python3")
            .arg(manifest().join("tests/python/read_basic.py"))
            .arg(lib_dir().join("libsscard.so"))
            .args(args.iter().map(|a| OsStr::from_bytes(a)))
            .env("SSCARD_CONFIG", &cfg)
            .stdin(Stdio::null())
            .output()
            .expect("run python3");
        calls(&o)
    };
    assert_eq!(python(&[b"read_basic", b"1"]), [(0, national("gen2-basic.txt"))]);
    assert_eq!(
        python(&[b"read_card", b"1", GEN2_INFO.as_bytes(), b"SSSEEF06|08|09|$"]),
        [(0, gbk("SSSEEF06|371702198001010019|张三|$"))]
    );
    assert_eq!(python(&[b"read_basic", b"2"]), [(-13, vec![])]);
}

/// Between `_HSM_Step1` and `_Step2` the card is held: a read on that reader waits until the hold ends (here the
/// configured timeout of 1 s), and the late Step2 is −4 (the card was released, its challenge is gone).
#[test]
fn the_card_is_held_between_step1_and_step2() {
    let dir = testkit::tempdir();
    let cfg = config(dir.path(), &format!("{}[hsm]\ntimeout_secs = 1\n", readers(READER)));
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let o = run(&cfg, &[b"hsm_hold", b"1"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let waited: f64 = text.lines().find_map(|l| l.strip_prefix("waited ")).unwrap().parse().unwrap();
    let o = Output {
        stdout: text
            .lines()
            .filter(|l| !l.starts_with("waited "))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes(),
        ..o
    };
    let steps = calls(&o);
    assert_eq!(steps[0].0, 0, "Step1");
    assert_eq!(steps[1].0, 0, "the read after the hold");
    assert!(waited >= 0.8, "the read waited for the hold to end: {waited} s");
    assert_eq!(steps[2], (-4, vec![]), "Step2 after the timeout");
}

/// Threads of one process share the reader: each call runs alone on the card (interleaved APDUs would break the
/// reads), every one gives the same string.
#[test]
fn calls_from_eight_threads_are_one_at_a_time() {
    let dir = testkit::tempdir();
    let cfg = config(dir.path(), &readers(READER));
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let o = run(&cfg, &[b"threads", b"1", b"8", b"25"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim_end(), "threads ok code 0", "{}", lossy(&o.stderr));
}

/// 10 000 calls in one process (after 2 000 to warm up: the first two-step threads give glibc its per-thread
/// arenas, about 330 KiB, after which the resident memory stays flat — traced over 30 000 calls with
/// `SSCARD_TEST_RSS_TRACE=1`): the resident memory grows by less than 128 KiB, i.e. less than 14 bytes a call, and
/// every call gives the code expected of it. The calls are a mix (`growth` in
/// `tests/c/read_basic.c`): 3 000 reads of the card, 6 900 calls refused before the card by each check of the
/// library's input, and 100 two-step reads that hold the card in a thread and fail at Step2 — a read of the card
/// costs about 7 ms through pcscd, 10 000 of them would take 70 s.
#[test]
fn ten_thousand_calls_do_not_grow_memory() {
    let dir = testkit::tempdir();
    let cfg = config(dir.path(), &readers(READER));
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let o = run(&cfg, &[b"growth", b"1", b"10000"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("failures 0\n"), "{text}");
    let rss: Vec<i64> =
        text.lines().find_map(|l| l.strip_prefix("rss ")).unwrap().split(' ').map(|v| v.parse().unwrap()).collect();
    assert!(rss[0] > 0 && rss[1] - rss[0] < 128, "VmRSS {} kB -> {} kB", rss[0], rss[1]);
    eprintln!("VmRSS {} kB -> {} kB over 10 000 calls", rss[0], rss[1]);
}

/// Memcheck's errors (an invalid read or write, a use of uninitialised memory, a definite leak) make valgrind exit
/// 1, and any report fails the test. Blocks "possibly lost" are not counted: they are threads' (the PC/SC
/// connection's thread is detached, its descriptor and TLS stay allocated after it ended; the main thread's
/// `std::thread::current` handle), held through interior pointers.
#[test]
fn valgrind_finds_no_error_in_a_read() {
    let dir = testkit::tempdir();
    let cfg = config(dir.path(), &readers(READER));
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let o = Command::new("valgrind")
        .args(["--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=definite"])
        .args(["--show-leak-kinds=definite", "-q"])
        .arg(program())
        .args(["read_basic", "1", "3"])
        .env("LD_LIBRARY_PATH", lib_dir())
        .env("SSCARD_CONFIG", &cfg)
        .env("SSCARD_TEST_EXACT", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run valgrind (Debian package valgrind)");
    let expected = (0, national("gen2-basic.txt"));
    assert_eq!(calls(&o), [expected.clone(), expected.clone(), expected], "{}", lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "valgrind reported:\n{}", lossy(&o.stderr));
}
