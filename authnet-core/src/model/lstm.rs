//! The per-user temporal classifier: a stack of LSTM layers over `T` per-frame feature vectors,
//! its last hidden state into an optional dense layer and a single logit (AuthNet, AAAI 2021).
//!
//! ```text
//! x [B, T, D] --(optional projection D -> P, one matmul for all timesteps)--> [B, T, P]
//!   --> LSTM(H_1) --dropout--> ... --> LSTM(H_L) --dropout--> h_T [B, H_L]
//!   --> optional Dense(K, ReLU) --> Linear(1) --> logit [B]
//! ```
//!
//! # Speed
//!
//! Each LSTM layer is one candle custom op (the private `ops` module): the input-to-hidden product for all
//! timesteps in one matmul (`[T*B, in] x [in, 4H]`), then the recurrence (only
//! `h_{t-1} x W_hh` per step) with a hand-written backward pass (backpropagation through time).
//! The projection is a custom op too, because candle's matmul backward would also compute the
//! (unused) gradient of the `[T*B, D]` feature matrix. Measured with `authnet-eval bench` (450
//! sequences x 20 x 448, 60 full epochs of batch 75, one thread): `compact` about 1.7 s of CPU,
//! `paper` about 4.6 s; scoring one sequence 0.1-0.3 ms.
//!
//! # Determinism
//!
//! Initialisation, shuffling and dropout masks come from [`SplitMix64`]; the recurrence, the
//! bias sums and the gradients of the gates are plain single-threaded Rust. The remaining
//! candle ops are matmuls (`gemm`) and small elementwise ops.
//! candle 0.11 passes `gemm` `Parallelism::Rayon(n)` with `n` read from `RAYON_NUM_THREADS`
//! (default: the number of physical cores) on every call; `gemm` only splits the output rows and
//! columns between threads, never the reduction dimension, so each output element is summed in
//! the same order whatever `n` is. The test `logits_do_not_depend_on_thread_count` checks this by
//! re-running the test binary with `RAYON_NUM_THREADS` = 1, 2 and 4 and comparing logits bit for
//! bit, so parallel evaluation (rayon over targets) gives the same models as a serial run.
//!
//! # Tensor names
//!
//! [`SeqClassifier::tensors`] returns, in this order (`in` is `P` with a projection, else `D`):
//! `proj.weight [D, P]`, `proj.bias [P]`, then per layer `l`: `lstm.{l}.w_ih [in_l, 4H_l]`,
//! `lstm.{l}.w_hh [H_l, 4H_l]`, `lstm.{l}.bias [4H_l]`, then `dense.weight [H_L, K]`,
//! `dense.bias [K]`, `head.weight [K or H_L, 1]`, `head.bias [1]`. The `4H` axis holds the gates
//! in the order `[in_gate, forget_gate, out_gate, cell_gate]` (the three sigmoid gates first, so
//! that they are one contiguous block).

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

mod ops;

/// One utterance: `T` timesteps of `D` features (`T x D`).
pub type Sequence = Vec<Vec<f32>>;

/// Largest input, projection or dense width accepted, to bound the memory that a model file's
/// configuration can make us allocate.
pub const MAX_WIDTH: usize = 1 << 16;
/// Largest LSTM hidden size accepted (same reason).
pub const MAX_HIDDEN: usize = 4096;
/// Largest number of LSTM layers accepted (same reason).
pub const MAX_LAYERS: usize = 16;
/// Sequences per forward pass when scoring or computing the validation loss; bounds the
/// activation memory of [`SeqClassifier::logits`] on large inputs.
const EVAL_CHUNK: usize = 512;

/// Errors from building, training or running the classifier.
#[derive(Debug, thiserror::Error)]
pub enum LstmError {
    /// A tensor operation failed (candle).
    #[error("tensor operation failed")]
    Candle(#[from] candle_core::Error),
    /// The architecture is unusable (zero width, too large, dropout outside `[0, 1)`...).
    #[error("invalid model configuration: {field} {problem}")]
    InvalidConfig {
        field: &'static str,
        problem: &'static str,
    },
    /// A training hyper-parameter is unusable.
    #[error("invalid training configuration: {field} {problem}")]
    InvalidTrainConfig {
        field: &'static str,
        problem: &'static str,
    },
    /// No sequences were given.
    #[error("no sequences given")]
    Empty,
    /// A sequence's length differs from the first sequence's (or is zero).
    #[error("sequence {index} has {got} timesteps, expected {expected}")]
    Timesteps {
        index: usize,
        expected: usize,
        got: usize,
    },
    /// A frame's width differs from the configured input dimension.
    #[error("sequence {index}, timestep {step}: {got} features, expected {expected}")]
    FeatureDim {
        index: usize,
        step: usize,
        expected: usize,
        got: usize,
    },
    /// A feature is NaN or infinite.
    #[error("sequence {index} contains a non-finite feature")]
    NonFiniteInput { index: usize },
    /// Labels or weights do not pair up with the sequences.
    #[error("{what}: {got} values for {expected} sequences")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A label outside `[0, 1]` or a negative/non-finite weight.
    #[error("{what} {index} is {value}, expected a value in {range}")]
    BadValue {
        what: &'static str,
        index: usize,
        value: f32,
        range: &'static str,
    },
    /// All sample weights are zero.
    #[error("sample weights sum to zero")]
    ZeroWeight,
    /// The training loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}: non-finite loss")]
    Diverged { epoch: usize },
    /// [`SeqClassifier::from_tensors`]: a tensor the configuration needs is absent.
    #[error("model tensor {name:?} is missing")]
    MissingTensor { name: String },
    /// [`SeqClassifier::from_tensors`]: a tensor the configuration does not have.
    #[error("unexpected model tensor {name:?}")]
    UnexpectedTensor { name: String },
    /// [`SeqClassifier::from_tensors`]: the same name twice.
    #[error("model tensor {name:?} appears twice")]
    DuplicateTensor { name: String },
    /// [`SeqClassifier::from_tensors`]: the shape differs from the configuration's.
    #[error("model tensor {name:?} has shape {got:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// [`SeqClassifier::from_tensors`]: the data length differs from the shape's.
    #[error("model tensor {name:?} holds {got} values, its shape needs {expected}")]
    TensorData {
        name: String,
        expected: usize,
        got: usize,
    },
    /// [`SeqClassifier::from_tensors`]: a NaN or infinite weight.
    #[error("model tensor {name:?} contains a non-finite value")]
    NonFiniteTensor { name: String },
}

/// The architecture. Stored in the model file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LstmConfig {
    /// `D`: features per timestep.
    pub input_dim: usize,
    /// `P`: width of the linear per-timestep projection in front of the LSTM stack, if any.
    pub projection: Option<usize>,
    /// Hidden size of each LSTM layer, bottom first.
    pub hidden: Vec<usize>,
    /// Dropout rate after every LSTM layer, at training time only.
    pub dropout: f32,
    /// `K`: width of the ReLU dense layer between the top LSTM state and the logit, if any.
    pub dense: Option<usize>,
}

impl LstmConfig {
    /// The paper's configuration: 4 LSTM layers of 32, 32, 16, 16 units, each followed by
    /// dropout 0.2, then Dense(4, ReLU) and Dense(1); no projection.
    pub fn paper(input_dim: usize) -> Self {
        Self {
            input_dim,
            projection: None,
            hidden: vec![32, 32, 16, 16],
            dropout: 0.2,
            dense: Some(4),
        }
    }

    /// The default for this project: a linear projection to 32 features, one LSTM layer of 16
    /// units, dropout 0.2 and Dense(8, ReLU).
    ///
    /// Chosen on the synthetic temporal-order task (448 features, 20 steps, 60 epochs, via
    /// `authnet-eval bench`; best validation loss with 450 / 120 training sequences, single-thread
    /// training seconds for both): `[16]` 0.0008 / 0.019, 1.2 s; `[32]` 0.0040 / 0.059, 1.9 s;
    /// `[16, 16]` 0.0012 / 0.057, 1.7 s; `[32, 16]` 0.0010 / 0.0065, 2.5 s. All reached 100%
    /// validation accuracy; one layer of 16 is as good as any, the fastest, and the smallest
    /// model to fit to a handful of genuine utterances per user. The synthetic task is easy,
    /// so this is a speed/size choice to revisit on the real data (`authnet-eval`).
    pub fn compact(input_dim: usize) -> Self {
        Self {
            input_dim,
            projection: Some(32),
            hidden: vec![16],
            dropout: 0.2,
            dense: Some(8),
        }
    }

