//! `authnet-enroll`: enrol, list, remove and test face-password models.
//!
//! A thin client of `authnetd` (as `fprintd-enroll` is of `fprintd`): it says hello over the
//! daemon's socket, sends one request, shows the progress the daemon streams, and prints the
//! answer. The daemon owns the camera, the training, the store and every authorization
//! decision; the checks here (user names, who needs a password) only give clearer messages.
//!
//! Exit status: 0 on success, 1 when the daemon refuses or fails (and for a `reject` or
//! `unavailable` in `test`), 2 on a usage error, including a malformed user name.

// No unsafe code: the account lookup and the uids come from `nix`.
#![forbid(unsafe_code)]

mod account;
mod client;
mod password;
mod ui;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context as _, Result};
use authnet_ipc::{Outcome, Request, Response};
use clap::{Args, Parser, Subcommand};

use crate::client::{unexpected, Client};

/// The daemon's socket unless `--socket` or `$AUTHNET_SOCKET` says otherwise.
const DEFAULT_SOCKET: &str = "/run/authnet/authnetd.sock";

/// Enrol, list, remove and test face-password models through authnetd.
#[derive(Debug, Parser)]
#[command(
    name = "authnet-enroll",
    version,
    after_help = "Without a command, `enroll` is run.\n\n\
                  Exit status: 0 success, 1 refused or failed (reject in `test`), 2 usage error."
)]
struct Cli {
    /// The daemon's socket.
    #[arg(long, global = true, env = "AUTHNET_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    enroll: EnrollArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record (or import with --from) clips of your mouthed password and train your model.
    Enroll(EnrollArgs),
    /// List enrolled models (yours; every user's for root without --user).
    List {
        /// Whose model to list.
        #[arg(long, value_parser = account::parse_user)]
        user: Option<String>,
    },
    /// Delete a model.
    Remove {
        /// Whose model to delete (default: you).
        #[arg(long, value_parser = account::parse_user, conflicts_with = "all")]
        user: Option<String>,
        /// Delete every user's model (root only).
        #[arg(long)]
        all: bool,
    },
    /// Make one authentication attempt through the daemon and show the decision.
    Test {
        /// Whose model to test (default: you).
        #[arg(long, value_parser = account::parse_user)]
        user: Option<String>,
    },
    /// Clear a user's failed-attempt throttle (root only).
    ResetThrottle {
        /// Whose throttle to clear.
        #[arg(long, value_parser = account::parse_user)]
        user: String,
    },
}

#[derive(Debug, Args)]
struct EnrollArgs {
    /// The account to enrol (default: you).
    #[arg(long, value_parser = account::parse_user)]
    user: Option<String>,
    /// How many clips of the password to record with the camera, 3 to 20 [default: 7].
    #[arg(long, value_parser = clap::value_parser!(u32).range(3..=20))]
    clips: Option<u32>,
    /// A recording of you mouthing the password: a folder of frames or a video file (mp4, mov,
    /// webm, mkv, avi); repeatable.
    #[arg(long = "from", value_name = "PATH")]
    from: Vec<PathBuf>,
    /// A recording (frame folder or video file) of you mouthing another word; repeatable.
    /// `WORD=PATH` also names the word, so that enrolment can group your repetitions of it
    /// (give each word two or more times).
    #[arg(long = "other-word", value_name = "[WORD=]PATH", requires = "from")]
    other_word: Vec<PathBuf>,
}

/// Longest `WORD` of `--other-word WORD=PATH`.
const MAX_WORD_CHARS: usize = 32;

/// `--other-word [WORD=]PATH` split into its word (if any) and path. The argument names a word
/// only when it is not itself an existing path and what precedes its first `=` is 1 to
/// [`MAX_WORD_CHARS`] letters, digits, `-` or `_`; otherwise all of it is the path.
fn other_word_arg(arg: &Path) -> (Option<String>, PathBuf) {
    let unlabelled = (None, arg.to_path_buf());
    if arg.exists() {
        return unlabelled;
    }
    let Some((word, path)) = arg.to_str().and_then(|a| a.split_once('=')) else {
        return unlabelled;
    };
    let is_word = (1..=MAX_WORD_CHARS).contains(&word.chars().count())
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if is_word && !path.is_empty() {
        (Some(word.to_string()), PathBuf::from(path))
    } else {
        unlabelled
    }
}

/// Live enrolment's clip count without `--clips` (the daemon's own default too).
const DEFAULT_CLIPS: u32 = 7;

