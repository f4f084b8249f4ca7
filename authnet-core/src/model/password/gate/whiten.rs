//! Nuisance whitening of the word model's input: the directions of the mouth descriptor in
//! which repetitions of one word by one speaker differ (session, timing and lighting
//! variation, not the word) are learnt from clips whose speaker and word are known, and the
//! ridge is penalised more along them.
//!
//! For a linear model, a penalty `w' P w` with `P = L L'` is the plain ridge on the inputs
//! `L^-1 x`, whose weights map back to the original inputs as `L^-T w`. `P` is the pooled
//! per-frame covariance of the residuals of every clip from the mean of its (speaker, word)
//! group at the same timestep, in units of its mean variance, plus `eps` times the identity,
//! scaled to a mean diagonal of 1 (so that directions of average nuisance keep the penalty
//! they had). The same `L^-1` applies to every timestep, so it commutes with the temporal
//! smoothing, and the stored weights stay in the original feature space: scoring and the
//! model file do not change.

use candle_core::{Device, Tensor};

use crate::model::password::ridge::cholesky_in_place;
use crate::model::password::PasswordError;

/// One speaker's repetitions of one word, each a `T x dim` sequence.
pub(crate) type Repetitions = Vec<Vec<Vec<f32>>>;

/// Fewest residual frames (rows) the covariance is estimated from; fewer and no whitening is
/// done.
pub(crate) const MIN_RESIDUAL_ROWS: usize = 200;

/// `L^-1` of the regularised nuisance covariance, one frame's width square, row-major.
#[derive(Debug, Clone)]
pub(crate) struct Whitener {
    dim: usize,
    /// Lower-triangular `L^-1`, `dim x dim`, row-major.
    linv: Vec<f32>,
}

/// The summed outer products of per-frame residuals from their repetition group's mean, the
/// raw material of a [`Whitener`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Residuals {
    dim: usize,
    /// `dim x dim`, row-major.
    s: Vec<f64>,
    rows: usize,
}

impl Residuals {
    /// From groups of repetitions (each a list of `T x dim` sequences of one speaker saying one
    /// word); groups of one clip, or of mismatched shapes, add nothing.
    pub(crate) fn of_groups(groups: &[Repetitions]) -> Result<Self, PasswordError> {
        let dim = groups
            .iter()
            .flatten()
            .flatten()
            .map(|r| r.len())
            .next()
            .unwrap_or(0);
        let mut rows: Vec<f32> = Vec::new();
        let mut n = 0usize;
        for g in groups.iter().filter(|g| g.len() >= 2) {
            let t = g[0].len();
            if g.iter()
                .any(|s| s.len() != t || s.iter().any(|r| r.len() != dim))
            {
                continue;
            }
            // Unbiased: residuals of k repetitions carry k-1 degrees of freedom.
            let k = g.len() as f32;
            let scale = (k / (k - 1.0)).sqrt();
            for step in 0..t {
                let mut mean = vec![0.0f32; dim];
                for s in g {
                    for (m, v) in mean.iter_mut().zip(&s[step]) {
                        *m += v / k;
                    }
                }
                for s in g {
                    rows.extend(s[step].iter().zip(&mean).map(|(v, m)| (v - m) * scale));
                    n += 1;
                }
            }
        }
        if n == 0 {
            return Ok(Self {
                dim,
                s: vec![0.0; dim * dim],
                rows: 0,
            });
        }
        let r = Tensor::from_vec(rows, (n, dim), &Device::Cpu)?;
        let s = r.t()?.matmul(&r)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self {
            dim,
            s: s.into_iter().map(f64::from).collect(),
            rows: n,
        })
    }
}

impl Whitener {
    /// From groups of repetitions; `None` when fewer than [`MIN_RESIDUAL_ROWS`] residual
    /// frames are available or `eps` is not positive.
    #[cfg(test)]
    pub(crate) fn from_groups(
        groups: &[Repetitions],
        eps: f64,
    ) -> Result<Option<Self>, PasswordError> {
        Self::from_residuals(&Residuals::of_groups(groups)?, eps)
    }

    /// From summed residuals; `None` when fewer than [`MIN_RESIDUAL_ROWS`] residual frames
    /// are available or `eps` is not positive.
    pub(crate) fn from_residuals(r: &Residuals, eps: f64) -> Result<Option<Self>, PasswordError> {
        let (dim, n) = (r.dim, r.rows);
        if dim == 0 || n < MIN_RESIDUAL_ROWS || !(eps.is_finite() && eps > 0.0) {
            return Ok(None);
        }
        let mean_var = (0..dim).map(|i| r.s[i * dim + i]).sum::<f64>() / (n as f64 * dim as f64);
        if !(mean_var.is_finite() && mean_var > 0.0) {
            return Ok(None);
        }
        let norm = 1.0 / (n as f64 * mean_var * (1.0 + eps));
        let mut p: Vec<f64> = r.s.iter().map(|v| v * norm).collect();
        for i in 0..dim {
            p[i * dim + i] += eps / (1.0 + eps);
        }
        cholesky_in_place(&mut p, dim)?;
        Ok(Some(Self {
            dim,
            linv: lower_inverse(&p, dim),
        }))
    }