    /// Checks every width against zero and the `MAX_*` limits, and the dropout rate.
    pub fn validate(&self) -> Result<(), LstmError> {
        let bad = |field, problem| Err(LstmError::InvalidConfig { field, problem });
        if self.input_dim == 0 || self.input_dim > MAX_WIDTH {
            return bad("input_dim", "must be in 1..=MAX_WIDTH");
        }
        if matches!(self.projection, Some(p) if p == 0 || p > MAX_WIDTH) {
            return bad("projection", "must be in 1..=MAX_WIDTH");
        }
        if matches!(self.dense, Some(k) if k == 0 || k > MAX_WIDTH) {
            return bad("dense", "must be in 1..=MAX_WIDTH");
        }
        if self.hidden.is_empty() || self.hidden.len() > MAX_LAYERS {
            return bad("hidden", "must list 1..=MAX_LAYERS layers");
        }
        if self.hidden.iter().any(|&h| h == 0 || h > MAX_HIDDEN) {
            return bad("hidden", "sizes must be in 1..=MAX_HIDDEN");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", "must be in [0, 1)");
        }
        Ok(())
    }

    /// Every parameter: name, shape and initialisation, in the stable order of
    /// [`SeqClassifier::tensors`].
    fn param_specs(&self) -> Vec<ParamSpec> {
        self.param_blocks().into_iter().flatten().collect()
    }

    /// Number of parameter blocks in the backbone: the projection (if any) and the LSTM layers.
    fn backbone_blocks(&self) -> usize {
        usize::from(self.projection.is_some()) + self.hidden.len()
    }

    /// Width of the backbone's output, the top LSTM state `h_T`.
    pub fn backbone_width(&self) -> usize {
        self.hidden.last().copied().unwrap_or(0)
    }

    /// The parameters grouped as stored: each group is one packed `[rows, cols]` matrix whose
    /// members are stacked by rows (a bias is one row). Order: projection, LSTM layers, dense,
    /// head.
    fn param_blocks(&self) -> Vec<Vec<ParamSpec>> {
        let mut blocks = Vec::new();
        let mut width = self.input_dim;
        if let Some(p) = self.projection {
            blocks.push(vec![
                ParamSpec::xavier("proj.weight", width, p),
                ParamSpec::zeros("proj.bias", p),
            ]);
            width = p;
        }
        for (l, &h) in self.hidden.iter().enumerate() {
            blocks.push(vec![
                ParamSpec::xavier(&format!("lstm.{l}.w_ih"), width, 4 * h),
                ParamSpec::xavier(&format!("lstm.{l}.w_hh"), h, 4 * h),
                ParamSpec {
                    name: format!("lstm.{l}.bias"),
                    shape: vec![4 * h],
                    init: Init::LstmBias { hidden: h },
                },
            ]);
            width = h;
        }
        if let Some(k) = self.dense {
            blocks.push(vec![
                ParamSpec::xavier("dense.weight", width, k),
                ParamSpec::zeros("dense.bias", k),
            ]);
            width = k;
        }
        blocks.push(vec![
            ParamSpec::xavier("head.weight", width, 1),
            ParamSpec::zeros("head.bias", 1),
        ]);
        blocks
    }
}

/// How a parameter starts.
#[derive(Debug, Clone, Copy)]
enum Init {
    /// Glorot/Xavier uniform: `U(-a, a)`, `a = sqrt(6 / (fan_in + fan_out))`.
    Xavier {
        fan_in: usize,
        fan_out: usize,
    },
    Zeros,
    /// Zeros except the forget-gate block, which is 1.0 (remember by default).
    LstmBias {
        hidden: usize,
    },
}

#[derive(Debug, Clone)]
struct ParamSpec {
    name: String,
    shape: Vec<usize>,
    init: Init,
}

impl ParamSpec {
    fn xavier(name: &str, fan_in: usize, fan_out: usize) -> Self {
        Self {
            name: name.to_owned(),
            shape: vec![fan_in, fan_out],
            init: Init::Xavier { fan_in, fan_out },
        }
    }

    fn zeros(name: &str, n: usize) -> Self {
        Self {
            name: name.to_owned(),
            shape: vec![n],
            init: Init::Zeros,
        }
    }

    fn len(&self) -> usize {
        self.shape.iter().product()
    }

    fn initial_values(&self, rng: &mut SplitMix64) -> Vec<f32> {
        match self.init {
            Init::Xavier { fan_in, fan_out } => {
                let a = (6.0 / (fan_in + fan_out) as f32).sqrt();
                (0..self.len())
                    .map(|_| (2.0 * rng.next_f32() - 1.0) * a)
                    .collect()
            }
            Init::Zeros => vec![0.0; self.len()],
            Init::LstmBias { hidden } => {
                let mut b = vec![0.0; 4 * hidden];
                b[hidden..2 * hidden].fill(1.0);
                b
            }
        }
    }
}

/// Training hyper-parameters. `Default` is the paper's (Adam, lr 1e-3, batch 75, 60 epochs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Adam learning rate.
    pub lr: f64,
    /// Sequences per gradient step.
    pub batch_size: usize,
    /// Upper bound on passes over the training set.
    pub max_epochs: usize,
    /// Early stopping: epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Decoupled weight decay (AdamW); 0 is plain Adam, as in the paper.
    pub weight_decay: f64,
    /// Seeds shuffling and dropout (mixed with the classifier's own seed).
    pub seed: u64,
    /// Train only the dense layer and the head; the backbone (projection and LSTM layers)
    /// keeps its weights and runs without dropout (for fine-tuning a pretrained backbone).
    pub freeze_backbone: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            batch_size: 75,
            max_epochs: 60,
            patience: 10,
            weight_decay: 0.0,
            seed: 0,
            freeze_backbone: false,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<(), LstmError> {
        let bad = |field, problem| Err(LstmError::InvalidTrainConfig { field, problem });
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "must be positive and finite");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", "must be non-negative and finite");
        }
        Ok(())
    }
}

/// What [`SeqClassifier::train`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Epochs actually run (early stopping may end before `max_epochs`).
    pub epochs_run: usize,
    /// 1-based epoch whose weights were kept (the last epoch without validation data).
    pub best_epoch: usize,
    /// Class-balanced validation loss of the kept weights; `None` without validation data.
    pub best_val_loss: Option<f32>,
    /// Weighted mean training loss of the last epoch run (with dropout).
    pub final_train_loss: f32,
    /// Wall-clock training time.
    pub seconds: f64,
}

/// What [`SeqClassifier::pretrain_multiclass`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainReport {
    /// Epochs actually run.
    pub epochs_run: usize,
    /// 1-based epoch whose weights were kept (the last epoch without validation data).
    pub best_epoch: usize,
    /// Validation cross-entropy of the kept weights; `None` without validation data.
    pub best_val_loss: Option<f32>,
    /// Validation top-1 accuracy of the kept weights.
    pub best_val_accuracy: Option<f32>,
    /// Mean training cross-entropy of the last epoch run (with dropout).
    pub final_train_loss: f32,
    /// Wall-clock time.
    pub seconds: f64,
}

/// One stored parameter matrix: its members (external tensors) stacked by rows.
#[derive(Debug)]
struct Block {
    members: Vec<ParamSpec>,
    /// `[sum of member rows, cols]`.
    var: Var,
    /// Rows of the first member (the weight matrix: `in` of a linear layer).
    input_dim: usize,
}

/// The sequence classifier: configuration, seed and parameters.
///
/// Every layer's parameters are one packed matrix (a linear layer `[in + 1, out]`: weight rows,
/// then the bias row; an LSTM layer `[in + H + 1, 4H]`: `W_ih`, `W_hh`, bias), one candle
/// [`Var`] each, in a fixed order, rather than a `candle_nn::VarMap` (a `HashMap` behind a
/// `Mutex`): the custom ops in the private `ops` module take them whole, and [`SeqClassifier::tensors`] and the
/// optimiser want a stable order. [`SeqClassifier::tensors`] unpacks them into the separately
/// named tensors of the model file.
#[derive(Debug)]
pub struct SeqClassifier {
    cfg: LstmConfig,
    seed: u64,
    /// Projection (if any), LSTM layers, dense (if any), head, in this order.
    blocks: Vec<Block>,
}

