//! [`FileKey`] and [`Metadata`]: the path a file may be addressed by in its account, and the
//! JSON object a client may attach to it.

use std::fmt;

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// The largest metadata object, in bytes of its JSON text.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// Why a key or a metadata object was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidKey(pub &'static str);

/// A file's key: 1..512 bytes of UTF-8, `/`-separated segments, none empty, `.` or `..`, no
/// control character. Unique per account; prefixes match literally and case-sensitively.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FileKey(String);

impl FileKey {
    /// Checks `raw` against the key rules.
    ///
    /// # Errors
    /// [`InvalidKey`] naming the rule broken.
    pub fn parse(raw: &str) -> Result<FileKey, InvalidKey> {
        if raw.is_empty() || raw.len() > MAX_KEY_BYTES {
            return Err(InvalidKey("key must be 1 to 512 bytes"));
        }
        if raw.chars().any(char::is_control) {
            return Err(InvalidKey("key must not contain control characters"));
        }
        if raw
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(InvalidKey(
                "key segments must not be empty, '.' or '..' (no leading, trailing or double '/')",
            ));
        }
        Ok(FileKey(raw.to_owned()))
    }

    /// Wraps a key already stored, as it is.
    pub fn from_stored(s: String) -> FileKey {
        FileKey(s)
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON object of at most 8 KiB attached to a file, kept as its compact JSON text.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Metadata(String);

impl Default for Metadata {
    fn default() -> Self {
        Metadata("{}".to_owned())
    }
}

impl Metadata {
    /// Checks that `text` is a JSON object of at most 8 KiB, and keeps it compacted.
    ///
    /// # Errors
    /// [`InvalidKey`] when it is not JSON, not an object, or too large.
    pub fn parse(text: &str) -> Result<Metadata, InvalidKey> {
        if text.len() > MAX_METADATA_BYTES {
            return Err(InvalidKey("metadata must be at most 8 KiB"));
        }
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value @ serde_json::Value::Object(_)) => Ok(Metadata(value.to_string())),
            Ok(_) => Err(InvalidKey("metadata must be a JSON object")),
            Err(_) => Err(InvalidKey("metadata must be valid JSON")),
        }
    }

    /// Wraps metadata already stored, as it is.
    pub fn from_stored(s: String) -> Metadata {
        Metadata(s)
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_numbers_read_back_exactly() {
        // Found by fuzzing: without exact float parsing, reading the kept text again gave a
        // number one unit in the last place away, so a file's metadata drifted as it was served.
        for text in [
            r#"{"":-0.022222222222222202222}"#,
            r#"{"x":0.30000000000000004,"y":1e-7,"z":123456789.12345679}"#,
        ] {
            let metadata = super::Metadata::parse(text).expect("an object");
            assert_eq!(
                super::Metadata::parse(metadata.as_str()),
                Ok(metadata.clone()),
                "{text}"
            );
        }
    }

    use super::*;

    #[test]
    fn keys_follow_the_path_rules() {
        for good in [
            "a",
            "avatars/users/7",
            "é/ü.png",
            "a/.b/c..d",
            &"x".repeat(512),
        ] {
            assert_eq!(FileKey::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "./a",
            "a/../b",
            "..",
            "a\nb",
            "a\u{7f}b",
            &"x".repeat(513),
        ] {
            assert!(FileKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn metadata_is_a_small_json_object_kept_compact() {
        assert_eq!(
            Metadata::parse("{ \"a\" : [1, 2] }").unwrap().as_str(),
            r#"{"a":[1,2]}"#
        );
        assert_eq!(Metadata::default().as_str(), "{}");
        for bad in ["[]", "1", "\"x\"", "{", "null"] {
            assert!(Metadata::parse(bad).is_err(), "{bad} was accepted");
        }
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(8 * 1024));
        assert!(Metadata::parse(&big).is_err());
    }
}
