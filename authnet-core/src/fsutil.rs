//! Reading files whose size, type or path an attacker or a broken disk may control.
//!
//! [`open_regular`] is the one way such files are opened: no symlink in the last component
//! (`O_NOFOLLOW`), no blocking open of a FIFO or a device (`O_NONBLOCK`), and `fstat` on the
//! opened descriptor (not the path, which may have been swapped) says it is a regular file of
//! bounded size. A FIFO renamed over a frame therefore fails at once instead of blocking the
//! reader (and the camera queue it holds) forever.
//!
//! [`Dir`] is the one way files are written (and the daemon's state is read): a directory opened
//! without following a symlink, and every file inside it reached relative to that descriptor
//! (`openat`, `renameat`, `unlinkat`), with `O_NOFOLLOW` on the file too. Swapping a directory
//! for a symlink after it was checked therefore redirects nothing, and [`Dir::write_atomic`] is
//! the one atomic write (exclusive temporary file, fsync, rename, fsync of the directory).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};

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

/// Why a file named by path could not be read or written: the I/O error, or the cap, with the
/// path. The model, impostor-bank and pretrained-model errors carry it as one variant.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading or writing `path` failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is over the cap; nothing was read.
    #[error("{path} is {size} bytes, more than the {max}-byte cap")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
}

impl FileError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// [`read_bounded`], with an error that names the path and the cap.
pub fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    read_bounded(path, max).map_err(|e| match e {
        BoundedRead::Io(source) => FileError::io(path, source),
        BoundedRead::TooLarge { size } => FileError::TooLarge {
            path: path.to_owned(),
            size,
            max,
        },
    })
}

/// [`write_atomic`], with an error that names the path.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomic(path, bytes).map_err(|source| FileError::io(path, source))
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
    let size = check_regular(&file, max)?;
    Ok((file, size))
}

/// On the open descriptor: a regular file of at most `max` bytes; its size.
fn check_regular(file: &File, max: u64) -> Result<u64, BoundedRead> {
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
    Ok(meta.len())
}

/// Reads a whole regular file of at most `max` bytes, opened with [`open_regular`]. The size is
/// checked before anything is read and the read itself is bounded, so a file that grows in
/// between cannot make us allocate more.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, BoundedRead> {
    let (file, size) = open_regular(path, max)?;
    read_to_cap(file, size, max)
}

/// Checks on the descriptor that `file` is a regular file of at most `max` bytes, then reads it.
fn read_checked(file: File, max: u64) -> Result<Vec<u8>, BoundedRead> {
    let size = check_regular(&file, max)?;
    read_to_cap(file, size, max)
}

fn read_to_cap(file: File, size: u64, max: u64) -> Result<Vec<u8>, BoundedRead> {
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

/// A directory held open by descriptor; names inside it are single path components (no `/`, not
/// `.` or `..`) reached with the `*at` calls, never through a symlink.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn bad_name(name: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{name:?} is not a plain file name"),
    )
}

