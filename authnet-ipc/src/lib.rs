//! Wire protocol (placeholder until filled in).
#![forbid(unsafe_code)]