impl SeqClassifier {
    /// A freshly initialised classifier (Xavier-uniform weights from `seed`, forget-gate bias
    /// 1.0, other biases 0).
    pub fn new(cfg: LstmConfig, seed: u64) -> Result<Self, LstmError> {
        cfg.validate()?;
        let mut rng = SplitMix64::new(seed);
        let values = cfg
            .param_specs()
            .into_iter()
            .map(|s| {
                let v = s.initial_values(&mut rng);
                (s, v)
            })
            .collect();
        Self::assemble(cfg, seed, values)
    }

    /// Rebuilds a classifier from [`SeqClassifier::tensors`] output, checking that the names
    /// and shapes are exactly those `cfg` needs and that every value is finite.
    pub fn from_tensors(
        cfg: LstmConfig,
        t: &[(String, Vec<usize>, Vec<f32>)],
    ) -> Result<Self, LstmError> {
        cfg.validate()?;
        let values = match_specs(cfg.param_specs(), t)?;
        Self::assemble(cfg, 0, values)
    }

    /// A classifier whose projection and LSTM layers (the *backbone*: every tensor of
    /// [`SeqClassifier::backbone_tensors`], checked as [`SeqClassifier::from_tensors`] checks)
    /// come from `backbone`, and whose dense layer and head are freshly initialised from
    /// `seed`: the starting point for fine-tuning a pretrained backbone to one user.
    pub fn from_backbone(
        cfg: LstmConfig,
        backbone: &[(String, Vec<usize>, Vec<f32>)],
        seed: u64,
    ) -> Result<Self, LstmError> {
        cfg.validate()?;
        let n = cfg.backbone_blocks();
        let specs: Vec<ParamSpec> = cfg.param_blocks().into_iter().take(n).flatten().collect();
        let pretrained = match_specs(specs, backbone)?;
        let fresh = Self::new(cfg.clone(), seed)?;
        let mut values = pretrained;
        let head: Vec<(ParamSpec, Vec<f32>)> = cfg
            .param_specs()
            .into_iter()
            .zip(fresh.tensors())
            .skip(values.len())
            .map(|(spec, (_, _, v))| (spec, v))
            .collect();
        values.extend(head);
        Self::assemble(cfg, seed, values)
    }

