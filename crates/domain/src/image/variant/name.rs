//! [`VariantName`]: the name a variant is stored under, beside its source.

use std::fmt;

/// Longest name a variant may have; `w2500-h2500-contain-q100.jpeg` is 29 bytes.
const MAX_LEN: usize = 40;

/// A name that is no variant name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a variant name")]
pub struct InvalidVariantName;

/// The name of one variant of a file, such as `w300-h300-cover-q80.webp`: 1 to 40 bytes of
/// `a-z 0-9 - .`, starting with a letter or digit, with exactly one `.` before the extension. It
/// is safe as a path segment and an object-key segment on every store, and `Copy` like the
/// [`crate::BlobKey`] that holds it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VariantName {
    bytes: [u8; MAX_LEN],
    len: u8,
}

impl VariantName {
    /// Checks a stored name (a store lists them back).
    ///
    /// # Errors
    /// [`InvalidVariantName`] for anything of another shape.
    pub fn parse(raw: &str) -> Result<Self, InvalidVariantName> {
        let valid_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        let dots = raw.bytes().filter(|&b| b == b'.').count();
        let first_ok = raw
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if raw.len() > MAX_LEN || !valid_chars || dots != 1 || !first_ok || raw.ends_with('.') {
            return Err(InvalidVariantName);
        }
        let mut bytes = [0; MAX_LEN];
        bytes[..raw.len()].copy_from_slice(raw.as_bytes());
        Ok(Self {
            bytes,
            // At most MAX_LEN (40), checked above.
            len: raw.len() as u8,
        })
    }

    /// `{stem}.{extension}`, from parts this crate writes: always of the right shape, and at most
    /// 29 bytes long (`w2500-h2500-contain-q100.jpeg`).
    pub(crate) fn compose(stem: &str, extension: &str) -> Self {
        let mut bytes = [0; MAX_LEN];
        let mut len = 0;
        for b in stem
            .bytes()
            .chain(std::iter::once(b'.'))
            .chain(extension.bytes())
        {
            if len < MAX_LEN {
                bytes[len] = b;
                len += 1;
            }
        }
        Self {
            bytes,
            // At most MAX_LEN (40).
            len: len as u8,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so this never fails.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for VariantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for VariantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VariantName({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_path_safe() {
        for good in ["w300-h300-cover-q80.webp", "full.png", "h32-q100.jpeg"] {
            assert_eq!(VariantName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            ".png",
            "a",
            "../x.png",
            "a/b.png",
            "A.png",
            "a.b.png",
            "a.",
            "a b.png",
            "w2500-h2500-contain-q100-and-a-lot-more.jpeg",
        ] {
            assert!(VariantName::parse(bad).is_err(), "{bad}");
        }
    }
}
