//! The daemon's only unsafe code: `SO_PEERCRED`, the socket-activation file descriptor, the
//! file-system credentials of a thread ([`FsCreds`]) and the umask of the socket bind
//! ([`with_umask`]), and the PAM client of the enrolment password check ([`pam`]). Each call is
//! small and its safety argument sits next to it. The passwd
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

/// The PAM client calls of the enrolment password check ([`crate::pam_check`]) and its
/// conversation function.
pub mod pam {
    use std::ffi::{c_char, c_int, c_void, CStr};

    pub const PAM_SUCCESS: c_int = 0;
    pub const PAM_BUF_ERR: c_int = 5;
    pub const PAM_PERM_DENIED: c_int = 6;
    pub const PAM_AUTH_ERR: c_int = 7;
    pub const PAM_CRED_INSUFFICIENT: c_int = 8;
    pub const PAM_USER_UNKNOWN: c_int = 10;
    pub const PAM_MAXTRIES: c_int = 11;
    pub const PAM_NEW_AUTHTOK_REQD: c_int = 12;
    pub const PAM_ACCT_EXPIRED: c_int = 13;
    pub const PAM_CONV_ERR: c_int = 19;
    pub const PAM_AUTHTOK_EXPIRED: c_int = 27;

    pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
    pub const PAM_PROMPT_ECHO_ON: c_int = 2;

    pub const PAM_SILENT: c_int = 0x8000;
    pub const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;

