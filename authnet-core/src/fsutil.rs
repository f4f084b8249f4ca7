//! Reading files whose size, type or path an attacker or a broken disk may control.
//!
//! [`open_regular`] is the one way such files are opened: no symlink in the last component
//! (`O_NOFOLLOW`), no blocking open of a FIFO or a device (`O_NONBLOCK`), and `fstat` on the
//! opened descriptor (not the path, which may have been swapped) says it is a regular file of
//! bounded size. A FIFO renamed over a frame therefore fails at once instead of blocking the
//! reader (and the camera queue it holds) forever.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why [`read_bounded`] failed.
#[derive(Debug)]
pub enum BoundedRead {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// The file holds more than the cap (`size` is what was seen: the metadata size, or the
    /// bytes read if the file grew after the check).
    TooLarge {
        /// Bytes seen.
        size: u64,
    },
}

/// Opens `path` read-only with `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC` and checks, on the open
/// descriptor, that it is a regular file of at most `max` bytes; returns it with its size. A
/// symlink, FIFO, socket, device or directory fails with an I/O error (`ELOOP` for a symlink,
/// `InvalidInput` for the others).
pub fn open_regular(path: &Path, max: u64) -> Result<(File, u64), BoundedRead> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(BoundedRead::Io)?;
    let meta = file.metadata().map_err(BoundedRead::Io)?;
    if !meta.file_type().is_file() {
        return Err(BoundedRead::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() > max {
        return Err(BoundedRead::TooLarge { size: meta.len() });
    }
    Ok((file, meta.len()))
}

/// Reads a whole regular file of at most `max` bytes, opened with [`open_regular`]. The size is
/// checked before anything is read and the read itself is bounded, so a file that grows in
/// between cannot make us allocate more.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, BoundedRead> {
    let (file, size) = open_regular(path, max)?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(BoundedRead::Io)?;
    if bytes.len() as u64 > max {
        return Err(BoundedRead::TooLarge {
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// A file image ended before `what` was complete: `needed` bytes asked, `available` left.
/// Each file format maps it to its own `Truncated` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short {
    pub what: &'static str,
    pub needed: u64,
    pub available: u64,
}

/// A bounds-checked cursor over a file image, shared by the bank and pretrained-model readers.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Short> {
        let out = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or(Short {
                what,
                needed: n as u64,
                available: self.remaining(),
            })?;
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Short> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_oversized_and_reads_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, [7u8; 10]).unwrap();
        assert_eq!(read_bounded(&p, 10).unwrap(), vec![7u8; 10]);
        assert!(matches!(
            read_bounded(&p, 9),
            Err(BoundedRead::TooLarge { size: 10 })
        ));
        assert!(matches!(
            read_bounded(&d.path().join("missing"), 9),
            Err(BoundedRead::Io(_))
        ));
    }

    #[test]
    fn refuses_fifos_symlinks_and_directories_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let t = std::time::Instant::now();
        assert!(matches!(read_bounded(&fifo, 100), Err(BoundedRead::Io(_))));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let target = d.path().join("t");
        std::fs::write(&target, b"x").unwrap();
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read_bounded(&link, 100), Err(BoundedRead::Io(_))));
        assert!(matches!(
            read_bounded(d.path(), 100),
            Err(BoundedRead::Io(_))
        ));
        assert_eq!(read_bounded(&target, 100).unwrap(), b"x");
    }
}
