//! The two custom candle ops behind [`super::SeqClassifier`], with hand-written backward passes.
//!
//! - [`DataLinear`]: `x W + b` where `x` is raw input (no gradient is ever needed for it).
//!   candle's own matmul backward always computes the gradient of *both* operands, which for
//!   the `[T*B, D]` feature matrix is the largest product of the whole step, thrown away.
//! - [`LstmLayerOp`]: one whole LSTM layer: the input-to-hidden product for all timesteps in
//!   one matmul (`[T*B, in] x [in, 4H]`), then the recurrence ([`LstmRecurrence`]), whose
//!   backward pass is backpropagation through time in plain loops. Built from stock candle ops,
//!   a timestep would cost a dozen small ops forward and twice that backward, and slicing
//!   timestep `t` out of the precomputed product makes autograd materialise a zero-padded
//!   `[T*B, 4H]` gradient per timestep (quadratic in `T`).
//!
//! Both ops take their parameters *packed*: one `[in + 1, out]` tensor whose last row is the
//! bias (for the LSTM, `[in + H + 1, 4H]`: `W_ih` rows, `W_hh` rows, bias row). Keeping the
//! bias add and its gradient inside the ops also keeps large elementwise tensors out of
//! candle: candle 0.11 runs elementwise ops over 64 Ki elements on one process-wide barrier
//! pool that serialises concurrent callers (and spins), which would defeat training many users'
//! models in parallel.
//!
//! Large products go through candle's matmul (`gemm`, runtime-dispatched SIMD, deterministic
//! whatever the thread count: it splits output rows/columns, never the reduction). Sums, the
//! recurrence and its gradient are plain Rust in a fixed order.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Device, Layout, Shape, Tensor};

/// `y [N, out] = x [N, in] W + b` with `packed [in + 1, out]` = `W` rows then the bias row, as
/// a unary op on `packed`; `x` is raw input held by the op.
#[derive(Debug)]
pub(super) struct DataLinear {
    x: Tensor,
}

impl DataLinear {
    /// `x`: `[N, in]`, contiguous f32 on the CPU.
    pub(super) fn new(x: Tensor) -> Self {
        Self { x }
    }
}

impl CustomOp1 for DataLinear {
    fn name(&self) -> &'static str {
        "authnet-data-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let packed = contiguous_f32(s, l)?;
        let (n, input) = self.x.dims2()?;
        let (rows, out) = l.shape().dims2()?;
        if rows != input + 1 {
            return Err(candle_core::Error::Msg(format!(
                "data linear: packed has {rows} rows for {input} inputs"
            )));
        }
        let w = Tensor::from_slice(&packed[..input * out], (input, out), &Device::Cpu)?;
        let mut y = self.x.matmul(&w)?.flatten_all()?.to_vec1::<f32>()?;
        add_bias_rows(&mut y, &packed[input * out..]);
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        packed: &Tensor,
        _y: &Tensor,
        grad_y: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad_y = grad_y.detach().contiguous()?;
        let mut grad = self
            .x
            .t()?
            .matmul(&grad_y)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        grad.extend(column_sums(
            &grad_y.flatten_all()?.to_vec1::<f32>()?,
            grad_y.dim(1)?,
        ));
        Ok(Some(Tensor::from_vec(
            grad,
            packed.shape(),
            packed.device(),
        )?))
    }
}

/// One LSTM layer over all timesteps as a binary op:
/// `(input [T*B, in], packed [in + H + 1, 4H]) -> hs [T*B, H]` (time-major: row `t*B + b` is
/// timestep `t` of sequence `b`), where `packed` holds `W_ih` rows, `W_hh` rows and the bias row,
/// the `4H` axis ordered `[in_gate, forget_gate, out_gate, cell_gate]`.
#[derive(Debug)]
pub(super) struct LstmLayerOp {
    rec: LstmRecurrence,
    input_dim: usize,
    /// Whether the gradient of the input is wanted (not for raw features).
    input_grad: bool,
    /// Activations saved by the forward pass for the backward pass.
    tape: OnceLock<Tape>,
}

