//! Vision: from a frame to the two per-frame signals.
//!
//! - [`detect`]: the SeetaFace detector (rustface) finds the largest face on a downscaled
//!   grayscale copy, or a pass-through treats the frame as an existing crop.
//! - [`embed`]: the identity backbone (MobileFaceNet by default) on ONNX Runtime, built from a
//!   model manifest.
//! - [`landmarks`]: MediaPipe's 468-point face mesh on ONNX Runtime, and a tracker that
//!   places each frame's crop from the previous frame's mesh.
//! - [`mouth`]: an explicit mouth-region descriptor (HOG plus a low-resolution intensity patch)
//!   of the lower face: identity embeddings are trained to ignore expression, and the password
//!   lives in the lips.
//! - [`worker`]: the backbone on a thread of its own, so embedding overlaps the mesh.

pub mod detect;
pub mod embed;
pub mod landmarks;
pub mod mouth;
pub mod worker;

pub use detect::{CropMode, DetectOutcome, FaceBox, FaceDetector};
pub use embed::{Embedder, Manifest};
pub use landmarks::{FaceTracker, LandmarkModel, Mesh, TrackOutcome, TrackerConfig};
pub use worker::EmbedWorker;
