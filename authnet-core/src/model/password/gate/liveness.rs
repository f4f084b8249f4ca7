//! The liveness gates, both vetoes with a floor taken from the user's own clips:
//!
//! - `liveness`: mouth motion energy (mean frame-to-frame change of the mouth vector). A photo
//!   held up to the camera (a frozen frame) has none; below the floor it **vetoes** the attempt
//!   whatever the other scores say.
//! - `lip_opening` (the mesh feature layout only, where the lip landmarks exist): the range of
//!   the lip opening over the utterance (inner-lip gap over the eye distance, see
//!   [`lip_opening_range`]). A photo moved, tilted or zoomed in front of the camera changes the
//!   mouth crop and so the motion energy, but not the face-aligned lip opening; below the floor
//!   it vetoes ([`Veto::StillLips`]). Models enrolled in the box layout have no such floor and
//!   do not load the gate.

use super::{Calibration, Gate, Registration, Role, Trainer};
use crate::features::{lip_opening_range, UtteranceFeatures};
use crate::model::file::{ModelMeta, NamedTensor};
use crate::model::password::config::StoredConfig;
use crate::model::password::train_set::TrainData;
use crate::model::password::views::motion_energy;
use crate::model::password::{PasswordError, Veto};

/// The registry entry.
pub(crate) const REGISTRATION: Registration = Registration {
    name: NAME,
    optional: false,
    prepare: |d| {
        Ok(Some(Box::new(FloorTrainer {
            kind: &MOTION,
            fraction: d.cfg.liveness_fraction,
        })))
    },
    load: |s| loaded(&MOTION, s.cfg.liveness_floor),
};

const NAME: &str = "liveness";

/// The registry entry of the lip-opening veto: prepared only when the positives carry lip
/// landmarks (mesh layout).
pub(crate) const LIP_REGISTRATION: Registration = Registration {
    name: LIP_NAME,
    optional: false,
    prepare: |d| {
        let mesh = d
            .positives
            .first()
            .is_some_and(|u| lip_opening_range(u).is_some());
        Ok(mesh.then(|| {
            Box::new(FloorTrainer {
                kind: &LIPS,
                fraction: d.cfg.liveness_fraction,
            }) as Box<dyn Trainer>
        }))
    },
    load: |s| match s.cfg.lip_opening_floor {
        Some(floor) => loaded(&LIPS, floor),
        None => Ok(None),
    },
};

const LIP_NAME: &str = "lip_opening";

/// The lip-opening range of a probe; 0 for features without landmarks (which a mesh-layout
/// model never scores: their mouth length differs and the probe is refused first).
fn lip_range(u: &UtteranceFeatures) -> f64 {
    lip_opening_range(u).unwrap_or(0.0)
}

/// One floor veto: what it measures, the veto it raises, where its floor is stored.
#[derive(Debug)]
struct Floor {
    name: &'static str,
    measure: fn(&UtteranceFeatures) -> f64,
    veto: fn(raw: f64, floor: f64) -> Veto,
    store: fn(&mut StoredConfig, f64),
}

/// Mouth motion energy.
static MOTION: Floor = Floor {
    name: NAME,
    measure: motion_energy,
    veto: |energy, floor| Veto::NoMotion { energy, floor },
    store: |c, floor| c.liveness_floor = floor,
};

/// The face-aligned lip opening's range.
static LIPS: Floor = Floor {
    name: LIP_NAME,
    measure: lip_range,
    veto: |range, floor| Veto::StillLips { range, floor },
    store: |c, floor| c.lip_opening_floor = Some(floor),
};

/// A trained floor veto (`liveness` or `lip_opening`).
#[derive(Debug, Clone, Copy)]
pub struct FloorGate {
    kind: &'static Floor,
    /// The floor is this fraction of the genuine clip that measured least.
    fraction: f64,
    floor: f64,
}

impl Gate for FloorGate {
    fn name(&self) -> &'static str {
        self.kind.name
    }
    fn role(&self) -> Role {
        Role::Veto
    }
    fn score(&self, probe: &UtteranceFeatures) -> Result<f64, PasswordError> {
        Ok((self.kind.measure)(probe))
    }
    fn calibrate(&mut self, genuine: &[f64], _impostor: &[f64]) {
        let least = genuine.iter().copied().fold(f64::INFINITY, f64::min);
        self.floor = self.fraction * least;
    }
    fn stats(&self) -> Calibration {
        Calibration::Floor(self.floor)
    }
    fn veto(&self, raw: f64) -> Option<Veto> {
        // NaN (nothing measurable) vetoes too.
        (raw.is_nan() || raw < self.floor).then(|| (self.kind.veto)(raw, self.floor))
    }
    fn tensors(&self, _meta: &ModelMeta) -> Vec<NamedTensor> {
        Vec::new()
    }
    fn store(&self, cfg: &mut StoredConfig) {
        (self.kind.store)(cfg, self.floor);
    }
}