impl EnrollArgs {
    fn is_empty(&self) -> bool {
        self.user.is_none() && self.clips.is_none() && self.from.is_empty()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_some() && !cli.enroll.is_empty() {
        // `args_conflicts_with_subcommands` would also refuse the global `--socket` before a
        // command, so the conflict is checked here, still as a usage error (exit status 2).
        <Cli as clap::CommandFactory>::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "enrolment options (--user, --clips, --from) go after `enroll` or without a \
                 command; put other commands' options after the command",
            )
            .exit();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("authnet-enroll: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The user to act on: `--user`, else the invoking account.
fn target(user: Option<String>) -> Result<String> {
    match user {
        Some(u) => Ok(u),
        None => {
            let u = account::invoking_user()
                .ok_or_else(|| anyhow!("cannot tell who you are; pass --user"))?;
            account::check_user_name(&u)
                .map_err(|e| anyhow!("your account name {u:?} is not usable: {e}"))?;
            Ok(u)
        }
    }
}

/// Absolute paths of clips, frame folders or video files (the daemon refuses relative ones).
fn clip_dirs(dirs: &[PathBuf]) -> Result<Vec<String>> {
    dirs.iter()
        .map(|d| {
            let p = std::fs::canonicalize(d).with_context(|| format!("clip {}", d.display()))?;
            anyhow::ensure!(
                p.is_dir() || p.is_file(),
                "{} is neither a frame folder nor a video file",
                d.display()
            );
            p.into_os_string()
                .into_string()
                .map_err(|p| anyhow!("clip directory {} is not UTF-8", Path::new(&p).display()))
        })
        .collect()
}

fn run(cli: Cli) -> Result<ExitCode> {
    let socket = cli.socket;
    match cli.command.unwrap_or(Command::Enroll(cli.enroll)) {
        Command::Enroll(a) => enroll(&socket, a),
        Command::List { user } => {
            let r = Client::connect(&socket)?.call(Request::List { user }, &mut |_| {})?;
            match r {
                Response::Models { entries } => {
                    print!("{}", ui::table(&entries));
                    Ok(ExitCode::SUCCESS)
                }
                o => Err(unexpected(&o).into()),
            }
        }
        Command::Remove { user, all } => {
            let user = if all { None } else { Some(target(user)?) };
            let password = match &user {
                Some(u) if !account::is_root() => Some(password::read(u)?),
                _ => None,
            };
            let mut c = Client::connect(&socket)?;
            match c.call(
                Request::Remove {
                    user,
                    all,
                    password,
                },
                &mut |_| {},
            )? {
                Response::Done { text } => {
                    println!("{text}");
                    Ok(ExitCode::SUCCESS)
                }
                o => Err(unexpected(&o).into()),
            }
        }
        Command::Test { user } => {
            let user = target(user)?;
            let mut progress = ui::Progress::new();
            let r = Client::connect(&socket)?
                .call(Request::Test { user: user.clone() }, &mut |m| {
                    progress.show(m)
                })?;
            progress.finish();
            match r {
                Response::TestResult { outcome, score } => {
                    print!("{}", ui::test_result(&user, &outcome, score));
                    Ok(if outcome == Outcome::Accept {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                o => Err(unexpected(&o).into()),
            }
        }
        Command::ResetThrottle { user } => {
            let r = Client::connect(&socket)?.call(Request::ResetThrottle { user }, &mut |_| {})?;
            match r {
                Response::Done { text } => {
                    println!("{text}");
                    Ok(ExitCode::SUCCESS)
                }
                o => Err(unexpected(&o).into()),
            }
        }
    }
}

fn enroll(socket: &Path, a: EnrollArgs) -> Result<ExitCode> {
    let user = target(a.user)?;
    let clips = clip_dirs(&a.from)?;
    let (labels, other_paths): (Vec<Option<String>>, Vec<PathBuf>) =
        a.other_word.iter().map(|p| other_word_arg(p)).unzip();
    let other_word_clips = clip_dirs(&other_paths)?;
    // Sent only when some clip names its word; the others are "" (not known).
    let other_word_labels = labels
        .iter()
        .any(Option::is_some)
        .then(|| labels.into_iter().map(Option::unwrap_or_default).collect());
    let password = if account::is_root() {
        None
    } else {
        Some(password::read(&user)?)
    };
    let mut c = Client::connect(socket)?;
    if clips.is_empty() {
        eprintln!(
            "Enrolling {user} with the camera: {} clips of your password, then a few other \
             words. Mouth each one when the countdown ends.",
            a.clips.unwrap_or(DEFAULT_CLIPS)
        );
    } else {
        eprintln!(
            "Enrolling {user} from {} recorded clips ({} of other words).",
            clips.len(),
            other_word_clips.len()
        );
    }
    let mut progress = ui::Progress::new();
    let r = c.call(
        Request::Enroll {
            user: user.clone(),
            password,
            clips,
            other_word_clips,
            other_word_labels,
            clip_count: a.clips.unwrap_or(DEFAULT_CLIPS),
        },
        &mut |m| progress.show(m),
    );
    progress.finish();
    match r? {
        Response::Enrolled { summary } => {
            print!("{}", ui::summary(&user, &summary));
            Ok(ExitCode::SUCCESS)
        }
        o => Err(unexpected(&o).into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn other_word_arguments_name_their_word_only_when_unambiguous() {
        let tmp = tempfile::tempdir().unwrap();
        let split = |a: &str| other_word_arg(Path::new(a));
        assert_eq!(
            split("river=/clips/r1"),
            (Some("river".into()), PathBuf::from("/clips/r1"))
        );
        assert_eq!(
            split("Orange_2=rel/o.mp4"),
            (Some("Orange_2".into()), PathBuf::from("rel/o.mp4"))
        );
        // No word, an empty path, a word with a space or a slash, a word that is too long.
        for a in [
            "/clips/r1",
            "river=",
            "=/clips/r1",
            "two words=/x",
            "/a=/b",
            &format!("{}=/x", "w".repeat(MAX_WORD_CHARS + 1)),
        ] {
            assert_eq!(split(a), (None, PathBuf::from(a)), "{a}");
        }
        // An existing path that contains `=` is a path.
        let p = tmp.path().join("take=1");
        std::fs::create_dir(&p).unwrap();
        let s = p.to_str().unwrap();
        assert_eq!(split(s), (None, p.clone()));
        let rel = tmp.path().join("river=x");
        std::fs::create_dir(&rel).unwrap();
        assert_eq!(other_word_arg(&rel), (None, rel.clone()));
    }
}