    /// The backbone's tensors (projection and LSTM layers, without the dense layer and head),
    /// in [`SeqClassifier::tensors`] order.
    pub fn backbone_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let n: usize = self.cfg.param_blocks()[..self.cfg.backbone_blocks()]
            .iter()
            .map(Vec::len)
            .sum();
        self.tensors().into_iter().take(n).collect()
    }

    /// A copy of `base`'s weights with its own `seed` (which, mixed with
    /// [`TrainConfig::seed`], drives shuffling and dropout): pretrain once on the impostor
    /// bank, then fine-tune a copy per user.
    pub fn fine_tune_from(base: &SeqClassifier, seed: u64) -> Result<Self, LstmError> {
        let mut c = Self::from_tensors(base.cfg.clone(), &base.tensors())?;
        c.seed = seed;
        Ok(c)
    }

    /// The architecture.
    pub fn config(&self) -> &LstmConfig {
        &self.cfg
    }

    /// Every parameter as `(name, shape, row-major values)`, in a stable order (see the module
    /// documentation).
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = Vec::new();
        for block in &self.blocks {
            // Invariant: every var was created by `assemble` as a CPU f32 tensor, and
            // flattening a CPU f32 tensor to a Vec<f32> cannot fail.
            #[allow(clippy::expect_used)]
            let data = block
                .var
                .as_tensor()
                .flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .expect("CPU f32 parameter converts to Vec<f32>");
            let mut offset = 0;
            for m in &block.members {
                let end = offset + m.len();
                out.push((m.name.clone(), m.shape.clone(), data[offset..end].to_vec()));
                offset = end;
            }
        }
        out
    }

    /// The backbone's output per sequence, the top LSTM state `h_T`
    /// ([`LstmConfig::backbone_width`] values). No dropout.
    pub fn encode(&self, x: &[Sequence]) -> Result<Vec<Vec<f32>>, LstmError> {
        self.per_chunk(x, |h| h.to_vec2::<f32>())
    }

    /// One logit per sequence (`sigmoid(logit)` is the score). No dropout.
    ///
    /// Input: `x.len()` sequences of equal length `T`, frames of `input_dim` features.
    pub fn logits(&self, x: &[Sequence]) -> Result<Vec<f32>, LstmError> {
        self.per_chunk(x, |h| self.forward_head(h, false)?.to_vec1::<f32>())
    }

    /// Runs the backbone (no dropout) over `x` in chunks of [`EVAL_CHUNK`] sequences and
    /// collects what `then` makes of each chunk's top state `[B, H_L]`, in order.
    fn per_chunk<T>(
        &self,
        x: &[Sequence],
        then: impl Fn(Tensor) -> candle_core::Result<Vec<T>>,
    ) -> Result<Vec<T>, LstmError> {
        let steps = check_sequences(x, self.cfg.input_dim)?;
        let mut out = Vec::with_capacity(x.len());
        self.backbone_chunks(x, steps, |_, h| {
            out.extend(then(h)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The loop of [`Self::per_chunk`] and of the validation losses: the backbone (no dropout)
    /// over `x` (sequences of `steps` frames, already checked) in chunks of [`EVAL_CHUNK`],
    /// handing `each` the chunk's indices into `x` and its top state `[B, H_L]`, in order.
    fn backbone_chunks(
        &self,
        x: &[Sequence],
        steps: usize,
        mut each: impl FnMut(&[usize], Tensor) -> Result<(), LstmError>,
    ) -> Result<(), LstmError> {
        let idx: Vec<usize> = (0..x.len()).collect();
        for chunk in idx.chunks(EVAL_CHUNK) {
            let xb = batch_tensor(x, chunk, steps, self.cfg.input_dim)?;
            each(chunk, self.forward_backbone(&xb, steps, chunk.len(), None)?)?;
        }
        Ok(())
    }

    /// Trains with Adam on the numerically stable binary cross-entropy, in shuffled minibatches.
    ///
    /// - `y`: labels in `[0, 1]` (1 = genuine).
    /// - `weights`: optional per-sample loss weights (see [`balanced_weights`]); the loss of a
    ///   batch is `sum(w * l) / sum(w)`.
    /// - `val`: optional validation set. With it, the weights of the epoch with the lowest
    ///   class-balanced validation loss are kept, and training stops after `tc.patience` epochs
    ///   without improvement. Without it, all `tc.max_epochs` run and the final weights stay.
    ///
    /// Same classifier seed, same `tc` and same data give bit-identical weights.
    pub fn train(
        &mut self,
        x: &[Sequence],
        y: &[f32],
        weights: Option<&[f32]>,
        val: Option<(&[Sequence], &[f32])>,
        tc: &TrainConfig,
    ) -> Result<TrainReport, LstmError> {
        // The matrices here are small (batch 75, widths of tens): candle's gemm splitting them
        // across threads costs more than it saves (paper preset, 450 x 20 x 608, 60 epochs:
        // 5.8 s with 2 threads, 4.8 s with 1). Running inside a one-thread pool keeps the whole
        // training on this thread; results are identical (gemm never splits a reduction).
        on_one_thread(|| {
            let start = Instant::now();
            tc.validate()?;
            let d = self.cfg.input_dim;
            let steps = check_sequences(x, d)?;
            check_labels(y, x.len())?;
            let weights = match weights {
                Some(w) => check_weights(w, x.len())?.to_vec(),
                None => vec![1.0; x.len()],
            };
            let val = check_val(val, d, check_labels)?;

            let mut rng = self.train_rng(tc);
            let first_trained = if tc.freeze_backbone {
                self.cfg.backbone_blocks()
            } else {
                0
            };
            let vars = self.block_vars(first_trained..self.blocks.len());
            let this = &*self;
            let run = train_epochs(
                &vars,
                x.len(),
                tc,
                &mut rng,
                |chunk, rng| {
                    let wb: Vec<f32> = chunk.iter().map(|&i| weights[i]).collect();
                    let batch_weight: f32 = wb.iter().sum();
                    if batch_weight <= 0.0 {
                        return Ok(None); // nothing to learn from (all-zero weights in this batch)
                    }
                    let xb = batch_tensor(x, chunk, steps, d)?;
                    let yb = Tensor::new(chunk.iter().map(|&i| y[i]).collect::<Vec<_>>(), &CPU)?;
                    let wb = Tensor::new(wb, &CPU)?;
                    let z = if tc.freeze_backbone {
                        let h = this.forward_backbone(&xb, steps, chunk.len(), None)?;
                        this.forward_head(h, true)?
                    } else {
                        this.forward(&xb, steps, chunk.len(), Some(rng))?
                    };
                    let loss = bce_with_logits(&z, &yb, Some(&wb))?;
                    Ok(Some((loss, f64::from(batch_weight))))
                },
                || match val {
                    Some((vx, vy, vsteps)) => Ok(Some((this.balanced_loss(vx, vy, vsteps)?, ()))),
                    None => Ok(None),
                },
            )?;
            let (best_epoch, best_val_loss) = match run.best {
                Some((epoch, loss, ())) => (epoch, Some(loss)),
                None => (run.epochs_run, None),
            };
            Ok(TrainReport {
                epochs_run: run.epochs_run,
                best_epoch,
                best_val_loss,
                final_train_loss: run.final_train_loss,
                seconds: start.elapsed().as_secs_f64(),
            })
        })
    }

    /// The trainable variables of the blocks in `r` (backbone blocks first, then the head).
    fn block_vars(&self, r: std::ops::Range<usize>) -> Vec<Var> {
        self.blocks[r].iter().map(|b| b.var.clone()).collect()
    }

    /// The generator of a training run's shuffling and dropout: `tc.seed` mixed with the
    /// classifier's own seed.
    fn train_rng(&self, tc: &TrainConfig) -> SplitMix64 {
        SplitMix64::new(tc.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.seed)
    }

    /// Mean BCE where each class present weighs half, so that early stopping is not driven by
    /// the (usually much larger) impostor class alone.
    fn balanced_loss(&self, x: &[Sequence], y: &[f32], steps: usize) -> Result<f32, LstmError> {
        let w = balanced_weights(y);
        let (mut sum, mut wsum) = (0.0f64, 0.0f64);
        self.backbone_chunks(x, steps, |chunk, h| {
            let z = self.forward_head(h, false)?;
            let yb = Tensor::new(chunk.iter().map(|&i| y[i]).collect::<Vec<_>>(), &CPU)?;
            let wv: Vec<f32> = chunk.iter().map(|&i| w[i]).collect();
            let wsum_chunk: f32 = wv.iter().sum();
            let wb = Tensor::new(wv, &CPU)?;
            let l = bce_with_logits(&z, &yb, Some(&wb))?.to_scalar::<f32>()?;
            sum += f64::from(l) * f64::from(wsum_chunk);
            wsum += f64::from(wsum_chunk);
            Ok(())
        })?;
        Ok((sum / wsum.max(f64::MIN_POSITIVE)) as f32)
    }

    /// The network.
    ///
    /// - `x`: `[T*B, D]`, time-major (row `t*B + b` is timestep `t` of sequence `b`).
    /// - `dropout`: `Some(rng)` at training time (dropout masks drawn from `rng`, autograd
    ///   tracked); `None` for inference (detached parameters, no dropout).
    /// - Returns the logits, `[B]`.
    fn forward(
        &self,
        x: &Tensor,
        steps: usize,
        batch: usize,
        dropout: Option<&mut SplitMix64>,
    ) -> candle_core::Result<Tensor> {
        let train = dropout.is_some();
        let seq = self.forward_backbone(x, steps, batch, dropout)?;
        self.forward_head(seq, train)
    }

    /// The dense layer (if any) and the head on the backbone's output `[B, H_L]`; returns the
    /// logits `[B]`. `train`: track the parameters for autograd.
    fn forward_head(&self, mut seq: Tensor, train: bool) -> candle_core::Result<Tensor> {
        // Small: stock candle ops. [B, H_L] -> [B, K] (ReLU) -> [B, 1]
        for (i, block) in self.blocks[self.cfg.backbone_blocks()..].iter().enumerate() {
            let packed = param(block, train);
            let w = packed.narrow(0, 0, block.input_dim)?;
            let b = packed.narrow(0, block.input_dim, 1)?;
            seq = seq.matmul(&w)?.broadcast_add(&b)?;
            if i == 0 && self.cfg.dense.is_some() {
                seq = seq.relu()?;
            }
        }
        // [B, 1] -> [B]
        seq.squeeze(1)
    }

    /// The backbone: projection (if any) and the LSTM stack, with dropout after every layer at
    /// training time. `x`: `[T*B, D]` time-major; returns the top layer's last state `[B, H_L]`.
    fn forward_backbone(
        &self,
        x: &Tensor,
        steps: usize,
        batch: usize,
        mut dropout: Option<&mut SplitMix64>,
    ) -> candle_core::Result<Tensor> {
        let train = dropout.is_some();
        let mut blocks = self.blocks.iter();
        let mut seq = x.clone();
        // Whether `seq` depends on parameters (and so needs a gradient).
        let mut seq_tracked = false;
        if self.cfg.projection.is_some() {
            if let Some(proj) = blocks.next() {
                // [T*B, D] -> [T*B, P]
                let op = ops::DataLinear::new(seq);
                seq = if train {
                    param(proj, train).apply_op1(op)?
                } else {
                    param(proj, train).apply_op1_no_bwd(&op)?
                };
                seq_tracked = true;
            }
        }
        for (l, &hidden) in self.cfg.hidden.iter().enumerate() {
            let Some(layer) = blocks.next() else { break };
            let op =
                ops::LstmLayerOp::new(steps, batch, layer.input_dim, hidden, train && seq_tracked);
            // [T*B, in] -> [T*B, H]
            let hs = if train {
                seq.apply_op2(&param(layer, train), op)?
            } else {
                seq.apply_op2_no_bwd(&param(layer, train), &op)?
            };
            seq_tracked = true;
            seq = if l + 1 == self.cfg.hidden.len() {
                // Only h_T of the top layer is used: [B, H].
                hs.narrow(0, (steps - 1) * batch, batch)?
            } else {
                hs
            };
            if let Some(rng) = dropout.as_deref_mut() {
                if self.cfg.dropout > 0.0 {
                    seq = apply_dropout(&seq, self.cfg.dropout, rng)?;
                }
            }
        }
        Ok(seq)
    }

    /// Pretrains the backbone across many speakers: a temporary softmax layer over `classes`
    /// classes (one per speaker x utterance) on the top LSTM state `h_T`, trained with Adam on
    /// the mean cross-entropy in shuffled minibatches, early-stopped on the validation
    /// cross-entropy (the best epoch's weights are kept). The dense layer and the binary head
    /// are not trained (fine-tuning replaces them, [`SeqClassifier::from_backbone`]).
    ///
    /// - `labels[i]` in `0..classes` is the class of `x[i]`; same for `val`.
    /// - Same classifier seed, same `tc` and same data give bit-identical weights.
    pub fn pretrain_multiclass(
        &mut self,
        x: &[Sequence],
        labels: &[usize],
        classes: usize,
        val: Option<(&[Sequence], &[usize])>,
        tc: &TrainConfig,
    ) -> Result<PretrainReport, LstmError> {
        // One thread, as in `train` (small matrices; identical results).
        on_one_thread(|| {
            let start = Instant::now();
            tc.validate()?;
            if !(2..=MAX_WIDTH).contains(&classes) {
                return Err(LstmError::InvalidTrainConfig {
                    field: "classes",
                    problem: "must be in 2..=MAX_WIDTH",
                });
            }
            let d = self.cfg.input_dim;
            let steps = check_sequences(x, d)?;
            check_classes(labels, x.len(), classes)?;
            let val = check_val(val, d, |vy, n| check_classes(vy, n, classes))?;
            let mut rng = self.train_rng(tc);
            // The softmax layer `[H_L + 1, C]`: weight rows, then the bias row.
            let width = self.cfg.backbone_width();
            let a = (6.0 / (width + classes) as f32).sqrt();
            let mut w: Vec<f32> = (0..width * classes)
                .map(|_| (2.0 * rng.next_f32() - 1.0) * a)
                .collect();
            w.extend(std::iter::repeat_n(0.0, classes));
            let softmax = Var::from_tensor(&Tensor::from_vec(w, (width + 1, classes), &CPU)?)?;
            let mut vars = self.block_vars(0..self.cfg.backbone_blocks());
            vars.push(softmax.clone());
            let this = &*self;
            let run = train_epochs(
                &vars,
                x.len(),
                tc,
                &mut rng,
                |chunk, rng| {
                    let xb = batch_tensor(x, chunk, steps, d)?;
                    let yb = one_hot(chunk.iter().map(|&i| labels[i]), classes)?;
                    let h = this.forward_backbone(&xb, steps, chunk.len(), Some(rng))?;
                    let loss = softmax_cross_entropy(&h, softmax.as_tensor(), &yb)?;
                    Ok(Some((loss, chunk.len() as f64)))
                },
                || match val {
                    Some((vx, vy, vsteps)) => this
                        .multiclass_loss(vx, vy, vsteps, &softmax, classes)
                        .map(Some),
                    None => Ok(None),
                },
            )?;
            let (best_epoch, best_val_loss, best_val_accuracy) = match run.best {
                Some((epoch, loss, acc)) => (epoch, Some(loss), Some(acc)),
                None => (run.epochs_run, None, None),
            };
            Ok(PretrainReport {
                epochs_run: run.epochs_run,
                best_epoch,
                best_val_loss,
                best_val_accuracy,
                final_train_loss: run.final_train_loss,
                seconds: start.elapsed().as_secs_f64(),
            })
        })
    }

    /// Mean cross-entropy and top-1 accuracy of the softmax layer on `x` (no dropout).
    fn multiclass_loss(
        &self,
        x: &[Sequence],
        y: &[usize],
        steps: usize,
        softmax: &Var,
        classes: usize,
    ) -> Result<(f32, f32), LstmError> {
        let (mut sum, mut correct) = (0.0f64, 0usize);
        let w = softmax.as_detached_tensor();
        self.backbone_chunks(x, steps, |chunk, h| {
            let yb = one_hot(chunk.iter().map(|&i| y[i]), classes)?;
            let l = softmax_cross_entropy(&h, &w, &yb)?.to_scalar::<f32>()?;
            sum += f64::from(l) * chunk.len() as f64;
            let z = class_logits(&h, &w)?.argmax(1)?.to_vec1::<u32>()?;
            correct += chunk
                .iter()
                .zip(z)
                .filter(|(&i, k)| y[i] == *k as usize)
                .count();
            Ok(())
        })?;
        let n = x.len().max(1) as f64;
        Ok(((sum / n) as f32, (correct as f64 / n) as f32))
    }

    /// Packs `values` (one per spec, in [`LstmConfig::param_specs`] order, lengths already
    /// checked) into the blocks' vars.
    fn assemble(
        cfg: LstmConfig,
        seed: u64,
        values: Vec<(ParamSpec, Vec<f32>)>,
    ) -> Result<Self, LstmError> {
        let mut values = values.into_iter();
        let mut blocks = Vec::new();
        for members in cfg.param_blocks() {
            // Every block has at least one member, a weight matrix `[in, cols]`.
            let cols = members[0].shape.last().copied().unwrap_or(1);
            let mut data = Vec::with_capacity(members.iter().map(ParamSpec::len).sum());
            for m in &members {
                match values.next() {
                    Some((spec, v)) if spec.name == m.name && v.len() == m.len() => data.extend(v),
                    _ => {
                        return Err(LstmError::MissingTensor {
                            name: m.name.clone(),
                        })
                    }
                }
            }
            let rows = data.len() / cols;
            let t = Tensor::from_vec(data, (rows, cols), &CPU)?;
            blocks.push(Block {
                input_dim: members[0].shape[0],
                members,
                var: Var::from_tensor(&t)?,
            });
        }
        Ok(Self { cfg, seed, blocks })
    }
}

/// What [`train_epochs`] ran and kept.
struct EpochsRun<V> {
    /// Epochs actually run.
    epochs_run: usize,
    /// Mean training loss of the last epoch run (each minibatch weighted as its step said).
    final_train_loss: f32,
    /// `(epoch, validation loss, what else validation said)` of the epoch whose weights were
    /// kept; `None` without validation data (the final weights stay).
    best: Option<(usize, f32, V)>,
}

/// The training loop of [`SeqClassifier::train`] and [`SeqClassifier::pretrain_multiclass`]:
/// Adam on `vars` for up to `tc.max_epochs` epochs, each a pass over `0..n` shuffled by `rng`,
/// in minibatches of `tc.batch_size` indices.
///
/// - `step(batch, rng)`: the minibatch's loss and its weight in the epoch's mean training loss,
///   or `None` when there is nothing to learn from it (skipped). A non-finite loss fails with
///   [`LstmError::Diverged`].
/// - `validate()`, after each epoch: the validation loss and anything else to report of that
///   epoch, or `None` without validation data. With it, the weights of the epoch with the
///   lowest validation loss are put back into `vars` at the end, and training stops after
///   `tc.patience` epochs without improvement.
fn train_epochs<V>(
    vars: &[Var],
    n: usize,
    tc: &TrainConfig,
    rng: &mut SplitMix64,
    mut step: impl FnMut(&[usize], &mut SplitMix64) -> Result<Option<(Tensor, f64)>, LstmError>,
    mut validate: impl FnMut() -> Result<Option<(f32, V)>, LstmError>,
) -> Result<EpochsRun<V>, LstmError> {
    let mut opt = AdamW::new(
        vars.to_vec(),
        ParamsAdamW {
            lr: tc.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7, // Keras' Adam default, as in the authors' model.
            weight_decay: tc.weight_decay,
        },
    )?;
    let mut order: Vec<usize> = (0..n).collect();
    let mut best: Option<(usize, f32, V, Vec<Tensor>)> = None;
    let (mut epochs_run, mut final_train_loss) = (0, f32::NAN);
    for epoch in 1..=tc.max_epochs {
        epochs_run = epoch;
        rng.shuffle(&mut order);
        let (mut loss_sum, mut weight_sum) = (0.0f64, 0.0f64);
        for chunk in order.chunks(tc.batch_size) {
            let Some((loss, weight)) = step(chunk, rng)? else {
                continue;
            };
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(LstmError::Diverged { epoch });
            }
            opt.backward_step(&loss)?;
            loss_sum += f64::from(value) * weight;
            weight_sum += weight;
        }
        final_train_loss = (loss_sum / weight_sum.max(f64::MIN_POSITIVE)) as f32;

        let Some((vl, extra)) = validate()? else {
            continue;
        };
        if best.as_ref().is_none_or(|(_, b, _, _)| vl < *b) {
            let snapshot = vars
                .iter()
                .map(|v| v.as_tensor().copy())
                .collect::<Result<Vec<_>, _>>()?;
            best = Some((epoch, vl, extra, snapshot));
        }
        if let Some((best_epoch, _, _, _)) = &best {
            if epoch - best_epoch >= tc.patience {
                break;
            }
        }
    }
    let best = match best {
        Some((epoch, loss, extra, snapshot)) => {
            for (var, t) in vars.iter().zip(&snapshot) {
                var.set(t)?;
            }
            Some((epoch, loss, extra))
        }
        None => None,
    };
    Ok(EpochsRun {
        epochs_run,
        final_train_loss,
        best,
    })
}

/// A block's packed parameters: tracked by autograd at training time, detached otherwise.
fn param(b: &Block, train: bool) -> Tensor {
    if train {
        b.var.as_tensor().clone()
    } else {
        b.var.as_detached_tensor()
    }
}

/// `h [B, H] x w[..H] + w[H]`: the class logits `[B, C]` of a packed softmax layer
/// `[H + 1, C]`.
fn class_logits(h: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let width = h.dim(1)?;
    let weight = w.narrow(0, 0, width)?;
    let bias = w.narrow(0, width, 1)?;
    h.matmul(&weight)?.broadcast_add(&bias)
}

/// Mean softmax cross-entropy of the class logits of `h` (`[B, H]`, packed layer `w`
/// `[H + 1, C]`) against one-hot targets `y` (`[B, C]`); a scalar.
fn softmax_cross_entropy(h: &Tensor, w: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let z = class_logits(h, w)?;
    let log_p = candle_nn::ops::log_softmax(&z, 1)?;
    (log_p * y)?.sum_all()?.neg()? / h.dim(0)? as f64
}

/// One-hot rows `[B, C]` of the class indices (already checked to be `< classes`).
fn one_hot(labels: impl Iterator<Item = usize>, classes: usize) -> candle_core::Result<Tensor> {
    let mut data = Vec::new();
    let mut rows = 0;
    for k in labels {
        let mut row = vec![0.0f32; classes];
        row[k] = 1.0;
        data.extend(row);
        rows += 1;
    }
    Tensor::from_vec(data, (rows, classes), &CPU)
}

fn check_classes(y: &[usize], n: usize, classes: usize) -> Result<(), LstmError> {
    if y.len() != n {
        return Err(LstmError::LengthMismatch {
            what: "labels",
            expected: n,
            got: y.len(),
        });
    }
    match y.iter().position(|&k| k >= classes) {
        Some(index) => Err(LstmError::BadValue {
            what: "class",
            index,
            value: y[index] as f32,
            range: "0..classes",
        }),
        None => Ok(()),
    }
}

/// A validation set with its sequence length.
type CheckedVal<'a, L> = Option<(&'a [Sequence], &'a [L], usize)>;

/// Checks the optional validation set `val`: its sequences (of `d` features) as
/// [`check_sequences`] does and its labels with `check_labels(labels, n)`.
fn check_val<'a, L>(
    val: Option<(&'a [Sequence], &'a [L])>,
    d: usize,
    check_labels: impl Fn(&[L], usize) -> Result<(), LstmError>,
) -> Result<CheckedVal<'a, L>, LstmError> {
    val.map(|(vx, vy)| {
        let vsteps = check_sequences(vx, d)?;
        check_labels(vy, vx.len())?;
        Ok((vx, vy, vsteps))
    })
    .transpose()
}

