//! The weighted ridge classifier, solved in the dual so that cross-validation reuses one Gram
//! matrix.

use candle_core::{Device, Tensor};

use super::PasswordError;

/// A trained ridge classifier: `w . x + b`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ridge {
    pub(crate) w: Vec<f32>,
    pub(crate) b: f32,
}

impl Ridge {
    pub(crate) fn score(&self, x: &[f32]) -> f64 {
        x.iter()
            .zip(&self.w)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum::<f64>()
            + self.b as f64
    }
}

/// `X X^T + 1` (the constant models the bias), via candle's matmul.
pub(crate) fn gram(x: &[Vec<f32>]) -> Result<Vec<Vec<f64>>, PasswordError> {
    let n = x.len();
    let d = x.first().map(|r| r.len()).unwrap_or(0);
    let flat: Vec<f32> = x.iter().flatten().copied().collect();
    let t = Tensor::from_vec(flat, (n, d), &Device::Cpu)?;
    let g = t.matmul(&t.t()?)?.to_vec2::<f32>()?;
    Ok(g.into_iter()
        .map(|r| r.into_iter().map(|v| v as f64 + 1.0).collect())
        .collect())
}

/// Solves `(K_SS + lambda * diag(1/c)) alpha = y` for the index subset `s` (Cholesky).
pub(crate) fn ridge_dual(
    k: &[Vec<f64>],
    s: &[usize],
    y: &[f64],
    c: &[f64],
    lambda: f64,
) -> Result<Vec<f64>, PasswordError> {
    let n = s.len();
    let mut a = vec![0.0f64; n * n];
    for (i, &si) in s.iter().enumerate() {
        for (j, &sj) in s.iter().enumerate() {
            a[i * n + j] = k[si][sj];
        }
        a[i * n + i] += lambda / c[si];
    }
    cholesky_in_place(&mut a, n)?;
    let mut z: Vec<f64> = s.iter().map(|&i| y[i]).collect();
    for i in 0..n {
        let mut v = z[i];
        for k2 in 0..i {
            v -= a[i * n + k2] * z[k2];
        }
        z[i] = v / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut v = z[i];
        for k2 in i + 1..n {
            v -= a[k2 * n + i] * z[k2];
        }
        z[i] = v / a[i * n + i];
    }
    Ok(z)
}

/// Cholesky of the symmetric positive-definite `n x n` row-major matrix `a`, in place: its
/// lower triangle becomes `L` with `a = L L^T` (the upper triangle above the diagonal is left
/// as it was). Not positive definite: [`PasswordError::Singular`].
pub(crate) fn cholesky_in_place(a: &mut [f64], n: usize) -> Result<(), PasswordError> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return Err(PasswordError::Singular);
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / d;
        }
    }
    Ok(())
}

/// Dual scores of items `q` given the solution `alpha` on subset `s`.
pub(crate) fn dual_scores(k: &[Vec<f64>], s: &[usize], alpha: &[f64], q: &[usize]) -> Vec<f64> {
    q.iter()
        .map(|&i| s.iter().zip(alpha).map(|(&j, a)| a * k[i][j]).sum())
        .collect()
}

pub(crate) fn primal(x: &[Vec<f32>], s: &[usize], alpha: &[f64]) -> Ridge {
    let d = x.first().map(|r| r.len()).unwrap_or(0);
    let mut w = vec![0.0f64; d];
    let mut b = 0.0;
    for (&i, a) in s.iter().zip(alpha) {
        for (wj, xj) in w.iter_mut().zip(&x[i]) {
            *wj += a * *xj as f64;
        }
        b += a;
    }
    Ridge {
        w: w.into_iter().map(|v| v as f32).collect(),
        b: b as f32,
    }
}
