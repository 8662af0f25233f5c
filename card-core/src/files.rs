//! Reading the files a program is given (configurations, key files, card images, holders files, photos)
//! with a size limit: a file that never ends (`/dev/zero`, a FIFO, a device) or a huge one is refused with a
//! clear error naming the file and the limit, instead of eating memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Reads the whole of `path`, at most `max` bytes.
///
/// Refused, before anything is read: a path that is not a regular file (a FIFO, a device such as
/// `/dev/zero`, a directory; symbolic links are followed) — `InvalidInput`. Refused after reading `max + 1`
/// bytes: a file larger than `max` — `FileTooLarge`. Every message names the file (and the limit).
///
/// The buffer is allocated once for a regular file whose size does not change while it is read, so a
/// caller that wraps the result in `Zeroizing` leaves no copy of a secret behind.
pub fn read_limited(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let name = path.display();
    let regular = |meta: &std::fs::Metadata| {
        if meta.is_file() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{name} is not a regular file (a FIFO, device or directory is refused; at most {max} bytes \
                     of a regular file are read)"
                ),
            ))
        }
    };
    // checked before opening: opening a FIFO for reading would wait for a writer
    let meta = std::fs::metadata(path).map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
    regular(&meta)?;
    let file = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
    // and again on what was opened (the path may have been replaced in between)
    let meta = file.metadata().map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
    regular(&meta)?;
    let too_large =
        || io::Error::new(io::ErrorKind::FileTooLarge, format!("{name} is larger than the limit of {max} bytes"));
    if meta.len() > max {
        return Err(too_large());
    }
    let capacity = usize::try_from(meta.len().saturating_add(1)).unwrap_or(usize::MAX);
    let mut buf = Vec::with_capacity(capacity);
    file.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
    if buf.len() as u64 > max {
        return Err(too_large());
    }
    Ok(buf)
}

/// [`read_limited`] as UTF-8 text (`InvalidData`, naming the file, when it is not).
pub fn read_limited_string(path: &Path, max: u64) -> io::Result<String> {
    let bytes = read_limited(path, max)?;
    String::from_utf8(bytes).map_err(|e| {
        // the bytes may be a secret: wipe them before dropping
        let mut bytes = e.into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        io::Error::new(io::ErrorKind::InvalidData, format!("{} is not UTF-8 text", path.display()))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_small_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_limited(&p, 5).unwrap(), b"hello");
        assert_eq!(read_limited_string(&p, 100).unwrap(), "hello");
    }

    #[test]
    fn a_larger_file_is_refused_naming_it_and_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![b'a'; 6]).unwrap();
        let e = read_limited(&p, 5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("big") && e.to_string().contains("5 bytes"), "{e}");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_limited(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("/dev/zero") && e.to_string().contains("1048576 bytes"), "{e}");
        assert_eq!(read_limited(dir.path(), 10).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().map(|s| s.success()).unwrap_or(false);
        assert!(made, "mkfifo (coreutils) is needed for this test");
        // no writer: opening it would block; it is refused before
        assert_eq!(read_limited(&fifo, 10).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_missing_file_names_it() {
        let e = read_limited(Path::new("/no/such/file"), 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/no/such/file"), "{e}");
    }

    #[test]
    fn not_utf8_is_invalid_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        std::fs::write(&p, [0xFF, 0xFE]).unwrap();
        assert_eq!(read_limited_string(&p, 10).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
