//! The message enums: [`Request`] (client → daemon) and [`Response`] (daemon → client).
//!
//! Every enum is internally tagged with `"type"` and `snake_case` names, and rejects unknown
//! fields, so a typo or a newer peer's extra field is an error rather than silently ignored.
//! `Option` fields may be sent as `null` or left out; every other field is required.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// A message from a client (`pam_authnet`, `authnet-enroll`) to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Must be the first message; `protocol_version` is the client's [`crate::PROTOCOL_VERSION`].
    Hello {
        /// The version the client speaks.
        protocol_version: u32,
    },
    /// Check `user`'s face and mouthed password. Answered by zero or more
    /// [`Response::Info`] then one [`Response::Result`] (or one [`Response::Error`]).
    Authenticate {
        /// The account being authenticated (`PAM_USER`).
        user: String,
        /// The PAM service name (`sudo`, `login`, …).
        service: String,
        /// `PAM_RHOST`, if the application set it.
        rhost: Option<String>,
        /// `PAM_TTY`, if the application set it.
        tty: Option<String>,
    },
    /// Abandon the request in progress; the daemon answers it with
    /// [`Outcome::Unavailable`] / [`UnavailableReason::Cancelled`] if it was authenticating.
    ///
    /// An empty struct variant rather than a unit one: serde ignores extra members on internally
    /// tagged unit variants, and `{"type":"cancel","x":1}` must be rejected like any other.
    Cancel {},
    /// Enrol `user`: record clips (or read them from `clips`) and train a model.
    /// Answered by [`Response::Progress`] frames then [`Response::Enrolled`].
    Enroll {
        /// The account to enrol.
        user: String,
        /// The user's login password, when the daemon must check it (enrolling oneself).
        password: Option<Secret>,
        /// Utterance directories to enrol from (`--from`); empty means the live camera.
        clips: Vec<String>,
        /// Utterance directories of the user mouthing *other* words (negatives).
        other_word_clips: Vec<String>,
        /// The word each of `other_word_clips` holds, in the same order (`""`: not known), or
        /// `None` when no word is known. Clips of one word are held out together in the
        /// enrolment's cross-validation, and their repetitions teach the word model what
        /// varies between two sayings of a word. Left out of the frame when `None`, so a
        /// request without labels reads as it did before the field existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        other_word_labels: Option<Vec<String>>,
        /// How many live clips to record when `clips` is empty.
        clip_count: u32,
    },
    /// List enrolled models: one user's, or everyone's when `user` is `None` (root only).
    /// Answered by [`Response::Models`].
    List {
        /// Whose models to list; `None` means all.
        user: Option<String>,
    },
    /// Remove `user`'s model, or every model when `all` is set. Answered by [`Response::Done`].
    Remove {
        /// Whose model to remove.
        user: Option<String>,
        /// Remove every user's model (root only).
        all: bool,
        /// The user's login password, when the daemon must check it.
        password: Option<Secret>,
    },
    /// Run one authentication attempt for `user` without PAM and report the score.
    /// Answered by [`Response::Info`] frames then [`Response::TestResult`].
    Test {
        /// The account to test.
        user: String,
    },
    /// Clear the failed-attempt throttle for `user` (root only). Answered by [`Response::Done`].
    ResetThrottle {
        /// The account whose throttle to clear.
        user: String,
    },
}

/// A message from the daemon to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// Answer to [`Request::Hello`]: the daemon's protocol version.
    Hello {
        /// The version the daemon speaks.
        protocol_version: u32,
    },
    /// Text to show the user while a request runs ("Look at the camera").
    Info {
        /// Human-readable, single line.
        text: String,
    },
    /// The verdict of [`Request::Authenticate`].
    Result {
        /// What the daemon decided.
        outcome: Outcome,
    },
    /// The request failed; see [`ErrorKind`].
    Error {
        /// Machine-readable class of failure.
        kind: ErrorKind,
        /// Human-readable detail, for logs.
        message: String,
    },
    /// Progress of a long request (enrolment).
    Progress {
        /// Which stage is running (`record`, `features`, `train`, …).
        stage: String,
        /// Units of work done so far in this stage.
        done: u32,
        /// Units of work in this stage.
        total: u32,
        /// Human-readable detail.
        text: String,
    },
    /// Enrolment finished; the quality figures of the new model.
    Enrolled {
        /// Validation metrics and the chosen threshold.
        summary: EnrollSummary,
    },
    /// Answer to [`Request::List`].
    Models {
        /// One entry per enrolled model.
        entries: Vec<ModelEntry>,
    },
    /// A request without a richer answer succeeded.
    Done {
        /// Human-readable detail.
        text: String,
    },
    /// Answer to [`Request::Test`].
    TestResult {
        /// What an authentication would have decided.
        outcome: Outcome,
        /// The model's score, when one was computed.
        #[serde(default, with = "finite::option")]
        score: Option<f64>,
    },
}

/// The verdict of one authentication attempt.
///
/// On the wire: `{"type":"accept"}`, `{"type":"reject"}` or
/// `{"type":"unavailable","reason":"no_face"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireOutcome", into = "WireOutcome")]
pub enum Outcome {
    /// The face and mouthed password matched the user's model.
    Accept,
    /// A face was seen and scored, and it did not match.
    Reject,
    /// No decision could be made; the password prompt should follow.
    Unavailable {
        /// Why not.
        reason: UnavailableReason,
    },
}

