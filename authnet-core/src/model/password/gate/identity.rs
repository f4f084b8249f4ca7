//! The identity gate: cosine of the probe's mean identity embedding with the user's enrolled
//! template. It needs no training on impostors, so it generalises to people never seen.

use super::{Calibration, Gate, GateStats, Registration, Role, Stored, Trainer};
use crate::features::{cosine, UtteranceFeatures};
use crate::model::file::{ModelMeta, NamedTensor};
use crate::model::password::config::StoredConfig;
use crate::model::password::train_set::TrainData;
use crate::model::password::views::template_of;
use crate::model::password::PasswordError;

/// The registry entry.
pub(crate) const REGISTRATION: Registration = Registration {
    name: NAME,
    optional: false,
    prepare: |_| Ok(Some(Box::new(IdentityTrainer))),
    load,
};

const NAME: &str = "identity";
/// Floor of the genuine standard deviation.
const STD_FLOOR: f64 = 0.02;

/// The trained identity gate.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityGate {
    template: Vec<f32>,
    stats: GateStats,
}

impl Gate for IdentityGate {
    fn name(&self) -> &'static str {
        NAME
    }
    fn role(&self) -> Role {
        Role::Fused("identity")
    }
    fn score(&self, probe: &UtteranceFeatures) -> Result<f64, PasswordError> {
        Ok(cosine(&probe.mean_identity(), &self.template) as f64)
    }
    fn calibrate(&mut self, genuine: &[f64], _impostor: &[f64]) {
        // The user's other words share the identity: there is no gap to scale by.
        self.stats = GateStats::from_scores(genuine, STD_FLOOR);
    }
    fn stats(&self) -> Calibration {
        Calibration::Standardise(self.stats)
    }
    fn tensors(&self, _meta: &ModelMeta) -> Vec<NamedTensor> {
        vec![NamedTensor::new(
            "template",
            vec![self.template.len()],
            self.template.clone(),
        )]
    }
    fn store(&self, cfg: &mut StoredConfig) {
        cfg.identity = self.stats;
    }
}

struct IdentityTrainer;

impl Trainer for IdentityTrainer {
    fn fold_scores(
        &self,
        data: &TrainData,
        fold: usize,
        _train: &[usize],
        test: &[usize],
    ) -> Result<Vec<f64>, PasswordError> {
        let tmpl = template_of(&data.train_positives(fold));
        Ok(test
            .iter()
            .map(|&i| cosine(&data.set.feats[i].mean_identity(), &tmpl) as f64)
            .collect())
    }
    fn fit(&self, data: &TrainData) -> Result<Box<dyn Gate>, PasswordError> {
        let all: Vec<&UtteranceFeatures> = data.positives.iter().collect();
        Ok(Box::new(IdentityGate {
            template: template_of(&all),
            stats: GateStats::default(),
        }))
    }
}

fn load(s: &Stored) -> Result<Option<Box<dyn Gate>>, PasswordError> {
    let template = s
        .get("template")
        .ok_or(PasswordError::Invalid("no template tensor"))?
        .data
        .clone();
    if template.len() != s.meta.identity_dim {
        return Err(PasswordError::Invalid(
            "template length differs from identity_dim",
        ));
    }
    s.cfg.identity.check("invalid identity statistics")?;
    Ok(Some(Box::new(IdentityGate {
        template,
        stats: s.cfg.identity,
    })))
}
