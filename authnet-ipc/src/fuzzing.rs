//! Fuzzing harness, shared by the `fuzz/` cargo-fuzz target and the proptest suite.
//!
//! Kept in the library (rustls style) so the fuzz target is one line and the property the
//! fuzzer checks is compiled and tested with the crate.

use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

use crate::{decode_frame, encode_frame, IpcError, Request, Response};

/// Decodes `data` as a [`Request`] frame and as a [`Response`] frame.
///
/// Properties checked:
/// * decoding never panics, whatever the bytes;
/// * the consumed length never exceeds the input;
/// * whatever decodes re-encodes, and the re-encoding decodes to an equal value.
///
/// # Panics
///
/// Panics when a property is violated: that is how a fuzzer learns it found a bug.
pub fn decode_frame_harness(data: &[u8]) {
    check::<Request>(data);
    check::<Response>(data);
}

#[allow(clippy::panic)] // A property violation must abort the fuzz run; see the doc above.
fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let Ok((msg, used)) = decode_frame::<T>(data) else {
        return;
    };
    if used > data.len() {
        panic!("decode_frame consumed {used} bytes of {}", data.len());
    }
    let frame = match encode_frame(&msg) {
        Ok(frame) => frame,
        // Re-encoding can legitimately grow a frame near MAX_FRAME (`1` becomes `1.0`).
        Err(IpcError::TooLarge { .. }) => return,
        Err(e) => panic!("decoded message does not re-encode: {e:?} ({msg:?})"),
    };
    match decode_frame::<T>(&frame) {
        Ok((again, n)) if again == msg && n == frame.len() => {}
        other => panic!("re-encoded message does not round-trip: {other:?} vs {msg:?}"),
    }
}
