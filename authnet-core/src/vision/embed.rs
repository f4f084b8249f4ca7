//! The identity backbone on ONNX Runtime, described by a TOML manifest (`models/<name>.toml`).
//!
//! Loading verifies the model file's sha256 against the manifest, then checks the graph's input
//! and output shapes against the manifest, so a wrong, truncated or swapped model is refused with
//! an error naming the file instead of producing meaningless embeddings.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::{imageops, RgbImage};
use ort::session::Session;
use ort::value::Tensor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest model file accepted (VGGFace in float32 is ~580 MB).
pub const MAX_MODEL_BYTES: u64 = 1024 * 1024 * 1024;

/// Tensor layout of the backbone input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// batch, channel, height, width
    Nchw,
    /// batch, height, width, channel
    Nhwc,
}

/// Channel order of the backbone input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (Caffe-trained models such as VGGFace).
    Bgr,
}

/// A backbone manifest (`models/<name>.toml`). Input pixels `p` (0–255, in `channel_order`) are
/// fed as `(p - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest name (`mobilefacenet`).
    pub name: String,
    /// Model file, relative to the manifest's directory.
    pub file: String,
    /// Hex sha256 of the model file.
    pub sha256: String,
    /// Hex sha256 of the model file whose embeddings this one reproduces bit for bit (the
    /// same network before a graph rewrite, checked by its regeneration script); absent: this
    /// file's own. It is what models, impostor banks, pretrained files and the feature cache
    /// record and are checked against ([`Manifest::embeddings_sha256`]), so a rewrite that
    /// only makes the graph faster does not make every user enrol again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_embeddings_as: Option<String>,
    /// Graph input tensor name.
    pub input_name: String,
    /// Graph output tensor name.
    pub output_name: String,
    /// Input height.
    pub input_height: u32,
    /// Input width.
    pub input_width: u32,
    /// Input layout.
    pub layout: Layout,
    /// Channel order.
    pub channel_order: ChannelOrder,
    /// Per-channel mean, in `channel_order`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in `channel_order`.
    pub std: [f32; 3],
    /// Fixed batch size the graph requires; 0 means dynamic.
    pub batch: usize,
    /// Embedding length (values per batch item of `output_name`).
    pub output_dim: usize,
    /// A second graph output holding one score per batch item (the landmark model's
    /// face-presence logit); absent for backbones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_output: Option<String>,
    /// Licence of the weights.
    #[serde(default)]
    pub licence: String,
    /// Where the weights come from.
    #[serde(default)]
    pub source: String,
}

/// Errors loading or running the backbone.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The manifest could not be read.
    #[error("cannot read model manifest {path}: {source}")]
    ManifestIo {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid TOML for the schema.
    #[error("invalid model manifest {path}: {source}")]
    ManifestParse {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: toml::de::Error,
    },
    /// A manifest value is out of range.
    #[error("invalid model manifest {path}: {what}")]
    ManifestValue {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
    /// The model file could not be read.
    #[error("cannot read model {path}: {source}")]
    ModelIo {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The model file's sha256 differs from the manifest's.
    #[error("model {path} has sha256 {found}, but its manifest expects {expected} (wrong, truncated or modified file)")]
    Checksum {
        /// Path.
        path: PathBuf,
        /// From the manifest.
        expected: String,
        /// Computed.
        found: String,
    },
    /// ONNX Runtime could not be loaded.
    #[error("cannot load ONNX Runtime from {path}: {message} (set onnxruntime_lib in the config or AUTHNET_ORT_LIB)")]
    Runtime {
        /// Library path.
        path: PathBuf,
        /// Cause, as ONNX Runtime reports it.
        message: String,
    },
    /// ONNX Runtime refused the model or a run failed.
    #[error("ONNX Runtime error for {path}: {source}")]
    Ort {
        /// Model path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: ort::Error,
    },
    /// The backbone's thread ([`super::worker::EmbedWorker`]) failed.
    #[error("the backbone's worker thread {what}")]
    Worker {
        /// What happened.
        what: &'static str,
    },
    /// The graph disagrees with the manifest.
    #[error("model {path}: {what} is {found}, but the manifest says {expected}")]
    Shape {
        /// Model path.
        path: PathBuf,
        /// Which dimension.
        what: &'static str,
        /// From the manifest.
        expected: String,
        /// From the graph or its output.
        found: String,
    },
}

impl Manifest {
    /// The sha256 that names this backbone's embeddings: [`Manifest::same_embeddings_as`] when
    /// set, else the file's own. Models, banks, pretrained files and cache keys record it.
    pub fn embeddings_sha256(&self) -> &str {
        self.same_embeddings_as.as_deref().unwrap_or(&self.sha256)
    }

    /// Reads `<models_dir>/<name>.toml`.
    pub fn load(models_dir: &Path, name: &str) -> Result<Self, EmbedError> {
        Self::from_file(&models_dir.join(format!("{name}.toml")))
    }

    /// Reads and validates a manifest file.
    pub fn from_file(path: &Path) -> Result<Self, EmbedError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmbedError::ManifestIo {
            path: path.into(),
            source,
        })?;
        let m: Manifest = toml::from_str(&text).map_err(|source| EmbedError::ManifestParse {
            path: path.into(),
            source,
        })?;
        let bad = |what| {
            Err(EmbedError::ManifestValue {
                path: path.into(),
                what,
            })
        };
        let hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex64(&m.sha256) {
            return bad("sha256 must be 64 hex digits (fill in the sha256 of your model file)");
        }
        if m.same_embeddings_as.as_deref().is_some_and(|h| !hex64(h)) {
            return bad("same_embeddings_as must be 64 hex digits");
        }
        if m.input_height == 0
            || m.input_width == 0
            || m.input_height > 1024
            || m.input_width > 1024
        {
            return bad("input_height/input_width must be in 1..=1024");
        }
        if m.output_dim == 0 || m.output_dim > 65536 {
            return bad("output_dim must be in 1..=65536");
        }
        if m.batch > 256 {
            return bad("batch must be 0 (dynamic) or at most 256");
        }
        if m.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || m.mean.iter().any(|x| !x.is_finite())
        {
            return bad("mean must be finite and std finite and non-zero");
        }
        Ok(m)
    }
}

