//! Face detection, mouth descriptor and backbone embedder.
