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

    mod properties {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::super::*;
        use crate::properties::{config, text};

        /// The contract's limits, written again so that a change of the constants above fails.
        const CONTRACT_KEY_BYTES: usize = 512;
        const CONTRACT_METADATA_BYTES: usize = 8 * 1024;

        /// One segment of a key, and whether the rules let it through.
        #[derive(Clone, Debug)]
        enum Segment {
            Good(String),
            Empty,
            Dot,
            DotDot,
            WithControl(String),
        }

        impl Segment {
            fn is_good(&self) -> bool {
                matches!(self, Segment::Good(_))
            }

            fn text(&self) -> &str {
                match self {
                    Segment::Good(s) | Segment::WithControl(s) => s,
                    Segment::Empty => "",
                    Segment::Dot => ".",
                    Segment::DotDot => "..",
                }
            }
        }

        /// A segment the rules accept: no `/`, no control character, neither empty, `.` nor `..`.
        fn good_segment() -> impl Strategy<Value = String> {
            text("aZ9é中😀.-_ %~", 48).prop_map(|s| {
                let s: String = s
                    .chars()
                    .map(|c| if c == '/' || c.is_control() { '_' } else { c })
                    .collect();
                if s.is_empty() || s == "." || s == ".." {
                    format!("{s}x")
                } else {
                    s
                }
            })
        }

        fn segment() -> impl Strategy<Value = Segment> {
            let control = (
                good_segment(),
                prop::sample::select(vec!['\0', '\n', '\t', '\u{7f}', '\u{85}']),
            )
                .prop_map(|(s, c)| format!("{s}{c}"));
            prop_oneof![
                40 => good_segment().prop_map(Segment::Good),
                1 => Just(Segment::Empty),
                1 => Just(Segment::Dot),
                1 => Just(Segment::DotDot),
                1 => control.prop_map(Segment::WithControl),
            ]
        }

        /// JSON values of every kind, nested a few levels, floats included (they must read back
        /// exactly).
        fn json() -> impl Strategy<Value = Value> {
            use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO).prop_map(Value::from),
                text("ab\"\\\n\u{1}é😀", 12).prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(text("ab é", 6), inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn object() -> impl Strategy<Value = Value> {
            prop::collection::btree_map(text("ab é\"", 8), json(), 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn a_key_is_taken_as_given_exactly_when_it_keeps_the_rules(
                mut segments in prop::collection::vec(segment(), 1..16),
                length in prop::option::of(CONTRACT_KEY_BYTES - 2..=CONTRACT_KEY_BYTES + 2),
            ) {
                let joined = |segments: &[Segment]| {
                    segments.iter().map(Segment::text).collect::<Vec<_>>().join("/")
                };
                // Now and then one more segment brings the key to a length around the limit.
                let used = joined(&segments).len() + 1;
                if let Some(room) = length.and_then(|l| l.checked_sub(used)) {
                    segments.push(Segment::Good("x".repeat(room.max(1))));
                }
                let raw = joined(&segments);
                let valid =
                    segments.iter().all(Segment::is_good) && raw.len() <= CONTRACT_KEY_BYTES;
                match FileKey::parse(&raw) {
                    Ok(key) => {
                        prop_assert!(valid, "{:?} was accepted", raw);
                        prop_assert_eq!(key.as_str(), raw.as_str());
                    }
                    Err(_) => prop_assert!(!valid, "{:?} was refused", raw),
                }
            }

            /// The kept text is the object itself, compact whatever the spacing it came with, and
            /// reads back as itself.
            #[test]
            fn metadata_keeps_the_object_compact_and_reads_back_as_itself(
                mut object in object(),
                length in prop::option::of(
                    CONTRACT_METADATA_BYTES - 2..=CONTRACT_METADATA_BYTES + 2,
                ),
            ) {
                // Now and then one more member brings the text to a length around the limit.
                if let (Some(length), Value::Object(members)) = (length, &mut object) {
                    members.insert("~".to_owned(), Value::from(""));
                    let used = Value::Object(members.clone()).to_string().len();
                    let padding = "x".repeat(length.saturating_sub(used));
                    members.insert("~".to_owned(), Value::from(padding));
                }
                let compact = object.to_string();
                let metadata = Metadata::parse(&compact);
                if compact.len() > CONTRACT_METADATA_BYTES {
                    prop_assert!(metadata.is_err());
                    return Ok(());
                }
                let metadata = metadata.unwrap();
                prop_assert_eq!(metadata.as_str(), compact.as_str());
                let read: Value = serde_json::from_str(metadata.as_str()).unwrap();
                prop_assert_eq!(&read, &object);
                prop_assert_eq!(Metadata::parse(metadata.as_str()), Ok(metadata.clone()));
                let pretty = serde_json::to_string_pretty(&object).unwrap();
                if pretty.len() <= CONTRACT_METADATA_BYTES {
                    prop_assert_eq!(Metadata::parse(&pretty), Ok(metadata));
                }
            }

            #[test]
            fn metadata_is_an_object_or_nothing(value in json()) {
                prop_assert_eq!(Metadata::parse(&value.to_string()).is_ok(), value.is_object());
            }
        }
    }
}
