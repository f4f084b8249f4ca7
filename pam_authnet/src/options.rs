//! Module options from the PAM configuration line, parsed afresh on every call (no statics).

use std::path::PathBuf;
use std::time::Duration;

/// Default daemon socket.
pub const DEFAULT_SOCKET: &str = "/run/authnet/authnetd.sock";
/// Default overall budget of one `pam_sm_authenticate` call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest accepted `timeout=`: a login prompt blocked longer than this is a misconfiguration.
pub const MAX_TIMEOUT_SECS: u64 = 300;
/// Largest accepted `max-tries=` (kept so that old configuration lines still parse).
pub const MAX_TRIES: u32 = 10;

/// When the password prompt appears (`prompt=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptMode {
    /// `prompt=face-first` (the default): the face check runs to its end, relaying the
    /// daemon's messages, and only then does the stack move on to the password module, which
    /// prompts.
    #[default]
    FaceFirst,
    /// `prompt=concurrent`: this module shows the password prompt at once while the daemon
    /// scans. A face match ends the prompt and accepts; a typed password is stored as
    /// `PAM_AUTHTOK` for the next module (`pam_unix try_first_pass`) and the module answers
    /// `PAM_IGNORE`.
    Concurrent,
}

/// The parsed options of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `socket=PATH`: where `authnetd` listens.
    pub socket: PathBuf,
    /// `timeout=SECONDS` (1..=300): the whole call, every connect, read and write included,
    /// finishes within this budget.
    pub timeout: Duration,
    /// `max-tries=N` (1..=10), no longer used: the one retry budget is `max_tries` in
    /// `authnetd.toml`, where each rejected clip is also counted by the throttle. Kept so that
    /// an old line still parses; the module logs that it is ignored.
    pub ignored_max_tries: Option<u32>,
    /// `debug`: log decisions to syslog (`LOG_AUTHPRIV`).
    pub debug: bool,
    /// `quiet`: do not relay the daemon's `info` texts to the user.
    pub quiet: bool,
    /// `prompt=face-first|concurrent`.
    pub prompt: PromptMode,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            timeout: DEFAULT_TIMEOUT,
            ignored_max_tries: None,
            debug: false,
            quiet: false,
            prompt: PromptMode::FaceFirst,
        }
    }
}

/// A bad module argument; the module answers `PAM_SERVICE_ERR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// The argument is not one this module knows.
    #[error("unknown option {0:?}")]
    Unknown(String),
    /// The argument is known but its value is out of range or unparsable.
    #[error("bad value in {0:?}")]
    BadValue(String),
}

impl Options {
    /// Parses the module arguments (`argv` of `pam_sm_*`), after the defaults.
    pub fn parse<'a, I: IntoIterator<Item = &'a str>>(args: I) -> Result<Self, OptionError> {
        let mut o = Self::default();
        for arg in args {
            let bad = || OptionError::BadValue(arg.to_owned());
            match arg.split_once('=') {
                None if arg == "debug" => o.debug = true,
                None if arg == "quiet" => o.quiet = true,
                Some(("socket", path)) => {
                    if !path.starts_with('/') {
                        return Err(bad());
                    }
                    o.socket = PathBuf::from(path);
                }
                Some(("timeout", secs)) => {
                    let secs: u64 = secs.parse().map_err(|_| bad())?;
                    if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
                        return Err(bad());
                    }
                    o.timeout = Duration::from_secs(secs);
                }
                Some(("prompt", "face-first")) => o.prompt = PromptMode::FaceFirst,
                Some(("prompt", "concurrent")) => o.prompt = PromptMode::Concurrent,
                Some(("prompt", _)) => return Err(bad()),
                Some(("max-tries", n)) => {
                    let n: u32 = n.parse().map_err(|_| bad())?;
                    if !(1..=MAX_TRIES).contains(&n) {
                        return Err(bad());
                    }
                    o.ignored_max_tries = Some(n);
                }
                _ => return Err(OptionError::Unknown(arg.to_owned())),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(Options::parse([]), Ok(Options::default()));
        let d = Options::default();
        assert_eq!(d.socket, PathBuf::from("/run/authnet/authnetd.sock"));
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(d.ignored_max_tries, None);
        assert!(!d.debug && !d.quiet);
        assert_eq!(d.prompt, PromptMode::FaceFirst);
    }

    #[test]
    fn all_options() {
        let o = Options::parse([
            "socket=/tmp/x.sock",
            "timeout=3",
            "max-tries=2",
            "debug",
            "quiet",
            "prompt=concurrent",
        ]);
        assert_eq!(
            o,
            Ok(Options {
                socket: PathBuf::from("/tmp/x.sock"),
                timeout: Duration::from_secs(3),
                ignored_max_tries: Some(2),
                debug: true,
                quiet: true,
                prompt: PromptMode::Concurrent,
            })
        );
    }

    #[test]
    fn later_options_override_earlier() {
        let o = Options::parse(["timeout=3", "timeout=4"]).map(|o| o.timeout);
        assert_eq!(o, Ok(Duration::from_secs(4)));
    }

    #[test]
    fn bad_values_refused() {
        for arg in [
            "timeout=0",
            "timeout=301",
            "timeout=-1",
            "timeout=",
            "timeout=1.5",
            "max-tries=0",
            "max-tries=11",
            "max-tries=x",
            "socket=relative.sock",
            "socket=",
            "prompt=",
            "prompt=always",
        ] {
            assert_eq!(
                Options::parse([arg]),
                Err(OptionError::BadValue(arg.into())),
                "{arg}"
            );
        }
    }

    #[test]
    fn unknown_options_refused() {
        for arg in [
            "verbose",
            "Debug",
            "debug=1",
            "quiet=yes",
            "sock=/x",
            "",
            "timeout",
            "prompt",
        ] {
            assert_eq!(
                Options::parse([arg]),
                Err(OptionError::Unknown(arg.into())),
                "{arg}"
            );
        }
    }
}
