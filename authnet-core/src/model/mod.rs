//! The per-user temporal model and everything around it:
//! - [`lstm`]: the stacked-LSTM sequence classifier (candle) and its trainer;
//! - [`password`]: the user's password model: its gates (identity, word, DTW, liveness veto;
//!   [`password::gate`] says how to add one), fusion and the decision, calibration of the EER
//!   and target-FMR thresholds, and enrolment;
//! - [`bank`]: the impostor bank (other people's feature sequences) and the dataset walker;
//! - [`pretrained`]: the LSTM backbone pretrained across speakers, its file format, and the
//!   pretraining;
//! - [`mod@file`]: the user model file (safetensors + validated metadata).
pub mod bank;
pub mod file;
pub mod lstm;
pub mod password;
pub mod pretrained;
#[cfg(test)]
mod synthetic;
