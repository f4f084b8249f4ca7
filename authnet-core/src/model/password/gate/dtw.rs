//! The DTW template gate: minus the mean dynamic-time-warping distance of the probe's mouth
//! sequence to the two nearest enrolled clips. It is averaged into the word group, and kept
//! only for users whose out-of-fold EER it lowers.

use super::{Calibration, Gate, GateStats, Registration, Role, Stored, Trainer};
use crate::features::UtteranceFeatures;
use crate::model::file::{ModelMeta, NamedTensor};
use crate::model::password::config::StoredConfig;
use crate::model::password::train_set::TrainData;
use crate::model::password::PasswordError;
use crate::sequence::resample;

/// The registry entry.
pub(crate) const REGISTRATION: Registration = Registration {
    name: NAME,
    optional: true,
    prepare: |d| {
        Ok(d.cfg.dtw.then(|| {
            Box::new(DtwTrainer {
                timesteps: d.cfg.timesteps,
            }) as Box<dyn Trainer>
        }))
    },
    load,
};

const NAME: &str = "dtw";
/// Floor of the genuine standard deviation.
const STD_FLOOR: f64 = 0.01;
/// Prefix-free name of the templates tensor.
const TENSOR: &str = "dtw.templates";

/// The trained DTW gate.
#[derive(Debug, Clone, PartialEq)]
pub struct DtwGate {
    /// Enrolled mouth sequences (`T x mouth_dim` each).
    templates: Vec<Vec<Vec<f32>>>,
    timesteps: usize,
    stats: GateStats,
}

impl Gate for DtwGate {
    fn name(&self) -> &'static str {
        NAME
    }
    fn role(&self) -> Role {
        Role::Fused("word")
    }
    fn score(&self, probe: &UtteranceFeatures) -> Result<f64, PasswordError> {
        Ok(dtw_score(&dtw_seq(probe, self.timesteps), &self.templates))
    }
    fn calibrate(&mut self, genuine: &[f64], impostor: &[f64]) {
        self.stats = GateStats::from_separation(genuine, impostor, STD_FLOOR);
    }
    fn stats(&self) -> Calibration {
        Calibration::Standardise(self.stats)
    }
    fn tensors(&self, meta: &ModelMeta) -> Vec<NamedTensor> {
        let (n, t) = (self.templates.len(), meta.timesteps);
        let data: Vec<f32> = self.templates.iter().flatten().flatten().copied().collect();
        vec![NamedTensor::new(TENSOR, vec![n, t, meta.mouth_dim], data)]
    }
    fn store(&self, cfg: &mut StoredConfig) {
        cfg.dtw = Some(self.stats);
    }
}

struct DtwTrainer {
    timesteps: usize,
}

impl Trainer for DtwTrainer {
    fn fold_scores(
        &self,
        data: &TrainData,
        fold: usize,
        _train: &[usize],
        test: &[usize],
    ) -> Result<Vec<f64>, PasswordError> {
        let t = self.timesteps;
        let templates: Vec<Vec<Vec<f32>>> = data
            .train_positives(fold)
            .iter()
            .map(|u| dtw_seq(u, t))
            .collect();
        Ok(test
            .iter()
            .map(|&i| dtw_score(&dtw_seq(&data.set.feats[i], t), &templates))
            .collect())
    }
    fn fit(&self, data: &TrainData) -> Result<Box<dyn Gate>, PasswordError> {
        Ok(Box::new(DtwGate {
            templates: data
                .positives
                .iter()
                .map(|u| dtw_seq(u, self.timesteps))
                .collect(),
            timesteps: self.timesteps,
            stats: GateStats::default(),
        }))
    }
}

fn load(s: &Stored) -> Result<Option<Box<dyn Gate>>, PasswordError> {
    let Some(stats) = s.cfg.dtw else {
        return Ok(None);
    };
    stats.check("invalid DTW statistics")?;
    let t = s
        .get(TENSOR)
        .ok_or(PasswordError::Invalid("no dtw.templates tensor"))?;
    let (ts, md) = (s.meta.timesteps, s.meta.mouth_dim);
    if t.shape.len() != 3 || t.shape[1] != ts || t.shape[2] != md || t.shape[0] == 0 {
        return Err(PasswordError::Invalid(
            "dtw.templates shape differs from timesteps x mouth_dim",
        ));
    }
    let templates = t
        .data
        .chunks(ts * md)
        .map(|c| c.chunks(md).map(|r| r.to_vec()).collect())
        .collect();
    Ok(Some(Box::new(DtwGate {
        templates,
        timesteps: ts,
        stats,
    })))
}

/// Dynamic-time-warping distance between two mouth sequences (Euclidean frame cost, path
/// length normalised), so clips spoken at different speeds still align.
fn dtw(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return f64::INFINITY;
    }
    let cost = |i: usize, j: usize| -> f64 {
        a[i].iter()
            .zip(&b[j])
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut prev = vec![f64::INFINITY; m + 1];
    let mut cur = vec![f64::INFINITY; m + 1];
    prev[0] = 0.0;
    for i in 1..=n {
        cur[0] = f64::INFINITY;
        for j in 1..=m {
            cur[j] = cost(i - 1, j - 1) + prev[j - 1].min(prev[j]).min(cur[j - 1]);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m] / (n + m) as f64
}

/// DTW template score: minus the mean of the two smallest distances to the enrolled clips.
fn dtw_score(probe: &[Vec<f32>], templates: &[Vec<Vec<f32>>]) -> f64 {
    let mut d: Vec<f64> = templates.iter().map(|t| dtw(probe, t)).collect();
    d.sort_by(|x, y| x.total_cmp(y));
    let k = d.len().clamp(1, 2);
    -d.iter().take(k).sum::<f64>() / k as f64
}

/// The mouth sequence a DTW template stores (resampled to `t` steps).
fn dtw_seq(u: &UtteranceFeatures, t: usize) -> Vec<Vec<f32>> {
    resample(&u.mouth_seq(), t)
}
