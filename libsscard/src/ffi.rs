//! The C entry points of CARD-PROFILE §7 with their published signatures (`long`, `extern "system"`: `__stdcall`
//! on 32-bit Windows, the C calling convention on Linux).
//!
//! Every function:
//! - runs inside `catch_unwind`: a panic never crosses into C, it becomes [`crate::INTERNAL_ERROR`];
//! - checks its pointers (null: −14) and reads each input string up to its published size (no NUL within it:
//!   −42), as GBK (−41 for bytes that are not);
//! - writes the output string (GBK) and its NUL into `pOutInfo` only if both fit the published size; a result
//!   that does not fit is −42 with `pOutInfo` set to the empty string. On every error `pOutInfo` is the empty
//!   string, except −2203 of `iReadCardBas`, which carries the string with the withheld fields empty;
//! - returns 0, a named national code, or a card's status word as its negative decimal value.
//!
//! This is the only module of the crate with unsafe code: the pointers the caller passes.
#![allow(unsafe_code, non_snake_case)]

use std::ffi::{c_char, c_int, c_long};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use card_core::national::{BAD_PARAMETER, ILLEGAL_LENGTH};

use crate::config::{describe, Config};
use crate::library::{Failure, Library, Reply};
use crate::text;
use secrecy::SecretString;

/// Published size of `iReadCardBas`'s `pOutInfo` and of both `iReadCardBas_HSM` steps' (bytes, NUL included).
pub const SSCARD_BASIC_OUT_SIZE: usize = 1024;
/// Published size of `iReadCardBas_HSM_Step2`'s `pKey`.
pub const SSCARD_HSM_KEY_SIZE: usize = 128;
/// Published size of `iReadCard_HSM_Step2`'s and `iWriteCard_HSM_Step2`'s `pKey`, in characters \[P\]: the
/// external authentication's cryptogram and its original, `C‖R4`, is 32 hex digits (the NUL after them makes the
/// caller's buffer 33 bytes).
pub const SSCARD_HSM_ITEMS_KEY_LEN: usize = 32;
/// Published size of `pCardInfo` (`卡识别码|卡号|`).
pub const SSCARD_CARD_INFO_SIZE: usize = 128;
/// Published size of `pFileAddr`.
pub const SSCARD_FILE_ADDR_SIZE: usize = 1024;
/// Published size of `iReadCard`'s `pOutInfo` and of `iWriteCard`'s `pWriteData`.
pub const SSCARD_ITEMS_SIZE: usize = 1024 * 20;
/// Size of the `_HSM_Step1` functions' `pOutInfo` (published for `iReadCardBas_HSM_Step1` and
/// `iReadCard_HSM_Step1`; `iWriteCard_HSM_Step1` has the same).
pub const SSCARD_HSM_STEP1_OUT_SIZE: usize = 1024;
/// Published size of the PIN functions' `pOutInfo` (`iVerifyPIN`, `iChangePIN`, `iReloadPIN`, `iUnblockPIN`, their
/// `_HSM_Step3`, and the vendor variants `iVerifyPin`, `iChangePin`).
pub const SSCARD_PIN_OUT_SIZE: usize = 512;
/// Size of `iReloadPIN_HSM_Step2`'s and `iUnblockPIN_HSM_Step2`'s `pOutInfo` (published: 1024).
pub const SSCARD_PIN_STEP2_OUT_SIZE: usize = 1024;
/// Published size of `iReloadPIN_HSM_Step3`'s and `iUnblockPIN_HSM_Step3`'s `pKey`, in characters: the back
/// end's answer, `<secure data><MAC>|` (40 hex digits for a 16-byte cipher block) fits.
pub const SSCARD_PIN_STEP3_KEY_LEN: usize = 50;
/// Longest PIN string the vendor variants read (the profile's PINs have at most 12 digits).
pub const SSCARD_PIN_LEN: usize = 64;
/// Published size of `iWriteCard`'s `pOutInfo`.
pub const SSCARD_WRITE_OUT_SIZE: usize = 1024;

/// The process's library (`None`: the configuration cannot be used).
static LIBRARY: OnceLock<Option<Library>> = OnceLock::new();