static RUNTIME: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `lib` (once per process; later calls report the first outcome).
pub fn init_runtime(lib: &Path) -> Result<(), EmbedError> {
    let r = RUNTIME.get_or_init(|| {
        if !lib.is_file() {
            return Err(format!(
                "{} does not exist (run `make setup`)",
                lib.display()
            ));
        }
        match ort::init_from(lib) {
            Ok(b) => b.with_name("authnet").build().map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    match r {
        Ok(_) => Ok(()),
        Err(message) => Err(EmbedError::Runtime {
            path: lib.into(),
            message: message.clone(),
        }),
    }
}

/// Hex sha256 of a file, streaming.
pub fn sha256_file(path: &Path) -> Result<String, std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// A model file loaded into ONNX Runtime after its sha256 and graph were checked against its
/// manifest: what the backbone and the landmark model share.
pub(crate) struct OnnxModel {
    pub(crate) manifest: Manifest,
    pub(crate) path: PathBuf,
    pub(crate) session: Session,
}

impl OnnxModel {
    /// Loads the model the manifest names (relative to `models_dir`), verifying its sha256 and
    /// shapes. [`init_runtime`] must have succeeded first.
    pub(crate) fn load(
        models_dir: &Path,
        manifest: Manifest,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let path = models_dir.join(&manifest.file);
        let io = |source| EmbedError::ModelIo {
            path: path.clone(),
            source,
        };
        let meta = std::fs::metadata(&path).map_err(io)?;
        if meta.len() > MAX_MODEL_BYTES {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "model file over 1 GiB",
            )));
        }
        let bytes = std::fs::read(&path).map_err(io)?;
        let found = hex::encode(Sha256::digest(&bytes));
        if !found.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(EmbedError::Checksum {
                path,
                expected: manifest.sha256.clone(),
                found,
            });
        }
        let ort_err = |source: ort::Error| EmbedError::Ort {
            path: path.clone(),
            source,
        };
        let env =
            match RUNTIME.get() {
                Some(Ok(env)) => env,
                _ => return Err(EmbedError::Runtime {
                    path: PathBuf::new(),
                    message:
                        "ONNX Runtime is not initialised (init_runtime was not called or failed)"
                            .into(),
                }),
            };
        let session = Session::builder(env)
            .map_err(ort_err)?
            .with_intra_threads(threads.max(1))
            .map_err(|e| ort_err(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| ort_err(e.into()))?
            .commit_from_memory(&bytes)
            .map_err(ort_err)?;
        let e = Self {
            manifest,
            path,
            session,
        };
        e.check_graph()?;
        Ok(e)
    }

    pub(crate) fn shape_err(
        &self,
        what: &'static str,
        expected: String,
        found: String,
    ) -> EmbedError {
        EmbedError::Shape {
            path: self.path.clone(),
            what,
            expected,
            found,
        }
    }

    fn output_names(&self) -> String {
        let names: Vec<_> = self
            .session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        format!("{names:?}")
    }

    fn check_graph(&self) -> Result<(), EmbedError> {
        let m = &self.manifest;
        let input = self
            .session
            .inputs()
            .iter()
            .find(|o| o.name() == m.input_name)
            .ok_or_else(|| {
                let names: Vec<_> = self
                    .session
                    .inputs()
                    .iter()
                    .map(|o| o.name().to_string())
                    .collect();
                self.shape_err("input name", m.input_name.clone(), format!("{names:?}"))
            })?;
        let output = self
            .session
            .outputs()
            .iter()
            .find(|o| o.name() == m.output_name)
            .ok_or_else(|| {
                self.shape_err("output name", m.output_name.clone(), self.output_names())
            })?;
        if let Some(score) = &m.score_output {
            if !self.session.outputs().iter().any(|o| o.name() == score) {
                return Err(self.shape_err(
                    "score output name",
                    score.clone(),
                    self.output_names(),
                ));
            }
        }
        let (h, w) = (m.input_height as i64, m.input_width as i64);
        let want_in: [i64; 4] = match m.layout {
            Layout::Nchw => [m.batch as i64, 3, h, w],
            Layout::Nhwc => [m.batch as i64, h, w, 3],
        };
        if let Some(shape) = input.dtype().tensor_shape() {
            let dims: Vec<i64> = shape.iter().copied().collect();
            let ok = dims.len() == 4
                && dims.iter().zip(want_in).enumerate().all(|(i, (g, e))| {
                    // A symbolic (-1) dim matches anything; batch 0 in the manifest is dynamic.
                    *g < 0 || (i == 0 && e == 0) || *g == e
                });
            if !ok {
                return Err(self.shape_err(
                    "input shape",
                    format!("{want_in:?}"),
                    format!("{dims:?}"),
                ));
            }
        }
        if let Some(shape) = output.dtype().tensor_shape() {
            let dims: Vec<i64> = shape.iter().copied().collect();
            let last = dims.last().copied().unwrap_or(-1);
            if last >= 0 && last as usize != m.output_dim {
                return Err(self.shape_err(
                    "output dim",
                    m.output_dim.to_string(),
                    format!("{dims:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Appends one image in the manifest's input layout and normalisation (one batch item),
    /// resizing it to the input size first if it is not that size already.
    pub(crate) fn preprocess(&self, crop: &RgbImage, out: &mut Vec<f32>) {
        let m = &self.manifest;
        let (w, h) = (m.input_width, m.input_height);
        let resized;
        let r = if crop.dimensions() == (w, h) {
            crop
        } else {
            resized = imageops::resize(crop, w, h, imageops::FilterType::Triangle);
            &resized
        };
        let ch = |p: &image::Rgb<u8>, c: usize| -> f32 {
            let src = match m.channel_order {
                ChannelOrder::Rgb => c,
                ChannelOrder::Bgr => 2 - c,
            };
            (p[src] as f32 - m.mean[c]) / m.std[c]
        };
        match m.layout {
            Layout::Nchw => {
                for c in 0..3 {
                    out.extend(r.pixels().map(|p| ch(p, c)));
                }
            }
            Layout::Nhwc => {
                for p in r.pixels() {
                    for c in 0..3 {
                        out.push(ch(p, c));
                    }
                }
            }
        }
    }

    /// The input tensor shape for `n` batch items.
    pub(crate) fn input_shape(&self, n: usize) -> Vec<i64> {
        let m = &self.manifest;
        match m.layout {
            Layout::Nchw => vec![n as i64, 3, m.input_height as i64, m.input_width as i64],
            Layout::Nhwc => vec![n as i64, m.input_height as i64, m.input_width as i64, 3],
        }
    }
}

/// The backbone, ready to embed face crops.
pub struct Embedder {
    model: OnnxModel,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("manifest", &self.model.manifest.name)
            .field("path", &self.model.path)
            .finish()
    }
}

impl Embedder {
    /// Loads the model the manifest names (relative to `models_dir`), verifying its sha256 and
    /// shapes. [`init_runtime`] must have succeeded first. `threads` is ONNX Runtime's
    /// intra-op thread count.
    pub fn load(models_dir: &Path, manifest: Manifest, threads: usize) -> Result<Self, EmbedError> {
        Ok(Self {
            model: OnnxModel::load(models_dir, manifest, threads)?,
        })
    }

    /// The manifest in force.
    pub fn manifest(&self) -> &Manifest {
        &self.model.manifest
    }

    /// Embedding length.
    pub fn dim(&self) -> usize {
        self.model.manifest.output_dim
    }

    /// Embeds crops, batching to the graph's batch size, and L2-normalises each embedding.
    pub fn embed(&mut self, crops: &[RgbImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let m = self.model.manifest.clone();
        let per = (m.input_height * m.input_width * 3) as usize;
        let batch = if m.batch == 0 {
            crops.len().clamp(1, 32)
        } else {
            m.batch
        };
        let mut out = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(batch) {
            let mut data = Vec::with_capacity(per * batch);
            for c in chunk {
                self.model.preprocess(c, &mut data);
            }
            let n = if m.batch == 0 { chunk.len() } else { batch };
            // A fixed-batch graph gets the last crop repeated to fill the batch; the padding
            // rows are dropped below.
            while data.len() < per * n {
                let start = data.len() - per;
                data.extend_from_within(start..start + per);
            }
            let shape = self.model.input_shape(n);
            let path = self.model.path.clone();
            let oe = |source: ort::Error| EmbedError::Ort {
                path: path.clone(),
                source,
            };
            let tensor = Tensor::from_array((shape, data)).map_err(oe)?;
            let outputs = self
                .model
                .session
                .run(ort::inputs![m.input_name.as_str() => tensor])
                .map_err(oe)?;
            let (oshape, vals) = outputs[m.output_name.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(oe)?;
            let dims: Vec<i64> = oshape.iter().copied().collect();
            if vals.len() != n * m.output_dim {
                return Err(EmbedError::Shape {
                    path: path.clone(),
                    what: "output dim",
                    expected: m.output_dim.to_string(),
                    found: format!("{dims:?}"),
                });
            }
            for row in vals.chunks(m.output_dim).take(chunk.len()) {
                let mut v = row.to_vec();
                crate::features::l2_normalise(&mut v);
                out.push(v);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name = \"m\"\nfile = \"m.onnx\"\nsha256 = \"{SHA}\"\ninput_name = \"input\"\noutput_name = \"out\"\ninput_height = 112\ninput_width = 112\nlayout = \"nchw\"\nchannel_order = \"rgb\"\nmean = [127.5, 127.5, 127.5]\nstd = [128.0, 128.0, 128.0]\nbatch = 2\noutput_dim = 192\n";

    fn manifest(extra: &str) -> Result<Manifest, EmbedError> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.toml");
        std::fs::write(&p, BASE.replace("{SHA}", &"a".repeat(64)) + extra).unwrap();
        Manifest::from_file(&p)
    }

    #[test]
    fn embeddings_are_named_by_the_file_unless_an_earlier_file_is_named() {
        let m = manifest("").unwrap();
        assert_eq!(m.embeddings_sha256(), "a".repeat(64));
        let m = manifest(&format!("same_embeddings_as = \"{}\"\n", "b".repeat(64))).unwrap();
        assert_eq!(m.sha256, "a".repeat(64));
        assert_eq!(m.embeddings_sha256(), "b".repeat(64));
        for bad in ["\"b\"", "\"zz\"", &format!("\"{}\"", "g".repeat(64))] {
            let e = manifest(&format!("same_embeddings_as = {bad}\n")).unwrap_err();
            assert!(
                matches!(e, EmbedError::ManifestValue { what, .. } if what.contains("same_embeddings_as")),
                "{e}"
            );
        }
    }

    #[test]
    fn the_shipped_backbone_names_the_embeddings_of_its_unfused_conversion() {
        // models/mobilefacenet.onnx is the PReLU-fused graph; models and banks enrolled with
        // the unfused one (same embeddings bit for bit) must keep loading.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let m = Manifest::load(&dir, "mobilefacenet").unwrap();
        assert_eq!(
            m.embeddings_sha256(),
            "feb4ade8f141461d84270d0e3c4aaf41e83ad83c960fe2eb1a84b6eb95142b3a"
        );
        assert_ne!(m.sha256, m.embeddings_sha256());
        assert_eq!(sha256_file(&dir.join(&m.file)).unwrap(), m.sha256);
    }
}