struct FloorTrainer {
    kind: &'static Floor,
    fraction: f64,
}

impl Trainer for FloorTrainer {
    fn fold_scores(
        &self,
        data: &TrainData,
        _fold: usize,
        _train: &[usize],
        test: &[usize],
    ) -> Result<Vec<f64>, PasswordError> {
        Ok(test
            .iter()
            .map(|&i| (self.kind.measure)(&data.set.feats[i]))
            .collect())
    }
    fn fit(&self, _data: &TrainData) -> Result<Box<dyn Gate>, PasswordError> {
        Ok(Box::new(FloorGate {
            kind: self.kind,
            fraction: self.fraction,
            floor: 0.0,
        }))
    }
}

/// A stored floor, checked.
fn loaded(kind: &'static Floor, floor: f64) -> Result<Option<Box<dyn Gate>>, PasswordError> {
    if !floor.is_finite() {
        return Err(PasswordError::Invalid("non-finite gate statistics"));
    }
    Ok(Some(Box::new(FloorGate {
        kind,
        fraction: f64::NAN,
        floor,
    })))
}

#[cfg(test)]
mod tests {
    use crate::features::{
        l2_normalise, lip_opening_range, FrameFeatures, UtteranceFeatures, LIP_SHAPE_GAIN,
        LIP_VELOCITY_GAIN, MESH_MOUTH_DIM,
    };
    use crate::model::password::{
        enroll, EnrollConfig, EnrollInput, PasswordModel, ThresholdPolicy, Veto,
    };
    use crate::rng::SplitMix64;
    use crate::vision::landmarks::{INNER_LIP, LIP_GAP, OUTER_LIP};
    use crate::vision::mouth::MOUTH_DIM;

    /// A synthetic mesh-layout utterance: a mouth descriptor following a per-word trajectory
    /// when `descriptor_moves`, and the 40 aligned lip points with the inner-lip gap opening
    /// and closing when `lips_move` (a photo slid across the camera moves the descriptor but
    /// not the face-aligned lips).
    fn mesh_utt(
        word: u64,
        inst: u64,
        descriptor_moves: bool,
        lips_move: bool,
    ) -> UtteranceFeatures {
        let mut r = SplitMix64::new(word * 100 + inst);
        let n = 12 + r.below(4);
        let mut wr = SplitMix64::new(777 + word);
        let traj: Vec<f32> = (0..MOUTH_DIM).map(|_| wr.normal()).collect();
        let mut pid = SplitMix64::new(1);
        let face: Vec<f32> = (0..16).map(|_| pid.normal()).collect();
        let slot = |p: usize| OUTER_LIP.len() + INNER_LIP.iter().position(|&i| i == p).unwrap();
        let (upper, lower) = (slot(LIP_GAP[0]), slot(LIP_GAP[1]));
        let mut prev: Option<Vec<f32>> = None;
        let frames = (0..n)
            .map(|f| {
                let ph = f as f32 / n as f32 * 6.0;
                let mut identity: Vec<f32> = face.iter().map(|b| b + 0.1 * r.normal()).collect();
                l2_normalise(&mut identity);
                let mut desc: Vec<f32> = traj
                    .iter()
                    .enumerate()
                    .map(|(k, a)| {
                        let t = if descriptor_moves { ph } else { 0.0 };
                        a * (t + k as f32 * 0.1).sin() + 0.05 * r.normal()
                    })
                    .collect();
                l2_normalise(&mut desc);
                let mut lips: Vec<f32> = (0..40)
                    .flat_map(|k| {
                        let a = k as f32 / 40.0 * std::f32::consts::TAU;
                        [0.4 * a.cos(), 0.8 + 0.15 * a.sin()]
                    })
                    .collect();
                let open = if lips_move {
                    0.02 + 0.2 * ph.sin().abs()
                } else {
                    0.1
                };
                lips[2 * upper] = 0.0;
                lips[2 * upper + 1] = 0.8 - open / 2.0;
                lips[2 * lower] = 0.0;
                lips[2 * lower + 1] = 0.8 + open / 2.0;
                // In eye distances; the mouth vector holds them with the layout's gains.
                let vel: Vec<f32> = match &prev {
                    Some(p) => lips
                        .iter()
                        .zip(p)
                        .map(|(a, b)| LIP_VELOCITY_GAIN * (a - b))
                        .collect(),
                    None => vec![0.0; lips.len()],
                };
                prev = Some(lips.clone());
                let mut mouth = desc;
                mouth.extend(lips.iter().map(|v| v * LIP_SHAPE_GAIN));
                mouth.extend(vel);
                FrameFeatures { identity, mouth }
            })
            .collect();
        UtteranceFeatures {
            backbone: "t".into(),
            identity_dim: 16,
            mouth_dim: MESH_MOUTH_DIM,
            frames,
            frames_read: n,
        }
    }

