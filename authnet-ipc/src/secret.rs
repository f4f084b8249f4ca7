//! [`Secret`]: a string (the enrolment password) that never prints and is wiped on drop.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A password or other secret text carried in a message.
///
/// `Debug` prints `<redacted>`, and the heap buffer is overwritten with zeros when the value is
/// dropped. On the wire it is a plain JSON string; the framing code wipes its own frame buffers
/// too (see [`crate::read_frame`]). Equality is a plain byte comparison (not constant time): it
/// exists for tests, never use it to check a password.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`; the caller's `String` is moved, not copied.
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The secret text. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn serializes_as_plain_string() {
        let s = Secret::new("pw".to_owned());
        assert_eq!(serde_json::to_string(&s).ok().as_deref(), Some("\"pw\""));
        let back: Secret = serde_json::from_str("\"pw\"").unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn zeroize_clears_text() {
        let mut s = Secret::new("secret".to_owned());
        s.zeroize();
        assert_eq!(s.expose(), "");
    }
}