/// The process's library: configured at the first call. A configuration that cannot be used is said once on
/// standard error, and every call answers [`crate::CONFIG_ERROR`].
fn library() -> Result<&'static Library, Failure> {
    LIBRARY
        .get_or_init(|| match Config::from_environment() {
            Ok(config) => Some(Library::new(config)),
            Err(e) => {
                eprintln!("libsscard: {}; every call answers {}", describe(&e), crate::CONFIG_ERROR);
                None
            }
        })
        .as_ref()
        .ok_or(Failure::code(crate::CONFIG_ERROR, "the configuration cannot be used"))
}

/// At exit (or when the library is unloaded), the cards the library keeps connected between calls are let go:
/// `SCardDisconnect` and `SCardReleaseContext` run before libpcsclite's own destructor, which would otherwise
/// leave its record of a live context unreachable (valgrind: "definitely lost"). A reader in use by another
/// thread at that moment is left as it is.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".fini_array"]
static RELEASE_AT_EXIT: extern "C" fn() = release_at_exit;

#[cfg(target_os = "linux")]
extern "C" fn release_at_exit() {
    let _ = catch_unwind(|| {
        if let Some(Some(lib)) = LIBRARY.get() {
            lib.release();
        }
    });
}

/// Runs `f` with panics caught: the code it returns, or [`crate::INTERNAL_ERROR`] after a panic.
fn guarded(f: impl FnOnce() -> i32) -> c_long {
    c_long::from(catch_unwind(AssertUnwindSafe(f)).unwrap_or(crate::INTERNAL_ERROR))
}

/// The caller's output buffer of a published size.
struct Out {
    ptr: *mut c_char,
    size: usize,
}

impl Out {
    /// Null: −14.
    fn new(ptr: *mut c_char, size: usize) -> Result<Out, Failure> {
        if ptr.is_null() {
            return Err(Failure::code(BAD_PARAMETER, "pOutInfo is NULL"));
        }
        Ok(Out { ptr, size })
    }

    /// Writes `bytes` and a NUL if they fit; the empty string otherwise.
    ///
    /// # Safety
    /// `ptr` points to at least `size` writable bytes (the published size), or at least to `bytes.len() + 1`.
    unsafe fn write(&self, bytes: &[u8]) -> Result<(), Failure> {
        let fit = text::fits(bytes.len(), self.size);
        let bytes = if fit.is_ok() { bytes } else { &[] };
        // SAFETY: bytes.len() + 1 <= size, and the caller's buffer holds `size` bytes
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.cast::<u8>(), bytes.len());
            *self.ptr.add(bytes.len()) = 0;
        }
        fit
    }

    /// The call's code, with the output written: the reply's string, or the empty string on an error.
    ///
    /// # Safety
    /// As [`Out::write`].
    unsafe fn finish(&self, result: Result<Reply, Failure>) -> i32 {
        let written = match result {
            // SAFETY: the caller's
            Ok(reply) => unsafe { self.write(&reply.out) }.map(|()| reply.code),
            Err(e) => Err(e),
        };
        match written {
            Ok(code) => code,
            Err(e) => {
                // SAFETY: one byte, within any buffer of a published size
                unsafe { *self.ptr = 0 };
                e.national_code()
            }
        }
    }
}

/// The caller's NUL-terminated input string, read up to `size` bytes (the published size, NUL included), as
/// text. Null: −14; no NUL within `size`: −42; not GBK: −41.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string, or to at least `size` readable bytes.
unsafe fn input(ptr: *const c_char, size: usize, what: &'static str) -> Result<String, Failure> {
    if ptr.is_null() {
        return Err(Failure::code(BAD_PARAMETER, what));
    }
    let mut len = 0;
    // SAFETY: reads stop at the first NUL, and never go past `size` bytes
    while unsafe { *ptr.add(len) } != 0 {
        len += 1;
        if len == size {
            return Err(Failure::code(ILLEGAL_LENGTH, what));
        }
    }
    // SAFETY: the `len` bytes before the NUL were just read
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    text::decode(bytes, what)
}