    fn enrol(pos: &[UtteranceFeatures], other: &[UtteranceFeatures]) -> PasswordModel {
        let cfg = EnrollConfig {
            oversample_to: 30,
            ..Default::default()
        };
        let input = EnrollInput {
            positives: pos,
            other_words: other,
            other_word_labels: &[],
            bank: None,
        };
        enroll(&input, &cfg, &mut |_, _, _| {}).unwrap().0
    }

    #[test]
    fn mesh_models_veto_still_lips_even_when_the_mouth_crop_moves() {
        let pos: Vec<_> = (0..7).map(|i| mesh_utt(1, i, true, true)).collect();
        let other: Vec<_> = (2..5)
            .flat_map(|w| (0..3).map(move |i| mesh_utt(w, i, true, true)))
            .collect();
        assert!(lip_opening_range(&pos[0]).unwrap() > 0.15);
        let m = enrol(&pos, &other);
        let floor = m
            .stored_config()
            .lip_opening_floor
            .expect("mesh model has a lip floor");
        assert!(floor > 0.0 && floor < 0.2, "floor {floor}");
        // A genuine clip passes the lip veto.
        let s = m.score(&mesh_utt(1, 20, true, true)).unwrap();
        assert!(
            !matches!(s.veto, Some(Veto::StillLips { .. })),
            "genuine vetoed: {s:?}"
        );
        // A photo moved in front of the camera: the crop changes, the lips do not.
        let photo = mesh_utt(1, 21, true, false);
        assert_eq!(lip_opening_range(&photo), Some(0.0));
        assert!(crate::model::password::views::motion_energy(&photo) > 0.05);
        let d = m.decide(&photo, ThresholdPolicy::Eer).unwrap();
        assert!(
            matches!(d.scores.veto, Some(Veto::StillLips { .. })),
            "{d:?}"
        );
        assert!(!d.accepted());
        assert!(d
            .scores
            .veto
            .unwrap()
            .to_string()
            .contains("lips did not open"));
        // The floor survives the model file.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let mut m = m;
        let sha = "a".repeat(64);
        m.set_backbone_sha256(&sha);
        m.save(&p).unwrap();
        let back =
            PasswordModel::load(&p, &crate::model::file::Expect::backbone("t", &sha, 16)).unwrap();
        assert_eq!(back.stored_config().lip_opening_floor, Some(floor));
        assert_eq!(back.score(&photo).unwrap(), m.score(&photo).unwrap());
    }

    #[test]
    fn box_models_have_no_lip_floor() {
        // Box-layout features (mouth vectors without landmarks): the lip gate is not prepared.
        let strip = |u: UtteranceFeatures| UtteranceFeatures {
            mouth_dim: MOUTH_DIM,
            frames: u
                .frames
                .iter()
                .map(|f| FrameFeatures {
                    identity: f.identity.clone(),
                    mouth: f.mouth[..MOUTH_DIM].to_vec(),
                })
                .collect(),
            ..u
        };
        let pos: Vec<_> = (0..7).map(|i| strip(mesh_utt(1, i, true, true))).collect();
        let other: Vec<_> = (2..4)
            .flat_map(|w| (0..3).map(move |i| strip(mesh_utt(w, i, true, true))))
            .collect();
        assert_eq!(lip_opening_range(&pos[0]), None);
        let m = enrol(&pos, &other);
        assert_eq!(m.stored_config().lip_opening_floor, None);
        assert!(m.gates().all(|g| g.name() != "lip_opening"));
    }
}