/// The serde shape of [`Outcome`].
///
/// Serde ignores unknown members on internally tagged *unit* variants, so the wire form uses
/// empty struct variants (which honour `deny_unknown_fields`) while the public enum keeps unit
/// variants.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum WireOutcome {
    Accept {},
    Reject {},
    Unavailable { reason: UnavailableReason },
}

impl From<WireOutcome> for Outcome {
    fn from(w: WireOutcome) -> Self {
        match w {
            WireOutcome::Accept {} => Self::Accept,
            WireOutcome::Reject {} => Self::Reject,
            WireOutcome::Unavailable { reason } => Self::Unavailable { reason },
        }
    }
}

impl From<Outcome> for WireOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Accept => Self::Accept {},
            Outcome::Reject => Self::Reject {},
            Outcome::Unavailable { reason } => Self::Unavailable { reason },
        }
    }
}

/// Why an attempt could not produce a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnavailableReason {
    /// The user has no model.
    NotEnrolled,
    /// No camera is present.
    NoCamera,
    /// The camera is in use by another program.
    CameraBusy,
    /// No face was found in the frames.
    NoFace,
    /// The frames were too dark to use.
    TooDark,
    /// The attempt ran out of time.
    Timeout,
    /// The session is remote (SSH, non-local `PAM_RHOST`), so a local camera cannot apply.
    RemoteSession,
    /// The laptop lid is closed.
    LidClosed,
    /// Too many recent failures; the user must wait or use the password.
    Throttled,
    /// The client cancelled the attempt.
    Cancelled,
    /// The user's model is corrupt or unreadable.
    ModelError,
    /// The daemon failed internally.
    Internal,
}

impl UnavailableReason {
    /// Every reason, in declaration order (for tests and documentation tables).
    pub const ALL: [Self; 12] = [
        Self::NotEnrolled,
        Self::NoCamera,
        Self::CameraBusy,
        Self::NoFace,
        Self::TooDark,
        Self::Timeout,
        Self::RemoteSession,
        Self::LidClosed,
        Self::Throttled,
        Self::Cancelled,
        Self::ModelError,
        Self::Internal,
    ];

    /// A short human sentence fragment for messages and logs.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::NotEnrolled => "no face model is enrolled for this user",
            Self::NoCamera => "no camera is available",
            Self::CameraBusy => "the camera is in use by another program",
            Self::NoFace => "no face was seen",
            Self::TooDark => "the image is too dark",
            Self::Timeout => "the attempt timed out",
            Self::RemoteSession => "face authentication does not apply to remote sessions",
            Self::LidClosed => "the laptop lid is closed",
            Self::Throttled => "too many failed attempts; try again later",
            Self::Cancelled => "the attempt was cancelled",
            Self::ModelError => "the user's face model could not be loaded",
            Self::Internal => "the authentication daemon failed internally",
        }
    }
}

/// The class of a [`Response::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The client's [`Request::Hello`] named a version the daemon does not speak.
    UnsupportedVersion,
    /// The request was malformed or arrived out of order.
    BadRequest,
    /// The peer (by `SO_PEERCRED`) may not make this request.
    PermissionDenied,
    /// No such account.
    UnknownUser,
    /// The user name is not a valid account name.
    InvalidUserName,
    /// The user has no model (for requests other than authenticate).
    NotEnrolled,
    /// The daemon is busy with another request that needs the camera.
    Busy,
    /// The daemon failed internally.
    Internal,
    /// The supplied password was wrong.
    AuthFailed,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::UnsupportedVersion,
        Self::BadRequest,
        Self::PermissionDenied,
        Self::UnknownUser,
        Self::InvalidUserName,
        Self::NotEnrolled,
        Self::Busy,
        Self::Internal,
        Self::AuthFailed,
    ];
}

/// Quality figures of a freshly trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollSummary {
    /// Equal error rate on held-out clips, in `[0, 1]`.
    #[serde(with = "finite")]
    pub validation_eer: f64,
    /// Mean score of the user's own held-out clips.
    #[serde(with = "finite")]
    pub genuine_mean: f64,
    /// Mean score of impostor / other-word clips.
    #[serde(with = "finite")]
    pub impostor_mean: f64,
    /// `genuine_mean - impostor_mean`.
    #[serde(with = "finite")]
    pub margin: f64,
    /// How the threshold was chosen (for example `eer` or `far=0.01`).
    pub threshold_policy: String,
    /// The score a clip must reach to be accepted.
    #[serde(with = "finite")]
    pub threshold: f64,
    /// How many clips were used.
    pub clips: u32,
}

/// One enrolled model, as listed by [`Request::List`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The account.
    pub user: String,
    /// When the model was trained (RFC 3339).
    pub created: String,
    /// The face CNN the features came from.
    pub backbone: String,
    /// How the threshold was chosen.
    pub threshold_policy: String,
}

/// Serde helpers that refuse non-finite floats.
///
/// JSON has no NaN or infinity: `serde_json` would silently write `null`, which the peer then
/// fails to parse as a number. Refusing at encode time puts the error on the side that made it.
mod finite {
    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            Err(S::Error::custom("non-finite float cannot be sent"))
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let v = f64::deserialize(d)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(D::Error::custom("non-finite float"))
        }
    }

    /// The same rules for `Option<f64>` (`null` means `None`).
    pub(super) mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(x) => super::serialize(x, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<f64>, D::Error> {
            let v = Option::<f64>::deserialize(d)?;
            match v {
                Some(x) if !x.is_finite() => Err(serde::de::Error::custom("non-finite float")),
                other => Ok(other),
            }
        }
    }
}
