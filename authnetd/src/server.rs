//! The accept loop and one thread per connection.
//!
//! The peer's identity comes from `SO_PEERCRED`, never from the payload. Every read and write
//! runs against a deadline (`io_timeout` per frame, re-armed before each syscall), so a client
//! that drips one byte a second holds only its own thread, and only briefly. At most
//! `max_connections` connections are served at once, of which `root_connections` are kept for
//! root peers (sudo, su and login run as root, so a user cannot crowd them out), and one
//! non-root uid holds at most `max_connections_per_uid`; the next one is told `busy` and closed.

use std::collections::HashMap;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use authnet_ipc::{
    check_version, read_frame, write_frame, DeadlineStream, ErrorKind, IpcError, Request, Response,
    PROTOCOL_VERSION,
};

use crate::session::{Daemon, Refusal};
use crate::sys::{self, PeerCred};

/// A connected client with deadline-bounded framed I/O.
#[derive(Debug)]
pub struct Conn {
    stream: UnixStream,
    io_timeout: Duration,
    /// Who is on the other end (from the kernel).
    pub peer: PeerCred,
}

/// What the client did while an attempt ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Nothing: carry on.
    Waiting,
    /// It sent `cancel` (or anything else, which also ends the attempt).
    Cancelled,
    /// It closed the connection.
    Gone,
}

impl Conn {
    /// Receives one request within `io_timeout`.
    pub fn recv(&mut self) -> Result<Request, IpcError> {
        let deadline = Instant::now() + self.io_timeout;
        read_frame(&mut DeadlineStream::new(&self.stream, deadline))
    }

    /// Sends one response within `io_timeout`.
    pub fn send(&mut self, r: &Response) -> Result<(), IpcError> {
        let deadline = Instant::now() + self.io_timeout;
        write_frame(&mut DeadlineStream::new(&self.stream, deadline), r)
    }

