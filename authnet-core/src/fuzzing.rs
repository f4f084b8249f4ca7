//! Fuzzing harnesses for the two file readers the root daemon runs on bytes from disk: the
//! per-user model file ([`crate::model::file::model_from_bytes`]) and the impostor bank
//! ([`crate::model::bank::ImpostorBank::from_bytes`]).
//!
//! Kept in the library (rustls style) so that each cargo-fuzz target in `fuzz/` is one line,
//! and so that the properties are compiled and exercised by `cargo test` too.
//!
//! Each harness reads its input two ways:
//! * as a whole file image, straight into the reader;
//! * as an edit script applied to a small valid file built here (truncate, then overwrite
//!   bytes), so that the fuzzer reaches the checks behind the magic, version and header
//!   without needing a seed corpus on disk.
//!
//! Properties: the reader never panics, whatever the bytes; whatever it accepts re-encodes,
//! and the re-encoding reads back to an equal value.

use crate::features::{FrameFeatures, UtteranceFeatures};
use crate::model::bank::{BankEntry, ImpostorBank};
use crate::model::file::{
    model_from_bytes, model_to_bytes, Expect, ModelMeta, NamedTensor, Thresholds, TrainingStats,
    FORMAT_VERSION,
};
use crate::sequence::PadPolicy;

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const BACKBONE: &str = "mobilefacenet";
const IDENTITY_DIM: usize = 3;
const MOUTH_DIM: usize = 2;

/// A small valid bank file image: three speakers, 1 to 5 frames each.
pub fn sample_bank_bytes() -> Vec<u8> {
    let mut bank = ImpostorBank::new(BACKBONE, SHA, IDENTITY_DIM, MOUTH_DIM);
    for (k, (speaker, frames)) in [("F01", 4usize), ("M01", 1), ("F05", 5)]
        .into_iter()
        .enumerate()
    {
        let frames = (0..frames)
            .map(|i| FrameFeatures {
                identity: vec![0.5 + i as f32, 0.25, -0.5],
                mouth: vec![k as f32, 1.0],
            })
            .collect::<Vec<_>>();
        bank.entries.push(BankEntry {
            speaker: speaker.into(),
            word: format!("{:02}", k + 1),
            instance: "07".into(),
            features: UtteranceFeatures {
                backbone: BACKBONE.into(),
                identity_dim: IDENTITY_DIM,
                mouth_dim: MOUTH_DIM,
                frames_read: frames.len(),
                frames,
            },
        });
    }
    // The sample is valid by construction (the unit test below proves it reads back); an
    // empty image only makes the edit-script half of the harness less useful, never unsound.
    bank.to_bytes().unwrap_or_default()
}

/// A small valid model file image: one tensor and metadata for the `mobilefacenet` backbone.
pub fn sample_model_bytes() -> Vec<u8> {
    let meta = ModelMeta {
        format_version: FORMAT_VERSION,
        backbone: BACKBONE.into(),
        backbone_sha256: SHA.into(),
        identity_dim: IDENTITY_DIM,
        mouth_dim: MOUTH_DIM,
        timesteps: 20,
        pad_policy: PadPolicy::Interpolate,
        thresholds: Thresholds {
            eer: 0.5,
            fmr: 0.75,
            target_fmr: 0.001,
        },
        training: TrainingStats {
            positives: 110,
            negatives: 300,
            epochs: 1,
            validation_eer: 0.0,
            genuine_mean: 1.0,
            impostor_mean: -1.0,
            train_seconds: 0.1,
        },
        created: "2026-01-01T00:00:00Z".into(),
        config: serde_json::json!({"word_model": "ridge"}),
        // Bound, so the fuzzer mutates an owner too.
        owner: Some(crate::model::file::Owner {
            user: "alice".into(),
            uid: 1000,
        }),
        // Tagged, so the fuzzer mutates a tag too.
        features: Some("mesh-v4".into()),
    };
    let tensors = [NamedTensor::new("w", vec![2, 2], vec![1.0, -2.0, 0.5, 0.0])];
    // Valid by construction, as for the bank sample above.
    model_to_bytes(&meta, &tensors).unwrap_or_default()
}

