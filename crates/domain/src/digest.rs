//! [`Sha256Digest`]: the SHA-256 of a file's bytes, also its `ETag`.

use std::fmt;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Sha256Digest([u8; 32]);

/// The error for a string that is not 64 hexadecimal digits.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("not a hex SHA-256 digest")]
pub struct InvalidDigest;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

impl Sha256Digest {
    /// Wraps the 32 raw bytes of a digest.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// Parses 64 hexadecimal digits (either case).
    ///
    /// # Errors
    ///
    /// [`InvalidDigest`] for any other length or a non-hex character.
    pub fn parse_hex(s: &str) -> Result<Self, InvalidDigest> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(InvalidDigest);
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let [high, low] = pair else {
                return Err(InvalidDigest);
            };
            *slot = (hex_value(*high)? << 4) | hex_value(*low)?;
        }
        Ok(Self(out))
    }

    /// Returns the digest as 64 lower-case hexadecimal digits.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
        }
        out
    }

    /// Returns the 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn hex_value(digit: u8) -> Result<u8, InvalidDigest> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(InvalidDigest),
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of the empty string.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_hex_accepts_64_hex_digits_only() {
        let upper = EMPTY.to_uppercase();
        let too_long = format!("{EMPTY}0");
        let with_space = format!(" {}", &EMPTY[1..]);
        let non_hex = format!("{}g", &EMPTY[..63]);
        let non_ascii = format!("{}é", &EMPTY[..62]);
        let cases: &[(&str, bool)] = &[
            (EMPTY, true),
            (&upper, true),
            (&EMPTY[..63], false),
            (&too_long, false),
            (&with_space, false),
            (&non_hex, false),
            (&non_ascii, false),
            ("", false),
        ];
        for &(input, ok) in cases {
            assert_eq!(
                Sha256Digest::parse_hex(input).is_ok(),
                ok,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn to_hex_is_lower_case_and_round_trips() {
        let cases: &[[u8; 32]] = &[[0; 32], [0xff; 32], core::array::from_fn(|i| i as u8 * 8)];
        for bytes in cases {
            let digest = Sha256Digest::from_bytes(*bytes);
            let hex = digest.to_hex();
            assert_eq!(hex, hex.to_lowercase());
            assert_eq!(hex.len(), 64);
            assert_eq!(digest.to_string(), hex);
            assert_eq!(Sha256Digest::parse_hex(&hex), Ok(digest));
            assert_eq!(digest.as_bytes(), bytes);
        }
        let upper = Sha256Digest::parse_hex(&EMPTY.to_uppercase()).unwrap();
        assert_eq!(upper.to_hex(), EMPTY);
        assert_eq!(upper.as_bytes()[0], 0xe3);
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::properties::config;

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn hex_reads_back_as_the_same_digest_in_either_case(bytes in any::<[u8; 32]>()) {
                let digest = Sha256Digest::from_bytes(bytes);
                let hex = digest.to_hex();
                prop_assert_eq!(hex.len(), 64);
                prop_assert_eq!(Sha256Digest::parse_hex(&hex), Ok(digest));
                prop_assert_eq!(Sha256Digest::parse_hex(&hex.to_uppercase()), Ok(digest));
            }
        }
    }
}
