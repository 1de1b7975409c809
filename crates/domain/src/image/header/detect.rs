//! Recognises a format by its magic bytes, one byte at a time, so that text or any other file is
//! refused as soon as its first bytes rule every format out.

use super::ImageFormat;

/// Each format's magic bytes, `?` standing for any byte. The ISO-BMFF `ftyp` box is assumed
/// shorter than 64 KiB (its size starts with two zero bytes); real ones hold a few brands.
const SIGNATURES: &[(ImageFormat, &[u8])] = &[
    (ImageFormat::Jpeg, b"\xFF\xD8"),
    (ImageFormat::Png, b"\x89PNG\r\n\x1A\n"),
    (ImageFormat::Gif, b"GIF87a"),
    (ImageFormat::Gif, b"GIF89a"),
    (ImageFormat::WebP, b"RIFF????WEBP"),
    (ImageFormat::Avif, b"\0\0??ftyp"),
];

/// What the bytes seen so far say.
pub(super) enum Detected {
    /// One more byte is needed.
    More,
    /// No format starts with these bytes.
    Nothing,
    /// The magic bytes of this format, which its walker reads again from the first byte.
    Format(ImageFormat),
}

#[derive(Debug)]
pub(super) struct Detect {
    /// How many leading bytes the next step looks at.
    seen: usize,
}

impl Detect {
    pub(super) fn new() -> Self {
        Self { seen: 1 }
    }

    pub(super) fn want(&self) -> usize {
        self.seen
    }

    pub(super) fn step(&mut self, prefix: &[u8]) -> Detected {
        let mut partial = false;
        for &(format, signature) in SIGNATURES {
            let agrees = prefix
                .iter()
                .zip(signature)
                .all(|(&byte, &expected)| expected == b'?' || byte == expected);
            if agrees {
                if prefix.len() >= signature.len() {
                    return Detected::Format(format);
                }
                partial = true;
            }
        }
        if partial {
            self.seen = prefix.len() + 1;
            Detected::More
        } else {
            Detected::Nothing
        }
    }
}
