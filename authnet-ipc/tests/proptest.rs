//! Property tests: arbitrary bytes never panic the decoder, and arbitrary valid messages survive
//! a trip through the framing. CI runs these with proptest's bounded case count; the `fuzz/`
//! cargo-fuzz target drives the same harness without a bound.
#![deny(unsafe_code)]

use authnet_ipc::{
    decode_frame, encode_frame, fuzzing::decode_frame_harness, read_frame, write_frame,
    EnrollSummary, ErrorKind, ModelEntry, Outcome, Request, Response, Secret, UnavailableReason,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including quotes, backslashes and control characters JSON must escape.
    any::<String>().prop_map(|s| s.chars().take(40).collect())
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn secret() -> impl Strategy<Value = Option<Secret>> {
    proptest::option::of(text().prop_map(Secret::new))
}

fn finite() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("JSON carries finite floats only", |x| x.is_finite())
}

fn reason() -> impl Strategy<Value = UnavailableReason> {
    proptest::sample::select(UnavailableReason::ALL.to_vec())
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Accept),
        Just(Outcome::Reject),
        reason().prop_map(|reason| Outcome::Unavailable { reason }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        any::<u32>().prop_map(|protocol_version| Request::Hello { protocol_version }),
        (text(), text(), opt_text(), opt_text()).prop_map(|(user, service, rhost, tty)| {
            Request::Authenticate {
                user,
                service,
                rhost,
                tty,
            }
        }),
        Just(Request::Cancel {}),
        (
            text(),
            secret(),
            proptest::collection::vec(text(), 0..4),
            proptest::collection::vec(text(), 0..4),
            proptest::option::of(proptest::collection::vec(text(), 0..4)),
            any::<u32>()
        )
            .prop_map(
                |(user, password, clips, other_word_clips, other_word_labels, clip_count)| {
                    Request::Enroll {
                        user,
                        password,
                        clips,
                        other_word_clips,
                        other_word_labels,
                        clip_count,
                    }
                }
            ),
        opt_text().prop_map(|user| Request::List { user }),
        (opt_text(), any::<bool>(), secret()).prop_map(|(user, all, password)| Request::Remove {
            user,
            all,
            password
        }),
        text().prop_map(|user| Request::Test { user }),
        text().prop_map(|user| Request::ResetThrottle { user }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        any::<u32>().prop_map(|protocol_version| Response::Hello { protocol_version }),
        text().prop_map(|text| Response::Info { text }),
        outcome().prop_map(|outcome| Response::Result { outcome }),
        (proptest::sample::select(ErrorKind::ALL.to_vec()), text())
            .prop_map(|(kind, message)| Response::Error { kind, message }),
        (text(), any::<u32>(), any::<u32>(), text()).prop_map(|(stage, done, total, text)| {
            Response::Progress {
                stage,
                done,
                total,
                text,
            }
        }),
        (
            finite(),
            finite(),
            finite(),
            finite(),
            text(),
            finite(),
            any::<u32>()
        )
            .prop_map(
                |(
                    validation_eer,
                    genuine_mean,
                    impostor_mean,
                    margin,
                    threshold_policy,
                    threshold,
                    clips,
                )| {
                    Response::Enrolled {
                        summary: EnrollSummary {
                            validation_eer,
                            genuine_mean,
                            impostor_mean,
                            margin,
                            threshold_policy,
                            threshold,
                            clips,
                        },
                    }
                }
            ),
        proptest::collection::vec(
            (text(), text(), text(), text()).prop_map(
                |(user, created, backbone, threshold_policy)| {
                    ModelEntry {
                        user,
                        created,
                        backbone,
                        threshold_policy,
                    }
                }
            ),
            0..4
        )
        .prop_map(|entries| Response::Models { entries }),
        text().prop_map(|text| Response::Done { text }),
        (outcome(), proptest::option::of(finite()))
            .prop_map(|(outcome, score)| Response::TestResult { outcome, score }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_frame_harness(&data);
    }

    #[test]
    fn arbitrary_payload_behind_valid_length_never_panics(payload in ".{0,200}") {
        // A well-formed length prefix gets the fuzz input past the header into serde.
        let mut frame = u32::try_from(payload.len()).unwrap_or(u32::MAX).to_be_bytes().to_vec();
        frame.extend_from_slice(payload.as_bytes());
        decode_frame_harness(&frame);
    }

    #[test]
    fn requests_round_trip(msg in request()) {
        let mut wire = Vec::new();
        write_frame(&mut wire, &msg).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let back: Request = read_frame(&mut wire.as_slice()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(&back, &msg);
        decode_frame_harness(&wire);
    }

    #[test]
    fn responses_round_trip(msg in response()) {
        let wire = encode_frame(&msg).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let (back, used): (Response, usize) = decode_frame(&wire).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(used, wire.len());
        decode_frame_harness(&wire);
    }

    #[test]
    fn any_truncation_of_a_valid_frame_is_an_error(msg in response(), cut in any::<proptest::sample::Index>()) {
        let wire = encode_frame(&msg).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let cut = cut.index(wire.len());
        prop_assert!(decode_frame::<Response>(&wire[..cut]).is_err());
    }
}
