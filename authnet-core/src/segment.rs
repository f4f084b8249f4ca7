//! Utterance segmentation: where in a clip the lips move.
//!
//! A phone clip or a live capture starts before and ends after the password is mouthed. The
//! still frames either side carry no password and, left in, shift every real frame's position
//! in the assembled sequence. [`find_utterance`] finds the moving span from the mouth
//! descriptors alone:
//!
//! 1. Motion `d[i]` is the L2 distance between the mouth descriptors of frames `i` and `i + 1`
//!    (the same measure as `model::password::motion_energy`).
//! 2. Thresholds are relative to the clip's own motion: between its quiet level (a low
//!    percentile of `d`) and its active level (a high percentile), so the same settings hold
//!    for a close phone clip and a distant webcam. A clip whose active level is below an
//!    absolute floor has no utterance: nothing moves beyond descriptor noise.
//! 3. The span runs from the first to the last frame pair above the `on` threshold, grown
//!    outwards while motion stays above the lower `off` threshold (hysteresis: the slow start
//!    and end of a lip movement stay in), then padded by a frame either side.

use crate::features::UtteranceFeatures;

/// Segmentation settings. Thresholds `on` and `off` are fractions of the way from the clip's
/// quiet to its active motion level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentConfig {
    /// A pair of frames is "moving" above `quiet + on · (active − quiet)`.
    pub on: f32,
    /// The span grows outwards while motion stays above `quiet + off · (active − quiet)`.
    pub off: f32,
    /// Percentile (0–1) of the clip's motion taken as its quiet level.
    pub quiet_percentile: f32,
    /// Percentile (0–1) of the clip's motion taken as its active level.
    pub active_percentile: f32,
    /// Absolute motion below which the active level counts as stillness (descriptor units:
    /// the mouth descriptor is two unit vectors, so motion lies in 0–2.83).
    pub min_active: f32,
    /// The same floor on the mesh layout's aligned lip contour ([`motion_view`]), in units of
    /// the outer-eye-corner distance.
    pub min_active_contour: f32,
    /// Frames kept either side of the detected span.
    pub pad: usize,
    /// Fewest frames an utterance may span (before padding).
    pub min_frames: usize,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        // `on` and `off` sit above the codec noise x264 puts into the still frames next to the
        // speech of an encoded 84×84 MIRACL-VC1 clip (motion up to 0.38 of the active level,
        // tests/video.rs), and low enough that padded real utterances are recovered within
        // 2 frames (100 F02 words, the test below).
        Self {
            on: 0.5,
            off: 0.4,
            quiet_percentile: 0.1,
            active_percentile: 0.9,
            // Measured on the 100 MIRACL-VC1 F02 word utterances: the lowest active level is
            // 0.51 (see the real-data test); repeated frames give 0. 0.05 is a tenth of the
            // quietest real utterance.
            min_active: 0.05,
            // Measured on the mesh lip contour: codec noise on the still frames of an encoded
            // clip moves it by at most 0.009 (tests/video.rs), the quietest of 40 real F02 face
            // words has an active level of 0.088 (tests/landmarks.rs). 0.02 sits above twice
            // the noise and below a quarter of the quietest utterance.
            min_active_contour: 0.02,
            pad: 1,
            min_frames: 3,
        }
    }
}

/// The frames of a clip that hold the utterance: `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First frame kept.
    pub start: usize,
    /// One past the last frame kept.
    pub end: usize,
}

impl Span {
    /// Number of frames in the span.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the span is empty (never, for a span [`find_utterance`] returns).
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Why no utterance was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentError {
    /// Too few frames to measure motion.
    #[error("no utterance found: {frames} frame(s) are too few to see the lips move")]
    TooFewFrames {
        /// Frames in the clip.
        frames: usize,
    },
    /// The lips do not move (beyond descriptor noise).
    #[error(
        "no utterance found: the lips do not move (motion {active:.3}, below the {min_active:.3} floor)"
    )]
    NoMotion {
        /// The clip's active motion level.
        active: f32,
        /// The floor it had to reach.
        min_active: f32,
    },
    /// Movement too brief to be a spoken word.
    #[error("no utterance found: the lips move in only {frames} frame(s), fewer than {min}")]
    TooBrief {
        /// Frames of the detected movement.
        frames: usize,
        /// The minimum.
        min: usize,
    },
}

/// Frame-to-frame mouth motion: `d[i] = ‖m[i+1] − m[i]‖₂`, length `n − 1`.
pub fn mouth_motion(mouth: &[Vec<f32>]) -> Vec<f32> {
    mouth
        .windows(2)
        .map(|w| {
            w[0].iter()
                .zip(&w[1])
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt()
        })
        .collect()
}