/// Checks `t` against `specs` (exactly these names, each once, with their shapes, lengths and
/// finite values) and returns the values in `specs` order.
fn match_specs(
    specs: Vec<ParamSpec>,
    t: &[(String, Vec<usize>, Vec<f32>)],
) -> Result<Vec<(ParamSpec, Vec<f32>)>, LstmError> {
    for (i, (name, _, _)) in t.iter().enumerate() {
        if !specs.iter().any(|s| &s.name == name) {
            return Err(LstmError::UnexpectedTensor { name: name.clone() });
        }
        if t[..i].iter().any(|(n, _, _)| n == name) {
            return Err(LstmError::DuplicateTensor { name: name.clone() });
        }
    }
    let mut values = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some((_, shape, data)) = t.iter().find(|(n, _, _)| *n == spec.name) else {
            return Err(LstmError::MissingTensor { name: spec.name });
        };
        if *shape != spec.shape {
            return Err(LstmError::TensorShape {
                name: spec.name,
                expected: spec.shape,
                got: shape.clone(),
            });
        }
        if data.len() != spec.len() {
            return Err(LstmError::TensorData {
                expected: spec.len(),
                name: spec.name,
                got: data.len(),
            });
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(LstmError::NonFiniteTensor { name: spec.name });
        }
        values.push((spec, data.clone()));
    }
    Ok(values)
}