    /// `L^-1` applied to every `dim`-wide block of each row (a flattened sequence).
    pub(crate) fn apply(&self, xs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, PasswordError> {
        let width = xs.first().map(|r| r.len()).unwrap_or(0);
        if xs.is_empty() || width == 0 {
            return Ok(xs.to_vec());
        }
        if width % self.dim != 0 || xs.iter().any(|r| r.len() != width) {
            return Err(PasswordError::Invalid(
                "the whitener's width does not divide the word model's input",
            ));
        }
        let blocks = xs.len() * width / self.dim;
        let flat: Vec<f32> = xs.iter().flatten().copied().collect();
        let x = Tensor::from_vec(flat, (blocks, self.dim), &Device::Cpu)?;
        let linv = Tensor::from_vec(self.linv.clone(), (self.dim, self.dim), &Device::Cpu)?;
        // Each block as a row: (L^-1 x)' = x' L^-T.
        let y = x.matmul(&linv.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(y.chunks(width).map(<[f32]>::to_vec).collect())
    }

    /// Weights fitted on whitened inputs mapped back to the original ones: `L^-T w` per block.
    pub(crate) fn weights_back(&self, w: &[f32]) -> Vec<f32> {
        let d = self.dim;
        let mut out = vec![0.0f32; w.len()];
        for (o, b) in out.chunks_mut(d).zip(w.chunks(d)) {
            for (i, bi) in b.iter().enumerate() {
                // (L^-T w)_j = sum_i L^-1[i][j] w_i, with L^-1 lower: i >= j.
                for (j, oj) in o.iter_mut().enumerate().take(i + 1) {
                    *oj += self.linv[i * d + j] * bi;
                }
            }
        }
        out
    }
}

/// The inverse of the lower triangle of `n x n` `l`, as f32: forward substitution of
/// `L X = I` a row at a time (`X[i] = (e_i - sum_k L[i][k] X[k]) / L[i][i]`), so every inner
/// loop runs along a contiguous row.
fn lower_inverse(l: &[f64], n: usize) -> Vec<f32> {
    let mut inv = vec![0.0f64; n * n];
    let mut row = vec![0.0f64; n];
    for i in 0..n {
        row[..=i].fill(0.0);
        for k in 0..i {
            let lik = l[i * n + k];
            for (r, x) in row[..=k].iter_mut().zip(&inv[k * n..=k * n + k]) {
                *r -= lik * x;
            }
        }
        row[i] += 1.0;
        let d = l[i * n + i];
        for (x, r) in inv[i * n..=i * n + i].iter_mut().zip(&row[..=i]) {
            *x = r / d;
        }
    }
    inv.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn noisy_groups(rng: &mut SplitMix64) -> Vec<Repetitions> {
        // dim 3: axis 0 varies a lot between repetitions, axes 1 and 2 little.
        (0..10)
            .map(|g| {
                (0..5)
                    .map(|_| {
                        (0..20)
                            .map(|t| {
                                vec![
                                    g as f32 + 3.0 * (rng.next_f32() - 0.5),
                                    t as f32 * 0.1 + 0.1 * (rng.next_f32() - 0.5),
                                    0.1 * (rng.next_f32() - 0.5),
                                ]
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_noisy_axis_is_shrunk_and_weights_map_back_exactly() {
        let mut rng = SplitMix64::new(7);
        let w = Whitener::from_groups(&noisy_groups(&mut rng), 0.1)
            .unwrap()
            .expect("enough residual rows");
        let x = vec![vec![1.0f32, 1.0, 1.0, 2.0, -1.0, 0.5]];
        let z = w.apply(&x).unwrap();
        assert!(z[0][0].abs() < 1.0, "noisy axis shrunk: {:?}", z[0]);
        assert!(z[0][2].abs() > 1.0, "quiet axis amplified: {:?}", z[0]);
        // A weight vector on the whitened inputs scores the same as its map on the originals.
        let wz = vec![0.3f32, -1.2, 0.7, 0.1, 0.4, -0.9];
        let back = w.weights_back(&wz);
        let s_white: f32 = z[0].iter().zip(&wz).map(|(a, b)| a * b).sum();
        let s_orig: f32 = x[0].iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((s_white - s_orig).abs() < 1e-4, "{s_white} vs {s_orig}");
    }

    #[test]
    fn too_few_repetitions_or_a_bad_eps_give_no_whitener() {
        let mut rng = SplitMix64::new(1);
        let mut g = noisy_groups(&mut rng);
        g.truncate(1);
        g[0].truncate(1);
        assert!(Whitener::from_groups(&g, 0.1).unwrap().is_none());
        let g = noisy_groups(&mut rng);
        assert!(Whitener::from_groups(&g, 0.0).unwrap().is_none());
        assert!(Whitener::from_groups(&g, f64::NAN).unwrap().is_none());
        assert!(Whitener::from_groups(&[], 0.1).unwrap().is_none());
    }

    #[test]
    fn lower_inverse_inverts_a_lower_triangle() {
        let n = 37;
        let mut rng = SplitMix64::new(11);
        let mut l = vec![0.0f64; n * n];
        for i in 0..n {
            for k in 0..i {
                l[i * n + k] = (rng.next_f32() - 0.5) as f64;
            }
            l[i * n + i] = 1.0 + rng.next_f32() as f64;
        }
        let inv = lower_inverse(&l, n);
        for i in 0..n {
            for j in 0..n {
                let p: f64 = (0..n).map(|k| l[i * n + k] * inv[k * n + j] as f64).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((p - want).abs() < 1e-5, "(L L^-1)[{i}][{j}] = {p}");
            }
        }
        // Above the diagonal the inverse is zero too.
        assert!((0..n).all(|i| (i + 1..n).all(|j| inv[i * n + j] == 0.0)));
    }

    #[test]
    fn a_mismatched_width_is_refused() {
        let mut rng = SplitMix64::new(3);
        let w = Whitener::from_groups(&noisy_groups(&mut rng), 0.1)
            .unwrap()
            .unwrap();
        assert!(w.apply(&[vec![1.0; 4]]).is_err());
    }
}
