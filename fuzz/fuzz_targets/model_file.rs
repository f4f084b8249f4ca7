//! Feeds arbitrary bytes to the per-user model file reader; the properties live in the library.
#![no_main]
#![deny(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| authnet_core::fuzzing::model_file_harness(data));