const CPU: Device = Device::Cpu;

/// Numerically stable binary cross-entropy on logits, per element
/// `max(z, 0) - z*y + ln(1 + exp(-|z|))`, averaged (weighted by `w` if given:
/// `sum(w * l) / sum(w)`).
///
/// Shapes: `z`, `y`, `w` all `[B]`; returns a scalar.
pub fn bce_with_logits(z: &Tensor, y: &Tensor, w: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let per_sample = ((z.relu()? - (z * y)?)? + z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
    match w {
        Some(w) => (per_sample * w)?.sum_all()? / w.sum_all()?.to_scalar::<f32>()? as f64,
        None => per_sample.mean_all(),
    }
}

/// Per-sample weights that give each class present the same total weight (`n / (2 * n_class)`),
/// for the `weights` argument of [`SeqClassifier::train`] when genuine samples are few.
pub fn balanced_weights(y: &[f32]) -> Vec<f32> {
    let n = y.len() as f32;
    let n_pos = y.iter().filter(|&&v| v >= 0.5).count() as f32;
    let n_neg = n - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return vec![1.0; y.len()];
    }
    y.iter()
        .map(|&v| {
            if v >= 0.5 {
                n / (2.0 * n_pos)
            } else {
                n / (2.0 * n_neg)
            }
        })
        .collect()
}

/// Inverted dropout: zeroes each element with probability `rate` and scales the rest by
/// `1 / (1 - rate)`; the mask comes from `rng`.
fn apply_dropout(x: &Tensor, rate: f32, rng: &mut SplitMix64) -> candle_core::Result<Tensor> {
    let keep = 1.0 / (1.0 - rate);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.next_f32() < rate { 0.0 } else { keep })
        .collect();
    x * Tensor::from_vec(mask, x.shape(), &CPU)?
}

/// Checks that `x` is non-empty, every sequence has the first one's (non-zero) length and every
/// frame has `d` finite features. Returns `T`.
fn check_sequences(x: &[Sequence], d: usize) -> Result<usize, LstmError> {
    let steps = x.first().ok_or(LstmError::Empty)?.len();
    for (index, s) in x.iter().enumerate() {
        if s.len() != steps || steps == 0 {
            return Err(LstmError::Timesteps {
                index,
                expected: steps.max(1),
                got: s.len(),
            });
        }
        for (step, f) in s.iter().enumerate() {
            if f.len() != d {
                return Err(LstmError::FeatureDim {
                    index,
                    step,
                    expected: d,
                    got: f.len(),
                });
            }
            if f.iter().any(|v| !v.is_finite()) {
                return Err(LstmError::NonFiniteInput { index });
            }
        }
    }
    Ok(steps)
}

fn check_labels(y: &[f32], n: usize) -> Result<(), LstmError> {
    if y.len() != n {
        return Err(LstmError::LengthMismatch {
            what: "labels",
            expected: n,
            got: y.len(),
        });
    }
    match y.iter().position(|v| !(0.0..=1.0).contains(v)) {
        Some(index) => Err(LstmError::BadValue {
            what: "label",
            index,
            value: y[index],
            range: "[0, 1]",
        }),
        None => Ok(()),
    }
}

fn check_weights(w: &[f32], n: usize) -> Result<&[f32], LstmError> {
    if w.len() != n {
        return Err(LstmError::LengthMismatch {
            what: "weights",
            expected: n,
            got: w.len(),
        });
    }
    if let Some(index) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(LstmError::BadValue {
            what: "weight",
            index,
            value: w[index],
            range: "[0, inf)",
        });
    }
    if w.iter().sum::<f32>() <= 0.0 {
        return Err(LstmError::ZeroWeight);
    }
    Ok(w)
}

/// The sequences `idx` of `x` as one time-major tensor `[T*B, D]` (row `t*B + b` is timestep
/// `t` of sequence `idx[b]`), so that timestep `t` is the contiguous row block `t*B..(t+1)*B`.
fn batch_tensor(
    x: &[Sequence],
    idx: &[usize],
    steps: usize,
    d: usize,
) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(steps * idx.len() * d);
    // `check_sequences` made every sequence exactly `steps` long.
    (0..steps).for_each(|t| idx.iter().for_each(|&i| data.extend_from_slice(&x[i][t])));
    Tensor::from_vec(data, (steps * idx.len(), d), &CPU)
}