    /// Sends an error response: only [`Refusal::send`] does, the one error → protocol mapping.
    pub(crate) fn error(
        &mut self,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Result<(), IpcError> {
        self.send(&Response::Error {
            kind,
            message: message.into(),
        })
    }

    /// Checks, without blocking, whether the client cancelled or went away.
    pub fn poll(&mut self) -> ClientState {
        match sys::peek_nonblocking(&self.stream) {
            Ok(0) => ClientState::Gone,
            Ok(_) => match self.recv() {
                Ok(Request::Cancel {}) => ClientState::Cancelled,
                Ok(_) => ClientState::Cancelled,
                Err(_) => ClientState::Gone,
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ClientState::Waiting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => ClientState::Waiting,
            Err(_) => ClientState::Gone,
        }
    }
}

/// The listening socket: systemd's (socket activation) or our own bind.
pub fn listen(path: &Path) -> anyhow::Result<(UnixListener, bool)> {
    if let Some(l) = sys::activation_listener().context("socket activation")? {
        return Ok((l, true));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A stale socket from a previous run: connectable means another daemon is alive.
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!("another authnetd is listening on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    // Everyone may connect (screen lockers run as the user); access control is by SO_PEERCRED.
    // The mode (0666) comes from the umask at bind time, so the socket is never reachable with
    // another mode and no chmod by path follows (which a swapped path could redirect).
    let l = sys::with_umask(0o111, || UnixListener::bind(path))
        .with_context(|| format!("binding {}", path.display()))?;
    Ok((l, false))
}

/// Connections being served: in all, and per non-root uid.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    /// Every slot (or every slot open to non-root peers) is taken.
    All,
    /// This uid holds its share.
    Uid,
}

/// The connection slots ([`Counts`] with the limits of the config).
#[derive(Debug)]
struct Slots {
    counts: Mutex<Counts>,
    max: usize,
    root_only: usize,
    per_uid: usize,
}

impl Slots {
    /// Takes a slot for a peer of `uid`.
    fn take(self: &Arc<Self>, uid: u32) -> Result<Slot, Full> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if uid == 0 {
            if c.total >= self.max {
                return Err(Full::All);
            }
        } else {
            if c.total >= self.max - self.root_only {
                return Err(Full::All);
            }
            let n = c.per_uid.get(&uid).copied().unwrap_or(0);
            if n >= self.per_uid {
                return Err(Full::Uid);
            }
            c.per_uid.insert(uid, n + 1);
        }
        c.total += 1;
        Ok(Slot {
            slots: self.clone(),
            uid,
        })
    }
}

/// One taken slot, given back when the connection thread ends.
struct Slot {
    slots: Arc<Slots>,
    uid: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if self.uid != 0 {
            if let Some(n) = c.per_uid.get_mut(&self.uid) {
                *n -= 1;
                if *n == 0 {
                    c.per_uid.remove(&self.uid);
                }
            }
        }
    }
}

/// Serves forever.
pub fn serve(listener: UnixListener, daemon: Arc<Daemon>) -> anyhow::Result<()> {
    let slots = Arc::new(Slots {
        counts: Mutex::new(Counts::default()),
        max: daemon.cfg.max_connections,
        root_only: daemon.cfg.root_connections,
        per_uid: daemon.cfg.max_connections_per_uid,
    });
    for s in listener.incoming() {
        let stream = match s {
            Ok(s) => s,
            Err(e) => {
                daemon.log.warn(&format!("accept failed: {e}"));
                // EMFILE and friends: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = match sys::peer_cred(&stream) {
            Ok(p) => p,
            Err(e) => {
                daemon.log.warn(&format!("SO_PEERCRED failed: {e}"));
                continue;
            }
        };
        let slot = match slots.take(peer.uid) {
            Ok(s) => s,
            Err(full) => {
                let message = match full {
                    Full::All => "too many connections",
                    Full::Uid => "too many connections from your uid",
                };
                // The accept loop must not wait on a peer: 100 ms to take the answer.
                let mut conn = Conn {
                    stream,
                    io_timeout: Duration::from_millis(100),
                    peer,
                };
                let _ = Refusal::peer(ErrorKind::Busy, message).send(&mut conn, &daemon.log);
                crate::log::with_peer(peer.uid, || {
                    daemon.log.warn(&format!(
                        "connection from uid {} refused: {message}",
                        peer.uid
                    ))
                });
                continue;
            }
        };
        let d = daemon.clone();
        let spawned = std::thread::Builder::new()
            .name("authnetd-conn".into())
            .spawn(move || {
                let _slot = slot;
                crate::log::with_peer(peer.uid, || handle(stream, peer, &d));
            });
        if let Err(e) = spawned {
            daemon.log.error(&format!("cannot start a thread: {e}"));
        }
    }
    Ok(())
}

/// One connection: hello, then requests until the client closes or misbehaves.
fn handle(stream: UnixStream, peer: PeerCred, daemon: &Daemon) {
    let mut conn = Conn {
        stream,
        io_timeout: daemon.cfg.io_timeout,
        peer,
    };
    match conn.recv() {
        Ok(Request::Hello { protocol_version }) => {
            if check_version(protocol_version).is_err() {
                let _ = Refusal::peer(
                    ErrorKind::UnsupportedVersion,
                    format!("this daemon speaks protocol {PROTOCOL_VERSION}"),
                )
                .send(&mut conn, &daemon.log);
                return;
            }
            if conn
                .send(&Response::Hello {
                    protocol_version: PROTOCOL_VERSION,
                })
                .is_err()
            {
                return;
            }
        }
        Ok(_) => {
            let _ = Refusal::bad_request("the first message must be hello")
                .send(&mut conn, &daemon.log);
            return;
        }
        Err(e) => {
            refuse(&mut conn, daemon, &e);
            return;
        }
    }
    loop {
        let req = match conn.recv() {
            Ok(r) => r,
            Err(IpcError::Closed) => return,
            Err(e) => {
                refuse(&mut conn, daemon, &e);
                return;
            }
        };
        if daemon.dispatch(&mut conn, req).is_err() {
            return;
        }
    }
}

/// Answers a request that could not be read (when the connection still allows it) and logs it.
fn refuse(conn: &mut Conn, daemon: &Daemon, e: &IpcError) {
    match e {
        IpcError::Closed => {}
        IpcError::TooLarge { .. } | IpcError::Malformed(_) => {
            daemon.log.warn(&format!(
                "bad request from uid {} pid {}: {e}",
                conn.peer.uid, conn.peer.pid
            ));
            let _ = Refusal::bad_request(e.to_string()).send(conn, &daemon.log);
        }
        _ => daemon.log.debug(&format!(
            "connection from uid {} dropped: {e}",
            conn.peer.uid
        )),
    }
}
