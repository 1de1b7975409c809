//! Images the suites upload: a whole PNG, a JPEG full of metadata, decompression bombs, and real
//! images encoded here (JPEG with EXIF orientation, PNG, GIF, WebP) whose pixels tell where each
//! corner went; plus a decoder for what the server answers.
//!
//! The encoded images are four flat quadrants, in the stored pixel layout: red top-left, green
//! top-right, blue bottom-left, white bottom-right. Once a server applies an EXIF orientation,
//! [`oriented_quadrants`] says which colour each corner must show.

mod decode;
mod encode;

pub use decode::{Decoded, decode, metadata_containers, png_chunks};
pub use encode::{
    EXIF_SECRETS, NOT_AN_IMAGE, avif_header_only, exif_tiff, gif, gif_animated, gif_bomb, jpeg,
    jpeg_bomb, jpeg_noise, jpeg_oriented, png_gray, png_noise, png_rgba, truncated, webp,
    webp_with_exif,
};

/// A valid 1×1 PNG (signature, IHDR, IDAT, IEND).
pub const PNG: [u8; 68] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x02, 0x00,
    0x00, 0x05, 0x00, 0x01, 0x7a, 0x5e, 0xab, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];

/// What [`jpeg_with_metadata`] hides in its metadata, none of which a stripped copy may keep.
pub const JPEG_SECRETS: [&[u8]; 3] = [b"GPS 48.8584N", b"Secret Camera", b"taken at home"];

/// The last bytes of [`jpeg_with_metadata`]: its entropy-coded data and EOI, which stripping
/// leaves as they are.
pub const JPEG_TAIL: [u8; 5] = [0x12, 0x34, 0x56, 0xFF, 0xD9];

/// A baseline JPEG of 8 × 8 pixels (its entropy bytes are never decoded by the upload rules)
/// whose Exif holds orientation 6 and a GPS position, with an XMP packet and a comment.
pub fn jpeg_with_metadata() -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend(1u16.to_le_bytes());
    tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    tiff.extend([0, 0, 0, 0]);
    tiff.extend(b"GPS 48.8584N 2.2945E");
    let mut out = vec![0xFF, 0xD8];
    let mut segment = |marker: u8, data: &[u8]| {
        out.extend([0xFF, marker]);
        let len = u16::try_from(data.len() + 2).unwrap_or(u16::MAX);
        out.extend(len.to_be_bytes());
        out.extend(data);
    };
    segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    segment(0xE1, &[b"Exif\0\0".as_slice(), &tiff].concat());
    segment(
        0xE1,
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>Secret Camera</x:xmpmeta>",
    );
    segment(0xFE, b"taken at home");
    segment(0xC0, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    segment(0xDA, &[1, 1, 0, 0, 63, 0]);
    out.extend(JPEG_TAIL);
    out
}

/// [`PNG`] with an IHDR that declares 100 000 × 100 000 pixels over its few bytes of IDAT.
pub fn png_bomb() -> Vec<u8> {
    let mut bomb = PNG.to_vec();
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    bomb
}

/// A colour of the quadrant images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Red,
    Green,
    Blue,
    White,
    Black,
}

impl Colour {
    /// Its 8-bit RGB value.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [255, 0, 0],
            Colour::Green => [0, 255, 0],
            Colour::Blue => [0, 0, 255],
            Colour::White => [255, 255, 255],
            Colour::Black => [0, 0, 0],
        }
    }

    /// The colour `rgb` is close to (each channel within 64), if any: lossy codecs and resizers
    /// move a flat colour a little, never that far.
    pub fn of(rgb: [u8; 3]) -> Option<Colour> {
        [
            Colour::Red,
            Colour::Green,
            Colour::Blue,
            Colour::White,
            Colour::Black,
        ]
        .into_iter()
        .find(|c| {
            c.rgb()
                .iter()
                .zip(rgb)
                .all(|(want, got)| want.abs_diff(got) <= 64)
        })
    }
}

/// The quadrants in stored layout: top-left, top-right, bottom-left, bottom-right.
pub const QUADRANTS: [Colour; 4] = [Colour::Red, Colour::Green, Colour::Blue, Colour::White];

/// The colour at `(x, y)` of a `width` × `height` quadrant image, in stored layout.
pub fn quadrant_at(x: u32, y: u32, width: u32, height: u32) -> Colour {
    let right = usize::from(x >= width / 2);
    let bottom = usize::from(y >= height / 2);
    QUADRANTS[bottom * 2 + right]
}

/// The quadrant image's RGB pixels, row by row.
pub fn quadrants_rgb(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            out.extend(quadrant_at(x, y, width, height).rgb());
        }
    }
    out
}

/// What the corners (top-left, top-right, bottom-left, bottom-right) of a quadrant image stored
/// with EXIF `orientation` (1..=8) show once the orientation is applied.
pub fn oriented_quadrants(orientation: u16) -> [Colour; 4] {
    use Colour::{Blue as B, Green as G, Red as R, White as W};
    match orientation {
        2 => [G, R, W, B], // mirrored left to right
        3 => [W, B, G, R], // turned 180°
        4 => [B, W, R, G], // mirrored top to bottom
        5 => [R, B, G, W], // mirrored along the main diagonal
        6 => [B, R, W, G], // turned 90° clockwise
        7 => [W, G, B, R], // mirrored along the other diagonal
        8 => [G, W, R, B], // turned 90° counter-clockwise
        _ => [R, G, B, W],
    }
}

/// Whether `orientation` swaps width and height.
pub fn orientation_swaps_sides(orientation: u16) -> bool {
    (5..=8).contains(&orientation)
}

/// The format of `bytes` by its magic bytes: `jpeg`, `png`, `webp`, `gif`, `avif`.
pub fn format_of(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("webp")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("gif")
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" && &bytes[8..12] == b"avif" {
        Some("avif")
    } else {
        None
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