/// `long iReadCardBas(int iType, char* pOutInfo)`: the basic information, 11 fields each ending with `|`:
/// `发卡地区行政区划代码|社会保障号码|卡号|卡识别码|姓名|卡复位信息|规范版本|发卡日期|卡有效期|终端机编号|终端设备号|`.
///
/// `iType`: 1 contact, 2 contactless (−13 when no contactless reader is configured), 3 automatic contact first,
/// 4 automatic contactless first. Returns 0; −2203 with the holder fields empty when the configured keys cannot
/// read a generation 3 card's holder data (use the `_HSM_` functions then); −2 no card; −11 no such reader.
///
/// # Safety
/// `pOutInfo` points to [`SSCARD_BASIC_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReadCardBas(iType: c_int, pOutInfo: *mut c_char) -> c_long {
    guarded(|| {
        let out = match Out::new(pOutInfo, SSCARD_BASIC_OUT_SIZE) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        let result = library().and_then(|lib| lib.read_basic(iType));
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// `long iReadCard(int iType, int iAuthType, char* pCardInfo, char* pFileAddr, char* pOutInfo)`: the items of
/// `pFileAddr` (e.g. `SSSEEF05|05|07|$SSSEEF06|09|$`), the output mirroring it with the values
/// (`SSSEEF05|20200101|A0000001T|$SSSEEF06|张三|$`), after checking `pCardInfo` (`卡识别码|卡号|`) against the card
/// (−22 when it is another card).
///
/// `iAuthType` is accepted and not used: what each file needs comes from the card profile and the configured
/// keys. A malformed `pFileAddr` is −14, before the card is touched.
///
/// # Safety
/// `pCardInfo` and `pFileAddr` are NUL-terminated strings (or NULL: −14); `pOutInfo` points to
/// [`SSCARD_ITEMS_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReadCard(
    iType: c_int,
    iAuthType: c_int,
    pCardInfo: *mut c_char,
    pFileAddr: *mut c_char,
    pOutInfo: *mut c_char,
) -> c_long {
    let _ = iAuthType;
    guarded(|| {
        let out = match Out::new(pOutInfo, SSCARD_ITEMS_SIZE) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        // SAFETY: the caller's strings
        let result = unsafe { input(pCardInfo, SSCARD_CARD_INFO_SIZE, "pCardInfo") }.and_then(|card_info| {
            let address = unsafe { input(pFileAddr, SSCARD_FILE_ADDR_SIZE, "pFileAddr") }?;
            library()?.read_card(iType, &card_info, &address)
        });
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// `long iWriteCard(int iType, char* pCardInfo, char* pFileAddr, char* pWriteData, char* pOutInfo)`: writes the
/// values of `pWriteData`, which mirrors `pFileAddr` (`DF01EF06|济南市历下区|$` for `DF01EF06|23|$`), after
/// checking `pCardInfo` against the card. Every value is checked before anything is written. `pOutInfo` is the
/// empty string. With no keys configured: −2201; with a key file that lacks the files' update key: −24 (use the
/// `_HSM_` functions then).
///
/// # Safety
/// `pCardInfo`, `pFileAddr` and `pWriteData` are NUL-terminated strings (or NULL: −14); `pOutInfo` points to
/// [`SSCARD_WRITE_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iWriteCard(
    iType: c_int,
    pCardInfo: *mut c_char,
    pFileAddr: *mut c_char,
    pWriteData: *mut c_char,
    pOutInfo: *mut c_char,
) -> c_long {
    guarded(|| {
        let out = match Out::new(pOutInfo, SSCARD_WRITE_OUT_SIZE) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        // SAFETY: the caller's strings
        let result = unsafe { input(pCardInfo, SSCARD_CARD_INFO_SIZE, "pCardInfo") }.and_then(|card_info| {
            let address = unsafe { input(pFileAddr, SSCARD_FILE_ADDR_SIZE, "pFileAddr") }?;
            let data = unsafe { input(pWriteData, SSCARD_ITEMS_SIZE, "pWriteData") }?;
            library()?.write_card(iType, &card_info, &address, &data)
        });
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// `long iReadCardBas_HSM_Step1(int iType, char* pOutInfo)`: Step 1 of the two-step read for a counter without
/// keys: `region|ATR historical bytes|algorithm|card identifier|R1|R2|R3|R4|`, for the back end's HSM.
///
/// **The card is held** from Step1 until `iReadCardBas_HSM_Step2` (or the configured `hsm.timeout_secs`,
/// 60 s by default): the library keeps the card's PC/SC transaction open so that its challenge R3 survives, and
/// other calls on that reader wait meanwhile. One two-step read is pending per process: a new Step1 abandons
/// the pending one.
///
/// # Safety
/// `pOutInfo` points to [`SSCARD_BASIC_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReadCardBas_HSM_Step1(iType: c_int, pOutInfo: *mut c_char) -> c_long {
    guarded(|| {
        let out = match Out::new(pOutInfo, SSCARD_BASIC_OUT_SIZE) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        let result = library().and_then(|lib| lib.read_step1(iType));
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// `long iReadCardBas_HSM_Step2(char* pKey, char* pOutInfo)`: Step 2 with the HSM's answer
/// (`internal auth|external auth|`, 16 or 32 hex digits each): the `iReadCardBas` string. No pending Step1: −14;
/// Step2 after the timeout: −4 (the card was released; start again with Step1); an answer the card refuses: its
/// status word (e.g. −27010 for `6982`) or −21 when the card fails the internal authentication.
///
/// # Safety
/// `pKey` is a NUL-terminated string (or NULL: −14); `pOutInfo` points to [`SSCARD_BASIC_OUT_SIZE`] writable
/// bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReadCardBas_HSM_Step2(pKey: *mut c_char, pOutInfo: *mut c_char) -> c_long {
    guarded(|| {
        let out = match Out::new(pOutInfo, SSCARD_BASIC_OUT_SIZE) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        // SAFETY: the caller's string
        let result = unsafe { input(pKey, SSCARD_HSM_KEY_SIZE, "pKey") }
            .and_then(|answer| library().and_then(|lib| lib.read_step2(&answer)));
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// `long iReadCard_HSM_Step1(int iType, char* pCardInfo, char* pFileAddr, char* pOutInfo)`: Step 1 of a read of
/// items for a counter without keys. `pFileAddr` and `pCardInfo` are checked as `iReadCard` checks them (the card
/// too: −22 for another card); the items must be of one DF read under one key (−14 otherwise); items every card
/// gives freely need no exchange: −2204 (use `iReadCard`). The output is the Step 1 string
/// `region|ATR historical bytes|algorithm|card identifier|R1|R2|R3|R4|` for the back end's HSM, which computes the
/// EXTERNAL AUTHENTICATE cryptogram of the files' read key (RKSSSE for a generation 3 card's SSSE files, the DF's
/// RK for an application's) over `R3` and `R4`.
///
/// **The card is held** from Step1 until `iReadCard_HSM_Step2` or the configured `hsm.timeout_secs`, as for
/// `iReadCardBas_HSM_Step1`; a new Step1 of any of the `_HSM_` functions abandons the pending one.
///
/// # Safety
/// `pCardInfo` and `pFileAddr` are NUL-terminated strings (or NULL: −14); `pOutInfo` points to
/// [`SSCARD_HSM_STEP1_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReadCard_HSM_Step1(
    iType: c_int,
    pCardInfo: *mut c_char,
    pFileAddr: *mut c_char,
    pOutInfo: *mut c_char,
) -> c_long {
    guarded(|| {
        let out = match Out::new(pOutInfo, SSCARD_HSM_STEP1_OUT_SIZE) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        // SAFETY: the caller's strings
        let result = unsafe { input(pCardInfo, SSCARD_CARD_INFO_SIZE, "pCardInfo") }.and_then(|card_info| {
            let address = unsafe { input(pFileAddr, SSCARD_FILE_ADDR_SIZE, "pFileAddr") }?;
            library()?.read_items_step1(iType, &card_info, &address)
        });
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// `long iReadCard_HSM_Step2(char* pKey, char* pOutInfo)`: Step 2 of a read of items. `pKey` is the HSM's
/// EXTERNAL AUTHENTICATE cryptogram with its original, `C‖R4` (32 hex digits), or `C` alone (16) \[P: the
/// published `pKey` is 32 bytes, too small for the internal authentication's half as well, so this exchange does
/// not authenticate the card; its identifier was checked against `pCardInfo`\]. The output mirrors Step1's
/// `pFileAddr` with the values, as `iReadCard`'s. No pending `iReadCard_HSM_Step1`: −14; after the timeout: −4;
/// a cryptogram the card refuses: its status word (e.g. −25536 − tries, `63Cx`).
///
/// # Safety
/// `pKey` is a NUL-terminated string of at most [`SSCARD_HSM_ITEMS_KEY_LEN`] characters (or NULL: −14; longer:
/// −42); `pOutInfo` points to [`SSCARD_ITEMS_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReadCard_HSM_Step2(pKey: *mut c_char, pOutInfo: *mut c_char) -> c_long {
    guarded(|| {
        let out = match Out::new(pOutInfo, SSCARD_ITEMS_SIZE) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        // SAFETY: the caller's string
        let result = unsafe { input(pKey, SSCARD_HSM_ITEMS_KEY_LEN + 1, "pKey") }
            .and_then(|answer| library().and_then(|lib| lib.read_items_step2(&answer)));
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// `long iWriteCard_HSM_Step1(int iType, char* pCardInfo, char* pFileAddr, char* pOutInfo)`: Step 1 of a write
/// for a counter without keys. `pFileAddr` and `pCardInfo` are checked as `iWriteCard` checks them; the files
/// must be of one DF updated under one key (UKMF for SSSE files, the DF's UK for an application's; −14
/// otherwise). The output is the Step 1 string for the back end's HSM, which computes that key's EXTERNAL
/// AUTHENTICATE cryptogram over `R3` and `R4`. **The card is held** until `iWriteCard_HSM_Step2` or the timeout.
///
/// # Safety
/// `pCardInfo` and `pFileAddr` are NUL-terminated strings (or NULL: −14); `pOutInfo` points to
/// [`SSCARD_HSM_STEP1_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iWriteCard_HSM_Step1(
    iType: c_int,
    pCardInfo: *mut c_char,
    pFileAddr: *mut c_char,
    pOutInfo: *mut c_char,
) -> c_long {
    guarded(|| {
        let out = match Out::new(pOutInfo, SSCARD_HSM_STEP1_OUT_SIZE) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        // SAFETY: the caller's strings
        let result = unsafe { input(pCardInfo, SSCARD_CARD_INFO_SIZE, "pCardInfo") }.and_then(|card_info| {
            let address = unsafe { input(pFileAddr, SSCARD_FILE_ADDR_SIZE, "pFileAddr") }?;
            library()?.write_items_step1(iType, &card_info, &address)
        });
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// `long iWriteCard_HSM_Step2(char* pKey, char* pWriteData, char* pOutInfo)`: Step 2 of a write: `pWriteData`
/// mirrors Step1's `pFileAddr` (as `iWriteCard`'s); `pKey` is the HSM's cryptogram, `C‖R4` or `C` (see
/// `iReadCard_HSM_Step2`). Every value is checked for the card before the cryptogram is sent: bad data (−41,
/// −42, −14) writes nothing and ends the exchange. `pOutInfo` is the empty string.
///
/// # Safety
/// `pKey` is a NUL-terminated string of at most [`SSCARD_HSM_ITEMS_KEY_LEN`] characters, `pWriteData` a
/// NUL-terminated string (or NULL: −14); `pOutInfo` points to [`SSCARD_WRITE_OUT_SIZE`] writable bytes, or is
/// NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iWriteCard_HSM_Step2(
    pKey: *mut c_char,
    pWriteData: *mut c_char,
    pOutInfo: *mut c_char,
) -> c_long {
    guarded(|| {
        let out = match Out::new(pOutInfo, SSCARD_WRITE_OUT_SIZE) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        // SAFETY: the caller's strings
        let result = unsafe { input(pKey, SSCARD_HSM_ITEMS_KEY_LEN + 1, "pKey") }.and_then(|answer| {
            let data = unsafe { input(pWriteData, SSCARD_ITEMS_SIZE, "pWriteData") }?;
            library()?.write_items_step2(&answer, &data)
        });
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// A PIN string of the caller as a secret (the library keeps no copy of it).
///
/// # Safety
/// As [`input`].
unsafe fn pin_input(ptr: *const c_char, what: &'static str) -> Result<SecretString, Failure> {
    // SAFETY: the caller's
    unsafe { input(ptr, SSCARD_PIN_LEN + 1, what) }.map(SecretString::from)
}

/// Runs a PIN function whose output is [`SSCARD_PIN_OUT_SIZE`] bytes.
fn pin_call(pOutInfo: *mut c_char, size: usize, f: impl FnOnce() -> Result<Reply, Failure>) -> c_long {
    guarded(|| {
        let out = match Out::new(pOutInfo, size) {
            Ok(out) => out,
            Err(e) => return e.national_code(),
        };
        let result = f();
        // SAFETY: the caller's buffer of the published size
        unsafe { out.finish(result) }
    })
}

/// `long iVerifyPIN(int iType, char* pOutInfo)`: the holder enters the PIN (through the configured pinentry:
/// `[pin] pinentry`; without one, −13), then VERIFY in SSSE. 0; −51 a wrong PIN; −52 blocked; −31…−36 the
/// entry failed (−31 cancelled). The PIN is never logged or kept. `pOutInfo` is the empty string.
///
/// # Safety
/// `pOutInfo` points to [`SSCARD_PIN_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iVerifyPIN(iType: c_int, pOutInfo: *mut c_char) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_OUT_SIZE, || library()?.verify_pin(iType))
}

/// `long iChangePIN(int iType, char* pOutInfo)`: the holder enters the current PIN and the new one (twice), then
/// CHANGE PIN. Codes as `iVerifyPIN`'s (a wrong current PIN: −51).
///
/// # Safety
/// `pOutInfo` points to [`SSCARD_PIN_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iChangePIN(iType: c_int, pOutInfo: *mut c_char) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_OUT_SIZE, || library()?.change_pin(iType))
}

/// `long iReloadPIN(int iType, char* pCardInfo, char* pOutInfo)`: after checking `pCardInfo` against the card,
/// the holder enters a new PIN (twice), then RELOAD PIN with the reload key RLK of the configured keys or the key
/// service. With no keys: −2201 (use `iReloadPIN_HSM_Step1/2/3`).
///
/// # Safety
/// `pCardInfo` is a NUL-terminated string (or NULL: −14); `pOutInfo` points to [`SSCARD_PIN_OUT_SIZE`] writable
/// bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReloadPIN(iType: c_int, pCardInfo: *mut c_char, pOutInfo: *mut c_char) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_OUT_SIZE, || {
        // SAFETY: the caller's string
        let card_info = unsafe { input(pCardInfo, SSCARD_CARD_INFO_SIZE, "pCardInfo") }?;
        library()?.reset_pin(iType, &card_info, false)
    })
}

/// `long iUnblockPIN(int iType, char* pCardInfo, char* pOutInfo)`: as `iReloadPIN`, with PIN UNBLOCK (the
/// unblock key PUK): the new PIN and its tries back. With no keys: −2201 (use `iUnblockPIN_HSM_Step1/2/3`).
///
/// # Safety
/// As `iReloadPIN`.
#[no_mangle]
pub unsafe extern "system" fn iUnblockPIN(iType: c_int, pCardInfo: *mut c_char, pOutInfo: *mut c_char) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_OUT_SIZE, || {
        // SAFETY: the caller's string
        let card_info = unsafe { input(pCardInfo, SSCARD_CARD_INFO_SIZE, "pCardInfo") }?;
        library()?.reset_pin(iType, &card_info, true)
    })
}

/// `long iReloadPIN_HSM_Step1(int iType, char* pCardInfo, char* pOutInfo)`: Step 1 of RELOAD PIN for a counter
/// without keys: after checking `pCardInfo` against the card, the Step 1 string naming the card
/// (`region|ATR historical bytes|algorithm|card identifier|R1|R2|R3|R4|`). **The card is held** until Step3 or
/// the configured `hsm.timeout_secs` (for each step).
///
/// # Safety
/// `pCardInfo` is a NUL-terminated string (or NULL: −14); `pOutInfo` points to [`SSCARD_HSM_STEP1_OUT_SIZE`]
/// writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReloadPIN_HSM_Step1(
    iType: c_int,
    pCardInfo: *mut c_char,
    pOutInfo: *mut c_char,
) -> c_long {
    pin_call(pOutInfo, SSCARD_HSM_STEP1_OUT_SIZE, || {
        // SAFETY: the caller's string
        let card_info = unsafe { input(pCardInfo, SSCARD_CARD_INFO_SIZE, "pCardInfo") }?;
        library()?.pin_step1(iType, &card_info, false)
    })
}

/// `long iReloadPIN_HSM_Step2(char* pKey, char* pOutInfo)`: Step 2 of RELOAD PIN. `pKey` is the empty string
/// \[P: this card's RELOAD PIN carries its own MAC, no external authentication precedes it; another `pKey` is
/// −2204\]. The holder enters the new PIN (twice, through pinentry); the output is the back end's second request,
/// `<new PIN BCD hex>|` (it holds the PIN: send it to the back end only over a protected channel, and clear it).
///
/// # Safety
/// `pKey` is a NUL-terminated string of at most [`SSCARD_HSM_ITEMS_KEY_LEN`] characters (or NULL: −14);
/// `pOutInfo` points to [`SSCARD_PIN_STEP2_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReloadPIN_HSM_Step2(pKey: *mut c_char, pOutInfo: *mut c_char) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_STEP2_OUT_SIZE, || {
        // SAFETY: the caller's string
        let key = unsafe { input(pKey, SSCARD_HSM_ITEMS_KEY_LEN + 1, "pKey") }?;
        library()?.pin_step2(&key, false)
    })
}

/// `long iReloadPIN_HSM_Step3(char* pKey, char* pOutInfo)`: Step 3 of RELOAD PIN: `pKey` is the back end's
/// answer, the RELOAD PIN MAC `<MAC 8 hex>|`. 0 when the card took the new PIN.
///
/// # Safety
/// `pKey` is a NUL-terminated string of at most [`SSCARD_PIN_STEP3_KEY_LEN`] characters (or NULL: −14);
/// `pOutInfo` points to [`SSCARD_PIN_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iReloadPIN_HSM_Step3(pKey: *mut c_char, pOutInfo: *mut c_char) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_OUT_SIZE, || {
        // SAFETY: the caller's string
        let answer = unsafe { input(pKey, SSCARD_PIN_STEP3_KEY_LEN + 1, "pKey") }?;
        library()?.pin_step3(&answer, false)
    })
}

/// `long iUnblockPIN_HSM_Step1(int iType, char* pCardInfo, char* pOutInfo)`: Step 1 of PIN UNBLOCK, as
/// `iReloadPIN_HSM_Step1`.
///
/// # Safety
/// As `iReloadPIN_HSM_Step1`.
#[no_mangle]
pub unsafe extern "system" fn iUnblockPIN_HSM_Step1(
    iType: c_int,
    pCardInfo: *mut c_char,
    pOutInfo: *mut c_char,
) -> c_long {
    pin_call(pOutInfo, SSCARD_HSM_STEP1_OUT_SIZE, || {
        // SAFETY: the caller's string
        let card_info = unsafe { input(pCardInfo, SSCARD_CARD_INFO_SIZE, "pCardInfo") }?;
        library()?.pin_step1(iType, &card_info, true)
    })
}

/// `long iUnblockPIN_HSM_Step2(char* pKey, char* pOutInfo)`: Step 2 of PIN UNBLOCK: `pKey` empty (as for
/// `iReloadPIN_HSM_Step2`); the holder enters the new PIN; the output is the back end's second request with the
/// card's fresh challenge, `<challenge>|<CLA INS P1 P2>|<new PIN BCD>|` (hex; it holds the PIN).
///
/// # Safety
/// As `iReloadPIN_HSM_Step2`.
#[no_mangle]
pub unsafe extern "system" fn iUnblockPIN_HSM_Step2(pKey: *mut c_char, pOutInfo: *mut c_char) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_STEP2_OUT_SIZE, || {
        // SAFETY: the caller's string
        let key = unsafe { input(pKey, SSCARD_HSM_ITEMS_KEY_LEN + 1, "pKey") }?;
        library()?.pin_step2(&key, true)
    })
}

/// `long iUnblockPIN_HSM_Step3(char* pKey, char* pOutInfo)`: Step 3 of PIN UNBLOCK: `pKey` is the back end's
/// answer, `<secure data><MAC>|` (the new PIN enciphered under PUK, then the MAC over the command with the
/// challenge of Step 2). 0 when the card took it.
///
/// # Safety
/// As `iReloadPIN_HSM_Step3`.
#[no_mangle]
pub unsafe extern "system" fn iUnblockPIN_HSM_Step3(pKey: *mut c_char, pOutInfo: *mut c_char) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_OUT_SIZE, || {
        // SAFETY: the caller's string
        let answer = unsafe { input(pKey, SSCARD_PIN_STEP3_KEY_LEN + 1, "pKey") }?;
        library()?.pin_step3(&answer, true)
    })
}

