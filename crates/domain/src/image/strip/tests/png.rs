//! PNG files with text, time and eXIf chunks around the image chunks.

use super::{GPS_SECRET, MAKE, MINIMAL_TIFF_6, XMP_SECRET, camera_tiff, contains};
use crate::image::strip::{StripError, StripFormat, crc::crc32, strip};

pub(super) fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    c.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
    c
}

pub(super) const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn ihdr() -> Vec<u8> {
    chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0])
}

pub(super) fn camera_png(exif: Vec<u8>) -> Vec<u8> {
    [
        PNG_SIGNATURE.to_vec(),
        ihdr(),
        chunk(b"tEXt", b"Comment\0secret comment"),
        chunk(
            b"iTXt",
            &[b"XML:com.adobe.xmp\0\0\0\0\0".as_slice(), XMP_SECRET].concat(),
        ),
        exif,
        chunk(b"tIME", &[7, 0xE8, 1, 2, 3, 4, 5]),
        chunk(b"IDAT", b"fake-deflate-stream"),
        chunk(b"zTXt", b"Author\0\0secret-z"),
        chunk(b"IEND", &[]),
    ]
    .concat()
}

#[test]
fn png_strip_drops_text_and_rewrites_exif() {
    let input = camera_png(chunk(b"eXIf", &camera_tiff(8)));
    let mut tiff_8 = MINIMAL_TIFF_6;
    tiff_8[18] = 8;
    let expected = [
        PNG_SIGNATURE.to_vec(),
        ihdr(),
        chunk(b"eXIf", &tiff_8),
        chunk(b"IDAT", b"fake-deflate-stream"),
        chunk(b"IEND", &[]),
    ]
    .concat();

    let out = strip(StripFormat::Png, &input).unwrap();

    assert_eq!(out, expected);
    let exif_crc = &out[33 + 8 + 26..33 + 8 + 26 + 4];
    assert_eq!(exif_crc, crc32(&[b"eXIf", &tiff_8]).to_be_bytes());
    for secret in [&GPS_SECRET[..], XMP_SECRET, MAKE, b"secret"] {
        assert!(!contains(&out, secret));
    }
}

#[test]
fn png_strip_drops_exif_without_orientation_when_crc_is_wrong() {
    let mut exif = chunk(b"eXIf", &camera_tiff(8));
    let last = exif.len() - 1;
    exif[last] ^= 1;

    let out = strip(StripFormat::Png, &camera_png(exif)).unwrap();

    assert!(!contains(&out, b"eXIf"));
}

#[test]
fn png_strip_drops_exif_after_idat_without_orientation() {
    let input = [
        PNG_SIGNATURE.to_vec(),
        ihdr(),
        chunk(b"IDAT", b"data"),
        chunk(b"eXIf", &camera_tiff(8)),
        chunk(b"IEND", &[]),
    ]
    .concat();

    let out = strip(StripFormat::Png, &input).unwrap();

    assert!(!contains(&out, b"eXIf"));
}

#[test]
fn png_strip_drops_bytes_after_iend() {
    let clean = camera_png(Vec::new());
    let input = [clean.as_slice(), b"appended secret"].concat();

    let out = strip(StripFormat::Png, &input).unwrap();

    assert_eq!(out, strip(StripFormat::Png, &clean).unwrap());
}

#[test]
fn png_strip_rejects_broken_structure() {
    let huge = [PNG_SIGNATURE, &[0xFF, 0xFF, 0xFF, 0xFF], b"IHDR"].concat();
    let not_ihdr = [PNG_SIGNATURE.to_vec(), chunk(b"IDAT", b"x")].concat();
    let bad_type = [PNG_SIGNATURE, &[0, 0, 0, 0], b"IH\0R"].concat();
    for input in [b"\x89PNX\r\n\x1a\n".as_slice(), &huge, &not_ihdr, &bad_type] {
        assert!(
            matches!(
                strip(StripFormat::Png, input),
                Err(StripError::Malformed(_))
            ),
            "{input:?}"
        );
    }
}
