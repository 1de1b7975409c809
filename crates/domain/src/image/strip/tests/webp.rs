//! WebP files with EXIF and XMP chunks after the image chunk.

use super::{GPS_SECRET, MAKE, MINIMAL_TIFF_6, XMP_SECRET, camera_tiff, contains, exif_payload};
use crate::image::strip::{MetadataStripper, StripError, StripFormat, strip};

fn riff_chunk(fourcc: &[u8; 4], data: &[u8], pad: u8) -> Vec<u8> {
    let mut c = fourcc.to_vec();
    c.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    c.extend_from_slice(data);
    if data.len() % 2 == 1 {
        c.push(pad);
    }
    c
}

fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body = chunks.concat();
    let mut r = b"RIFF".to_vec();
    r.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_le_bytes());
    r.extend_from_slice(b"WEBP");
    r.extend_from_slice(&body);
    r
}

fn vp8x(flags: u8) -> Vec<u8> {
    riff_chunk(b"VP8X", &[flags, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0)
}

fn lossless() -> Vec<u8> {
    riff_chunk(b"VP8L", &[0x2F, 1, 2, 3, 4], 0)
}

pub(super) fn camera_webp(exif: &[u8]) -> Vec<u8> {
    riff(&[
        vp8x(0x1C),
        lossless(),
        riff_chunk(b"EXIF", exif, 0),
        riff_chunk(b"XMP ", XMP_SECRET, 0xAA),
    ])
}

#[test]
fn webp_strip_blanks_metadata_in_place() {
    let exif = [camera_tiff(6).as_slice(), &[0x99]].concat();
    let input = camera_webp(&exif);
    let mut kept_exif = MINIMAL_TIFF_6.to_vec();
    kept_exif.resize(exif.len(), 0);
    let expected = riff(&[
        vp8x(0x18),
        lossless(),
        riff_chunk(b"EXIF", &kept_exif, 0),
        riff_chunk(b"JUNK", &[0; 17], 0),
    ]);

    let out = strip(StripFormat::WebP, &input).unwrap();

    assert_eq!(out.len(), input.len());
    assert_eq!(out, expected);
    for secret in [&GPS_SECRET[..], XMP_SECRET, MAKE, b"XMP "] {
        assert!(!contains(&out, secret));
    }
}

#[test]
fn webp_strip_with_orientation_1_leaves_no_exif_chunk() {
    let input = camera_webp(&camera_tiff(1));

    let out = strip(StripFormat::WebP, &input).unwrap();

    assert_eq!(out.len(), input.len());
    assert!(!contains(&out, b"EXIF"));
    assert!(!contains(&out, GPS_SECRET));
    assert_eq!(out[20], 0x18, "the EXIF flag stays as it was");
}

#[test]
fn webp_strip_reads_exif_behind_an_exif_header() {
    let input = camera_webp(&exif_payload(&camera_tiff(6)));

    let out = strip(StripFormat::WebP, &input).unwrap();

    assert!(contains(
        &out,
        &[b"EXIF".as_slice(), &[98, 0, 0, 0], &MINIMAL_TIFF_6].concat()
    ));
}

#[test]
fn webp_strip_streams_a_huge_exif_chunk_as_zeros() {
    let mut header = b"RIFF\xFF\xFF\xFF\xFFWEBP".to_vec();
    header.extend(lossless());
    header.extend_from_slice(b"EXIF\x00\xFF\xFF\xFF");
    let mut stripper = MetadataStripper::new(StripFormat::WebP);
    let mut out = Vec::new();
    stripper.push(&header, &mut out).unwrap();
    let piece = vec![0x5A; 64 * 1024];

    for _ in 0..16 {
        stripper.push(&piece, &mut out).unwrap();
    }

    assert_eq!(out.len(), header.len() + 16 * piece.len());
    assert!(out[header.len()..].iter().all(|&b| b == 0));
    assert!(contains(&out, b"JUNK"));
    assert!(matches!(
        stripper.finish(&mut out),
        Err(StripError::Malformed(_))
    ));
}

#[test]
fn webp_strip_rejects_broken_structure() {
    let past_end = [b"RIFF\x0c\0\0\0WEBP".as_slice(), &lossless()].concat();
    let not_image = riff(&[riff_chunk(b"EXIF", &camera_tiff(6), 0)]);
    let short_vp8x = riff(&[riff_chunk(b"VP8X", &[0; 4], 0)]);
    let no_chunks = b"RIFF\x04\0\0\0WEBP".as_slice();
    for input in [
        b"RIFF\0\0\0\0WAVE".as_slice(),
        &past_end,
        &not_image,
        &short_vp8x,
        no_chunks,
    ] {
        assert!(
            matches!(
                strip(StripFormat::WebP, input),
                Err(StripError::Malformed(_))
            ),
            "{input:?}"
        );
    }
}