/// A task that only a temporal model can solve, for tests and benchmarks: every sequence is a
/// random base frame plus a linear ramp along one fixed direction plus noise; label 1 sequences
/// ramp up, label 0 sequences are the same frames in reverse order (so the set of frames says
/// nothing about the label). Frames have roughly unit norm, like the real features. Labels
/// alternate 0, 1, 0, ...
pub fn synthetic_order_task(
    n: usize,
    steps: usize,
    d: usize,
    seed: u64,
) -> (Vec<Sequence>, Vec<f32>) {
    let mut rng = SplitMix64::new(seed);
    let scale = 1.0 / (d.max(1) as f32).sqrt();
    let dir: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
    let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    let dir: Vec<f32> = dir.iter().map(|v| v / norm).collect();
    let mut xs = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as f32;
        let base: Vec<f32> = (0..d).map(|_| rng.normal() * scale).collect();
        let amplitude = 0.2 + 0.4 * rng.next_f32();
        let mut frames: Sequence = (0..steps)
            .map(|s| {
                let pos = 2.0 * s as f32 / (steps.max(2) - 1) as f32 - 1.0;
                (0..d)
                    .map(|j| base[j] + amplitude * pos * dir[j] + 0.5 * scale * rng.normal())
                    .collect()
            })
            .collect();
        if label == 0.0 {
            frames.reverse();
        }
        xs.push(frames);
        ys.push(label);
    }
    (xs, ys)
}

