//! Framing: a big-endian `u32` payload length, then that many bytes of JSON.
//!
//! One generic pair ([`write_frame`] / [`read_frame`]) serves every message type, and
//! [`decode_frame`] is the same decoder over a byte slice, for fuzzing and for callers that
//! buffer input themselves.

use std::io::{self, Read, Write};

use serde::{de::DeserializeOwned, Serialize};
use zeroize::Zeroizing;

/// Largest payload accepted or sent, in bytes: 64 KiB.
///
/// This bounds the memory a peer controls: the length prefix is checked against it before
/// anything is allocated. The biggest legitimate message (a `models` list or an `enroll` with
/// many clip paths) is a few KiB.
pub const MAX_FRAME: usize = 64 * 1024;

/// The protocol version this crate speaks, exchanged in the `hello` messages.
pub const PROTOCOL_VERSION: u32 = 1;

/// Size of the length prefix.
const HEADER: usize = 4;

/// Everything that can go wrong while framing, sending or receiving a message.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// The underlying socket failed (including read/write timeouts, see [`IpcError::is_timeout`]).
    #[error("authnet socket i/o failed")]
    Io(#[source] io::Error),
    /// A length prefix (received or about to be sent) exceeds [`MAX_FRAME`].
    #[error("frame of {len} bytes exceeds the {max}-byte limit", max = MAX_FRAME)]
    TooLarge {
        /// The offending payload length.
        len: usize,
    },
    /// The peer closed the connection, or the buffer ended, in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The payload is not valid JSON for the expected message type.
    #[error("malformed message")]
    Malformed(#[source] serde_json::Error),
    /// The message could not be encoded (for example a NaN score).
    #[error("message cannot be encoded")]
    Encode(#[source] serde_json::Error),
    /// The peer closed the connection cleanly, before the first byte of a frame.
    #[error("peer closed the connection")]
    Closed,
    /// The peer speaks another protocol version.
    #[error("protocol version {got} is not supported (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// The version the peer announced.
        got: u32,
    },
}

impl IpcError {
    /// True when the error is a socket read/write timeout (`set_read_timeout` expiring shows up
    /// as `WouldBlock` on Linux and `TimedOut` elsewhere).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

/// Accepts exactly [`PROTOCOL_VERSION`]; anything else is [`IpcError::UnsupportedVersion`].
pub fn check_version(version: u32) -> Result<(), IpcError> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(IpcError::UnsupportedVersion { got: version })
    }
}

/// Encodes `msg` as one complete frame (length prefix included).
///
/// Fails with [`IpcError::TooLarge`] if the payload would exceed [`MAX_FRAME`], and with
/// [`IpcError::Encode`] if the value cannot be represented (non-finite floats).
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, IpcError> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0; HEADER]);
    serde_json::to_writer(&mut buf, msg).map_err(IpcError::Encode)?;
    let len = buf.len() - HEADER;
    if len > MAX_FRAME {
        // The buffer may hold a password: wipe it before reporting.
        drop(Zeroizing::new(buf));
        return Err(IpcError::TooLarge { len });
    }
    // MAX_FRAME fits in u32, so after the check above this conversion cannot fail.
    let prefix = u32::try_from(len).map_err(|_| IpcError::TooLarge { len })?;
    buf[..HEADER].copy_from_slice(&prefix.to_be_bytes());
    Ok(buf)
}

/// Writes `msg` as one frame and flushes. The encoded bytes are wiped afterwards.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), IpcError> {
    let buf = Zeroizing::new(encode_frame(msg)?);
    w.write_all(&buf).map_err(IpcError::Io)?;
    w.flush().map_err(IpcError::Io)
}

/// Reads one frame and decodes it as `T`.
///
/// * Clean end of stream before the first byte: [`IpcError::Closed`].
/// * End of stream inside the frame: [`IpcError::Truncated`].
/// * Length above [`MAX_FRAME`]: [`IpcError::TooLarge`], before allocating or reading on.
/// * Bad JSON, unknown type or field: [`IpcError::Malformed`].
///
/// The payload buffer is wiped after decoding, since it may hold a password.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, IpcError> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(IpcError::Closed),
            Ok(0) => return Err(IpcError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IpcError::Io(e)),
        }
    }
    let len = payload_len(header)?;
    let mut payload = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut payload).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => IpcError::Truncated,
        _ => IpcError::Io(e),
    })?;
    serde_json::from_slice(&payload).map_err(IpcError::Malformed)
}

