//! Per-user temporal model (being written).
pub mod bank;
pub mod file;
pub mod lstm;