    /// What the conversation answers with: the password and its terminating NUL.
    struct ConvData<'a> {
        password: &'a [u8],
    }

    /// `struct pam_message` (Linux-PAM, `<security/_pam_types.h>`).
    #[repr(C)]
    struct PamMessage {
        msg_style: c_int,
        msg: *const c_char,
    }

    /// `struct pam_response`.
    #[repr(C)]
    struct PamResponse {
        resp: *mut c_char,
        resp_retcode: c_int,
    }

    type ConvFn = unsafe extern "C" fn(
        num_msg: c_int,
        msg: *mut *const PamMessage,
        resp: *mut *mut PamResponse,
        appdata_ptr: *mut c_void,
    ) -> c_int;

    /// `struct pam_conv`.
    #[repr(C)]
    struct PamConv {
        conv: ConvFn,
        appdata_ptr: *mut c_void,
    }

    /// Opaque `pam_handle_t`.
    #[repr(C)]
    struct PamHandle {
        _private: [u8; 0],
    }

    #[link(name = "pam")]
    extern "C" {
        fn pam_start(
            service_name: *const c_char,
            user: *const c_char,
            pam_conversation: *const PamConv,
            pamh: *mut *mut PamHandle,
        ) -> c_int;
        fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
        fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
        fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    }

    /// Copies `bytes` (a NUL-terminated string) into a `malloc`ed buffer that PAM will `free`.
    fn malloc_cstr(bytes: &[u8]) -> *mut c_char {
        // SAFETY: malloc of a non-zero size; a null result is handled by the caller.
        let p = unsafe { libc::malloc(bytes.len()) }.cast::<c_char>();
        if !p.is_null() {
            // SAFETY: `p` points to `bytes.len()` freshly allocated bytes that cannot overlap
            // `bytes`.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), p, bytes.len()) };
        }
        p
    }

    /// Frees the first `n` replies of `r` (wiping them) and `r` itself.
    ///
    /// # Safety
    /// `r` is a `calloc`ed array of at least `n` responses whose `resp` are null or `malloc`ed
    /// NUL-terminated strings.
    unsafe fn free_replies(r: *mut PamResponse, n: usize) {
        for i in 0..n {
            // SAFETY: `i < n` is within the array (caller's contract).
            let item = unsafe { &mut *r.add(i) };
            if !item.resp.is_null() {
                // SAFETY: `resp` is a NUL-terminated malloc'ed string (caller's contract); it is
                // wiped over its length and freed once.
                unsafe {
                    let len = libc::strlen(item.resp);
                    std::ptr::write_bytes(item.resp, 0, len);
                    libc::free(item.resp.cast());
                }
                item.resp = std::ptr::null_mut();
            }
        }
        // SAFETY: `r` came from calloc (caller's contract) and is freed once.
        unsafe { libc::free(r.cast()) };
    }

    /// The conversation function.
    ///
    /// # Safety
    /// Called by libpam with `num_msg` messages in `msg` (Linux-PAM layout: an array of pointers),
    /// a writable `resp` and the `appdata_ptr` given to `pam_start`, which points to a live
    /// [`ConvData`].
    unsafe extern "C" fn conversation(
        num_msg: c_int,
        msg: *mut *const PamMessage,
        resp: *mut *mut PamResponse,
        appdata_ptr: *mut c_void,
    ) -> c_int {
        // Never unwind into C. Nothing below panics, but the guard costs nothing.
        let r = std::panic::catch_unwind(|| {
            // SAFETY: forwarded from this function's own contract.
            unsafe { converse(num_msg, msg, resp, appdata_ptr) }
        });
        r.unwrap_or(PAM_CONV_ERR)
    }

    /// The body of [`conversation`].
    ///
    /// # Safety
    /// As [`conversation`].
    unsafe fn converse(
        num_msg: c_int,
        msg: *mut *const PamMessage,
        resp: *mut *mut PamResponse,
        appdata_ptr: *mut c_void,
    ) -> c_int {
        // PAM_MAX_NUM_MSG is 32.
        if num_msg <= 0 || num_msg > 32 || msg.is_null() || resp.is_null() || appdata_ptr.is_null()
        {
            return PAM_CONV_ERR;
        }
        let n = num_msg as usize;
        // SAFETY: `appdata_ptr` is the `&ConvData` passed to pam_start, alive for the whole
        // PAM transaction (see [`authenticate`]).
        let data = unsafe { &*appdata_ptr.cast::<ConvData<'_>>() };
        // SAFETY: calloc of `n` zeroed responses; null is handled.
        let replies =
            unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
        if replies.is_null() {
            return PAM_BUF_ERR;
        }
        for i in 0..n {
            // SAFETY: libpam passes `num_msg` valid message pointers.
            let m = unsafe { *msg.add(i) };
            if m.is_null() {
                // SAFETY: `replies` is our calloc'ed array of `n`, filled up to `i`.
                unsafe { free_replies(replies, n) };
                return PAM_CONV_ERR;
            }
            // SAFETY: a non-null message pointer from libpam points to a valid pam_message.
            let style = unsafe { (*m).msg_style };
            match style {
                PAM_PROMPT_ECHO_OFF => {
                    let p = malloc_cstr(data.password);
                    if p.is_null() {
                        // SAFETY: as above.
                        unsafe { free_replies(replies, n) };
                        return PAM_BUF_ERR;
                    }
                    // SAFETY: `i < n`, inside our array.
                    unsafe { (*replies.add(i)).resp = p };
                }
                PAM_PROMPT_ECHO_ON => {
                    // SAFETY: as above.
                    unsafe { free_replies(replies, n) };
                    return PAM_CONV_ERR;
                }
                // PAM_ERROR_MSG, PAM_TEXT_INFO and others: nobody reads them; a null reply is fine.
                _ => {}
            }
        }
        // SAFETY: `resp` is writable (libpam's contract); libpam now owns `replies`.
        unsafe { *resp = replies };
        PAM_SUCCESS
    }

    /// One blocking PAM transaction on the calling thread (`pam_start` → `pam_authenticate` →
    /// `pam_acct_mgmt` → `pam_end`), answering every hidden prompt with `password` (NUL-terminated,
    /// no NUL inside). Returns the last PAM code.
    pub fn authenticate(service: &CStr, user: &CStr, password: &[u8]) -> c_int {
        debug_assert_eq!(
            password.iter().position(|&b| b == 0),
            Some(password.len() - 1)
        );
        let data = ConvData { password };
        let conv = PamConv {
            conv: conversation,
            appdata_ptr: (&data as *const ConvData<'_>).cast_mut().cast(),
        };
        let mut pamh: *mut PamHandle = std::ptr::null_mut();
        // SAFETY: the strings are NUL-terminated and, like `conv` and `data`, outlive the
        // transaction, which ends with pam_end below on every path; `pamh` is writable.
        let rc = unsafe { pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh) };
        if rc != PAM_SUCCESS || pamh.is_null() {
            return if rc == PAM_SUCCESS { PAM_BUF_ERR } else { rc };
        }
        let flags = PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK;
        // SAFETY: `pamh` is the live handle pam_start returned.
        let mut rc = unsafe { pam_authenticate(pamh, flags) };
        if rc == PAM_SUCCESS {
            // SAFETY: as above.
            rc = unsafe { pam_acct_mgmt(pamh, flags) };
        }
        // SAFETY: ends the transaction begun above, exactly once; `pamh` is not used after.
        unsafe { pam_end(pamh, rc) };
        rc
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use super::*;

        #[test]
        fn the_conversation_answers_only_hidden_prompts() {
            let data = ConvData {
                password: b"s3cret\0",
            };
            let prompt = std::ffi::CString::new("Password: ").unwrap();
            let hidden = PamMessage {
                msg_style: PAM_PROMPT_ECHO_OFF,
                msg: prompt.as_ptr(),
            };
            let info = PamMessage {
                msg_style: 4,
                msg: prompt.as_ptr(),
            };
            let mut msgs = [&hidden as *const PamMessage, &info as *const PamMessage];
            let mut resp: *mut PamResponse = std::ptr::null_mut();
            let app = (&data as *const ConvData<'_>).cast_mut().cast();
            // SAFETY: a valid message array, a writable reply pointer and live appdata.
            let rc = unsafe { conversation(2, msgs.as_mut_ptr(), &mut resp, app) };
            assert_eq!(rc, PAM_SUCCESS);
            // SAFETY: the conversation returned a calloc'ed array of 2 replies.
            unsafe {
                let first = std::ffi::CStr::from_ptr((*resp).resp);
                assert_eq!(first.to_str().unwrap(), "s3cret");
                assert!((*resp.add(1)).resp.is_null());
                free_replies(resp, 2);
            }
            let echo = PamMessage {
                msg_style: PAM_PROMPT_ECHO_ON,
                msg: prompt.as_ptr(),
            };
            let mut msgs = [&echo as *const PamMessage];
            let mut resp: *mut PamResponse = std::ptr::null_mut();
            // SAFETY: as above.
            let rc = unsafe { conversation(1, msgs.as_mut_ptr(), &mut resp, app) };
            assert_eq!(rc, PAM_CONV_ERR);
            assert!(resp.is_null());
        }
    }
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
