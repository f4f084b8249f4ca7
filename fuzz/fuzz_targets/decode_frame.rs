//! Feeds arbitrary bytes to the frame decoder; the properties live in the library harness.
#![no_main]
#![deny(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| authnet_ipc::fuzzing::decode_frame_harness(data));
