//! Files read with a bound: a holders file, a photo, a passphrase or PIN file that is `/dev/zero`, a FIFO or simply
//! huge is refused with a clear error instead of being read without end.

use std::path::Path;

/// Largest holders file (a city's batch of a few hundred thousand rows fits).
pub const MAX_HOLDERS_FILE: u64 = 64 * 1024 * 1024;
/// Largest passphrase or PIN file.
pub const MAX_SECRET_FILE: u64 = 4096;
/// Largest photo file read (EF08 is 4 KiB; a larger photo is refused by validation anyway).
pub const MAX_PHOTO_FILE: u64 = 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a regular file (a device such as `/dev/zero`, a FIFO, a directory).
    #[error("{path}: not a regular file (a FIFO, device or directory is refused; at most {max} bytes of a regular file are read)")]
    NotAFile {
        /// The file.
        path: String,
        /// The bound it would have been read with.
        max: u64,
    },
    /// Not UTF-8 text.
    #[error("{path}: not UTF-8 text")]
    NotText {
        /// The file.
        path: String,
    },
    /// Larger than the bound.
    #[error("{path}: larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// The bound.
        max: u64,
    },
}

/// The whole of the regular file `path`, at most `max` bytes (card-core's bounded read, its refusals typed).
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    let shown = || path.display().to_string();
    card_core::files::read_limited(path, max).map_err(|source| match source.kind() {
        std::io::ErrorKind::InvalidInput => FileError::NotAFile { path: shown(), max },
        std::io::ErrorKind::FileTooLarge => FileError::TooLarge { path: shown(), max },
        _ => FileError::Io { path: shown(), source },
    })
}

/// The UTF-8 text of a small secret file (a passphrase, a PIN), at most [`MAX_SECRET_FILE`] bytes, wiped when dropped.
pub fn read_secret_text(path: &Path) -> Result<zeroize::Zeroizing<String>, FileError> {
    let bytes = zeroize::Zeroizing::new(read_limited(path, MAX_SECRET_FILE)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| FileError::NotText { path: path.display().to_string() })?;
    Ok(zeroize::Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_large_files_are_refused() {
        let e = read_limited(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(matches!(e, FileError::NotAFile { max: 10, .. }));
        assert!(e.to_string().contains("/dev/zero") && e.to_string().contains("10 bytes"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_limited(dir.path(), 10), Err(FileError::NotAFile { .. }) | Err(FileError::Io { .. })));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 11]).unwrap();
        let e = read_limited(&big, 10).unwrap_err();
        assert!(matches!(e, FileError::TooLarge { max: 10, .. }));
        assert!(e.to_string().contains("larger than 10 bytes"), "{e}");
        assert_eq!(read_limited(&big, 11).unwrap().len(), 11);
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // refused without being opened (no writer ever comes: opening it would wait forever)
        assert!(matches!(read_limited(&fifo, 10), Err(FileError::NotAFile { .. })));
    }
}
