//! Frame sources (filled in by the pipeline work).
