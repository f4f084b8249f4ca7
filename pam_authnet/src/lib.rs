//! PAM module (placeholder).