/// `long iVerifyPin(int iType, char* pPin, char* pOutInfo)`: the vendor variant of `iVerifyPIN` that takes the
/// PIN (digits) as a parameter. −51 wrong, −52 blocked, −14 a PIN that is not of the card's format.
///
/// # Safety
/// `pPin` is a NUL-terminated string (or NULL: −14); `pOutInfo` points to [`SSCARD_PIN_OUT_SIZE`] writable bytes,
/// or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iVerifyPin(iType: c_int, pPin: *mut c_char, pOutInfo: *mut c_char) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_OUT_SIZE, || {
        // SAFETY: the caller's string
        let pin = unsafe { pin_input(pPin, "pPin") }?;
        library()?.verify_pin_with(iType, &pin)
    })
}

/// `long iChangePin(int iType, char* pOldPin, char* pNewPin, char* pOutInfo)`: the vendor variant of
/// `iChangePIN` with both PINs as parameters.
///
/// # Safety
/// `pOldPin` and `pNewPin` are NUL-terminated strings (or NULL: −14); `pOutInfo` points to
/// [`SSCARD_PIN_OUT_SIZE`] writable bytes, or is NULL (−14).
#[no_mangle]
pub unsafe extern "system" fn iChangePin(
    iType: c_int,
    pOldPin: *mut c_char,
    pNewPin: *mut c_char,
    pOutInfo: *mut c_char,
) -> c_long {
    pin_call(pOutInfo, SSCARD_PIN_OUT_SIZE, || {
        // SAFETY: the caller's strings
        let old = unsafe { pin_input(pOldPin, "pOldPin") }?;
        let new = unsafe { pin_input(pNewPin, "pNewPin") }?;
        library()?.change_pin_with(iType, &old, &new)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn output_fits_or_is_refused_without_overrun() {
        let mut buf = [0xAAu8; 8];
        let out = Out::new(buf.as_mut_ptr().cast(), 4).unwrap();
        let code = unsafe { out.finish(Ok(Reply { code: 0, out: b"abc".to_vec() })) };
        assert_eq!((code, &buf[..5]), (0, &b"abc\0\xAA"[..]));
        let code = unsafe { out.finish(Ok(Reply { code: 0, out: b"abcd".to_vec() })) };
        assert_eq!(code, ILLEGAL_LENGTH);
        assert_eq!(&buf[..5], b"\0bc\0\xAA", "the empty string, nothing past the 4 bytes");
        let code = unsafe { out.finish(Ok(Reply { code: -2203, out: b"ab".to_vec() })) };
        assert_eq!((code, &buf[..3]), (-2203, &b"ab\0"[..]));
        assert_eq!(Out::new(std::ptr::null_mut(), 4).err().unwrap().national_code(), BAD_PARAMETER);
    }

    #[test]
    fn inputs_are_bounded_and_gbk() {
        let s = b"SSSEEF05|05|$\0";
        assert_eq!(unsafe { input(s.as_ptr().cast(), 14, "a") }.unwrap(), "SSSEEF05|05|$");
        let e = unsafe { input(s.as_ptr().cast(), 13, "a") }.unwrap_err();
        assert_eq!(e.national_code(), ILLEGAL_LENGTH, "13 bytes before the NUL do not fit 13 with it");
        let gbk = [0xD5u8, 0xC5, 0xC8, 0xFD, 0];
        assert_eq!(unsafe { input(gbk.as_ptr().cast(), 8, "a") }.unwrap(), "张三");
        let bad = [0xFFu8, 0xFF, 0];
        assert_eq!(unsafe { input(bad.as_ptr().cast(), 8, "a") }.unwrap_err().national_code(), -41);
        assert_eq!(unsafe { input(std::ptr::null(), 8, "a") }.unwrap_err().national_code(), BAD_PARAMETER);
    }

    #[test]
    #[allow(clippy::panic)]
    fn a_panic_becomes_the_internal_error_code() {
        assert_eq!(guarded(|| panic!("a bug")), c_long::from(crate::INTERNAL_ERROR));
        assert_eq!(guarded(|| -2203), -2203);
    }

    #[test]
    fn null_output_pointers_are_refused_before_anything() {
        assert_eq!(unsafe { iReadCardBas(1, std::ptr::null_mut()) }, -14);
        assert_eq!(unsafe { iReadCardBas_HSM_Step1(1, std::ptr::null_mut()) }, -14);
        let mut out = [0x55 as c_char; 4];
        assert_eq!(unsafe { iReadCardBas_HSM_Step2(std::ptr::null_mut(), out.as_mut_ptr()) }, -14);
        assert_eq!(out[0], 0, "the output is the empty string");
    }
}