/// Applies `script` to `base`: bytes 0..2 (big-endian) give a length to truncate to, then each
/// 3-byte group `(hi, lo, value)` overwrites one byte at offset `hi:lo` (modulo the length).
fn edit(base: &[u8], script: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    let Some((head, rest)) = script.split_first_chunk::<2>() else {
        return out;
    };
    let keep = usize::from(u16::from_be_bytes(*head));
    if keep < out.len() {
        out.truncate(keep);
    }
    if out.is_empty() {
        return out;
    }
    let len = out.len();
    for op in rest.chunks_exact(3) {
        let at = usize::from(u16::from_be_bytes([op[0], op[1]])) % len;
        out[at] = op[2];
    }
    out
}

/// Reads `data` as a bank image and as an edit of [`sample_bank_bytes`].
///
/// # Panics
///
/// Panics when a property is violated: that is how a fuzzer learns it found a bug.
pub fn bank_file_harness(data: &[u8]) {
    check_bank(data);
    check_bank(&edit(&sample_bank_bytes(), data));
}

/// Reads `data` as a model image and as an edit of [`sample_model_bytes`].
///
/// # Panics
///
/// Panics when a property is violated.
pub fn model_file_harness(data: &[u8]) {
    check_model(data);
    check_model(&edit(&sample_model_bytes(), data));
}

#[allow(clippy::panic)] // A property violation must abort the fuzz run; see the docs above.
fn check_bank(bytes: &[u8]) {
    let Ok(bank) = ImpostorBank::from_bytes(bytes, BACKBONE, IDENTITY_DIM) else {
        return;
    };
    let again = match bank.to_bytes() {
        Ok(b) => b,
        Err(e) => panic!("an accepted bank does not re-encode: {e:?}"),
    };
    match ImpostorBank::from_bytes(&again, BACKBONE, IDENTITY_DIM) {
        Ok(back) if back == bank => {}
        other => panic!("an accepted bank does not round-trip: {other:?}"),
    }
}

#[allow(clippy::panic)] // As above.
fn check_model(bytes: &[u8]) {
    let expect = Expect::backbone(BACKBONE, SHA, IDENTITY_DIM);
    let Ok((meta, tensors)) = model_from_bytes(bytes, &expect) else {
        return;
    };
    let again = match model_to_bytes(&meta, &tensors) {
        Ok(b) => b,
        Err(e) => panic!("an accepted model does not re-encode: {e:?}"),
    };
    match model_from_bytes(&again, &expect) {
        Ok((m, t)) if m == meta && t == tensors => {}
        other => panic!("an accepted model does not round-trip: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_files() {
        let bank = ImpostorBank::from_bytes(&sample_bank_bytes(), BACKBONE, IDENTITY_DIM).unwrap();
        assert_eq!(bank.entries.len(), 3);
        let expect = Expect::backbone(BACKBONE, SHA, IDENTITY_DIM);
        let (_, tensors) = model_from_bytes(&sample_model_bytes(), &expect).unwrap();
        assert_eq!(tensors.len(), 1);
    }

    #[test]
    fn edit_truncates_then_overwrites() {
        assert_eq!(edit(b"abcdef", &[0, 4, 0, 1, b'X']), b"aXcd");
        // A truncation length past the end keeps everything; offsets wrap.
        assert_eq!(edit(b"abc", &[0xff, 0xff, 0, 4, b'Z']), b"aZc");
        assert_eq!(edit(b"abc", &[0]), b"abc");
    }

    /// Every single-byte truncation and a sweep of byte flips over both samples: the readers
    /// refuse or round-trip, and never panic. A deterministic slice of what the fuzzer does.
    #[test]
    fn harnesses_hold_on_truncations_and_flips() {
        for base in [sample_bank_bytes(), sample_model_bytes()] {
            for keep in 0..base.len() {
                bank_file_harness(&base[..keep]);
                model_file_harness(&base[..keep]);
            }
            for at in (0..base.len()).step_by(3) {
                for value in [0u8, 0x01, 0x7f, 0xff, b'"', b'9'] {
                    let [hi, lo] = u16::try_from(at).unwrap().to_be_bytes();
                    let script = [0xff, 0xff, hi, lo, value];
                    bank_file_harness(&script);
                    model_file_harness(&script);
                }
            }
        }
    }
}
