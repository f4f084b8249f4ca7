//! The connection to `authnetd`: hello, then one request and its answers.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use authnet_ipc::{read_frame, write_frame, ErrorKind, IpcError, Request, Response};

/// Why a conversation with the daemon failed. Every variant maps to exit status 1.
#[derive(Debug)]
pub enum Failure {
    /// The socket could not be connected.
    Unreachable {
        /// The socket path.
        socket: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon answered with an error.
    Refused {
        /// Its class.
        kind: ErrorKind,
        /// Its text.
        message: String,
    },
    /// The connection broke or carried something unexpected.
    Protocol(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable { socket, source } => write!(
                f,
                "cannot reach authnetd at {}: {source} (is authnetd running?)",
                socket.display()
            ),
            Self::Refused { kind, message } => {
                write!(f, "authnetd refused: {message}")?;
                match kind {
                    ErrorKind::AuthFailed => write!(f, " (wrong password)"),
                    _ => Ok(()),
                }
            }
            Self::Protocol(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Failure {}

fn broken(e: IpcError) -> Failure {
    Failure::Protocol(format!("lost the connection to authnetd: {e}"))
}

/// A connection that has exchanged hello.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to `socket` and exchanges hello.
    pub fn connect(socket: &Path) -> Result<Self, Failure> {
        let stream = UnixStream::connect(socket).map_err(|source| Failure::Unreachable {
            socket: socket.into(),
            source,
        })?;
        let mut c = Self { stream };
        write_frame(
            &mut c.stream,
            &Request::Hello {
                protocol_version: authnet_ipc::PROTOCOL_VERSION,
            },
        )
        .map_err(broken)?;
        match c.recv()? {
            Response::Hello { .. } => Ok(c),
            other => Err(unexpected(&other)),
        }
    }

    fn recv(&mut self) -> Result<Response, Failure> {
        match read_frame(&mut self.stream).map_err(broken)? {
            Response::Error { kind, message } => Err(Failure::Refused { kind, message }),
            r => Ok(r),
        }
    }

    /// Sends `req`, hands every `info` and `progress` to `interim`, and returns the final
    /// answer (a daemon `error` becomes [`Failure::Refused`]). `req` is dropped once sent, so
    /// a password in it is wiped at once.
    pub fn call(
        &mut self,
        req: Request,
        interim: &mut dyn FnMut(&Response),
    ) -> Result<Response, Failure> {
        write_frame(&mut self.stream, &req).map_err(broken)?;
        drop(req);
        loop {
            match self.recv()? {
                m @ (Response::Info { .. } | Response::Progress { .. }) => interim(&m),
                last => return Ok(last),
            }
        }
    }
}

/// The failure for an answer of the wrong type.
pub fn unexpected(r: &Response) -> Failure {
    Failure::Protocol(format!("unexpected answer from authnetd: {r:?}"))
}