/// Decodes one frame from the start of `buf`, returning the message and the number of bytes
/// it occupied (so the caller can advance past it).
///
/// An incomplete frame (including an empty buffer) is [`IpcError::Truncated`]; otherwise the
/// errors are those of [`read_frame`]. Never panics, whatever `buf` holds.
pub fn decode_frame<T: DeserializeOwned>(buf: &[u8]) -> Result<(T, usize), IpcError> {
    let header: [u8; HEADER] = buf
        .get(..HEADER)
        .and_then(|h| h.try_into().ok())
        .ok_or(IpcError::Truncated)?;
    let len = payload_len(header)?;
    let payload = buf.get(HEADER..HEADER + len).ok_or(IpcError::Truncated)?;
    let msg = serde_json::from_slice(payload).map_err(IpcError::Malformed)?;
    Ok((msg, HEADER + len))
}

/// Validates a length prefix against [`MAX_FRAME`].
fn payload_len(header: [u8; HEADER]) -> Result<usize, IpcError> {
    let len = u32::from_be_bytes(header);
    // On targets where usize is narrower than u32 a huge prefix is simply too large.
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_FRAME {
        return Err(IpcError::TooLarge { len });
    }
    Ok(len)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::{
        EnrollSummary, ErrorKind, ModelEntry, Outcome, Request, Response, Secret, UnavailableReason,
    };
    use std::fmt::Debug;

    fn round_trip<T>(msg: T)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let mut wire = Vec::new();
        write_frame(&mut wire, &msg).unwrap();
        let mut cursor = io::Cursor::new(&wire);
        let back: T = read_frame(&mut cursor).unwrap();
        assert_eq!(back, msg);
        // The stream is now at a clean end.
        assert!(matches!(
            read_frame::<_, T>(&mut cursor),
            Err(IpcError::Closed)
        ));
        let (back2, used): (T, usize) = decode_frame(&wire).unwrap();
        assert_eq!(back2, msg);
        assert_eq!(used, wire.len());
    }

    fn all_requests() -> Vec<Request> {
        vec![
            Request::Hello {
                protocol_version: PROTOCOL_VERSION,
            },
            Request::Authenticate {
                user: "alice".into(),
                service: "sudo".into(),
                rhost: None,
                tty: Some("/dev/pts/3".into()),
            },
            Request::Authenticate {
                user: "bob".into(),
                service: "login".into(),
                rhost: Some("localhost".into()),
                tty: None,
            },
            Request::Cancel {},
            Request::Enroll {
                user: "alice".into(),
                password: Some(Secret::new("hunter2".into())),
                clips: vec!["/data/s01/w01/01".into(), "/data/s01/w01/02".into()],
                other_word_clips: vec!["/data/s01/w02/01".into()],
                other_word_labels: None,
                clip_count: 0,
            },
            Request::Enroll {
                user: "alice".into(),
                password: None,
                clips: vec!["/data/s01/w01/01".into()],
                other_word_clips: vec!["/data/s01/w02/01".into(), "/data/s01/w03/01".into()],
                other_word_labels: Some(vec!["river".into(), String::new()]),
                clip_count: 0,
            },
            Request::Enroll {
                user: "alice".into(),
                password: None,
                clips: vec![],
                other_word_clips: vec![],
                other_word_labels: None,
                clip_count: 10,
            },
            Request::List { user: None },
            Request::List {
                user: Some("alice".into()),
            },
            Request::Remove {
                user: Some("alice".into()),
                all: false,
                password: Some(Secret::new("pw".into())),
            },
            Request::Remove {
                user: None,
                all: true,
                password: None,
            },
            Request::Test {
                user: "alice".into(),
            },
            Request::ResetThrottle {
                user: "alice".into(),
            },
        ]
    }

    fn all_responses() -> Vec<Response> {
        let mut v = vec![
            Response::Hello {
                protocol_version: PROTOCOL_VERSION,
            },
            Response::Info {
                text: "Look at the camera — ünïcode".into(),
            },
            Response::Result {
                outcome: Outcome::Accept,
            },
            Response::Result {
                outcome: Outcome::Reject,
            },
            Response::Progress {
                stage: "record".into(),
                done: 3,
                total: 10,
                text: "clip 3".into(),
            },
            Response::Enrolled {
                summary: EnrollSummary {
                    validation_eer: 0.05,
                    genuine_mean: 0.91,
                    impostor_mean: 0.12,
                    margin: 0.79,
                    threshold_policy: "eer".into(),
                    threshold: 0.5,
                    clips: 10,
                },
            },
            Response::Models {
                entries: vec![ModelEntry {
                    user: "alice".into(),
                    created: "2024-01-01T00:00:00Z".into(),
                    backbone: "arcface-r50".into(),
                    threshold_policy: "eer".into(),
                }],
            },
            Response::Models { entries: vec![] },
            Response::Done {
                text: "removed".into(),
            },
            Response::TestResult {
                outcome: Outcome::Accept,
                score: Some(0.87),
            },
            Response::TestResult {
                outcome: Outcome::Unavailable {
                    reason: UnavailableReason::NoFace,
                },
                score: None,
            },
        ];
        for reason in UnavailableReason::ALL {
            v.push(Response::Result {
                outcome: Outcome::Unavailable { reason },
            });
        }
        for kind in ErrorKind::ALL {
            v.push(Response::Error {
                kind,
                message: format!("{kind:?}"),
            });
        }
        v
    }

    #[test]
    fn every_request_round_trips() {
        for msg in all_requests() {
            round_trip(msg);
        }
    }

    #[test]
    fn every_response_round_trips() {
        for msg in all_responses() {
            round_trip(msg);
        }
    }

    #[test]
    fn json_shape_is_tagged_snake_case() {
        let frame = encode_frame(&Response::Result {
            outcome: Outcome::Unavailable {
                reason: UnavailableReason::TooDark,
            },
        })
        .unwrap();
        assert_eq!(
            &frame[4..],
            br#"{"type":"result","outcome":{"type":"unavailable","reason":"too_dark"}}"#
        );
        let frame = encode_frame(&Request::ResetThrottle { user: "a".into() }).unwrap();
        assert_eq!(&frame[4..], br#"{"type":"reset_throttle","user":"a"}"#);
        let frame = encode_frame(&Response::Error {
            kind: ErrorKind::UnsupportedVersion,
            message: "v2".into(),
        })
        .unwrap();
        assert_eq!(
            &frame[4..],
            br#"{"type":"error","kind":"unsupported_version","message":"v2"}"#
        );
    }

    #[test]
    fn optional_fields_may_be_omitted() {
        let payload = br#"{"type":"authenticate","user":"a","service":"s"}"#;
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        let (msg, _): (Request, usize) = decode_frame(&frame).unwrap();
        assert_eq!(
            msg,
            Request::Authenticate {
                user: "a".into(),
                service: "s".into(),
                rhost: None,
                tty: None
            }
        );
    }

    fn frame_of(payload: &[u8]) -> Vec<u8> {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn an_enrol_request_without_labels_is_framed_as_before_the_field() {
        let r = Request::Enroll {
            user: "a".into(),
            password: None,
            clips: vec![],
            other_word_clips: vec![],
            other_word_labels: None,
            clip_count: 0,
        };
        let frame = encode_frame(&r).unwrap();
        assert!(!String::from_utf8_lossy(&frame).contains("other_word_labels"));
        let old = br#"{"type":"enroll","user":"a","password":null,"clips":[],"other_word_clips":[],"clip_count":0}"#;
        assert_eq!(decode_frame::<Request>(&frame_of(old)).unwrap().0, r);
        let labelled = br#"{"type":"enroll","user":"a","password":null,"clips":[],"other_word_clips":["/x"],"other_word_labels":["river"],"clip_count":0}"#;
        assert!(matches!(
            decode_frame::<Request>(&frame_of(labelled)).unwrap().0,
            Request::Enroll { other_word_labels: Some(l), .. } if l == ["river"]
        ));
    }

    #[test]
    fn unknown_fields_and_types_are_rejected() {
        let cases: [&[u8]; 6] = [
            br#"{"type":"hello","protocol_version":1,"extra":true}"#,
            br#"{"type":"cancel","now":1}"#,
            br#"{"type":"frobnicate"}"#,
            br#"{"protocol_version":1}"#,
            br#"{"type":"authenticate","user":"a","service":"s","rhost":null,"tty":null,"x":0}"#,
            br#"{"type":"enroll","user":"a","clips":[],"other_word_clips":[]}"#,
        ];
        for payload in cases {
            let r = decode_frame::<Request>(&frame_of(payload));
            assert!(
                matches!(r, Err(IpcError::Malformed(_))),
                "{} gave {r:?}",
                String::from_utf8_lossy(payload)
            );
        }
        let nested = br#"{"type":"result","outcome":{"type":"accept","score":1}}"#;
        assert!(matches!(
            decode_frame::<Response>(&frame_of(nested)),
            Err(IpcError::Malformed(_))
        ));
        let nested = br#"{"type":"enrolled","summary":{"validation_eer":0,"genuine_mean":0,"impostor_mean":0,"margin":0,"threshold_policy":"eer","threshold":0,"clips":1,"x":1}}"#;
        assert!(matches!(
            decode_frame::<Response>(&frame_of(nested)),
            Err(IpcError::Malformed(_))
        ));
        let bad_reason =
            br#"{"type":"result","outcome":{"type":"unavailable","reason":"sunspots"}}"#;
        assert!(matches!(
            decode_frame::<Response>(&frame_of(bad_reason)),
            Err(IpcError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        for payload in [
            &b""[..],
            b"not json",
            b"\xff\xfe\x00",
            b"[1,2,3]",
            b"{\"type\":",
            b"null",
        ] {
            let mut cursor = io::Cursor::new(frame_of(payload));
            assert!(matches!(
                read_frame::<_, Request>(&mut cursor),
                Err(IpcError::Malformed(_))
            ));
        }
    }

    #[test]
    fn truncated_input() {
        let frame = encode_frame(&Request::Cancel {}).unwrap();
        for cut in 1..frame.len() {
            let mut cursor = io::Cursor::new(&frame[..cut]);
            assert!(
                matches!(
                    read_frame::<_, Request>(&mut cursor),
                    Err(IpcError::Truncated)
                ),
                "cut at {cut}"
            );
            assert!(matches!(
                decode_frame::<Request>(&frame[..cut]),
                Err(IpcError::Truncated)
            ));
        }
        assert!(matches!(
            read_frame::<_, Request>(&mut io::empty()),
            Err(IpcError::Closed)
        ));
        assert!(matches!(
            decode_frame::<Request>(&[]),
            Err(IpcError::Truncated)
        ));
    }

    #[test]
    fn decode_reports_consumed_length_with_trailing_data() {
        let mut buf = encode_frame(&Request::Cancel {}).unwrap();
        let first = buf.len();
        buf.extend(encode_frame(&Request::Test { user: "x".into() }).unwrap());
        let (msg, used): (Request, usize) = decode_frame(&buf).unwrap();
        assert_eq!((msg, used), (Request::Cancel {}, first));
        let (msg, _): (Request, usize) = decode_frame(&buf[used..]).unwrap();
        assert_eq!(msg, Request::Test { user: "x".into() });
    }

    /// A reader that announces a huge length and fails the test if anything reads past it.
    struct HugeLength {
        served: usize,
    }

    impl Read for HugeLength {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let header = [0xFF, 0xFF, 0xFF, 0xFF];
            if self.served >= header.len() {
                panic!("decoder read past an oversized length prefix");
            }
            // Serve one byte at a time to exercise the partial-header loop.
            buf[0] = header[self.served];
            self.served += 1;
            Ok(1)
        }
    }

    #[test]
    fn oversized_length_refused_before_reading_on() {
        let mut r = HugeLength { served: 0 };
        match read_frame::<_, Request>(&mut r) {
            Err(IpcError::TooLarge { len }) => assert_eq!(len, 0xFFFF_FFFF),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(r.served, 4);
        let just_over = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            decode_frame::<Request>(&just_over),
            Err(IpcError::TooLarge { len }) if len == MAX_FRAME + 1
        ));
    }

    #[test]
    fn max_frame_boundary() {
        // A Done whose JSON payload is exactly MAX_FRAME bytes is accepted; one more is refused.
        let overhead = encode_frame(&Response::Done {
            text: String::new(),
        })
        .unwrap()
        .len()
            - 4;
        let exact = Response::Done {
            text: "a".repeat(MAX_FRAME - overhead),
        };
        let frame = encode_frame(&exact).unwrap();
        assert_eq!(frame.len(), 4 + MAX_FRAME);
        round_trip(exact);
        let over = Response::Done {
            text: "a".repeat(MAX_FRAME - overhead + 1),
        };
        assert!(matches!(
            encode_frame(&over),
            Err(IpcError::TooLarge { len }) if len == MAX_FRAME + 1
        ));
        let mut sink = Vec::new();
        assert!(write_frame(&mut sink, &over).is_err());
        assert!(
            sink.is_empty(),
            "nothing is written for an oversized message"
        );
    }

    #[test]
    fn non_finite_floats_refused_at_encode() {
        let msg = Response::TestResult {
            outcome: Outcome::Reject,
            score: Some(f64::NAN),
        };
        assert!(matches!(encode_frame(&msg), Err(IpcError::Encode(_))));
        let mut summary = EnrollSummary {
            validation_eer: 0.0,
            genuine_mean: 0.0,
            impostor_mean: 0.0,
            margin: 0.0,
            threshold_policy: "eer".into(),
            threshold: f64::INFINITY,
            clips: 1,
        };
        assert!(matches!(
            encode_frame(&Response::Enrolled {
                summary: summary.clone()
            }),
            Err(IpcError::Encode(_))
        ));
        summary.threshold = 0.5;
        assert!(encode_frame(&Response::Enrolled { summary }).is_ok());
    }

    #[test]
    fn version_check() {
        assert!(check_version(PROTOCOL_VERSION).is_ok());
        for v in [0, PROTOCOL_VERSION + 1, u32::MAX] {
            assert!(
                matches!(check_version(v), Err(IpcError::UnsupportedVersion { got }) if got == v)
            );
        }
    }

    #[test]
    fn timeouts_are_recognised() {
        let e = IpcError::Io(io::Error::from(io::ErrorKind::WouldBlock));
        assert!(e.is_timeout());
        assert!(!IpcError::Closed.is_timeout());
        assert!(!IpcError::Io(io::Error::from(io::ErrorKind::BrokenPipe)).is_timeout());
    }

    /// Parses `hexdump -C` lines (`00000000  00 01 ...  |..|`) out of a document.
    fn hexdump_bytes(doc: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for line in doc.lines() {
            let line = line.trim_start_matches("//!").trim();
            let Some((offset, rest)) = line.split_once("  ") else {
                continue;
            };
            if offset.len() != 8 || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let hex = rest.split('|').next().unwrap_or("");
            for tok in hex.split_whitespace() {
                out.push(u8::from_str_radix(tok, 16).unwrap());
            }
        }
        out
    }

    #[test]
    fn documented_hexdumps_match_encoder() {
        let real = encode_frame(&Request::Hello {
            protocol_version: PROTOCOL_VERSION,
        })
        .unwrap();
        assert_eq!(hexdump_bytes(include_str!("lib.rs")), real, "crate docs");
        let man = include_str!("../../man/authnet-ipc.7");
        // roff escapes backslashes; the dump itself has none.
        assert_eq!(hexdump_bytes(man), real, "man/authnet-ipc.7");
    }
}
