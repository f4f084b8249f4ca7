//! Reading files whose size an attacker or a broken disk may control.

use std::io::Read;
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

/// Reads a whole file of at most `max` bytes. The size is checked before anything is read and
/// the read itself is bounded, so a file that grows in between cannot make us allocate more.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, BoundedRead> {
    let file = std::fs::File::open(path).map_err(BoundedRead::Io)?;
    let size = file.metadata().map_err(BoundedRead::Io)?.len();
    if size > max {
        return Err(BoundedRead::TooLarge { size });
    }
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
}
