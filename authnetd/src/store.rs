//! Per-user storage under the state directory:
//!
//! ```text
//! <state_dir>/            mode 0700, root
//!   <user>/               mode 0700
//!     model.safetensors   the user's model (authnet_core::model::password)
//!     throttle.json       failed-attempt state (crate::throttle)
//! ```
//!
//! Every write is atomic: a temporary file in the same directory, fsync, rename, fsync of the
//! directory ([`Dir::write_atomic`]).
//!
//! Nothing here goes through a symlink: the state directory and each user directory are opened
//! with `O_NOFOLLOW | O_DIRECTORY` and checked on the descriptor (owned by root, mode 0700), and
//! files inside are reached relative to it (`openat`/`renameat`/`unlinkat` with `O_NOFOLLOW`).
//! A link planted in place of a user directory or a model, or swapped in after a check, is
//! refused instead of followed.

use std::path::{Path, PathBuf};

use authnet_core::fsutil::{BoundedRead, Dir};
use authnet_core::model::file::{Expect, MAX_MODEL_FILE_BYTES};
use authnet_core::model::password::{PasswordError, PasswordModel};

/// File name of a user's model.
pub const MODEL_FILE: &str = "model.safetensors";

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written (a symlink where a directory or a
    /// file was expected is refused as `ELOOP` or `ENOTDIR`).
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is unusable.
    #[error("{path} is corrupt: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Why a user's model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadModelError {
    /// Reading the file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file was read but is not a usable model for this account and pipeline.
    #[error(transparent)]
    Model(#[from] PasswordError),
}

/// True for names that are safe as a directory name and plausible as an account: the
/// protocol's one rule, [`authnet_ipc::check_user_name`].
pub fn valid_user_name(name: &str) -> bool {
    authnet_ipc::check_user_name(name).is_ok()
}

fn io_at(path: PathBuf) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { path, source }
}

