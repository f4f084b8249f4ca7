//! The daemon's only unsafe code: `SO_PEERCRED`, the socket-activation file descriptor, the
//! file-system credentials of a thread ([`FsCreds`]) and the umask of the socket bind
//! ([`with_umask`]). Each call is small and its safety argument sits next to it. The passwd
//! database is read here too, but through `nix` ([`account_by_name`], [`account_by_uid`]),
//! with no unsafe code of ours.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};

/// The peer's credentials as the kernel recorded them when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// `getsockopt(SO_PEERCRED)` on a connected Unix socket.
pub fn peer_cred(s: &UnixStream) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `s` owns an open socket fd for the duration of the call; `cred` is a valid,
    // writable `ucred` and `len` holds its exact size, as SO_PEERCRED requires.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::other("short SO_PEERCRED answer"));
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Peeks at the socket without blocking and without consuming: `Ok(0)` means the peer
/// closed, `Ok(n)` that bytes are waiting, `WouldBlock` that nothing arrived.
pub fn peek_nonblocking(s: &UnixStream) -> io::Result<usize> {
    let mut b = [0u8; 1];
    // SAFETY: `b` is a valid 1-byte buffer for the duration of the call and `s` owns an open
    // socket fd; MSG_PEEK | MSG_DONTWAIT neither consumes data nor blocks.
    let n = unsafe {
        libc::recv(
            s.as_raw_fd(),
            b.as_mut_ptr().cast(),
            b.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// An account from the passwd database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
}

impl From<nix::unistd::User> for Account {
    fn from(u: nix::unistd::User) -> Self {
        Self {
            name: u.name,
            uid: u.uid.as_raw(),
        }
    }
}

/// Looks an account up by name (`getpwnam_r`, through `nix`). A name with a NUL byte names
/// no account.
pub fn account_by_name(name: &str) -> io::Result<Option<Account>> {
    Ok(nix::unistd::User::from_name(name)?.map(Account::from))
}

/// Looks an account up by uid (`getpwuid_r`, through `nix`).
pub fn account_by_uid(uid: u32) -> io::Result<Option<Account>> {
    Ok(nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))?.map(Account::from))
}

/// The calling thread's file-system identity switched to a peer's until dropped: `setfsuid`
/// and `setfsgid`, and no supplementary groups. Linux keeps these per thread, and they are set
/// here with plain syscalls that (unlike glibc's `setgroups` and `setuid`) touch only the
/// calling thread, so other connections keep root's rights. While it lives, every `open` of
/// this thread (FFmpeg's included) is checked against the peer's rights: the root daemon reads
/// only what the peer itself could read. Not `Send`: it must be dropped on its thread.
#[derive(Debug)]
pub struct FsCreds {
    groups: Vec<libc::gid_t>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl FsCreds {
    /// Switches to `uid`/`gid` (with no supplementary groups) for file access.
    pub fn assume(uid: u32, gid: u32) -> io::Result<Self> {
        // SAFETY: getgroups(0, NULL) only returns the count.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut groups = vec![0 as libc::gid_t; n as usize];
        // SAFETY: `groups` has room for exactly `n` entries.
        let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        groups.truncate(n as usize);
        let guard = Self {
            groups,
            _not_send: std::marker::PhantomData,
        };
        // SAFETY: the raw setgroups syscall with an empty list changes only this thread's
        // supplementary groups (the kernel keeps credentials per thread).
        let rc =
            unsafe { libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: setfsgid/setfsuid take plain ids and change only this thread's fs ids; the
        // drop of `guard` restores root on every early return.
        unsafe {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
        }
        // setfs*id report no errors: read the ids back (an invalid id changes nothing and
        // returns the current one).
        // SAFETY: as above; u32::MAX is never a valid id, so these calls only read.
        let (fsuid, fsgid) = unsafe { (libc::setfsuid(u32::MAX), libc::setfsgid(u32::MAX)) };
        if fsuid as u32 != uid || fsgid as u32 != gid {
            return Err(io::Error::other(format!(
                "setfsuid/setfsgid did not take (fsuid {fsuid}, fsgid {fsgid})"
            )));
        }
        Ok(guard)
    }
}

impl Drop for FsCreds {
    fn drop(&mut self) {
        // SAFETY: back to root's fs ids and saved groups, on this thread only (see `assume`);
        // `self.groups` holds `len` valid gids.
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
            libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr());
        }
    }
}

/// Runs `f` with the process umask set to `mask`, then restores it. Used once, at start and
/// before any thread exists, so that the socket is created with its final mode by `bind`
/// itself (a `chmod` by path after `bind` could be redirected).
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask cannot fail; it only swaps the process's file-creation mask.
    let old = unsafe { libc::umask(mask as libc::mode_t) };
    let r = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    r
}

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The listening socket systemd passed, if `LISTEN_PID` names this process and `LISTEN_FDS`
/// is at least 1 (only the first fd is used). The variables are removed so children do not
/// inherit them.
pub fn activation_listener() -> io::Result<Option<UnixListener>> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if !pid_ok || fds == 0 {
        return Ok(None);
    }
    let fd = LISTEN_FDS_START;
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: plain getsockopt on an fd number into a valid c_int; an fd that is not a socket
    // just fails with ENOTSOCK.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || ty != libc::SOCK_STREAM {
        return Err(io::Error::other(
            "LISTEN_FDS is set but fd 3 is not a stream socket",
        ));
    }
    // SAFETY: systemd hands this process ownership of fd 3 (LISTEN_PID matched), it is an open
    // stream socket (checked above), and nothing else in the process wraps it.
    let l = unsafe { UnixListener::from_raw_fd(fd) };
    // Close-on-exec, as std sets on the sockets it creates.
    // SAFETY: fcntl on an fd we now own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(Some(l))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn peer_cred_of_a_socketpair_is_ourselves() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = peer_cred(&a).unwrap();
        assert_eq!(c.pid as u32, std::process::id());
        // SAFETY: geteuid cannot fail.
        assert_eq!(c.uid, unsafe { libc::geteuid() });
    }

    #[test]
    fn fs_creds_apply_to_this_thread_only() {
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, b"root only").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return; // Only root can switch fs ids; CI runs as root.
        }
        // A thread that already runs keeps root's rights while this one is switched (a thread
        // spawned during the switch would inherit it: Linux copies credentials on clone).
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let s2 = secret.clone();
        let other = std::thread::spawn(move || {
            wait.recv().unwrap();
            std::fs::read(s2).is_ok()
        });
        {
            let _g = FsCreds::assume(65534, 65534).unwrap();
            let e = std::fs::read(&secret).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            go.send(()).unwrap();
            assert!(other.join().unwrap(), "the other thread lost root's rights");
        }
        assert_eq!(std::fs::read(&secret).unwrap(), b"root only");
    }

    #[test]
    fn root_and_missing_accounts() {
        let root = account_by_uid(0).unwrap().unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(account_by_name("root").unwrap().unwrap().uid, 0);
        assert_eq!(account_by_name("no-such-user-authnet").unwrap(), None);
        assert_eq!(account_by_name("bad\0name").unwrap(), None);
    }
}
