//! Per-user temporal model (being written).
