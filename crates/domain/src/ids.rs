//! Identifiers: [`FileId`], [`AccountId`] and [`UserId`].

use std::fmt;
use std::str::FromStr;

use uuid::{Uuid, Variant};

/// The id of a stored file: a random (version 4) UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct FileId(Uuid);

/// The error for a string or UUID that is not a valid [`FileId`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("not a canonical lower-case UUID v4")]
pub struct InvalidFileId;

/// Length of the canonical hyphenated spelling of a UUID.
const CANONICAL_LEN: usize = 36;

/// Byte offsets of the hyphens in the canonical spelling.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

impl FileId {
    /// Parses the canonical spelling of a file id: a lower-case, hyphenated UUID v4.
    ///
    /// The contract makes every other spelling (upper case, braces, `urn:uuid:`, the
    /// 32-digit simple form) a `404`, so they are refused here rather than normalised.
    ///
    /// # Errors
    ///
    /// [`InvalidFileId`] for any other spelling, and for UUIDs of another version or variant.
    pub fn parse(s: &str) -> Result<FileId, InvalidFileId> {
        let bytes = s.as_bytes();
        if bytes.len() != CANONICAL_LEN {
            return Err(InvalidFileId);
        }
        let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
            if HYPHENS.contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
            }
        });
        if !well_formed {
            return Err(InvalidFileId);
        }
        let uuid = Uuid::try_parse(s).map_err(|_| InvalidFileId)?;
        Self::from_uuid(uuid)
    }

    /// Makes a fresh random file id.
    pub fn new_random() -> FileId {
        FileId(Uuid::new_v4())
    }

    /// Wraps a UUID, which must be a version 4 (random) RFC 4122 UUID.
    ///
    /// # Errors
    ///
    /// [`InvalidFileId`] when the UUID has another version or variant (the nil UUID included).
    pub fn from_uuid(u: Uuid) -> Result<FileId, InvalidFileId> {
        if u.get_version_num() == 4 && u.get_variant() == Variant::RFC4122 {
            Ok(FileId(u))
        } else {
            Err(InvalidFileId)
        }
    }

    /// Returns the UUID inside.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for FileId {
    type Err = InvalidFileId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The id of an account (a tenant), as issued by the Pneumatic backend.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct AccountId(i64);

impl AccountId {
    /// Wraps a raw account id.
    pub fn new(v: i64) -> Self {
        Self(v)
    }

    /// Returns the raw account id.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The id of a user, as issued by the Pneumatic backend.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct UserId(i64);

impl UserId {
    /// Wraps a raw user id.
    pub fn new(v: i64) -> Self {
        Self(v)
    }

    /// Returns the raw user id.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

    #[test]
    fn file_id_parse_accepts_only_canonical_lower_case_v4() {
        let cases: &[(&str, bool)] = &[
            (VALID, true),
            ("00000000-0000-4000-8000-000000000000", true),
            ("ffffffff-ffff-4fff-bfff-ffffffffffff", true),
            ("3F2504E0-4F89-41D3-9A0C-0305E82C3301", false),
            ("3f2504e0-4f89-41d3-9A0c-0305e82c3301", false),
            ("{3f2504e0-4f89-41d3-9a0c-0305e82c3301}", false),
            ("urn:uuid:3f2504e0-4f89-41d3-9a0c-0305e82c3301", false),
            ("3f2504e04f8941d39a0c0305e82c3301", false),
            (" 3f2504e0-4f89-41d3-9a0c-0305e82c3301", false),
            ("3f2504e0-4f89-41d3-9a0c-0305e82c3301 ", false),
            ("3f2504e0-4f89-41d3-9a0c-0305e82c330", false),
            ("3f2504e0-4f89-41d3-9a0c-0305e82c33011", false),
            ("3f2504e0+4f89-41d3-9a0c-0305e82c3301", false),
            ("3f2504e0-4f89-41d3-9a0c-0305e82c330g", false),
            ("3f2504e0-4f8-941d3-9a0c-0305e82c3301", false),
            // version 1
            ("3f2504e0-4f89-11d3-9a0c-0305e82c3301", false),
            // version 7
            ("018f2504-4f89-71d3-9a0c-0305e82c3301", false),
            // NCS and Microsoft variants
            ("3f2504e0-4f89-41d3-7a0c-0305e82c3301", false),
            ("3f2504e0-4f89-41d3-ca0c-0305e82c3301", false),
            ("00000000-0000-0000-0000-000000000000", false),
            ("ffffffff-ffff-ffff-ffff-ffffffffffff", false),
            ("", false),
            ("../../etc/passwd", false),
            ("3f2504e0-4f89-41d3-9a0c-0305e82c33é", false),
        ];
        for &(input, ok) in cases {
            assert_eq!(FileId::parse(input).is_ok(), ok, "input {input:?}");
            assert_eq!(input.parse::<FileId>().is_ok(), ok, "from_str {input:?}");
        }
    }