/// The `p`-quantile (0–1, nearest rank) of `v`; `v` must be non-empty.
fn quantile(v: &[f32], p: f32) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    let i = ((s.len() - 1) as f32 * p.clamp(0.0, 1.0)).round() as usize;
    s[i.min(s.len() - 1)]
}

/// The span of `mouth` (one descriptor per frame) in which the lips move. See the module doc.
pub fn find_utterance(mouth: &[Vec<f32>], cfg: &SegmentConfig) -> Result<Span, SegmentError> {
    let n = mouth.len();
    if n < 2 {
        return Err(SegmentError::TooFewFrames { frames: n });
    }
    let d = mouth_motion(mouth);
    let quiet = quantile(&d, cfg.quiet_percentile);
    let active = quantile(&d, cfg.active_percentile).max(quiet);
    if active < cfg.min_active {
        return Err(SegmentError::NoMotion {
            active,
            min_active: cfg.min_active,
        });
    }
    let level = |f: f32| quiet + f * (active - quiet);
    let (on, off) = (level(cfg.on), level(cfg.off.min(cfg.on)));
    // Pairs at or above `on`; `active >= min_active > 0` guarantees at least the
    // active-percentile pair qualifies unless `on` exceeds 1.
    let Some(first) = d.iter().position(|&x| x >= on) else {
        return Err(SegmentError::NoMotion {
            active,
            min_active: cfg.min_active,
        });
    };
    let last = d.iter().rposition(|&x| x >= on).unwrap_or(first);
    let (mut a, mut b) = (first, last);
    while a > 0 && d[a - 1] >= off {
        a -= 1;
    }
    while b + 1 < d.len() && d[b + 1] >= off {
        b += 1;
    }
    // Pair `i` lies between frames `i` and `i + 1`.
    let (start, end) = (a, b + 2);
    if end - start < cfg.min_frames {
        return Err(SegmentError::TooBrief {
            frames: end - start,
            min: cfg.min_frames,
        });
    }
    Ok(Span {
        start: start.saturating_sub(cfg.pad),
        end: (end + cfg.pad).min(n),
    })
}

/// The part of each frame's mouth vector whose motion the segmenter measures: in the mesh
/// layout the aligned lip contour (eye-distance units), otherwise the mouth descriptor. Not the
/// mesh layout's lip-crop descriptor, which moves with every sub-pixel shift of the landmarks,
/// nor its lip-point velocities, whose frame-to-frame difference is a second derivative of
/// that jitter: on a still, re-encoded clip either makes codec noise look like speech
/// (`tests/video.rs` in authnet-core: the span grew by 4-5 frames either side).
pub fn motion_view(u: &UtteranceFeatures) -> Vec<Vec<f32>> {
    use crate::features::{LIP_POINTS, LIP_SHAPE_GAIN, MESH_MOUTH_DIM};
    use crate::vision::mouth::MOUTH_DIM;
    u.frames
        .iter()
        .map(|f| {
            if f.mouth.len() == MESH_MOUTH_DIM {
                f.mouth[MOUTH_DIM..MOUTH_DIM + 2 * LIP_POINTS]
                    .iter()
                    .map(|v| v / LIP_SHAPE_GAIN)
                    .collect()
            } else {
                f.mouth.clone()
            }
        })
        .collect()
}

