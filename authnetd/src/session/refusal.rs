//! The one mapping from a handler's failure to the protocol.
//!
//! A handler that refuses a request returns a [`Refusal`]; it never writes an `error` response
//! itself. [`super::Daemon::dispatch`] alone turns the refusal into the response (and, for the daemon's
//! own failures, into a log line with the whole cause chain, each cause once), so what a peer is
//! told and what the log records are decided in one place: a peer never reads an OS error or a
//! path, and the log never loses the cause.

use std::fmt;

use authnet_ipc::{ErrorKind, IpcError};

use crate::log::Logger;
use crate::server::Conn;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// The request, the peer's rights or the account's state: the peer reads `message` as it is.
    Peer {
        /// The protocol's error kind.
        kind: ErrorKind,
        /// What the peer is told.
        message: String,
    },
    /// The daemon's own failure: the peer reads `summary` (kind `internal`), the log reads
    /// `log` at error level.
    Internal {
        /// What the peer is told: what failed, without the cause.
        summary: &'static str,
        /// What the log records: the context and the cause chain.
        log: String,
    },
}

impl Refusal {
    /// A refusal the peer reads as it is.
    pub(crate) fn peer(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Peer {
            kind,
            message: message.into(),
        }
    }

    /// A malformed or unusable request.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::peer(ErrorKind::BadRequest, message)
    }

    /// A refusal by rights: the peer may not make this request.
    pub(crate) fn denied(message: impl Into<String>) -> Self {
        Self::peer(ErrorKind::PermissionDenied, message)
    }

    /// The daemon failed at `context` because of `cause`: the peer reads `summary`, the log
    /// reads `context: cause` with each cause of the chain once.
    pub(crate) fn internal(
        summary: &'static str,
        context: impl fmt::Display,
        cause: &dyn std::error::Error,
    ) -> Self {
        Self::Internal {
            summary,
            log: format!("{context}: {}", crate::log::chain(cause)),
        }
    }

    /// The daemon failed without an error value (a timeout, a lost thread): the log reads `log`.
    pub(crate) fn internal_text(summary: &'static str, log: impl Into<String>) -> Self {
        Self::Internal {
            summary,
            log: log.into(),
        }
    }

    /// The protocol error kind the peer receives.
    #[cfg(test)]
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Peer { kind, .. } => *kind,
            Self::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// Logs it (an internal failure) and sends it as the `error` response. `Err` means the
    /// connection is unusable.
    pub(crate) fn send(self, conn: &mut Conn, log: &Logger) -> Result<(), IpcError> {
        match self {
            Self::Peer { kind, message } => conn.error(kind, message),
            Self::Internal { summary, log: line } => {
                log.error(&line);
                conn.error(ErrorKind::Internal, summary)
            }
        }
    }
}

/// Why a handler stopped before its answer.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The request was refused; the answer is the refusal and the connection carries on.
    Refused(Refusal),
    /// The connection failed or the client left; it is closed.
    Conn(IpcError),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

impl From<IpcError> for Stop {
    fn from(e: IpcError) -> Self {
        Self::Conn(e)
    }
}

/// What a handler returns: `Ok` once it has sent its answer.
pub(crate) type Handled<T = ()> = Result<T, Stop>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("writing the throttle state")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_internal_refusal_keeps_the_cause_for_the_log_and_hides_it_from_the_peer() {
        let cause = Outer(std::io::Error::from_raw_os_error(28));
        let r = Refusal::internal("cannot write the throttle state", "user=alice", &cause);
        assert_eq!(r.kind(), ErrorKind::Internal);
        let Refusal::Internal { summary, log } = r else {
            panic!("not internal");
        };
        assert_eq!(summary, "cannot write the throttle state");
        assert!(
            log.starts_with("user=alice: writing the throttle state"),
            "{log}"
        );
        assert!(log.contains("No space left on device"), "{log}");
        assert_eq!(log.matches("No space left").count(), 1, "{log}");
    }

    #[test]
    fn a_peer_refusal_is_sent_as_it_is() {
        let r = Refusal::peer(ErrorKind::NotEnrolled, "alice has no model");
        assert_eq!(r.kind(), ErrorKind::NotEnrolled);
        assert_eq!(
            r,
            Refusal::Peer {
                kind: ErrorKind::NotEnrolled,
                message: "alice has no model".into()
            }
        );
        assert_eq!(Refusal::denied("no").kind(), ErrorKind::PermissionDenied);
        assert_eq!(Refusal::bad_request("no").kind(), ErrorKind::BadRequest);
    }
}