    #[test]
    fn file_id_display_round_trips() {
        let id = FileId::parse(VALID).unwrap();
        assert_eq!(id.to_string(), VALID);
        for _ in 0..100 {
            let random = FileId::new_random();
            assert_eq!(FileId::parse(&random.to_string()), Ok(random));
        }
    }

    #[test]
    fn file_id_from_uuid_requires_v4() {
        let cases: &[(Uuid, bool)] = &[
            (Uuid::new_v4(), true),
            (Uuid::nil(), false),
            (Uuid::max(), false),
            (
                Uuid::from_u128(0x3f2504e0_4f89_11d3_9a0c_0305e82c3301),
                false,
            ),
            (
                Uuid::from_u128(0x3f2504e0_4f89_41d3_9a0c_0305e82c3301),
                true,
            ),
        ];
        for &(uuid, ok) in cases {
            assert_eq!(FileId::from_uuid(uuid).is_ok(), ok, "uuid {uuid}");
        }
        let uuid = Uuid::new_v4();
        assert_eq!(FileId::from_uuid(uuid).map(|id| id.as_uuid()), Ok(uuid));
    }

    #[test]
    fn numeric_ids_round_trip_and_display() {
        let cases: &[i64] = &[0, 1, -1, 42, i64::MAX, i64::MIN];
        for &raw in cases {
            assert_eq!(AccountId::new(raw).get(), raw);
            assert_eq!(UserId::new(raw).get(), raw);
            assert_eq!(AccountId::new(raw).to_string(), raw.to_string());
            assert_eq!(UserId::new(raw).to_string(), raw.to_string());
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::properties::config;

        /// The version nibble and the variant bits of a UUID, as a mask and as a v4 UUID has them.
        const V4_MASK: u128 = 0xf000 << 64 | 0xc000 << 48;
        const V4_BITS: u128 = 0x4000 << 64 | 0x8000 << 48;

        /// Any 128 bits, half of them made a v4 UUID.
        fn bits() -> impl Strategy<Value = u128> {
            prop_oneof![
                any::<u128>(),
                any::<u128>().prop_map(|b| b & !V4_MASK | V4_BITS)
            ]
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn a_file_id_is_a_v4_uuid_with_one_spelling(bits in bits()) {
                let uuid = Uuid::from_u128(bits);
                let id = FileId::from_uuid(uuid);
                prop_assert_eq!(id.is_ok(), bits & V4_MASK == V4_BITS, "{}", uuid);
                let spelled = uuid.hyphenated().to_string();
                prop_assert_eq!(FileId::parse(&spelled), id.clone());
                if let Ok(id) = id {
                    prop_assert_eq!(id.to_string(), spelled.clone());
                    prop_assert_eq!(id.as_uuid(), uuid);
                    let upper = spelled.to_uppercase();
                    prop_assert_eq!(FileId::parse(&upper).is_ok(), upper == spelled);
                    prop_assert!(FileId::parse(&uuid.simple().to_string()).is_err());
                }
            }
        }
    }
}
