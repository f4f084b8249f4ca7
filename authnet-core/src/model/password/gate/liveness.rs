//! The liveness gate: mouth motion energy (mean frame-to-frame change of the mouth descriptor).
//! A photo held up to the camera (a frozen frame) has none; below a floor taken from the user's
//! own clips it **vetoes** the attempt whatever the other scores say.

use super::{Calibration, Gate, Registration, Role, Stored, Trainer};
use crate::features::UtteranceFeatures;
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
        Ok(Some(Box::new(LivenessTrainer {
            fraction: d.cfg.liveness_fraction,
        })))
    },
    load,
};

const NAME: &str = "liveness";

/// The trained liveness gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LivenessGate {
    /// The floor is this fraction of the least-moving genuine clip's motion.
    fraction: f64,
    floor: f64,
}

impl Gate for LivenessGate {
    fn name(&self) -> &'static str {
        NAME
    }
    fn role(&self) -> Role {
        Role::Veto
    }
    fn score(&self, probe: &UtteranceFeatures) -> Result<f64, PasswordError> {
        Ok(motion_energy(probe))
    }
    fn calibrate(&mut self, genuine: &[f64]) {
        let least = genuine.iter().copied().fold(f64::INFINITY, f64::min);
        self.floor = self.fraction * least;
    }
    fn stats(&self) -> Calibration {
        Calibration::Floor(self.floor)
    }
    fn veto(&self, raw: f64) -> Option<Veto> {
        (raw < self.floor).then_some(Veto::NoMotion {
            energy: raw,
            floor: self.floor,
        })
    }
    fn tensors(&self, _meta: &ModelMeta) -> Vec<NamedTensor> {
        Vec::new()
    }
    fn store(&self, cfg: &mut StoredConfig) {
        cfg.liveness_floor = self.floor;
    }
}

struct LivenessTrainer {
    fraction: f64,
}

impl Trainer for LivenessTrainer {
    fn fold_scores(
        &self,
        data: &TrainData,
        _fold: usize,
        _train: &[usize],
        test: &[usize],
    ) -> Result<Vec<f64>, PasswordError> {
        Ok(test
            .iter()
            .map(|&i| motion_energy(&data.set.feats[i]))
            .collect())
    }
    fn fit(&self, _data: &TrainData) -> Result<Box<dyn Gate>, PasswordError> {
        Ok(Box::new(LivenessGate {
            fraction: self.fraction,
            floor: 0.0,
        }))
    }
}

fn load(s: &Stored) -> Result<Option<Box<dyn Gate>>, PasswordError> {
    if !s.cfg.liveness_floor.is_finite() {
        return Err(PasswordError::Invalid("non-finite gate statistics"));
    }
    Ok(Some(Box::new(LivenessGate {
        fraction: f64::NAN,
        floor: s.cfg.liveness_floor,
    })))
}
