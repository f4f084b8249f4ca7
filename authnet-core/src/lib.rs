//! The AuthNet pipeline, shared by `authnetd`, `authnet-enroll` and `authnet-eval` so that no
//! step is written twice:
//!
//! 1. [`capture`]: a [`capture::FrameSource`] yields RGB frames (V4L2 camera, image directory,
//!    synthetic).
//! 2. [`vision`]: the face detector crops each frame, the backbone ([`vision::Embedder`], ONNX
//!    Runtime) turns the crop into an identity embedding, and a mouth-region descriptor captures
//!    what the lips do.
//! 3. [`features`]: per-frame features of one utterance, with a content-addressed cache.
//! 4. [`segment`]: trimming the still frames before and after the utterance;
//!    [`sequence`]: resampling/padding to `T` timesteps.
//! 5. [`model`]: the per-user temporal model, its training set, impostor bank, thresholds and
//!    model file.
//! 6. [`metrics`]: ROC, AUC, EER and the confusion-matrix family.
#![deny(unsafe_code)]

pub mod capture;
pub mod features;
pub mod fsutil;
pub mod fuzzing;
pub mod metrics;
pub mod model;
pub mod rng;
pub mod segment;
pub mod sequence;
pub mod testdata;
pub mod vision;

/// The `image` crate version our frame and crop types come from.
pub use image;
