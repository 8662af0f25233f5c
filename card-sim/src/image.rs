//! Card images: the whole persistent state of a card (files, keys, PINs, counters, lifecycle) as
//! pretty JSON, binary values in uppercase hex.
//!
//! ```json
//! { "format": "sscard-sim-image", "version": 1, "card": { "generation": 3, "region": "371700", … } }
//! ```
//!
//! Keys and PINs are in clear hex: this is a test card and its image is test material; never put a
//! production key into a card image. The volatile state (current DF, security state, challenge) is not
//! saved: a loaded card is freshly powered on.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cos::{Card, CardState};
use crate::fs::Df;
use crate::keys::{MAX_PIN_LEN, MAX_TRIES};
use crate::Error;

/// The `format` field of a card image.
pub const IMAGE_FORMAT: &str = "sscard-sim-image";
/// The image version this crate writes and reads.
pub const IMAGE_VERSION: u32 = 1;
/// Largest card image file read (a personalized card with a photo is well under 1 MiB).
pub const MAX_IMAGE_FILE: u64 = 16 * 1024 * 1024;

#[derive(Serialize)]
struct ImageOut<'a> {
    format: &'static str,
    version: u32,
    card: &'a CardState,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

#[derive(Deserialize)]
struct ImageIn {
    card: CardState,
}

impl Card {
    /// The card image (pretty JSON).
    pub fn to_image(&self) -> String {
        let out = ImageOut { format: IMAGE_FORMAT, version: IMAGE_VERSION, card: &self.state };
        serde_json::to_string_pretty(&out).unwrap_or_default()
    }

    /// A card from an image, powered on.
    pub fn from_image(text: &str) -> Result<Card, Error> {
        let header: Header = serde_json::from_str(text).map_err(Error::ImageSyntax)?;
        if header.format != IMAGE_FORMAT || header.version != IMAGE_VERSION {
            return Err(Error::ImageFormat { format: header.format, version: header.version });
        }
        let image: ImageIn = serde_json::from_str(text).map_err(Error::ImageSyntax)?;
        validate(&image.card).map_err(Error::ImageInvalid)?;
        Ok(Card::from_state(image.card))
    }

    /// Writes the image to `path` atomically (a temporary file in the same directory, then rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, self.to_image()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }

    /// Reads a card image file, at most [`MAX_IMAGE_FILE`] bytes: `/dev/zero`, a FIFO or a larger file is refused
    /// ([`card_core::read_limited`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Card, Error> {
        let path = path.as_ref();
        let text = card_core::read_limited_string(path, MAX_IMAGE_FILE)
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Card::from_image(&text)
    }
}

fn validate(st: &CardState) -> Result<(), String> {
    if !(1..=3).contains(&st.generation) {
        return Err(format!("generation {} is not 1, 2 or 3", st.generation));
    }
    if crate::atr::region_bcd(&st.region).is_none() {
        return Err(format!("region {:?} is not 6 digits", st.region));
    }
    let mut aids = BTreeSet::new();
    validate_df(&st.mf, &mut aids)
}

fn validate_df(df: &Df, aids: &mut BTreeSet<Vec<u8>>) -> Result<(), String> {
    let name = format!("DF {:04X}", df.fid);
    if let Some(aid) = df.aid() {
        if !aids.insert(aid.to_vec()) {
            return Err(format!("{name}: AID {} used twice", hex::encode_upper(aid)));
        }
    }
    let mut kids = BTreeSet::new();
    for k in &df.keys {
        if !kids.insert(k.kid) {
            return Err(format!("{name}: key {:02X} twice", k.kid));
        }
        if k.value.0.len() != 16 || k.max_tries == 0 || k.max_tries > MAX_TRIES || k.tries_left > k.max_tries {
            return Err(format!("{name}: key {:02X} has a bad length or try counter", k.kid));
        }
    }
    if let Some(p) = &df.pin {
        if p.value.0.is_empty() || p.value.0.len() > MAX_PIN_LEN || p.max_tries == 0 || p.tries_left > p.max_tries {
            return Err(format!("{name}: PIN has a bad length or try counter"));
        }
    }
    let mut fids = BTreeSet::new();
    let mut sfis = BTreeSet::new();
    for ef in &df.files {
        ef.check().map_err(|e| format!("{name}: {e}"))?;
        if !fids.insert(ef.fid) || (ef.sfi != 0 && !sfis.insert(ef.sfi)) {
            return Err(format!("{name}: FID {:04X} or SFI {} used twice", ef.fid, ef.sfi));
        }
    }
    for child in &df.dfs {
        if !fids.insert(child.fid) {
            return Err(format!("{name}: FID {:04X} used twice", child.fid));
        }
        validate_df(child, aids)?;
    }
    Ok(())
}