/// Runs `f` inside a one-thread rayon pool, so that candle's gemm keeps the work on this thread
/// (see [`SeqClassifier::train`]); on the calling thread directly if no pool can be built.
fn on_one_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn small_cfg(d: usize) -> LstmConfig {
        LstmConfig {
            input_dim: d,
            projection: Some(8),
            hidden: vec![8],
            dropout: 0.1,
            dense: Some(4),
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn shapes_and_tensor_names() {
        let m = SeqClassifier::new(LstmConfig::paper(20), 3).unwrap();
        let t = m.tensors();
        let got: Vec<(&str, &[usize])> = t
            .iter()
            .map(|(n, s, _)| (n.as_str(), s.as_slice()))
            .collect();
        let want: Vec<(&str, &[usize])> = vec![
            ("lstm.0.w_ih", &[20, 128]),
            ("lstm.0.w_hh", &[32, 128]),
            ("lstm.0.bias", &[128]),
            ("lstm.1.w_ih", &[32, 128]),
            ("lstm.1.w_hh", &[32, 128]),
            ("lstm.1.bias", &[128]),
            ("lstm.2.w_ih", &[32, 64]),
            ("lstm.2.w_hh", &[16, 64]),
            ("lstm.2.bias", &[64]),
            ("lstm.3.w_ih", &[16, 64]),
            ("lstm.3.w_hh", &[16, 64]),
            ("lstm.3.bias", &[64]),
            ("dense.weight", &[16, 4]),
            ("dense.bias", &[4]),
            ("head.weight", &[4, 1]),
            ("head.bias", &[1]),
        ];
        assert_eq!(got, want);
        // Forget-gate bias starts at 1, the other gates at 0.
        let bias = &t[2].2;
        assert!(bias[32..64].iter().all(|&b| b == 1.0));
        assert!(bias[..32].iter().chain(&bias[64..]).all(|&b| b == 0.0));

        let (x, _) = synthetic_order_task(7, 5, 20, 1);
        let z = m.logits(&x).unwrap();
        assert_eq!(z.len(), 7);
        assert!(z.iter().all(|v| v.is_finite()));
        // Scoring is per sequence: a batch gives the same logits as one at a time.
        for (s, zi) in x.iter().zip(&z) {
            let one = m.logits(std::slice::from_ref(s)).unwrap();
            assert!((one[0] - zi).abs() < 1e-5, "{} vs {zi}", one[0]);
        }

        let c = SeqClassifier::new(LstmConfig::compact(20), 3).unwrap();
        assert_eq!(c.tensors()[0].1, vec![20, 32]);
        assert_eq!(c.logits(&x).unwrap().len(), 7);
    }

    #[test]
    fn rejects_bad_inputs_and_configs() {
        let m = SeqClassifier::new(small_cfg(4), 0).unwrap();
        let ok = vec![vec![0.0f32; 4]; 3];
        assert!(matches!(m.logits(&[]), Err(LstmError::Empty)));
        assert!(matches!(
            m.logits(&[ok.clone(), vec![vec![0.0; 4]; 2]]),
            Err(LstmError::Timesteps {
                index: 1,
                expected: 3,
                got: 2
            })
        ));
        assert!(matches!(
            m.logits(&[vec![vec![0.0; 4], vec![0.0; 5], vec![0.0; 4]]]),
            Err(LstmError::FeatureDim {
                index: 0,
                step: 1,
                expected: 4,
                got: 5
            })
        ));
        assert!(matches!(
            m.logits(&[vec![vec![f32::NAN; 4]; 3]]),
            Err(LstmError::NonFiniteInput { index: 0 })
        ));
        let mut m = m;
        let tc = TrainConfig::default();
        assert!(matches!(
            m.train(std::slice::from_ref(&ok), &[2.0], None, None, &tc),
            Err(LstmError::BadValue { what: "label", .. })
        ));
        assert!(matches!(
            m.train(std::slice::from_ref(&ok), &[1.0, 0.0], None, None, &tc),
            Err(LstmError::LengthMismatch { what: "labels", .. })
        ));
        assert!(matches!(
            m.train(std::slice::from_ref(&ok), &[1.0], Some(&[0.0]), None, &tc),
            Err(LstmError::ZeroWeight)
        ));
        let bad_tc = TrainConfig {
            batch_size: 0,
            ..TrainConfig::default()
        };
        assert!(matches!(
            m.train(&[ok], &[1.0], None, None, &bad_tc),
            Err(LstmError::InvalidTrainConfig {
                field: "batch_size",
                ..
            })
        ));
        for cfg in [
            LstmConfig {
                hidden: vec![],
                ..small_cfg(4)
            },
            LstmConfig {
                hidden: vec![8, 0],
                ..small_cfg(4)
            },
            LstmConfig {
                dropout: 1.0,
                ..small_cfg(4)
            },
            LstmConfig {
                projection: Some(0),
                ..small_cfg(4)
            },
            LstmConfig {
                input_dim: 0,
                ..small_cfg(4)
            },
        ] {
            assert!(matches!(
                SeqClassifier::new(cfg, 0),
                Err(LstmError::InvalidConfig { .. })
            ));
        }
    }

    #[test]
    fn bce_matches_direct_formula() {
        let zs = [-50.0f32, -3.0, -0.5, 0.0, 0.7, 4.0, 50.0];
        for y in [0.0f32, 1.0, 0.3] {
            let zt = Tensor::new(&zs[..], &CPU).unwrap();
            let yt = Tensor::new(vec![y; zs.len()], &CPU).unwrap();
            let got = bce_with_logits(&zt, &yt, None)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            // -y ln σ(z) - (1-y) ln(1 - σ(z)), with ln σ(z) = -ln(1 + e^-z) and
            // ln(1 - σ(z)) = -z - ln(1 + e^-z), in f64.
            let direct: f64 = zs
                .iter()
                .map(|&z| {
                    let (z, y) = (f64::from(z), f64::from(y));
                    let sp = (-z).exp().ln_1p();
                    y * sp + (1.0 - y) * (z + sp)
                })
                .sum::<f64>()
                / zs.len() as f64;
            assert!(got.is_finite());
            assert!(
                (f64::from(got) - direct).abs() < 1e-5 * direct.max(1.0),
                "y={y}: {got} vs {direct}"
            );
        }
        // Single hand values: z = 0 gives ln 2 for any label; |z| = 50 on the wrong side gives 50.
        let one = |z: f32, y: f32| {
            bce_with_logits(
                &Tensor::new(&[z], &CPU).unwrap(),
                &Tensor::new(&[y], &CPU).unwrap(),
                None,
            )
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
        };
        assert!((one(0.0, 1.0) - std::f32::consts::LN_2).abs() < 1e-7);
        assert_eq!(one(50.0, 0.0), 50.0);
        assert_eq!(one(-50.0, 1.0), 50.0);
        assert_eq!(one(50.0, 1.0), 0.0);

        // Weighted: sum(w l) / sum(w), and the gradient stays finite at |z| = 50.
        let z = Var::new(&[50.0f32, -50.0, 1.0], &CPU).unwrap();
        let y = Tensor::new(&[0.0f32, 0.0, 1.0], &CPU).unwrap();
        let w = Tensor::new(&[1.0f32, 2.0, 3.0], &CPU).unwrap();
        let l = bce_with_logits(z.as_tensor(), &y, Some(&w)).unwrap();
        let want = (50.0 + 2.0 * (50f64.exp().ln_1p() - 50.0) + 3.0 * (-1f64).exp().ln_1p()) / 6.0;
        assert!((f64::from(l.to_scalar::<f32>().unwrap()) - want).abs() < 1e-5);
        let g = ops::tests::grad_of(&z, &l.backward().unwrap());
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        // d/dz = w (σ(z) - y) / sum(w)
        assert!((g[0] - 1.0 / 6.0).abs() < 1e-6);
        assert!(g[1].abs() < 1e-6);
    }

    fn train_small(init_seed: u64, train_seed: u64) -> (SeqClassifier, TrainReport, Vec<f32>) {
        let (x, y) = synthetic_order_task(260, 8, 16, 5);
        let (x, vx) = x.split_at(200);
        let (y, vy) = y.split_at(200);
        let mut m = SeqClassifier::new(small_cfg(16), init_seed).unwrap();
        let tc = TrainConfig {
            lr: 1e-2,
            batch_size: 50,
            max_epochs: 12,
            patience: 4,
            seed: train_seed,
            ..TrainConfig::default()
        };
        let r = m.train(x, y, None, Some((vx, vy)), &tc).unwrap();
        let z = m.logits(vx).unwrap();
        (m, r, z)
    }

    #[test]
    fn learns_temporal_order() {
        // Training and validation sequences come from one draw: the ramp direction is per draw.
        let (x, y) = synthetic_order_task(400, 8, 16, 21);
        let (x, vx) = x.split_at(300);
        let (y, vy) = y.split_at(300);
        let mut m = SeqClassifier::new(small_cfg(16), 2).unwrap();
        let before = m.balanced_loss(vx, vy, 8).unwrap();
        let tc = TrainConfig {
            lr: 1e-2,
            batch_size: 50,
            max_epochs: 40,
            patience: 8,
            seed: 4,
            ..TrainConfig::default()
        };
        let r = m.train(x, y, None, Some((vx, vy)), &tc).unwrap();
        let z = m.logits(vx).unwrap();
        let acc = z
            .iter()
            .zip(vy)
            .filter(|(z, y)| (**z > 0.0) == (**y > 0.5))
            .count() as f32
            / vy.len() as f32;
        assert!(acc >= 0.95, "validation accuracy {acc}, report {r:?}");
        // Early stopping kept the best epoch's weights: recomputing the validation loss gives
        // exactly the reported best.
        let best = r.best_val_loss.unwrap();
        assert_eq!(m.balanced_loss(vx, vy, 8).unwrap(), best);
        assert!(best < before);
        assert!(r.best_epoch >= 1 && r.best_epoch <= r.epochs_run);
        assert!(r.epochs_run <= 40 && r.final_train_loss.is_finite());
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let (_, r1, z1) = train_small(1, 2);
        let (_, r2, z2) = train_small(1, 2);
        assert_eq!(bits(&z1), bits(&z2));
        assert_eq!(
            r1.best_val_loss.map(f32::to_bits),
            r2.best_val_loss.map(f32::to_bits)
        );
        assert_eq!(r1.epochs_run, r2.epochs_run);
        let (_, _, z3) = train_small(1, 3);
        assert_ne!(
            bits(&z1),
            bits(&z3),
            "another training seed must change the model"
        );
        let (_, _, z4) = train_small(9, 2);
        assert_ne!(
            bits(&z1),
            bits(&z4),
            "another init seed must change the model"
        );
    }

    /// Child half of `logits_do_not_depend_on_thread_count`: trains with large enough matrices
    /// for `gemm` to use several threads and prints the logits' bit patterns.
    #[test]
    #[ignore = "run by logits_do_not_depend_on_thread_count in a child process"]
    fn child_print_logit_bits() {
        let (x, y) = synthetic_order_task(150, 10, 256, 8);
        let mut m = SeqClassifier::new(LstmConfig::paper(256), 1).unwrap();
        let tc = TrainConfig {
            max_epochs: 3,
            ..TrainConfig::default()
        };
        m.train(&x, &y, None, None, &tc).unwrap();
        let z = m.logits(&x).unwrap();
        let hex: Vec<String> = z.iter().map(|v| format!("{:08x}", v.to_bits())).collect();
        println!("\nLOGIT-BITS {}", hex.join(","));
    }

    #[test]
    fn logits_do_not_depend_on_thread_count() {
        let name = format!(
            "{}::child_print_logit_bits",
            module_path!()
                .split_once("::")
                .map_or(module_path!(), |(_, rest)| rest)
        );
        let run = |threads: &str| -> String {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([name.as_str(), "--exact", "--ignored", "--nocapture"])
                .args(["--test-threads", "1"])
                .env("RAYON_NUM_THREADS", threads)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "child failed: {stdout}");
            stdout
                .lines()
                .find_map(|l| {
                    l.split_once("LOGIT-BITS ")
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("no logits in child output: {stdout}"))
        };
        let one = run("1");
        assert_eq!(one.split(',').count(), 150);
        assert_eq!(one, run("2"));
        assert_eq!(one, run("4"));
    }

    #[test]
    fn tensors_round_trip_and_wrong_tensors_are_refused() {
        let (m, _, _) = train_small(1, 2);
        let (vx, _) = synthetic_order_task(20, 8, 16, 6);
        let z = m.logits(&vx).unwrap();
        let t = m.tensors();
        let back = SeqClassifier::from_tensors(m.config().clone(), &t).unwrap();
        assert_eq!(bits(&back.logits(&vx).unwrap()), bits(&z));
        let tuned = SeqClassifier::fine_tune_from(&m, 77).unwrap();
        assert_eq!(bits(&tuned.logits(&vx).unwrap()), bits(&z));
        assert_eq!(tuned.config(), m.config());

        let cfg = m.config().clone();
        let mut wrong_shape = t.clone();
        wrong_shape[0].1 = vec![8, 16];
        assert!(matches!(
            SeqClassifier::from_tensors(cfg.clone(), &wrong_shape),
            Err(LstmError::TensorShape { ref name, .. }) if name == "proj.weight"
        ));
        let mut short = t.clone();
        short[1].2.pop();
        assert!(matches!(
            SeqClassifier::from_tensors(cfg.clone(), &short),
            Err(LstmError::TensorData { .. })
        ));
        let mut renamed = t.clone();
        renamed[3].0 = "lstm.0.w_xx".into();
        assert!(matches!(
            SeqClassifier::from_tensors(cfg.clone(), &renamed),
            Err(LstmError::UnexpectedTensor { ref name }) if name == "lstm.0.w_xx"
        ));
        let missing: Vec<_> = t
            .iter()
            .filter(|(n, _, _)| n != "head.bias")
            .cloned()
            .collect();
        assert!(matches!(
            SeqClassifier::from_tensors(cfg.clone(), &missing),
            Err(LstmError::MissingTensor { ref name }) if name == "head.bias"
        ));
        let mut twice = t.clone();
        twice.push(t[0].clone());
        assert!(matches!(
            SeqClassifier::from_tensors(cfg.clone(), &twice),
            Err(LstmError::DuplicateTensor { .. })
        ));
        let mut nan = t.clone();
        nan[2].2[0] = f32::NAN;
        assert!(matches!(
            SeqClassifier::from_tensors(cfg.clone(), &nan),
            Err(LstmError::NonFiniteTensor { .. })
        ));
        // The tensors of one architecture do not load into another.
        let other = LstmConfig {
            hidden: vec![16],
            ..cfg
        };
        assert!(matches!(
            SeqClassifier::from_tensors(other, &t),
            Err(LstmError::TensorShape { .. })
        ));
    }

    #[test]
    fn config_serde_round_trip_and_weights() {
        let cfg = LstmConfig::paper(448);
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<LstmConfig>(&json).unwrap(), cfg);
        let tc: TrainConfig = serde_json::from_str(r#"{"lr": 0.01}"#).unwrap();
        assert_eq!(tc.batch_size, 75);
        assert_eq!(tc.lr, 0.01);

        let w = balanced_weights(&[1.0, 0.0, 0.0, 0.0]);
        assert_eq!(w, vec![2.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]);
        assert_eq!(balanced_weights(&[0.0, 0.0]), vec![1.0, 1.0]);
    }
}
