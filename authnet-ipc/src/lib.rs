//! Wire protocol shared by `authnetd`, `pam_authnet` and `authnet-enroll`.
//!
//! This crate is the only code the PAM module and the daemon share. It holds the message enums
//! ([`Request`] from client to daemon, [`Response`] from daemon to client), the framing
//! ([`write_frame`], [`read_frame`], [`decode_frame`]) and the protocol version
//! ([`PROTOCOL_VERSION`]), and [`DeadlineStream`], the `Read`/`Write` over a Unix stream that
//! both ends use so that a frame ends by one deadline. It does no I/O of its own beyond
//! `Read`/`Write`, uses no async runtime and no unsafe code.
//!
//! # Wire format
//!
//! The daemon listens on a Unix stream socket (by default `/run/authnet/authnetd.sock`). Each
//! message travels as one *frame*:
//!
//! ```text
//! +----------------------+---------------------------------------+
//! | length: u32, big-end | payload: `length` bytes of UTF-8 JSON |
//! +----------------------+---------------------------------------+
//! ```
//!
//! The length counts only the payload and must not exceed [`MAX_FRAME`] (64 KiB); a reader
//! refuses a larger length *before* allocating anything. The payload is one JSON object whose
//! `"type"` member names the message in `snake_case`; the other members are the message's
//! fields. Unknown types and unknown fields are rejected.
//!
//! The first frame a client sends, `hello` with protocol version 1, is these 41 bytes
//! (`hexdump -C`):
//!
//! ```text
//! 00000000  00 00 00 25 7b 22 74 79  70 65 22 3a 22 68 65 6c  |...%{"type":"hel|
//! 00000010  6c 6f 22 2c 22 70 72 6f  74 6f 63 6f 6c 5f 76 65  |lo","protocol_ve|
//! 00000020  72 73 69 6f 6e 22 3a 31  7d                       |rsion":1}|
//! 00000029
//! ```
//!
//! (A unit test checks that this hexdump, and the one in `man/authnet-ipc.7`, match the
//! encoder's real output.)
//!
//! # Conversation
//!
//! 1. The client sends [`Request::Hello`]; the daemon answers [`Response::Hello`] with its own
//!    version, or [`Response::Error`] with [`ErrorKind::UnsupportedVersion`] and closes.
//! 2. The client sends any number of requests, one at a time. [`Request::Authenticate`] is
//!    answered by zero or more [`Response::Info`] texts for the user, then exactly one
//!    [`Response::Result`]. Enrolment answers with [`Response::Progress`] frames and then
//!    [`Response::Enrolled`]. Any request may instead be answered by one [`Response::Error`].
//! 3. [`Request::Cancel`], or simply closing the socket, abandons the request in progress.
//!
//! Example payloads:
//!
//! ```text
//! {"type":"authenticate","user":"alice","service":"sudo","rhost":null,"tty":"/dev/pts/0"}
//! {"type":"info","text":"Look at the camera and mouth your password"}
//! {"type":"result","outcome":{"type":"unavailable","reason":"no_face"}}
//! {"type":"error","kind":"unknown_user","message":"no such user: alice"}
//! ```
#![forbid(unsafe_code)]

pub mod deadline;
mod frame;
pub mod fuzzing;
mod message;
pub mod remote;
mod report;
mod secret;
pub mod user;

pub use deadline::DeadlineStream;
pub use frame::{
    check_version, decode_frame, encode_frame, read_frame, write_frame, IpcError, MAX_FRAME,
    PROTOCOL_VERSION,
};
pub use message::{
    EnrollSummary, ErrorKind, ModelEntry, Outcome, Request, Response, UnavailableReason,
};
pub use remote::is_local_rhost;
pub use report::error_chain;
pub use secret::Secret;
pub use user::{check_user_name, UserNameError, MAX_USER_NAME};