fn component(name: &str) -> std::io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(bad_name(name));
    }
    Ok(name)
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Dir {
    /// Opens the directory `path`; a symlink as its last component fails (`ELOOP`), a
    /// non-directory fails (`ENOTDIR`).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// Opens the directory `path`, following symlinks anywhere in it: for trees the caller
    /// names itself (an output path on the command line), not for state an attacker may reach.
    pub fn open_following(path: &Path) -> std::io::Result<Self> {
        let fd = rustix::fs::open(path, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// The path this directory was opened by (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The subdirectory `name`, never through a symlink.
    pub fn subdir(&self, name: &str) -> std::io::Result<Self> {
        let fd = rustix::fs::openat(&self.fd, component(name)?, DIR_FLAGS, Mode::empty())?;
        Ok(Self {
            fd,
            path: self.path.join(name),
        })
    }

    /// The subdirectory `name`, created with mode 0700 if absent, then checked on its
    /// descriptor: it must be a directory owned by this process's effective uid (a directory
    /// planted by someone else is refused with `PermissionDenied`); its mode is set to 0700.
    pub fn private_subdir(&self, name: &str) -> std::io::Result<Self> {
        match rustix::fs::mkdirat(&self.fd, component(name)?, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let d = self.subdir(name)?;
        d.make_private()?;
        Ok(d)
    }

    /// Checks that this directory is owned by the effective uid and sets its mode to 0700.
    pub fn make_private(&self) -> std::io::Result<()> {
        let st = rustix::fs::fstat(&self.fd)?;
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != euid {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} is owned by uid {}, not {euid}",
                    self.path.display(),
                    st.st_uid
                ),
            ));
        }
        if st.st_mode & 0o7777 != 0o700 {
            rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(0o700))?;
        }
        Ok(())
    }

    /// Opens the regular file `name` read-only (`O_NOFOLLOW | O_NONBLOCK`), checks on the
    /// descriptor that it is a regular file of at most `max` bytes, and reads it.
    pub fn read_bounded(&self, name: &str, max: u64) -> Result<Vec<u8>, BoundedRead> {
        let fd = rustix::fs::openat(
            &self.fd,
            component(name).map_err(BoundedRead::Io)?,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BoundedRead::Io(e.into()))?;
        read_checked(File::from(fd), max)
    }

    /// True if `name` is a regular file here (a symlink is not).
    pub fn is_file(&self, name: &str) -> bool {
        component(name).is_ok_and(|n| {
            rustix::fs::statat(&self.fd, n, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
        })
    }

    /// Names of the entries, without `.` and `..` (names that are not UTF-8 are left out).
    pub fn entries(&self) -> std::io::Result<Vec<String>> {
        let fd = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        let mut out = Vec::new();
        for e in rustix::fs::Dir::read_from(&fd)? {
            let e = e?;
            if let Ok(n) = e.file_name().to_str() {
                if n != "." && n != ".." {
                    out.push(n.to_owned());
                }
            }
        }
        Ok(out)
    }

    /// Writes `name` so that a reader sees the old file or the new one, never a mix: a
    /// uniquely named temporary file created exclusively (`O_CREAT | O_EXCL | O_NOFOLLOW`,
    /// mode 0600), fsync, `renameat` over `name` (which replaces a symlink rather than
    /// writing through it), fsync of the directory. The temporary file is removed if a step
    /// before the rename fails.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = component(name)?;
        let tmp = format!(
            ".{name}.tmp.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let fd = rustix::fs::openat(
            &self.fd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let result = (|| -> std::io::Result<()> {
            let mut f = File::from(fd);
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)?;
            Ok(())
        })();
        if result.is_err() {
            // Best effort: the original error is the one worth reporting.
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result?;
        self.sync()
    }

    /// Renames `from` to `to` inside this directory and fsyncs it.
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        rustix::fs::renameat(&self.fd, component(from)?, &self.fd, component(to)?)?;
        self.sync()
    }

    /// Removes the file `name` (a symlink is removed, never its target). `Ok(false)` if
    /// there was none.
    pub fn remove(&self, name: &str) -> std::io::Result<bool> {
        match rustix::fs::unlinkat(&self.fd, component(name)?, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// fsync of the directory, so a rename in it is durable.
    pub fn sync(&self) -> std::io::Result<()> {
        Ok(rustix::fs::fsync(&self.fd)?)
    }
}

/// [`Dir::write_atomic`] for a path the caller chose: its directory is opened following
/// symlinks (see [`Dir::open_following`]); the file itself is still never written through one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| bad_name(&path.display().to_string()))?;
    Dir::open_following(dir)?.write_atomic(name, bytes)
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

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_atomic(&dir.path().join("missing/f"), b"x").is_err());
    }

    #[test]
    fn dir_never_goes_through_a_symlink() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let d = tempfile::tempdir().unwrap();
        let root = Dir::open(d.path()).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("model"), b"secret").unwrap();

        // A symlinked directory is refused by open, subdir and private_subdir.
        symlink(elsewhere.path(), d.path().join("alice")).unwrap();
        assert!(Dir::open(&d.path().join("alice")).is_err());
        assert!(root.subdir("alice").is_err());
        assert!(root.private_subdir("alice").is_err());
        assert!(Dir::open_following(&d.path().join("alice")).is_ok());

        // A symlinked file is not read, and writing over it replaces the link, not its target.
        let bob = root.private_subdir("bob").unwrap();
        let mode = std::fs::metadata(d.path().join("bob"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        symlink(elsewhere.path().join("model"), d.path().join("bob/model")).unwrap();
        assert!(!bob.is_file("model"));
        assert!(matches!(
            bob.read_bounded("model", 100),
            Err(BoundedRead::Io(_))
        ));
        bob.write_atomic("model", b"new").unwrap();
        assert_eq!(
            std::fs::read(elsewhere.path().join("model")).unwrap(),
            b"secret"
        );
        assert!(bob.is_file("model"));
        assert_eq!(bob.read_bounded("model", 100).unwrap(), b"new");
        assert!(matches!(
            bob.read_bounded("model", 2),
            Err(BoundedRead::TooLarge { size: 3 })
        ));

        // Removing a symlink removes the link only.
        symlink(elsewhere.path().join("model"), d.path().join("bob/link")).unwrap();
        assert!(bob.remove("link").unwrap());
        assert!(!bob.remove("link").unwrap());
        assert!(elsewhere.path().join("model").exists());

        // Names are single components.
        for bad in ["", ".", "..", "a/b", "../bob"] {
            assert!(bob.write_atomic(bad, b"x").is_err(), "{bad:?}");
            assert!(root.subdir(bad).is_err(), "{bad:?}");
        }
        bob.rename("model", "model2").unwrap();
        let mut names = bob.entries().unwrap();
        names.sort();
        assert_eq!(names, vec!["model2".to_string()]);
    }

    #[test]
    fn a_planted_temporary_file_is_not_written_through() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        // Plant links at the next few temporary names this process could pick.
        for n in 0..64 {
            let _ = symlink(
                &victim,
                d.path().join(format!(".f.tmp.{}.{n}", std::process::id())),
            );
        }
        // Either the write lands (a name past the planted ones) or it fails: it never follows.
        let _ = dir.write_atomic("f", b"new");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }
}
