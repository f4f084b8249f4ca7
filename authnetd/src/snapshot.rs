//! Opt-in snapshots of failed attempts (`snapshots = true`), so an administrator can see why a
//! face was refused: the light, the framing, someone else at the keyboard.
//!
//! ```text
//! <state_dir>/snapshots/                             mode 0700, root
//!   snap-<unix ms>-<seq>-<user>-<n>.jpg              mode 0600, a few frames per attempt
//! ```
//!
//! Only rejected attempts write (never an accept, never an "unavailable" answer). Every file is
//! created with `O_CREAT | O_EXCL | O_NOFOLLOW`, so nothing already there, a symlink planted
//! included, is written through; the directory itself must be a real directory, not a symlink.
//! After each write the oldest `snap-*.jpg` files beyond `snapshot_keep` are removed. The
//! directory may share its name with a user's directory without harm: only `snap-*.jpg` files
//! are ever created or removed in it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use authnet_core::capture::convert::frame_to_jpeg;
use authnet_core::capture::{CaptureError, Frame};

use crate::config::Config;
use crate::log::Logger;

/// Subdirectory of the state directory.
pub const DIR: &str = "snapshots";

/// Frames written per failed attempt.
pub const FRAMES: usize = 3;

/// JPEG quality: enough to recognise a face and the light, small files.
const QUALITY: u8 = 85;

/// Orders snapshots written within the same millisecond.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Why a snapshot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The snapshot directory is a symlink or not a directory.
    #[error("{0} is not a plain directory; refusing to write snapshots there")]
    NotADirectory(PathBuf),
    /// A frame could not be encoded.
    #[error("encoding a frame: {0}")]
    Encode(#[from] CaptureError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.into(),
        source,
    }
}

/// How many frames an attempt should keep for a snapshot: [`FRAMES`] when snapshots are on,
/// else none (frames are not retained at all).
pub fn frames_to_keep(cfg: &Config) -> usize {
    if cfg.snapshots {
        FRAMES
    } else {
        0
    }
}

/// Creates (or checks) `dir` as a root-only plain directory.
fn ensure_dir(dir: &Path) -> Result<(), SnapshotError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(dir)(e)),
    }
    let md = fs::symlink_metadata(dir).map_err(io(dir))?;
    if !md.file_type().is_dir() {
        return Err(SnapshotError::NotADirectory(dir.into()));
    }
    if md.mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

/// Writes `frames` as JPEG files into `dir` (created 0700 if needed), each 0600 and created
/// exclusively without following symlinks, then keeps only the newest `keep` snapshot files.
/// Returns the files written.
pub fn save(
    dir: &Path,
    user: &str,
    frames: &[Frame],
    keep: usize,
) -> Result<Vec<PathBuf>, SnapshotError> {
    ensure_dir(dir)?;
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut written = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let jpeg = frame_to_jpeg(f, QUALITY)?;
        // Zero-padded, so the name order is the time order.
        let p = dir.join(format!("snap-{ms:014}-{seq:08}-{user}-{i}.jpg"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&p)
            .map_err(io(&p))?;
        file.write_all(&jpeg).map_err(io(&p))?;
        written.push(p);
    }
    prune(dir, keep)?;
    Ok(written)
}

/// Removes the oldest `snap-*.jpg` files of `dir` beyond `keep`; returns how many went.
pub fn prune(dir: &Path, keep: usize) -> Result<usize, SnapshotError> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("snap-") && n.ends_with(".jpg"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for n in &names[..excess] {
        let p = dir.join(n);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p)(e)),
        }
    }
    Ok(excess)
}

/// The hook for a rejected attempt: when snapshots are on and frames were kept, writes them
/// under `<state_dir>/snapshots` and logs where (or why not). Never fails the attempt.
pub fn on_reject(cfg: &Config, log: &Logger, user: &str, frames: &[Frame]) {
    if !cfg.snapshots || frames.is_empty() {
        return;
    }
    let dir = cfg.state_dir.join(DIR);
    match save(&dir, user, frames, cfg.snapshot_keep) {
        Ok(files) => log.info(&format!(
            "user={user} snapshot of the failed attempt: {} frames in {}",
            files.len(),
            dir.display()
        )),
        Err(e) => {
            let e = crate::log::chain(&e);
            log.error(&format!("user={user} cannot write a snapshot: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn frames(n: usize) -> Vec<Frame> {
        (0..n)
            .map(|i| Frame::new(4, 4, vec![(i * 40) as u8; 48]).unwrap())
            .collect()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn files_are_root_only_and_retention_keeps_the_newest() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(DIR);
        let first = save(&dir, "alice", &frames(3), 5).unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(fs::symlink_metadata(&dir).unwrap().mode() & 0o777, 0o700);
        for p in &first {
            let md = fs::symlink_metadata(p).unwrap();
            assert_eq!(md.mode() & 0o777, 0o600, "{}", p.display());
            let bytes = fs::read(p).unwrap();
            assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
        }
        let second = save(&dir, "alice", &frames(3), 5).unwrap();
        let left = listing(&dir);
        assert_eq!(left.len(), 5);
        // The oldest went: the first file of the first attempt.
        let name = |p: &PathBuf| p.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(!left.contains(&name(&first[0])));
        assert!(second.iter().all(|p| left.contains(&name(p))));
        // Unrelated files are never pruned.
        fs::write(dir.join("model.safetensors"), b"x").unwrap();
        save(&dir, "alice", &frames(1), 2).unwrap();
        let left = listing(&dir);
        assert!(left.contains(&"model.safetensors".to_owned()));
        assert_eq!(left.iter().filter(|n| n.starts_with("snap-")).count(), 2);
    }

    #[test]
    fn a_symlinked_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let dir = t.path().join(DIR);
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        assert!(matches!(
            save(&dir, "alice", &frames(1), 5),
            Err(SnapshotError::NotADirectory(_))
        ));
        assert!(listing(&elsewhere).is_empty());
    }

    #[test]
    fn the_directory_mode_is_tightened() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(DIR);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        save(&dir, "alice", &frames(1), 5).unwrap();
        assert_eq!(fs::symlink_metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }
}
