//! `pam_authnet.so`: a PAM module that asks `authnetd` to check the user's face and mouthed
//! password.
//!
//! The module is a thin client, like fprintd's: it owns no camera and no model. Per call it
//! parses its arguments ([`options`]), skips remote sessions before touching the daemon
//! ([`remote`]), then sends `hello` and `authenticate` over the daemon's Unix socket, relays
//! the daemon's `info` texts through the PAM conversation and maps the verdict to a PAM code
//! ([`logic::Verdict::pam_code`], the table in `pam_authnet(8)`). Whenever biometrics cannot
//! apply it answers `PAM_AUTHINFO_UNAVAIL` fast, so the password prompt follows.
//!
//! There are no statics, no threads and no global logger. All FFI is in `ffi.rs`, where every
//! entry point catches panics and answers `PAM_SERVICE_ERR`.
#![deny(unsafe_code)]

mod ffi;
pub mod logic;
pub mod options;
pub mod remote;

pub use ffi::AuthNet;