impl LstmLayerOp {
    pub(super) fn new(
        steps: usize,
        batch: usize,
        input_dim: usize,
        hidden: usize,
        input_grad: bool,
    ) -> Self {
        Self {
            rec: LstmRecurrence::new(steps, batch, hidden),
            input_dim,
            input_grad,
            tape: OnceLock::new(),
        }
    }

    fn check(&self, input: &[usize], packed: &[usize]) -> candle_core::Result<()> {
        let (rows, h) = (self.rec.steps * self.rec.batch, self.rec.hidden);
        if input != [rows, self.input_dim] || packed != [self.input_dim + h + 1, 4 * h] {
            return Err(candle_core::Error::Msg(format!(
                "lstm layer: input {input:?}, packed {packed:?} for T*B={rows} in={} H={h}",
                self.input_dim
            )));
        }
        Ok(())
    }

    /// `(W_ih [in, 4H], W_hh [H, 4H], bias [4H])` views of `packed`.
    fn split<'a>(&self, packed: &'a [f32]) -> (&'a [f32], &'a [f32], &'a [f32]) {
        let g4 = 4 * self.rec.hidden;
        let (w_ih, rest) = packed.split_at(self.input_dim * g4);
        let (w_hh, bias) = rest.split_at(self.rec.hidden * g4);
        (w_ih, w_hh, bias)
    }

    /// The forward pass from an input tensor and the packed values.
    fn run(&self, input: &Tensor, packed: &[f32]) -> candle_core::Result<Tape> {
        let (w_ih, w_hh, bias) = self.split(packed);
        let w_ih = Tensor::from_slice(w_ih, (self.input_dim, bias.len()), &Device::Cpu)?;
        // [T*B, in] x [in, 4H] for all timesteps at once, plus the bias.
        let mut xw = input.matmul(&w_ih)?.flatten_all()?.to_vec1::<f32>()?;
        add_bias_rows(&mut xw, bias);
        Ok(self.rec.run(&xw, w_hh))
    }
}

impl CustomOp2 for LstmLayerOp {
    fn name(&self) -> &'static str {
        "authnet-lstm-layer"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.check(l1.dims(), l2.dims())?;
        let input = Tensor::from_slice(contiguous_f32(s1, l1)?, l1.dims(), &Device::Cpu)?;
        let tape = self.run(&input, contiguous_f32(s2, l2)?)?;
        let hs = tape.hs.clone();
        // One op instance per layer and forward pass, so the slot is empty here; were it not,
        // `bwd` would use the first tape, the one autograd recorded.
        let _ = self.tape.set(tape);
        let rows = self.rec.steps * self.rec.batch;
        Ok((CpuStorage::F32(hs), Shape::from((rows, self.rec.hidden))))
    }

    fn bwd(
        &self,
        input: &Tensor,
        packed: &Tensor,
        _hs: &Tensor,
        grad_hs: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        self.check(input.dims(), packed.dims())?;
        let input = input.detach().contiguous()?;
        let packed_v = packed.flatten_all()?.to_vec1::<f32>()?;
        let grad_hs = grad_hs.flatten_all()?.to_vec1::<f32>()?;
        let recomputed;
        let tape = match self.tape.get() {
            Some(tape) => tape,
            None => {
                recomputed = self.run(&input, &packed_v)?;
                &recomputed
            }
        };
        let (w_ih, w_hh, _) = self.split(&packed_v);
        let g4 = 4 * self.rec.hidden;
        let (steps, batch, h) = (self.rec.steps, self.rec.batch, self.rec.hidden);
        let da = self.rec.backward(tape, w_hh, &grad_hs);
        let grad_bias = column_sums(&da, g4);
        let da = Tensor::from_vec(da, (steps * batch, g4), &Device::Cpu)?;
        // grad_w_ih: [in, T*B] x [T*B, 4H]
        let mut grad = input.t()?.matmul(&da)?.flatten_all()?.to_vec1::<f32>()?;
        // grad_w_hh = sum over t >= 1 of h_{t-1}^T da_t: [H, (T-1)*B] x [(T-1)*B, 4H]
        if steps > 1 {
            let rows = (steps - 1) * batch;
            let h_prev = Tensor::from_slice(&tape.hs[..rows * h], (rows, h), &Device::Cpu)?;
            let da_next = da.narrow(0, batch, rows)?;
            grad.extend(
                h_prev
                    .t()?
                    .matmul(&da_next)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
        } else {
            grad.extend(std::iter::repeat_n(0.0, h * g4));
        }
        grad.extend(grad_bias);
        let grad_packed = Tensor::from_vec(grad, packed.shape(), packed.device())?;
        let grad_input = if self.input_grad {
            let w_ih = Tensor::from_slice(w_ih, (self.input_dim, g4), &Device::Cpu)?;
            // [T*B, 4H] x [4H, in]
            Some(da.matmul(&w_ih.t()?)?)
        } else {
            None
        };
        Ok((grad_input, Some(grad_packed)))
    }
}