/// Reads `name` in `dir` (a regular file of at most `max` bytes, never through a symlink);
/// `Ok(None)` if it does not exist.
pub(crate) fn read_file(dir: &Dir, name: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let path = dir.path().join(name);
    match dir.read_bounded(name, max) {
        Ok(b) => Ok(Some(b)),
        Err(BoundedRead::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(BoundedRead::Io(source)) => Err(StoreError::Io { path, source }),
        Err(BoundedRead::TooLarge { size }) => Err(StoreError::Corrupt {
            path,
            why: format!("{size} bytes, more than the {max} allowed"),
        }),
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Creates `root` (mode 0700) if needed, and checks that it is a directory (not a
    /// symlink) owned by the daemon's uid, tightening its mode to 0700.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io_at(root.into()))?;
        let s = Self { root: root.into() };
        s.root_dir()?.make_private().map_err(io_at(root.into()))?;
        Ok(s)
    }

    fn root_dir(&self) -> Result<Dir, StoreError> {
        Dir::open(&self.root).map_err(io_at(self.root.clone()))
    }

    /// `<root>/<user>`, for messages and for callers that open it with [`Dir::open`] (the
    /// name must have passed [`valid_user_name`]).
    pub fn user_dir(&self, user: &str) -> PathBuf {
        self.root.join(user)
    }

    /// `<root>/<user>`, opened relative to the state directory; `Ok(None)` if absent.
    pub fn open_user_dir(&self, user: &str) -> Result<Option<Dir>, StoreError> {
        match self.root_dir()?.subdir(user) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                path: self.user_dir(user),
                source,
            }),
        }
    }

    /// `<root>/<user>`, created with mode 0700 if needed and checked (a directory owned by
    /// the daemon's uid, not a symlink).
    pub fn ensure_user_dir(&self, user: &str) -> Result<Dir, StoreError> {
        self.root_dir()?
            .private_subdir(user)
            .map_err(io_at(self.user_dir(user)))
    }

    /// The user's model file path (for messages).
    pub fn model_path(&self, user: &str) -> PathBuf {
        self.user_dir(user).join(MODEL_FILE)
    }

    /// Loads the user's model, read relative to the user's directory, checked against
    /// `expect` (pipeline, digest, owner).
    pub fn load_model(
        &self,
        user: &str,
        expect: &Expect<'_>,
    ) -> Result<PasswordModel, LoadModelError> {
        let not_found = || StoreError::Io {
            path: self.model_path(user),
            source: std::io::ErrorKind::NotFound.into(),
        };
        let dir = self.open_user_dir(user)?.ok_or_else(not_found)?;
        let bytes = read_file(&dir, MODEL_FILE, MAX_MODEL_FILE_BYTES)?.ok_or_else(not_found)?;
        Ok(PasswordModel::from_bytes(&bytes, expect)?)
    }

    /// Whether `user` has a model file: a regular file in a real directory (a symlink in the
    /// way is no model).
    pub fn has_model(&self, user: &str) -> bool {
        matches!(self.open_user_dir(user), Ok(Some(d)) if d.is_file(MODEL_FILE))
    }

    /// Users that have a model file, sorted.
    pub fn enrolled_users(&self) -> Result<Vec<String>, StoreError> {
        let root = self.root_dir()?;
        let names = root.entries().map_err(io_at(self.root.clone()))?;
        let mut out: Vec<String> = names
            .into_iter()
            .filter(|n| valid_user_name(n))
            .filter(|n| matches!(root.subdir(n), Ok(d) if d.is_file(MODEL_FILE)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Removes the user's model (keeping the throttle state, so removal and re-enrolment do
    /// not clear failures). `Ok(false)` if there was none.
    pub fn remove_model(&self, user: &str) -> Result<bool, StoreError> {
        let Some(dir) = self.open_user_dir(user)? else {
            return Ok(false);
        };
        dir.remove(MODEL_FILE).map_err(io_at(self.model_path(user)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn user_names() {
        for ok in ["root", "alice", "a.b-c_d", "HOST$", "u1"] {
            assert!(valid_user_name(ok), "{ok}");
        }
        for bad in ["", "..", ".", "-x", "a/b", "a b", "ä", "$", &"x".repeat(65)] {
            assert!(!valid_user_name(bad), "{bad}");
        }
    }

    #[test]
    fn state_dir_is_private_and_writes_are_atomic() {
        use std::fs;
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("state");
        let s = Store::open(&root).unwrap();
        let mode = fs::metadata(&root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let u = s.ensure_user_dir("alice").unwrap();
        u.write_atomic("x.json", b"one").unwrap();
        u.write_atomic("x.json", b"two").unwrap();
        assert_eq!(fs::read(root.join("alice/x.json")).unwrap(), b"two");
        assert_eq!(u.entries().unwrap().len(), 1, "no temp file left");
        assert!(s.enrolled_users().unwrap().is_empty());
        fs::write(s.model_path("alice"), b"m").unwrap();
        assert_eq!(s.enrolled_users().unwrap(), vec!["alice".to_string()]);
        assert!(s.remove_model("alice").unwrap());
        assert!(!s.remove_model("alice").unwrap());
        assert!(!s.remove_model("nobody").unwrap());
    }

    #[test]
    fn symlinks_in_the_state_directory_are_refused() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("state");
        let s = Store::open(&root).unwrap();
        let other = d.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(MODEL_FILE), b"m").unwrap();
        // A user directory that is a link: not listed, not loaded, not written through.
        symlink(&other, root.join("bob")).unwrap();
        assert!(s.enrolled_users().unwrap().is_empty());
        assert!(s.ensure_user_dir("bob").is_err());
        assert!(s.remove_model("bob").is_err());
        assert!(other.join(MODEL_FILE).exists());
        // A model that is a link.
        s.ensure_user_dir("carol").unwrap();
        symlink(other.join(MODEL_FILE), root.join("carol").join(MODEL_FILE)).unwrap();
        let e = read_file(&s.open_user_dir("carol").unwrap().unwrap(), MODEL_FILE, 100);
        assert!(matches!(e, Err(StoreError::Io { .. })), "{e:?}");
        // The state directory itself must not be a link.
        let link = d.path().join("state-link");
        symlink(&root, &link).unwrap();
        assert!(Store::open(&link).is_err());
    }
}
