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
//! directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name of a user's model.
pub const MODEL_FILE: &str = "model.safetensors";

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
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

/// True for names that are safe as a directory name and plausible as an account: the
/// protocol's one rule, [`authnet_ipc::check_user_name`].
pub fn valid_user_name(name: &str) -> bool {
    authnet_ipc::check_user_name(name).is_ok()
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Creates `root` (mode 0700) if needed and tightens its mode.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: root.into(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io)?;
        fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io)?;
        Ok(Self { root: root.into() })
    }

    /// `<root>/<user>` (the name must have passed [`valid_user_name`]).
    pub fn user_dir(&self, user: &str) -> PathBuf {
        self.root.join(user)
    }

    /// `<root>/<user>`, created with mode 0700.
    pub fn ensure_user_dir(&self, user: &str) -> Result<PathBuf, StoreError> {
        let d = self.user_dir(user);
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&d)
            .map_err(|source| StoreError::Io {
                path: d.clone(),
                source,
            })?;
        Ok(d)
    }

    /// The user's model file path.
    pub fn model_path(&self, user: &str) -> PathBuf {
        self.user_dir(user).join(MODEL_FILE)
    }

    /// Users that have a model file, sorted.
    pub fn enrolled_users(&self) -> Result<Vec<String>, StoreError> {
        let rd = fs::read_dir(&self.root).map_err(|source| StoreError::Io {
            path: self.root.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if valid_user_name(&name) && self.model_path(&name).is_file() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the user's model (keeping the throttle state, so removal and re-enrolment do
    /// not clear failures). `Ok(false)` if there was none.
    pub fn remove_model(&self, user: &str) -> Result<bool, StoreError> {
        let p = self.model_path(user);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io { path: p, source }),
        }
    }
}

/// Writes `dir/name` atomically: temp file (mode 0600), fsync, rename, fsync of `dir`.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let target = dir.join(name);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &target).map_err(io(&target))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
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
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("state");
        let s = Store::open(&root).unwrap();
        let mode = fs::metadata(&root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let u = s.ensure_user_dir("alice").unwrap();
        write_atomic(&u, "x.json", b"one").unwrap();
        write_atomic(&u, "x.json", b"two").unwrap();
        assert_eq!(fs::read(u.join("x.json")).unwrap(), b"two");
        assert_eq!(fs::read_dir(&u).unwrap().count(), 1, "no temp file left");
        assert!(s.enrolled_users().unwrap().is_empty());
        fs::write(s.model_path("alice"), b"m").unwrap();
        assert_eq!(s.enrolled_users().unwrap(), vec!["alice".to_string()]);
        assert!(s.remove_model("alice").unwrap());
        assert!(!s.remove_model("alice").unwrap());
    }
}