/// Adds `bias [n]` to every row of `y [rows, n]`.
fn add_bias_rows(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// Column sums of `m [rows, n]`, rows added in order.
fn column_sums(m: &[f32], n: usize) -> Vec<f32> {
    let mut s = vec![0.0f32; n];
    for row in m.chunks_exact(n) {
        axpy(&mut s, 1.0, row);
    }
    s
}

/// Saved activations of one [`LstmRecurrence`] forward pass, reused by its backward pass.
#[derive(Debug)]
pub(super) struct Tape {
    /// Activated gates, `[T*B, 4H]`: `[in_gate, forget_gate, out_gate, cell_gate]`.
    gates: Vec<f32>,
    /// Cell states `c_t`, `[T*B, H]`.
    pub(super) cells: Vec<f32>,
    /// `tanh(c_t)`, `[T*B, H]`.
    cells_tanh: Vec<f32>,
    /// Hidden states `h_t`, `[T*B, H]`.
    pub(super) hs: Vec<f32>,
}

/// The recurrence of one LSTM layer over all timesteps (plain Rust, single-threaded, hence
/// deterministic).
///
/// Inputs: `xw [T*B, 4H]` (time-major `x_t W_ih + b`, precomputed for all timesteps) and
/// `w_hh [H, 4H]`. Output: every hidden state, `hs [T*B, H]`. With `h_0 = c_0 = 0`:
///
/// ```text
/// a_t = xw_t + h_{t-1} W_hh                      [B, 4H]
/// in_gate = σ(a_i)  forget_gate = σ(a_f)  out_gate = σ(a_o)  cell_gate = tanh(a_g)
/// c_t = forget_gate * c_{t-1} + in_gate * cell_gate
/// h_t = out_gate * tanh(c_t)
/// ```
///
/// The backward pass is hand-written backpropagation through time over the saved [`Tape`].
#[derive(Debug, Clone, Copy)]
pub(super) struct LstmRecurrence {
    steps: usize,
    batch: usize,
    hidden: usize,
}

impl LstmRecurrence {
    pub(super) fn new(steps: usize, batch: usize, hidden: usize) -> Self {
        Self {
            steps,
            batch,
            hidden,
        }
    }

    /// The forward pass over all timesteps; `xw` is `[T*B, 4H]` and `w_hh` `[H, 4H]` (lengths
    /// checked by the caller).
    pub(super) fn run(&self, xw: &[f32], w_hh: &[f32]) -> Tape {
        let (b, h) = (self.batch, self.hidden);
        let g4 = 4 * h;
        let n = self.steps * b * h;
        let mut gates = xw.to_vec();
        let mut cells = vec![0.0f32; n];
        let mut cells_tanh = vec![0.0f32; n];
        let mut hs = vec![0.0f32; n];
        for t in 0..self.steps {
            let gt = &mut gates[t * b * g4..(t + 1) * b * g4];
            let (h_done, h_now) = hs.split_at_mut(t * b * h);
            let (c_done, c_now) = cells.split_at_mut(t * b * h);
            if t > 0 {
                let h_prev = &h_done[(t - 1) * b * h..];
                matmul_acc(gt, h_prev, w_hh, b, h, g4);
            }
            for r in 0..b {
                let row = &mut gt[r * g4..(r + 1) * g4];
                let (sig, cell_gate) = row.split_at_mut(3 * h);
                sig.iter_mut().for_each(|v| *v = sigmoid(*v));
                cell_gate.iter_mut().for_each(|v| *v = tanh(*v));
                for k in 0..h {
                    let (in_gate, forget_gate, out_gate) = (sig[k], sig[h + k], sig[2 * h + k]);
                    let c_prev = if t > 0 {
                        c_done[((t - 1) * b + r) * h + k]
                    } else {
                        0.0
                    };
                    let c = forget_gate * c_prev + in_gate * cell_gate[k];
                    let tc = tanh(c);
                    c_now[r * h + k] = c;
                    cells_tanh[(t * b + r) * h + k] = tc;
                    h_now[r * h + k] = out_gate * tc;
                }
            }
        }
        Tape {
            gates,
            cells,
            cells_tanh,
            hs,
        }
    }

    /// Backpropagation through time: from `grad_hs [T*B, H]`, returns `grad_xw [T*B, 4H]`, the
    /// gradient of the gate pre-activations. (`grad_w_hh = sum_t h_{t-1}^T grad_xw_t` is left
    /// to the caller, as one matmul over all timesteps.)
    pub(super) fn backward(&self, tape: &Tape, w_hh: &[f32], grad_hs: &[f32]) -> Vec<f32> {
        let (b, h) = (self.batch, self.hidden);
        let g4 = 4 * h;
        let mut grad_xw = vec![0.0f32; self.steps * b * g4];
        // dL/dh_t and dL/dc_t arriving from timestep t+1.
        let mut dh_next = vec![0.0f32; b * h];
        let mut dc_next = vec![0.0f32; b * h];
        for t in (0..self.steps).rev() {
            let da_t = &mut grad_xw[t * b * g4..(t + 1) * b * g4];
            for r in 0..b {
                let gate = &tape.gates[(t * b + r) * g4..(t * b + r + 1) * g4];
                let da = &mut da_t[r * g4..(r + 1) * g4];
                for k in 0..h {
                    let i = (t * b + r) * h + k;
                    let (in_gate, forget_gate, out_gate, cell_gate) =
                        (gate[k], gate[h + k], gate[2 * h + k], gate[3 * h + k]);
                    let c_prev = if t > 0 { tape.cells[i - b * h] } else { 0.0 };
                    let tc = tape.cells_tanh[i];
                    let dh = grad_hs[i] + dh_next[r * h + k];
                    let dc = dc_next[r * h + k] + dh * out_gate * (1.0 - tc * tc);
                    da[k] = dc * cell_gate * in_gate * (1.0 - in_gate);
                    da[h + k] = dc * c_prev * forget_gate * (1.0 - forget_gate);
                    da[2 * h + k] = dh * tc * out_gate * (1.0 - out_gate);
                    da[3 * h + k] = dc * in_gate * (1.0 - cell_gate * cell_gate);
                    dc_next[r * h + k] = dc * forget_gate;
                }
            }
            if t > 0 {
                // dh_{t-1} = da_t W_hh^T: [B, 4H] x [4H, H]
                for r in 0..b {
                    let da = &da_t[r * g4..(r + 1) * g4];
                    for k in 0..h {
                        dh_next[r * h + k] = dot(da, &w_hh[k * g4..(k + 1) * g4]);
                    }
                }
            }
        }
        grad_xw
    }
}

/// The f32 values of a contiguous CPU tensor.
fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => Err(candle_core::Error::RequiresContiguous {
            op: "authnet-lstm-recurrence",
        }),
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `tanh`, through `exp` (libm's `tanhf` goes through the slower `expm1f`; it was a fifth of
/// the training time). Odd Taylor series below 0.1, where `1 - e` would cancel; relative error
/// under 1e-6 everywhere.
fn tanh(x: f32) -> f32 {
    let a = x.abs();
    if a < 0.1 {
        let a2 = a * a;
        x * (1.0 - a2 / 3.0 + 2.0 * a2 * a2 / 15.0)
    } else {
        let e = (-2.0 * a).exp();
        ((1.0 - e) / (1.0 + e)).copysign(x)
    }
}

/// `out [rows, n] += a [rows, k] x w [k, n]`, row-major; the inner loop runs over contiguous
/// `n` so that it vectorises.
fn matmul_acc(out: &mut [f32], a: &[f32], w: &[f32], rows: usize, k: usize, n: usize) {
    for r in 0..rows {
        let o = &mut out[r * n..(r + 1) * n];
        for (kk, &av) in a[r * k..(r + 1) * k].iter().enumerate() {
            axpy(o, av, &w[kk * n..(kk + 1) * n]);
        }
    }
}

/// `y += a * x`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(yi, xi)| *yi += a * xi);
}

/// Dot product with eight independent accumulators (vectorisable without reassociating
/// floating point; the summation order is fixed, hence deterministic).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for j in 0..8 {
            acc[j] += a[c * 8 + j] * b[c * 8 + j];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for j in chunks * 8..a.len().min(b.len()) {
        s += a[j] * b[j];
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(super) mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use candle_core::Var;

    const CPU: Device = Device::Cpu;

    /// The gradient of `v` in `grads`, flattened (also used by the LSTM tests).
    pub(in crate::model::lstm) fn grad_of(
        v: &Var,
        grads: &candle_core::backprop::GradStore,
    ) -> Vec<f32> {
        grads
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn recurrence_matches_hand_computed_lstm_step() {
        // H = 1, B = 1, T = 2: in, forget, out, cell pre-activations.
        let xw = [0.5f32, -0.2, 0.3, 0.8, -0.1, 0.4, 0.2, -0.6];
        let w_hh = [0.7f32, -0.3, 0.2, 0.5];
        let tape = LstmRecurrence::new(2, 1, 1).run(&xw, &w_hh);
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let c1 = s(0.5) * 0.8f64.tanh();
        let h1 = s(0.3) * c1.tanh();
        let a = [
            -0.1 + 0.7 * h1,
            0.4 - 0.3 * h1,
            0.2 + 0.2 * h1,
            -0.6 + 0.5 * h1,
        ];
        let c2 = s(a[1]) * c1 + s(a[0]) * a[3].tanh();
        let h2 = s(a[2]) * c2.tanh();
        for (got, want) in tape.hs.iter().zip([h1, h2]) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert!((f64::from(tape.cells[1]) - c2).abs() < 1e-6);
    }

    #[test]
    fn fast_tanh_is_accurate() {
        let mut x = -12.0f32;
        while x <= 12.0 {
            let want = f64::from(x).tanh();
            let got = f64::from(tanh(x));
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "tanh({x}): {got} vs {want}"
            );
            x += 0.0137;
        }
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
    }

    /// Central differences of `L = sum(op(a, b) * r)` against the ops' backward passes.
    fn check_gradients(
        params: &[(&Var, &[f32])],
        loss_of: &dyn Fn(&[Vec<f32>]) -> f64,
        grads: &candle_core::backprop::GradStore,
    ) {
        let eps = 1e-2f32;
        let base: Vec<Vec<f32>> = params.iter().map(|(_, v)| v.to_vec()).collect();
        for (p, (var, _)) in params.iter().enumerate() {
            let analytic = grad_of(var, grads);
            for i in 0..base[p].len() {
                let mut plus = base.clone();
                let mut minus = base.clone();
                plus[p][i] += eps;
                minus[p][i] -= eps;
                let numeric = (loss_of(&plus) - loss_of(&minus)) / (2.0 * f64::from(eps));
                assert!(
                    (f64::from(analytic[i]) - numeric).abs() < 2e-3,
                    "param {p} index {i}: analytic {} numeric {numeric}",
                    analytic[i]
                );
            }
        }
    }

    #[test]
    fn lstm_layer_gradients_match_finite_differences() {
        let (steps, batch, input_dim, hidden) = (4, 3, 5, 2);
        let rows = steps * batch;
        let mut rng = SplitMix64::new(11);
        let mut draw = |n: usize| (0..n).map(|_| rng.normal() * 0.6).collect::<Vec<f32>>();
        let x0 = draw(rows * input_dim);
        let p0 = draw((input_dim + hidden + 1) * 4 * hidden);
        let r = Tensor::from_vec(draw(rows * hidden), (rows, hidden), &CPU).unwrap();
        let packed_shape = (input_dim + hidden + 1, 4 * hidden);
        let op = || LstmLayerOp::new(steps, batch, input_dim, hidden, true);
        let loss_of = |v: &[Vec<f32>]| -> f64 {
            let x = Tensor::from_slice(&v[0], (rows, input_dim), &CPU).unwrap();
            let p = Tensor::from_slice(&v[1], packed_shape, &CPU).unwrap();
            let hs = x.apply_op2_no_bwd(&p, &op()).unwrap();
            let l = (hs * &r).unwrap().sum_all().unwrap();
            f64::from(l.to_scalar::<f32>().unwrap())
        };
        let x = Var::from_vec(x0.clone(), (rows, input_dim), &CPU).unwrap();
        let p = Var::from_vec(p0.clone(), packed_shape, &CPU).unwrap();
        let hs = x.as_tensor().apply_op2(p.as_tensor(), op()).unwrap();
        let loss = (hs * &r).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        check_gradients(&[(&x, &x0), (&p, &p0)], &loss_of, &grads);

        // Without `input_grad` the input gets no gradient and the parameters the same one.
        let xt = Tensor::from_vec(x0.clone(), (rows, input_dim), &CPU).unwrap();
        let hs = xt
            .apply_op2(
                p.as_tensor(),
                LstmLayerOp::new(steps, batch, input_dim, hidden, false),
            )
            .unwrap();
        let grads2 = (hs * &r).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(grad_of(&p, &grads2), grad_of(&p, &grads));
    }

    #[test]
    fn data_linear_matches_matmul_and_its_gradient() {
        let (n, input, out) = (6, 4, 3);
        let mut rng = SplitMix64::new(3);
        let mut draw = |k: usize| (0..k).map(|_| rng.normal()).collect::<Vec<f32>>();
        let x = Tensor::from_vec(draw(n * input), (n, input), &CPU).unwrap();
        let p0 = draw((input + 1) * out);
        let r = Tensor::from_vec(draw(n * out), (n, out), &CPU).unwrap();
        let p = Var::from_vec(p0.clone(), (input + 1, out), &CPU).unwrap();
        let y = p.as_tensor().apply_op1(DataLinear::new(x.clone())).unwrap();
        let w = p.as_tensor().narrow(0, 0, input).unwrap();
        let b = p.as_tensor().narrow(0, input, 1).unwrap();
        let want = x.matmul(&w).unwrap().broadcast_add(&b).unwrap();
        let diff = (&y - &want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        let loss_of = |v: &[Vec<f32>]| -> f64 {
            let p = Tensor::from_slice(&v[0], (input + 1, out), &CPU).unwrap();
            let y = p.apply_op1_no_bwd(&DataLinear::new(x.clone())).unwrap();
            f64::from(
                (y * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
            )
        };
        let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        check_gradients(&[(&p, &p0)], &loss_of, &grads);
    }
}
