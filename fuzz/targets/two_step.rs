//! The two-step exchange's strings as a terminal or a back end sends them (Step 1, the HSM's answer, the PIN
//! operations' Step 2 strings a key service answers) and the key service's request body.
//!
//! The body of cargo fuzz target `two_step` (`fuzz/fuzz_targets/two_step.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/two_step/`.

use std::sync::OnceLock;

use card_core::codec::RegionCode;
use card_core::crypto::{Algorithm, CardKey};
use card_core::security::key_service::AnswerRequest;
use card_core::security::two_step::{backend_pin_reload, backend_pin_unblock, Step1, Step2Answer};
use card_core::security::LocalKeys;

/// A back end with fixed keys of both algorithms for region 371700.
fn keys() -> &'static LocalKeys {
    static KEYS: OnceLock<LocalKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut k = LocalKeys::new(RegionCode::parse("371700").expect("region"));
        for alg in [Algorithm::Tdes, Algorithm::Sm4] {
            for name in ["RLK", "PUK", "IRK", "RKSSSE"] {
                k.insert(name, CardKey::new(alg, &[0x11; 16]).expect("key"));
            }
        }
        k
    })
}

const STEP1: &str = "371700|5353031037170000000000000000A3|03|371700D15600000500000000000000A3|\
                     0101010101010101|0202020202020202|0303030303030303|0404040404040404|";

/// One input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(s) = text.parse::<Step1>() {
        let _ = s.to_string();
    }
    let _ = text.parse::<Step2Answer>();
    let _ = backend_pin_reload(keys(), STEP1, text);
    let _ = backend_pin_unblock(keys(), STEP1, text);
    let _ = backend_pin_unblock(keys(), text, "0102030405060708|84240000|123456|");
    let _ = serde_json::from_str::<AnswerRequest>(text);
}
