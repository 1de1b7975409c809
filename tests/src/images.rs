//! Images the suites upload: a whole PNG, a JPEG full of metadata, and a decompression bomb.

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