/// `u` cut to its utterance span (features of the still frames either side dropped), and the
/// span. `frames_read` keeps counting every frame read from the source.
///
/// The span is found on [`motion_view`] of each frame, with the stillness floor of its units.
pub fn trim(
    u: &UtteranceFeatures,
    cfg: &SegmentConfig,
) -> Result<(UtteranceFeatures, Span), SegmentError> {
    let contour = u
        .frames
        .first()
        .is_some_and(|f| f.mouth.len() == crate::features::MESH_MOUTH_DIM);
    let cfg = if contour {
        SegmentConfig {
            min_active: cfg.min_active_contour,
            ..*cfg
        }
    } else {
        *cfg
    };
    let span = find_utterance(&motion_view(u), &cfg)?;
    let mut out = u.clone();
    out.frames = u.frames[span.start..span.end].to_vec();
    Ok((out, span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::DirSource;
    use crate::features::FrameFeatures;
    use crate::testdata;
    use crate::vision::detect::{crop, FaceBox};
    use crate::vision::mouth;

    /// Mouth descriptors of a MIRACL-VC1 F02 utterance, computed as the pipeline does for face
    /// crops (`--crop none`: the mouth region of the whole frame). No backbone needed.
    fn f02_mouth(word: u32, inst: u32) -> Vec<Vec<f32>> {
        let dir = testdata::utterance("faces", "F02", word, inst).expect("MIRACL-VC1 data present");
        DirSource::open(&dir)
            .unwrap()
            .allow_mixed_sizes()
            .read_all()
            .unwrap()
            .iter()
            .map(|f| mouth::describe(&crop(f, FaceBox::full(f).mouth_region())))
            .collect()
    }

    fn padded(m: &[Vec<f32>], before: usize, after: usize) -> Vec<Vec<f32>> {
        let mut out = vec![m[0].clone(); before];
        out.extend(m.iter().cloned());
        out.extend(std::iter::repeat_n(m[m.len() - 1].clone(), after));
        out
    }

    #[test]
    fn trims_padding_around_real_utterances_within_two_frames() {
        let cfg = SegmentConfig::default();
        let mut worst = 0usize;
        let mut min_active = f32::INFINITY;
        for word in 1..=10 {
            for inst in 1..=10 {
                let m = f02_mouth(word, inst);
                let (before, after) = (8 + (word as usize % 3) * 5, 6 + (inst as usize % 4) * 4);
                let (span, err) = testdata::trim_padded(&m, before, after, &cfg).unwrap();
                worst = worst.max(err);
                min_active = min_active.min(quantile(&mouth_motion(&m), cfg.active_percentile));
                assert!(
                    err <= 2,
                    "word {word:02}/{inst:02}: {} frames padded {before}+{after}: got {span:?}, want {}..{}",
                    m.len(),
                    before,
                    before + m.len()
                );
            }
        }
        eprintln!(
            "100 F02 words: worst span error {worst} frames; lowest active motion {min_active:.3}"
        );
        assert!(
            min_active > 2.0 * cfg.min_active,
            "floor too close: {min_active}"
        );
    }

    #[test]
    fn an_unpadded_utterance_is_kept_almost_whole() {
        let m = f02_mouth(5, 3);
        let span = find_utterance(&m, &SegmentConfig::default()).unwrap();
        assert!(
            span.start <= 2 && span.end + 2 >= m.len(),
            "{span:?} of {}",
            m.len()
        );
    }

    #[test]
    fn a_still_mouth_has_no_utterance() {
        let m = f02_mouth(5, 3);
        let still = vec![m[0].clone(); 30];
        let e = find_utterance(&still, &SegmentConfig::default()).unwrap_err();
        assert!(matches!(e, SegmentError::NoMotion { .. }), "{e}");
        assert!(e.to_string().contains("no utterance found"));
        // Tiny jitter (sensor or codec noise) is still stillness.
        let jitter: Vec<Vec<f32>> = (0..30)
            .map(|i| {
                let mut v = m[0].clone();
                let k = i % v.len();
                v[k] += 0.01;
                v
            })
            .collect();
        assert!(matches!(
            find_utterance(&jitter, &SegmentConfig::default()),
            Err(SegmentError::NoMotion { .. })
        ));
        assert!(matches!(
            find_utterance(&m[..1], &SegmentConfig::default()),
            Err(SegmentError::TooFewFrames { frames: 1 })
        ));
    }

    #[test]
    fn a_single_twitch_is_no_utterance() {
        let m = f02_mouth(5, 3);
        let cfg = SegmentConfig {
            min_frames: 4,
            ..Default::default()
        };
        // In a short clip the twitch (frames 3→4→5) reaches the active level but spans only
        // 3 frames.
        let mut short = vec![m[0].clone(); 8];
        short[4] = m[4].clone();
        assert_eq!(
            find_utterance(&short, &cfg),
            Err(SegmentError::TooBrief { frames: 3, min: 4 })
        );
        // In a long clip it is under a tenth of the motion samples: below the active level.
        let mut long = vec![m[0].clone(); 30];
        long[15] = m[4].clone();
        assert!(matches!(
            find_utterance(&long, &cfg),
            Err(SegmentError::NoMotion { .. })
        ));
    }

    #[test]
    fn trim_cuts_features_to_the_span() {
        let m = f02_mouth(5, 3);
        let p = padded(&m, 10, 10);
        let u = UtteranceFeatures {
            backbone: "x".into(),
            identity_dim: 1,
            mouth_dim: m[0].len(),
            frames: p
                .iter()
                .enumerate()
                .map(|(i, mo)| FrameFeatures {
                    identity: vec![i as f32],
                    mouth: mo.clone(),
                })
                .collect(),
            frames_read: p.len(),
        };
        let (t, span) = trim(&u, &SegmentConfig::default()).unwrap();
        assert_eq!(t.frames.len(), span.len());
        assert_eq!(t.frames[0].identity, vec![span.start as f32]);
        assert_eq!(t.frames_read, p.len());
    }
}
